"""Compare trained models: one row per model, written as CSV, Markdown, a bar plot and metrics.json."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from mlsp_pipelines.annotations import Figure


QUALITY_KEYS = ("accuracy", "accuracy_tta", "macro_f1", "macro_f1_tta", "balanced_accuracy", "sensitivity", "specificity", "icbhi_score",
                "rel_rmse", "rel_rmse_extrap", "exact_match", "token_accuracy", "bleu", "chrf", "spearman",
                "log_loss", "accuracy_seen", "accuracy_unseen", "log_loss_seen", "log_loss_unseen")
# Deterministic cost columns (DCASE low-complexity style) stay in the leaderboard; wall-clock
# timings never do: they differ on every run, and the leaderboard must hash identically.
COMPLEXITY_KEYS = ("params", "param_bytes", "macs_per_s", "within_budget")
# the paired comparison with the best model over the same CV folds (evaluation/compare.py)
PAIRED_KEYS = ("vs_best_diff", "vs_best_p")
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
    missing values last. Under cross-validation every model is compared with the best one on the
    same folds (``vs_best_diff``, ``vs_best_p``; intervals in the summary's ``paired_comparison``).
    """
    from mlsp_pipelines.evaluation.plots import leaderboard_figure

    rows: dict[str, dict[str, Any]] = {}
    per_fold: dict[str, dict[str, Any]] = {}
    for m in metrics:
        per_fold.setdefault(m["model"], {}).update(
            {k: m[k] for k in m if k.endswith("_per_fold") or k in ("folds", "test_train_ratio")})
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
    paired = _paired_with_best(board, per_fold, sort_by) if columns is None else {}
    if paired:
        board["vs_best_diff"] = [paired[m]["diff"] for m in board["model"]]
        board["vs_best_p"] = [paired[m]["p"] for m in board["model"]]
        keys = [*keys, *PAIRED_KEYS]
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
    markdown = to_markdown(board)
    if paired:
        best = str(board.iloc[0]["model"])
        summary["paired_comparison"] = {"against": best, "metric": sort_by, "test": "corrected resampled t-test",
                                        "models": {m: v for m, v in paired.items() if m != best}}
        markdown += (f"\n`vs_best_diff`: {sort_by} minus {best}'s on the same folds; `vs_best_p`: two-sided p of the "
                     "corrected resampled t-test (Nadeau & Bengio). p >= 0.05: the gap may be noise.\n")
    return board, markdown, fig, summary


def _paired_with_best(board: pd.DataFrame, per_fold: dict[str, dict[str, Any]], sort_by: str) -> dict[str, dict]:
    """Every model against the first row's on the folds both ran (empty: no per-fold values)."""
    from mlsp_pipelines.evaluation.compare import corrected_resampled_ttest

    if not sort_by.startswith("cv_") or not sort_by.endswith("_mean") or board.empty:
        return {}
    key = sort_by[: -len("_mean")] + "_per_fold"
    best = str(board.iloc[0]["model"])
    ref = per_fold.get(best, {})
    if key not in ref or len(ref[key]) < 2:
        return {}
    b = dict(zip(ref.get("folds", range(len(ref[key]))), ref[key]))
    out = {}
    for model in board["model"]:
        mine = per_fold.get(str(model), {})
        if key not in mine:
            continue
        a = dict(zip(mine.get("folds", range(len(mine[key]))), mine[key]))
        common = sorted(set(a) & set(b))
        ratio = float(mine.get("test_train_ratio") or ref.get("test_train_ratio") or 1.0 / max(len(common) - 1, 1))
        out[str(model)] = corrected_resampled_ttest([a[f] for f in common], [b[f] for f in common], ratio)
    return out if len(out) > 1 else {}


def collect_timings(*timings: dict[str, Any]) -> pd.DataFrame:
    """Wall-clock times of every model (and fold) in one table, kept apart from the reproducible
    reports (it is not a DVC output; MLflow holds the same numbers). Per-epoch lists stay in each
    model's JSON, out of the table."""
    rows = [{k: v for k, v in t.items() if not isinstance(v, (list, dict))} for t in timings]
    return pd.DataFrame(rows).sort_values(["model", *(["fold"] if any("fold" in r for r in rows) else [])],
                                          kind="stable").reset_index(drop=True)
