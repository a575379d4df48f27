"""Loader for the DCASE Task 1 releases as published: TAU Urban Acoustic Scenes 2019,
2020 Mobile and 2022 Mobile (development sets), plus the 2024/2025 data-efficiency subsets.

Layout (one folder, every listed path relative to it)::

    audio/<scene>-<city>-<location>-<segment>[-<sub-segment>]-<device>.wav
    meta.csv                         filename  scene_label  identifier  source_label   (tab-separated)
    evaluation_setup/fold1_train.csv     filename  scene_label
    evaluation_setup/fold1_evaluate.csv  filename  scene_label
    evaluation_setup/fold1_test.csv      filename                        (optional, not used)
    split_setup/split{5,10,25,50,100}.csv  filename ...                 (optional, DCASE 2024/2025)

``filename`` is ``audio/<name>.wav``; ``identifier`` is the recording location
(``<city>-<location>``), ``source_label`` the device (``a``, ``b``, ``c`` real; ``s1``... simulated).
The 2022 release cuts every 10 s segment into 1 s pieces, hence the extra sub-segment index.

The official setup decides the splits: ``fold1_train`` trains (a validation part is carved from it
later, by whole locations), ``fold1_evaluate`` tests. The development set's ``fold1_test.csv``
lists the same files as ``fold1_evaluate.csv`` without labels (what a challenge system is run
on), so it is only checked for agreement. Files of ``meta.csv`` that the setup does not list
(both 2019 and 2020 leave some out to balance locations) are not used and are counted.

Parsing is strict and every error names the file and line: a silently mis-read setup file
changes the benchmark without any other visible symptom.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mlsp_pipelines.ingestion.index import AUDIO_SUFFIXES, DataLayoutError, file_stem, relative_path
from mlsp_pipelines.params import param_hint

logger = logging.getLogger(__name__)

META_FILE = "meta.csv"
META_COLUMNS: tuple[str, ...] = ("filename", "scene_label", "identifier", "source_label")
SETUP_DIR = "evaluation_setup"
SUBSET_DIR = "split_setup"
SUBSETS: tuple[int, ...] = (5, 10, 25, 50, 100)
#: Columns of the index rows this loader adds to the generic ones (path, filename, label, fold).
INDEX_COLUMNS: list[str] = ["path", "filename", "label", "fold", "group", "split", "device", "city"]

_NAME_RE = re.compile(
    r"^(?P<scene>[a-z_]+)-(?P<city>[a-z_]+)-(?P<location>\d+)-(?P<segment>\d+)(?:-(?P<subsegment>\d+))?"
    r"-(?P<device>[a-z]|s\d+)$"
)


@dataclass(frozen=True)
class TabTable:
    """A parsed tab-separated file: its rows and the 1-based line number of each row."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray

    def where(self, row: int) -> str:
        """``<file>: line <n>`` of the ``row``-th data row (for error messages)."""
        return f"{self.path}: line {int(self.lines[row])}"


def parse_tau_filename(name: str | os.PathLike) -> dict[str, object]:
    """Split a TAU file name (with or without ``audio/`` and ``.wav``) into ``{scene, city,
    location, segment, subsegment (None for 10 s releases), device, clip}``; ``clip`` names the
    10 s recording segment a file belongs to (all its devices and 1 s pieces share it).
    ``ValueError`` naming the file otherwise."""
    stem = file_stem(name, AUDIO_SUFFIXES)
    m = _NAME_RE.match(stem)
    if m is None:
        raise ValueError(
            f"{name}: not a TAU file name (expected <scene>-<city>-<location>-<segment>[-<sub-segment>]-<device>, "
            "e.g. airport-barcelona-0-0-a.wav or airport-barcelona-0-0-0-s1.wav)"
        )
    out: dict[str, object] = m.groupdict()
    out["location"], out["segment"] = int(m["location"]), int(m["segment"])
    out["subsegment"] = None if m["subsegment"] is None else int(m["subsegment"])
    out["clip"] = f"{m['scene']}-{m['city']}-{m['location']}-{m['segment']}"
    return out


