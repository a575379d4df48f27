"""Index builders for labelled audio folders: the ESC-50 layout and a generic folder + CSV.

An *index* is a DataFrame with one row per clip: ``path`` (relative to the dataset root, with
``/`` separators), ``filename``, ``label`` (str), ``fold`` (nullable int) and optionally
``group`` (e.g. patient) and ``offset_s`` / ``duration_s`` for segments. Every later stage
(features, splits) works on an index, so real and synthetic data differ only here.

Paths are stored relative to the root so that nothing written from an index (``index.csv``,
data-quality reports) depends on where the project or the data sits: two clones in two folders,
or the same dataset mounted elsewhere, give byte-identical outputs. Readers join them to the
root with :func:`resolve_paths`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlsp_pipelines.params import param_hint

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10")


class DataLayoutError(ValueError):
    """The dataset on disk does not match the expected layout; the message names what is wrong."""


@dataclass
class QualityReport:
    """What was wrong with the input and what was done about it (``on_bad_file: skip``)."""

    n_listed: int = 0
    missing_files: list[str] = field(default_factory=list)
    unlisted_files: list[str] = field(default_factory=list)
    undecodable: list[dict[str, str]] = field(default_factory=list)
    empty_labels: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {
            "n_listed": self.n_listed,
            "n_missing_files": len(self.missing_files),
            "n_unlisted_files": len(self.unlisted_files),
            "n_undecodable": len(self.undecodable),
            "missing_files": self.missing_files,
            "unlisted_files": self.unlisted_files,
            "undecodable": self.undecodable,
        }
        # only when rows were dropped, so the report of clean data keeps its keys (and its hash)
        if self.empty_labels:
            out["n_empty_labels"] = len(self.empty_labels)
            out["empty_labels"] = self.empty_labels
        return out


def file_stem(name: str | os.PathLike, suffixes: Iterable[str]) -> str:
    """The file name without directories and without the first of ``suffixes`` it ends with
    (case-insensitive): what the dataset layouts parse their naming conventions from."""
    stem = Path(name).name
    for ext in suffixes:
        if stem.lower().endswith(ext):
            return stem[: -len(ext)]
    return stem


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` with ``/`` separators (the form stored in indexes and
    reports); a path outside ``root`` is returned unchanged."""
    p, r = Path(path), Path(root)
    try:
        return p.relative_to(r).as_posix()
    except ValueError:
        try:
            return p.resolve().relative_to(r.resolve()).as_posix()
        except ValueError:
            return str(path)


def resolve_paths(paths: Iterable[str], root: str | os.PathLike | None) -> list[str]:
    """Index paths joined to the dataset ``root`` (absolute paths stay as they are)."""
    if root is None:
        return [str(p) for p in paths]
    return [str(Path(root) / p) for p in paths]


def _read_csv(path: Path) -> pd.DataFrame:
    """Every column as text: labels such as ``01`` or ``1`` stay as written (an integer column with
    one empty cell would otherwise turn into floats, ``1.0``), folds are parsed by :func:`_parse_folds`."""
    if not path.is_file():
        raise DataLayoutError(f"{path}: metadata CSV not found")
    try:
        df = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataLayoutError(f"{path}: cannot parse metadata CSV ({exc})") from exc
    if df.empty:
        raise DataLayoutError(f"{path}: metadata CSV has no rows")
    return df


def _line(row: object) -> int:
    """The line of a CSV data row in the file (the header is line 1; rows keep their
    ``read_csv`` index through every filter)."""
    return int(row) + 2  # type: ignore[call-overload]


def _parse_folds(df: pd.DataFrame, csv_path: Path) -> pd.DataFrame:
    """``fold`` as integers; an empty or non-integer cell is an error naming the file, column,
    line and value (``int()`` alone would name none of them)."""
    if "fold" not in df.columns:
        return df
    folds: list[int] = []
    for row, filename, value in zip(df.index, df["filename"], df["fold"]):
        text = "" if pd.isna(value) else str(value).strip()
        try:
            number = float(text) if text else float("nan")
        except ValueError:
            number = float("nan")
        if not text or not number.is_integer() or number < 0:
            what = "empty value" if not text else f"value {text!r} is not a non-negative integer"
            raise DataLayoutError(f"{csv_path}: line {_line(row)} ({filename}): column 'fold': {what}; "
                                  "folds must be integers such as 1, 2, 3 (or drop the column)")
        folds.append(int(number))
    df = df.copy()
    df["fold"] = pd.array(folds, dtype="Int64")
    return df


