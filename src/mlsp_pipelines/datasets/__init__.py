"""Custom Kedro datasets. Every ``save`` writes a temporary file and ``os.replace``s it, so an
interrupted run never leaves a half-written artefact that a later run (or DVC) would trust.

Attributes load lazily, so ``datasets.checkpoint`` and ``datasets.atomic`` (used by the
training loop) do not import Kedro.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "atomic_path": "atomic",
    "CheckpointStore": "checkpoint",
    **{name: "files" for name in ("AudioFolderDataset", "CheckpointStoreDataset", "CSVDataset", "FigureDataset",
                                  "JSONDataset", "NpzDataset", "TextDataset", "TorchDataset")},
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
