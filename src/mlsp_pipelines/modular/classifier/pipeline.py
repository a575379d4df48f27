"""One modular pipeline (train → evaluate → explain [→ cross-validate]) reused per architecture."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from . import nodes


def create_pipeline(task: str, arch: str, *, cv: bool = False) -> Pipeline:
    """Namespace ``{arch}`` (inside the task's namespace: ``asc.cnn``): outputs ``cnn.model``,
    ``cnn.metrics``, ...; reads the shared ``model_input`` and the parameters ``models.{arch}``,
    ``train``, ``report``."""
    base = [
        node(nodes.train_classifier, ["model_input", "params:model", "params:train", "checkpoints"],
             ["model", "history"], name="train_model"),
        node(nodes.evaluate_classifier, ["model", "history", "model_input", "params:report"],
             ["metrics", "predictions", "confusion_matrix", "confusion_matrix_plot", "learning_curves"],
             name="evaluate_model"),
        node(nodes.explain_classifier, ["model", "model_input", "params:report"], "insight_plot",
             name="explain_model"),
    ]
    if cv:
        base.append(node(nodes.cross_validate, ["model_input", "params:model", "params:train", "params:split"],
                         "cv_metrics", name="cross_validate"))
    return Pipeline(
        base,
        namespace=arch,
        inputs={"model_input"},
        parameters={
            "params:model": f"params:models.{arch}",
            "params:train": "params:train",
            "params:report": "params:report",
            **({"params:split": "params:split"} if cv else {}),
        },
        tags=[f"{task}_train", "model_run"],
    )
