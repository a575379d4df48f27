"""The benchmark scripts that read the presets must keep running as the presets change.

``benchmarks/translation.py`` reads ``conf/translation/parameters_seq2seq.yml`` raw; it broke
silently once when the preset gained a run-time interpolation. A tiny run catches that.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_translation_benchmark_runs_on_the_committed_preset():
    env = {**os.environ, "MLSP_PROGRESS": "0"}
    run = subprocess.run([sys.executable, "benchmarks/translation.py", "--pairs", "48", "--decode", "4"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    speed = re.search(r"training speed-up \(ours / bare tokens per second\): ([0-9.]+)x", run.stdout)
    assert speed and float(speed.group(1)) > 0, run.stdout
    assert re.search(r"ours beam 5 [0-9.]+ sentences/s; bare greedy [0-9.]+ sentences/s", run.stdout), run.stdout
