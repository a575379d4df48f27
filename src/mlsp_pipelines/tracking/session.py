"""What one ``kedro run`` records in MLflow, independent of Kedro's hook machinery.

:class:`TrackingSession` is driven by the Kedro hook (``hooks.MlflowHook``, a thin adapter) with
plain values: node names, namespaces, the catalog declarations of a node's datasets. It keeps the
run's bookkeeping (which model run a node belongs to, how many of its nodes are left, the data a
training used, the lineage record) and logs through :class:`~mlsp_pipelines.tracking.store.RunTracker`,
the only object that talks to MLflow.

- One parent run per ``kedro run`` (or DVC stage: named ``<stage> (dvc) <time>``, tag
  ``mlsp.kind = dvc_stage``), one run per trained model (``mlsp.kind = model``) nested under it,
  opened when the model's first ``model_run`` node starts and closed after its last one;
- the training loop reports to an observer (``training/observers.py``): epoch metrics live, the
  data it trains and validates on as dataset inputs, and the kept (best-epoch) weights' metrics as
  the run's headline. The node that outputs the model trains the model of the run; any other
  training (a cross-validation fold, ...) gets a run of its own, nested under the model's run;
- what a dataset sends to MLflow is its catalog ``metadata: {mlflow: {kind: ...}}`` (``store.KINDS``);
- on a Dask worker a session is attached to the driver's runs (:class:`RemoteState`) and hands
  back what it learnt (:class:`RemoteResult`).
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsp_pipelines import lineage
from mlsp_pipelines.tracking.flatten import flatten
from mlsp_pipelines.tracking.store import (
    OpenRun,
    RunTracker,
    artifact_root_for,
    command_line,
    experiment_name,
    git_state,
)

logger = logging.getLogger(__name__)

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

Spec = dict[str, Any]  # a dataset's catalog ``metadata.mlflow``


@dataclass(frozen=True)
class RunContext:
    """The Kedro run a session records: project folder, environment, pipeline family, the
    ``mlflow.yml`` settings and the resolved parameters."""

    root: Path
    env: str
    family: str
    mlflow_conf: dict[str, Any]
    params: dict[str, Any]


@dataclass
class RemoteState:
    """What a node's task on a Dask worker needs to log to the driver's runs (picklable): the
    store, the parent run, the model's run (opened on the driver, without a system-metrics
    monitor, which would sample the driver's machine) and the run's tags."""

    uri: str
    experiment: str
    experiment_id: str
    system_metrics_interval: float | None
    parent: OpenRun
    model_runs: dict[str, OpenRun]
    context: RunContext
    child_tags: dict[str, str]
    stamp: str
    locked: dict[str, str]


@dataclass
class RemoteResult:
    """What a worker's session learnt for the driver: the borrowed runs' logged keys, datasets
    and model, the data digests and the DVC-tracked paths read (for the lineage)."""

    model_runs: dict[str, OpenRun] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    used_paths: list[str] = field(default_factory=list)


@dataclass
class NodeState:
    """What the session knows about a ``model_run`` node while it runs."""

    name: str
    model_key: str  # namespace of the model run the node belongs to
    trains_model: bool  # it outputs a dataset declared kind: model
    params: dict[str, Any] = field(default_factory=dict)  # its parameters, architecture-independent keys
    declared_splits: dict[str, tuple[str, str, tuple[Any, Any], str | None]] = field(default_factory=dict)
    fits: int = 0
    fit_runs: list[str] = field(default_factory=list)  # keys of nested runs its trainings opened
    monitor: Any = None  # on a Dask worker: system metrics of the model's run while this node trains it


class TrackingSession:
    """The MLflow record of one ``kedro run``: its parent run, model runs and lineage."""

    def __init__(self, context: RunContext, tracker: RunTracker, *, remote: bool = False) -> None:
        self.context = context
        self.tracker = tracker
        self.remote = remote  # attached to a Dask driver's runs: closes only the runs it opened
        self.child_tags: dict[str, str] = {}
        self.stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.locked: dict[str, str] = {}  # DVC-tracked paths and their dvc.lock md5
        self.record: dict[str, Any] = {}  # lineage.json
        self.remaining: dict[str, int] = {}  # model run → its model_run nodes still to finish
        self.nodes: dict[str, NodeState] = {}
        self.used_paths: set[str] = set()
        self.borrowed: set[str] = set()
        self.remote_used = False
        self._digests: dict[int, tuple[Any, str]] = {}

    # -- start ---------------------------------------------------------------------------------------
    @classmethod
    def start(cls, context: RunContext, uri: str, *, names: list[str], models: list[str], run_id: str | None,
              runtime_params: dict[str, Any], locked: dict[str, str], stage: str | None) -> TrackingSession:
        """Open the run's parent run: tags (git, packages, command), configuration as parameters,
        the experiment's description and the lineage record. ``models``: the model runs' namespaces."""
        experiment = experiment_name(context.family, context.env)
        interval = context.mlflow_conf.get("system_metrics_interval_s", 1.0)
        tracker = RunTracker(uri, experiment, artifact_root_for(uri, context.root), system_metrics_interval=interval)
        self = cls(context, tracker)
        self.locked = locked
        try:
            self._start(names, models, run_id, runtime_params, stage)
        except BaseException:
            tracker.end("FAILED")  # the run never started: no RUNNING leftovers
            raise
        return self

    def _start(self, names: list[str], models: list[str], run_id: str | None, runtime_params: dict[str, Any],
               stage: str | None) -> None:
        ctx, tracker = self.context, self.tracker
        tracker.use_globally()  # log_model goes through MLflow's global API
        tracker.close_dead_runs()
        what = " ".join(PIPELINE_DESCRIPTIONS.get(f, f) for f in ctx.family.split("+"))
        tracker.describe_experiment(
            f"{what}\n\nEach top-level run is one `kedro run` (environment `{ctx.env}`), or one DVC stage "
            "(named `<stage> (dvc)`, tag `mlsp.kind = dvc_stage`). Expand a run to see its model runs; tick "
            "them and press **Compare** to line them up.")
        git = git_state(ctx.root)
        if git["git_dirty"] == "true":
            logger.warning("the git work tree has uncommitted changes: this run is not reproducible from %s",
                           git["git_commit"][:12])
        command = command_line()
        section = ctx.params.get(ctx.family, {})
        self.record = lineage.collect(section, git, command)
        self.record.update(pipelines=names, env=ctx.env, runtime_params=runtime_params)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        self.child_tags = {
            "pipeline": ctx.family, "kedro_env": ctx.env, "kedro_session_id": str(run_id),
            "mlflow.user": user, "mlflow.source.name": command, "mlflow.source.type": "LOCAL", **git,
        }
        if git["git_commit"] != "unknown":
            self.child_tags.update({"mlflow.source.git.commit": git["git_commit"],
                                    "mlflow.source.git.branch": git["git_branch"]})
        if os.environ.get("MLSP_REPRODUCES"):
            self.child_tags["reproduces"] = os.environ["MLSP_REPRODUCES"]
        short = ", ".join(m.split(".")[-1] for m in models)
        tags = {
            **self.child_tags,
            "kedro_pipelines": ",".join(names), "command": command,
            "python_version": self.record["python"], "params_digest": self.record["params_digest"],
            "cpu_kernel_tier": self.record["kernel_tier"],
            **{f"pkg.{k}": v for k, v in self.record["packages"].items()},
            "mlflow.note.content": (
                f"`{command}` (environment `{ctx.env}`) at commit `{git['git_commit'][:12]}`.\n\n"
                f"Models: {short or 'none'} — each is a nested run. "
                "To compare them, expand this run, tick the model runs and press **Compare**."),
        }
        if stage:  # a `dvc repro` stage: named and tagged as one, so it never reads as a training family
            tags.update({"dvc_stage": stage, "mlsp.kind": "dvc_stage"})
            tags["mlflow.note.content"] = (
                f"DVC stage `{stage}` of `dvc repro` (`{command}`) at commit `{git['git_commit'][:12]}`. "
                + (f"Models: {short} — each is a nested run." if models
                   else "It prepares data for the next stage: no models."))
            run_name = f"{stage} (dvc) {self.stamp}"
        else:
            tags["mlsp.kind"] = "run"
            run_name = f"{ctx.family} {ctx.env} {self.stamp}"
        run_id_ = tracker.start(run_name, tags)
        tracker.log_params(tracker.parent, flatten(run_config(section)))
        tracker.log_dict(tracker.parent, self.record, "lineage.json")
        logger.info("MLflow run '%s' (%s) in experiment '%s' at %s", run_name, run_id_, tracker.experiment, tracker.uri)

    @property
    def run_id(self) -> str | None:
        return self.tracker.parent_id

    # -- nodes ---------------------------------------------------------------------------------------
    def expect_model_nodes(self, namespaces: list[str]) -> None:
        """The ``model_run`` nodes of the run, one namespace per node: a model's run closes after its last."""
        for ns in namespaces:
            self.remaining[ns] = self.remaining.get(ns, 0) + 1

    def model_run(self, key: str, *, monitor: bool = True) -> OpenRun:
        model = key.split(".")[-1]
        return self.tracker.open(key, f"{model} {self.stamp}",
                                 {**self.child_tags, "architecture": model, "mlsp.kind": "model"}, monitor=monitor)

    def node_started(self, name: str, namespace: str, *, trains_model: bool, params: dict[str, Any],
                     inputs: dict[str, tuple[Any, Spec]]) -> NodeState:
        """A ``model_run`` node starts: its model's run opens (first node) and gets its parameters;
        ``inputs``: the node's inputs declared ``kind: inputs`` (value, declaration)."""
        state = NodeState(name, namespace, trains_model, params=params)
        for input_name, (value, spec) in inputs.items():
            state.declared_splits.update(self._splits(input_name, value, spec))
        run = self.model_run(namespace)
        self.tracker.log_params(run, params)
        if self.remote and trains_model:  # the driver's run has no monitor: sample the worker that trains
            state.monitor = self.tracker.monitor(run)
        self.nodes[name] = state
        return state

    def node_finished(self, name: str, outputs: list[tuple[str, Any, Spec]]) -> None:
        """A node ended: its declared outputs go to its model's run (or the parent run); the
        model's run closes after its last node."""
        state = self.nodes.pop(name, None)
        _stop_monitor(state)
        if state is not None:
            run = self.tracker.runs[state.fit_runs[0]] if len(state.fit_runs) == 1 else self.tracker.runs[state.model_key]
            self._log_declared_splits(state, run)
        else:
            run = self.tracker.parent
        for out_name, value, spec in outputs:
            if spec.get("kind") == "model":
                self._log_model(run, out_name, value, spec)
            else:
                self.tracker.log_declared(run, out_name, value, spec)
        if state is not None:
            for key in state.fit_runs:
                self.tracker.close(key, "FINISHED")
            self._model_node_done(state.model_key, "FINISHED")

    def node_failed(self, name: str) -> None:
        state = self.nodes.pop(name, None)
        if state is None:
            return
        _stop_monitor(state)
        for key in state.fit_runs:
            self.tracker.close(key, "FAILED")
        if not self.remote:  # on a Dask worker the driver closes the model's run
            self.tracker.close(state.model_key, "FAILED")

    def _model_node_done(self, key: str, status: str) -> None:
        if self.remote:
            return
        self.remaining[key] = self.remaining.get(key, 1) - 1
        if self.remaining[key] <= 0:
            run = self.tracker.runs.get(key)
            if run is not None and status == "FINISHED":
                try:
                    self.tracker.describe(run, model_card(key.split(".")[-1], run, self.tracker.run_metrics(run)))
                except Exception:  # noqa: BLE001 - a card is a courtesy: never fail a finished model for it
                    logger.warning("no model card for %s", key, exc_info=True)
            self.tracker.close(key, status)

    def dataset_read(self, path: str) -> None:
        """Remember a DVC-tracked path the run read (hashed for the lineage at the end)."""
        tracked = lineage.tracked_path_of(self.context.root, path, self.locked)
        if tracked:
            self.used_paths.add(tracked)

    # -- trainings (called by the training observer) -------------------------------------------------
    def fit_started(self, state: NodeState, desc: str, train: Any, val: Any, params: Any) -> OpenRun:
        """Where a training of this node logs: the model's run for the node that outputs the
        model (its first training), else a run of its own nested under the model's run."""
        state.fits += 1
        model_run = self.model_run(state.model_key)
        if state.trains_model and state.fits == 1:
            model_run.live_epochs = True
            run = model_run
        else:
            short = state.name.split(".")[-1]
            key = f"{state.name}#{state.fits}"
            model = state.model_key.split(".")[-1]
            run = self.tracker.open(key, f"{model} {short}" + (f" {state.fits}" if state.fits > 1 else ""),
                                    {**self.child_tags, "architecture": model, "mlsp.kind": "training",
                                     "kedro_node": state.name, "fit": desc}, parent=model_run.run_id)
            run.live_epochs = True
            state.fit_runs.append(key)
            model_params = {k: v for k, v in state.params.items() if not k.startswith("train.")}
            self.tracker.log_params(run, {**model_params, **flatten(params, "train")})
        self._log_fit_inputs(state, run, train, val)
        return run

    def epoch_ended(self, run: OpenRun, epoch: int, metrics: dict[str, float]) -> None:
        self.tracker.log_metrics(run, {f"epoch/{k}": v for k, v in metrics.items()}, step=epoch)

    def fit_ended(self, run: OpenRun, result: Any) -> None:
        """The kept weights are the best epoch's: so are the headline numbers."""
        best = int(result.best_epoch)
        headline: dict[str, float] = {"best_epoch": best, "epochs_run": int(result.epochs_run),
                                      "train_seconds": float(result.train_seconds),
                                      "stopped_early": int(bool(result.stopped_early)),
                                      "resumed_from": int(getattr(result, "resumed_from", 0))}  # not in the model
        if best >= 1:
            headline.update({k: v[best - 1] for k, v in result.history.items() if len(v) >= best})
        self.tracker.log_metrics(run, headline)

    # -- inputs --------------------------------------------------------------------------------------
    def _digest(self, *arrays: Any) -> str:
        key = tuple(id(a) for a in arrays)
        hit = self._digests.get(hash(key))
        if hit is not None and all(x is y for x, y in zip(hit[0], arrays)):
            return hit[1]
        digest = lineage.data_digest(*arrays)
        self._digests[hash(key)] = (arrays, digest)  # holds the arrays: ids stay unique meanwhile
        return digest

    def _splits(self, name: str, value: dict[str, Any], spec: Spec) -> dict[str, Any]:
        """``{context: (dataset name, digest, (X, y), source)}`` of a declared model input."""
        prefix = spec.get("name", name.rsplit(".", 1)[0])
        source = spec.get("source")
        source = str((self.context.root / source).resolve()) if source else None
        out = {}
        for context, keys in (spec.get("splits") or {}).items():
            # [features, targets] keys, or one key holding a tuple (inputs..., target)
            arrays = tuple(value[k] for k in keys) if isinstance(keys, (list, tuple)) else tuple(value[keys])
            if len(arrays[0]):
                out[context] = (f"{prefix}.{context}", self._digest(*arrays), arrays, source)
        return out

    def _log_fit_inputs(self, state: NodeState, run: OpenRun, train: Any, val: Any) -> None:
        """The tensors a training actually used, named after the declared split they equal."""
        by_digest = {d[1]: d for d in state.declared_splits.values()}
        for context, tensors in (("train", train), ("val", val)):
            if tensors is None or not len(tensors[0]):
                continue
            digest = self._digest(*tensors)
            if digest in by_digest:
                ds_name, _, _, source = by_digest[digest]
            else:  # data the node made itself (a fold, a sampled set): named after the node
                ds_name, source = f"{self.context.family}.{context}", None
                if not state.trains_model:
                    ds_name += f" ({state.name.split('.')[-1]})"
            self.record.setdefault("datasets", {})[ds_name] = digest
            self.tracker.log_input(run, name=ds_name, context=context, arrays=tuple(tensors), digest=digest,
                                   source=source or str(self.context.root / "data"))

    def _log_declared_splits(self, state: NodeState, run: OpenRun) -> None:
        """Declared splits of a model input the node read, unless its training used other data
        (then only what the training used is known, e.g. a cross-validation fold)."""
        if not state.declared_splits:
            return
        declared = {d[1] for d in state.declared_splits.values()}
        if any(d[1] not in declared for d in run.datasets.values()):
            return
        for context, (ds_name, digest, arrays, source) in state.declared_splits.items():
            self.record.setdefault("datasets", {})[ds_name] = digest
            self.tracker.log_input(run, name=ds_name, context=context, arrays=arrays, digest=digest,
                                   source=source or str(self.context.root / "data"))

    # -- models --------------------------------------------------------------------------------------
    def _log_model(self, run: OpenRun, name: str, bundle: dict[str, Any], spec: Spec) -> None:
        """The bundle as an MLflow logged model of ``run`` (registered when declared/configured);
        serving picks what the flavour needs."""
        conf, family = self.context.mlflow_conf, self.context.family
        if not conf.get("log_models", True):
            return
        register = bool(spec.get("register", conf.get("register_models", False)))
        model = name.rsplit(".", 1)[0][len(family) + 1:] if name.startswith(f"{family}.") else name
        registered = f"{self.tracker.experiment}.{model}" if register else None  # e.g. asc.cnn, asc.cnn.fold_1
        t0 = time.perf_counter()
        info = self.tracker.log_model(run, bundle, flavor=spec.get("flavor", "pytorch"), dataset=name,
                                      name=model.replace(".", "-"),  # the Models tab's name (no dots allowed)
                                      registered=registered, params=self.context.params,
                                      feature_params=spec.get("feature_params"))
        logger.info("%s: MLflow model %s (%s) in %.1f s", name, info.model_uri, spec.get("flavor", "pytorch"),
                    time.perf_counter() - t0)

    # -- Dask: the driver owns the runs, a node's task on a worker borrows them ----------------------
    def remote_state(self, namespace: str | None) -> RemoteState | None:
        """What a node's session on a worker needs; ``namespace``: its model run's (opened here)."""
        if self.tracker.parent is None:
            return None
        self.remote_used = True
        model_runs = {}
        if namespace:
            model_runs[namespace] = dataclasses.replace(self.model_run(namespace, monitor=False), monitor=None)
        t = self.tracker
        return RemoteState(uri=t.uri, experiment=t.experiment, experiment_id=t.experiment_id,
                           system_metrics_interval=t.system_metrics_interval,
                           parent=dataclasses.replace(t.parent, monitor=None), model_runs=model_runs,
                           context=self.context, child_tags=self.child_tags, stamp=self.stamp, locked=self.locked)

    @classmethod
    def attach(cls, state: RemoteState) -> TrackingSession:
        """A worker's session logging to the driver's runs; it opens and closes only the runs of
        its node's own trainings (cross-validation folds)."""
        tracker = RunTracker.attach(state.uri, state.experiment, state.experiment_id, state.parent,
                                    system_metrics_interval=state.system_metrics_interval)
        tracker.runs.update(state.model_runs)
        tracker.use_globally()
        self = cls(state.context, tracker, remote=True)
        self.child_tags, self.stamp, self.locked = state.child_tags, state.stamp, state.locked
        self.borrowed = set(state.model_runs)
        return self

    def remote_result(self) -> RemoteResult:
        runs = {k: dataclasses.replace(self.tracker.runs[k], monitor=None) for k in self.borrowed if k in self.tracker.runs}
        return RemoteResult(runs, dict(self.record.get("datasets", {})), sorted(self.used_paths))

    def remote_node_done(self, namespace: str | None, result: RemoteResult | None, error: BaseException | None) -> None:
        """A node's task ended on a worker: merge what it learnt; close the model's run after its
        last node (FAILED at once when a node of it failed)."""
        if result is not None:
            for key, snap in result.model_runs.items():
                run = self.tracker.runs.get(key)
                if run is not None:
                    run.params.update(snap.params)
                    run.datasets.update(snap.datasets)
                    run.model_id = run.model_id or snap.model_id
                    run.model_flavor = run.model_flavor or snap.model_flavor
                    run.live_epochs = run.live_epochs or snap.live_epochs
            self.record.setdefault("datasets", {}).update(result.datasets)
            self.used_paths.update(result.used_paths)
        if namespace:
            if error is None:
                self._model_node_done(namespace, "FINISHED")
            else:
                self.tracker.close(namespace, "FAILED")

    # -- the end -------------------------------------------------------------------------------------
    def end(self, status: str) -> None:
        """Record the lineage, close runs a dead worker left open, then every open run."""
        try:
            self._finish_lineage()
        finally:
            try:
                if self.remote_used:
                    self.tracker.close_session_leftovers(self.child_tags.get("kedro_session_id"), status)
            finally:
                for state in self.nodes.values():
                    _stop_monitor(state)
                self.nodes.clear()
                self.tracker.end(status)
                self._digests.clear()

    def _finish_lineage(self) -> None:
        """Hash the DVC-tracked data the run read, compare with dvc.lock, and record it."""
        parent = self.tracker.parent
        if parent is None:
            return
        versions = lineage.data_versions(self.context.root, self.used_paths, self.locked)
        self.record["data_versions"] = versions
        differs = [p for p, v in versions.items() if not v["matches_dvc_lock"]]
        tags = {f"data.{p}": str(v["md5"]) for p, v in versions.items()}
        if versions:
            tags["data_matches_dvc_lock"] = str(not differs).lower()
        self.tracker.set_tags(parent, tags)
        if differs:
            logger.warning("data used by this run differs from dvc.lock (run `dvc repro` / `dvc commit` to record it): %s",
                           "; ".join(f"{p}: used {versions[p]['md5']}, dvc.lock {versions[p]['dvc_lock']}" for p in differs))
        self.tracker.log_dict(parent, self.record, "lineage.json")


