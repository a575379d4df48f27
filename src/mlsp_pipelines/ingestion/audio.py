"""Decoding audio files to mono float32 at a target rate, with errors that name the file.

Every audio loader (synthetic scenes, ESC-50, generic folders, ICBHI) goes through
:func:`load_audio`, so resampling, down-mixing and error reporting behave the same everywhere.

Damaged files are errors, never silently shortened clips. libsndfile opens a truncated WAV
(fewer bytes than its ``data`` chunk declares) without complaint and reports only the frames
that are present, which the feature stage would then zero-pad. So :func:`check_declared_length`
reads the container's own length fields -- RIFF/RIFX/RF64 WAV (``data``, ``ds64``) and AIFF
(``COMM``, ``SSND``), from the first 64 KiB -- and compares them with the bytes in the file: a
small hand-written chunk walk, because neither soundfile nor libsndfile exposes the declared
length. For the other containers (FLAC, Ogg, MP3) :func:`load_audio` compares the frames
decoded with the frames the stream header promises.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

#: Streaming writers that do not know the length write this as the data size: not a truncation.
_UNKNOWN_SIZE = 0xFFFFFFFF
_HEAD_BYTES = 65536


class AudioDecodeError(ValueError):
    """An audio file could not be decoded; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _riff_lengths(head: bytes, file_size: int) -> tuple[int, int, int] | None:
    """(declared data bytes, data bytes present, bytes per frame or 0) of a RIFF/RIFX/RF64 WAV."""
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
        return None
    order = "big" if head[:4] == b"RIFX" else "little"
    pos, block, ds64 = 12, 0, None
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], order)
        body = pos + 8
        if cid == b"ds64" and body + 16 <= len(head):
            ds64 = int.from_bytes(head[body + 8 : body + 16], "little")
        elif cid == b"fmt " and body + 14 <= len(head):
            block = int.from_bytes(head[body + 12 : body + 14], order)
        elif cid == b"data":
            if size == _UNKNOWN_SIZE:
                if ds64 is None:
                    return None  # the writer did not know the length: nothing to compare with
                size = ds64
            return size, max(0, file_size - body), block
        pos = body + size + (size & 1)
    return None


def _aiff_lengths(head: bytes, file_size: int) -> tuple[int, int, int] | None:
    """(declared sample bytes, sample bytes present, bytes per frame or 0) of an AIFF/AIFC file."""
    if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
        return None
    pos, frames, block = 12, None, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "big")
        body = pos + 8
        if cid == b"COMM" and body + 8 <= len(head):
            channels = int.from_bytes(head[body : body + 2], "big")
            frames = int.from_bytes(head[body + 2 : body + 6], "big")
            block = channels * ((int.from_bytes(head[body + 6 : body + 8], "big") + 7) // 8)
        elif cid == b"SSND" and body + 8 <= len(head):
            offset = int.from_bytes(head[body : body + 4], "big")
            declared = frames * block if frames is not None and block else max(0, size - 8 - offset)
            return declared, max(0, file_size - (body + 8 + offset)), block
        pos = body + size + (size & 1)
    return None


def check_declared_length(path: str | os.PathLike) -> None:
    """Raise :class:`AudioDecodeError` when a WAV/AIFF header declares zero frames, or more
    audio than the file holds (truncated, or only a header and no audio data at all)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise AudioDecodeError(path, f"cannot read file ({exc})") from exc
    found = _riff_lengths(head, size) or _aiff_lengths(head, size)
    if found is None:
        return
    declared, present, block = found

    def amount(n: int) -> str:
        return f"{n // block} frames" if block else f"{n} bytes"

    if declared == 0:
        raise AudioDecodeError(path, "the header declares zero frames (an empty recording)")
    if present == 0:
        raise AudioDecodeError(path, f"header only: the header declares {amount(declared)} but the file holds no audio data")
    if present < declared and (not block or present // block < declared // block):
        raise AudioDecodeError(
            path, f"truncated: the header declares {amount(declared)} but the file holds only {amount(present)}"
        )


def load_audio(
    path: str | os.PathLike,
    sr: int,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz (down-mix by channel mean, resample with soxr).

    ``offset_s``/``duration_s`` read a segment without decoding the whole file (used for
    respiratory cycles). Raises :class:`AudioDecodeError` for missing, empty, unreadable,
    truncated (fewer frames than the header declares), header-only or zero-length files and
    silent-by-corruption ones, so a caller can fail or skip with the file named.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "file is empty (0 bytes)")
    check_declared_length(path)
    try:
        with sf.SoundFile(str(path)) as f:
            native_sr, total = f.samplerate, f.frames
            start = min(int(round(offset_s * native_sr)), total)
            frames = -1 if duration_s is None else int(round(duration_s * native_sr))
            if start:
                f.seek(start)
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioDecodeError(path, f"cannot decode audio ({exc})") from exc
    expected = total - start if frames < 0 else min(frames, total - start)
    if data.shape[0] < expected:
        raise AudioDecodeError(
            path, f"truncated: the header declares {total} frames but only {start + data.shape[0]} could be decoded"
        )
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
    """Write 16-bit PCM WAV via a temporary file and ``os.replace`` (never half-written; the
    file gets the mode the umask gives a new file, like any other output)."""
    from mlsp_pipelines.datasets.atomic import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
