"""``asc`` on conf/test under :class:`~mlsp_pipelines.runner.DaskRunner` on a 2-worker LocalCluster.

One sequential run (``MLSP_TORCH_THREADS=1``, the workers' thread count) and one Dask run, each in
its own project copy, compared byte for byte and in MLflow; then a training node whose worker is
killed at every attempt: retried once, then the run fails naming the node, with its outputs absent
and its MLflow runs closed; a worker that dies under another node's metadata task does not fail that
node. The cluster is started once for the module (about 5 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from mlsp_pipelines import determinism

pytestmark = pytest.mark.slow

ARCHS = ("cnn", "attn_lstm")  # conf/test/parameters_asc.yml
#: Outputs that differ on every run by design (wall-clock times), outside every DVC output.
TIMINGS = ("timings", "node_seconds")


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root/data`` (lock files and wall-clock timings left out)."""
    data = root / "data"
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.rglob("*"))
            if p.is_file() and ".locks" not in p.parts and not any(t in p.parts or p.stem == t for t in TIMINGS)}


def runs_of(uri: str, session_id: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("asc-test")
    return client.search_runs([exp.experiment_id], f"tags.kedro_session_id = '{session_id}'")


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A 2-worker LocalCluster as the runner makes one (conf/test/dask.yml), one retry of a dead worker."""
    from mlsp_pipelines import cluster

    settings = cluster.DaskSettings(n_workers=2, threads_per_worker=1, torch_threads=1, allowed_failures=1,
                                    memory_limit="2GiB")
    with cluster.connect(settings) as client:
        yield client


def _run(project: Path, runner: Any, pipelines: list[str] | None = None, *, runtime_params: dict | None = None,
         node_names: list[str] | None = None) -> str:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="test", runtime_params=runtime_params) as session:
        session_id = session.session_id
        session.run(pipeline_names=pipelines or ["asc"], runner=runner, node_names=node_names)
    return session_id


def _copy_features(src: Path, project: Path) -> None:
    """Data and features as an earlier run made them (the training slice starts from there)."""
    for sub in ("01_raw", "02_intermediate", "04_feature"):
        shutil.copytree(src / "data" / sub, project / "data" / sub)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, new_project_copy) -> Path:  # type: ignore[no-untyped-def]
    """A project whose data and features exist (``asc_data`` + ``asc_features``, sequential)."""
    from mlsp_pipelines import config
    from mlsp_pipelines.runner import NamespaceSequentialRunner

    project = new_project_copy(tmp_path_factory.mktemp("prepared") / "project", git=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("KEDRO_ENV", raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_uri(project / "mlflow.db"))
        try:
            _run(project, NamespaceSequentialRunner(), ["asc_data", "asc_features"])
        finally:
            config.set_active_params(None)
    return project


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, new_project_copy, dask_client: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The sequential and the Dask run: ``{"seq"|"dask": (project, session id, tracking uri)}``."""
    from mlsp_pipelines import config
    from mlsp_pipelines.runner import DaskRunner, NamespaceSequentialRunner

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("KEDRO_ENV", raising=False)
        mp.setenv("MLSP_TORCH_THREADS", "1")  # the workers' torch threads (part of the results)
        for name, runner in (("seq", NamespaceSequentialRunner()), ("dask", DaskRunner(client=dask_client))):
            project = new_project_copy(tmp_path_factory.mktemp(name) / "project", git=True)
            uri = sqlite_uri(project / "mlflow.db")
            mp.setenv("MLFLOW_TRACKING_URI", uri)
            try:
                out[name] = (project, _run(project, runner), uri)
            finally:
                config.set_active_params(None)
    return out


def test_outputs_are_byte_identical_to_the_sequential_run(runs: dict[str, Any]) -> None:
    seq, dask = digests(runs["seq"][0]), digests(runs["dask"][0])
    assert "06_models/asc/cnn.pt" in seq and "08_reporting/asc/metrics.json" in seq
    assert sorted(dask) == sorted(seq)
    assert [k for k in seq if seq[k] != dask[k]] == []
    # the timings exist too (they differ by design)
    assert (runs["dask"][0] / "data/08_reporting/asc/timings.csv").is_file()


def test_mlflow_runs_are_nested_and_complete_as_in_a_sequential_run(runs: dict[str, Any]) -> None:
    import json

    from mlflow.tracking import MlflowClient

    shapes = {}
    for name, (project, session_id, uri) in runs.items():
        found = runs_of(uri, session_id)
        assert {r.info.status for r in found} == {"FINISHED"}, name
        (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
        children = {r.data.tags["architecture"]: r for r in found
                    if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        assert set(children) == set(ARCHS) and len(found) == 1 + len(ARCHS), name
        client = MlflowClient(tracking_uri=uri)
        lineage = json.loads(Path(client.download_artifacts(parent.info.run_id, "lineage.json")).read_text())
        shapes[name] = {
            "parent_params": parent.data.params,
            "parent_metrics": parent.data.metrics,
            "datasets": lineage.get("datasets"),
            **{arch: {"params": run.data.params,
                      "metrics": {k: v for k, v in run.data.metrics.items()
                                  if not k.startswith("system/") and "seconds" not in k and "latency" not in k},
                      "system_metrics": any(k.startswith("system/") for k in run.data.metrics),
                      "epochs": [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, "epoch/train_loss"),
                                                                   key=lambda m: m.step)],
                      "models": len(run.outputs.model_outputs),
                      "inputs": sorted((d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs),
                      "artefacts": sorted(a.path for a in client.list_artifacts(run.info.run_id))}
               for arch, run in children.items()},
        }
    seq, dask = shapes["seq"], shapes["dask"]
    epochs = {"cnn": 2, "attn_lstm": 3}  # conf/test's 2 epochs; attn_lstm's epochs_scale 1.34 makes 3
    for arch in ARCHS:
        assert dask[arch] == seq[arch], arch
        assert dask[arch]["models"] == 1 and dask[arch]["system_metrics"]
        assert len(dask[arch]["epochs"]) == epochs[arch] == int(dask[arch]["params"]["train.epochs"]), arch
    assert dask["datasets"] == seq["datasets"] and dask["datasets"]
    timing = ("seconds", "latency")
    assert {k: v for k, v in dask["parent_metrics"].items() if not k.startswith("system/") and not any(t in k for t in timing)} \
        == {k: v for k, v in seq["parent_metrics"].items() if not k.startswith("system/") and not any(t in k for t in timing)}
    assert dask["parent_params"] == seq["parent_params"]


def test_cli_accepts_the_short_runner_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsp_pipelines import cli

    seen = {}
    monkeypatch.setattr(cli, "_kedro_callback", lambda **kw: seen.update(kw))
    cli.run.callback(runner="dask", env="dask")
    assert seen["runner"] == "mlsp_pipelines.runner.DaskRunner"
    cli.run.callback(runner=None, env=None)
    assert seen["runner"] is None  # Kedro's option default applies (the project's sequential runner)


def test_dask_settings_reject_typos_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsp_pipelines import cluster

    cluster.set_active({"n_workers": 3, "torch_threads": 2})
    try:
        monkeypatch.setenv(cluster.SCHEDULER_ENV, "tcp://head:8786")
        s = cluster.resolve({"torch_threads": None})
        assert (s.scheduler_address, s.n_workers, s.torch_threads) == ("tcp://head:8786", 3, 2)
        assert cluster.resolve({"scheduler_address": "tcp://other:1"}).scheduler_address == "tcp://other:1"
        cluster.set_active({"n_worker": 2})
        with pytest.raises(ValueError, match="n_worker"):
            cluster.resolve()
    finally:
        cluster.set_active(None)
    env = cluster.worker_env(cluster.DaskSettings(torch_threads=3))
    assert env["MLSP_TORCH_THREADS"] == "3" and env["ATEN_CPU_CAPABILITY"] == determinism.PINNED_ENV["ATEN_CPU_CAPABILITY"]
    assert env["MLSP_KERNEL_TIER"] == determinism.TIER  # a worker resolves the driver's tier or refuses


def test_a_local_cluster_fans_out_at_the_sequential_thread_count() -> None:
    """``--runner=dask`` without settings writes a sequential run's bytes (the same torch threads
    per node) and fills the machine: one worker per ``torch_threads`` cores."""
    from mlsp_pipelines import cluster

    s = cluster.DaskSettings()
    assert s.torch_threads == determinism.PINNED_THREADS == 2
    assert [cluster.local_workers(s, cores) for cores in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 8]
    assert cluster.local_workers(cluster.DaskSettings(n_workers=5), 16) == 5
    assert cluster.local_workers(cluster.DaskSettings(torch_threads=1), 16) == 16


def _training_project(prepared: Path, tmp_path: Path, new_project_copy: Any,
                      monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, Path]:
    """A project copy with the prepared features, its own MLflow store, and a folder for the
    kill plugins' markers: ``(project, tracking uri, markers)``."""
    project = new_project_copy(tmp_path / "project", git=True)
    _copy_features(prepared, project)
    uri = sqlite_uri(project / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    markers = tmp_path / "markers"
    markers.mkdir()
    return project, uri, markers


def _kill_plugin_class() -> type:
    from distributed import WorkerPlugin

    class KillTraining(_KillTraining, WorkerPlugin):
        pass

    return KillTraining


class _KillTraining:
    """Worker plugin: the worker running ``asc.cnn.train_model`` dies 0.2 s into the node, every time."""

    name = "test-kill-training"

    def __init__(self, marker_dir: str) -> None:
        self.marker_dir = marker_dir

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "executing" and str(key).startswith("asc.cnn.train_model-"):
            Path(self.marker_dir, f"killed-{os.getpid()}").touch()
            threading.Timer(0.2, os._exit, args=(1,)).start()


class _KillMetadataFetch:
    """Worker plugin: the worker about to fetch ``asc.attn_lstm.train_model``'s metadata dies, twice.

    What happens to a finished node's small metadata task when the worker holding the node's result
    dies running another node: Dask counts the deaths against the metadata task.
    """

    name = "test-kill-metadata"

    def __init__(self, marker_dir: str) -> None:
        self.marker_dir = marker_dir

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "executing" and str(key).startswith("meta-asc.attn_lstm.train_model") \
                and len(os.listdir(self.marker_dir)) < 2:
            Path(self.marker_dir, f"killed-{os.getpid()}").touch()
            os._exit(1)


def test_a_node_is_not_blamed_for_a_worker_that_died_under_its_metadata(
        prepared: Path, dask_client: Any, tmp_path: Path, new_project_copy,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata task is killed as often as ``allowed_failures`` permits; the node's own task
    never failed, so the runner fetches the metadata again (the node is recomputed where its
    result was lost) and the run completes."""
    import cloudpickle
    from distributed import WorkerPlugin

    from mlsp_pipelines.runner import DaskRunner

    project, uri, markers = _training_project(prepared, tmp_path, new_project_copy, monkeypatch)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    plugin = type("KillMetadataFetch", (_KillMetadataFetch, WorkerPlugin), {})(str(markers))
    dask_client.register_plugin(plugin, name=_KillMetadataFetch.name)
    try:
        # the one node alone: no other node's task can share (and die with) the killed workers
        session_id = _run(project, DaskRunner(client=dask_client), ["asc_train"],
                          node_names=["asc.make_model_input", "asc.attn_lstm.train_model"])
    finally:
        dask_client.unregister_worker_plugin(_KillMetadataFetch.name)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        dask_client.wait_for_workers(2, timeout=600)
    assert len(list(markers.iterdir())) == 2  # two deaths: more than allowed_failures (1) for one task
    assert (project / "data/06_models/asc/attn_lstm.pt").is_file()
    torch.load(project / "data/06_models/asc/attn_lstm.pt", weights_only=True)
    assert {r.info.status for r in runs_of(uri, session_id)} == {"FINISHED"}


def test_a_killed_worker_is_retried_then_fails_the_run_cleanly(
        prepared: Path, dask_client: Any, tmp_path: Path, new_project_copy,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    import cloudpickle

    from mlsp_pipelines.runner import DaskRunner

    project, uri, markers = _training_project(prepared, tmp_path, new_project_copy, monkeypatch)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin's class travels by value
    plugin = _kill_plugin_class()(str(markers))
    dask_client.register_plugin(plugin, name=_KillTraining.name)
    try:
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(project)
        session = KedroSession.create(project_path=project, env="test")
        with pytest.raises(RuntimeError, match=r"node asc\.cnn\.train_model failed: the Dask worker running it died"):
            with session:
                session.run(pipeline_names=["asc_train"], runner=DaskRunner(client=dask_client))
    finally:
        dask_client.unregister_worker_plugin(_KillTraining.name)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        dask_client.wait_for_workers(2, timeout=600)  # the nannies restart the killed workers
    assert len(list(markers.iterdir())) == 2  # the first attempt and one retry (allowed_failures: 1)

    # nothing of the killed node was written; whatever else was written is complete
    data = project / "data"
    assert not (data / "06_models/asc/cnn.pt").exists()
    assert not (data / "07_model_output/asc/cnn").exists()
    for path in sorted(data.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue  # lock files; a temporary file of a write the kill interrupted (never at an output's path)
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix in (".pt", ".ckpt"):
            torch.load(path, weights_only=True)
        elif path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG")

    # MLflow: nothing left RUNNING; the run and the model's run failed
    found = runs_of(uri, session.session_id)
    statuses = {r.data.tags.get("architecture", "parent"): r.info.status for r in found
                if r.data.tags.get("mlsp.kind") in ("model", "run")}
    assert statuses["parent"] == "FAILED" and statuses["cnn"] == "FAILED"
    assert "RUNNING" not in {r.info.status for r in found}


def _fit_with_two_ranks() -> dict[str, Any]:
    """Runs on a Dask worker: a model with ``train.nproc: 2`` trains over two ranks it starts itself."""
    from mlsp_pipelines.models import build_model
    from mlsp_pipelines.params import TrainParams
    from mlsp_pipelines.training.loop import fit

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(32, 10, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    results = {}
    for nproc in (2, 1):
        torch.manual_seed(11)
        # no batch norm: it normalises by each rank's half batch, so ranks would not add up to one process
        net = build_model("mlp", in_features=6, out_features=3, hidden_sizes=[16], dropout=0.0, pooled_norm=False)
        params = TrainParams(epochs=2, batch_size=8, lr=1e-2, patience=None, progress=False, seed=3, nproc=nproc,
                             num_threads=1)
        results[nproc] = fit(net, (X, y), (X[:16], y[:16]), params=params).state_dict
    return {"pid": os.getpid(), **{f"nproc{k}": v for k, v in results.items()}}


def test_a_node_can_train_one_model_over_several_processes(dask_client: Any) -> None:
    """DistributedDataParallel inside a node (``train.nproc``) works on a Dask worker: the
    worker process may start the ranks (workers are not daemons), and they train what one
    process trains on the same global batch. The workers are restarted first: a worker that a
    nanny restarts (after a death) must not be a daemon either."""
    import cloudpickle

    dask_client.restart()
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        out = dask_client.submit(_fit_with_two_ranks, pure=False).result(timeout=600)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert out["pid"] != os.getpid()  # it ran on a worker
    for name, w in out["nproc1"].items():
        torch.testing.assert_close(out["nproc2"][name], w, rtol=1e-5, atol=1e-6)


def test_sweep_trials_fan_out_with_a_shared_storage_and_nested_runs(
        prepared: Path, dask_client: Any, tmp_path: Path, new_project_copy,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two trials at once (``parallel: 2``) through a journal file both workers write: the same
    trials as one after another in the sequential runner, each a nested MLflow run."""
    import json

    import optuna

    from mlsp_pipelines import config
    from mlsp_pipelines.runner import DaskRunner, NamespaceSequentialRunner

    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.setenv("MLSP_TORCH_THREADS", "1")
    found = {}
    for name, runner in (("seq", NamespaceSequentialRunner()), ("dask", DaskRunner(client=dask_client))):
        project = new_project_copy(tmp_path / name, git=True)
        _copy_features(prepared, project)
        journal = project / "data" / "09_sweeps" / "optuna.journal"
        sweep = {"enabled": True, "n_trials": 3, "parallel": 2, "epochs": 1, "storage": str(journal)}
        uri = sqlite_uri(project / "mlflow.db")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        try:
            session_id = _run(project, runner, ["asc_train"], runtime_params={"asc": {"sweep": sweep}},
                              node_names=["asc.make_model_input", "asc.run_sweep"])
        finally:
            config.set_active_params(None)
        best = json.loads((project / "data/08_reporting/asc/sweep_best.json").read_text())
        (study,) = optuna.get_all_study_summaries(optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))))
        stored = optuna.load_study(study_name=study.study_name, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal)))).trials
        assert [t.state.name for t in stored] == ["COMPLETE"] * 3  # every trial told the shared study
        trial_runs = [r for r in runs_of(uri, session_id) if "sweep_trial" in r.data.tags]
        found[name] = {
            "best": {k: v for k, v in best.items() if k != "metrics"},
            "values": [t.value for t in stored],
            "params": [t.params for t in stored],
            "runs": sorted((r.data.tags["sweep_trial"], r.info.status, r.data.metrics["val_loss"]) for r in trial_runs),
        }
        parent = [r for r in runs_of(uri, session_id) if "mlflow.parentRunId" not in r.data.tags][0]
        assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trial_runs)
    assert found["dask"] == found["seq"]
    assert [s for _, s, _ in found["dask"]["runs"]] == ["FINISHED"] * 3


