"""Nodes from a labelled audio index to normalised model input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from mlsp_pipelines.features.logmel import (
    extract_logmel,
    feature_bytes,
    n_frames,
    resolve_features,
)
from mlsp_pipelines.features.normalise import apply_normaliser, fit_normaliser
from mlsp_pipelines.ingestion.layouts import AudioDataParams
from mlsp_pipelines.params import FeatureParams, SplitParams, param_hint
from mlsp_pipelines.splits import group_split, stratified_group_folds

logger = logging.getLogger(__name__)

#: Optional index columns carried into the features (index column → features key): the split a
#: dataset's own setup assigns, and what the test set is broken down by in the reports.
METADATA_COLUMNS = {"split": "official_split", "device": "device", "city": "city"}
BREAKDOWN_KEYS = ("device", "city")


def index_audio(folder: str, data: AudioDataParams, *, task: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Index the audio folder in the layout ``data.source`` names (``ingestion/layouts``; synthetic
    data in the task's own layout). ``task`` (bound by the pipeline) spells the keys that error
    messages suggest."""
    result = data.index(folder, task=task)
    logger.info("indexed %d clips, %d classes from %s (layout %s)", len(result.frame), result.frame["label"].nunique(),
                folder, data.layout_name)
    return result.frame, result.quality


