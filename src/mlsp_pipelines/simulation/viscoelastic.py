"""Batched simulation of a viscoelastic solid: Maxwell element with a power-law dashpot.

Constitutive law (spring ``E`` in series with a power-law dashpot)::

    dσ/dt = E · ( dλ/dt − (σ/ν0) · |σ/σ0|^(m−1) )

The viscous strain rate ``(σ/ν0)|σ/σ0|^(m−1)`` is multiplied by ``E`` so that ``ν0`` is a
viscosity (stress·time) and the linear case ``m = 1`` is the classical Maxwell model with
relaxation time ``ν0/E``: a hold relaxes as ``σ(0)·exp(−E t/ν0)`` and constant-rate loading
from rest gives ``ν0·r·(1 − exp(−E t/ν0))`` (:func:`linear_maxwell_hold`,
:func:`linear_maxwell_ramp`). For ``m = 1`` the reference stress ``σ0`` drops out. (Writing
the viscous term without the factor ``E`` would relax a hold as ``exp(−t/ν0)`` instead.)

The stretch ``λ`` is sampled at times ``t_j`` and is piecewise linear between samples, so the
driving rate is constant inside each sampling interval and the ODE is smooth there. The
batched integrator (:func:`simulate`) advances all trajectories together (NumPy arrays of shape
``(N,)`` per step) with a stiffly accurate, L-stable SDIRK scheme; each implicit stage is a
scalar monotone equation solved by a vectorised Newton iteration that converges monotonically
from a guaranteed upper bound, so no damping heuristics are needed even for large ``m``.

Also here: seeded stretch protocols (:func:`generate_protocols`), a per-trajectory
``solve_ivp`` reference (:func:`simulate_solve_ivp`), sequence-model features
(:func:`build_sequence_dataset`) and the energy dissipated over a path (:func:`dissipated_energy`;
per-loop areas are :func:`mlsp_pipelines.evaluation.hysteresis.hysteresis_energy`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from mlsp_pipelines.section import Section

logger = logging.getLogger(__name__)

PROTOCOL_KINDS: tuple[str, ...] = ("cyclic", "relaxation", "piecewise")

# ----------------------------------------------------------------------------------------------
# Material parameters
# ----------------------------------------------------------------------------------------------


class MaterialParams(Section):
    """Parameters of the power-law Maxwell element ``dσ/dt = E(dλ/dt − (σ/ν0)|σ/σ0|^(m−1))``;
    validated so bad physics fails early, with the key named (also as the ``material``
    parameter section of the viscoelastic task).

    ``E`` elastic modulus (> 0), ``nu0`` viscosity (> 0; relaxation time ν0/E), ``sigma0``
    reference stress of the power law (> 0), ``m`` power-law exponent (>= 1; ``m = 1`` is
    linear Maxwell). All finite.
    """

    E: float = Field(1.0, gt=0, allow_inf_nan=False)
    nu0: float = Field(1.0, gt=0, allow_inf_nan=False)
    sigma0: float = Field(0.2, gt=0, allow_inf_nan=False)
    m: float = Field(2.0, ge=1, allow_inf_nan=False)

    @field_validator("E", "nu0", "sigma0", "m", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        """pydantic would read ``true`` as 1.0; a flag is never a material constant."""
        if isinstance(value, bool):
            raise ValueError(f"must be a real number, got {value!r}")
        return value

    @property
    def relaxation_time(self) -> float:
        """Linear relaxation time ``ν0/E`` (exact for ``m = 1``, the stress-scale one otherwise)."""
        return self.nu0 / self.E



def viscous_strain_rate(sigma: np.ndarray, params: MaterialParams) -> np.ndarray:
    """Dashpot strain rate ``(σ/ν0)|σ/σ0|^(m−1)``; odd and monotone in σ (what makes it stable)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    s = sigma / params.sigma0
    if params.m == 1.0:
        return sigma / params.nu0
    return (params.sigma0 / params.nu0) * s * np.abs(s) ** (params.m - 1.0)


def stress_rate(sigma: np.ndarray, stretch_rate: np.ndarray, params: MaterialParams) -> np.ndarray:
    """Right-hand side ``dσ/dt = E(dλ/dt − viscous strain rate)``."""
    return params.E * (np.asarray(stretch_rate, dtype=np.float64) - viscous_strain_rate(sigma, params))


def stress_rate_jacobian(sigma: np.ndarray, params: MaterialParams) -> np.ndarray:
    """``∂(dσ/dt)/∂σ = −E m |σ/σ0|^(m−1)/ν0`` (<= 0: the source of stiffness for large m, σ/σ0)."""
    s = np.asarray(sigma, dtype=np.float64) / params.sigma0
    return -params.E * params.m * np.abs(s) ** (params.m - 1.0) / params.nu0


