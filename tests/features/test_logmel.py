"""Log-mel front end: agreement with librosa, crop/pad, parallel extraction, normalisation."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mlsp_pipelines.features.logmel import (
    extract_logmel,
    fix_length,
    logmel_batch,
    n_frames,
)
from mlsp_pipelines.features.normalise import apply_normaliser, fit_normaliser
from mlsp_pipelines.ingestion.audio import load_audio
from mlsp_pipelines.modular.audio.nodes import fit_normalisation, split_dataset
from mlsp_pipelines.params import FeatureParams, SplitParams

TOL_DB = 1e-3


def librosa_logmel(y: np.ndarray, p: FeatureParams) -> np.ndarray:
    """The reference: librosa's mel spectrogram (power 2, centred frames) in dB, (frames, n_mels)."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=p.sr, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
        power=2.0, center=True,
    )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=p.top_db).T


def test_logmel_matches_librosa_on_a_real_esc50_clip(esc50_sample: Path) -> None:
    """A 44.1 kHz ESC-50 clip resampled to 22.05 kHz: max |difference| < 1e-3 dB (about 4e-4 is
    achieved; both sides compute in float32). A different STFT padding (e.g. 'reflect' instead of
    librosa's default 'constant') changes the edge frames by several dB and fails this test."""
    p = FeatureParams(sr=22050, clip_s=5.0, n_fft=1024, hop_length=512, n_mels=64, fmin=0.0, fmax=11025.0)
    clips = sorted((esc50_sample / "audio").glob("*.wav"))[:2]
    n = int(p.clip_s * p.sr)
    ys = np.stack([fix_length(load_audio(c, p.sr), n) for c in clips])
    assert ys.shape == (2, 110250)
    out = logmel_batch(ys, p)
    assert out.shape == (2, n_frames(p), p.n_mels) and out.dtype == np.float32
    for k in range(2):
        ref = librosa_logmel(ys[k], p)
        assert ref.shape == out[k].shape
        assert np.abs(out[k] - ref).max() < TOL_DB
        assert ref.max() - ref.min() > 40  # a real, non-degenerate spectrogram


@pytest.mark.parametrize("top_db", [80.0, None])
def test_logmel_matches_librosa_on_synthetic_signals(top_db: float | None) -> None:
    """Chirp + noise and a quiet tone in one batch, fmin > 0: max |difference| < 1e-3 dB, and
    ``top_db`` clips each clip at its own maximum (the batch does not share one floor)."""
    p = FeatureParams(sr=16000, clip_s=1.0, n_fft=512, hop_length=160, n_mels=40, fmin=50.0, fmax=7000.0,
                      top_db=top_db)
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(3)
    loud = 0.5 * librosa.chirp(fmin=100, fmax=6000, sr=16000, duration=1.0) + 0.05 * rng.standard_normal(16000)
    quiet = 1e-4 * np.sin(2 * np.pi * 1000 * t)
    ys = np.stack([loud, quiet]).astype(np.float32)
    out = logmel_batch(ys, p)
    for k in range(2):
        ref = librosa_logmel(ys[k], p)
        assert np.abs(out[k] - ref).max() < TOL_DB
    if top_db is not None:
        for k in range(2):
            assert out[k].min() >= out[k].max() - top_db - TOL_DB
        assert out[1].min() < out[0].max() - top_db  # the quiet clip's floor is its own, far below


def test_logmel_single_clip_equals_its_row_in_a_batch() -> None:
    p = FeatureParams(sr=8000, clip_s=0.5, n_fft=256, hop_length=128, n_mels=16, fmax=4000.0)
    ys = np.random.default_rng(0).standard_normal((3, 4000)).astype(np.float32)
    batch = logmel_batch(ys, p)
    np.testing.assert_allclose(logmel_batch(ys[1], p)[0], batch[1], atol=1e-4)


def test_fix_length_crops_and_pads() -> None:
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(y, 4, "center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(fix_length(y, 4, "start"), [0, 1, 2, 3])
    np.testing.assert_array_equal(fix_length(y, 13), [*range(10), 0, 0, 0])
    np.testing.assert_array_equal(fix_length(y, 10), y)
    assert len(fix_length(y, 7, "center")) == 7


def test_n_frames_matches_librosa_frame_count() -> None:
    p = FeatureParams(sr=8000, clip_s=1.0, n_fft=256, hop_length=128, n_mels=16, fmax=4000.0)
    assert n_frames(p) == librosa_logmel(np.zeros(8000, np.float32) + 1e-3, p).shape[0] == 63


# -- parallel extraction ------------------------------------------------------------------------
@pytest.fixture
def wav_index(tmp_path: Path) -> pd.DataFrame:
    """Seven clips of different lengths and rates (short, exact, long, 16 kHz stereo)."""
    rng = np.random.default_rng(1)
    paths = []
    for k in range(7):
        sr = 16000 if k == 4 else 8000
        n = [1500, 4000, 9000, 4000, 7000, 3000, 5000][k]
        y = (0.2 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * (200 + 150 * k) * np.arange(n) / sr))
        y = np.stack([y, 0.5 * y], axis=1) if k == 4 else y
        path = tmp_path / f"clip{k}.wav"
        sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
        paths.append(str(path))
    return pd.DataFrame({"path": paths})


