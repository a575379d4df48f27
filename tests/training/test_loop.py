"""The shared training loop: determinism, early stopping, clipping, checkpoint resume, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mlsp_pipelines.datasets.atomic import atomic_path
from mlsp_pipelines.datasets.files import CheckpointStore
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training import hashing
from mlsp_pipelines.training.loop import fit, predict

torch.set_num_threads(1)


def make_data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()  # 3 classes, learnable
    return X, y


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # dropout makes the result depend on the global RNG, which resume must restore
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def params(**kw) -> TrainParams:
    return TrainParams(**{"epochs": 4, "batch_size": 16, "lr": 0.01, "patience": None, "progress": False, **kw})


TRAIN, VAL = make_data(96, 0), make_data(32, 1)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_history_and_weights() -> None:
    r1 = fit(make_model(), TRAIN, VAL, params=params())
    r2 = fit(make_model(), TRAIN, VAL, params=params())
    assert r1.history == r2.history
    assert_same_weights(r1.state_dict, r2.state_dict)
    assert len(r1.history["train_loss"]) == 4 and set(r1.history) == {"train_loss", "val_loss", "train_acc", "val_acc"}
    assert r1.history["train_loss"][-1] < r1.history["train_loss"][0]  # it actually learns
    r3 = fit(make_model(), TRAIN, VAL, params=params(seed=1))
    assert r3.history["train_loss"] != r1.history["train_loss"]


def test_early_stopping_restores_best_weights() -> None:
    # validation labels are shifted, so validation loss gets worse as training fits the train labels
    val = (VAL[0], (VAL[1] + 1) % 3)
    model = make_model()
    res = fit(model, TRAIN, val, params=params(epochs=30, patience=2))
    assert res.stopped_early
    assert res.epochs_run == res.best_epoch + 2 < 30
    assert len(res.history["val_loss"]) == res.epochs_run
    assert res.history["val_loss"][res.best_epoch - 1] == min(res.history["val_loss"])
    assert_same_weights(model.state_dict(), res.state_dict)  # the module itself holds the best weights
    # the best weights are those after best_epoch epochs of the same deterministic run
    ref = fit(make_model(), TRAIN, val, params=params(epochs=res.best_epoch))
    assert_same_weights(res.state_dict, ref.state_dict)
    assert not ref.stopped_early


def test_gradient_clipping_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        out = real(parameters, max_norm, *args, **kwargs)
        total = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in parameters if p.grad is not None))
        assert float(total) <= max_norm * (1 + 1e-4)
        calls.append(max_norm)
        return out

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    clipped = fit(make_model(), TRAIN, VAL, params=params(epochs=2, grad_clip=1e-3))
    assert calls == [1e-3] * (2 * 6)  # every optimiser step: 96 / 16 batches × 2 epochs
    calls.clear()
    free = fit(make_model(), TRAIN, VAL, params=params(epochs=2, grad_clip=None))
    assert calls == []
    assert clipped.history["train_loss"] != free.history["train_loss"]


class CrashingStore(CheckpointStore):
    """Dies half-way through writing the checkpoint of ``crash_epoch`` (a killed process)."""

    def __init__(self, path: Path, crash_epoch: int) -> None:
        super().__init__(path)
        self.crash_epoch = crash_epoch

    def save(self, state: dict) -> None:
        if state["epoch"] == self.crash_epoch:
            with atomic_path(self.path) as tmp:
                tmp.write_bytes(b"half a checkpoint")
                raise KeyboardInterrupt("killed while saving")
        super().save(state)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt" / "model.ckpt"
    reference = fit(make_model(), TRAIN, VAL, params=params(epochs=4), config_hash="cfg")

    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), TRAIN, VAL, params=params(epochs=4), checkpoint=CrashingStore(ckpt, 3),
            config_hash="cfg")
    assert [p.name for p in ckpt.parent.iterdir()] == ["model.ckpt"]  # no temp file left behind
    assert CheckpointStore(ckpt).load()["epoch"] == 2  # the previous epoch's checkpoint is intact

    model = make_model(seed=123)  # different initial weights: everything must come from the checkpoint
    resumed = fit(model, TRAIN, VAL, params=params(epochs=4), checkpoint=CheckpointStore(ckpt),
                  config_hash="cfg")
    assert resumed.resumed_from == 2
    assert resumed.history == reference.history
    assert_same_weights(resumed.state_dict, reference.state_dict)
    assert resumed.best_epoch == reference.best_epoch and resumed.epochs_run == 4
    # the wall-clock seconds of the epochs before the interruption come back with the checkpoint
    assert len(resumed.epoch_seconds) == 4 and all(t > 0 for t in resumed.epoch_seconds)
    assert sum(resumed.epoch_seconds) == pytest.approx(resumed.train_seconds)
    assert not ckpt.exists()  # a finished run removes its checkpoint


def test_resume_with_more_epochs_continues_a_finished_shorter_run(tmp_path: Path) -> None:
    """epochs=2 whose checkpoint survives (clear() prevented), then epochs=4 == straight epochs=4."""
    ckpt = tmp_path / "model.ckpt"
    store = CheckpointStore(ckpt)
    store.clear = lambda: None  # type: ignore[method-assign]
    fit(make_model(), TRAIN, VAL, params=params(epochs=2), checkpoint=store, config_hash="cfg")
    assert ckpt.is_file()
    resumed = fit(make_model(), TRAIN, VAL, params=params(epochs=4), checkpoint=CheckpointStore(ckpt),
                  config_hash="cfg")
    reference = fit(make_model(), TRAIN, VAL, params=params(epochs=4))
    assert resumed.resumed_from == 2
    assert resumed.history == reference.history
    assert_same_weights(resumed.state_dict, reference.state_dict)


def test_checkpoint_of_another_configuration_is_ignored(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), TRAIN, VAL, params=params(), checkpoint=CrashingStore(ckpt, 3), config_hash="old")
    assert ckpt.is_file()
    fresh = fit(make_model(), TRAIN, VAL, params=params(), checkpoint=CheckpointStore(ckpt), config_hash="new")
    reference = fit(make_model(), TRAIN, VAL, params=params())
    assert fresh.resumed_from == 0
    assert fresh.history == reference.history
    assert_same_weights(fresh.state_dict, reference.state_dict)


def test_resume_false_ignores_a_matching_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), TRAIN, VAL, params=params(), checkpoint=CrashingStore(ckpt, 3), config_hash="cfg")
    res = fit(make_model(), TRAIN, VAL, params=params(resume=False), checkpoint=CheckpointStore(ckpt),
              config_hash="cfg")
    assert res.resumed_from == 0 and len(res.history["train_loss"]) == 4


def test_unreadable_checkpoint_starts_afresh(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x00garbage")
    assert CheckpointStore(ckpt).load() is None
    res = fit(make_model(), TRAIN, VAL, params=params(epochs=2), checkpoint=CheckpointStore(ckpt),
              config_hash="cfg")
    assert res.resumed_from == 0 and len(res.history["train_loss"]) == 2


def test_config_fingerprint_is_stable_and_sensitive() -> None:
    a = hashing.fingerprint({"lr": 0.01, "arch": "cnn"}, [(10, 5)])
    assert a == hashing.fingerprint({"arch": "cnn", "lr": 0.01}, [(10, 5)])
    assert a != hashing.fingerprint({"lr": 0.02, "arch": "cnn"}, [(10, 5)])
    assert len(a) == 16


def test_non_finite_loss_is_an_error() -> None:
    def nan_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return out.sum() * float("nan")

    with pytest.raises(FloatingPointError, match="train.lr"):
        fit(make_model(), TRAIN, VAL, params=params(epochs=1), loss_fn=nan_loss)


def test_regression_task_and_predict() -> None:
    X = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    y = X @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    res = fit(model, (X, y[:, None]), None, params=params(epochs=30, lr=0.1, batch_size=8), task="regression")
    assert set(res.history) == {"train_loss", "val_loss"}
    assert res.history["train_loss"][-1] < 0.1 * res.history["train_loss"][0]
    out = predict(model, (X,), batch_size=7)
    assert out.shape == (40, 1)
    with pytest.raises(ValueError, match="task"):
        fit(model, (X, y), None, params=params(), task="ranking")


# -- atomic writes ------------------------------------------------------------------------------
def test_checkpoint_store_save_is_atomic(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "sub" / "m.ckpt")
    assert store.load() is None
    store.save({"epoch": 1, "w": torch.ones(3)})
    store.save({"epoch": 2, "w": torch.zeros(3)})
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["m.ckpt"]
    state = store.load()
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.zeros(3))
    store.clear()
    assert not store.path.exists()
    store.clear()  # clearing twice is fine


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failing_writer_leaves_the_previous_file(tmp_path: Path, exc: type[BaseException]) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(exc):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_text("new but incomplete")
            raise exc("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


# -- the training node's checkpoint key ---------------------------------------------------------------
def _model_input(shift: float = 0.0) -> dict:
    X, y = make_data(48, 0)
    Xv, yv = make_data(16, 1)
    as_seq = lambda t: (t.numpy()[:, None, :] + shift).repeat(4, axis=1)  # noqa: E731 - (B, T=4, F=8)
    return {"X_train": as_seq(X), "y_train": y.numpy(), "X_val": as_seq(Xv), "y_val": yv.numpy(),
            "classes": ["a", "b", "c"], "norm": {"mean": [0.0] * 8, "std": [1.0] * 8}, "hop_s": 0.01}


def test_training_node_does_not_resume_a_checkpoint_trained_on_other_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint left by an interrupted run must not be resumed once the features changed
    (e.g. another ``features.fmax`` gives arrays of the same shape but other values)."""
    import logging

    from mlsp_pipelines.modular.classifier.nodes import train_classifier
    from mlsp_pipelines.params import ModelSpec

    spec = ModelSpec(arch="mlp", kwargs={"hidden_sizes": [8], "dropout": 0.0})
    tp = params(epochs=3)
    ckpt = tmp_path / "mlp.ckpt"
    caplog.set_level(logging.INFO, logger="mlsp_pipelines.training.loop")
    with pytest.raises(KeyboardInterrupt):
        train_classifier(_model_input(), spec, tp, CrashingStore(ckpt, 2), name="m")
    caplog.clear()
    bundle, _, _ = train_classifier(_model_input(), spec, tp, CheckpointStore(ckpt), name="m")
    assert "m: resuming after epoch 1" in caplog.text  # same data, same configuration: resumed
    assert "resumed_from" not in bundle  # how a model got there is no part of its bytes

    with pytest.raises(KeyboardInterrupt):
        train_classifier(_model_input(), spec, tp, CrashingStore(ckpt, 2), name="m")
    caplog.clear()
    other, _, _ = train_classifier(_model_input(shift=3.0), spec, tp, CheckpointStore(ckpt), name="m")
    assert "resuming" not in caplog.text and "another configuration" in caplog.text
    clean, _, _ = train_classifier(_model_input(shift=3.0), spec, tp, None, name="m")
    assert_same_weights(other["state_dict"], clean["state_dict"])


