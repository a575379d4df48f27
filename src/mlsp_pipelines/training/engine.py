"""The one training loop every pipeline uses (in one process or one rank; :mod:`.loop` is the
entry point that also starts data-parallel processes).

Seeded and deterministic on CPU, early stopping on validation loss (best weights restored),
gradient clipping, a checkpoint after every epoch (model, optimiser, RNG state, history), so a
run that is interrupted resumes where it stopped and ends with the same numbers as one that
was not. Batches are tuples of tensors whose last element is the target; the model is called
with the others, so the same loop trains classifiers, sequence regressors and seq2seq models.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlsp_pipelines import determinism
from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.progress import progress, progress_enabled
from mlsp_pipelines.training import observers
from mlsp_pipelines.training.distributed import World, init_distributed, reduce_sums, shard_order
from mlsp_pipelines.training.result import FitResult

logger = logging.getLogger("mlsp_pipelines.training.loop")  # the name users filter on (the loop before the split)

LossFn = Callable[[Tensor, Tensor], Tensor]
# Called on the main rank after every epoch with the epoch number (1-based) and that epoch's
# metrics (``train_loss``, ``val_loss``, [``train_acc``, ``val_acc``], ``lr``, ``epoch_seconds``);
# trackers use it to log live, step = epoch.
EpochCallback = Callable[[int, dict[str, float]], None]
# ``(n_samples, epoch, shuffle)`` → the batches of an epoch as index tensors (e.g. length-bucketed
# batches); replaces the loop's shuffle-and-chunk when given to :func:`fit`.
BatchSampler = Callable[[int, int, bool], list[Tensor]]
# Applied to each batch (a tuple of tensors, target last) before the model sees it, e.g. to trim
# padding columns that no sequence of the batch uses.
Collate = Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    determinism.configure_torch()  # pinned CPU kernels (a no-op with MLSP_FAST_KERNELS=1)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def classification_loss(out: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy for (B, C) or per-step (B, T, C) logits; target ``-100`` is ignored (padding).
    A floating-point target (B, C) is a soft label distribution (mixup)."""
    if target.is_floating_point():
        return nn.functional.cross_entropy(out, target, label_smoothing=label_smoothing)
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1), ignore_index=-100,
                                       label_smoothing=label_smoothing)


