"""Faults: an interrupted run resumes to the same bytes, leaves no temporaries and no processes,
and a failure's last line names the culprit and the way out (disk full, corrupt MLflow store,
configuration DVC cannot see)."""

from __future__ import annotations

import contextvars
import errno
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The `asc` DVC stage's outputs (dvc.yaml) minus metrics/plots that embed nothing of the model.
ASC_TRAIN_OUTS = ("data/06_models/asc", "data/07_model_output/asc", "data/08_reporting/asc/models",
                  "data/08_reporting/asc/leaderboard.csv", "data/08_reporting/asc/leaderboard.md",
                  "data/08_reporting/asc/metrics.json", "data/08_reporting/asc/leaderboard.png")
ONE_MODEL = {"asc": {"architectures": ["attn_lstm"]}}  # the model of the user's report, alone: fast


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def digests(root: Path, outs: tuple[str, ...]) -> dict[str, str]:
    """Every file (hidden ones too) under the DVC outputs, by path: what DVC hashes."""
    found: dict[str, str] = {}
    for out in outs:
        base = root / out
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for f in files:
            found[str(f.relative_to(root))] = hashlib.md5(f.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def featured(tmp_path_factory: pytest.TempPathFactory, new_project_copy, kedro_run) -> Path:  # type: ignore[no-untyped-def]
    """A project copy whose asc data and features exist (the input of the `asc` DVC stage)."""
    project = new_project_copy(tmp_path_factory.mktemp("featured") / "project")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", sqlite_uri(project / "mlflow.db"))
        mp.delenv("KEDRO_ENV", raising=False)
        mp.delenv("DVC_STAGE", raising=False)
        kedro_run(project, ["asc_data", "asc_features"], env="test")
    return project


def _copy(src: Path, dest: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(dest / "mlflow.db"))
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    return dest


def test_resumed_run_writes_the_bytes_of_an_uninterrupted_one(
    featured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kedro_run  # type: ignore[no-untyped-def]
) -> None:
    """kill -9 after an epoch's checkpoint (and during the next save), then the same command: every
    DVC output of the stage has the bytes of an uninterrupted run, and no temporary file survives."""
    from mlsp_pipelines.datasets.checkpoint import CheckpointStore

    reference = _copy(featured, tmp_path / "reference", monkeypatch)
    kedro_run(reference, ["asc_train"], env="test", runtime_params=ONE_MODEL)
    expected = digests(reference, ASC_TRAIN_OUTS)
    assert any(k.endswith("attn_lstm.pt") for k in expected)

    project = _copy(featured, tmp_path / "resumed", monkeypatch)
    save = CheckpointStore.save

    def killed_after_first_epoch(self: CheckpointStore, state: dict) -> None:
        save(self, state)
        # what kill -9 in the middle of the next save leaves: a private, empty temporary beside it
        (self.path.parent / f".{self.path.name}.x1y2z3_4.tmp").touch(mode=0o600)
        raise KeyboardInterrupt("killed after epoch 1")

    with monkeypatch.context() as mp:
        mp.setattr(CheckpointStore, "save", killed_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):  # in a copied context: a killed run's training
            # observer stays installed (nothing uninstalls it) and must not reach later tests
            contextvars.copy_context().run(kedro_run, project, ["asc_train"], env="test",
                                           runtime_params=ONE_MODEL)
    ckpt = project / "data/06_models/asc/checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == [".attn_lstm.ckpt.x1y2z3_4.tmp", "attn_lstm.ckpt"]

    kedro_run(project, ["asc_train"], env="test", runtime_params=ONE_MODEL)
    assert digests(project, ASC_TRAIN_OUTS) == expected
    timings = (project / "data/08_reporting/asc/timings.csv").read_text()
    assert "attn_lstm" in timings


# -- disk full ---------------------------------------------------------------------------------------
def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_saving_a_model_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from kedro.io import DatasetError

    from mlsp_pipelines.datasets.atomic import DiskFullError
    from mlsp_pipelines.datasets.files import TorchDataset

    target = tmp_path / "06_models" / "cnn.pt"
    monkeypatch.setattr(torch, "save", _no_space)
    with pytest.raises(DatasetError) as info:
        TorchDataset(filepath=str(target)).save({"w": torch.ones(2)})
    last = str(info.value).strip().splitlines()[-1]
    assert str(target) in last and "disk full" in last and f"df -h {target.parent}" in last
    assert isinstance(info.value.__cause__, DiskFullError) and info.value.__cause__.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []  # no temporary left behind


def test_disk_full_in_torch_runtime_error_while_checkpointing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch reports a failed write as ``RuntimeError: [enforce fail at inline_container.cc...]``
    raised while handling the ENOSPC: the error still names the checkpoint and the disk."""
    import torch

    from mlsp_pipelines.datasets.atomic import DiskFullError
    from mlsp_pipelines.datasets.checkpoint import CheckpointStore

    def torch_like(*args: object, **kwargs: object) -> None:
        try:
            _no_space()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from None

    monkeypatch.setattr(torch, "save", torch_like)
    store = CheckpointStore(tmp_path / "checkpoints" / "attn_lstm.ckpt")
    with pytest.raises(DiskFullError) as info:
        store.save({"epoch": 1})
    assert str(store.path) in str(info.value) and "disk full" in str(info.value)
    assert list(store.path.parent.iterdir()) == []


def test_other_errors_while_writing_are_not_called_disk_full(tmp_path: Path) -> None:
    from mlsp_pipelines.datasets.atomic import DiskFullError, atomic_path

    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "x.json"):
            raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(DiskFullError):
        with atomic_path(tmp_path / "x.json"):
            raise OSError(errno.ENOSPC, "No space left on device")


# -- stale temporaries --------------------------------------------------------------------------------
def test_only_the_project_temporaries_of_owned_outputs_are_removed(tmp_path: Path) -> None:
    from mlsp_pipelines.datasets.atomic import remove_stale_temporaries

    folder = tmp_path / "06_models" / "asc"
    folder.mkdir(parents=True)
    (folder / "cnn.pt").write_bytes(b"model")
    stale = [folder / ".cnn.pt.k2j_9x0a.tmp", folder / ".cnn.pt.abcdefgh.old"]
    stale[0].touch(mode=0o600)
    stale[1].mkdir()
    keep = [folder / ".cnn.pt.tmp", folder / "notes.tmp", folder / ".crnn.pt.k2j_9x0a.tmp", folder / ".cnn.pt.k2j_9x0a.bak"]
    for k in keep:
        k.touch()
    assert remove_stale_temporaries(folder / "cnn.pt") == sorted(stale)
    assert sorted(folder.iterdir()) == sorted([folder / "cnn.pt", *keep])


# -- what DVC sees -------------------------------------------------------------------------------------
def _dvc_outs() -> list[str]:
    import yaml

    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    outs = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            outs += [next(iter(o)) if isinstance(o, dict) else o for o in stage.get(kind, [])]
    return outs


def _inside(path: str, outs: list[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


def _owned(project: Path, env: str, pipeline: str) -> list[str]:
    """Relative paths of what ``pipeline`` writes (outputs and checkpoints) in environment ``env``."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from mlsp_pipelines.outputs import owned_paths

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        catalog = session.load_context().catalog
        paths = owned_paths(pipelines[pipeline], catalog)
    return sorted(str(Path(p).resolve().relative_to(project.resolve())) if Path(p).is_absolute() else str(p)
                  for p in paths)


def test_real_data_environments_write_apart_from_the_dvc_outputs(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project_copy)  # relative catalog paths resolve against the project
    outs = _dvc_outs()
    default = _owned(project_copy, "local", "asc")
    assert default and all(p.split("/")[2] == "asc" for p in default if p.startswith("data/0"))
    tracked = [p for p in default if "timings" not in p and "node_seconds" not in p]
    assert tracked and all(_inside(p, outs) for p in tracked), [p for p in tracked if not _inside(p, outs)]
    for env, pipeline in (("esc50", "asc"), ("generic", "asc"), ("tau", "asc"), ("icbhi", "asthma")):
        owned = [p for p in _owned(project_copy, env, pipeline) if p.startswith("data/0")]
        assert owned, env
        assert not [p for p in owned if _inside(p, outs)], env
        assert all(p.split("/")[2] == f"{pipeline}-{env}" for p in owned), (env, owned)


def test_dvc_stage_refuses_a_conf_local_override(project_copy: Path, monkeypatch: pytest.MonkeyPatch,
                                                 kedro_run) -> None:  # type: ignore[no-untyped-def]
    from mlsp_pipelines.outputs import DvcConfigError

    local = project_copy / "conf" / "local" / "parameters.yml"
    local.write_text("asc:\n  train:\n    epochs: 1\nword2vec:\n  train:\n    epochs: 1\n")
    monkeypatch.setenv("DVC_STAGE", "asc")
    monkeypatch.chdir(project_copy)
    with pytest.raises(DvcConfigError) as info:
        kedro_run(project_copy, ["asc_train"], env=None)
    last = str(info.value).splitlines()[-1]
    assert "conf/local/parameters.yml: asc.train.epochs" in last and "word2vec" not in last
    assert "mv conf/local/parameters.yml conf/local/parameters.yml.off" in last
    assert not (project_copy / "data").exists() or not any((project_copy / "data").rglob("*.pt"))


def test_dvc_stage_checks_only_what_changes_its_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsp_pipelines.outputs import DvcConfigError, check_dvc_inputs

    local = tmp_path / "conf" / "local"
    local.mkdir(parents=True)
    (local / "parameters.yml").write_text("word2vec:\n  train: {epochs: 1}\n")
    (local / "mlflow.yml").write_text("tracking_uri: http://127.0.0.1:5000\n")
    (local / "dask.yml").write_text("dashboard_address: ':8787'\n")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    (local / "catalog.yml").write_text("asc.index: {type: MemoryDataset}\n")
    check_dvc_inputs(tmp_path, "test", ["asc_train"])  # outside DVC: anything goes
    monkeypatch.setenv("DVC_STAGE", "asc")
    with pytest.raises(DvcConfigError, match=r"conf/local/catalog.yml: asc.index"):
        check_dvc_inputs(tmp_path, "local", ["asc_train"])
    (local / "catalog.yml").unlink()
    check_dvc_inputs(tmp_path, "local", ["asc_train"])  # another pipeline's keys, MLflow, the dashboard
    with pytest.raises(DvcConfigError, match="unset KEDRO_ENV"):
        check_dvc_inputs(tmp_path, "test", ["asc_train"])
    (local / "dask.yml").write_text("torch_threads: 2\n")
    with pytest.raises(DvcConfigError, match=r"dask.yml: torch_threads"):
        check_dvc_inputs(tmp_path, "local", ["viscoelastic_train"])


# -- processes -------------------------------------------------------------------------------------------
POOL_SCRIPT = """
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()  # threads, as in a kedro run: forkserver
from mlsp_pipelines.features.logmel import worker_pool
pool = worker_pool(2)
futures = [pool.submit(time.sleep, 3600) for _ in range(2)]
print("ready", flush=True)
time.sleep(3600)
"""


def test_kill_9_of_a_run_with_feature_workers_leaves_no_process(tmp_path: Path) -> None:
    """The user's case: the forkserver, two workers and the resource tracker outlived a kill -9."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT], stdout=subprocess.PIPE, text=True)
    children: list[psutil.Process] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while len(parent.children(recursive=True)) < 4 and time.monotonic() < deadline:  # server, tracker, 2 workers
            time.sleep(0.2)
        children = parent.children(recursive=True)
        assert len(children) >= 3, children
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, [(p.pid, p.cmdline()[:3]) for p in alive]
    finally:
        proc.kill()
        proc.wait(10)
        for child in children:  # what this test started, should the assertion have failed
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


# -- listeners -----------------------------------------------------------------------------------------
def _listeners() -> set[tuple[str, int, int]]:
    """(address, port, pid) of every listening socket of this process and its descendants."""
    import psutil

    me = psutil.Process()
    found = set()
    for proc in (me, *me.children(recursive=True)):
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port, proc.pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_a_dask_run_listens_on_the_loopback_address_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's case: the scheduler's pages (/json/identity.json, /metrics) answered on 0.0.0.0."""
    import threading
    import time

    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node

    from mlsp_pipelines import cluster, runner

    seen: set[tuple[str, int, int]] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.update(_listeners())
            stop.wait(0.2)

    (tmp_path / "data").mkdir()
    runner.set_project_root(tmp_path)
    cluster.set_active({"n_workers": 1, "memory_limit": "1GiB", "allowed_failures": 0})
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        pipe = Pipeline([node(time.sleep, "seconds", None, name="wait", namespace="m")])
        runner.DaskRunner().run(pipe, DataCatalog({"seconds": MemoryDataset(3.0)}))
    finally:
        stop.set()
        poller.join()
        runner.set_project_root(None)
        cluster.set_active(None)
    assert len({pid for _, _, pid in seen}) >= 2, seen  # the driver (scheduler) and a worker at least
    exposed = sorted(s for s in seen if s[0] not in ("127.0.0.1", "::1"))
    assert not exposed, exposed


@pytest.mark.parametrize(("given", "bound"), [(None, "127.0.0.1:0"), (":8787", "127.0.0.1:8787"),
                                              ("8787", "127.0.0.1:8787"), ("0.0.0.0:8787", "0.0.0.0:8787"),
                                              ("http://10.0.0.5:8787", "10.0.0.5:8787")])
def test_a_dashboard_is_exposed_only_when_a_host_is_asked_for(given: str | None, bound: str) -> None:
    from mlsp_pipelines.cluster import dashboard_bind

    assert dashboard_bind(given) == bound


# -- a corrupt MLflow store ---------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["pages", "header"])
def test_a_corrupt_store_names_the_file_and_how_to_move_it_aside(tmp_path: Path, damage: str) -> None:
    from mlsp_pipelines.tracking import TrackingStoreCorruptError, open_store

    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as con:  # a real sqlite file with data pages, then damaged
        con.execute("CREATE TABLE t (x TEXT)")
        con.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    con.close()
    raw = bytearray(db.read_bytes())
    if damage == "pages":
        raw[4096:] = b"\xff" * (len(raw) - 4096)
        raw[28:32] = (len(raw) // 4096 * 3).to_bytes(4, "big")  # page count beyond the file
        raw[100:4096] = bytes(range(256)) * 15 + bytes(range(256))[: 4096 - 100 - 256 * 15]
    else:
        raw[:16] = b"not a database!!"
    db.write_bytes(bytes(raw))
    with pytest.raises(TrackingStoreCorruptError) as info:
        open_store(sqlite_uri(db))
    last = str(info.value).splitlines()[-1]
    assert str(db) in last and f"mv {db} {db}.corrupt" in last
    assert "corrupt (" in last and ("malformed" in last or "not a database" in last)
