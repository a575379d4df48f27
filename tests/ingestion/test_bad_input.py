"""Bad input that used to pass silently: empty or inconsistently spelled labels, non-integer folds,
clip lengths far from the rest, feature arrays too large for memory; and the spelling of the
parameter hints in the messages."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mlsp_pipelines.features.logmel import auto_clip_length, n_frames
from mlsp_pipelines.ingestion.index import DataLayoutError, index_esc50, index_generic
from mlsp_pipelines.modular.audio import nodes
from mlsp_pipelines.modular.audio.pipeline import create_pipeline
from mlsp_pipelines.ingestion.layouts import AudioDataParams
from mlsp_pipelines.params import FeatureParams, SplitParams

SR = 8000
AUTO = {"sr": "auto", "clip_s": "auto", "n_fft": "auto", "hop_length": "auto", "n_mels": "auto", "fmax": None}


def _tone(n_samples: int, k: int = 0) -> np.ndarray:
    t = np.arange(n_samples) / SR
    return (0.3 * np.sin(2 * np.pi * (300 + 50 * k) * t)).astype(np.float32)


def _folder(root: Path, rows: list[tuple[str, object, object]], *, samples: dict[str, int] | None = None,
            default_samples: int = 4000) -> Path:
    """``root/audio/<file>`` tones (``default_samples`` long unless ``samples`` says otherwise) and
    ``root/labels.csv`` with the given ``filename,label,fold`` cells written as they are."""
    (root / "audio").mkdir(parents=True)
    for k, (name, _, _) in enumerate(rows):
        sf.write(root / "audio" / name, _tone((samples or {}).get(name, default_samples), k), SR, subtype="PCM_16")
    lines = ["filename,label,fold"] + [f"{n},{'' if lab is None else lab},{'' if f is None else f}" for n, lab, f in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _rows(labels: list[object], folds: list[object] | None = None) -> list[tuple[str, object, object]]:
    folds = folds if folds is not None else [1 + k % 2 for k in range(len(labels))]
    return [(f"c{k:02d}.wav", lab, f) for k, (lab, f) in enumerate(zip(labels, folds))]


def _bound(name: str, task: str = "asc"):  # type: ignore[no-untyped-def]
    """The node function of the ``task``'s feature pipeline, as Kedro calls it (task bound)."""
    return next(n.func for n in create_pipeline(task).nodes if n.name == name)


# -- labels ---------------------------------------------------------------------------------------
def test_empty_label_cell_is_an_error_naming_file_line_and_the_skip_key(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["dog", "cat", None, "dog"]))
    with pytest.raises(DataLayoutError) as exc:
        _bound("index_audio")(str(root), AudioDataParams(source="generic"))
    msg = str(exc.value)
    assert "labels.csv" in msg and "line 4 (c02.wav)" in msg and "empty label" in msg
    assert "--params asc.data.on_bad_file=skip" in msg


def test_empty_label_is_skipped_counted_and_no_label_is_cut(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["dog", "cat", None, "dog", "cat", " "]))
    index, report = index_generic(root, on_bad_file="skip")
    assert index["filename"].tolist() == ["c00.wav", "c01.wav", "c03.wav", "c04.wav"]
    quality = report.to_dict()
    assert quality["n_empty_labels"] == 2
    assert quality["empty_labels"] == [{"filename": "c02.wav", "line": 4}, {"filename": "c05.wav", "line": 7}]
    features, dq = nodes.compute_logmel(index, quality, FeatureParams(**AUTO, workers=1), "skip", str(root))
    # whole words, not the one-letter classes a fixed-width <U1 array made of them
    assert features["label"].tolist() == ["dog", "cat", "dog", "cat"]
    assert dq["n_empty_labels"] == 2 and dq["n_clips"] == 4


def test_labels_are_stripped_of_surrounding_space(tmp_path: Path) -> None:
    """A column padded throughout (one spelling per class) reads as the bare labels."""
    root = _folder(tmp_path / "d", _rows(["a ", "a ", " b", " b", " b"]))
    index, _ = index_generic(root)
    assert index["label"].tolist() == ["a", "a", "b", "b", "b"]
    features, _ = nodes.compute_logmel(index, {}, FeatureParams(**AUTO, workers=1), "fail", str(root))
    assert sorted(set(features["label"].tolist())) == ["a", "b"]


