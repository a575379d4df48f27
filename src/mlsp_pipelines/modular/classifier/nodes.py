"""Nodes that train one classifier with the shared loop, evaluate it and draw what it learned."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from mlsp_pipelines.datasets.files import CheckpointStore
from mlsp_pipelines.evaluation import plots
from mlsp_pipelines.evaluation.metrics import classification_report, confusion_frame, confusion_matrix, icbhi_scores
from mlsp_pipelines.models import build_model, count_parameters
from mlsp_pipelines.params import ModelSpec, ReportParams, SplitParams, TrainParams
from mlsp_pipelines.training.loop import array_digest, fingerprint, fit, predict

logger = logging.getLogger(__name__)


def _tensors(data: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(data[f"X_{split}"])), torch.from_numpy(data[f"y_{split}"])


def rebuild_model(bundle: dict[str, Any]) -> torch.nn.Module:
    """The trained ``nn.Module`` from a saved model bundle (architecture name, kwargs, weights)."""
    model = build_model(bundle["arch"], in_features=bundle["in_features"], out_features=bundle["out_features"],
                        **bundle["kwargs"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval()


def _fit_one(data: dict, model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore | None,
             splits: tuple[str, str] = ("train", "val"), desc: str = "") -> tuple[torch.nn.Module, Any]:
    tp = model.train_params(train)
    torch.manual_seed(tp.seed)  # same initial weights for the same seed, whatever ran before
    net = build_model(model.arch, in_features=data["X_train"].shape[-1], out_features=len(data["classes"]),
                      **model.kwargs)
    config_hash = fingerprint(model.model_dump(), tp.model_dump(exclude={"progress", "resume"}),
                              [array_digest(data[f"{a}_{s}"]) for s in splits for a in ("X", "y")], data["classes"])
    result = fit(net, _tensors(data, splits[0]), _tensors(data, splits[1]), params=tp, task="classification",
                 checkpoint=checkpoints, config_hash=config_hash, desc=desc or model.arch)
    return net, result


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    """Per-epoch history as a table (``epoch`` first): the shape DVC plots and MLflow steps want."""
    n = len(next(iter(history.values()), []))
    return pd.DataFrame({"epoch": np.arange(1, n + 1), **history})


def train_classifier(
    model_input: dict, model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train one architecture; returns a self-contained model bundle and the per-epoch history."""
    net, result = _fit_one(model_input, model, train, checkpoints)
    bundle = {
        "arch": model.arch, "kwargs": dict(model.kwargs), "in_features": int(model_input["X_train"].shape[-1]),
        "out_features": len(model_input["classes"]), "state_dict": result.state_dict,
        "classes": list(model_input["classes"]), "norm": model_input["norm"], "hop_s": model_input["hop_s"],
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "train_seconds": result.train_seconds,
        "params": count_parameters(net), "resumed_from": result.resumed_from,
    }
    return bundle, history_frame(result.history)


def _latency_ms(net: torch.nn.Module, x: torch.Tensor, report: ReportParams) -> float:
    """Median wall time per clip of a forward pass at batch size ``report.latency_batch``."""
    batch = x[: report.latency_batch]
    with torch.inference_mode():
        net(batch)  # warm-up
        times = []
        for _ in range(report.latency_repeats):
            t0 = time.perf_counter()
            net(batch)
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)) / len(batch)


def evaluate_classifier(
    bundle: dict[str, Any], history: pd.DataFrame, model_input: dict, report: ReportParams
) -> tuple[dict, pd.DataFrame, pd.DataFrame, Figure, Figure]:
    """Test-set metrics, per-clip predictions, confusion matrix (table and figure), learning curves."""
    net = rebuild_model(bundle)
    X, y = _tensors(model_input, "test")
    probs = torch.softmax(predict(net, (X,)), dim=-1).numpy()
    pred = probs.argmax(-1)
    classes = bundle["classes"]
    rep = classification_report(y.numpy(), pred, classes)
    if report.normal_class is not None:
        rep.update(icbhi_scores(y.numpy(), pred, classes, report.normal_class))
    cm = confusion_matrix(y.numpy(), pred, len(classes))
    metrics = {
        "model": bundle["arch"], **{k: v for k, v in rep.items()},
        "params": bundle["params"], "train_seconds": round(bundle["train_seconds"], 3),
        "latency_ms_per_clip": round(_latency_ms(net, X, report), 4),
        "best_epoch": bundle["best_epoch"], "epochs_run": bundle["epochs_run"],
    }
    predictions = pd.DataFrame({
        "filename": model_input["ids_test"], "actual": [classes[i] for i in y.numpy()],
        "predicted": [classes[i] for i in pred], "confidence": probs.max(-1).round(4),
    })
    title = f"{bundle['arch']} — test accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f}"
    return (metrics, predictions, confusion_frame(cm, classes), plots.confusion_figure(cm, classes, title),
            plots.learning_curves_figure(history.drop(columns="epoch").to_dict("list"),
                                        f"{bundle['arch']} learning curves"))


