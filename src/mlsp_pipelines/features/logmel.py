"""Log-mel spectrograms: decoding, fixed-length crop/pad and the mel front end, on all cores.

Clips are decoded and featurised in chunks by a process pool (decoding and resampling are
as costly as the STFT, so the whole chain runs in the workers). Within a chunk the clips
share one length, so the STFT and the mel projection run once on a (chunk, samples) array
with a cached filterbank instead of once per clip.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from mlsp_pipelines.ingestion.audio import AudioDecodeError, load_audio
from mlsp_pipelines.params import FeatureParams
from mlsp_pipelines.progress import progress

logger = logging.getLogger(__name__)


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
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


def logmel_batch(y: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(B, samples) waveforms → (B, frames, n_mels) log-mel in dB (float32).

    Same numbers as ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0)``
    per clip (the test states the tolerance); ``top_db`` clips each clip at its own max − top_db.
    """
    import librosa

    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    spec = np.abs(librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length, center=True)) ** 2
    mel = np.matmul(_mel_basis(params.sr, params.n_fft, params.n_mels, params.fmin, params.fmax), spec)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if params.top_db is not None:
        db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - params.top_db)
    return np.ascontiguousarray(np.swapaxes(db, -1, -2), dtype=np.float32)


@dataclass(frozen=True)
class _Job:
    paths: list[str]
    offsets: list[float]
    durations: list[float | None]


def _featurise_chunk(job: _Job, params_dict: dict[str, Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Worker: decode, fix length and featurise one chunk; returns features and (position, error)."""
    params = FeatureParams(**params_dict)
    n = int(round(params.clip_s * params.sr))
    waves = np.zeros((len(job.paths), n), dtype=np.float32)
    errors: list[tuple[int, str]] = []
    for i, (path, off, dur) in enumerate(zip(job.paths, job.offsets, job.durations)):
        try:
            waves[i] = fix_length(load_audio(path, params.sr, offset_s=off, duration_s=dur), n, params.crop)
        except AudioDecodeError as exc:
            errors.append((i, str(exc)))
    return logmel_batch(waves, params), errors


def _worker_count(params: FeatureParams, n_jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(params.workers or cores, n_jobs))


def extract_logmel(
    index: pd.DataFrame, params: FeatureParams, *, on_bad_file: str = "fail", show_progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Featurise every row of an audio index.

    Returns ``(X (N, frames, n_mels) float32, keep (N,) bool, errors)``: with
    ``on_bad_file='skip'`` undecodable files are dropped (``keep`` False) and listed in
    ``errors``; with ``'fail'`` the first one raises :class:`AudioDecodeError` naming the file.
    """
    paths = index["path"].astype(str).tolist()
    offsets = (index["offset_s"] if "offset_s" in index else pd.Series(0.0, index=index.index)).astype(float).tolist()
    durs = index["duration_s"].astype(float).tolist() if "duration_s" in index else [None] * len(paths)
    cs = params.chunk_size
    jobs = [_Job(paths[i : i + cs], offsets[i : i + cs], durs[i : i + cs]) for i in range(0, len(paths), cs)]
    workers = _worker_count(params, len(jobs))
    X = np.empty((len(paths), n_frames(params), params.n_mels), dtype=np.float32)
    keep = np.ones(len(paths), dtype=bool)
    errors: list[dict[str, str]] = []
    pd_dict = params.model_dump()
    logger.info("log-mel features for %d clips with %d worker(s)", len(paths), workers)

    def _collect(k: int, result: tuple[np.ndarray, list[tuple[int, str]]]) -> None:
        feats, errs = result
        X[k * cs : k * cs + len(feats)] = feats
        for i, msg in errs:
            if on_bad_file == "fail":
                raise AudioDecodeError(paths[k * cs + i], msg.split(": ", 1)[-1] + " (set on_bad_file: skip to drop it)")
            logger.warning("skipping %s", msg)
            keep[k * cs + i] = False
            errors.append({"path": paths[k * cs + i], "error": msg})

    bar = progress(total=len(jobs), desc="log-mel", unit="chunk", enabled=show_progress)
    if workers == 1:
        for k, job in enumerate(jobs):
            _collect(k, _featurise_chunk(job, pd_dict))
            bar.update()
    else:
        import multiprocessing as mp

        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_featurise_chunk, job, pd_dict) for job in jobs]
            for k, fut in enumerate(futures):
                _collect(k, fut.result())
                bar.update()
    bar.close()
    return X, keep, errors


def fit_normaliser(X: np.ndarray) -> dict[str, list[float]]:
    """Per-mel-band mean and standard deviation over all clips and frames of ``X`` (B, T, F)."""
    flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-6).tolist()}


def apply_normaliser(X: np.ndarray, stats: dict[str, list[float]]) -> np.ndarray:
    """Standardise with statistics from :func:`fit_normaliser` (broadcast over the last axis)."""
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.asarray(stats["std"], dtype=np.float32)
    if mean.shape[-1] != X.shape[-1]:
        raise ValueError(f"normaliser has {mean.shape[-1]} bands but features have {X.shape[-1]}")
    return ((X - mean) / std).astype(np.float32)