# ----------------------------------------------------------------------------------------------
# Closed forms (used by the tests)
# ----------------------------------------------------------------------------------------------


def linear_maxwell_hold(t: np.ndarray, sigma_start: float | np.ndarray, params: MaterialParams) -> np.ndarray:
    """Stress under a hold (dλ/dt = 0) for ``m = 1``: ``σ(0)·exp(−E t/ν0)``."""
    _require_linear(params)
    return np.asarray(sigma_start, dtype=np.float64) * np.exp(-params.E * np.asarray(t, dtype=np.float64) / params.nu0)


def linear_maxwell_ramp(t: np.ndarray, rate: float | np.ndarray, params: MaterialParams) -> np.ndarray:
    """Stress under constant-rate loading from rest for ``m = 1``: ``ν0·r·(1 − exp(−E t/ν0))``."""
    _require_linear(params)
    t = np.asarray(t, dtype=np.float64)
    return params.nu0 * np.asarray(rate, dtype=np.float64) * -np.expm1(-params.E * t / params.nu0)


def power_law_hold(t: np.ndarray, sigma_start: float | np.ndarray, params: MaterialParams) -> np.ndarray:
    """Stress under a hold for any ``m`` (exact): checks the nonlinear, stiff relaxation path.

    For ``m > 1``, ``|σ|^(1−m)`` grows linearly: ``|σ(t)|^(1−m) = |σ(0)|^(1−m) +
    (m−1)·E·t/(ν0·σ0^(m−1))``; the sign of σ is kept. ``m = 1`` falls back to the exponential.
    """
    t = np.asarray(t, dtype=np.float64)
    s0 = np.asarray(sigma_start, dtype=np.float64)
    if params.m == 1.0:
        return s0 * np.exp(-params.E * t / params.nu0)
    m = params.m
    with np.errstate(divide="ignore"):
        base = np.abs(s0 / params.sigma0) ** (1.0 - m)
    u = (base + (m - 1.0) * params.E * t / params.nu0) ** (-1.0 / (m - 1.0))
    return np.sign(s0) * params.sigma0 * u


def _require_linear(params: MaterialParams) -> None:
    if params.m != 1.0:
        raise ValueError(f"m must be 1 for the linear Maxwell closed form, got {params.m:g}")


# ----------------------------------------------------------------------------------------------
# Stretch protocols
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocols:
    """A batch of stretch histories sharing the number of samples ``T``.

    ``t`` and ``stretch`` are ``(N, T)`` float64 (``t[:, 0] = 0``, strictly increasing);
    ``kind`` is ``(N,)`` str; ``rate`` the nominal loading rate |dλ/dt| (the maximum segment
    rate for piecewise paths); ``amplitude`` the peak strain ``max(λ) − baseline`` targeted by
    the path (reached unless the window truncates it, and never exceeded); ``cycles`` the number
    of complete loading–unloading cycles (cyclic), ramp–hold stages (relaxation) or linear
    segments (piecewise) that fit in the window.
    """

    t: np.ndarray
    stretch: np.ndarray
    kind: np.ndarray
    rate: np.ndarray
    amplitude: np.ndarray
    cycles: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @property
    def n_steps(self) -> int:
        """Samples per trajectory ``T``."""
        return int(self.t.shape[1])

    def subset(self, index: Any) -> Protocols:
        """Rows ``index`` (slice, int array or bool mask) as a new batch; keeps 2-D arrays."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        return Protocols(
            t=self.t[idx],
            stretch=self.stretch[idx],
            kind=self.kind[idx],
            rate=self.rate[idx],
            amplitude=self.amplitude[idx],
            cycles=self.cycles[idx],
        )


def _check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 or hi < lo:
        raise ValueError(f"{name} must satisfy 0 < lo <= hi, got ({lo:g}, {hi:g})")
    return lo, hi


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: Any = None) -> Any:
    """Rates span decades, so sample them uniformly in log space."""
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size=size))


def _cyclic_path(
    rng: np.random.Generator, duration: float, rate: float, amplitude: float, max_cycles: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Triangle wave 0 → A → 0 repeated, then a hold at 0; as many drawn cycles as fit."""
    half = amplitude / rate
    drawn = int(rng.integers(1, max_cycles + 1))
    fit = int(math.floor(duration / (2.0 * half) * (1.0 + 1e-12)))
    cycles = min(drawn, fit)
    k = max(cycles, 1)  # a window too short for one cycle gets a truncated one (cycles = 0)
    times = np.arange(2 * k + 1) * half
    levels = np.tile([0.0, amplitude], k + 1)[: 2 * k + 1]
    return times, levels, cycles


