"""Feature-extraction throughput: the project's ingestion + feature nodes against a plain loop.

From WAV files on disk to normalised log-mel arrays, on N synthetic clips (default 500, written
at 44.1 kHz and featurised at 22.05 kHz like ESC-50, so decoding includes resampling):

* baseline: one process, ``librosa.load`` + ``librosa.feature.melspectrogram`` +
  ``power_to_db`` per clip, then normalisation, with its BLAS/OpenMP pools at one thread
  (``threadpoolctl`` and the ``*_NUM_THREADS`` variables): a single-process loop is one core's
  work, and with two pool threads a busy 2-core machine slowed it 5× (inflating the ratio);
* project: ``index_audio`` → ``compute_logmel`` → ``fit_normalisation``/``make_model_input``
  (the node functions of the ``asc`` pipeline, with their worker pool).

Each measurement runs in its own fresh process, alternating, best of ``--repeats``; the ratio is
taken from this one invocation, and the load average is printed with it. Peak memory is the
method's own: the child's ``VmHWM`` from ``/proc/self/status`` (``ru_maxrss`` would start at
the parent's high-water mark after fork + exec) and, apart, the largest of its feature workers.
Run: ``python benchmarks/features.py [--clips 500]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


#: The pools a single-process baseline is held to one thread of.
ONE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


def _peak_mb() -> dict[str, float]:
    """This process's own peak resident memory (``VmHWM``) and its largest worker's (``ru_maxrss``
    of the children it waited for; 0 without workers)."""
    own = 0.0
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024.0
    return {"peak_mb": own, "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def make_corpus(folder: Path, n_clips: int, sr: int, duration_s: float) -> None:
    """Synthetic scenes written at ``sr`` as WAV + metadata.csv (the generic layout)."""
    from mlsp_pipelines.datasets import AudioFolderDataset
    from mlsp_pipelines.simulation.scenes import SCENE_CLASSES, synthesise_scenes

    per_class = -(-n_clips // len(SCENE_CLASSES))
    audio, meta = synthesise_scenes(n_per_class=per_class, sr=sr, duration_s=duration_s, seed=1)
    keep = meta.iloc[:n_clips]
    AudioFolderDataset(filepath=str(folder)).save(
        {"audio": {f"audio/{f}": audio[f] for f in keep["filename"]}, "sr": sr, "tables": {"metadata.csv": keep}}
    )


def run_baseline(folder: Path, params: dict) -> dict:
    import librosa
    import pandas as pd

    meta = pd.read_csv(folder / "metadata.csv")
    n = int(params["clip_s"] * params["sr"])
    t0 = time.perf_counter()
    feats = []
    for f in meta["filename"]:
        y, _ = librosa.load(folder / "audio" / f, sr=params["sr"], mono=True)
        y = librosa.util.fix_length(y, size=n)
        S = librosa.feature.melspectrogram(y=y, sr=params["sr"], n_fft=params["n_fft"], hop_length=params["hop_length"],
                                           n_mels=params["n_mels"], fmin=params["fmin"], fmax=params["fmax"])
        feats.append(librosa.power_to_db(S, ref=1.0, top_db=params["top_db"]).T)
    X = np.stack(feats)
    X = (X - X.mean(axis=(0, 1))) / X.std(axis=(0, 1))
    return {"seconds": time.perf_counter() - t0, "clips": len(X), **_peak_mb()}


def run_project(folder: Path, params: dict, workers: int) -> dict:
    from mlsp_pipelines.modular.audio import nodes
    from mlsp_pipelines.ingestion.layouts import AudioDataParams
    from mlsp_pipelines.params import FeatureParams, SplitParams

    fp = FeatureParams(**{**params, "workers": workers})
    from mlsp_pipelines.features.logmel import logmel_batch

    logmel_batch(np.zeros((1, 4096), dtype=np.float32), fp)  # warm-up (imports), as the baseline gets
    t0 = time.perf_counter()
    index, quality = nodes.index_audio(str(folder), AudioDataParams(source="generic"))
    feats, _ = nodes.compute_logmel(index, quality, fp, "fail")
    splits = nodes.split_dataset(feats, SplitParams())
    data = nodes.make_model_input(feats, splits, nodes.fit_normalisation(feats, splits))
    return {"seconds": time.perf_counter() - t0, "clips": len(data["X_all"]), **_peak_mb()}


def _child(args: argparse.Namespace) -> None:
    os.environ["MLSP_PROGRESS"] = "0"
    params = json.loads(args.params)
    folder = Path(args.folder)
    if args.method == "baseline":
        import librosa
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            librosa.feature.melspectrogram(y=np.zeros(4096, dtype=np.float32), sr=params["sr"])  # numba warm-up
            out = run_baseline(folder, params)
    else:
        out = run_project(folder, params, workers=int(args.method.split("-")[1]))
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=500)
    ap.add_argument("--source-sr", type=int, default=44100, help="sample rate of the WAV files on disk")
    ap.add_argument("--sr", type=int, default=22050, help="feature sample rate (files are resampled to it)")
    ap.add_argument("--clip-s", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--method")
    ap.add_argument("--folder")
    ap.add_argument("--params")
    args = ap.parse_args()
    if args.method:
        return _child(args)
    params = dict(sr=args.sr, clip_s=args.clip_s, n_fft=1024, hop_length=512, n_mels=64, fmin=0.0,
                  fmax=args.sr / 2, top_db=80.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "corpus"
        t0 = time.perf_counter()
        make_corpus(folder, args.clips, args.source_sr, params["clip_s"])
        print(f"wrote {args.clips} clips at {args.source_sr} Hz in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        results: dict[str, list[dict]] = {}
        methods = ["baseline", "project-1", "project-0"]
        for _ in range(args.repeats):
            for m in methods:
                cmd = [sys.executable, __file__, "--method", m, "--folder", str(folder), "--params", json.dumps(params)]
                env = {**os.environ, **(ONE_THREAD_ENV if m == "baseline" else {})}
                res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                results.setdefault(m, []).append(json.loads(res.stdout.strip().splitlines()[-1]))
    best = {m: min(r, key=lambda x: x["seconds"]) for m, r in results.items()}
    base = best["baseline"]["seconds"]
    print(f"\n{'method':<34}{'clips/s':>10}{'seconds':>10}{'peak MB':>10}{'worker MB':>11}{'speed-up':>10}")
    names = {"baseline": "librosa loop (1 process, 1 thread)", "project-1": "project nodes, 1 worker",
             "project-0": "project nodes, all cores"}
    for m in methods:
        b = best[m]
        print(f"{names[m]:<34}{b['clips'] / b['seconds']:>10.1f}{b['seconds']:>10.2f}{b['peak_mb']:>10.0f}"
              f"{b['workers_peak_mb']:>11.0f}{base / b['seconds']:>9.2f}x")
    print(f"\ncores: {len(os.sched_getaffinity(0))}; {args.clips} clips of {args.clip_s} s at {args.source_sr} Hz "
          f"→ log-mel at {args.sr} Hz; best of {args.repeats}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
