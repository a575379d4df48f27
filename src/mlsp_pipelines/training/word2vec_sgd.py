"""word2vec's own training algorithm: plain SGD, one (centre, context) pair at a time.

Why not the shared loop (:mod:`mlsp_pipelines.training.loop`): word2vec learns from millions
of tiny updates (one dot product per pair and negative). Through autograd and an optimiser,
each batch pays Python dispatch, a sparse-gradient coalesce and a SparseAdam step (measured:
the optimiser step alone is about half of every batch), which left the project at 0.09×
gensim's speed. The original algorithm (Mikolov et al. 2013, and gensim's C core) needs none
of it: the gradient of ``log σ(±h·u)`` is written by hand and applied at once, with a learning
rate that decays linearly from ``alpha`` to ``min_alpha`` over all epochs. Two engines run it:

* ``numba`` (CPU): a compiled kernel walks the corpus in order, exactly as gensim does: for
  each centre, its reduced window, for each context pair the positive and ``negative`` noise
  words (a drawn negative equal to the target is skipped), exact sigmoid, float32 vectors.
  Sequential and seeded: the same seed gives bit-identical vectors.
* ``torch`` (GPU, or CPU for checks): the same updates for ``batch_pairs`` pairs at once
  (shuffled within the epoch), gathered with indexing and scattered back with ``index_add_``
  (deterministic kernels are requested). A word that occurs several times in a batch gets the
  sum of its updates, as concurrent threads of gensim give it. That is faithful while a batch
  holds a frequent word tens of times, not hundreds: on the Lee corpus (4k words) 4096 pairs
  per step learn like the kernel, 16384 diverge (averaging or capping the repeats instead
  stalls learning: measured), so keep ``batch_pairs`` moderate; a GPU is fast at 4096 already.

Every epoch draws its own training examples, as word2vec does: frequent-word sub-sampling and
the reduced windows ``b ~ U{1..window}`` come from a generator seeded by ``(seed, epoch)``, and
negatives from a per-epoch seeded stream; so an epoch is reproducible on its own and a run
resumed after epoch ``k`` (vectors saved at the end of every epoch) ends with the same vectors
as one that was not interrupted. Negatives follow ``count ** noise_power`` through an alias
table (exact probabilities, constant time per draw).

Speed is ``words/second`` = in-vocabulary corpus tokens × epochs / training seconds, as gensim
counts it; the one-off compilation (cached on disk after the first run) is timed apart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from mlsp_pipelines.section import Section

logger = logging.getLogger(__name__)

Kind = Literal["sg", "cbow"]
Engine = Literal["auto", "numba", "torch"]


# -- noise distribution --------------------------------------------------------------------------
def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of ``probs`` (V,): ``(accept, alias)`` so that drawing a uniform
    column ``k`` and keeping it with probability ``accept[k]`` (else ``alias[k]``) samples
    exactly ``probs`` in constant time (Vose's construction)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError("noise distribution must be a non-empty vector of non-negative finite weights")
    n = len(p)
    scaled = p / p.sum() * n
    accept = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return accept, alias


def alias_probabilities(accept: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The distribution an alias table samples (for checks)."""
    n = len(accept)
    p = accept / n
    np.add.at(p, alias, (1.0 - accept) / n)
    return p


# -- per-epoch examples -------------------------------------------------------------------------
def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of epoch ``epoch`` (1-based): independent of every other epoch."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])


def draw_epoch(ids: np.ndarray, doc: np.ndarray, keep_prob: np.ndarray, window: int, dynamic_window: bool,
               seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.uint64]:
    """Sub-sampled tokens, their documents, reduced windows and the negatives' seed of one epoch."""
    rng = epoch_rng(seed, epoch)
    kept = rng.random(len(ids)) < keep_prob[ids]
    k_ids, k_doc = ids[kept], doc[kept]
    spans = (rng.integers(1, window + 1, size=len(k_ids), dtype=np.int64) if dynamic_window
             else np.full(len(k_ids), window, dtype=np.int64))
    neg_seed = np.uint64(rng.integers(1, 2**63 - 1, dtype=np.int64))
    return k_ids, k_doc, spans, neg_seed


# -- numba kernels --------------------------------------------------------------------------------
_KERNELS: dict[str, Callable[..., Any]] = {}


def _compile() -> dict[str, Callable[..., Any]]:
    """The two epoch kernels (numba is imported here, on first use)."""
    if not _KERNELS:
        from mlsp_pipelines.training import _word2vec_kernels as k

        _KERNELS.update(sg=k.sg_epoch, cbow=k.cbow_epoch)
    return _KERNELS


