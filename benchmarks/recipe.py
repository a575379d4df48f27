"""The default recipe on real audio: ``kedro run --pipeline=asc --env=generic`` on a dataset
folder (default: the Free Spoken Digit Dataset beside the project, official test split = fold 1),
exactly as a user runs it, beside a logistic-regression baseline on clip mean+std log-mel
fitted on the same training clips in the same run.

    python benchmarks/recipe.py [--data-dir ../shared/data/fsdd] [--env generic] [--params k=v,...]

The project is copied to a temporary folder (conf + src), so the run touches neither the
project's data/ nor its MLflow store. Prints the leaderboard, the baseline and wall times, and
writes them to benchmarks/results/recipe_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def logistic_baseline(work: Path) -> dict[str, float]:
    """Standardised clip mean+std log-mel → multinomial logistic regression (train+val folds),
    accuracy on the test split of the run's own split table."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = np.load(work / "data/04_feature/asc/logmel.npz", allow_pickle=False)
    splits = pd.read_csv(work / "data/04_feature/asc/splits.csv")
    X = feats["X"]
    Z = np.concatenate([X.mean(1), X.std(1)], axis=1)
    y = feats["label"]
    test = (splits["split"] == "test").to_numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    clf.fit(Z[~test], y[~test])
    return {"accuracy": float((clf.predict(Z[test]) == y[test]).mean()), "n_train": int((~test).sum()),
            "n_test": int(test.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/fsdd"))
    ap.add_argument("--env", default="generic")
    ap.add_argument("--params", default="", help="extra kedro --params, comma-separated")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project copy")
    args = ap.parse_args()
    data_dir = Path(args.data_dir).resolve()
    if not data_dir.is_dir():
        sys.exit(f"--data-dir {data_dir} is not a folder")
    work = Path(tempfile.mkdtemp(prefix="recipe-"))
    for part in ("conf", "src", "pyproject.toml"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / part)
    (work / "conf/local").mkdir(exist_ok=True)
    env = {**os.environ, "MLSP_PROGRESS": "0", "KEDRO_DISABLE_TELEMETRY": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db", "PYTHONPATH": str(work / "src")}
    params = ",".join(p for p in (f"data_dir={data_dir}", args.params) if p)
    kedro = Path(sys.executable).with_name("kedro")
    t0 = time.perf_counter()
    res = subprocess.run([str(kedro), "run", "--pipeline=asc", f"--env={args.env}", "--params", params],
                         cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode:
        sys.stderr.write(res.stdout[-4000:] + res.stderr[-8000:])
        sys.exit(f"kedro run failed ({res.returncode}); project copy kept at {work}")
    board = pd.read_csv(work / "data/08_reporting/asc/leaderboard.csv")
    timings = pd.read_csv(work / "data/08_reporting/asc/timings.csv")
    quality = json.loads((work / "data/08_reporting/asc/data_quality.json").read_text())
    out = {"data_dir": str(data_dir), "env": args.env, "params": args.params, "wall_s": round(wall, 1),
           "features": quality.get("features"), "leaderboard": board.to_dict("records"),
           "timings": timings.to_dict("records")}
    if "accuracy" in board:
        out["logistic_regression"] = logistic_baseline(work)
    print(board.to_string(index=False))
    print(timings.to_string(index=False))
    print("logistic regression (clip mean+std log-mel):", out.get("logistic_regression"))
    print(f"features: {out['features']}\nwall time of kedro run: {wall:.0f} s")
    results = ROOT / "benchmarks/results"
    results.mkdir(exist_ok=True)
    (results / f"recipe_{data_dir.name}.json").write_text(json.dumps(out, indent=2, default=str))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
