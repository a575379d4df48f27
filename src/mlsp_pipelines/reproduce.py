"""Rebuild a past run from its lineage record and say whether the metrics match.

``python -m mlsp_pipelines.reproduce <mlflow run id>`` (or ``make reproduce RUN=<id>``):

1. reads the run (or its parent, for a nested model run) and its ``lineage.json``;
2. checks out the recorded git commit into a temporary worktree (the current tree when the
   commit is unknown) and puts its ``src/`` first on ``PYTHONPATH``;
3. writes the recorded, fully resolved parameters over ``parameters_<pipeline>.yml`` of ``base``
   and of the recorded environment there, and runs ``kedro run`` with the recorded pipelines,
   environment and the runtime parameters outside the pipeline's section (e.g. ``data_dir``),
   logging to the same tracking store with tag ``reproduces=<run id>``;
4. compares every model's quality metrics (timings excluded) with the original run's and exits
   0 when all match, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mlsp_pipelines.config import project_root
from mlsp_pipelines.tracking import flatten, resolve_tracking_uri

logger = logging.getLogger("mlsp_pipelines.reproduce")

# resumed_from: how a run got there (an interrupted one resumes), not what it computed
TIMING_METRICS = {"train_seconds", "latency_ms_per_clip", "words_per_second", "seconds", "epoch/epoch_seconds",
                  "resumed_from"}


def is_timing(key: str) -> bool:
    """Timings and machine load (``system/*``) differ between runs by nature; quality metrics must not."""
    return key in TIMING_METRICS or key.startswith("system/") or key.endswith("_seconds")


def _flatten_runtime(d: dict[str, Any]) -> list[str]:
    """Runtime parameters as the ``key=value`` items of ``--params`` (lists as JSON)."""
    return [f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in flatten(d).items()]


def _model_metrics(client: Any, parent_id: str, experiment_id: str) -> dict[str, dict[str, float]]:
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return {
        r.data.tags.get("architecture", r.info.run_name): {
            k: v for k, v in r.data.metrics.items() if not is_timing(k)
        }
        for r in runs
        if r.data.tags.get("mlsp.kind", "model") == "model" and "architecture" in r.data.tags
    }


def _checkout(root: Path, commit: str, dest: Path) -> Path:
    """A detached worktree of ``commit`` (a copy of the current tree when git cannot provide it)."""
    ok = commit not in ("", "unknown") and subprocess.run(
        ["git", "worktree", "add", "--detach", str(dest), commit], cwd=root, capture_output=True, text=True
    ).returncode == 0
    if not ok:
        logger.warning("commit %s not available; reproducing with the current code", commit or "unknown")
        shutil.copytree(root, dest, ignore=shutil.ignore_patterns(".venv", "data", "mlflow.db*", "mlartifacts", ".git"))
    for sub in ("data", "src"):  # git keeps no empty folders; kedro wants both
        (dest / sub).mkdir(exist_ok=True)
    return dest


def reproduce(run_id: str, *, root: Path | None = None, tolerance: float = 1e-9) -> bool:
    """Re-run ``run_id`` from its lineage record; True when every model's metrics match."""
    from mlflow.tracking import MlflowClient

    root = root or project_root()
    uri = resolve_tracking_uri(None, root)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    parent_id = run.data.tags.get("mlflow.parentRunId") or run_id
    parent = client.get_run(parent_id) if parent_id != run_id else run
    with tempfile.TemporaryDirectory() as tmp:
        record = json.loads(Path(client.download_artifacts(parent_id, "lineage.json", tmp)).read_text())
    experiment = parent.data.tags["pipeline"]
    if record["git"].get("git_dirty") == "true":
        logger.warning("run %s was made from a tree with uncommitted changes; they cannot be restored", parent_id)

    with tempfile.TemporaryDirectory() as tmp:
        work = _checkout(root, record["git"].get("git_commit", ""), Path(tmp) / "tree")
        try:
            # the resolved parameters, in base and in the run's environment (which would otherwise
            # override some of them again)
            recorded = yaml.safe_dump({experiment: record["params"]}, sort_keys=False)
            for env_dir in {"base", record.get("env") or "local"}:
                (work / "conf" / env_dir).mkdir(parents=True, exist_ok=True)
                (work / "conf" / env_dir / f"parameters_{experiment}.yml").write_text(recorded)
            env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLSP_REPRODUCES": parent_id, "MLSP_PROGRESS": "0",
                   "KEDRO_DISABLE_TELEMETRY": "1"}
            if (work / "src").is_dir():
                env["PYTHONPATH"] = os.pathsep.join([str(work / "src"), env.get("PYTHONPATH", "")])
            cmd = [sys.executable, "-m", "kedro", "run", f"--pipelines={','.join(record['pipelines'])}"]
            if record.get("env"):
                cmd.append(f"--env={record['env']}")
            # the recorded parameters already include the run's --params for this pipeline's
            # section; only the others (e.g. data_dir for the catalog) are passed again
            extra = {k: v for k, v in (record.get("runtime_params") or {}).items() if k != experiment}
            runtime = _flatten_runtime(extra)
            if runtime:
                cmd.append("--params=" + ",".join(runtime))
            logger.info("reproducing %s: %s (in %s)", parent_id, " ".join(cmd), work)
            subprocess.run(cmd, cwd=work, env=env, check=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(work)], cwd=root, capture_output=True)

    new = [r for r in client.search_runs([parent.info.experiment_id], filter_string=f"tags.reproduces = '{parent_id}'",
                                         order_by=["attributes.start_time DESC"])
           if "mlflow.parentRunId" not in r.data.tags][:1]
    if not new:
        raise RuntimeError(f"the reproduction of {parent_id} left no MLflow run")
    old_m = _model_metrics(client, parent_id, parent.info.experiment_id)
    new_m = _model_metrics(client, new[0].info.run_id, parent.info.experiment_id)
    all_ok = bool(old_m) and set(old_m) == set(new_m)
    logger.info("%-16s%-36s%14s%14s  match", "model", "metric", "original", "reproduced")
    for model in sorted(old_m):
        for key, old in sorted(old_m[model].items()):
            rep = new_m.get(model, {}).get(key, math.nan)
            ok = math.isclose(old, rep, rel_tol=tolerance, abs_tol=tolerance)
            all_ok &= ok
            logger.info("%-16s%-36s%14.6g%14.6g  %s", model, key, old, rep, "yes" if ok else "NO")
    logger.info("reproduction of %s as %s: %s", parent_id, new[0].info.run_id,
                "metrics match" if all_ok else "METRICS DIFFER")
    return all_ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rebuild a past MLflow run from its lineage and compare metrics.")
    ap.add_argument("run_id")
    ap.add_argument("--tolerance", type=float, default=1e-9)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return 0 if reproduce(args.run_id, tolerance=args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