def compute_logmel(
    index: pd.DataFrame, quality: dict, features: FeatureParams, on_bad_file: str, folder: str | None = None,
    split: SplitParams | None = None, *, task: str | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Log-mel for every indexed clip (parallel); undecodable clips fail or are skipped and reported.
    ``auto`` feature parameters are resolved from the clips' headers first; clips far longer or
    shorter than the resolved length are reported (errors with ``split.strict``), and a feature
    array over ``features.max_memory_gb`` stops the run before extraction. Index paths are
    relative to the dataset ``folder``; ``task`` (bound by the pipeline) spells suggested keys."""
    rates, durations = _headers(index, folder)
    features = _resolve(features, rates, durations)
    lengths = check_clip_lengths(index, durations, features, strict=bool(split and split.strict), task=task)
    check_memory(len(index), features, task=task)
    X, keep, errors = extract_logmel(index, features, on_bad_file=on_bad_file, root=folder, task=task)
    kept = index[keep].reset_index(drop=True)
    if kept.empty:
        raise ValueError("no clip could be decoded; see the warnings above")
    report = {**quality, "n_undecodable": len(errors), "undecodable": errors, "n_clips": int(len(kept))}
    stored = features.model_dump(exclude=set(FeatureParams.NOT_STORED))
    out = {
        "X": X[keep],
        "filename": _text(kept["filename"], "filename"),
        "label": _text(kept["label"], "label"),
        "fold": kept["fold"].fillna(-1).to_numpy(dtype=np.int64),
        "group": _text(kept["group"] if "group" in kept else kept["filename"], "group"),
        "hop_s": np.float64(features.hop_length / features.sr),
        "feature_params": np.asarray(json.dumps(stored)),
    }
    # optional per-clip metadata of layouts that have it (TAU: official split, device, city)
    for column, key in METADATA_COLUMNS.items():
        if column in kept:
            out[key] = _text(kept[column], column)
    report["features"] = stored
    report.update(lengths)
    return out, report


def _text(column: pd.Series, name: str) -> np.ndarray:
    """A text column as a numpy array as wide as its longest value. pandas' ``to_numpy(dtype=str)``
    cuts every value to its first character (``<U1``) when the column holds a missing value, which
    turned an empty label into a class ``n`` and ``a `` into ``a``."""
    if column.isna().any():
        raise ValueError(f"index column '{name}' has {int(column.isna().sum())} missing value(s), e.g. at row "
                         f"{int(np.flatnonzero(column.isna().to_numpy())[0])}")
    return np.array([str(v) for v in column], dtype=str)


def _headers(index: pd.DataFrame, folder: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Native sample rate and duration (s) of every indexed clip from its header (the index's
    ``duration_s`` for segments); NaN where the header is unreadable (extraction reports those)."""
    import soundfile as sf

    from mlsp_pipelines.ingestion.index import resolve_paths

    rates = np.full(len(index), np.nan)
    durs = np.full(len(index), np.nan)
    for i, path in enumerate(resolve_paths(index["path"].astype(str), folder)):
        try:
            info = sf.info(path)
        except Exception:  # noqa: BLE001 - undecodable files are reported by the extraction itself
            continue
        rates[i] = info.samplerate
        durs[i] = (float(index["duration_s"].iloc[i]) if "duration_s" in index and pd.notna(index["duration_s"].iloc[i])
                   else info.frames / info.samplerate)
    return rates, durs


def _resolve(features: FeatureParams, rates: np.ndarray, durations: np.ndarray) -> FeatureParams:
    if features.is_resolved and features.fmax is None:
        return features
    readable = ~np.isnan(rates)
    if not readable.any():
        raise ValueError("no readable audio to resolve 'auto' feature parameters from")
    return resolve_features(features, rates[readable].astype(np.int64).tolist(), durations[readable].tolist())


#: how many file names a warning or an error shows
_SHOWN = 5


def check_clip_lengths(index: pd.DataFrame, durations: np.ndarray, features: FeatureParams, *, strict: bool = False,
                       task: str | None = None) -> dict:
    """Clips longer than ``length_ratio`` × ``clip_s`` (mostly cropped away) or shorter than
    ``clip_s / length_ratio`` (mostly padding): warned about naming a few, an error with
    ``split.strict``. Returns the data-quality entries, none when every clip fits (so the report
    of clean data keeps its keys)."""
    ratio, clip_s = features.length_ratio, float(features.clip_s)
    found = {}
    for kind, mask, what in (
        ("long", durations > ratio * clip_s, f"longer than {ratio:g} × the clip length ({clip_s:g} s): "
                                             "mostly cropped away"),
        ("short", durations < clip_s / ratio, f"shorter than 1/{ratio:g} of the clip length ({clip_s:g} s): "
                                              "mostly zero padding"),
    ):
        if not mask.any():
            continue
        rows = [{"path": str(p), "duration_s": round(float(d), 3)}
                for p, d in zip(index["path"][mask], durations[mask])]
        found[kind] = (rows, what)
    if not found:
        return {}
    problems = []
    for kind, (rows, what) in found.items():
        shown = ", ".join(f"{r['path']} ({r['duration_s']:g} s)" for r in rows[:_SHOWN])
        problems.append(f"{len(rows)} of {len(index)} clip(s) are {what}: {shown}")
    median = float(np.nanmedian(durations))
    advice = (f"median duration {median:.3g} s; choose the length with {param_hint('features.clip_s', '<seconds>', task)}, "
              f"or the tolerance with {param_hint('features.length_ratio', '<ratio>', task)}")
    msg = "; ".join(problems) + f" ({advice})"
    if strict:
        raise ValueError(msg + f"; an error because {task + '.' if task else ''}split.strict=true, "
                         f"{param_hint('split.strict', False, task)} only warns")
    logger.warning(msg)
    out: dict = {}
    for kind, (rows, _) in found.items():
        out[f"n_{kind}_clips"] = len(rows)
        out[f"{kind}_clips"] = rows
    return out


def check_memory(n_clips: int, features: FeatureParams, *, task: str | None = None) -> None:
    """Stop before extraction when the feature array would exceed ``features.max_memory_gb``,
    naming the size it needs and the keys that change it."""
    budget = features.max_memory_gb
    need = feature_bytes(n_clips, features)
    if budget is None or need <= budget * 1e9:
        return
    gb = need / 1e9
    raise ValueError(
        f"the features of {n_clips} clips would need {gb:.3g} GB ({n_clips} clips × {n_frames(features)} frames × "
        f"{features.n_mels} mel bands × 4 bytes, clip length {features.clip_s:g} s), over the budget of "
        f"{budget:g} GB; shorten the clips with {param_hint('features.clip_s', '<seconds>', task)} or raise the "
        f"budget with {param_hint('features.max_memory_gb', int(np.ceil(gb)), task)}"
    )


def split_dataset(features: dict[str, np.ndarray], split: SplitParams, *, task: str | None = None) -> pd.DataFrame:
    """train/val/test per clip: the dataset's official setup when it has one (validation carved
    from its training part: ``val_fraction`` of whole groups, stratified, seeded), else by fold
    when the data has folds, else stratified by group and seeded."""
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
                raise ValueError(f"split.{key}={value} is not a fold of this dataset (folds: {present}); "
                                 f"choose one with {param_hint(f'split.{key}', present[0], task)}")
        names = np.where(folds == split.test_fold, "test", np.where(folds == split.val_fold, "val", "train"))
    else:
        names = group_split(features["label"], features["group"],
                            [("test", split.test_fraction), ("val", split.val_fraction)], split.seed)
    df = pd.DataFrame({"filename": features["filename"], "label": features["label"], "split": names})
    for s in ("train", "test"):
        if not (df["split"] == s).any():
            raise ValueError(f"the '{s}' split is empty; check {task + '.' if task else ''}split.test_fold, "
                             "val_fold or the fractions")
    logger.info("split sizes: %s", df["split"].value_counts().to_dict())
    return df


def fit_normalisation(features: dict[str, np.ndarray], splits: pd.DataFrame) -> dict:
    """Per-band mean/std fitted on the training split only (no test statistics leak into training)."""
    train = (splits["split"] == "train").to_numpy()
    return fit_normaliser(features["X"][train])


def check_sanity(labels: dict[str, np.ndarray], classes: list[str], *, strict: bool, where: str = "",
                 task: str | None = None) -> list[str]:
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
                        f"early stopping on it is meaningless; change {task + '.' if task else ''}split.val_fold, "
                        "val_fraction or seed")
    for p in problems:
        if strict:
            raise ValueError(p + f" (an error because {task + '.' if task else ''}split.strict=true; "
                             f"{param_hint('split.strict', False, task)} only warns)")
        logger.warning(p)
    return problems


