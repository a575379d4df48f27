"""Project hooks: graph parameters for the pipeline registry, and MLflow tracking of runs."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from mlsp_pipelines import config, lineage
from mlsp_pipelines.tracking import (
    RunTracker,
    artifact_root_for,
    check_reachable,
    command_line,
    flatten,
    git_state,
    resolve_tracking_uri,
)

logger = logging.getLogger(__name__)

SLICE_SUFFIXES = ("_data", "_features", "_train")


def experiment_name(pipeline_names: list[str] | None) -> str:
    """``asc_train`` (a DVC stage slice) logs to the ``asc`` experiment, like ``asc`` itself."""
    name = (pipeline_names or ["__default__"])[0]
    if name == "__default__":
        return "asc"
    for suffix in SLICE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


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
        from kedro.framework.project import pipelines

        # Pipelines may already be cached from an earlier session in this process: rebuild them
        # from these parameters, keeping which pipelines this run asked for.
        requested = getattr(pipelines, "_requested_pipelines", None)
        pipelines.configure(pipelines._pipelines_module)  # noqa: SLF001
        pipelines.set_requested(requested)


class MlflowHook:
    """One parent run per ``kedro run`` and one nested run per trained model namespace."""

    def __init__(self) -> None:
        self.tracker: RunTracker | None = None
        self.root = Path.cwd()
        self.mlflow_conf: dict[str, Any] = {}
        self.params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self.root = Path(context.project_path)
        try:
            self.mlflow_conf = dict(context.config_loader["mlflow"])
        except Exception:  # noqa: BLE001 - no mlflow.yml: defaults
            self.mlflow_conf = {}
        self.params = dict(context.config_loader["parameters"])

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if not self.mlflow_conf.get("enabled", True) or int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun only rank 0 talks to MLflow
        uri = resolve_tracking_uri(self.mlflow_conf.get("tracking_uri"), self.root)
        check_reachable(uri)
        names = run_params.get("pipeline_names")
        experiment = experiment_name(names)
        self.tracker = RunTracker(uri, experiment, artifact_root_for(uri, self.root))
        git = git_state(self.root)
        if git["git_dirty"] == "true":
            logger.warning("the git work tree has uncommitted changes: this run is not reproducible from %s",
                           git["git_commit"][:12])
        tags = {
            "pipeline": experiment,
            "kedro_pipelines": ",".join(names or ["__default__"]),
            "kedro_env": str(run_params.get("env")),
            "kedro_session_id": str(run_params.get("run_id")),
            "command": command_line(),
            **git,
        }
        section = self.params.get(experiment, {})
        record = lineage.collect(self.root, experiment, section, git, tags["command"])
        record.update(pipelines=names or ["__default__"], env=run_params.get("env"),
                      runtime_params=run_params.get("runtime_params") or {})
        if os.environ.get("MLSP_REPRODUCES"):
            tags["reproduces"] = os.environ["MLSP_REPRODUCES"]
        tags.update({
            "python_version": record["python"],
            "params_digest": record["params_digest"],
            **{f"pkg.{k}": v for k, v in record["packages"].items()},
            **{f"data.{k}": v for k, v in record["data_versions"].items()},
        })
        _interrupt_on_sigterm()
        run_id = self.tracker.start(f"{experiment}-{run_params.get('run_id')}", tags)
        self.tracker.log_params(run_id, flatten(section))
        self.tracker.client.log_dict(run_id, record, "lineage.json")
        logger.info("MLflow run %s in experiment '%s' at %s", run_id, experiment, uri)
        self._tags = tags

    @hook_impl
    def after_node_run(self, node: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        if self.tracker is None:
            return
        ns = node.namespace or ""
        if "model_run" in node.tags and ns.count(".") >= 1:
            task, arch = ns.split(".", 1)
            run_id = self.tracker.child(ns, {**self._tags, "pipeline": task, "architecture": arch})
            params = {}
            for name, value in inputs.items():
                if name.startswith("params:"):
                    params.update(flatten(value, name.split(".")[-1]))
            if params:
                try:
                    self.tracker.log_params(run_id, params)
                except Exception:  # noqa: BLE001 - same params logged by a sibling node of this namespace
                    logger.debug("parameters of %s already logged", ns)
        else:
            run_id = self.tracker.parent_id
        for name, value in outputs.items():
            self.tracker.log_output(run_id, name, value)

    @hook_impl
    def after_pipeline_run(self) -> None:
        if self.tracker is not None:
            self.tracker.end("FINISHED")
            self.tracker = None

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        if self.tracker is not None:
            self.tracker.end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            self.tracker = None
