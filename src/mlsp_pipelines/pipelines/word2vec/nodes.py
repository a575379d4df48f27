"""Nodes of the ``word2vec`` pipeline: preprocess → train (shared loop) → export → evaluate → report."""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

import numpy as np
import pandas as pd

from mlsp_pipelines.annotations import Figure
from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.features import text
from mlsp_pipelines.training import word2vec_sgd as sgd
from mlsp_pipelines.training.word2vec_sgd import SGDSettings

from .params import (
    BaselineParams,
    EmbeddingParams,
    EvaluationParams,
    TextPreprocessParams,
    Word2VecModelSpec,
    Word2VecTrainParams,
)

logger = logging.getLogger(__name__)

# -- data ------------------------------------------------------------------------------------------
def preprocess_corpus(corpus: list[str], preprocess: TextPreprocessParams) -> tuple[dict, pd.DataFrame, dict]:
    """Tokens → vocabulary (``min_count``) → the in-vocabulary token stream training draws from.

    The training examples themselves (sub-sampled tokens, reduced windows, negatives) are drawn
    anew in every epoch of training; the statistics of one draw (``preprocess.seed``) go to
    the data-quality report. Returns the training data (one ``.npz``), the vocabulary table
    (word, count, keep probability, noise probability) and the corpus statistics.
    """
    source = getattr(corpus, "source", "corpus")
    t0 = time.perf_counter()
    docs = text.tokenize_documents(corpus, pattern=preprocess.token_pattern, lowercase=preprocess.lowercase,
                                   min_length=preprocess.min_token_length)
    n_tokens = sum(map(len, docs))
    if n_tokens == 0:
        raise ValueError(f"text corpus {source}: no tokens in {len(docs)} documents "
                         f"(word2vec.preprocess.token_pattern={preprocess.token_pattern!r})")
    vocab = text.build_vocabulary(docs, min_count=preprocess.min_count, max_size=preprocess.max_vocab)
    if len(vocab) < 2:
        raise ValueError(f"text corpus {source}: only {len(vocab)} word(s) occur at least "
                         f"word2vec.preprocess.min_count={preprocess.min_count} times in its {n_tokens} tokens; "
                         "lower min_count or use a larger corpus")
    ids, doc = text.encode(docs, vocab)
    ex = text.make_examples(ids, doc, vocab, window=preprocess.window, sample=preprocess.sample,
                            dynamic_window=preprocess.dynamic_window, seed=preprocess.seed)
    if len(ex.sg_centre) == 0:
        raise ValueError(f"text corpus {source}: no (centre, context) pair could be formed; "
                         "documents are too short after min_count and sub-sampling")
    noise = text.noise_distribution(vocab.counts, preprocess.noise_power)
    keep = text.keep_probabilities(vocab.counts, preprocess.sample)
    seconds = time.perf_counter() - t0
    data = {
        "words": np.asarray(vocab.words, dtype=str), "counts": vocab.counts, "noise": noise, "keep_prob": keep,
        "ids": ids, "doc": doc, "window": preprocess.window, "dynamic_window": preprocess.dynamic_window,
        "source": source,
    }
    table = pd.DataFrame({"id": np.arange(len(vocab)), "word": vocab.words, "count": vocab.counts,
                          "keep_prob": keep.round(6), "noise_prob": noise.round(8)})
    stats = {
        "source": source, "documents": len(docs), "empty_documents": sum(1 for d in docs if not d),
        "tokens": n_tokens, "vocab_size": len(vocab), "in_vocab_tokens": int(len(ids)),
        "oov_tokens": n_tokens - int(len(ids)), "kept_tokens": int(ex.kept.sum()),
        "kept_fraction": round(float(ex.kept.mean()), 4), "skipgram_pairs": int(len(ex.sg_centre)),
        "cbow_examples": int(len(ex.cbow_centre)),
    }  # no time in here: the report is a DVC output and must hash alike on every re-run
    logger.info("%s: %d documents, %d tokens, vocabulary %d (min_count %d), ~%d skip-gram pairs per epoch "
                "(%.2f s)", source, len(docs), n_tokens, len(vocab), preprocess.min_count, len(ex.sg_centre), seconds)
    return data, table, stats


