"""Parallel corpora as tab-separated ``source<TAB>target`` lines (Tatoeba / Anki / Multi30K exports),
or as a folder of official splits.

Rules, strict because a silently mis-split line shifts every later pair:

* UTF-8 (a leading byte-order mark is accepted); ``\\n`` or ``\\r\\n`` line ends;
* columns after the second are not part of the pair (Anki exports add attribution there), but
  they are kept (``extra``, with the 1-based ``line``) so the data-quality report can count
  them: a tab inside a sentence would otherwise cut it silently;
* blank lines are skipped;
* a line without a tab, with an empty (whitespace-only) source or target, or with bytes that
  are not UTF-8 raises :class:`MalformedCorpusError` naming the file and the 1-based line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import DatasetError

from mlsp_pipelines.datasets.atomic import atomic_path
from mlsp_pipelines.datasets.files import FileDataset

logger = logging.getLogger(__name__)

COLUMNS: list[str] = ["source", "target"]


class MalformedCorpusError(ValueError):
    """A parallel-corpus line that cannot be read as ``source<TAB>target``; names file and line."""


def parse_parallel_lines(lines: Iterable[bytes | str], *, name: str = "<lines>") -> list[tuple[str, str]]:
    """``(source, target)`` pairs from TSV lines (bytes are decoded as UTF-8); ``name`` is used in errors."""
    return [(s, t) for s, t, _, _ in parse_parallel_records(lines, name=name)]


def parse_parallel_records(lines: Iterable[bytes | str], *, name: str = "<lines>") -> list[tuple[str, str, int, str]]:
    """``(source, target, line, extra)`` per pair: ``extra`` is whatever followed a second tab."""
    pairs: list[tuple[str, str, int, str]] = []
    for lineno, raw in enumerate(lines, 1):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedCorpusError(f"{name}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        else:
            line = raw.lstrip("\ufeff") if lineno == 1 else raw
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if "\t" not in line:
            raise MalformedCorpusError(
                f"{name}:{lineno}: expected 'source<TAB>target', found no tab in {_preview(line)}"
            )
        source, target, *rest = line.split("\t")
        source, target = source.strip(), target.strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise MalformedCorpusError(f"{name}:{lineno}: empty {side} in {_preview(line)}")
        pairs.append((source, target, lineno, "\t".join(rest)))
    return pairs


def _preview(line: str, limit: int = 60) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "...")


def read_parallel_tsv(path: str | os.PathLike, *, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """All ``(source, target)`` pairs of a TSV corpus (the first ``max_pairs`` when given)."""
    return [(s, t) for s, t, _, _ in read_parallel_records(path, max_pairs=max_pairs)]


def read_parallel_records(path: str | os.PathLike, *, max_pairs: int | None = None) -> list[tuple[str, str, int, str]]:
    """:func:`parse_parallel_records` of a TSV file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: parallel corpus not found")
    with open(path, "rb") as f:
        pairs = parse_parallel_records(f, name=str(path))
    if not pairs:
        raise MalformedCorpusError(f"{path}: no 'source<TAB>target' lines")
    return pairs[:max_pairs] if max_pairs is not None else pairs


def read_parallel_files(source: str | os.PathLike, target: str | os.PathLike) -> list[tuple[str, str, int, str]]:
    """Pairs from two line-aligned files (``train.en`` + ``train.de``): line k of one is the
    translation of line k of the other; their line counts must agree, and no side may be empty
    (blank lines are errors here, since they would shift the alignment)."""
    texts = []
    for path in (Path(source), Path(target)):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: parallel corpus file not found")
        raw = path.read_bytes()
        try:
            texts.append(raw.decode("utf-8-sig").splitlines())
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise MalformedCorpusError(f"{path}:{line}: not valid UTF-8 ({exc.reason})") from None
    src, tgt = texts
    if len(src) != len(tgt):
        raise MalformedCorpusError(f"{source} has {len(src)} lines but {target} has {len(tgt)}: not line-aligned")
    out = []
    for k, (a, b) in enumerate(zip(src, tgt), 1):
        a, b = a.strip(), b.strip()
        if not a or not b:
            raise MalformedCorpusError(f"{source if not a else target}:{k}: empty line in a line-aligned corpus")
        out.append((a, b, k, ""))
    if not out:
        raise MalformedCorpusError(f"{source}: no lines")
    return out


def write_parallel_tsv(path: str | os.PathLike, pairs: Iterable[tuple[str, str]]) -> None:
    """Write pairs as ``source<TAB>target`` lines, atomically; tabs or line breaks inside a side are errors."""
    path = Path(path)
    lines = []
    for k, (source, target) in enumerate(pairs, 1):
        for side, text in (("source", source), ("target", target)):
            if any(c in text for c in "\t\r\n") or not text.strip():
                raise ValueError(f"{path}: pair {k} has an empty {side} or a tab/line break in it: {text!r}")
        lines.append(f"{source}\t{target}\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")


