"""Intrinsic evaluation of word vectors: word-pair similarity, analogies, neighbours, projection.

Functions take the vocabulary (``words``) and the vectors (V, D) as arrays, so the project's
models and the gensim anchor are scored by the same code. Word lookups are case-insensitive
(the most frequent spelling wins), as gensim's ``evaluate_word_pairs``/``evaluate_word_analogies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlsp_pipelines.evaluation.figures import subplots


def lookup_table(words: Sequence[str]) -> dict[str, int]:
    """Lower-cased word → row (the first, i.e. most frequent, spelling wins)."""
    table: dict[str, int] = {}
    for i, w in enumerate(words):
        table.setdefault(w.lower(), i)
    return table


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def word_pair_spearman(words: Sequence[str], vectors: np.ndarray, pairs: pd.DataFrame) -> dict[str, Any]:
    """Spearman correlation of cosine similarity with the human scores over in-vocabulary pairs.

    ``pairs``: columns ``word1, word2, score``. Pairs with a word outside the vocabulary are
    counted (``pairs_oov``) and left out; fewer than 3 usable pairs give ``spearman = None``.
    """
    from scipy.stats import spearmanr

    table = lookup_table(words)
    unit = unit_rows(vectors)
    i1 = pairs["word1"].str.lower().map(table)
    i2 = pairs["word2"].str.lower().map(table)
    ok = (i1.notna() & i2.notna()).to_numpy()
    a, b = i1[ok].astype(int).to_numpy(), i2[ok].astype(int).to_numpy()
    sims = np.einsum("ij,ij->i", unit[a], unit[b])
    out: dict[str, Any] = {"pairs": int(len(pairs)), "pairs_used": int(ok.sum()), "pairs_oov": int((~ok).sum()),
                           "spearman": None, "spearman_pvalue": None, "pearson": None}
    if ok.sum() >= 3 and np.ptp(sims) > 0:
        res = spearmanr(sims, pairs["score"].to_numpy(dtype=float)[ok])
        out["spearman"], out["spearman_pvalue"] = float(res.statistic), float(res.pvalue)
        out["pearson"] = float(np.corrcoef(sims, pairs["score"].to_numpy(dtype=float)[ok])[0, 1])
    return out


def analogy_accuracy(words: Sequence[str], vectors: np.ndarray, questions: pd.DataFrame, *,
                     restrict_vocab: int | None = 30000, chunk: int = 512) -> dict[str, Any]:
    """3CosAdd accuracy on ``a : b :: c : d`` questions (columns ``section, a, b, c, d``).

    Only questions whose four words are among the ``restrict_vocab`` most frequent words are
    asked (``questions_used`` of ``questions``); the answer is the nearest word to
    ``b − a + c`` (unit vectors) other than ``a``, ``b`` and ``c``. Sections whose name starts
    with ``gram`` are syntactic, the others semantic (Mikolov et al.'s split).
    """
    n_words = len(words) if restrict_vocab is None else min(restrict_vocab, len(words))
    table = {w: i for w, i in lookup_table(words).items() if i < n_words}
    unit = unit_rows(vectors)[:n_words]
    cols = [questions[c].str.lower().map(table) for c in ("a", "b", "c", "d")]
    ok = np.logical_and.reduce([c.notna().to_numpy() for c in cols])
    a, b, c, d = (col[ok].astype(int).to_numpy() for col in cols)
    syntactic = questions["section"].str.startswith("gram").to_numpy()[ok]
    correct = np.zeros(len(a), dtype=bool)
    for s in range(0, len(a), chunk):
        sl = slice(s, s + chunk)
        query = unit[b[sl]] - unit[a[sl]] + unit[c[sl]]
        sims = query @ unit.T
        rows = np.arange(len(query))
        for excluded in (a[sl], b[sl], c[sl]):
            sims[rows, excluded] = -np.inf
        correct[sl] = sims.argmax(axis=1) == d[sl]

    def acc(mask: np.ndarray) -> float | None:
        return float(correct[mask].mean()) if mask.any() else None

    return {
        "questions": int(len(questions)), "questions_used": int(ok.sum()), "correct": int(correct.sum()),
        "accuracy": acc(np.ones(len(correct), dtype=bool)),
        "semantic_accuracy": acc(~syntactic), "syntactic_accuracy": acc(syntactic),
    }


def nearest_neighbours(words: Sequence[str], vectors: np.ndarray, probes: Sequence[str],
                       k: int = 8) -> tuple[pd.DataFrame, list[str]]:
    """The ``k`` most cosine-similar words of each probe word (rows ``probe, rank, neighbour,
    cosine``) and the probes missing from the vocabulary."""
    table = lookup_table(words)
    unit = unit_rows(vectors)
    rows, missing = [], []
    for probe in probes:
        i = table.get(probe.lower())
        if i is None:
            missing.append(probe)
            continue
        sims = unit @ unit[i]
        sims[i] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        rows += [(probe, r + 1, words[j], round(float(sims[j]), 4)) for r, j in enumerate(top)]
    return pd.DataFrame(rows, columns=["probe", "rank", "neighbour", "cosine"]), missing


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D principal-component coordinates of the rows and the variance share of each component."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    var = s**2 / max(float((s**2).sum()), 1e-300)
    return u[:, :2] * s[:2], var[:2]


def projection_figure(words: Sequence[str], vectors: np.ndarray, counts: np.ndarray, *, n: int = 80,
                      skip: int = 20, title: str = "") -> Figure:
    """Scatter of the PCA projection of frequent words (ranks ``skip .. skip + n``), labelled."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    sel = order[skip : skip + n] if len(order) > skip + 1 else order[:n]
    fig, ax = subplots(figsize=(9, 7))
    if len(sel) >= 2:
        xy, var = pca_2d(np.asarray(vectors)[sel])
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.6)
        for (x, y), j in zip(xy, sel):
            ax.annotate(words[j], (x, y), fontsize=7, alpha=0.85, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(f"PC1 ({100 * var[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * var[1]:.1f}% of variance)")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"PCA of the {len(sel)} most frequent words (after the top {skip})")
    fig.tight_layout()
    return fig


