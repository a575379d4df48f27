"""Sequence-level metrics: exact match and position-wise token accuracy on token lists, and the
standard corpus BLEU and chrF of sacreBLEU on detokenised text (:func:`sacrebleu_scores`).

sacreBLEU (Post, 2018) is what published results quote: corpus BLEU with its own ``13a``
tokenisation of the detokenised output, scores 0–100, and a signature string
(``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``) that says exactly how it was
computed. :func:`tokenized_bleu` is the other number papers quote: BLEU on lowercased,
punctuation-normalised, Moses-tokenised text (the Multi30K shared tasks' files and their result
tables), for comparison with those tables only -- it is not sacreBLEU and scores higher.
:func:`corpus_bleu_details` (Papineni et al.'s formula on our own tokens, in [0, 1],
no smoothing) is kept as a reference: on whitespace-tokenised text it agrees with sacreBLEU.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

Tokens = Sequence[str]


def ngrams(tokens: Tokens, n: int) -> Counter:
    """Counts of the n-grams (as tuples) of ``tokens``."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _check(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def corpus_bleu_details(
    hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_n: int = 4
) -> dict[str, Any]:
    """``bleu`` with its parts: ``precisions`` (n = 1..max_n), ``brevity_penalty``,
    ``hyp_len`` (c) and ``ref_len`` (r)."""
    _check(hypotheses, references)
    matches = [0] * max_n
    totals = [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, max_n + 1):
            h, r = ngrams(hyp, n), ngrams(ref, n)
            matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    precisions = [m / t if t else 0.0 for m, t in zip(matches, totals)]
    if hyp_len == 0:
        bp = 0.0
    else:
        bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    if min(precisions) == 0.0:
        bleu = 0.0
    else:
        bleu = bp * math.exp(sum(math.log(p) for p in precisions) / max_n)
    return {"bleu": bleu, "precisions": precisions, "brevity_penalty": bp, "hyp_len": hyp_len, "ref_len": ref_len}


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_n: int = 4) -> float:
    """Corpus BLEU-``max_n`` in [0, 1] (see module docstring)."""
    return corpus_bleu_details(hypotheses, references, max_n)["bleu"]


def exact_match(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """Fraction of hypotheses identical to their reference."""
    _check(hypotheses, references)
    if not references:
        return 0.0
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / len(references)


def token_accuracy(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """Position-wise agreement of decoded and reference tokens over the longer of the two, so
    missing and surplus tokens both count as errors: Σ matches / Σ max(len(h), len(r))."""
    _check(hypotheses, references)
    correct = total = 0
    for h, r in zip(hypotheses, references):
        correct += sum(a == b for a, b in zip(h, r))
        total += max(len(h), len(r))
    return correct / total if total else 0.0


def sacrebleu_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF of detokenised ``hypotheses`` against one reference each, with the
    signatures that make the numbers comparable (``bleu``/``chrf`` on sacreBLEU's 0–100 scale)."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": float(b.score), "bleu_brevity_penalty": float(b.bp),
            "bleu_precisions": [float(p) for p in b.precisions], "bleu_signature": str(bleu.get_signature()),
            "chrf": float(c.score), "chrf_signature": str(chrf.get_signature())}


def length_bucket(n: int, edges: Sequence[int] = (10, 20, 30)) -> str:
    """The bucket label of a length ``n`` for the upper ``edges``: ``1-10``, ``11-20``, ``21-30``, ``31-max`` (characters MLflow accepts in metric names)."""
    low = 1
    for edge in edges:
        if n <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}-max"


def bleu_by_length(
    hypotheses: Sequence[str], references: Sequence[str], lengths: Sequence[int], edges: Sequence[int] = (10, 20, 30)
) -> dict[str, dict[str, float]]:
    """sacreBLEU corpus BLEU per length bucket (usually the source's words): where a model breaks
    down on long sentences -- the attention-free encoder-decoder's fixed summary does.
    ``{bucket: {"n": sentences, "bleu": score}}`` in increasing length, empty buckets left out."""
    from sacrebleu.metrics import BLEU

    if not len(hypotheses) == len(references) == len(lengths):
        raise ValueError(f"{len(hypotheses)} hypotheses, {len(references)} references, {len(lengths)} lengths")
    groups: dict[str, list[int]] = {}
    order = [length_bucket(e, edges) for e in edges] + [length_bucket(edges[-1] + 1, edges)]
    for i, n in enumerate(lengths):
        groups.setdefault(length_bucket(int(n), edges), []).append(i)
    bleu = BLEU()
    return {b: {"n": len(groups[b]),
                "bleu": float(bleu.corpus_score([hypotheses[i] for i in groups[b]],
                                                [[references[i] for i in groups[b]]]).score)}
            for b in order if b in groups}


def sentence_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """sacreBLEU's smoothed sentence BLEU of each hypothesis (for sorting examples, not for reporting:
    corpus BLEU is not the mean of sentence BLEUs)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    return [float(bleu.sentence_score(h, [r]).score) for h, r in zip(hypotheses, references)]


def moses_normalise(texts: Sequence[str], lang: str) -> list[str]:
    """Punctuation-normalised, lowercased, Moses-tokenised ``texts`` (``normalize-punctuation.perl
    -l lang | lowercase.perl | tokenizer.perl -l lang``, by sacremoses): how the Multi30K tasks'
    ``*.lc.norm.tok.*`` files were made."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    norm, tok = MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)
    return [tok.tokenize(norm.normalize(t).lower(), escape=False, return_str=True) for t in texts]


def tokenized_bleu(hypotheses: Sequence[str], references: Sequence[str], lang: str) -> dict[str, Any]:
    """Corpus BLEU (0-100) of detokenised ``hypotheses`` after :func:`moses_normalise` of both
    sides, with its signature (``tok:none`` after the Moses steps): the convention of the Multi30K
    papers' tables, reported next to sacreBLEU to compare with them, never instead of it."""
    from sacrebleu.metrics import BLEU

    _check(hypotheses, references)
    bleu = BLEU(tokenize="none", lowercase=True, force=True)  # already lowercased: the signature says so
    score = bleu.corpus_score(moses_normalise(hypotheses, lang), [moses_normalise(references, lang)])
    return {"bleu_tok": float(score.score),
            "bleu_tok_signature": f"{bleu.get_signature()}|moses-norm-lc-tok:{lang}"}
