"""Nodes of the viscoelastic task: simulate → dataset → train/evaluate per model → diagnostics → report.

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
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from mlsp_pipelines.datasets.files import CheckpointStore
from mlsp_pipelines.evaluation import plots
from mlsp_pipelines.evaluation.diagnostics import (
    CellSpec,
    decay_summary,
    gradient_norms_figure,
    gradient_norms_through_time,
    run_gradient_diagnostics,
)
from mlsp_pipelines.evaluation.figures import subplots
from mlsp_pipelines.evaluation.regression import (
    cycle_energies,
    denormalise,
    energy_relative_errors,
    fit_normalisation,
    fit_range_scaling,
    max_abs_error,
    normalise,
    regression_metrics,
    relative_rmse,
)
from mlsp_pipelines.models import rebuild_model
from mlsp_pipelines.models.generator import ONE_TO_MANY
from mlsp_pipelines.modular.report.nodes import build_leaderboard, to_markdown
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.simulation.viscoelastic import (
    Protocols,
    build_sequence_dataset,
    generate_protocols,
    sequence_features,
    simulate,
)
from mlsp_pipelines.training.loop import predict
from mlsp_pipelines.training.model_run import train_model

from .params import (
    DiagnosticsParams,
    GeneratorDataParams,
    InputParams,
    MaterialSection,
    ProtocolParams,
    TrajectorySplitParams,
    ViscoReportParams,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EVAL_SETS = ("test", "extrap")
#: Loading parameters that define a cyclic protocol on a uniform grid: the generator's input.
GENERATOR_FEATURES = ("amplitude", "rate", "cycles", "dt", "half_cycle_steps")
META = ("kind", "rate", "amplitude", "cycles", "id")


# ----------------------------------------------------------------------------------------------
# Simulation and dataset
# ----------------------------------------------------------------------------------------------


def _pack(parts: list[tuple[str, Protocols, np.ndarray]]) -> dict[str, np.ndarray]:
    """Protocols and stresses of several groups as one dict of arrays (rows = trajectories)."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "stretch", "sigma", *META, "group")}
    for group, pr, sigma in parts:
        out["t"].append(pr.t)
        out["stretch"].append(pr.stretch)
        out["sigma"].append(sigma)
        out["kind"].append(pr.kind.astype(str))
        out["rate"].append(pr.rate)
        out["amplitude"].append(pr.amplitude)
        out["cycles"].append(pr.cycles.astype(np.int64))
        out["id"].append(np.array([f"{group}_{i:04d}" for i in range(len(pr))]))
        out["group"].append(np.full(len(pr), group))
    return {k: np.concatenate(v) for k, v in out.items()}


