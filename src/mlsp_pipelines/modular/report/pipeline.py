"""Leaderboard node wired to the metrics of every trained architecture of a task."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node

from . import nodes


def create_pipeline(
    task: str,
    archs: list[str],
    *,
    cv: bool = False,
    sort_by: str = "accuracy",
    func: Callable[..., Any] | None = None,
    extra_inputs: tuple[str, ...] = (),
    timings: list[str] | None = None,
    breakdown: bool = False,
) -> Pipeline:
    """``{task}.{arch}.metrics`` (``cv_metrics`` with ``cv``) for every arch → ``{task}.leaderboard``
    (+ md, plot, metrics.json); ``timings`` (dataset names) → ``{task}.timings`` apart.

    ``func`` replaces the default table builder (same four outputs) for tasks whose report
    needs more than :func:`nodes.build_leaderboard`; ``extra_inputs`` come before the metrics;
    ``breakdown`` adds every model's ``breakdown_metrics`` (log loss, seen/unseen devices).
    """
    inputs = [*extra_inputs, *(f"{task}.{a}.{'cv_metrics' if cv else 'metrics'}" for a in archs)]
    if breakdown and not cv:  # merged into the same leaderboard rows (by model name)
        inputs += [f"{task}.{a}.breakdown_metrics" for a in archs]
    if func is None:
        func = update_wrapper(partial(nodes.build_leaderboard, sort_by=sort_by), nodes.build_leaderboard)
    return Pipeline(
        [node(func, inputs, [f"{task}.{o}" for o in ("leaderboard", "leaderboard_md", "leaderboard_plot", "metrics")],
              name="build_leaderboard", namespace=task),
         *([node(nodes.collect_timings, timings, f"{task}.timings", name="collect_timings", namespace=task)]
           if timings else [])],
        tags=[f"{task}_train"],
    )
