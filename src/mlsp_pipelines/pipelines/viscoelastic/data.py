"""Data of the viscoelastic task: simulate trajectories → split by trajectory → dataset and
normalisation → the two model inputs with their per-model features (``viscoelastic_data``, then
the first nodes of ``viscoelastic_train``).

Sequence models get per-step input features computed from ``X = (λ, λ̇, Δt)``, chosen per model
by ``viscoelastic.inputs`` (:func:`make_sequence_input`, :func:`feature_set`); the one-to-many
``seq_generator`` gets one vector of loading parameters per trajectory (:data:`GENERATOR_FEATURES`),
trained and tested on cyclic protocols sampled on a uniform grid (:func:`simulate_trajectories`,
:func:`make_generator_input`). Two problems, two model inputs: a model's nodes never ask which it is.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mlsp_pipelines.features.normalise import (
    apply_normaliser,
    fit_normaliser,
    fit_range_scaling,
)
from mlsp_pipelines.simulation.viscoelastic import (
    MaterialParams,
    Protocols,
    build_sequence_dataset,
    generate_protocols,
    sequence_features,
    simulate,
)

from .params import (
    GeneratorDataParams,
    InputParams,
    ProtocolParams,
    TrajectorySplitParams,
)

logger = logging.getLogger(__name__)

#: A feature with a smaller training std is constant (a uniform Δt, up to float32 rounding): scale 1.
MIN_STD = 1e-8

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
    material: MaterialParams, protocols: ProtocolParams, generator_data: GeneratorDataParams
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
    mat = material
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
    from mlsp_pipelines.splits import permutation_split

    return permutation_split(n, [("test", split.test_fraction), ("val", split.val_fraction)], split.seed,
                             what="trajectories")


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
        norm[f"{prefix}x"] = fit_normaliser(data[f"{prefix}X_train"], min_std=MIN_STD)
        norm[f"{prefix}y"] = fit_normaliser(data[f"{prefix}y_train"], min_std=MIN_STD)
        if p_all is not None:
            norm["gen_p"] = fit_normaliser(data["gen_P_train"], min_std=MIN_STD)
    norm["x_features"] = ["stretch", "stretch_rate", "dt"]
    norm["p_features"] = list(GENERATOR_FEATURES)
    logger.info("dataset: %s", {k: v for k, v in quality.items() if k.startswith(("n_", "gen_n_"))})
    return data, norm, quality


def _feature_key(names: list[str], scaling: str) -> str:
    return f"{'+'.join(names)}|{scaling}"


def build_feature_set(dataset: dict[str, np.ndarray], names: list[str], scaling: str) -> dict[str, Any]:
    """Normalised per-step inputs ``names`` for every set (``Xn_{s}``, and ``cyclic_Xn_{s}`` for
    the generator's cyclic sets) with the statistics fitted on the training set (``norm``,
    ``rate_scale`` for ``log_rate``) and ``x_spec``, what a bundle needs to compute them again."""
    rate = np.abs(dataset["X_train"][..., 1])
    rate_scale = float(np.median(rate[rate > 0])) if np.any(rate > 0) else 1.0
    feats = {f"{out}X_{s}": sequence_features(dataset[f"{p}X_{s}"], names, rate_scale=rate_scale)
             for p, out in (("", ""), ("gen_", "cyclic_")) for s in (*SPLITS, "extrap")}
    if scaling == "none":
        norm = {"mean": [0.0] * len(names), "std": [1.0] * len(names)}
    else:
        x_train = feats["X_train"]
        norm = fit_range_scaling(x_train) if scaling == "range" else fit_normaliser(x_train, min_std=MIN_STD)
    out: dict[str, Any] = {"names": list(names), "scaling": scaling, "rate_scale": rate_scale, "norm": norm,
                           "x_spec": {"features": list(names), "scaling": scaling, "rate_scale": rate_scale,
                                      "norm_x": norm}}
    out.update({k.replace("X_", "Xn_"): apply_normaliser(v, norm, dtype=np.float64) for k, v in feats.items()})
    return out


def input_features(bundle: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """A sequence model's normalised inputs from raw ``X = (λ, λ̇, Δt)`` (N, T, 3), as in training."""
    feats = sequence_features(x, bundle["features"], rate_scale=bundle.get("rate_scale"))
    return apply_normaliser(feats, bundle["norm_x"], dtype=np.float64)


