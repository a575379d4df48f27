"""MLflow bookkeeping for Kedro runs: one parent run per ``kedro run``, one nested run per
trained model (per namespace ``<task>.<arch>``), all through ``MlflowClient`` with explicit run
ids so nested runs never depend on a global "active run".

What gets logged is decided by the type of a node's outputs, so nodes stay free of tracking
code: numbers in ``metrics``/``data_quality`` dicts → metrics; a ``history`` table →
per-epoch metrics (``step`` = epoch); matplotlib figures → PNG artefacts; leaderboards,
predictions and confusion tables → CSV/Markdown artefacts; a model bundle (dict with
``state_dict``) → ``model/<arch>.pt``; ``params:`` inputs → parameters.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

PARAM_VALUE_MAX = 6000
# Node outputs (by the last part of their dataset name) that go to MLflow besides figures and models.
METRIC_OUTPUTS = ("metrics", "cv_metrics", "data_quality")
TABLE_OUTPUTS = ("leaderboard", "leaderboard_md", "predictions", "confusion_matrix", "sweep_trials")


class TrackingUnavailableError(RuntimeError):
    """The configured tracking server cannot be reached (no silent fallback to a local store)."""


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts / pydantic models → ``{"a.b.c": value}`` (lists kept as values)."""
    if hasattr(d, "model_dump"):
        d = d.model_dump()
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if hasattr(v, "model_dump") or (isinstance(v, dict) and v):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def git_state(root: Path) -> dict[str, str]:
    """Commit hash and whether the work tree has uncommitted changes (``unknown`` outside git)."""
    def _git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": str(bool(status)).lower()}


def resolve_tracking_uri(configured: str | None, root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` wins; else the configured URI; relative sqlite paths are made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((root / uri[len("sqlite:///"):]).resolve())
    return uri


def artifact_root_for(uri: str, root: Path) -> str | None:
    """Where artefacts go for a local store (next to the database); servers decide themselves."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        return None
    return None


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    import urllib.error
    import urllib.request

    url = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - user-configured URI
            if resp.status >= 400:
                raise TrackingUnavailableError(f"MLflow tracking server {uri} answered HTTP {resp.status}")
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingUnavailableError(
            f"MLflow tracking server {uri} is unreachable ({exc}); start it or unset MLFLOW_TRACKING_URI"
        ) from exc


class RunTracker:
    """Parent and nested MLflow runs of one Kedro session."""

    def __init__(self, uri: str, experiment: str, artifact_root: str | None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            kwargs = {"artifact_location": f"{artifact_root}/{experiment}"} if artifact_root else {}
            self.experiment_id = self.client.create_experiment(experiment, **kwargs)
        else:
            self.experiment_id = exp.experiment_id
        self.parent_id: str | None = None
        self.children: dict[str, str] = {}
        self._ended = False
        atexit.register(self._atexit)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, name: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_id = run.info.run_id
        return self.parent_id

    def child(self, key: str, tags: dict[str, str]) -> str:
        """The nested run for namespace ``key`` (created on first use)."""
        if key not in self.children:
            run = self.client.create_run(
                self.experiment_id, run_name=key.split(".")[-1],
                tags={**tags, "mlflow.parentRunId": self.parent_id or ""},
            )
            self.children[key] = run.info.run_id
        return self.children[key]

    def end(self, status: str) -> None:
        if self._ended:
            return
        self._ended = True
        for run_id in self.children.values():
            self.client.set_terminated(run_id, status=status)
        if self.parent_id:
            self.client.set_terminated(self.parent_id, status=status)

    def _atexit(self) -> None:
        """A run still open at interpreter exit was interrupted (Ctrl-C, SIGTERM): mark it KILLED."""
        if not self._ended:
            try:
                self.end("KILLED")
            except Exception:  # noqa: BLE001 - best effort at exit
                pass

    # -- logging ---------------------------------------------------------------------------
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:PARAM_VALUE_MAX]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    def log_history(self, run_id: str, history: dict[str, list[float]]) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, vals in history.items() for step, v in enumerate(vals, 1)]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    def log_trials(self, parent_id: str, trials: Any) -> None:
        """One nested run per hyper-parameter trial (``param.*`` → params, ``metric.*`` → metrics)."""
        parent = self.client.get_run(parent_id)
        tags = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        for row in trials.to_dict("records"):
            run = self.client.create_run(
                self.experiment_id, run_name=f"trial-{row['trial']}",
                tags={**tags, "mlflow.parentRunId": parent_id, "sweep_trial": str(row["trial"])},
            )
            self.log_params(run.info.run_id, {k[6:]: v for k, v in row.items() if k.startswith("param.")})
            self.log_metrics(run.info.run_id, {k[7:]: v for k, v in row.items() if k.startswith("metric.")})
            self.children[f"trial-{row['trial']}"] = run.info.run_id

    def log_output(self, run_id: str, name: str, value: Any) -> None:
        """Log one node output by its type and short name (see module docstring); others are skipped."""
        import json

        import pandas as pd
        from matplotlib.figure import Figure

        short = name.split(".")[-1]
        if isinstance(value, Figure):
            self.client.log_figure(run_id, value, f"plots/{short}.png")
        elif isinstance(value, pd.DataFrame) and short == "history":
            self.log_history(run_id, value.drop(columns="epoch", errors="ignore").to_dict("list"))
        elif isinstance(value, pd.DataFrame) and short == "sweep_trials":
            self.log_trials(run_id, value)
        elif isinstance(value, dict) and short == "sweep_best":
            self.log_params(run_id, {f"best.{k}": v for k, v in value["params"].items()})
            self.log_metrics(run_id, {"best_value": value["value"], **{f"best_{k}": v for k, v in value["metrics"].items()}})
            self.client.set_tag(run_id, "best_trial", str(value["trial"]))
            self.client.log_dict(run_id, value, "reports/sweep_best.json")
        elif isinstance(value, pd.DataFrame) and short in TABLE_OUTPUTS:
            self.client.log_text(run_id, value.to_csv(index=False), f"tables/{short}.csv")
        elif isinstance(value, str) and short in TABLE_OUTPUTS:
            self.client.log_text(run_id, value, f"tables/{short}.md")
        elif isinstance(value, dict) and "state_dict" in value:
            import torch

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{value.get('arch', short)}.pt"
                torch.save(value, path)
                self.client.log_artifact(run_id, str(path), "model")
        elif isinstance(value, dict) and short in METRIC_OUTPUTS:
            flat = flatten(value)
            numbers = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if numbers:
                self.log_metrics(run_id, numbers)
            self.client.log_text(run_id, json.dumps(value, indent=2, default=str), f"reports/{short}.json")


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
