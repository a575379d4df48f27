"""Log-mel spectrograms: decoding, fixed-length crop/pad and the mel front end, on all cores.

Clips are decoded and featurised in chunks by a process pool (decoding and resampling cost as
much as the STFT, so the whole chain runs in the workers). Inside a chunk the clips share one
length, so framing, FFT and the mel projection each run once on the whole chunk: the STFT is
numpy/scipy framing + ``rfft`` (the same frames, window and zero padding as
``librosa.stft(center=True)``) and the projection is one matrix product with librosa's mel
filterbank, computed once in the parent. Workers therefore import only numpy, scipy and
soundfile, which keeps pool start-up cheap.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsp_pipelines.ingestion.audio import AudioDecodeError, load_audio

if TYPE_CHECKING:
    import pandas as pd

    from mlsp_pipelines.params import FeatureParams

logger = logging.getLogger(__name__)


def resolve_features(params: FeatureParams, sample_rates: list[int], durations: list[float]) -> FeatureParams:
    """Concrete feature parameters for ``auto`` fields, from the clips' native sample rates and
    durations (so short 8 kHz digits and 10 s 44.1 kHz scenes both work without tuning):

    - ``sr``: the most common native rate, at most 22050 Hz (log-mel above 11 kHz adds little);
    - ``n_fft``: the power of two nearest 40 ms; ``hop_length``: n_fft/4 for clips under 2 s
      (enough frames for a short word), n_fft/2 otherwise;
    - ``n_mels``: 40 at 8 kHz and below (a 256-point FFT has too few low bins for more), else 64;
    - ``clip_s``: :func:`auto_clip_length` (the few longer clips are cropped, the rest padded).
    """
    values: dict[str, Any] = {}
    if params.sr == "auto":
        rates, counts = np.unique(np.asarray(sample_rates, dtype=np.int64), return_counts=True)
        values["sr"] = int(min(int(rates[np.argmax(counts)]), 22050))
    sr = values.get("sr", params.sr)
    if params.clip_s == "auto":
        values["clip_s"] = auto_clip_length(durations, params.length_ratio)
    clip_s = values.get("clip_s", params.clip_s)
    if params.n_fft == "auto":
        values["n_fft"] = int(2 ** round(np.log2(0.04 * sr)))
    n_fft = values.get("n_fft", params.n_fft)
    if params.hop_length == "auto":
        values["hop_length"] = n_fft // 4 if clip_s < 2 else n_fft // 2
    if params.n_mels == "auto":
        values["n_mels"] = 40 if sr <= 8000 else 64
    if params.fmax is not None and params.fmax > sr / 2:
        values["fmax"] = None  # the data's rate is lower than the configured band edge
    if values:
        logger.info("features resolved from the data: %s", values)
    return params.model_copy(update=values)


def auto_clip_length(durations: list[float], ratio: float = 4.0) -> float:
    """The 99th percentile of the durations of the bulk -- the clips within ``ratio`` × of the
    median duration either way -- rounded up to 0.1 s. A plain percentile follows the outliers:
    one 10-minute recording among 35 one-second clips made every clip 390 s long. Clips outside
    the bulk are cropped or padded like any other, and reported by the feature stage."""
    d = np.asarray(durations, dtype=float)
    median = float(np.median(d))
    bulk = d[(d <= ratio * median) & (d >= median / ratio)]
    return float(np.ceil(np.percentile(bulk if bulk.size else d, 99) * 10) / 10) or 0.1


def feature_bytes(n_clips: int, params: FeatureParams) -> int:
    """Bytes of the (clips, frames, n_mels) float32 feature array of ``n_clips`` clips."""
    return int(n_clips) * n_frames(params) * int(params.n_mels) * np.dtype(np.float32).itemsize


def n_frames(params: FeatureParams) -> int:
    """Frames of a ``clip_s`` clip with centred STFT frames."""
    return 1 + int(round(params.clip_s * params.sr)) // params.hop_length


def fix_length(y: np.ndarray, n: int, crop: str = "center") -> np.ndarray:
    """Crop (centre or start) or zero-pad at the end to exactly ``n`` samples."""
    if len(y) > n:
        start = (len(y) - n) // 2 if crop == "center" else 0
        return y[start : start + n]
    if len(y) < n:
        return np.pad(y, (0, n - len(y)))
    return y


@lru_cache(maxsize=8)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """librosa's (Slaney-normalised) mel filterbank, (n_mels, n_fft // 2 + 1) float32."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window('hann', n, fftbins=True)``, librosa's)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """(B, samples) → (B, frames, n_fft//2+1) |STFT|², centred frames with zero padding."""
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy import fft

    pad = n_fft // 2
    yp = np.pad(y, ((0, 0), (pad, pad)))
    frames = sliding_window_view(yp, n_fft, axis=-1)[:, ::hop_length]
    spec = fft.rfft(frames * _hann(n_fft), axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32, copy=False)