def _check_labels(
    df: pd.DataFrame, column: str, csv_path: Path, on_bad_file: str, report: QualityReport, task: str | None
) -> pd.DataFrame:
    """Labels stripped of surrounding whitespace (a column padded throughout, ``"dog "``, reads as
    ``"dog"``); rows with an empty or missing label fail, or are dropped and counted with
    ``on_bad_file: skip``; two spellings that differ only in case or surrounding space
    (``Dog``/``dog``, ``dog ``/``dog``) are an error either way, naming both: which one is meant
    is the user's call, and each would otherwise train a class of its own."""
    raw = df[column]
    labels = pd.Series([None if pd.isna(v) else str(v).strip() for v in raw], index=df.index, dtype=object)
    empty = labels.isna() | (labels == "")
    if empty.any():
        rows = [{"filename": str(f), "line": _line(r)} for r, f in zip(df.index[empty], df["filename"][empty])]
        shown = ", ".join(f"line {r['line']} ({r['filename']})" for r in rows[:5])
        msg = f"{csv_path}: {len(rows)} row(s) with an empty label in column '{column}': {shown}"
        if on_bad_file == "fail":
            raise DataLayoutError(msg + f" (fill them in, or {param_hint('data.on_bad_file', 'skip', task)} "
                                  "to drop them)")
        logger.warning("%s; skipping them", msg)
        report.empty_labels = rows
        df, labels = df[~empty], labels[~empty]
        if df.empty:
            raise DataLayoutError(f"{csv_path}: no row has a label in column '{column}'")
    changed = int((raw[labels.index].astype(str) != labels).sum())
    if changed:
        logger.info("%s: stripped surrounding whitespace from %d label(s) in column '%s'", csv_path, changed, column)
    spellings: dict[str, dict[str, list[int]]] = {}
    for row, label in labels.items():
        spellings.setdefault(label.casefold(), {}).setdefault(str(raw[row]), []).append(_line(row))
    clashes = [variants for variants in spellings.values() if len(variants) > 1]
    if clashes:
        described = "; ".join(
            " vs ".join(f"{label!r} ({len(lines)} row(s), first on line {lines[0]})" for label, lines in sorted(v.items()))
            for v in clashes[:5]
        )
        raise DataLayoutError(f"{csv_path}: column '{column}' spells {len(clashes)} label(s) in more than one way "
                              f"(case or surrounding space): "
                              f"{described}; each spelling would train a class of its own: use one spelling per class")
    df = df.copy()
    df[column] = labels.astype(str)
    return df


def _match_files(
    df: pd.DataFrame, audio_dir: Path, csv_path: Path, on_bad_file: str, report: QualityReport, root: Path,
    task: str | None = None,
) -> pd.DataFrame:
    """Check the CSV rows against the files on disk in both directions; ``path`` relative to ``root``."""
    if not audio_dir.is_dir():
        raise DataLayoutError(f"{audio_dir}: audio folder not found (metadata: {csv_path})")
    dupes = df["filename"][df["filename"].duplicated()].unique().tolist()
    if dupes:
        raise DataLayoutError(f"{csv_path}: filenames listed more than once: {dupes[:5]}")
    on_disk = {p.name for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES}
    listed = set(df["filename"])
    missing = sorted(listed - on_disk)
    unlisted = sorted(on_disk - listed)
    report.n_listed = len(df)
    if missing:
        msg = f"{csv_path}: {len(missing)} row(s) name audio files missing from {audio_dir}: {missing[:5]}"
        if on_bad_file == "fail":
            raise DataLayoutError(msg + f" ({param_hint('data.on_bad_file', 'skip', task)} to drop them)")
        logger.warning("%s; skipping them", msg)
        report.missing_files = missing
        df = df[~df["filename"].isin(missing)]
    if unlisted:
        msg = f"{audio_dir}: {len(unlisted)} audio file(s) have no row in {csv_path}: {unlisted[:5]}"
        if on_bad_file == "fail":
            raise DataLayoutError(msg + f" ({param_hint('data.on_bad_file', 'skip', task)} to ignore them)")
        logger.warning("%s; ignoring them", msg)
        report.unlisted_files = unlisted
    if df.empty:
        raise DataLayoutError(f"{csv_path}: no usable rows left after checking files")
    df = df.copy()
    df["path"] = [relative_path(audio_dir / f, root) for f in df["filename"]]
    return df


