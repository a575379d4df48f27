"""Nodes of the ``seq2seq`` pipeline: pairs → split → vocabularies → train → decode → evaluate."""

from __future__ import annotations

import hashlib
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlsp_pipelines.annotations import Figure
from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.evaluation import translation as m
from mlsp_pipelines.params import ModelSpec, TrainParams

from .params import (
    DateSynthParams,
    Seq2SeqBatchParams,
    Seq2SeqDataParams,
    Seq2SeqReportParams,
    Seq2SeqSplitParams,
    VocabParams,
)

if TYPE_CHECKING:  # annotations only: the functions import these where they run
    import torch

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# -- data ---------------------------------------------------------------------------------------
def generate_dates(synth: DateSynthParams) -> pd.DataFrame:
    """The embedded default corpus: seeded dates in many human styles and their ISO 8601 form."""
    from mlsp_pipelines.simulation.dates import generate_date_pairs

    triples = generate_date_pairs(synth.n_pairs, seed=synth.seed, year_min=synth.year_min,
                                  year_max=synth.year_max, styles=synth.styles)
    logger.info("generated %d date pairs in %d styles", len(triples), len({t[2] for t in triples}))
    return pd.DataFrame([t[:2] for t in triples], columns=["source", "target"])


def _extra_columns(raw: pd.DataFrame, data: Seq2SeqDataParams) -> dict[str, Any]:
    """Lines that had columns after the second (``extra``): counted, a few shown, or an error."""
    if "extra" not in raw:
        return {"extra_column_lines": 0}
    bad = raw[raw["extra"].astype(str).str.len() > 0]
    where = [f"{row.get('file', 'corpus')}:{row['line']}" for _, row in bad.head(5).iterrows()]
    if len(bad) and data.on_extra_columns == "fail":
        raise ValueError(f"{len(bad)} corpus line(s) have more than two tab-separated columns (first: {where}); "
                         "a tab inside a sentence cuts it; fix the file or set seq2seq.data.on_extra_columns: report")
    if len(bad):
        logger.warning("%d corpus line(s) have columns after the second (ignored; a tab inside a sentence?): %s",
                       len(bad), ", ".join(where))
    return {"extra_column_lines": int(len(bad)), "extra_column_examples": [
        {"where": w, "extra": str(e)[:80]} for w, e in zip(where, bad["extra"].head(5))]}


