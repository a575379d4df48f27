"""Tests for the synthetic respiratory-recording generator (determinism, annotations, event
placement, prevalence, and the round trip through the ICBHI loader)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.signal as ss
import scipy.stats as st
from scipy.ndimage import median_filter

from mlsp_pipelines.ingestion.audio import load_audio
from mlsp_pipelines.ingestion.icbhi import parse_filename, scan_icbhi
from mlsp_pipelines.simulation.respiratory import (
    DEFAULT_PREVALENCE,
    LABELS,
    synthesise_cycle,
    synthesise_recordings,
    write_icbhi_layout,
)

SR = 4000
DURATION = 20.0
EVENTFUL = {"normal": 0.4, "crackle": 0.2, "wheeze": 0.2, "both": 0.2}


@pytest.fixture(scope="module")
def corpus():
    return synthesise_recordings(
        n_patients=8, recordings_per_patient=2, duration_s=DURATION, sr=SR, seed=11, prevalence=EVENTFUL
    )


def _cycle_table(annotations: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = [a.assign(recording=name, patient=int(name.split("_")[0])) for name, a in annotations.items()]
    df = pd.concat(frames, ignore_index=True)
    df["label"] = np.asarray(LABELS)[df["crackles"] + 2 * df["wheezes"]]
    return df


# ------------------------------------------------------------------------------------------
def test_same_seed_identical_different_seed_differs() -> None:
    kw = dict(n_patients=2, recordings_per_patient=2, duration_s=10.0, sr=SR)
    r1, a1, p1 = synthesise_recordings(seed=5, **kw)
    r2, a2, p2 = synthesise_recordings(seed=5, **kw)
    r3, _, _ = synthesise_recordings(seed=6, **kw)
    assert list(r1) == list(r2)
    for name in r1:
        np.testing.assert_array_equal(r1[name], r2[name])
        pd.testing.assert_frame_equal(a1[name], a2[name])
    pd.testing.assert_frame_equal(p1, p2)
    assert list(r1) != list(r3) or any(not np.array_equal(r1[n], r3[n]) for n in r1)
    common = set(r1) & set(r3)
    assert all(not np.array_equal(r1[n], r3[n]) for n in common)


def test_recordings_do_not_depend_on_corpus_size() -> None:
    """Per-clip seeds are keyed by (seed, patient, recording), not by generation order."""
    kw = dict(recordings_per_patient=2, duration_s=10.0, sr=SR, seed=3)
    small, ann_small, pat_small = synthesise_recordings(n_patients=2, **kw)
    big, ann_big, pat_big = synthesise_recordings(n_patients=3, **kw)
    assert set(small) < set(big)
    for name in small:
        np.testing.assert_array_equal(small[name], big[name])
        pd.testing.assert_frame_equal(ann_small[name], ann_big[name])
    pd.testing.assert_frame_equal(pat_small, pat_big.iloc[:2])


def test_waveforms_and_annotations_consistent(corpus) -> None:
    recordings, annotations, patients = corpus
    assert set(recordings) == set(annotations)
    assert len(recordings) == 16
    assert list(patients.columns) == ["patient", "diagnosis"]
    assert patients["patient"].tolist() == list(range(101, 109))
    for name, y in recordings.items():
        meta = parse_filename(name)
        assert meta["device"] == "Synth" and meta["patient"] in set(patients["patient"])
        assert y.dtype == np.float32 and y.shape == (int(DURATION * SR),)
        assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0 and np.abs(y).max() > 1e-3
        a = annotations[name]
        assert list(a.columns) == ["start", "end", "crackles", "wheezes"]
        assert a["crackles"].dtype == np.int64 and a["wheezes"].dtype == np.int64
        assert set(a["crackles"]) <= {0, 1} and set(a["wheezes"]) <= {0, 1}
        assert len(a) >= 2
        assert (a["start"] >= 0).all() and (a["end"] <= DURATION).all()
        lengths = (a["end"] - a["start"]).to_numpy()
        assert np.all((lengths >= 1.2 - 1e-9) & (lengths <= 6.0 + 1e-9))
        np.testing.assert_allclose(a["start"].to_numpy()[1:], a["end"].to_numpy()[:-1])  # contiguous cycles


def test_wheeze_cycles_have_narrowband_peak(corpus) -> None:
    """A wheeze cycle has a prominent spectral line in 100-1000 Hz (peak over a local median
    baseline), a cycle without wheeze does not; compared on averages over many cycles."""
    recordings, annotations, _ = corpus
    rows = []
    for name, y in recordings.items():
        f, t, s = ss.spectrogram(y.astype(np.float64), fs=SR, nperseg=512, noverlap=256)
        band = (f >= 100) & (f <= 1000)
        prominence = np.log10(s[band] / median_filter(s, size=(15, 1), mode="nearest")[band]).max(axis=0)
        for start, end, _c, w in annotations[name].itertuples(index=False):
            rows.append((w, prominence[(t >= start) & (t < end)].max()))
    df = pd.DataFrame(rows, columns=["wheezes", "prominence"])
    assert (df["wheezes"] == 1).sum() >= 10 and (df["wheezes"] == 0).sum() >= 10
    wheeze = df.loc[df["wheezes"] == 1, "prominence"]
    other = df.loc[df["wheezes"] == 0, "prominence"]
    assert wheeze.mean() > other.mean() + 0.4  # > 2.5x stronger spectral line on average
    assert wheeze.median() > other.quantile(0.9)


def test_crackle_cycles_have_more_transients(corpus) -> None:
    """High-passed, envelope-normalised signal is heavy-tailed (kurtosis) where crackles are."""
    recordings, annotations, _ = corpus
    sos = ss.butter(4, 300, "hp", fs=SR, output="sos")
    win = int(0.2 * SR)  # envelope normalisation removes the breathing-envelope heavy tail
    rows = []
    for name, y in recordings.items():
        yh = ss.sosfiltfilt(sos, y.astype(np.float64))
        z = yh / (np.sqrt(np.convolve(yh**2, np.ones(win) / win, mode="same")) + 1e-12)
        for start, end, c, _w in annotations[name].itertuples(index=False):
            rows.append((c, st.kurtosis(z[int(start * SR) : int(end * SR)])))
    df = pd.DataFrame(rows, columns=["crackles", "kurtosis"])
    crackle = df.loc[df["crackles"] == 1, "kurtosis"]
    other = df.loc[df["crackles"] == 0, "kurtosis"]
    assert len(crackle) >= 10 and len(other) >= 10
    assert other.median() < 1.0  # envelope-normalised breath noise is close to Gaussian
    assert crackle.median() > other.median() + 1.0
    assert crackle.mean() > other.mean() + 2.0


def test_synthesise_cycle_labels() -> None:
    normal = np.stack([synthesise_cycle("normal", sr=SR, seed=s) for s in range(6)])
    crackle = np.stack([synthesise_cycle("crackle", sr=SR, seed=s) for s in range(6)])
    assert normal.shape == (6, 3 * SR) and normal.dtype == np.float32
    np.testing.assert_array_equal(normal[0], synthesise_cycle("normal", sr=SR, seed=0))
    sos = ss.butter(4, 300, "hp", fs=SR, output="sos")
    k_normal = st.kurtosis(ss.sosfiltfilt(sos, normal, axis=1), axis=1).mean()
    k_crackle = st.kurtosis(ss.sosfiltfilt(sos, crackle, axis=1), axis=1).mean()
    assert k_crackle > 2 * k_normal
    with pytest.raises(ValueError, match="label"):
        synthesise_cycle("rhonchus", sr=SR, seed=0)


def test_prevalence_roughly_as_configured() -> None:
    _, annotations, _ = synthesise_recordings(
        n_patients=40, recordings_per_patient=2, duration_s=20.0, sr=2000, seed=1
    )
    cycles = _cycle_table(annotations)
    share = cycles["label"].value_counts(normalize=True)
    for label, p in DEFAULT_PREVALENCE.items():
        assert abs(share.get(label, 0.0) - p) < 0.1, (label, share.to_dict())
    # patients differ: some mostly abnormal, some mostly normal
    abnormal = (cycles["label"] != "normal").groupby(cycles["patient"]).mean()
    assert abnormal.max() >= 0.8 and abnormal.min() <= 0.2


@pytest.mark.parametrize(
    ("prevalence", "crackles", "wheezes"),
    [({"normal": 1.0}, 0, 0), ({"crackle": 1.0}, 1, 0), ({"wheeze": 2.0}, 0, 1), ({"both": 1}, 1, 1)],
)
def test_degenerate_prevalence(prevalence, crackles, wheezes) -> None:
    _, annotations, _ = synthesise_recordings(
        n_patients=2, recordings_per_patient=1, duration_s=10.0, sr=2000, seed=0, prevalence=prevalence
    )
    cycles = _cycle_table(annotations)
    assert (cycles["crackles"] == crackles).all() and (cycles["wheezes"] == wheezes).all()


@pytest.mark.parametrize(
    ("override", "argument"),
    [
        ({"n_patients": 0}, "n_patients"),
        ({"n_patients": 2.5}, "n_patients"),
        ({"recordings_per_patient": 0}, "recordings_per_patient"),
        ({"duration_s": 2.0}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"sr": 500}, "sr"),
        ({"seed": -1}, "seed"),
        ({"prevalence": {"rale": 1.0}}, "prevalence"),
        ({"prevalence": {"normal": -1.0, "crackle": 2.0}}, "prevalence"),
        ({"prevalence": {"normal": 0.0}}, "prevalence"),
    ],
)
def test_bad_arguments_name_the_argument(override, argument) -> None:
    kw = dict(n_patients=1, recordings_per_patient=1, duration_s=10.0, sr=SR, seed=0)
    kw.update(override)
    with pytest.raises(ValueError, match=argument):
        synthesise_recordings(**kw)


def test_written_layout_reads_back_with_same_labels(corpus, tmp_path) -> None:
    recordings, annotations, patients = corpus
    write_icbhi_layout(tmp_path, recordings, annotations, patients, SR)
    assert (tmp_path / "patient_diagnosis.csv").is_file()
    assert not list(tmp_path.glob(".*.tmp"))
    cycles = scan_icbhi(tmp_path)
    assert cycles.attrs["skipped"] == []
    assert set(cycles["recording"]) == set(recordings)
    expected = _cycle_table(annotations)
    merged = cycles.merge(expected, on=["recording", "start"], suffixes=("", "_truth"), validate="one_to_one")
    assert len(merged) == len(expected) == len(cycles)
    np.testing.assert_allclose(merged["end"], merged["end_truth"], atol=1e-9)
    assert (merged["label"] == merged["label_truth"]).all()
    diag = dict(zip(patients["patient"], patients["diagnosis"], strict=True))
    assert (cycles["diagnosis"] == cycles["patient"].map(diag)).all()
    name = next(iter(recordings))
    back = load_audio(tmp_path / name, SR)
    np.testing.assert_allclose(back, recordings[name], atol=1.5 / 32768)


def test_write_layout_rejects_mismatched_inputs(corpus, tmp_path) -> None:
    recordings, annotations, patients = corpus
    name = next(iter(recordings))
    with pytest.raises(ValueError, match="same keys"):
        write_icbhi_layout(tmp_path, {name: recordings[name]}, annotations, patients, SR)
