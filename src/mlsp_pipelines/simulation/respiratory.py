"""Seeded synthesiser of chest-auscultation recordings with ICBHI-style cycle annotations.

Real respiratory data (ICBHI 2017) is small, licence-bound and badly imbalanced, so the pipelines
are developed and tested against synthetic recordings that share its *format* (same filenames,
``.txt`` cycle annotations and ``patient_diagnosis.csv``) and its main *difficulties*:

* breath noise shaped by an inspiration/expiration envelope and band-limited like a stethoscope
  (most energy 100-1000 Hz, steep roll-off above ~1 kHz), with heart sounds, mains hum, sensor
  noise, stethoscope friction and a random recording gain;
* wheezes: sustained tonal components (100-1000 Hz fundamental, >= 100 ms, 1-3 harmonics, pitch
  glides), mostly expiratory, at a random and often low SNR;
* crackles: 2-15 ms damped transients in bursts, mostly inspiratory, with random amplitude;
* per-patient heterogeneity (breathing rate, spectra, event rates) and ICBHI-like class
  prevalence, so a patient-level split is harder than a random one.

Every recording is generated from its own :class:`numpy.random.SeedSequence` keyed by
``(seed, patient, recording)``, so adding patients or generating in another order never changes
the recordings already produced. :func:`write_icbhi_layout` writes the result to disk so the
default pipeline reads synthetic and real data through the same loader
(:func:`mlsp_pipelines.ingestion.icbhi.scan_icbhi`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve
from scipy.signal.windows import tukey

from mlsp_pipelines.ingestion.audio import write_wav_atomic
from mlsp_pipelines.ingestion.icbhi import LABELS

logger = logging.getLogger(__name__)

#: Per-cycle class prevalence close to ICBHI 2017 (about 52/25/13/10 %).
DEFAULT_PREVALENCE: dict[str, float] = {"normal": 0.52, "crackle": 0.25, "wheeze": 0.13, "both": 0.10}
#: ICBHI chest locations (trachea, anterior/posterior/lateral left/right).
LOCATIONS: tuple[str, ...] = ("Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr")
DEVICE = "Synth"
ANNOTATION_COLUMNS: tuple[str, ...] = ("start", "end", "crackles", "wheezes")

_MIN_DURATION_S = 8.0  # guarantees at least one complete annotated cycle per recording
_MIN_SR = 2000  # wheeze fundamentals reach 1 kHz
_MAX_SR = 192_000
_FIRST_PATIENT_ID = 101  # ICBHI patient ids start at 101
_DIRICHLET_CONCENTRATION = 2.0  # low => patients differ a lot (some mostly abnormal)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Patient:
    """Per-patient traits: keeps a patient's recordings alike and patients unlike each other."""

    patient_id: int
    class_probs: np.ndarray  # (4,) per-cycle probabilities over LABELS
    diagnosis: str
    period_s: float  # mean breathing-cycle length
    insp_frac: float  # inspiration share of the cycle
    exp_level: float  # expiration loudness relative to inspiration
    breath_fc: float  # low-pass corner of breath noise (Hz)
    breath_order: int  # roll-off order above the corner
    heart_bpm: float
    heart_level: float  # heart-sound peak relative to breath RMS
    wheeze_snr_db: float  # mean wheeze SNR relative to breath noise
    wheeze_f0: float  # typical wheeze fundamental (Hz)
    crackle_rate: float  # mean extra crackles per crackle cycle
    crackle_fine: float  # probability that a crackle is fine (short, high) rather than coarse
    crackle_ratio: float  # median crackle peak relative to local breath RMS
    friction_rate: float  # stethoscope-friction bursts per 10 s


def _validate_prevalence(prevalence: Mapping[str, float] | None) -> np.ndarray:
    """Turn a ``{label: weight}`` mapping into a normalised probability vector over LABELS."""
    if prevalence is None:
        prevalence = DEFAULT_PREVALENCE
    if not isinstance(prevalence, Mapping):
        raise ValueError(f"prevalence must be a dict mapping {LABELS} to weights, got {type(prevalence).__name__}")
    unknown = set(prevalence) - set(LABELS)
    if unknown:
        raise ValueError(f"prevalence has unknown labels {sorted(map(str, unknown))}; allowed: {list(LABELS)}")
    p = np.array([float(prevalence.get(k, 0.0)) for k in LABELS])
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"prevalence weights must be finite, >= 0 and not all zero, got {dict(prevalence)}")
    return p / p.sum()


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return int(value)


