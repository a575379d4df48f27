"""A whole audio-classification task from parameters: optional synthetic data → features →
one namespaced train/evaluate pipeline per listed architecture [→ sweep] → leaderboard.
``asc`` and ``asthma`` are two calls of :func:`create_task_pipelines` with their own nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import architectures, section
from mlsp_pipelines.params import SplitParams

from . import audio, classifier, report, sweep
from .model_pipeline import compose_task
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
    folds = SplitParams(**(section(params, f"{task}.split", {}) or {})).fold_ids() if cv else []
    data = Pipeline([])
    if section(params, f"{task}.data.source", "synthetic") == "synthetic":
        data = Pipeline([node(synthesise, "params:synth", "raw_audio", name=synthesise.__name__)],
                        namespace=task, tags=[f"{task}_data"])
    features = Pipeline(audio.create_pipeline(task, index_func=index_func), namespace=task)
    search = section(params, f"{task}.sweep", {}) or {}
    train = audio.create_model_input_pipeline(task) if (not cv or search.get("enabled")) else Pipeline([])
    breakdown = bool(section(params, f"{task}.report.breakdown", False)) and not cv
    for arch in archs:
        train += classifier.create_pipeline(task, arch, cv=cv, folds=folds, breakdown=breakdown)
    if search.get("enabled"):
        train += sweep.create_pipeline(task, search.get("model", "cnn"))
    reports = None
    if archs:
        timings = [f"{task}.{a}.fold_{k}.timings" for a in archs for k in folds] if cv else [
            f"{task}.{a}.timings" for a in archs]
        reports = report.create_pipeline(task, archs, cv=cv, sort_by=sort_by, timings=timings, breakdown=breakdown)
    return compose_task(task, data=data, features=features, train=train, report=reports)