def _clean(pairs: pd.DataFrame, data: Seq2SeqDataParams, vocab: VocabParams, *, filtered: bool
           ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Optional lower-casing; for training/validation pairs also de-duplication and length limits."""
    from mlsp_pipelines.features.vocab import tokenize

    pairs = pairs[["source", "target"]].astype(str)
    if data.lowercase:
        pairs = pairs.apply(lambda col: col.str.lower())
    counts = {"read": len(pairs), "duplicates_dropped": 0, "too_long_dropped": 0}
    if not filtered:
        return pairs.reset_index(drop=True), counts
    if data.dedupe:
        before = len(pairs)
        pairs = pairs.drop_duplicates(ignore_index=True)
        counts["duplicates_dropped"] = before - len(pairs)
    keep = pd.Series(True, index=pairs.index)
    for side, limit in (("source", data.max_source_len), ("target", data.max_target_len)):
        if limit is not None:
            keep &= pairs[side].map(lambda t: len(tokenize(t, vocab.level))) <= limit
    counts["too_long_dropped"] = int((~keep).sum())
    return pairs[keep].reset_index(drop=True), counts


def prepare_corpus(
    raw: pd.DataFrame, data: Seq2SeqDataParams, vocab: VocabParams, split: Seq2SeqSplitParams
) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    """Clean, then split: the corpus's own splits when it has them (a ``split`` column: official
    train/val/test files; a missing validation split is held out of train, seeded), else a
    seeded fraction split. Returns ``{split: {"source": [...], "target": [...]}}`` and a
    data-quality report (per-split counts, drops, lengths, lines with extra columns)."""
    from mlsp_pipelines.features.vocab import tokenize
    from mlsp_pipelines.splits import permutation_split

    quality: dict[str, Any] = {"pairs_read": int(len(raw)), "level": vocab.level, **_extra_columns(raw, data)}
    parts: dict[str, pd.DataFrame] = {}
    if "split" in raw:
        quality["split_source"] = "files"
        for name in SPLITS:
            given = raw[raw["split"] == name]
            if len(given):
                parts[name], counts = _clean(given, data, vocab, filtered=name != "test")
                quality.update({f"{name}_{k}": v for k, v in counts.items()})
        if "val" not in parts:
            held = permutation_split(len(parts["train"]), [("val", split.val_fraction)], split.seed,
                                     what="training pairs")
            n_val = len(held["val"])
            parts["val"] = parts["train"].iloc[held["val"]].reset_index(drop=True)
            parts["train"] = parts["train"].iloc[held["train"]].reset_index(drop=True)
            quality["val_source"] = f"held out of train (val_fraction {split.val_fraction}, seed {split.seed})"
            logger.warning("no validation split given: %d training pairs held out for validation", n_val)
        else:
            quality["val_source"] = "file"
        if data.max_pairs is not None:
            parts["train"] = parts["train"].iloc[: data.max_pairs]
    else:
        quality["split_source"] = f"fractions (val {split.val_fraction}, test {split.test_fraction}, seed {split.seed})"
        pairs, counts = _clean(raw, data, vocab, filtered=True)
        quality.update({f"all_{k}": v for k, v in counts.items()})
        try:  # the permutation's order is kept: it shuffles the corpus
            idx = permutation_split(len(pairs), [("test", split.test_fraction), ("val", split.val_fraction)],
                                    split.seed, sort=False, limit=data.max_pairs, what="usable sentence pairs")
        except ValueError as err:
            raise ValueError(f"{err} (of {len(raw)} read)") from None
        parts = {k: pairs.iloc[idx[k]] for k in ("test", "val", "train")}
    if len(parts["train"]) < 1:
        raise ValueError("no training pairs left after cleaning (check seq2seq.data.max_source_len/max_target_len)")
    out = {s: {"source": parts[s]["source"].tolist(), "target": parts[s]["target"].tolist()} for s in SPLITS}
    train = parts["train"]
    src_len = train["source"].map(lambda t: len(tokenize(t, vocab.level)))
    tgt_len = train["target"].map(lambda t: len(tokenize(t, vocab.level)))
    quality.update({
        "pairs_used": int(sum(len(p) for p in parts.values())), **{f"n_{s}": len(parts[s]) for s in SPLITS},
        "train_source_len_mean": float(src_len.mean()), "train_source_len_max": int(src_len.max()),
        "train_target_len_mean": float(tgt_len.mean()), "train_target_len_max": int(tgt_len.max()),
    })
    logger.info("seq2seq corpus (%s): train %d, val %d, test %d", quality["split_source"],
                *(len(parts[s]) for s in SPLITS))
    return out, quality


def build_vocabularies(pairs: dict[str, dict[str, list[str]]], vocab: VocabParams) -> dict[str, Any]:
    """Source and target vocabularies from the training split (so the test split can hold ``<unk>``s)."""
    from mlsp_pipelines.features.vocab import Vocab

    train = pairs["train"]
    settings = dict(level=vocab.level, min_freq=vocab.min_freq, max_size=vocab.max_size,
                    subword_vocab_size=vocab.subword_vocab_size, subword_model_type=vocab.subword_model)
    if vocab.shared:
        v = Vocab.build([*train["source"], *train["target"]], **settings)
        logger.info("shared vocabulary (source and target): %d %s tokens", len(v), vocab.level)
        return {"source": v.to_dict(), "target": v.to_dict()}
    out = {}
    for side in ("source", "target"):
        v = Vocab.build(train[side], **settings)
        out[side] = v.to_dict()
        logger.info("%s vocabulary: %d %s tokens", side, len(v), vocab.level)
    return out


def make_model_input(pairs: dict[str, dict[str, list[str]]], vocab: dict[str, Any]) -> dict[str, Any]:
    """Token tensors per split: ``(src, tgt_in, tgt_out)`` (see :func:`~mlsp_pipelines.features.vocab.encode_pairs`),
    with the vocabularies and texts the evaluation needs."""
    from mlsp_pipelines.features.vocab import Vocab, encode_pairs

    src_vocab, tgt_vocab = Vocab.from_dict(vocab["source"]), Vocab.from_dict(vocab["target"])
    out: dict[str, Any] = {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "texts": pairs}
    for s in SPLITS:
        out[s] = encode_pairs(pairs[s]["source"], pairs[s]["target"], src_vocab, tgt_vocab)
    return out


# -- models -------------------------------------------------------------------------------------

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
    model_input: dict[str, Any], model: ModelSpec, train: TrainParams, batching: Seq2SeqBatchParams,
    checkpoints: CheckpointStore, *, name: str,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Teacher-forced training with the shared loop (token cross-entropy, padding ignored);
    returns a self-contained model bundle (weights, architecture, vocabularies), the history and
    the wall-clock seconds, in all and per epoch (apart: they differ on every run, the bundle
    must hash alike).
    ``name`` is the model's key under ``seq2seq.models`` (two models may share an ``arch``).

    Batches are length-bucketed and trimmed to their longest row (``batching``), so a batch of
    short sentences costs what short sentences cost. ``train.num_threads: null`` uses every
    core; results are reproducible per thread count, which the bundle records (``threads``)."""
    import torch

    from mlsp_pipelines.features.vocab import bucket_batches, flat_targets, sequence_lengths, trim_batch
    from mlsp_pipelines.training.model_run import train_model
    from mlsp_pipelines.training.token_loss import softmax_cross_entropy

    tp = model.train_params(train)
    src_vocab, tgt_vocab = model_input["src_vocab"], model_input["tgt_vocab"]
    if tp.num_threads:
        torch.set_num_threads(tp.num_threads)
    threads = torch.get_num_threads()
    sampler = None
    if batching.bucket:
        lengths = {len(t[0]): sequence_lengths(t[0], t[2]) for t in (model_input["train"], model_input["val"])}

        def sampler(n: int, epoch: int, shuffle: bool) -> list[torch.Tensor]:
            return bucket_batches(lengths[n], tp.batch_size, seed=tp.seed, epoch=epoch, shuffle=shuffle,
                                  pool=batching.pool, max_tokens=batching.max_tokens)

    def collate(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return flat_targets(trim_batch(batch) if batching.bucket else batch)

    val_texts = (model_input.get("texts") or {}).get("val")  # absent: token tensors only (benchmarks)
    val_src, val_refs = model_input["val"][0], (list(val_texts["target"]) if val_texts is not None else [])
    max_len = int(1.5 * model_input["train"][2].shape[1]) + 5
    greedy = Seq2SeqReportParams(beam_size=1)

    def val_bleu(net: torch.nn.Module) -> dict[str, float]:
        """Greedy sacreBLEU on the validation split: what a translator watches, and what picks the kept epoch."""
        from sacrebleu.metrics import BLEU

        valid_only, net.valid_only = net.valid_only, False
        net.eval()
        try:
            with torch.inference_mode():
                rows = decode(net, val_src, greedy, max_len)
        finally:
            net.valid_only = valid_only
        hyps = [tgt_vocab.decode(row.tolist()) for row in rows]
        return {"val_bleu": float(BLEU().corpus_score(hyps, [val_refs]).score)}

    def prepare(net: torch.nn.Module, settings: TrainParams) -> dict[str, Any]:
        # The output layer and the loss see the non-padded target steps only (logits (tokens, vocabulary)),
        # and the loss keeps one softmax for the backward: over a large vocabulary they are most of the work.
        net.valid_only = True
        return {"batch_sampler": sampler, "collate": collate,
                "loss_fn": partial(softmax_cross_entropy, label_smoothing=settings.label_smoothing),
                "val_score": val_bleu if len(val_refs) else None, "select_by": "val_bleu"}

    logger.info("%s: training on %d thread(s)%s", name, threads, ", length-bucketed batches" if batching.bucket else "")
    trained = train_model(
        name, model, train, model_input["train"], model_input["val"], in_features=len(src_vocab),
        out_features=len(tgt_vocab), task="classification", checkpoints=checkpoints, prepare=prepare,
        fingerprint_parts=(batching.model_dump(), threads, "valid-steps softmax cross-entropy, best by val BLEU",
                           _digest(*model_input["train"], *model_input["val"]), src_vocab.tokens, tgt_vocab.tokens),
        bundle_extra={"src_vocab": src_vocab.to_dict(), "tgt_vocab": tgt_vocab.to_dict(),
                      "max_target_len": int(model_input["train"][2].shape[1]), "threads": threads},
    )
    trained.net.valid_only = False
    seconds = {"train_seconds": float(trained.result.train_seconds),
               "epoch_seconds": [float(t) for t in trained.result.epoch_seconds]}
    return dict(trained.bundle), _history_frame(trained.result.history), seconds


def decode(net: torch.nn.Module, src: torch.Tensor, report: Seq2SeqReportParams, max_len: int) -> list[torch.Tensor]:
    """Decoded id rows for every source row: greedy or beam search over ``report.batch_size``
    sentences at once (all hypotheses of a batch advance together), sources sorted by length
    so a batch holds similar lengths, padding trimmed; memory is bounded by one batch's
    ``batch_size × beam_size × vocabulary`` scores. Rows come back in the input order."""
    import torch

    from mlsp_pipelines.features.vocab import sequence_lengths

    penalties = report.length_penalties
    if len(penalties) > 1 and report.beam_size > 1:
        raise ValueError(f"seq2seq.report.length_penalty: decoding needs one value, got {penalties} "
                         "(choose_length_penalty picks one on the validation split)")
    order = np.argsort(sequence_lengths(src), kind="stable")
    rows: list[torch.Tensor | None] = [None] * len(src)
    for i in range(0, len(src), report.batch_size):
        idx = order[i : i + report.batch_size]
        batch = src[torch.from_numpy(idx)]
        batch = batch[:, : max(int((batch != 0).sum(1).max()), 1)]
        out = net.generate(batch, max_len=max_len, beam_size=report.beam_size, length_penalty=penalties[0])
        for j, row in zip(idx, out):
            rows[j] = row
    return rows  # type: ignore[return-value]


def choose_length_penalty(
    net: torch.nn.Module, model_input: dict[str, Any], report: Seq2SeqReportParams, max_len: int, tgt_vocab: Any,
) -> tuple[float, dict[str, float]]:
    """The length penalty to decode the test split with, and the validation sacreBLEU of each
    candidate. Several candidates are each tried with beam search on the validation split, the
    best (the first on a tie) is kept: how much a beam should favour longer outputs depends on
    the model and the language pair, and the test split must not choose it. One candidate, or
    greedy decoding: nothing to try."""
    from sacrebleu.metrics import BLEU

    penalties = report.length_penalties
    refs = list(((model_input.get("texts") or {}).get("val") or {}).get("target") or [])
    if len(penalties) == 1 or report.beam_size == 1 or not refs:
        if len(penalties) > 1:
            logger.warning("seq2seq.report.length_penalty: %s without %s; using %s", penalties,
                           "beam search" if report.beam_size == 1 else "a validation split", penalties[0])
        return penalties[0], {}
    scores: dict[str, float] = {}
    for lp in penalties:
        rows = decode(net, model_input["val"][0], report.with_length_penalty(lp), max_len)
        scores[f"{lp:g}"] = float(BLEU().corpus_score([tgt_vocab.decode(r.tolist()) for r in rows], [refs]).score)
    best = max(penalties, key=lambda lp: scores[f"{lp:g}"])  # max keeps the first of equal scores
    logger.info("length penalty by validation BLEU (beam %d): %s -> %g", report.beam_size,
                ", ".join(f"{k}: {v:.2f}" for k, v in scores.items()), best)
    return best, scores


def _max_len(bundle: dict[str, Any], report: Seq2SeqReportParams) -> int:
    return report.max_len or int(1.5 * bundle["max_target_len"]) + 5


def teacher_forced_accuracy(net: torch.nn.Module, data: tuple[torch.Tensor, ...], batch_size: int) -> float:
    """Next-token accuracy with the reference prefix, batch by batch (no (N, T, V) tensor is kept)."""
    import torch

    from mlsp_pipelines.features.vocab import bucket_batches, sequence_lengths, trim_batch

    net.eval()
    correct = total = 0
    with torch.inference_mode():
        for b in bucket_batches(sequence_lengths(data[0], data[2]), batch_size, seed=0, epoch=0, shuffle=False):
            src, tgt_in, tgt_out = trim_batch(tuple(t[b] for t in data))
            mask = tgt_out != -100
            correct += int((net(src, tgt_in).argmax(-1)[mask] == tgt_out[mask]).sum())
            total += int(mask.sum())
    return correct / max(total, 1)


def evaluate_seq2seq(
    bundle: dict[str, Any], history: pd.DataFrame, model_input: dict[str, Any], report: Seq2SeqReportParams,
    train_seconds: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame, Figure]:
    """Test split: exact match and token accuracy (on ``vocab.level`` tokens), corpus BLEU and
    chrF by sacreBLEU on the detokenised outputs against the raw references (its signatures
    are logged and stored), the teacher-forced token accuracy, per-sentence predictions and the
    learning curves; training and decoding time and peak memory go to the timings, apart from
    the reproducible metrics. With ``report.tokenized_bleu`` (a language code) the metrics add
    ``bleu_tok``, the Multi30K papers' lowercased, Moses-tokenised BLEU, for comparison with them."""
    from mlsp_pipelines.evaluation.plots import learning_curves_figure
    from mlsp_pipelines.features.vocab import Vocab
    from mlsp_pipelines.models import rebuild_model

    net = rebuild_model(bundle)
    tgt_vocab = Vocab.from_dict(bundle["tgt_vocab"])
    texts = model_input["texts"]["test"]
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    length_penalty, val_by_penalty = choose_length_penalty(net, model_input, report, _max_len(bundle, report), tgt_vocab)
    choose_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = decode(net, model_input["test"][0], report.with_length_penalty(length_penalty), _max_len(bundle, report))
    decode_seconds = time.perf_counter() - t0
    tf_acc = teacher_forced_accuracy(net, model_input["test"], report.batch_size)
    hyps = [tgt_vocab.decode_tokens(row.tolist()) for row in decoded]
    refs = [tgt_vocab.tokenize(t) for t in texts["target"]]
    hyp_text = [tgt_vocab.decode(row.tolist()) for row in decoded]
    scores = m.sacrebleu_scores(hyp_text, list(texts["target"]))
    source_words = [len(t.split()) for t in texts["source"]]
    by_length = m.bleu_by_length(hyp_text, list(texts["target"]), source_words)
    if report.tokenized_bleu:
        scores.update(m.tokenized_bleu(hyp_text, list(texts["target"]), report.tokenized_bleu))
    metrics = {
        "model": bundle["name"], "arch": bundle["arch"],
        "exact_match": m.exact_match(hyps, refs),
        "token_accuracy": m.token_accuracy(hyps, refs),
        **scores,
        "teacher_forced_token_accuracy": tf_acc,
        "bleu_by_source_words": {b: v["bleu"] for b, v in by_length.items()},
        "n_by_source_words": {b: v["n"] for b, v in by_length.items()},
        "n_test": len(refs), "beam_size": report.beam_size, "length_penalty": length_penalty,
        **({"val_bleu_by_length_penalty": val_by_penalty} if val_by_penalty else {}),
        "averaged_epochs": int(bundle.get("averaged_epochs", 1)), "level": tgt_vocab.level,
        "params": bundle["params"], "threads": bundle.get("threads"),
        "best_epoch": bundle["best_epoch"], "epochs_run": bundle["epochs_run"],
    }
    seconds = train_seconds or {}
    timings = {"model": bundle["name"],
               "train_seconds": round(float(seconds.get("train_seconds", float("nan"))), 3),
               "decode_seconds": round(decode_seconds, 3),
               "decode_sentences_per_second": round(len(refs) / max(decode_seconds, 1e-9), 1),
               "length_penalty_search_seconds": round(choose_seconds, 3),
               "peak_rss_mb": round(max(peak_rss_mb(), rss0), 1), "epochs_run": bundle["epochs_run"],
               "epoch_seconds": [round(float(t), 3) for t in seconds.get("epoch_seconds") or ()]}
    predictions = pd.DataFrame({
        "source": texts["source"], "reference": texts["target"], "prediction": hyp_text,
        "correct": [h == r for h, r in zip(hyps, refs)],
        "source_words": source_words,
        "sentence_bleu": np.round(m.sentence_bleu(hyp_text, list(texts["target"])), 2),
    })
    logger.info("%s test: exact match %.3f, token accuracy %.3f, BLEU %.2f, chrF %.2f (%d sentences decoded in "
                "%.1f s, beam %d)", bundle["name"], metrics["exact_match"], metrics["token_accuracy"],
                metrics["bleu"], metrics["chrf"], len(refs), decode_seconds, report.beam_size)
    logger.info("sacreBLEU signatures: %s | %s", metrics["bleu_signature"], metrics["chrf_signature"])
    if "bleu_tok" in metrics:
        logger.info("%s lowercased Moses-tokenised BLEU (the Multi30K papers' convention, not sacreBLEU): %.2f",
                    bundle["name"], metrics["bleu_tok"])
    logger.info("%s BLEU by source length (words): %s", bundle["name"],
                ", ".join(f"{b}: {v['bleu']:.1f} (n={v['n']})" for b, v in by_length.items()))
    curves = learning_curves_figure(history.drop(columns="epoch").to_dict("list"), f"{bundle['name']} learning curves")
    return metrics, timings, predictions, curves


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``) in MB (0 where /proc is absent)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def plot_attention(bundle: dict[str, Any], model_input: dict[str, Any], report: Seq2SeqReportParams) -> Figure:
    """Attention heat-maps (output × source) of the model's own greedy output on the first
    ``report.n_examples`` test sentences (the Transformer: last decoder layer, heads averaged)."""
    import torch

    from mlsp_pipelines.evaluation.attention import AttentionExample, attention_figure
    from mlsp_pipelines.features.vocab import EOS, Vocab, pad_batch
    from mlsp_pipelines.models import rebuild_model

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
def build_report(*metrics: dict[str, Any]) -> tuple[pd.DataFrame, str, Figure, dict[str, Any]]:
    """One row per model, best BLEU first: exact match, token accuracy, sacreBLEU BLEU and chrF
    (0–100, signatures in ``metrics.json``) and the parameter count; no timings (they stay in
    ``timings.csv`` and each model's MLflow run)."""
    from mlsp_pipelines.modular.report.nodes import build_leaderboard

    by_length = {m["model"]: m["bleu_by_source_words"] for m in metrics if "bleu_by_source_words" in m}
    board, md, fig, summary = build_leaderboard(
        *metrics, sort_by="bleu", figure=partial(seq2seq_leaderboard_figure, by_length=by_length))
    for key in ("bleu_signature", "chrf_signature"):
        summary[key] = next((m[key] for m in metrics if key in m), None)
    summary["bleu_by_source_words"] = by_length
    return board, md, fig, summary


