"""The most confident mistakes on the test clips, kept as audio (an output of the evaluation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from mlsp_pipelines.datasets import AudioClipsDataset
from mlsp_pipelines.modular.classifier.nodes import misclassified_clips
from mlsp_pipelines.params import ReportParams


def _tone(n: int, f: float, sr: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


def test_the_most_confident_mistakes_are_read_as_their_clips_or_segments(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", _tone(8000, 440, 8000), 8000, subtype="PCM_16")
    sf.write(tmp_path / "audio" / "rec.wav", _tone(16000, 220, 4000), 4000, subtype="PCM_16")  # 4 s recording
    index = pd.DataFrame({"filename": ["a.wav", "rec_1", "b.wav"], "path": ["audio/a.wav", "audio/rec.wav", "audio/b.wav"],
                          "offset_s": [np.nan, 1.0, np.nan], "duration_s": [np.nan, 0.5, np.nan]})
    predictions = pd.DataFrame({"filename": ["a.wav", "rec_1", "b.wav", "c.wav"],
                                "actual": ["dog", "wheeze", "rain", "dog"],
                                "predicted": ["cat", "crackle (fine)", "rain", "cat"],
                                "confidence": [0.61, 0.93, 0.99, 0.40]})
    out = misclassified_clips(predictions, index, str(tmp_path), ReportParams(misclassified=2))
    # the two most confident mistakes, best first; a correct prediction (b.wav) never, a label's
    # spaces and brackets made safe for a file name
    assert list(out) == ["1_wheeze_as_crackle_fine__0.93_rec_1", "2_dog_as_cat_0.61_a"]
    segment, sr = out["1_wheeze_as_crackle_fine__0.93_rec_1"]
    assert sr == 4000 and len(segment) == 2000  # 0.5 s from 1.0 s, at the native rate
    np.testing.assert_allclose(segment, _tone(16000, 220, 4000)[4000:6000], atol=1e-4)
    assert out["2_dog_as_cat_0.61_a"][0].shape == (8000,)
    assert misclassified_clips(predictions, index, str(tmp_path), ReportParams(misclassified=0)) == {}


def test_a_clip_whose_file_is_gone_is_left_out(tmp_path: Path) -> None:
    index = pd.DataFrame({"filename": ["gone.wav"], "path": ["audio/gone.wav"]})
    predictions = pd.DataFrame({"filename": ["gone.wav"], "actual": ["a"], "predicted": ["b"], "confidence": [0.9]})
    assert misclassified_clips(predictions, index, str(tmp_path), ReportParams()) == {}


def test_the_clips_dataset_round_trips_and_replaces_the_folder_whole(tmp_path: Path) -> None:
    ds = AudioClipsDataset(filepath=str(tmp_path / "misclassified"))
    ds.save({"1_a_as_b": (_tone(800, 300, 8000), 8000), "2_c_as_d": (_tone(400, 500, 4000), 4000)})
    back = ds.load()
    assert sorted(back) == ["1_a_as_b", "2_c_as_d"] and back["2_c_as_d"][1] == 4000
    np.testing.assert_allclose(back["1_a_as_b"][0], _tone(800, 300, 8000), atol=1e-4)
    ds.save({"1_x_as_y": (_tone(80, 300, 8000), 8000)})  # a re-run's clips replace the old ones
    assert sorted(p.name for p in (tmp_path / "misclassified").iterdir()) == ["1_x_as_y.wav"]
