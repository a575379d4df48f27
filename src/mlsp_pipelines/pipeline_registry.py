"""Project pipelines: each package under ``pipelines/`` contributes its pipeline and its DVC slices."""

from __future__ import annotations

import importlib
import logging
import pkgutil

from kedro.pipeline import Pipeline

import mlsp_pipelines.pipelines as _pkg
from mlsp_pipelines.config import DEFAULT_PIPELINE, graph_params, requested_pipelines

logger = logging.getLogger(__name__)


def register_pipelines() -> dict[str, Pipeline]:
    """``asc``, ``asc_data``, ``asc_features``, ``asc_train``, ... and ``__default__`` = ``asc``.

    A pipeline whose parameters cannot build its graph (say a dangling architecture name) stops
    the run only when it is one of the requested pipelines; otherwise it is left out with a warning,
    so a broken ``word2vec`` configuration does not block ``kedro run --pipeline=asc``.
    """
    params = graph_params()
    requested = requested_pipelines()
    pipelines: dict[str, Pipeline] = {}
    for info in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_pkg.__name__}.{info.name}")
        try:
            pipelines.update(module.create_pipelines(params))
        except ValueError as exc:
            wanted = requested is None or any(r == info.name or r.startswith(f"{info.name}_") for r in requested)
            if wanted or (requested and "__default__" in requested and info.name == DEFAULT_PIPELINE):
                raise
            logger.warning("pipeline '%s' left out: %s", info.name, exc)
    pipelines["__default__"] = pipelines.get(DEFAULT_PIPELINE, Pipeline([]))
    return pipelines
