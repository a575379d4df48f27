"""Attention heat-maps (source × output) for a few decoded test examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from mlsp_pipelines.evaluation.figures import subplots


@dataclass
class AttentionExample:
    """One decoded sentence: ``weights`` (len(output), len(source)) or ``None`` without attention."""

    source_text: str
    source: list[str]
    output: list[str]
    reference: str
    prediction: str
    weights: np.ndarray | None


def _label(tok: str) -> str:
    return "␣" if tok == " " else tok


def attention_figure(examples: Sequence[AttentionExample], title: str = "") -> Figure:
    """One heat-map per example: rows = output tokens (ending in ``<eos>``), columns = source
    tokens, colour = attention weight. Models without attention get the decoded text instead."""
    if all(e.weights is None for e in examples):
        return _decoded_text_figure(examples, title)
    n = max(len(examples), 1)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    widths = [max(len(e.source), 6) for e in examples] or [6]
    heights = [max(len(e.output), 4) for e in examples] or [4]
    cell = 0.22 if max(widths) < 40 else 0.12
    fig, axes = subplots(rows, cols, squeeze=False,
                             figsize=(cols * (max(widths) * cell + 2.0), rows * (max(heights) * cell + 1.6)))
    for ax in axes.flat[len(examples):]:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples):
        ok = "✓" if ex.prediction == ex.reference else "✗"
        if ex.weights is None:  # mixed list: leave this panel empty
            ax.axis("off")
            continue
        im = ax.imshow(ex.weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(ex.source)), [_label(t) for t in ex.source], fontsize=7,
                      rotation=90 if max(map(len, ex.source), default=1) > 2 else 0)
        ax.set_yticks(range(len(ex.output)), [_label(t) for t in ex.output], fontsize=7)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(f"{ex.prediction} {ok} (ref {ex.reference})", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(title or "attention (source × output)")
    fig.tight_layout()
    return fig


def _decoded_text_figure(examples: Sequence[AttentionExample], title: str = "") -> Figure:
    """A model without attention: the decoded examples as text (there is no alignment to draw)."""
    lines = []
    for e in examples:
        ok = "✓" if e.prediction == e.reference else "✗"
        lines += [f"source:    {e.source_text}", f"output:    {e.prediction} {ok}", f"reference: {e.reference}", ""]
    lines.append("(no attention: the decoder sees only a fixed summary of the source)")
    fig, ax = subplots(figsize=(8, 0.22 * len(lines) + 0.8))
    ax.axis("off")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace", transform=ax.transAxes)
    ax.set_title(title or "decoded examples", loc="left")
    return fig
