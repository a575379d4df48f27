"""Nodes specific to respiratory sounds: the synthetic corpus and the cycle index. Features,
models, training and reports are the shared audio-classification nodes."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from .params import RespiratoryDataParams, RespiratorySynthParams

logger = logging.getLogger(__name__)



def synthesise_respiratory(synth: RespiratorySynthParams) -> dict[str, Any]:
    """The embedded default: seeded recordings written in the ICBHI 2017 layout (WAV + cycle
    annotations + diagnoses), so they are read by the same loader as the real database."""
    from mlsp_pipelines.simulation.respiratory import annotation_text, diagnosis_text, synthesise_recordings

    audio, annotations, patients = synthesise_recordings(
        n_patients=synth.n_patients, recordings_per_patient=synth.recordings_per_patient,
        duration_s=synth.duration_s, sr=synth.sr, seed=synth.seed,
    )
    texts = {f"{name[:-4]}.txt": annotation_text(ann) for name, ann in annotations.items()}
    texts["patient_diagnosis.csv"] = diagnosis_text(patients)
    logger.info("synthesised %d recordings of %d patients", len(audio), len(patients))
    return {"audio": audio, "sr": synth.sr, "texts": texts}


def index_cycles(folder: str, data: RespiratoryDataParams, *, task: str | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per annotated cycle (a segment of its recording), labelled for the layout's ``task``;
    the ``icbhi`` layout (``ingestion/layouts/icbhi.py``) does the work, under this task's parameter model."""
    result = data.index(folder, task=task)
    return result.frame, result.quality
