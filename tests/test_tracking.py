"""MLflow as users compare runs: aligned parameters, live runs, loadable models, real dataset lineage,
a robust run store. Checked through ``MlflowClient`` on the sqlite store of real runs (the loopback
``mlflow server`` case is in ``test_scaling.py``).

One module-scoped ``asc`` run on ``conf/test`` (two architectures) with the synthetic audio written
at 11025 Hz while features are computed at 8000 Hz, so the pipeline and the served model both
resample; plus a few short CLI runs for the store's robustness.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT, make_project_copy, sqlite_uri

ARCHS = ("cnn", "attn_lstm")
SYNTH_SR = 11025  # != features.sr (8000)
BIN = Path(sys.executable).parent
CLI_ENV = {"KEDRO_DISABLE_TELEMETRY": "1", "MLSP_PROGRESS": "0", "COLUMNS": "200"}


@dataclass
class Tracked:
    project: Path
    session_id: str
    uri: str

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def experiment(self) -> Any:
        exp = self.client().get_experiment_by_name("asc-test")
        assert exp is not None, "no experiment 'asc-test'"
        return exp

    def runs(self) -> list[Any]:
        return self.client().search_runs([self.experiment().experiment_id],
                                         f"tags.kedro_session_id = '{self.session_id}'")

    def parent(self) -> Any:
        (parent,) = [r for r in self.runs() if "mlflow.parentRunId" not in r.data.tags]
        return parent

    def children(self) -> dict[str, Any]:
        pid = self.parent().info.run_id
        return {r.data.tags["architecture"]: r for r in self.runs() if r.data.tags.get("mlflow.parentRunId") == pid}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, new_project_copy, kedro_run) -> Tracked:  # type: ignore[no-untyped-def]
    project = new_project_copy(tmp_path_factory.mktemp("tracked") / "project", git=True)
    # an environment's mlflow.yml overrides single keys: register every trained model
    (project / "conf" / "test" / "mlflow.yml").write_text("register_models: true\n")
    uri = sqlite_uri(project / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("KEDRO_ENV", raising=False)
        _, session_id = kedro_run(project, ["asc"], env="test", runtime_params={"asc": {"synth": {"sr": SYNTH_SR}}})
    return Tracked(project, session_id, uri)


def _model_input(project: Path) -> dict[str, Any]:
    """The normalised splits the pipeline trained and tested on, rebuilt from its saved files."""
    from mlsp_pipelines.datasets import CSVDataset, JSONDataset, NpzDataset
    from mlsp_pipelines.modular.audio.nodes import make_model_input

    feats = NpzDataset(filepath=str(project / "data/04_feature/asc/logmel.npz")).load()
    splits = CSVDataset(filepath=str(project / "data/04_feature/asc/splits.csv")).load()
    norm = JSONDataset(filepath=str(project / "data/04_feature/asc/norm_stats.json")).load()
    return make_model_input(feats, splits, norm)


# -- experiments, names, tags ----------------------------------------------------------------------
def test_experiment_per_pipeline_and_environment_and_readable_names(tracked: Tracked) -> None:
    client = tracked.client()
    assert client.get_experiment_by_name("asc") is None, "--env=test runs must not land in the real experiment"
    parent = tracked.parent()
    assert parent.info.status == "FINISHED"
    name = parent.info.run_name
    assert name.startswith("asc test ") and time.strptime(name[len("asc test "):], "%Y-%m-%d %H:%M:%S")
    children = tracked.children()
    assert set(children) == set(ARCHS)
    for arch, run in children.items():
        assert run.info.run_name == f"{arch} {name[len('asc test '):]}"


def test_standard_tags_and_system_metrics(tracked: Tracked) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tracked.project, capture_output=True, text=True,
                          check=True).stdout.strip()
    for run in [tracked.parent(), *tracked.children().values()]:
        tags = run.data.tags
        assert tags["mlflow.source.git.commit"] == head
        assert tags["mlflow.user"] and tags["mlflow.source.name"] and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlsp.pid"] == str(os.getpid()) and tags["mlsp.host"]
        # sampled every second while the run was open (the runs here last seconds)
        assert "system/cpu_utilization_percentage" in run.data.metrics, run.info.run_name
    assert "Compare" in tracked.parent().data.tags["mlflow.note.content"]


# -- parameters --------------------------------------------------------------------------------------
def test_parameters_line_up_across_architectures(tracked: Tracked) -> None:
    children = tracked.children()
    keys = {arch: set(run.data.params) for arch, run in children.items()}
    common = set.intersection(*keys.values())
    assert {"model.name", "model.arch", "model.kwargs.dropout", "train.lr", "train.epochs", "train.batch_size",
            "report.n_examples"} <= common
    for arch, run in children.items():
        assert not any(k.startswith(f"{arch}.") for k in run.data.params), "no architecture-named keys"
        # the run logs the epochs it trained: conf/test's 2, scaled by attn_lstm's epochs_scale 1.34
        assert run.data.params["model.arch"] == arch
        assert run.data.params["train.epochs"] == ("3" if arch == "attn_lstm" else "2"), arch
        assert not any(k.startswith(("features.", "synth.")) for k in run.data.params)  # run-level: parent only
    # the registry's defaults are filled in, so a key means the same in every run
    assert children["cnn"].data.params["model.kwargs.channels"] == "[4, 8]"
    parent = tracked.parent().data.params
    assert parent["features.n_mels"] == "16" and parent["synth.sr"] == str(SYNTH_SR)
    assert not any(k.startswith("model.") for k in parent)
    # only what the run used: the model entries it trained, no search space of a disabled sweep
    assert {k.split(".")[1] for k in parent if k.startswith("models.")} == set(ARCHS)
    assert parent["sweep.enabled"] == "False" and not any(k.startswith("sweep.space") for k in parent)
    # the feature sizes the data resolved are parameters too; metrics are measurements
    assert parent["resolved.features.sr"] == "8000"
    metrics = tracked.parent().data.metrics
    assert not any(k.startswith("features.") for k in metrics) and "n_clips" in metrics
    assert tracked.parent().data.tags["mlsp.kind"] == "run"
    assert "log-mel" in tracked.experiment().tags["mlflow.note.content"]  # the experiment says what it holds


def test_long_values_and_odd_names_are_never_lost(tmp_path: Path) -> None:
    """Values over MLflow's limits go to artefacts (the parameter or tag says where); metric keys
    MLflow would reject (class labels with any character) are renamed, not dropped."""
    from mlsp_pipelines.tracking import PARAM_VALUE_MAX, RunTracker

    tracker = RunTracker(sqlite_uri(tmp_path / "m.db"), "x", (tmp_path / "art").as_uri(), system_metrics_interval=None)
    command = "kedro run --params " + "x" * 9000  # over the 8000-character tag limit
    tracker.start("r", {"command": command})
    value = list(range(3000))  # ~15k characters as JSON
    tracker.log_params(tracker.parent, {"long.list": value, "short": 1})
    tracker.log_metrics(tracker.parent, {"per_class_f1.dog (bark)": 0.5, "per_class_f1.a+b": 0.25})
    tracker.end("FINISHED")
    run = tracker.client.get_run(tracker.parent_id)
    assert run.data.params["short"] == "1"
    assert "params/long.list.txt" in run.data.params["long.list"] and len(run.data.params["long.list"]) < PARAM_VALUE_MAX
    full = Path(tracker.client.download_artifacts(tracker.parent_id, "params/long.list.txt", str(tmp_path)))
    assert json.loads(full.read_text()) == value  # nothing truncated
    assert "tags/command.txt" in run.data.tags["command"]
    assert Path(tracker.client.download_artifacts(tracker.parent_id, "tags/command.txt", str(tmp_path))).read_text() == command
    assert run.data.metrics == {"per_class_f1.dog _bark_": 0.5, "per_class_f1.a_b": 0.25}


def test_a_run_shorter_than_the_sampling_interval_still_has_system_metrics(tmp_path: Path) -> None:
    """MLflow's monitor publishes only after a full interval; ours publishes what it has when the run
    ends, so whether a short run has ``system/*`` metrics does not depend on timing."""
    from mlsp_pipelines.tracking import RunTracker

    tracker = RunTracker(sqlite_uri(tmp_path / "m.db"), "x", (tmp_path / "art").as_uri(), system_metrics_interval=60.0)
    tracker.start("short", {})
    tracker.open("m", "model", {})
    tracker.close("m")
    tracker.end("FINISHED")
    runs = tracker.client.search_runs([tracker.experiment_id])
    assert len(runs) == 2
    for run in runs:
        assert "system/cpu_utilization_percentage" in run.data.metrics, run.info.run_name


# -- model runs: lifetime, live epochs, headline metrics -------------------------------------------------
def test_model_runs_last_as_long_as_their_own_work(tracked: Tracked) -> None:
    children = sorted(tracked.children().values(), key=lambda r: r.info.start_time)
    parent = tracked.parent()
    for run in children:
        assert run.info.status == "FINISHED"
        duration = (run.info.end_time - run.info.start_time) / 1000
        train = run.data.metrics["train_seconds"]
        # training, evaluation, plots and logging the model: seconds beyond the training itself
        assert train <= duration <= train + 20, (run.info.run_name, duration, train)
        assert parent.info.start_time <= run.info.start_time and run.info.end_time <= parent.info.end_time
    # one model at a time: a run closes before the next model's training starts
    for a, b in zip(children, children[1:]):
        assert a.info.end_time <= b.info.start_time, (a.info.run_name, b.info.run_name)


def test_epoch_metrics_are_live_and_headline_metrics_are_the_kept_weights(tracked: Tracked) -> None:
    client = tracked.client()
    for arch, run in tracked.children().items():
        history = pd.read_csv(tracked.project / "data/07_model_output/asc" / arch / "history.csv")
        points = sorted(client.get_metric_history(run.info.run_id, "epoch/val_loss"), key=lambda m: m.step)
        assert [m.step for m in points] == history["epoch"].tolist()
        assert [m.value for m in points] == pytest.approx(history["val_loss"].tolist(), rel=1e-9)
        # logged as each epoch ended (one batch at the end would share one timestamp)
        assert points[0].timestamp < points[-1].timestamp
        assert points[-1].timestamp <= run.info.end_time
        best = int(history["val_loss"].idxmin()) + 1
        assert run.data.metrics["best_epoch"] == best
        for key in ("val_loss", "val_acc", "train_loss"):
            assert run.data.metrics[key] == pytest.approx(float(history[key].iloc[best - 1])), key


# -- the model ---------------------------------------------------------------------------------------
SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np, pandas as pd, soundfile as sf, soxr, mlflow, mlflow.pytorch, torch
    uri, model_uri, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(model_uri)
    clips = [sf.read(p, dtype="float32") for p in paths]
    frame = pd.DataFrame({"audio": [c[0] for c in clips], "sample_rate": [c[1] for c in clips]})
    probs = model.predict(frame)
    y, sr = clips[0]
    extra = model.predict(pd.DataFrame({"audio": [y.astype("float64"), soxr.resample(y, sr, 44100)],
                                        "sample_rate": [sr, 44100]}))
    net = mlflow.pytorch.load_model(model_uri)
    print(json.dumps({
        "columns": list(probs.columns), "probs": probs.to_numpy().tolist(), "extra": extra.to_numpy().tolist(),
        "module": type(net).__module__ + "." + type(net).__name__, "is_module": isinstance(net, torch.nn.Module),
        "inputs": [c.name for c in model.metadata.get_input_schema().inputs],
        "pipeline_imported": any(m.startswith("mlsp_pipelines.pipelines") for m in sys.modules),
    }))
""")


@pytest.mark.slow
def test_served_model_in_a_fresh_process_equals_the_pipeline(tracked: Tracked, tmp_path: Path) -> None:
    import torch

    from mlsp_pipelines.datasets import TorchDataset
    from mlsp_pipelines.models import rebuild_model
    from mlsp_pipelines.training.loop import predict

    run = tracked.children()["cnn"]
    (output,) = run.outputs.model_outputs
    model_uri = f"models:/{output.model_id}"
    data = _model_input(tracked.project)
    ids = [str(i) for i in data["ids_test"][:3]]
    index = pd.read_csv(tracked.project / "data/02_intermediate/asc/index.csv").set_index("filename")
    raw = tracked.project / "data/01_raw/asc"  # index paths are relative to the dataset root
    paths = [str(raw / str(index.loc[i, "path"])) for i in ids]
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    proc = subprocess.run([sys.executable, str(script), tracked.uri, model_uri, *paths], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["inputs"] == ["audio", "sample_rate"] and out["is_module"] and out["module"] == "mlsp_pipelines.models.cnn.CNN"
    assert not out["pipeline_imported"], "the served model needs no pipeline code"
    served = np.asarray(out["probs"])

    # the pipeline's own numbers: its saved model on its normalised test features
    bundle = TorchDataset(filepath=str(tracked.project / "data/06_models/asc/cnn.pt")).load()
    assert out["columns"] == list(bundle["classes"])
    X = torch.from_numpy(np.ascontiguousarray(data["X_test"][:3]))
    ours = torch.softmax(predict(rebuild_model(bundle), (X,)), dim=-1).numpy()
    np.testing.assert_allclose(served, ours, atol=1e-5)
    pred = pd.read_csv(tracked.project / "data/08_reporting/asc/models/cnn/predictions.csv").set_index("filename")
    for i, row in zip(ids, served):
        assert out["columns"][int(row.argmax())] == pred.loc[i, "predicted"]
        assert row.max() == pytest.approx(pred.loc[i, "confidence"], abs=6e-5)
    # JSON-like float64 input gives the same answer; another sample rate is resampled
    np.testing.assert_allclose(out["extra"][0], served[0], atol=1e-7)
    assert np.asarray(out["extra"][1]).sum() == pytest.approx(1.0)


def test_register_makes_a_model_version(tracked: Tracked) -> None:
    client = tracked.client()
    for arch, run in tracked.children().items():
        versions = client.search_model_versions(f"name = 'asc-test.{arch}'")
        assert [v.run_id for v in versions] == [run.info.run_id]
        assert run.data.tags["registered_model"] == f"asc-test.{arch}/1"


# -- datasets and lineage ----------------------------------------------------------------------------
def test_dataset_inputs_carry_digests_of_the_data_used(tracked: Tracked) -> None:
    from mlsp_pipelines.lineage import data_digest

    data = _model_input(tracked.project)
    expected = {s: data_digest(data[f"X_{s}"], data[f"y_{s}"]) for s in ("train", "val", "test")}
    for arch, run in tracked.children().items():
        inputs = {d.dataset.name: (d.dataset.digest, {t.key: t.value for t in d.tags}["mlflow.data.context"])
                  for d in run.inputs.dataset_inputs}
        assert inputs == {f"asc.{s}": (expected[s], s) for s in expected}, arch
    # the logged model's test metrics are linked to the test set they were measured on
    run = tracked.children()["cnn"]
    model = tracked.client().get_logged_model(run.outputs.model_outputs[0].model_id)
    (acc,) = [m for m in model.metrics if m.key == "accuracy"]
    assert (acc.dataset_name, acc.dataset_digest) == ("asc.test", expected["test"])
    assert acc.value == run.data.metrics["accuracy"]
    # it carries the task's metrics, not the machine's load (the run keeps those)
    assert not [m.key for m in model.metrics if m.key.startswith("system/")]
    assert {"val_loss", "best_epoch", "macro_f1"} <= {m.key for m in model.metrics}
    lineage = json.loads(Path(tracked.client().download_artifacts(tracked.parent().info.run_id, "lineage.json",
                                                                   str(tracked.project))).read_text())
    assert lineage["datasets"] == {f"asc.{s}": d for s, d in expected.items()}


def test_lineage_hashes_the_data_used_and_reports_dvc_lock_mismatch(tmp_path: Path) -> None:
    from mlsp_pipelines import lineage

    root = tmp_path / "p"
    (root / "data" / "feat").mkdir(parents=True)
    (root / "data" / "feat" / "a.npz").write_bytes(b"abc")
    (root / "data" / "feat" / "sub").mkdir()
    (root / "data" / "feat" / "sub" / "b.csv").write_text("x\n1\n")
    proc = subprocess.run(f"{BIN / 'dvc'} init -q --no-scm && {BIN / 'dvc'} add -q data/feat", shell=True, cwd=root,
                          capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stderr
    dvc_md5 = yaml.safe_load((root / "data" / "feat.dvc").read_text())["outs"][0]["md5"]
    assert lineage.dvc_md5(root / "data" / "feat") == dvc_md5  # DVC's own folder hash

    locked = {"data/feat": dvc_md5, "data/other.csv": "0" * 32}
    assert lineage.tracked_path_of(root, "data/feat/sub/b.csv", locked) == "data/feat"
    assert lineage.tracked_path_of(root, "elsewhere/x", locked) is None
    assert lineage.data_versions(root, {"data/feat"}, locked)["data/feat"]["matches_dvc_lock"] is True
    (root / "data" / "feat" / "a.npz").write_bytes(b"changed")
    changed = lineage.data_versions(root, {"data/feat"}, locked)["data/feat"]
    assert changed["matches_dvc_lock"] is False and changed["dvc_lock"] == dvc_md5 and changed["md5"] != dvc_md5


def test_saved_models_hash_the_same_when_equal(tmp_path: Path) -> None:
    """Equal model bundles give equal files (and DVC hashes), whatever the temporary file was called."""
    import torch

    from mlsp_pipelines import lineage
    from mlsp_pipelines.datasets import TorchDataset

    bundle = {"arch": "cnn", "state_dict": {"w": torch.arange(6.0).reshape(2, 3)}}
    for name in ("a", "b"):
        TorchDataset(filepath=str(tmp_path / name / "cnn.pt")).save(bundle)
    assert lineage.dvc_md5(tmp_path / "a") == lineage.dvc_md5(tmp_path / "b")


# -- artefacts ---------------------------------------------------------------------------------------
def test_compare_page_plots_at_the_root_and_misclassified_clips_as_wav(tracked: Tracked, tmp_path: Path) -> None:
    import soundfile as sf

    client = tracked.client()
    for arch, run in tracked.children().items():
        root = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix.png", "learning_curves.png"} <= root, arch
        wavs = [a.path for a in client.list_artifacts(run.info.run_id, "misclassified")]
        pred = pd.read_csv(tracked.project / "data/08_reporting/asc/models" / arch / "predictions.csv")
        wrong = pred[pred["actual"] != pred["predicted"]]
        assert len(wavs) == min(3, len(wrong)) and all(w.endswith(".wav") for w in wavs)
        for w in wavs:
            assert any(f"_{r.actual}_as_{r.predicted}_" in w for r in wrong.itertuples()), w
        audio, sr = sf.read(client.download_artifacts(run.info.run_id, wavs[0], str(tmp_path)))
        assert sr == SYNTH_SR and len(audio) > 0  # the clip as recorded, playable in the artefact viewer
        # the same clips are an output of the model's evaluation (a DVC output beside its predictions)
        kept = sorted(p.name for p in (tracked.project / "data/08_reporting/asc/models" / arch / "misclassified").iterdir())
        assert kept == sorted(Path(w).name for w in wavs), arch


def test_only_declared_datasets_reach_mlflow(tracked: Tracked) -> None:
    from kedro.config import OmegaConfigLoader

    from mlsp_pipelines.tracking import KINDS

    catalog = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="test")["catalog"]
    declared = {name: cfg["metadata"]["mlflow"] for name, cfg in catalog.items()
                if isinstance(cfg, dict) and "mlflow" in (cfg.get("metadata") or {})}
    assert all(spec["kind"] in KINDS for spec in declared.values())
    # declared outputs that names alone never sent to MLflow before
    assert {"viscoelastic.{model}.trajectory_errors", "word2vec.{model}.neighbours"} <= set(declared)
    assert "{task}.splits" not in declared and "{task}.features" not in declared
    client = tracked.client()
    logged = {a.path for run in [tracked.parent(), *tracked.children().values()]
              for d in (None, "tables", "reports", "plots") for a in client.list_artifacts(run.info.run_id, d)}
    assert not any("split" in p or "norm_stats" in p or p.endswith(".npz") for p in logged), logged


# -- the runner ------------------------------------------------------------------------------------
def test_runner_trains_and_evaluates_one_model_at_a_time() -> None:
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from mlsp_pipelines.runner import NamespaceSequentialRunner, namespace_order

    order: list[str] = []

    def step(x: int, tag: str) -> int:
        order.append(tag)
        return x

    def model(ns: str) -> Pipeline:
        return Pipeline([node(lambda x, t=f"{ns}.train": step(x, t), "inp", "model", name="train"),
                         node(lambda m, t=f"{ns}.evaluate": step(m, t), "model", "metrics", name="evaluate")],
                        namespace=ns, inputs={"inp"})

    pipe = model("m1") + model("m2") + Pipeline([node(lambda a, b: step(a, "report"), ["m1.metrics", "m2.metrics"],
                                                      "report", name="report")])
    assert [n.name for n in pipe.nodes][:2] == ["m1.train", "m2.train"]  # Kedro's order: all trainings first
    NamespaceSequentialRunner().run(pipe, DataCatalog({"inp": MemoryDataset(1)}))
    assert order == ["m1.train", "m1.evaluate", "m2.train", "m2.evaluate", "report"]
    assert [n.name for n in namespace_order(pipe)] == ["m1.train", "m1.evaluate", "m2.train", "m2.evaluate", "report"]


def test_make_mlflow_ui_prints_the_runs_view(tracked: Tracked) -> None:
    env = {**os.environ, **CLI_ENV, "MLFLOW_TRACKING_URI": tracked.uri}
    proc = subprocess.run([sys.executable, "-m", "mlsp_pipelines.tracking", "urls", "--port", "5123"],
                          cwd=tracked.project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    exp = tracked.experiment().experiment_id
    assert f"http://127.0.0.1:5123/#/experiments/{exp}/runs?workflowType=machine_learning" in proc.stdout
    assert "mlsp_pipelines.tracking urls" in (PROJECT_ROOT / "Makefile").read_text()


# -- a robust store ----------------------------------------------------------------------------------
def _kedro(project: Path, uri: str, *args: str, log: Path | None = None, **kw: Any) -> subprocess.Popen:
    """``kedro run --env=test ARGS`` in ``project`` (output to ``log``, else to a pipe)."""
    env = {**os.environ, **CLI_ENV, "MLFLOW_TRACKING_URI": uri}
    env.pop("KEDRO_ENV", None)
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed with the process
    return subprocess.Popen([str(BIN / "kedro"), "run", "--env=test", *args], cwd=project, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True, **kw)


def test_dead_runs_are_closed_by_process_liveness_not_age(tmp_path: Path) -> None:
    from mlsp_pipelines.tracking import RunTracker, close_dead_runs, process_tags

    tracker = RunTracker(sqlite_uri(tmp_path / "m.db"), "x", (tmp_path / "a").as_uri(), system_metrics_interval=None)
    alive = tracker.client.create_run(tracker.experiment_id, tags=process_tags()).info.run_id
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait()  # a process of this host that has exited
    dead = tracker.client.create_run(tracker.experiment_id, tags={
        **process_tags(), "mlsp.pid": str(gone.pid), "mlsp.pid_start": "1.0"}).info.run_id
    # another host's process cannot be checked from here: left alone, however old
    foreign = tracker.client.create_run(tracker.experiment_id, start_time=0, tags={
        **process_tags(), "mlsp.host": "elsewhere", "mlsp.pid": "1"}).info.run_id
    assert close_dead_runs(tracker.client) == [dead]
    status = {r: tracker.client.get_run(r).info.status for r in (alive, dead, foreign)}
    assert status == {alive: "RUNNING", dead: "KILLED", foreign: "RUNNING"}


@pytest.mark.slow
def test_concurrent_first_runs_kill_9_rerun_and_a_refused_second_run(tmp_path: Path, kedro_run,  # type: ignore[no-untyped-def]
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ``kedro run``s start at once on a fresh sqlite store (both must succeed); the long one
    is then met by a second run in its folder (refused, naming it), killed with SIGKILL, and the
    next run in that folder closes its runs as KILLED."""
    from mlflow.tracking import MlflowClient

    from mlsp_pipelines.runlock import PipelineBusyError

    uri = sqlite_uri(tmp_path / "store" / "mlflow.db")  # does not exist yet
    (tmp_path / "store").mkdir()
    client = MlflowClient(uri)
    project = make_project_copy(tmp_path / "project", git=True)
    log = tmp_path / "first.log"
    first = _kedro(project, uri, "--pipeline=asc", "--params=asc.train.epochs=100000,asc.train.patience=100000",
                   log=log, start_new_session=True)
    other = _kedro(make_project_copy(tmp_path / "other"), uri, "--pipeline=asc_data")
    try:
        out, _ = other.communicate(timeout=240)
        assert other.returncode == 0, out[-3000:]  # a first run beside another first run
        deadline, live = time.monotonic() + 240, None
        while time.monotonic() < deadline and live is None:
            time.sleep(1)
            assert first.poll() is None, log.read_text()[-3000:]
            exp = client.get_experiment_by_name("asc-test")
            runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
            live = next((r for r in runs if "epoch/train_loss" in r.data.metrics), None)
        assert live is not None, "the first run never started training"
        parent_name = client.get_run(live.data.tags["mlflow.parentRunId"]).info.run_name

        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(PipelineBusyError, match="already running") as refused:
            kedro_run(project, ["asc_data"])
        assert f"pid {first.pid}" in str(refused.value) and parent_name in str(refused.value)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)

    kedro_run(project, ["asc_data"])  # the folder is free again; the dead run is closed
    runs = client.search_runs([client.get_experiment_by_name("asc-test").experiment_id])
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert sum(r.info.status == "FINISHED" for r in runs) == 2  # the concurrent first run and the last one
    killed = {r.info.run_id: r for r in runs if r.info.status == "KILLED"}
    assert live.info.run_id in killed and live.data.tags["mlflow.parentRunId"] in killed
    assert killed[live.info.run_id].info.end_time >= live.info.start_time


def test_git_dirty_ignores_dvc_lock_which_dvc_repro_rewrites(tmp_path: Path) -> None:
    import subprocess

    from mlsp_pipelines.tracking import git_state

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_state(tmp_path)["git_dirty"] == "false"
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # what every dvc repro stage does
    assert git_state(tmp_path)["git_dirty"] == "false"
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)["git_dirty"] == "true"


# -- the run's set-up is off the critical path ------------------------------------------------------------
def _bare_hook(tmp_path: Path) -> Any:
    from mlsp_pipelines.hooks import MlflowHook

    hook = MlflowHook()
    hook.root, hook.params = tmp_path, {}
    hook.mlflow_conf = {"tracking_uri": sqlite_uri(tmp_path / "m.db"), "system_metrics_interval_s": 0}
    return hook


def _begin(hook: Any) -> None:
    from kedro.pipeline import Pipeline

    hook.before_pipeline_run({"pipeline_names": ["asc"], "run_id": "s1"}, Pipeline([]), None)


def test_the_mlflow_run_is_set_up_while_the_first_nodes_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``before_pipeline_run`` returns before the MLflow run exists (importing MLflow and opening its
    store take over a second); the first use of the tracker waits for it."""
    import threading

    from mlsp_pipelines.tracking import store

    gate = threading.Event()
    real = store.RunTracker.__init__

    def slow_init(self: Any, *args: Any, **kwargs: Any) -> None:
        assert gate.wait(30)
        real(self, *args, **kwargs)

    monkeypatch.setattr(store.RunTracker, "__init__", slow_init)
    hook = _bare_hook(tmp_path)
    _begin(hook)  # returns although the tracker cannot be built yet
    assert hook._tracking() and hook._session is None
    gate.set()
    tracker = hook.tracker
    assert tracker is not None and tracker.client.get_run(tracker.parent_id).info.status == "RUNNING"
    hook.after_pipeline_run()
    assert tracker.client.get_run(tracker.parent_id).info.status == "FINISHED"
    assert hook.lock is None  # the pipeline's lock was released


def test_a_failed_set_up_surfaces_at_first_use_and_frees_the_pipeline(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsp_pipelines.tracking import store

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("MLflow store at sqlite:///x is corrupt")

    monkeypatch.setattr(store, "close_dead_runs", broken)
    hook = _bare_hook(tmp_path)
    _begin(hook)
    with pytest.raises(RuntimeError, match="is corrupt"):
        hook.tracker  # noqa: B018 - the first use raises the set-up's error
    hook.on_pipeline_error(RuntimeError("boom"))  # what Kedro calls next: ends cleanly
    assert hook.lock is None
    # nothing was left RUNNING: the half-made run was closed FAILED
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(sqlite_uri(tmp_path / "m.db")).search_runs(
        [e.experiment_id for e in MlflowClient(sqlite_uri(tmp_path / "m.db")).search_experiments()])
    assert all(r.info.status != "RUNNING" for r in runs)
    # a second run of the same pipeline is not refused by a stale lock
    monkeypatch.undo()
    hook2 = _bare_hook(tmp_path)
    _begin(hook2)
    assert hook2.tracker is not None
    hook2.after_pipeline_run()


def test_a_dvc_stage_run_is_named_and_tagged_as_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kedro.pipeline import Pipeline

    monkeypatch.setenv("DVC_STAGE", "asc_features")
    hook = _bare_hook(tmp_path)
    hook.before_pipeline_run({"pipeline_names": ["asc_features"], "run_id": "s2"}, Pipeline([]), None)
    tracker = hook.tracker
    run = tracker.client.get_run(tracker.parent_id)
    assert run.info.run_name.startswith("asc_features (dvc) ")
    assert run.data.tags["dvc_stage"] == "asc_features" and run.data.tags["mlsp.kind"] == "dvc_stage"
    assert "no models" in run.data.tags["mlflow.note.content"]
    hook.after_pipeline_run()


def test_run_config_keeps_what_the_run_used() -> None:
    from mlsp_pipelines.hooks import run_config

    section = {"architectures": ["cnn"], "models": {"cnn": {"arch": "cnn"}, "gru": {"arch": "gru"}},
               "sweep": {"enabled": False, "space": {"lr": {}}}, "train": {"epochs": 3}}
    assert run_config(section) == {"architectures": ["cnn"], "models": {"cnn": {"arch": "cnn"}},
                                   "sweep": {"enabled": False}, "train": {"epochs": 3}}
    on = {**section, "sweep": {"enabled": True, "space": {"lr": {}}}}
    assert run_config(on)["sweep"] == on["sweep"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_logged_model_serves_the_documented_http_formats(tracked: Tracked) -> None:
    """``make serve``'s command (the environment's bin/ first on PATH, nothing activated) serves a
    model run's logged model; ``dataframe_split`` and ``dataframe_records`` give one probability per
    class, the same as the model loaded in Python."""
    import urllib.request

    import mlflow.pyfunc

    run = tracked.children()["cnn"]
    uri = run.data.tags["model_uri"]
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracked.uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tracked.project,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        audio = (0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).tolist()

        def post(payload: dict) -> dict:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())

        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-3000:] if server.stdout else ""
                assert time.time() < deadline, "the model server did not come up in 120 s"
                time.sleep(1)
        split = post({"dataframe_split": {"columns": ["audio", "sample_rate"], "data": [[audio, 8000]]}})
        records = post({"dataframe_records": [{"audio": audio, "sample_rate": 8000}]})
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(tracked.uri)  # models:/ resolves through the global store
        try:
            model = mlflow.pyfunc.load_model(uri)
        finally:
            mlflow.set_tracking_uri(previous)
        local = model.predict(pd.DataFrame({"audio": [np.asarray(audio)], "sample_rate": [8000]}))
        for out in (split, records):
            (probs,) = out["predictions"]
            assert set(probs) == set(local.columns)
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert probs == pytest.approx(local.iloc[0].to_dict(), abs=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)