def _check_float(name: str, value: object, lo: float) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < lo:
        raise ValueError(f"{name} must be finite and >= {lo}, got {value!r}")
    return v


def _diagnosis(rng: np.random.Generator, probs: np.ndarray) -> str:
    """Map a patient's cycle-class mix to a plausible ICBHI diagnosis (labels only, not used by models)."""
    if probs[0] >= 0.85:
        return str(rng.choice(["Healthy", "Healthy", "URTI"]))
    crackly = probs[1] + probs[3]
    wheezy = probs[2] + probs[3]
    if crackly >= wheezy:
        return str(rng.choice(["COPD", "Pneumonia", "Bronchiectasis", "LRTI"], p=[0.55, 0.2, 0.15, 0.1]))
    return str(rng.choice(["Asthma", "COPD", "Bronchiolitis"], p=[0.45, 0.4, 0.15]))


def _draw_patient(seed: int, patient_id: int, base_probs: np.ndarray) -> _Patient:
    """Draw one patient's traits from a stream keyed by (seed, patient) only."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(patient_id,)))
    probs = np.zeros(len(LABELS))
    pos = base_probs > 0
    if pos.sum() == 1:
        probs[pos] = 1.0
    else:
        # Dirichlet around the population prevalence: the mean is exact, patients vary widely.
        probs[pos] = rng.dirichlet(_DIRICHLET_CONCENTRATION * base_probs[pos] + 1e-3)
    return _Patient(
        patient_id=patient_id,
        class_probs=probs,
        diagnosis=_diagnosis(rng, probs),
        period_s=float(rng.uniform(2.3, 4.5)),
        insp_frac=float(rng.uniform(0.3, 0.45)),
        exp_level=float(rng.uniform(0.35, 0.75)),
        breath_fc=float(rng.uniform(250.0, 450.0)),
        breath_order=int(rng.integers(3, 5)),
        heart_bpm=float(rng.uniform(60.0, 100.0)),
        heart_level=float(np.exp(rng.normal(np.log(1.5), 0.5))),
        wheeze_snr_db=float(rng.uniform(-3.0, 9.0)),
        wheeze_f0=float(np.exp(rng.uniform(np.log(150.0), np.log(700.0)))),
        crackle_rate=float(rng.uniform(6.0, 20.0)),
        crackle_fine=float(rng.uniform(0.1, 0.9)),
        crackle_ratio=float(rng.uniform(3.0, 9.0)),
        friction_rate=float(rng.uniform(0.0, 0.6)),
    )


# --------------------------------------------------------------------------------------------
# Signal components (each vectorised over samples; loops only over cycles/events)
# --------------------------------------------------------------------------------------------
def _shaped_noise(rng: np.random.Generator, n: int, sr: int, fc: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-RMS breath noises (inspiratory: brighter; expiratory: darker) shaped in the FFT domain.

    A high-pass at ~80 Hz and an order-``order`` low-pass at ``fc`` give chest-like spectra:
    most energy 100-1000 Hz and a steep roll-off above 1-2 kHz.
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    hp = 1.0 / np.sqrt(1.0 + (80.0 / np.maximum(f, 1e-3)) ** 4)
    out = []
    for corner in (fc * 1.4, fc):  # inspiration is brighter than expiration
        lp = 1.0 / np.sqrt(1.0 + (f / corner) ** (2 * order))
        x = np.fft.irfft(spec * hp * lp, n)
        out.append(x / (np.sqrt(np.mean(x**2)) + 1e-12))
    return out[0], out[1]


def _breath(
    rng: np.random.Generator, pat: _Patient, bounds: np.ndarray, insp: np.ndarray, amp: np.ndarray, n: int, sr: int
) -> tuple[np.ndarray, np.ndarray]:
    """Breath noise under an inspiration/expiration envelope; returns (signal, local RMS envelope)."""
    t = np.arange(n) / sr
    k = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(bounds) - 2)
    phase = (t - bounds[k]) / (bounds[k + 1] - bounds[k])
    fi = insp[k]
    fe = (1.0 - fi) * 0.85  # expiration, then a short pause
    in_mask = phase < fi
    ex_mask = (phase >= fi) & (phase < fi + fe)
    env_in = np.where(in_mask, np.sin(np.pi * np.clip(phase / fi, 0, 1)) ** 1.5, 0.0) * amp[k]
    env_ex = np.where(ex_mask, np.sin(np.pi * np.clip((phase - fi) / fe, 0, 1)) ** 1.5, 0.0) * amp[k] * pat.exp_level
    floor = 0.04
    n_in, n_ex = _shaped_noise(rng, n, sr, pat.breath_fc, pat.breath_order)
    y = env_in * n_in + env_ex * n_ex + floor * n_ex
    return y, env_in + env_ex + floor


def _wheeze(rng: np.random.Generator, pat: _Patient, m: int, sr: int) -> np.ndarray:
    """One unit-RMS wheeze: tonal fundamental with a glide and vibrato plus 1-3 decaying harmonics."""
    tt = np.arange(m) / sr
    dur = m / sr
    # cap so that the glide and vibrato stay below Nyquist at low sample rates
    f0 = float(np.clip(pat.wheeze_f0 * np.exp(rng.normal(0.0, 0.15)), 100.0, min(1000.0, 0.3 * sr)))
    glide = rng.uniform(-0.3, 0.3)
    f_inst = f0 * (1.0 + glide * tt / dur) * (1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 8) * tt))
    phi = 2 * np.pi * np.cumsum(f_inst) / sr + rng.uniform(0, 2 * np.pi)
    n_harm = int(rng.integers(1, 4))
    ratio = rng.uniform(0.15, 0.6)
    h = np.arange(1, n_harm + 2)
    keep = h * f_inst.max() < 0.45 * sr
    h = h[keep]
    x = (ratio ** (h - 1))[:, None] * np.sin(h[:, None] * phi[None, :])
    x = x.sum(axis=0) * tukey(m, 0.4) * (1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(2, 6) * tt))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _crackle_bank(rng: np.random.Generator, pat: _Patient, count: int, sr: int) -> np.ndarray:
    """``count`` peak-normalised crackle waveforms (rows): damped sinusoids 2-15 ms long.

    Fine crackles are short (2-6 ms) and high-pitched, coarse ones long (6-15 ms) and low.
    """
    length = int(math.ceil(0.03 * sr))
    fine = rng.random(count) < pat.crackle_fine
    dur = np.where(fine, rng.uniform(0.002, 0.006, count), rng.uniform(0.006, 0.015, count))
    freq = np.minimum(rng.uniform(2.0, 4.0, count) / dur, 0.4 * sr)
    tau = dur / 4.0
    t = np.arange(length)[None, :] / sr
    # IDW-like: a sharp initial deflection followed by a damped oscillation.
    w = np.sin(2 * np.pi * freq[:, None] * t) * np.exp(-t / tau[:, None])
    w /= np.abs(w).max(axis=1, keepdims=True) + 1e-12
    return w * rng.choice([-1.0, 1.0], size=count)[:, None]


def _heart(rng: np.random.Generator, pat: _Patient, n: int, sr: int) -> np.ndarray:
    """S1/S2 heart sounds: low-frequency Gaussian-windowed thumps at the patient's heart rate."""
    period = 60.0 / pat.heart_bpm
    n_beats = int(n / sr / period) + 3
    beats = rng.uniform(-period, 0) + np.cumsum(period * (1.0 + 0.04 * rng.standard_normal(n_beats)))
    s2 = beats + rng.uniform(0.28, 0.34)
    half = int(0.08 * sr)
    tt = np.arange(-half, half + 1) / sr
    out = np.zeros(n)
    for times, f, sigma, rel in ((beats, rng.uniform(35, 65), 0.022, 1.0), (s2, rng.uniform(50, 90), 0.016, 0.7)):
        imp = np.zeros(n + 2 * half + 1)
        idx = np.round(times * sr).astype(int) + half
        ok = (idx >= 0) & (idx < imp.size)
        np.add.at(imp, idx[ok], rel * rng.uniform(0.7, 1.3, ok.sum()))
        tmpl = np.exp(-0.5 * (tt / sigma) ** 2) * np.sin(2 * np.pi * f * tt)
        out += fftconvolve(imp, tmpl, mode="full")[2 * half : 2 * half + n]
    peak = np.abs(out).max()
    return out / peak if peak > 0 else out


