"""Task-level reports of the viscoelastic task: the σ–λ overview of every model, gradient
diagnostics at initialisation and of the trained recurrent models, hysteresis at unseen rates,
and the leaderboard."""
from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from mlsp_pipelines.annotations import Figure
from mlsp_pipelines.simulation.viscoelastic import MaterialParams

from .params import (
    DiagnosticsParams,
    ProtocolParams,
    ViscoReportParams,
)

logger = logging.getLogger(__name__)

from .data import EVAL_SETS, feature_set
from .nodes import _finite_or_none, _loops_figure, _panel, predict_stress

# ----------------------------------------------------------------------------------------------
# Task-level nodes: overview figure, gradient diagnostics, leaderboard
# ----------------------------------------------------------------------------------------------


def plot_loops_overview(sequence_input: dict[str, Any], generator_input: dict[str, Any], report: ViscoReportParams,
                        *bundles: dict[str, Any]) -> Figure:
    """Every model on the same cyclic trajectories (the generator's test set, and one
    extrapolation trajectory): σ–λ loops and σ(t), truth against each model."""
    from mlsp_pipelines.evaluation.regression import relative_rmse
    from mlsp_pipelines.models import rebuild_model

    model_inputs = {"sequence": sequence_input, "generator": generator_input}
    nets = {b["name"]: (b, rebuild_model(b), feature_set(model_inputs[b["kind"]], b["name"])) for b in bundles}
    n_ex = report.n_examples
    picks = [("test", i) for i in range(min(max(n_ex - 1, 1), len(sequence_input["cyclic_y_test"])))]
    if n_ex > 1:
        picks.append(("extrap", 0))
    preds = {name: [predict_stress(b, fs[f"cyclic_Xn_{s}"][i : i + 1], net)[0, :, 0] for s, i in picks]
             for name, (b, net, fs) in nets.items()}
    truth = np.concatenate([sequence_input[f"cyclic_y_{s}"][i, :, 0] for s, i in picks])
    # Legend: each model's relative RMSE over the trajectories shown.
    labels = {name: f"{name} ({relative_rmse(truth, np.concatenate(p)):.3f})" for name, p in preds.items()}
    panels = [_panel(sequence_input, "cyclic_", s, i, {labels[n]: preds[n][k] for n in nets}, errors=False)
              for k, (s, i) in enumerate(picks)]
    return _loops_figure(panels, "all models on the same cyclic trajectories (uniform grid); "
                                 "legend: relative RMSE over the trajectories shown")


def gradient_diagnostics(
    material: MaterialParams, protocols: ProtocolParams, diagnostics: DiagnosticsParams, model_input: dict[str, Any]
) -> tuple[pd.DataFrame, Figure, dict[str, Any]]:
    """‖∂L/∂h_t‖ over t (L = loss at the last step) for each configured recurrent cell, on
    ``diagnostics.seq_len``-step simulated protocols with the task's default input features,
    normalised like the training data; at initialisation and after ``train_steps`` full-batch steps."""
    import torch

    from mlsp_pipelines.evaluation.diagnostics import gradient_norms_figure, run_gradient_diagnostics
    from mlsp_pipelines.features.normalise import apply_normaliser
    from mlsp_pipelines.simulation.viscoelastic import (
        build_sequence_dataset,
        generate_protocols,
        sequence_features,
        simulate,
    )

    pr = generate_protocols(
        n=diagnostics.n_sequences, n_steps=diagnostics.seq_len, seed=diagnostics.seed, kinds=protocols.kinds,
        rate_range=protocols.rate_range, amplitude_range=protocols.amplitude_range, max_cycles=protocols.max_cycles,
        nonuniform_dt=protocols.nonuniform_dt, dt_mean=protocols.dt_mean, dt_jitter=protocols.dt_jitter,
        baseline=protocols.baseline,
    )
    if diagnostics.num_threads:
        torch.set_num_threads(diagnostics.num_threads)
    x, y = build_sequence_dataset(pr.t, pr.stretch, simulate(pr, material))
    fs = feature_set(model_input)
    xn = apply_normaliser(sequence_features(x, fs["names"], rate_scale=fs["rate_scale"]), fs["norm"], dtype=np.float64)
    yn = apply_normaliser(y, model_input["norm"]["y"], dtype=np.float64)
    cells = dict(diagnostics.cells)
    table, summary = run_gradient_diagnostics(cells, xn, yn, hidden_size=diagnostics.hidden_size,
                                              seed=diagnostics.seed, train_steps=diagnostics.train_steps,
                                              lr=diagnostics.lr)
    for phase, per_cell in summary.items():
        for cell, info in per_cell.items():
            logger.info("gradient %s %-18s log10(|dL/dh_0| / |dL/dh_T-1|) = %7.1f", phase, cell, info["log10_ratio"])
    fig = gradient_norms_figure(table, f"‖∂L/∂h_t‖ through time, T = {diagnostics.seq_len}, loss at the last step")
    return table, fig, {"seq_len": diagnostics.seq_len, "hidden_size": diagnostics.hidden_size, **summary}


