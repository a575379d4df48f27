"""A whole audio-classification task from parameters: optional synthetic data → features →
one namespaced train/evaluate pipeline per listed architecture [→ sweep] → leaderboard.
``asc`` and ``asthma`` are two calls of :func:`create_task_pipelines` with their own nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import architectures, section

from . import audio, classifier, report, sweep
from .audio import nodes as audio_nodes


def create_task_pipelines(
    task: str,
    params: dict[str, Any],
    *,
    synthesise: Callable[..., Any],
    index_func: Callable[..., Any] = audio_nodes.index_audio,
    sort_by: str = "accuracy",
) -> dict[str, Pipeline]:
    """``{task}`` and its DVC slices ``{task}_data``, ``{task}_features``, ``{task}_train``.

    ``synthesise(params:<task>.synth) -> raw_audio`` runs only when ``<task>.data.source`` is
    ``synthetic``; otherwise ``<task>.raw_audio`` is read from the catalog (a real dataset).
    """
    archs = architectures(params, task)
    cv = bool(section(params, f"{task}.split.cv", False))
    data = Pipeline([])
    if section(params, f"{task}.data.source", "synthetic") == "synthetic":
        data = Pipeline([node(synthesise, "params:synth", "raw_audio", name=synthesise.__name__)],
                        namespace=task, tags=[f"{task}_data"])
    features = Pipeline(audio.create_pipeline(task, index_func=index_func), namespace=task)
    train = audio.create_model_input_pipeline(task)
    for arch in archs:
        train += classifier.create_pipeline(task, arch, cv=cv)
    search = section(params, f"{task}.sweep", {}) or {}
    if search.get("enabled"):
        train += sweep.create_pipeline(task, search.get("model", "cnn"))
    train = Pipeline(train, namespace=task)
    if archs:
        train += report.create_pipeline(task, archs, cv=cv, sort_by=sort_by)
    return {task: data + features + train, f"{task}_data": data, f"{task}_features": features, f"{task}_train": train}