def sgd_settings(training_data: dict, model: Word2VecModelSpec, tp: Word2VecTrainParams,
                 embedding: EmbeddingParams) -> SGDSettings:
    """The SGD hyper-parameters of one model (shared with its gensim anchor)."""
    from mlsp_pipelines.models import model_config

    return SGDSettings(kind=model.kind, dim=embedding.dim, window=int(training_data["window"]),
                       dynamic_window=bool(training_data.get("dynamic_window", True)),
                       negative=model_config(model.arch, **model.kwargs).negative, alpha=tp.alpha,
                       min_alpha=tp.min_alpha, epochs=tp.epochs, seed=tp.seed, engine=tp.engine,
                       device=tp.resolved_device(), batch_pairs=tp.batch_pairs, deterministic=tp.deterministic)


# -- training --------------------------------------------------------------------------------------
def train_word2vec(training_data: dict, model: Word2VecModelSpec, train: Word2VecTrainParams,
                   embedding: EmbeddingParams, checkpoints: CheckpointStore | None, *, name: str
                   ) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Train the model entry ``name`` with word2vec's SGD (compiled kernel on CPU, torch on GPU).

    Returns a self-contained bundle (architecture, kwargs, the registry module's weights,
    vocabulary), the per-epoch loss and the timings, apart: they differ on every run and the
    bundle must hash alike. ``words_per_second`` counts in-vocabulary corpus tokens per epoch
    times epochs over the training seconds, as gensim does; the one-off kernel compilation is
    ``compile_seconds``.
    """
    import torch

    from mlsp_pipelines.models import build_model, count_parameters
    from mlsp_pipelines.training.hashing import array_digest, fingerprint
    from mlsp_pipelines.training.model_run import model_bundle

    tp = model.train_params(train)
    words = [str(w) for w in training_data["words"]]
    settings = sgd_settings(training_data, model, tp, embedding)
    ids, doc = np.asarray(training_data["ids"]), np.asarray(training_data["doc"])
    config_hash = fingerprint(model.model_dump(), tp.model_dump(exclude={"progress", "resume", "device"}),
                              embedding.dim, words, array_digest(ids), array_digest(doc))
    result = sgd.train(ids, doc, training_data["keep_prob"], training_data["noise"], settings,
                       checkpoint=checkpoints, config_hash=config_hash, resume=tp.resume, desc=name,
                       show_progress=tp.progress)
    net = build_model(model.arch, in_features=len(words), out_features=embedding.dim, **model.kwargs)
    net.load_vectors(result.syn0, result.syn1, training_data["noise"])
    tokens = int(len(ids))
    threads = 1 if result.engine == "numba" else torch.get_num_threads()
    bundle = model_bundle(
        name, model.arch, model.kwargs, len(words), embedding.dim,
        {k: v.detach().clone() for k, v in net.state_dict().items()}, kind=model.kind, words=words,
        counts=torch.from_numpy(np.asarray(training_data["counts"], dtype=np.int64)),
        best_epoch=result.epochs_run, epochs_run=result.epochs_run, engine=result.engine, device=settings.device,
        tokens_per_epoch=tokens, threads=threads, params=count_parameters(net),
    )
    history = pd.DataFrame({"epoch": np.arange(1, len(result.history["train_loss"]) + 1),
                            "train_loss": result.history["train_loss"]})
    timings = _timings(name, model.kind, tokens * result.epochs_run, result.train_seconds, result.engine, threads,
                       compile_seconds=result.compile_seconds)
    timings["resumed_from"] = int(result.resumed_from)  # a resume fact: here, never in the saved model
    return bundle, history, timings


def _timings(model: str, kind: str, words: int, seconds: float, engine: str, threads: int,
             **extra: float) -> dict[str, Any]:
    return {"model": model, "kind": kind, "words_per_second": round(words / max(seconds, 1e-9), 1),
            "train_seconds": round(seconds, 3), **{k: round(v, 3) for k, v in extra.items()},
            "engine": engine, "threads": threads}



def export_embeddings(bundle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The vectors with their vocabulary: a tensor file (``nn.Embedding.from_pretrained(vectors)``,
    row ``i`` = ``words[i]``) and the same in the word2vec text format."""
    from mlsp_pipelines.models import rebuild_model

    vectors = rebuild_model(bundle).embeddings()
    emb = {
        "words": list(bundle["words"]), "vectors": vectors, "counts": bundle["counts"], "model": bundle["name"],
        "kind": bundle["kind"],
        "dim": int(vectors.shape[1]),
        "stats": {k: bundle[k] for k in ("epochs_run", "threads", "params", "tokens_per_epoch", "engine")
                  if k in bundle},
    }
    return emb, {"words": emb["words"], "vectors": vectors.numpy()}


