"""``asthma``: the ``asc`` machinery (audio features, per-architecture training, leaderboard)
with a respiratory-cycle index in front and ICBHI metrics at the end — wiring only."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import graph_params, section
from mlsp_pipelines.modular import audio, classifier, report, sweep

from . import nodes

TASK = "asthma"


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """``asthma`` and its DVC slices; architectures and data source come from parameters."""
    params = graph_params() if params is None else params
    archs = list(section(params, f"{TASK}.architectures", []) or [])
    cv = bool(section(params, f"{TASK}.split.cv", False))
    models = section(params, f"{TASK}.models", {}) or {}
    missing = [a for a in archs if a not in models]
    if missing:
        raise ValueError(f"{TASK}.architectures lists {missing} but {TASK}.models has no entry for them")
    data = Pipeline([])
    if section(params, f"{TASK}.data.source", "synthetic") == "synthetic":
        data = Pipeline([node(nodes.synthesise_respiratory, "params:synth", "raw_audio", name="synthesise_respiratory")],
                        namespace=TASK, tags=[f"{TASK}_data"])
    features = Pipeline(audio.create_pipeline(TASK, index_func=nodes.index_cycles), namespace=TASK)
    train = audio.create_model_input_pipeline(TASK)
    for arch in archs:
        train += classifier.create_pipeline(TASK, arch, cv=cv)
    search = section(params, f"{TASK}.sweep", {}) or {}
    if search.get("enabled"):
        train += sweep.create_pipeline(TASK, search.get("model", "cnn"))
    train = Pipeline(train, namespace=TASK)
    if archs:
        train += report.create_pipeline(TASK, archs, cv=cv, sort_by="icbhi_score")
    return {TASK: data + features + train, f"{TASK}_data": data, f"{TASK}_features": features, f"{TASK}_train": train}


def create_pipeline(**kwargs: Any) -> Pipeline:
    """The whole ``asthma`` pipeline."""
    return create_pipelines()[TASK]