class ParallelTSVDataset(FileDataset):
    """Kedro dataset: a TSV parallel corpus ↔ ``DataFrame[source, target]``.

    ``load`` validates every line (see module docstring); ``save`` writes the ``source`` and
    ``target`` columns atomically. Point ``filepath`` at your corpus with a runtime parameter::

        seq2seq.corpus:
          type: mlsp_pipelines.datasets.parallel.ParallelTSVDataset
          filepath: ${runtime_params:corpus_path, data/01_raw/seq2seq/corpus.tsv}
    """

    def __init__(self, *, filepath: str, max_pairs: int | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, metadata=metadata)
        self._max_pairs = max_pairs

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "max_pairs": self._max_pairs, "type": type(self).__name__}

    def load(self) -> pd.DataFrame:
        """``source, target`` and, for the data-quality report, ``line`` and ``extra`` (text after
        a second tab; empty for a well-formed line)."""
        if not self._filepath.is_file():
            raise DatasetError(
                f"{self._filepath}: parallel corpus not found; pass your 'source<TAB>target' file with "
                "--params corpus_path=/path/to/corpus.tsv"
            )
        pairs = read_parallel_records(self._filepath, max_pairs=self._max_pairs)
        logger.info("read %d sentence pairs from %s", len(pairs), self._filepath)
        return pd.DataFrame(pairs, columns=[*COLUMNS, "line", "extra"])

    def save(self, data: pd.DataFrame) -> None:
        missing = [c for c in COLUMNS if c not in data]
        if missing:
            raise DatasetError(f"{self._filepath}: cannot save a corpus without column(s) {missing}")
        write_parallel_tsv(self._filepath, zip(data["source"].astype(str), data["target"].astype(str)))


#: File stems tried for each split, in order (Multi30K names its validation set ``val``,
#: WMT ``dev`` or ``valid``, Multi30K's 2016 test set ``test_2016_flickr``).
SPLIT_STEMS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "valid", "validation", "dev"),
    "test": ("test", "test_2016_flickr", "test2016"),
}


class ParallelSplitsDataset(FileDataset):
    """A folder of official splits → ``DataFrame[split, source, target, file, line, extra]``.

    Per split, either ``<stem>.tsv`` (``source<TAB>target`` lines) or the line-aligned pair
    ``<stem>.<source_lang>`` + ``<stem>.<target_lang>`` (Multi30K's ``train.en``/``train.de``),
    where ``<stem>`` is the first of :data:`SPLIT_STEMS` (or of ``stems``) that exists.
    ``train`` and ``test`` are required; a missing ``val`` is reported (the pipeline then holds
    out part of train, seeded, and says so). ``max_pairs`` caps each split (first lines)::

        seq2seq.corpus_splits:
          type: mlsp_pipelines.datasets.parallel.ParallelSplitsDataset
          path: ${runtime_params:corpus_dir, data/01_raw/seq2seq/corpus}
          source_lang: ${runtime_params:source_lang, en}
          target_lang: ${runtime_params:target_lang, de}
    """

    def __init__(self, *, path: str, source_lang: str = "en", target_lang: str = "de",
                 stems: dict[str, list[str]] | None = None, max_pairs: int | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=path, metadata=metadata)  # a folder
        self._path = self._filepath
        self._langs = (source_lang, target_lang)
        self._stems = {k: tuple(v) for k, v in {**SPLIT_STEMS, **(stems or {})}.items()}
        self._max_pairs = max_pairs

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "langs": self._langs, "type": type(self).__name__}

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _find(self, split: str) -> tuple[list[Path], list[tuple[str, str, int, str]]] | None:
        src, tgt = self._langs
        for stem in self._stems.get(split, (split,)):
            tsv = self._path / f"{stem}.tsv"
            if tsv.is_file():
                return [tsv], read_parallel_records(tsv, max_pairs=self._max_pairs)
            a, b = self._path / f"{stem}.{src}", self._path / f"{stem}.{tgt}"
            if a.is_file() and b.is_file():
                return [a, b], read_parallel_files(a, b)[: self._max_pairs]
        return None

    def load(self) -> pd.DataFrame:
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: corpus folder not found; pass a folder of split files with "
                               "--params corpus_dir=/path/to/corpus")
        frames = []
        for split in ("train", "val", "test"):
            try:
                found = self._find(split)
            except MalformedCorpusError as exc:
                raise DatasetError(str(exc)) from exc
            if found is None:
                if split == "val":
                    logger.warning("%s: no validation split (tried %s)", self._path, ", ".join(self._stems["val"]))
                    continue
                names = ", ".join(f"{s}.tsv or {s}.{self._langs[0]} + {s}.{self._langs[1]}" for s in self._stems[split])
                raise DatasetError(f"{self._path}: no {split} split; expected one of: {names}")
            files, records = found
            df = pd.DataFrame(records, columns=[*COLUMNS, "line", "extra"])
            df.insert(0, "split", split)
            df["file"] = " + ".join(f.name for f in files)
            frames.append(df)
            logger.info("%s split: %d pairs from %s", split, len(df), df["file"].iloc[0])
        return pd.concat(frames, ignore_index=True)

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError(f"{self._path}: ParallelSplitsDataset is read-only")