def _finish(df: pd.DataFrame, label_col: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "path": df["path"].astype(str),
            "filename": df["filename"].astype(str),
            "label": df[label_col].astype(str),
            "fold": pd.array(df["fold"], dtype="Int64") if "fold" in df else pd.array([pd.NA] * len(df), dtype="Int64"),
        }
    )
    return out.sort_values("filename", kind="stable").reset_index(drop=True)


def index_esc50(
    root: str | Path, *, esc10_only: bool = False, on_bad_file: str = "fail", task: str | None = None
) -> tuple[pd.DataFrame, QualityReport]:
    """Index an ESC-50 folder (``audio/*.wav`` + ``meta/esc50.csv``); label = ``category``.
    ``task`` (``asc``) spells the parameters that error messages suggest as ``--params`` keys."""
    root = Path(root)
    csv_path = root / "meta" / "esc50.csv"
    df = _read_csv(csv_path)
    absent = [c for c in ESC50_COLUMNS if c not in df.columns]
    if absent:
        raise DataLayoutError(f"{csv_path}: missing ESC-50 column(s) {absent}; found {list(df.columns)}")
    if esc10_only:
        esc10 = df["esc10"].astype(str).str.lower().isin(["true", "1"])
        df = df[esc10]
        if df.empty:
            raise DataLayoutError(f"{csv_path}: esc10_only=true but no row has esc10 == True")
    df = _parse_folds(df, csv_path)
    report = QualityReport()
    df = _match_files(df, root / "audio", csv_path, on_bad_file, report, root, task)
    df = _check_labels(df, "category", csv_path, on_bad_file, report, task)
    return _finish(df, "category"), report


def index_generic(
    root: str | Path,
    *,
    metadata: str | None = None,
    audio_dir: str = "audio",
    label_column: str = "label",
    on_bad_file: str = "fail",
    task: str | None = None,
) -> tuple[pd.DataFrame, QualityReport]:
    """Index a folder of audio files described by a CSV with ``filename,<label>[,fold]``.

    ``metadata`` defaults to the only ``*.csv`` directly under ``root``. Labels are stripped and
    checked (:func:`_check_labels`), folds must be integers. ``task`` (``asc``) spells the
    parameters that error messages suggest as ``--params`` keys.
    """
    root = Path(root)
    if metadata is None:
        csvs = sorted(root.glob("*.csv"))
        if len(csvs) != 1:
            raise DataLayoutError(
                f"{root}: expected exactly one metadata CSV in the folder, found {[c.name for c in csvs]}; "
                f"name one with {param_hint('data.metadata', csvs[0].name if csvs else 'labels.csv', task)}"
            )
        csv_path = csvs[0]
    else:
        csv_path = root / metadata
    df = _read_csv(csv_path)
    for col in ("filename", label_column):
        if col not in df.columns:
            raise DataLayoutError(
                f"{csv_path}: column '{col}' not found (label_column={label_column!r}); columns are {list(df.columns)}"
            )
    df = _parse_folds(df, csv_path)
    report = QualityReport()
    df = _match_files(df, root / audio_dir, csv_path, on_bad_file, report, root, task)
    df = _check_labels(df, label_column, csv_path, on_bad_file, report, task)
    return _finish(df, label_column), report
