"""Figures people look at instead of reading numbers (returned, saved by the catalog as PNG)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlsp_pipelines.evaluation.figures import subplots


def confusion_figure(cm: np.ndarray, classes: list[str], title: str = "") -> Figure:
    """Row-normalised confusion matrix with counts in the cells."""
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(classes) + 2)
    fig, ax = subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="recall")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    return fig


#: Validation-only scores the training loop may record per epoch (higher is better), each a panel.
VALIDATION_SCORES = ("val_bleu",)


def learning_curves_figure(history: dict[str, list[float]], title: str = "") -> Figure:
    """Loss (and accuracy when present) per epoch for train and validation, and a panel per
    validation score (e.g. greedy BLEU) with its best epoch marked."""
    keys = [k for k in ("loss", "acc") if f"train_{k}" in history]
    scores = [k for k in VALIDATION_SCORES if history.get(k)]
    n = len(keys) + len(scores)
    fig, axes = subplots(1, n, figsize=(5 * n, 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        epochs = np.arange(1, len(history[f"train_{k}"]) + 1)
        ax.plot(epochs, history[f"train_{k}"], "o-", label="train", ms=3)
        ax.plot(epochs, history[f"val_{k}"], "s-", label="validation", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
        ax.legend()
    for ax, k in zip(axes[0][len(keys):], scores):
        values = np.asarray(history[k], dtype=float)
        epochs = np.arange(1, len(values) + 1)
        best = int(np.nanargmax(values))
        ax.plot(epochs, values, "s-", color="C2", ms=3, label="validation")
        ax.plot(epochs[best], values[best], "*", color="C3", ms=12, label=f"kept: epoch {best + 1}, {values[best]:.1f}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(k.removeprefix("val_"))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "learning curves")
    fig.tight_layout()
    return fig


def leaderboard_figure(board: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "macro_f1"), title: str = "") -> Figure:
    """Grouped bars of the headline metrics per model, with parameter count in the labels."""
    cols = [m for m in metrics if m in board]
    x = np.arange(len(board))
    width = 0.8 / max(len(cols), 1)
    fig, ax = subplots(figsize=(max(5, 1.3 * len(board) + 2), 3.8))
    for i, m in enumerate(cols):
        vals = board[m].to_numpy(dtype=float)
        err = board[f"{m}_std"].to_numpy(dtype=float) if f"{m}_std" in board else None
        bars = ax.bar(x + i * width - 0.4 + width / 2, vals, width, yerr=err, label=m, capsize=3)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    labels = [f"{n}\n{p / 1e3:.0f}k params" if "params" in board else n for n, p in
              zip(board["model"], board.get("params", pd.Series([0] * len(board))))]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "leaderboard")
    fig.tight_layout()
    return fig


def attention_figure(
    spectrograms: np.ndarray, weights: np.ndarray, titles: list[str], *, hop_s: float, title: str = ""
) -> Figure:
    """For a few clips: the log-mel image with the attention weights over time drawn beneath it."""
    n = len(spectrograms)
    fig, axes = subplots(2, n, figsize=(3.6 * n, 4.2), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    for k in range(n):
        spec = spectrograms[k]  # (T, F)
        t_end = spec.shape[0] * hop_s
        axes[0, k].imshow(spec.T, origin="lower", aspect="auto", cmap="magma", extent=(0, t_end, 0, spec.shape[1]))
        axes[0, k].set_title(titles[k], fontsize=8)
        axes[0, k].set_ylabel("mel band" if k == 0 else "")
        w = weights[k]
        t = (np.arange(len(w)) + 0.5) * (t_end / len(w))
        axes[1, k].fill_between(t, w, step="mid", alpha=0.6)
        axes[1, k].set_xlim(0, t_end)
        axes[1, k].set_xlabel("time (s)")
        axes[1, k].set_ylabel("attention" if k == 0 else "")
    fig.suptitle(title or "attention over time")
    fig.tight_layout()
    return fig


def filters_figure(weights: np.ndarray, title: str = "") -> Figure:
    """First-layer convolution kernels (out_channels, 1, kh, kw) as a grid of small images."""
    w = weights[:, 0] if weights.ndim == 4 else weights
    n = len(w)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = subplots(rows, cols, figsize=(1.2 * cols + 1, 1.2 * rows + 0.6), squeeze=False)
    lim = float(np.abs(w).max()) or 1.0
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(w[k].T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle(title or "first-layer filters (time × mel)")
    fig.tight_layout()
    return fig


def examples_figure(spectrograms: np.ndarray, titles: list[str], *, hop_s: float, title: str = "") -> Figure:
    """Log-mel images of a few test clips with the model's prediction in the title."""
    n = len(spectrograms)
    fig, axes = subplots(1, n, figsize=(3.6 * n, 3), squeeze=False)
    for k, ax in enumerate(axes[0]):
        spec = spectrograms[k]
        ax.imshow(spec.T, origin="lower", aspect="auto", cmap="magma", extent=(0, spec.shape[0] * hop_s, 0, spec.shape[1]))
        ax.set_title(titles[k], fontsize=8)
        ax.set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def breakdown_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """Accuracy (top) and log loss (bottom) per class, device and city of the test set: one
    column of panels per breakdown, the overall value as a dashed line, unseen devices hatched."""
    kinds = [k for k in ("class", "device", "city") if (table["by"] == k).any()]
    overall = table[table["by"] == "overall"].iloc[0] if (table["by"] == "overall").any() else None
    widths = [max(2, int((table["by"] == k).sum())) for k in kinds]
    fig, axes = subplots(2, len(kinds), figsize=(1.5 + 0.45 * sum(widths) + 1.2 * len(kinds), 5.5),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    for col, kind in enumerate(kinds):
        part = table[table["by"] == kind]
        x = np.arange(len(part))
        hatch = ["//" if s == "unseen" else "" for s in part["seen"]]
        for row, metric in enumerate(("accuracy", "log_loss")):
            ax = axes[row, col]
            bars = ax.bar(x, part[metric].to_numpy(dtype=float), color="C0" if row == 0 else "C1", hatch=hatch,
                          edgecolor="white")
            ax.bar_label(bars, fmt="%.2f", fontsize=6)
            if overall is not None:
                ax.axhline(float(overall[metric]), ls="--", color="grey", lw=1, label="overall")
            ax.set_xticks(x, part["value"].tolist(), rotation=60 if kind != "device" else 0, ha="right"
                          if kind != "device" else "center", fontsize=7)
            ax.set_ylabel(metric.replace("_", " ") if col == 0 else "")
            ax.set_ylim(0, 1.05 if row == 0 else 1.15 * max(float(table["log_loss"].max()), 1e-3))
            if row == 0:
                ax.set_title(f"per {kind}" + (" (hatched: unseen in training)" if "unseen" in set(part["seen"])
                                              else ""), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or "test set breakdown")
    fig.tight_layout()
    return fig
