"""Nodes specific to acoustic scene classification (the rest is shared with ``asthma``)."""

from __future__ import annotations

import logging
from typing import Any

from mlsp_pipelines.params import SceneSynthParams

logger = logging.getLogger(__name__)


def synthesise_scenes(synth: SceneSynthParams) -> dict[str, Any]:
    """The embedded default corpus: seeded synthetic scenes as WAV files + ``metadata.csv``
    (the generic layout, so it is read by the same loader as real data)."""
    from mlsp_pipelines.simulation.scenes import synthesise_scenes as _synthesise

    audio, meta = _synthesise(n_per_class=synth.n_per_class, sr=synth.sr, duration_s=synth.duration_s,
                              seed=synth.seed, classes=synth.classes, n_folds=synth.n_folds)
    logger.info("synthesised %d clips of %d scene classes", len(audio), meta["label"].nunique())
    return {"audio": {f"audio/{k}": v for k, v in audio.items()}, "sr": synth.sr, "tables": {"metadata.csv": meta}}
