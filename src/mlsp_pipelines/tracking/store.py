"""MLflow bookkeeping for Kedro runs, through ``MlflowClient`` with explicit run ids (nested runs
never depend on a global "active run").

- **Store**: a local sqlite store by default (``mlflow.db`` + ``mlartifacts/`` in the project),
  ``MLFLOW_TRACKING_URI`` for a server. Creating a fresh sqlite schema is serialised with a file
  lock beside the database (two first runs at once would otherwise race in MLflow's migrations).
  Runs left RUNNING by a process of this project that no longer exists (checked by pid, process
  start time and host, recorded as tags) are closed as KILLED when the next run starts.
- **What is logged is declared** in the catalog: ``metadata: {mlflow: {kind: ...}}`` on a
  dataset (see :data:`KINDS`); nothing is inferred from dataset names or types.
- **Parameters** that exceed MLflow's value limit are logged as an artefact and the parameter
  says where (never truncated silently).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlsp_pipelines.tracking.flatten import flatten, flatten_numbers, metric_key

logger = logging.getLogger(__name__)

PARAM_VALUE_MAX = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
TAG_VALUE_MAX = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
PARAM_KEY_MAX = 250

#: Kinds of catalog declarations (``metadata.mlflow.kind``) and what each logs.
KINDS = {
    "metrics": "numbers of a (nested) dict → metrics (its keys listed in `params` → parameters resolved.<key>.*); the dict → reports/<name>.json",
    "history": "per-epoch table → metrics epoch/<column> with step = epoch (unless logged live)",
    "figure": "matplotlib figure → PNG at `artifact` (default plots/<name>.png)",
    "table": "DataFrame → CSV, text → Markdown at `artifact` (default tables/<name>.csv|md)",
    "audio": "clips (name → (samples, rate)) → WAV files under `artifact` (default <name>/)",
    "model": "model bundle → an MLflow logged model (`flavor`: audio_classifier | pytorch)",
    "inputs": "model input dict → mlflow.log_input per split (`splits`: {context: [features, targets]})",
    "trials": "hyper-parameter trials table → one nested run per trial",
    "sweep_best": "best trial → parameters best.*, metrics best_*, tag best_trial",
}


class TrackingUnavailableError(RuntimeError):
    """The configured tracking server cannot be reached (no silent fallback to a local store)."""


# -- configuration ------------------------------------------------------------------------------


def git_state(root: Path) -> dict[str, str]:
    """Commit, branch and whether the work tree has uncommitted changes (``unknown`` outside git).

    ``dvc.lock`` does not count: ``dvc repro`` rewrites it after each stage, so every stage after
    the first would otherwise be flagged as run from a changed tree.
    """
    def _git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": "unknown", "git_dirty": "unknown", "git_branch": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)dvc.lock")
    return {"git_commit": commit, "git_dirty": str(bool(status)).lower(),
            "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD") or "unknown"}


def experiment_name(pipeline: str, env: str | None) -> str:
    """One experiment per pipeline and environment: ``asc`` for the default environment
    (``local``), ``asc-test`` for ``--env=test``, ``asc-esc50`` for ``--env=esc50``."""
    return pipeline if env in (None, "", "local", "base") else f"{pipeline}-{env}"


def resolve_tracking_uri(configured: str | None, root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` wins; else the configured URI; relative sqlite paths are made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((root / uri[len("sqlite:///"):]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_root_for(uri: str, root: Path) -> str | None:
    """Where artefacts go for a local store (next to the database); servers decide themselves."""
    db = sqlite_path(uri)
    return (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None


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


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


# -- the store ---------------------------------------------------------------------------------------
def open_store(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` whose store exists. For sqlite the schema is created (or
    migrated) under a file lock beside the database: MLflow's table creation is not safe to run
    from two processes at once (``CircularDependencyError`` / "table already exists")."""
    from mlflow.tracking import MlflowClient

    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock", timeout=300):
        try:
            client = MlflowClient(tracking_uri=uri)  # builds the store: creates/migrates the schema
            client.search_experiments(max_results=1)
        except Exception as exc:
            reason = _corruption(exc)
            if reason is None:
                raise
            raise TrackingStoreCorruptError(
                f"{db}: the MLflow store is corrupt ({reason}). Move it aside and run again, which starts a "
                f"new, empty store (the old runs stay readable by sqlite tools in the moved file): "
                f"mv {db} {db}.corrupt") from exc
    return client