def read_tab_file(path: str | os.PathLike, required: tuple[str, ...], what: str = "file") -> TabTable:
    """Read a tab-separated file with a header line, strictly: the ``required`` columns must be in
    the header, every row must have as many fields as the header and no empty required field,
    a ``filename`` may appear once. :class:`DataLayoutError` names the file and line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataLayoutError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataLayoutError(f"{path}: cannot read {what} ({exc})") from exc
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataLayoutError(f"{path}: line 1: empty; expected a tab-separated header {list(required)}")
    header = [h.strip() for h in lines[0].split("\t")]
    absent = [c for c in required if c not in header]
    if absent:
        hint = " (the file is not tab-separated)" if len(header) == 1 and ("," in lines[0] or " " in lines[0]) else ""
        raise DataLayoutError(f"{path}: line 1: missing column(s) {absent} in the header {header}; "
                              f"a {what} needs the tab-separated columns {list(required)}{hint}")
    rows: list[list[str]] = []
    numbers: list[int] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != len(header):
            raise DataLayoutError(f"{path}: line {lineno}: expected {len(header)} tab-separated fields "
                                  f"({', '.join(header)}), got {len(fields)}: {line!r}")
        record = dict(zip(header, fields))
        empty = [c for c in required if not record[c]]
        if empty:
            raise DataLayoutError(f"{path}: line {lineno}: empty {empty}: {line!r}")
        if "filename" in record:
            first = seen.setdefault(record["filename"], lineno)
            if first != lineno:
                raise DataLayoutError(f"{path}: line {lineno}: {record['filename']} is already listed on line {first}")
        rows.append(fields)
        numbers.append(lineno)
    if not rows:
        raise DataLayoutError(f"{path}: no rows after the header")
    return TabTable(path, pd.DataFrame(rows, columns=header), np.asarray(numbers, dtype=np.int64))


def _check_meta(meta: TabTable) -> pd.DataFrame:
    """Names parsed and checked against the metadata columns: scene, city and device must agree."""
    parsed = []
    for row, (fname, scene, ident, source) in enumerate(
            meta.frame[list(META_COLUMNS)].itertuples(index=False, name=None)):
        try:
            info = parse_tau_filename(fname)
        except ValueError as exc:
            raise DataLayoutError(f"{meta.where(row)}: {exc}") from None
        problems = []
        if info["scene"] != scene:
            problems.append(f"scene '{info['scene']}' in the name but scene_label '{scene}'")
        if info["device"] != source:
            problems.append(f"device '{info['device']}' in the name but source_label '{source}'")
        if ident.split("-")[0] != info["city"]:
            problems.append(f"city '{info['city']}' in the name but identifier '{ident}'")
        if problems:
            raise DataLayoutError(f"{meta.where(row)}: {fname}: {'; '.join(problems)}")
        parsed.append(info)
    info = pd.DataFrame(parsed)
    return meta.frame.assign(city=info["city"].to_numpy(), device=info["device"].to_numpy(),
                             clip=info["clip"].to_numpy(), line=meta.lines)


def _check_setup(setup: TabTable, meta: pd.DataFrame, meta_path: Path) -> None:
    """Every setup row names a file of ``meta.csv`` (with the same label, where it has one)."""
    labels = dict(zip(meta["filename"], meta["scene_label"]))
    has_label = "scene_label" in setup.frame.columns
    for row, fname in enumerate(setup.frame["filename"]):
        if fname not in labels:
            raise DataLayoutError(f"{setup.where(row)}: {fname} is not listed in {meta_path}")
        if has_label and setup.frame["scene_label"].iloc[row] != labels[fname]:
            raise DataLayoutError(f"{setup.where(row)}: {fname} has scene_label '{setup.frame['scene_label'].iloc[row]}' "
                                  f"but '{labels[fname]}' in {meta_path}")


def subset_units(train: pd.DataFrame, percent: int, seed: int) -> np.ndarray:
    """Boolean mask over ``train`` rows: a seeded, label-stratified ``percent`` % subset of whole
    10 s recordings (``clip``), nested (the 5 % subset lies inside the 10 % one, and so on)
    because every percentage takes a prefix of the same seeded order."""
    if percent >= 100:
        return np.ones(len(train), dtype=bool)
    keep: set[str] = set()
    for label in sorted(set(train["scene_label"])):
        clips = np.asarray(sorted(set(train.loc[train["scene_label"] == label, "clip"])), dtype=object)
        order = np.random.default_rng([seed, zlib.crc32(label.encode())]).permutation(len(clips))
        keep.update(clips[order[: max(1, math.ceil(len(clips) * percent / 100))]].tolist())
    return train["clip"].isin(keep).to_numpy()


def index_tau(
    root: str | os.PathLike,
    *,
    setup_dir: str = SETUP_DIR,
    subset: int = 100,
    subset_dir: str = SUBSET_DIR,
    subset_seed: int = 0,
    on_bad_file: Literal["fail", "skip"] = "fail",
    task: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Index a TAU Urban Acoustic Scenes folder as released: one row per file of the official
    setup with ``split`` (train/test from ``fold1_train``/``fold1_evaluate``), ``group`` (the
    recording location, so a validation part never shares a location with training), ``device``
    and ``city``. ``subset`` < 100 keeps that percentage of the training split: the official
    ``<subset_dir>/split<subset>.csv`` when present, else :func:`subset_units`. Paths are relative
    to ``root``. Returns the index and a data-quality dict. ``task`` (``asc``) spells the
    parameters that error messages suggest as ``--params`` keys."""
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset} must be one of {list(SUBSETS)} (percent of the training split)")
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"{root}: TAU dataset folder not found")
    meta_t = read_tab_file(root / META_FILE, META_COLUMNS, "metadata file (meta.csv)")
    meta = _check_meta(meta_t)
    setup = root / setup_dir
    train = read_tab_file(setup / "fold1_train.csv", ("filename", "scene_label"), "training setup file")
    _check_setup(train, meta, meta_t.path)
    evaluate_path = setup / "fold1_evaluate.csv"
    if not evaluate_path.is_file() and (setup / "fold1_test.csv").is_file():
        raise DataLayoutError(f"{evaluate_path}: not found; {setup / 'fold1_test.csv'} lists files without labels "
                              "(an evaluation-set release cannot be scored): point data_dir at the development set")
    evaluate = read_tab_file(evaluate_path, ("filename", "scene_label"), "evaluation setup file")
    _check_setup(evaluate, meta, meta_t.path)
    train_lines = dict(zip(train.frame["filename"], train.lines))
    for row, fname in enumerate(evaluate.frame["filename"]):
        if fname in train_lines:
            raise DataLayoutError(f"{evaluate.where(row)}: {fname} is also in the training split "
                                  f"({train.path}: line {train_lines[fname]})")
    # the unlabelled test list (and the DCASE 2024 split_setup/test.csv) should name the same files
    for other in (setup / "fold1_test.csv", root / subset_dir / "test.csv"):
        if other.is_file():
            test = read_tab_file(other, ("filename",), "test list")
            if set(test.frame["filename"]) != set(evaluate.frame["filename"]):
                logger.warning("%s does not list the same files as %s; the labelled %s is the test split",
                               test.path, evaluate.path, evaluate.path.name)

    split = pd.Series("", index=meta.index, dtype=object)
    split[meta["filename"].isin(set(train.frame["filename"]))] = "train"
    split[meta["filename"].isin(set(evaluate.frame["filename"]))] = "test"
    quality: dict = {"n_listed": int(len(meta)), "n_not_in_setup": int((split == "").sum())}
    df = meta.assign(split=split)
    df = df[df["split"] != ""]

    subset_source = "all"
    if subset < 100:
        is_train = (df["split"] == "train").to_numpy()
        listed = root / subset_dir / f"split{subset}.csv"
        if listed.is_file():
            table = read_tab_file(listed, ("filename",), "subset list")
            train_files = set(df.loc[is_train, "filename"])
            for row, fname in enumerate(table.frame["filename"]):
                if fname not in train_files:
                    raise DataLayoutError(f"{table.where(row)}: {fname} is not in the training split "
                                          f"({train.path})")
            keep = df["filename"].isin(set(table.frame["filename"])).to_numpy()
            subset_source = relative_path(listed, root)
        else:
            keep = np.zeros(len(df), dtype=bool)
            keep[is_train] = subset_units(df[is_train], subset, subset_seed)
            subset_source = f"seeded stratified ({listed.relative_to(root).as_posix()} not found; seed {subset_seed})"
        quality["n_outside_subset"] = int((is_train & ~keep).sum())
        df = df[keep | ~is_train]
    quality["subset"] = {"percent": int(subset), "source": subset_source}

    df = _match_audio(df, root, on_bad_file, quality, set(meta["filename"]), task)
    index = pd.DataFrame({
        "path": df["filename"].astype(str),
        "filename": [Path(f).name for f in df["filename"]],
        "label": df["scene_label"].astype(str),
        "fold": pd.array([pd.NA] * len(df), dtype="Int64"),
        "group": df["identifier"].astype(str),
        "split": df["split"].astype(str),
        "device": df["device"].astype(str),
        "city": df["city"].astype(str),
    }).sort_values("filename", kind="stable").reset_index(drop=True)
    for s in ("train", "test"):
        part = index[index["split"] == s]
        if part.empty:
            raise DataLayoutError(f"{root}: the official '{s}' split is empty after checking the files")
        quality[f"n_{s}"] = int(len(part))
        quality[f"devices_{s}"] = {k: int(v) for k, v in sorted(part["device"].value_counts().items())}
        quality[f"cities_{s}"] = {k: int(v) for k, v in sorted(part["city"].value_counts().items())}
    logger.info("indexed %d TAU files (train %d, test %d; subset %s %%, %s); devices %s",
                len(index), quality["n_train"], quality["n_test"], subset, subset_source, sorted(set(index["device"])))
    return index[INDEX_COLUMNS], quality