def simulate_trajectories(
    material: MaterialSection, protocols: ProtocolParams, generator_data: GeneratorDataParams
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Seeded stretch protocols and their simulated stress (batched SDIRK).

    ``trajectories``: group ``main`` (all protocol kinds, non-uniform Δt, rates in
    ``protocols.rate_range``; split later into train/val/test) and group ``extrap`` (same
    kinds, rates in ``protocols.extrapolation.rate_range``, above the training range).

    Groups ``augment<k>`` (training only): the protocols of ``protocols.augmentation``, sampled
    on grids ``dt_scales[k]`` times coarser, rates inside the training range (amplitudes from
    ``augmentation.amplitude_range``).

    ``generator_trajectories``: cyclic protocols on a uniform grid (``Δt = dt_mean``) with the
    same rate/amplitude/cycle ranges (group ``main``) and extrapolation rates (``extrap``). On a
    uniform grid amplitude, rate, number of cycles and Δt determine the whole stretch path, so
    the one-to-many model's input vector determines its target; with jittered Δt it would not
    (the sample times are random). Its extrapolation set is drawn with ``generator_data.seed + 1``.
    """
    mat = material.to_material()
    ex = protocols.extrapolation
    common = dict(n_steps=protocols.n_steps, max_cycles=protocols.max_cycles, dt_mean=protocols.dt_mean,
                  baseline=protocols.baseline)
    jitter = dict(nonuniform_dt=protocols.nonuniform_dt, dt_jitter=protocols.dt_jitter)
    amp_ex = ex.amplitude_range or protocols.amplitude_range
    main = generate_protocols(n=protocols.n_trajectories, seed=protocols.seed, kinds=protocols.kinds,
                              rate_range=protocols.rate_range, amplitude_range=protocols.amplitude_range,
                              **common, **jitter)
    extrap = generate_protocols(n=ex.n_trajectories, seed=ex.seed, kinds=protocols.kinds, rate_range=ex.rate_range,
                                amplitude_range=amp_ex, **common, **jitter)
    g_main = generate_protocols(n=generator_data.n_trajectories, seed=generator_data.seed, kinds=("cyclic",),
                                rate_range=protocols.rate_range, amplitude_range=protocols.amplitude_range,
                                nonuniform_dt=False, **common)
    g_extrap = generate_protocols(n=generator_data.n_extrapolation, seed=generator_data.seed + 1, kinds=("cyclic",),
                                  rate_range=ex.rate_range, amplitude_range=amp_ex, nonuniform_dt=False, **common)
    parts = [("main", main, simulate(main, mat)), ("extrap", extrap, simulate(extrap, mat))]
    aug = protocols.augmentation
    for k, scale in enumerate(aug.dt_scales):
        coarse = generate_protocols(n=aug.n_per_scale, seed=aug.seed + k, kinds=protocols.kinds,
                                    rate_range=protocols.rate_range,
                                    amplitude_range=aug.amplitude_range or protocols.amplitude_range,
                                    **{**common, "dt_mean": protocols.dt_mean * scale}, **jitter, check_sampling=False)
        parts.append((f"augment{k}", coarse, simulate(coarse, mat)))
    trajectories = _pack(parts)
    generator = _pack([("main", g_main, simulate(g_main, mat)), ("extrap", g_extrap, simulate(g_extrap, mat))])
    logger.info("simulated %d + %d trajectories (%d steps), %d on coarser grids (training only) and %d + %d "
                "cyclic ones for the generator", len(main), len(extrap), protocols.n_steps,
                aug.n_per_scale * len(aug.dt_scales), len(g_main), len(g_extrap))
    return trajectories, generator


def split_by_trajectory(n: int, split: TrajectorySplitParams) -> dict[str, np.ndarray]:
    """Disjoint, sorted row indices ``{train, val, test}`` covering ``0 … n−1`` (seeded)."""
    n_test = max(1, int(round(split.test_fraction * n)))
    n_val = max(1, int(round(split.val_fraction * n)))
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} trajectories are too few for val_fraction={split.val_fraction} and "
                         f"test_fraction={split.test_fraction}")
    perm = np.random.default_rng(split.seed).permutation(n)
    return {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test:n_test + n_val]),
            "train": np.sort(perm[n_test + n_val:])}


def generator_features(traj: dict[str, np.ndarray]) -> np.ndarray:
    """The loading-parameter vector (N, P) of :data:`GENERATOR_FEATURES` for cyclic protocols."""
    dt = traj["t"][:, 1] - traj["t"][:, 0]
    return np.stack([traj["amplitude"], traj["rate"], traj["cycles"].astype(np.float64), dt,
                     traj["amplitude"] / (traj["rate"] * dt)], axis=-1).astype(np.float32)


def build_dataset(
    trajectories: dict[str, np.ndarray], generator_trajectories: dict[str, np.ndarray], split: TrajectorySplitParams
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Model arrays in physical units, split by trajectory, and normalisation fitted on train only.

    The ``augment*`` trajectories (coarser grids) are appended to ``train``; validation and test
    hold only trajectories on the base grid. ``X_{s}`` (N, T, 3) = (λ, λ̇, Δt), ``y_{s}`` (N, T, 1)
    = σ for ``s`` in train/val/test/extrap,
    with ``kind_/rate_/amplitude_/cycles_/id_{s}``; the same with prefix ``gen_`` for the
    generator set plus its input vectors ``gen_P_{s}`` (N, P).
    """
    data: dict[str, np.ndarray] = {}
    quality: dict[str, Any] = {}
    norm: dict[str, Any] = {}
    for prefix, traj in (("", trajectories), ("gen_", generator_trajectories)):
        x_all, y_all = build_sequence_dataset(traj["t"], traj["stretch"], traj["sigma"])
        main = np.flatnonzero(traj["group"] == "main")
        rows = {s: main[idx] for s, idx in split_by_trajectory(len(main), split).items()}
        rows["extrap"] = np.flatnonzero(traj["group"] == "extrap")
        augment = np.flatnonzero(np.char.startswith(traj["group"].astype(str), "augment"))
        quality[f"{prefix}n_train_main"] = len(rows["train"])
        rows["train"] = np.concatenate([rows["train"], augment])  # coarser grids: training only
        p_all = generator_features(traj) if prefix else None
        for s, r in rows.items():
            data[f"{prefix}X_{s}"], data[f"{prefix}y_{s}"] = x_all[r], y_all[r]
            for k in META:
                data[f"{prefix}{k}_{s}"] = traj[k][r]
            if p_all is not None:
                data[f"{prefix}P_{s}"] = p_all[r]
            quality[f"{prefix}n_{s}"] = len(r)
        train_rates, extrap_rates = traj["rate"][rows["train"]], traj["rate"][rows["extrap"]]
        quality[f"{prefix}train_rate_max"] = float(train_rates.max())
        quality[f"{prefix}extrap_rate_min"] = float(extrap_rates.min())
        quality[f"{prefix}sigma_abs_max"] = float(np.abs(traj["sigma"]).max())
        quality[f"{prefix}steps"] = int(x_all.shape[1])
        norm[f"{prefix}x"] = fit_normalisation(data[f"{prefix}X_train"])
        norm[f"{prefix}y"] = fit_normalisation(data[f"{prefix}y_train"])
        if p_all is not None:
            norm["gen_p"] = fit_normalisation(data["gen_P_train"])
    norm["x_features"] = ["stretch", "stretch_rate", "dt"]
    norm["p_features"] = list(GENERATOR_FEATURES)
    logger.info("dataset: %s", {k: v for k, v in quality.items() if k.startswith(("n_", "gen_n_"))})
    return data, norm, quality


def _feature_key(names: list[str], scaling: str) -> str:
    return f"{'+'.join(names)}|{scaling}"


def build_feature_set(dataset: dict[str, np.ndarray], names: list[str], scaling: str) -> dict[str, Any]:
    """Normalised per-step inputs ``names`` for every set (``Xn_{s}``, ``gen_Xn_{s}``) with the
    statistics fitted on the training set (``norm``, ``rate_scale`` for ``log_rate``)."""
    rate = np.abs(dataset["X_train"][..., 1])
    rate_scale = float(np.median(rate[rate > 0])) if np.any(rate > 0) else 1.0
    feats = {f"{p}X_{s}": sequence_features(dataset[f"{p}X_{s}"], names, rate_scale=rate_scale)
             for p in ("", "gen_") for s in (*SPLITS, "extrap")}
    if scaling == "none":
        norm = {"mean": [0.0] * len(names), "std": [1.0] * len(names)}
    else:
        norm = (fit_range_scaling if scaling == "range" else fit_normalisation)(feats["X_train"])
    out: dict[str, Any] = {"names": list(names), "scaling": scaling, "rate_scale": rate_scale, "norm": norm}
    out.update({k.replace("X_", "Xn_"): normalise(v, **norm) for k, v in feats.items()})
    return out


def input_features(bundle: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """A sequence model's normalised inputs from raw ``X = (λ, λ̇, Δt)`` (N, T, 3), as in training."""
    feats = sequence_features(x, bundle["features"], rate_scale=bundle.get("rate_scale"))
    return normalise(feats, **bundle["norm_x"])


def make_model_input(dataset: dict[str, np.ndarray], norm_stats: dict[str, Any], inputs: InputParams) -> dict[str, Any]:
    """Normalised float32 arrays every training namespace shares, next to the physical ones and
    the statistics: targets ``yn_``, generator vectors and targets ``gen_Pn_``/``gen_yn_``, and
    ``feature_sets[key]`` (see :func:`build_feature_set`) for every feature list of ``inputs``."""
    out: dict[str, Any] = dict(dataset)
    out["norm"] = norm_stats
    out["inputs"] = inputs.model_dump()
    for s in (*SPLITS, "extrap"):
        out[f"yn_{s}"] = normalise(dataset[f"y_{s}"], **norm_stats["y"])
        out[f"gen_Pn_{s}"] = normalise(dataset[f"gen_P_{s}"], **norm_stats["gen_p"])
        out[f"gen_yn_{s}"] = normalise(dataset[f"gen_y_{s}"], **norm_stats["gen_y"])
    specs = [inputs.spec_for(None), *(inputs.spec_for(m) for m in inputs.per_model)]
    out["feature_sets"] = {_feature_key(*spec): build_feature_set(dataset, *spec)
                           for spec in {_feature_key(*spec): spec for spec in specs}.values()}
    return out


def feature_set(model_input: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The feature set of model ``name`` (``None``: the task's default features)."""
    return model_input["feature_sets"][_feature_key(*InputParams(**model_input["inputs"]).spec_for(name))]


# ----------------------------------------------------------------------------------------------
# Training and evaluation (one namespace per model)
# ----------------------------------------------------------------------------------------------


def _is_generator(arch: str) -> bool:
    return arch in ONE_TO_MANY


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _train_arrays(model_input: dict[str, Any], name: str, arch: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    if _is_generator(arch):
        return model_input[f"gen_Pn_{split}"], model_input[f"gen_yn_{split}"]
    return feature_set(model_input, name)[f"Xn_{split}"], model_input[f"yn_{split}"]


def _model_kwargs(model: ModelSpec, model_input: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(model.kwargs)
    if _is_generator(model.arch):
        steps = int(model_input["gen_y_train"].shape[1])
        if kwargs.setdefault("n_steps", steps) != steps:
            raise ValueError(f"{model.arch}: kwargs.n_steps={kwargs['n_steps']} differs from the data's "
                             f"{steps} steps (leave it out to take the data's length)")
    return kwargs


def train_sequence_model(
    model_input: dict[str, Any], model: ModelSpec, train: TrainParams, checkpoints: CheckpointStore | None, *,
    name: str,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, float]]:
    """Train the model entry ``name`` with the shared loop (MSE over the whole sequence, normalised
    units); the wall and CPU seconds come out apart from the model."""
    x_tr, y_tr = _train_arrays(model_input, name, model.arch, "train")
    x_va, y_va = _train_arrays(model_input, name, model.arch, "val")
    norm = model_input["norm"]
    gen = _is_generator(model.arch)
    fs = None if gen else feature_set(model_input, name)
    x_spec = {"features": None, "norm_x": norm["gen_p"]} if gen else {
        "features": fs["names"], "scaling": fs["scaling"], "rate_scale": fs["rate_scale"], "norm_x": fs["norm"]}
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
        fingerprint_parts=([x_tr.shape, x_va.shape], norm, x_spec),
        bundle_extra={"kind": "generator" if gen else "sequence", **x_spec,
                      "norm_y": norm["gen_y"] if gen else norm["y"]},
    )
    cpu = time.process_time() - cpu0  # this process's CPU time: on a shared machine wall time says little
    bundle, result = dict(trained.bundle), trained.result
    n = len(result.history["train_loss"])
    # Times differ on every run: a separate output, so the saved bundle hashes alike on every re-run.
    seconds = {"train_seconds": float(result.train_seconds), "train_cpu_seconds": float(cpu)}
    return bundle, pd.DataFrame({"epoch": np.arange(1, n + 1), **result.history}), seconds


def predict_stress(bundle: dict[str, Any], inputs: np.ndarray, net: torch.nn.Module | None = None) -> np.ndarray:
    """Stress (N, T, 1) in physical units from normalised inputs (sequences or generator vectors)."""
    net = rebuild_model(bundle) if net is None else net
    out = predict(net, (_tensor(inputs),), batch_size=64).numpy()
    return denormalise(out, **bundle["norm_y"])


def _eval_prefix(bundle: dict[str, Any]) -> str:
    return "gen_" if bundle["kind"] == "generator" else ""


def _inputs(bundle: dict[str, Any], model_input: dict[str, Any], s: str, *, on_generator_set: bool = False) -> np.ndarray:
    if bundle["kind"] == "generator":
        return model_input[f"gen_Pn_{s}"]
    return feature_set(model_input, bundle["name"])[f"gen_Xn_{s}" if on_generator_set else f"Xn_{s}"]


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
    net = rebuild_model(bundle)
    prefix = _eval_prefix(bundle)
    metrics: dict[str, Any] = {"model": name, "arch": bundle["arch"],
                               "test_set": "cyclic, uniform grid" if prefix else "all protocol kinds"}
    rows = []
    preds: dict[str, np.ndarray] = {}
    for s in EVAL_SETS:
        y = model_input[f"{prefix}y_{s}"]
        pred = predict_stress(bundle, _inputs(bundle, model_input, s), net)
        preds[s] = pred
        stretch = model_input[f"{prefix}X_{s}"][..., 0]
        kinds = model_input[f"{prefix}kind_{s}"]
        suffix = "" if s == "test" else "_extrap"
        metrics.update(regression_metrics(y, pred, stretch=stretch, energy_mask=kinds == "cyclic", suffix=suffix))
        energy = energy_relative_errors(stretch, y[..., 0], pred[..., 0])
        for i in range(len(y)):
            rows.append({"trajectory": model_input[f"{prefix}id_{s}"][i], "set": s, "kind": kinds[i],
                         "rate": float(model_input[f"{prefix}rate_{s}"][i]),
                         "amplitude": float(model_input[f"{prefix}amplitude_{s}"][i]),
                         "cycles": int(model_input[f"{prefix}cycles_{s}"][i]),
                         "rel_rmse": relative_rmse(y[i], pred[i]) if np.any(y[i]) else float("nan"),
                         "max_err": max_abs_error(y[i], pred[i]),
                         "energy_rel_err": float(energy[i].mean()) if energy[i].size else float("nan")})
        # Every model on the same cyclic trajectories (the generator's sets): a like-for-like column.
        gen_pred = pred if prefix else predict_stress(bundle, _inputs(bundle, model_input, s, on_generator_set=True), net)
        metrics[f"rel_rmse_cyclic{suffix}"] = relative_rmse(model_input[f"gen_y_{s}"], gen_pred)
    metrics.update({"params": bundle["params"], "best_epoch": bundle["best_epoch"], "epochs_run": bundle["epochs_run"]})
    # Timings differ on every run: kept apart from the reproducible metrics (timings.csv, MLflow).
    seconds = train_seconds or {}
    timings = {"model": name, "train_seconds": round(float(seconds.get("train_seconds", float("nan"))), 3),
               "train_cpu_seconds": round(float(seconds.get("train_cpu_seconds", float("nan"))), 3),
               "epochs_run": int(bundle["epochs_run"]), "resumed_from": int(bundle.get("resumed_from", 0))}
    metrics = {k: _finite_or_none(v) for k, v in metrics.items()}  # JSON has no NaN (no cycle in a set)

    n_ex = report.n_examples
    test_rows = _example_rows(model_input[f"{prefix}kind_test"], max(n_ex - 1, 1))
    panels = [_panel(model_input, prefix, "test", i, {name: preds["test"][i, :, 0]}) for i in test_rows]
    if n_ex > 1:
        panels.append(_panel(model_input, prefix, "extrap", 0, {name: preds["extrap"][0, :, 0]}))
    title = (f"{name}: test rel. RMSE {metrics['rel_rmse']:.3f}, extrapolation {metrics['rel_rmse_extrap']:.3f}"
             f" ({metrics['test_set']})")
    curves = plots.learning_curves_figure(history.drop(columns="epoch").to_dict("list"), f"{name} learning curves")
    return metrics, timings, pd.DataFrame(rows), _loops_figure(panels, title), curves


# ----------------------------------------------------------------------------------------------
# Task-level nodes: overview figure, gradient diagnostics, leaderboard
# ----------------------------------------------------------------------------------------------


def plot_loops_overview(model_input: dict[str, Any], report: ViscoReportParams, *bundles: dict[str, Any]) -> Figure:
    """Every model on the same cyclic trajectories (the generator's test set, and one
    extrapolation trajectory): σ–λ loops and σ(t), truth against each model."""
    nets = {b["name"]: (b, rebuild_model(b)) for b in bundles}
    n_ex = report.n_examples
    picks = [("test", i) for i in range(min(max(n_ex - 1, 1), len(model_input["gen_y_test"])))]
    if n_ex > 1:
        picks.append(("extrap", 0))
    preds = {name: [predict_stress(b, _inputs(b, model_input, s, on_generator_set=True)[i : i + 1], net)[0, :, 0]
                    for s, i in picks] for name, (b, net) in nets.items()}
    truth = np.concatenate([model_input[f"gen_y_{s}"][i, :, 0] for s, i in picks])
    # Legend: each model's relative RMSE over the trajectories shown.
    labels = {name: f"{name} ({relative_rmse(truth, np.concatenate(p)):.3f})" for name, p in preds.items()}
    panels = [_panel(model_input, "gen_", s, i, {labels[n]: preds[n][k] for n in nets}, errors=False)
              for k, (s, i) in enumerate(picks)]
    return _loops_figure(panels, "all models on the same cyclic trajectories (uniform grid); "
                                 "legend: relative RMSE over the trajectories shown")


def gradient_diagnostics(
    material: MaterialSection, protocols: ProtocolParams, diagnostics: DiagnosticsParams, model_input: dict[str, Any]
) -> tuple[pd.DataFrame, Figure, dict[str, Any]]:
    """‖∂L/∂h_t‖ over t (L = loss at the last step) for each configured recurrent cell, on
    ``diagnostics.seq_len``-step simulated protocols with the task's default input features,
    normalised like the training data; at initialisation and after ``train_steps`` full-batch steps."""
    pr = generate_protocols(
        n=diagnostics.n_sequences, n_steps=diagnostics.seq_len, seed=diagnostics.seed, kinds=protocols.kinds,
        rate_range=protocols.rate_range, amplitude_range=protocols.amplitude_range, max_cycles=protocols.max_cycles,
        nonuniform_dt=protocols.nonuniform_dt, dt_mean=protocols.dt_mean, dt_jitter=protocols.dt_jitter,
        baseline=protocols.baseline,
    )
    if diagnostics.num_threads:
        torch.set_num_threads(diagnostics.num_threads)
    x, y = build_sequence_dataset(pr.t, pr.stretch, simulate(pr, material.to_material()))
    fs = feature_set(model_input)
    xn = normalise(sequence_features(x, fs["names"], rate_scale=fs["rate_scale"]), **fs["norm"])
    yn = normalise(y, **model_input["norm"]["y"])
    cells = {k: CellSpec(arch=c.arch, kwargs=dict(c.kwargs), recurrent_init=c.recurrent_init, gain=c.gain)
             for k, c in diagnostics.cells.items()}
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
    models = _recurrent(bundles)
    cyclic = np.flatnonzero((model_input["kind_extrap"] == "cyclic") & (model_input["cycles_extrap"] >= 1))
    if not models or cyclic.size == 0:
        fig, ax = subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, "no recurrent model or no complete cycle at unseen rates", ha="center", va="center")
        ax.set_axis_off()
        return fig, {}
    val = {b["name"]: relative_rmse(model_input["y_val"], predict_stress(b, _inputs(b, model_input, "val")))
           for b in models}
    best = min(models, key=lambda b: (val[b["name"]], b["name"]))
    stretch, truth = model_input["X_extrap"][..., 0], model_input["y_extrap"][..., 0]
    out: dict[str, Any] = {"best_model": best["name"], "selected_by": "validation rel_rmse", "val_rel_rmse": val,
                           "models": {}}
    preds: dict[str, np.ndarray] = {}
    for b in models:
        pred = predict_stress(b, _inputs(b, model_input, "extrap"))[..., 0]
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


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not np.isfinite(v) else v


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
