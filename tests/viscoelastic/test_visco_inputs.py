"""Inputs that let recurrent models extrapolate in rate: features, scaling, the linear skip, coarse-grid protocols."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from mlsp_pipelines.evaluation.diagnostics import gradient_norms_through_time
from mlsp_pipelines.features.normalise import apply_normaliser, fit_range_scaling
from mlsp_pipelines.models import build_model
from mlsp_pipelines.pipelines.viscoelastic import data as vdata
from mlsp_pipelines.pipelines.viscoelastic.params import (
    GeneratorDataParams,
    InputParams,
    ProtocolParams,
    TrajectorySplitParams,
)
from mlsp_pipelines.simulation.viscoelastic import (
    MaterialParams,
    build_sequence_dataset,
    generate_protocols,
    sequence_features,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    pr = generate_protocols(n=5, n_steps=50, seed=2)
    x, _ = build_sequence_dataset(pr.t, pr.stretch, np.zeros_like(pr.t))
    return x


def test_sequence_features_from_stretch_rate_and_dt(raw: np.ndarray) -> None:
    f = sequence_features(raw, ["dt", "stretch", "dstretch", "stretch_rate"])
    assert f.shape == (*raw.shape[:2], 4) and f.dtype == np.float32
    np.testing.assert_array_equal(f[..., 0], raw[..., 2])
    np.testing.assert_array_equal(f[..., 1], raw[..., 0])
    np.testing.assert_array_equal(f[..., 3], raw[..., 1])
    # Δλ_j is the stretch increment over the interval ending at t_j (0 at the first sample).
    lam = raw[..., 0].astype(np.float64)
    np.testing.assert_allclose(f[:, 1:, 2], np.diff(lam, axis=1), atol=1e-6)
    assert np.all(f[:, 0, 2] == 0)


def test_log_rate_is_odd_monotone_and_compresses_fast_rates() -> None:
    rates = np.array([-1.2, -0.4, -0.05, 0.0, 0.05, 0.4, 1.2, 3.6])
    x = np.stack([np.ones_like(rates), rates, np.full_like(rates, 0.05)], -1)[None]
    g = sequence_features(x, ["log_rate"], rate_scale=0.1)[0, :, 0].astype(np.float64)
    np.testing.assert_allclose(g, np.sign(rates) * np.log1p(np.abs(rates) / 0.1), rtol=1e-6)
    assert np.all(np.diff(g) > 0) and g[3] == 0 and g[0] == pytest.approx(-g[6])
    # 3× faster loading (1.2 → 3.6) moves the feature by less than log 3, not by 3×.
    assert g[7] - g[6] < np.log(3.0) and g[7] / g[6] < 1.5
    with pytest.raises(ValueError, match="rate_scale"):
        sequence_features(x, ["log_rate"])


@pytest.mark.parametrize("names", [[], ["stretch", "stretch"], ["strain"]])
def test_bad_feature_lists_are_rejected(raw: np.ndarray, names: list[str]) -> None:
    with pytest.raises(ValueError, match="features"):
        sequence_features(raw, names)


def test_input_params_validate_and_pick_per_model_features() -> None:
    p = InputParams(features=["stretch", "dt"], per_model={"mlp": {"features": ["stretch", "stretch_rate", "dt"]},
                                                          "ode": {"features": ["stretch_rate", "dt"], "scaling": "none"}})
    assert p.spec_for("gru") == (["stretch", "dt"], "standard") == p.spec_for(None)
    assert p.spec_for("mlp") == (["stretch", "stretch_rate", "dt"], "standard")
    assert p.spec_for("ode") == (["stretch_rate", "dt"], "none")
    with pytest.raises(ValidationError, match="twice"):
        InputParams(features=["stretch", "stretch"])
    with pytest.raises(ValidationError, match="per_model.mlp.features"):
        InputParams(per_model={"mlp": {"features": []}})
    with pytest.raises(ValidationError, match="features"):
        InputParams(features=["velocity"])
    with pytest.raises(ValidationError, match="scaling"):
        InputParams(scaling="minmax")


def test_range_scaling_maps_the_training_range_to_unit_interval() -> None:
    x = np.array([[[1.0, -0.4, 0.025]], [[1.3, 0.4, 0.075]], [[1.1, 0.0, 0.05]]])
    st = fit_range_scaling(x)
    z = apply_normaliser(x, st, dtype=np.float64)
    np.testing.assert_allclose(z.min(axis=(0, 1)), -1.0, atol=1e-6)
    np.testing.assert_allclose(z.max(axis=(0, 1)), 1.0, atol=1e-6)
    # A rate 3× above the fastest training rate lands at 3, not at many standard deviations.
    assert apply_normaliser(np.array([1.1, 1.2, 0.05]), st, dtype=np.float64)[1] == pytest.approx(3.0, rel=1e-5)


def test_skip_adds_a_linear_input_path_and_is_off_by_default() -> None:
    torch.manual_seed(0)
    plain = build_model("gru", in_features=2, out_features=1, hidden_size=4, per_step=True, dropout=0.0)
    assert plain.skip is None and not any(k.startswith("skip") for k in plain.state_dict())
    torch.manual_seed(0)
    net = build_model("gru", in_features=2, out_features=1, hidden_size=4, per_step=True, dropout=0.0, skip=True)
    x = torch.randn(3, 7, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net.head(net.hidden_states(x)) + x @ net.skip.weight.T
        np.testing.assert_allclose(net(x).numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
        # With the recurrent read-out silenced the output is exactly linear in the input: 3x in, 3x out.
        net.head.weight.zero_()
        net.head.bias.zero_()
        np.testing.assert_allclose(net(3 * x).numpy(), 3 * net(x).numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="per_step"):
        build_model("lstm", in_features=2, out_features=1, skip=True)


def test_gradient_through_time_of_a_skip_model_uses_its_whole_prediction() -> None:
    """‖∂L/∂h_{T−1}‖ from the step-by-step unroll equals autograd through the fused model."""
    torch.manual_seed(0)
    net = build_model("lstm", in_features=2, out_features=1, hidden_size=5, per_step=True, dropout=0.0,
                      skip=True).double()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 12, 2, generator=g, dtype=torch.float64), torch.randn(4, 12, 1, generator=g, dtype=torch.float64)
    norms = gradient_norms_through_time(net, x, y)
    seq = net.hidden_states(x)
    seq.retain_grad()
    out = net.head(seq) + net.skip(x)
    torch.nn.functional.mse_loss(out[:, -1], y[:, -1]).backward()
    assert norms[-1] == pytest.approx(float(seq.grad[:, -1].norm(dim=-1).mean()), rel=1e-10)


MATERIAL = MaterialParams(E=1.0, nu0=1.0, sigma0=0.2, m=2.0)
GENERATOR = GeneratorDataParams(n_trajectories=6, n_extrapolation=3, seed=4)
SPLIT = TrajectorySplitParams(val_fraction=0.2, test_fraction=0.2, seed=1)


def test_coarse_grid_protocols_join_the_training_set_only() -> None:
    protocols = ProtocolParams(n_trajectories=15, n_steps=40, seed=3, extrapolation={"n_trajectories": 4},
                               augmentation={"dt_scales": [2.0, 3.0], "n_per_scale": 5, "seed": 50})
    traj, gen = vdata.simulate_trajectories(MATERIAL, protocols, GENERATOR)
    data, _, quality = vdata.build_dataset(traj, gen, SPLIT)
    assert quality["n_train"] == quality["n_train_main"] + 10
    ids = data["id_train"].astype(str)
    for k, scale in enumerate((2.0, 3.0)):
        rows = np.char.startswith(ids, f"augment{k}_")
        assert rows.sum() == 5
        dt = data["X_train"][rows][:, 1:, 2]
        assert dt.mean() == pytest.approx(scale * protocols.dt_mean, rel=0.1)  # the coarser grid
        assert np.abs(data["X_train"][rows][..., 1]).max() <= protocols.rate_range[1] * (1 + 1e-5)  # no faster rate
    for s in ("val", "test", "extrap"):
        assert not np.any(np.char.startswith(data[f"id_{s}"].astype(str), "augment")), s
        assert data[f"X_{s}"][:, 1:, 2].max() <= protocols.dt_mean * (1 + protocols.dt_jitter) + 1e-6, s
    plain, _, _ = vdata.build_dataset(*vdata.simulate_trajectories(MATERIAL, protocols.model_copy(
        update={"augmentation": protocols.augmentation.model_copy(update={"dt_scales": []})}), GENERATOR), SPLIT)
    for s in ("val", "test", "extrap"):  # the evaluation sets do not depend on the augmentation
        np.testing.assert_array_equal(plain[f"y_{s}"], data[f"y_{s}"])


def test_augmentation_seeds_must_not_repeat_other_draws() -> None:
    with pytest.raises(ValidationError, match="augmentation seeds"):
        ProtocolParams(seed=44, augmentation={"dt_scales": [2.0, 3.0], "seed": 43})
    with pytest.raises(ValidationError, match="dt_scales"):
        ProtocolParams(augmentation={"dt_scales": [0.0]})


def test_models_get_their_own_features_and_bundles_rebuild_them() -> None:
    protocols = ProtocolParams(n_trajectories=12, n_steps=30, seed=3, extrapolation={"n_trajectories": 3})
    data, norm, _ = vdata.build_dataset(*vdata.simulate_trajectories(MATERIAL, protocols, GENERATOR), SPLIT)
    inputs = InputParams(features=["stretch", "dt"], per_model={"mlp": {"features": ["stretch", "stretch_rate", "dt"]},
                                                               "ode": {"features": ["stretch_rate", "dt"], "scaling": "none"}})
    mi = vdata.make_sequence_input(data, norm, inputs)
    assert set(mi["feature_sets"]) == {"stretch+dt|standard", "stretch+stretch_rate+dt|standard", "stretch_rate+dt|none"}
    assert vdata.feature_set(mi, "gru")["Xn_test"].shape[-1] == 2
    assert vdata.feature_set(mi, "mlp")["Xn_test"].shape[-1] == 3
    # Unscaled inputs are the physical rate and Δt, for every set.
    np.testing.assert_array_equal(vdata.feature_set(mi, "ode")["Xn_extrap"], data["X_extrap"][..., 1:])
    fs = vdata.feature_set(mi, "gru")
    bundle = {"features": fs["names"], "norm_x": fs["norm"], "rate_scale": fs["rate_scale"]}
    np.testing.assert_array_equal(vdata.input_features(bundle, data["X_extrap"]), fs["Xn_extrap"])