def _stop_monitor(state: NodeState | None) -> None:
    if state is not None and state.monitor is not None:
        try:
            state.monitor.finish()
        except Exception:  # noqa: BLE001 - system metrics are optional
            logger.debug("system metrics monitor did not finish cleanly", exc_info=True)
        state.monitor = None


#: Test metrics a model card quotes, in this order (the first few found), and its complexity numbers.
CARD_METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "accuracy_tta", "icbhi_score", "sensitivity",
                "specificity", "bleu", "chrf", "exact_match", "spearman", "rel_rmse", "rel_rmse_extrap")


def model_card(name: str, run: OpenRun, metrics: dict[str, float]) -> str:
    """A short Markdown card for a model run and its logged model: the data it was trained,
    validated and tested on (with digests), its test metrics (the cross-validated mean with its
    95 % interval where CV ran), its size, and how to load and call it."""
    lines = [f"**{name}**" + (f", {metrics['n_params'] / 1e3:.0f}k parameters" if "n_params" in metrics else "")
             + (f", {metrics['macs_per_s'] / 1e6:.1f}M MACs per second of audio" if "macs_per_s" in metrics else "")
             + "."]
    order = {"train": 0, "val": 1, "test": 2}
    data = [f"{ctx} `{ds}` (digest `{digest[:12]}`)"
            for ctx, (ds, digest) in sorted(run.datasets.items(), key=lambda kv: (order.get(kv[0], 3), kv[0]))]
    if data:
        lines.append("Data: " + ", ".join(data) + ".")
    quoted = []
    for key in CARD_METRICS:
        if f"cv_{key}_mean" in metrics:
            mean, half = metrics[f"cv_{key}_mean"], metrics.get(f"cv_{key}_ci95")
            quoted.append(f"{key} {mean:.4g}" + (f" ± {half:.2g} (95 % CI over CV folds)" if half is not None else "")
                          + " cross-validated")
        elif key in metrics:
            quoted.append(f"{key} {metrics[key]:.4g}")
    if quoted:
        lines.append("Test: " + ", ".join(quoted[:4]) + ".")
    if "best_epoch" in metrics and "epochs_run" in metrics:
        lines.append(f"Kept weights: epoch {int(metrics['best_epoch'])} of {int(metrics['epochs_run'])} "
                     "(best validation score).")
    if run.model_id:
        uri = f"models:/{run.model_id}"
        if run.model_flavor == "audio_classifier":
            lines.append(f"Load and call (raw audio in, class probabilities out):\n\n```python\nimport mlflow, pandas as pd\n"
                         f"model = mlflow.pyfunc.load_model(\"{uri}\")\n"
                         "model.predict(pd.DataFrame({\"audio\": [samples], \"sample_rate\": [sr]}))\n```")
        else:
            lines.append(f"Load (the PyTorch module):\n\n```python\nimport mlflow\n"
                         f"net = mlflow.pytorch.load_model(\"{uri}\")\n```")
    return "\n\n".join(lines)


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


