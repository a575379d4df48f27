"""Wiring of ``seq2seq`` and of its DVC-stage slices ``seq2seq_data`` and ``seq2seq_train``."""

from __future__ import annotations

import logging
from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import architectures, graph_params, section
from mlsp_pipelines.modular import report
from mlsp_pipelines.modular.model_pipeline import compose_task, model_pipeline

from . import nodes

logger = logging.getLogger(__name__)

TASK = "seq2seq"


def corpus_source(params: dict[str, Any]) -> str:
    """``synthetic``, ``tsv`` or ``files``: ``seq2seq.data.source``, where ``auto`` means
    ``files`` when the runtime parameter ``corpus_dir`` is given, else ``tsv`` when
    ``corpus_path`` is, else ``synthetic``."""
    source = section(params, f"{TASK}.data.source", "auto")
    corpus_path, corpus_dir = section(params, "corpus_path"), section(params, "corpus_dir")
    if source == "auto":
        return "files" if corpus_dir else ("tsv" if corpus_path else "synthetic")
    if source == "synthetic" and (corpus_path or corpus_dir):
        logger.warning("corpus_path/corpus_dir is ignored: %s.data.source is 'synthetic'", TASK)
    return source


MODEL_STEPS = [
    (nodes.train_seq2seq, ["model_input", "params:model", "params:train", "params:batching", "checkpoints"],
     ["model", "history", "train_seconds"], "train_model"),
    (nodes.evaluate_seq2seq, ["model", "history", "model_input", "params:report", "train_seconds"],
     ["metrics", "timings", "predictions", "learning_curves"], "evaluate_model"),
    (nodes.plot_attention, ["model", "model_input", "params:report"], "attention_plot", "plot_attention"),
]


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """``seq2seq`` = ``seq2seq_data`` (corpus → split → vocabularies) + ``seq2seq_train``
    (every architecture of ``seq2seq.architectures`` → leaderboard)."""
    params = graph_params() if params is None else params
    archs = architectures(params, TASK)
    source = corpus_source(params)
    data_nodes = []
    if source == "synthetic":
        data_nodes.append(node(nodes.generate_dates, "params:synth", "raw_pairs", name="generate_dates"))
    raw = {"synthetic": "raw_pairs", "tsv": "corpus", "files": "corpus_splits"}[source]
    data_nodes += [
        node(nodes.prepare_corpus, [raw, "params:data", "params:vocab", "params:split"], ["pairs", "data_quality"],
             name="prepare_corpus"),
        node(nodes.build_vocabularies, ["pairs", "params:vocab"], "vocab", name="build_vocabularies"),
    ]
    data = Pipeline(data_nodes, namespace=TASK, tags=[f"{TASK}_data"])

    train = Pipeline([node(nodes.make_model_input, ["pairs", "vocab"], "model_input", name="make_model_input")],
                     tags=[f"{TASK}_train"])
    for name in archs:
        train += model_pipeline(TASK, name, MODEL_STEPS, inputs={"model_input"},
                                parameters=("train", "batching", "report"))
    reports = report.create_pipeline(TASK, archs, func=nodes.build_report,
                                     timings=[f"{TASK}.{a}.timings" for a in archs]) if archs else None
    if archs:  # validation BLEU against minutes: drawn on wall-clock times, written with the timings
        reports += Pipeline([node(nodes.plot_quality_vs_time,
                                  [f"{TASK}.{a}.{d}" for a in archs for d in ("history", "timings")],
                                  f"{TASK}.bleu_vs_minutes", name="plot_bleu_vs_minutes", namespace=TASK)],
                            tags=[f"{TASK}_train"])
    return compose_task(TASK, data=data, train=train, report=reports)
