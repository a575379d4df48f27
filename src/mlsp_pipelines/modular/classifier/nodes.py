"""Nodes that train one classifier with the shared loop, evaluate it and draw what it learned."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlsp_pipelines.annotations import Figure
from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.modular.audio.nodes import make_fold_input
from mlsp_pipelines.params import ModelSpec, ReportParams, SplitParams, TrainParams

if TYPE_CHECKING:  # annotations only: the functions import these where they run
    import torch

    from mlsp_pipelines.training.model_run import TrainedModel

logger = logging.getLogger(__name__)


def _tensors(data: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return torch.from_numpy(np.ascontiguousarray(data[f"X_{split}"])), torch.from_numpy(data[f"y_{split}"])



def _complexity(net: torch.nn.Module, data: dict) -> dict[str, Any]:
    import torch

    from mlsp_pipelines.evaluation.complexity import model_complexity

    example = torch.from_numpy(np.ascontiguousarray(data["X_train"][:1]))
    return model_complexity(net, example, float(data.get("clip_s", example.shape[1] * data["hop_s"])))


def fit_one(data: dict, model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore | None, *, name: str,
             task: str | None = None,
             splits: tuple[str, str] = ("train", "val"), desc: str = "",
             report: ReportParams | None = None) -> tuple[TrainedModel, dict[str, Any]]:
    """Train with :func:`train_model`: the complexity (and budget) is checked on the built network
    before training, augmentation comes from ``train.augment``, its gain converted to normalised
    units by the training statistics. Returns the trained model and its complexity."""
    from mlsp_pipelines.evaluation.complexity import check_budget
    from mlsp_pipelines.training.augment import BatchAugmenter
    from mlsp_pipelines.training.hashing import array_digest
    from mlsp_pipelines.training.model_run import train_model

    cx: dict[str, Any] = {}

    def prepare(net: torch.nn.Module, tp: TrainParams) -> dict[str, Any]:
        cx.update(_complexity(net, data))
        if report is not None:
            cx["within_budget"] = check_budget(desc or name, cx, max_macs=report.max_macs,
                                               max_param_bytes=report.max_param_bytes, action=report.budget_action,
                                               task=task)
        if not tp.augment.enabled:
            return {}
        std = np.asarray(data["norm"]["std"], dtype=np.float32) if "norm" in data else None
        return {"augment": BatchAugmenter(tp.augment, seed=tp.seed + 1, n_classes=len(data["classes"]),
                                          gain_scale=None if std is None else 1.0 / np.maximum(std, 1e-3))}

    val = _tensors(data, splits[1]) if len(data[f"y_{splits[1]}"]) else None
    trained = train_model(
        name, model, train, _tensors(data, splits[0]), val,
        in_features=int(data["X_train"].shape[-1]), out_features=len(data["classes"]), task="classification",
        checkpoints=checkpoints, prepare=prepare, desc=desc or name,
        fingerprint_parts=([array_digest(data[f"{a}_{s}"]) for s in splits for a in ("X", "y")], data["classes"]),
        bundle_extra={"complexity": cx, "classes": list(data["classes"]), "norm": data["norm"],
                      "hop_s": data["hop_s"], "features": data.get("features")},
    )
    return trained, cx


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    """Per-epoch history as a table (``epoch`` first): the shape DVC plots and MLflow steps want."""
    n = len(next(iter(history.values()), []))
    return pd.DataFrame({"epoch": np.arange(1, n + 1), **history})


def train_classifier(
    model_input: dict, model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore,
    report: ReportParams | None = None, *, name: str, task: str | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, float]:
    """Train the model entry ``name``; returns a self-contained
    model bundle, the per-epoch history and the training seconds (kept out of the bundle: the
    saved model must hash the same on every run)."""
    trained, _ = fit_one(model_input, model, train, checkpoints, desc=name, report=report, name=name, task=task)
    return dict(trained.bundle), history_frame(trained.result.history), trained.result.train_seconds


def _latency_ms(net: torch.nn.Module, x: torch.Tensor, report: ReportParams) -> float:
    """Median wall time per clip of a forward pass at batch size ``report.latency_batch``."""
    import torch

    batch = x[: report.latency_batch]
    with torch.inference_mode():
        net(batch)  # warm-up
        times = []
        for _ in range(report.latency_repeats):
            t0 = time.perf_counter()
            net(batch)
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)) / len(batch)


def tta_shifts(n_frames: int, n: int, max_shift: float) -> list[int]:
    """``n`` circular time shifts in frames, evenly spread over +-``max_shift`` of the clip
    (0 among them when ``n`` is odd): the range training's ``time_shift`` augmentation rolls by."""
    if n <= 1:
        return [0]
    return [int(round(s)) for s in np.linspace(-max_shift * n_frames, max_shift * n_frames, n)]