def _params(**kw) -> FeatureParams:
    return FeatureParams(**{"sr": 8000, "clip_s": 0.5, "n_fft": 256, "hop_length": 128, "n_mels": 16,
                            "fmax": 4000.0, **kw})


def test_extract_logmel_same_with_one_or_two_workers_and_any_chunking(wav_index: pd.DataFrame) -> None:
    """The worker count never changes a bit; the chunk size only changes float32 rounding of the
    batched mel projection (observed ~2e-6 dB), so chunkings agree to 1e-4 dB."""
    X1, keep1, err1 = extract_logmel(wav_index, _params(workers=1, chunk_size=3), show_progress=False)
    X2, keep2, err2 = extract_logmel(wav_index, _params(workers=2, chunk_size=3), show_progress=False)
    X3, _, _ = extract_logmel(wav_index, _params(workers=1, chunk_size=16), show_progress=False)
    X4, _, _ = extract_logmel(wav_index, _params(workers=1, chunk_size=1), show_progress=False)
    assert X1.shape == (7, n_frames(_params()), 16)
    assert keep1.all() and keep2.all() and err1 == err2 == []
    np.testing.assert_array_equal(X2, X1)
    np.testing.assert_allclose(X3, X1, atol=1e-4)
    np.testing.assert_allclose(X4, X1, atol=1e-4)
    # every row is that clip's own spectrogram (chunk k lands at rows k*chunk_size ...)
    p = _params()
    for k, path in enumerate(wav_index["path"]):
        y = fix_length(load_audio(path, p.sr), int(p.clip_s * p.sr), p.crop)
        np.testing.assert_allclose(X2[k], logmel_batch(y, p)[0], atol=1e-4)
    assert not np.allclose(X1[0], X1[1])


def test_extract_logmel_skip_positions_across_chunks(wav_index: pd.DataFrame, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    index = pd.concat([wav_index.iloc[:3], pd.DataFrame({"path": [str(bad)]}), wav_index.iloc[3:]],
                      ignore_index=True)
    good, _, _ = extract_logmel(wav_index, _params(workers=1), show_progress=False)
    X, keep, errors = extract_logmel(index, _params(workers=2, chunk_size=3), on_bad_file="skip",
                                     show_progress=False)
    assert keep.tolist() == [True, True, True, False, True, True, True, True]
    assert [e["path"] for e in errors] == [str(bad)]
    np.testing.assert_allclose(X[keep], good, atol=1e-4)


# -- normalisation ------------------------------------------------------------------------------
def test_normaliser_gives_zero_mean_unit_std_per_band() -> None:
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((20, 30, 8)) * np.arange(1, 9) + np.arange(8) * 10 - 40).astype(np.float32)
    stats = fit_normaliser(X)
    assert len(stats["mean"]) == len(stats["std"]) == 8
    Z = apply_normaliser(X, stats)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.reshape(-1, 8).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.reshape(-1, 8).std(0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="bands"):
        apply_normaliser(X[..., :4], stats)


def test_normaliser_constant_band_does_not_divide_by_zero() -> None:
    X = np.zeros((2, 3, 2), np.float32)
    X[..., 1] = np.arange(6).reshape(2, 3)
    Z = apply_normaliser(X, fit_normaliser(X))
    assert np.isfinite(Z).all()


def test_fit_normalisation_uses_the_training_split_only() -> None:
    rng = np.random.default_rng(0)
    n = 12
    fold = np.array([1, 2, 3] * 4)  # test_fold 1, val_fold 2 → train = fold 3
    X = rng.standard_normal((n, 5, 4)).astype(np.float32)
    features = {"X": X, "filename": np.array([f"f{k}.wav" for k in range(n)]),
                "label": np.array(["a", "b"] * 6), "fold": fold, "group": np.array([f"f{k}" for k in range(n)])}
    splits = split_dataset(features, SplitParams(test_fold=1, val_fold=2))
    train = (splits["split"] == "train").to_numpy()
    assert train.tolist() == (fold == 3).tolist()

    stats = fit_normalisation(features, splits)
    assert stats == fit_normaliser(X[train])
    wild = {**features, "X": np.where(train[:, None, None], X, 1e4 * X + 500).astype(np.float32)}
    assert fit_normalisation(wild, splits) == stats
    Z = apply_normaliser(X[train], stats)
    np.testing.assert_allclose(Z.reshape(-1, 4).mean(0), 0, atol=1e-4)
