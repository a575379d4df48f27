"""Wiring of ``asc`` and of its DVC-stage slices ``asc_data``, ``asc_features``, ``asc_train``."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline

from mlsp_pipelines.config import graph_params
from mlsp_pipelines.modular.audio_task import create_task_pipelines

from . import nodes

TASK = "asc"


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """All ``asc`` pipelines; which architectures and whether data is synthesised come from parameters."""
    return create_task_pipelines(TASK, graph_params() if params is None else params,
                                 synthesise=nodes.synthesise_scenes)
