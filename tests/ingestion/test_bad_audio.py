"""Damaged audio is an error naming the file, or skipped and counted: truncated files (fewer frames
than the header declares), header-only files and files whose header declares zero frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mlsp_pipelines.features.logmel import extract_logmel
from mlsp_pipelines.ingestion.audio import AudioDecodeError, check_declared_length, load_audio
from mlsp_pipelines.ingestion.icbhi import scan_icbhi, segment_cycles
from mlsp_pipelines.ingestion.index import index_generic
from mlsp_pipelines.modular.audio.nodes import compute_logmel
from mlsp_pipelines.params import FeatureParams

SR = 8000
FRAMES = 2875  # as in the report: the header promises 2875 frames, 943 are present
PRESENT = 943
HEADER = 44  # canonical PCM WAV header


def _wav_bytes(frames: int = FRAMES, subtype: str = "PCM_16", tmp: Path | None = None) -> bytes:
    y = (0.3 * np.sin(2 * np.pi * 440 * np.arange(frames) / SR)).astype(np.float32)
    path = (tmp or Path("/tmp")) / f"_full_{subtype}_{frames}.wav"
    sf.write(path, y, SR, subtype=subtype)
    data = path.read_bytes()
    path.unlink()
    return data


def _bad(kind: str, folder: Path) -> Path:
    """One damaged WAV of each kind."""
    full = _wav_bytes(tmp=folder)
    assert full[36:40] == b"data" and len(full) == HEADER + 2 * FRAMES
    path = folder / f"{kind}.wav"
    if kind == "truncated":
        path.write_bytes(full[: HEADER + 2 * PRESENT])
    elif kind == "header_only":
        path.write_bytes(full[:HEADER])
    elif kind == "zero_length":
        head = bytearray(full[:HEADER])
        head[4:8] = (HEADER - 8).to_bytes(4, "little")
        head[40:44] = (0).to_bytes(4, "little")
        path.write_bytes(bytes(head))
    else:  # pragma: no cover
        raise ValueError(kind)
    return path


KINDS = {
    "truncated": f"truncated: the header declares {FRAMES} frames but the file holds only {PRESENT} frames",
    "header_only": f"header only: the header declares {FRAMES} frames but the file holds no audio data",
    "zero_length": "the header declares zero frames",
}


def test_soundfile_alone_reads_a_truncated_wav_silently(tmp_path: Path) -> None:
    """Why the header check exists: libsndfile reports only the frames present, no error."""
    path = _bad("truncated", tmp_path)
    with sf.SoundFile(path) as f:
        assert f.frames == PRESENT and len(f.read()) == PRESENT


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_load_audio_names_the_file_and_the_damage(tmp_path: Path, kind: str) -> None:
    path = _bad(kind, tmp_path)
    with pytest.raises(AudioDecodeError) as exc:
        load_audio(path, SR)
    assert exc.value.path == str(path)
    assert KINDS[kind] in exc.value.reason
    # a segment inside the part that is present is refused too: the file is damaged
    with pytest.raises(AudioDecodeError, match=kind.split("_")[0]):
        load_audio(path, SR, offset_s=0.0, duration_s=0.01)


def _features() -> FeatureParams:
    return FeatureParams(sr=SR, clip_s=0.5, n_fft=256, hop_length=128, n_mels=16, fmax=4000.0, workers=1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_on_bad_file_fail_stops_naming_the_file(tmp_path: Path, kind: str) -> None:
    good = tmp_path / "good.wav"
    good.write_bytes(_wav_bytes(tmp=tmp_path))
    bad = _bad(kind, tmp_path)
    index = pd.DataFrame({"path": ["good.wav", bad.name]})
    with pytest.raises(AudioDecodeError) as exc:
        extract_logmel(index, _features(), on_bad_file="fail", show_progress=False, root=tmp_path)
    assert exc.value.path == str(bad) and "on_bad_file" in str(exc.value)


def _generic_layout(root: Path) -> Path:
    """A generic dataset (audio/ + labels.csv) with one good clip per class and one damaged clip
    of each kind."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    rows = []
    for k, label in enumerate(["a", "b"]):
        (audio / f"good{k}.wav").write_bytes(_wav_bytes(frames=FRAMES + 100 * k, tmp=root))
        rows.append((f"good{k}.wav", label))
    for kind in sorted(KINDS):
        _bad(kind, audio)
        rows.append((f"{kind}.wav", "a"))
    pd.DataFrame(rows, columns=["filename", "label"]).to_csv(root / "labels.csv", index=False)
    return root


