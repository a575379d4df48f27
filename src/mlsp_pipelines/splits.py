"""Every train/validation/test split of the project, in one module.

Each task splits by the unit that must not straddle two splits (a recording's clips, a patient, a
simulated trajectory, a sentence pair), seeded, so a split is the same on every machine:

- :func:`permutation_split`: named fractions of ``n`` items taken from one seeded permutation
  (viscoelastic trajectories, seq2seq sentence pairs and their held-out validation part);
- :func:`group_split`: whole groups per label, stratified (audio clips grouped by recording,
  the fallback when a dataset has neither folds nor an official setup, and the validation part
  carved from a training part);
- :func:`stratified_group_folds`: k seeded folds over whole groups, stratified by label (the
  cross-validation folds of a dataset without its own; respiratory cycles grouped by patient).

The differences between them are what each data kind needs (groups, strata, an order that
matters), not history: a new task picks one of these rather than writing its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["group_split", "permutation_split", "stratified_group_folds"]


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