def tta_probabilities(net: Any, X: Any, n: int, max_shift: float) -> np.ndarray:
    """Class probabilities averaged over ``n`` time-shifted copies of every clip (X: (N, T, F))."""
    import torch

    from mlsp_pipelines.training.loop import predict

    total = None
    for shift in tta_shifts(int(X.shape[1]), n, max_shift):  # predict runs in inference mode
        p = torch.softmax(predict(net, (torch.roll(X, shift, dims=1),)), dim=-1)
        total = p if total is None else total + p
    return (total / n).numpy()


def _tta_report(net: Any, X: Any, y: np.ndarray, classes: list[str], report: ReportParams | None) -> dict[str, float]:
    """``accuracy_tta`` and ``macro_f1_tta`` beside the single-pass numbers (``report.tta`` > 1)."""
    from mlsp_pipelines.evaluation.metrics import classification_report

    if report is None or report.tta <= 1 or X.ndim != 3:
        return {}
    rep = classification_report(y, tta_probabilities(net, X, report.tta, report.tta_shift).argmax(-1), classes)
    return {"accuracy_tta": rep["accuracy"], "macro_f1_tta": rep["macro_f1"]}


def evaluate_classifier(
    bundle: dict[str, Any], history: pd.DataFrame, model_input: dict, report: ReportParams,
    train_seconds: float | None = None,
) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame, Figure, Figure]:
    """Test-set metrics and complexity (reproducible), timings (not), per-clip predictions,
    confusion matrix (table and figure), learning curves."""
    import torch

    from mlsp_pipelines.evaluation import plots
    from mlsp_pipelines.evaluation.metrics import (
        classification_report,
        confusion_frame,
        confusion_matrix,
        icbhi_scores,
    )
    from mlsp_pipelines.models import rebuild_model
    from mlsp_pipelines.training.loop import predict

    net = rebuild_model(bundle)
    X, y = _tensors(model_input, "test")
    probs = torch.softmax(predict(net, (X,)), dim=-1).numpy()
    pred = probs.argmax(-1)
    classes = bundle["classes"]
    rep = classification_report(y.numpy(), pred, classes)
    rep.update(_tta_report(net, X, y.numpy(), list(classes), report))
    if report.normal_class is not None:
        rep.update(icbhi_scores(y.numpy(), pred, classes, report.normal_class))
    cm = confusion_matrix(y.numpy(), pred, len(classes))
    name = bundle.get("name", bundle["arch"])
    metrics = {
        "model": name, "arch": bundle["arch"], **{k: v for k, v in rep.items()},
        **bundle.get("complexity", {"params": bundle["params"]}),
        "best_epoch": bundle["best_epoch"], "epochs_run": bundle["epochs_run"],
    }
    seconds = train_seconds if train_seconds is not None else bundle.get("train_seconds", float("nan"))
    timings = {"model": name, "train_seconds": round(float(seconds), 3),
               "latency_ms_per_clip": round(_latency_ms(net, X, report), 4)}
    predictions = pd.DataFrame({
        "filename": model_input["ids_test"], "actual": [classes[i] for i in y.numpy()],
        "predicted": [classes[i] for i in pred], "confidence": probs.max(-1).round(4),
    })
    title = f"{name} — test accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f}"
    return (metrics, timings, predictions, confusion_frame(cm, classes), plots.confusion_figure(cm, classes, title),
            plots.learning_curves_figure(history.drop(columns="epoch").to_dict("list"),
                                        f"{name} learning curves"))


