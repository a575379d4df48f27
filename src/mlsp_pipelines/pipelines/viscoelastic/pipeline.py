"""Wiring of ``viscoelastic`` and of its DVC-stage slices ``viscoelastic_data`` and ``viscoelastic_train``."""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline, node

from mlsp_pipelines.config import ONE_TO_MANY, architectures, graph_params, section
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
    train = Pipeline([
        node(visco_data.make_sequence_input, ["dataset", "norm_stats", "params:inputs"], "sequence_input",
             name="make_sequence_input"),
        node(visco_data.make_generator_input, ["dataset", "norm_stats"], "generator_input",
             name="make_generator_input"),
    ], tags=[f"{TASK}_train"])
    models = section(params, f"{TASK}.models", {}) or {}
    for name in archs:
        # Two problems, two inputs: the one-to-many generator learns whole sequences from loading parameters.
        model_input = "generator_input" if models[name].get("arch", name) in ONE_TO_MANY else "sequence_input"
        train += model_pipeline(TASK, name, MODEL_STEPS, inputs={"model_input": model_input},
                                parameters=("train", "report"))
    train += Pipeline([
        node(visco_report.gradient_diagnostics, ["params:material", "params:protocols", "params:diagnostics",
                                                  "sequence_input"],
             ["gradient_norms", "gradient_norms_plot", "gradient_summary"], name="gradient_diagnostics"),
    ], tags=[f"{TASK}_train"])
    reports = None
    if archs:
        # Task-level nodes that read every model's outputs: full dataset names, node namespace only.
        bundles = [f"{TASK}.{a}.model" for a in archs]
        loops = Pipeline(
            [
                node(visco_report.plot_loops_overview, [f"{TASK}.sequence_input", f"{TASK}.generator_input",
                                                         f"params:{TASK}.report", *bundles],
                     f"{TASK}.loops_overview", name="plot_loops_overview", namespace=TASK),
                node(visco_report.trained_gradients, [f"{TASK}.sequence_input", f"params:{TASK}.diagnostics", *bundles],
                     [f"{TASK}.trained_gradient_norms", f"{TASK}.trained_gradients_plot",
                      f"{TASK}.trained_gradient_summary"], name="trained_gradients", namespace=TASK),
                node(visco_report.plot_hysteresis, [f"{TASK}.sequence_input", f"params:{TASK}.report", *bundles],
                     [f"{TASK}.hysteresis_plot", f"{TASK}.hysteresis"], name="plot_hysteresis", namespace=TASK),
            ],
            tags=[f"{TASK}_train"],
        )
        reports = loops + report.create_pipeline(
            TASK, archs, func=visco_report.build_report,
            extra_inputs=(f"{TASK}.gradient_summary", f"{TASK}.trained_gradient_summary"),
            timings=[f"{TASK}.{a}.timings" for a in archs])
    return compose_task(TASK, data=data, train=train, report=reports)
