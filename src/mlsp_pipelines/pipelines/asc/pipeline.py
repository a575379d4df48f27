"""Wiring of ``asc`` and of its DVC-stage slices ``asc_data``, ``asc_features``, ``asc_train``."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import graph_params, section
from mlsp_pipelines.modular import audio, classifier, report, sweep

from . import nodes

TASK = "asc"


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """All ``asc`` pipelines; which architectures and whether data is synthesised come from parameters."""
    params = graph_params() if params is None else params
    archs = list(section(params, f"{TASK}.architectures", []) or [])
    cv = bool(section(params, f"{TASK}.split.cv", False))
    source = section(params, f"{TASK}.data.source", "synthetic")
    models = section(params, f"{TASK}.models", {}) or {}
    missing = [a for a in archs if a not in models]
    if missing:
        raise ValueError(f"{TASK}.architectures lists {missing} but {TASK}.models has no entry for them "
                         f"(defined: {sorted(models)}); add '{TASK}.models.<name>: {{arch: <registry name>}}'")
    data = Pipeline([])
    if source == "synthetic":
        data = Pipeline([node(nodes.synthesise_scenes, "params:synth", "raw_audio", name="synthesise_scenes")],
                        namespace=TASK, tags=[f"{TASK}_data"])
    features = Pipeline(audio.create_pipeline(TASK), namespace=TASK)
    train = audio.create_model_input_pipeline(TASK)
    for arch in archs:
        train += classifier.create_pipeline(TASK, arch, cv=cv)
    search = section(params, f"{TASK}.sweep", {}) or {}
    if search.get("enabled"):
        train += sweep.create_pipeline(TASK, search.get("model", "cnn"))
    train = Pipeline(train, namespace=TASK)
    if archs:
        train += report.create_pipeline(TASK, archs, cv=cv)
    return {TASK: data + features + train, f"{TASK}_data": data, f"{TASK}_features": features, f"{TASK}_train": train}


def create_pipeline(**kwargs: Any) -> Pipeline:
    """The whole ``asc`` pipeline."""
    return create_pipelines()[TASK]