def _friction(rng: np.random.Generator, pat: _Patient, n: int, sr: int) -> np.ndarray:
    """Occasional broadband stethoscope-friction bursts (confusable with crackles)."""
    out = np.zeros(n)
    n_bursts = rng.poisson(pat.friction_rate * n / sr / 10.0)
    for _ in range(n_bursts):
        m = int(rng.uniform(0.05, 0.3) * sr)
        i0 = int(rng.integers(0, max(1, n - m)))
        m = min(m, n - i0)
        if m < 8:
            continue
        x = np.diff(rng.standard_normal(m + 1))  # high-tilted noise
        x *= np.hanning(m) * (0.5 + rng.random(m) ** 4)  # rough, scratchy envelope
        out[i0 : i0 + m] += 10 ** (rng.uniform(-12, 0) / 20) * x / (np.sqrt(np.mean(x**2)) + 1e-12)
    return out


def _render(
    rng: np.random.Generator,
    pat: _Patient,
    bounds: np.ndarray,
    codes: np.ndarray,
    n: int,
    sr: int,
) -> np.ndarray:
    """Render one recording of ``n`` samples.

    ``bounds`` are cycle edges in seconds (may extend past the clip), ``codes`` the class of each
    cycle (index into LABELS; -1 = unannotated, rendered as normal breathing).
    """
    n_cyc = len(bounds) - 1
    insp = np.clip(pat.insp_frac + rng.normal(0, 0.03, n_cyc), 0.25, 0.5)
    amp = np.exp(rng.normal(0, 0.15, n_cyc))
    breath, env = _breath(rng, pat, bounds, insp, amp, n, sr)
    breath_rms = float(np.sqrt(np.mean(breath**2)))
    y = breath.copy()

    # --- wheezes: mostly expiratory, 150-600 ms, at a patient-dependent (often low) SNR
    for c in np.flatnonzero((codes == 2) | (codes == 3)):
        c0, c1 = bounds[c], bounds[c + 1]
        cl = c1 - c0
        for _ in range(1 + int(rng.random() < 0.5)):
            expiratory = rng.random() < 0.75
            p0, p1 = (c0 + insp[c] * cl, c0 + 0.95 * cl) if expiratory else (c0 + 0.05 * cl, c0 + insp[c] * cl)
            dur = min(rng.uniform(0.15, 0.6), max(0.1, p1 - p0))
            s = rng.uniform(p0, max(p0, p1 - dur))
            i0, i1 = max(0, int(s * sr)), min(n, int((s + dur) * sr))
            if i1 - i0 < int(0.1 * sr):
                continue
            local = np.sqrt(np.mean(breath[i0:i1] ** 2)) + 1e-3 * breath_rms
            snr = 10 ** ((pat.wheeze_snr_db + rng.normal(0, 4.0)) / 20)
            y[i0:i1] += snr * local * _wheeze(rng, pat, i1 - i0, sr)

    # --- crackles: bursts of damped transients, mostly inspiratory; rendered in one batch
    pos: list[np.ndarray] = []
    for c in np.flatnonzero((codes == 1) | (codes == 3)):
        c0, cl = bounds[c], bounds[c + 1] - bounds[c]
        k = 2 + rng.poisson(pat.crackle_rate)
        insp_ev = rng.random(k) < 0.8
        # clustered in a burst: a centre per phase, crackles spread around it
        centre = rng.beta(2.5, 1.5)
        ph_in = np.clip(centre + 0.15 * rng.standard_normal(k), 0.02, 0.98) * insp[c]
        ph_ex = insp[c] + rng.uniform(0.05, 0.8, k) * (1 - insp[c])
        pos.append(c0 + np.where(insp_ev, ph_in, ph_ex) * cl)
    if pos:
        t_cr = np.concatenate(pos)
        idx = np.round(t_cr * sr).astype(int)
        idx = idx[(idx >= 0) & (idx < n)]
        if idx.size:
            bank = _crackle_bank(rng, pat, idx.size, sr)
            a = pat.crackle_ratio * np.clip(np.exp(rng.normal(0, 0.5, idx.size)), 0.3, 2.5) * env[idx]
            cols = idx[:, None] + np.arange(bank.shape[1])[None, :]
            ok = cols < n
            np.add.at(y, cols[ok], (bank * a[:, None])[ok])

    # --- heart sounds, recording noise, friction, gain
    y += pat.heart_level * rng.uniform(0.5, 1.5) * breath_rms * _heart(rng, pat, n, sr)
    t = np.arange(n) / sr
    if rng.random() < 0.4:
        mains = 50.0 if rng.random() < 0.5 else 60.0
        hum_amp = 10 ** (rng.uniform(-30, -12) / 20) * breath_rms
        y += hum_amp * sum((0.5**h) * np.sin(2 * np.pi * mains * (h + 1) * t + rng.uniform(0, 6.3)) for h in range(3))
    y += 10 ** (rng.uniform(-45, -35) / 20) * breath_rms * rng.standard_normal(n)
    y += breath_rms * _friction(rng, pat, n, sr)
    # Random gain relative to the breath level (not the peak, which would tie the level to the
    # events), then scale down only if a loud event would clip the 16-bit WAV.
    gain = 10 ** (rng.uniform(-38, -26) / 20) / (breath_rms + 1e-12)
    peak = float(np.abs(y).max()) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (y * gain).astype(np.float32)


