"""Faults a user meets, on real ``kedro run`` processes: what survives and whether a resumed run
writes the bytes of an uninterrupted one.

Each case runs the ``asc`` pipeline on ``conf/test`` sizes (a little larger: 20 clips per class,
6 epochs, feature extraction on 2 worker processes) in a fresh copy of the project:

* ``reference``: uninterrupted; every file under ``data/`` but the timings is hashed;
* ``kill9-features`` / ``kill9-training`` / ``kill9-checkpoint``: ``kill -9`` of the ``kedro``
  process when feature extraction starts / after the second epoch of a model / right as an
  epoch's checkpoint is written (the line that reports the epoch); then the processes the run
  started that are still alive 5 s later are counted, temporary files in the outputs listed, and
  the same command is run again (it resumes) and compared with the reference;
* ``sigterm-training``: ``kill -TERM`` during training, then the same;
* ``disk-full``: the model folder on a 48 KiB tmpfs (needs root): the last line must name the
  path and say the disk is full; nothing half-written may be left.

    python benchmarks/faults.py [--cases kill9-training disk-full]

Processes are found by a marker variable every process of the run inherits.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from _project import project_copy  # benchmarks/_project.py

PARAMS = "asc.synth.n_per_class=20,asc.train.epochs=6,asc.features.workers=2"
MARK = "MLSP_FAULT_MARK"
CASES = ("kill9-features", "kill9-training", "kill9-checkpoint", "sigterm-training", "disk-full")


def start(project: Path, mark: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "KEDRO_ENV"}
    env.update(MLSP_PROGRESS="0", KEDRO_DISABLE_TELEMETRY="1", MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}",
               **{MARK: mark})
    return subprocess.Popen([sys.executable, "-m", "kedro", "run", "--pipelines=asc", "--env=test", "--params", PARAMS],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=1200)
    return proc.returncode, out


def survivors(mark: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if p.environ().get(MARK) == mark:
                found.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def outputs(project: Path) -> dict[str, str]:
    found = {}
    for p in sorted((project / "data").rglob("*")):
        rel = p.relative_to(project).as_posix()
        if p.is_file() and "timings" not in rel and "node_seconds" not in rel and ".locks" not in p.parts:
            found[rel] = hashlib.md5(p.read_bytes()).hexdigest()
    return found


def temporaries(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in (project / "data").rglob("*")
                  if p.name.endswith((".tmp", ".old")))


def interrupt(project: Path, trigger: str, sig: int) -> dict[str, object]:
    mark = uuid.uuid4().hex
    proc = start(project, mark)
    assert proc.stdout is not None
    seen = False
    for line in proc.stdout:
        if trigger in line:
            seen = True
            proc.send_signal(sig)
            break
    rest = proc.stdout.read()
    proc.wait(timeout=600)
    time.sleep(5)
    left = survivors(mark)
    for line in left:  # do not leave them to the next case
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except OSError:
            pass
    return {"triggered": seen, "exit": proc.returncode, "left": left, "tmp": temporaries(project),
            "last": (rest.strip().splitlines() or [""])[-1][:300]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        ref_project = project_copy(Path(tmp) / "reference")
        code, out = finish(start(ref_project, uuid.uuid4().hex))
        assert code == 0, out[-3000:]
        reference = outputs(ref_project)
        print(f"reference: {len(reference)} files", flush=True)
        rows = []
        triggers = {"kill9-features": ("log-mel features for", signal.SIGKILL),
                    "kill9-training": ("attn_lstm epoch 2/", signal.SIGKILL),
                    "kill9-checkpoint": ("cnn epoch 3/", signal.SIGKILL),
                    "sigterm-training": ("attn_lstm epoch 2/", signal.SIGTERM)}
        for case in args.cases:
            project = project_copy(Path(tmp) / case)
            if case == "disk-full":
                models = project / "data" / "06_models"
                models.mkdir(parents=True)
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(models)], check=True)
                try:
                    code, out = finish(start(project, uuid.uuid4().hex))
                    last = out.strip().splitlines()[-1]
                    half = [p.name for p in models.rglob("*") if p.is_file() and p.stat().st_size == 0]
                finally:
                    subprocess.run(["umount", str(models)], check=False)
                rows.append((case, f"exit {code}", "-", "-", "-", last[:200] + (f"; empty files: {half}" if half else "")))
                print(rows[-1], flush=True)
                continue
            trigger, sig = triggers[case]
            got = interrupt(project, trigger, sig)
            code, out = finish(start(project, uuid.uuid4().hex))  # the same command again: it resumes
            assert code == 0, out[-3000:]
            after = outputs(project)
            differ = sorted(n for n in set(reference) | set(after) if reference.get(n) != after.get(n))
            resumed = "resuming" in out.lower() or "resumed" in out.lower()
            rows.append((case, f"exit {got['exit']}", str(len(got["left"])), "yes" if not differ else f"no: {differ[:4]}",
                         f"{len(got['tmp'])} tmp before rerun, {len(temporaries(project))} after; resumed: {resumed}",
                         str(got["last"])))
            print(rows[-1], flush=True)
    print("\n| fault | interrupted run | processes left after 5 s | bytes identical after resume | temporaries | last line |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
