"""``icbhi``: the ICBHI 2017 Respiratory Sound Database (recordings with per-cycle annotation
files; the embedded synthetic patients are written in this layout). One row per annotated
breathing cycle, a segment of its recording; ``group`` is the patient, so splits never share one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlsp_pipelines.ingestion.layouts import LayoutIndex, register_layout
from mlsp_pipelines.section import Section

N_TRAIN_FOLDS = 4  # official-split training patients are spread over folds 2..5 (fold 2 validates)


class IcbhiParams(Section):
    task: Literal["four_class", "wheeze"] = "four_class"  # normal/crackle/wheeze/both, or wheeze vs none
    official_split: str | None = None  # ICBHI train/test list, relative to the data folder


@register_layout("icbhi", params=IcbhiParams)
def index(folder: str, options: IcbhiParams, *, on_bad_file: str, task: str | None = None) -> LayoutIndex:
    """Cycles labelled for ``options.task``; folds from the official list if given (its test
    patients are fold 1, the training patients spread over folds 2..5)."""
    import logging

    import pandas as pd

    from mlsp_pipelines.ingestion.icbhi import official_split, scan_icbhi

    cycles = scan_icbhi(folder, on_bad_file=on_bad_file)
    if cycles.empty:
        raise ValueError(f"{folder}: no annotated respiratory cycles found")
    labels = cycles["wheezes"].map({1: "wheeze", 0: "no_wheeze"}) if options.task == "wheeze" else cycles["label"]
    fold = pd.array([pd.NA] * len(cycles), dtype="Int64")
    if options.official_split:
        split = official_split(cycles, Path(folder) / options.official_split)
        patient_fold = {p: 2 + i % N_TRAIN_FOLDS for i, p in enumerate(sorted(cycles["patient"].unique()))}
        fold = pd.array([1 if s == "test" else patient_fold[p] for s, p in zip(split, cycles["patient"])],
                        dtype="Int64")
    frame = pd.DataFrame({
        "path": cycles["path"].astype(str),
        "filename": [f"{r}#{c}" for r, c in zip(cycles["recording"], cycles["cycle"])],
        "label": labels.astype(str).to_numpy(),
        "fold": fold,
        "group": cycles["patient"].astype(str).to_numpy(),
        "offset_s": cycles["start"].astype(float).to_numpy(),
        "duration_s": (cycles["end"] - cycles["start"]).astype(float).to_numpy(),
    })
    skipped = cycles.attrs.get("skipped", [])
    quality = {"n_listed": int(len(frame)), "n_patients": int(cycles["patient"].nunique()),
               "n_skipped_files": len(skipped), "skipped_files": [{"path": p, "reason": r} for p, r in skipped],
               "label_counts": frame["label"].value_counts().to_dict()}
    logging.getLogger(__name__).info("indexed %d cycles of %d patients: %s", len(frame), quality["n_patients"],
                                     quality["label_counts"])
    return LayoutIndex(frame, quality)