def test_labels_differing_only_in_surrounding_space_are_an_error_naming_both(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["a", "a ", "b", "b"]))
    with pytest.raises(DataLayoutError) as exc:
        index_generic(root)
    msg = str(exc.value)
    assert "labels.csv" in msg and "case or surrounding space" in msg
    assert "'a ' (1 row(s), first on line 3)" in msg and "'a' (1 row(s), first on line 2)" in msg


@pytest.mark.parametrize("on_bad_file", ["fail", "skip"])
def test_labels_differing_only_in_case_are_an_error_naming_both(tmp_path: Path, on_bad_file: str) -> None:
    root = _folder(tmp_path / "d", _rows(["dog", "Dog ", "cat", "dog"]))
    with pytest.raises(DataLayoutError) as exc:
        index_generic(root, on_bad_file=on_bad_file)
    msg = str(exc.value)
    assert "labels.csv" in msg and "'label'" in msg
    assert "'Dog ' (1 row(s), first on line 3)" in msg and "'dog' (2 row(s), first on line 2)" in msg


def test_esc50_categories_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    names = ["1-1-A-0.wav", "1-2-A-0.wav", "2-3-A-1.wav"]
    for k, name in enumerate(names):
        sf.write(tmp_path / "audio" / name, _tone(800, k), SR, subtype="PCM_16")
    pd.DataFrame({"filename": names, "fold": [1, 1, 2], "target": [0, 0, 1], "category": ["dog", "Dog", "rain"],
                  "esc10": [True] * 3}).to_csv(tmp_path / "meta" / "esc50.csv", index=False)
    with pytest.raises(DataLayoutError, match="'Dog'.*'dog'") as exc:
        index_esc50(tmp_path)
    assert "esc50.csv" in str(exc.value) and "'category'" in str(exc.value)


@pytest.mark.parametrize("value", ["three", "1.5", "-1"])
def test_non_integer_fold_names_file_column_line_and_value(tmp_path: Path, value: str) -> None:
    root = _folder(tmp_path / "d", _rows(["a", "b", "a"], folds=[1, 2, value]))
    with pytest.raises(DataLayoutError) as exc:
        index_generic(root)
    msg = str(exc.value)
    assert "labels.csv" in msg and "line 4 (c02.wav)" in msg and "column 'fold'" in msg and repr(value) in msg


def test_integer_folds_and_numeric_labels_are_read_as_written(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["01", "1", "01"], folds=[" 2", "1", "2.0"]))
    index, _ = index_generic(root)
    assert index["fold"].tolist() == [2, 1, 2] and index["fold"].dtype == "Int64"
    assert index["label"].tolist() == ["01", "1", "01"]


# -- clip lengths ---------------------------------------------------------------------------------
def test_auto_clip_length_ignores_one_very_long_clip() -> None:
    assert auto_clip_length([1.0] * 35 + [600.0]) == 1.0  # the plain 99th percentile: 390 s
    assert auto_clip_length([4.0] * 20) == 4.0  # equal clips: their length, as before
    durations = list(np.linspace(0.5, 1.9, 30))  # no outlier: the 99th percentile, rounded up
    assert auto_clip_length(durations) == pytest.approx(np.ceil(np.percentile(durations, 99) * 10) / 10)


def test_one_long_clip_among_short_ones_neither_pads_every_clip_nor_passes_unreported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    labels = ["a", "b"] * 6 + ["a"]
    rows = _rows(labels)
    long_name = rows[-1][0]
    root = _folder(tmp_path / "d", rows, samples={long_name: 60 * SR})  # 60 s among 0.5 s clips
    index, quality = index_generic(root)
    with caplog.at_level(logging.WARNING):
        features, dq = _bound("compute_logmel")(index, quality.to_dict(), FeatureParams(**AUTO, workers=1), "fail",
                                                str(root))
    assert dq["features"]["clip_s"] == 0.5
    assert features["X"].shape[1] == n_frames(FeatureParams(**{**AUTO, **dq["features"]}))
    assert dq["n_long_clips"] == 1 and dq["long_clips"] == [{"path": f"audio/{long_name}", "duration_s": 60.0}]
    assert "n_short_clips" not in dq
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert long_name in warned and "--params asc.features.clip_s=" in warned


def test_clip_length_outliers_are_errors_with_split_strict(tmp_path: Path) -> None:
    rows = _rows(["a", "b"] * 4)
    root = _folder(tmp_path / "d", rows, samples={rows[3][0]: 30 * SR})
    index, quality = index_generic(root)
    with pytest.raises(ValueError) as exc:
        _bound("compute_logmel")(index, quality.to_dict(), FeatureParams(**AUTO, workers=1), "fail", str(root),
                                 SplitParams(strict=True))
    msg = str(exc.value)
    assert rows[3][0] in msg and "asc.split.strict=true" in msg and "--params asc.split.strict=false" in msg


