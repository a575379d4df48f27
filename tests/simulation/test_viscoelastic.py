"""Tests for the batched power-law Maxwell simulator: closed forms, solve_ivp agreement,
protocol generation, energies and dataset shapes."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mlsp_pipelines.evaluation.hysteresis import cycle_boundaries, hysteresis_energy
from mlsp_pipelines.simulation.viscoelastic import (
    MaterialParams,
    Protocols,
    build_sequence_dataset,
    dissipated_energy,
    generate_protocols,
    linear_maxwell_hold,
    linear_maxwell_ramp,
    power_law_hold,
    simulate,
    simulate_solve_ivp,
    stress_rate_jacobian,
)

LINEAR = MaterialParams(E=2.0, nu0=3.0, sigma0=0.1, m=1.0)


def _jittered_grid(n_steps: int, dt: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([[0.0], np.cumsum(dt * rng.uniform(0.5, 1.5, n_steps - 1))])


def _rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """Worst-trajectory max error relative to that trajectory's max|σ| (the stated metric)."""
    a, ref = np.atleast_2d(a), np.atleast_2d(ref)
    return float(np.max(np.max(np.abs(a - ref), axis=1) / np.max(np.abs(ref), axis=1)))


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"E": 0.0}, "E"),
        ({"E": -1.0}, "E"),
        ({"nu0": 0.0}, "nu0"),
        ({"nu0": -2.0}, "nu0"),
        ({"sigma0": 0.0}, "sigma0"),
        ({"sigma0": -0.1}, "sigma0"),
        ({"m": 0.5}, "m"),
        ({"m": float("nan")}, "m"),
        ({"E": float("inf")}, "E"),
        ({"nu0": True}, "nu0"),
        ({"sigma0": "small"}, "sigma0"),
    ],
)
def test_bad_params_raise_naming_key(kwargs: dict[str, float], key: str) -> None:
    base = {"E": 1.0, "nu0": 1.0, "sigma0": 1.0, "m": 2.0} | kwargs
    with pytest.raises(ValidationError) as err:
        MaterialParams(**base)
    assert [e["loc"] for e in err.value.errors()] == [(key,)]


def test_params_are_frozen_floats() -> None:
    p = MaterialParams(E=1, nu0=2, sigma0=3, m=1)
    assert isinstance(p.E, float) and p.relaxation_time == 2.0
    with pytest.raises(ValidationError, match="frozen"):
        p.E = 5.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        MaterialParams(E=1.0, nu=2.0)  # a typo is an error, not a silently ignored key


# ---------------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------------


def test_linear_hold_matches_exponential_relaxation() -> None:
    t = _jittered_grid(60, 0.1, seed=0)
    stretch = np.full((2, t.size), 1.2)
    sigma_start = np.array([0.7, -0.3])
    sigma = simulate((t, stretch), LINEAR, rtol=1e-9, initial_stress=sigma_start)
    exact = linear_maxwell_hold(t[None, :], sigma_start[:, None], LINEAR)
    np.testing.assert_allclose(sigma, exact, rtol=1e-7, atol=1e-12)


def test_linear_constant_rate_loading_matches_closed_form() -> None:
    t = _jittered_grid(80, 0.05, seed=1)
    rates = np.array([0.1, 0.5, -0.25])
    stretch = 1.0 + rates[:, None] * t[None, :]
    sigma = simulate((t, stretch), LINEAR, rtol=1e-9)
    exact = linear_maxwell_ramp(t[None, :], rates[:, None], LINEAR)
    assert _rel_err(sigma, exact) < 1e-8
    # Fixed substeps: third order, so halving the step cuts the error ~8x.
    errs = [_rel_err(simulate((t, stretch), LINEAR, substeps=s), exact) for s in (1, 2, 4)]
    assert errs[0] < 1e-4
    assert errs[0] / errs[1] > 6.0 and errs[1] / errs[2] > 6.0


def test_closed_form_helpers_require_linear_model() -> None:
    with pytest.raises(ValueError, match="m must be 1"):
        linear_maxwell_hold(np.zeros(3), 1.0, MaterialParams(E=1.0, nu0=1.0, sigma0=1.0, m=2.0))


@pytest.mark.parametrize("m", [3.0, 20.0])
def test_power_law_hold_with_stiff_initial_layer(m: float) -> None:
    """σ(0) = 20·σ0 makes |∂f/∂σ|·Δt ~ 1e24 at m = 20: L-stability plus step control."""
    p = MaterialParams(E=1.0, nu0=1.0, sigma0=0.1, m=m)
    t = _jittered_grid(50, 0.05, seed=2)
    sigma_start = np.array([2.0, -0.5, 0.05])
    sigma = simulate((t, np.ones((3, t.size))), p, initial_stress=sigma_start)
    exact = power_law_hold(t[None, :], sigma_start[:, None], p)
    assert _rel_err(sigma, exact) < 1e-5
    assert np.all(np.sign(sigma[:, 1:]) == np.sign(sigma_start)[:, None])  # no sign flips


