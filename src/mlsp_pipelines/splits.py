"""Every train/validation/test split of the project, in one module.

Each task splits by the unit that must not straddle two splits (a recording's clips, a patient, a
simulated trajectory, a sentence pair), seeded, so a split is the same on every machine:

- :func:`permutation_split`: named fractions of ``n`` items taken from one seeded permutation
  (viscoelastic trajectories, seq2seq sentence pairs and their held-out validation part);
- :func:`group_split`: whole groups per label, stratified (audio clips grouped by recording,
  the fallback when a dataset has neither folds nor an official setup, and the validation part
  carved from a training part);
- :func:`stratified_group_folds`: k seeded folds over whole groups, stratified by label (the
  cross-validation folds of a dataset without its own);
- :func:`patient_split`: ICBHI-style patients, stratified by their most frequent abnormal label
  with systematic sampling, so every stratum gives each split its share.

The differences between them are what each data kind needs (groups, strata, an order that
matters), not history: a new task picks one of these rather than writing its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["group_split", "patient_split", "permutation_split", "stratified_group_folds"]


def permutation_split(n: int, parts: Sequence[tuple[str, float]], seed: int, *, rest: str = "train",
                      sort: bool = True, limit: int | None = None, what: str = "items") -> dict[str, np.ndarray]:
    """Row indices per split: one seeded permutation of ``range(n)`` (its first ``limit`` items
    when given) cut into ``parts`` in order, each ``max(1, round(fraction * n))`` items, the
    remainder ``rest``. ``sort`` returns each split's indices in ascending order; without it they
    keep the permutation's order (a shuffled corpus). Too few items for a non-empty ``rest`` is a
    ``ValueError`` naming the fractions."""
    order = np.random.default_rng(seed).permutation(n)
    if limit is not None:
        order = order[:limit]
    m = len(order)
    sizes = [max(1, int(round(frac * m))) for _, frac in parts]
    if m - sum(sizes) < 1:
        fractions = " and ".join(f"{name}_fraction={frac}" for name, frac in parts)
        raise ValueError(f"{m} {what} are too few for {fractions}")
    out: dict[str, np.ndarray] = {}
    start = 0
    for (name, _), k in zip(parts, sizes, strict=True):
        out[name] = order[start:start + k]
        start += k
    out[rest] = order[start:]
    return {k: np.sort(v) for k, v in out.items()} if sort else out


def group_split(labels: np.ndarray, groups: np.ndarray, fractions: Sequence[tuple[str, float]], seed: int,
                rest: str = "train") -> np.ndarray:
    """The split name of every item: whole groups (a group never straddles splits), stratified by
    label. Per label (a group's most frequent one), each named part takes ``round(fraction *
    n_groups)`` groups in a seeded order (at least one while two or more are left), the
    remainder is ``rest``."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    frame = pd.DataFrame({"label": labels, "group": groups})
    group_label = frame.groupby("group", sort=True)["label"].agg(lambda s: s.mode().iloc[0])
    for _, gs in group_label.groupby(group_label, sort=True):
        names = gs.index.to_numpy().copy()  # writable: numeric group ids give a read-only view
        rng.shuffle(names)
        n, taken, assign = len(names), 0, {}
        for i, (part, frac) in enumerate(fractions):
            left = n - taken
            need = 3 if i == 0 and len(fractions) > 1 else 2  # keep >= 1 group for every later part
            k = max(1, int(round(frac * n))) if left >= need else 0
            k = min(k, left - 1)
            assign.update({g: part for g in names[taken: taken + k]})
            taken += k
        assign.update({g: rest for g in names[taken:]})
        mask = frame["group"].isin(names).to_numpy()
        out[mask] = frame.loc[mask, "group"].map(assign).to_numpy()
    return out.astype(str)


def stratified_group_folds(labels: np.ndarray, groups: np.ndarray, fold_ids: Sequence[int], seed: int) -> np.ndarray:
    """The fold id of every item: ``len(fold_ids)`` seeded folds over whole groups, stratified by
    label (scikit-learn's ``StratifiedGroupKFold``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.empty(len(labels), dtype=np.int64)
    kfold = StratifiedGroupKFold(n_splits=len(fold_ids), shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(kfold.split(np.zeros(len(labels)), labels, groups)):
        out[test] = fold_ids[k]
    return out


def _check_fraction(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def _systematic_pick(n: int, fraction: float, phase: float) -> np.ndarray:
    """Boolean mask picking ~``fraction`` of ``n`` ordered items evenly (systematic sampling),
    so every contiguous block (stratum) of the order gets its proportional share (+-1)."""
    k = np.arange(n)
    return np.floor((k + 1) * fraction + phase) > np.floor(k * fraction + phase)


def patient_split(
    cycles: pd.DataFrame,
    *,
    test_fraction: float,
    val_fraction: float,
    seed: int,
) -> pd.Series:
    """Assign each row to ``'train'``/``'val'``/``'test'`` by patient, so no patient is in two splits.

    Fractions are shares of *patients*. Stratified roughly: patients are grouped by their most
    frequent abnormal label (``normal`` if they have none) and, within the random order of each
    group, picked systematically so each group contributes its share to every split. A split
    with a non-zero fraction gets at least one patient when there are enough patients.
    """
    test_fraction = _check_fraction("test_fraction", test_fraction)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    if test_fraction + val_fraction >= 1.0:
        raise ValueError(f"test_fraction + val_fraction must be < 1, got {test_fraction} + {val_fraction}")
    if "patient" not in cycles.columns:
        raise ValueError("cycles must have a 'patient' column")
    rng = np.random.default_rng(seed)
    patients = np.unique(cycles["patient"].to_numpy())
    if "label" in cycles.columns:
        abn = cycles.loc[cycles["label"] != "normal", ["patient", "label"]]
        top = abn.groupby("patient")["label"].agg(lambda s: s.value_counts().sort_index().idxmax())
        strata = pd.Series(patients, index=patients).map(top).fillna("normal").astype(str).to_numpy()
    else:
        strata = np.zeros(len(patients), dtype=object)
    order = np.lexsort((rng.permutation(len(patients)), strata))
    ordered = patients[order]
    n = len(ordered)
    assign = np.full(n, "train", dtype=object)
    is_test = _systematic_pick(n, test_fraction, rng.random())
    assign[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    if val_fraction > 0 and rest.size:
        is_val = _systematic_pick(rest.size, val_fraction / (1.0 - test_fraction), rng.random())
        assign[rest[is_val]] = "val"
    # guarantee non-empty requested splits while train keeps at least one patient
    for name, frac in (("test", test_fraction), ("val", val_fraction)):
        train_idx = np.flatnonzero(assign == "train")
        if frac > 0 and not np.any(assign == name) and train_idx.size > 1:
            assign[rng.choice(train_idx)] = name
    mapping = dict(zip(ordered.tolist(), assign.tolist(), strict=True))
    split = cycles["patient"].map(mapping).astype(str)
    split.name = "split"
    logger.info("patient split: %s patients", {k: int(v) for k, v in pd.Series(assign).value_counts().items()})
    return split
