"""Simulation and dataset nodes of the viscoelastic pipeline: determinism, splits, extrapolation, shapes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from mlsp_pipelines.pipelines.viscoelastic import data as vdata
from mlsp_pipelines.pipelines.viscoelastic.params import (
    GeneratorDataParams,
    InputParams,
    ProtocolParams,
    TrajectorySplitParams,
)
from mlsp_pipelines.simulation.viscoelastic import MaterialParams

MATERIAL = MaterialParams(E=1.0, nu0=1.0, sigma0=0.2, m=2.0)
PROTOCOLS = ProtocolParams(n_trajectories=30, n_steps=60, seed=3,
                           extrapolation={"n_trajectories": 8, "rate_range": (0.6, 1.2), "amplitude_range": (0.1, 0.3)})
GENERATOR = GeneratorDataParams(n_trajectories=20, n_extrapolation=5, seed=4)
SPLIT = TrajectorySplitParams(val_fraction=0.2, test_fraction=0.2, seed=1)


def make_dataset(protocols: ProtocolParams = PROTOCOLS) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    traj, gen = vdata.simulate_trajectories(MATERIAL, protocols, GENERATOR)
    return vdata.build_dataset(traj, gen, SPLIT)


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    return make_dataset()


def test_dataset_is_deterministic(built: tuple) -> None:
    data, norm, quality = built
    data2, norm2, quality2 = make_dataset()
    assert data.keys() == data2.keys()
    for key in data:
        assert np.array_equal(data[key], data2[key]), key
    assert norm == norm2 and quality == quality2
    other, _, _ = make_dataset(PROTOCOLS.model_copy(update={"seed": 4}))
    assert not np.array_equal(other["y_train"], data["y_train"])


@pytest.mark.parametrize("prefix", ["", "gen_"])
def test_split_by_trajectory_has_no_overlap(built: tuple, prefix: str) -> None:
    data, _, _ = built
    ids = {s: set(data[f"{prefix}id_{s}"].tolist()) for s in ("train", "val", "test", "extrap")}
    assert all(ids.values())
    for a in ids:
        for b in ids:
            if a < b:
                assert not ids[a] & ids[b], (a, b)
    n_main = GENERATOR.n_trajectories if prefix else PROTOCOLS.n_trajectories
    assert len(ids["train"] | ids["val"] | ids["test"]) == n_main
    # No trajectory's samples are shared either (a split by rows of whole sequences).
    x_test = data[f"{prefix}X_test"]
    for x in data[f"{prefix}X_train"]:
        assert not np.any(np.all(np.isclose(x_test, x), axis=(1, 2)))


def test_split_indices_are_disjoint_and_seeded() -> None:
    a = vdata.split_by_trajectory(50, SPLIT)
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(50))
    assert (len(a["test"]), len(a["val"]), len(a["train"])) == (10, 10, 30)
    b = vdata.split_by_trajectory(50, SPLIT)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="too few"):
        vdata.split_by_trajectory(2, SPLIT)


@pytest.mark.parametrize("prefix", ["", "gen_"])
def test_extrapolation_rates_are_outside_the_training_range(built: tuple, prefix: str) -> None:
    data, _, quality = built
    lo_train, hi_train = PROTOCOLS.rate_range
    for s in ("train", "val", "test"):
        assert data[f"{prefix}rate_{s}"].max() <= hi_train and data[f"{prefix}rate_{s}"].min() >= lo_train
    assert data[f"{prefix}rate_extrap"].min() > hi_train
    assert quality[f"{prefix}extrap_rate_min"] > quality[f"{prefix}train_rate_max"]
    # The features agree: every training stretch rate is within the range, the extrapolation set goes beyond it.
    assert np.abs(data[f"{prefix}X_train"][..., 1]).max() <= hi_train * (1 + 1e-5)
    assert np.abs(data[f"{prefix}X_extrap"][..., 1]).max() > hi_train


def test_overlapping_extrapolation_range_is_rejected() -> None:
    with pytest.raises(ValidationError, match="extrapolation.rate_range"):
        ProtocolParams(rate_range=(0.05, 0.4), extrapolation={"rate_range": (0.3, 1.0)})


def test_shapes_and_normalisation_fitted_on_train_only(built: tuple) -> None:
    data, norm, _ = built
    t = PROTOCOLS.n_steps
    n_test = data["X_test"].shape[0]
    assert data["X_train"].shape[1:] == (t, 3) and data["y_train"].shape[1:] == (t, 1)
    assert data["X_extrap"].shape == (PROTOCOLS.extrapolation.n_trajectories, t, 3)
    assert data["gen_P_train"].shape[1:] == (len(vdata.GENERATOR_FEATURES),)
    assert data["gen_y_test"].shape[1:] == (t, 1) and data["y_test"].shape[0] == n_test
    assert set(data["gen_kind_train"].tolist()) == {"cyclic"}
    assert np.allclose(np.diff(data["gen_X_train"][:, 1:, 2]), 0.0, atol=1e-6)  # uniform grid
    np.testing.assert_allclose(norm["x"]["mean"], data["X_train"].reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm["y"]["std"], data["y_train"].reshape(-1).std(), rtol=1e-5)
    everything = np.concatenate([data[f"y_{s}"] for s in ("train", "val", "test", "extrap")])
    assert not np.isclose(norm["y"]["std"][0], everything.std(), rtol=1e-3)
    mi = vdata.make_sequence_input(data, norm, InputParams())
    fs = vdata.feature_set(mi)
    z = fs["Xn_train"].reshape(-1, 3)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-4)
    assert fs["Xn_test"].dtype == np.float32
    # The generator's input: its loading-parameter vectors and cyclic sets are its own sets.
    gi = vdata.make_generator_input(data, norm)
    gfs = vdata.feature_set(gi, "any model")
    assert gfs["Xn_extrap"].shape == data["gen_P_extrap"].shape and gi["data_kwargs"] == {"n_steps": t}
    np.testing.assert_array_equal(gi["y_test"], data["gen_y_test"])
    np.testing.assert_array_equal(gi["cyclic_y_test"], mi["cyclic_y_test"])
    np.testing.assert_allclose(gi["yn_train"].reshape(-1).std(), 1.0, atol=1e-4)
    assert not any(k.startswith("gen_") for k in gi) and "gen_P_test" not in mi


def test_generator_vector_describes_the_cyclic_path(built: tuple) -> None:
    data, _, _ = built
    p = data["gen_P_train"]
    amp, rate, dt = p[:, 0], p[:, 1], p[:, 3]
    lam = data["gen_X_train"][..., 0]
    full = p[:, 2] >= 1  # at least one complete cycle: the peak A is reached (sampled within one step of it)
    assert full.any()
    span = (lam.max(1) - lam.min(1))[full]
    assert np.all(span <= amp[full] * (1 + 1e-5)) and np.all(span >= amp[full] - rate[full] * dt[full])
    np.testing.assert_allclose(p[:, 4], amp / (rate * dt), rtol=1e-5)
    np.testing.assert_allclose(dt, PROTOCOLS.dt_mean, rtol=1e-6)
    np.testing.assert_array_equal(p[:, 2], data["gen_cycles_train"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("E", 0.0, "greater than 0"), ("E", -2.0, "greater than 0"), ("nu0", 0.0, "greater than 0"),
     ("m", 0.5, "greater than or equal to 1"), ("sigma0", -1.0, "greater than 0")],
)
def test_bad_material_parameters_name_the_field(field: str, value: float, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        MaterialParams(**{field: value})
    assert field in str(err.value) and message in str(err.value)