class TrackingStoreCorruptError(RuntimeError):
    """The local MLflow store (sqlite file) cannot be read: damaged or not a database."""


#: What sqlite says about a damaged file (``sqlite3.DatabaseError``, wrapped by SQLAlchemy and MLflow).
_CORRUPT = ("database disk image is malformed", "file is not a database", "file is encrypted or is not a database")


def _corruption(exc: BaseException) -> str | None:
    """sqlite's words for a damaged store anywhere in ``exc``'s chain (None: another error)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur)
        for words in _CORRUPT:
            if words in text:
                return words
        cur = cur.__cause__ or cur.__context__
    return None


def get_or_create_experiment(client: Any, name: str, artifact_root: str | None, uri: str) -> str:
    """The id of experiment ``name``, created (race-free) when missing."""
    from mlflow.exceptions import MlflowException

    def _create() -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        kwargs = {"artifact_location": f"{artifact_root}/{name}"} if artifact_root else {}
        try:
            return client.create_experiment(name, **kwargs)
        except MlflowException as exc:  # created meanwhile by another process (server stores)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            logger.debug("experiment %s created concurrently: %s", name, exc)
            return exp.experiment_id

    db = sqlite_path(uri)
    if db is None:
        return _create()
    from filelock import FileLock

    with FileLock(str(db) + ".lock", timeout=300):
        return _create()


def process_tags() -> dict[str, str]:
    """Who holds a run: pid, the process's start time and the host (for :func:`close_dead_runs`)."""
    import psutil

    return {"mlsp.pid": str(os.getpid()), "mlsp.pid_start": f"{psutil.Process().create_time():.3f}",
            "mlsp.host": socket.gethostname()}


