"""``asthma``: the ``asc`` machinery (audio features, per-architecture training, leaderboard)
with a respiratory-cycle index in front and ICBHI metrics at the end — wiring only."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline

from mlsp_pipelines.config import graph_params
from mlsp_pipelines.modular.audio_task import create_task_pipelines

from . import nodes

TASK = "asthma"


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """``asthma`` and its DVC slices; architectures and data source come from parameters."""
    return create_task_pipelines(TASK, graph_params() if params is None else params,
                                 synthesise=nodes.synthesise_respiratory, index_func=nodes.index_cycles,
                                 sort_by="icbhi_score")
