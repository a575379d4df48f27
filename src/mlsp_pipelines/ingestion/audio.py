"""Decoding audio files to mono float32 at a target rate, with errors that name the file.

Every audio loader (synthetic scenes, ESC-50, generic folders, ICBHI) goes through
:func:`load_audio`, so resampling, down-mixing and error reporting behave the same everywhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioDecodeError(ValueError):
    """An audio file could not be decoded; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def load_audio(
    path: str | os.PathLike,
    sr: int,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz (down-mix by channel mean, resample with soxr).

    ``offset_s``/``duration_s`` read a segment without decoding the whole file (used for
    respiratory cycles). Raises :class:`AudioDecodeError` for missing, empty, unreadable or
    silent-by-corruption files so a caller can fail or skip with the file named.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "file is empty (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr = f.samplerate
            start = int(round(offset_s * native_sr))
            frames = -1 if duration_s is None else int(round(duration_s * native_sr))
            if start:
                f.seek(min(start, f.frames))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioDecodeError(path, f"cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "no audio samples in file (or in the requested segment)")
    if not np.all(np.isfinite(data)):
        raise AudioDecodeError(path, "audio contains NaN or infinite samples")
    return mono_at_rate(data, native_sr, sr)


def mono_at_rate(y: np.ndarray, native_sr: int, sr: int) -> np.ndarray:
    """(samples,) or (samples, channels) float audio → mono float32 at ``sr`` Hz: channel mean,
    then soxr (librosa's default resampler). Shared by the loaders and the served model, so a
    deployed model sees exactly what training saw."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if native_sr != sr:
        import soxr  # imported lazily

        y = soxr.resample(y, native_sr, sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(y, dtype=np.float32)


def write_wav_atomic(path: str | os.PathLike, y: np.ndarray, sr: int) -> None:
    """Write 16-bit PCM WAV via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_wav(path: str | os.PathLike, y: np.ndarray, sr: int) -> None:
    """Write 16-bit PCM WAV directly (for files inside a folder that is itself swapped in atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
