"""Parallel corpora as tab-separated ``source<TAB>target`` lines (Tatoeba / Anki / Multi30K exports).

Rules, strict because a silently mis-split line shifts every later pair:

* UTF-8 (a leading byte-order mark is accepted); ``\\n`` or ``\\r\\n`` line ends;
* columns after the second are ignored (Anki exports add attribution there);
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
from kedro.io import AbstractDataset, DatasetError

from mlsp_pipelines.datasets.atomic import atomic_path

logger = logging.getLogger(__name__)

COLUMNS: list[str] = ["source", "target"]


class MalformedCorpusError(ValueError):
    """A parallel-corpus line that cannot be read as ``source<TAB>target``; names file and line."""


def parse_parallel_lines(lines: Iterable[bytes | str], *, name: str = "<lines>") -> list[tuple[str, str]]:
    """``(source, target)`` pairs from TSV lines (bytes are decoded as UTF-8); ``name`` is used in errors."""
    pairs: list[tuple[str, str]] = []
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
        source, target = line.split("\t")[:2]
        source, target = source.strip(), target.strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise MalformedCorpusError(f"{name}:{lineno}: empty {side} in {_preview(line)}")
        pairs.append((source, target))
    return pairs


def _preview(line: str, limit: int = 60) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "...")


def read_parallel_tsv(path: str | os.PathLike, *, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """All ``(source, target)`` pairs of a TSV corpus (the first ``max_pairs`` when given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: parallel corpus not found")
    with open(path, "rb") as f:
        pairs = parse_parallel_lines(f, name=str(path))
    if not pairs:
        raise MalformedCorpusError(f"{path}: no 'source<TAB>target' lines")
    return pairs[:max_pairs] if max_pairs is not None else pairs


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


class ParallelTSVDataset(AbstractDataset):
    """Kedro dataset: a TSV parallel corpus ↔ ``DataFrame[source, target]``.

    ``load`` validates every line (see module docstring); ``save`` writes the ``source`` and
    ``target`` columns atomically. Point ``filepath`` at your corpus with a runtime parameter
    (``filepath: ${runtime_params:corpus_path, ...}``).
    """

    def __init__(self, *, filepath: str, max_pairs: int | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._max_pairs = max_pairs
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "max_pairs": self._max_pairs, "type": type(self).__name__}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def load(self) -> pd.DataFrame:
        if not self._filepath.is_file():
            raise DatasetError(
                f"{self._filepath}: parallel corpus not found; pass your 'source<TAB>target' file with "
                "--params corpus_path=/path/to/corpus.tsv"
            )
        pairs = read_parallel_tsv(self._filepath, max_pairs=self._max_pairs)
        logger.info("read %d sentence pairs from %s", len(pairs), self._filepath)
        return pd.DataFrame(pairs, columns=COLUMNS)

    def save(self, data: pd.DataFrame) -> None:
        missing = [c for c in COLUMNS if c not in data]
        if missing:
            raise DatasetError(f"{self._filepath}: cannot save a corpus without column(s) {missing}")
        write_parallel_tsv(self._filepath, zip(data["source"].astype(str), data["target"].astype(str)))
