"""Project hooks: graph parameters for the pipeline registry, and the Kedro side of MLflow tracking.

:class:`MlflowHook` maps Kedro's lifecycle to :class:`~mlsp_pipelines.tracking.session.TrackingSession`
(what a run records, explained there): it reads the catalog's ``metadata.mlflow`` declarations of a
node's datasets, holds the pipeline lock, starts the MLflow run in the background while the first
nodes run, and hands Dask workers their share of the run (``runner.py``). It touches no MLflow API.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from mlsp_pipelines import config, lineage
from mlsp_pipelines.outputs import dvc_stage
from mlsp_pipelines.runlock import PipelineLock
from mlsp_pipelines.tracking.session import (
    NodeState,
    RemoteResult,
    RemoteState,
    RunContext,
    TrackingSession,
    node_params,
    run_config,  # noqa: F401 - re-exported: the parameters a run logs
)
from mlsp_pipelines.tracking.store import check_reachable, command_line, resolve_tracking_uri
from mlsp_pipelines.training import observers

logger = logging.getLogger(__name__)

MODEL_RUN_TAG = "model_run"


def pipeline_family(pipeline_names: list[str] | None) -> str:
    """``asc_train`` (a DVC stage slice) belongs to ``asc``, like ``asc`` itself; several: ``a+b``."""
    return "+".join(dict.fromkeys(config.pipeline_family(n) for n in pipeline_names or ["__default__"]))


def _interrupt_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, schedulers, ``dvc exp`` cancelling) into KeyboardInterrupt, so an
    interrupted run is closed as KILLED in MLflow and temporary files are cleaned up."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)


class GraphParamsHook:
    """Hands the run's resolved parameters to the pipeline registry before it builds pipelines."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        params = dict(context.config_loader["parameters"])
        config.set_active_params(params)
        from mlsp_pipelines import runner

        runner.set_project_root(context.project_path)  # where the runners keep node durations
        try:  # dask.yml of the environment, for a DaskRunner run (none: defaults)
            dask_conf: dict[str, Any] | None = dict(context.config_loader["dask"])
        except Exception:  # noqa: BLE001 - no dask.yml anywhere
            dask_conf = None
        # The cluster module imports distributed (a few hundred ms): without a dask.yml it is only
        # loaded here to forget the settings of an earlier session in this process.
        if dask_conf is not None or "mlsp_pipelines.cluster" in sys.modules:
            from mlsp_pipelines import cluster

            cluster.set_active(dask_conf)
        config.rebuild_pipelines()  # an earlier session in this process may have cached other graphs


