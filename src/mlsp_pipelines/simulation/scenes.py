"""Seeded synthesiser of acoustic scenes: the embedded default data for scene classification.

Why it exists: the acoustic-scene pipelines must run anywhere (CI, offline demos, fresh
clones) without downloading TAU/DCASE audio, yet the data should behave like those corpora.
Each class is therefore a *random mixture of shared building blocks* rather than a fixed
signature:

* coloured noise beds (white/pink/brown, spectrally shaped): road traffic at a random
  distance, wind, HVAC, surf, rail rumble, bus interior road noise;
* tonal sources: engine harmonics with slow drift, mains/fan hum, electric-motor whine,
  wheel squeal, bird chirps (fast FM sweeps), background music, and babble built from many
  pitch-pulse talkers with syllabic modulation through formant filters;
* timed events with random counts and onsets: car passes (Doppler sweep, 1/r envelope),
  footsteps, door slams, beeps, chimes and announcements, horns, cutlery clinks (damped
  inharmonic partials), keyboard typing, pneumatic door hiss, wave crashes (slow swells).

Components are shared between classes (far traffic in ``park``, babble in ``metro_station``
and ``street_pedestrian``, wind in ``park`` and ``beach``, engines in ``bus`` and
``street_traffic``, HVAC in ``office`` and ``restaurant``), gains and event-to-background
SNRs are random, and every clip gets a random overall level and a mild random
recording-channel EQ. Clip-mean spectra of the classes thus overlap: a linear model on
clip-mean log-mel gets about 75 % (8 classes, chance 12.5 %), leaving room for models that
use the temporal structure (see ``benchmarks/scene_baseline.py``).

Every clip is a pure function of ``(label, sr, duration_s, seed)`` and the corpus-level seeds
are keyed by (class index, clip index), so any subset, order or process split of a corpus
reproduces the same waveforms. Generation is vectorised numpy (FFT-shaped noise, wavetable
oscillators, control-rate envelopes); only the handful of events per clip are looped over.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["SCENE_CLASSES", "clip_seed", "synthesise_clip", "synthesise_scenes"]

SCENE_CLASSES: tuple[str, ...] = (
    "street_traffic",
    "street_pedestrian",
    "park",
    "metro_station",
    "restaurant",
    "beach",
    "office",
    "bus",
)

_TWO_PI = 2.0 * math.pi
_CTRL_RATE = 100.0  # Hz; slow envelopes and pitch contours live at this rate, then np.interp
_TABLE_SIZE = 4096  # wavetable length (power of two: the phase wraps with a bit mask)
_TABLE_PHASE = np.arange(_TABLE_SIZE) / _TABLE_SIZE
_SPEED_OF_SOUND = 343.0
_PEAK_LIMIT = 0.99


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    """Scale to unit RMS so that recipe gains in dB are comparable across components."""
    r = _rms(x)
    return x / r if r > 1e-12 else x


def _db(gain_db: float) -> float:
    return 10.0 ** (gain_db / 20.0)


class _Scene:
    """Mutable mixing desk for one clip: random helpers, source generators and accumulators.

    Background components are added to ``bg``; foreground events go to ``fg`` (tonal events
    directly, noisy events as envelopes that are multiplied by one shaped noise buffer per
    event type at render time, so many short events cost one FFT). ``render`` sets the
    event-to-background SNR, applies the channel EQ and the clip level.
    """

    def __init__(self, rng: np.random.Generator, sr: int, n: int) -> None:
        self.rng = rng
        self.sr = sr
        self.n = n
        self.dur = n / sr
        self.max_f = 0.45 * sr  # keep tonal partials clear of Nyquist whatever sr is
        self.f = np.fft.rfftfreq(n, 1.0 / sr)
        self._log2f = np.log2(np.maximum(self.f, 10.0) / 1000.0)
        self.n_ctrl = int(math.ceil(self.dur * _CTRL_RATE)) + 2
        self.t_ctrl = np.arange(self.n_ctrl) / _CTRL_RATE
        self.t = np.arange(n) / sr
        self.bg = np.zeros(n)
        self.fg = np.zeros(n)
        self.n_events = 0
        self.components: list[str] = []
        self._noise_env: dict[str, tuple[np.ndarray, dict]] = {}

    # ------------------------------------------------------------------ random helpers
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def logu(self, lo: float, hi: float) -> float:
        return float(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def count(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def onsets(self, k: int, lead_s: float = 0.0) -> np.ndarray:
        """``k`` sorted onset times; ``lead_s`` lets events start before the clip (cut-in)."""
        return np.sort(self.rng.uniform(-lead_s, self.dur, size=k))

    # ------------------------------------------------------------------ signal helpers
    def shape(
        self,
        *,
        alpha: float = 0.0,
        lo: float | None = None,
        hi: float | None = None,
        lo_order: float = 2.0,
        hi_order: float = 2.0,
        peaks: Sequence[tuple[float, float, float]] = (),
    ) -> np.ndarray:
        """Magnitude response on the rfft grid: power slope f^-alpha, smooth cuts, log-f bumps."""
        fs = np.maximum(self.f, 10.0)
        mag = np.exp2(-0.5 * alpha * self._log2f) if alpha else np.ones_like(fs)
        if lo:
            mag /= np.sqrt(1.0 + (lo / fs) ** (2.0 * lo_order))
        if hi:
            mag /= np.sqrt(1.0 + (fs / hi) ** (2.0 * hi_order))
        for fc, gain_db, width_oct in peaks:
            bump = np.exp(-0.5 * ((self._log2f - math.log2(fc / 1000.0)) / width_oct) ** 2)
            mag *= 10.0 ** (gain_db / 20.0 * bump)
        mag[0] = 0.0
        return mag

    def noise(self, **shape_kw: object) -> np.ndarray:
        """Unit-RMS Gaussian noise with the magnitude response of :meth:`shape` (one irfft)."""
        g = self.rng.standard_normal((2, self.f.size))
        spec = (g[0] + 1j * g[1]) * self.shape(**shape_kw)  # type: ignore[arg-type]
        return _unit(np.fft.irfft(spec, self.n))

    def filt(self, x: np.ndarray, mag: np.ndarray) -> np.ndarray:
        """Zero-phase (circular) filtering by a magnitude response; fine for stationary beds."""
        return np.fft.irfft(np.fft.rfft(x) * mag, self.n)

    def smooth(self, cutoff_hz: float) -> np.ndarray:
        """Unit-variance Gaussian random curve at the control rate, band-limited to ``cutoff_hz``.

        The normalisation uses the expected variance (not the sample one) so a slow process
        over a short clip stays nearly constant instead of being inflated to full swing.
        """
        m = self.n_ctrl
        fc = np.fft.rfftfreq(m, 1.0 / _CTRL_RATE)
        mag = np.exp(-0.5 * (fc / cutoff_hz) ** 2)
        g = self.rng.standard_normal((2, fc.size))
        x = np.fft.irfft((g[0] + 1j * g[1]) * mag, m)
        var = (mag[0] ** 2 + 4.0 * np.sum(mag[1:] ** 2)) / (m * m)
        return x / math.sqrt(max(var, 1e-24))

    def up(self, ctrl: np.ndarray) -> np.ndarray:
        """Control-rate curve to audio rate (linear interpolation)."""
        return np.interp(self.t, self.t_ctrl, ctrl)

    def add_at(self, target: np.ndarray, start_s: float, seg: np.ndarray) -> None:
        """Add a segment starting at ``start_s`` (may be negative), cropped to the clip."""
        i0 = int(round(start_s * self.sr))
        a, b = max(i0, 0), min(i0 + seg.size, self.n)
        if a < b:
            target[a:b] += seg[a - i0 : b - i0]

    def osc(self, freq: np.ndarray, amps: Sequence[float]) -> np.ndarray:
        """Unit-RMS harmonic oscillator following ``freq`` (Hz per sample) via a wavetable.

        The cost is independent of the number of harmonics; partials that would pass
        0.45*sr anywhere along the track are dropped (no aliasing at low sample rates).
        """
        freq = np.asarray(freq, dtype=float)
        a = np.asarray(amps, dtype=float)
        k = np.arange(1, a.size + 1)
        a = np.where(k * float(freq.max(initial=0.0)) < self.max_f, a, 0.0)
        norm = math.sqrt(float(np.sum(a * a)) / 2.0)
        phases = self.rng.uniform(0.0, _TWO_PI, size=(a.size, 1))
        start = self.rng.random()
        if norm <= 0.0 or freq.size == 0:
            return np.zeros(freq.size)
        table = (a[:, None] * np.sin(_TWO_PI * k[:, None] * _TABLE_PHASE + phases)).sum(axis=0)
        phase = start + np.cumsum(freq) / self.sr
        idx = (phase * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)
        return table[idx] / norm

    def burst(
        self,
        kind: str,
        spectrum: Callable[[], dict],
        onset_s: float,
        amp: float,
        attack_s: float,
        decay_s: float,
    ) -> None:
        """Add an attack/exponential-decay envelope to the ``kind`` noise-event track.

        ``spectrum`` is called once per clip and type, so e.g. all footsteps of a clip share
        one floor surface while different clips get different ones.
        """
        length = int((attack_s + 6.0 * decay_s) * self.sr) + 1
        tt = np.arange(length) / self.sr
        env = np.minimum(tt / attack_s, 1.0) * np.exp(-np.maximum(tt - attack_s, 0.0) / decay_s)
        self.add_at(self.track(kind, spectrum), onset_s, amp * env)

    def track(self, kind: str, spectrum: Callable[[], dict]) -> np.ndarray:
        """Envelope accumulator of noise-event type ``kind`` (created on first use)."""
        if kind not in self._noise_env:
            self._noise_env[kind] = (np.zeros(self.n), spectrum())
        return self._noise_env[kind][0]

    def add_bg(self, name: str, x: np.ndarray, gain_db: float) -> None:
        self.bg += _db(gain_db) * x
        self.components.append(name)

    def add_fg(self, name: str, x: np.ndarray, gain_db: float, events: int = 1) -> None:
        self.fg += _db(gain_db) * x
        self.components.append(name)
        self.n_events += events

    # ------------------------------------------------------------------ background beds
    def traffic(self, distance: float) -> np.ndarray:
        """Road-traffic bed; ``distance`` in [0, 1]: far traffic loses its highs (air, barriers)."""
        hi = 3500.0 * 10.0 ** (-1.1 * distance)
        x = self.noise(alpha=1.0 + distance, lo=25.0, hi=hi, hi_order=1.0 + distance)
        density = np.exp(self.u(0.2, 0.5) * self.smooth(self.u(0.15, 0.5)))
        return _unit(x * self.up(density))

    def wind(self, rustle: float = 0.0) -> np.ndarray:
        """Gusty low-frequency microphone wind; ``rustle`` adds gust-driven leaf/grass hiss."""
        x = self.noise(alpha=2.0, lo=20.0, hi=self.logu(70.0, 350.0), hi_order=1.5)
        if rustle > 0:
            x = x + rustle * self.noise(alpha=0.6, lo=self.u(800, 2000), hi=self.u(4000, 7000))
        gust = np.exp(self.u(0.4, 1.0) * self.smooth(self.u(0.3, 1.2)))
        return _unit(x * self.up(gust))

    def hvac(self) -> np.ndarray:
        """Ventilation: steady band-limited pink noise plus mains hum and a fan blade tone."""
        x = self.noise(
            alpha=self.u(0.6, 1.4),
            lo=self.u(50, 120),
            hi=self.logu(700, 3000),
            peaks=[(self.logu(120, 700), self.u(2, 8), 0.4)],
        )
        mains = 50.0 if self.chance(0.5) else 60.0
        hum_amps = [1.0, self.u(0.2, 0.8), self.u(0.1, 0.6), self.u(0.05, 0.4), self.u(0, 0.2)]
        hum = self.osc(np.full(self.n, mains * self.u(0.998, 1.002)), hum_amps)
        fan = self.osc(np.full(self.n, self.logu(70, 320)), [1.0, self.u(0.1, 0.5)])
        return _unit(x + _db(self.u(-22, -8)) * hum + _db(self.u(-26, -10)) * fan)

    def engine(self, f0: float, drift: float = 0.05) -> np.ndarray:
        """Combustion-engine hum: harmonic series (even orders emphasised) with slow rpm drift."""
        rpm = f0 * np.exp(drift * self.smooth(self.u(0.1, 0.6)))
        k = np.arange(1, 13)
        amps = k ** -self.u(0.4, 1.2) * (1.0 + (k % 2 == 0)) * self.rng.lognormal(0, 0.5, k.size)
        tone = self.osc(self.up(rpm), amps)
        rumble = self.noise(alpha=2.0, lo=20.0, hi=self.u(100, 300))
        return _unit(tone + _db(self.u(-8, 2)) * rumble)

    def road_interior(self) -> np.ndarray:
        """In-vehicle tyre/road noise: brown noise with a body resonance, slowly modulated."""
        x = self.noise(
            alpha=self.u(1.4, 2.2),
            lo=25.0,
            hi=self.u(300, 1000),
            peaks=[(self.logu(60, 200), self.u(3, 9), 0.5)],
        )
        return _unit(x * self.up(np.exp(0.3 * self.smooth(0.4))))

    def babble(self, n_talkers: int, brightness: float = 1.0, pa: bool = False) -> np.ndarray:
        """Speech babble: glottal pulse trains with intonation and syllabic gating per talker,
        plus aspiration noise, through 1-3 formant (vowel) filters shared by talker groups.

        ``brightness`` < 1 mimics distance (highs absorbed); ``pa`` band-limits to a
        public-address loudspeaker (300-3400 Hz).
        """
        rng, sr, n = self.rng, self.sr, self.n
        n_groups = min(n_talkers, self.count(1, 3))
        groups = [np.zeros(n) for _ in range(n_groups)]
        env_sum = np.zeros(self.n_ctrl)
        for i in range(n_talkers):
            female = self.chance(0.5)
            f0 = self.u(170, 260) if female else self.u(90, 145)
            gate = self.smooth(self.u(0.2, 0.6)) > self.u(-0.6, 0.4)
            gate_smooth = np.convolve(gate.astype(float), np.ones(8) / 8.0)[3 : 3 + self.n_ctrl]
            syl_rate = self.u(3.5, 6.0)
            syl_phase = _TWO_PI * syl_rate * self.t_ctrl + 1.2 * self.smooth(1.5) + self.u(0, 6.3)
            env = gate_smooth * (0.5 - 0.5 * np.cos(syl_phase)) ** 1.5 * self.logu(0.3, 1.0)
            env_sum += env
            contour = f0 * np.exp(self.u(0.05, 0.12) * self.smooth(1.5))
            n_pulses = int(self.dur * f0 * 1.6) + 2
            approx_t = np.arange(n_pulses) / f0
            period = 1.0 / np.interp(approx_t, self.t_ctrl, contour)
            period *= 1.0 + 0.01 * rng.standard_normal(n_pulses)  # jitter
            times = rng.uniform(0, 1.0 / f0) + np.cumsum(period)
            times = times[times < self.dur]
            amps = np.interp(times, self.t_ctrl, env)
            idx = np.minimum((times * sr).astype(np.int64), n - 1)
            groups[i % n_groups] += np.bincount(idx, weights=amps, minlength=n)
        aspiration = self.up(env_sum) * self.rng.standard_normal(n) * self.u(0.01, 0.04)
        out = np.zeros(n)
        fs = np.maximum(self.f, 10.0)
        for g, exc in enumerate(groups):
            mag = np.ones_like(fs)
            formants = (self.u(280, 850), self.u(850, 2300), self.u(2300, 3200))
            for fm in formants:
                if fm < self.max_f:
                    q = self.u(4, 10)
                    mag /= np.sqrt((1.0 - (fs / fm) ** 2) ** 2 + (fs / (fm * q)) ** 2)
            mag /= np.sqrt(1.0 + (80.0 / fs) ** 4)
            src = exc + (aspiration if g == 0 else 0.0)
            out += _unit(self.filt(src, mag))
        cut = self.shape(hi=6000.0 * brightness, hi_order=1.5)
        if pa:
            cut = cut * self.shape(lo=300.0, hi=3400.0, lo_order=3, hi_order=3)
        return _unit(self.filt(out, cut))

    def music(self) -> np.ndarray:
        """Background music: three plucked voices on a pentatonic scale at a steady tempo."""
        root = self.logu(110, 330)
        note_s = self.u(0.2, 0.7)
        n_notes = int(self.dur / note_s) + 2
        note_idx = np.minimum((self.t / note_s).astype(np.int64), n_notes - 1)
        t_in_note = self.t - note_idx * note_s
        out = np.zeros(self.n)
        scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])
        for octave in (0.5, 1.0, 2.0):
            semis = self.rng.choice(scale, size=n_notes)
            freq = (root * octave * 2.0 ** (semis / 12.0))[note_idx]
            tone = self.osc(freq, [1.0, self.u(0.2, 0.6), self.u(0.05, 0.3), self.u(0, 0.15)])
            out += tone * np.exp(-t_in_note / self.u(0.1, 0.5)) * self.logu(0.3, 1.0)
        return _unit(out)

    # ------------------------------------------------------------------ timed events
    def car_passes(self, k: int) -> None:
        """Vehicles passing the microphone: tyre noise and engine harmonics with 1/r level and
        a Doppler sweep (pitch drops through the closest approach)."""
        tyre = lambda: dict(alpha=1.0, lo=self.u(80, 200), hi=self.u(1500, 4000), hi_order=1.5)
        for t0 in self.rng.uniform(-1.5, self.dur + 1.5, size=k):
            v = self.u(6, 20)
            d = self.u(3, 15)
            half = self.u(1.5, 3.0)
            seg_t = np.arange(int(2 * half * self.sr)) / self.sr - half
            r = np.sqrt(d * d + (v * seg_t) ** 2)
            radial = v * v * seg_t / r  # dr/dt
            gain = self.logu(0.3, 1.0)
            amp = gain * d / r
            f_src = self.u(25, 55)
            freq = f_src * _SPEED_OF_SOUND / (_SPEED_OF_SOUND + radial)
            hum = self.osc(freq, np.arange(1, 11) ** -self.u(0.3, 1.0))
            self.add_at(self.fg, t0 - half, _db(self.u(-12, -3)) * amp * hum)
            # Tyre noise rides the same 1/r envelope on a shared shaped-noise track.
            self.add_at(self.track("tyre", tyre), t0 - half, amp)
        if k:
            self.components.append("car_passes")
            self.n_events += k

    def footsteps(self, k_walkers: int, hard_floor: bool) -> None:
        """Walkers: heel/toe noise bursts at a steady gait, floor surface drawn per clip."""
        bright = (1500, 5000) if hard_floor else (400, 1500)
        spectrum = lambda: dict(alpha=0.5, lo=self.u(60, 150), hi=self.u(*bright), hi_order=2.0)
        n_steps = 0
        for _ in range(k_walkers):
            period = self.u(0.45, 0.65)
            start = self.u(-period, self.dur * 0.5)
            stop = self.u(start + 1.0, self.dur + 1.0)
            level = self.logu(0.2, 1.0)
            for ts in np.arange(start, stop, period):
                a = level * self.u(0.6, 1.0)
                decay = self.u(0.01, 0.04)
                self.burst("steps", spectrum, ts, a, 0.002, decay)
                self.burst("steps", spectrum, ts + self.u(0.02, 0.05), 0.6 * a, 0.002, decay)
                n_steps += 1
        if n_steps:
            self.components.append("footsteps")
            self.n_events += n_steps

    def beeps(self, k: int, f_range: tuple[float, float] = (700, 3000)) -> None:
        """Signal beeps (doors closing, ticket gates, stop request): square-ish tone repeats."""
        for onset in self.onsets(k):
            f = min(self.logu(*f_range), self.max_f * 0.9)
            dur = self.u(0.06, 0.3)
            reps = self.count(1, 4)
            gap = self.u(0.05, 0.25)
            tt = np.arange(int(dur * self.sr)) / self.sr
            tone = np.zeros_like(tt)
            for h in (1, 3, 5):
                if h * f < self.max_f:
                    tone += np.sin(_TWO_PI * h * f * tt) / h
            ramp = np.minimum(1.0, np.minimum(tt, dur - tt) / 0.005)
            a = self.logu(0.3, 1.0)
            for r_ in range(reps):
                self.add_at(self.fg, onset + r_ * (dur + gap), a * tone * ramp)
        if k:
            self.components.append("beeps")
            self.n_events += k

    def chime(self) -> float:
        """Announcement chime: 2-4 bell notes with inharmonic decaying partials; returns its end."""
        onset = self.u(-0.5, self.dur * 0.6)
        notes = self.count(2, 4)
        root = self.logu(400, 900)
        gap = self.u(0.25, 0.5)
        tt = np.arange(int(1.2 * self.sr)) / self.sr
        for j in range(notes):
            f = root * 2.0 ** (self.rng.choice([0, 4, 7, 12]) / 12.0)
            bell = np.zeros_like(tt)
            for ratio, amp, tau in ((1.0, 1.0, 0.6), (2.0, 0.5, 0.35), (2.76, 0.3, 0.2)):
                if ratio * f < self.max_f:
                    bell += amp * np.sin(_TWO_PI * ratio * f * tt) * np.exp(-tt / tau)
            self.add_at(self.fg, onset + j * gap, 0.5 * bell)
        self.n_events += 1
        return onset + notes * gap

    def announcement(self) -> None:
        """Public-address announcement: chime, then one band-limited talker."""
        end = self.chime()
        voice = self.babble(1, brightness=1.0, pa=True)
        gate = (self.t_ctrl > end).astype(float)
        self.add_fg("announcement", voice * self.up(gate), self.u(-6, 3))

    def horn(self) -> None:
        """Car horn: two detuned harmonic tones (a typical dual-note horn)."""
        onset = self.u(-0.3, self.dur)
        dur = self.u(0.2, 0.9)
        nseg = int(dur * self.sr)
        f = self.u(350, 500)
        tone = self.osc(np.full(nseg, f), [1, 0.7, 0.5, 0.35, 0.25, 0.15])
        tone += self.osc(np.full(nseg, f * self.u(1.2, 1.3)), [1, 0.7, 0.5, 0.35, 0.25, 0.15])
        tt = np.arange(nseg) / self.sr
        ramp = np.minimum(1.0, np.minimum(tt, dur - tt) / 0.01)
        self.add_at(self.fg, onset, 0.5 * tone * ramp)
        self.components.append("horn")
        self.n_events += 1

    def bird_calls(
        self, k: int, f_range: tuple[float, float] = (2000, 7000), gull: bool = False
    ) -> None:
        """Bird calls: trains of fast FM chirps (song birds) or slow, harmonic 'kee-ow' (gulls)."""
        for onset in self.onsets(k, lead_s=0.3):
            n_chirps = self.count(1, 3) if gull else self.count(1, 8)
            f_top = min(self.logu(*f_range), self.max_f * 0.8)
            sweep_oct = self.u(-1.2, 0.8)
            chirp_s = self.u(0.15, 0.45) if gull else self.u(0.015, 0.12)
            gap = self.u(0.05, 0.2) if gull else self.u(0.02, 0.12)
            a = self.logu(0.2, 1.0)
            tt = np.arange(max(int(chirp_s * self.sr), 2)) / self.sr
            f_end = min(f_top * 2.0 ** sweep_oct, self.max_f * 0.8)
            inst = f_top + (f_end - f_top) * tt / chirp_s
            phase = _TWO_PI * np.cumsum(inst) / self.sr
            win = np.sin(math.pi * tt / chirp_s) ** 2
            call = np.sin(phase)
            harm = (2, 3, 4) if gull else (2,)
            for h in harm:
                if h * max(f_top, f_end) < self.max_f:
                    call += (0.6 if gull else 0.15) / (h - 1) * np.sin(h * phase)
            call *= win
            for j in range(n_chirps):
                jitter = self.u(0.9, 1.1)
                self.add_at(self.fg, onset + j * (chirp_s + gap), a * jitter * call)
        if k:
            self.components.append("gulls" if gull else "birds")
            self.n_events += k

    def clinks(self, k: int) -> None:
        """Cutlery/glass clinks: sums of damped inharmonic sinusoids (2-7 kHz)."""
        for onset in self.onsets(k):
            f = min(self.logu(1800, 6500), self.max_f / 1.6)
            tau = self.u(0.015, 0.12)
            tt = np.arange(int(6 * tau * self.sr)) / self.sr
            seg = np.zeros_like(tt)
            for ratio, amp in ((1.0, 1.0), (1.59, 0.5), (2.76, 0.3), (5.4, 0.15)):
                if ratio * f < self.max_f:
                    seg += amp * np.sin(_TWO_PI * ratio * f * tt + self.u(0, 6.3))
            self.add_at(self.fg, onset, self.logu(0.2, 1.0) * seg * np.exp(-tt / tau))
        if k:
            self.components.append("clinks")
            self.n_events += k

    def typing(self, bursts: int) -> None:
        """Keyboard typing: bursts of very short high-passed clicks, louder low space bars."""
        spectrum = lambda: dict(
            alpha=0.0, lo=self.u(800, 2000), hi=self.u(5000, 9000),
            peaks=[(self.logu(2500, 5000), self.u(3, 9), 0.3)],
        )
        n_keys = 0
        for start in self.onsets(bursts, lead_s=0.5):
            keys = self.count(4, 25)
            times = start + np.cumsum(self.rng.uniform(0.07, 0.25, size=keys))
            for tk in times:
                space = self.chance(0.15)
                self.burst("keys", spectrum, tk, self.u(0.4, 1.0) * (1.6 if space else 1.0),
                           0.0005, self.u(0.003, 0.01))
            n_keys += keys
        if bursts:
            self.components.append("typing")
            self.n_events += n_keys

    def door(self) -> None:
        """Door slam: low damped thump plus a short broadband latch click."""
        onset = self.u(0, self.dur)
        f = self.u(50, 140)
        tau = self.u(0.06, 0.2)
        tt = np.arange(int(6 * tau * self.sr)) / self.sr
        thump = np.sin(_TWO_PI * f * tt) * np.exp(-tt / tau)
        self.add_at(self.fg, onset, self.logu(0.5, 1.0) * thump)
        spectrum = lambda: dict(alpha=0.3, lo=200.0, hi=self.u(3000, 7000))
        self.burst("latch", spectrum, onset - 0.01, self.u(0.3, 0.8), 0.001, self.u(0.005, 0.02))
        self.components.append("door")
        self.n_events += 1

    def door_hiss(self) -> None:
        """Pneumatic bus door: a high-passed hiss burst."""
        spectrum = lambda: dict(alpha=0.0, lo=self.u(1500, 3000), hi=self.u(6000, 9000))
        self.burst("hiss", spectrum, self.u(-0.2, self.dur), self.u(0.5, 1.0),
                   self.u(0.02, 0.08), self.u(0.1, 0.4))
        self.components.append("door_hiss")
        self.n_events += 1

    def squeal(self, f_range: tuple[float, float] = (1500, 4500)) -> np.ndarray:
        """Wheel/brake squeal: a vibrato tone with an irregular on/off gate (unit RMS when on)."""
        f = min(self.logu(*f_range), self.max_f * 0.8)
        vib = 1.0 + 0.004 * np.sin(_TWO_PI * self.u(4, 9) * self.t_ctrl)
        tone = self.osc(self.up(f * vib), [1.0, self.u(0.0, 0.3)])
        gate = np.clip(self.smooth(self.u(0.5, 2.0)) - self.u(-0.5, 0.8), 0.0, 1.0)
        return tone * self.up(gate)

    def train(self) -> None:
        """Metro train arriving/departing/passing: rail rumble, traction whine, squeal, clacks."""
        mode = self.count(0, 3)  # arriving, departing, passing, standing
        x = self.t_ctrl / max(self.dur, 1e-9)
        if mode == 0:
            speed = np.clip(1.0 - x * self.u(0.5, 1.2), 0.05, 1.0)
        elif mode == 1:
            speed = np.clip(x * self.u(0.5, 1.2) + 0.05, 0.05, 1.0)
        elif mode == 2:
            speed = np.full(self.n_ctrl, self.u(0.5, 1.0))
        else:
            speed = np.full(self.n_ctrl, 0.05)
        presence = 0.15 + np.clip(speed, 0, 1) if mode != 2 else 0.15 + np.exp(
            -0.5 * ((self.t_ctrl - self.u(0, self.dur)) / self.u(0.6, 1.5)) ** 2
        )
        rumble = self.noise(alpha=2.0, lo=25.0, hi=self.u(120, 350), hi_order=2.0)
        out = rumble * self.up(presence)
        whine_f = self.u(150, 400) * (0.4 + speed * self.u(1.5, 3.0))
        whine = self.osc(self.up(whine_f), [1.0, self.u(0.2, 0.7), self.u(0.1, 0.5)])
        out += _db(self.u(-16, -4)) * whine * self.up(presence * (speed > 0.1))
        if mode != 3 and self.chance(0.6):
            out += _db(self.u(-14, -2)) * self.squeal()
        self.add_fg("train", _unit(out), self.u(-3, 3))
        if mode in (0, 2):
            clack = lambda: dict(alpha=1.0, lo=60.0, hi=self.u(1000, 3000))
            bogie = self.u(1.5, 2.5)
            v = self.u(5, 20)
            for tc in np.arange(self.u(0, 0.5), self.dur, 18.0 / v):
                for dt in (0.0, bogie / v):
                    self.burst("clack", clack, tc + dt, self.u(0.5, 1.0), 0.002, self.u(0.01, 0.03))

    def waves(self) -> None:
        """Wave crashes: broadband noise swells (slow rise, long decay) on a surf bed."""
        period = self.u(4.0, 10.0)
        crash = np.zeros(self.n_ctrl)
        t = self.u(-period, 0.0)
        n = 0
        while t < self.dur:
            rise, fall = self.u(0.3, 1.2), self.u(1.0, 3.5)
            dt = self.t_ctrl - t
            crash += self.logu(0.4, 1.0) * np.where(
                dt < 0, np.exp(dt / rise * 3.0), np.exp(-dt / fall)
            ) * (dt > -rise * 2)
            n += 1
            t += period * self.u(0.7, 1.3)
        x = self.noise(
            alpha=self.u(0.5, 1.2), lo=self.u(100, 250), hi=self.u(3000, 7000), hi_order=1.5
        )
        self.add_fg("waves", _unit(x * self.up(crash)), 0.0, events=n)

    # ------------------------------------------------------------------ mixdown
    def render(self, snr_db: tuple[float, float]) -> tuple[np.ndarray, dict]:
        """Mix background and events at a random SNR, add sensor noise, channel EQ and level."""
        for env, spec in self._noise_env.values():
            self.fg += env * self.noise(**spec)
        bg_rms, fg_rms = _rms(self.bg), _rms(self.fg)
        snr = float("nan")
        if fg_rms > 1e-12 and bg_rms > 1e-12:
            snr = self.u(*snr_db)
            self.fg *= bg_rms / fg_rms * _db(snr)
        mix = self.bg + self.fg
        mix_rms = max(_rms(mix), 1e-9)
        mix += self.rng.standard_normal(self.n) * mix_rms * _db(self.u(-65, -50))
        # Mild recording-channel EQ: spectral tilt, low/high roll-off and one broad bump/dip.
        eq = self.shape(
            alpha=self.u(-0.3, 0.3),
            lo=self.logu(20, 120),
            lo_order=1.0,
            hi=self.u(0.30, 0.48) * self.sr,
            hi_order=2.0,
            peaks=[(self.logu(200, 4000), self.u(-5, 5), self.u(0.5, 1.5))],
        )
        mix = self.filt(mix, eq)
        level = self.u(-38.0, -18.0)
        mix *= _db(level) / max(_rms(mix), 1e-12)
        peak = float(np.max(np.abs(mix))) if mix.size else 0.0
        if peak > _PEAK_LIMIT:
            mix *= _PEAK_LIMIT / peak
        out = np.clip(mix, -1.0, 1.0).astype(np.float32)
        info = {
            "snr_db": snr,
            "n_events": int(self.n_events),
            "level_dbfs": 20.0 * math.log10(max(_rms(out), 1e-12)),
            "components": "+".join(dict.fromkeys(self.components)),
        }
        return out, info


# ---------------------------------------------------------------------- class recipes
# Each recipe draws which components are present and at what gain; probabilities and gain
# ranges overlap on purpose. Returns the (low, high) event-to-background SNR range in dB.


def _street_traffic(s: _Scene) -> tuple[float, float]:
    s.add_bg("traffic", s.traffic(distance=s.u(0.0, 0.45)), 0.0)
    if s.chance(0.5):
        s.add_bg("idling_engine", s.engine(s.u(22, 45)), s.u(-16, -4))
    if s.chance(0.35):
        s.add_bg("wind", s.wind(), s.u(-16, -4))
    if s.chance(0.35):
        s.add_bg("babble", s.babble(s.count(1, 5), brightness=s.u(0.5, 1.0)), s.u(-20, -8))
    s.car_passes(s.count(0, 5))
    if s.chance(0.35):
        s.footsteps(s.count(1, 2), hard_floor=True)
    if s.chance(0.2):
        s.horn()
    if s.chance(0.1):
        s.bird_calls(s.count(1, 3))
    return (-6.0, 8.0)


def _street_pedestrian(s: _Scene) -> tuple[float, float]:
    s.add_bg("babble", s.babble(s.count(3, 10), brightness=s.u(0.6, 1.0)), 0.0)
    s.add_bg("traffic", s.traffic(distance=s.u(0.2, 0.8)), s.u(-12, 0))
    if s.chance(0.3):
        s.add_bg("wind", s.wind(), s.u(-16, -4))
    if s.chance(0.2):
        s.add_bg("music", s.music(), s.u(-18, -8))
    s.footsteps(s.count(1, 4), hard_floor=True)
    if s.chance(0.35):
        s.car_passes(s.count(1, 2))
    if s.chance(0.2):
        s.bird_calls(s.count(1, 3))
    if s.chance(0.15):
        s.beeps(1)
    return (-8.0, 6.0)


def _park(s: _Scene) -> tuple[float, float]:
    s.add_bg("wind", s.wind(rustle=s.u(0.0, 1.0)), 0.0)
    if s.chance(0.75):
        s.add_bg("traffic_far", s.traffic(distance=s.u(0.5, 1.0)), s.u(-10, 2))
    if s.chance(0.35):
        s.add_bg("babble", s.babble(s.count(1, 4), brightness=s.u(0.3, 0.8)), s.u(-16, -4))
    s.bird_calls(s.count(0, 10))
    if s.chance(0.3):
        s.footsteps(1, hard_floor=False)
    if s.chance(0.1):
        s.car_passes(1)
    return (-4.0, 10.0)


def _metro_station(s: _Scene) -> tuple[float, float]:
    s.add_bg("babble", s.babble(s.count(2, 10), brightness=s.u(0.4, 0.9)), 0.0)
    if s.chance(0.5):
        s.add_bg("hvac", s.hvac(), s.u(-12, 0))
    if s.chance(0.3):
        s.add_bg("traffic_far", s.traffic(distance=s.u(0.6, 1.0)), s.u(-14, -4))
    if s.chance(0.65):
        s.train()
    if s.chance(0.35):
        s.announcement()
    if s.chance(0.4):
        s.beeps(s.count(1, 3))
    if s.chance(0.6):
        s.footsteps(s.count(1, 3), hard_floor=True)
    return (-6.0, 8.0)


def _restaurant(s: _Scene) -> tuple[float, float]:
    s.add_bg("babble", s.babble(s.count(6, 16), brightness=s.u(0.6, 1.0)), 0.0)
    if s.chance(0.5):
        s.add_bg("hvac", s.hvac(), s.u(-16, -4))
    if s.chance(0.3):
        s.add_bg("music", s.music(), s.u(-16, -6))
    if s.chance(0.15):
        s.add_bg("traffic_far", s.traffic(distance=s.u(0.6, 1.0)), s.u(-16, -6))
    s.clinks(s.count(0, 10))
    if s.chance(0.2):
        s.footsteps(1, hard_floor=True)
    if s.chance(0.1):
        s.door()
    return (-8.0, 4.0)


def _beach(s: _Scene) -> tuple[float, float]:
    s.add_bg("surf", s.noise(alpha=s.u(1.0, 2.0), lo=40.0, hi=s.u(300, 2000), hi_order=1.0), 0.0)
    if s.chance(0.8):
        s.add_bg("wind", s.wind(rustle=s.u(0.0, 0.3)), s.u(-8, 4))
    if s.chance(0.35):
        s.add_bg("babble", s.babble(s.count(1, 5), brightness=s.u(0.3, 0.8)), s.u(-16, -4))
    if s.chance(0.2):
        s.add_bg("traffic_far", s.traffic(distance=s.u(0.6, 1.0)), s.u(-14, -4))
    s.waves()
    if s.chance(0.35):
        s.bird_calls(s.count(1, 4), f_range=(700, 2200), gull=True)
    if s.chance(0.15):
        s.bird_calls(s.count(1, 3))
    return (-2.0, 10.0)


def _office(s: _Scene) -> tuple[float, float]:
    s.add_bg("hvac", s.hvac(), 0.0)
    if s.chance(0.55):
        s.add_bg("babble", s.babble(s.count(1, 3), brightness=s.u(0.6, 1.0)), s.u(-12, 0))
    if s.chance(0.3):
        s.add_bg("traffic_far", s.traffic(distance=s.u(0.7, 1.0)), s.u(-14, -4))
    if s.chance(0.15):
        s.add_bg("music", s.music(), s.u(-20, -10))
    if s.chance(0.8):
        s.typing(s.count(1, 3))
    if s.chance(0.3):
        s.beeps(s.count(1, 2), f_range=(800, 2000))
    if s.chance(0.3):
        s.footsteps(1, hard_floor=s.chance(0.5))
    if s.chance(0.2):
        s.door()
    return (-4.0, 10.0)


def _bus(s: _Scene) -> tuple[float, float]:
    s.add_bg("engine", s.engine(s.u(20, 40), drift=s.u(0.03, 0.15)), 0.0)
    s.add_bg("road_interior", s.road_interior(), s.u(-6, 4))
    if s.chance(0.5):
        s.add_bg("babble", s.babble(s.count(1, 5), brightness=s.u(0.6, 1.0)), s.u(-14, -2))
    if s.chance(0.3):
        s.add_bg("traffic", s.traffic(distance=s.u(0.3, 0.8)), s.u(-12, -2))
    if s.chance(0.4):
        s.beeps(1, f_range=(600, 1800))
    if s.chance(0.25):
        s.door_hiss()
    if s.chance(0.2):
        s.add_fg("brake_squeal", s.squeal((1200, 3500)), 0.0)
    if s.chance(0.15):
        s.announcement()
    return (-8.0, 4.0)


_RECIPES: dict[str, Callable[[_Scene], tuple[float, float]]] = {
    "street_traffic": _street_traffic,
    "street_pedestrian": _street_pedestrian,
    "park": _park,
    "metro_station": _metro_station,
    "restaurant": _restaurant,
    "beach": _beach,
    "office": _office,
    "bus": _bus,
}
assert tuple(_RECIPES) == SCENE_CLASSES


# ---------------------------------------------------------------------- validation
def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_common(sr: object, duration_s: object, seed: object) -> int:
    """Validate sr/duration/seed and return the clip length in samples."""
    if not _is_int(sr) or int(sr) <= 0:  # type: ignore[call-overload]
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    try:
        dur = float(duration_s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"duration_s must be a positive number, got {duration_s!r}") from None
    if not math.isfinite(dur) or dur <= 0:
        raise ValueError(f"duration_s must be a positive finite number, got {duration_s!r}")
    n = int(round(int(sr) * dur))  # type: ignore[call-overload]
    if n < 1:
        raise ValueError(f"duration_s={duration_s!r} gives no samples at sr={sr}")
    if not _is_int(seed) or int(seed) < 0:  # type: ignore[call-overload]
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return n


def _render(label: str, sr: int, n: int, seed: int) -> tuple[np.ndarray, dict]:
    # The label is part of the key so that equal seeds across classes do not share nuisance
    # draws (level, EQ, SNR); crc32 is stable across Python processes, unlike hash().
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(label.encode("utf-8")),))
    scene = _Scene(np.random.default_rng(ss), int(sr), n)
    snr_range = _RECIPES[label](scene)
    return scene.render(snr_range)


# ---------------------------------------------------------------------- public API
def synthesise_clip(label: str, *, sr: int, duration_s: float, seed: int) -> np.ndarray:
    """One mono float32 clip of scene ``label``, in [-1, 1], of ``round(sr * duration_s)`` samples.

    Fully determined by ``(label, sr, duration_s, seed)``. Raises ``ValueError`` naming the
    argument for an unknown label, non-positive ``sr``/``duration_s`` or a negative seed.
    """
    if label not in _RECIPES:
        raise ValueError(f"label {label!r} is not a scene class; choose from {SCENE_CLASSES}")
    n = _check_common(sr, duration_s, seed)
    return _render(label, int(sr), n, int(seed))[0]


def clip_seed(seed: int, class_index: int, clip_index: int) -> int:
    """Per-clip seed: ``SeedSequence(seed)`` keyed by (class index in SCENE_CLASSES, clip index).

    Equivalent to ``SeedSequence(seed).spawn(class_index + 1)[class_index]
    .spawn(clip_index + 1)[clip_index]``, without materialising the siblings, so a clip's
    audio never depends on which other clips are generated, in what order or where.
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(class_index), int(clip_index)))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))  # fits in int64


