"""Project datasets: round trips, atomic saves and errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from kedro.io import DataCatalog, DatasetError  # noqa: E402

from mlsp_pipelines.datasets import (  # noqa: E402
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

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def only_file(folder: Path) -> list[str]:
    """Names in ``folder`` (temporary files would show up here, hidden or not)."""
    return sorted(p.name for p in folder.iterdir())


def test_json_round_trip_with_numpy_values(tmp_path: Path) -> None:
    ds = JSONDataset(filepath=str(tmp_path / "r" / "metrics.json"))
    assert not ds.exists()
    ds.save({"accuracy": np.float32(0.5), "n": np.int64(3), "per_class": np.array([1.0, 2.0]),
             "nested": {"ok": True, "name": "cnn"}})
    assert ds.exists()
    assert ds.load() == {"accuracy": 0.5, "n": 3, "per_class": [1.0, 2.0], "nested": {"ok": True, "name": "cnn"}}
    assert only_file(tmp_path / "r") == ["metrics.json"]


def test_json_unserialisable_value_keeps_previous_file(tmp_path: Path) -> None:
    ds = JSONDataset(filepath=str(tmp_path / "m.json"))
    ds.save({"a": 1})
    with pytest.raises(DatasetError, match="object"):
        ds.save({"a": object()})
    assert ds.load() == {"a": 1}
    assert only_file(tmp_path) == ["m.json"]


def test_csv_and_text_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"filename": ["a.wav", "b.wav"], "label": ["x", "y"], "fold": [1, 2]})
    ds = CSVDataset(filepath=str(tmp_path / "t.csv"))
    ds.save(df)
    pd.testing.assert_frame_equal(ds.load(), df)
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "filename,label,fold"  # no index column
    text = TextDataset(filepath=str(tmp_path / "board.md"))
    text.save("| model |\n|---|\n| cnn |\n")
    assert text.load() == "| model |\n|---|\n| cnn |\n"


def test_npz_round_trip_with_strings(tmp_path: Path) -> None:
    ds = NpzDataset(filepath=str(tmp_path / "f.npz"))
    data = {"X": np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32),
            "filename": np.array(["a.wav", "bb.wav", "ccc.wav"]), "label": ["dog", "cat", "dog"],
            "fold": np.array([1, 2, -1]), "hop_s": np.float64(0.016)}
    ds.save(data)
    out = ds.load()
    assert set(out) == set(data)
    np.testing.assert_array_equal(out["X"], data["X"])
    assert out["X"].dtype == np.float32
    assert out["filename"].dtype.kind == "U" and out["filename"].tolist() == ["a.wav", "bb.wav", "ccc.wav"]
    assert out["label"].tolist() == ["dog", "cat", "dog"]
    assert out["fold"].tolist() == [1, 2, -1] and float(out["hop_s"]) == 0.016
    assert only_file(tmp_path) == ["f.npz"]


def test_npz_rejects_object_arrays_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    ds = NpzDataset(filepath=str(path))
    with pytest.raises(DatasetError, match="f.npz") as exc:
        ds.save({"ok": np.zeros(2), "bad": np.array([{"a": 1}, None], dtype=object)})
    assert "bad" in str(exc.value) and "'ok'" not in str(exc.value)
    assert not path.exists() and only_file(tmp_path) == []


class Custom:
    """Any importable class: plain pickle would rebuild it, ``weights_only`` refuses to."""


def test_torch_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    ds = TorchDataset(filepath=str(tmp_path / "m.pt"))
    bundle = {"arch": "cnn", "kwargs": {"channels": [4, 8]}, "state_dict": {"w": torch.arange(6.0).reshape(2, 3)},
              "classes": ["a", "b"], "best_epoch": 3}
    ds.save(bundle)
    out = ds.load()
    assert out["arch"] == "cnn" and out["kwargs"] == {"channels": [4, 8]} and out["classes"] == ["a", "b"]
    assert torch.equal(out["state_dict"]["w"], bundle["state_dict"]["w"])

    ds.save({"obj": Custom()})  # arbitrary pickled objects are refused on load (weights_only=True)
    assert isinstance(torch.load(tmp_path / "m.pt", weights_only=False)["obj"], Custom)  # the file is fine
    with pytest.raises(DatasetError, match="m.pt"):
        ds.load()


def test_figure_saved_as_png_and_closed(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ds = FigureDataset(filepath=str(tmp_path / "plots" / "curve.png"), dpi=50)
    ds.save(fig)
    raw = (tmp_path / "plots" / "curve.png").read_bytes()
    assert raw.startswith(PNG_MAGIC) and len(raw) > 200
    assert ds.load() == raw
    assert not plt.fignum_exists(fig.number)
    assert only_file(tmp_path / "plots") == ["curve.png"]


@pytest.mark.parametrize(
    "cls, name",
    [(JSONDataset, "x.json"), (CSVDataset, "x.csv"), (NpzDataset, "x.npz"), (TorchDataset, "x.pt"),
     (TextDataset, "x.md"), (FigureDataset, "x.png")],
)
def test_missing_file_load_names_the_file(tmp_path: Path, cls: type, name: str) -> None:
    ds = cls(filepath=str(tmp_path / "nowhere" / name))
    assert not ds.exists()
    with pytest.raises(DatasetError, match=f"nowhere/{name}"):
        ds.load()


def test_checkpoint_store_dataset(tmp_path: Path) -> None:
    ds = CheckpointStoreDataset(filepath=str(tmp_path / "ck" / "cnn.ckpt"))
    assert ds.exists()  # the store exists even before the first checkpoint
    store = ds.load()
    assert isinstance(store, CheckpointStore) and store.path == tmp_path / "ck" / "cnn.ckpt"
    assert store.load() is None
    with pytest.raises(DatasetError, match="cnn.ckpt"):
        ds.save({"epoch": 1})


def test_datasets_build_from_catalog_config(tmp_path: Path) -> None:
    catalog = DataCatalog.from_config({
        "m": {"type": "mlsp_pipelines.datasets.JSONDataset", "filepath": str(tmp_path / "m.json")},
        "f": {"type": "mlsp_pipelines.datasets.NpzDataset", "filepath": str(tmp_path / "f.npz")},
    })
    catalog.save("m", {"a": 1})
    catalog.save("f", {"x": np.arange(3)})
    assert catalog.load("m") == {"a": 1}
    assert catalog.load("f")["x"].tolist() == [0, 1, 2]


# -- audio folders ----------------------------------------------------------------------------------
def _folder_data(names: list[str], sr: int = 8000) -> dict:
    t = np.arange(800) / sr
    audio = {f"audio/{n}": 0.5 * np.sin(2 * np.pi * (300 + 100 * k) * t) for k, n in enumerate(names)}
    meta = pd.DataFrame({"filename": names, "label": ["x"] * len(names)})
    return {"audio": audio, "sr": sr, "tables": {"metadata.csv": meta}, "texts": {"README.md": "v1"}}


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_audio_folder_round_trip_and_full_replacement(tmp_path: Path) -> None:
    target = tmp_path / "raw" / "asc"
    ds = AudioFolderDataset(filepath=str(target))
    assert not ds.exists()
    ds.save(_folder_data(["a.wav", "b.wav"]))
    assert ds.load() == str(target.resolve())
    assert _tree(target) == ["README.md", "audio/a.wav", "audio/b.wav", "metadata.csv"]
    y, sr = sf.read(target / "audio" / "a.wav")
    assert sr == 8000 and len(y) == 800 and abs(np.abs(y).max() - 0.5) < 1e-3
    assert pd.read_csv(target / "metadata.csv")["filename"].tolist() == ["a.wav", "b.wav"]

    new = _folder_data(["c.wav"])
    new["texts"] = {}
    ds.save(new)
    assert _tree(target) == ["audio/c.wav", "metadata.csv"]  # nothing of the old folder survives
    assert only_file(tmp_path / "raw") == ["asc"]  # no temporary or old folders left beside it


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_audio_folder_error_mid_save_keeps_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      exc: type[BaseException]) -> None:
    target = tmp_path / "asc"
    ds = AudioFolderDataset(filepath=str(target))
    ds.save(_folder_data(["a.wav", "b.wav"]))
    before = {name: (target / name).read_bytes() for name in _tree(target)}

    import mlsp_pipelines.datasets.files as audio_mod

    real = audio_mod.write_wav
    written: list[str] = []

    def dies_on_second(path, y, sr):  # type: ignore[no-untyped-def]
        if written:
            raise exc("disk full")
        written.append(str(path))
        real(path, y, sr)

    monkeypatch.setattr(audio_mod, "write_wav", dies_on_second)
    with pytest.raises((exc, DatasetError)):
        ds.save(_folder_data(["c.wav", "d.wav", "e.wav"]))
    assert len(written) == 1  # the failure happened after the new folder was partly written
    assert {name: (target / name).read_bytes() for name in _tree(target)} == before
    assert only_file(tmp_path) == ["asc"]


def test_audio_folder_failed_swap_keeps_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If moving the new folder into place fails, the old folder must be put back, not deleted."""
    target = tmp_path / "asc"
    ds = AudioFolderDataset(filepath=str(target))
    ds.save(_folder_data(["a.wav"]))
    before = _tree(target)

    import mlsp_pipelines.datasets.atomic as atomic_mod

    real_replace = os.replace
    calls: list[tuple[str, str]] = []

    def replace(src, dst):  # type: ignore[no-untyped-def]
        calls.append((str(src), str(dst)))
        if str(dst) == str(target) and ".tmp" in str(src):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_mod.os, "replace", replace)
    with pytest.raises((OSError, DatasetError)):
        ds.save(_folder_data(["z.wav"]))
    monkeypatch.setattr(atomic_mod.os, "replace", real_replace)
    assert any(dst == str(target) for _, dst in calls)
    assert target.is_dir() and _tree(target) == before


def test_audio_folder_missing_load_names_the_folder(tmp_path: Path) -> None:
    ds = AudioFolderDataset(filepath=str(tmp_path / "no_such_dataset"))
    with pytest.raises(DatasetError, match="no_such_dataset") as exc:
        ds.load()
    assert "data_dir" in str(exc.value)
