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