QUALITY_PANELS = (("spearman", "WordSim353 Spearman ρ"), ("analogy_accuracy", "analogy accuracy (3CosAdd)"))


def comparison_figure(board: pd.DataFrame, title: str = "",
                      panels: tuple[tuple[str, str], ...] = QUALITY_PANELS) -> Figure:
    """One bar panel per ``(column, label)`` of ``panels`` (default: WordSim353 Spearman and
    analogy accuracy), one bar per model (gensim anchors in orange)."""
    fig, axes = subplots(1, len(panels), figsize=(max(4 * len(panels), 3.0 * len(board) + 2), 3.8),
                             squeeze=False)
    names = board["model"].astype(str).tolist()
    x = np.arange(len(board))
    for ax, (col, label) in zip(axes[0], panels):
        vals = pd.to_numeric(board.get(col, pd.Series([np.nan] * len(board))), errors="coerce").to_numpy(dtype=float)
        colours = ["tab:orange" if n.startswith("gensim") else "tab:blue" for n in names]
        bars = ax.bar(x, np.nan_to_num(vals), color=colours)
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else (f"{v:,.0f}" if col == "words_per_second" else f"{v:.3f}")
                                   for v in vals], fontsize=8)
        ax.set_xticks(x, names, fontsize=8, rotation=20)
        ax.set_ylabel(label)
        ax.axhline(0, color="black", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or "word2vec: project models against gensim (same corpus and hyper-parameters)")
    fig.tight_layout()
    return fig


def learning_curve_figure(history: pd.DataFrame, title: str = "") -> Figure:
    """Negative-sampling loss per epoch (training, and validation when held out)."""
    fig, ax = subplots(figsize=(5, 3.5))
    ax.plot(history["epoch"], history["train_loss"], "o-", ms=3, label="train")
    if "val_loss" in history:
        ax.plot(history["epoch"], history["val_loss"], "s-", ms=3, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative-sampling loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "learning curve")
    fig.tight_layout()
    return fig