# -- torch engine -------------------------------------------------------------------------------
def _torch_pairs(k_ids, k_doc, spans, kind: Kind, window: int):
    """(inputs, targets) on the device: skip-gram ``(context, centre)`` id pairs, or CBOW
    ``(context windows (n, 2·window) padded with -1, centres)``."""
    import torch

    n = k_ids.shape[0]
    if kind == "sg":
        ins, outs = [], []
        for d in range(1, window + 1):
            if d >= n:
                break
            same = k_doc[d:] == k_doc[:-d]
            left = same & (spans[d:] >= d)     # centre i = p + d, context p (to its left)
            right = same & (spans[:-d] >= d)   # centre i = p, context p + d (to its right)
            ins += [k_ids[:-d][left], k_ids[d:][right]]
            outs += [k_ids[d:][left], k_ids[:-d][right]]
        if not ins:
            return k_ids[:0], k_ids[:0]
        return torch.cat(ins), torch.cat(outs)
    ctx = torch.full((n, 2 * window), -1, dtype=torch.long, device=k_ids.device)
    for d in range(1, min(window, n - 1) + 1):
        same = k_doc[d:] == k_doc[:-d]
        left = same & (spans[d:] >= d)
        ctx[d:, 2 * (d - 1)] = torch.where(left, k_ids[:-d], -1)
        right = same & (spans[:-d] >= d)
        ctx[:-d, 2 * (d - 1) + 1] = torch.where(right, k_ids[d:], -1)
    has = (ctx >= 0).any(dim=1)
    return ctx[has], k_ids[has]


def torch_epoch(k_ids: np.ndarray, k_doc: np.ndarray, spans: np.ndarray, syn0, syn1, accept, alias, *,
                kind: Kind, window: int, negative: int, alpha_start: float, alpha_end: float, seed: int,
                batch_pairs: int) -> tuple[float, int]:
    """One epoch of batched word2vec SGD with torch (``syn0``/``syn1``/``accept``/``alias`` are
    tensors on the training device). Returns (summed loss, examples)."""
    import torch
    import torch.nn.functional as F

    dev = syn0.device
    gen = torch.Generator(device=dev).manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
    t = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
    inputs, targets = _torch_pairs(t(k_ids), t(k_doc), t(spans), kind, window)
    n = int(targets.shape[0])
    if n == 0:
        return 0.0, 0
    order = torch.randperm(n, generator=gen, device=dev)
    inputs, targets = inputs[order], targets[order]
    V, D = syn1.shape
    labels = torch.zeros(1 + negative, device=dev, dtype=syn0.dtype)
    labels[0] = 1.0
    total = torch.zeros((), dtype=torch.float64, device=dev)
    steps = max(1, math.ceil(n / batch_pairs))
    for s in range(steps):
        sl = slice(s * batch_pairs, min(n, (s + 1) * batch_pairs))
        alpha = alpha_start + (alpha_end - alpha_start) * (sl.start / n)
        tgt = targets[sl]
        b = tgt.shape[0]
        col = torch.randint(0, V, (b, negative), generator=gen, device=dev)
        u = torch.rand((b, negative), generator=gen, device=dev, dtype=torch.float64)
        neg = torch.where(u < accept[col], col, alias[col])
        words = torch.cat([tgt.unsqueeze(1), neg], dim=1)                    # (b, 1+K)
        use = torch.cat([torch.ones_like(tgt, dtype=torch.bool).unsqueeze(1), neg != tgt.unsqueeze(1)], 1)
        if kind == "sg":
            h = syn0[inputs[sl]]                                             # (b, D)
        else:
            ctx = inputs[sl]
            valid = (ctx >= 0).to(syn0.dtype)                                # (b, 2w)
            h = (syn0[ctx.clamp_min(0)] * valid.unsqueeze(-1)).sum(1) / valid.sum(1, keepdim=True)
        u_vec = syn1[words]                                                  # (b, 1+K, D)
        f = torch.einsum("bd,bkd->bk", h, u_vec)
        g = (labels - torch.sigmoid(f)) * alpha * use                        # (b, 1+K)
        total += ((F.softplus(-f[:, 0]) + (F.softplus(f[:, 1:]) * use[:, 1:]).sum(1)).sum()).double()
        neu1e = torch.einsum("bk,bkd->bd", g, u_vec)
        syn1.index_add_(0, words.reshape(-1), (g.unsqueeze(-1) * h.unsqueeze(1)).reshape(-1, D))
        if kind == "sg":
            syn0.index_add_(0, inputs[sl], neu1e)
        else:
            rows = ctx.reshape(-1)
            keep = rows >= 0
            syn0.index_add_(0, rows[keep], neu1e.unsqueeze(1).expand(-1, ctx.shape[1], -1).reshape(-1, D)[keep])
    return float(total), n