def _cycle_bounds(rng: np.random.Generator, pat: _Patient, duration_s: float) -> np.ndarray:
    """Cycle edges (ms-rounded, seconds) covering [0, duration]: an unannotated partial cycle may
    precede the first edge at ``t0`` and the last cycle may run past the end."""
    t0 = round(float(rng.uniform(0.0, 0.5)), 3)
    n_max = int(duration_s / 1.2) + 3
    lengths = np.clip(pat.period_s * np.exp(rng.normal(0, 0.15, n_max)), 1.2, 6.0)
    edges = np.round(t0 + np.concatenate([[0.0], np.cumsum(lengths)]), 3)
    edges = edges[: int(np.searchsorted(edges, duration_s, side="right")) + 1]
    first = round(t0 - float(lengths[0]), 3)  # a previous (unannotated) cycle leading into the clip
    return np.concatenate([[first], edges])


def _recording_name(patient_id: int, r: int, perm: np.ndarray, recordings_per_patient: int) -> str:
    loc = LOCATIONS[int(perm[r % len(LOCATIONS)])]
    mode = "mc" if recordings_per_patient > 1 else "sc"
    return f"{patient_id}_{r // len(LOCATIONS) + 1}b1_{loc}_{mode}_{DEVICE}.wav"


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def synthesise_cycle(label: str, *, sr: int, seed: int, cycle_s: float = 3.0) -> np.ndarray:
    """One isolated breathing cycle of class ``label`` (float32, ``cycle_s`` long).

    For tests and demos that need a known class without the recording-level bookkeeping;
    patient traits are drawn from ``seed`` like :func:`synthesise_recordings` does.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {list(LABELS)}, got {label!r}")
    sr = _check_int("sr", sr, _MIN_SR, _MAX_SR)
    seed = _check_int("seed", seed, 0)
    cycle_s = _check_float("cycle_s", cycle_s, 1.0)
    pat = _draw_patient(seed, _FIRST_PATIENT_ID, _validate_prevalence(None))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_FIRST_PATIENT_ID, 0, 0)))
    n = int(round(cycle_s * sr))
    return _render(rng, pat, np.array([0.0, n / sr]), np.array([LABELS.index(label)]), n, sr)


def synthesise_recordings(
    *,
    n_patients: int,
    recordings_per_patient: int,
    duration_s: float,
    sr: int,
    seed: int,
    prevalence: dict[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, pd.DataFrame], pd.DataFrame]:
    """Synthesise an ICBHI-like corpus.

    Returns ``(recordings, annotations, patients)``: ``{wav filename: float32 waveform}``,
    ``{wav filename: DataFrame[start, end, crackles, wheezes]}`` (times in s rounded to 1 ms,
    flags 0/1 ints, only complete cycles) and ``DataFrame[patient, diagnosis]``. Filenames follow
    the ICBHI pattern (``101_1b1_Al_mc_Synth.wav``). ``prevalence`` gives the population share of
    each cycle class (keys from :data:`LABELS`, normalised); each patient draws its own mix
    around it, so some patients are mostly abnormal.
    """
    n_patients = _check_int("n_patients", n_patients, 1, 899 - _FIRST_PATIENT_ID)
    recordings_per_patient = _check_int("recordings_per_patient", recordings_per_patient, 1, 99 * len(LOCATIONS))
    duration_s = _check_float("duration_s", duration_s, _MIN_DURATION_S)
    sr = _check_int("sr", sr, _MIN_SR, _MAX_SR)
    seed = _check_int("seed", seed, 0)
    base = _validate_prevalence(prevalence)
    n = int(round(duration_s * sr))

    recordings: dict[str, np.ndarray] = {}
    annotations: dict[str, pd.DataFrame] = {}
    rows = []
    for i in range(n_patients):
        pid = _FIRST_PATIENT_ID + i
        pat = _draw_patient(seed, pid, base)
        rows.append({"patient": pid, "diagnosis": pat.diagnosis})
        perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(pid, 0))).permutation(len(LOCATIONS))
        for r in range(recordings_per_patient):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(pid, r + 1)))
            bounds = _cycle_bounds(rng, pat, duration_s)
            n_cyc = len(bounds) - 1
            codes = rng.choice(len(LABELS), size=n_cyc, p=pat.class_probs)
            annotated = np.arange(n_cyc) >= 1  # cycle 0 is the partial lead-in
            annotated &= bounds[1:] <= duration_s
            codes = np.where(annotated, codes, -1)
            name = _recording_name(pid, r, perm, recordings_per_patient)
            recordings[name] = _render(rng, pat, bounds, codes, n, sr)
            a = np.flatnonzero(annotated)
            annotations[name] = pd.DataFrame(
                {
                    "start": bounds[a],
                    "end": bounds[a + 1],
                    "crackles": np.isin(codes[a], (1, 3)).astype(np.int64),
                    "wheezes": np.isin(codes[a], (2, 3)).astype(np.int64),
                }
            )
    patients = pd.DataFrame(rows, columns=["patient", "diagnosis"]).astype({"patient": np.int64})
    logger.info(
        "synthesised %d recordings (%d patients, %d cycles) at %d Hz",
        len(recordings),
        n_patients,
        sum(len(a) for a in annotations.values()),
        sr,
    )
    return recordings, annotations, patients


def write_icbhi_layout(
    folder: str | os.PathLike,
    recordings: Mapping[str, np.ndarray],
    annotations: Mapping[str, pd.DataFrame],
    patients: pd.DataFrame,
    sr: int,
) -> Path:
    """Write recordings in the ICBHI 2017 layout: ``<name>.wav`` (16-bit, atomic) + ``<name>.txt``
    (tab-separated ``start end crackles wheezes``) + header-less ``patient_diagnosis.csv``.

    Writing to disk (rather than handing arrays over) makes the default pipeline exercise the
    same loader as real ICBHI data. Returns the folder.
    """
    sr = _check_int("sr", sr, 1, _MAX_SR)
    if set(recordings) != set(annotations):
        diff = sorted(set(recordings) ^ set(annotations))
        raise ValueError(f"recordings and annotations must have the same keys; mismatched: {diff[:5]}")
    if not {"patient", "diagnosis"} <= set(patients.columns):
        raise ValueError(f"patients must have columns 'patient' and 'diagnosis', got {list(patients.columns)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, y in recordings.items():
        if not name.endswith(".wav") or Path(name).name != name:
            raise ValueError(f"recordings keys must be bare '.wav' filenames, got {name!r}")
        ann = annotations[name]
        missing = set(ANNOTATION_COLUMNS) - set(ann.columns)
        if missing:
            raise ValueError(f"annotations[{name!r}] lacks columns {sorted(missing)}")
        write_wav_atomic(folder / name, y, sr)
        _write_text_atomic(folder / f"{name[:-4]}.txt", annotation_text(ann))
    _write_text_atomic(folder / "patient_diagnosis.csv", diagnosis_text(patients))
    logger.info("wrote %d recordings in ICBHI layout to %s", len(recordings), folder)
    return folder


def annotation_text(ann: pd.DataFrame) -> str:
    """ICBHI annotation file content: one tab-separated ``start end crackles wheezes`` line per cycle."""
    return "".join(
        f"{s:.3f}\t{e:.3f}\t{int(c)}\t{int(w)}\n"
        for s, e, c, w in zip(ann["start"], ann["end"], ann["crackles"], ann["wheezes"], strict=True)
    )


def diagnosis_text(patients: pd.DataFrame) -> str:
    """Header-less ``patient_diagnosis.csv`` content, as the full ICBHI database ships it."""
    return "".join(f"{int(p)},{d}\n" for p, d in zip(patients["patient"], patients["diagnosis"], strict=True))


def _write_text_atomic(path: Path, text: str) -> None:
    from mlsp_pipelines.datasets.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
