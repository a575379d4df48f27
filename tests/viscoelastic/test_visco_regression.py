"""Regression metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlsp_pipelines.evaluation.regression import (
    cycle_energies,
    energy_error_summary,
    energy_relative_errors,
    max_abs_error,
    regression_metrics,
    relative_rmse,
)
from mlsp_pipelines.features.normalise import (
    apply_normaliser,
    denormalise,
    fit_normaliser,
)


def test_relative_rmse_and_max_error_by_hand() -> None:
    y = np.array([[3.0, 4.0]])  # ‖y‖ = 5
    pred = np.array([[3.0, 5.0]])  # ‖ŷ − y‖ = 1
    assert relative_rmse(y, pred) == pytest.approx(0.2)
    assert max_abs_error(y, pred) == pytest.approx(1.0)
    # Over a set: all elements together, not a mean of per-trajectory ratios.
    y2 = np.array([[3.0, 4.0], [0.0, 0.0]])
    p2 = np.array([[3.0, 4.0], [0.0, 5.0]])
    assert relative_rmse(y2, p2) == pytest.approx(1.0)
    assert max_abs_error(y2, p2) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="shape"):
        relative_rmse(y, pred[:, :1])
    with pytest.raises(ValueError, match="all-zero"):
        relative_rmse(np.zeros(3), np.ones(3))


def test_metrics_are_in_physical_units_after_denormalising() -> None:
    y = np.array([[[1.0], [2.0], [4.0]]])
    stats = fit_normaliser(y, min_std=1e-8)
    assert stats["mean"] == pytest.approx([7 / 3]) and stats["std"] == pytest.approx([np.std([1, 2, 4])])
    z = apply_normaliser(y, stats, dtype=np.float64)
    np.testing.assert_allclose(denormalise(z, stats), y, rtol=1e-6)
    # An error of 0.1 in normalised units is 0.1·std in stress units.
    pred = denormalise(z + 0.1, stats)
    assert max_abs_error(y, pred) == pytest.approx(0.1 * stats["std"][0], rel=1e-5)
    assert relative_rmse(y, pred) == pytest.approx(0.1 * stats["std"][0] * math.sqrt(3) / math.sqrt(21), rel=1e-5)
    assert fit_normaliser(np.ones((2, 3, 1)))["std"] == [1.0]  # a constant feature is not divided by 0


# One loading–unloading cycle: λ = 0 → 2 → 0 in unit steps (boundaries 0 and 4).
STRETCH = np.array([0.0, 1.0, 2.0, 1.0, 0.0])
SIGMA_TRUE = np.array([0.0, 2.0, 2.0, 0.0, 0.0])
# Trapezoids: (0+2)/2·1 + (2+2)/2·1 + (2+0)/2·(−1) + 0 = 1 + 2 − 1 = 2 (the chord back is zero).
SIGMA_PRED = np.array([0.0, 3.0, 3.0, 0.0, 0.0])  # 1.5 + 3 − 1.5 = 3


def test_cycle_energy_by_hand() -> None:
    (e_true, e_pred), = cycle_energies(STRETCH, SIGMA_TRUE, SIGMA_PRED)
    np.testing.assert_allclose(e_true, [2.0])
    np.testing.assert_allclose(e_pred, [3.0])
    errs = energy_relative_errors(STRETCH, SIGMA_TRUE, SIGMA_PRED)
    np.testing.assert_allclose(errs[0], [0.5])


def test_energy_error_is_a_mean_over_cycles() -> None:
    # Two cycles in one trajectory (second one predicted exactly) and one in another.
    lam = np.concatenate([STRETCH, STRETCH[1:]])
    true = np.concatenate([SIGMA_TRUE, SIGMA_TRUE[1:]])
    pred = np.concatenate([SIGMA_PRED, SIGMA_TRUE[1:]])
    pairs = cycle_energies(np.stack([lam, lam]), np.stack([true, true]), np.stack([pred, true * 1.5]))
    np.testing.assert_allclose(pairs[0][0], [2.0, 2.0])
    np.testing.assert_allclose(pairs[0][1], [3.0, 2.0])
    np.testing.assert_allclose(pairs[1][1], [3.0, 3.0])
    summary = energy_error_summary(pairs)
    assert summary["n_cycles"] == 4
    assert summary["energy_rel_err"] == pytest.approx((0.5 + 0.0 + 0.5 + 0.5) / 4)
    assert summary["energy_rel_err_median"] == pytest.approx(0.5)
    assert summary["energy_rel_err_max"] == pytest.approx(0.5)
    assert summary["energy_total_rel_err"] == pytest.approx((11.0 - 8.0) / 8.0)
    empty = energy_error_summary(cycle_energies(np.array([[0.0, 1.0, 2.0]]), np.ones((1, 3)), np.ones((1, 3))))
    assert empty["n_cycles"] == 0 and math.isnan(empty["energy_rel_err"])


def test_regression_metrics_names_and_energy_mask() -> None:
    y = np.stack([SIGMA_TRUE, SIGMA_TRUE])[..., None]
    pred = np.stack([SIGMA_PRED, SIGMA_TRUE])[..., None]
    lam = np.stack([STRETCH, STRETCH])
    m = regression_metrics(y, pred, stretch=lam, suffix="_extrap")
    assert m["rel_rmse_extrap"] == pytest.approx(math.sqrt(2.0) / math.sqrt(16.0))
    assert m["max_err_extrap"] == pytest.approx(1.0)
    assert m["energy_rel_err_extrap"] == pytest.approx(0.25) and m["n_cycles_extrap"] == 2
    only_second = regression_metrics(y, pred, stretch=lam, energy_mask=np.array([False, True]))
    assert only_second["energy_rel_err"] == pytest.approx(0.0) and only_second["n_cycles"] == 1
    assert "energy_rel_err" not in regression_metrics(y, pred)


def test_cycle_table_of_the_hysteresis_report() -> None:
    """Loop areas scale with σ: a prediction 10 % too large dissipates 10 % more in every cycle."""
    from mlsp_pipelines.pipelines.viscoelastic.report import _cycle_table

    lam = np.concatenate([STRETCH, STRETCH[1:], STRETCH[1:]])
    true = np.concatenate([SIGMA_TRUE, SIGMA_TRUE[1:], SIGMA_TRUE[1:]])
    rows = _cycle_table(lam, true, 1.1 * true)
    assert [r["cycle"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["energy_true"] == pytest.approx(2.0)
        assert r["energy_pred"] == pytest.approx(2.2) and r["rel_err"] == pytest.approx(0.1)
    assert all(r["rel_err"] == 0.0 for r in _cycle_table(lam, true, true))