def make_model_input(features: dict[str, np.ndarray], splits: pd.DataFrame, norm: dict,
                     split: SplitParams | None = None, *, task: str | None = None) -> dict:
    """Normalised tensors per split, integer labels and class names: what every model trains on."""
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
                 strict=bool(split and split.strict), task=task)
    return out


def cv_fold_assignment(features: dict[str, np.ndarray], split: SplitParams, *, task: str | None = None) -> np.ndarray:
    """The fold of every clip: the dataset's own folds, or ``len(split.fold_ids())`` seeded folds
    stratified by label over whole groups when the data has none."""
    if "official_split" in features:
        raise ValueError("split.cv=true, but this dataset has an official train/test setup (e.g. TAU's "
                         "evaluation_setup/fold1_*.csv) that cross-validation would ignore; set "
                         f"{param_hint('split.cv', False, task)}")
    folds = np.asarray(features["fold"])
    if (folds >= 0).all():
        return folds
    return stratified_group_folds(features["label"], features["group"], split.fold_ids(), split.seed)


def make_fold_input(features: dict[str, np.ndarray], split: SplitParams, fold: int, *, task: str | None = None) -> dict:
    """Model input of one cross-validation fold: ``fold`` tests, all other folds train (less a
    seeded stratified validation part, or none), normalisation fitted on this fold's training
    clips only."""
    folds = cv_fold_assignment(features, split, task=task)
    present = sorted(set(folds.tolist()))
    if fold not in present:
        raise ValueError(f"split.cv_folds lists fold {fold}, but the data has folds {present}; list them with "
                         f"{param_hint('split.cv_folds', '[' + ','.join(map(str, present)) + ']', task)}")
    names = np.full(len(folds), "train", dtype=object)
    names[folds == fold] = "test"
    rest = folds != fold
    if split.cv_val_fraction > 0:
        names[rest] = group_split(features["label"][rest], features["group"][rest],
                                     [("val", split.cv_val_fraction)], split.seed + fold)
    splits = pd.DataFrame({"filename": features["filename"], "label": features["label"], "split": names.astype(str)})
    norm = fit_normaliser(features["X"][(splits["split"] == "train").to_numpy()])
    return make_model_input(features, splits, norm, split, task=task)
