"""Beyond one machine: an MLflow tracking server, a DVC remote, and reproducing a run from its
lineage record. Each test builds its own throw-away project copy."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT, make_project_copy, run_session, sqlite_uri

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} did not become healthy in {timeout} s")


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real ``mlflow server`` on loopback (sqlite backend, artefacts served by the server)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", sqlite_uri(tmp_path / "server.db"),
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _wait_healthy(url, proc)
        yield url, tmp_path / "server-artifacts"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_pipeline_logs_to_a_tracking_server(tmp_path: Path, mlflow_server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, artifacts = mlflow_server
    project = make_project_copy(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    run_session(project, ["asc"], runtime_params={"asc": {"architectures": ["cnn"]}})

    exp = json.loads(urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=asc-test",
                                            timeout=30).read())["experiment"]
    runs = _post(url, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    child = next(r for r, t in zip(runs, tags) if t.get("architecture") == "cnn")
    assert {r["info"]["status"] for r in runs} == {"FINISHED"}
    assert any("accuracy" == m["key"] for m in child["data"]["metrics"])
    # artefacts went to the server's store, not to a local folder of the project
    assert any(p.name == "MLmodel" for p in artifacts.rglob("MLmodel"))  # the logged model
    assert not (project / "mlartifacts").exists() and not (project / "mlflow.db").exists()

    # through MlflowClient on the server: aligned keys, dataset inputs, root plots, a loadable model
    import mlflow
    import numpy as np
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    run = client.get_run(child["info"]["run_id"])
    assert run.data.params["model.arch"] == "cnn" and "train.lr" in run.data.params
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"asc.train", "asc.val", "asc.test"}
    assert {"confusion_matrix.png", "learning_curves.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    mlflow.set_tracking_uri(url)
    model = mlflow.pyfunc.load_model(f"models:/{run.outputs.model_outputs[0].model_id}")
    clip = 0.1 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    probs = model.predict(pd.DataFrame({"audio": [clip], "sample_rate": [22050]}))
    assert probs.shape == (1, 8) and probs.to_numpy().sum() == pytest.approx(1.0)


def test_unreachable_tracking_server_fails_fast_naming_the_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsp_pipelines.tracking import TrackingUnavailableError

    project = make_project_copy(tmp_path / "project")
    uri = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match=uri.replace(".", r"\.")):
        run_session(project, ["asc"])
    assert time.monotonic() - t0 < 60
    assert not (project / "data" / "01_raw" / "asc").exists(), "no work may start before tracking is checked"


def _dvc_project(dest: Path) -> Path:
    """A git + DVC project copy whose base parameters are the tiny test ones."""
    make_project_copy(dest)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "Makefile"):
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    shutil.copytree(PROJECT_ROOT / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copytree(PROJECT_ROOT / "scripts", dest / "scripts")  # the stages' kedro finder
    shutil.rmtree(dest / "src")
    shutil.copytree(PROJECT_ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    base = yaml.safe_load((dest / "conf" / "base" / "parameters_asc.yml").read_text())
    test = yaml.safe_load((dest / "conf" / "test" / "parameters_asc.yml").read_text())

    def merge(a: dict, b: dict) -> dict:
        return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in b.items()}}

    (dest / "conf" / "base" / "parameters_asc.yml").write_text(yaml.safe_dump(merge(base, test)))
    return dest


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x.invalid"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.slow
def test_dvc_push_clone_pull_is_up_to_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _dvc_project(tmp_path / "project")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": sqlite_uri(tmp_path / "mlflow.db"), "DVC_NO_ANALYTICS": "1"}
    dvc = [str(BIN / "dvc")]

    def run(cwd: Path, *args: str) -> str:
        res = subprocess.run([*dvc, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert res.returncode == 0, f"dvc {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
        return res.stdout

    _git(project, "init", "-q")
    run(project, "repro", "asc_data", "asc_features")
    run(project, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "pipeline with outputs")
    run(project, "push")
    assert any((tmp_path / "remote").rglob("*")), "push stored nothing in the remote"

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / "data" / "04_feature" / "asc" / "logmel.npz").exists()
    run(clone, "pull", "asc_data", "asc_features")
    assert (clone / "data" / "04_feature" / "asc" / "logmel.npz").is_file()
    status = run(clone, "status", "asc_data", "asc_features")
    assert "up to date" in status.lower(), status


@pytest.mark.slow
def test_reproduce_rebuilds_a_run_and_metrics_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from mlsp_pipelines.reproduce import reproduce

    project = make_project_copy(tmp_path / "project", git=True)
    uri = sqlite_uri(project / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _, session_id = run_session(project, ["asc"], runtime_params={"asc": {"architectures": ["cnn"]}})
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("asc-test")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.kedro_session_id = '{session_id}'")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    record = json.loads(Path(client.download_artifacts(parent.info.run_id, "lineage.json", str(tmp_path))).read_text())
    assert record["git"]["git_commit"] not in ("", "unknown")
    assert record["params"]["architectures"] == ["cnn"] and record["runtime_params"]
    assert record["packages"]["torch"].startswith("2.13")

    assert reproduce(parent.info.run_id, root=project) is True
    again = client.search_runs([exp.experiment_id], filter_string=f"tags.reproduces = '{parent.info.run_id}'")
    again = [r for r in again if "mlflow.parentRunId" not in r.data.tags]
    assert len(again) == 1 and again[0].data.tags["git_commit"] == record["git"]["git_commit"]
