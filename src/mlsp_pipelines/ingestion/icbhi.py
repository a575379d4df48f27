"""Loader for the ICBHI 2017 Respiratory Sound Database layout (real or synthetic).

Layout (one flat folder): ``<patient>_<index>_<location>_<mode>_<device>.wav`` with a
``<same stem>.txt`` beside it holding one tab-separated row per respiratory cycle
(``start_s end_s crackles wheezes``), plus an optional ``patient_diagnosis.csv`` (``ID,CLASS``;
the full database ships it without a header line, the sample with one: both are accepted).

Parsing is strict and every error names the file (and line) because a silently mis-parsed
annotation corrupts labels without any other visible symptom. Evaluation must split by patient
(``group`` = patient in the index, or :func:`official_split`): cycles of one patient are highly correlated.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import soundfile as sf

from mlsp_pipelines.ingestion.audio import AudioDecodeError, load_audio
from mlsp_pipelines.ingestion.index import file_stem, relative_path, resolve_paths

logger = logging.getLogger(__name__)

#: Cycle classes: crackles only, wheezes only, both, neither.
LABELS: tuple[str, ...] = ("normal", "crackle", "wheeze", "both")
ANNOTATION_COLUMNS: list[str] = ["start", "end", "crackles", "wheezes"]
DIAGNOSIS_FILE = "patient_diagnosis.csv"
CYCLE_COLUMNS: list[str] = [
    "recording",
    "path",
    "patient",
    "index",
    "location",
    "mode",
    "device",
    "cycle",
    "start",
    "end",
    "crackles",
    "wheezes",
    "label",
    "diagnosis",
]

_NAME_RE = re.compile(
    r"^(?P<patient>\d+)_(?P<index>[0-9A-Za-z]+)_(?P<location>[A-Za-z]+)_(?P<mode>[A-Za-z]+)_(?P<device>[A-Za-z0-9]+)$"
)


def parse_annotation(path: str | os.PathLike) -> pd.DataFrame:
    """Parse one cycle annotation file into ``DataFrame[start, end, crackles, wheezes]``.

    Rows: 4 whitespace-separated fields, finite ``0 <= start < end``, flags exactly ``0``/``1``.
    Blank lines are accepted only at the end of the file. Any other deviation raises
    ``ValueError`` naming the file, the 1-based line number and the offending line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read annotation file ({exc})") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    starts: list[float] = []
    ends: list[float] = []
    crackles: list[int] = []
    wheezes: list[int] = []
    for lineno, line in enumerate(lines, start=1):

        def bad(reason: str, lineno: int = lineno, line: str = line) -> ValueError:
            return ValueError(f"{path}: line {lineno}: {reason}: {line!r}")

        fields = line.split()
        if len(fields) != 4:
            raise bad(f"expected 4 fields (start end crackles wheezes), got {len(fields)}")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise bad("start/end are not numbers") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
            raise bad("start/end must be finite and start >= 0")
        if end <= start:
            raise bad(f"end ({end}) must be greater than start ({start})")
        if fields[2] not in ("0", "1") or fields[3] not in ("0", "1"):
            raise bad("crackles/wheezes flags must be 0 or 1")
        starts.append(start)
        ends.append(end)
        crackles.append(int(fields[2]))
        wheezes.append(int(fields[3]))
    return pd.DataFrame(
        {
            "start": np.asarray(starts, dtype=np.float64),
            "end": np.asarray(ends, dtype=np.float64),
            "crackles": np.asarray(crackles, dtype=np.int64),
            "wheezes": np.asarray(wheezes, dtype=np.int64),
        }
    )


def parse_filename(name: str | os.PathLike) -> dict[str, object]:
    """Split an ICBHI recording name (with or without ``.wav``/``.txt``/directories) into
    ``{patient: int, index, location, mode, device}``; ``ValueError`` naming the file otherwise."""
    stem = file_stem(name, (".wav", ".txt"))
    m = _NAME_RE.match(stem)
    if m is None:
        raise ValueError(
            f"{name}: not an ICBHI recording name (expected <patient>_<index>_<location>_<mode>_<device>, "
            "e.g. 101_1b1_Al_sc_Meditron)"
        )
    out: dict[str, object] = m.groupdict()
    out["patient"] = int(m["patient"])
    return out


