"""Wiring of the audio feature pipeline. One definition, reused per task (``asc``, ``asthma``):
the task pipeline wraps it in ``namespace=task``, so datasets become ``asc.features``,
parameters ``params:asc.features`` and nodes ``asc.compute_logmel``."""

from __future__ import annotations

from collections.abc import Callable

from kedro.pipeline import Pipeline, node

from . import nodes


def create_pipeline(task: str, *, index_func: Callable = nodes.index_audio) -> Pipeline:
    """``raw_audio`` (a folder) → features, splits, normalisation statistics (tagged ``{task}_features``).

    ``index_func(folder, data_params) -> (index, quality)`` reads the task's layout.
    """
    base = Pipeline(
        [
            node(index_func, ["raw_audio", "params:data"], ["index", "index_quality"], name="index_audio"),
            node(nodes.compute_logmel, ["index", "index_quality", "params:features", "params:data.on_bad_file"],
                 ["features", "data_quality"], name="compute_logmel"),
            node(nodes.split_dataset, ["features", "params:split"], "splits", name="split_dataset"),
            node(nodes.fit_normalisation, ["features", "splits"], "norm_stats", name="fit_normalisation"),
        ]
    )
    return Pipeline(base, tags=[f"{task}_features"])


def create_model_input_pipeline(task: str) -> Pipeline:
    """Features + splits + statistics → the in-memory tensors the training namespaces share."""
    base = Pipeline([node(nodes.make_model_input, ["features", "splits", "norm_stats", "params:split"], "model_input",
                          name="make_model_input")])
    return Pipeline(base, tags=[f"{task}_train"])
