"""The one normaliser shared by log-mel bands and sequence features."""

from __future__ import annotations

import numpy as np
import pytest

from mlsp_pipelines.features.normalise import apply_normaliser, denormalise, fit_normaliser, fit_range_scaling


def test_a_feature_constant_in_training_is_centred_not_blown_up() -> None:
    train = np.zeros((4, 5, 2), np.float32)
    train[..., 1] = np.arange(20).reshape(4, 5)
    stats = fit_normaliser(train)
    assert stats["std"][0] == 1.0 and stats["mean"][0] == 0.0
    later = np.ones((1, 3, 2), np.float32)  # the band varies after training: its offset, not 1e6 times it
    np.testing.assert_array_equal(apply_normaliser(later, stats)[..., 0], 1.0)


def test_arithmetic_precision_is_the_callers_choice_and_the_result_float32() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 7, 3)) * 1e-3 + 1.0).astype(np.float32)
    stats = fit_normaliser(x)
    z32, z64 = apply_normaliser(x, stats), apply_normaliser(x, stats, dtype=np.float64)
    assert z32.dtype == z64.dtype == np.float32
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    np.testing.assert_array_equal(z64, ((x.astype(np.float64) - mean) / std).astype(np.float32))
    np.testing.assert_array_equal(z32, (x - mean.astype(np.float32)) / std.astype(np.float32))
    np.testing.assert_allclose(denormalise(z64, stats), x, rtol=1e-6)
    with pytest.raises(ValueError, match="3 features"):
        apply_normaliser(x[..., :2], stats)


def test_range_scaling_maps_the_training_range_onto_minus_one_one() -> None:
    x = np.array([[[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]]])
    stats = fit_range_scaling(x)
    z = apply_normaliser(x, stats, dtype=np.float64)
    np.testing.assert_array_equal(z[0, :, 0], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(z[0, :, 1], 0.0)  # constant: half-range 1
    np.testing.assert_allclose(apply_normaliser(np.array([[[8.0, 5.0]]]), stats)[0, 0, 0], 3.0)
