"""Compare trained models: one row per model, written as CSV, Markdown, a bar plot and metrics.json."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mlsp_pipelines.evaluation.plots import leaderboard_figure

QUALITY_KEYS = ("accuracy", "macro_f1", "balanced_accuracy", "sensitivity", "specificity", "icbhi_score",
                "rel_rmse", "rel_rmse_extrap", "exact_match", "token_accuracy", "bleu", "spearman",
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


def build_leaderboard(*metrics: dict[str, Any], sort_by: str = "accuracy") -> tuple[pd.DataFrame, str, Figure, dict]:
    """Rows from each model's metrics (and ``cv_*`` metrics when present), best first."""
    rows: dict[str, dict[str, Any]] = {}
    for m in metrics:
        row = rows.setdefault(m["model"], {"model": m["model"]})
        row.update({k: v for k, v in m.items() if k not in TIMING_KEYS and (
            k == "within_budget" or (isinstance(v, (int, float)) and not isinstance(v, bool)))})
    board = pd.DataFrame(list(rows.values()))
    keys = [k for k in ("model", *QUALITY_KEYS, *(c for c in board.columns if c.startswith("cv_")), *COMPLEXITY_KEYS)
            if k in board.columns]
    board = board[keys]
    if sort_by not in board and f"cv_{sort_by}_mean" in board:
        sort_by = f"cv_{sort_by}_mean"
    if sort_by in board:
        board = board.sort_values(sort_by, ascending=sort_by.startswith("rel_"), kind="stable").reset_index(drop=True)
    plot_metrics = tuple(k for k in QUALITY_KEYS if k in board and not k.startswith("rel_"))[:3]
    if "accuracy_unseen" in board:  # DCASE Task 1: does the model generalise to unseen devices?
        plot_metrics = ("accuracy", "accuracy_seen", "accuracy_unseen")
    if "cv_accuracy_mean" in board:
        board_plot = board.assign(accuracy=board["cv_accuracy_mean"], accuracy_std=board["cv_accuracy_std"])
        fig = leaderboard_figure(board_plot, ("accuracy",), "cross-validated accuracy (mean ± std)")
    else:
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