def _sets(dataset: dict[str, np.ndarray], prefix: str, out_prefix: str) -> dict[str, np.ndarray]:
    """The physical arrays and metadata of one family of sets (``""`` or ``"gen_"``), renamed."""
    return {f"{out_prefix}{k}_{s}": dataset[f"{prefix}{k}_{s}"] for k in ("X", "y", *META) for s in (*SPLITS, "extrap")}


def make_sequence_input(dataset: dict[str, np.ndarray], norm_stats: dict[str, Any], inputs: InputParams
                        ) -> dict[str, Any]:
    """The sequence models' input: every protocol kind, per-step features per model.

    Physical ``X_/y_`` and metadata per set, normalised targets ``yn_``, the generator's cyclic
    sets as ``cyclic_*`` (every model is also scored on them: a like-for-like column), and
    ``feature_sets[key]`` (see :func:`build_feature_set`) for every feature list of ``inputs``."""
    out: dict[str, Any] = {"kind": "sequence", "test_set": "all protocol kinds", "norm": norm_stats,
                           "norm_y": norm_stats["y"], "inputs": inputs.model_dump(), "data_kwargs": {},
                           **_sets(dataset, "", ""), **_sets(dataset, "gen_", "cyclic_")}
    for s in (*SPLITS, "extrap"):
        out[f"yn_{s}"] = apply_normaliser(dataset[f"y_{s}"], norm_stats["y"], dtype=np.float64)
    specs = [inputs.spec_for(None), *(inputs.spec_for(m) for m in inputs.per_model)]
    out["feature_sets"] = {_feature_key(*spec): build_feature_set(dataset, *spec)
                           for spec in {_feature_key(*spec): spec for spec in specs}.values()}
    return out


def make_generator_input(dataset: dict[str, np.ndarray], norm_stats: dict[str, Any]) -> dict[str, Any]:
    """The one-to-many generator's input: cyclic protocols on a uniform grid, one vector of
    loading parameters per trajectory (its only feature set) and the whole stress sequence as
    target; its own sets are the cyclic ones (``cyclic_*``), and the data fixes ``n_steps``."""
    own = _sets(dataset, "gen_", "")
    fs: dict[str, Any] = {"names": list(GENERATOR_FEATURES), "norm": norm_stats["gen_p"],
                          "x_spec": {"features": None, "norm_x": norm_stats["gen_p"]}}
    for s in (*SPLITS, "extrap"):
        fs[f"Xn_{s}"] = fs[f"cyclic_Xn_{s}"] = apply_normaliser(dataset[f"gen_P_{s}"], norm_stats["gen_p"],
                                                                dtype=np.float64)
    out: dict[str, Any] = {"kind": "generator", "test_set": "cyclic, uniform grid", "norm": norm_stats,
                           "norm_y": norm_stats["gen_y"], "data_kwargs": {"n_steps": int(dataset["gen_y_train"].shape[1])},
                           "feature_sets": {"loading_parameters": fs},
                           **own, **{f"cyclic_{k}": v for k, v in own.items()}}
    for s in (*SPLITS, "extrap"):
        out[f"yn_{s}"] = apply_normaliser(dataset[f"gen_y_{s}"], norm_stats["gen_y"], dtype=np.float64)
    return out


def feature_set(model_input: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The feature set of model ``name`` (``None``: the task's default features); an input with a
    single set (the generator's loading parameters) gives it to every model."""
    sets = model_input["feature_sets"]
    if len(sets) == 1:
        return next(iter(sets.values()))
    return sets[_feature_key(*InputParams(**model_input["inputs"]).spec_for(name))]
