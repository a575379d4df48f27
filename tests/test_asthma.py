"""``asthma``: ICBHI metrics against hand-computed values, the cycle index, and a tiny
end-to-end run on the shared audio machinery with no patient in two splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_session
from mlsp_pipelines.evaluation.metrics import icbhi_scores

CLASSES = ["both", "crackle", "normal", "wheeze"]


def test_icbhi_scores_hand_computed() -> None:
    #            normal ×4                 crackle ×3   wheeze ×2  both ×1
    y_true = np.array([2, 2, 2, 2, 1, 1, 1, 3, 3, 0])
    y_pred = np.array([2, 2, 1, 3, 1, 2, 0, 3, 3, 0])
    # specificity: normals predicted normal = 2/4; sensitivity: abnormal with the exact class:
    # crackle 1/3 (one crackle→normal, one crackle→both are wrong), wheeze 2/2, both 1/1 → 4/6
    s = icbhi_scores(y_true, y_pred, CLASSES, "normal")
    assert s["specificity"] == pytest.approx(0.5)
    assert s["sensitivity"] == pytest.approx(4 / 6)
    assert s["icbhi_score"] == pytest.approx((0.5 + 4 / 6) / 2)


def test_icbhi_scores_binary_wheeze_task() -> None:
    classes = ["no_wheeze", "wheeze"]
    s = icbhi_scores(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 0, 1, 0]), classes, "no_wheeze")
    assert (s["sensitivity"], s["specificity"]) == (pytest.approx(0.5), pytest.approx(2 / 3))


def test_icbhi_scores_unknown_normal_class_is_named() -> None:
    with pytest.raises(ValueError, match="normal_class='healthy'"):
        icbhi_scores(np.array([0]), np.array([0]), CLASSES, "healthy")


def test_index_cycles_on_real_icbhi_sample(shared_data: Path) -> None:
    from mlsp_pipelines.pipelines.asthma.nodes import index_cycles
    from mlsp_pipelines.pipelines.asthma.params import RespiratoryDataParams

    folder = shared_data / "icbhi-sample"
    index, quality = index_cycles(str(folder), RespiratoryDataParams(source="icbhi"))
    txt_rows = sum(len([ln for ln in p.read_text().splitlines() if ln.strip()]) for p in folder.glob("*_*.txt"))
    assert len(index) == txt_rows == quality["n_listed"]
    assert set(index["group"]) == {"102", "103", "104"}
    assert (index["duration_s"] > 0).all() and index["filename"].is_unique
    wheeze, _ = index_cycles(str(folder), RespiratoryDataParams(source="icbhi", task="wheeze"))
    assert set(wheeze["label"]) <= {"wheeze", "no_wheeze"}
    assert (wheeze["label"] == "wheeze").sum() == (index["label"].isin(["wheeze", "both"])).sum()


@pytest.mark.slow
def test_asthma_end_to_end_no_patient_leak(project_copy: Path) -> None:
    run_session(project_copy, ["asthma"])
    reports = project_copy / "data" / "08_reporting" / "asthma"
    board = pd.read_csv(reports / "leaderboard.csv")
    assert {"sensitivity", "specificity", "icbhi_score"} <= set(board.columns)
    row = board.iloc[0]
    assert row["icbhi_score"] == pytest.approx((row["sensitivity"] + row["specificity"]) / 2)
    metrics = json.loads((reports / "metrics.json").read_text())
    assert "icbhi_score" in metrics["models"]["cnn"]
    assert (reports / "models" / "cnn" / "confusion_matrix.png").is_file()

    index = pd.read_csv(project_copy / "data" / "02_intermediate" / "asthma" / "index.csv")
    splits = pd.read_csv(project_copy / "data" / "04_feature" / "asthma" / "splits.csv")
    patient = dict(zip(index["filename"], index["group"].astype(str)))
    per_patient = splits.assign(patient=splits["filename"].map(patient)).groupby("patient")["split"].nunique()
    assert per_patient.max() == 1, "a patient's cycles are in more than one split"
    assert set(splits["split"]) == {"train", "val", "test"}