# ---------------------------------------------------------------------------------------------
# Agreement with scipy's Radau on random protocols
# ---------------------------------------------------------------------------------------------

# m = 20 with E/σ0 = 200: |∂f/∂σ|·Δt reaches ~50 on the viscous plateau (explicit schemes
# need < 2), and σ swings between plateaus within about one sampling interval.
SOLVE_IVP_CASES = {
    "m=2": MaterialParams(E=1.0, nu0=1.0, sigma0=0.1, m=2.0),
    "m=5": MaterialParams(E=1.0, nu0=1.0, sigma0=0.1, m=5.0),
    "m=1.5": MaterialParams(E=10.0, nu0=1.0, sigma0=0.05, m=1.5),
    "m=20 stiff": MaterialParams(E=10.0, nu0=1.0, sigma0=0.05, m=20.0),
}


@pytest.fixture(scope="module")
def random_protocols() -> Protocols:
    return generate_protocols(n=3, n_steps=70, seed=11, rate_range=(0.1, 0.6))


@pytest.mark.parametrize("case", list(SOLVE_IVP_CASES))
def test_matches_solve_ivp_radau(case: str, random_protocols: Protocols) -> None:
    p = SOLVE_IVP_CASES[case]
    ref = simulate_solve_ivp(random_protocols, p, method="Radau", rtol=1e-10, atol=1e-12)
    assert set(random_protocols.kind) == {"cyclic", "relaxation", "piecewise"}
    assert np.ptp(np.diff(random_protocols.t, axis=1)) > 0.02  # non-uniform Δt
    # Stated accuracy: default rtol=1e-5 keeps the error below 1e-4 of max|σ| (seen: ~1e-5).
    assert _rel_err(simulate(random_protocols, p), ref) < 1e-4
    assert _rel_err(simulate(random_protocols, p, rtol=1e-8), ref) < 1e-7
    if case == "m=20 stiff":
        stiffness = np.max(np.abs(stress_rate_jacobian(ref[:, 1:], p)) * np.diff(random_protocols.t, axis=1))
        assert stiffness > 20.0


def test_backward_euler_and_fixed_substeps_options(random_protocols: Protocols) -> None:
    p = SOLVE_IVP_CASES["m=5"]
    ref = simulate_solve_ivp(random_protocols, p, rtol=1e-10, atol=1e-12)
    # Order 1: the global error only falls like ~sqrt(rtol), so it is a robust fallback, not a default.
    be_errs = [_rel_err(simulate(random_protocols, p, method="backward_euler", rtol=r), ref) for r in (1e-4, 1e-6)]
    assert be_errs[1] < be_errs[0] < 1e-2
    assert _rel_err(simulate(random_protocols, p, method="sdirk3", substeps=8), ref) < 1e-4


def test_simulate_shapes_dtype_and_validation() -> None:
    pr = generate_protocols(n=4, n_steps=20, seed=0)
    p = MaterialParams(E=1.0, nu0=1.0, sigma0=0.1, m=3.0)
    sigma = simulate(pr, p)
    assert sigma.shape == (4, 20) and sigma.dtype == np.float64
    assert np.all(sigma[:, 0] == 0.0)
    one = simulate((pr.t[1], pr.stretch[1]), p)
    assert one.shape == (20,)
    np.testing.assert_allclose(one, sigma[1], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="strictly increasing"):
        simulate((np.array([0.0, 1.0, 1.0]), np.ones(3)), p)
    with pytest.raises(ValueError, match="method"):
        simulate(pr, p, method="rk4")
    with pytest.raises(ValueError, match="substeps"):
        simulate(pr, p, substeps=0)


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------


def test_protocols_deterministic_per_seed() -> None:
    a = generate_protocols(n=12, n_steps=50, seed=7)
    b = generate_protocols(n=12, n_steps=50, seed=7)
    c = generate_protocols(n=12, n_steps=50, seed=8)
    for field in ("t", "stretch", "kind", "rate", "amplitude", "cycles"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.stretch, c.stretch)
    assert not np.array_equal(a.t, c.t)


