"""MLflow tracking of Kedro runs.

- :mod:`.store`: :class:`RunTracker`, the one object that talks to MLflow (client and global
  API): the store, runs, parameters, metrics, datasets, artefacts and logged models;
- :mod:`.session`: :class:`TrackingSession`, what one ``kedro run`` records (parent run, model
  runs, trainings, lineage, the Dask workers' share), driven by the Kedro hook (``hooks.py``);
- :mod:`.flatten`: the one flattener of nested configuration and reports;
- :mod:`.cli`: ``python -m mlsp_pipelines.tracking urls``.

MLflow itself is imported only when a run starts: building pipelines does not import it.
"""

from mlsp_pipelines.tracking.flatten import flatten, flatten_numbers, metric_key
from mlsp_pipelines.tracking.store import (
    KINDS,
    PARAM_VALUE_MAX,
    TAG_VALUE_MAX,
    OpenRun,
    RunTracker,
    TrackingStoreCorruptError,
    TrackingUnavailableError,
    artifact_root_for,
    check_reachable,
    close_dead_runs,
    command_line,
    experiment_name,
    git_state,
    open_store,
    process_tags,
    resolve_tracking_uri,
    sqlite_path,
)

__all__ = [
    "KINDS", "PARAM_VALUE_MAX", "TAG_VALUE_MAX", "OpenRun", "RunTracker", "TrackingStoreCorruptError",
    "TrackingUnavailableError", "artifact_root_for", "check_reachable", "close_dead_runs", "command_line",
    "experiment_name", "flatten", "flatten_numbers", "git_state", "metric_key", "open_store", "process_tags",
    "resolve_tracking_uri", "sqlite_path",
]
