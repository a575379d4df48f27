"""Sequence-level metrics on token lists: exact match, position-wise token accuracy, corpus BLEU.

BLEU follows Papineni et al. (2002): clipped n-gram counts summed over the whole corpus for
n = 1..4, geometric mean of the four precisions (uniform weights), times the brevity penalty
``exp(1 - r/c)`` when the total hypothesis length ``c`` is at most the reference length ``r``.
No smoothing: a corpus without a single matching 4-gram scores 0. Scores are in [0, 1] (not
the 0–100 of sacreBLEU), one reference per hypothesis.
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