def test_a_validation_score_picks_the_kept_epoch_and_stops_early() -> None:
    """``val_score`` is recorded per epoch and, with ``select_by``, decides the kept weights
    (higher is better) whatever the validation loss does."""
    scripted = iter([10.0, 30.0, 20.0, 25.0, 5.0, 1.0, 1.0, 1.0])
    seen: list[int] = []

    def score(model: nn.Module) -> dict[str, float]:
        seen.append(1)
        return {"val_bleu": next(scripted)}

    model = make_model()
    res = fit(model, TRAIN, VAL, params=params(epochs=8, patience=3), val_score=score, select_by="val_bleu")
    assert res.history["val_bleu"] == [10.0, 30.0, 20.0, 25.0, 5.0]  # three epochs without a better score
    assert res.best_epoch == 2 and res.stopped_early and res.epochs_run == 5 and len(seen) == 5
    ref = fit(make_model(), TRAIN, VAL, params=params(epochs=2))
    assert_same_weights(res.state_dict, ref.state_dict)  # the weights after epoch 2, not the lowest val loss
    # without select_by the score is only recorded
    res2 = fit(make_model(), TRAIN, VAL, params=params(epochs=3), val_score=lambda m: {"val_bleu": 1.0})
    assert res2.history["val_bleu"] == [1.0, 1.0, 1.0]
    assert res2.history["val_loss"][res2.best_epoch - 1] == min(res2.history["val_loss"])


