"""Fan-out on a Dask cluster: the ``asc`` models (and a 5-fold CV) one after another against a
2-worker LocalCluster, with one torch thread per node either way, on the same features.

    python benchmarks/fanout.py                          # the default asc run (5 architectures) and its 5-fold CV
    python benchmarks/fanout.py --env test --scenarios fixed   # a smoke test on the tiny test config

Run it on an otherwise idle machine: two workers on two cores share them with nothing else.
For each scenario (``fixed``: the default split; ``cv``: ``asc.split.cv=true``) the data and
features are made once, then ``asc_train`` runs twice in fresh copies of them:

* ``sequential``: the project's default runner, ``MLSP_TORCH_THREADS=1`` (what each worker uses);
* ``dask``: :class:`~mlsp_pipelines.runner.DaskRunner` on a LocalCluster of ``--workers`` workers ×
  1 thread, one torch thread per node, started before the clock starts (its start-up is reported
  apart). It starts with the node durations the sequential run recorded
  (``data/08_reporting/node_seconds.json``, as any earlier run on the machine leaves them), so the
  longest models start first; ``--no-history`` runs it without them (namespace order).

Each run is a child process (its own memory high-water mark, ``VmHWM``; for Dask also every
worker's). Reported: wall time of the run, the speed-up, peak memory per process, and whether
``metrics.json`` and every model file are byte-identical between the two (they must be).
Writes ``benchmarks/results/fanout.json``. The project is copied to a temporary folder (conf +
pyproject; the package is the installed one), so the project's data/ and MLflow store are untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import project_copy  # benchmarks/_project.py

ROOT = Path(__file__).resolve().parents[1]
QUIET = {"KEDRO_DISABLE_TELEMETRY": "1", "MLSP_PROGRESS": "0", "OMP_WAIT_POLICY": "PASSIVE"}
NODE_SECONDS = "data/08_reporting/node_seconds.json"  # mlsp_pipelines.runner.NODE_SECONDS
SCENARIOS = {"fixed": {}, "cv": {"asc": {"split": {"cv": True}}}}


def _vmhwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _digests(project: Path) -> dict[str, str]:
    """sha256 of metrics.json and of every model file (what must not change with the runner)."""
    files = [project / "data/08_reporting/asc/metrics.json", *sorted((project / "data/06_models/asc").glob("*.pt"))]
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


# -- child processes ------------------------------------------------------------------------------------
def child(mode: str, project: Path, env: str, runtime: dict, workers: int) -> dict:
    """One ``asc_train`` run in this process (``mode``: sequential | dask | prepare)."""
    import mlsp_pipelines  # noqa: F401 - the kernel pins first
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from mlsp_pipelines import cluster
    from mlsp_pipelines.runner import DaskRunner, NamespaceSequentialRunner

    os.chdir(project)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    bootstrap_project(project)
    out: dict = {"mode": mode}
    if mode == "prepare":
        with KedroSession.create(project_path=project, env=env, runtime_params=runtime) as session:
            session.run(pipeline_names=["asc_data", "asc_features"], runner=NamespaceSequentialRunner())
        return out
    if mode == "sequential":
        t0 = time.perf_counter()
        with KedroSession.create(project_path=project, env=env, runtime_params=runtime) as session:
            session.run(pipeline_names=["asc_train"], runner=NamespaceSequentialRunner())
        out["wall_s"] = time.perf_counter() - t0
        out["peak_mb"] = {"driver": _vmhwm_mb()}
        return out
    settings = cluster.DaskSettings(n_workers=workers, threads_per_worker=1, torch_threads=1)
    t0 = time.perf_counter()
    with cluster.connect(settings) as client:
        runner = DaskRunner(client=client)
        runner._prepare_workers(client, settings)  # noqa: SLF001 - warm the workers before the clock
        out["cluster_start_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        with KedroSession.create(project_path=project, env=env, runtime_params=runtime) as session:
            session.run(pipeline_names=["asc_train"], runner=runner)
        out["wall_s"] = time.perf_counter() - t1
        peaks = client.run(_vmhwm_mb)
        out["peak_mb"] = {"driver": _vmhwm_mb(), **{f"worker {i}": v for i, v in enumerate(peaks.values())}}
    return out


def _run_child(mode: str, project: Path, args: argparse.Namespace, runtime: dict) -> dict:
    env = {**os.environ, **QUIET, "MLSP_TORCH_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", mode, "--project", str(project), "--env", args.env,
           "--runtime", json.dumps(runtime), "--workers", str(args.workers)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log = ROOT / "benchmarks" / "results" / f"fanout_{project.parent.name}_{mode}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(res.stderr)  # which node ran where and for how long ("Completed node: ...")
    if res.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="local", help="Kedro environment (test: the tiny config, a smoke test)")
    ap.add_argument("--scenarios", default="fixed,cv", help="fixed, cv or both")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="override asc.train.epochs (default: the config's)")
    ap.add_argument("--no-history", action="store_true", help="Dask without recorded node durations")
    ap.add_argument("--child", choices=["prepare", "sequential", "dask"], help=argparse.SUPPRESS)
    ap.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--runtime", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.project, args.env, json.loads(args.runtime), args.workers)))
        return

    report: dict = {"env": args.env, "workers": args.workers, "node_history": not args.no_history, "cpu_count": os.cpu_count(),
                    "load_avg_at_start": os.getloadavg(), "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="mlsp-fanout-") as tmp:
        for name in args.scenarios.split(","):
            runtime = _merge(SCENARIOS[name], {"asc": {"train": {"resume": False}}})
            if args.epochs:
                runtime = _merge(runtime, {"asc": {"train": {"epochs": args.epochs}}})
            base = project_copy(Path(tmp) / name / "prepared")
            _run_child("prepare", base, args, runtime)
            results = {}
            for mode in ("sequential", "dask"):
                project = project_copy(Path(tmp) / name / mode)
                shutil.rmtree(project / "data", ignore_errors=True)
                shutil.copytree(base / "data", project / "data", ignore=shutil.ignore_patterns(".locks"))
                if mode == "dask" and not args.no_history:  # what the sequential run recorded, as an earlier run would
                    shutil.copy2(Path(tmp) / name / "sequential" / NODE_SECONDS, project / NODE_SECONDS)
                results[mode] = _run_child(mode, project, args, runtime)
                results[mode]["digests"] = _digests(project)
            same = results["sequential"]["digests"] == results["dask"]["digests"] and bool(results["dask"]["digests"])
            speedup = results["sequential"]["wall_s"] / results["dask"]["wall_s"]
            report["scenarios"][name] = {
                "sequential_s": round(results["sequential"]["wall_s"], 2), "dask_s": round(results["dask"]["wall_s"], 2),
                "speedup": round(speedup, 3), "cluster_start_s": round(results["dask"]["cluster_start_s"], 2),
                "identical_outputs": same, "files_compared": len(results["dask"]["digests"]),
                "peak_mb": {"sequential": results["sequential"]["peak_mb"], "dask": results["dask"]["peak_mb"]},
            }
            r = report["scenarios"][name]
            print(f"{name:>5}: sequential {r['sequential_s']:8.1f} s | dask ({args.workers} workers) {r['dask_s']:8.1f} s "
                  f"| speed-up {r['speedup']:.2f}x (target >= 1.6x) | cluster start {r['cluster_start_s']:.1f} s "
                  f"| identical outputs: {same} ({r['files_compared']} files)")
            print("       peak memory MB: sequential " + ", ".join(f"{k} {v:.0f}" for k, v in r["peak_mb"]["sequential"].items())
                  + " | dask " + ", ".join(f"{k} {v:.0f}" for k, v in r["peak_mb"]["dask"].items()))
    report["load_avg_at_end"] = os.getloadavg()
    out = ROOT / "benchmarks" / "results" / "fanout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