#: Recurrent cells trained by backpropagation through time (their hidden state is ``model.rnn``'s).
BPTT_ARCHS = ("rnn", "gru", "lstm")
#: Every recurrent model: the BPTT cells and ``rate_ode`` (its state is the stress itself).
RECURRENT_ARCHS = (*BPTT_ARCHS, "rate_ode")


def _recurrent(bundles: tuple[dict[str, Any], ...], archs: tuple[str, ...] = RECURRENT_ARCHS) -> list[dict[str, Any]]:
    return [b for b in bundles if b["arch"] in archs and not b["kwargs"].get("bidirectional", False)]


def _relative_error_by_step(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RMS error over trajectories at each step divided by the RMS stress of the whole set."""
    return np.sqrt(np.mean((pred - y) ** 2, axis=(0, 2))) / np.sqrt(np.mean(y**2))


def trained_gradients(
    model_input: dict[str, Any], diagnostics: DiagnosticsParams, *bundles: dict[str, Any]
) -> tuple[pd.DataFrame, Figure, dict[str, Any]]:
    """Each TRAINED recurrent model's ‖∂L/∂h_t‖ through time (L: loss at the last step) on the
    first ``diagnostics.n_sequences`` test trajectories, beside its error: the relative error at
    every step and its relative RMSE on the test and extrapolation sets.

    This puts the seed's two-layer tanh ``rnn`` next to the gated cells as they were trained,
    not only at initialisation (:func:`gradient_diagnostics`). Returns a long table (``model,
    t, steps_back, grad_norm, rel_err``), a two-panel figure and ``{model: decay summary + errors}``.
    """
    import torch

    from mlsp_pipelines.evaluation.diagnostics import decay_summary, gradient_norms_through_time
    from mlsp_pipelines.evaluation.figures import subplots
    from mlsp_pipelines.evaluation.regression import relative_rmse
    from mlsp_pipelines.models import rebuild_model

    rows, summary = [], {}
    fig, (ax_g, ax_e) = subplots(1, 2, figsize=(11, 4))
    for b in _recurrent(bundles, BPTT_ARCHS):
        net = rebuild_model(b)
        x = feature_set(model_input, b["name"])
        n = min(diagnostics.n_sequences, len(x["Xn_test"]))
        with torch.enable_grad():
            norms = gradient_norms_through_time(net.double(), torch.from_numpy(x["Xn_test"][:n]).double(),
                                                torch.from_numpy(model_input["yn_test"][:n]).double())
        net.float()
        errors = {s: predict_stress(b, x[f"Xn_{s}"], net) for s in EVAL_SETS}
        by_step = _relative_error_by_step(model_input["y_test"], errors["test"])
        info = {**decay_summary(norms), "rel_rmse": relative_rmse(model_input["y_test"], errors["test"]),
                "rel_rmse_extrap": relative_rmse(model_input["y_extrap"], errors["extrap"])}
        summary[b["name"]] = info
        steps = np.arange(len(norms))
        rows.append(pd.DataFrame({"model": b["name"], "t": steps, "steps_back": steps[::-1], "grad_norm": norms,
                                  "rel_err": by_step}))
        layers = int(b["kwargs"].get("num_layers", 1))
        cell = f"{b['arch']}" + (f" {b['kwargs'].get('nonlinearity', 'tanh')}" if b["arch"] == "rnn" else "")
        label = (f"{b['name']} ({cell}, {layers} layer{'s' if layers > 1 else ''}): test {info['rel_rmse']:.4f}, "
                 f"extrap. {info['rel_rmse_extrap']:.4f}")
        ax_g.semilogy(steps[::-1], np.maximum(norms, 1e-300), label=label)
        ax_e.semilogy(steps, np.maximum(by_step, 1e-12), label=b["name"])
    ax_g.set_xlabel("steps back from the loss (T−1−t)")
    ax_g.set_ylabel("‖∂L/∂h_t‖ (L: loss at the last step)")
    ax_g.set_title("gradient through time, trained models (test trajectories)", fontsize=9)
    ax_e.set_xlabel("step t")
    ax_e.set_ylabel("RMS error at step t / RMS σ (test)")
    ax_e.set_title("error along the sequence", fontsize=9)
    for ax in (ax_g, ax_e):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    cols = ["model", "t", "steps_back", "grad_norm", "rel_err"]
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)), fig, summary


def _cycle_table(stretch: np.ndarray, true: np.ndarray, pred: np.ndarray) -> list[dict[str, float]]:
    from mlsp_pipelines.evaluation.regression import cycle_energies

    return [{"cycle": k, "energy_true": float(et), "energy_pred": float(ep),
             "rel_err": float(abs(ep - et) / abs(et)) if et else float("nan")}
            for k, (et, ep) in enumerate(zip(*cycle_energies(stretch, true, pred)[0]))]


def plot_hysteresis(
    model_input: dict[str, Any], report: ViscoReportParams, *bundles: dict[str, Any]
) -> tuple[Figure, dict[str, Any]]:
    """σ–λ hysteresis loops at unseen (faster) loading rates: truth and prediction overlaid for
    the recurrent model with the lowest validation error, on the slowest, a middle and the
    fastest cyclic trajectory of the extrapolation set, with the energy dissipated in each
    cycle (loop area ∮σ dλ) true against predicted. Also returns those numbers for every
    recurrent model on every cyclic extrapolation trajectory."""
    from mlsp_pipelines.evaluation.figures import subplots
    from mlsp_pipelines.evaluation.regression import relative_rmse

    models = _recurrent(bundles)
    cyclic = np.flatnonzero((model_input["kind_extrap"] == "cyclic") & (model_input["cycles_extrap"] >= 1))
    if not models or cyclic.size == 0:
        fig, ax = subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no recurrent model or no complete cycle at unseen rates", ha="center", va="center")
        ax.set_axis_off()
        return fig, {}
    val = {b["name"]: relative_rmse(model_input["y_val"], predict_stress(b, feature_set(model_input, b["name"])["Xn_val"]))
           for b in models}
    best = min(models, key=lambda b: (val[b["name"]], b["name"]))
    stretch, truth = model_input["X_extrap"][..., 0], model_input["y_extrap"][..., 0]
    out: dict[str, Any] = {"best_model": best["name"], "selected_by": "validation rel_rmse", "val_rel_rmse": val,
                           "models": {}}
    preds: dict[str, np.ndarray] = {}
    for b in models:
        pred = predict_stress(b, feature_set(model_input, b["name"])["Xn_extrap"])[..., 0]
        per_traj = {str(model_input["id_extrap"][i]): {"rate": float(model_input["rate_extrap"][i]),
                                                       "cycles": _cycle_table(stretch[i], truth[i], pred[i])}
                    for i in cyclic}
        rel = np.array([c["rel_err"] for t in per_traj.values() for c in t["cycles"]])
        out["models"][b["name"]] = {"energy_rel_err_mean": float(np.nanmean(rel)), "energy_rel_err_max":
                                    float(np.nanmax(rel)), "n_cycles": int(rel.size), "trajectories": per_traj}
        preds[b["name"]] = pred
    order = cyclic[np.argsort(model_input["rate_extrap"][cyclic], kind="stable")]
    picks = list(dict.fromkeys([order[0], order[len(order) // 2], order[-1]]))[: max(report.n_examples - 1, 1)]
    fig, axes = subplots(1, len(picks), figsize=(4.2 * len(picks), 4.2), squeeze=False)
    # For contrast, the best model of the other family: a cell trained through time beside a
    # learned rate law, or the other way round (their energy errors differ by orders of magnitude).
    family = [b for b in models if b is not best and (b["arch"] in BPTT_ARCHS) != (best["arch"] in BPTT_ARCHS)]
    other = min(family, key=lambda b: (val[b["name"]], b["name"])) if family else None
    out["contrast_model"] = other["name"] if other is not None else None
    for ax, i in zip(axes[0], picks):
        ax.plot(stretch[i], truth[i], color="black", lw=2.2, label="simulated")
        if other is not None:
            ax.plot(stretch[i], preds[other["name"]][i], color="C0", lw=1.0, ls=":",
                    label=f"{other['name']} (energy error mean "
                          f"{100 * out['models'][other['name']]['energy_rel_err_mean']:.1f} %)")
        ax.plot(stretch[i], preds[best["name"]][i], color="C3", lw=1.3, ls="--", label=best["name"])
        cycles = out["models"][best["name"]]["trajectories"][str(model_input["id_extrap"][i])]["cycles"]
        text = "\n".join(f"cycle {c['cycle'] + 1}: {c['energy_true']:.4g} vs {c['energy_pred']:.4g} "
                         f"({100 * c['rel_err']:.2f} %)" for c in cycles)
        ax.text(0.03, 0.97, "dissipated energy ∮σ dλ\ntrue vs predicted\n" + text, transform=ax.transAxes,
                va="top", fontsize=7, bbox=dict(facecolor="white", alpha=0.8, lw=0))
        ax.set_title(f"{model_input['id_extrap'][i]}: rate {model_input['rate_extrap'][i]:.3g}/s "
                     f"(training ≤ {model_input['rate_train'].max():.3g}/s)", fontsize=8)
        ax.set_xlabel("stretch λ")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("stress σ")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    stats = out["models"][best["name"]]
    fig.suptitle(f"hysteresis at unseen loading rates, {best['name']} (lowest validation error); energy per cycle: "
                 f"mean error {100 * stats['energy_rel_err_mean']:.2f} %, worst {100 * stats['energy_rel_err_max']:.2f} % "
                 f"over {stats['n_cycles']} cycles", fontsize=9)
    fig.tight_layout()
    return fig, out


def _leaderboard_figure(board: pd.DataFrame) -> Figure:
    from mlsp_pipelines.evaluation.figures import subplots

    cols = [c for c in ("rel_rmse", "rel_rmse_extrap") if c in board]
    x = np.arange(len(board))
    width = 0.8 / max(len(cols), 1)
    fig, ax = subplots(figsize=(max(5.0, 1.3 * len(board) + 2), 3.8))
    for i, c in enumerate(cols):
        bars = ax.bar(x + i * width - 0.4 + width / 2, board[c].to_numpy(dtype=float), width,
                      label={"rel_rmse": "test", "rel_rmse_extrap": "extrapolation (faster loading)"}[c])
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    labels = [f"{m}\n{p / 1e3:.1f}k params" + ("\n(cyclic test sets)" if "cyclic" in str(ts) else "")
              for m, p, ts in zip(board["model"], board.get("params", [0] * len(board)),
                                  board.get("test_set", [""] * len(board)))]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("relative RMSE ‖σ̂ − σ‖ / ‖σ‖")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.set_title("viscoelastic stress prediction (lower is better)")
    fig.tight_layout()
    return fig




EXTRA_COLUMNS = ("max_err", "max_err_extrap", "energy_rel_err", "energy_rel_err_extrap", "energy_rel_err_median",
                 "energy_rel_err_median_extrap", "energy_rel_err_max", "energy_rel_err_max_extrap",
                 "energy_total_rel_err", "energy_total_rel_err_extrap",
                 "rel_rmse_cyclic", "rel_rmse_cyclic_extrap")


def build_report(
    gradient_summary: dict[str, Any], trained_gradient_summary: dict[str, Any], *metrics: dict[str, Any]
) -> tuple[pd.DataFrame, str, Figure, dict[str, Any]]:
    """The shared leaderboard (sorted by test ``rel_rmse``) with this task's extra columns (and,
    for recurrent models, ``grad_log10_ratio``: log10 ‖∂L/∂h_0‖/‖∂L/∂h_T−1‖ of the trained
    model, beside its error), a relative-RMSE bar plot, and ``metrics.json`` with the
    improvement over the memoryless ``mlp`` and the gradient-diagnostics summary."""
    from mlsp_pipelines.modular.report.nodes import build_leaderboard, to_markdown

    with warnings.catch_warnings():  # its bar plot shows non-"rel_" metrics only: none here (replaced below)
        warnings.simplefilter("ignore", UserWarning)
        board, _, base_fig, summary = build_leaderboard(*metrics, sort_by="rel_rmse")
    by_name = {m["model"]: m for m in metrics}
    timing = [c for c in ("params",) if c in board]
    for col in EXTRA_COLUMNS:
        board[col] = [by_name[m].get(col, float("nan")) for m in board["model"]]
    board["grad_log10_ratio"] = [trained_gradient_summary.get(m, {}).get("log10_ratio", float("nan"))
                                 for m in board["model"]]
    board["test_set"] = [by_name[m].get("test_set", "") for m in board["model"]]
    board = board[[c for c in board.columns if c not in timing] + timing]
    for row in board.to_dict("records"):
        summary["models"][row["model"]].update({c: _finite_or_none(row[c]) for c in (*EXTRA_COLUMNS, "grad_log10_ratio")})
    baselines = [m["model"] for m in metrics if m.get("arch") == "mlp"]
    if baselines:
        base = by_name[baselines[0]]
        summary["mlp_baseline"] = baselines[0]
        # mlp's relative RMSE divided by the model's (> 1: better than the memoryless baseline), on the
        # same trajectories only: for a model tested on other sets (seq_generator) just the cyclic columns.
        cyclic = ("rel_rmse_cyclic", "rel_rmse_cyclic_extrap")
        summary["improvement_over_mlp"] = {
            m["model"]: {k: float(base[k] / m[k])
                         for k in (("rel_rmse", "rel_rmse_extrap", *cyclic)
                                   if m.get("test_set") == base.get("test_set") else cyclic)
                         if m.get(k) and base.get(k) is not None}
            for m in metrics if m["model"] != baselines[0]
        }
    summary["gradient_diagnostics"] = {
        phase: {cell: {"log10_ratio": v["log10_ratio"], "log10_per_step": v["log10_per_step"]}
                for cell, v in per_cell.items()}
        for phase, per_cell in gradient_summary.items() if isinstance(per_cell, dict)
    }
    return board, to_markdown(board), _leaderboard_figure(board), summary
