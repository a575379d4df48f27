"""Wiring of ``word2vec`` and of its DVC-stage slices ``word2vec_data`` and ``word2vec_train``.

Every model listed in ``word2vec.architectures`` (an entry of ``word2vec.models``) is trained
in namespace ``word2vec.<name>`` (its own nested MLflow run); with ``word2vec.baseline.enabled``
a gensim anchor per kind of ``word2vec.baseline.kinds`` is trained in ``word2vec.gensim_sg`` /
``word2vec.gensim_cbow`` with the hyper-parameters of the first model of that kind; the
leaderboard of all of them is the task-level report.
"""

from __future__ import annotations

from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import architectures, graph_params, section
from mlsp_pipelines.modular import report

from . import nodes

TASK = "word2vec"


def _model_pipeline(name: str) -> Pipeline:
    """Train → learning curve → export → evaluate for one project model (namespace ``name``)."""
    return Pipeline(
        [
            node(update_wrapper(partial(nodes.train_word2vec, name=name), nodes.train_word2vec), ["training_data", "params:model", "params:train", "params:embedding",
                                        "checkpoints"], ["model", "history", "timings"], name="train_model"),
            node(update_wrapper(partial(nodes.plot_learning_curve, name=name), nodes.plot_learning_curve),
                 ["history", "params:model"], "learning_curves",
                 name="plot_learning_curve"),
            node(nodes.export_embeddings, "model", ["embeddings", "embeddings_txt"], name="export_embeddings"),
            node(nodes.evaluate_embeddings, ["embeddings", "wordsim", "analogies", "params:evaluation"],
                 ["metrics", "neighbours", "pca_plot"], name="evaluate_embeddings"),
        ],
        namespace=name,
        inputs={"training_data", "wordsim", "analogies"},
        parameters={"params:model": f"params:models.{name}", "params:train": "params:train",
                    "params:embedding": "params:embedding", "params:evaluation": "params:evaluation"},
        tags=[f"{TASK}_train", "model_run"],
    )


def _anchor_pipeline(name: str, model_key: str) -> Pipeline:
    """gensim ``Word2Vec`` with the hyper-parameters of ``models.<model_key>``, evaluated alike."""
    return Pipeline(
        [
            node(nodes.train_gensim, ["training_data", "params:model", "params:train", "params:embedding",
                                      "params:preprocess", "params:baseline"],
                 ["embeddings", "embeddings_txt", "timings"], name="train_gensim"),
            node(nodes.evaluate_embeddings, ["embeddings", "wordsim", "analogies", "params:evaluation"],
                 ["metrics", "neighbours", "pca_plot"], name="evaluate_embeddings"),
        ],
        namespace=name,
        inputs={"training_data", "wordsim", "analogies"},
        parameters={"params:model": f"params:models.{model_key}", "params:train": "params:train",
                    "params:embedding": "params:embedding", "params:preprocess": "params:preprocess",
                    "params:baseline": "params:baseline", "params:evaluation": "params:evaluation"},
        tags=[f"{TASK}_train", "model_run"],
    )


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
        train += _model_pipeline(name)
    reported = list(names)
    for kind in kinds:
        arch = f"word2vec_{kind}"
        key = next((n for n in names if _arch(models[n]) == arch), None)
        key = key or next((n for n, spec in models.items() if _arch(spec) == arch), None)
        if key is None:
            raise ValueError(f"{TASK}.baseline.kinds lists {kind!r} but no {TASK}.models entry has arch {arch} "
                             "for its hyper-parameters (negatives, epochs, alpha); add one, or drop the kind")
        train += _anchor_pipeline(f"gensim_{kind}", key)
        reported.append(f"gensim_{kind}")
    train = Pipeline(train, namespace=TASK)
    if reported:
        train += report.create_pipeline(TASK, reported, func=nodes.build_report)
        # speed differs on every run: its own table and chart, outside the DVC outputs
        train += Pipeline([node(nodes.build_speed_report, [f"{TASK}.{n}.timings" for n in reported],
                                [f"{TASK}.timings", f"{TASK}.speed_plot"], name="build_speed_report",
                                namespace=TASK)], tags=[f"{TASK}_train"])
    return {TASK: data + train, f"{TASK}_data": data, f"{TASK}_train": train}


def _arch(spec: Any) -> str | None:
    return spec.get("arch") if isinstance(spec, dict) else getattr(spec, "arch", None)