def _match_audio(df: pd.DataFrame, root: Path, on_bad_file: str, quality: dict, listed: set[str],
                 task: str | None = None) -> pd.DataFrame:
    """Setup files missing on disk fail (or are skipped and counted); audio on disk that
    ``meta.csv`` does not list likewise (fail, or ignored and counted)."""
    folders = sorted({Path(f).parent for f in df["filename"]})
    on_disk: set[str] = set()
    for folder in folders:
        if not (root / folder).is_dir():
            raise DataLayoutError(f"{root / folder}: audio folder not found (listed in {root / META_FILE})")
        on_disk |= {(folder / p.name).as_posix() for p in (root / folder).iterdir()
                    if p.suffix.lower() in AUDIO_SUFFIXES}
    missing = sorted(set(df["filename"]) - on_disk)
    quality["missing_files"] = missing
    quality["n_missing_files"] = len(missing)
    if missing:
        first = df.loc[df["filename"] == missing[0], "line"].iloc[0]
        msg = (f"{root / META_FILE}: {len(missing)} setup file(s) missing on disk, e.g. line {first}: {missing[0]} "
               f"(all: {missing[:5]})")
        if on_bad_file == "fail":
            raise DataLayoutError(msg + f" ({param_hint('data.on_bad_file', 'skip', task)} to drop them)")
        logger.warning("%s; skipping them", msg)
        df = df[~df["filename"].isin(missing)]
    unlisted = sorted(on_disk - listed)
    quality["unlisted_files"] = unlisted
    quality["n_unlisted_files"] = len(unlisted)
    if unlisted:
        msg = f"{root}: {len(unlisted)} audio file(s) have no row in {root / META_FILE}: {unlisted[:5]}"
        if on_bad_file == "fail":
            raise DataLayoutError(msg + f" ({param_hint('data.on_bad_file', 'skip', task)} to ignore them)")
        logger.warning("%s; ignoring them", msg)
    return df


__all__ = ["INDEX_COLUMNS", "META_COLUMNS", "SUBSETS", "TabTable", "index_tau", "parse_tau_filename",
           "read_tab_file", "subset_units"]
