"""Classification metrics from integer predictions (numpy only, so they are cheap to test)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class recall/precision/F1 (0 where a class has no support)."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "n_test": int(cm.sum()),
        "per_class_recall": {c: float(r) for c, r in zip(classes, recall)},
        "per_class_f1": {c: float(v) for c, v in zip(classes, f1)},
    }


def confusion_frame(cm: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Wide table for people: one row per actual class, one column per predicted class."""
    df = pd.DataFrame(cm, columns=list(classes))
    df.insert(0, "actual", list(classes))
    return df


def icbhi_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], normal: str) -> dict:
    """ICBHI 2017 challenge metrics: sensitivity = abnormal cycles given their exact class /
    abnormal cycles, specificity = normal cycles predicted normal / normal cycles, score = mean."""
    if normal not in classes:
        raise ValueError(f"report.normal_class={normal!r} is not one of the classes {classes}")
    k = classes.index(normal)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    abnormal = y_true != k
    se = float((y_pred[abnormal] == y_true[abnormal]).mean()) if abnormal.any() else 0.0
    sp = float((y_pred[~abnormal] == k).mean()) if (~abnormal).any() else 0.0
    return {"sensitivity": se, "specificity": sp, "icbhi_score": (se + sp) / 2}


def _log_loss(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> float:
    """Multi-class log loss (scikit-learn's, with the full label list so a subset holding a few
    classes is scored against all of them); probabilities renormalised in float64."""
    from sklearn.metrics import log_loss

    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    return float(log_loss(np.asarray(y_true), p, labels=list(range(n_classes))))


def breakdown_table(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                    by: dict[str, np.ndarray] | None = None, seen_devices: set[str] | None = None) -> pd.DataFrame:
    """Accuracy and log loss of the test set overall, per class, and per value of every ``by``
    column (``device``, ``city``), one row each: ``by, value, n, accuracy, log_loss, seen``.
    With ``seen_devices`` (the devices of the training split) the devices are marked ``seen`` or
    ``unseen`` and two rows pool the test clips of each kind (what DCASE Task 1 reports)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(axis=1)
    n_classes = len(classes)
    rows: list[dict] = []

    def add(kind: str, value: str, mask: np.ndarray, seen: str = "") -> None:
        if mask.any():
            rows.append({"by": kind, "value": value, "n": int(mask.sum()),
                         "accuracy": float((pred[mask] == y_true[mask]).mean()),
                         "log_loss": _log_loss(y_true[mask], probs[mask], n_classes), "seen": seen})

    add("overall", "all", np.ones(len(y_true), dtype=bool))
    for k, c in enumerate(classes):
        add("class", c, y_true == k)
    for kind, values in (by or {}).items():
        values = np.asarray(values).astype(str)
        for v in sorted(set(values.tolist()), key=_natural):
            seen = ("seen" if v in seen_devices else "unseen") if kind == "device" and seen_devices is not None else ""
            add(kind, v, values == v, seen)
        if kind == "device" and seen_devices is not None:
            is_seen = np.isin(values, sorted(seen_devices))
            add("devices", "seen", is_seen, "seen")
            add("devices", "unseen", ~is_seen, "unseen")
    return pd.DataFrame(rows, columns=["by", "value", "n", "accuracy", "log_loss", "seen"])


def _natural(value: str) -> tuple:
    """Sort key putting ``s2`` before ``s10`` (device names)."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", value))


def breakdown_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Flat metric names for a :func:`breakdown_table`: ``log_loss``, ``accuracy_seen`` /
    ``_unseen`` and ``log_loss_seen`` / ``_unseen`` (leaderboard columns), and
    ``test_acc_<by>_<value>`` / ``test_logloss_<by>_<value>`` for every class, device and city."""
    out: dict[str, float] = {}
    for r in table.itertuples(index=False):
        if r.by == "overall":
            out["log_loss"] = r.log_loss
        elif r.by == "devices":
            out[f"accuracy_{r.value}"], out[f"log_loss_{r.value}"] = r.accuracy, r.log_loss
        else:
            out[f"test_acc_{r.by}_{r.value}"], out[f"test_logloss_{r.by}_{r.value}"] = r.accuracy, r.log_loss
    return out
