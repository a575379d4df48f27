"""Regression metrics for sequence predictions in physical units.

Relative RMSE ``‖ŷ − y‖ / ‖y‖`` over a whole set (all trajectories and steps together, so a
trajectory with small stresses does not dominate), the largest absolute error, and the error in
the energy dissipated per loading–unloading cycle (the hysteresis loop area ``∮σ dλ``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlsp_pipelines.evaluation.hysteresis import cycle_boundaries, hysteresis_energy


def relative_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """``‖ŷ − y‖₂ / ‖y‖₂`` over all elements (the ratio of RMS error to RMS signal)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    denom = float(np.linalg.norm(y_true))
    if denom == 0.0:
        raise ValueError("relative RMSE is undefined for an all-zero target")
    return float(np.linalg.norm(y_pred - y_true) / denom)


def max_abs_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Largest ``|ŷ − y|`` over all elements."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    return float(np.max(np.abs(y_pred - y_true))) if y_true.size else 0.0


def cycle_energies(
    stretch: np.ndarray, sigma_true: np.ndarray, sigma_pred: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per trajectory, the loop areas of each cycle for the true and the predicted stress.

    Cycles are delimited on the (known) stretch path by
    :func:`~mlsp_pipelines.simulation.viscoelastic.cycle_boundaries`, the same boundaries for
    both stresses, so the areas are compared cycle by cycle.
    """
    stretch = np.atleast_2d(np.asarray(stretch, dtype=np.float64))
    sigma_true = np.atleast_2d(np.asarray(sigma_true, dtype=np.float64))
    sigma_pred = np.atleast_2d(np.asarray(sigma_pred, dtype=np.float64))
    bounds = cycle_boundaries(stretch)
    true = hysteresis_energy(stretch, sigma_true, bounds)
    pred = hysteresis_energy(stretch, sigma_pred, bounds)
    return list(zip(true, pred))


def energy_relative_errors(
    stretch: np.ndarray, sigma_true: np.ndarray, sigma_pred: np.ndarray, *, min_energy: float = 0.0
) -> list[np.ndarray]:
    """Per trajectory, ``|E_pred − E_true| / |E_true|`` for each cycle with ``|E_true| > min_energy``."""
    out = []
    for e_true, e_pred in cycle_energies(stretch, sigma_true, sigma_pred):
        keep = np.abs(e_true) > min_energy
        out.append(np.abs(e_pred[keep] - e_true[keep]) / np.abs(e_true[keep]))
    return out


def energy_error_summary(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | int]:
    """Errors of the dissipated energy per cycle, from ``(E_true, E_pred)`` per trajectory.

    ``energy_rel_err``: mean over all cycles of ``|E_pred − E_true| / |E_true|`` (small loops,
    whose area is tiny, weigh as much as large ones); ``energy_rel_err_median``: its median;
    ``energy_rel_err_max``: the worst cycle; ``energy_total_rel_err``:
    ``|ΣE_pred − ΣE_true| / ΣE_true`` over all cycles of the set. NaN when the set has no
    complete cycle.
    """
    true = np.concatenate([np.asarray(t, dtype=np.float64) for t, _ in pairs]) if pairs else np.zeros(0)
    pred = np.concatenate([np.asarray(p, dtype=np.float64) for _, p in pairs]) if pairs else np.zeros(0)
    keep = true != 0.0
    true, pred = true[keep], pred[keep]
    if true.size == 0:
        nan = float("nan")
        return {"energy_rel_err": nan, "energy_rel_err_median": nan, "energy_rel_err_max": nan,
                "energy_total_rel_err": nan, "n_cycles": 0}
    rel = np.abs(pred - true) / np.abs(true)
    return {"energy_rel_err": float(rel.mean()), "energy_rel_err_median": float(np.median(rel)),
            "energy_rel_err_max": float(rel.max()),
            "energy_total_rel_err": float(abs(pred.sum() - true.sum()) / abs(true.sum())), "n_cycles": int(true.size)}


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    stretch: np.ndarray | None = None,
    energy_mask: np.ndarray | None = None,
    suffix: str = "",
) -> dict[str, Any]:
    """``rel_rmse``, ``max_err``, ``rmse`` (and the energy errors of
    :func:`energy_error_summary` with ``stretch``), with names ending in ``suffix``.

    ``y_true``/``y_pred`` are (N, T) or (N, T, 1) stresses in physical units; ``stretch``
    (N, T) enables the energy error, computed over the trajectories selected by
    ``energy_mask`` (default: all).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    out: dict[str, Any] = {
        f"rel_rmse{suffix}": relative_rmse(y_true, y_pred),
        f"max_err{suffix}": max_abs_error(y_true, y_pred),
        f"rmse{suffix}": float(np.sqrt(np.mean((y_pred - y_true) ** 2))),
    }
    if stretch is not None:
        s_true = y_true.reshape(y_true.shape[0], -1)
        s_pred = y_pred.reshape(y_pred.shape[0], -1)
        mask = np.ones(len(s_true), dtype=bool) if energy_mask is None else np.asarray(energy_mask, dtype=bool)
        pairs = cycle_energies(np.asarray(stretch)[mask], s_true[mask], s_pred[mask]) if mask.any() else []
        summary = energy_error_summary(pairs)
        out.update({f"{k}{suffix}": v for k, v in summary.items()})
    return out