def process_alive(pid: int, start: float | None) -> bool:
    """True when process ``pid`` runs and (when known) started at ``start`` (no pid reuse)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return start is None or abs(proc.create_time() - start) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def close_dead_runs(client: Any) -> list[str]:
    """Close as KILLED every RUNNING run whose process (on this host) no longer exists.

    End time: the run's last logged metric (else its start). Runs of other hosts are left alone
    (their processes cannot be checked from here)."""
    host = socket.gethostname()
    ids = [e.experiment_id for e in client.search_experiments()]
    closed: list[str] = []
    if not ids:
        return closed
    runs = client.search_runs(ids, filter_string=f"attributes.status = 'RUNNING' and tags.`mlsp.host` = '{host}'",
                              max_results=1000)
    for run in runs:
        tags = run.data.tags
        try:
            pid = int(tags["mlsp.pid"])
            start = float(tags["mlsp.pid_start"]) if "mlsp.pid_start" in tags else None
        except (KeyError, ValueError):
            continue
        if process_alive(pid, start):
            continue
        # the latest metric of each key carries its timestamp (system metrics: about when it died)
        last = max((m.timestamp for m in getattr(run.data, "_metric_objs", [])), default=run.info.start_time)
        client.set_terminated(run.info.run_id, status="KILLED", end_time=last)
        client.set_tag(run.info.run_id, "mlsp.closed_by", f"pid {os.getpid()}: process {pid} was gone")
        closed.append(run.info.run_id)
    if closed:
        logger.warning("closed %d MLflow run(s) left RUNNING by a process that no longer exists: %s",
                       len(closed), ", ".join(closed))
    return closed


# -- runs ---------------------------------------------------------------------------------------------
@dataclass
class OpenRun:
    """A run this process opened and has not closed yet."""

    run_id: str
    name: str
    monitor: Any = None
    model_id: str | None = None
    model_flavor: str | None = None
    datasets: dict[str, tuple[str, str]] = field(default_factory=dict)  # context → (name, digest)
    params: dict[str, str] = field(default_factory=dict)
    live_epochs: bool = False


def _system_metrics_monitor(run_id: str, interval: float, uri: str) -> Any:
    """MLflow's system-metrics monitor, publishing at least one sample per run.

    MLflow's monitor publishes only after a full sampling interval, so a run shorter than the
    interval (a small model on the embedded data) ended with no ``system/*`` metrics at all, and
    whether it had them depended on timing. This one publishes what it collected when it stops.
    """
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    class _Monitor(SystemMetricsMonitor):
        def finish(self) -> None:
            started, first_step = self._process is not None, self._logging_step
            super().finish()
            if started and self._logging_step == first_step:  # stopped before its first interval
                self.collect_metrics()
                self.publish_metrics(self.aggregate_metrics())
                self.mlflow_logger.flush()

    monitor = _Monitor(run_id, sampling_interval=interval, samples_before_logging=1, tracking_uri=uri)
    # Samples from step 1: MLflow links a run's step-0 metrics to a model logged from it, and a
    # logged model should carry its task metrics (loss, accuracy, ...), not the machine's load.
    monitor._logging_step = max(monitor._logging_step, 1)  # noqa: SLF001 - MLflow has no setting for it
    return monitor


class RunTracker:
    """The parent run of one ``kedro run`` and the runs nested under it."""

    def __init__(self, uri: str, experiment: str, artifact_root: str | None, *,
                 system_metrics_interval: float | None = 1.0) -> None:
        self.uri = uri
        self.client = open_store(uri)
        self.experiment = experiment
        self.experiment_id = get_or_create_experiment(self.client, experiment, artifact_root, uri)
        self.system_metrics_interval = system_metrics_interval
        self.parent: OpenRun | None = None
        self.runs: dict[str, OpenRun] = {}
        self._lock = threading.RLock()
        self._ended = False
        import atexit

        atexit.register(self._atexit)

    @classmethod
    def attach(cls, uri: str, experiment: str, experiment_id: str, parent: OpenRun, *,
               system_metrics_interval: float | None = 1.0) -> RunTracker:
        """A tracker of runs another process opened (a Dask worker borrowing the driver's parent and
        model runs): it logs to them and opens and closes runs of its own, but never ends the
        borrowed ones -- not in :meth:`end`, not at exit."""
        from mlflow.tracking import MlflowClient

        self = cls.__new__(cls)
        self.uri, self.client = uri, MlflowClient(tracking_uri=uri)
        self.experiment, self.experiment_id = experiment, experiment_id
        self.system_metrics_interval = system_metrics_interval
        self.parent, self.runs = parent, {}
        self._lock = threading.RLock()
        self._ended = True
        return self

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, name: str, tags: dict[str, str]) -> str:
        tags, long_tags = _fit_tags({**tags, **process_tags()})
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent = OpenRun(run.info.run_id, name, self._monitor(run.info.run_id))
        self._log_long_tags(run.info.run_id, long_tags)
        return self.parent.run_id

    @property
    def parent_id(self) -> str | None:
        return self.parent.run_id if self.parent else None

    def open(self, key: str, name: str, tags: dict[str, str], parent: str | None = None, *,
             monitor: bool = True) -> OpenRun:
        """The nested run for ``key`` (created, with its system-metrics monitor, on first use)."""
        with self._lock:
            if key not in self.runs:
                tags, long_tags = _fit_tags({**tags, **process_tags(),
                                             "mlflow.parentRunId": parent or self.parent_id or ""})
                run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
                self.runs[key] = OpenRun(run.info.run_id, name, self._monitor(run.info.run_id) if monitor else None)
                self._log_long_tags(run.info.run_id, long_tags)
            return self.runs[key]

    def _log_long_tags(self, run_id: str, long_tags: dict[str, str]) -> None:
        for key, value in long_tags.items():
            self.client.log_text(run_id, value, f"tags/{key}.txt")
            logger.warning("tag %s (%d characters) exceeds MLflow's %d-character limit: logged as artifact "
                           "tags/%s.txt", key, len(value), TAG_VALUE_MAX, key)

    def close(self, key: str, status: str = "FINISHED") -> None:
        with self._lock:
            run = self.runs.pop(key, None)
        if run is not None:
            self._finish(run, status)

    def end(self, status: str) -> None:
        """Close every open run, children first."""
        if self._ended:
            return
        self._ended = True
        for key in list(self.runs):
            self.close(key, status)
        if self.parent is not None:
            self._finish(self.parent, status)

    def _finish(self, run: OpenRun, status: str) -> None:
        if run.monitor is not None:
            try:
                run.monitor.finish()
            except Exception:  # noqa: BLE001 - a monitor that cannot flush must not keep a run open
                logger.debug("system metrics monitor of %s did not finish cleanly", run.run_id, exc_info=True)
        self.client.set_terminated(run.run_id, status=status)

    def _monitor(self, run_id: str) -> Any:
        if not self.system_metrics_interval:
            return None
        try:
            mon = _system_metrics_monitor(run_id, self.system_metrics_interval, self.uri)
            mon.start()
            return mon
        except Exception as exc:  # noqa: BLE001 - system metrics are optional (psutil missing, ...)
            logger.warning("no system metrics for run %s: %s", run_id, exc)
            return None

    def _atexit(self) -> None:
        """A run still open at interpreter exit was interrupted (Ctrl-C, SIGTERM): mark it KILLED."""
        if not self._ended:
            try:
                self.end("KILLED")
            except Exception:  # noqa: BLE001 - best effort at exit
                pass

    def monitor(self, run: OpenRun) -> Any:
        """A system-metrics monitor sampling this process for ``run`` (a Dask worker training a
        model of the driver's run); the caller finishes it."""
        return self._monitor(run.run_id)

    def use_globally(self) -> None:
        """Point MLflow's global API at this store and experiment: ``log_model`` goes through it."""
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(experiment_id=self.experiment_id)

    def close_dead_runs(self) -> list[str]:
        """Close runs a process of this project left RUNNING when it died (see :func:`close_dead_runs`)."""
        return close_dead_runs(self.client)

    def close_session_leftovers(self, session_id: str | None, status: str) -> None:
        """Runs of ``session_id`` still RUNNING that this tracker did not open or borrow (opened by a
        Dask worker that died) end with the run's status, never left RUNNING."""
        if not session_id:
            return
        mine = {self.parent_id, *(r.run_id for r in self.runs.values())}
        for run in self.client.search_runs([self.experiment_id], f"tags.kedro_session_id = '{session_id}' and "
                                           "attributes.status = 'RUNNING'", max_results=1000):
            if run.info.run_id not in mine:
                self.client.set_terminated(run.info.run_id, status=status if status != "FINISHED" else "KILLED")
                self.client.set_tag(run.info.run_id, "mlsp.closed_by", "the Dask driver: its worker was gone")

    def describe_experiment(self, text: str) -> None:
        """The experiment's note (set once: a user's edit in the UI is kept)."""
        exp = self.client.get_experiment(self.experiment_id)
        if not exp.tags.get("mlflow.note.content"):
            self.client.set_experiment_tag(self.experiment_id, "mlflow.note.content", text)

    def run_metrics(self, run: OpenRun) -> dict[str, float]:
        """The latest value of each metric of ``run``."""
        return dict(self.client.get_run(run.run_id).data.metrics)

    def describe(self, run: OpenRun, text: str) -> None:
        """``text`` (Markdown) as the note of ``run`` and of its logged model (the description both
        pages show)."""
        self.client.set_tag(run.run_id, "mlflow.note.content", text)
        if run.model_id:
            self.client.set_logged_model_tags(run.model_id, {"mlflow.note.content": text})

    # -- logging -------------------------------------------------------------------------------------
    def set_tags(self, run: OpenRun, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run.run_id, key, value)

    def log_dict(self, run: OpenRun, value: dict[str, Any], artifact: str) -> None:
        self.client.log_dict(run.run_id, value, artifact)

    def log_model(self, run: OpenRun, bundle: dict[str, Any], *, flavor: str, dataset: str, name: str,
                  registered: str | None, params: dict[str, Any], feature_params: str | None) -> Any:
        """The bundle as a logged model of ``run`` in the flavour serving builds for it; the run
        links its later metrics to the model and says where it is (tags ``model_uri``,
        ``registered_model``)."""
        from mlsp_pipelines import serving

        info = serving.log_bundle(run.run_id, bundle, flavor=flavor, dataset=dataset, name=name,
                                  registered_model_name=registered, params=params, feature_params=feature_params)
        run.model_id, run.model_flavor = info.model_id, flavor
        tags = {"model_uri": info.model_uri}
        if registered:
            tags["registered_model"] = f"{registered}/{info.registered_model_version}"
        self.set_tags(run, tags)
        return info

    def log_params(self, run: OpenRun, params: dict[str, Any]) -> None:
        """Parameters as strings; a value over MLflow's limit goes to ``params/<key>.txt`` and the
        parameter names that file; a key logged before with another value is skipped with a warning."""
        from mlflow.entities import Param

        items, long_values = [], {}
        for key, value in sorted(params.items()):
            text = value if isinstance(value, str) else json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else str(value)
            if len(key) > PARAM_KEY_MAX:
                raise ValueError(f"parameter key longer than {PARAM_KEY_MAX} characters: {key[:80]}...")
            if len(text) > PARAM_VALUE_MAX:
                long_values[key] = text
                text = f"(too long for a parameter: {len(text)} characters; full value in artifact params/{key}.txt)"
            if key in run.params:
                if run.params[key] != text:
                    logger.warning("parameter %s of run %s already logged as %r; not changed to %r",
                                   key, run.name, run.params[key], text)
                continue
            run.params[key] = text
            items.append(Param(key, text))
        for key, text in long_values.items():
            self.client.log_text(run.run_id, text, f"params/{key}.txt")
            logger.warning("parameter %s (%d characters) exceeds MLflow's %d-character limit: logged as artifact "
                           "params/%s.txt", key, len(text), PARAM_VALUE_MAX, key)
        for i in range(0, len(items), 100):
            self.client.log_batch(run.run_id, params=items[i : i + 100])

    def log_metrics(self, run: OpenRun, metrics: dict[str, float], step: int = 0, *,
                    dataset: tuple[str, str] | None = None) -> None:
        """Numbers (bools and non-finite values skipped); linked to the run's logged model and a dataset when given."""
        import math

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [
            Metric(metric_key(k), float(v), ts, step, model_id=run.model_id,
                   dataset_name=dataset[0] if dataset else None, dataset_digest=dataset[1] if dataset else None)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        for i in range(0, len(items), 500):
            self.client.log_batch(run.run_id, metrics=items[i : i + 500])

    def log_input(self, run: OpenRun, *, name: str, context: str, arrays: tuple[Any, ...], digest: str,
                  source: str | None) -> None:
        """``mlflow.log_input`` of (inputs..., targets) under ``context`` with our content digest."""
        from mlflow.data.numpy_dataset import from_numpy
        from mlflow.entities import DatasetInput, InputTag

        if run.datasets.get(context) == (name, digest):
            return
        import warnings

        arrs = [a.detach().cpu().numpy() if hasattr(a, "detach") else a for a in arrays]
        X = arrs[0] if len(arrs) == 2 else {f"input_{i}": a for i, a in enumerate(arrs[:-1])}
        y = arrs[-1]
        with warnings.catch_warnings():  # MLflow registers local paths twice ("" and "file") and says so
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            ds = from_numpy(X, targets=y, source=Path(source).resolve().as_uri() if source else name, name=name,
                            digest=digest)
        self.client.log_inputs(run.run_id, [DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", context)])])
        run.datasets[context] = (name, digest)

    def log_declared(self, run: OpenRun, name: str, value: Any, spec: dict[str, Any]) -> None:
        """Log one dataset's value as its catalog declaration says (:data:`KINDS`)."""
        short = name.split(".")[-1]
        kind = spec.get("kind")
        if kind == "metrics":
            settings = [k for k in spec.get("params", ()) if isinstance(value, dict) and k in value]
            if settings:  # settings the report records (the feature sizes resolved from the data) are parameters
                self.log_params(run, flatten({k: value[k] for k in settings}, "resolved"))
                value_numbers = {k: v for k, v in value.items() if k not in settings}
            else:
                value_numbers = value
            self.log_metrics(run, flatten_numbers(value_numbers), dataset=run.datasets.get("test"))
            self.client.log_text(run.run_id, json.dumps(value, indent=2, default=str), spec.get("artifact", f"reports/{short}.json"))
        elif kind == "history":
            if not run.live_epochs:
                self.log_history(run, value)
        elif kind == "figure":
            self.client.log_figure(run.run_id, value, spec.get("artifact", f"plots/{short}.png"))
        elif kind == "table":
            import pandas as pd

            if isinstance(value, pd.DataFrame):
                self.client.log_text(run.run_id, value.to_csv(index=False), spec.get("artifact", f"tables/{short}.csv"))
            else:
                self.client.log_text(run.run_id, str(value), spec.get("artifact", f"tables/{short}.md"))
        elif kind == "trials":
            self.log_trials(run, value)
        elif kind == "sweep_best":
            self.log_params(run, {f"best.{k}": v for k, v in value["params"].items()})
            self.log_metrics(run, {"best_value": value["value"], **{f"best_{k}": v for k, v in value["metrics"].items()}})
            self.client.set_tag(run.run_id, "best_trial", str(value["trial"]))
            self.client.log_dict(run.run_id, value, spec.get("artifact", f"reports/{short}.json"))
        elif kind == "audio":
            self.log_audio(run, value, spec.get("artifact", short))
        elif kind in ("model", "inputs"):
            pass  # handled by the hook (needs configuration and context)
        else:
            raise ValueError(f"catalog entry {name}: metadata.mlflow.kind={kind!r} is not one of {sorted(KINDS)}")

    def log_audio(self, run: OpenRun, clips: dict[str, tuple[Any, int]], artifact_dir: str) -> None:
        """Clips (name → (samples, rate)) as 16-bit WAV files under ``artifact_dir``: the UI plays them."""
        import tempfile

        from mlsp_pipelines.datasets.files import write_wav

        if not clips:
            return
        with tempfile.TemporaryDirectory() as tmp:
            for name, (audio, sr) in clips.items():
                write_wav(Path(tmp) / f"{name}.wav", audio, sr)
            self.client.log_artifacts(run.run_id, tmp, artifact_dir)

    def log_history(self, run: OpenRun, history: Any) -> None:
        """A per-epoch table as ``epoch/<column>`` metrics, step = epoch."""
        from mlflow.entities import Metric

        frame = history.copy()
        epochs = frame.pop("epoch").tolist() if "epoch" in frame else list(range(1, len(frame) + 1))
        ts = int(time.time() * 1000)
        items = [Metric(f"epoch/{col}", float(v), ts, int(step)) for col in frame.columns
                 for step, v in zip(epochs, frame[col].tolist())]
        for i in range(0, len(items), 500):
            self.client.log_batch(run.run_id, metrics=items[i : i + 500])

    def log_trials(self, parent: OpenRun, trials: Any) -> None:
        """One nested run per hyper-parameter trial (``param.*`` → params, ``metric.*`` → metrics)."""
        tags = {k: v for k, v in self.client.get_run(parent.run_id).data.tags.items()
                if not k.startswith(("mlflow.", "mlsp."))}
        for row in trials.to_dict("records"):
            key = f"trial-{row['trial']}"
            run = self.open(key, key, {**tags, "sweep_trial": str(row["trial"])}, parent=parent.run_id, monitor=False)
            self.log_params(run, {k[6:]: v for k, v in row.items() if k.startswith("param.")})
            self.log_metrics(run, {k[7:]: v for k, v in row.items() if k.startswith("metric.")})
            self.close(key)


def _fit_tags(tags: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Tags within MLflow's value limit; a longer value (a long command line) becomes a pointer to
    ``tags/<key>.txt``, returned separately to be logged there."""
    out, long_tags = {}, {}
    for key, value in tags.items():
        value = str(value)
        if len(value) > TAG_VALUE_MAX:
            long_tags[key] = value
            value = f"(too long for a tag: {len(value)} characters; full value in artifact tags/{key}.txt)"
        out[key] = value
    return out, long_tags