def read_diagnosis(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``patient_diagnosis.csv`` into ``DataFrame[patient (int), diagnosis (str)]``.

    Comma- or tab-separated, with or without a header line (detected by a non-numeric first
    field on the first line). Malformed rows or duplicate patients raise ``ValueError`` naming
    the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read diagnosis file ({exc})") from exc
    patients: list[int] = []
    diagnoses: list[str] = []
    seen: dict[int, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in re.split(r"[,\t]", line)]
        if len(fields) != 2 or not fields[1]:
            raise ValueError(f"{path}: line {lineno}: expected 2 fields (patient, diagnosis): {line!r}")
        if not fields[0].isdigit():
            if not patients and lineno == 1:
                continue  # header line (e.g. "ID,CLASS")
            raise ValueError(f"{path}: line {lineno}: patient id is not an integer: {line!r}")
        pid = int(fields[0])
        if pid in seen:
            raise ValueError(f"{path}: line {lineno}: patient {pid} already listed on line {seen[pid]}")
        seen[pid] = lineno
        patients.append(pid)
        diagnoses.append(fields[1])
    return pd.DataFrame({"patient": np.asarray(patients, dtype=np.int64), "diagnosis": pd.Series(diagnoses, dtype=str)})


def cycle_label(crackles: np.ndarray | pd.Series, wheezes: np.ndarray | pd.Series) -> np.ndarray:
    """Map crackle/wheeze flags to the 4-class label (normal, crackle, wheeze, both)."""
    code = np.asarray(crackles, dtype=np.int64) + 2 * np.asarray(wheezes, dtype=np.int64)
    return np.asarray(LABELS, dtype=object)[code]


def scan_icbhi(
    folder: str | os.PathLike,
    *,
    on_bad_file: Literal["fail", "skip"] = "fail",
    diagnosis_file: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Index an ICBHI-layout folder: one row per annotated cycle (columns :data:`CYCLE_COLUMNS`
    plus ``sr`` and ``duration`` of the recording from its header). ``path`` is the recording's
    path relative to ``folder`` (so nothing derived from it depends on where the data sits);
    :func:`segment_cycles` takes the folder as ``root``.

    Bad files are a ``.wav`` without ``.txt`` (or the reverse), a name not in the ICBHI pattern, a
    malformed annotation or an unreadable WAV header. ``on_bad_file="fail"`` raises ``ValueError``
    naming the file; ``"skip"`` logs a warning and leaves the recording out. Either way the
    skipped files are listed in ``df.attrs["skipped"]`` as ``[(relative path, reason), ...]`` (empty when
    nothing was skipped) so callers can count or report them. ``.txt`` files whose name is not
    an ICBHI recording name (README, split lists) are ignored. ``diagnosis`` comes from
    ``diagnosis_file`` (default: ``patient_diagnosis.csv`` in the folder, if present) and is
    missing (NA) for patients not listed there.
    """
    if on_bad_file not in ("fail", "skip"):
        raise ValueError(f"on_bad_file must be 'fail' or 'skip', got {on_bad_file!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: ICBHI folder does not exist")
    wavs = {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav"}
    txts = {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt"}
    skipped: list[tuple[str, str]] = []

    def reject(path: Path, reason: str) -> None:
        if on_bad_file == "fail":
            raise ValueError(f"{path}: {reason}")
        logger.warning("skipping %s: %s", path, reason)
        skipped.append((relative_path(path, folder), reason))

    for stem in sorted(set(txts) - set(wavs)):
        try:
            parse_filename(stem)
        except ValueError:
            continue  # unrelated text file (README, official split list, ...): not an annotation
        reject(txts[stem], "annotation file has no matching .wav recording")

    frames: list[pd.DataFrame] = []
    for stem in sorted(wavs):
        wav = wavs[stem]
        try:
            meta = parse_filename(wav.name)
        except ValueError as exc:
            reject(wav, str(exc).removeprefix(f"{wav.name}: "))
            continue
        if stem not in txts:
            reject(wav, f"recording has no annotation file {stem}.txt")
            continue
        try:
            ann = parse_annotation(txts[stem])
        except ValueError as exc:
            if on_bad_file == "fail":
                raise
            reject(txts[stem], str(exc).removeprefix(f"{txts[stem]}: "))
            continue
        try:
            info = sf.info(str(wav))
        except (sf.LibsndfileError, RuntimeError) as exc:
            reject(wav, f"cannot read WAV header ({exc})")
            continue
        duration = info.frames / info.samplerate
        if len(ann) and ann["end"].max() > duration + 0.05:
            logger.warning(
                "%s: annotated cycles end at %.3f s, past the audio end (%.3f s)", txts[stem], ann["end"].max(), duration
            )
        ann = ann.assign(
            recording=wav.name,
            path=relative_path(wav, folder),
            cycle=np.arange(len(ann), dtype=np.int64),
            sr=int(info.samplerate),
            duration=float(duration),
            **meta,
        )
        frames.append(ann)

    if frames:
        cycles = pd.concat(frames, ignore_index=True)
    else:
        logger.warning("%s: no usable ICBHI recordings found", folder)
        cycles = pd.DataFrame({c: pd.Series(dtype=np.int64) for c in ("patient", "cycle", "crackles", "wheezes")})
        for c in ("recording", "path", "index", "location", "mode", "device"):
            cycles[c] = pd.Series(dtype=str)
        for c in ("start", "end", "duration"):
            cycles[c] = pd.Series(dtype=np.float64)
        cycles["sr"] = pd.Series(dtype=np.int64)
    cycles["label"] = pd.Series(cycle_label(cycles["crackles"], cycles["wheezes"]), index=cycles.index, dtype=str)

    diag_path = Path(diagnosis_file) if diagnosis_file is not None else folder / DIAGNOSIS_FILE
    if diagnosis_file is not None or diag_path.is_file():
        diag = read_diagnosis(diag_path).set_index("patient")["diagnosis"]
        cycles["diagnosis"] = cycles["patient"].map(diag).astype(str)
        missing = sorted(set(cycles["patient"]) - set(diag.index))
        if missing:
            logger.warning("%s: no diagnosis for patients %s", diag_path, missing)
    else:
        cycles["diagnosis"] = pd.Series(pd.NA, index=cycles.index, dtype=str)

    cycles = cycles[CYCLE_COLUMNS + ["sr", "duration"]]
    cycles = cycles.astype({"patient": np.int64, "cycle": np.int64, "crackles": np.int64, "wheezes": np.int64})
    cycles.attrs["skipped"] = skipped
    logger.info(
        "scanned %s: %d recordings, %d cycles, %d skipped files", folder, len(frames), len(cycles), len(skipped)
    )
    return cycles


def read_official_split(split_file: str | os.PathLike) -> dict[str, str]:
    """Read the official ICBHI train/test list (``<recording stem>\\t<train|test>`` per line)."""
    split_file = Path(split_file)
    try:
        lines = split_file.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ValueError(f"{split_file}: cannot read split file ({exc})") from exc
    out: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1].lower() not in ("train", "test"):
            raise ValueError(f"{split_file}: line {lineno}: expected '<recording>\\t<train|test>': {line!r}")
        stem = fields[0][:-4] if fields[0].lower().endswith(".wav") else fields[0]
        out[stem] = fields[1].lower()
    return out


def official_split(cycles: pd.DataFrame, split_file: str | os.PathLike) -> pd.Series:
    """Per-row ``'train'``/``'test'`` from the official ICBHI split list.

    Raises ``ValueError`` naming the split file and the recordings it does not list, because a
    silently dropped recording would change the benchmark.
    """
    if "recording" not in cycles.columns:
        raise ValueError("cycles must have a 'recording' column")
    table = read_official_split(split_file)
    stems = cycles["recording"].astype(str).str.replace(r"\.wav$", "", regex=True, case=False)
    missing = sorted(set(stems) - set(table))
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise ValueError(f"{split_file}: {len(missing)} recordings are not in the official split: {shown}")
    split = stems.map(table).astype(str)
    split.name = "split"
    return split


def segment_cycles(
    cycles: pd.DataFrame,
    *,
    sr: int,
    length_s: float,
    crop: Literal["centre", "start"] = "centre",
    root: str | os.PathLike | None = None,
) -> np.ndarray:
    """Cut every cycle to a fixed length: ``(len(cycles), round(sr * length_s))`` float32.

    Each recording is decoded once (resampled to ``sr`` by :func:`load_audio`) and all its cycles
    are sliced from it. Longer cycles are cropped to their centre (``crop="centre"``, keeps
    both breathing phases) or their beginning (``"start"``); shorter ones are zero-padded at the
    end, so the signal always starts at sample 0. Rows follow ``cycles`` order. ``path`` is
    joined to ``root`` (the folder given to :func:`scan_icbhi`).
    """
    if crop not in ("centre", "start"):
        raise ValueError(f"crop must be 'centre' or 'start', got {crop!r}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    if not (isinstance(length_s, (int, float)) and math.isfinite(length_s) and length_s > 0):
        raise ValueError(f"length_s must be a positive number, got {length_s!r}")
    missing = {"path", "start", "end"} - set(cycles.columns)
    if missing:
        raise ValueError(f"cycles lacks columns {sorted(missing)}")
    length = int(round(sr * length_s))
    out = np.zeros((len(cycles), length), dtype=np.float32)
    paths = np.asarray(resolve_paths(cycles["path"].astype(str), root), dtype=object)
    i0 = np.round(cycles["start"].to_numpy(dtype=np.float64) * sr).astype(np.int64)
    i1 = np.round(cycles["end"].to_numpy(dtype=np.float64) * sr).astype(np.int64)
    for path in pd.unique(paths):
        y = load_audio(path, sr)
        for row in np.flatnonzero(paths == path):
            seg = y[max(0, i0[row]) : min(y.size, i1[row])]
            if seg.size == 0:
                logger.warning("%s: cycle %.3f-%.3f s lies outside the audio", path, i0[row] / sr, i1[row] / sr)
                continue
            if seg.size > length:
                off = (seg.size - length) // 2 if crop == "centre" else 0
                seg = seg[off : off + length]
            out[row, : seg.size] = seg
    return out


__all__ = [
    "ANNOTATION_COLUMNS",
    "AudioDecodeError",
    "CYCLE_COLUMNS",
    "LABELS",
    "cycle_label",
    "official_split",
    "parse_annotation",
    "parse_filename",
    "read_diagnosis",
    "read_official_split",
    "scan_icbhi",
    "segment_cycles",
]
