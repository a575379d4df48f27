"""The one normaliser: per-feature statistics fitted on training data, applied to every split.

Both kinds of model input go through it: log-mel bands (audio, the last axis of (clips, frames,
bands)) and the per-step features and targets of the viscoelastic task (the last axis of
(trajectories, steps, features)). Statistics are always computed in float64 and stored as plain
lists (JSON artefacts, bundles); a feature that is constant on the training data keeps a scale
of 1, so it is centred but never blown up on data where it varies.

The arithmetic of :func:`apply_normaliser` is float32 by default: audio features are large
(ESC-50's 2000 clips x 216 frames x 64 bands would take 220 MB more in float64) and float32 is
what the models consume. The viscoelastic task passes ``dtype=np.float64``: its stresses are
compared in physical units after :func:`denormalise`, where the extra precision is visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["apply_normaliser", "denormalise", "fit_normaliser", "fit_range_scaling"]

Stats = Mapping[str, Sequence[float] | np.ndarray]


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])


def fit_normaliser(x: np.ndarray, *, min_std: float = 1e-6) -> dict[str, list[float]]:
    """Per-feature mean and standard deviation over every axis but the last; a feature whose
    std is at most ``min_std`` (constant on the training data) gets std 1."""
    flat = _flat(x)
    std = flat.std(axis=0)
    return {"mean": flat.mean(axis=0).tolist(), "std": np.where(std > min_std, std, 1.0).tolist()}


def fit_range_scaling(x: np.ndarray, *, min_half_range: float = 1e-8) -> dict[str, list[float]]:
    """Per-feature centre and half-range of the training values, in :func:`fit_normaliser`'s
    ``mean``/``std`` form: the training range maps onto [−1, 1], so an input k times larger
    than any training value lands near k (a z-score would put it many standard deviations out)."""
    flat = _flat(x)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    half = (hi - lo) / 2.0
    return {"mean": ((hi + lo) / 2.0).tolist(), "std": np.where(half > min_half_range, half, 1.0).tolist()}


def apply_normaliser(x: np.ndarray, stats: Stats, *, dtype: DTypeLike = np.float32) -> np.ndarray:
    """``(x − mean) / std`` over the last axis, computed in ``dtype``, returned as float32."""
    mean = np.asarray(stats["mean"], dtype=dtype)
    std = np.asarray(stats["std"], dtype=dtype)
    if mean.shape[-1] != np.shape(x)[-1]:
        raise ValueError(f"normaliser has {mean.shape[-1]} features (bands) but the data has {np.shape(x)[-1]}")
    return ((np.asarray(x, dtype=dtype) - mean) / std).astype(np.float32)


def denormalise(z: np.ndarray, stats: Stats) -> np.ndarray:
    """Inverse of :func:`apply_normaliser`, in float64 (metrics are computed in physical units)."""
    return np.asarray(z, dtype=np.float64) * np.asarray(stats["std"], dtype=np.float64) + np.asarray(
        stats["mean"], dtype=np.float64)
