"""End to end: ``asc`` on conf/test through a real KedroSession and the ``kedro`` CLI, tracked in MLflow.

Each run happens in a throw-away copy of the project (``conf/`` + ``pyproject.toml``) so its
``data/`` and MLflow store never touch the working tree. The runs are module-scoped and shared
by the assertions below; the whole file costs two pipeline runs, one CLI start and one short
failing run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch


pytestmark = pytest.mark.slow

ARCHS = ("cnn", "attn_lstm")  # conf/test/parameters_asc.yml
EPOCHS = 2  # the task's train.epochs in conf/test
MODEL_EPOCHS = {"cnn": 2, "attn_lstm": 3}  # attn_lstm's epochs_scale 1.34 of the task's 2
N_CLIPS, N_CLASSES = 40, 8  # 8 synthetic scene classes × 5 clips, 5 folds
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


@dataclass
class Run:
    project: Path
    session_id: str
    uri: str

    @property
    def reports(self) -> Path:
        return self.project / "data" / "08_reporting" / "asc"

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def runs(self) -> list[Any]:
        client = self.client()
        exp = client.get_experiment_by_name("asc-test")  # one experiment per pipeline and environment
        assert exp is not None, "no MLflow experiment 'asc-test'"
        return client.search_runs([exp.experiment_id], f"tags.kedro_session_id = '{self.session_id}'")

    def parent(self) -> Any:
        parents = [r for r in self.runs() if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1, parents
        return parents[0]

    def children(self) -> dict[str, Any]:
        pid = self.parent().info.run_id
        kids = [r for r in self.runs() if r.data.tags.get("mlflow.parentRunId") == pid]
        return {r.data.tags["architecture"]: r for r in kids}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the module's runs (each run is found by its session id)."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture(scope="module")
def session_run(tmp_path_factory: pytest.TempPathFactory, store: Path, new_project_copy, kedro_run) -> Run:  # type: ignore[no-untyped-def]
    project = new_project_copy(tmp_path_factory.mktemp("session") / "project", git=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_uri(store))
        mp.delenv("KEDRO_ENV", raising=False)
        try:
            _, session_id = kedro_run(project, ["asc"], env="test")
        finally:
            from mlsp_pipelines import config

            config.set_active_params(None)
    return Run(project, session_id, sqlite_uri(store))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, store: Path,
            new_project_copy) -> tuple[Run, subprocess.CompletedProcess]:  # type: ignore[no-untyped-def]
    """``kedro run --pipeline=asc --env=test`` in another copy, as a user types it (one CLI start)."""
    project = new_project_copy(tmp_path_factory.mktemp("cli") / "project", git=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": sqlite_uri(store), "KEDRO_DISABLE_TELEMETRY": "1",
           "MLSP_PROGRESS": "0", "COLUMNS": "200"}
    env.pop("KEDRO_ENV", None)
    kedro = Path(sys.executable).with_name("kedro")
    proc = subprocess.run([str(kedro), "run", "--pipeline=asc", "--env=test"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sqlite_uri(store))
    exp = client.get_experiment_by_name("asc-test")
    runs = [r for r in client.search_runs([exp.experiment_id], "tags.command LIKE '%--pipeline=asc%'")
            if "mlflow.parentRunId" not in r.data.tags]
    assert len(runs) == 1
    return Run(project, runs[0].data.tags["kedro_session_id"], sqlite_uri(store)), proc


# -- the project copy -----------------------------------------------------------------------------
def test_project_copy_runs_the_working_tree_code(tmp_path: Path, new_project_copy) -> None:  # type: ignore[no-untyped-def]
    from kedro.framework.startup import bootstrap_project

    import mlsp_pipelines

    copy = new_project_copy(tmp_path / "p")
    meta = bootstrap_project(copy)
    assert meta.package_name == "mlsp_pipelines" and meta.project_path == copy.resolve()
    assert meta.source_dir == copy.resolve() / "src"
    # the package under test is the editable install of this checkout, not anything in the copy
    assert Path(mlsp_pipelines.__file__).resolve().is_relative_to(PROJECT_ROOT / "src")
    assert not any((copy / "src").iterdir())


# -- files written by the session run ----------------------------------------------------------------
def test_metrics_and_leaderboard(session_run: Run) -> None:
    metrics = json.loads((session_run.reports / "metrics.json").read_text())
    assert set(metrics["models"]) == set(ARCHS)
    for arch in ARCHS:
        m = metrics["models"][arch]
        assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
        assert "train_seconds" not in m  # timings stay out of the quality summary
    best = max(ARCHS, key=lambda a: metrics["models"][a]["accuracy"])
    assert metrics["models"][metrics["best_model"]]["accuracy"] == metrics["models"][best]["accuracy"]

    board = pd.read_csv(session_run.reports / "leaderboard.csv")
    assert sorted(board["model"]) == sorted(ARCHS)
    assert board["accuracy"].is_monotonic_decreasing
    assert {"accuracy", "macro_f1", "params", "param_bytes", "macs_per_s"} <= set(board.columns)
    assert not {"train_seconds", "latency_ms_per_clip"} & set(board.columns)  # timings never hash into reports
    timings = pd.read_csv(session_run.reports / "timings.csv")
    assert sorted(timings["model"]) == sorted(ARCHS) and (timings["train_seconds"] > 0).all()
    assert (timings["latency_ms_per_clip"] > 0).all()
    md = (session_run.reports / "leaderboard.md").read_text()
    assert md.startswith("| model |") and all(f"| {a} |" in md for a in ARCHS)
    assert (session_run.reports / "leaderboard.png").read_bytes().startswith(PNG_MAGIC)

    quality = json.loads((session_run.reports / "data_quality.json").read_text())
    assert quality["n_clips"] == N_CLIPS and quality["n_undecodable"] == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_per_model_reports_are_consistent(session_run: Run, arch: str) -> None:
    folder = session_run.reports / "models" / arch
    for png in ("confusion_matrix.png", "learning_curves.png", "insight.png"):
        assert (folder / png).read_bytes().startswith(PNG_MAGIC), png
    pred = pd.read_csv(folder / "predictions.csv")
    assert list(pred.columns) == ["filename", "actual", "predicted", "confidence"]
    assert len(pred) == N_CLIPS // 5  # test fold 1 of 5
    assert pred["confidence"].between(1 / N_CLASSES, 1).all()
    cm = pd.read_csv(folder / "confusion_matrix.csv", index_col=0)
    assert cm.shape == (N_CLASSES, N_CLASSES) and list(cm.index) == list(cm.columns)
    assert cm.to_numpy().sum() == len(pred)
    accuracy = json.loads((session_run.reports / "metrics.json").read_text())["models"][arch]["accuracy"]
    assert accuracy == pytest.approx((pred["actual"] == pred["predicted"]).mean())
    assert accuracy == pytest.approx(cm.to_numpy().trace() / len(pred))
    history = pd.read_csv(session_run.project / "data" / "07_model_output" / "asc" / arch / "history.csv")
    assert history["epoch"].tolist() == list(range(1, MODEL_EPOCHS[arch] + 1))


# -- MLflow -------------------------------------------------------------------------------------------
def test_mlflow_parent_run(session_run: Run) -> None:
    parent = session_run.parent()
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["pipeline"] == "asc" and tags["kedro_env"] == "test" and tags["kedro_pipelines"] == "asc"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=session_run.project, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert tags["git_commit"] == head and len(head) == 40
    assert tags["git_dirty"] == "false"  # generated data/ is not a change to the code
    assert parent.data.params["features.n_mels"] == "16" and parent.data.params["train.epochs"] == str(EPOCHS)
    assert parent.data.metrics["n_clips"] == N_CLIPS
    metrics = json.loads((session_run.reports / "metrics.json").read_text())
    for arch in ARCHS:
        assert parent.data.metrics[f"models.{arch}.accuracy"] == pytest.approx(metrics["models"][arch]["accuracy"])
    client = session_run.client()
    artefacts = {a.path for d in (None, "tables") for a in client.list_artifacts(parent.info.run_id, d)}
    assert {"leaderboard.png", "tables/leaderboard.csv", "lineage.json"} <= artefacts


@pytest.mark.parametrize("arch", ARCHS)
def test_mlflow_child_run_per_architecture(session_run: Run, arch: str) -> None:
    children = session_run.children()
    assert set(children) == set(ARCHS)
    run = children[arch]
    assert run.info.status == "FINISHED"
    assert run.data.tags["pipeline"] == "asc" and run.data.tags["architecture"] == arch
    assert run.data.params["model.name"] == arch and run.data.params["model.arch"] == arch
    assert run.data.params["train.epochs"] == str(MODEL_EPOCHS[arch])

    client = session_run.client()
    history = pd.read_csv(session_run.project / "data" / "07_model_output" / "asc" / arch / "history.csv")
    for key in ("train_loss", "val_loss"):
        points = sorted(client.get_metric_history(run.info.run_id, f"epoch/{key}"), key=lambda m: m.step)
        assert [m.step for m in points] == list(range(1, MODEL_EPOCHS[arch] + 1))
        assert [m.value for m in points] == pytest.approx(history[key].tolist(), rel=1e-9)
    metrics = json.loads((session_run.reports / "metrics.json").read_text())["models"][arch]
    assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["macro_f1"] == pytest.approx(metrics["macro_f1"])

    root = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "learning_curves.png"} <= root  # at the root: the compare page shows them
    assert "plots/insight_plot.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert len(run.outputs.model_outputs) == 1  # the trained model as an MLflow logged model


# -- CLI spelling and determinism -------------------------------------------------------------------
def test_kedro_cli_run_pipeline_option(cli_run: tuple[Run, subprocess.CompletedProcess]) -> None:
    run, proc = cli_run
    assert (run.reports / "metrics.json").is_file()
    parent = run.parent()
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pipeline"] == "asc" and parent.data.tags["kedro_env"] == "test"
    assert set(run.children()) == set(ARCHS)


def test_second_identical_run_gives_identical_results(session_run: Run, cli_run) -> None:  # type: ignore[no-untyped-def]
    other = cli_run[0]
    first = json.loads((session_run.reports / "metrics.json").read_text())
    second = json.loads((other.reports / "metrics.json").read_text())
    assert first == second  # quality numbers only (no timings in metrics.json)
    for arch in ARCHS:
        rel = Path("data/07_model_output/asc") / arch / "history.csv"
        pd.testing.assert_frame_equal(pd.read_csv(session_run.project / rel), pd.read_csv(other.project / rel))
        rel = Path("data/08_reporting/asc/models") / arch / "predictions.csv"
        pd.testing.assert_frame_equal(pd.read_csv(session_run.project / rel), pd.read_csv(other.project / rel))
        a = torch.load(session_run.project / "data/06_models/asc" / f"{arch}.pt", weights_only=True)
        b = torch.load(other.project / "data/06_models/asc" / f"{arch}.pt", weights_only=True)
        assert a["state_dict"].keys() == b["state_dict"].keys()
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


# -- failures -----------------------------------------------------------------------------------------
def test_failing_run_marks_mlflow_run_failed(project_copy: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A node error ends the parent run FAILED (never left RUNNING). Run from another working
    directory without MLFLOW_TRACKING_URI: the store and data/ go to the project, not to the cwd."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    session = KedroSession.create(project_path=project_copy, env="test",
                                  runtime_params={"asc": {"split": {"test_fold": 99}}})
    with pytest.raises(ValueError, match=r"split\.test_fold=99"):
        with session:
            session.run(pipeline_names=["asc"])

    assert (project_copy / "mlflow.db").is_file()  # conf/base/mlflow.yml, relative to the project
    assert (project_copy / "data" / "02_intermediate" / "asc" / "index.csv").is_file()
    assert list(elsewhere.iterdir()) == []
    failed = Run(project_copy, session.session_id, sqlite_uri(project_copy / "mlflow.db"))
    runs = failed.runs()
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].data.tags["pipeline"] == "asc"


# -- cross-validation through a session ------------------------------------------------------------
def test_cross_validation_runs_one_node_per_fold_and_no_fixed_split_model(
        project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    from mlsp_pipelines.pipeline_registry import register_pipelines

    runtime = {"asc": {"split": {"cv": True, "cv_folds": [1, 2, 3]}, "architectures": ["attn_lstm", "mlp"],
                       "train": {"epochs": 1}, "report": {"tta": 3}}}
    kedro_run(project_copy, ["asc"], runtime_params=runtime)
    pipe = register_pipelines()["asc"]
    fold_nodes = sorted(n.name for n in pipe.nodes if "cross_validate_fold" in n.name)
    assert fold_nodes == [f"asc.{m}.cross_validate_fold_{k}" for m in ("attn_lstm", "mlp") for k in (1, 2, 3)]
    assert not any(n.name.endswith("train_model") for n in pipe.nodes)  # cv replaces the fixed split
    reports = project_copy / "data" / "08_reporting" / "asc"
    board = pd.read_csv(reports / "leaderboard.csv")
    assert sorted(board["model"]) == ["attn_lstm", "mlp"]
    assert {"cv_accuracy_mean", "cv_accuracy_std", "cv_accuracy_ci95", "macs_per_s", "cv_accuracy_tta_mean"} <= set(board.columns)
    # each model against the best on the same folds
    assert board.loc[0, "vs_best_diff"] == 0.0 and board.loc[0, "vs_best_p"] == 1.0
    assert board.loc[1, "vs_best_diff"] <= 0 and 0 <= board.loc[1, "vs_best_p"] <= 1
    summary = json.loads((reports / "metrics.json").read_text())
    assert summary["paired_comparison"]["against"] == board.loc[0, "model"]
    folds = pd.read_csv(reports / "models" / "attn_lstm" / "cv_folds.csv")
    assert folds["accuracy_tta"].between(0, 1).all()
    assert folds["fold"].tolist() == [1, 2, 3]
    assert (folds["n_test"] == N_CLIPS // 5).all()  # each fold tests its own clips
    # all other folds train (less 10 % for validation): 4 of 5 folds of 40 clips
    assert (folds["n_train"] + folds["n_val"] == N_CLIPS - N_CLIPS // 5).all()
    assert not (project_copy / "data" / "06_models" / "asc" / "attn_lstm.pt").exists()
    assert sorted(p.name for p in (project_copy / "data" / "06_models" / "asc").glob("attn_lstm.fold_*.pt")) == [
        "attn_lstm.fold_1.pt", "attn_lstm.fold_2.pt", "attn_lstm.fold_3.pt"]
    # MLflow: one run per fold, nested under the model's run, with its epochs, data, metrics and model
    client = Run(project_copy, "", sqlite_uri(project_copy / "mlflow.db")).client()
    exp = client.get_experiment_by_name("asc-test")
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    worse = board.loc[1, "model"]
    assert parent.data.metrics[f"models.{worse}.vs_best_p"] == pytest.approx(board.loc[1, "vs_best_p"])
    (model_run,) = client.search_runs([exp.experiment_id], "tags.architecture = 'attn_lstm' and tags.`mlsp.kind` = 'model'")
    assert model_run.info.status == "FINISHED" and "cv_accuracy_mean" in model_run.data.metrics
    fold_runs = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{model_run.info.run_id}'")
    assert sorted(r.info.run_name for r in fold_runs) == [f"attn_lstm cross_validate_fold_{k}" for k in (1, 2, 3)]
    for r, row in zip(sorted(fold_runs, key=lambda r: r.info.run_name), folds.itertuples()):
        assert r.info.status == "FINISHED" and r.data.metrics["accuracy"] == pytest.approx(row.accuracy)
        assert len(client.get_metric_history(r.info.run_id, "epoch/train_loss")) == 1  # epochs: 1
        assert r.outputs.model_outputs and r.data.params["model.arch"] == "attn_lstm"
        assert {d.dataset.name for d in r.inputs.dataset_inputs} >= {f"asc.train (cross_validate_fold_{row.fold})"}
        assert model_run.info.start_time <= r.info.start_time and r.info.end_time <= model_run.info.end_time
