"""Every Kedro dataset of the project, on one base (:class:`files.FileDataset`). Every ``save``
writes a temporary file and ``os.replace``s it, so an interrupted run never leaves a
half-written artefact that a later run (or DVC) would trust. The package reads and writes files;
it imports nothing from the task code above it (``ingestion``, ``pipelines``, ...).

Attributes load lazily, so ``datasets.checkpoint`` and ``datasets.atomic`` (used by the
training loop) do not import Kedro.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "atomic_path": "atomic",
    "CheckpointStore": "checkpoint",
    **{name: "text" for name in ("AnalogyDataset", "TextCorpusDataset", "Word2VecTextDataset", "WordSimDataset")},
    **{name: "parallel" for name in ("ParallelSplitsDataset", "ParallelTSVDataset")},
    **{name: "files" for name in ("AudioClipsDataset", "AudioFolderDataset", "FileDataset", "CheckpointStoreDataset", "CSVDataset", "FigureDataset",
                                  "JSONDataset", "NpzDataset", "TextDataset", "TorchDataset")},
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
