"""Nodes of the ``seq2seq`` pipeline: pairs → split → vocabularies → train → decode → evaluate."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from mlsp_pipelines.datasets.files import CheckpointStore
from mlsp_pipelines.evaluation.plots import learning_curves_figure
from mlsp_pipelines.features.vocab import EOS, Vocab, encode_pairs, pad_batch, tokenize
from mlsp_pipelines.models import build_model, count_parameters
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.simulation.dates import generate_date_pairs
from mlsp_pipelines.training.loop import fingerprint, fit, predict

from . import metrics as m
from .params import DateSynthParams, Seq2SeqDataParams, Seq2SeqReportParams, Seq2SeqSplitParams, VocabParams
from .plots import AttentionExample, attention_figure

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# -- data ---------------------------------------------------------------------------------------
def generate_dates(synth: DateSynthParams) -> pd.DataFrame:
    """The embedded default corpus: seeded dates in many human styles and their ISO 8601 form."""
    triples = generate_date_pairs(synth.n_pairs, seed=synth.seed, year_min=synth.year_min,
                                  year_max=synth.year_max, styles=synth.styles)
    logger.info("generated %d date pairs in %d styles", len(triples), len({t[2] for t in triples}))
    return pd.DataFrame([t[:2] for t in triples], columns=["source", "target"])


def prepare_corpus(
    raw: pd.DataFrame, data: Seq2SeqDataParams, vocab: VocabParams, split: Seq2SeqSplitParams
) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    """Clean (optional lower-casing, duplicates and over-long pairs dropped), then a seeded
    train/val/test split. Returns ``{split: {"source": [...], "target": [...]}}`` and a data-quality report."""
    pairs = raw[["source", "target"]].astype(str)
    if data.lowercase:
        pairs = pairs.apply(lambda col: col.str.lower())
    n_read = len(pairs)
    n_dupes = 0
    if data.dedupe:
        before = len(pairs)
        pairs = pairs.drop_duplicates(ignore_index=True)
        n_dupes = before - len(pairs)
    src_len = pairs["source"].map(lambda s: len(tokenize(s, vocab.level)))
    tgt_len = pairs["target"].map(lambda s: len(tokenize(s, vocab.level)))
    keep = pd.Series(True, index=pairs.index)
    if data.max_source_len is not None:
        keep &= src_len <= data.max_source_len
    if data.max_target_len is not None:
        keep &= tgt_len <= data.max_target_len
    n_too_long = int((~keep).sum())
    pairs, src_len, tgt_len = pairs[keep], src_len[keep], tgt_len[keep]
    order = np.random.default_rng(split.seed).permutation(len(pairs))
    if data.max_pairs is not None:
        order = order[: data.max_pairs]
    n = len(order)
    n_test = max(1, int(round(split.test_fraction * n)))
    n_val = max(1, int(round(split.val_fraction * n)))
    if n - n_test - n_val < 1:
        raise ValueError(f"only {n} usable sentence pairs (of {n_read} read): too few for a train/val/test split")
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    out = {s: {"source": pairs["source"].iloc[idx].tolist(), "target": pairs["target"].iloc[idx].tolist()}
           for s, idx in parts.items()}
    quality = {
        "pairs_read": n_read, "duplicates_dropped": n_dupes, "too_long_dropped": n_too_long, "pairs_used": n,
        **{f"n_{s}": len(parts[s]) for s in SPLITS},
        "level": vocab.level,
        "source_len_mean": float(src_len.mean()), "source_len_max": int(src_len.max()),
        "target_len_mean": float(tgt_len.mean()), "target_len_max": int(tgt_len.max()),
    }
    logger.info("seq2seq corpus: %d pairs → train %d, val %d, test %d", n, *(len(parts[s]) for s in SPLITS))
    return out, quality


def build_vocabularies(pairs: dict[str, dict[str, list[str]]], vocab: VocabParams) -> dict[str, Any]:
    """Source and target vocabularies from the training split (so the test split can hold ``<unk>``s)."""
    train = pairs["train"]
    out = {}
    for side in ("source", "target"):
        v = Vocab.build(train[side], level=vocab.level, min_freq=vocab.min_freq, max_size=vocab.max_size)
        out[side] = v.to_dict()
        logger.info("%s vocabulary: %d %s tokens", side, len(v), vocab.level)
    return out


def make_model_input(pairs: dict[str, dict[str, list[str]]], vocab: dict[str, Any]) -> dict[str, Any]:
    """Token tensors per split: ``(src, tgt_in, tgt_out)`` (see :func:`~mlsp_pipelines.features.vocab.encode_pairs`),
    with the vocabularies and texts the evaluation needs."""
    src_vocab, tgt_vocab = Vocab.from_dict(vocab["source"]), Vocab.from_dict(vocab["target"])
    out: dict[str, Any] = {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "texts": pairs}
    for s in SPLITS:
        out[s] = encode_pairs(pairs[s]["source"], pairs[s]["target"], src_vocab, tgt_vocab)
    return out


# -- models -------------------------------------------------------------------------------------
def rebuild_model(bundle: dict[str, Any]) -> torch.nn.Module:
    """The trained encoder–decoder of a saved model bundle, in ``eval()`` mode."""
    model = build_model(bundle["arch"], in_features=bundle["in_features"], out_features=bundle["out_features"],
                        **bundle["kwargs"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval()


def _history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    n = len(next(iter(history.values()), []))
    return pd.DataFrame({"epoch": np.arange(1, n + 1), **history})


def _digest(*tensors: torch.Tensor) -> str:
    """Content hash of the training data: a checkpoint is resumed only on the data it was trained on."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def train_seq2seq(
    model_input: dict[str, Any], model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore,
    *, name: str | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Teacher-forced training with the shared loop (token cross-entropy, padding ignored);
    returns a self-contained model bundle (weights, architecture, vocabularies) and the history.
    ``name`` is the model's key under ``seq2seq.models`` (two models may share an ``arch``)."""
    tp = model.train_params(train)
    src_vocab, tgt_vocab = model_input["src_vocab"], model_input["tgt_vocab"]
    torch.manual_seed(tp.seed)
    net = build_model(model.arch, in_features=len(src_vocab), out_features=len(tgt_vocab), **model.kwargs)
    config_hash = fingerprint(model.model_dump(), tp.model_dump(exclude={"progress", "resume"}),
                              _digest(*model_input["train"], *model_input["val"]), src_vocab.tokens, tgt_vocab.tokens)
    result = fit(net, model_input["train"], model_input["val"], params=tp, task="classification",
                 checkpoint=checkpoints, config_hash=config_hash, desc=name or model.arch)
    bundle = {
        "name": name or model.arch, "arch": model.arch, "kwargs": dict(model.kwargs), "in_features": len(src_vocab),
        "out_features": len(tgt_vocab), "state_dict": result.state_dict,
        "src_vocab": src_vocab.to_dict(), "tgt_vocab": tgt_vocab.to_dict(),
        "max_target_len": int(model_input["train"][2].shape[1]),
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "train_seconds": result.train_seconds,
        "params": count_parameters(net), "resumed_from": result.resumed_from,
    }
    return bundle, _history_frame(result.history)


