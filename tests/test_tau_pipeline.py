"""``asc`` on the TAU layout: the DCASE-style breakdown against hand-computed values, and a tiny
``kedro run --env=tau`` on a generated fixture in the released layout (official splits, no location
in two splits, per-device/city reports in the leaderboard, the files and MLflow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import run_session, sqlite_uri  # noqa: E402
from tau_layout import write_tau  # noqa: E402

from mlsp_pipelines.evaluation.metrics import breakdown_metrics, breakdown_table  # noqa: E402

CLASSES = ["airport", "bus", "park"]


def test_breakdown_accuracy_and_log_loss_by_class_device_and_seen_unseen() -> None:
    from sklearn.metrics import log_loss

    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1],
                      [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]])  # 4 of 6 right
    device = np.array(["a", "s4", "a", "s4", "b", "s10"])
    city = np.array(["lyon", "lyon", "milan", "milan", "milan", "lyon"])
    table = breakdown_table(y, probs, CLASSES, {"device": device, "city": city}, seen_devices={"a", "b"})
    get = table.set_index(["by", "value"])
    nll = -np.log(probs[np.arange(6), y])
    assert get.loc[("overall", "all"), "accuracy"] == pytest.approx(4 / 6)
    assert get.loc[("overall", "all"), "log_loss"] == pytest.approx(nll.mean())
    assert get.loc[("overall", "all"), "log_loss"] == pytest.approx(log_loss(y, probs, labels=[0, 1, 2]))
    assert get.loc[("class", "bus"), "accuracy"] == pytest.approx(0.5)
    assert get.loc[("class", "bus"), "log_loss"] == pytest.approx(nll[2:4].mean())
    # devices in natural order, marked seen/unseen; pooled rows per kind
    devices = table[table["by"] == "device"]
    assert devices["value"].tolist() == ["a", "b", "s4", "s10"]
    assert devices["seen"].tolist() == ["seen", "seen", "unseen", "unseen"]
    assert get.loc[("device", "s4"), "accuracy"] == 0.0 and get.loc[("device", "s4"), "n"] == 2
    assert get.loc[("devices", "seen"), "accuracy"] == pytest.approx(1.0)  # clips 0, 2, 4
    assert get.loc[("devices", "unseen"), "log_loss"] == pytest.approx(nll[[1, 3, 5]].mean())
    assert get.loc[("city", "lyon"), "accuracy"] == pytest.approx(2 / 3)
    flat = breakdown_metrics(table)
    assert flat["accuracy_unseen"] == pytest.approx(1 / 3) and flat["log_loss"] == pytest.approx(nll.mean())
    assert flat["test_acc_device_s4"] == 0.0 and flat["test_logloss_city_milan"] == pytest.approx(nll[2:5].mean())
    assert flat["test_acc_class_park"] == 1.0
    # data without devices or cities: overall and per class only
    plain = breakdown_table(y, probs, CLASSES)
    assert set(plain["by"]) == {"overall", "class"}
    assert not any(k.startswith(("accuracy_", "test_acc_device")) for k in breakdown_metrics(plain))


@pytest.mark.slow
def test_tau_env_end_to_end_on_the_released_layout(project_copy: Path, tmp_path: Path) -> None:
    data = write_tau(tmp_path / "TAU-urban-acoustic-scenes-2020-mobile-development", "2020", seconds=1.0)
    tiny = {"architectures": ["cnn"], "features": {"sr": 8000, "n_mels": 16, "workers": 1},
            "train": {"epochs": 2, "batch_size": 8, "progress": False, "augment": {"mixup_alpha": 0.0}},
            "models": {"cnn": {"arch": "cnn", "kwargs": {"channels": [4, 8]}}},
            "report": {"n_examples": 2, "latency_repeats": 2}}
    run_session(project_copy, ["asc"], env="tau", runtime_params={"data_dir": str(data), "asc": tiny})

    index = pd.read_csv(project_copy / "data" / "02_intermediate" / "asc-tau" / "index.csv")
    assert index["path"].str.startswith("audio/").all()  # relative to the dataset folder
    assert {"device", "city", "group", "split"} <= set(index.columns)
    splits = pd.read_csv(project_copy / "data" / "04_feature" / "asc-tau" / "splits.csv")
    merged = splits.merge(index[["filename", "group", "split"]].rename(columns={"split": "official"}), on="filename")
    assert ((merged["split"] == "test") == (merged["official"] == "test")).all()
    assert set(merged.loc[merged["official"] == "train", "split"]) == {"train", "val"}
    assert merged.groupby("group")["split"].nunique().max() == 1  # no location straddles splits

    reports = project_copy / "data" / "08_reporting" / "asc-tau"  # a real-data environment writes apart
    board = pd.read_csv(reports / "leaderboard.csv")
    assert {"accuracy", "log_loss", "accuracy_seen", "accuracy_unseen", "log_loss_seen",
            "log_loss_unseen"} <= set(board.columns)
    assert not any(c.startswith("test_acc_") for c in board.columns)  # the leaderboard stays readable
    table = pd.read_csv(reports / "models" / "cnn" / "breakdown.csv")
    dev = table[table["by"] == "device"].set_index("value")
    assert dev.loc["s4", "seen"] == "unseen" and dev.loc["a", "seen"] == "seen"
    assert dev["n"].sum() == (index["split"] == "test").sum() == 36
    assert set(table.loc[table["by"] == "city", "value"]) == {"barcelona", "helsinki", "lisbon"}
    overall = table[table["by"] == "overall"].iloc[0]
    metrics = json.loads((reports / "metrics.json").read_text())["models"]["cnn"]
    assert metrics["accuracy"] == pytest.approx(overall["accuracy"])
    assert metrics["log_loss"] == pytest.approx(overall["log_loss"])
    assert metrics["accuracy_unseen"] == pytest.approx(dev.loc["s4", "accuracy"])
    assert (reports / "models" / "cnn" / "breakdown.png").stat().st_size > 0
    stored = json.loads((project_copy / "data" / "07_model_output" / "asc-tau" / "cnn" / "breakdown_metrics.json").read_text())
    assert stored["seen_devices"] == ["a", "b", "s1", "s2", "s3"]
    assert not any("second" in k or "latency" in k for k in stored)  # reproducible: no timings
    quality = json.loads((reports / "data_quality.json").read_text())
    assert quality["n_not_in_setup"] == 9 and quality["devices_test"]["s4"] == 9

    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_uri(project_copy / "mlflow.db"))
    exp = client.get_experiment_by_name("asc-tau")
    (run,) = client.search_runs([exp.experiment_id], "tags.architecture = 'cnn'")
    assert run.data.metrics["test_acc_device_s4"] == pytest.approx(dev.loc["s4", "accuracy"])
    assert run.data.metrics["test_logloss_city_lisbon"] == pytest.approx(
        table.set_index(["by", "value"]).loc[("city", "lisbon"), "log_loss"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "breakdown.png" in artifacts
    assert "tables/breakdown.csv" in {a.path for a in client.list_artifacts(run.info.run_id, "tables")}


def test_leaderboard_shows_seen_and_unseen_devices_when_the_data_has_them() -> None:
    from mlsp_pipelines.modular.report.nodes import build_leaderboard

    base = [{"model": m, "arch": "cnn", "accuracy": a, "macro_f1": a, "balanced_accuracy": a, "params": 10}
            for m, a in (("cnn", 0.6), ("mlp", 0.7))]
    extra = [{"model": m, "log_loss": 1.0, "accuracy_seen": a + 0.1, "accuracy_unseen": a - 0.2,
              "log_loss_seen": 0.8, "log_loss_unseen": 1.4, "test_acc_device_s4": a - 0.2, "seen_devices": ["a"]}
             for m, a in (("cnn", 0.6), ("mlp", 0.7))]
    board, md, fig, summary = build_leaderboard(*base, *extra)
    assert board["model"].tolist() == ["mlp", "cnn"]  # rows merged by model, best first
    assert list(board.columns[:9]) == ["model", "accuracy", "macro_f1", "balanced_accuracy", "log_loss",
                                       "accuracy_seen", "accuracy_unseen", "log_loss_seen", "log_loss_unseen"]
    assert "test_acc_device_s4" not in board and summary["models"]["cnn"]["accuracy_unseen"] == pytest.approx(0.4)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["accuracy", "accuracy_seen", "accuracy_unseen"]
    plain, *_ = build_leaderboard(*base)
    assert "log_loss" not in plain  # other data: the leaderboard is unchanged
