"""``asc`` on the TAU layout: the DCASE-style breakdown against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from mlsp_pipelines.evaluation.metrics import breakdown_metrics, breakdown_table

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
