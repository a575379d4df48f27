"""numba kernels of :mod:`mlsp_pipelines.training.word2vec_sgd` (imported on first use, so
importing the pipeline does not load numba). Compiled once, then read from numba's on-disk
cache (``__pycache__``). float32 vectors and dot products, as gensim's BLAS calls."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, fastmath=True, nogil=True, inline="always")
def _next(state: np.ndarray) -> np.uint64:
    """xorshift64*: a fast, well-mixed 64-bit stream (word2vec's LCG has weak low bits)."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(2685821657736338717)


@njit(cache=True, fastmath=True, nogil=True, inline="always")
def _negative(state: np.ndarray, accept: np.ndarray, alias: np.ndarray) -> np.int64:
    """One draw from the alias table: the high 32 bits pick a column, the low 32 accept it."""
    r = _next(state)
    k = np.int64((r >> np.uint64(32)) % np.uint64(accept.shape[0]))
    u = np.float64(r & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    return k if u < accept[k] else alias[k]


@njit(cache=True, fastmath=True, nogil=True, inline="always")
def _unit(h: np.ndarray, syn1: np.ndarray, target: np.int64, label: float, alpha: float,
          neu1e: np.ndarray, with_loss: bool) -> float:
    """One logistic unit σ(h·u_target): gradient into ``neu1e`` and ``u_target``; its loss."""
    dim = h.shape[0]
    f = np.float32(0.0)
    for d in range(dim):
        f += h[d] * syn1[target, d]
    x = min(max(np.float64(f), -30.0), 30.0)
    e = math.exp(-x)
    g = np.float32((label - 1.0 / (1.0 + e)) * alpha)
    for d in range(dim):
        neu1e[d] += g * syn1[target, d]
        syn1[target, d] += g * h[d]
    if not with_loss:
        return 0.0
    # -log σ(x) = log1p(e^-x);  -log σ(-x) = x + log1p(e^-x)
    return math.log1p(e) if label > 0.5 else x + math.log1p(e)


@njit(cache=True, fastmath=True, nogil=True)
def sg_epoch(ids, doc, spans, syn0, syn1, accept, alias, negative, alpha_start, alpha_end, seed, with_loss):
    """Skip-gram over one epoch's tokens; the input vector of each context word predicts the
    centre (as word2vec's C code and gensim). Returns (summed loss, pairs)."""
    n = ids.shape[0]
    dim = syn0.shape[1]
    neu1e = np.zeros(dim, dtype=np.float32)
    state = np.empty(1, dtype=np.uint64)
    state[0] = seed
    loss = 0.0
    pairs = 0
    for i in range(n):
        alpha = alpha_start + (alpha_end - alpha_start) * (i / max(n, 1))
        centre = ids[i]
        b = spans[i]
        for j in range(max(i - b, 0), min(i + b + 1, n)):
            if j == i or doc[j] != doc[i]:
                continue
            ctx = ids[j]
            h = syn0[ctx]
            neu1e[:] = 0.0
            loss += _unit(h, syn1, centre, 1.0, alpha, neu1e, with_loss)
            for _ in range(negative):
                t = _negative(state, accept, alias)
                if t != centre:
                    loss += _unit(h, syn1, t, 0.0, alpha, neu1e, with_loss)
            for d in range(dim):
                syn0[ctx, d] += neu1e[d]
            pairs += 1
    return loss, pairs


@njit(cache=True, fastmath=True, nogil=True)
def cbow_epoch(ids, doc, spans, syn0, syn1, accept, alias, negative, alpha_start, alpha_end, seed, with_loss):
    """CBOW (mean of the context vectors) over one epoch's tokens; every context vector gets
    the whole error (gensim's ``cbow_mean=1``). Returns (summed loss, examples)."""
    n = ids.shape[0]
    dim = syn0.shape[1]
    neu1 = np.zeros(dim, dtype=np.float32)
    neu1e = np.zeros(dim, dtype=np.float32)
    state = np.empty(1, dtype=np.uint64)
    state[0] = seed
    loss = 0.0
    examples = 0
    for i in range(n):
        alpha = alpha_start + (alpha_end - alpha_start) * (i / max(n, 1))
        centre = ids[i]
        b = spans[i]
        lo, hi = max(i - b, 0), min(i + b + 1, n)
        count = 0
        neu1[:] = 0.0
        neu1e[:] = 0.0
        for j in range(lo, hi):
            if j == i or doc[j] != doc[i]:
                continue
            count += 1
            w = ids[j]
            for d in range(dim):
                neu1[d] += syn0[w, d]
        if count == 0:
            continue
        inv = np.float32(1.0 / count)
        for d in range(dim):
            neu1[d] *= inv
        loss += _unit(neu1, syn1, centre, 1.0, alpha, neu1e, with_loss)
        for _ in range(negative):
            t = _negative(state, accept, alias)
            if t != centre:
                loss += _unit(neu1, syn1, t, 0.0, alpha, neu1e, with_loss)
        for j in range(lo, hi):
            if j == i or doc[j] != doc[i]:
                continue
            w = ids[j]
            for d in range(dim):
                syn0[w, d] += neu1e[d]
        examples += 1
    return loss, examples
