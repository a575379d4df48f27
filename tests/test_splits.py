"""train/val/test splits: by fold when the data has folds, else stratified by group and seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsp_pipelines.modular.audio.nodes import split_dataset
from mlsp_pipelines.params import SplitParams


def features(labels: list[str], folds: list[int] | None = None, groups: list[str] | None = None) -> dict:
    n = len(labels)
    names = np.array([f"clip{k:03d}.wav" for k in range(n)])
    return {
        "X": np.zeros((n, 2, 2), np.float32),
        "filename": names,
        "label": np.asarray(labels, dtype=str),
        "fold": np.asarray(folds if folds is not None else [-1] * n, dtype=np.int64),
        "group": np.asarray(groups if groups is not None else names, dtype=str),
    }


def _check_partition(df: pd.DataFrame, feats: dict) -> None:
    assert df["filename"].tolist() == feats["filename"].tolist()  # one row per clip, in order
    assert not df["filename"].duplicated().any()
    assert set(df["split"]) <= {"train", "val", "test"}


# -- by fold ----------------------------------------------------------------------------------------
def test_fold_split_uses_test_and_val_folds() -> None:
    folds = [1, 2, 3, 4, 5] * 4
    feats = features([f"c{k % 3}" for k in range(20)], folds)
    df = split_dataset(feats, SplitParams(test_fold=3, val_fold=5))
    _check_partition(df, feats)
    f = np.asarray(folds)
    assert (df["split"] == "test").tolist() == (f == 3).tolist()
    assert (df["split"] == "val").tolist() == (f == 5).tolist()
    assert (df["split"] == "train").tolist() == np.isin(f, [1, 2, 4]).tolist()
    assert df["split"].value_counts().to_dict() == {"train": 12, "test": 4, "val": 4}


def test_fold_split_without_val_fold() -> None:
    feats = features(["a", "b"] * 6, [1, 2, 3] * 4)
    df = split_dataset(feats, SplitParams(test_fold=2, val_fold=None))
    assert "val" not in set(df["split"])
    assert (df["split"] == "test").sum() == 4 and (df["split"] == "train").sum() == 8


@pytest.mark.parametrize("key", ["test_fold", "val_fold"])
def test_unknown_fold_is_named(key: str) -> None:
    feats = features(["a", "b"] * 6, [1, 2, 3] * 4)
    params = {"test_fold": 1, "val_fold": 2, key: 99}
    with pytest.raises(ValueError, match=rf"split\.{key}=99") as exc:
        split_dataset(feats, SplitParams(**params))
    assert "[1, 2, 3]" in str(exc.value)


def test_empty_train_split_is_an_error() -> None:
    # two folds only, one tests and one validates: nothing is left to train on
    feats = features(["a", "b"] * 4, [1, 2] * 4)
    with pytest.raises(ValueError, match="'train' split is empty"):
        split_dataset(feats, SplitParams(test_fold=1, val_fold=2))


# -- stratified, grouped, seeded ----------------------------------------------------------------------
def grouped_corpus(n_classes: int = 4, groups_per_class: int = 10, clips_per_group: int = 3) -> dict:
    labels, groups = [], []
    for c in range(n_classes):
        for g in range(groups_per_class):
            for _ in range(clips_per_group):
                labels.append(f"class{c}")
                groups.append(f"class{c}-speaker{g}")
    order = np.random.default_rng(5).permutation(len(labels))  # interleave classes and groups
    return features([labels[i] for i in order], None, [groups[i] for i in order])


def test_stratified_split_without_folds() -> None:
    feats = grouped_corpus()
    df = split_dataset(feats, SplitParams(seed=3))
    _check_partition(df, feats)
    counts = df["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    assert counts["test"] == counts["val"] == 4 * 2 * 3  # 20 % of the 10 groups of each class
    for label, part in df.groupby("label"):
        assert set(part["split"]) == {"train", "val", "test"}, label
        assert (part["split"] == "train").sum() == 6 * 3


def test_groups_never_straddle_splits() -> None:
    feats = grouped_corpus()
    df = split_dataset(feats, SplitParams(seed=11)).assign(group=feats["group"])
    per_group = df.groupby("group")["split"].nunique()
    assert (per_group == 1).all()
    assert len(per_group) == 40


def test_stratified_split_is_seeded() -> None:
    feats = grouped_corpus()
    a = split_dataset(feats, SplitParams(seed=7))
    b = split_dataset(feats, SplitParams(seed=7))
    c = split_dataset(feats, SplitParams(seed=8))
    pd.testing.assert_frame_equal(a, b)
    assert (a["split"] != c["split"]).any()


def test_small_classes_still_appear_in_train() -> None:
    # class sizes 1, 2, 3 and 12 groups: every class must be trainable
    labels = ["tiny"] + ["pair"] * 2 + ["three"] * 3 + ["big"] * 12
    feats = features(labels)
    df = split_dataset(feats, SplitParams(seed=0))
    train_labels = set(df.loc[df["split"] == "train", "label"])
    assert train_labels == {"tiny", "pair", "three", "big"}
    assert (df["split"] == "test").any()


def test_test_fold_none_or_missing_folds_fall_back_to_stratified() -> None:
    labels = ["a", "b"] * 10
    with_folds = features(labels, [1, 2, 3, 4, 5] * 4)
    df = split_dataset(with_folds, SplitParams(test_fold=None, seed=1))
    # stratified: split sizes follow the fractions, not the folds
    assert df["split"].value_counts().to_dict() == {"train": 12, "test": 4, "val": 4}
    partial = features(labels, [1, 2, 3, 4, -1] * 4)  # some clips without a fold
    df2 = split_dataset(partial, SplitParams(test_fold=1, seed=1))
    pd.testing.assert_series_equal(df2["split"], df["split"])
