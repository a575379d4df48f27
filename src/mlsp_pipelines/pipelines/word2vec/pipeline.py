"""Wiring of ``word2vec`` and of its DVC-stage slices ``word2vec_data`` and ``word2vec_train``.

Every model listed in ``word2vec.architectures`` (an entry of ``word2vec.models``) is trained
in namespace ``word2vec.<name>`` (its own nested MLflow run); with ``word2vec.baseline.enabled``
a gensim anchor per kind of ``word2vec.baseline.kinds`` is trained in ``word2vec.gensim_sg`` /
``word2vec.gensim_cbow`` with the hyper-parameters of the first model of that kind; the
leaderboard of all of them is the task-level report.
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import architectures, graph_params, section
from mlsp_pipelines.modular import report
from mlsp_pipelines.modular.model_pipeline import compose_task, model_pipeline

from . import nodes

TASK = "word2vec"


MODEL_STEPS = [
    (nodes.train_word2vec, ["training_data", "params:model", "params:train", "params:embedding", "checkpoints"],
     ["model", "history", "timings"], "train_model"),
    (nodes.plot_learning_curve, ["history", "params:model"], "learning_curves", "plot_learning_curve"),
    (nodes.export_embeddings, "model", ["embeddings", "embeddings_txt"], "export_embeddings"),
    (nodes.evaluate_embeddings, ["embeddings", "wordsim", "analogies", "params:evaluation"],
     ["metrics", "neighbours", "pca_plot"], "evaluate_embeddings"),
]
# the gensim anchor: gensim ``Word2Vec`` with the hyper-parameters of another entry, evaluated alike
ANCHOR_STEPS = [
    (nodes.train_gensim, ["training_data", "params:model", "params:train", "params:embedding", "params:preprocess",
                          "params:baseline"], ["embeddings", "embeddings_txt", "timings"], "train_gensim"),
    (nodes.evaluate_embeddings, ["embeddings", "wordsim", "analogies", "params:evaluation"],
     ["metrics", "neighbours", "pca_plot"], "evaluate_embeddings"),
]
INPUTS = {"training_data", "wordsim", "analogies"}


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """``word2vec``, ``word2vec_data`` (preprocessing) and ``word2vec_train`` (models, anchor, report)."""
    params = graph_params() if params is None else params
    names = architectures(params, TASK)
    models = section(params, f"{TASK}.models", {}) or {}
    baseline_on = bool(section(params, f"{TASK}.baseline.enabled", True))
    kinds = list(section(params, f"{TASK}.baseline.kinds", ["sg", "cbow"]) or []) if baseline_on else []
    for kind in kinds:
        if f"gensim_{kind}" in names:
            raise ValueError(f"{TASK}.architectures: the name 'gensim_{kind}' is reserved for the gensim anchor")

    data = Pipeline(
        [node(nodes.preprocess_corpus, ["corpus", "params:preprocess"], ["training_data", "vocab", "data_quality"],
              name="preprocess_corpus")],
        namespace=TASK, tags=[f"{TASK}_data"],
    )
    train = Pipeline([])
    for name in names:
        train += model_pipeline(TASK, name, MODEL_STEPS, inputs=INPUTS, parameters=("train", "embedding", "evaluation"))
    reported = list(names)
    for kind in kinds:
        arch = f"word2vec_{kind}"
        key = next((n for n in names if _arch(models[n]) == arch), None)
        key = key or next((n for n, spec in models.items() if _arch(spec) == arch), None)
        if key is None:
            raise ValueError(f"{TASK}.baseline.kinds lists {kind!r} but no {TASK}.models entry has arch {arch} "
                             "for its hyper-parameters (negatives, epochs, alpha); add one, or drop the kind")
        train += model_pipeline(TASK, f"gensim_{kind}", ANCHOR_STEPS, inputs=INPUTS, model_key=key,
                                parameters=("train", "embedding", "preprocess", "baseline", "evaluation"))
        reported.append(f"gensim_{kind}")
    reports = None
    if reported:
        # speed differs on every run: its own table and chart, outside the DVC outputs
        reports = report.create_pipeline(TASK, reported, func=nodes.build_report) + Pipeline(
            [node(nodes.build_speed_report, [f"{TASK}.{n}.timings" for n in reported],
                  [f"{TASK}.timings", f"{TASK}.speed_plot"], name="build_speed_report", namespace=TASK)],
            tags=[f"{TASK}_train"])
    return compose_task(TASK, data=data, train=train, report=reports)


def _arch(spec: Any) -> str | None:
    return spec.get("arch") if isinstance(spec, dict) else getattr(spec, "arch", None)
