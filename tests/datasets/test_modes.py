"""Outputs honour the umask (0644 / 0755 under umask 022), stay atomic, and hash the same whatever
temporary name they were written under."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlsp_pipelines.datasets import (  # noqa: E402
    AudioFolderDataset,
    CheckpointStore,
    CSVDataset,
    FigureDataset,
    JSONDataset,
    NpzDataset,
    TextDataset,
    TorchDataset,
)
from mlsp_pipelines.datasets.atomic import atomic_path, current_umask  # noqa: E402
from mlsp_pipelines.ingestion.audio import write_wav_atomic  # noqa: E402


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _figure() -> Figure:
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    return fig


def test_current_umask_reads_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_every_output_gets_the_mode_the_umask_gives(tmp_path: Path, umask: int) -> None:
    out = tmp_path / "out"
    saves = {
        "m.json": lambda p: JSONDataset(filepath=str(p)).save({"a": 1}),
        "t.md": lambda p: TextDataset(filepath=str(p)).save("x"),
        "c.csv": lambda p: CSVDataset(filepath=str(p)).save(pd.DataFrame({"a": [1]})),
        "f.png": lambda p: FigureDataset(filepath=str(p)).save(_figure()),
        "a.npz": lambda p: NpzDataset(filepath=str(p)).save({"x": np.zeros(3)}),
        "w.pt": lambda p: TorchDataset(filepath=str(p)).save({"w": torch.zeros(2)}),
        "k.ckpt": lambda p: CheckpointStore(p).save({"epoch": 1}),
        "s.wav": lambda p: write_wav_atomic(p, np.zeros(100, np.float32), 8000),
    }
    for name, save in saves.items():
        save(out / "sub" / name)
        assert mode(out / "sub" / name) == 0o666 & ~umask, name
    assert mode(out) == mode(out / "sub") == 0o777 & ~umask  # folders made on the way
    AudioFolderDataset(filepath=str(out / "raw")).save(
        {"audio": {"a/x.wav": np.zeros(100, np.float32)}, "sr": 8000, "tables": {"meta.csv": pd.DataFrame({"a": [1]})},
         "texts": {"notes.txt": "hi"}})
    raw = out / "raw"
    assert mode(raw) == mode(raw / "a") == 0o777 & ~umask  # the swapped-in folder too, not mkdtemp's 0700
    for f in ("a/x.wav", "meta.csv", "notes.txt"):
        assert mode(raw / f) == 0o666 & ~umask, f
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_a_failed_save_still_keeps_the_old_file_and_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    JSONDataset(filepath=str(target)).save({"a": 1})
    os.chmod(target, 0o640)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text().strip().startswith("{") and mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_torch_outputs_hash_the_same_under_any_temporary_name(tmp_path: Path) -> None:
    """``torch.save`` to a path names the archive's inner folder after the (random) temporary
    file, so two saves of the same model would never hash alike; the datasets save to a file
    object instead."""
    bundle = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "arch": "mlp", "epochs_run": 3}
    TorchDataset(filepath=str(tmp_path / "a" / "m.pt")).save(bundle)
    TorchDataset(filepath=str(tmp_path / "b" / "other_name.pt")).save(bundle)
    assert (tmp_path / "a" / "m.pt").read_bytes() == (tmp_path / "b" / "other_name.pt").read_bytes()
    CheckpointStore(tmp_path / "c.ckpt").save(bundle)
    CheckpointStore(tmp_path / "d.ckpt").save(bundle)
    assert (tmp_path / "c.ckpt").read_bytes() == (tmp_path / "d.ckpt").read_bytes()
    loaded = TorchDataset(filepath=str(tmp_path / "a" / "m.pt")).load()
    assert torch.equal(loaded["state_dict"]["w"], bundle["state_dict"]["w"])