def _relaxation_path(
    rng: np.random.Generator, duration: float, rate: float, amplitude: float, max_cycles: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Ramp to A then hold; further stages ramp (same rate) to new levels in [0, A] and hold."""
    stages = int(rng.integers(1, max_cycles + 1))
    levels = np.concatenate([[amplitude], rng.uniform(0.0, amplitude, size=stages - 1)])
    ramp = np.abs(np.diff(np.concatenate([[0.0], levels]))) / rate
    while stages > 1 and ramp[:stages].sum() > duration:
        stages -= 1
    levels, ramp = levels[:stages], ramp[:stages]
    spare = max(duration - ramp.sum(), 0.0)
    holds = rng.dirichlet(np.ones(stages)) * spare
    fits = ramp.sum() <= duration * (1.0 + 1e-12)
    times, lv = [0.0], [0.0]
    for r_i, h_i, level in zip(ramp, holds, levels):
        times += [times[-1] + r_i, times[-1] + r_i + h_i]
        lv += [level, level]
    return np.asarray(times), np.asarray(lv), stages if fits else 0


def _piecewise_path(
    rng: np.random.Generator, duration: float, lo: float, hi: float, amplitude: float, max_cycles: int
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Random piecewise-linear path: levels in [0, A] (one of them A), per-segment rates in range.

    Random holds are inserted between segments. Segments are dropped until the ramps fit.
    """
    n_seg = int(rng.integers(2, 2 * max_cycles + 1))
    while True:
        levels = rng.uniform(0.0, amplitude, size=n_seg)
        levels[int(rng.integers(0, n_seg))] = amplitude
        rates = _log_uniform(rng, lo, hi, size=n_seg)
        ramp = np.abs(np.diff(np.concatenate([[0.0], levels]))) / rates
        if ramp.sum() <= duration or n_seg == 1:
            break
        n_seg -= 1
    fits = ramp.sum() <= duration * (1.0 + 1e-12)
    spare = max(duration - ramp.sum(), 0.0) * rng.uniform(0.0, 1.0)
    holds = rng.dirichlet(np.ones(n_seg)) * spare * (rng.uniform(size=n_seg) < 0.5)
    times, lv = [0.0], [0.0]
    for r_i, h_i, level in zip(ramp, holds, levels):
        times.append(times[-1] + r_i)
        lv.append(level)
        if h_i > 0.0:
            times.append(times[-1] + h_i)
            lv.append(level)
    return np.asarray(times), np.asarray(lv), n_seg if fits else 0, float(rates.max())


def generate_protocols(
    *,
    n: int,
    n_steps: int,
    seed: int,
    kinds: Sequence[str] = PROTOCOL_KINDS,
    rate_range: tuple[float, float] = (0.05, 0.5),
    amplitude_range: tuple[float, float] = (0.05, 0.3),
    max_cycles: int = 4,
    nonuniform_dt: bool = True,
    dt_mean: float = 0.05,
    dt_jitter: float = 0.5,
    baseline: float = 1.0,
    check_sampling: bool = True,
) -> Protocols:
    """Draw ``n`` stretch histories of ``n_steps`` samples from ``np.random.default_rng(seed)``.

    Kinds are assigned round-robin then shuffled, so every kind in ``kinds`` appears
    (balanced). Time steps are ``dt_mean·U(1−dt_jitter, 1+dt_jitter)`` when ``nonuniform_dt``,
    else ``dt_mean``; every trajectory spans its own ``t[-1] ≈ (n_steps−1)·dt_mean``. Paths are
    defined in continuous time (breakpoints), padded with a final hold, and sampled on the grid,
    so between samples λ is the linear interpolant the simulator assumes. ``rate`` is drawn
    log-uniformly in ``rate_range`` (pass a disjoint range for an extrapolation set) and the
    amplitude uniformly in ``amplitude_range``; ``λ = baseline + strain``. Keep the shortest
    ramp ``amplitude_range[0]/rate_range[1]`` longer than the largest step (a warning is logged
    otherwise, unless ``check_sampling`` is off): then every ramp holds a sample and cycles stay
    detectable on the grid. A coarser grid is still exact data: λ is linear between the samples
    the simulator sees, only some corners of the nominal path fall between samples.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    if max_cycles < 1:
        raise ValueError(f"max_cycles must be >= 1, got {max_cycles}")
    if not (dt_mean > 0.0 and math.isfinite(dt_mean)):
        raise ValueError(f"dt_mean must be > 0, got {dt_mean}")
    if not 0.0 <= dt_jitter < 1.0:
        raise ValueError(f"dt_jitter must be in [0, 1), got {dt_jitter}")
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in PROTOCOL_KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {PROTOCOL_KINDS}, got {kinds}")
    r_lo, r_hi = _check_range("rate_range", rate_range)
    a_lo, a_hi = _check_range("amplitude_range", amplitude_range)
    dt_max = dt_mean * (1.0 + (dt_jitter if nonuniform_dt else 0.0))
    if check_sampling and a_lo / r_hi <= dt_max:
        logger.warning(
            "shortest ramp (amplitude %.3g / rate %.3g = %.3g s) is not longer than the largest "
            "time step %.3g s: fast paths will be under-sampled (corners cut, cycles merged)",
            a_lo, r_hi, a_lo / r_hi, dt_max,
        )

    rng = np.random.default_rng(seed)
    kind_idx = rng.permutation(np.resize(np.arange(len(kinds)), n))
    if nonuniform_dt and dt_jitter > 0.0:
        dt = dt_mean * rng.uniform(1.0 - dt_jitter, 1.0 + dt_jitter, size=(n, n_steps - 1))
    else:
        dt = np.full((n, n_steps - 1), float(dt_mean))
    t = np.concatenate([np.zeros((n, 1)), np.cumsum(dt, axis=1)], axis=1)
    rate = _log_uniform(rng, r_lo, r_hi, size=n)
    amplitude = rng.uniform(a_lo, a_hi, size=n)

    stretch = np.empty((n, n_steps))
    cycles = np.zeros(n, dtype=np.int64)
    kind = np.empty(n, dtype=object)
    for i in range(n):
        k = kinds[kind_idx[i]]
        kind[i] = k
        duration = float(t[i, -1])
        if k == "cyclic":
            times, levels, cycles[i] = _cyclic_path(rng, duration, rate[i], amplitude[i], max_cycles)
        elif k == "relaxation":
            times, levels, cycles[i] = _relaxation_path(rng, duration, rate[i], amplitude[i], max_cycles)
        else:
            times, levels, cycles[i], rate[i] = _piecewise_path(rng, duration, r_lo, r_hi, amplitude[i], max_cycles)
        if cycles[i] == 0:
            logger.debug("protocol %d (%s) truncated by a %.3g s window", i, k, duration)
        # np.interp holds the last level after the final breakpoint: the padding hold.
        stretch[i] = baseline + np.interp(t[i], times, levels)
    return Protocols(t=t, stretch=stretch, kind=kind.astype(str), rate=rate, amplitude=amplitude, cycles=cycles)


# ----------------------------------------------------------------------------------------------
# Batched implicit integrator
# ----------------------------------------------------------------------------------------------

_G3 = 0.43586652150845899941601945  # Alexander's gamma: root of x^3 - 3x^2 + 3x/2 - 1/6 in (1/6, 1/2)


@dataclass(frozen=True)
class _Scheme:
    """Stiffly accurate, L-stable SDIRK tableau plus its local error estimate.

    ``rows[i]`` holds ``a_i1 … a_ii`` (diagonal ``gamma``). The error estimate is
    ``h·Σ est[i]·f_i`` over ``f_0 = f(σ_n)`` and the stage slopes ``f_1 … f_s``; it is
    ``O(h^(est_order+1))``, hence the controller exponent ``1/(est_order+1)``.
    """

    gamma: float
    rows: tuple[tuple[float, ...], ...]
    est: tuple[float, ...]
    est_order: int


def _divided_difference_weights(nodes: Sequence[float]) -> tuple[float, ...]:
    """Weights ``w_i = 1/Π_{j≠i}(x_i − x_j)``: ``Σ w_i·g(x_i)`` is the top divided difference."""
    return tuple(1.0 / math.prod(xi - xj for j, xj in enumerate(nodes) if j != i) for i, xi in enumerate(nodes))


_C3 = (0.0, _G3, (1.0 + _G3) / 2.0, 1.0)  # f(σ_n) and the three stage abscissae of SDIRK3

_SCHEMES: dict[str, _Scheme] = {
    # Backward Euler; estimate h/2·(f(σ_{n+1}) − f(σ_n)) ≈ h²/2·σ''.
    "backward_euler": _Scheme(1.0, ((1.0,),), (-0.5, 0.5), 1),
    # Alexander (1977), 3 stages, order 3, c = (γ, (1+γ)/2, 1). Estimate: h/4 × the third divided
    # difference of the slopes at c = (0, c1, c2, c3) ≈ h⁴σ⁗/24, the order of the local error.
    # Including f(σ_n) matters: a stiff layer right after a rate jump (σ leaving a viscous
    # plateau) is over before the first stage, so only f(σ_n) can reveal it.
    "sdirk3": _Scheme(
        _G3,
        (
            (_G3,),
            ((1.0 - _G3) / 2.0, _G3),
            (-(6 * _G3**2 - 16 * _G3 + 1) / 4.0, (6 * _G3**2 - 20 * _G3 + 5) / 4.0, _G3),
        ),
        tuple(0.25 * w for w in _divided_difference_weights(_C3)),
        3,
    ),
}
METHODS: tuple[str, ...] = ("implicit", *_SCHEMES)
DEFAULT_RTOL = 1e-5

_NEWTON_RTOL = 1e-13
_NEWTON_MAXITER = 60
_MAX_ATTEMPTS = 10_000  # adaptive passes allowed per sampling interval (defensive bound)
_MIN_STEP_FRACTION = 1e-100  # steps this small relative to the interval are accepted


def _solve_stage(a: np.ndarray, k: np.ndarray, m: float) -> np.ndarray:
    """Solve ``u + k·u^m = a`` for ``u >= 0`` (``a >= 0``, ``k > 0``), elementwise.

    The left side is convex and increasing, so Newton started above the root decreases
    monotonically to it without overshoot. ``min(a, (a/k)^(1/m))`` bounds the root from above
    and is within a factor 2 of it, so a handful of iterations reach ``_NEWTON_RTOL``; no
    damping or bracketing is needed, for any ``m >= 1`` and any stiffness.
    """
    if m == 1.0:
        return a / (1.0 + k)
    u = np.minimum(a, (a / k) ** (1.0 / m))  # a/k may overflow to inf: min() discards it
    mk = m * k
    for _ in range(_NEWTON_MAXITER):
        um1 = u ** (m - 1.0)
        du = (u * (1.0 + k * um1) - a) / (1.0 + mk * um1)
        u = u - du
        if (np.abs(du) <= _NEWTON_RTOL * u).all():
            return u
    worst = float(np.max(np.abs(du) / np.maximum(u, np.finfo(float).tiny)))
    logger.warning("stage Newton did not reach rtol %.1e (worst relative step %.2e)", _NEWTON_RTOL, worst)
    return u


def _sdirk_step(
    sig: np.ndarray,
    h: np.ndarray,
    e_r: np.ndarray,
    params: MaterialParams,
    scheme: _Scheme,
    estimate: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One SDIRK step of size ``h`` (per trajectory) at constant ``E·dλ/dt = e_r``.

    Each stage solves ``Y + hγ·E·φ(Y) = c + hγ·e_r`` with φ the viscous strain rate; in units
    of σ0 this is :func:`_solve_stage` with ``k = hγE/ν0``. The stage slope is recovered as
    ``(Y − c)/(hγ)`` (no extra power). Returns the new stress and, if ``estimate``, the local
    error estimate filtered by ``1/(1 + hγ·|∂f/∂σ|)`` (Hairer–Wanner) at the least stiff of
    the start and stage values, so stiff, well-damped components do not force tiny steps.
    """
    E, nu0, s0, m = params.E, params.nu0, params.sigma0, params.m
    hg = scheme.gamma * h
    k = hg * (E / nu0)
    hg_er = hg * e_r
    slopes: list[np.ndarray] = []
    amin = np.abs(sig) if estimate else None
    y = sig
    for row in scheme.rows:
        c = sig.copy()
        for a_ij, f_j in zip(row[:-1], slopes):
            c += (h * a_ij) * f_j
        beta = (c + hg_er) / s0
        y = np.copysign(_solve_stage(np.abs(beta), k, m), beta) * s0
        slopes.append((y - c) / hg)
        if estimate:
            amin = np.minimum(amin, np.abs(y))
    if not estimate:
        return y, None
    w0 = scheme.est[0]
    err = np.zeros_like(sig) if w0 == 0.0 else w0 * (e_r - E * viscous_strain_rate(sig, params))
    for w, f_i in zip(scheme.est[1:], slopes):
        err += w * f_i
    stiff = hg * E * m * (amin / s0) ** (m - 1.0) / nu0
    return y, np.abs(h * err) / (1.0 + stiff)


def _as_batch(protocols_or_arrays: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    if isinstance(protocols_or_arrays, Protocols) or hasattr(protocols_or_arrays, "stretch"):
        t, stretch = protocols_or_arrays.t, protocols_or_arrays.stretch
    else:
        t, stretch = protocols_or_arrays
    t = np.asarray(t, dtype=np.float64)
    stretch = np.asarray(stretch, dtype=np.float64)
    squeeze = stretch.ndim == 1
    stretch = np.atleast_2d(stretch)
    if stretch.ndim != 2:
        raise ValueError(f"stretch must have shape (N, T) or (T,), got {stretch.shape}")
    t = np.broadcast_to(np.atleast_2d(t), stretch.shape) if t.ndim == 1 else t
    if t.shape != stretch.shape:
        raise ValueError(f"t {t.shape} and stretch {stretch.shape} must have the same shape")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(stretch))):
        raise ValueError("t and stretch must be finite")
    if t.shape[1] > 1 and not np.all(np.diff(t, axis=1) > 0.0):
        raise ValueError("t must be strictly increasing along each trajectory")
    return t, stretch, squeeze