def decode(net: torch.nn.Module, src: torch.Tensor, report: Seq2SeqReportParams, max_len: int) -> list[torch.Tensor]:
    """Decoded id rows for every source row (greedy or beam search, batched)."""
    rows: list[torch.Tensor] = []
    for i in range(0, len(src), report.batch_size):
        out = net.generate(src[i : i + report.batch_size], max_len=max_len, beam_size=report.beam_size,
                           length_penalty=report.length_penalty)
        rows.extend(out)
    return rows


def _max_len(bundle: dict[str, Any], report: Seq2SeqReportParams) -> int:
    return report.max_len or int(1.5 * bundle["max_target_len"]) + 5


def evaluate_seq2seq(
    bundle: dict[str, Any], history: pd.DataFrame, model_input: dict[str, Any], report: Seq2SeqReportParams
) -> tuple[dict[str, Any], pd.DataFrame, Figure]:
    """Test split: exact match, token accuracy and corpus BLEU-4 of the decoded outputs (on
    ``vocab.level`` tokens, against the raw references, so ``<unk>`` never matches), the
    teacher-forced token accuracy, per-sentence predictions and the learning curves."""
    net = rebuild_model(bundle)
    tgt_vocab = Vocab.from_dict(bundle["tgt_vocab"])
    src, tgt_in, tgt_out = model_input["test"]
    texts = model_input["texts"]["test"]
    decoded = decode(net, src, report, _max_len(bundle, report))
    logits = predict(net, (src, tgt_in), batch_size=report.batch_size)
    hyps = [tgt_vocab.decode_tokens(row.tolist()) for row in decoded]
    refs = [tgt_vocab.tokenize(t) for t in texts["target"]]
    mask = tgt_out != -100
    tf_acc = float((logits.argmax(-1)[mask] == tgt_out[mask]).float().mean())
    bleu = m.corpus_bleu_details(hyps, refs)
    metrics = {
        "model": bundle["name"], "arch": bundle["arch"],
        "exact_match": m.exact_match(hyps, refs),
        "token_accuracy": m.token_accuracy(hyps, refs),
        "bleu": bleu["bleu"],
        "bleu_brevity_penalty": bleu["brevity_penalty"],
        "teacher_forced_token_accuracy": tf_acc,
        "n_test": len(refs), "beam_size": report.beam_size, "level": tgt_vocab.level,
        "params": bundle["params"], "train_seconds": round(bundle["train_seconds"], 3),
        "best_epoch": bundle["best_epoch"], "epochs_run": bundle["epochs_run"],
    }
    predictions = pd.DataFrame({
        "source": texts["source"], "reference": texts["target"],
        "prediction": [tgt_vocab.decode(row.tolist()) for row in decoded],
        "correct": [h == r for h, r in zip(hyps, refs)],
    })
    logger.info("%s test: exact match %.3f, token accuracy %.3f, BLEU %.3f", bundle["name"],
                metrics["exact_match"], metrics["token_accuracy"], metrics["bleu"])
    curves = learning_curves_figure(history.drop(columns="epoch").to_dict("list"), f"{bundle['name']} learning curves")
    return metrics, predictions, curves


