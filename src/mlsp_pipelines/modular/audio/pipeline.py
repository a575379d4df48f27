"""Wiring of the audio feature pipeline. One definition, reused per task (``asc``, ``asthma``):
the task pipeline wraps it in ``namespace=task``, so datasets become ``asc.features``,
parameters ``params:asc.features`` and nodes ``asc.compute_logmel``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from . import nodes


def _bind_task(func: Callable, task: str) -> Callable:
    """``func`` with ``task=`` bound when it takes a keyword-only ``task`` (a named partial Kedro
    can describe), so its messages spell parameters as ``--params <task>.<key>=...``."""
    param = inspect.signature(func).parameters.get("task")
    if param is None or param.kind is not inspect.Parameter.KEYWORD_ONLY:
        return func
    return update_wrapper(partial(func, task=task), func)


def create_pipeline(task: str, *, index_func: Callable = nodes.index_audio) -> Pipeline:
    """``raw_audio`` (a folder) → features, splits, normalisation statistics (tagged ``{task}_features``).

    ``index_func(folder, data_params) -> (index, quality)`` reads the task's layout.
    ``params:split`` reaches ``compute_logmel`` for ``split.strict`` (clip-length outliers are errors).
    """
    base = Pipeline(
        [
            node(_bind_task(index_func, task), ["raw_audio", "params:data"], ["index", "index_quality"],
                 name="index_audio"),
            node(_bind_task(nodes.compute_logmel, task),
                 ["index", "index_quality", "params:features", "params:data.on_bad_file", "raw_audio", "params:split"],
                 ["features", "data_quality"], name="compute_logmel"),
            node(_bind_task(nodes.split_dataset, task), ["features", "params:split"], "splits", name="split_dataset"),
            node(nodes.fit_normalisation, ["features", "splits"], "norm_stats", name="fit_normalisation"),
        ]
    )
    return Pipeline(base, tags=[f"{task}_features"])


def create_model_input_pipeline(task: str) -> Pipeline:
    """Features + splits + statistics → the in-memory tensors the training namespaces share."""
    base = Pipeline([node(_bind_task(nodes.make_model_input, task), ["features", "splits", "norm_stats", "params:split"],
                          "model_input", name="make_model_input")])
    return Pipeline(base, tags=[f"{task}_train"])
