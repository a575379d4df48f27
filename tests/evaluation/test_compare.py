"""Which gaps between models are real: the corrected resampled t-test, the leaderboard's paired
columns, and test-time augmentation over time shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest


def test_corrected_test_widens_the_plain_paired_t_test() -> None:
    from scipy import stats

    from mlsp_pipelines.evaluation.compare import corrected_resampled_ttest

    a = [0.90, 0.85, 0.88, 0.92, 0.86]
    b = [0.86, 0.84, 0.85, 0.88, 0.86]
    out = corrected_resampled_ttest(a, b, test_train_ratio=0.25)  # 5-fold CV: 1 test fold vs 4 training
    d = np.subtract(a, b)
    se = math.sqrt(d.var(ddof=1) * (1 / 5 + 0.25))
    assert out["diff"] == pytest.approx(d.mean())
    assert out["t"] == pytest.approx(d.mean() / se)
    assert out["p"] == pytest.approx(2 * stats.t.sf(d.mean() / se, 4))
    assert out["ci95_low"] < out["diff"] < out["ci95_high"]
    plain = stats.ttest_rel(a, b).pvalue  # ignores the overlap of the training sets
    assert plain < 0.05 < out["p"]  # the gap that the plain test calls real is not shown to be


def test_degenerate_folds() -> None:
    from mlsp_pipelines.evaluation.compare import corrected_resampled_ttest

    assert corrected_resampled_ttest([0.8, 0.9], [0.8, 0.9], 0.25)["p"] == 1.0
    assert corrected_resampled_ttest([0.9, 0.9], [0.8, 0.8], 0.25)["p"] == 0.0
    assert math.isnan(corrected_resampled_ttest([0.9], [0.8], 0.25)["p"])
    with pytest.raises(ValueError, match="same folds"):
        corrected_resampled_ttest([0.9, 0.8], [0.8], 0.25)


def _cv(model: str, per_fold: list[float]) -> dict:
    return {"model": model, "cv_accuracy_mean": float(np.mean(per_fold)), "cv_accuracy_std": float(np.std(per_fold, ddof=1)),
            "cv_accuracy_per_fold": per_fold, "folds": list(range(1, len(per_fold) + 1)), "test_train_ratio": 0.25}


def test_leaderboard_marks_which_gaps_are_real() -> None:
    from mlsp_pipelines.modular.report.nodes import build_leaderboard

    board, md, _, summary = build_leaderboard(
        _cv("close", [0.86, 0.84, 0.85, 0.88, 0.86]),
        _cv("best", [0.90, 0.85, 0.88, 0.92, 0.86]),
        _cv("far", [0.50, 0.52, 0.49, 0.55, 0.51]),
    )
    assert list(board["model"]) == ["best", "close", "far"]
    row = board.set_index("model")
    assert row.loc["best", "vs_best_diff"] == 0.0 and row.loc["best", "vs_best_p"] == 1.0
    assert row.loc["close", "vs_best_diff"] == pytest.approx(-0.024) and row.loc["close", "vs_best_p"] > 0.05
    assert row.loc["far", "vs_best_p"] < 0.001
    comp = summary["paired_comparison"]
    assert comp["against"] == "best" and set(comp["models"]) == {"close", "far"}
    assert comp["models"]["far"]["ci95_high"] < 0
    assert "vs_best_p" in md and "corrected resampled t-test" in md
    assert summary["models"]["far"]["vs_best_p"] == row.loc["far", "vs_best_p"]


def test_a_single_split_leaderboard_has_no_paired_columns() -> None:
    from mlsp_pipelines.modular.report.nodes import build_leaderboard

    board, _, _, summary = build_leaderboard({"model": "a", "accuracy": 0.9}, {"model": "b", "accuracy": 0.8})
    assert "vs_best_p" not in board and "paired_comparison" not in summary


def test_tta_shifts_span_the_training_roll_range() -> None:
    from mlsp_pipelines.modular.classifier.nodes import tta_shifts

    assert tta_shifts(200, 1, 0.1) == [0]
    assert tta_shifts(200, 5, 0.1) == [-20, -10, 0, 10, 20]
    assert tta_shifts(100, 2, 0.1) == [-10, 10]


def test_tta_averages_the_shifted_predictions() -> None:
    import torch

    from mlsp_pipelines.modular.classifier.nodes import tta_probabilities

    class FirstFrame(torch.nn.Module):  # looks at frame 0 only: every shift sees other frames
        def __init__(self) -> None:
            super().__init__()
            self.gain = torch.nn.Parameter(torch.tensor(10.0))  # a trainable model's outputs need grad

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0, :2] * self.gain

    X = torch.zeros(3, 10, 2)
    X[:, 0, 0] = 1.0  # class 0 in frame 0 only
    X[:, 1:, 1] = 1.0  # class 1 everywhere else
    single = tta_probabilities(FirstFrame(), X, 1, 0.1)
    assert (single.argmax(-1) == 0).all()
    shifted = tta_probabilities(FirstFrame(), X, 3, 0.1)  # shifts -1, 0, 1: frame 0 seen once of three
    assert (shifted.argmax(-1) == 1).all()
    np.testing.assert_allclose(shifted.sum(-1), 1.0, rtol=1e-6)