def seq2seq_leaderboard_figure(board: pd.DataFrame, by_length: dict[str, dict[str, float]] | None = None) -> Figure:
    """Panels: exact match and token accuracy (0–1); sacreBLEU BLEU and chrF (0–100); and, given
    ``by_length`` (model → bucket → BLEU), BLEU per source-length bucket, a line per model."""
    from mlsp_pipelines.evaluation.figures import subplots

    n_panels = 3 if by_length else 2
    fig, axes = subplots(1, n_panels, figsize=(max(9, 2.6 * len(board) + 3) + (4.5 if by_length else 0), 3.8))
    x = np.arange(len(board))
    for ax, cols, top in ((axes[0], ("exact_match", "token_accuracy"), 1.05), (axes[1], ("bleu", "chrf"), 105)):
        width = 0.8 / len(cols)
        for i, col in enumerate(cols):
            vals = pd.to_numeric(board[col], errors="coerce").to_numpy(dtype=float)
            bars = ax.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(vals), width, label=col)
            ax.bar_label(bars, fmt="%.2f" if top < 2 else "%.1f", fontsize=7)
        ax.set_xticks(x, [f"{n}\n{p / 1e3:.0f}k params" for n, p in zip(board["model"], board["params"])], fontsize=8)
        ax.set_ylim(0, top)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    if by_length:
        ax = axes[2]
        buckets = list(dict.fromkeys(b for model in board["model"] for b in by_length.get(model, {})))
        for model in board["model"]:
            scores = by_length.get(model, {})
            ax.plot(range(len(buckets)), [scores.get(b, np.nan) for b in buckets], marker="o", label=model)
        ax.set_xticks(range(len(buckets)), buckets, fontsize=8)
        ax.set_xlabel("source length (words)")
        ax.set_ylabel("BLEU")
        ax.set_ylim(0, 105)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title("BLEU by source length", fontsize=9)
    fig.suptitle("seq2seq test set (BLEU and chrF by sacreBLEU)")
    fig.tight_layout()
    return fig


def plot_quality_vs_time(*histories_and_timings: Any) -> Figure:
    """Validation BLEU (greedy, each epoch) against minutes of training, a line per model: what an
    hour buys each architecture. Inputs alternate each model's history and timings; it draws on
    wall-clock times, so it is written with the timings, apart from the reproducible reports."""
    from mlsp_pipelines.evaluation.figures import subplots

    fig, ax = subplots(1, 1, figsize=(6.5, 4.2))
    pairs = list(zip(histories_and_timings[::2], histories_and_timings[1::2]))
    for history, timings in pairs:
        seconds = list(timings.get("epoch_seconds") or ())
        if "val_bleu" not in history or not seconds:
            continue
        bleu = history["val_bleu"].to_numpy(dtype=float)[: len(seconds)]
        minutes = np.cumsum(seconds)[: len(bleu)] / 60
        ax.plot(minutes, bleu, marker="o", label=timings["model"])
        ax.annotate(f"{bleu[-1]:.1f}", (minutes[-1], bleu[-1]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("minutes of training (wall clock, validation included)")
    ax.set_ylabel("validation BLEU (greedy, sacreBLEU)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title("validation BLEU against training time", fontsize=10)
    fig.tight_layout()
    return fig
