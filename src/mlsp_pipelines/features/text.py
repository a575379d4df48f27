"""Text front end for word embeddings: tokens → vocabulary → sub-sampled (centre, context) examples.

Everything here is a pure function of its arguments (seeded ``numpy`` generators, no global
state), vectorised over the whole corpus: the only Python loops run over documents while
tokenising and over the ``window`` offsets while pairing, never over tokens.

The sampling follows the original word2vec (and gensim):

* **sub-sampling** of frequent words: a token of a word with count ``f`` is kept with
  probability ``(sqrt(f / (s·N)) + 1) · (s·N) / f`` (capped at 1), ``N`` the number of
  in-vocabulary tokens and ``s`` the ``sample`` threshold (0 = keep everything);
* **dynamic window**: every centre position draws ``b ~ U{1..window}`` and pairs with the
  ``b`` nearest tokens on each side (so nearer words are seen more often); the window never
  crosses a document boundary, and it spans the tokens left after sub-sampling;
* **noise distribution** for negative sampling: ``count ** 0.75``, normalised.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Lower-cased letters/digits, with an optional apostrophe suffix (``don't``, ``world's``).
DEFAULT_TOKEN_PATTERN = r"[a-z0-9]+(?:'[a-z]+)?"


def tokenize(text: str, *, pattern: str = DEFAULT_TOKEN_PATTERN, lowercase: bool = True,
             min_length: int = 1) -> list[str]:
    """Tokens of ``text``: lower-cased (by default), then every match of the regular expression."""
    return tokenize_documents([text], pattern=pattern, lowercase=lowercase, min_length=min_length)[0]


def tokenize_documents(docs: Iterable[str], *, pattern: str = DEFAULT_TOKEN_PATTERN, lowercase: bool = True,
                       min_length: int = 1) -> list[list[str]]:
    """:func:`tokenize` applied to each document (the pattern compiled once; empty documents give [])."""
    rx = re.compile(pattern)
    out = []
    for d in docs:
        toks = rx.findall(d.lower() if lowercase else d)
        out.append([t for t in toks if len(t) >= min_length] if min_length > 1 else toks)
    return out


@dataclass(frozen=True)
class Vocabulary:
    """Words by descending count (ties alphabetical), so id 0 is the most frequent word."""

    words: tuple[str, ...]
    counts: np.ndarray  # int64, aligned with ``words``

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @property
    def total(self) -> int:
        """In-vocabulary tokens in the corpus."""
        return int(self.counts.sum())


def build_vocabulary(docs: Iterable[Sequence[str]], *, min_count: int = 5,
                     max_size: int | None = None) -> Vocabulary:
    """Words occurring at least ``min_count`` times (the ``max_size`` most frequent ones if set)."""
    counter: Counter[str] = Counter()
    for d in docs:
        counter.update(d)
    items = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
    if max_size is not None:
        items = items[:max_size]
    return Vocabulary(tuple(w for w, _ in items), np.array([c for _, c in items], dtype=np.int64))


def encode(docs: Sequence[Sequence[str]], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Word ids of all in-vocabulary tokens, concatenated, and the document of each token.

    Out-of-vocabulary tokens are dropped before any window is formed (as word2vec does).
    """
    index = vocab.index
    ids: list[int] = []
    lengths = np.zeros(len(docs), dtype=np.int64)
    for k, d in enumerate(docs):
        kept = [index[t] for t in d if t in index]
        ids.extend(kept)
        lengths[k] = len(kept)
    return np.asarray(ids, dtype=np.int64), np.repeat(np.arange(len(docs), dtype=np.int64), lengths)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping one token of each word under frequent-word sub-sampling.

    ``(sqrt(f / t) + 1) · t / f`` with ``t = sample · N`` (gensim's formula), capped at 1;
    ``sample = 0`` keeps every token.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0 or counts.size == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    prob = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    return np.minimum(prob, 1.0)


def subsample(ids: np.ndarray, keep_prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the tokens kept (one uniform draw per token, compared with its keep prob)."""
    return rng.random(len(ids)) < keep_prob[ids]


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Unigram distribution raised to ``power`` and renormalised (the negative-sampling noise)."""
    w = np.asarray(counts, dtype=np.float64) ** power
    return w / w.sum()


def reduced_windows(n: int, window: int, rng: np.random.Generator | None) -> np.ndarray:
    """Per-centre effective window ``b ~ U{1..window}``; all equal to ``window`` when ``rng`` is None."""
    if rng is None:
        return np.full(n, window, dtype=np.int64)
    return rng.integers(1, window + 1, size=n, dtype=np.int64)


def skipgram_pairs(ids: np.ndarray, doc: np.ndarray, window: int,
                   spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (centre, context) id pairs: context at distance ``1..spans[i]`` of centre ``i``, same document.

    Ordered by offset (−1, +1, −2, +2, ...), then by position; the training loop shuffles anyway.
    """
    centres, contexts = [], []
    n = len(ids)
    for d in range(1, window + 1):
        if d >= n:
            break
        pos = np.arange(n - d)
        # centre at pos + d looking left, centre at pos looking right
        left = (spans[d:] >= d) & (doc[d:] == doc[:-d])
        right = (spans[:-d] >= d) & (doc[:-d] == doc[d:])
        centres += [ids[pos[left] + d], ids[pos[right]]]
        contexts += [ids[pos[left]], ids[pos[right] + d]]
    if not centres:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(centres), np.concatenate(contexts)


def cbow_windows(ids: np.ndarray, doc: np.ndarray, window: int, spans: np.ndarray,
                 pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Context windows for CBOW: ``(n_centres, 2·window)`` ids padded with ``pad``, and the centres.

    Column ``2(d−1)`` holds the word ``d`` to the left, ``2(d−1)+1`` the word ``d`` to the right;
    centres without any context (one-word documents) are dropped.
    """
    n = len(ids)
    ctx = np.full((n, 2 * window), pad, dtype=np.int64)
    for d in range(1, min(window, n - 1) + 1):
        left = (spans[d:] >= d) & (doc[d:] == doc[:-d])
        ctx[d:, 2 * (d - 1)][left] = ids[:-d][left]
        right = (spans[:-d] >= d) & (doc[:-d] == doc[d:])
        ctx[:-d, 2 * (d - 1) + 1][right] = ids[d:][right]
    has = (ctx != pad).any(axis=1)
    return ctx[has], ids[has]


@dataclass(frozen=True)
class TrainingExamples:
    """What one draw of sub-sampling and reduced windows produced."""

    kept: np.ndarray            # bool mask over the in-vocabulary tokens
    sg_centre: np.ndarray
    sg_context: np.ndarray
    cbow_context: np.ndarray    # (n, 2·window), padded with len(vocab)
    cbow_centre: np.ndarray


def make_examples(ids: np.ndarray, doc: np.ndarray, vocab: Vocabulary, *, window: int, sample: float,
                  dynamic_window: bool = True, seed: int = 0) -> TrainingExamples:
    """Sub-sample ``ids`` then form skip-gram pairs and CBOW windows (seeded, vectorised)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    rng = np.random.default_rng(seed)
    kept = subsample(ids, keep_probabilities(vocab.counts, sample), rng)
    k_ids, k_doc = ids[kept], doc[kept]
    spans = reduced_windows(len(k_ids), window, rng if dynamic_window else None)
    sg_c, sg_o = skipgram_pairs(k_ids, k_doc, window, spans)
    cb_ctx, cb_c = cbow_windows(k_ids, k_doc, window, spans, pad=len(vocab))
    return TrainingExamples(kept, sg_c, sg_o, cb_ctx, cb_c)