@pytest.mark.parametrize(
    ("rate_range", "amp_range"),
    [((0.05, 0.5), (0.05, 0.3)), ((1.0, 2.0), (0.15, 0.3))],  # training-like, extrapolation-like
)
def test_protocols_respect_ranges(rate_range: tuple[float, float], amp_range: tuple[float, float]) -> None:
    pr = generate_protocols(
        n=60, n_steps=200, seed=3, rate_range=rate_range, amplitude_range=amp_range, dt_mean=0.05, dt_jitter=0.4
    )
    assert pr.t.shape == pr.stretch.shape == (60, 200) and len(pr) == 60 and pr.n_steps == 200
    assert set(pr.kind) == {"cyclic", "relaxation", "piecewise"}
    assert np.all(pr.t[:, 0] == 0.0)
    dt = np.diff(pr.t, axis=1)
    assert np.all(dt >= 0.05 * 0.6 - 1e-12) and np.all(dt <= 0.05 * 1.4 + 1e-12)
    lo, hi = rate_range
    assert np.all((pr.rate >= lo) & (pr.rate <= hi))
    assert np.all((pr.amplitude >= amp_range[0]) & (pr.amplitude <= amp_range[1]))
    realised = np.max(np.abs(np.diff(pr.stretch, axis=1)) / dt, axis=1)
    assert np.all(realised <= pr.rate * (1 + 1e-9))
    strain = pr.stretch - 1.0
    assert np.all(strain >= -1e-12) and np.all(strain.max(axis=1) <= pr.amplitude + 1e-12)
    # Cyclic and relaxation paths reach their amplitude up to one sample of ramp.
    full = np.isin(pr.kind, ["cyclic", "relaxation"]) & (pr.cycles > 0)
    assert np.all(strain[full].max(axis=1) >= pr.amplitude[full] - pr.rate[full] * dt.max())
    # Every cyclic path with complete cycles shows cycles + 1 minima of λ.
    for i in np.flatnonzero((pr.kind == "cyclic") & (pr.cycles > 0)):
        assert len(cycle_boundaries(pr.stretch[i])[0]) == pr.cycles[i] + 1


def test_uniform_dt_and_argument_validation() -> None:
    pr = generate_protocols(n=3, n_steps=10, seed=0, nonuniform_dt=False, dt_mean=0.1)
    np.testing.assert_allclose(np.diff(pr.t, axis=1), 0.1)
    with pytest.raises(ValueError, match="rate_range"):
        generate_protocols(n=3, n_steps=10, seed=0, rate_range=(0.5, 0.1))
    with pytest.raises(ValueError, match="kinds"):
        generate_protocols(n=3, n_steps=10, seed=0, kinds=("sine",))
    sub = generate_protocols(n=3, n_steps=10, seed=0, kinds=("cyclic",)).subset([0, 2])
    assert len(sub) == 2 and set(sub.kind) == {"cyclic"}


# ---------------------------------------------------------------------------------------------
# Energies and dataset
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cyclic_protocols() -> Protocols:
    return generate_protocols(n=6, n_steps=300, seed=5, kinds=("cyclic",), max_cycles=3)


def test_hysteresis_loops_dissipate(cyclic_protocols: Protocols) -> None:
    p = MaterialParams(E=1.0, nu0=1.0, sigma0=0.1, m=3.0)
    sigma = simulate(cyclic_protocols, p)
    per_cycle = hysteresis_energy(cyclic_protocols.stretch, sigma)
    total = dissipated_energy(cyclic_protocols.stretch, sigma)
    for i, loops in enumerate(per_cycle):
        assert len(loops) == cyclic_protocols.cycles[i] >= 1
        assert np.all(loops > 0.0)
        # Cycles cover the path up to the final hold (no work); only the closing chords differ.
        np.testing.assert_allclose(loops.sum(), total[i], rtol=0.05)
    assert np.all(total > 0.0)
    assert np.all(dissipated_energy(cyclic_protocols.stretch, sigma, elastic_modulus=p.E) > 0.0)


def test_elastic_limit_has_no_hysteresis(cyclic_protocols: Protocols) -> None:
    p = MaterialParams(E=1.0, nu0=1e12, sigma0=0.1, m=3.0)
    sigma = simulate(cyclic_protocols, p)
    # Viscous drift over the path is ~ (σ/ν0)(σ/σ0)²·t ~ 1e-11.
    np.testing.assert_allclose(sigma, p.E * (cyclic_protocols.stretch - 1.0), atol=1e-9)
    scale = p.E * cyclic_protocols.amplitude**2  # elastic energy scale E·A²
    assert np.all(np.abs(dissipated_energy(cyclic_protocols.stretch, sigma)) < 1e-9 * scale)
    for loops, s in zip(hysteresis_energy(cyclic_protocols.stretch, sigma), scale):
        assert np.all(np.abs(loops) < 1e-9 * s)


def test_build_sequence_dataset() -> None:
    pr = generate_protocols(n=5, n_steps=30, seed=2)
    sigma = simulate(pr, MaterialParams(E=1.0, nu0=1.0, sigma0=0.1, m=2.0))
    x, y = build_sequence_dataset(pr.t, pr.stretch, sigma)
    assert x.shape == (5, 30, 3) and y.shape == (5, 30, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0, 1:], 0.0)  # no segment has ended at t_0
    np.testing.assert_allclose(x[:, :, 0], pr.stretch, rtol=1e-6)
    np.testing.assert_allclose(x[:, 1:, 2], np.diff(pr.t, axis=1), rtol=1e-6)
    rate = np.diff(pr.stretch, axis=1) / np.diff(pr.t, axis=1)
    np.testing.assert_allclose(x[:, 1:, 1], rate, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y[..., 0], sigma, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="must match"):
        build_sequence_dataset(pr.t, pr.stretch, sigma[:, :-1])
