"""Nodes from a labelled audio index to normalised model input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mlsp_pipelines.features.logmel import apply_normaliser, extract_logmel, fit_normaliser
from mlsp_pipelines.ingestion.index import QualityReport, index_esc50, index_generic
from mlsp_pipelines.params import AudioDataParams, FeatureParams, SplitParams

logger = logging.getLogger(__name__)


def index_audio(folder: str, data: AudioDataParams) -> tuple[pd.DataFrame, dict]:
    """Index the audio folder in the layout ``data.source`` names (synthetic data is generic)."""
    if data.source == "esc50":
        index, report = index_esc50(folder, esc10_only=data.esc10_only, on_bad_file=data.on_bad_file)
    else:
        index, report = index_generic(
            folder, metadata=data.metadata, audio_dir=data.audio_dir, label_column=data.label_column,
            on_bad_file=data.on_bad_file,
        )
    logger.info("indexed %d clips, %d classes from %s", len(index), index["label"].nunique(), folder)
    return index, report.to_dict()


def compute_logmel(
    index: pd.DataFrame, quality: dict, features: FeatureParams, on_bad_file: str
) -> tuple[dict[str, np.ndarray], dict]:
    """Log-mel for every indexed clip (parallel); undecodable clips fail or are skipped and reported."""
    X, keep, errors = extract_logmel(index, features, on_bad_file=on_bad_file)
    kept = index[keep].reset_index(drop=True)
    if kept.empty:
        raise ValueError("no clip could be decoded; see the warnings above")
    report = {**quality, "n_undecodable": len(errors), "undecodable": errors, "n_clips": int(len(kept))}
    out = {
        "X": X[keep],
        "filename": kept["filename"].to_numpy(dtype=str),
        "label": kept["label"].to_numpy(dtype=str),
        "fold": kept["fold"].fillna(-1).to_numpy(dtype=np.int64),
        "group": (kept["group"] if "group" in kept else kept["filename"]).to_numpy(dtype=str),
        "hop_s": np.float64(features.hop_length / features.sr),
    }
    return out, report


def _stratified(labels: np.ndarray, groups: np.ndarray, split: SplitParams) -> np.ndarray:
    """Seeded split of whole groups (a group never straddles splits), stratified by label."""
    rng = np.random.default_rng(split.seed)
    out = np.empty(len(labels), dtype=object)
    frame = pd.DataFrame({"label": labels, "group": groups})
    group_label = frame.groupby("group", sort=True)["label"].agg(lambda s: s.mode().iloc[0])
    for _, gs in group_label.groupby(group_label, sort=True):
        names = gs.index.to_numpy()
        rng.shuffle(names)
        n = len(names)
        n_test = max(1, int(round(split.test_fraction * n))) if n >= 3 else 0
        n_val = max(1, int(round(split.val_fraction * n))) if n - n_test >= 2 else 0
        assign = {g: "test" for g in names[:n_test]}
        assign.update({g: "val" for g in names[n_test : n_test + n_val]})
        assign.update({g: "train" for g in names[n_test + n_val :]})
        mask = frame["group"].isin(names).to_numpy()
        out[mask] = frame.loc[mask, "group"].map(assign).to_numpy()
    return out.astype(str)


def split_dataset(features: dict[str, np.ndarray], split: SplitParams) -> pd.DataFrame:
    """train/val/test per clip: by fold when the data has folds, else stratified by group and seeded."""
    folds = features["fold"]
    if split.test_fold is not None and (folds >= 0).all():
        present = sorted(set(folds.tolist()))
        for key in ("test_fold", "val_fold"):
            value = getattr(split, key)
            if value is not None and value not in present:
                raise ValueError(f"split.{key}={value} is not a fold of this dataset (folds: {present})")
        names = np.where(folds == split.test_fold, "test", np.where(folds == split.val_fold, "val", "train"))
    else:
        names = _stratified(features["label"], features["group"], split)
    df = pd.DataFrame({"filename": features["filename"], "label": features["label"], "split": names})
    for s in ("train", "test"):
        if not (df["split"] == s).any():
            raise ValueError(f"the '{s}' split is empty; check split.test_fold/val_fold or the fractions")
    logger.info("split sizes: %s", df["split"].value_counts().to_dict())
    return df


def fit_normalisation(features: dict[str, np.ndarray], splits: pd.DataFrame) -> dict:
    """Per-band mean/std fitted on the training split only (no test statistics leak into training)."""
    train = (splits["split"] == "train").to_numpy()
    return fit_normaliser(features["X"][train])


def make_model_input(features: dict[str, np.ndarray], splits: pd.DataFrame, norm: dict) -> dict:
    """Normalised tensors per split, integer labels and class names: what every model trains on."""
    classes = sorted(set(features["label"].tolist()))
    y = np.searchsorted(np.asarray(classes), features["label"]).astype(np.int64)
    X = apply_normaliser(features["X"], norm)
    out: dict = {"classes": classes, "hop_s": float(features["hop_s"]), "norm": norm}
    for s in ("train", "val", "test"):
        m = (splits["split"] == s).to_numpy()
        out[f"X_{s}"], out[f"y_{s}"] = X[m], y[m]
        out[f"ids_{s}"] = features["filename"][m]
    out["folds"] = features["fold"]
    out["X_all"], out["y_all"] = X, y
    return out