def simulate(
    protocols: Protocols | tuple[np.ndarray, np.ndarray],
    params: MaterialParams,
    *,
    method: str = "implicit",
    substeps: int | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = 0.0,
    initial_stress: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Stress ``σ (N, T)`` float64 for all trajectories at once (no Python loop per trajectory).

    ``protocols`` is a :class:`Protocols` or ``(t, stretch)`` of shape ``(N, T)`` (``t`` may be
    ``(T,)``; a 1-D ``stretch`` gives a 1-D result). λ is linear between samples, so dλ/dt is
    constant in each sampling interval and the ODE is smooth there; the integrator never steps
    across a sample. ``method="implicit"`` is Alexander's 3-stage SDIRK (order 3, L-stable,
    stiffly accurate; alias ``"sdirk3"``); ``"backward_euler"`` is the order-1 fallback.

    ``substeps=None`` (default) adapts the step per trajectory inside each interval from an
    embedded error estimate: a step is accepted when its local error is below
    ``atol + rtol·max|σ|`` (max over the trajectory so far and the step's end). Easy
    trajectories take one step per sample; stiff knees and fast initial layers are refined
    only where they occur. Against ``solve_ivp`` (Radau, rtol 1e-10) on random protocols with
    m = 1.5 … 50, including stiff cases and rates beyond the default range, the worst error
    relative to ``max|σ|`` was 0.3–0.8·rtol for rtol 1e-4 and 1e-5 and up to 1.7·rtol at 1e-6
    (default ``rtol = 1e-5``: ≤ 8e-6 seen; the tests assert < 1e-4). ``substeps=k`` instead takes ``k``
    equal steps per interval with no error control: fixed cost, third order, but accurate only
    when the grid resolves the elastic knees, ``Δt ≪ max|σ|/(E·|dλ/dt|)``.
    """
    name = "sdirk3" if method == "implicit" else method
    if name not in _SCHEMES:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if substeps is not None and (int(substeps) != substeps or substeps < 1):
        raise ValueError(f"substeps must be a positive integer or None, got {substeps}")
    if not (rtol > 0.0 and atol >= 0.0):
        raise ValueError(f"need rtol > 0 and atol >= 0, got rtol={rtol}, atol={atol}")
    scheme = _SCHEMES[name]
    t, stretch, squeeze = _as_batch(protocols)
    n, n_t = stretch.shape
    sigma = np.empty((n, n_t), dtype=np.float64)
    sig = np.broadcast_to(np.asarray(initial_stress, dtype=np.float64), (n,)).copy()
    sigma[:, 0] = sig
    dt_all = np.diff(t, axis=1)
    e_r_all = params.E * np.diff(stretch, axis=1) / dt_all

    # Overflow of a/k (tiny steps) and 0^(−p) in the step controller are expected and harmless.
    with np.errstate(divide="ignore", over="ignore"):
        if substeps is not None:
            for j in range(n_t - 1):
                h = dt_all[:, j] / substeps
                for _ in range(int(substeps)):
                    sig, _ = _sdirk_step(sig, h, e_r_all[:, j], params, scheme, estimate=False)
                sigma[:, j + 1] = sig
        elif n_t > 1:
            _integrate_adaptive(sig, dt_all, e_r_all, params, scheme, rtol, atol, sigma)
    return sigma[0] if squeeze else sigma


def _integrate_adaptive(
    sig: np.ndarray,
    dt_all: np.ndarray,
    e_r_all: np.ndarray,
    params: MaterialParams,
    scheme: _Scheme,
    rtol: float,
    atol: float,
    sigma: np.ndarray,
) -> None:
    """Error-controlled stepping into ``sigma[:, 1:]``; each trajectory walks its own intervals.

    No lockstep: every pass takes one attempted step for every unfinished trajectory, each in its current
    sampling interval, so the number of passes is the largest per-trajectory step count, not
    the sum over intervals of the slowest trajectory there. Steps never cross a sample.
    """
    n, n_int = dt_all.shape
    expo = -1.0 / (scheme.est_order + 1)
    h_prop = dt_all[:, 0].copy()
    peak = np.abs(sig)  # running max|σ|: the scale errors are measured against
    j = np.zeros(n, dtype=np.int64)  # current interval of each trajectory
    tau = np.zeros(n)  # time already covered inside it
    idx = np.arange(n)
    max_passes = _MAX_ATTEMPTS * n_int
    for _ in range(max_passes):
        if idx.size == 0:
            break
        jj = j[idx]
        dt = dt_all[idx, jj]
        rem = dt - tau[idx]
        hp = h_prop[idx]
        # Take the rest of the interval if the proposal covers it; split it evenly if the
        # proposal covers more than half, to avoid a sliver step at the end.
        h = np.where(hp >= rem, rem, np.where(hp > 0.5 * rem, 0.5 * rem, hp))
        s_a = sig[idx]
        y, est = _sdirk_step(s_a, h, e_r_all[idx, jj], params, scheme, estimate=True)
        tol = atol + rtol * np.maximum(peak[idx], np.abs(y))
        ratio = np.where(est <= tol, est / np.where(tol > 0.0, tol, 1.0), np.inf)
        fac = np.clip(0.9 * ratio**expo, 0.1, 5.0)
        # A step that has shrunk to nothing relative to the interval is accepted rather than
        # stalling (needs an initial layer ~1e100 times faster than the sampling).
        ok = (ratio <= 1.0) | (h <= _MIN_STEP_FRACTION * dt)
        new_h = h * fac
        # A step shortened only to land on the sample keeps the larger earlier proposal.
        h_prop[idx] = np.where(ok & (h < hp), np.maximum(new_h, hp), new_h)
        acc = idx[ok]
        sig[acc] = y[ok]
        peak[acc] = np.maximum(peak[acc], np.abs(y[ok]))
        tau[acc] += h[ok]
        fin = idx[ok & (h >= rem)]
        if fin.size:
            sigma[fin, j[fin] + 1] = sig[fin]
            j[fin] += 1
            tau[fin] = 0.0
            idx = idx[j[idx] < n_int]
    else:  # pragma: no cover - defensive
        raise RuntimeError(f"adaptive integration did not finish in {max_passes} passes")


# ----------------------------------------------------------------------------------------------
# solve_ivp reference (one trajectory at a time)
# ----------------------------------------------------------------------------------------------


def simulate_solve_ivp(
    protocols: Protocols | tuple[np.ndarray, np.ndarray],
    params: MaterialParams,
    *,
    method: str = "Radau",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    per_interval: bool = True,
    initial_stress: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Reference stress from ``scipy.integrate.solve_ivp``, a Python loop over trajectories.

    ``per_interval=True`` restarts the solver at every sample, where dλ/dt jumps, so each call
    integrates a smooth ODE (the accurate reference). ``per_interval=False`` makes one call per
    trajectory with a piecewise-constant rate and ``t_eval`` at the samples, leaving the
    kinks to step-size control (fewer calls, less accurate); ``max_step`` is the smallest
    sampling interval, otherwise the solver can step over a short ramp without seeing it.
    The analytic Jacobian is passed.
    """
    from scipy.integrate import solve_ivp

    t, stretch, squeeze = _as_batch(protocols)
    n, n_t = stretch.shape
    sig0 = np.broadcast_to(np.asarray(initial_stress, dtype=np.float64), (n,))
    out = np.empty((n, n_t), dtype=np.float64)
    E, nu0, s0, m = params.E, params.nu0, params.sigma0, params.m

    def viscous(y: float) -> float:
        s = y / s0
        return (s0 / nu0) * s * abs(s) ** (m - 1.0)

    def jac_value(y: float) -> float:
        return -E * m * abs(y / s0) ** (m - 1.0) / nu0

    # Radau's Newton iterations may overflow on a trial step; it rejects the step and retries.
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(n):
            ti, li = t[i], stretch[i]
            rates = np.diff(li) / np.diff(ti)
            out[i, 0] = sig0[i]
            if n_t == 1:
                continue
            if per_interval:
                y = float(sig0[i])
                for j in range(n_t - 1):
                    r = float(rates[j])
                    sol = solve_ivp(
                        lambda _t, z, r=r: [E * (r - viscous(z[0]))],
                        (ti[j], ti[j + 1]),
                        [y],
                        method=method,
                        rtol=rtol,
                        atol=atol,
                        jac=lambda _t, z: [[jac_value(z[0])]],
                    )
                    if not sol.success:
                        raise RuntimeError(f"solve_ivp failed on trajectory {i}, interval {j}: {sol.message}")
                    y = float(sol.y[0, -1])
                    out[i, j + 1] = y
            else:

                def rhs(tt: float, z: np.ndarray, ti: np.ndarray = ti, rates: np.ndarray = rates) -> list[float]:
                    j = min(max(int(np.searchsorted(ti, tt, side="right")) - 1, 0), len(rates) - 1)
                    return [E * (rates[j] - viscous(z[0]))]

                sol = solve_ivp(
                    rhs,
                    (ti[0], ti[-1]),
                    [float(sig0[i])],
                    method=method,
                    rtol=rtol,
                    atol=atol,
                    t_eval=ti,
                    max_step=float(np.min(np.diff(ti))),
                    jac=lambda _t, z: [[jac_value(z[0])]],
                )
                if not sol.success:
                    raise RuntimeError(f"solve_ivp failed on trajectory {i}: {sol.message}")
                out[i] = sol.y[0]
    return out[0] if squeeze else out


# ----------------------------------------------------------------------------------------------
# Datasets and energies
# ----------------------------------------------------------------------------------------------


def build_sequence_dataset(t: np.ndarray, stretch: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sequence-model arrays ``X (N, T, 3)`` and ``y (N, T, 1)``, float32.

    ``X[:, j] = (λ_j, λ̇_j, Δt_j)`` with ``Δt_j = t_j − t_{j−1}`` and ``λ̇_j = (λ_j − λ_{j−1})/Δt_j``,
    the rate of the segment *ending* at ``t_j`` — exactly the rate that drove σ from ``t_{j−1}``
    to ``t_j``, so the features are causal. At ``j = 0`` no segment has ended yet: ``λ̇_0 = 0``
    and ``Δt_0 = 0`` (the state there is the initial condition, σ = 0 for simulated data).
    ``y[:, j, 0] = σ_j``. ``t`` may be ``(T,)`` (shared grid).
    """
    stretch = np.atleast_2d(np.asarray(stretch, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)
    t = np.broadcast_to(np.atleast_2d(t), stretch.shape) if t.ndim == 1 else np.atleast_2d(t)
    if not (t.shape == stretch.shape == sigma.shape):
        raise ValueError(f"t {t.shape}, stretch {stretch.shape} and sigma {sigma.shape} must match")
    n, n_t = stretch.shape
    dt = np.zeros((n, n_t))
    rate = np.zeros((n, n_t))
    if n_t > 1:
        dt[:, 1:] = np.diff(t, axis=1)
        if not np.all(dt[:, 1:] > 0.0):
            raise ValueError("t must be strictly increasing along each trajectory")
        rate[:, 1:] = np.diff(stretch, axis=1) / dt[:, 1:]
    x = np.stack([stretch, rate, dt], axis=-1).astype(np.float32)
    y = sigma[..., None].astype(np.float32)
    return x, y


#: Per-step input features a sequence model can be given, computed from ``X = (λ, λ̇, Δt)``.
SEQUENCE_FEATURES: tuple[str, ...] = ("stretch", "stretch_rate", "log_rate", "dstretch", "dt")


def sequence_features(x: np.ndarray, names: Sequence[str], *, rate_scale: float | None = None) -> np.ndarray:
    """Model inputs ``(N, T, len(names))`` float32 from :func:`build_sequence_dataset`'s ``X``.

    ``stretch`` λ_j; ``stretch_rate`` λ̇_j; ``dt`` Δt_j; ``dstretch`` the increment
    ``Δλ_j = λ̇_j·Δt_j``; ``log_rate`` ``sign(λ̇)·log(1 + |λ̇|/rate_scale)``, which compresses
    rates so that 3× faster loading moves the feature by about ``log 3`` instead of 3×. Leaving
    the rate out (``stretch`` and ``dt`` only) is also a choice: σ depends on the rate only
    through how fast λ changes between samples, which a recurrent model sees from λ itself.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"x must have shape (N, T, 3) = (λ, λ̇, Δt), got {x.shape}")
    unknown = [n for n in names if n not in SEQUENCE_FEATURES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"features must be distinct names from {SEQUENCE_FEATURES}, got {list(names)}")
    lam, rate, dt = (x[..., i].astype(np.float64) for i in range(3))
    cols = {"stretch": lambda: lam, "stretch_rate": lambda: rate, "dt": lambda: dt, "dstretch": lambda: rate * dt}
    if "log_rate" in names:
        if rate_scale is None or not rate_scale > 0:
            raise ValueError(f"log_rate needs rate_scale > 0, got {rate_scale}")
        cols["log_rate"] = lambda: np.sign(rate) * np.log1p(np.abs(rate) / rate_scale)
    return np.stack([cols[n]() for n in names], axis=-1).astype(np.float32)


def dissipated_energy(
    stretch: np.ndarray, sigma: np.ndarray, *, elastic_modulus: float | None = None
) -> np.ndarray:
    """Work ``∫σ dλ`` over each whole trajectory (trapezoid), shape ``(N,)``.

    For a closed path (λ and σ back where they started) this is the energy dissipated, the loop
    area ∮σ dλ. Otherwise it also contains the change of stored elastic energy
    ``(σ_end² − σ_start²)/(2E)``; pass ``elastic_modulus=E`` to subtract it and get the exact
    dissipation of the Maxwell element (up to trapezoid error).
    """
    stretch = np.atleast_2d(np.asarray(stretch, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if stretch.shape != sigma.shape:
        raise ValueError(f"stretch {stretch.shape} and sigma {sigma.shape} must match")
    work = np.sum(0.5 * (sigma[:, 1:] + sigma[:, :-1]) * np.diff(stretch, axis=1), axis=1)
    if elastic_modulus is not None:
        if elastic_modulus <= 0:
            raise ValueError(f"elastic_modulus must be > 0, got {elastic_modulus}")
        work = work - (sigma[:, -1] ** 2 - sigma[:, 0] ** 2) / (2.0 * elastic_modulus)
    return work