def regression_loss(out: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element (over the whole sequence for seq2seq regression)."""
    return nn.functional.mse_loss(out, target)


def _accuracy(out: Tensor, target: Tensor) -> tuple[float, int]:
    if target.is_floating_point():  # soft labels: the dominant class counts
        target = target.argmax(-1)
    pred = out.argmax(-1).reshape(-1)
    tgt = target.reshape(-1)
    mask = tgt != -100
    return float((pred[mask] == tgt[mask]).sum()), int(mask.sum())


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """AdamW (default), Adam, SGD with momentum, or SparseAdam for sparse embedding gradients."""
    betas = (0.9, params.adam_beta2)  # the Adam family's moment decays
    if params.optimizer == "sparse_adam":
        if params.weight_decay or params.grad_clip:
            raise ValueError("train.optimizer=sparse_adam supports neither weight_decay nor grad_clip; set them to 0/null")
        return torch.optim.SparseAdam(list(model.parameters()), lr=params.lr, betas=betas)
    # fused: one ATen kernel per step, whose sqrt is the exact one on every CPU (the unfused step
    # takes MKL's vector sqrt, whose last bit differs between processors; see determinism.py)
    if params.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9, weight_decay=params.weight_decay,
                               fused=True)
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, betas=betas, weight_decay=params.weight_decay,
                                fused=True)
    return torch.optim.AdamW(model.parameters(), lr=params.lr, betas=betas, weight_decay=params.weight_decay, fused=True)


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams, steps_per_epoch: int
                   ) -> torch.optim.lr_scheduler.LambdaLR | None:
    """Per-batch learning-rate schedule (``None`` for a constant rate).

    ``onecycle``: linear warm-up from lr/25 to lr over ``warmup`` of all steps, then cosine
    annealing to lr/1e4 (Smith's one-cycle policy, as ``OneCycleLR``); ``cosine``: linear
    warm-up from 0, then cosine to 0. A ``LambdaLR`` of the step count, so its state in the
    checkpoint is one integer and resume is exact.
    """
    if params.schedule == "constant":
        return None
    total = max(1, params.epochs * steps_per_epoch)
    warm = int(params.warmup * total)
    start, end = (1 / 25, 1e-4) if params.schedule == "onecycle" else (0.0, 0.0)

    def factor(step: int) -> float:
        if step < warm:
            return start + (1 - start) * step / warm
        progress_ = min(1.0, (step - warm) / max(1, total - warm))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress_))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batches(tensors: Sequence[Tensor], batch_size: int, order: Tensor | None,
             index_batches: list[Tensor] | None = None, collate: Collate | None = None) -> list[tuple[Tensor, ...]]:
    if index_batches is None:
        idx = order if order is not None else torch.arange(len(tensors[0]))
        index_batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    out = [tuple(t[b] for t in tensors) for b in index_batches if len(b)]
    return [collate(b) for b in out] if collate is not None else out


def _sampled(sampler: BatchSampler | None, n: int, epoch: int, shuffle: bool, world: World) -> list[Tensor] | None:
    """The sampler's batches of this epoch, this rank's share of each (every world-th row)."""
    if sampler is None:
        return None
    return [b[world.rank :: world.size] for b in sampler(n, epoch, shuffle)]


def _run_epoch(
    model: nn.Module,
    data: Sequence[Tensor],
    *,
    loss_fn: LossFn,
    classify: bool,
    batch_size: int,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None = None,
    grad_clip: float | None = None,
    order: Tensor | None = None,
    bar_desc: str = "",
    show_progress: bool = False,
    world: World = World(),
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    augment: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    index_batches: list[Tensor] | None = None,
    collate: Collate | None = None,
    log_every: int | None = None,
) -> dict[str, float]:
    """One pass over ``data``; trains when an optimiser is given. Returns mean loss (and
    accuracy) over all ranks' samples. With the bar off, ``log_every`` logs a line every N batches."""
    train = optimizer is not None
    model.train(train)
    total_loss, total_n, correct, counted = 0.0, 0, 0.0, 0
    batches = _batches(data, batch_size, order, index_batches, collate)
    bar = progress(total=len(batches), desc=bar_desc, unit="batch", enabled=show_progress)
    bar_on = progress_enabled(show_progress) and sys.stderr.isatty()
    log_every = log_every if (log_every and not bar_on and world.is_main) else None
    t_start = time.perf_counter()
    with torch.set_grad_enabled(train):
        for k, batch in enumerate(batches, 1):
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            *inputs, target = batch
            if augment is not None and train and len(inputs) == 1:
                x_aug, target = augment(inputs[0], target)
                inputs = [x_aug]
            out = model(*inputs)
            loss = loss_fn(out, target)
            if train:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            n = len(target)
            total_loss += float(loss.detach()) * n
            total_n += n
            if classify:
                c, m = _accuracy(out.detach(), target)
                correct += c
                counted += m
            bar.update()
            if log_every and (k % log_every == 0 or k == len(batches)):
                rate = k / max(time.perf_counter() - t_start, 1e-9)
                logger.info("%s batch %d/%d  loss %.4f  %.1f batches/s  ETA %.0f s", bar_desc or "epoch", k,
                            len(batches), total_loss / max(total_n, 1), rate, (len(batches) - k) / rate)
    bar.close()
    total_loss, total_n, correct, counted = reduce_sums([total_loss, total_n, correct, counted], world)
    metrics = {"loss": total_loss / max(total_n, 1)}
    if classify:
        metrics["acc"] = correct / max(counted, 1)
    return metrics


def fit_here(
    model: nn.Module,
    train: Sequence[Tensor],
    val: Sequence[Tensor] | None,
    *,
    params: TrainParams,
    task: str = "classification",
    loss_fn: LossFn | None = None,
    checkpoint: CheckpointStore | None = None,
    config_hash: str = "",
    desc: str = "train",
    callbacks: Sequence[EpochCallback] = (),
    augment: Any = None,
    batch_sampler: BatchSampler | None = None,
    collate: Collate | None = None,
    val_score: Callable[[nn.Module], dict[str, float]] | None = None,
    select_by: str | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` (tuple of tensors, target last), early-stopping on ``val``.

    ``checkpoint`` (optional) is written after every epoch and removed when training ends;
    a checkpoint whose ``config_hash`` matches is resumed, one that does not is ignored.
    Without validation data (``val`` None or empty) training follows its fixed schedule: no
    early stopping, the last epoch's weights are kept. ``augment`` (a :class:`BatchAugmenter`)
    transforms training batches only; its generator state is checkpointed. ``batch_sampler``
    (e.g. length-bucketed batches, seeded by epoch) replaces the shuffle-and-chunk of the rows
    and ``collate`` is applied to every batch (e.g. to trim padding). ``val_score(model)``, when
    given, scores the model on the validation data after every epoch (e.g. ``{"val_bleu": ...}``,
    in the history and live in MLflow); with ``select_by`` (one of its keys, higher is better)
    that score, not the validation loss, picks the kept epoch and drives early stopping.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    classify = task == "classification"
    eval_loss_fn = loss_fn or (classification_loss if classify else regression_loss)
    if loss_fn is None and classify and params.label_smoothing:
        loss_fn = partial(classification_loss, label_smoothing=params.label_smoothing)
    loss_fn = loss_fn or eval_loss_fn
    has_val = val is not None and len(val[0]) > 0
    seed_everything(params.seed)
    if params.num_threads:
        torch.set_num_threads(params.num_threads)
    device = resolve_device(params.device)
    world = init_distributed(params.distributed, device)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    model.to(device)
    net: nn.Module = model
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        batch_size = max(1, params.batch_size // world.size)  # batch_size is the global batch
    else:
        batch_size = params.batch_size
    eval_batch_size = max(1, (params.eval_batch_size or max(params.batch_size, 256)) // world.size)
    if not world.is_main:
        checkpoint = None  # rank 0 writes checkpoints; the others only compute
    optimizer = make_optimizer(model, params)
    steps = (len(batch_sampler(len(train[0]), 1, True)) if batch_sampler is not None
             else math.ceil(len(train[0]) / batch_size))
    scheduler = make_scheduler(optimizer, params, steps)
    if augment is not None and not getattr(augment, "active", True):
        augment = None

    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    if classify:
        history.update(train_acc=[], val_acc=[])
    start_epoch, best_val, best_epoch, bad_epochs, seconds = 0, math.inf, 0, 0, 0.0
    epoch_times: list[float] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_mean: dict[str, Tensor] | None = None  # with average_last: the mean of the epochs ending at the best one
    recent: deque[dict[str, Tensor]] | None = deque(maxlen=params.average_last) if params.average_last > 1 else None

    state = checkpoint.load() if (checkpoint is not None and params.resume) else None
    if state is not None and state.get("config_hash") != config_hash:
        logger.info("%s: checkpoint is from another configuration; starting afresh", checkpoint.path)
        state = None
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optim_state"])
        best_state, best_mean = state["best_state"], state.get("best_mean")
        history = {k: list(v) for k, v in state["history"].items()}
        start_epoch, best_val, best_epoch = state["epoch"], state["best_val"], state["best_epoch"]
        bad_epochs, seconds = state["bad_epochs"], state["train_seconds"]
        epoch_times = list(state.get("epoch_seconds") or ())
        if recent is not None:
            recent.extend(state.get("recent") or ())
        torch.set_rng_state(state["rng_state"])
        if scheduler is not None and state.get("sched_state") is not None:
            scheduler.load_state_dict(state["sched_state"])
        if augment is not None and state.get("aug_rng_state") is not None:
            augment.load_state(state["aug_rng_state"])
        logger.info("%s: resuming after epoch %d from %s", desc, start_epoch, checkpoint.path)

    # ambient observers (e.g. the MLflow hook) see the data trained on, every epoch and the result
    watchers = observers.active() if world.is_main else ()
    for obs in watchers:
        obs.fit_started(desc=desc, train=train, val=val, params=params)
    callbacks = (*callbacks, *(obs.epoch_ended for obs in watchers))

    # a run that died after its early-stopping checkpoint but before clean-up has nothing left to do
    stopped_early = params.patience is not None and bad_epochs >= params.patience
    epoch = start_epoch

    def validate(epoch: int) -> tuple[dict[str, float], dict[str, float], float]:
        """The model as it is on the validation data: loss (and accuracy), ``val_score`` and the
        criterion that picks the kept weights (lower is better)."""
        va = _run_epoch(net, val, loss_fn=eval_loss_fn, classify=classify, batch_size=eval_batch_size, device=device,
                        order=shard_order(len(val[0]), params.seed, epoch, world, shuffle=False) if world.size > 1 else None,
                        world=world, collate=collate, index_batches=_sampled(batch_sampler, len(val[0]), epoch, False, world))
        scores = val_score(model) if val_score is not None else {}
        return va, scores, (-float(scores[select_by]) if select_by in scores else va["loss"])

    for epoch in range(start_epoch + 1, (start_epoch if stopped_early else params.epochs) + 1):
        t0 = time.perf_counter()
        order = shard_order(len(train[0]), params.seed, epoch, world, shuffle=True)
        tr = _run_epoch(
            net, train, loss_fn=loss_fn, classify=classify, batch_size=batch_size, device=device,
            optimizer=optimizer, grad_clip=params.grad_clip, order=order, world=world,
            bar_desc=f"{desc} {epoch}/{params.epochs}", show_progress=params.progress and world.is_main,
            scheduler=scheduler, augment=augment, collate=collate, log_every=params.log_every,
            index_batches=_sampled(batch_sampler, len(train[0]), epoch, True, world),
        )
        va, scores, criterion = validate(epoch) if has_val else (tr, {}, tr["loss"])
        epoch_seconds = time.perf_counter() - t0
        seconds += epoch_seconds
        epoch_times.append(epoch_seconds)
        history["train_loss"].append(tr["loss"])
        history["val_loss"].append(va["loss"])
        if classify:
            history["train_acc"].append(tr["acc"])
            history["val_acc"].append(va["acc"])
        for key, value in scores.items():
            history.setdefault(key, []).append(float(value))
        if not math.isfinite(tr["loss"]):
            raise FloatingPointError(f"{desc}: training loss is {tr['loss']} at epoch {epoch}; lower train.lr")
        if recent is not None:
            recent.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        if not has_val or criterion < best_val - 1e-12:  # without validation: the latest weights are kept
            best_val, best_epoch, bad_epochs = (va["loss"] if not has_val else criterion), epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_mean = average_states(recent) if recent is not None and len(recent) > 1 else None
        else:
            bad_epochs += 1
        if world.is_main:
            logger.info(
                "%s epoch %d/%d  train_loss %.4f  val_loss %.4f%s%s",
                desc, epoch, params.epochs, tr["loss"], va["loss"],
                f"  val_acc {va['acc']:.3f}" if classify else "",
                "".join(f"  {k} {v:.2f}" for k, v in scores.items()),
            )
        if world.is_main and callbacks:
            row = {k: v[-1] for k, v in history.items()}
            row.update(lr=float(optimizer.param_groups[0]["lr"]), epoch_seconds=epoch_seconds)
            for cb in callbacks:
                cb(epoch, row)
        if checkpoint is not None:
            checkpoint.save(
                {
                    "config_hash": config_hash, "epoch": epoch, "model_state": model.state_dict(),
                    "optim_state": optimizer.state_dict(), "best_state": best_state, "best_mean": best_mean, "best_val": best_val,
                    "best_epoch": best_epoch, "bad_epochs": bad_epochs, "history": history,
                    "train_seconds": seconds, "epoch_seconds": epoch_times,
                    "rng_state": torch.get_rng_state(), "seed": params.seed,
                    "sched_state": scheduler.state_dict() if scheduler is not None else None,
                    "aug_rng_state": augment.state() if augment is not None else None,
                    "recent": list(recent) if recent is not None else None,
                }
            )
        if has_val and params.patience is not None and bad_epochs >= params.patience:
            stopped_early = True
            logger.info("%s: early stop at epoch %d (best epoch %d)", desc, epoch, best_epoch)
            break

    averaged = 1
    if best_mean is not None:
        # Checkpoint averaging is a candidate, not a given: with validation data the mean of the
        # last epochs is kept only if it validates at least as well as the best epoch on its own.
        t0 = time.perf_counter()
        keep_mean, mean_val = True, None
        if has_val:
            model.load_state_dict(best_mean)
            _, scores, mean_val = validate(best_epoch)
            keep_mean = mean_val <= best_val
        seconds += time.perf_counter() - t0
        n_mean = min(params.average_last, best_epoch)
        if keep_mean:
            best_state, averaged = best_mean, n_mean
        if world.is_main and mean_val is not None:
            what = select_by if select_by in scores else "val_loss"
            sign = -1.0 if select_by in scores else 1.0
            logger.info("%s: mean of epochs %d-%d %s %.4f vs epoch %d alone %.4f: kept the %s", desc,
                        best_epoch - n_mean + 1, best_epoch, what, sign * mean_val, best_epoch, sign * best_val,
                        "mean" if keep_mean else "single epoch")
    model.load_state_dict(best_state)
    if checkpoint is not None:
        checkpoint.clear()
    result = FitResult(
        state_dict={k: v.detach().cpu() for k, v in best_state.items()},
        history=history,
        best_epoch=best_epoch,
        epochs_run=epoch,
        train_seconds=seconds,
        epoch_seconds=epoch_times,
        stopped_early=stopped_early,
        resumed_from=start_epoch,
        averaged_epochs=averaged,
    )
    for obs in watchers:
        obs.fit_ended(result)
    return result


def average_states(states: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Element-wise mean of model states (floating tensors; counters such as batch norm's
    ``num_batches_tracked`` are taken from the latest state)."""
    latest = states[-1]
    return {k: (torch.stack([s[k] for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v.clone())
            for k, v in latest.items()}


@torch.inference_mode()
def predict(model: nn.Module, inputs: Sequence[Tensor], *, batch_size: int = 256, device: str | torch.device = "cpu") -> Tensor:
    """Model outputs for all rows of ``inputs`` (tuple of tensors), batched, in eval mode."""
    model.eval()
    device = torch.device(device)
    model.to(device)
    outs = [model(*(t.to(device) for t in batch)).cpu() for batch in _batches(inputs, batch_size, None)]
    return torch.cat(outs) if outs else torch.empty(0)