def test_checkpoint_averaging_keeps_the_mean_of_the_last_epochs(tmp_path: Path) -> None:
    from mlsp_pipelines.training.loop import average_states

    states = []
    for n in (1, 2, 3):
        states.append(fit(make_model(), TRAIN, None, params=params(epochs=n)).state_dict)
    res = fit(make_model(), TRAIN, None, params=params(epochs=3, average_last=2))
    mean = average_states(states[1:])
    assert_same_weights(res.state_dict, mean)
    assert torch.allclose(mean["0.weight"], (states[1]["0.weight"] + states[2]["0.weight"]) / 2)
    # killed while saving epoch 3's checkpoint, then resumed from epoch 2's: the same average
    ckpt = tmp_path / "c.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), TRAIN, None, params=params(epochs=3, average_last=2), checkpoint=CrashingStore(ckpt, 3),
            config_hash="h")
    resumed = fit(make_model(seed=5), TRAIN, None, params=params(epochs=3, average_last=2),
                  checkpoint=CheckpointStore(ckpt), config_hash="h")
    assert resumed.resumed_from == 2
    assert_same_weights(resumed.state_dict, mean)


def test_checkpoint_averaging_is_kept_only_if_it_validates_better() -> None:
    """With validation data the mean of the last epochs is a candidate: scored like an epoch
    (one more ``val_score`` call) and kept only if it is at least as good as the best epoch."""
    from mlsp_pipelines.training.loop import average_states

    singles = [fit(make_model(), TRAIN, None, params=params(epochs=n)).state_dict for n in (1, 2, 3)]
    for mean_score, kept_mean in ((40.0, True), (20.0, False)):
        scripted = iter([10.0, 20.0, 30.0, mean_score])
        calls: list[int] = []

        def score(model: nn.Module) -> dict[str, float]:
            calls.append(1)
            return {"val_bleu": next(scripted)}

        res = fit(make_model(), TRAIN, VAL, params=params(epochs=3, average_last=2), val_score=score,
                  select_by="val_bleu")
        assert len(calls) == 4 and res.best_epoch == 3
        assert res.history["val_bleu"] == [10.0, 20.0, 30.0]  # the mean's score is not an epoch's
        expected = average_states(singles[1:]) if kept_mean else singles[2]
        assert_same_weights(res.state_dict, expected)
        assert res.averaged_epochs == (2 if kept_mean else 1)


def test_predict_computes_no_gradients() -> None:
    out = predict(make_model(), (TRAIN[0],))
    assert not out.requires_grad and out.shape == (len(TRAIN[0]), 3)
    out.numpy()  # what every evaluation does with it


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_adam_beta2_reaches_the_optimizer_and_is_validated(optimizer: str) -> None:
    from pydantic import ValidationError

    from mlsp_pipelines.training.engine import make_optimizer

    net = nn.Linear(3, 2)
    default = make_optimizer(net, TrainParams(optimizer=optimizer))
    assert default.param_groups[0]["betas"] == (0.9, 0.999)
    chosen = make_optimizer(net, TrainParams(optimizer=optimizer, adam_beta2=0.98))
    assert chosen.param_groups[0]["betas"] == (0.9, 0.98)
    with pytest.raises(ValidationError, match="adam_beta2"):
        TrainParams(adam_beta2=1.0)
