"""kedro-viz, the Kedro user's view of the project: pinned, installed, and it draws the ``asc``
pipeline with a namespace per model (what ``make viz`` serves on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import make_project_copy


def test_kedro_viz_builds_the_asc_graph_with_a_namespace_per_model(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project")
    env = {**{k: v for k, v in os.environ.items() if k != "KEDRO_ENV"}, "KEDRO_DISABLE_TELEMETRY": "1"}
    out = subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    graph = json.loads((project / "build/api/pipelines/asc").read_text())
    namespaces = set(graph["modular_pipelines"])
    models = {"asc.cnn", "asc.crnn", "asc.attn_lstm", "asc.transformer", "asc.mlp"}
    assert {"asc"} | models <= namespaces
    children = {c["id"] for c in graph["modular_pipelines"]["asc"]["children"] if c["type"] == "modularPipeline"}
    assert models <= children  # collapsed, the task shows one box per model
    names = {n["name"] for n in graph["nodes"] if n["type"] == "task"}
    assert {"train_model", "evaluate_model", "build_leaderboard"} <= names
