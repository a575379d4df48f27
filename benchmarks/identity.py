"""Every pipeline's DVC outputs, byte for byte, on this CPU and on other CPUs of its kernel tier.

Each pipeline runs on ``conf/test`` (tiny sizes) in a fresh copy of the project, once natively
and once per emulated CPU under ``qemu-x86_64 -cpu <model>`` (``apt install qemu-user``; qemu
7.2 crashes in oneDNN's AVX2 LSTM, 10.0 from bookworm-backports runs it), whose CPUID every
library sees, so ATen, oneDNN, MKL, OpenBLAS, numpy and numba pick their kernels for that CPU.
The project's start-up pins the same tier on all of them, so every file under ``data/`` must be
the same bytes (wall-clock timings excepted: they are outside DVC's hashes by design).

    python benchmarks/identity.py                              # every pipeline, native vs Haswell
    python benchmarks/identity.py --cpus Haswell EPYC --pipelines asc word2vec
    python benchmarks/identity.py --tier sse4 --cpus Nehalem   # the SSE4 tier (forced natively)

qemu's user mode shows the host's ``/proc/cpuinfo``, from which the tier is chosen, so the tier
is forced (``MLSP_KERNEL_TIER``) in every run. Emulation is slow (about 20-40x): the whole
set takes tens of minutes. Writes ``benchmarks/results/identity.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import ROOT, project_copy  # benchmarks/_project.py

PIPELINES = ("asc", "asthma", "seq2seq", "word2vec", "viscoelastic")
#: Files that hold wall-clock times or speeds (never DVC outputs).
TIMING_NAMES = ("timings", "node_seconds", "word2vec/speed.png")


def run(project: Path, pipeline: str, tier: str, cpu: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("KEDRO_ENV", "MLSP_FAST_KERNELS")}
    env.update(MLSP_PROGRESS="0", KEDRO_DISABLE_TELEMETRY="1", MLSP_KERNEL_TIER=tier,
               MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}")
    cmd = [sys.executable, "-m", "kedro", "run", f"--pipelines={pipeline}", "--env=test"]
    if cpu:
        cmd = ["qemu-x86_64", "-cpu", cpu, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{pipeline} on {cpu or 'native'}: exit {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def outputs(project: Path) -> dict[str, bytes]:
    found = {}
    for p in sorted((project / "data").rglob("*")):
        rel = p.relative_to(project).as_posix()
        if p.is_file() and not any(t in rel for t in TIMING_NAMES) and ".locks" not in p.parts:
            found[p.relative_to(project).as_posix()] = p.read_bytes()
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    ap.add_argument("--cpus", nargs="+", default=["Haswell"], help="qemu CPU models (qemu-x86_64 -cpu help)")
    ap.add_argument("--tier", default="avx2", choices=("avx2", "sse4"))
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="identity-") as tmp:
        for pipeline in args.pipelines:
            ref_project = project_copy(Path(tmp) / pipeline / "native")
            seconds = {"native": run(ref_project, pipeline, args.tier, None)}
            ref = outputs(ref_project)
            for cpu in args.cpus:
                project = project_copy(Path(tmp) / pipeline / cpu)
                seconds[cpu] = run(project, pipeline, args.tier, cpu)
                got = outputs(project)
                differ = sorted(n for n in set(ref) | set(got) if ref.get(n) != got.get(n))
                results.append({"pipeline": pipeline, "tier": args.tier, "cpu": cpu, "files": len(ref),
                                "differ": differ, "seconds": {k: round(v, 1) for k, v in seconds.items()}})
                print(f"{pipeline:13s} tier {args.tier}  native vs {cpu:8s}: {len(ref)} files, "
                      f"{len(differ)} differ {differ[:5]}  ({seconds['native']:.0f} s native, {seconds[cpu]:.0f} s emulated)",
                      flush=True)
    out = ROOT / "benchmarks" / "results" / "identity.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
