"""The sweep node, wired into a task's namespace when ``<task>.sweep.enabled`` is true."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from . import nodes


def create_pipeline(task: str, model: str) -> Pipeline:
    """``model_input`` + ``params:models.<model>`` → ``sweep_trials``, ``sweep_best`` (in ``task``'s namespace)."""
    return Pipeline(
        [node(nodes.run_sweep, ["model_input", f"params:models.{model}", "params:train", "params:sweep"],
              ["sweep_trials", "sweep_best"], name="run_sweep")],
        tags=[f"{task}_sweep"],
    )