def test_nodes_go_to_the_least_busy_worker_per_thread() -> None:
    """Nodes reading the same in-memory input must not pile up on the worker that holds it."""
    from collections import Counter

    from mlsp_pipelines.runner import _least_busy

    workers = {"tcp://a": {"nthreads": 1}, "tcp://b": {"nthreads": 1}, "tcp://c": {"nthreads": 2}}
    assert _least_busy(workers, Counter()) == "tcp://a"
    assert _least_busy(workers, Counter({"tcp://a": 1})) == "tcp://b"
    assert _least_busy(workers, Counter({"tcp://a": 1, "tcp://b": 1})) == "tcp://c"
    assert _least_busy(workers, Counter({"tcp://a": 1, "tcp://b": 1, "tcp://c": 1})) == "tcp://c"  # 1 of 2 threads
    assert _least_busy({}, Counter()) is None


def test_workers_keep_glibcs_own_memory_trimming(dask_client: Any) -> None:
    """Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which made every training
    1.2-1.9x slower (page faults); the LocalCluster leaves it out, also for a restarted worker, and
    a worker of a real cluster that has it is named with the fix."""
    from mlsp_pipelines import cluster

    dask_client.restart()
    envs = dask_client.run(lambda: os.environ.get(cluster.MALLOC_TRIM_ENV))
    assert len(envs) == 2 and all(v is None for v in envs.values())
    assert all(r["malloc"] is None for r in dask_client.run(cluster.worker_report).values())
    problem = cluster.malloc_trim_problem({cluster.MALLOC_TRIM_ENV: "65536"})
    assert problem and "MALLOC_TRIM_THRESHOLD_=65536" in problem and "PRE_SPAWN_ENVIRON" in problem
    assert cluster.malloc_trim_problem({cluster.MALLOC_TRIM_ENV: str(cluster.MIN_MALLOC_TRIM)}) is None


