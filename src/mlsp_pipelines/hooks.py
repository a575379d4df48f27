"""Project hooks: graph parameters for the pipeline registry, and MLflow tracking of runs.

Tracking is declared, never inferred from names:

- a node tagged ``model_run`` belongs to the MLflow run of its namespace (``asc.cnn``), nested
  under the run of the ``kedro run``. That run opens when the namespace's first such node starts
  (its training) and closes when its last one ends (its evaluation), so with the project's runner
  (``runner.py``) its duration is the model's own work;
- the training loop reports to an observer the hook installs for such a node
  (``training/observers.py``): epoch metrics live (``epoch/<name>``, step = epoch), the data it
  trains and validates on as dataset inputs, and the kept (best-epoch) weights' metrics as the
  run's headline ``train_loss``/``val_loss``/``val_acc`` with ``best_epoch``. The node that
  outputs the model (a dataset declared ``kind: model``) trains the model of the run; any other
  training in a ``model_run`` node (a cross-validation fold, ...) gets a run of its own, nested
  under the model's run;
- what a dataset sends to MLflow is its catalog ``metadata: {mlflow: {kind: ...}}``
  (``tracking.KINDS``).
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import re
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from mlsp_pipelines import config, lineage
from mlsp_pipelines.outputs import dvc_stage
from mlsp_pipelines.runlock import PipelineLock
from mlsp_pipelines.tracking import (
    OpenRun,
    RunTracker,
    artifact_root_for,
    check_reachable,
    close_dead_runs,
    command_line,
    experiment_name,
    flatten,
    git_state,
    resolve_tracking_uri,
)
from mlsp_pipelines.training import observers

logger = logging.getLogger(__name__)

SLICE_SUFFIXES = ("_data", "_features", "_train")
MODEL_RUN_TAG = "model_run"
DEFAULT_PIPELINE = "asc"

#: What each pipeline does: the description of its MLflow experiment (the note atop its page).
PIPELINE_DESCRIPTIONS = {
    "asc": "Acoustic scene / sound event classification: log-mel spectrograms of audio clips, classified by "
           "a CNN, a CRNN, an attention-LSTM, a Transformer and a bag-of-frames MLP trained by one loop and "
           "compared on the same test split or cross-validation folds (accuracy, macro-F1, complexity).",
    "asthma": "Respiratory sounds (ICBHI 2017 layout): breathing cycles classified as normal, crackle, wheeze or "
              "both, patient-disjoint splits; sensitivity, specificity and the ICBHI score.",
    "seq2seq": "Sequence-to-sequence translation: GRU encoder-decoders with and without attention and a "
               "Transformer, beam-search decoding, BLEU and chrF by sacreBLEU.",
    "word2vec": "Word embeddings: skip-gram and CBOW trained on a text corpus, against gensim; word-similarity "
                "Spearman and analogies.",
    "viscoelastic": "A viscoelastic solid (Maxwell model with power-law viscosity) simulated from its ODE: models "
                    "predict the stress history from the stretch history, including unseen loading rates.",
}


def pipeline_family(pipeline_names: list[str] | None) -> str:
    """``asc_train`` (a DVC stage slice) belongs to ``asc``, like ``asc`` itself."""
    names = []
    for name in pipeline_names or ["__default__"]:
        if name == "__default__":
            name = DEFAULT_PIPELINE
        for suffix in SLICE_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        if name not in names:
            names.append(name)
    return "+".join(names)


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


@dataclass
class _NodeState:
    """What the hook knows about a node while it runs."""

    node: Any
    model_key: str | None  # namespace of the model run the node belongs to
    trains_model: bool  # it outputs a dataset declared kind: model
    params: dict[str, Any] = field(default_factory=dict)  # its parameters, architecture-independent keys
    declared_splits: dict[str, tuple[str, str, tuple[Any, Any], str | None]] = field(default_factory=dict)
    fits: int = 0
    fit_runs: list[str] = field(default_factory=list)  # keys of nested runs its trainings opened
    token: Any = None
    monitor: Any = None  # on a Dask worker: system metrics of the model's run while this node trains it


class _NodeObserver(observers.FitObserver):
    """Forwards the training loop's events of one node to MLflow."""

    def __init__(self, hook: MlflowHook, state: _NodeState) -> None:
        self.hook, self.state = hook, state
        self.run: OpenRun | None = None

    def fit_started(self, *, desc: str, train: Any, val: Any, params: Any) -> None:
        self.run = self.hook._fit_run(self.state, desc, params)
        self.hook._log_fit_inputs(self.state, self.run, train, val)

    def epoch_ended(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.run is not None:
            self.hook.tracker.log_metrics(self.run, {f"epoch/{k}": v for k, v in metrics.items()}, step=epoch)

    def fit_ended(self, result: Any) -> None:
        if self.run is None:
            return
        best = int(result.best_epoch)
        headline: dict[str, float] = {"best_epoch": best, "epochs_run": int(result.epochs_run),
                                      "train_seconds": float(result.train_seconds),
                                      "stopped_early": int(bool(result.stopped_early)),
                                      "resumed_from": int(getattr(result, "resumed_from", 0))}  # not in the model
        if best >= 1:  # the kept weights are the best epoch's: so are the headline numbers
            headline.update({k: v[best - 1] for k, v in result.history.items() if len(v) >= best})
        self.hook.tracker.log_metrics(self.run, headline)


class MlflowHook:
    """One parent run per ``kedro run``, one run per trained model, nested runs per extra training."""

    def __init__(self) -> None:
        self._tracker: RunTracker | None = None
        self._starting: Future[None] | None = None  # the MLflow run's set-up, under way in the background
        self.root = Path.cwd()
        self.env = "local"
        self.mlflow_conf: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.catalog: Any = None
        self.lock: PipelineLock | None = None
        self._remote = False  # a node's hook on a Dask worker: borrows the driver's runs (see for_remote_node)
        self._reset()

    def _reset(self) -> None:
        self.family = DEFAULT_PIPELINE
        self._remaining: dict[str, int] = {}
        self._nodes: dict[str, _NodeState] = {}
        self._declared_cache: dict[str, dict[str, Any] | None] = {}
        self._digests: dict[int, tuple[Any, str]] = {}
        self._used_paths: set[str] = set()
        self._locked: dict[str, str] = {}
        self._record: dict[str, Any] = {}
        self._child_tags: dict[str, str] = {}
        self._stamp = ""
        self._remote_used = False

    # -- set-up ------------------------------------------------------------------------------------
    @property
    def tracker(self) -> RunTracker | None:
        """The run's tracker; None when tracking is off. The MLflow run is set up in the background
        while the first nodes run (importing MLflow and opening its store take over a second);
        the first use waits for it, and raises its error if the set-up failed."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            starting.result()
        return self._tracker

    @tracker.setter
    def tracker(self, value: RunTracker | None) -> None:
        self._tracker = value

    def _tracking(self) -> bool:
        """Tracking is on (the run has started or is starting), without waiting for it."""
        return self._starting is not None or self._tracker is not None

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
        self._reset()
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
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._locked = lineage.dvc_locked(self.root)
            for n in pipeline.nodes:
                if MODEL_RUN_TAG in n.tags and n.namespace:
                    self._remaining[n.namespace] = self._remaining.get(n.namespace, 0) + 1
        except BaseException:
            self._release()
            raise
        self._starting = _in_background(self._start_or_clean_up, uri, run_params, pipeline, names)

    def _start_or_clean_up(self, uri: str, run_params: dict[str, Any], pipeline: Any, names: list[str]) -> None:
        try:
            self._start(uri, run_params, pipeline, names)
        except BaseException:
            if self._tracker is not None:  # the run never started: no RUNNING leftovers
                self._tracker.end("FAILED")
                self._tracker = None
            raise

    def _start(self, uri: str, run_params: dict[str, Any], pipeline: Any, names: list[str]) -> None:
        import mlflow

        experiment = experiment_name(self.family, self.env)
        interval = self.mlflow_conf.get("system_metrics_interval_s", 1.0)
        self._tracker = RunTracker(uri, experiment, artifact_root_for(uri, self.root), system_metrics_interval=interval)
        mlflow.set_tracking_uri(uri)  # log_model goes through the global API
        mlflow.set_experiment(experiment_id=self._tracker.experiment_id)
        close_dead_runs(self._tracker.client)
        self._describe_experiment()
        git = git_state(self.root)
        if git["git_dirty"] == "true":
            logger.warning("the git work tree has uncommitted changes: this run is not reproducible from %s",
                           git["git_commit"][:12])
        command = command_line()
        section = self.params.get(self.family, {})
        self._record = lineage.collect(section, git, command)
        self._record.update(pipelines=names, env=self.env, runtime_params=run_params.get("runtime_params") or {})
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        self._child_tags = {
            "pipeline": self.family, "kedro_env": self.env, "kedro_session_id": str(run_params.get("run_id")),
            "mlflow.user": user, "mlflow.source.name": command, "mlflow.source.type": "LOCAL", **git,
        }
        if git["git_commit"] != "unknown":
            self._child_tags.update({"mlflow.source.git.commit": git["git_commit"],
                                     "mlflow.source.git.branch": git["git_branch"]})
        if os.environ.get("MLSP_REPRODUCES"):
            self._child_tags["reproduces"] = os.environ["MLSP_REPRODUCES"]
        models = sorted({n.namespace for n in pipeline.nodes if MODEL_RUN_TAG in n.tags and n.namespace})
        tags = {
            **self._child_tags,
            "kedro_pipelines": ",".join(names), "command": command,
            "python_version": self._record["python"], "params_digest": self._record["params_digest"],
            "cpu_kernel_tier": self._record["kernel_tier"],
            **{f"pkg.{k}": v for k, v in self._record["packages"].items()},
            "mlflow.note.content": (
                f"`{command}` (environment `{self.env}`) at commit `{git['git_commit'][:12]}`.\n\n"
                f"Models: {', '.join(m.split('.')[-1] for m in models) or 'none'} — each is a nested run. "
                "To compare them, expand this run, tick the model runs and press **Compare**."
            ),
        }
        stage = dvc_stage()
        if stage:  # a `dvc repro` stage: named and tagged as one, so it never reads as a training family
            tags.update({"dvc_stage": stage, "mlsp.kind": "dvc_stage"})
            tags["mlflow.note.content"] = (
                f"DVC stage `{stage}` of `dvc repro` (`{command}`) at commit `{git['git_commit'][:12]}`. "
                + (f"Models: {', '.join(m.split('.')[-1] for m in models)} — each is a nested run."
                   if models else "It prepares data for the next stage: no models."))
            run_name = f"{stage} (dvc) {self._stamp}"
        else:
            tags["mlsp.kind"] = "run"
            run_name = f"{self.family} {self.env} {self._stamp}"
        run_id = self._tracker.start(run_name, tags)
        self._tracker.log_params(self._tracker.parent, flatten(run_config(section)))
        self._tracker.client.log_dict(run_id, self._record, "lineage.json")
        if self.lock is not None:
            self.lock.update(mlflow_run_id=run_id, mlflow_run_name=run_name)
        logger.info("MLflow run '%s' (%s) in experiment '%s' at %s", run_name, run_id, experiment, uri)

    def _describe_experiment(self) -> None:
        """The experiment's note says what the pipeline does and how its runs are organised (set once)."""
        tracker = self._tracker
        exp = tracker.client.get_experiment(tracker.experiment_id)
        if exp.tags.get("mlflow.note.content"):
            return
        what = " ".join(PIPELINE_DESCRIPTIONS.get(f, f) for f in self.family.split("+"))
        tracker.client.set_experiment_tag(tracker.experiment_id, "mlflow.note.content", (
            f"{what}\n\nEach top-level run is one `kedro run` (environment `{self.env}`), or one DVC stage "
            "(named `<stage> (dvc)`, tag `mlsp.kind = dvc_stage`). Expand a run to see its model runs; tick "
            "them and press **Compare** to line them up."))

    # -- declarations ----------------------------------------------------------------------------------
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

    def _digest(self, *arrays: Any) -> str:
        key = tuple(id(a) for a in arrays)
        hit = self._digests.get(hash(key))
        if hit is not None and all(x is y for x, y in zip(hit[0], arrays)):
            return hit[1]
        digest = lineage.data_digest(*arrays)
        self._digests[hash(key)] = (arrays, digest)  # holds the arrays: ids stay unique meanwhile
        return digest

    # -- nodes -------------------------------------------------------------------------------------------
    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any]) -> None:
        if MODEL_RUN_TAG not in node.tags or not node.namespace or self.tracker is None:
            return
        # the node that outputs the run's model trains it; a model declared `nested` (a cross-validation
        # fold's) is trained in a run of its own under the model's run
        trains = any((spec := self._declared(o) or {}).get("kind") == "model" and not spec.get("nested")
                     for o in node.outputs)
        state = _NodeState(node, node.namespace, trains, params=self._node_params(node, inputs))
        for name, value in inputs.items():
            spec = self._declared(name)
            if spec and spec.get("kind") == "inputs":
                state.declared_splits.update(self._splits(name, value, spec))
        run = self._model_run(node.namespace)
        self.tracker.log_params(run, state.params)
        if self._remote and trains:  # the driver's run has no monitor: sample the worker that trains
            state.monitor = self.tracker._monitor(run.run_id)  # noqa: SLF001
        state.token = observers.install(_NodeObserver(self, state))
        self._nodes[node.name] = state

    @staticmethod
    def _stop_monitor(state: _NodeState | None) -> None:
        if state is not None and state.monitor is not None:
            try:
                state.monitor.finish()
            except Exception:  # noqa: BLE001 - system metrics are optional
                logger.debug("system metrics monitor did not finish cleanly", exc_info=True)
            state.monitor = None

    @hook_impl
    def after_node_run(self, node: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        state = self._nodes.pop(node.name, None)
        if state is not None and state.token is not None:
            observers.uninstall(state.token)
        self._stop_monitor(state)
        if state is None and not any(self._declared(name) for name in outputs):
            return  # nothing to log: no need to wait for a run still being set up
        if self.tracker is None:
            return
        if state is not None:
            run = self.tracker.runs[state.fit_runs[0]] if len(state.fit_runs) == 1 else self.tracker.runs[state.model_key]
            self._log_declared_splits(state, run)
        else:
            run = self.tracker.parent
        for name, value in outputs.items():
            spec = self._declared(name)
            if not spec:
                continue
            if spec.get("kind") == "model":
                self._log_model(run, name, value, spec)
            else:
                self.tracker.log_declared(run, name, value, spec)
            if spec.get("misclassified_audio"):
                self._log_misclassified(run, value, spec["misclassified_audio"])
        if state is not None:
            for key in state.fit_runs:
                self.tracker.close(key, "FINISHED")
            self._node_done(state.model_key, "FINISHED")

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        state = self._nodes.pop(node.name, None)
        if state is None:
            return
        if state.token is not None:
            observers.uninstall(state.token)
        self._stop_monitor(state)
        if self.tracker is not None:
            for key in state.fit_runs:
                self.tracker.close(key, "FAILED")
            if not self._remote:  # on a Dask worker the driver closes the model's run
                self.tracker.close(state.model_key, "FAILED")

    def _node_done(self, key: str | None, status: str) -> None:
        if key is None or self._remote:
            return
        self._remaining[key] = self._remaining.get(key, 1) - 1
        if self._remaining[key] <= 0:
            self.tracker.close(key, status)

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
        if path is None:
            return
        tracked = lineage.tracked_path_of(self.root, str(path), self._locked)
        if tracked:
            self._used_paths.add(tracked)

    # -- model runs ------------------------------------------------------------------------------------
    def _model_run(self, key: str, *, monitor: bool = True) -> OpenRun:
        model = key.split(".")[-1]
        return self.tracker.open(key, f"{model} {self._stamp}",
                                 {**self._child_tags, "architecture": model, "mlsp.kind": "model"}, monitor=monitor)

    # -- Dask: the driver owns the runs, a node's task on a worker borrows them -------------------------
    def remote_node_state(self, node: Any) -> dict[str, Any] | None:
        """What this node's hook on a worker needs (picklable): the store, the parent run, the
        model's run (opened here, on the driver, when its first node is submitted; no system-metrics
        monitor, which would sample the driver's machine) and the run's tags."""
        if self.tracker is None or self.tracker.parent is None:
            return None
        self._remote_used = True
        model_runs = {}
        if MODEL_RUN_TAG in node.tags and node.namespace:
            model_runs[node.namespace] = dataclasses.replace(self._model_run(node.namespace, monitor=False), monitor=None)
        return {
            "uri": self.tracker.uri, "experiment": self.tracker.experiment, "experiment_id": self.tracker.experiment_id,
            "system_metrics_interval": self.tracker.system_metrics_interval,
            "parent": dataclasses.replace(self.tracker.parent, monitor=None), "model_runs": model_runs,
            "root": str(self.root), "env": self.env, "family": self.family, "mlflow_conf": self.mlflow_conf,
            "params": self.params, "child_tags": self._child_tags, "stamp": self._stamp, "locked": self._locked,
        }

    @classmethod
    def for_remote_node(cls, state: dict[str, Any] | None, catalog: Any) -> MlflowHook:
        """The hook of one node on a Dask worker, attached to the driver's runs (``state`` from
        :meth:`remote_node_state`; None: tracking is off). It logs to those runs and opens and
        closes only the runs of the node's own trainings (cross-validation folds)."""
        hook = cls()
        hook._remote = True
        hook.catalog = catalog
        if state is None:
            return hook
        import mlflow

        hook.root, hook.env, hook.family = Path(state["root"]), state["env"], state["family"]
        hook.mlflow_conf, hook.params = state["mlflow_conf"], state["params"]
        hook._child_tags, hook._stamp, hook._locked = state["child_tags"], state["stamp"], state["locked"]
        hook.tracker = RunTracker.attach(state["uri"], state["experiment"], state["experiment_id"], state["parent"],
                                         system_metrics_interval=state["system_metrics_interval"])
        hook.tracker.runs.update(state["model_runs"])
        hook._borrowed = set(state["model_runs"])
        mlflow.set_tracking_uri(state["uri"])  # log_model goes through the global API
        mlflow.set_experiment(experiment_id=state["experiment_id"])
        return hook

    def remote_result(self) -> dict[str, Any]:
        """What the worker learnt for the driver: the borrowed runs' logged keys, datasets and
        model, the data digests and the DVC-tracked paths read (for the lineage)."""
        runs = {}
        if self.tracker is not None:
            runs = {k: dataclasses.replace(self.tracker.runs[k], monitor=None)
                    for k in getattr(self, "_borrowed", ()) if k in self.tracker.runs}
        return {"model_runs": runs, "datasets": dict(self._record.get("datasets", {})),
                "used_paths": sorted(self._used_paths)}

    def remote_node_done(self, node: Any, result: dict[str, Any] | None, error: BaseException | None) -> None:
        """A node's task ended on a worker: merge what it learnt; close the model's run after its
        last node (FAILED at once when a node of it failed)."""
        if self.tracker is None:
            return
        for key, snap in (result or {}).get("model_runs", {}).items():
            run = self.tracker.runs.get(key)
            if run is not None:
                run.params.update(snap.params)
                run.datasets.update(snap.datasets)
                run.model_id = run.model_id or snap.model_id
                run.live_epochs = run.live_epochs or snap.live_epochs
        if result:
            self._record.setdefault("datasets", {}).update(result.get("datasets", {}))
            self._used_paths.update(result.get("used_paths", ()))
        if MODEL_RUN_TAG in node.tags and node.namespace:
            if error is None:
                self._node_done(node.namespace, "FINISHED")
            else:
                self.tracker.close(node.namespace, "FAILED")

    def _node_params(self, node: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """The node's ``params:`` inputs under architecture-independent keys: the model spec as
        ``model.*`` (kwargs with the registry's defaults filled in), the training settings as
        ``train.*`` (with the model's overrides applied), any other section by its name."""
        from mlsp_pipelines.params import ModelSpec, TrainParams

        def is_spec(v: Any) -> bool:  # ModelSpec, or a task's own spec with the same shape
            return isinstance(v, ModelSpec) or (hasattr(v, "arch") and hasattr(v, "kwargs") and hasattr(v, "model_dump"))

        specs = {k: v for k, v in inputs.items() if k.startswith("params:")}
        model = next((v for v in specs.values() if isinstance(v, ModelSpec)), None)
        out: dict[str, Any] = {}
        for name, value in specs.items():
            if is_spec(value):
                out.update(_model_params(value, node.namespace.split(".")[-1]))
            elif isinstance(value, TrainParams):
                out.update(flatten(model.train_params(value) if model else value, "train"))
            else:
                key = name[len("params:"):]
                if key.startswith(f"{self.family}."):
                    key = key[len(self.family) + 1:]
                out.update(flatten(value, key) if hasattr(value, "model_dump") or isinstance(value, dict)
                           else {key: value})
        return out

    def _fit_run(self, state: _NodeState, desc: str, params: Any) -> OpenRun:
        """Where a training of this node logs: the model's run for the node that outputs the
        model (its first training), else a run of its own nested under the model's run."""
        state.fits += 1
        model_run = self._model_run(state.model_key)
        if state.trains_model and state.fits == 1:
            model_run.live_epochs = True
            return model_run
        short = state.node.name.split(".")[-1]
        key = f"{state.node.name}#{state.fits}"
        name = f"{state.model_key.split('.')[-1]} {short}" + (f" {state.fits}" if state.fits > 1 else "")
        run = self.tracker.open(key, name, {**self._child_tags, "architecture": state.model_key.split(".")[-1],
                                            "mlsp.kind": "training", "kedro_node": state.node.name, "fit": desc},
                                parent=model_run.run_id)
        run.live_epochs = True
        state.fit_runs.append(key)
        model_params = {k: v for k, v in state.params.items() if not k.startswith("train.")}
        self.tracker.log_params(run, {**model_params, **flatten(params, "train")})
        return run

    # -- inputs ---------------------------------------------------------------------------------------
    def _splits(self, name: str, value: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """``{context: (dataset name, digest, (X, y), source)}`` of a declared model input."""
        prefix = spec.get("name", name.rsplit(".", 1)[0])
        source = spec.get("source")
        source = str((self.root / source).resolve()) if source else None
        out = {}
        for context, keys in (spec.get("splits") or {}).items():
            # [features, targets] keys, or one key holding a tuple (inputs..., target)
            arrays = tuple(value[k] for k in keys) if isinstance(keys, (list, tuple)) else tuple(value[keys])
            if len(arrays[0]):
                out[context] = (f"{prefix}.{context}", self._digest(*arrays), arrays, source)
        return out

    def _log_fit_inputs(self, state: _NodeState, run: OpenRun, train: Any, val: Any) -> None:
        """The tensors a training actually used, named after the declared split they equal."""
        by_digest = {d[1]: d for d in state.declared_splits.values()}
        for context, tensors in (("train", train), ("val", val)):
            if tensors is None or not len(tensors[0]):
                continue
            digest = self._digest(*tensors)
            if digest in by_digest:
                ds_name, _, _, source = by_digest[digest]
            else:  # data the node made itself (a fold, a sampled set): named after the node
                ds_name, source = f"{self.family}.{context}", None
                if not state.trains_model:
                    ds_name += f" ({state.node.name.split('.')[-1]})"
            self._dataset_used(ds_name, digest)
            self.tracker.log_input(run, name=ds_name, context=context, arrays=tuple(tensors), digest=digest,
                                   source=source or str(self.root / "data"))

    def _log_declared_splits(self, state: _NodeState, run: OpenRun) -> None:
        """Declared splits of a model input the node read, unless its training used other data
        (then only what the training used is known, e.g. a cross-validation fold)."""
        if not state.declared_splits:
            return
        used = {c: d for c, d in run.datasets.items()}
        declared = {d[1] for d in state.declared_splits.values()}
        if any(d[1] not in declared for d in used.values()):
            return
        for context, (ds_name, digest, arrays, source) in state.declared_splits.items():
            self._dataset_used(ds_name, digest)
            self.tracker.log_input(run, name=ds_name, context=context, arrays=arrays, digest=digest,
                                   source=source or str(self.root / "data"))

    def _dataset_used(self, name: str, digest: str) -> None:
        self._record.setdefault("datasets", {})[name] = digest

    # -- models and examples ---------------------------------------------------------------------------
    def _log_model(self, run: OpenRun, name: str, bundle: dict[str, Any], spec: dict[str, Any]) -> None:
        """The bundle as an MLflow logged model of ``run`` (registered when declared/configured)."""
        from mlsp_pipelines import serving

        if not self.mlflow_conf.get("log_models", True):
            return
        register = bool(spec.get("register", self.mlflow_conf.get("register_models", False)))
        model = name.rsplit(".", 1)[0][len(self.family) + 1:] if name.startswith(f"{self.family}.") else name
        registered = f"{self.tracker.experiment}.{model}" if register else None  # e.g. asc.cnn, asc.cnn.fold_1
        flavor = spec.get("flavor", "pytorch")
        logged_name = model.replace(".", "-")  # the Models tab's name (no dots allowed): cnn, cnn-fold_1
        t0 = time.perf_counter()
        if flavor == "audio_classifier":
            # the settings the features were computed with ('auto' values resolved), else the configuration
            key = spec.get("feature_params")
            features = bundle.get("features") or (config.section(self.params, key) if key else None)
            if not features:
                raise ValueError(f"catalog entry {name}: the bundle holds no 'features' and metadata.mlflow."
                                 f"feature_params={key!r} names no parameters; the served model needs the feature settings")
            info = serving.log_audio_classifier(run.run_id, bundle, dict(features), name=logged_name,
                                                registered_model_name=registered)
        elif flavor == "pytorch":
            info = serving.log_module(run.run_id, bundle, name=logged_name, registered_model_name=registered)
        else:
            raise ValueError(f"catalog entry {name}: metadata.mlflow.flavor={flavor!r}; use audio_classifier or pytorch")
        run.model_id = info.model_id
        self.tracker.client.set_tag(run.run_id, "model_uri", info.model_uri)
        if registered:
            self.tracker.client.set_tag(run.run_id, "registered_model", f"{registered}/{info.registered_model_version}")
        logger.info("%s: MLflow model %s (%s) in %.1f s", name, info.model_uri, flavor, time.perf_counter() - t0)

    def _log_misclassified(self, run: OpenRun, predictions: Any, spec: dict[str, Any]) -> None:
        """The most confident mistakes on the test clips as WAV files (``misclassified/``)."""
        import soundfile as sf

        wrong = predictions[predictions["actual"] != predictions["predicted"]]
        if wrong.empty or self.catalog is None:
            return
        wrong = wrong.sort_values("confidence", ascending=False, kind="stable").head(int(spec.get("n", 3)))
        index = self.catalog.load(spec["index"]).set_index("filename")
        import tempfile

        try:  # index paths are relative to the dataset root, the task's raw audio folder
            root = Path(self.catalog.load(spec["index"].rsplit(".", 1)[0] + ".raw_audio"))
        except Exception:  # noqa: BLE001 - no raw folder in the catalog: paths as stored
            root = Path(".")

        with tempfile.TemporaryDirectory() as tmp:
            for k, row in enumerate(wrong.itertuples(index=False), 1):
                if row.filename not in index.index:
                    continue
                clip = index.loc[row.filename]
                with sf.SoundFile(str(root / str(clip["path"]))) as f:
                    sr = f.samplerate
                    if "offset_s" in clip and clip["offset_s"] == clip["offset_s"]:
                        f.seek(int(round(float(clip["offset_s"]) * sr)))
                    frames = int(round(float(clip["duration_s"]) * sr)) if "duration_s" in clip and clip["duration_s"] == clip["duration_s"] else -1
                    audio = f.read(frames=frames, dtype="float32")
                name = f"{k}_{row.actual}_as_{row.predicted}_{row.confidence:.2f}_{Path(str(row.filename)).stem}"
                out = Path(tmp) / (re.sub(r"[^\w.-]+", "_", name) + ".wav")  # labels may hold any character
                sf.write(out, audio, sr, subtype="PCM_16")
                self.tracker.client.log_artifact(run.run_id, str(out), "misclassified")

    # -- the end -----------------------------------------------------------------------------------------
    def _finish_lineage(self) -> None:
        """Hash the DVC-tracked data the run read, compare with dvc.lock, and record it."""
        tracker = self.tracker
        if tracker is None or tracker.parent is None:
            return
        versions = lineage.data_versions(self.root, self._used_paths, self._locked)
        self._record["data_versions"] = versions
        differs = [p for p, v in versions.items() if not v["matches_dvc_lock"]]
        tags = {f"data.{p}": str(v["md5"]) for p, v in versions.items()}
        if versions:
            tags["data_matches_dvc_lock"] = str(not differs).lower()
        for key, value in tags.items():
            tracker.client.set_tag(tracker.parent.run_id, key, value)
        if differs:
            logger.warning("data used by this run differs from dvc.lock (run `dvc repro` / `dvc commit` to record it): %s",
                           "; ".join(f"{p}: used {versions[p]['md5']}, dvc.lock {versions[p]['dvc_lock']}" for p in differs))
        tracker.client.log_dict(tracker.parent.run_id, self._record, "lineage.json")

    def _close_leftovers(self, status: str) -> None:
        """Runs of this session still RUNNING after a Dask run (opened by a worker that died) end
        with the run's status, never left RUNNING."""
        tracker = self.tracker
        session = self._child_tags.get("kedro_session_id")
        if tracker is None or not self._remote_used or not session:
            return
        for run in tracker.client.search_runs([tracker.experiment_id], f"tags.kedro_session_id = '{session}' and "
                                              "attributes.status = 'RUNNING'", max_results=1000):
            if run.info.run_id != tracker.parent_id and all(r.run_id != run.info.run_id for r in tracker.runs.values()):
                tracker.client.set_terminated(run.info.run_id, status=status if status != "FINISHED" else "KILLED")
                tracker.client.set_tag(run.info.run_id, "mlsp.closed_by", "the Dask driver: its worker was gone")

    def _end(self, status: str) -> None:
        try:
            try:
                tracker = self.tracker  # waits for a set-up still under way
            except Exception:
                if status == "FINISHED":
                    raise  # the run's own error: the MLflow run could not be set up
                logger.exception("the MLflow run could not be set up")  # the pipeline's error comes first
                tracker = None
            if tracker is not None:
                try:
                    self._finish_lineage()
                finally:
                    try:
                        self._close_leftovers(status)
                    finally:
                        tracker.end(status)
        finally:
            self.tracker = None
            self._digests.clear()
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
        for state in list(self._nodes.values()):
            if state.token is not None:
                observers.uninstall(state.token)
        self._nodes.clear()
        self._end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")


def run_config(section: dict[str, Any]) -> dict[str, Any]:
    """The configuration a run used, for its parameters: the model entries it trains (``models``
    filtered by ``architectures``), and a disabled ``sweep`` reduced to ``enabled: false``."""
    out = dict(section)
    archs = out.get("architectures")
    if isinstance(out.get("models"), dict) and isinstance(archs, (list, tuple)):
        out["models"] = {k: v for k, v in out["models"].items() if k in archs}
    if isinstance(out.get("sweep"), dict) and not out["sweep"].get("enabled", False):
        out["sweep"] = {"enabled": False}
    return out


def _in_background(fn: Any, *args: Any) -> Future[None]:
    """``fn(*args)`` in a daemon thread; its error is raised where the future's result is read."""
    future: Future[None] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="mlflow-run-setup", daemon=True).start()
    return future


def _model_params(spec: Any, name: str) -> dict[str, Any]:
    """``model.name``, ``model.arch`` and ``model.kwargs.*`` with every default of the
    architecture's config filled in, so the same key means the same thing in every run."""
    from mlsp_pipelines.models import model_config

    kwargs = dict(spec.kwargs)
    try:
        cfg = model_config(spec.arch, **kwargs)
        kwargs = {name: getattr(cfg, name) for name in type(cfg).model_fields}
    except Exception:  # noqa: BLE001 - kwargs completed by the node from the data: log them as given
        pass
    out = {"model.name": name, "model.arch": spec.arch}
    out.update({f"model.kwargs.{k}": list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})
    return out
