"""Batch augmentation and per-batch schedules of the shared loop: what each transform does, that
it is seeded, vectorised, off at evaluation and resumed bit-identically from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mlsp_pipelines.datasets.files import CheckpointStore
from mlsp_pipelines.params import AugmentParams, ModelSpec, TrainParams
from mlsp_pipelines.training.augment import BatchAugmenter
from mlsp_pipelines.training.loop import fit, make_scheduler

torch.set_num_threads(1)
B, T, F, C = 16, 40, 12, 4


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, F, generator=g) + 3.0, torch.randint(0, C, (B,), generator=g)


def aug(seed: int = 0, **kw) -> BatchAugmenter:
    return BatchAugmenter(AugmentParams(**kw), seed=seed, n_classes=C)


def test_masks_zero_whole_bands_and_frames_within_their_limits() -> None:
    x, y = batch()
    out, target = aug(freq_masks=2, freq_mask_frac=0.25, time_masks=1, time_mask_frac=0.2)(x, y)
    assert torch.equal(target, y)
    zero = out == 0
    band = zero.all(dim=1)  # (B, F): masked frequency bands
    frame = zero.all(dim=2)  # (B, T): masked frames
    assert band.any() and frame.any()
    assert band.sum(1).max() <= 2 * round(0.25 * F) and frame.sum(1).max() <= round(0.2 * T)
    assert torch.equal(zero, band[:, None, :] | frame[:, :, None])  # nothing else touched
    assert torch.equal(out[~zero], x[~zero])
    # every row draws its own masks
    assert len({tuple(r.tolist()) for r in band}) > 1


def test_time_roll_is_a_circular_shift_per_clip() -> None:
    x, y = batch()
    out, _ = aug(time_shift=0.25)(x, y)
    shifts = set()
    for i in range(B):
        matches = [s for s in range(-T, T) if torch.equal(torch.roll(x[i], s, dims=0), out[i])]
        assert matches, i
        shifts.add(matches[0] % T)
    assert len(shifts) > 1 and all(min(s, T - s) <= round(0.25 * T) for s in shifts)


def test_gain_shifts_each_clip_uniformly_in_db() -> None:
    x, y = batch()
    scale = np.full(F, 0.5, np.float32)
    a = BatchAugmenter(AugmentParams(gain_db=6.0), seed=0, gain_scale=scale)
    out, _ = a(x, y)
    delta = out - x
    per_clip = delta[:, 0, 0]
    torch.testing.assert_close(delta, per_clip[:, None, None].expand_as(delta))
    assert per_clip.abs().max() <= 6.0 * 0.5 + 1e-5 and per_clip.std() > 0


def test_mixup_targets_are_distributions_matching_the_mixed_inputs() -> None:
    x, y = batch()
    out, target = aug(mixup_alpha=0.4)(x, y)
    assert target.shape == (B, C) and torch.allclose(target.sum(1), torch.ones(B))
    own = target[torch.arange(B), y]
    assert (own >= 0.5 - 1e-6).all()  # the clip's own label dominates
    assert not torch.equal(out, x)


def test_augmentation_is_seeded_and_state_restores_the_stream() -> None:
    x, y = batch()
    kw = dict(freq_masks=2, time_masks=2, time_shift=0.1, gain_db=3.0, mixup_alpha=0.2)
    a, b = aug(1, **kw), aug(1, **kw)
    assert all(torch.equal(u, v) for u, v in zip(a(x, y), b(x, y)))
    state = a.state()
    first = a(x, y)
    a.load_state(state)
    assert all(torch.equal(u, v) for u, v in zip(first, a(x, y)))
    assert not torch.equal(aug(2, **kw)(x, y)[0], aug(1, **kw)(x, y)[0])


def test_disabled_augmentation_is_the_identity() -> None:
    x, y = batch()
    out, target = aug()(x, y)
    assert out is x and target is y and not AugmentParams().enabled


def _seq_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    x = torch.randn(n, T, F, generator=g) + y[:, None, None].float()
    return x, y


class Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(F, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mean(1))


def _params(**kw) -> TrainParams:
    return TrainParams(**{"epochs": 4, "batch_size": 16, "lr": 0.01, "patience": None, "progress": False,
                          "schedule": "onecycle", "warmup": 0.25, "label_smoothing": 0.1,
                          "augment": {"freq_masks": 1, "time_masks": 1, "time_shift": 0.1, "mixup_alpha": 0.4},
                          **kw})


class Crash(CheckpointStore):
    def __init__(self, path: Path, at: int) -> None:
        super().__init__(path)
        self.at = at

    def save(self, state: dict) -> None:
        if state["epoch"] == self.at:
            raise KeyboardInterrupt
        super().save(state)


def test_resume_with_augmentation_and_schedule_is_bit_identical(tmp_path: Path) -> None:
    train, val = _seq_data(64, 0), _seq_data(32, 1)

    def run(store: CheckpointStore | None, seed: int = 0):  # noqa: ANN202
        torch.manual_seed(seed)
        return fit(Pooled(), train, val, params=_params(), checkpoint=store, config_hash="c",
                   augment=BatchAugmenter(_params().augment, seed=7, n_classes=C))

    reference = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(Crash(tmp_path / "m.ckpt", 3))
    resumed = run(CheckpointStore(tmp_path / "m.ckpt"), seed=99)
    assert resumed.resumed_from == 2 and resumed.history == reference.history
    assert all(torch.equal(resumed.state_dict[k], reference.state_dict[k]) for k in reference.state_dict)
    # validation is never augmented: the kept model's val_loss is recomputable on the clean data
    plain = fit(Pooled(), train, val, params=_params(augment={}), config_hash="c")
    assert plain.history["train_loss"] != reference.history["train_loss"]


def test_onecycle_and_cosine_step_per_batch() -> None:
    for schedule, start, end in (("onecycle", 0.1 / 25, 0.1 * 1e-4), ("cosine", 0.0, 0.0)):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = make_scheduler(opt, TrainParams(epochs=2, schedule=schedule, warmup=0.25), steps_per_epoch=10)
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(20):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert lrs[0] == pytest.approx(start, abs=1e-12)
        assert max(lrs) == pytest.approx(0.1) and int(np.argmax(lrs)) == 5  # peak after 25 % of 20 steps
        assert lrs[-1] == pytest.approx(end, abs=1e-9)
        assert all(a >= b - 1e-12 for a, b in zip(lrs[5:], lrs[6:]))  # monotone decay after warm-up
    assert make_scheduler(opt, TrainParams(schedule="constant"), 10) is None


def test_without_validation_the_last_epoch_is_kept_and_nothing_stops_early() -> None:
    train = _seq_data(64, 0)
    res = fit(Pooled(), train, None, params=_params(patience=1, epochs=5))
    assert res.best_epoch == 5 and res.epochs_run == 5 and not res.stopped_early


def test_model_entry_overrides_one_augmentation_key() -> None:
    base = _params()
    spec = ModelSpec(arch="mlp", train={"augment": {"mixup_alpha": 0.0}})
    merged = spec.train_params(base)
    assert merged.augment.mixup_alpha == 0.0 and merged.augment.freq_masks == 1 and merged.lr == base.lr
