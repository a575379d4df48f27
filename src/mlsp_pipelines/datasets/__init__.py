"""Custom Kedro datasets. Every ``save`` writes a temporary file and ``os.replace``s it, so an
interrupted run never leaves a half-written artefact that a later run (or DVC) would trust."""

from .atomic import atomic_path
from .files import (
    AudioFolderDataset,
    CheckpointStore,
    CheckpointStoreDataset,
    CSVDataset,
    FigureDataset,
    JSONDataset,
    NpzDataset,
    TextDataset,
    TorchDataset,
)

__all__ = [
    "AudioFolderDataset",
    "CSVDataset",
    "CheckpointStore",
    "CheckpointStoreDataset",
    "FigureDataset",
    "JSONDataset",
    "NpzDataset",
    "TextDataset",
    "TorchDataset",
    "atomic_path",
]
