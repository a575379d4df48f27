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


# -- cross-validation (ESC-50 protocol) and data sanity ---------------------------------------------
def _cv_features(n_per: int = 10, folds: int = 5, classes: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = [f"c{c}" for c in range(classes) for _ in range(n_per)]
    fold = [1 + (i % folds) for c in range(classes) for i in range(n_per)]
    feats = features(labels, fold)
    feats["X"] = rng.normal(size=(len(labels), 6, 4)).astype(np.float32) + np.asarray(fold, np.float32)[:, None, None]
    feats["hop_s"] = np.float64(0.01)
    return feats


@pytest.mark.parametrize("val_fraction", [0.0, 0.2])
def test_cv_fold_tests_once_trains_on_all_other_folds_and_normalises_on_its_own_training_data(val_fraction: float) -> None:
    from mlsp_pipelines.features.normalise import fit_normaliser
    from mlsp_pipelines.modular.audio.nodes import make_fold_input

    feats = _cv_features()
    split = SplitParams(cv=True, cv_val_fraction=val_fraction)
    seen_test: list[str] = []
    for k in split.fold_ids():
        data = make_fold_input(feats, split, k)
        test = set(data["ids_test"])
        assert test == set(feats["filename"][feats["fold"] == k])
        rest = set(data["ids_train"]) | set(data["ids_val"])
        assert rest == set(feats["filename"][feats["fold"] != k])  # every other fold trains (or validates)
        assert not (test & rest)
        assert (len(data["ids_val"]) > 0) == (val_fraction > 0)
        train_mask = np.isin(feats["filename"], data["ids_train"])
        expected = fit_normaliser(feats["X"][train_mask])
        np.testing.assert_allclose(data["norm"]["mean"], expected["mean"])  # this fold's statistics only
        seen_test += list(test)
    assert sorted(seen_test) == sorted(feats["filename"])  # each clip tested exactly once


def test_cv_without_folds_makes_seeded_stratified_group_folds() -> None:
    from mlsp_pipelines.modular.audio.nodes import cv_fold_assignment

    labels = [f"c{c}" for c in range(2) for _ in range(20)]
    groups = [f"g{i // 2}" for i in range(40)]
    feats = features(labels, None, groups)
    split = SplitParams(cv=True, cv_folds=4, seed=3)
    a, b = cv_fold_assignment(feats, split), cv_fold_assignment(feats, split)
    assert np.array_equal(a, b) and sorted(set(a.tolist())) == [1, 2, 3, 4]
    for g in set(groups):  # a group never straddles folds
        assert len(set(a[np.asarray(groups) == g].tolist())) == 1
    for k in range(1, 5):  # every fold holds both classes
        assert len(set(np.asarray(labels)[a == k])) == 2


def test_missing_cv_fold_is_named() -> None:
    from mlsp_pipelines.modular.audio.nodes import make_fold_input

    with pytest.raises(ValueError, match="fold 7.*folds \\[1, 2, 3, 4, 5\\]"):
        make_fold_input(_cv_features(), SplitParams(cv=True, cv_folds=[7]), 7)


def test_sanity_warns_with_classes_and_counts_and_fails_when_strict(caplog: pytest.LogCaptureFixture) -> None:
    from mlsp_pipelines.modular.audio.nodes import check_sanity

    classes = ["cough", "crackle", "wheeze"]
    labels = {"train": np.array([0, 0, 1]), "val": np.array([2, 2]), "test": np.array([0, 2])}
    problems = check_sanity(labels, classes, strict=False)
    assert len(problems) == 3
    text = caplog.text
    assert "absent from training but present in val: {'wheeze': 2}" in text
    assert "present in test: {'wheeze': 1}" in text
    assert "single class ('wheeze', 2 clips)" in text
    with pytest.raises(ValueError, match="wheeze.*split.strict=true"):
        check_sanity(labels, classes, strict=True)
    assert check_sanity({"train": np.array([0, 1]), "val": np.array([0, 1]), "test": np.array([1])},
                        classes, strict=True) == []


def test_summary_gives_mean_std_and_t_confidence_interval() -> None:
    from scipy import stats

    from mlsp_pipelines.modular.classifier.nodes import summarise_folds

    accs = [0.8, 0.9, 0.85, 0.7, 0.95]
    summary, table = summarise_folds(*({"model": "m", "arch": "cnn", "fold": k + 1, "accuracy": a, "macro_f1": a}
                                       for k, a in reversed(list(enumerate(accs)))))
    assert summary["cv_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert summary["cv_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert summary["cv_accuracy_ci95"] == pytest.approx(stats.t.ppf(0.975, 4) * np.std(accs, ddof=1) / np.sqrt(5))
    assert table["fold"].tolist() == [1, 2, 3, 4, 5] and summary["cv_accuracy_per_fold"] == accs


def test_auto_features_follow_the_data() -> None:
    from mlsp_pipelines.features.logmel import resolve_features
    from mlsp_pipelines.params import FeatureParams

    auto = FeatureParams(sr="auto", clip_s="auto", n_fft="auto", hop_length="auto", n_mels="auto", fmax=None)
    digits = resolve_features(auto, [8000] * 100, list(np.linspace(0.3, 0.9, 100)))
    assert (digits.sr, digits.n_fft, digits.hop_length, digits.n_mels) == (8000, 256, 64, 40)
    assert digits.clip_s == pytest.approx(0.9)
    scenes = resolve_features(auto, [44100] * 10, [5.0] * 10)
    assert (scenes.sr, scenes.n_fft, scenes.hop_length, scenes.n_mels, scenes.clip_s) == (22050, 1024, 512, 64, 5.0)
    fixed = FeatureParams(sr=16000, fmax=8000.0)
    assert resolve_features(fixed, [8000], [1.0]) == fixed
    with pytest.raises(ValueError, match="n_mels=-1 must be greater than 0"):
        FeatureParams(n_mels=-1)


# -- a dataset's official setup (TAU: fold1_train / fold1_evaluate) ------------------------------------
def test_official_split_decides_test_and_carves_validation_from_train_by_whole_groups() -> None:
    rng = np.random.default_rng(0)
    labels, groups, official = [], [], []
    for c in range(3):
        for g in range(10):  # 10 locations per scene, 4 segments each; locations 8, 9 are the test split
            for _ in range(4):
                labels.append(f"scene{c}")
                groups.append(f"city-{c * 10 + g}")
                official.append("test" if g >= 8 else "train")
    order = rng.permutation(len(labels))
    feats = features([labels[i] for i in order], None, [groups[i] for i in order])
    feats["official_split"] = np.asarray([official[i] for i in order])
    feats["fold"][:] = np.arange(len(order)) % 5 + 1  # folds present: the official setup still wins
    a = split_dataset(feats, SplitParams(test_fold=1, val_fraction=0.2, seed=3))
    _check_partition(a, feats)
    assert ((a["split"] == "test").to_numpy() == (feats["official_split"] == "test")).all()
    train_part = a[feats["official_split"] == "train"]
    assert set(train_part["split"]) == {"train", "val"}
    per_group = a.assign(group=feats["group"]).groupby("group")["split"].nunique()
    assert per_group.max() == 1  # segments of one location never straddle splits
    val = a[a["split"] == "val"]
    assert val["label"].value_counts().to_dict() == {f"scene{c}": 2 * 4 for c in range(3)}  # 20 % of 8 train groups
    pd.testing.assert_frame_equal(a, split_dataset(feats, SplitParams(test_fold=1, val_fraction=0.2, seed=3)))
    assert (a["split"] != split_dataset(feats, SplitParams(val_fraction=0.2, seed=4))["split"]).any()
    feats["official_split"] = np.asarray(["evaluate"] + list(feats["official_split"][1:]))
    with pytest.raises(ValueError, match=r"'train' or 'test', found \['evaluate'\]"):
        split_dataset(feats, SplitParams())


def test_cross_validation_refuses_data_with_an_official_setup() -> None:
    from mlsp_pipelines.modular.audio.nodes import make_fold_input

    feats = _cv_features()
    feats["official_split"] = np.where(feats["fold"] == 1, "test", "train")
    with pytest.raises(ValueError, match="official train/test setup.*set split.cv=false"):
        make_fold_input(feats, SplitParams(cv=True), 1)


# -- the split module's primitives ---------------------------------------------------------------
def test_permutation_split_is_seeded_disjoint_and_keeps_order_only_when_asked() -> None:
    from mlsp_pipelines.splits import permutation_split

    parts = [("test", 0.2), ("val", 0.1)]
    a = permutation_split(50, parts, seed=3)
    assert {k: len(v) for k, v in a.items()} == {"test": 10, "val": 5, "train": 35}
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(50))
    assert all((np.diff(v) > 0).all() for v in a.values())
    b = permutation_split(50, parts, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], permutation_split(50, parts, seed=4)["test"])
    # Unsorted: the seeded permutation's order (a shuffled corpus); ``limit`` keeps its first items.
    shuffled = permutation_split(50, parts, seed=3, sort=False, limit=20)
    assert {k: len(v) for k, v in shuffled.items()} == {"test": 4, "val": 2, "train": 14}
    assert np.array_equal(np.concatenate([shuffled[k] for k in ("test", "val", "train")]),
                          np.random.default_rng(3).permutation(50)[:20])
    with pytest.raises(ValueError, match=r"2 trajectories are too few for test_fraction=0.2 and val_fraction=0.1"):
        permutation_split(2, parts, seed=0, what="trajectories")


def test_group_split_never_splits_a_group_and_stratifies_by_label() -> None:
    from mlsp_pipelines.splits import group_split

    labels = np.repeat(["a", "b"], 40)
    groups = np.repeat(np.arange(20), 4)  # 10 groups per label
    names = group_split(labels, groups, [("test", 0.2), ("val", 0.1)], seed=0)
    for g in range(20):
        assert len(set(names[groups == g])) == 1
    for lab in ("a", "b"):
        counts = pd.Series(names[labels == lab]).value_counts().to_dict()
        assert counts == {"train": 28, "test": 8, "val": 4}