def explain_classifier(bundle: dict[str, Any], model_input: dict, report: ReportParams) -> Figure:
    """Attention over time under the log-mel (attention models), first-layer filters (CNNs), or
    the predictions on a few clips (others)."""
    net = rebuild_model(bundle)
    X, y = _tensors(model_input, "test")
    # one clip of each class first (test clips are sorted by name, i.e. grouped by class)
    first = np.unique(y.numpy(), return_index=True)[1]
    order = np.concatenate([first, np.setdiff1d(np.arange(len(y)), first)])[: report.n_examples]
    n, ids = len(order), np.asarray(model_input["ids_test"])[order]
    Xn, y = X[order], y[order]
    spec = (Xn.numpy() * np.asarray(bundle["norm"]["std"], dtype=np.float32) + np.asarray(bundle["norm"]["mean"], dtype=np.float32))
    classes = bundle["classes"]
    with torch.inference_mode():
        if hasattr(net, "forward_with_attention"):
            logits, attn = net.forward_with_attention(Xn)
            titles = [f"{ids[k]}\ntrue {classes[int(y[k])]} / pred {classes[int(logits[k].argmax())]}" for k in range(n)]
            return plots.attention_figure(spec, attn.numpy(), titles, hop_s=bundle["hop_s"],
                                          title=f"{bundle['arch']}: where the model attends")
        if hasattr(net, "first_conv"):
            return plots.filters_figure(net.first_conv.weight.detach().numpy(), f"{bundle['arch']}: first-layer filters")
        logits = net(Xn)
    titles = [f"{ids[k]}\ntrue {classes[int(y[k])]} / pred {classes[int(logits[k].argmax())]}" for k in range(n)]
    return plots.examples_figure(spec, titles, hop_s=bundle["hop_s"], title=f"{bundle['arch']}: test clips")


def cross_validate(model_input: dict, model: ModelSpec, train: TrainParams, split: SplitParams) -> dict:
    """k-fold over the dataset's folds: each fold is the test set once, the next fold validates."""
    folds = np.asarray(model_input["folds"])
    uniq = sorted(set(folds.tolist()))
    if len(uniq) < 2 or uniq[0] < 0:
        raise ValueError("split.cv=true needs a dataset with folds (a 'fold' column)")
    X_all, y_all = model_input["X_all"], model_input["y_all"]
    scores: dict[str, list[float]] = {"accuracy": [], "macro_f1": []}
    for k, test_fold in enumerate(uniq):
        val_fold = uniq[(k + 1) % len(uniq)]
        parts = {"test": folds == test_fold, "val": folds == val_fold}
        parts["train"] = ~(parts["test"] | parts["val"])
        data = {"classes": model_input["classes"]}
        for s, m in parts.items():
            data[f"X_{s}"], data[f"y_{s}"] = X_all[m], y_all[m]
        net, _ = _fit_one(data, model, train, None, desc=f"{model.arch} cv fold {test_fold}")
        pred = predict(net, (torch.from_numpy(data["X_test"]),)).argmax(-1).numpy()
        rep = classification_report(data["y_test"], pred, list(model_input["classes"]))
        scores["accuracy"].append(rep["accuracy"])
        scores["macro_f1"].append(rep["macro_f1"])
        logger.info("%s cv fold %s: accuracy %.3f", model.arch, test_fold, rep["accuracy"])
    out: dict[str, Any] = {"model": model.arch, "folds": uniq}
    for m, v in scores.items():
        out[f"cv_{m}_mean"], out[f"cv_{m}_std"], out[f"cv_{m}_per_fold"] = float(np.mean(v)), float(np.std(v)), v
    return out