class _NodeObserver(observers.FitObserver):
    """Forwards the training loop's events of one node to the session."""

    def __init__(self, session: TrackingSession, state: NodeState) -> None:
        self.session, self.state = session, state
        self.run: Any = None

    def fit_started(self, *, desc: str, train: Any, val: Any, params: Any) -> None:
        self.run = self.session.fit_started(self.state, desc, train, val, params)

    def epoch_ended(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.run is not None:
            self.session.epoch_ended(self.run, epoch, metrics)

    def fit_ended(self, result: Any) -> None:
        if self.run is not None:
            self.session.fit_ended(self.run, result)


class MlflowHook:
    """One parent run per ``kedro run``, one run per trained model, nested runs per extra training."""

    def __init__(self) -> None:
        self._session: TrackingSession | None = None
        self._starting: Future[TrackingSession] | None = None  # the MLflow run's set-up, under way
        self.root = Path.cwd()
        self.env = "local"
        self.mlflow_conf: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.catalog: Any = None
        self.lock: PipelineLock | None = None
        self.family = config.DEFAULT_PIPELINE
        self._remote = False  # a node's hook on a Dask worker: borrows the driver's runs (see for_remote_node)
        self._tokens: dict[str, Any] = {}  # node name → its installed training observer
        self._declared_cache: dict[str, dict[str, Any] | None] = {}
        self._locked: dict[str, str] = {}

    # -- set-up ------------------------------------------------------------------------------------
    @property
    def session(self) -> TrackingSession | None:
        """The run's session; None when tracking is off. The MLflow run is set up in the background
        while the first nodes run (importing MLflow and opening its store take over a second); the
        first use waits for it, and raises its error if the set-up failed."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            self._session = starting.result()
        return self._session

    @property
    def tracker(self) -> Any:
        """The session's run tracker (None when tracking is off)."""
        session = self.session
        return session.tracker if session is not None else None

    def _tracking(self) -> bool:
        """Tracking is on (the run has started or is starting), without waiting for it."""
        return self._starting is not None or self._session is not None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self.root = Path(context.project_path)
        self.env = getattr(context, "env", None) or "local"
        try:
            self.mlflow_conf = dict(context.config_loader["mlflow"])
        except Exception:  # noqa: BLE001 - no mlflow.yml: defaults
            self.mlflow_conf = {}
        self.params = dict(context.config_loader["parameters"])

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun only rank 0 locks the folder and talks to MLflow
        self._session, self._starting, self._tokens, self._declared_cache = None, None, {}, {}
        self.catalog = catalog
        names = run_params.get("pipeline_names") or ["__default__"]
        self.family = pipeline_family(names)
        self.env = run_params.get("env") or self.env
        self.lock = PipelineLock(self.root, self.family)
        self.lock.acquire(command=command_line(), kedro_session_id=str(run_params.get("run_id")))
        if not self.mlflow_conf.get("enabled", True):
            return
        try:
            uri = resolve_tracking_uri(self.mlflow_conf.get("tracking_uri"), self.root)
            check_reachable(uri)  # a server that does not answer stops the run before any node
            _interrupt_on_sigterm()  # signal handlers can only be set from the main thread
            self._locked = lineage.dvc_locked(self.root)
        except BaseException:
            self._release()
            raise
        model_nodes = [n.namespace for n in pipeline.nodes if MODEL_RUN_TAG in n.tags and n.namespace]
        context = RunContext(self.root, self.env, self.family, self.mlflow_conf, self.params)
        self._starting = _in_background(self._start, context, uri, names, model_nodes, run_params)

    def _start(self, context: RunContext, uri: str, names: list[str], model_nodes: list[str],
               run_params: dict[str, Any]) -> TrackingSession:
        session = TrackingSession.start(context, uri, names=names, models=sorted(set(model_nodes)),
                                        run_id=run_params.get("run_id"),
                                        runtime_params=run_params.get("runtime_params") or {},
                                        locked=self._locked, stage=dvc_stage())
        session.expect_model_nodes(model_nodes)
        if self.lock is not None:
            self.lock.update(mlflow_run_id=session.run_id, mlflow_run_name=session.tracker.parent.name)
        return session

    def _declared(self, name: str) -> dict[str, Any] | None:
        """``metadata.mlflow`` of catalog entry ``name`` (None: not sent to MLflow)."""
        if name not in self._declared_cache:
            spec = None
            if self.catalog is not None and not name.startswith("params:"):
                try:
                    ds = self.catalog.get(name)
                except Exception:  # noqa: BLE001 - not a catalog entry
                    ds = None
                meta = getattr(ds, "metadata", None) or {}
                spec = meta.get("mlflow") if isinstance(meta, dict) else None
            self._declared_cache[name] = dict(spec) if spec else None
        return self._declared_cache[name]

    # -- nodes -------------------------------------------------------------------------------------------
    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any]) -> None:
        if MODEL_RUN_TAG not in node.tags or not node.namespace or self.session is None:
            return
        # the node that outputs the run's model trains it; a model declared `nested` (a cross-validation
        # fold's) is trained in a run of its own under the model's run
        trains = any((spec := self._declared(o) or {}).get("kind") == "model" and not spec.get("nested")
                     for o in node.outputs)
        declared = {name: (value, spec) for name, value in inputs.items()
                    if (spec := self._declared(name)) and spec.get("kind") == "inputs"}
        state = self.session.node_started(node.name, node.namespace, trains_model=trains,
                                          params=node_params(self.family, node.namespace, inputs), inputs=declared)
        self._tokens[node.name] = observers.install(_NodeObserver(self.session, state))

    def _uninstall(self, node_name: str) -> None:
        token = self._tokens.pop(node_name, None)
        if token is not None:
            observers.uninstall(token)

    @hook_impl
    def after_node_run(self, node: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        self._uninstall(node.name)
        declared = [(name, value, spec) for name, value in outputs.items() if (spec := self._declared(name))]
        if not declared and (self._session is None or node.name not in self._session.nodes):
            return  # nothing to log: no need to wait for a run still being set up
        if self.session is not None:
            self.session.node_finished(node.name, declared)

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        self._uninstall(node.name)
        if self._session is not None:
            self._session.node_failed(node.name)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        """Remember which DVC-tracked paths the run read (hashed for the lineage at the end)."""
        if not self._tracking() or not self._locked or dataset_name.startswith("params:") or self.catalog is None:
            return
        try:
            ds = self.catalog.get(dataset_name)
        except Exception:  # noqa: BLE001
            return
        path = getattr(ds, "_filepath", None) or getattr(ds, "filepath", None)
        if path is not None and self.session is not None:
            self.session.dataset_read(str(path))

    # -- Dask: the driver owns the runs, a node's task on a worker borrows them -------------------------
    def remote_node_state(self, node: Any) -> RemoteState | None:
        """What this node's hook on a worker needs (picklable; see :class:`RemoteState`)."""
        if self.session is None:
            return None
        return self.session.remote_state(node.namespace if MODEL_RUN_TAG in node.tags and node.namespace else None)

    @classmethod
    def for_remote_node(cls, state: RemoteState | None, catalog: Any) -> MlflowHook:
        """The hook of one node on a Dask worker, attached to the driver's runs (None: tracking is off)."""
        hook = cls()
        hook._remote = True
        hook.catalog = catalog
        if state is not None:
            ctx = state.context
            hook.root, hook.env, hook.family, hook.mlflow_conf, hook.params = (
                ctx.root, ctx.env, ctx.family, ctx.mlflow_conf, ctx.params)
            hook._locked = state.locked
            hook._session = TrackingSession.attach(state)
        return hook

    def remote_result(self) -> RemoteResult:
        return self._session.remote_result() if self._session is not None else RemoteResult()

    def remote_node_done(self, node: Any, result: RemoteResult | None, error: BaseException | None) -> None:
        """A node's task ended on a worker: the driver's session merges what it learnt."""
        if self.session is not None:
            self.session.remote_node_done(node.namespace if MODEL_RUN_TAG in node.tags and node.namespace else None,
                                          result, error)

    # -- the end -----------------------------------------------------------------------------------------
    def _end(self, status: str) -> None:
        try:
            try:
                session = self.session  # waits for a set-up still under way
            except Exception:
                if status == "FINISHED":
                    raise  # the run's own error: the MLflow run could not be set up
                logger.exception("the MLflow run could not be set up")  # the pipeline's error comes first
                session = None
            if session is not None:
                session.end(status)
        finally:
            self._session = None
            self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._end("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        for name in list(self._tokens):
            self._uninstall(name)
        self._end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")


def _in_background(fn: Any, *args: Any) -> Future[Any]:
    """``fn(*args)`` in a daemon thread; its error is raised where the future's result is read."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="mlflow-run-setup", daemon=True).start()
    return future
