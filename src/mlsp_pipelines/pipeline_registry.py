"""Project pipelines: each package under ``pipelines/`` contributes its pipeline and its DVC slices."""

from __future__ import annotations

import importlib
import pkgutil

from kedro.pipeline import Pipeline

import mlsp_pipelines.pipelines as _pkg
from mlsp_pipelines.config import graph_params


def register_pipelines() -> dict[str, Pipeline]:
    """``asc``, ``asc_data``, ``asc_features``, ``asc_train``, ... and ``__default__`` = ``asc``."""
    params = graph_params()
    pipelines: dict[str, Pipeline] = {}
    for info in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_pkg.__name__}.{info.name}")
        pipelines.update(module.create_pipelines(params))
    pipelines["__default__"] = pipelines.get("asc", Pipeline([]))
    return pipelines
