"""Local-file datasets with atomic saves (the kedro-datasets shape: keyword-only ``__init__``,
``load``/``save``/``_describe``/``_exists``).

Hand-written rather than kedro-datasets' ``pandas.CSVDataset`` / ``json.JSONDataset`` /
``matplotlib.MatplotlibDataset``: those write through fsspec straight into the target file, so
an interrupted run leaves a half-written artefact that DVC and the next run take as complete.
Every save here goes to a temporary file in the same folder and is renamed into place. The
project does not depend on kedro-datasets."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from .atomic import atomic_dir, atomic_path
from .checkpoint import CheckpointStore

logger = logging.getLogger(__name__)


def write_wav(path: str | Path, y: np.ndarray, sr: int) -> None:
    """Write 16-bit PCM WAV directly (for files inside a folder that is itself swapped in atomically)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), sr, subtype="PCM_16", format="WAV")


class FileDataset(AbstractDataset):
    """The base of the project's file datasets: a single local file (``filepath``), its existence
    check and a clear error when it is missing."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    @property
    def filepath(self) -> Path:
        return self._filepath

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "type": type(self).__name__}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _require(self) -> None:
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath}: file not found (run the stage that produces it first)")


class JSONDataset(FileDataset):
    """A JSON document (metrics, reports, statistics)::

        "{task}.{arch}.metrics":
          type: mlsp_pipelines.datasets.JSONDataset
          filepath: data/07_model_output/{task}/{arch}/metrics.json
          metadata: {mlflow: {kind: metrics}}
    """

    def load(self) -> Any:
        self._require()
        with open(self._filepath, encoding="utf-8") as f:
            return json.load(f)

    def save(self, data: Any) -> None:
        with atomic_path(self._filepath) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n", encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


class TextDataset(FileDataset):
    """A text file (Markdown tables)::

        "{task}.leaderboard_md":
          type: mlsp_pipelines.datasets.TextDataset
          filepath: data/08_reporting/{task}/leaderboard.md
    """

    def load(self) -> str:
        self._require()
        return self._filepath.read_text(encoding="utf-8")

    def save(self, data: str) -> None:
        with atomic_path(self._filepath) as tmp:
            tmp.write_text(data, encoding="utf-8")


class CSVDataset(FileDataset):
    """A pandas DataFrame as CSV (no index column)::

        "{task}.index":
          type: mlsp_pipelines.datasets.CSVDataset
          filepath: data/02_intermediate/{task}/index.csv
    """

    def load(self) -> pd.DataFrame:
        self._require()
        return pd.read_csv(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        with atomic_path(self._filepath) as tmp:
            data.to_csv(tmp, index=False)


class FigureDataset(FileDataset):
    """A matplotlib figure saved as PNG (and closed, so long runs do not leak figures)::

        "{task}.{arch}.confusion_matrix_plot":
          type: mlsp_pipelines.datasets.FigureDataset
          filepath: data/08_reporting/{task}/models/{arch}/confusion_matrix.png
          metadata: {mlflow: {kind: figure, artifact: confusion_matrix.png}}
    """

    def __init__(self, *, filepath: str, dpi: int = 110, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=filepath, metadata=metadata)
        self._dpi = dpi

    def load(self) -> bytes:
        self._require()
        return self._filepath.read_bytes()

    def save(self, data: Any) -> None:
        with atomic_path(self._filepath) as tmp:
            data.savefig(tmp, format="png", dpi=self._dpi, bbox_inches="tight")
        pyplot = sys.modules.get("matplotlib.pyplot")  # a pyplot figure (a user's node) is released;
        if pyplot is not None:  # the project's own figures are plain Figure objects, never registered
            pyplot.close(data)


class NpzDataset(FileDataset):
    """A dict of numpy arrays in one ``.npz`` (no pickling: strings are stored as unicode arrays)::

        "{task}.features":
          type: mlsp_pipelines.datasets.NpzDataset
          filepath: data/04_feature/{task}/features.npz
    """

    def load(self) -> dict[str, np.ndarray]:
        self._require()
        with np.load(self._filepath, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save(self, data: dict[str, Any]) -> None:
        arrays = {k: np.asarray(v) for k, v in data.items()}
        bad = [k for k, v in arrays.items() if v.dtype == object]
        if bad:
            raise DatasetError(f"{self._filepath}: arrays {bad} have dtype object; convert to str or numbers")
        with atomic_path(self._filepath) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)


class TorchDataset(FileDataset):
    """A dict of tensors and plain values saved with ``torch.save``; loaded with ``weights_only``::

        "{task}.{arch}.model":
          type: mlsp_pipelines.datasets.TorchDataset
          filepath: data/06_models/{task}/{arch}.pt
          metadata: {mlflow: {kind: model, flavor: audio_classifier}}
    """

    def load(self) -> dict[str, Any]:
        import torch

        self._require()
        return torch.load(self._filepath, map_location="cpu", weights_only=True)

    def save(self, data: dict[str, Any]) -> None:
        import torch

        with atomic_path(self._filepath) as tmp:
            # through a file object: torch.save(path) names the zip's root folder after the (random)
            # temporary file, so identical models would get different bytes and DVC hashes
            with open(tmp, "wb") as f:
                torch.save(data, f)


class CheckpointStoreDataset(FileDataset):
    """Loads a :class:`CheckpointStore` for ``filepath`` (the file itself may not exist yet)::

        "{task}.{arch}.checkpoints":
          type: mlsp_pipelines.datasets.CheckpointStoreDataset
          filepath: data/06_models/{task}/checkpoints/{arch}.ckpt
    """

    def load(self) -> CheckpointStore:
        return CheckpointStore(self._filepath)

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._filepath}: checkpoints are written by the training loop, not saved as outputs")

    def _exists(self) -> bool:
        return True


class AudioFolderDataset(FileDataset):
    """A folder of audio files plus a metadata CSV.

    ``load`` returns the folder path (the index node reads the layout given by parameters, so
    ESC-50, generic and ICBHI folders share one dataset type). ``save`` takes
    ``{"audio": {relative name: waveform}, "sr": int, "tables": {relative name: DataFrame},
    "texts": {relative name: str}}`` and writes the whole folder atomically::

        asc.raw_audio:
          type: mlsp_pipelines.datasets.AudioFolderDataset
          filepath: ${runtime_params:data_dir, data/01_raw/generic}
    """

    def _exists(self) -> bool:
        return self._filepath.is_dir()

    def load(self) -> str:
        if not self._filepath.is_dir():
            raise DatasetError(
                f"{self._filepath}: audio folder not found; point the catalog entry (or the data_dir runtime "
                "parameter, e.g. --params data_dir=/path/to/dataset) at your dataset"
            )
        return str(self._filepath.resolve())

    def save(self, data: dict[str, Any]) -> None:
        sr = int(data["sr"])
        with atomic_dir(self._filepath) as tmp:
            for name, y in data.get("audio", {}).items():
                write_wav(tmp / name, y, sr)
            for name, df in data.get("tables", {}).items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                df.to_csv(tmp / name, index=False)
            for name, text in data.get("texts", {}).items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(text, encoding="utf-8")
        logger.info("wrote %d audio files to %s", len(data.get("audio", {})), self._filepath)


class AudioClipsDataset(FileDataset):
    """A folder of short WAV clips, ``{name: (samples, sample rate)}`` (16-bit PCM, ``<name>.wav``),
    swapped in whole (an interrupted save leaves the previous folder). Catalog entry::

        "{task}.{arch}.misclassified":
          type: mlsp_pipelines.datasets.AudioClipsDataset
          filepath: data/08_reporting/{task}/models/{arch}/misclassified
          metadata:
            mlflow: {kind: audio, artifact: misclassified}
    """

    def _exists(self) -> bool:
        return self._filepath.is_dir()

    def load(self) -> dict[str, tuple[np.ndarray, int]]:
        import soundfile as sf

        if not self._filepath.is_dir():
            raise DatasetError(f"{self._filepath}: folder not found (run the stage that produces it first)")
        out = {}
        for path in sorted(self._filepath.glob("*.wav")):
            audio, sr = sf.read(str(path), dtype="float32")
            out[path.stem] = (audio, int(sr))
        return out

    def save(self, data: dict[str, tuple[np.ndarray, int]]) -> None:
        with atomic_dir(self._filepath) as tmp:
            for name, (audio, sr) in data.items():
                write_wav(tmp / f"{name}.wav", audio, int(sr))
