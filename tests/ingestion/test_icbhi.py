"""Tests for the ICBHI 2017 layout loader on hand-written files and the shared real sample."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import missing_real_data

from mlsp_pipelines.ingestion.audio import load_audio, write_wav_atomic
from mlsp_pipelines.ingestion.icbhi import (
    official_split,
    parse_annotation,
    parse_filename,
    read_diagnosis,
    scan_icbhi,
    segment_cycles,
)

SAMPLE = (Path(__file__).parents[2] / ".." / "shared" / "data" / "icbhi-sample").resolve()
SAMPLE_RECORDINGS = [
    "102_1b1_Ar_sc_Meditron",
    "103_2b2_Ar_mc_LittC2SE",
    "104_1b1_Ar_sc_Litt3200",
    "104_1b1_Pl_sc_Litt3200",
]


@pytest.fixture(scope="module")
def sample() -> Path:
    if not (SAMPLE / "102_1b1_Ar_sc_Meditron.wav").is_file():
        missing_real_data(f"ICBHI sample data not found at {SAMPLE} (shared/data/icbhi-sample is not checked out)")
    return SAMPLE


@pytest.fixture(scope="module")
def sample_cycles(sample: Path) -> pd.DataFrame:
    return scan_icbhi(sample)


def _txt_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------
# parse_annotation
def test_parse_annotation_exact(tmp_path: Path) -> None:
    p = tmp_path / "101_1b1_Al_sc_Meditron.txt"
    p.write_text("0.036\t0.579\t0\t0\n0.579\t2.45\t1\t0\r\n2.45\t3.893\t0\t1\n3.893\t5.793\t1\t1\n\n  \n")
    df = parse_annotation(p)
    expected = pd.DataFrame(
        {
            "start": [0.036, 0.579, 2.45, 3.893],
            "end": [0.579, 2.45, 3.893, 5.793],
            "crackles": np.array([0, 1, 0, 1], dtype=np.int64),
            "wheezes": np.array([0, 0, 1, 1], dtype=np.int64),
        }
    )
    pd.testing.assert_frame_equal(df, expected)


def test_parse_annotation_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_text("")
    df = parse_annotation(p)
    assert list(df.columns) == ["start", "end", "crackles", "wheezes"] and len(df) == 0


@pytest.mark.parametrize(
    "bad_line",
    [
        "1.0\t2.0\t0",  # too few fields
        "1.0\t2.0\t0\t0\t7",  # too many fields
        "1.0\tabc\t0\t0",  # non-numeric
        "2.0\t2.0\t0\t0",  # end == start
        "3.0\t2.0\t0\t0",  # end < start
        "1.0\t2.0\t2\t0",  # flag not 0/1
        "1.0\t2.0\t0\tyes",  # flag not 0/1
        "-1.0\t2.0\t0\t0",  # negative start
        "1.0\tnan\t0\t0",  # non-finite
    ],
)
def test_parse_annotation_malformed_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    p = tmp_path / "105_1b1_Tc_sc_Meditron.txt"
    p.write_text(f"0.0\t0.5\t0\t0\n0.5\t1.0\t1\t0\n{bad_line}\n")
    with pytest.raises(ValueError) as err:
        parse_annotation(p)
    msg = str(err.value)
    assert str(p) in msg and "line 3" in msg and repr(bad_line) in msg


def test_parse_annotation_interior_blank_line_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("0.0\t0.5\t0\t0\n\n0.5\t1.0\t1\t0\n")
    with pytest.raises(ValueError, match=r"a\.txt: line 2"):
        parse_annotation(p)


# ------------------------------------------------------------------------------------------
# parse_filename
def test_parse_filename() -> None:
    assert parse_filename("101_1b1_Al_sc_Meditron.wav") == {
        "patient": 101,
        "index": "1b1",
        "location": "Al",
        "mode": "sc",
        "device": "Meditron",
    }
    meta = parse_filename(Path("/data/icbhi/226_1b1_Pl_sc_LittC2SE.txt"))
    assert meta["patient"] == 226 and meta["device"] == "LittC2SE" and meta["location"] == "Pl"
    assert parse_filename("103_2b2_Ar_mc_LittC2SE")["mode"] == "mc"
    assert parse_filename("107_2b3_Al_mc_AKGC417L.wav")["device"] == "AKGC417L"


@pytest.mark.parametrize(
    "name", ["readme.wav", "101_1b1_Al_sc.wav", "abc_1b1_Al_sc_Meditron.wav", "101-1b1-Al-sc-X.wav"]
)
def test_parse_filename_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        parse_filename(name)


# ------------------------------------------------------------------------------------------
# read_diagnosis
@pytest.mark.parametrize(
    "text",
    ["ID,CLASS\n101,URTI\n102,Healthy\n", "101,URTI\n102,Healthy\n\n", "101\tURTI\n102\tHealthy\n"],
    ids=["header", "no-header", "tabs"],
)
def test_read_diagnosis_with_and_without_header(tmp_path: Path, text: str) -> None:
    p = tmp_path / "patient_diagnosis.csv"
    p.write_text(text)
    df = read_diagnosis(p)
    assert df["patient"].tolist() == [101, 102] and df["patient"].dtype == np.int64
    assert df["diagnosis"].tolist() == ["URTI", "Healthy"]


@pytest.mark.parametrize(
    ("text", "line"),
    [("101,URTI\nx102,COPD\n", "line 2"), ("101,URTI\n101,COPD\n", "line 2"), ("101,URTI,extra\n", "line 1")],
)
def test_read_diagnosis_errors_name_line(tmp_path: Path, text: str, line: str) -> None:
    p = tmp_path / "diag.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=rf"diag\.csv: {line}"):
        read_diagnosis(p)


# ------------------------------------------------------------------------------------------
# scan_icbhi on the real sample
def test_scan_real_sample(sample: Path, sample_cycles: pd.DataFrame) -> None:
    cycles = sample_cycles
    assert cycles.attrs["skipped"] == []
    assert sorted(cycles["recording"].unique()) == [f"{r}.wav" for r in SAMPLE_RECORDINGS]
    for rec in SAMPLE_RECORDINGS:
        rows = _txt_rows(sample / f"{rec}.txt")
        sub = cycles[cycles["recording"] == f"{rec}.wav"]
        assert len(sub) == len(rows)
        assert sub["cycle"].tolist() == list(range(len(rows)))
        np.testing.assert_allclose(sub["start"], [float(r[0]) for r in rows])
        np.testing.assert_allclose(sub["end"], [float(r[1]) for r in rows])
        assert sub["crackles"].tolist() == [int(r[2]) for r in rows]
        assert sub["wheezes"].tolist() == [int(r[3]) for r in rows]
    assert len(cycles) == 46
    assert sorted(cycles["patient"].unique()) == [102, 103, 104]
    diag = cycles.groupby("patient")["diagnosis"].unique().map(list).to_dict()
    assert diag == {102: ["Healthy"], 103: ["Asthma"], 104: ["COPD"]}
    assert cycles["label"].value_counts().to_dict() == {"normal": 32, "wheeze": 14}
    per_rec = cycles[cycles["label"] == "wheeze"].groupby("recording").size().to_dict()
    assert per_rec == {"103_2b2_Ar_mc_LittC2SE.wav": 4, "104_1b1_Ar_sc_Litt3200.wav": 10}
    assert set(cycles["device"]) == {"Meditron", "LittC2SE", "Litt3200"}
    assert set(cycles["location"]) == {"Ar", "Pl"}
    assert dict(zip(cycles["device"], cycles["sr"])) == {"Meditron": 44100, "LittC2SE": 44100, "Litt3200": 4000}
    assert all(not Path(p).is_absolute() and (sample / p).is_file() for p in cycles["path"])


def test_scan_labels_cover_all_four_classes(tmp_path: Path) -> None:
    write_wav_atomic(tmp_path / "101_1b1_Al_sc_Meditron.wav", np.zeros(4000, np.float32), 4000)
    rows = ["0\t0.2\t0\t0", "0.2\t0.4\t1\t0", "0.4\t0.6\t0\t1", "0.6\t0.9\t1\t1"]
    (tmp_path / "101_1b1_Al_sc_Meditron.txt").write_text("\n".join(rows) + "\n")
    cycles = scan_icbhi(tmp_path)
    assert cycles["label"].tolist() == ["normal", "crackle", "wheeze", "both"]
    assert cycles["diagnosis"].isna().all()  # no patient_diagnosis.csv in the folder


# ------------------------------------------------------------------------------------------
# scan_icbhi error handling
def _mini_layout(folder: Path) -> None:
    for name in ("101_1b1_Al_sc_Meditron", "102_1b1_Ar_sc_Meditron"):
        write_wav_atomic(folder / f"{name}.wav", np.zeros(8000, np.float32), 4000)
        (folder / f"{name}.txt").write_text("0.1\t1.0\t0\t0\n1.0\t1.9\t1\t0\n")
    (folder / "patient_diagnosis.csv").write_text("101,URTI\n102,COPD\n")


def test_scan_wav_without_txt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _mini_layout(tmp_path)
    orphan = tmp_path / "103_1b1_Tc_sc_Meditron.wav"
    write_wav_atomic(orphan, np.zeros(800, np.float32), 4000)
    with pytest.raises(ValueError, match="103_1b1_Tc_sc_Meditron"):
        scan_icbhi(tmp_path)
    with caplog.at_level(logging.WARNING):
        cycles = scan_icbhi(tmp_path, on_bad_file="skip")
    assert len(cycles) == 4 and set(cycles["patient"]) == {101, 102}
    assert [p for p, _ in cycles.attrs["skipped"]] == [orphan.name]  # relative to the folder
    assert "103_1b1_Tc_sc_Meditron" in caplog.text


def test_scan_txt_without_wav_and_bad_annotation(tmp_path: Path) -> None:
    _mini_layout(tmp_path)
    lone = tmp_path / "104_1b1_Pl_sc_Meditron.txt"
    lone.write_text("0\t1\t0\t0\n")
    with pytest.raises(ValueError, match="104_1b1_Pl_sc_Meditron.txt"):
        scan_icbhi(tmp_path)
    (tmp_path / "101_1b1_Al_sc_Meditron.txt").write_text("0.1\t1.0\t0\t0\n1.0\tx\t1\t0\n")
    cycles = scan_icbhi(tmp_path, on_bad_file="skip")
    assert set(cycles["recording"]) == {"102_1b1_Ar_sc_Meditron.wav"}
    skipped = dict(cycles.attrs["skipped"])
    assert set(skipped) == {lone.name, "101_1b1_Al_sc_Meditron.txt"}
    assert skipped["101_1b1_Al_sc_Meditron.txt"].startswith("line 2:")
    lone.unlink()
    with pytest.raises(ValueError, match="line 2"):
        scan_icbhi(tmp_path)


def test_scan_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_file"):
        scan_icbhi(tmp_path, on_bad_file="ignore")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="nope"):
        scan_icbhi(tmp_path / "nope")


# ------------------------------------------------------------------------------------------
# splits
def _fake_cycles(n_patients: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(100, 100 + n_patients):
        mix = rng.dirichlet([1, 1, 1, 1])
        for lab in rng.choice(["normal", "crackle", "wheeze", "both"], size=rng.integers(3, 15), p=mix):
            rows.append({"patient": p, "label": lab})
    return pd.DataFrame(rows)


def test_official_split(sample_cycles: pd.DataFrame, tmp_path: Path) -> None:
    f = tmp_path / "ICBHI_challenge_train_test.txt"
    f.write_text(
        "101_1b1_Al_sc_Meditron\ttest\n102_1b1_Ar_sc_Meditron\ttrain\n103_2b2_Ar_mc_LittC2SE\ttrain\n"
        "104_1b1_Ar_sc_Litt3200\ttest\n104_1b1_Pl_sc_Litt3200\ttest\n\n"
    )
    split = official_split(sample_cycles, f)
    assert split.index.equals(sample_cycles.index)
    expected = sample_cycles["patient"].map({102: "train", 103: "train", 104: "test"})
    assert (split == expected).all()
    f.write_text("102_1b1_Ar_sc_Meditron\ttrain\n103_2b2_Ar_mc_LittC2SE\ttrain\n")
    with pytest.raises(ValueError, match=r"ICBHI_challenge_train_test\.txt.*104_1b1_Ar_sc_Litt3200"):
        official_split(sample_cycles, f)
    f.write_text("102_1b1_Ar_sc_Meditron\tvalidation\n")
    with pytest.raises(ValueError, match="line 1"):
        official_split(sample_cycles, f)


# ------------------------------------------------------------------------------------------
# segment_cycles
def test_segment_cycles_real_sample(sample_cycles: pd.DataFrame, sample: Path) -> None:
    sr, length_s = 4000, 3.0
    x = segment_cycles(sample_cycles, sr=sr, length_s=length_s, root=sample)
    assert x.shape == (46, 12000) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and (np.abs(x).max(axis=1) > 0).all()
    # a Litt3200 recording is natively 4 kHz: a short cycle must equal the raw samples, zero-padded
    rows = np.flatnonzero(sample_cycles["recording"] == "104_1b1_Ar_sc_Litt3200.wav")
    row = rows[0]  # 0 - 0.54469 s
    c = sample_cycles.iloc[row]
    y = load_audio(sample / c["path"], sr)
    i0, i1 = round(c["start"] * sr), round(c["end"] * sr)
    np.testing.assert_array_equal(x[row, : i1 - i0], y[i0:i1])
    assert not x[row, i1 - i0 :].any()
    # a long cycle is cropped to its centre (default) or its start
    long_row = rows[10]  # 19.048 - 22.176 s (3.128 s)
    c = sample_cycles.iloc[long_row]
    i0, i1 = round(c["start"] * sr), round(c["end"] * sr)
    off = (i1 - i0 - 12000) // 2
    np.testing.assert_array_equal(x[long_row], y[i0 + off : i0 + off + 12000])
    xs = segment_cycles(sample_cycles.iloc[[long_row]], sr=sr, length_s=length_s, crop="start", root=sample)
    np.testing.assert_array_equal(xs[0], y[i0 : i0 + 12000])
    # resampled 44.1 kHz recordings agree with a direct segment read
    r = int(np.flatnonzero(sample_cycles["recording"] == "102_1b1_Ar_sc_Meditron.wav")[2])
    c = sample_cycles.iloc[r]
    direct = load_audio(sample / c["path"], sr, offset_s=c["start"], duration_s=c["end"] - c["start"])
    n = min(direct.size, 12000) - 200  # ignore resampler edge effects at the segment borders
    np.testing.assert_allclose(x[r, 200:n], direct[200:n], atol=0.02)


def test_segment_cycles_bad_arguments(sample_cycles: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="crop"):
        segment_cycles(sample_cycles, sr=4000, length_s=1.0, crop="end")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length_s"):
        segment_cycles(sample_cycles, sr=4000, length_s=0)
    with pytest.raises(ValueError, match="sr"):
        segment_cycles(sample_cycles, sr=0, length_s=1.0)


def test_segment_cycles_missing_file_names_it(tmp_path: Path, sample: Path) -> None:
    for name in ("104_1b1_Pl_sc_Litt3200.wav", "104_1b1_Pl_sc_Litt3200.txt"):
        shutil.copy(sample / name, tmp_path / name)
    cycles = scan_icbhi(tmp_path)
    (tmp_path / "104_1b1_Pl_sc_Litt3200.wav").unlink()
    with pytest.raises(ValueError, match="104_1b1_Pl_sc_Litt3200.wav"):
        segment_cycles(cycles, sr=4000, length_s=1.0, root=tmp_path)


def test_scan_missing_diagnosis_and_bad_name(tmp_path: Path) -> None:
    _mini_layout(tmp_path)
    (tmp_path / "patient_diagnosis.csv").write_text("ID,CLASS\n101,URTI\n")
    cycles = scan_icbhi(tmp_path)
    assert cycles.loc[cycles["patient"] == 101, "diagnosis"].eq("URTI").all()
    assert cycles.loc[cycles["patient"] == 102, "diagnosis"].isna().all()
    (tmp_path / "README.txt").write_text("not an annotation")  # unrelated text files are ignored
    bad = tmp_path / "stethoscope-test.wav"
    write_wav_atomic(bad, np.zeros(400, np.float32), 4000)
    with pytest.raises(ValueError, match="stethoscope-test.wav"):
        scan_icbhi(tmp_path)
    cycles = scan_icbhi(tmp_path, on_bad_file="skip")
    assert len(cycles) == 4 and [p for p, _ in cycles.attrs["skipped"]] == ["stethoscope-test.wav"]