def test_on_bad_file_skip_counts_each_kind_in_the_report(tmp_path: Path) -> None:
    root = _generic_layout(tmp_path / "data")
    index, report = index_generic(root, on_bad_file="skip")
    features, quality = compute_logmel(index, report.to_dict(), _features(), "skip", str(root))
    assert quality["n_undecodable"] == len(KINDS) and quality["n_clips"] == 2
    assert sorted(e["path"] for e in quality["undecodable"]) == sorted(f"audio/{k}.wav" for k in KINDS)
    for e in quality["undecodable"]:
        kind = Path(e["path"]).stem
        assert KINDS[kind] in e["error"] and str(root) not in e["error"]  # relative, like the index
    assert features["filename"].tolist() == ["good0.wav", "good1.wav"]
    with pytest.raises(AudioDecodeError, match="header_only.wav"):
        compute_logmel(index, report.to_dict(), _features(), "fail", str(root))


def test_truncated_icbhi_recording_fails_or_is_skipped(tmp_path: Path) -> None:
    """Respiratory cycles are read as segments: a truncated recording is caught there too."""
    name = "101_1b1_Al_sc_Meditron"
    full = _wav_bytes(frames=4 * SR, tmp=tmp_path)
    (tmp_path / f"{name}.wav").write_bytes(full[: HEADER + 2 * SR])  # 1 s of the promised 4 s
    (tmp_path / f"{name}.txt").write_text("0.1\t0.5\t0\t0\n2.0\t3.5\t1\t0\n")
    cycles = scan_icbhi(tmp_path)
    assert cycles["path"].tolist() == [f"{name}.wav"] * 2
    with pytest.raises(AudioDecodeError, match=f"{name}.wav: truncated"):
        segment_cycles(cycles, sr=SR, length_s=1.0, root=tmp_path)
    index = pd.DataFrame({"path": cycles["path"], "offset_s": cycles["start"],
                          "duration_s": cycles["end"] - cycles["start"]})
    X, keep, errors = extract_logmel(index, _features(), on_bad_file="skip", show_progress=False, root=tmp_path)
    assert keep.tolist() == [False, False] and len(errors) == 2


# -- no false alarms --------------------------------------------------------------------------------
def test_valid_files_pass_the_header_check(tmp_path: Path) -> None:
    # a chunk after the audio data (LIST/INFO written by many editors)
    full = _wav_bytes(tmp=tmp_path)
    trailer = b"LIST" + (12).to_bytes(4, "little") + b"INFOISFT" + (0).to_bytes(4, "little")
    with_list = bytearray(full + trailer)
    with_list[4:8] = (len(with_list) - 8).to_bytes(4, "little")
    (tmp_path / "list.wav").write_bytes(bytes(with_list))
    # a streaming writer that did not know the length (data size 0xFFFFFFFF)
    streamed = bytearray(full)
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    # 24-bit mono with an odd data size: the pad byte after the data chunk may be missing
    (tmp_path / "odd24.wav").write_bytes(_wav_bytes(frames=FRAMES, subtype="PCM_24", tmp=tmp_path)[:-1])
    for name in ("list.wav", "odd24.wav"):
        check_declared_length(tmp_path / name)
        assert load_audio(tmp_path / name, SR).size == FRAMES
    check_declared_length(tmp_path / "streamed.wav")
    # AIFF is checked too
    y = np.zeros(FRAMES, np.float32)
    sf.write(tmp_path / "a.aiff", y, SR, subtype="PCM_16", format="AIFF")
    check_declared_length(tmp_path / "a.aiff")
    data = (tmp_path / "a.aiff").read_bytes()
    (tmp_path / "cut.aiff").write_bytes(data[:-1000])
    with pytest.raises(AudioDecodeError, match=f"cut.aiff: truncated: the header declares {FRAMES} frames"):
        load_audio(tmp_path / "cut.aiff", SR)


def test_decoder_returning_fewer_frames_than_promised_is_truncation(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Containers without a length field to check (FLAC, Ogg, MP3): the decoded frames are
    compared with the frames the stream header promises."""
    path = tmp_path / "clip.flac"
    sf.write(path, np.zeros(1000, np.float32), SR)

    class ShortRead(sf.SoundFile):
        def read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return super().read(*args, **kwargs)[:400]

    monkeypatch.setattr("mlsp_pipelines.ingestion.audio.sf.SoundFile", ShortRead)
    with pytest.raises(AudioDecodeError, match="clip.flac: truncated: the header declares 1000 frames but only 400"):
        load_audio(path, SR)
