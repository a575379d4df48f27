"""One modular pipeline per model entry: train → evaluate → explain on the fixed split, or, with
cross-validation, one node per fold (so folds run and resume independently) → summary."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline

from mlsp_pipelines.modular.model_pipeline import Step, model_pipeline

from . import nodes


def _fold(k: int) -> Callable[..., Any]:  # a named partial Kedro can describe
    return update_wrapper(partial(nodes.cross_validate_fold, fold=k), nodes.cross_validate_fold)


def create_pipeline(task: str, name: str, *, cv: bool = False, folds: list[int] | None = None,
                    breakdown: bool = False) -> Pipeline:
    """Namespace ``{name}`` (inside the task's namespace: ``asc.cnn``) for the model entry
    ``models.{name}``. Fixed split: outputs ``cnn.model``, ``cnn.metrics``, ``cnn.timings``, ...
    from the shared ``model_input``. Cross-validation: ``cnn.fold_<k>.metrics`` per fold from the
    un-normalised ``features``, then ``cnn.cv_metrics``. The fixed split also keeps the most confident
    mistakes as audio (``cnn.misclassified``, read from ``raw_audio`` through ``index``). ``breakdown`` (fixed split only) adds
    the per class/device/city test report: ``cnn.breakdown_metrics``, ``cnn.breakdown`` (+ plot)."""
    if cv:
        steps: list[Step] = [
            (_fold(k), ["features", "params:model", "params:train", "params:split", "params:report",
                        f"fold_{k}.checkpoints"],
             [f"fold_{k}.metrics", f"fold_{k}.timings", f"fold_{k}.model"], f"cross_validate_fold_{k}")
            for k in folds or []
        ]
        steps.append((nodes.summarise_folds, [f"fold_{k}.metrics" for k in folds or []], ["cv_metrics", "cv_folds"],
                      "summarise_folds"))
        return model_pipeline(task, name, steps, inputs={"features"}, parameters=("train", "report", "split"))
    steps = [
        (nodes.train_classifier, ["model_input", "params:model", "params:train", "checkpoints", "params:report"],
         ["model", "history", "train_seconds"], "train_model"),
        (nodes.evaluate_classifier, ["model", "history", "model_input", "params:report", "train_seconds"],
         ["metrics", "timings", "predictions", "confusion_matrix", "confusion_matrix_plot", "learning_curves"],
         "evaluate_model"),
        (nodes.explain_classifier, ["model", "model_input", "params:report"], "insight_plot", "explain_model"),
        (nodes.misclassified_clips, ["predictions", "index", "raw_audio", "params:report"], "misclassified",
         "keep_misclassified"),
    ]
    if breakdown:
        steps.append((nodes.evaluate_breakdown, ["model", "model_input"],
                      ["breakdown_metrics", "breakdown", "breakdown_plot"], "evaluate_breakdown"))
    return model_pipeline(task, name, steps, inputs={"model_input", "index", "raw_audio"}, parameters=("train", "report"))