class _NoBar:
    def update(self) -> None: ...

    def close(self) -> None: ...


# -- the training run ---------------------------------------------------------------------------
class SGDSettings(Section):
    """Hyper-parameters of one word2vec SGD run (the gensim anchor takes the same ones): the
    word2vec parameters (``word2vec.train``, the model's ``kind``, ``embedding.dim`` and the
    training data's ``window``/``negative``) gathered on the project's one settings base, so they
    are validated the same way wherever they come from."""

    kind: Kind = "sg"
    dim: int = Field(100, ge=1)
    window: int = Field(5, ge=1)
    dynamic_window: bool = True
    negative: int = Field(5, ge=1)
    alpha: float = Field(0.025, gt=0)
    min_alpha: float = Field(0.0001, gt=0)
    epochs: int = Field(5, ge=1)
    seed: int = 0
    engine: Engine = "auto"
    device: str = "cpu"
    batch_pairs: int = Field(4096, ge=1)
    deterministic: bool = True

    @model_validator(mode="after")
    def _check(self) -> SGDSettings:
        if self.min_alpha > self.alpha:
            raise ValueError(f"need 0 < min_alpha <= alpha, got alpha={self.alpha}, min_alpha={self.min_alpha}")
        return self

    def resolved_engine(self) -> str:
        """``auto``: the compiled kernel on CPU, torch on a GPU."""
        if self.engine != "auto":
            return self.engine
        return "numba" if self.device == "cpu" else "torch"