def test_a_ten_sample_clip_is_reported_as_mostly_padding(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = _rows(["a", "b"] * 3)
    tiny = rows[2][0]
    root = _folder(tmp_path / "d", rows, samples={tiny: 10})
    index, quality = index_generic(root)
    params = FeatureParams(sr=SR, clip_s=0.5, n_fft=256, hop_length=128, n_mels=16, fmax=None, workers=1)
    with caplog.at_level(logging.WARNING):
        _, dq = nodes.compute_logmel(index, quality.to_dict(), params, "fail", str(root))
    assert dq["n_short_clips"] == 1 and dq["short_clips"][0]["path"] == f"audio/{tiny}"
    assert "n_long_clips" not in dq
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert tiny in warned and "padding" in warned


def test_clean_data_reports_nothing_new(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["a", "b"] * 3))
    index, quality = index_generic(root)
    _, dq = nodes.compute_logmel(index, quality.to_dict(), FeatureParams(**AUTO, workers=1), "fail", str(root))
    assert set(dq) == {"n_listed", "n_missing_files", "n_unlisted_files", "n_undecodable", "missing_files",
                       "unlisted_files", "undecodable", "n_clips", "features"}
    assert set(dq["features"]) == {"sr", "clip_s", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db", "crop"}


# -- memory ---------------------------------------------------------------------------------------
def test_feature_array_over_the_memory_budget_stops_before_extraction(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _folder(tmp_path / "d", _rows(["a", "b"] * 3))
    index, quality = index_generic(root)

    def extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were extracted despite the budget")

    monkeypatch.setattr(nodes, "extract_logmel", extraction)
    params = FeatureParams(**AUTO, workers=1, max_memory_gb=1e-6)  # 1 kB
    with pytest.raises(ValueError) as exc:
        _bound("compute_logmel")(index, quality.to_dict(), params, "fail", str(root))
    msg = str(exc.value)
    frames = n_frames(FeatureParams(sr=SR, clip_s=0.5, n_fft=256, hop_length=64, n_mels=40))
    need = 6 * frames * 40 * 4 / 1e9
    assert f"{need:.3g} GB" in msg and "6 clips" in msg
    assert "--params asc.features.max_memory_gb=1" in msg and "--params asc.features.clip_s=" in msg


# -- hint spelling --------------------------------------------------------------------------------
def test_missing_and_unlisted_file_hints_use_the_command_line_spelling(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["a", "b"]))
    (root / "audio" / "c01.wav").unlink()
    with pytest.raises(DataLayoutError, match=r"\(--params asc\.data\.on_bad_file=skip to drop them\)"):
        _bound("index_audio")(str(root), AudioDataParams(source="generic"))
    root = _folder(tmp_path / "e", _rows(["a", "b"]))
    sf.write(root / "audio" / "stray.wav", _tone(800), SR)
    with pytest.raises(DataLayoutError, match=r"\(--params asc\.data\.on_bad_file=skip to ignore them\)"):
        _bound("index_audio")(str(root), AudioDataParams(source="generic"))


@pytest.mark.parametrize("task", ["asc", "asthma"])
def test_undecodable_file_hint_names_the_task_key(tmp_path: Path, task: str) -> None:
    root = _folder(tmp_path / "d", _rows(["a", "b"]))
    index, quality = index_generic(root)
    (root / "audio" / "c01.wav").write_bytes(b"not audio at all" * 10)
    params = FeatureParams(sr=SR, clip_s=0.5, n_fft=256, hop_length=128, n_mels=16, fmax=None, workers=1)
    with pytest.raises(ValueError) as exc:
        _bound("compute_logmel", task)(index, quality.to_dict(), params, "fail", str(root))
    assert "c01.wav" in str(exc.value) and f"(--params {task}.data.on_bad_file=skip to drop it)" in str(exc.value)


def test_several_csvs_hint_names_the_metadata_key(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", _rows(["a", "b"]))
    (root / "other.csv").write_text((root / "labels.csv").read_text())
    with pytest.raises(DataLayoutError, match=r"--params asc\.data\.metadata=labels\.csv"):
        _bound("index_audio")(str(root), AudioDataParams(source="generic"))
