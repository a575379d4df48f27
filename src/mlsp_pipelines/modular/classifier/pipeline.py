"""One modular pipeline per model entry: train → evaluate → explain on the fixed split, or, with
cross-validation, one node per fold (so folds run and resume independently) → summary."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from . import nodes


def _bound(func, **kwargs):  # noqa: ANN001, ANN202 - a named partial Kedro can describe
    return update_wrapper(partial(func, **kwargs), func)


def create_pipeline(task: str, name: str, *, cv: bool = False, folds: list[int] | None = None,
                    breakdown: bool = False) -> Pipeline:
    """Namespace ``{name}`` (inside the task's namespace: ``asc.cnn``) for the model entry
    ``models.{name}``. Fixed split: outputs ``cnn.model``, ``cnn.metrics``, ``cnn.timings``, ...
    from the shared ``model_input``. Cross-validation: ``cnn.fold_<k>.metrics`` per fold from the
    un-normalised ``features``, then ``cnn.cv_metrics``. ``breakdown`` (fixed split only) adds
    the per class/device/city test report: ``cnn.breakdown_metrics``, ``cnn.breakdown`` (+ plot)."""
    params = {"params:model": f"params:models.{name}", "params:train": "params:train",
              "params:report": "params:report"}
    if cv:
        fold_nodes = [
            node(_bound(nodes.cross_validate_fold, fold=k, name=name),
                 ["features", "params:model", "params:train", "params:split", "params:report", f"fold_{k}.checkpoints"],
                 [f"fold_{k}.metrics", f"fold_{k}.timings", f"fold_{k}.model"], name=f"cross_validate_fold_{k}")
            for k in folds or []
        ]
        summary = node(nodes.summarise_folds, [f"fold_{k}.metrics" for k in folds or []], ["cv_metrics", "cv_folds"],
                       name="summarise_folds")
        return Pipeline(fold_nodes + [summary], namespace=name, inputs={"features"},
                        parameters={**params, "params:split": "params:split"}, tags=[f"{task}_train", "model_run"])
    base = [
        node(_bound(nodes.train_classifier, name=name),
             ["model_input", "params:model", "params:train", "checkpoints", "params:report"],
             ["model", "history", "train_seconds"], name="train_model"),
        node(nodes.evaluate_classifier, ["model", "history", "model_input", "params:report", "train_seconds"],
             ["metrics", "timings", "predictions", "confusion_matrix", "confusion_matrix_plot", "learning_curves"],
             name="evaluate_model"),
        node(nodes.explain_classifier, ["model", "model_input", "params:report"], "insight_plot",
             name="explain_model"),
    ]
    if breakdown:
        base.append(node(nodes.evaluate_breakdown, ["model", "model_input"],
                         ["breakdown_metrics", "breakdown", "breakdown_plot"], name="evaluate_breakdown"))
    return Pipeline(base, namespace=name, inputs={"model_input"}, parameters=params,
                    tags=[f"{task}_train", "model_run"])
