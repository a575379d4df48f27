"""Start-up time: ``kedro registry list``, and ``kedro run --pipelines=asc`` up to its first node.

Each command runs in a fresh process from a copy of the project (conf/ and pyproject.toml; the
package is the installed one; its own MLflow store, created by a first untimed run so that the
timed runs open an existing store as a user's do). The first node's start is the moment Kedro
logs ``Running node:``; the run is stopped there. Best and median of ``--repeats``.

    python benchmarks/startup.py [--repeats 5]

Also prints which heavy libraries building the pipelines imports (none of torch, matplotlib,
scipy is the target; ``tests/test_startup.py`` asserts it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import project_copy  # benchmarks/_project.py

HEAVY = ("torch", "matplotlib", "scipy", "sklearn", "librosa", "mlflow", "pandas", "distributed")


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KEDRO_ENV"}
    env.update(KEDRO_DISABLE_TELEMETRY="1", MLSP_PROGRESS="0",
               MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}")
    return env


def first_node_seconds(project: Path) -> float:
    """Seconds from process start to Kedro's first ``Running node:`` line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kedro", "run", "--pipelines=asc"], cwd=project, env=_env(project),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Running node:" in line:
            seconds = time.perf_counter() - t0
            proc.terminate()
            proc.wait(timeout=60)
            return seconds
    proc.wait()
    raise RuntimeError(f"kedro run ended (exit {proc.returncode}) before its first node")


def command_seconds(project: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kedro", *args], cwd=project, env=_env(project), check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        project = project_copy(Path(tmp) / "project")
        first_node_seconds(project)  # creates the MLflow store (schema migrations happen once)
        print(f"load {os.getloadavg()[0]:.2f}")
        for name, measure in (("kedro registry list", lambda: command_seconds(project, "registry", "list")),
                              ("kedro run --pipelines=asc, to the first node", lambda: first_node_seconds(project))):
            times = [measure() for _ in range(args.repeats)]
            print(f"{name:48s} best {min(times):.2f} s, median {statistics.median(times):.2f} s "
                  f"({', '.join(f'{t:.2f}' for t in times)})", flush=True)
    code = ("import sys, mlsp_pipelines.pipeline_registry as r; r.register_pipelines(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    t0 = time.perf_counter()
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    print(f"import pipeline_registry + register_pipelines(): {time.perf_counter() - t0:.2f} s; "
          f"heavy libraries loaded: {loaded or 'none'}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
