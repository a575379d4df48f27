"""Per-model nodes of the viscoelastic task: train with the shared loop, then evaluate in physical
units (data in :mod:`.data`, task-level reports in :mod:`.report`).

Sequence models (``mlp`` per step, ``rnn``, ``gru``, ``lstm``, ``rate_ode``, causal
``transformer``) map per-step input features computed from ``X = (λ, λ̇, Δt)`` (chosen per model
by ``viscoelastic.inputs``) to the stress ``σ`` of that step. The one-to-many ``seq_generator``
instead gets one vector of loading parameters per trajectory and generates the whole stress
sequence; it is trained and tested on cyclic protocols sampled on a uniform grid (see
:func:`simulate_trajectories`), the protocols that those parameters fully describe.

What lets the recurrent models extrapolate to faster loading (see the ablation in
``benchmarks/viscoelastic_ablation.py``): no rate among the inputs of the gated cells (a rate
3× above its training range is what they could not extrapolate), a linear skip from the inputs
to σ (the elastic part), training protocols on coarser grids that cover the per-sample
increments and stresses of fast loading at training rates, and for ``rate_ode`` a law that is
linear in the rate by construction.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlsp_pipelines.annotations import Figure
from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.params import ModelSpec, TrainParams

from .params import (
    ViscoReportParams,
)

logger = logging.getLogger(__name__)

from .data import EVAL_SETS, feature_set

if TYPE_CHECKING:  # annotations only: the functions import these where they run
    import torch

# ----------------------------------------------------------------------------------------------
# Training and evaluation (one namespace per model)
# ----------------------------------------------------------------------------------------------


def _tensor(a: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _model_kwargs(model: ModelSpec, model_input: dict[str, Any]) -> dict[str, Any]:
    """The entry's kwargs plus those its data fixes (the generator's ``n_steps``), which an
    explicit value must match."""
    kwargs = dict(model.kwargs)
    for key, value in model_input["data_kwargs"].items():
        if kwargs.setdefault(key, value) != value:
            raise ValueError(f"{model.arch}: kwargs.{key}={kwargs[key]} differs from the data's {value} "
                             f"(leave it out to take the data's value)")
    return kwargs


def train_sequence_model(
    model_input: dict[str, Any], model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore | None, *,
    name: str,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, float]]:
    """Train the model entry ``name`` on its model input (sequence or generator, chosen by the
    wiring) with the shared loop (MSE over the whole sequence, normalised units); the wall and
    CPU seconds come out apart from the model."""
    from mlsp_pipelines.training.model_run import train_model

    fs = feature_set(model_input, name)
    x_tr, y_tr = fs["Xn_train"], model_input["yn_train"]
    x_va, y_va = fs["Xn_val"], model_input["yn_val"]
    plain = (_tensor(x_tr), _tensor(y_tr))

    def prepare(net: torch.nn.Module, settings: TrainParams) -> dict[str, Any]:
        # A teacher-forced model (rate_ode) gets the true sequence as a second input in training only:
        # validation calls it without, so early stopping judges its free-running predictions.
        return {"train": plain + (_tensor(y_tr),)} if getattr(net, "teacher_forcing", False) else {}

    cpu0 = time.process_time()
    trained = train_model(
        name, model, train, plain, (_tensor(x_va), _tensor(y_va)), in_features=int(x_tr.shape[-1]),
        out_features=int(y_tr.shape[-1]), task="regression", checkpoints=checkpoints,
        kwargs=_model_kwargs(model, model_input), prepare=prepare,
        fingerprint_parts=([x_tr.shape, x_va.shape], model_input["norm"], fs["x_spec"]),
        bundle_extra={"kind": model_input["kind"], **fs["x_spec"], "norm_y": model_input["norm_y"]},
    )
    cpu = time.process_time() - cpu0  # this process's CPU time: on a shared machine wall time says little
    bundle, result = dict(trained.bundle), trained.result
    n = len(result.history["train_loss"])
    # Times differ on every run: a separate output, so the saved bundle hashes alike on every re-run.
    # So are resume facts: a resumed model must hash like an uninterrupted one.
    seconds = {"train_seconds": float(result.train_seconds), "train_cpu_seconds": float(cpu),
               "resumed_from": int(result.resumed_from)}
    return bundle, pd.DataFrame({"epoch": np.arange(1, n + 1), **result.history}), seconds


def predict_stress(bundle: dict[str, Any], inputs: np.ndarray, net: torch.nn.Module | None = None) -> np.ndarray:
    """Stress (N, T, 1) in physical units from normalised inputs (sequences or generator vectors)."""
    from mlsp_pipelines.features.normalise import denormalise
    from mlsp_pipelines.models import rebuild_model
    from mlsp_pipelines.training.loop import predict

    net = rebuild_model(bundle) if net is None else net
    out = predict(net, (_tensor(inputs),), batch_size=64).numpy()
    return denormalise(out, bundle["norm_y"])


def _example_rows(kinds: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` rows, cycling through the protocol kinds present (first of each kind first)."""
    order: list[int] = []
    by_kind = {k: list(np.flatnonzero(kinds == k)) for k in dict.fromkeys(kinds.tolist())}
    while len(order) < min(n, len(kinds)):
        for rows in by_kind.values():
            if rows and len(order) < n:
                order.append(rows.pop(0))
    return order