def _logmel(y: np.ndarray, basis: np.ndarray, n_fft: int, hop_length: int, top_db: float | None) -> np.ndarray:
    power = power_spectrogram(y, n_fft, hop_length)
    b, t, k = power.shape
    mel = (power.reshape(b * t, k) @ basis.T).reshape(b, t, -1)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if top_db is not None:
        db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - top_db)
    return db.astype(np.float32, copy=False)


def logmel_batch(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(B, samples) waveforms → (B, frames, n_mels) log-mel in dB (float32).

    Same numbers as ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0,
    top_db=...)`` per clip, transposed (the test states the tolerance).
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    basis = mel_basis(params.sr, params.n_fft, params.n_mels, params.fmin, params.fmax)
    return _logmel(y, basis, params.n_fft, params.hop_length, params.top_db)


@dataclass(frozen=True)
class _Job:
    paths: list[str]
    offsets: list[float]
    durations: list[float | None]


@dataclass(frozen=True)
class _Spec:
    """What a worker needs (plain values: no pydantic or librosa import in the workers)."""

    sr: int
    n_samples: int
    crop: str
    n_fft: int
    hop_length: int
    top_db: float | None
    basis: np.ndarray


def _featurise_chunk(job: _Job, spec: _Spec) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Worker: decode, fix length and featurise one chunk; returns features and (position, reason)."""
    waves = np.zeros((len(job.paths), spec.n_samples), dtype=np.float32)
    errors: list[tuple[int, str]] = []
    for i, (path, off, dur) in enumerate(zip(job.paths, job.offsets, job.durations)):
        try:
            waves[i] = fix_length(load_audio(path, spec.sr, offset_s=off, duration_s=dur), spec.n_samples, spec.crop)
        except AudioDecodeError as exc:
            errors.append((i, exc.reason))
    return _logmel(waves, spec.basis, spec.n_fft, spec.hop_length, spec.top_db), errors


def _single_threaded() -> None:
    """Worker start: one BLAS/OpenMP thread each, so N workers use N cores, not N × N threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return
    threadpool_limits(1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie -- killed, not yet reaped by its parent -- does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _watch_parent(pid: int, interval_s: float) -> None:
    import time

    while _alive(pid):
        time.sleep(interval_s)
    os._exit(1)  # the run is gone (kill -9): nothing to return the work to


def _worker_start(run_pid: int, interval_s: float = 0.5) -> None:
    """Worker start: single-threaded, and bound to the run's process so that a ``kill -9`` of the
    run leaves no worker behind. On Linux the kernel sends SIGKILL when the worker's parent dies
    (``PR_SET_PDEATHSIG``; the parent is the run with ``fork``, the forkserver otherwise); a thread
    also watches the run's pid itself, since a forkserver's workers are not the run's children."""
    import signal
    import sys
    import threading

    _single_threaded()
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - the watcher thread still applies
            pass
        if os.getppid() != parent:  # the parent died before the request: too late for the kernel
            os._exit(1)
    threading.Thread(target=_watch_parent, args=(run_pid, interval_s), name="watch-run", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of the feature workers (see :func:`_pool_context`, :func:`_worker_start`)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_worker_start,
                               initargs=(os.getpid(),))


def _pool_context() -> Any:
    """``fork`` (starts in milliseconds) when this process runs no other Python threads — the
    workers use only numpy/scipy/soundfile, never torch's OpenMP pool; otherwise a
    ``forkserver`` that preloaded this module, so no thread's held lock is inherited."""
    import multiprocessing as mp
    import threading

    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return mp.get_context("spawn")


def _worker_count(params: FeatureParams, n_jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(params.workers or cores, n_jobs))


def extract_logmel(
    index: pd.DataFrame, params: FeatureParams, *, on_bad_file: str = "fail", show_progress: bool = True,
    root: str | os.PathLike | None = None, task: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Featurise every row of an audio index (``path`` relative to ``root``, or absolute).

    Returns ``(X (N, frames, n_mels) float32, keep (N,) bool, errors)``: with
    ``on_bad_file='skip'`` undecodable files are dropped (``keep`` False) and listed in
    ``errors`` under their index path (so a report does not depend on where the data sits);
    with ``'fail'`` the first one raises :class:`AudioDecodeError` naming the file (and, with the
    ``task``, the ``--params`` key that skips it).
    """
    import pandas as pd

    from mlsp_pipelines.ingestion.index import resolve_paths
    from mlsp_pipelines.progress import progress

    names = index["path"].astype(str).tolist()
    paths = resolve_paths(names, root)
    offsets = (index["offset_s"] if "offset_s" in index else pd.Series(0.0, index=index.index)).astype(float).tolist()
    durs = index["duration_s"].astype(float).tolist() if "duration_s" in index else [None] * len(paths)
    cs = params.chunk_size
    jobs = [_Job(paths[i : i + cs], offsets[i : i + cs], durs[i : i + cs]) for i in range(0, len(paths), cs)]
    workers = _worker_count(params, len(jobs))
    X = np.empty((len(paths), n_frames(params), params.n_mels), dtype=np.float32)
    keep = np.ones(len(paths), dtype=bool)
    errors: list[dict[str, str]] = []
    spec = _Spec(sr=params.sr, n_samples=int(round(params.clip_s * params.sr)), crop=params.crop,
                 n_fft=params.n_fft, hop_length=params.hop_length, top_db=params.top_db,
                 basis=mel_basis(params.sr, params.n_fft, params.n_mels, params.fmin, params.fmax))
    logger.info("log-mel features for %d clips with %d worker(s)", len(paths), workers)

    def _collect(k: int, result: tuple[np.ndarray, list[tuple[int, str]]]) -> None:
        feats, errs = result
        X[k * cs : k * cs + len(feats)] = feats
        for i, reason in errs:
            if on_bad_file == "fail":
                from mlsp_pipelines.params import param_hint

                raise AudioDecodeError(paths[k * cs + i], f"{reason} ({param_hint('data.on_bad_file', 'skip', task)} "
                                                          "to drop it)")
            logger.warning("skipping %s: %s", paths[k * cs + i], reason)
            keep[k * cs + i] = False
            errors.append({"path": names[k * cs + i], "error": f"{names[k * cs + i]}: {reason}"})

    bar = progress(total=len(jobs), desc="log-mel", unit="chunk", enabled=show_progress)
    if workers == 1:
        for k, job in enumerate(jobs):
            _collect(k, _featurise_chunk(job, spec))
            bar.update()
    else:
        with worker_pool(workers) as pool:
            futures = [pool.submit(_featurise_chunk, job, spec) for job in jobs]
            for k, fut in enumerate(futures):
                _collect(k, fut.result())
                bar.update()
    bar.close()
    return X, keep, errors
