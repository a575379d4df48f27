"""The Kedro hook and the tracking session driven with a fake tracker: parameter keys, run
nesting, failure and kill paths, and the merge of a Dask worker's result -- in milliseconds,
beside the end-to-end runs of test_tracking.py and test_dask.py."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mlsp_pipelines.hooks import MlflowHook
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.tracking.session import RemoteResult, RunContext, TrackingSession
from mlsp_pipelines.tracking.store import OpenRun
from mlsp_pipelines.training import observers


@dataclass
class FakeTracker:
    """What :class:`~mlsp_pipelines.tracking.store.RunTracker` offers the session, recorded."""

    experiment: str = "asc"
    experiment_id: str = "1"
    uri: str = "sqlite:///fake.db"
    system_metrics_interval: float | None = None
    parent: OpenRun = field(default_factory=lambda: OpenRun("parent", "asc local"))
    runs: dict[str, OpenRun] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # run id → tags it was opened with
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: list[tuple[str, str, float, int]] = field(default_factory=list)  # (run id, key, value, step)
    declared: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, dataset, kind)
    inputs: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, dataset name, context)
    models: list[tuple[str, str]] = field(default_factory=list)  # (run id, flavour)
    closed: dict[str, str] = field(default_factory=dict)  # run id → status
    cards: dict[str, str] = field(default_factory=dict)  # run id → its note
    ended: str | None = None

    @property
    def parent_id(self) -> str:
        return self.parent.run_id

    def open(self, key: str, name: str, tags: dict[str, str], parent: str | None = None, *,
             monitor: bool = True) -> OpenRun:
        if key not in self.runs:
            run = OpenRun(f"run-{len(self.tags)}", name)
            self.runs[key] = run
            self.tags[run.run_id] = {**tags, "mlflow.parentRunId": parent or self.parent_id}
        return self.runs[key]

    def log_params(self, run: OpenRun, params: dict[str, Any]) -> None:
        self.params.setdefault(run.run_id, {}).update(params)

    def log_metrics(self, run: OpenRun, metrics: dict[str, float], step: int = 0, *, dataset: Any = None) -> None:
        self.metrics += [(run.run_id, k, float(v), step) for k, v in metrics.items()]

    def log_input(self, run: OpenRun, *, name: str, context: str, arrays: Any, digest: str, source: Any) -> None:
        run.datasets[context] = (name, digest)
        self.inputs.append((run.run_id, name, context))

    def log_declared(self, run: OpenRun, name: str, value: Any, spec: dict[str, Any]) -> None:
        self.declared.append((run.run_id, name, spec["kind"]))

    def log_model(self, run: OpenRun, bundle: Any, *, flavor: str, **kwargs: Any) -> Any:
        self.models.append((run.run_id, flavor))
        run.model_id, run.model_flavor = f"m-{run.run_id}", flavor
        return SimpleNamespace(model_uri=f"models:/{run.model_id}", model_id=run.model_id)

    def close(self, key: str, status: str = "FINISHED") -> None:
        run = self.runs.pop(key, None)
        if run is not None:
            self.closed[run.run_id] = status

    def end(self, status: str) -> None:
        for key in list(self.runs):
            self.close(key, status)
        self.closed[self.parent_id] = status
        self.ended = status

    def set_tags(self, run: OpenRun, tags: dict[str, str]) -> None:
        pass

    def log_dict(self, run: OpenRun, value: Any, artifact: str) -> None:
        pass

    def close_session_leftovers(self, session_id: str | None, status: str) -> None:
        pass

    def monitor(self, run: OpenRun) -> None:
        return None

    def run_metrics(self, run: OpenRun) -> dict[str, float]:
        return {k: v for r, k, v, _ in self.metrics if r == run.run_id}

    def describe(self, run: OpenRun, text: str) -> None:
        self.cards[run.run_id] = text


@dataclass
class FakeNode:
    name: str
    namespace: str | None
    outputs: list[str]
    tags: set[str] = field(default_factory=lambda: {"model_run"})


class FakeCatalog:
    def __init__(self, declared: dict[str, dict[str, Any]]) -> None:
        self.declared = declared

    def get(self, name: str) -> Any:
        return SimpleNamespace(metadata={"mlflow": self.declared[name]} if name in self.declared else {})


DECLARED = {
    "asc.cnn.model": {"kind": "model", "flavor": "audio_classifier"},
    "asc.cnn.fold_1.model": {"kind": "model", "nested": True},
    "asc.cnn.metrics": {"kind": "metrics"},
    "asc.cnn.learning_curves": {"kind": "figure"},
    "asc.leaderboard": {"kind": "table"},
    "asc.model_input": {"kind": "inputs", "name": "asc", "splits": {"train": ["X_train", "y_train"],
                                                                     "test": ["X_test", "y_test"]}},
}
TRAIN_NODE = FakeNode("asc.cnn.train_model", "asc.cnn", ["asc.cnn.model", "asc.cnn.history"])
EVAL_NODE = FakeNode("asc.cnn.evaluate_model", "asc.cnn", ["asc.cnn.metrics", "asc.cnn.learning_curves"])


def _hook(tmp_path: Path) -> tuple[MlflowHook, FakeTracker]:
    tracker = FakeTracker()
    hook = MlflowHook()
    hook.catalog = FakeCatalog(DECLARED)
    hook.family = "asc"
    session = TrackingSession(RunContext(tmp_path, "local", "asc", {}, {}), tracker)  # type: ignore[arg-type]
    session.child_tags = {"pipeline": "asc", "kedro_session_id": "s1"}
    session.expect_model_nodes(["asc.cnn", "asc.cnn"])  # train and evaluate
    hook._session = session
    return hook, tracker


def _inputs() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    data = {"X_train": rng.normal(size=(8, 3)).astype(np.float32), "y_train": np.arange(8) % 2,
            "X_test": rng.normal(size=(4, 3)).astype(np.float32), "y_test": np.arange(4) % 2}
    return {"asc.model_input": data, "params:asc.models.cnn": ModelSpec(arch="mlp", kwargs={"hidden_sizes": [16]}),
            "params:asc.train": TrainParams(epochs=3, lr=0.01), "params:asc.report": {"n_examples": 2}}


def _fit(data: dict[str, Any], epochs: int = 2) -> None:
    """What the training loop tells its observers."""
    for obs in observers.active():
        obs.fit_started(desc="cnn", train=(data["X_train"], data["y_train"]), val=None, params=TrainParams(epochs=epochs))
    for epoch in range(1, epochs + 1):
        for obs in observers.active():
            obs.epoch_ended(epoch, {"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch})
    result = SimpleNamespace(best_epoch=epochs, epochs_run=epochs, train_seconds=0.5, stopped_early=False,
                             history={"train_loss": [1.0 / e for e in range(1, epochs + 1)]})
    for obs in observers.active():
        obs.fit_ended(result)


def test_a_model_run_gets_architecture_independent_parameter_keys_and_live_epochs(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    inputs = _inputs()
    hook.before_node_run(TRAIN_NODE, hook.catalog, inputs)
    run = tracker.runs["asc.cnn"]
    params = tracker.params[run.run_id]
    assert params["model.name"] == "cnn" and params["model.arch"] == "mlp"
    assert params["model.kwargs.hidden_sizes"] == [16] and "model.kwargs.dropout" in params  # defaults filled in
    assert params["train.epochs"] == 3 and params["train.lr"] == 0.01
    assert params["report.n_examples"] == 2  # another section: by its name, without the task prefix
    assert tracker.tags[run.run_id]["mlsp.kind"] == "model" and tracker.tags[run.run_id]["architecture"] == "cnn"
    assert tracker.tags[run.run_id]["mlflow.parentRunId"] == "parent"
    _fit(inputs["asc.model_input"])
    steps = [(k, s) for r, k, _, s in tracker.metrics if r == run.run_id and k.startswith("epoch/")]
    assert ("epoch/train_loss", 1) in steps and ("epoch/val_loss", 2) in steps  # live, step = epoch
    assert ("best_epoch" in {k for r, k, _, _ in tracker.metrics if r == run.run_id})
    # the training used the declared train split: named after it
    assert (run.run_id, "asc.train", "train") in tracker.inputs
    hook.after_node_run(TRAIN_NODE, inputs, {"asc.cnn.model": {"weights": 1}, "asc.cnn.history": None})
    assert tracker.models == [(run.run_id, "audio_classifier")]
    assert run.run_id not in tracker.closed  # the evaluation node is still to come
    assert not observers.active()  # the node's observer is gone with it
    hook.before_node_run(EVAL_NODE, hook.catalog, inputs)
    hook.after_node_run(EVAL_NODE, inputs, {"asc.cnn.metrics": {"accuracy": 0.5}, "asc.cnn.learning_curves": None})
    assert (run.run_id, "asc.cnn.metrics", "metrics") in tracker.declared
    assert tracker.closed[run.run_id] == "FINISHED"  # after its last node
    card = tracker.cards[run.run_id]  # ... with its model card
    assert "train `asc.train`" in card and "epoch 2 of 2" in card
    assert f'mlflow.pyfunc.load_model("models:/{run.model_id}")' in card and "sample_rate" in card


def test_a_model_card_quotes_data_test_metrics_cv_interval_size_and_loading() -> None:
    from mlsp_pipelines.tracking.session import model_card

    run = OpenRun("r1", "cnn", model_id="m-7", model_flavor="pytorch",
                  datasets={"train": ("asc.train", "0123456789abcdef"), "test": ("asc.test", "fedcba9876543210")})
    card = model_card("cnn", run, {"cv_accuracy_mean": 0.8125, "cv_accuracy_ci95": 0.041, "macro_f1": 0.75,
                                   "n_params": 162_000, "macs_per_s": 57.7e6, "system/cpu": 99.0})
    assert card.startswith("**cnn**, 162k parameters, 57.7M MACs per second of audio.")
    assert "Data: train `asc.train` (digest `0123456789ab`), test `asc.test` (digest `fedcba987654`)." in card
    assert "accuracy 0.8125 ± 0.041 (95 % CI over CV folds) cross-validated" in card and "macro_f1 0.75" in card
    assert 'mlflow.pytorch.load_model("models:/m-7")' in card and "system" not in card
    assert "load_model" not in model_card("cnn", OpenRun("r2", "cnn"), {})  # no logged model, no recipe


def test_the_parameter_count_is_not_a_metric_named_params() -> None:
    from mlsp_pipelines.tracking.flatten import metric_key

    assert metric_key("params") == "n_params" and metric_key("models.cnn.params") == "models.cnn.n_params"
    assert metric_key("accuracy") == "accuracy" and metric_key("dog(bark).f1") == "dog_bark_.f1"


def test_a_second_training_in_a_node_is_a_run_nested_under_the_model_run(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    inputs = _inputs()
    fold = FakeNode("asc.cnn.cross_validate_fold_1", "asc.cnn", ["asc.cnn.fold_1.model"])
    hook.before_node_run(fold, hook.catalog, inputs)
    _fit(inputs["asc.model_input"])  # the fold's model is declared nested: its own run
    model_run = tracker.runs["asc.cnn"]
    nested = tracker.runs["asc.cnn.cross_validate_fold_1#1"]
    assert tracker.tags[nested.run_id]["mlflow.parentRunId"] == model_run.run_id
    assert tracker.tags[nested.run_id]["mlsp.kind"] == "training"
    assert tracker.params[nested.run_id]["train.epochs"] == 2  # what this training ran with
    hook.after_node_run(fold, inputs, {"asc.cnn.fold_1.model": {"w": 1}})
    assert tracker.models == [(nested.run_id, "pytorch")]  # the fold's model belongs to the fold's run
    assert tracker.closed[nested.run_id] == "FINISHED"


def test_outputs_of_other_nodes_go_to_the_parent_run(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    report = FakeNode("asc.build_report", None, ["asc.leaderboard"], tags=set())
    hook.before_node_run(report, hook.catalog, {})
    hook.after_node_run(report, {}, {"asc.leaderboard": "| model |"})
    assert tracker.declared == [("parent", "asc.leaderboard", "table")]


def test_a_failed_node_closes_its_runs_failed_and_an_interrupt_ends_killed(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    inputs = _inputs()
    fold = FakeNode("asc.cnn.cross_validate_fold_1", "asc.cnn", ["asc.cnn.fold_1.model"])
    hook.before_node_run(fold, hook.catalog, inputs)
    _fit(inputs["asc.model_input"])
    nested, model_run = tracker.runs["asc.cnn.cross_validate_fold_1#1"], tracker.runs["asc.cnn"]
    hook.on_node_error(RuntimeError("boom"), fold)
    assert tracker.closed == {nested.run_id: "FAILED", model_run.run_id: "FAILED"}
    assert not observers.active()
    hook.on_pipeline_error(KeyboardInterrupt())
    assert tracker.ended == "KILLED" and tracker.closed["parent"] == "KILLED"
    assert hook._session is None


def test_an_interrupt_mid_training_uninstalls_the_observer_and_ends_killed(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    hook.before_node_run(TRAIN_NODE, hook.catalog, _inputs())
    assert len(observers.active()) == 1
    hook.on_pipeline_error(KeyboardInterrupt("signal 15"))
    assert not observers.active() and tracker.ended == "KILLED"
    assert set(tracker.closed.values()) == {"KILLED"}  # the model's run too, never left RUNNING


def test_a_dask_workers_result_is_merged_and_closes_the_model_run_after_its_last_node(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    state = hook.remote_node_state(TRAIN_NODE)
    assert state is not None and set(state.model_runs) == {"asc.cnn"}
    assert state.model_runs["asc.cnn"].monitor is None and state.parent.run_id == "parent"
    assert pickle.loads(pickle.dumps(state)).context.family == "asc"  # travels to a worker
    worker_run = OpenRun(state.model_runs["asc.cnn"].run_id, "cnn", params={"train.epochs": "3"},
                         datasets={"train": ("asc.train", "abc")}, model_id="m-1", live_epochs=True)
    result = RemoteResult({"asc.cnn": worker_run}, {"asc.train": "abc"}, ["data/04_feature/asc"])
    hook.remote_node_done(TRAIN_NODE, pickle.loads(pickle.dumps(result)), None)
    run = tracker.runs["asc.cnn"]
    assert run.params == {"train.epochs": "3"} and run.model_id == "m-1" and run.live_epochs
    assert hook._session.record["datasets"] == {"asc.train": "abc"}
    assert hook._session.used_paths == {"data/04_feature/asc"}
    assert run.run_id not in tracker.closed  # one of its two nodes done
    hook.remote_node_done(EVAL_NODE, RemoteResult(), None)
    assert tracker.closed[run.run_id] == "FINISHED"


def test_a_failed_dask_node_fails_its_model_run_at_once(tmp_path: Path) -> None:
    hook, tracker = _hook(tmp_path)
    hook.remote_node_state(TRAIN_NODE)
    run_id = tracker.runs["asc.cnn"].run_id
    hook.remote_node_done(TRAIN_NODE, None, RuntimeError("worker died"))
    assert tracker.closed[run_id] == "FAILED"


def test_tracking_off_is_a_no_op(tmp_path: Path) -> None:
    hook = MlflowHook()
    hook.catalog = FakeCatalog(DECLARED)
    hook.before_node_run(TRAIN_NODE, hook.catalog, _inputs())
    hook.after_node_run(TRAIN_NODE, {}, {"asc.cnn.model": {}})
    assert not observers.active() and hook.remote_node_state(TRAIN_NODE) is None
    hook.after_pipeline_run()


@pytest.fixture(autouse=True)
def _no_leftover_observers() -> Any:
    yield
    assert not observers.active()
