"""``rate_ode``: its integrator against the closed-form Maxwell solid, teacher forcing against rollout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsp_pipelines.models import build_model
from mlsp_pipelines.models.constitutive import RateODE, RateODEConfig
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.simulation.viscoelastic import MaterialParams, linear_maxwell_hold, linear_maxwell_ramp
from mlsp_pipelines.training.loop import fit

torch.set_num_threads(1)


class _LinearMaxwell(RateODE):
    """A = E, G = E·σ/ν0 exactly: the linear Maxwell solid (m = 1) with E = 2, ν0 = 3."""

    def rate_functions(self, y: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full_like(y, 2.0), 2.0 * y / 3.0


def _ramp_then_hold(n_ramp: int, n_hold: int, dt: float, rate: float) -> torch.Tensor:
    r = np.r_[np.full(n_ramp, rate), np.zeros(n_hold)]
    return torch.tensor(np.stack([r, np.full_like(r, dt)], -1)[None], dtype=torch.float64)


@pytest.mark.parametrize(("method", "substeps", "tol"), [("rk4", 1, 1e-6), ("heun", 4, 1e-4), ("euler", 20, 5e-3)])
def test_integrates_the_linear_maxwell_solid(method: str, substeps: int, tol: float) -> None:
    model = _LinearMaxwell(RateODEConfig(method=method, substeps=substeps), in_features=2, out_features=1).double()
    x = _ramp_then_hold(40, 40, 0.05, 0.3)
    with torch.no_grad():
        sigma = model(x)[0, :, 0].numpy()
    mat = MaterialParams(E=2.0, nu0=3.0, sigma0=1.0, m=1.0)
    t = 0.05 * np.arange(1, 41)
    ramp = linear_maxwell_ramp(t, 0.3, mat)
    hold = linear_maxwell_hold(0.05 * np.arange(1, 41), ramp[-1], mat)
    np.testing.assert_allclose(sigma, np.r_[ramp, hold], atol=tol * ramp.max())


def test_rate_enters_linearly_so_faster_loading_needs_no_new_law() -> None:
    """Ten times the rate of the training data is integrated as exactly as the training rate."""
    model = _LinearMaxwell(in_features=2, out_features=1).double()
    mat = MaterialParams(E=2.0, nu0=3.0, sigma0=1.0, m=1.0)
    t = 0.05 * np.arange(1, 31)
    for rate in (0.1, 1.0):
        with torch.no_grad():
            sigma = model(_ramp_then_hold(30, 0, 0.05, rate))[0, :, 0].numpy()
        np.testing.assert_allclose(sigma, linear_maxwell_ramp(t, rate, mat), rtol=1e-6)


def test_teacher_forcing_is_one_rollout_step_from_the_true_state() -> None:
    torch.manual_seed(0)
    model = build_model("rate_ode", in_features=3, out_features=1, hidden_size=8).double().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(2, 15, 1, generator=g, dtype=torch.float64),
                   0.02 + 0.05 * torch.rand(2, 15, 1, generator=g, dtype=torch.float64),
                   torch.randn(2, 15, 1, generator=g, dtype=torch.float64)], -1)
    with torch.no_grad():
        rolled = model(x)
        # Fed its own rollout as the "truth", teacher forcing reproduces the rollout exactly ...
        torch.testing.assert_close(model(x, rolled), rolled)
        # ... and fed another sequence, step t starts from that sequence's value at t−1.
        other = torch.randn(2, 15, 1, generator=g, dtype=torch.float64)
        forced = model(x, other)
        step5 = model.step(other[:, 4], x[:, 5, :1], x[:, 5, 1:2], x[:, 5, 2:])
        torch.testing.assert_close(forced[:, 5], step5)
        torch.testing.assert_close(forced[:, 0], model.step(model.initial_state.expand(2, 1), x[:, 0, :1],
                                                             x[:, 0, 1:2], x[:, 0, 2:]))


def test_fits_a_relaxing_solid_through_the_shared_loop() -> None:
    """Teacher-forced training (train: x, y, y) and free-running validation (x, y) in the one loop."""
    rng = np.random.default_rng(0)
    mat = MaterialParams(E=1.0, nu0=1.0, sigma0=1.0, m=1.0)
    xs, ys = [], []
    for rate in rng.uniform(0.1, 0.5, size=24):
        x = _ramp_then_hold(20, 20, 0.05, rate)[0].numpy()
        t = 0.05 * np.arange(1, 21)
        ramp = linear_maxwell_ramp(t, rate, mat)
        xs.append(x)
        ys.append(np.r_[ramp, linear_maxwell_hold(t, ramp[-1], mat)][:, None] / 0.1)
    x, y = torch.tensor(np.array(xs), dtype=torch.float32), torch.tensor(np.array(ys), dtype=torch.float32)
    torch.manual_seed(0)
    model = build_model("rate_ode", in_features=2, out_features=1, hidden_size=16)
    params = TrainParams(epochs=60, batch_size=8, lr=0.01, patience=None, progress=False, num_threads=1)
    result = fit(model, (x[:16], y[:16], y[:16]), (x[16:], y[16:]), params=params, task="regression")
    assert result.history["val_loss"][-1] < 0.05 * result.history["val_loss"][0]
    with torch.no_grad():
        err = (model(x[16:]) - y[16:]).square().mean().sqrt() / y[16:].square().mean().sqrt()
    assert float(err) < 0.05


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="in_features"):
        build_model("rate_ode", in_features=1, out_features=1)
    with pytest.raises(ValueError, match="method"):
        build_model("rate_ode", in_features=2, out_features=1, method="rk45")
    with pytest.raises(ValueError, match="substeps"):
        build_model("rate_ode", in_features=2, out_features=1, substeps=0)
    with pytest.raises(ValueError, match=r"\(batch, time, 2\)"):
        build_model("rate_ode", in_features=2, out_features=1)(torch.zeros(3, 2))
