"""Nodes from a labelled audio index to normalised model input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from mlsp_pipelines.params import AudioDataParams, FeatureParams, SplitParams

logger = logging.getLogger(__name__)

#: Optional index columns carried into the features (index column → features key): the split a
#: dataset's own setup assigns, and what the test set is broken down by in the reports.
METADATA_COLUMNS = {"split": "official_split", "device": "device", "city": "city"}
BREAKDOWN_KEYS = ("device", "city")


def index_audio(folder: str, data: AudioDataParams) -> tuple[pd.DataFrame, dict]:
    """Index the audio folder in the layout ``data.source`` names (synthetic data is generic)."""
    from mlsp_pipelines.ingestion.index import index_esc50, index_generic
    from mlsp_pipelines.ingestion.tau import index_tau

    if data.source == "tau":
        index, quality = index_tau(folder, setup_dir=data.setup_dir, subset=data.subset, subset_dir=data.subset_dir,
                                   subset_seed=data.subset_seed, on_bad_file=data.on_bad_file)
        logger.info("indexed %d clips, %d classes from %s", len(index), index["label"].nunique(), folder)
        return index, quality
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
    index: pd.DataFrame, quality: dict, features: FeatureParams, on_bad_file: str, folder: str | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Log-mel for every indexed clip (parallel); undecodable clips fail or are skipped and reported.
    ``auto`` feature parameters are resolved from the clips' headers first. Index paths are
    relative to the dataset ``folder``."""
    from mlsp_pipelines.features.logmel import extract_logmel

    features = _resolve(index, features, folder)
    X, keep, errors = extract_logmel(index, features, on_bad_file=on_bad_file, root=folder)
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
        "feature_params": np.asarray(json.dumps(features.model_dump(exclude={"workers", "chunk_size"}))),
    }
    # optional per-clip metadata of layouts that have it (TAU: official split, device, city)
    for column, key in METADATA_COLUMNS.items():
        if column in kept:
            out[key] = kept[column].astype(str).to_numpy(dtype=str)
    report["features"] = features.model_dump(exclude={"workers", "chunk_size"})
    return out, report


def _resolve(index: pd.DataFrame, features: FeatureParams, folder: str | None = None) -> FeatureParams:
    from mlsp_pipelines.features.logmel import resolve_features

    if features.is_resolved and features.fmax is None:
        return features
    import soundfile as sf

    from mlsp_pipelines.ingestion.index import resolve_paths

    rates, durs = [], []
    for i, path in enumerate(resolve_paths(index["path"].astype(str), folder)):
        try:
            info = sf.info(path)
        except Exception:  # noqa: BLE001 - undecodable files are reported by the extraction itself
            continue
        rates.append(info.samplerate)
        durs.append(float(index["duration_s"].iloc[i]) if "duration_s" in index and pd.notna(index["duration_s"].iloc[i])
                    else info.frames / info.samplerate)
    if not rates:
        raise ValueError("no readable audio to resolve 'auto' feature parameters from")
    return resolve_features(features, rates, durs)


def split_dataset(features: dict[str, np.ndarray], split: SplitParams) -> pd.DataFrame:
    """train/val/test per clip: the dataset's official setup when it has one (validation carved
    from its training part: ``val_fraction`` of whole groups, stratified, seeded), else by fold
    when the data has folds, else stratified by group and seeded."""
    from mlsp_pipelines.splits import group_split

    folds = features["fold"]
    if "official_split" in features:
        official = np.asarray(features["official_split"]).astype(str)
        unknown = sorted(set(official.tolist()) - {"train", "test"})
        if unknown:
            raise ValueError(f"official split values must be 'train' or 'test', found {unknown}")
        names = official.astype(object)
        train = official == "train"
        if train.any():
            names[train] = group_split(features["label"][train], features["group"][train],
                                          [("val", split.val_fraction)], split.seed)
        names = names.astype(str)
    elif split.test_fold is not None and (folds >= 0).all():
        present = sorted(set(folds.tolist()))
        for key in ("test_fold", "val_fold"):
            value = getattr(split, key)
            if value is not None and value not in present:
                raise ValueError(f"split.{key}={value} is not a fold of this dataset (folds: {present})")
        names = np.where(folds == split.test_fold, "test", np.where(folds == split.val_fold, "val", "train"))
    else:
        names = group_split(features["label"], features["group"],
                            [("test", split.test_fraction), ("val", split.val_fraction)], split.seed)
    df = pd.DataFrame({"filename": features["filename"], "label": features["label"], "split": names})
    for s in ("train", "test"):
        if not (df["split"] == s).any():
            raise ValueError(f"the '{s}' split is empty; check split.test_fold/val_fold or the fractions")
    logger.info("split sizes: %s", df["split"].value_counts().to_dict())
    return df