def _toy_pipeline() -> Any:
    """Three models of one step each, independent of one another, then a report reading all three."""
    from kedro.pipeline import Pipeline, node

    return Pipeline([node(abs, "x", f"{m}_out", name="train", namespace=m) for m in ("a", "b", "c")]
                    + [node(max, ["a_out", "b_out", "c_out"], "best", name="report")])


def test_critical_path_seconds_ranks_the_longest_chain_first() -> None:
    from mlsp_pipelines.runner import critical_path_seconds

    pipe = _toy_pipeline()
    by_name = lambda ranks: {n.name: v for n, v in ranks.items()}  # noqa: E731
    ranks = by_name(critical_path_seconds(pipe, {"a.train": 1.0, "b.train": 5.0, "c.train": 3.0, "report": 0.5}))
    assert ranks == {"a.train": 1.5, "b.train": 5.5, "c.train": 3.5, "report": 0.5}
    # a node never timed counts as the mean of those that were; no history: all equal
    assert by_name(critical_path_seconds(pipe, {"a.train": 1.0, "b.train": 5.0}))["c.train"] == 3.0 + 3.0
    assert set(critical_path_seconds(pipe, {}).values()) == {0.0}


def test_dask_runner_starts_the_longest_recorded_work_first_and_records_durations(
        dask_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With two workers and three ready models, the two that took longest last time start first
    (not the first two in namespace order); both runners record each node's duration."""
    import logging

    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog, MemoryDataset

    from mlsp_pipelines import runner as runners

    history = tmp_path / runners.NODE_SECONDS
    runners.set_project_root(tmp_path)
    try:
        (tmp_path / "data").mkdir()
        runners.NamespaceSequentialRunner().run(_toy_pipeline(), DataCatalog({"x": MemoryDataset(-2)}),
                                                hook_manager=_create_hook_manager())
        recorded = json.loads(history.read_text())
        assert sorted(recorded) == ["a.train", "b.train", "c.train", "report"]
        assert all(v >= 0 for v in recorded.values())

        history.write_text(json.dumps({"a.train": 1.0, "b.train": 5.0, "c.train": 3.0}))
        with caplog.at_level(logging.INFO):
            runners.DaskRunner(client=dask_client).run(_toy_pipeline(), DataCatalog({"x": MemoryDataset(-2)}))
        submitted = [r.getMessage().removeprefix("Submitted node: ") for r in caplog.records
                     if r.getMessage().startswith("Submitted node: ")]
        assert submitted[:2] == ["b.train", "c.train"] and submitted[2:] == ["a.train", "report"]
        after = json.loads(history.read_text())
        assert sorted(after) == ["a.train", "b.train", "c.train", "report"] and after["b.train"] != 5.0
    finally:
        runners.set_project_root(None)


def test_a_task_pinned_to_a_dead_worker_is_released_to_any_worker() -> None:
    """distributed leaves a ``no-worker`` task restricted to a dead worker's address unrunnable even
    with ``allow_other_workers`` (seen as a hung run when the killed workers restarted); the
    driver's stall check drops the dead restriction of loose tasks only and asks for processing."""
    from types import SimpleNamespace

    from mlsp_pipelines.runner import _release_dead_restrictions

    class Task(SimpleNamespace):
        __hash__ = object.__hash__  # the scheduler keys its unrunnable tasks by identity

    def task(key: str, restrictions: set[str] | None, loose: bool) -> SimpleNamespace:
        return Task(key=key, worker_restrictions=restrictions, loose_restrictions=loose)

    stuck = task("node-a", {"tcp://dead:1"}, True)
    strict = task("node-b", {"tcp://dead:1"}, False)  # the user asked for that worker only: left alone
    alive = task("node-c", {"tcp://live:2"}, True)  # its worker is up: the scheduler's own business
    asked: list[dict[str, str]] = []
    scheduler = SimpleNamespace(workers={"tcp://live:2": object()}, running={object()},
                                unrunnable={stuck: 1.0, strict: 2.0, alive: 3.0},
                                transitions=lambda recs, stimulus_id: asked.append(recs))
    assert _release_dead_restrictions(scheduler) == ["node-a"]
    assert stuck.worker_restrictions is None and strict.worker_restrictions == {"tcp://dead:1"}
    assert asked == [{"node-a": "processing"}]
    scheduler.running = set()  # no worker up yet: restrictions dropped, processing asked for when one joins
    stuck2 = task("node-d", {"tcp://dead:3"}, True)
    scheduler.unrunnable = {stuck2: 4.0}
    assert _release_dead_restrictions(scheduler) == ["node-d"] and asked == [{"node-a": "processing"}]
