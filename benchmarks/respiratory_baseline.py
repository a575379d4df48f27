"""Baseline on synthetic ICBHI-like data: how hard is the synthetic 4-class cycle task?

Synthesises a corpus, writes it in the ICBHI layout and reads it back through the real-data
loader, segments cycles to a fixed length, takes the time-averaged log-mel spectrum of each
cycle (32 bands) and fits a logistic regression on a patient-level split. Reports the ICBHI
2017 challenge metrics for the 4-class task (normal / crackle / wheeze / both):

* sensitivity = correctly classified abnormal cycles / all abnormal cycles (exact class),
* specificity = correctly classified normal cycles / all normal cycles,
* ICBHI score = mean of the two.

Predicting "normal" for every cycle scores exactly 0.5; a score near 1 would mean the
synthesiser is too easy to be a useful stand-in for real data (published systems on real ICBHI
score roughly 0.5-0.65).

Usage: ``python benchmarks/respiratory_baseline.py [--patients 24 --recordings 3 --duration 20
--sr 4000 --seed 42 --splits 10]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlsp_pipelines.ingestion.icbhi import LABELS, scan_icbhi, segment_cycles
from mlsp_pipelines.simulation.respiratory import (
    synthesise_recordings,
    write_icbhi_layout,
)
from mlsp_pipelines.splits import patient_split

logger = logging.getLogger("respiratory_baseline")


def icbhi_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ICBHI 2017 sensitivity/specificity/score for string labels (``normal`` = negative class)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    normal = y_true == "normal"
    correct = y_true == y_pred
    se = float(correct[~normal].mean()) if (~normal).any() else float("nan")
    sp = float(correct[normal].mean()) if normal.any() else float("nan")
    return {"sensitivity": se, "specificity": sp, "score": (se + sp) / 2}


def logmel_mean(x: np.ndarray, sr: int, n_mels: int = 32) -> np.ndarray:
    """Per-cycle mean log-mel spectrum (N, n_mels), batched over cycles by librosa.

    Zero-padded tails are excluded from the mean so short cycles are not biased towards silence,
    and each cycle's overall level (mean over bands) is subtracted: recording gain is arbitrary,
    so only the spectral shape should matter.
    """
    hop = 128
    mel = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=512, hop_length=hop, n_mels=n_mels, fmax=sr / 2)
    logmel = np.log(mel + 1e-10)  # (N, n_mels, frames)
    frame_energy = mel.sum(axis=1)  # (N, frames)
    active = frame_energy > 1e-8 * frame_energy.max(axis=1, keepdims=True)
    w = active[:, None, :].astype(np.float64)
    feats = (logmel * w).sum(axis=2) / np.maximum(w.sum(axis=2), 1.0)
    return feats - feats.mean(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--recordings", type=int, default=3, help="recordings per patient")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per recording")
    ap.add_argument("--sr", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--length", type=float, default=5.0, help="fixed cycle length in seconds")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--splits", type=int, default=10, help="patient splits to average over")
    ap.add_argument("--out", type=Path, default=None, help="optional JSON file for the results")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    rec, ann, pats = synthesise_recordings(
        n_patients=args.patients,
        recordings_per_patient=args.recordings,
        duration_s=args.duration,
        sr=args.sr,
        seed=args.seed,
    )
    t_gen = time.perf_counter() - t0
    audio_s = len(rec) * args.duration

    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        write_icbhi_layout(tmp, rec, ann, pats, args.sr)
        t_write = time.perf_counter() - t1
        t2 = time.perf_counter()
        cycles = scan_icbhi(tmp)
        x = segment_cycles(cycles, sr=args.sr, length_s=args.length, root=tmp)
        t_load = time.perf_counter() - t2
    feats = logmel_mean(x, args.sr)
    y = cycles["label"].to_numpy()

    scores = []
    for k in range(args.splits):
        split = patient_split(cycles, test_fraction=args.test_fraction, val_fraction=0.0, seed=args.seed + k).to_numpy()
        train, test = split == "train", split == "test"
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
        clf.fit(feats[train], y[train])
        pred = clf.predict(feats[test])
        m = icbhi_metrics(y[test], pred)
        for lab in LABELS:
            m[f"recall_{lab}"] = float((pred[y[test] == lab] == lab).mean()) if (y[test] == lab).any() else float("nan")
        m["train_acc"] = float((clf.predict(feats[train]) == y[train]).mean())
        m["n_test"] = int(test.sum())
        scores.append(m)
    table = pd.DataFrame(scores)

    result: dict[str, object] = {
        "recordings": len(rec),
        "cycles": len(cycles),
        "class_share": {lab: round(float((y == lab).mean()), 3) for lab in LABELS},
        "generation_s": round(t_gen, 3),
        "generation_x_realtime": round(audio_s / t_gen, 1),
        "write_s": round(t_write, 3),
        "load_segment_s": round(t_load, 3),
        "sensitivity": round(float(table["sensitivity"].mean()), 3),
        "specificity": round(float(table["specificity"].mean()), 3),
        "icbhi_score": round(float(table["score"].mean()), 3),
        "icbhi_score_std": round(float(table["score"].std(ddof=0)), 3),
        "train_acc": round(float(table["train_acc"].mean()), 3),
        "recall_per_class": {lab: round(float(table[f"recall_{lab}"].mean()), 3) for lab in LABELS},
        "all_normal_reference_score": 0.5,
    }
    print(table.round(3).to_string())
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
