"""Figures are plain ``Figure`` objects: no backend switched at import, no pyplot state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_plotting_modules_leave_the_backend_and_pyplot_alone(tmp_path: Path) -> None:
    code = f"""
import sys
import numpy as np
from mlsp_pipelines.evaluation import diagnostics, plots
from mlsp_pipelines.evaluation import attention, embeddings, translation
from mlsp_pipelines.pipelines.seq2seq import nodes as s2s_nodes
from mlsp_pipelines.pipelines.word2vec import nodes as w2v_nodes
from mlsp_pipelines.pipelines.viscoelastic import data as visco_data, nodes as visco_nodes, report as visco_report
from mlsp_pipelines.datasets.files import FigureDataset
assert "matplotlib.pyplot" not in sys.modules, "a plotting module imported pyplot"
fig = plots.confusion_figure(np.array([[3, 1], [0, 4]]), ["a", "b"], "t")
assert type(fig).__name__ == "Figure" and fig.canvas.manager is None  # not a pyplot-managed figure
FigureDataset(filepath={str(tmp_path / "cm.png")!r}).save(fig)
assert "matplotlib.pyplot" not in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                         "HOME": str(tmp_path), "DISPLAY": ""})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG_MAGIC


def test_subplots_splits_figure_and_grid_keywords() -> None:
    from mlsp_pipelines.evaluation.figures import subplots

    fig, axes = subplots(2, 3, figsize=(6, 4), squeeze=False, sharey=True, layout="constrained")
    assert axes.shape == (2, 3) and tuple(fig.get_size_inches()) == (6.0, 4.0)
    assert fig.get_layout_engine() is not None
    fig, ax = subplots(figsize=(2, 2))
    assert fig.axes == [ax]
