"""Wiring of ``viscoelastic`` and of its DVC-stage slices ``viscoelastic_data`` and ``viscoelastic_train``."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import architectures, graph_params
from mlsp_pipelines.modular import report
from mlsp_pipelines.modular.model_pipeline import compose_task, model_pipeline

from . import data as visco_data
from . import nodes
from . import report as visco_report

TASK = "viscoelastic"


MODEL_STEPS = [
    (nodes.train_sequence_model, ["model_input", "params:model", "params:train", "checkpoints"],
     ["model", "history", "train_seconds"], "train_model"),
    (nodes.evaluate_model, ["model", "history", "model_input", "params:report", "train_seconds"],
     ["metrics", "timings", "trajectory_errors", "loops_plot", "learning_curves"], "evaluate_model"),
]


def create_pipelines(params: dict[str, Any] | None = None) -> dict[str, Pipeline]:
    """``viscoelastic``, ``viscoelastic_data`` (simulation + dataset) and ``viscoelastic_train``
    (per-model training and evaluation, gradient diagnostics at initialisation and of the trained
    recurrent models, hysteresis at unseen rates, leaderboard); which models are trained comes
    from ``viscoelastic.architectures``."""
    params = graph_params() if params is None else params
    archs = architectures(params, TASK)
    data = Pipeline(
        [
            node(visco_data.simulate_trajectories, ["params:material", "params:protocols", "params:generator_data"],
                 ["trajectories", "generator_trajectories"], name="simulate_trajectories"),
            node(visco_data.build_dataset, ["trajectories", "generator_trajectories", "params:split"],
                 ["dataset", "norm_stats", "data_quality"], name="build_dataset"),
        ],
        namespace=TASK,
        tags=[f"{TASK}_data"],
    )
    train = Pipeline([node(visco_data.make_model_input, ["dataset", "norm_stats", "params:inputs"], "model_input",
                           name="make_model_input")], tags=[f"{TASK}_train"])
    for name in archs:
        train += model_pipeline(TASK, name, MODEL_STEPS, inputs={"model_input"}, parameters=("train", "report"))
    train += Pipeline([
        node(visco_report.gradient_diagnostics, ["params:material", "params:protocols", "params:diagnostics", "model_input"],
             ["gradient_norms", "gradient_norms_plot", "gradient_summary"], name="gradient_diagnostics"),
    ], tags=[f"{TASK}_train"])
    reports = None
    if archs:
        # Task-level nodes that read every model's outputs: full dataset names, node namespace only.
        models = [f"{TASK}.{a}.model" for a in archs]
        loops = Pipeline(
            [
                node(visco_report.plot_loops_overview, [f"{TASK}.model_input", f"params:{TASK}.report", *models],
                     f"{TASK}.loops_overview", name="plot_loops_overview", namespace=TASK),
                node(visco_report.trained_gradients, [f"{TASK}.model_input", f"params:{TASK}.diagnostics", *models],
                     [f"{TASK}.trained_gradient_norms", f"{TASK}.trained_gradients_plot",
                      f"{TASK}.trained_gradient_summary"], name="trained_gradients", namespace=TASK),
                node(visco_report.plot_hysteresis, [f"{TASK}.model_input", f"params:{TASK}.report", *models],
                     [f"{TASK}.hysteresis_plot", f"{TASK}.hysteresis"], name="plot_hysteresis", namespace=TASK),
            ],
            tags=[f"{TASK}_train"],
        )
        reports = loops + report.create_pipeline(
            TASK, archs, func=visco_report.build_report,
            extra_inputs=(f"{TASK}.gradient_summary", f"{TASK}.trained_gradient_summary"),
            timings=[f"{TASK}.{a}.timings" for a in archs])
    return compose_task(TASK, data=data, train=train, report=reports)