def model_params(spec: Any, name: str) -> dict[str, Any]:
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


def node_params(family: str, namespace: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A node's ``params:`` inputs under architecture-independent keys: the model spec as
    ``model.*`` (defaults filled in), training settings as ``train.*`` (the model's overrides
    applied), any other section by its name."""
    from mlsp_pipelines.params import ModelSpec, TrainParams

    def is_spec(v: Any) -> bool:  # ModelSpec, or a task's own spec with the same shape
        return isinstance(v, ModelSpec) or (hasattr(v, "arch") and hasattr(v, "kwargs") and hasattr(v, "model_dump"))

    specs = {k: v for k, v in inputs.items() if k.startswith("params:")}
    model = next((v for v in specs.values() if isinstance(v, ModelSpec)), None)
    out: dict[str, Any] = {}
    for name, value in specs.items():
        if is_spec(value):
            out.update(model_params(value, namespace.split(".")[-1]))
        elif isinstance(value, TrainParams):
            out.update(flatten(model.train_params(value) if model else value, "train"))
        else:
            key = name[len("params:"):]
            if key.startswith(f"{family}."):
                key = key[len(family) + 1:]
            out.update(flatten(value, key) if hasattr(value, "model_dump") or isinstance(value, dict)
                       else {key: value})
    return out