def plot_attention(bundle: dict[str, Any], model_input: dict[str, Any], report: Seq2SeqReportParams) -> Figure:
    """Attention heat-maps (output × source) of the model's own greedy output on the first
    ``report.n_examples`` test sentences (the Transformer: last decoder layer, heads averaged)."""
    net = rebuild_model(bundle)
    src_vocab, tgt_vocab = Vocab.from_dict(bundle["src_vocab"]), Vocab.from_dict(bundle["tgt_vocab"])
    texts = model_input["texts"]["test"]
    k = min(report.n_examples, len(texts["source"]))
    src = model_input["test"][0][:k]
    with torch.no_grad():
        out = net.generate(src, max_len=_max_len(bundle, report), beam_size=1)
        ids = [tgt_vocab.decode_tokens(row.tolist()) for row in out]
        lengths = [len(t) + 1 for t in ids]  # + <eos>
        tgt_in = pad_batch([[net.bos_idx, *row.tolist()[: n - 1]] for row, n in zip(out, lengths)])
        weights = net.attention_weights(src, tgt_in)
    examples = []
    for i in range(k):
        src_tokens = src_vocab.tokenize(texts["source"][i])
        n_out = lengths[i]
        examples.append(AttentionExample(
            source_text=texts["source"][i], source=src_tokens, output=[*ids[i], EOS][:n_out],
            reference=texts["target"][i], prediction=tgt_vocab.decode(out[i].tolist()),
            weights=None if weights is None else weights[i, :n_out, : len(src_tokens)].numpy(),
        ))
    kind = getattr(getattr(net, "config", None), "attention", "cross-attention, last decoder layer")
    title = (f"{bundle['name']}: attention ({kind})" if net.has_attention
             else f"{bundle['name']}: decoded test examples (no attention)")
    return attention_figure(examples, title)


# -- report -------------------------------------------------------------------------------------