def _loops_figure(panels: list[dict[str, Any]], title: str) -> Figure:
    """σ–λ loops (top) and σ(t) (bottom) per trajectory; the truth in black, models in colour."""
    from mlsp_pipelines.evaluation.figures import subplots

    n = len(panels)
    fig, axes = subplots(2, n, figsize=(3.4 * n + 0.6, 6.0), squeeze=False)
    for k, p in enumerate(panels):
        lam, t = p["stretch"], p["t"]
        axes[0, k].plot(lam, p["true"], color="black", lw=2.0, label="simulated")
        axes[1, k].plot(t, p["true"], color="black", lw=2.0, label="simulated")
        for j, (label, pred) in enumerate(p["pred"].items()):
            style = dict(lw=1.2, ls="--" if j % 2 else "-", color=f"C{j}", label=label)
            axes[0, k].plot(lam, pred, **style)
            axes[1, k].plot(t, pred, **style)
        axes[0, k].set_title(p["title"], fontsize=8)
        axes[0, k].set_xlabel("stretch λ")
        axes[1, k].set_xlabel("time t")
        for ax in axes[:, k]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("stress σ")
    axes[1, 0].set_ylabel("stress σ")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _panel(
    model_input: dict[str, Any], prefix: str, s: str, i: int, pred: dict[str, np.ndarray], *, errors: bool = True
) -> dict[str, Any]:
    from mlsp_pipelines.evaluation.regression import relative_rmse

    x = model_input[f"{prefix}X_{s}"][i]
    y = model_input[f"{prefix}y_{s}"][i, :, 0]
    kind, rate = model_input[f"{prefix}kind_{s}"][i], model_input[f"{prefix}rate_{s}"][i]
    label = "extrapolation" if s == "extrap" else s
    title = f"{model_input[f'{prefix}id_{s}'][i]} ({label}, {kind})\nrate {rate:.3g}/s"
    if errors:
        title += ", rel. RMSE " + ", ".join(f"{relative_rmse(y, v):.3f}" for v in pred.values())
    return {"stretch": x[:, 0], "t": np.cumsum(x[:, 2]), "true": y, "pred": pred, "title": title}


def evaluate_model(
    bundle: dict[str, Any], history: pd.DataFrame, model_input: dict[str, Any], report: ViscoReportParams,
    train_seconds: dict[str, float] | None = None, *, name: str,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame, Figure, Figure]:
    """Relative RMSE, max error and cycle-energy error on the test and extrapolation sets, the
    training times (wall and CPU, apart), a per-trajectory error table, σ–λ loops of a few test
    trajectories and the learning curves."""
    from mlsp_pipelines.evaluation import plots
    from mlsp_pipelines.evaluation.regression import (
        energy_relative_errors,
        max_abs_error,
        regression_metrics,
        relative_rmse,
    )
    from mlsp_pipelines.models import rebuild_model

    net = rebuild_model(bundle)
    fs = feature_set(model_input, name)
    metrics: dict[str, Any] = {"model": name, "arch": bundle["arch"], "test_set": model_input["test_set"]}
    rows = []
    preds: dict[str, np.ndarray] = {}
    for s in EVAL_SETS:
        y = model_input[f"y_{s}"]
        pred = predict_stress(bundle, fs[f"Xn_{s}"], net)
        preds[s] = pred
        stretch = model_input[f"X_{s}"][..., 0]
        kinds = model_input[f"kind_{s}"]
        suffix = "" if s == "test" else "_extrap"
        metrics.update(regression_metrics(y, pred, stretch=stretch, energy_mask=kinds == "cyclic", suffix=suffix))
        energy = energy_relative_errors(stretch, y[..., 0], pred[..., 0])
        for i in range(len(y)):
            rows.append({"trajectory": model_input[f"id_{s}"][i], "set": s, "kind": kinds[i],
                         "rate": float(model_input[f"rate_{s}"][i]),
                         "amplitude": float(model_input[f"amplitude_{s}"][i]),
                         "cycles": int(model_input[f"cycles_{s}"][i]),
                         "rel_rmse": relative_rmse(y[i], pred[i]) if np.any(y[i]) else float("nan"),
                         "max_err": max_abs_error(y[i], pred[i]),
                         "energy_rel_err": float(energy[i].mean()) if energy[i].size else float("nan")})
        # Every model on the same cyclic trajectories (the generator's sets): a like-for-like column.
        cyclic = predict_stress(bundle, fs[f"cyclic_Xn_{s}"], net)
        metrics[f"rel_rmse_cyclic{suffix}"] = relative_rmse(model_input[f"cyclic_y_{s}"], cyclic)
    metrics.update({"params": bundle["params"], "best_epoch": bundle["best_epoch"], "epochs_run": bundle["epochs_run"]})
    # Timings differ on every run: kept apart from the reproducible metrics (timings.csv, MLflow).
    seconds = train_seconds or {}
    timings = {"model": name, "train_seconds": round(float(seconds.get("train_seconds", float("nan"))), 3),
               "train_cpu_seconds": round(float(seconds.get("train_cpu_seconds", float("nan"))), 3),
               "epochs_run": int(bundle["epochs_run"]), "resumed_from": int(seconds.get("resumed_from", 0))}
    metrics = {k: _finite_or_none(v) for k, v in metrics.items()}  # JSON has no NaN (no cycle in a set)

    n_ex = report.n_examples
    test_rows = _example_rows(model_input["kind_test"], max(n_ex - 1, 1))
    panels = [_panel(model_input, "", "test", i, {name: preds["test"][i, :, 0]}) for i in test_rows]
    if n_ex > 1:
        panels.append(_panel(model_input, "", "extrap", 0, {name: preds["extrap"][0, :, 0]}))
    title = (f"{name}: test rel. RMSE {metrics['rel_rmse']:.3f}, extrapolation {metrics['rel_rmse_extrap']:.3f}"
             f" ({metrics['test_set']})")
    curves = plots.learning_curves_figure(history.drop(columns="epoch").to_dict("list"), f"{name} learning curves")
    return metrics, timings, pd.DataFrame(rows), _loops_figure(panels, title), curves

def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not np.isfinite(v) else v
