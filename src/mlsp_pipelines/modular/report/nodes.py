"""Compare trained models: one row per model, written as CSV, Markdown, a bar plot and metrics.json."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from mlsp_pipelines.annotations import Figure


QUALITY_KEYS = ("accuracy", "macro_f1", "balanced_accuracy", "sensitivity", "specificity", "icbhi_score",
                "rel_rmse", "rel_rmse_extrap", "exact_match", "token_accuracy", "bleu", "chrf", "spearman",
                "log_loss", "accuracy_seen", "accuracy_unseen", "log_loss_seen", "log_loss_unseen")
# Deterministic cost columns (DCASE low-complexity style) stay in the leaderboard; wall-clock
# timings never do: they differ on every run, and the leaderboard must hash identically.
COMPLEXITY_KEYS = ("params", "param_bytes", "macs_per_s", "within_budget")
TIMING_KEYS = ("train_seconds", "latency_ms_per_clip", "epoch_seconds")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-style table (no extra dependency)."""
    head = "| " + " | ".join(df.columns) + " |\n|" + "|".join("---" for _ in df.columns) + "|\n"
    return head + "".join("| " + " | ".join(_fmt(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def build_leaderboard(*metrics: dict[str, Any], sort_by: str = "accuracy", columns: Sequence[str] | None = None,
                      figure: Callable[[pd.DataFrame], Figure] | None = None) -> tuple[pd.DataFrame, str, Figure, dict]:
    """The one leaderboard builder: a row per model (metrics of one model, from several inputs,
    merge into its row), best first; its Markdown, bar plot and ``metrics.json`` summary.

    A task plugs in its table: ``columns`` (default: the quality, ``cv_*`` and complexity numbers
    found, never timings) and ``figure`` (default: bars of the first quality metrics). Sorted by
    ``sort_by`` (``cv_<sort_by>_mean`` under cross-validation), ascending for errors (``rel_*``),
    missing values last.
    """
    from mlsp_pipelines.evaluation.plots import leaderboard_figure

    rows: dict[str, dict[str, Any]] = {}
    for m in metrics:
        row = rows.setdefault(m["model"], {"model": m["model"]})
        if columns is not None:
            row.update({k: m.get(k) for k in columns if k != "model"})
        else:
            row.update({k: v for k, v in m.items() if k not in TIMING_KEYS and (
                k == "within_budget" or (isinstance(v, (int, float)) and not isinstance(v, bool)))})
    board = pd.DataFrame(list(rows.values()))
    keys = list(columns) if columns is not None else [
        k for k in ("model", *QUALITY_KEYS, *(c for c in board.columns if c.startswith("cv_")), *COMPLEXITY_KEYS)
        if k in board.columns]
    board = board[keys]
    if sort_by not in board and f"cv_{sort_by}_mean" in board:
        sort_by = f"cv_{sort_by}_mean"
    if sort_by in board:
        board = board.sort_values(sort_by, ascending=sort_by.startswith("rel_"), na_position="last",
                                  kind="stable").reset_index(drop=True)
    if figure is not None:
        fig = figure(board)
    elif "cv_accuracy_mean" in board:
        board_plot = board.assign(accuracy=board["cv_accuracy_mean"], accuracy_std=board["cv_accuracy_std"])
        fig = leaderboard_figure(board_plot, ("accuracy",), "cross-validated accuracy (mean ± std)")
    else:
        plot_metrics = tuple(k for k in QUALITY_KEYS if k in board and not k.startswith("rel_"))[:3]
        if "accuracy_unseen" in board:  # DCASE Task 1: does the model generalise to unseen devices?
            plot_metrics = ("accuracy", "accuracy_seen", "accuracy_unseen")
        fig = leaderboard_figure(board, plot_metrics or ("accuracy",))
    summary = {
        "best_model": str(board.iloc[0]["model"]),
        "models": {r["model"]: {k: r[k] for k in keys if k != "model"} for r in board.to_dict("records")},
    }
    return board, to_markdown(board), fig, summary


def collect_timings(*timings: dict[str, Any]) -> pd.DataFrame:
    """Wall-clock times of every model (and fold) in one table, kept apart from the reproducible
    reports (it is not a DVC output; MLflow holds the same numbers)."""
    return pd.DataFrame(list(timings)).sort_values(["model", *(["fold"] if any("fold" in t for t in timings) else [])],
                                                   kind="stable").reset_index(drop=True)
