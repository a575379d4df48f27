"""Hysteresis of a stress–stretch path: where its loading–unloading cycles start and the energy
each loop dissipates (the area ``∮σ dλ``). An analysis of any (λ, σ) curve -- simulated or
predicted -- so it lives with the evaluation code, not with the simulator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cycle_boundaries(stretch: np.ndarray, *, tol: float = 1e-9) -> list[np.ndarray]:
    """Sample indices of the local minima of λ that delimit loading–unloading cycles.

    Steps with ``|Δλ| <= tol·max(1, ptp(λ))`` count as holds and are skipped. A boundary is the
    end of a descent followed by an ascent, plus the start if the path first ascends and the
    end of the final descent if it never ascends again. For a triangle wave from its minimum
    this gives ``cycles + 1`` boundaries; a monotone ramp-and-hold gives one (no cycle).
    """
    stretch = np.atleast_2d(np.asarray(stretch, dtype=np.float64))
    out: list[np.ndarray] = []
    for lam in stretch:
        d = np.diff(lam)
        thr = tol * max(1.0, float(np.ptp(lam)))
        nz = np.flatnonzero(np.abs(d) > thr)
        if nz.size == 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        sgn = np.sign(d[nz])
        bounds: list[int] = []
        if sgn[0] > 0:
            bounds.append(0)
        turn = np.flatnonzero((sgn[:-1] < 0) & (sgn[1:] > 0))
        bounds.extend((nz[turn] + 1).tolist())
        if sgn[-1] < 0:
            bounds.append(int(nz[-1]) + 1)
        out.append(np.asarray(bounds, dtype=np.int64))
    return out


def hysteresis_energy(
    stretch: np.ndarray, sigma: np.ndarray, boundaries: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Loop area ``∮σ dλ`` of each cycle, one array per trajectory.

    A cycle runs between consecutive :func:`cycle_boundaries` (successive minima of λ) unless
    ``boundaries`` (one index array per trajectory) is given. The area is the trapezoid sum
    along the cycle plus the closing chord back to its first sample, i.e. the shoelace area of
    the closed polygon in the (λ, σ) plane: the grid rarely samples the exact bottom, and
    closing the loop keeps a purely elastic response at zero area instead of ``E·Δλ_gap²/2``.
    Positive areas mean dissipation (loading stress above unloading stress). Paths without a
    complete cycle get an empty array.
    """
    stretch = np.atleast_2d(np.asarray(stretch, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if stretch.shape != sigma.shape:
        raise ValueError(f"stretch {stretch.shape} and sigma {sigma.shape} must match")
    if boundaries is None:
        boundaries = cycle_boundaries(stretch)
    if len(boundaries) != stretch.shape[0]:
        raise ValueError(f"need one boundary array per trajectory, got {len(boundaries)} for {stretch.shape[0]}")
    seg = 0.5 * (sigma[:, 1:] + sigma[:, :-1]) * np.diff(stretch, axis=1)
    cum = np.concatenate([np.zeros((stretch.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    out = []
    for c, lam, sig, b in zip(cum, stretch, sigma, boundaries):
        b = np.asarray(b, dtype=np.int64)
        start, end = b[:-1], b[1:]
        closing = 0.5 * (sig[end] + sig[start]) * (lam[start] - lam[end])
        out.append(c[end] - c[start] + closing)
    return out
