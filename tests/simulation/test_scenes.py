"""Tests for the seeded acoustic-scene synthesiser (small, low-rate corpora to stay fast)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from mlsp_pipelines.simulation.scenes import (
    SCENE_CLASSES,
    clip_seed,
    synthesise_clip,
    synthesise_scenes,
)

SR = 8000
DUR = 1.0
KW = dict(sr=SR, duration_s=DUR)


@pytest.fixture(scope="module")
def corpus() -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    return synthesise_scenes(n_per_class=4, seed=123, n_folds=2, **KW)


def test_classes_are_realistic_and_unique() -> None:
    assert len(SCENE_CLASSES) >= 6
    assert len(set(SCENE_CLASSES)) == len(SCENE_CLASSES)
    assert {"street_traffic", "park", "metro_station", "restaurant", "beach"} <= set(SCENE_CLASSES)


def test_same_seed_is_identical(corpus) -> None:
    audio, meta = corpus
    audio2, meta2 = synthesise_scenes(n_per_class=4, seed=123, n_folds=2, **KW)
    pd.testing.assert_frame_equal(meta, meta2)
    assert list(audio) == list(audio2)
    for name in audio:
        np.testing.assert_array_equal(audio[name], audio2[name])


def test_different_seed_changes_audio(corpus) -> None:
    audio, _ = corpus
    other, _ = synthesise_scenes(n_per_class=2, seed=124, n_folds=2, **KW)
    for name, wave in other.items():
        assert not np.array_equal(wave, audio[name])


def test_clip_function_is_deterministic_and_label_keyed() -> None:
    a = synthesise_clip("park", seed=5, **KW)
    np.testing.assert_array_equal(a, synthesise_clip("park", seed=5, **KW))
    assert not np.array_equal(a, synthesise_clip("park", seed=6, **KW))
    assert not np.array_equal(a, synthesise_clip("beach", seed=5, **KW))


def test_subset_and_prefix_reproduce_the_same_clips(corpus) -> None:
    audio, meta = corpus
    subset, sub_meta = synthesise_scenes(
        n_per_class=2, seed=123, n_folds=2, classes=["bus", "park"], **KW
    )
    assert set(sub_meta["label"]) == {"bus", "park"}
    for name, wave in subset.items():
        np.testing.assert_array_equal(wave, audio[name])
    merged = sub_meta.merge(meta, on="filename", suffixes=("", "_full"))
    assert (merged["fold"] == merged["fold_full"]).all()
    assert (merged["clip_seed"] == merged["clip_seed_full"]).all()


def test_metadata_clip_seed_reproduces_waveform(corpus) -> None:
    audio, meta = corpus
    row = meta.iloc[5]
    assert row["clip_seed"] == clip_seed(123, SCENE_CLASSES.index(row["label"]), row["clip_index"])
    wave = synthesise_clip(row["label"], seed=int(row["clip_seed"]), **KW)
    np.testing.assert_array_equal(wave, audio[row["filename"]])


def test_shapes_dtypes_and_range(corpus) -> None:
    audio, _ = corpus
    for wave in audio.values():
        assert wave.dtype == np.float32
        assert wave.shape == (int(SR * DUR),)
        assert np.all(np.isfinite(wave))
        assert np.max(np.abs(wave)) <= 1.0
        assert np.std(wave) > 1e-4  # not silent


@pytest.mark.parametrize("sr, duration_s", [(16000, 0.25), (22050, 0.1), (8000, 0.001)])
def test_other_rates_and_short_clips(sr: int, duration_s: float) -> None:
    for label in SCENE_CLASSES:
        wave = synthesise_clip(label, sr=sr, duration_s=duration_s, seed=1)
        assert wave.dtype == np.float32 and wave.shape == (round(sr * duration_s),)
        assert np.all(np.isfinite(wave)) and np.max(np.abs(wave)) <= 1.0


def test_class_and_fold_balance_and_filenames(corpus) -> None:
    audio, meta = corpus
    assert list(meta.columns[:3]) == ["filename", "label", "fold"]
    assert {"snr_db", "n_events", "level_dbfs", "clip_seed", "components"} <= set(meta.columns)
    assert len(meta) == len(audio) == 4 * len(SCENE_CLASSES)
    assert meta["filename"].is_unique and set(meta["filename"]) == set(audio)
    assert all(re.fullmatch(r"[a-z_]+-\d{4}\.wav", f) for f in meta["filename"])
    assert (meta["label"].value_counts() == 4).all()
    assert sorted(meta["fold"].unique()) == [1, 2]
    per_fold = meta.groupby(["label", "fold"]).size()
    assert (per_fold == 2).all() and len(per_fold) == 2 * len(SCENE_CLASSES)
    # snr_db is undefined exactly when a clip has no foreground events
    no_events = meta["n_events"] == 0
    assert meta.loc[no_events, "snr_db"].isna().all()
    assert (meta["n_events"] >= 0).all()
    assert (meta["level_dbfs"] < 0).all()


def test_folds_balanced_for_uneven_counts() -> None:
    _, meta = synthesise_scenes(n_per_class=7, seed=0, n_folds=3, classes=["office"], **KW)
    assert sorted(meta["fold"].value_counts().tolist()) == [2, 2, 3]


def _band_log_spectrum(x: np.ndarray, sr: int, n_bands: int = 16, n_fft: int = 512) -> np.ndarray:
    """Level-normalised clip-mean log power in log-spaced bands (cheap numpy FFT)."""
    frames = x[: x.size // n_fft * n_fft].reshape(-1, n_fft) * np.hanning(n_fft)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.geomspace(100.0, sr / 2, n_bands + 1)
    bands = np.array(
        [power[(freqs >= lo) & (freqs < hi)].mean() for lo, hi in zip(edges[:-1], edges[1:])]
    )
    log_p = 10.0 * np.log10(bands + 1e-12)
    return log_p - log_p.mean()


def test_classes_are_spectrally_distinct_but_not_trivial() -> None:
    audio, meta = synthesise_scenes(n_per_class=10, sr=SR, duration_s=1.5, seed=0, n_folds=2)
    x = np.stack([_band_log_spectrum(audio[f], SR) for f in meta["filename"]])
    y = meta["label"].to_numpy()
    train = meta["fold"].to_numpy() == 1
    labels = sorted(set(y))
    centroids = np.stack([x[train & (y == lab)].mean(axis=0) for lab in labels])
    dist = ((x[~train][:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    acc = float(np.mean(np.asarray(labels)[dist.argmin(axis=1)] == y[~train]))
    chance = 1.0 / len(labels)
    assert acc > 2.4 * chance  # well above chance ...
    assert acc < 0.95  # ... yet a mean spectrum alone does not solve the task


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(label="forest"), "label"),
        (dict(sr=0), "sr"),
        (dict(sr=-8000), "sr"),
        (dict(sr=8000.0), "sr"),
        (dict(duration_s=0.0), "duration_s"),
        (dict(duration_s=-1.0), "duration_s"),
        (dict(duration_s=math.nan), "duration_s"),
        (dict(duration_s=math.inf), "duration_s"),
        (dict(duration_s=1e-9), "duration_s"),
        (dict(seed=-1), "seed"),
    ],
)
def test_clip_bad_arguments(kwargs: dict, name: str) -> None:
    args = dict(label="park", sr=SR, duration_s=DUR, seed=0) | kwargs
    label = args.pop("label")
    with pytest.raises(ValueError, match=name):
        synthesise_clip(label, **args)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(classes=["forest"]), "classes"),
        (dict(classes=[]), "classes"),
        (dict(classes=["park", "park"]), "classes"),
        (dict(classes="park"), "classes"),
        (dict(n_per_class=0), "n_per_class"),
        (dict(n_per_class=1, n_folds=2), "n_per_class"),
        (dict(n_folds=1), "n_folds"),
        (dict(sr=0), "sr"),
        (dict(duration_s=0.0), "duration_s"),
        (dict(seed=-3), "seed"),
    ],
)
def test_scenes_bad_arguments(kwargs: dict, name: str) -> None:
    args = dict(n_per_class=2, sr=SR, duration_s=DUR, seed=0, n_folds=2) | kwargs
    with pytest.raises(ValueError, match=name):
        synthesise_scenes(**args)