def fit_normalisation(features: dict[str, np.ndarray], splits: pd.DataFrame) -> dict:
    """Per-band mean/std fitted on the training split only (no test statistics leak into training)."""
    from mlsp_pipelines.features.normalise import fit_normaliser

    train = (splits["split"] == "train").to_numpy()
    return fit_normaliser(features["X"][train])


def check_sanity(labels: dict[str, np.ndarray], classes: list[str], *, strict: bool, where: str = "") -> list[str]:
    """Problems that make a run's numbers meaningless, named with classes and counts: a class
    present in validation/test but absent from training, a validation split of a single class.
    Warnings by default; ``split.strict: true`` makes them errors."""
    problems = []
    counts = {s: dict(zip(*np.unique(v, return_counts=True))) for s, v in labels.items()}
    train = counts.get("train", {})
    for s in ("val", "test"):
        missing = {classes[int(c)]: int(n) for c, n in counts.get(s, {}).items() if c not in train}
        if missing:
            problems.append(f"{where}classes absent from training but present in {s}: {missing} "
                            f"(training counts: { {classes[int(c)]: int(n) for c, n in train.items()} })")
    val = counts.get("val", {})
    if len(val) == 1:
        (c, n), = val.items()
        problems.append(f"{where}the validation split holds a single class ('{classes[int(c)]}', {int(n)} clips): "
                        "early stopping on it is meaningless; change split.val_fold / val_fraction / seed")
    for p in problems:
        if strict:
            raise ValueError(p + " (split.strict=true)")
        logger.warning(p)
    return problems


def make_model_input(features: dict[str, np.ndarray], splits: pd.DataFrame, norm: dict,
                     split: SplitParams | None = None) -> dict:
    """Normalised tensors per split, integer labels and class names: what every model trains on."""
    from mlsp_pipelines.features.normalise import apply_normaliser

    classes = sorted(set(features["label"].tolist()))
    y = np.searchsorted(np.asarray(classes), features["label"]).astype(np.int64)
    X = apply_normaliser(features["X"], norm)
    out: dict = {"classes": classes, "hop_s": float(features["hop_s"]), "norm": norm}
    if "feature_params" in features:
        out["features"] = json.loads(str(features["feature_params"]))
    for s in ("train", "val", "test"):
        m = (splits["split"] == s).to_numpy()
        out[f"X_{s}"], out[f"y_{s}"] = X[m], y[m]
        out[f"ids_{s}"] = features["filename"][m]
        for key in BREAKDOWN_KEYS:
            if key in features:
                out[f"{key}_{s}"] = np.asarray(features[key])[m]
    out["folds"] = features["fold"]
    out["clip_s"] = float(X.shape[1] * out["hop_s"])
    check_sanity({s: out[f"y_{s}"] for s in ("train", "val", "test")}, classes,
                 strict=bool(split and split.strict))
    return out


def cv_fold_assignment(features: dict[str, np.ndarray], split: SplitParams) -> np.ndarray:
    """The fold of every clip: the dataset's own folds, or ``len(split.fold_ids())`` seeded folds
    stratified by label over whole groups when the data has none."""
    from mlsp_pipelines.splits import stratified_group_folds

    if "official_split" in features:
        raise ValueError("split.cv=true, but this dataset has an official train/test setup (e.g. TAU's "
                         "evaluation_setup/fold1_*.csv) that cross-validation would ignore; set split.cv=false")
    folds = np.asarray(features["fold"])
    if (folds >= 0).all():
        return folds
    return stratified_group_folds(features["label"], features["group"], split.fold_ids(), split.seed)


def make_fold_input(features: dict[str, np.ndarray], split: SplitParams, fold: int) -> dict:
    """Model input of one cross-validation fold: ``fold`` tests, all other folds train (less a
    seeded stratified validation part, or none), normalisation fitted on this fold's training
    clips only."""
    from mlsp_pipelines.features.normalise import fit_normaliser
    from mlsp_pipelines.splits import group_split

    folds = cv_fold_assignment(features, split)
    present = sorted(set(folds.tolist()))
    if fold not in present:
        raise ValueError(f"split.cv_folds lists fold {fold}, but the data has folds {present}")
    names = np.full(len(folds), "train", dtype=object)
    names[folds == fold] = "test"
    rest = folds != fold
    if split.cv_val_fraction > 0:
        names[rest] = group_split(features["label"][rest], features["group"][rest],
                                     [("val", split.cv_val_fraction)], split.seed + fold)
    splits = pd.DataFrame({"filename": features["filename"], "label": features["label"], "split": names.astype(str)})
    norm = fit_normaliser(features["X"][(splits["split"] == "train").to_numpy()])
    return make_model_input(features, splits, norm, split)
