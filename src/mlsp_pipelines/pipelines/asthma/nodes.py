"""Nodes specific to respiratory sounds: the synthetic corpus and the cycle index. Features,
models, training and reports are the shared audio-classification nodes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .params import RespiratoryDataParams, RespiratorySynthParams

logger = logging.getLogger(__name__)

N_TRAIN_FOLDS = 4  # official-split training patients are spread over folds 2..5 (fold 2 validates)


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


def index_cycles(folder: str, data: RespiratoryDataParams) -> tuple[pd.DataFrame, dict]:
    """One row per annotated cycle (a segment of its recording), labelled for ``data.task``;
    ``group`` = patient so splits never share a patient; folds from the official list if given."""
    from mlsp_pipelines.ingestion.icbhi import official_split, scan_icbhi

    cycles = scan_icbhi(folder, on_bad_file=data.on_bad_file)
    if cycles.empty:
        raise ValueError(f"{folder}: no annotated respiratory cycles found")
    if data.task == "wheeze":
        labels = cycles["wheezes"].map({1: "wheeze", 0: "no_wheeze"})
    else:
        labels = cycles["label"]
    fold = pd.array([pd.NA] * len(cycles), dtype="Int64")
    if data.official_split:
        split = official_split(cycles, Path(folder) / data.official_split)
        patient_fold = {p: 2 + i % N_TRAIN_FOLDS for i, p in enumerate(sorted(cycles["patient"].unique()))}
        fold = pd.array([1 if s == "test" else patient_fold[p] for s, p in zip(split, cycles["patient"])],
                        dtype="Int64")
    index = pd.DataFrame({
        "path": cycles["path"].astype(str),
        "filename": [f"{r}#{c}" for r, c in zip(cycles["recording"], cycles["cycle"])],
        "label": labels.astype(str).to_numpy(),
        "fold": fold,
        "group": cycles["patient"].astype(str).to_numpy(),
        "offset_s": cycles["start"].astype(float).to_numpy(),
        "duration_s": (cycles["end"] - cycles["start"]).astype(float).to_numpy(),
    })
    skipped = cycles.attrs.get("skipped", [])
    quality = {"n_listed": int(len(index)), "n_patients": int(cycles["patient"].nunique()),
               "n_skipped_files": len(skipped), "skipped_files": [{"path": p, "reason": r} for p, r in skipped],
               "label_counts": index["label"].value_counts().to_dict()}
    logger.info("indexed %d cycles of %d patients: %s", len(index), quality["n_patients"], quality["label_counts"])
    return index, quality