@dataclass
class SGDResult:
    """Trained vectors (float32 numpy) and the run's bookkeeping."""

    syn0: np.ndarray
    syn1: np.ndarray
    history: dict[str, list[float]]
    epochs_run: int
    train_seconds: float
    compile_seconds: float
    engine: str
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def init_vectors(vocab_size: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Input vectors uniform in ±0.5/dim (word2vec's initialisation), output vectors zero."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0])
    syn0 = ((rng.random((vocab_size, dim), dtype=np.float32) - 0.5) / dim).astype(np.float32)
    return syn0, np.zeros((vocab_size, dim), dtype=np.float32)


def warm_up() -> float:
    """Compile (or load the cached) numba kernels; returns the seconds it took."""
    t0 = time.perf_counter()
    kernels = _compile()
    one = np.zeros(2, dtype=np.int64)
    acc, al = np.ones(2), np.arange(2, dtype=np.int64)
    for kernel in kernels.values():
        kernel(one, one, np.ones(2, dtype=np.int64), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32),
               acc, al, 1, 0.025, 0.025, np.uint64(1), True)
    return time.perf_counter() - t0


def _alpha(settings: SGDSettings, progress: float) -> float:
    return settings.alpha - (settings.alpha - settings.min_alpha) * progress


def train(ids: np.ndarray, doc: np.ndarray, keep_prob: np.ndarray, noise: np.ndarray, settings: SGDSettings, *,
          checkpoint: Any = None, config_hash: str = "", resume: bool = True, desc: str = "word2vec",
          show_progress: bool = False, callbacks: tuple[Callable[[int, dict[str, float]], None], ...] = ()
          ) -> SGDResult:
    """Train word vectors on the in-vocabulary token stream ``ids`` (document of each token in
    ``doc``) with word2vec's SGD. ``keep_prob`` (V,) is the sub-sampling keep probability per
    word, ``noise`` (V,) the negative-sampling distribution.

    ``checkpoint`` (a :class:`~mlsp_pipelines.datasets.checkpoint.CheckpointStore`) is written
    after every epoch and cleared at the end; one with the same ``config_hash`` is resumed.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    doc = np.ascontiguousarray(doc, dtype=np.int64)
    keep_prob = np.asarray(keep_prob, dtype=np.float64)
    vocab_size = len(keep_prob)
    if len(noise) != vocab_size:
        raise ValueError(f"noise has {len(noise)} entries but keep_prob {vocab_size}")
    if len(ids) != len(doc):
        raise ValueError(f"ids ({len(ids)}) and doc ({len(doc)}) differ in length")
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    engine = settings.resolved_engine()
    accept, alias = alias_table(noise)
    syn0, syn1 = init_vectors(vocab_size, settings.dim, settings.seed)
    history: dict[str, list[float]] = {"train_loss": [], "examples": [], "epoch_seconds": []}
    start, seconds = 0, 0.0
    state = checkpoint.load() if (checkpoint is not None and resume) else None
    if state is not None and state.get("config_hash") != config_hash:
        logger.info("%s: checkpoint is from another configuration; starting afresh", checkpoint.path)
        state = None
    if state is not None:
        syn0, syn1 = state["syn0"].numpy().copy(), state["syn1"].numpy().copy()
        history = {k: list(v) for k, v in state["history"].items()}
        start, seconds = int(state["epoch"]), float(state["train_seconds"])
        logger.info("%s: resuming after epoch %d from %s", desc, start, checkpoint.path)

    compile_seconds = 0.0
    if engine == "numba":
        compile_seconds = warm_up()
        kernel = _compile()[settings.kind]
    else:
        import torch

        previous = (torch.are_deterministic_algorithms_enabled(),
                    torch.is_deterministic_algorithms_warn_only_enabled())
        torch.use_deterministic_algorithms(settings.deterministic, warn_only=True)
        dev = torch.device(settings.device)
        t_syn0, t_syn1 = torch.from_numpy(syn0).to(dev), torch.from_numpy(syn1).to(dev)
        t_acc, t_alias = torch.from_numpy(accept).to(dev), torch.from_numpy(alias).to(dev)

    if show_progress:
        from mlsp_pipelines.progress import progress  # tqdm: only when bars are wanted

        bar = progress(total=settings.epochs, initial=start, desc=desc, unit="epoch", enabled=True)
    else:
        bar = _NoBar()
    for epoch in range(start + 1, settings.epochs + 1):
        t0 = time.perf_counter()
        k_ids, k_doc, spans, neg_seed = draw_epoch(ids, doc, keep_prob, settings.window, settings.dynamic_window,
                                                   settings.seed, epoch)
        a0 = _alpha(settings, (epoch - 1) / settings.epochs)
        a1 = _alpha(settings, epoch / settings.epochs)
        if engine == "numba":
            loss, n = kernel(k_ids, k_doc, spans, syn0, syn1, accept, alias, settings.negative, a0, a1, neg_seed,
                             True)
        else:
            loss, n = torch_epoch(k_ids, k_doc, spans, t_syn0, t_syn1, t_acc, t_alias, kind=settings.kind,
                                  window=settings.window, negative=settings.negative, alpha_start=a0,
                                  alpha_end=a1, seed=int(neg_seed), batch_pairs=settings.batch_pairs)
            if t_syn0.device.type == "cuda":
                torch.cuda.synchronize()
            if checkpoint is not None:
                syn0, syn1 = t_syn0.cpu().numpy(), t_syn1.cpu().numpy()
        dt = time.perf_counter() - t0
        seconds += dt
        mean_loss = float(loss) / max(int(n), 1)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"{desc}: loss is {mean_loss} at epoch {epoch}; lower alpha "
                                     "(or batch_pairs, with the torch engine)")
        history["train_loss"].append(mean_loss)
        history["examples"].append(float(n))
        history["epoch_seconds"].append(dt)
        logger.info("%s epoch %d/%d  loss %.4f  %d examples  %.0f words/s  alpha %.5f→%.5f", desc, epoch,
                    settings.epochs, mean_loss, n, len(ids) / max(dt, 1e-9), a0, a1)
        for cb in callbacks:
            cb(epoch, {"train_loss": mean_loss, "lr": a1, "epoch_seconds": dt})
        if checkpoint is not None:
            import torch

            checkpoint.save({"config_hash": config_hash, "epoch": epoch, "syn0": torch.from_numpy(syn0.copy()),
                             "syn1": torch.from_numpy(syn1.copy()), "history": history, "train_seconds": seconds,
                             "seed": settings.seed})
        bar.update()
    bar.close()
    if engine == "torch":
        syn0, syn1 = t_syn0.cpu().numpy(), t_syn1.cpu().numpy()
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    if checkpoint is not None:
        checkpoint.clear()
    return SGDResult(syn0=np.ascontiguousarray(syn0), syn1=np.ascontiguousarray(syn1), history=history,
                     epochs_run=settings.epochs, train_seconds=seconds, compile_seconds=compile_seconds,
                     engine=engine, resumed_from=start)
