"""Audio indexes (ESC-50 and generic layouts), bad-input handling and audio decoding."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mlsp_pipelines.features.logmel import extract_logmel, n_frames
from mlsp_pipelines.ingestion.audio import AudioDecodeError, load_audio
from mlsp_pipelines.ingestion.index import DataLayoutError, index_esc50, index_generic
from mlsp_pipelines.params import FeatureParams

SR = 8000


def _tone(freq: float, seconds: float = 0.25, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _generic_folder(root: Path, names: list[str], rows: list[str] | None = None) -> Path:
    """``root/audio/<names>`` as short tones and ``root/labels.csv`` listing ``rows`` (default: names)."""
    (root / "audio").mkdir(parents=True)
    for k, name in enumerate(names):
        sf.write(root / "audio" / name, _tone(300 + 100 * k), SR, subtype="PCM_16")
    rows = names if rows is None else rows
    pd.DataFrame({"filename": rows, "label": [f"c{k % 2}" for k in range(len(rows))],
                  "fold": [1 + k % 2 for k in range(len(rows))]}).to_csv(root / "labels.csv", index=False)
    return root


# -- ESC-50 layout --------------------------------------------------------------------------------
def test_esc50_sample_is_indexed(esc50_sample: Path) -> None:
    meta = pd.read_csv(esc50_sample / "meta" / "esc50.csv")
    index, report = index_esc50(esc50_sample)
    assert len(index) == 10
    assert list(index.columns) == ["path", "filename", "label", "fold"]
    assert index["filename"].tolist() == sorted(meta["filename"])
    # labels are the ESC-50 categories (not the numeric targets), matched row by row
    expected = dict(zip(meta["filename"], meta["category"]))
    assert index["label"].tolist() == [expected[f] for f in index["filename"]]
    assert set(index["label"]) == {"cat", "thunderstorm", "coughing", "door_wood_knock", "siren"}
    assert sorted(index["fold"].unique().tolist()) == [2, 4]
    assert (index["fold"] == 2).sum() == 1
    # paths are relative to the dataset root (no artefact depends on where the data sits)
    for path, name in zip(index["path"], index["filename"]):
        assert path == f"audio/{name}" and (esc50_sample / path).is_file()
    assert report.n_listed == 10
    assert report.missing_files == [] and report.unlisted_files == []


def test_esc50_esc10_only_without_esc10_rows_is_a_clear_error(esc50_sample: Path) -> None:
    with pytest.raises(DataLayoutError, match="esc10") as exc:
        index_esc50(esc50_sample, esc10_only=True)
    assert "esc50.csv" in str(exc.value)


def test_esc50_esc10_only_keeps_only_esc10_rows(esc50_sample: Path, tmp_path: Path) -> None:
    root = tmp_path / "ESC-50"
    shutil.copytree(esc50_sample / "audio", root / "audio")
    (root / "meta").mkdir()
    meta = pd.read_csv(esc50_sample / "meta" / "esc50.csv")
    chosen = meta["filename"].iloc[3]
    meta["esc10"] = meta["filename"] == chosen
    meta.to_csv(root / "meta" / "esc50.csv", index=False)

    full, _ = index_esc50(root)
    assert len(full) == 10  # esc10 column changes nothing unless asked for
    # The other nine clips are on disk without an (ESC-10) row: they are reported, not silently used.
    with pytest.raises(DataLayoutError, match="no row"):
        index_esc50(root, esc10_only=True)
    esc10, report = index_esc50(root, esc10_only=True, on_bad_file="skip")
    assert esc10["filename"].tolist() == [chosen]
    assert esc10["label"].tolist() == [meta.loc[3, "category"]]
    assert len(report.unlisted_files) == 9 and chosen not in report.unlisted_files


def test_esc50_missing_columns_are_named(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    pd.DataFrame({"filename": ["a.wav"], "fold": [1], "category": ["dog"]}).to_csv(
        tmp_path / "meta" / "esc50.csv", index=False)
    with pytest.raises(DataLayoutError, match="target") as exc:
        index_esc50(tmp_path)
    assert "esc10" in str(exc.value)


# -- generic layout ---------------------------------------------------------------------------------
def test_generic_fsdd_sample_is_indexed(fsdd_sample: Path) -> None:
    index, report = index_generic(fsdd_sample)  # the only CSV in the folder: labels.csv
    assert len(index) == 20
    assert sorted(index["label"].unique()) == [str(d) for d in range(10)]
    assert index["label"].value_counts().eq(2).all()
    assert index["fold"].dtype == "Int64"
    assert index["fold"].value_counts().to_dict() == {1: 10, 2: 10}
    # fold 1 = speaker george, fold 2 = speaker jackson
    assert all(("george" in f) == (fold == 1) for f, fold in zip(index["filename"], index["fold"]))
    assert all(not Path(p).is_absolute() and (fsdd_sample / p).is_file() for p in index["path"])
    assert report.n_listed == 20


def test_generic_without_fold_column_has_missing_folds(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav", "b.wav"])
    pd.read_csv(root / "labels.csv").drop(columns="fold").to_csv(root / "labels.csv", index=False)
    index, _ = index_generic(root)
    assert index["fold"].isna().all() and len(index) == 2


def test_row_whose_file_is_missing_names_the_file(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav", "b.wav"], rows=["a.wav", "b.wav", "ghost.wav"])
    with pytest.raises(DataLayoutError, match="ghost.wav") as exc:
        index_generic(root)
    assert "on_bad_file" in str(exc.value)


def test_file_without_row_names_the_file(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav", "b.wav", "stray.wav"], rows=["a.wav", "b.wav"])
    with pytest.raises(DataLayoutError, match="stray.wav"):
        index_generic(root)


def test_skip_drops_and_counts_bad_rows_and_files(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav", "b.wav", "stray.wav"],
                           rows=["a.wav", "b.wav", "ghost.wav"])
    index, report = index_generic(root, on_bad_file="skip")
    assert index["filename"].tolist() == ["a.wav", "b.wav"]
    assert report.missing_files == ["ghost.wav"]
    assert report.unlisted_files == ["stray.wav"]
    d = report.to_dict()
    assert (d["n_listed"], d["n_missing_files"], d["n_unlisted_files"]) == (3, 1, 1)


def test_unknown_label_column_is_named_with_the_columns(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav"])
    with pytest.raises(DataLayoutError, match="'category'") as exc:
        index_generic(root, label_column="category")
    assert "['filename', 'label', 'fold']" in str(exc.value)


def test_header_only_csv_is_an_error(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav"])
    (root / "labels.csv").write_text("filename,label,fold\n")
    with pytest.raises(DataLayoutError, match="no rows") as exc:
        index_generic(root)
    assert "labels.csv" in str(exc.value)


def test_zero_byte_csv_is_an_error(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav"])
    (root / "labels.csv").write_bytes(b"")
    with pytest.raises(DataLayoutError, match="labels.csv"):
        index_generic(root)


def test_several_csvs_need_the_metadata_parameter(tmp_path: Path) -> None:
    root = _generic_folder(tmp_path / "d", ["a.wav"])
    shutil.copy(root / "labels.csv", root / "other.csv")
    with pytest.raises(DataLayoutError, match="metadata"):
        index_generic(root)
    index, _ = index_generic(root, metadata="other.csv")
    assert index["filename"].tolist() == ["a.wav"]


# -- decoding ---------------------------------------------------------------------------------------
@pytest.fixture
def bad_audio(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "bad"
    folder.mkdir()
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    good = folder / "good.wav"
    sf.write(good, _tone(440.0, seconds=0.5), SR, subtype="PCM_16")
    return {"corrupt": corrupt, "empty": empty, "good": good}


@pytest.mark.parametrize("kind", ["corrupt", "empty"])
def test_load_audio_bad_file_names_the_file(bad_audio: dict[str, Path], kind: str) -> None:
    with pytest.raises(AudioDecodeError) as exc:
        load_audio(bad_audio[kind], SR)
    assert str(bad_audio[kind]) in str(exc.value)
    assert exc.value.path == str(bad_audio[kind])


def test_load_audio_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="does not exist") as exc:
        load_audio(tmp_path / "nope.wav", SR)
    assert "nope.wav" in str(exc.value)


def _tiny_features(**kw) -> FeatureParams:
    return FeatureParams(**{"sr": SR, "clip_s": 0.5, "n_fft": 256, "hop_length": 128, "n_mels": 16,
                            "fmax": 4000.0, "workers": 1, **kw})


def test_extract_logmel_skips_and_reports_undecodable(bad_audio: dict[str, Path]) -> None:
    order = ["good", "corrupt", "empty"]
    index = pd.DataFrame({"path": [str(bad_audio[k]) for k in order]})
    params = _tiny_features()
    X, keep, errors = extract_logmel(index, params, on_bad_file="skip", show_progress=False)
    assert keep.tolist() == [True, False, False]
    assert [e["path"] for e in errors] == [str(bad_audio["corrupt"]), str(bad_audio["empty"])]
    assert "corrupt.wav" in errors[0]["error"] and "empty" in errors[1]["error"]
    assert X.shape == (3, n_frames(params), 16)
    assert np.isfinite(X[0]).all() and X[0].max() > X[0].min()


def test_extract_logmel_fail_names_the_first_bad_file(bad_audio: dict[str, Path]) -> None:
    index = pd.DataFrame({"path": [str(bad_audio["good"]), str(bad_audio["corrupt"])]})
    with pytest.raises(AudioDecodeError) as exc:
        extract_logmel(index, _tiny_features(), on_bad_file="fail", show_progress=False)
    assert exc.value.path == str(bad_audio["corrupt"])
    assert "on_bad_file" in str(exc.value)


def _dominant_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()])


def test_multichannel_44k_is_downmixed_by_mean_and_resampled(tmp_path: Path) -> None:
    native = 44100
    n = native  # 1 s
    t = np.arange(n) / native
    left = 0.6 * np.sin(2 * np.pi * 440 * t)
    right = -0.2 * np.sin(2 * np.pi * 440 * t)  # the mean is 0.2 sin: neither channel alone, nor their sum
    third = 0.0 * t
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right, third], axis=1).astype(np.float32), native, subtype="FLOAT")

    same = load_audio(path, native)
    assert same.dtype == np.float32 and same.ndim == 1 and len(same) == n
    np.testing.assert_allclose(same, (left + right + third) / 3, atol=1e-6)

    y = load_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == 16000
    assert abs(_dominant_hz(y, 16000) - 440.0) <= 1.0
    # the amplitude of the channel mean, (0.6 - 0.2 + 0) / 3, survives the resampling
    assert abs(np.abs(y[1000:-1000]).max() - 0.4 / 3) < 0.005


def test_load_audio_reads_a_segment(tmp_path: Path) -> None:
    path = tmp_path / "ramp.wav"
    y = np.linspace(-0.5, 0.5, SR, dtype=np.float32)
    sf.write(path, y, SR, subtype="FLOAT")
    seg = load_audio(path, SR, offset_s=0.25, duration_s=0.5)
    np.testing.assert_allclose(seg, y[2000:6000], atol=1e-7)
    with pytest.raises(AudioDecodeError, match="no audio samples"):
        load_audio(path, SR, offset_s=2.0, duration_s=0.5)
