"""Difficulty check for the synthetic acoustic scenes: a linear model on clip-mean log-mel.

Why: the embedded scene corpus is only useful as default data if it is neither trivial nor
noise. This script measures (a) synthesis throughput and (b) the fold-wise cross-validated
accuracy of a standardised logistic regression on clip-mean log-mel, which should sit
clearly above chance but clearly below 95 %, leaving headroom for models that use the
time-frequency structure (e.g. a small CNN).

Run: ``.venv/bin/python benchmarks/scene_baseline.py [--n-per-class 60 --seed 42]``
"""

from __future__ import annotations

import argparse
import time

import librosa
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlsp_pipelines.simulation.scenes import SCENE_CLASSES, synthesise_scenes


def clip_mean_logmel(
    y: np.ndarray, sr: int, *, n_mels: int = 64, n_fft: int = 1024, hop_length: int = 512
) -> np.ndarray:
    """Time-averaged log-mel spectrum (dB): the 'bag of frames' summary a linear model sees."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
    )
    return librosa.power_to_db(mel, ref=1.0).mean(axis=1)


def fold_cv_accuracy(x: np.ndarray, meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-fold-out accuracies using the corpus ``fold`` column, and the pooled
    confusion matrix (rows: true class, columns: predicted)."""
    y = meta["label"].to_numpy()
    folds = meta["fold"].to_numpy()
    labels = sorted(set(y))
    accs = []
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for f in sorted(set(folds)):
        test = folds == f
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x[~test], y[~test])
        pred = model.predict(x[test])
        accs.append(float(np.mean(pred == y[test])))
        cm += confusion_matrix(y[test], pred, labels=labels)
    return np.asarray(accs), cm


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-per-class", type=int, default=60)
    parser.add_argument("--sr", type=int, default=16000)
    parser.add_argument("--duration-s", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--classes", nargs="*", default=None, choices=SCENE_CLASSES)
    parser.add_argument("--confusion", action="store_true", help="print the confusion matrix")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    audio, meta = synthesise_scenes(
        n_per_class=args.n_per_class,
        sr=args.sr,
        duration_s=args.duration_s,
        seed=args.seed,
        classes=args.classes,
        n_folds=args.n_folds,
    )
    synth_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    x = np.stack([clip_mean_logmel(audio[f], args.sr) for f in meta["filename"]])
    feat_s = time.perf_counter() - t0

    accs, cm = fold_cv_accuracy(x, meta)
    n_classes = meta["label"].nunique()
    table = pd.DataFrame(
        {
            "value": [
                len(audio),
                n_classes,
                f"{100.0 / n_classes:.1f} %",
                f"{100 * accs.mean():.1f} ± {100 * accs.std():.1f} %",
                " ".join(f"{100 * a:.1f}" for a in accs),
                f"{len(audio) / synth_s:.1f}",
                f"{synth_s:.2f}",
                f"{feat_s:.2f}",
            ]
        },
        index=[
            "clips",
            "classes",
            "chance accuracy",
            "LR clip-mean log-mel acc (mean ± std over folds)",
            "per-fold acc (%)",
            "synthesis clips/s (one process)",
            "synthesis time (s)",
            "log-mel time (s)",
        ],
    )
    print(table.to_string())
    if args.confusion:
        labels = sorted(meta["label"].unique())
        print(pd.DataFrame(cm, index=labels, columns=[lab[:8] for lab in labels]).to_string())


if __name__ == "__main__":
    main()
