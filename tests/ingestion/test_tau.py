"""The TAU Urban Acoustic Scenes layout (DCASE Task 1 releases) on a generated fixture in the exact
released format: file names, the official setup, data-efficiency subsets and malformed files."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tau_layout import plan, write_tau  # noqa: E402

from mlsp_pipelines.ingestion.index import DataLayoutError  # noqa: E402
from mlsp_pipelines.ingestion.tau import index_tau, parse_tau_filename, subset_units  # noqa: E402


@pytest.fixture(scope="module")
def tau2020(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tau(tmp_path_factory.mktemp("tau2020"), "2020")


@pytest.fixture
def tau_copy(tmp_path: Path) -> Path:
    """A fresh (small) fixture a test may damage."""
    return write_tau(tmp_path / "tau", "2020", seconds=0.2)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


# -- file names ------------------------------------------------------------------------------------
def test_file_names_of_the_three_releases() -> None:
    ten = parse_tau_filename("audio/street_pedestrian-lisbon-1012-40401-a.wav")
    assert (ten["scene"], ten["city"], ten["location"], ten["segment"], ten["subsegment"], ten["device"]) == (
        "street_pedestrian", "lisbon", 1012, 40401, None, "a")
    one = parse_tau_filename("airport-barcelona-0-0-7-s6.wav")
    assert (one["segment"], one["subsegment"], one["device"]) == (0, 7, "s6")
    # the 1 s pieces of one 10 s segment, and its simultaneous recordings, share the clip
    assert one["clip"] == parse_tau_filename("airport-barcelona-0-0-3-b.wav")["clip"] == "airport-barcelona-0-0"
    with pytest.raises(ValueError, match=r"Airport_Barcelona\.wav: not a TAU file name"):
        parse_tau_filename("audio/Airport_Barcelona.wav")
    with pytest.raises(ValueError, match="not a TAU file name"):
        parse_tau_filename("airport-barcelona-0-0-x7.wav")  # not a device name


# -- the official setup ----------------------------------------------------------------------------
def test_index_follows_the_official_setup(tau2020: Path) -> None:
    index, quality = index_tau(tau2020)
    rows = pd.DataFrame(plan("2020"))
    setup = rows[rows["split"] != ""]
    assert len(index) == len(setup) == quality["n_train"] + quality["n_test"]
    assert quality["n_not_in_setup"] == (rows["split"] == "").sum() == 9  # the s5 clips: meta only
    assert "s5" not in set(index["device"])
    expected = dict(zip(setup["filename"].str.removeprefix("audio/"), setup["split"]))
    assert dict(zip(index["filename"], index["split"])) == expected
    train = pd.read_csv(tau2020 / "evaluation_setup" / "fold1_train.csv", sep="\t")
    assert set(index.loc[index["split"] == "train", "path"]) == set(train["filename"])
    # paths relative to the dataset folder, device and city parsed from the name, group = location
    assert all(p.startswith("audio/") and (tau2020 / p).is_file() for p in index["path"])
    row = index.set_index("filename").loc["bus-helsinki-2-0-s2.wav"]
    assert (row["device"], row["city"], row["group"], row["label"], row["split"]) == (
        "s2", "helsinki", "helsinki-2", "bus", "train")
    assert quality["devices_test"] == {"a": 18, "b": 9, "s4": 9}
    assert set(quality["devices_train"]) == {"a", "b", "s1", "s2", "s3"}
    assert quality["cities_test"] == {"barcelona": 12, "helsinki": 12, "lisbon": 12}
    # no recording location is in both splits
    assert index.groupby("group")["split"].nunique().max() == 1


@pytest.mark.parametrize("release, n_devices, n", [("2019", 1, 36), ("2022", 6, 162)])
def test_ten_second_2019_and_one_second_2022_releases(tmp_path: Path, release: str, n_devices: int, n: int) -> None:
    root = write_tau(tmp_path / release, release, seconds=0.2)
    index, quality = index_tau(root)
    assert len(index) == n and index["device"].nunique() == n_devices
    pieces = index["filename"].map(lambda f: parse_tau_filename(f)["subsegment"])
    assert pieces.isna().all() if release == "2019" else set(pieces) == {0, 1}


# -- malformed files: the file and line are named ----------------------------------------------------
def test_missing_setup_column_is_named(tau_copy: Path) -> None:
    path = tau_copy / "evaluation_setup" / "fold1_train.csv"
    _edit(path, "filename\tscene_label", "filename\tlabel")
    with pytest.raises(DataLayoutError, match=re.escape(f"{path}: line 1: missing column(s) ['scene_label']")):
        index_tau(tau_copy)


def test_comma_separated_setup_file_says_so(tau_copy: Path) -> None:
    path = tau_copy / "evaluation_setup" / "fold1_evaluate.csv"
    path.write_text(path.read_text().replace("\t", ","))
    with pytest.raises(DataLayoutError, match=r"fold1_evaluate\.csv: line 1: .*not tab-separated"):
        index_tau(tau_copy)


def test_setup_file_absent_from_meta_names_file_and_line(tau_copy: Path) -> None:
    meta = tau_copy / "meta.csv"
    name = "audio/park-lisbon-1-0-a.wav"
    path = tau_copy / "evaluation_setup" / "fold1_evaluate.csv"
    with path.open("a") as f:
        f.write(f"{name}\tpark\n")
    line = _line_of(path, name)
    assert line > 2
    with pytest.raises(DataLayoutError, match=re.escape(f"{path}: line {line}: {name} is not listed in {meta}")):
        index_tau(tau_copy)


@pytest.mark.parametrize("damage, message", [
    ("fields", r"line {line}: expected 2 tab-separated fields \(filename, scene_label\), got 3"),
    ("label", r"line {line}: audio/bus-lisbon-2-1-a\.wav has scene_label 'tram' but 'bus' in .*meta\.csv"),
    ("duplicate", r"line {line}: audio/bus-lisbon-2-1-a\.wav is already listed on line \d+"),
    ("both", r"line {line}: audio/bus-lisbon-2-1-a\.wav is also in the training split "
             r"\(.*fold1_train\.csv: line \d+\)"),
])
def test_malformed_setup_rows_name_file_and_line(tau_copy: Path, damage: str, message: str) -> None:
    name = "audio/bus-lisbon-2-1-a.wav"
    train = tau_copy / "evaluation_setup" / "fold1_train.csv"
    target = tau_copy / "evaluation_setup" / ("fold1_evaluate.csv" if damage == "both" else "fold1_train.csv")
    if damage == "fields":
        _edit(train, f"{name}\tbus\n", f"{name}\tbus\textra\n")
    elif damage == "label":
        _edit(train, f"{name}\tbus\n", f"{name}\ttram\n")
    else:
        with target.open("a") as f:
            f.write(f"{name}\tbus\n")
    line = max(i for i, ln in enumerate(target.read_text().splitlines(), start=1) if name in ln)
    with pytest.raises(DataLayoutError, match=re.escape(str(target)) + ": " + message.format(line=line)):
        index_tau(tau_copy)


def test_meta_name_disagreeing_with_its_columns_is_named(tau_copy: Path) -> None:
    meta = tau_copy / "meta.csv"
    _edit(meta, "audio/bus-lisbon-2-0-s3.wav\tbus\tlisbon-2\ts3", "audio/bus-lisbon-2-0-s3.wav\tbus\tlisbon-2\tb")
    line = _line_of(meta, "audio/bus-lisbon-2-0-s3.wav")
    with pytest.raises(DataLayoutError, match=re.escape(f"{meta}: line {line}: audio/bus-lisbon-2-0-s3.wav: "
                                                         "device 's3' in the name but source_label 'b'")):
        index_tau(tau_copy)


def test_missing_meta_column_and_missing_files(tau_copy: Path) -> None:
    (tau_copy / "evaluation_setup" / "fold1_evaluate.csv").rename(tau_copy / "moved.csv")
    with pytest.raises(DataLayoutError, match=r"fold1_evaluate\.csv: not found; .*fold1_test\.csv lists files "
                                              r"without labels"):
        index_tau(tau_copy)
    (tau_copy / "moved.csv").rename(tau_copy / "evaluation_setup" / "fold1_evaluate.csv")
    meta = tau_copy / "meta.csv"
    _edit(meta, "\tsource_label", "\tdevice")
    with pytest.raises(DataLayoutError, match=re.escape(f"{meta}: line 1: missing column(s) ['source_label']")):
        index_tau(tau_copy)


def test_missing_audio_fails_naming_the_meta_line_or_is_skipped_and_counted(tau_copy: Path) -> None:
    name = "audio/airport-helsinki-1-1-a.wav"
    (tau_copy / name).unlink()
    line = _line_of(tau_copy / "meta.csv", name)
    with pytest.raises(DataLayoutError, match=rf"meta\.csv: 1 setup file\(s\) missing on disk, e\.g\. line {line}: "
                                              + re.escape(name)):
        index_tau(tau_copy)
    index, quality = index_tau(tau_copy, on_bad_file="skip")
    assert quality["missing_files"] == [name] and quality["n_test"] == 35
    assert name.removeprefix("audio/") not in set(index["filename"])


# -- data-efficiency subsets (DCASE 2024/2025) --------------------------------------------------------
def test_official_subset_list_is_used_and_checked(tau_copy: Path) -> None:
    train = pd.read_csv(tau_copy / "evaluation_setup" / "fold1_train.csv", sep="\t")
    chosen = train.iloc[::4]
    (tau_copy / "split_setup").mkdir()
    chosen.to_csv(tau_copy / "split_setup" / "split25.csv", sep="\t", index=False)
    index, quality = index_tau(tau_copy, subset=25)
    assert set(index.loc[index["split"] == "train", "path"]) == set(chosen["filename"])
    assert quality["n_test"] == 36  # the test split is never reduced
    assert quality["subset"] == {"percent": 25, "source": "split_setup/split25.csv"}
    assert quality["n_outside_subset"] == len(train) - len(chosen)
    # a listed file outside the training split is named with its line
    with (tau_copy / "split_setup" / "split25.csv").open("a") as f:
        f.write("audio/bus-lisbon-3-0-a.wav\tbus\n")  # a test-split file
    line = _line_of(tau_copy / "split_setup" / "split25.csv", "bus-lisbon-3-0-a")
    with pytest.raises(DataLayoutError, match=rf"split25\.csv: line {line}: audio/bus-lisbon-3-0-a\.wav is not in "
                                              r"the training split"):
        index_tau(tau_copy, subset=25)


def test_seeded_subsets_are_stratified_nested_and_reproducible(tau2020: Path) -> None:
    full, _ = index_tau(tau2020)
    chosen = {}
    for p in (5, 10, 25, 50):
        index, quality = index_tau(tau2020, subset=p)
        train = index[index["split"] == "train"]
        chosen[p] = set(train["filename"])
        assert set(train["label"]) == set(full["label"])  # every scene keeps a share
        assert (index["split"] == "test").sum() == (full["split"] == "test").sum()
        assert quality["subset"]["source"].startswith("seeded stratified")
        clips = train["filename"].map(lambda f: parse_tau_filename(f)["clip"])
        all_clips = full["filename"].map(lambda f: parse_tau_filename(f)["clip"])
        # whole 10 s recordings: every device of a chosen clip comes along
        assert set(full.loc[all_clips.isin(set(clips)) & (full["split"] == "train"), "filename"]) == chosen[p]
    assert chosen[5] <= chosen[10] <= chosen[25] <= chosen[50]
    assert len(chosen[5]) < len(chosen[50]) < (full["split"] == "train").sum()
    frame = pd.DataFrame({"scene_label": ["x"] * 40 + ["y"] * 40, "clip": [f"c{i}" for i in range(80)]})
    a, b, c = (subset_units(frame, 25, s) for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[:40].sum() == a[40:].sum() == 10


def test_subset_parameter_is_validated() -> None:
    from pydantic import ValidationError

    from mlsp_pipelines.ingestion.layouts import AudioDataParams

    assert AudioDataParams(source="tau", subset=5).options.subset == 5
    with pytest.raises(ValidationError, match="settings of data layout 'tau': subset: Input should be 5, 10, 25, 50 or 100"):
        AudioDataParams(source="tau", subset=7)
    with pytest.raises(ValidationError, match=r"layout 'esc50': subset: Extra inputs are not permitted \(the layout's "
                                              r"settings: esc10_only\)"):
        AudioDataParams(source="esc50", subset=10)


def test_test_lists_disagreeing_with_fold1_evaluate_are_warned_about(tau_copy: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    (tau_copy / "split_setup").mkdir()
    (tau_copy / "split_setup" / "test.csv").write_text("filename\tscene_label\naudio/bus-lisbon-3-0-a.wav\tbus\n")
    with caplog.at_level(logging.WARNING):
        index, _ = index_tau(tau_copy)
    assert "test.csv does not list the same files as" in caplog.text and "fold1_test.csv" not in caplog.text
    assert (index["split"] == "test").sum() == 36  # fold1_evaluate decides