def _stable_hash(s: str) -> int:
    """gensim seeds each word's initial vector with ``hashfxn(word + seed)``; Python's ``hash`` of a
    ``str`` changes between processes, CRC-32 does not, so the anchor is reproducible."""
    return zlib.crc32(s.encode("utf-8"))


def train_gensim(training_data: dict, model: Word2VecModelSpec, train: Word2VecTrainParams,
                 embedding: EmbeddingParams, preprocess: TextPreprocessParams,
                 baseline: BaselineParams) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The anchor: gensim ``Word2Vec`` of the same kind (skip-gram or CBOW) on the same
    in-vocabulary token stream and hyper-parameters (dimension, window, min_count, sample,
    negatives, noise exponent, epochs, alpha → min_alpha, seed).

    gensim re-counts the vocabulary (identical words and counts) and does its own sub-sampling
    and window reduction inside ``train``, which is timed alone (the timings come out apart).
    """
    import torch
    from gensim.models import Word2Vec

    from mlsp_pipelines.models import model_config

    tp = model.train_params(train)
    words = np.asarray(training_data["words"]).astype(str)
    ids, doc = np.asarray(training_data["ids"]), np.asarray(training_data["doc"])
    cuts = np.flatnonzero(np.diff(doc)) + 1
    sentences = [s.tolist() for s in np.split(words[ids], cuts) if len(s)]
    sg = 1 if model.kind == "sg" else 0
    w2v = Word2Vec(vector_size=embedding.dim, window=preprocess.window, min_count=preprocess.min_count,
                   sample=preprocess.sample, negative=model_config(model.arch, **model.kwargs).negative, hs=0,
                   ns_exponent=preprocess.noise_power, sg=sg, cbow_mean=1, workers=baseline.workers,
                   alpha=tp.alpha, min_alpha=tp.min_alpha, seed=tp.seed, epochs=tp.epochs,
                   shrink_windows=preprocess.dynamic_window, hashfxn=_stable_hash, sorted_vocab=1,
                   max_final_vocab=preprocess.max_vocab)
    w2v.build_vocab(sentences)
    t0 = time.perf_counter()
    w2v.train(sentences, total_examples=w2v.corpus_count, epochs=w2v.epochs)
    seconds = time.perf_counter() - t0
    kv = w2v.wv
    tokens = int(len(ids))
    name = f"gensim_{model.kind}"
    emb = {
        "words": list(kv.index_to_key), "vectors": torch.from_numpy(np.array(kv.vectors, dtype=np.float32)),
        "counts": torch.tensor([kv.get_vecattr(w, "count") for w in kv.index_to_key], dtype=torch.int64),
        "model": name, "kind": model.kind, "dim": embedding.dim,
        "stats": {"epochs_run": tp.epochs, "threads": baseline.workers, "engine": "gensim",
                  "params": int(kv.vectors.size + w2v.syn1neg.size), "tokens_per_epoch": tokens},
    }
    timings = _timings(name, model.kind, tokens * tp.epochs, seconds, "gensim", baseline.workers)
    logger.info("gensim Word2Vec (sg=%d, workers=%d): %d words, %.2f s, %.0f words/s", sg,
                baseline.workers, len(kv), seconds, timings["words_per_second"])
    return emb, {"words": emb["words"], "vectors": kv.vectors}, timings


# -- evaluation ------------------------------------------------------------------------------------
def evaluate_embeddings(embeddings: dict[str, Any], wordsim: pd.DataFrame, analogies: pd.DataFrame,
                        evaluation: EvaluationParams) -> tuple[dict[str, Any], pd.DataFrame, Figure]:
    """WordSim353 Spearman (out-of-vocabulary pairs counted), analogy accuracy over the
    in-vocabulary questions, nearest neighbours of the probe words, and a 2-D PCA plot."""
    import torch

    from mlsp_pipelines.evaluation import embeddings as ev

    words, vectors = list(embeddings["words"]), torch.as_tensor(embeddings["vectors"]).numpy()
    counts = torch.as_tensor(embeddings["counts"]).numpy()
    name = embeddings["model"]
    ws = ev.word_pair_spearman(words, vectors, wordsim)
    an = ev.analogy_accuracy(words, vectors, analogies, restrict_vocab=evaluation.analogy_restrict_vocab)
    neighbours, missing = ev.nearest_neighbours(words, vectors, evaluation.probe_words, evaluation.n_neighbours)
    stats = embeddings.get("stats", {})
    metrics: dict[str, Any] = {
        "model": name, "kind": embeddings.get("kind"), "spearman": ws["spearman"], "spearman_pvalue": ws["spearman_pvalue"],
        "pearson": ws["pearson"], "wordsim_pairs": ws["pairs"], "wordsim_pairs_used": ws["pairs_used"],
        "wordsim_pairs_oov": ws["pairs_oov"],
        "analogy_accuracy": an["accuracy"], "analogy_semantic_accuracy": an["semantic_accuracy"],
        "analogy_syntactic_accuracy": an["syntactic_accuracy"], "analogy_questions": an["questions"],
        "analogy_questions_used": an["questions_used"], "analogy_correct": an["correct"],
        "vocab_size": len(words), "dim": int(vectors.shape[1]),
        **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in stats.items()},
        "neighbours": {p: g["neighbour"].tolist() for p, g in neighbours.groupby("probe", sort=False)},
        "probes_missing": missing,
    }
    sp = "n/a" if ws["spearman"] is None else f"{ws['spearman']:.3f}"
    logger.info("%s: WordSim353 Spearman %s on %d/%d pairs; analogies %s on %d/%d questions", name, sp,
                ws["pairs_used"], ws["pairs"], an["accuracy"], an["questions_used"], an["questions"])
    fig = ev.projection_figure(words, vectors, counts, n=evaluation.pca_words, skip=evaluation.pca_skip,
                               title=f"{name}: PCA of frequent words (WordSim353 ρ = {sp})")
    return metrics, neighbours, fig


def plot_learning_curve(history: pd.DataFrame, model: Word2VecModelSpec, *, name: str) -> Figure:
    from mlsp_pipelines.evaluation import embeddings as ev

    return ev.learning_curve_figure(history, f"{name} ({model.arch}): negative-sampling loss")


# -- report ----------------------------------------------------------------------------------------
BOARD_COLUMNS = ("model", "kind", "spearman", "wordsim_pairs_used", "wordsim_pairs_oov", "analogy_accuracy",
                 "analogy_semantic_accuracy", "analogy_syntactic_accuracy", "analogy_questions_used",
                 "epochs_run", "engine", "threads", "vocab_size", "dim", "params")


def build_report(*metrics: dict[str, Any]) -> tuple[pd.DataFrame, str, Figure, dict[str, Any]]:
    """One row per model (project models and the gensim anchor): the quality of each.

    ``metrics.json`` also holds each project model's Spearman difference to the anchor of the
    same kind. Speed is in :func:`build_speed_report` (``timings.csv``, ``speed.png``): it
    differs on every run, and these reports must hash alike.
    """
    from mlsp_pipelines.evaluation import embeddings as ev
    from mlsp_pipelines.modular.report.nodes import build_leaderboard

    board, md, fig, summary = build_leaderboard(*metrics, sort_by="spearman", columns=BOARD_COLUMNS,
                                                figure=ev.comparison_figure)
    by_name = {m["model"]: m for m in metrics}
    for m in metrics:
        anchor = by_name.get(f"gensim_{m.get('kind')}")
        if anchor is None or m is anchor:
            continue
        cmp: dict[str, Any] = {"anchor": anchor["model"]}
        if m.get("spearman") is not None and anchor.get("spearman") is not None:
            cmp["spearman_minus_anchor"] = round(m["spearman"] - anchor["spearman"], 4)
        summary[f"{m['model']}_vs_anchor"] = cmp
    return board, md, fig, summary


def build_speed_report(*timings: dict[str, Any]) -> tuple[pd.DataFrame, Figure]:
    """Training speed of every model beside gensim's of the same kind (``speed_ratio_to_anchor``
    = words/s over the anchor's), fastest first, and its bar chart."""
    from mlsp_pipelines.evaluation import embeddings as ev

    table = pd.DataFrame(list(timings))
    by_name = dict(zip(table["model"], table["words_per_second"]))
    table["speed_ratio_to_anchor"] = [
        round(wps / by_name[a], 4) if (a := f"gensim_{kind}") in by_name and m != a else None
        for m, kind, wps in zip(table["model"], table["kind"], table["words_per_second"])]
    table = table.sort_values("words_per_second", ascending=False, kind="stable").reset_index(drop=True)
    return table, ev.comparison_figure(table, "word2vec: training speed (same corpus and hyper-parameters)",
                                       panels=(("words_per_second", "training words / second"),))