def evaluate_breakdown(bundle: dict[str, Any], model_input: dict) -> tuple[dict[str, Any], pd.DataFrame, Figure]:
    """What DCASE Task 1 reports, on the test set: accuracy and multi-class log loss overall, per
    class, per device (marked seen/unseen: present in the training data, train or validation
    part, or not; and pooled per kind) and per city, where the data carries devices and cities. Returns flat metrics (the
    leaderboard's ``log_loss``, ``accuracy_seen``/``_unseen``...; ``test_acc_device_<d>`` ... for
    MLflow), the table and its plot."""
    import torch

    from mlsp_pipelines.evaluation import plots
    from mlsp_pipelines.evaluation.metrics import breakdown_metrics, breakdown_table
    from mlsp_pipelines.models import rebuild_model
    from mlsp_pipelines.training.loop import predict

    net = rebuild_model(bundle)
    X, y = _tensors(model_input, "test")
    probs = torch.softmax(predict(net, (X,)), dim=-1).numpy()
    by = {k: model_input[f"{k}_test"] for k in ("device", "city") if f"{k}_test" in model_input}
    seen = None
    if "device_train" in model_input:  # the official training split: its train and validation parts
        seen = {str(d) for s in ("train", "val") for d in np.asarray(model_input.get(f"device_{s}", []))}
    table = breakdown_table(y.numpy(), probs, list(bundle["classes"]), by, seen)
    name = bundle.get("name", bundle["arch"])
    metrics = {"model": name, **breakdown_metrics(table)}
    if seen is not None:
        metrics["seen_devices"] = sorted(seen)
    overall = table.iloc[0]
    fig = plots.breakdown_figure(table, f"{name} — test accuracy {overall['accuracy']:.3f}, "
                                        f"log loss {overall['log_loss']:.3f}")
    return metrics, table, fig


def explain_classifier(bundle: dict[str, Any], model_input: dict, report: ReportParams) -> Figure:
    """Attention over time under the log-mel (attention models), first-layer filters (CNNs), or
    the predictions on a few clips (others)."""
    import torch

    from mlsp_pipelines.evaluation import plots
    from mlsp_pipelines.models import rebuild_model

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


