"""Shared fixtures: real data samples, isolated project copies and a helper to run Kedro sessions."""

from __future__ import annotations

import os

# Set before anything imports Kedro or tqdm: no telemetry prompts, no progress bars in test logs.
os.environ.setdefault("MLSP_PROGRESS", "0")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

# The project's start-up pins the CPU kernels of numpy and torch; it must run before either loads.
import mlsp_pipelines  # noqa: E402,F401

import shutil  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

#: torch's intra-op thread count in a fresh process, recorded before test modules change it
#: (several call ``torch.set_num_threads(1)``); CPU float results depend on it.
DEFAULT_TORCH_THREADS = torch.get_num_threads()

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


# -- real data samples -------------------------------------------------------------------------
def missing_real_data(what: str) -> None:
    """A real-data sample is missing: the test fails, saying where the data belongs, unless the
    user chose to skip real-data tests (``MLSP_SKIP_REAL_DATA=1``): a checkout without
    ``../shared`` must not look green by silently skipping what it never tested."""
    message = (f"{what}: the real-data tests read ../shared/data beside the checkout; "
               "MLSP_SKIP_REAL_DATA=1 skips them")
    if os.environ.get("MLSP_SKIP_REAL_DATA") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real ESC-50 / FSDD / ICBHI / Multi30K samples)."""
    if not SHARED_DATA.is_dir():
        missing_real_data(f"{SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture(scope="session")
def esc50_sample(shared_data: Path) -> Path:
    path = shared_data / "esc50-sample"
    if not (path / "meta" / "esc50.csv").is_file():
        missing_real_data(f"ESC-50 sample not available: {path}/meta/esc50.csv does not exist")
    return path


@pytest.fixture(scope="session")
def fsdd_sample(shared_data: Path) -> Path:
    path = shared_data / "fsdd-sample"
    if not (path / "labels.csv").is_file():
        missing_real_data(f"FSDD sample not available: {path}/labels.csv does not exist")
    return path


# -- isolated project copies -------------------------------------------------------------------
def make_project_copy(dest: Path, *, git: bool = False) -> Path:
    """Copy what a Kedro session needs (``conf/`` and ``pyproject.toml``) into ``dest``.

    The package is installed in editable mode, so ``src/`` is not copied; ``bootstrap_project``
    only checks that the ``source_dir`` of ``[tool.kedro]`` exists, hence the empty ``src/``.
    Machine-specific ``conf/local`` content is left out so the copy runs exactly base + env.
    With ``git=True`` the copy is made a one-commit git repository (for the commit tag).
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir(exist_ok=True)
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", dest / "pyproject.toml")
    (dest / "src").mkdir(exist_ok=True)
    if git:
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }
        for args in (["init", "-q"], ["add", "conf", "pyproject.toml"], ["commit", "-q", "-m", "fixture"]):
            subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    return dest


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


@pytest.fixture
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away copy of the project: ``data/`` and ``mlflow.db`` are created inside it."""
    path = make_project_copy(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(path / "mlflow.db"))
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    return path


def run_session(
    path: Path,
    pipelines: list[str] | None = None,
    *,
    env: str = "test",
    runtime_params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run ``pipelines`` in a fresh KedroSession of the project at ``path``.

    Returns the run result and the session id (the ``kedro_session_id`` tag of the MLflow run).
    torch runs with a fresh process's thread count, so results match a ``kedro run`` CLI run.
    ``bootstrap_project`` is repeated for every session: it (re)configures the package settings
    and pipelines for the project at ``path``.
    """
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from mlsp_pipelines.runner import NamespaceSequentialRunner

    threads = torch.get_num_threads()
    torch.set_num_threads(DEFAULT_TORCH_THREADS)  # as `kedro run` in a fresh process would
    try:
        bootstrap_project(path)
        with KedroSession.create(project_path=path, env=env, runtime_params=runtime_params) as session:
            session_id = session.session_id
            # the runner `kedro run` uses in this project (cli.py): one model trained and evaluated at a time
            result = session.run(pipeline_names=pipelines or ["asc"], runner=NamespaceSequentialRunner())
    finally:
        torch.set_num_threads(threads)
    return result, session_id


@pytest.fixture(autouse=True)
def _forget_graph_params() -> Iterator[None]:
    """A session records its parameters for the pipeline registry; no test may see another's."""
    yield
    from mlsp_pipelines import config

    config.set_active_params(None)


@pytest.fixture(scope="session")
def kedro_run():
    """:func:`run_session` as a fixture (``kedro_run(path, ["asc"], runtime_params=...)``)."""
    return run_session


@pytest.fixture(scope="session")
def new_project_copy():
    """:func:`make_project_copy` as a fixture, for module-scoped runs that share one project copy."""
    return make_project_copy
