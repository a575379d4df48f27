"""A tiny TAU Urban Acoustic Scenes development set, written exactly as the releases lay it out
(``audio/*.wav``, tab-separated ``meta.csv`` and ``evaluation_setup/fold1_*.csv`` with
``audio/``-prefixed file names), so the loader is tested on the real format without the data.

Per scene and city: two recording locations (``<city>-<id>``, ids unique within a city), the
first in ``fold1_train``, the second in ``fold1_evaluate``. Device ``a`` records everything,
``b`` the first segment of each location; simulated devices: ``s1``-``s3`` in training
locations only, ``s4`` in test locations only (unseen), and ``s5`` clips that ``meta.csv`` lists
but the setup leaves out (as the 2019 and 2020 releases do).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SCENES = ("airport", "bus", "street_pedestrian")
CITIES = ("barcelona", "helsinki", "lisbon")
FREQ = {"airport": 500.0, "bus": 1200.0, "street_pedestrian": 2500.0}
DEVICE_GAIN = {"a": 1.0, "b": 0.7, "c": 0.6, "s1": 0.9, "s2": 0.8, "s3": 0.5, "s4": 0.4, "s5": 0.3}


def _clip(scene: str, device: str, seed: int, sr: int, seconds: float) -> np.ndarray:
    """A scene tone plus device-coloured noise: learnable, different per file."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * FREQ[scene] * t) + 0.05 * rng.standard_normal(t.size)
    return (DEVICE_GAIN[device] * y).astype(np.float32)


def plan(release: str = "2020", segments: int = 2) -> list[dict]:
    """The files of the fixture: ``{filename, scene, identifier, device, split}`` (split '' =
    listed in meta.csv only)."""
    rows = []
    for ci, city in enumerate(CITIES):
        for si, scene in enumerate(SCENES):
            for k, split in enumerate(("train", "test")):
                loc = 2 * si + k  # unique within the city
                for seg in range(segments):
                    devices = ["a"]
                    if release != "2019":
                        devices += ["b"] if seg == 0 else []
                        devices += ([f"s{1 + (seg + ci) % 3}"] if split == "train" else ["s4"] if seg == 0 else [])
                        devices += ["s5"] if split == "train" and seg == segments - 1 else []
                    pieces = [None] if release != "2022" else [0, 1]
                    for dev in devices:
                        for piece in pieces:
                            mid = f"{loc}-{seg}" + (f"-{piece}" if piece is not None else "")
                            rows.append({"filename": f"audio/{scene}-{city}-{mid}-{dev}.wav", "scene": scene,
                                         "identifier": f"{city}-{loc}", "device": dev,
                                         "split": "" if dev == "s5" else split})
    return rows


def write_tau(root: Path, release: str = "2020", *, sr: int = 8000, seconds: float = 1.0, segments: int = 2) -> Path:
    """Write the fixture under ``root``; returns ``root``. ``release``: 2019 (device a only),
    2020 (devices, 10 s naming), 2022 (devices, 1 s pieces with a sub-segment index)."""
    rows = plan(release, segments)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for k, r in enumerate(rows):
        sf.write(root / r["filename"], _clip(r["scene"], r["device"], k, sr, seconds), sr, subtype="PCM_16")
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    meta += [f"{r['filename']}\t{r['scene']}\t{r['identifier']}\t{r['device']}" for r in rows]
    (root / "meta.csv").write_text("\n".join(meta) + "\n")
    setup = root / "evaluation_setup"
    setup.mkdir(exist_ok=True)
    for name, split in (("fold1_train.csv", "train"), ("fold1_evaluate.csv", "test")):
        lines = ["filename\tscene_label"] + [f"{r['filename']}\t{r['scene']}" for r in rows if r["split"] == split]
        (setup / name).write_text("\n".join(lines) + "\n")
    test = ["filename"] + [r["filename"] for r in rows if r["split"] == "test"]
    (setup / "fold1_test.csv").write_text("\n".join(test) + "\n")
    return root