def cross_validate_fold(features: dict[str, np.ndarray], model: ModelSpec, train: TrainParams, split: SplitParams,
                        report: ReportParams, checkpoints: CheckpointStore | None = None, *, fold: int,
                        name: str, task: str | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One fold of the ESC-50 protocol: ``fold`` tests, the other folds train (normalised by
    their own statistics); returns the fold's test metrics, its timings and its model bundle."""
    import torch

    from mlsp_pipelines.evaluation.metrics import classification_report, icbhi_scores
    from mlsp_pipelines.training.loop import predict

    data = make_fold_input(features, split, fold, task=task)
    trained, cx = fit_one(data, model, train, checkpoints, desc=f"{name} fold {fold}", report=report, name=name,
                           task=task)
    net, result = trained.net, trained.result
    X_test = torch.from_numpy(np.ascontiguousarray(data["X_test"]))
    pred = predict(net, (X_test,)).argmax(-1).numpy()
    rep = classification_report(data["y_test"], pred, list(data["classes"]))
    rep.update(_tta_report(net, X_test, data["y_test"], list(data["classes"]), report))
    if report.normal_class is not None:
        rep.update(icbhi_scores(data["y_test"], pred, list(data["classes"]), report.normal_class))
    logger.info("%s fold %s: accuracy %.4f (%d test clips)", name, fold, rep["accuracy"], len(pred))
    return ({"model": name, "arch": model.arch, "fold": int(fold), **rep, **cx, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "n_train": int(len(data["y_train"])), "n_val": int(len(data["y_val"]))},
            {"model": name, "fold": int(fold), "train_seconds": round(result.train_seconds, 3)},
            dict(trained.bundle))


def summarise_folds(*fold_metrics: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    """Mean, standard deviation (ddof 1) and 95 % confidence half-width (Student t over the
    folds) of every quality metric, per-fold values kept; and the per-fold table."""
    from scipy import stats

    folds = sorted(fold_metrics, key=lambda m: m["fold"])
    first = folds[0]
    out: dict[str, Any] = {"model": first["model"], "arch": first["arch"], "folds": [m["fold"] for m in folds]}
    keys = [k for k in ("accuracy", "accuracy_tta", "macro_f1", "macro_f1_tta", "balanced_accuracy", "sensitivity",
                        "specificity", "icbhi_score") if k in first]
    k = len(folds)
    for key in keys:
        v = np.array([m[key] for m in folds], dtype=float)
        std = float(v.std(ddof=1)) if k > 1 else 0.0
        half = float(stats.t.ppf(0.975, k - 1) * std / np.sqrt(k)) if k > 1 else 0.0
        out[f"cv_{key}_mean"], out[f"cv_{key}_std"], out[f"cv_{key}_ci95"] = float(v.mean()), std, half
        out[f"cv_{key}_per_fold"] = v.tolist()
    for key in ("params", "param_bytes", "macs_per_s", "within_budget"):
        if key in first:
            out[key] = first[key]
    if all("n_test" in m and m.get("n_train") for m in folds):  # for the paired comparison of models
        out["test_train_ratio"] = float(np.mean([m["n_test"] / m["n_train"] for m in folds]))
    table = pd.DataFrame([{k: m[k] for k in ("fold", *keys, "n_train", "n_val", "n_test", "best_epoch") if k in m}
                          for m in folds])
    return out, table


def misclassified_clips(predictions: pd.DataFrame, index: pd.DataFrame, raw_audio: str,
                        report: ReportParams) -> dict[str, tuple[np.ndarray, int]]:
    """The ``report.misclassified`` most confident mistakes on the test clips as audio, to listen
    to what the model confuses: ``{"<rank>_<actual>_as_<predicted>_<confidence>_<clip>": (samples,
    native rate)}``, read with the pipeline's reader (a respiratory cycle is its segment of the
    recording). Clips whose file is gone are left out with a warning."""
    import re
    from pathlib import Path

    import soundfile as sf

    from mlsp_pipelines.ingestion.audio import AudioDecodeError, load_audio

    wrong = predictions[predictions["actual"].astype(str) != predictions["predicted"].astype(str)]
    wrong = wrong.sort_values("confidence", ascending=False, kind="stable").head(report.misclassified)
    clips = index.drop_duplicates("filename").set_index("filename")
    out: dict[str, tuple[np.ndarray, int]] = {}
    for rank, row in enumerate(wrong.itertuples(index=False), 1):
        if row.filename not in clips.index:
            continue
        clip = clips.loc[row.filename]
        path = Path(raw_audio) / str(clip["path"])
        offset = clip.get("offset_s", 0.0)
        duration = clip.get("duration_s")
        try:
            sr = int(sf.info(str(path)).samplerate)
            audio = load_audio(path, sr, offset_s=float(offset) if pd.notna(offset) else 0.0,
                               duration_s=float(duration) if duration is not None and pd.notna(duration) else None)
        except (AudioDecodeError, RuntimeError) as exc:
            logger.warning("misclassified clip %s left out: %s", row.filename, exc)
            continue
        name = f"{rank}_{row.actual}_as_{row.predicted}_{row.confidence:.2f}_{Path(str(row.filename)).stem}"
        out[re.sub(r"[^\w.-]+", "_", name)] = (audio, sr)  # labels may hold any character
    return out