def synthesise_scenes(
    *,
    n_per_class: int,
    sr: int,
    duration_s: float,
    seed: int,
    classes: Sequence[str] | None = None,
    n_folds: int = 5,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """A balanced, fold-annotated synthetic corpus: ``({filename: waveform}, metadata)``.

    Clip ``k`` of class ``c`` is ``synthesise_clip(c, seed=clip_seed(seed, SCENE_CLASSES
    .index(c), k))`` and goes to fold ``k % n_folds + 1``: folds are balanced per class and a
    clip's audio and fold do not depend on ``classes``, ``n_per_class`` or generation order.
    ``n_per_class`` must be at least ``n_folds`` so that every fold holds every class (an
    empty or class-less test fold would make fold-wise evaluation meaningless).

    Metadata columns: ``filename, label, fold, clip_index, clip_seed, snr_db`` (event-to-
    background power ratio; NaN when the clip has no foreground events), ``n_events``,
    ``level_dbfs`` and ``components`` (``+``-joined sources present in the clip).
    """
    if classes is None:
        chosen = list(SCENE_CLASSES)
    else:
        if isinstance(classes, str):
            raise ValueError(f"classes must be a sequence of names, not the string {classes!r}")
        chosen = list(classes)
        if not chosen:
            raise ValueError("classes must not be empty")
        unknown = [c for c in chosen if c not in _RECIPES]
        if unknown:
            raise ValueError(
                f"classes contains unknown scene classes {unknown}; choose from {SCENE_CLASSES}"
            )
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"classes contains duplicates: {chosen}")
    if not _is_int(n_folds) or int(n_folds) < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if not _is_int(n_per_class) or int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    if int(n_per_class) < int(n_folds):
        raise ValueError(
            f"n_per_class={n_per_class} must be >= n_folds={n_folds} "
            "so that every fold holds every class"
        )
    n = _check_common(sr, duration_s, seed)

    audio: dict[str, np.ndarray] = {}
    rows: list[dict] = []
    for label in chosen:
        ci = SCENE_CLASSES.index(label)
        for k in range(int(n_per_class)):
            cseed = clip_seed(int(seed), ci, k)
            wave, info = _render(label, int(sr), n, cseed)
            name = f"{label}-{k:04d}.wav"
            audio[name] = wave
            rows.append(
                {"filename": name, "label": label, "fold": k % int(n_folds) + 1,
                 "clip_index": k, "clip_seed": cseed, **info}
            )
    meta = pd.DataFrame(rows)
    meta = meta.astype({"fold": "int64", "clip_index": "int64", "clip_seed": "int64",
                        "n_events": "int64", "snr_db": "float64", "level_dbfs": "float64"})
    return audio, meta
