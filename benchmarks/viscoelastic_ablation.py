"""Ablation of the viscoelastic recipe: which choices let a recurrent model learn the material law.

Every row is measured: it simulates its data (cached per protocol configuration), builds the
model input and trains one model through the pipeline's own nodes (the shared training loop,
the same seeds), then reports, in physical units,

* ``test``: relative RMSE ‖σ̂ − σ‖/‖σ‖ on the test trajectories (all protocol kinds, rates in
  the training range);
* ``extrap``: the same on the unseen-rate set (every rate 1.5-3× above the fastest training rate);
* ``energy``: mean relative error of the energy dissipated per cycle (loop area ∮σ dλ) on the
  cyclic trajectories of the unseen-rate set, and its worst cycle;
* ``cpu_s``: CPU seconds of the training (``time.process_time``: the machine is shared, so
  wall time would mostly measure the neighbours).

Rows come in two groups. *Cumulative*: starting from the seed configuration (inputs λ, λ̇, Δt
z-scored; batch 32, lr 3e-3, no schedule, hidden 32) one change is added per row, ending at the
configuration of ``conf/base/parameters_viscoelastic.yml``. *Leave one out*: from that final
configuration one choice is reverted (or an alternative tried) per row. Run::

    python benchmarks/viscoelastic_ablation.py                 # LSTM, every row (~15-25 min on a busy 2-core box)
    python benchmarks/viscoelastic_ablation.py --arch gru --rows seed,final,no_augmentation
    python benchmarks/viscoelastic_ablation.py --out benchmarks/results/viscoelastic_ablation.md

``--rows`` lists row keys (see ``ROWS``); ``--arch`` is ``lstm``, ``gru`` or ``rnn``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MLSP_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlsp_pipelines.evaluation.regression import regression_metrics, relative_rmse  # noqa: E402
from mlsp_pipelines.models.recurrent import GRUConfig, GRUModel, LSTMConfig, LSTMModel  # noqa: E402
from mlsp_pipelines.models.registry import register_model  # noqa: E402
from mlsp_pipelines.models.registry import rebuild_model  # noqa: E402
from mlsp_pipelines.params import ModelSpec, TrainParams  # noqa: E402
from mlsp_pipelines.pipelines.viscoelastic import data as vdata  # noqa: E402
from mlsp_pipelines.pipelines.viscoelastic import nodes  # noqa: E402
from mlsp_pipelines.pipelines.viscoelastic.params import (  # noqa: E402
    GeneratorDataParams,
    InputParams,
    ProtocolParams,
    TrajectorySplitParams,
)
from mlsp_pipelines.simulation.viscoelastic import MaterialParams  # noqa: E402

logger = logging.getLogger("viscoelastic_ablation")


# -- the "predict Δσ" variant: only here, to measure it (it did not help, so the library lacks it) --
class _Increments:
    """Mixin: the head predicts increments, σ_t = c + Σ_{k≤t} Δσ_k (a learned start c)."""

    def _init_increments(self) -> None:
        self.start = torch.nn.Parameter(torch.zeros(self.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.start + torch.cumsum(super().forward(x), dim=1)  # type: ignore[misc]


@register_model("gru_increments", config_cls=GRUConfig)
class GRUIncrements(_Increments, GRUModel):
    def __init__(self, config: GRUConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._init_increments()


@register_model("lstm_increments", config_cls=LSTMConfig)
class LSTMIncrements(_Increments, LSTMModel):
    def __init__(self, config: LSTMConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._init_increments()


@dataclass(frozen=True)
class Row:
    """One configuration: changes applied on top of its starting point (seed or final)."""

    label: str
    start: str  # "seed" | "final"
    protocols: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    train_kinds: tuple[str, ...] | None = None  # keep only these protocol kinds in the training set
    increments: bool = False
    archs: tuple[str, ...] = ("rnn", "gru", "lstm")  # the models the row applies to


NO_AUG = {"augmentation": {"dt_scales": []}}
COARSE_ONLY = {"augmentation": {"amplitude_range": None}}  # coarse grids at the training amplitudes
SEED_INPUTS = {"features": ["stretch", "stretch_rate", "dt"], "scaling": "standard"}
SEED_TRAIN = {"lr": 0.003, "batch_size": 32, "epochs": 100, "patience": 15, "schedule": "constant"}
NO_RATE = {"features": ["stretch", "dt"]}
OPTIM = {"batch_size": 16, "lr": 0.02, "patience": None}
ONECYCLE = {**OPTIM, "schedule": "onecycle", "warmup": 0.3}
ALL = ("rnn", "gru", "lstm", "rate_ode")
# Cumulative rows (recurrent cells): each adds one change to the previous one.
CUMULATIVE: list[tuple[str, Row]] = [
    ("seed", Row("seed: (λ, λ̇, Δt) z-scored, h32, batch 32, lr 3e-3, constant LR, 100 ep", "seed")),
    ("range", Row("+ inputs scaled by their training range (λ̇/max|λ̇| …)", "seed", inputs={"scaling": "range"})),
    ("log_rate", Row("+ log-rate instead of λ̇", "seed",
                     inputs={"scaling": "range", "features": ["stretch", "log_rate", "dt"]})),
    ("no_rate", Row("+ no rate input: (λ, Δt) z-scored", "seed", inputs=NO_RATE)),
    ("skip", Row("+ linear skip (λ, Δt) → σ", "seed", inputs=NO_RATE, kwargs={"skip": True})),
    ("optim", Row("+ batch 16, lr 0.02", "seed", inputs=NO_RATE, kwargs={"skip": True}, train=OPTIM)),
    ("schedule", Row("+ one-cycle LR schedule", "seed", inputs=NO_RATE, kwargs={"skip": True}, train=ONECYCLE)),
    ("hidden64", Row("+ hidden 64", "seed", inputs=NO_RATE, kwargs={"skip": True, "hidden_size": 64}, train=ONECYCLE)),
    ("coarse", Row("+ coarse-grid protocols (Δt ×2, ×3), training amplitudes", "final", protocols=COARSE_ONLY)),
    ("final", Row("+ their amplitudes up to 0.5 (= conf/base)", "final", archs=ALL)),
]
# Leave-one-out rows: the final configuration with one choice reverted or swapped.
LEAVE_ONE_OUT: list[tuple[str, Row]] = [
    ("no_augmentation", Row("final − all extra training protocols", "final", protocols=NO_AUG, archs=ALL)),
    ("no_amplitude", Row("final, extra protocols at the training amplitudes", "final", protocols=COARSE_ONLY,
                         archs=("rate_ode",))),
    ("base_grid_amplitude", Row("final, extra protocols on the base grid (amplitudes to 0.5)", "final",
                                protocols={"augmentation": {"dt_scales": [1.0, 1.0]}}, archs=ALL)),
    ("with_rate", Row("final, inputs (λ, λ̇, Δt)", "final", inputs={"features": ["stretch", "stretch_rate", "dt"]})),
    ("with_log_rate", Row("final, inputs (λ, log-rate, Δt)", "final", inputs={"features": ["stretch", "log_rate", "dt"]})),
    ("dstretch", Row("final, inputs (λ, Δλ, Δt)", "final", inputs={"features": ["stretch", "dstretch", "dt"]})),
    ("range_scaling", Row("final, range scaling", "final", inputs={"scaling": "range"})),
    ("no_skip", Row("final − linear skip", "final", kwargs={"skip": False})),
    ("no_schedule", Row("final − one-cycle schedule (constant LR)", "final", train={"schedule": "constant"}, archs=ALL)),
    ("cosine", Row("final, cosine schedule", "final", train={"schedule": "cosine"}, archs=ALL)),
    ("batch32", Row("final, batch 32", "final", train={"batch_size": 32})),
    ("increments", Row("final, predict Δσ (σ = cumulative sum)", "final", increments=True, archs=("gru", "lstm"))),
    ("cyclic_only", Row("final, trained on cyclic protocols only", "final", train_kinds=("cyclic",), archs=ALL)),
    ("double_epochs", Row("final, twice the epochs", "final", train={"epochs": "x2"}, archs=ALL)),
    ("train_seed1", Row("final, training seed 1 (spread of one configuration)", "final", train={"seed": 1}, archs=ALL)),
    ("train_seed2", Row("final, training seed 2", "final", train={"seed": 2}, archs=ALL)),
    ("substeps2", Row("final, 2 RK4 substeps per interval", "final", kwargs={"substeps": 2}, archs=("rate_ode",))),
    ("hidden64_ode", Row("final, hidden 64", "final", kwargs={"hidden_size": 64}, archs=("rate_ode",))),
    ("euler", Row("final, explicit Euler instead of RK4", "final", kwargs={"method": "euler"}, archs=("rate_ode",))),
]
ROWS: dict[str, Row] = dict(CUMULATIVE + LEAVE_ONE_OUT)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Path) -> dict[str, Any]:
    """The ``viscoelastic`` section of a parameters file."""
    return yaml.safe_load(path.read_text())["viscoelastic"]


class Bench:
    """Simulates each distinct protocol configuration once, then trains rows on it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self._data: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}

    def dataset(self, protocols: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        key = json.dumps(protocols, sort_keys=True)
        if key not in self._data:
            cfg = self.config
            traj, gen = vdata.simulate_trajectories(MaterialParams(**cfg["material"]), ProtocolParams(**protocols),
                                                    GeneratorDataParams(**cfg["generator_data"]))
            data, norm, _ = vdata.build_dataset(traj, gen, TrajectorySplitParams(**cfg["split"]))
            self._data[key] = (data, norm)
        return self._data[key]

    def run(self, key: str, arch: str) -> dict[str, Any]:
        row = ROWS[key]
        cfg = self.config
        spec = cfg["models"][arch]
        train_over = dict(spec.get("train", {}))
        if row.start == "seed":
            kwargs = {**spec["kwargs"], "hidden_size": 32, "skip": False, **row.kwargs}
            inputs = _merge(SEED_INPUTS, row.inputs)
            train = {**cfg["train"], **SEED_TRAIN, **row.train}
            protocols = _merge(cfg["protocols"], NO_AUG)
        else:
            kwargs = {**spec["kwargs"], **row.kwargs}
            base_inputs = {k: v for k, v in cfg["inputs"].items() if k != "per_model"}
            base_inputs.update(cfg["inputs"].get("per_model", {}).get(arch, {}))
            inputs = _merge(base_inputs, row.inputs)
            train = {**cfg["train"], **train_over, **row.train}
            protocols = _merge(cfg["protocols"], row.protocols)
        if train.get("epochs") == "x2":
            train["epochs"] = 2 * int({**cfg["train"], **train_over}["epochs"])
        train.update(progress=False, resume=False)
        train = {k: v for k, v in train.items() if k in TrainParams.model_fields}
        data, norm = self.dataset(protocols)
        if row.train_kinds is not None:
            data = dict(data)
            keep = np.isin(data["kind_train"], row.train_kinds)
            for k in [k for k in data if k.endswith("_train") and not k.startswith("gen_")]:
                data[k] = data[k][keep]
        model_input = vdata.make_sequence_input(data, norm, InputParams(**inputs))
        model_arch = f"{spec['arch']}_increments" if row.increments else spec["arch"]
        model = ModelSpec(arch=model_arch, kwargs=kwargs)
        t0 = time.process_time()
        bundle, history, _ = nodes.train_sequence_model(model_input, model, TrainParams(**train), None, name=arch)
        cpu = time.process_time() - t0
        result = {"row": key, "label": row.label, "arch": model_arch, "cpu_s": round(cpu, 1),
                  "epochs": int(bundle["epochs_run"]), "best_epoch": int(bundle["best_epoch"]),
                  "params": int(bundle["params"])}
        fs = vdata.feature_set(model_input, arch)
        net = rebuild_model(bundle)
        for s in vdata.EVAL_SETS:
            pred = nodes.predict_stress(bundle, fs[f"Xn_{s}"], net)
            result[s] = relative_rmse(model_input[f"y_{s}"], pred)
        cyc = model_input["kind_extrap"] == "cyclic"
        pred = nodes.predict_stress(bundle, fs["Xn_extrap"][cyc], net)
        energy = regression_metrics(model_input["y_extrap"][cyc], pred, stretch=model_input["X_extrap"][cyc][..., 0])
        result.update(energy=energy["energy_rel_err"], energy_max=energy["energy_rel_err_max"])
        return result


def markdown(results: list[dict[str, Any]], arch: str, header: str) -> str:
    lines = [header, "", f"| row | {arch}: configuration | test rel. RMSE | unseen-rate rel. RMSE | "
             "energy/cycle err. (mean / worst) | epochs (best) | CPU s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| `{r['row']}` | {r['label']} | {100 * r['test']:.2f} % | {100 * r['extrap']:.2f} % | "
                     f"{100 * r['energy']:.2f} % / {100 * r['energy_max']:.2f} % | {r['epochs']} ({r['best_epoch']}) | "
                     f"{r['cpu_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="lstm", choices=["lstm", "gru", "rnn", "rate_ode"])
    ap.add_argument("--rows", default="all", help="comma-separated row keys, or 'all'")
    ap.add_argument("--params", type=Path, default=ROOT / "conf" / "base" / "parameters_viscoelastic.yml")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown table (and .json) here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    keys = ([k for k, r in ROWS.items() if args.arch in r.archs] if args.rows == "all"
            else [k.strip() for k in args.rows.split(",")])
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    torch.set_num_threads(1)
    bench = Bench(load_config(args.params))
    results = []
    for key in keys:
        r = bench.run(key, args.arch)
        results.append(r)
        print(json.dumps(r), flush=True)
    load = os.getloadavg()
    header = (f"Viscoelastic ablation, `{args.arch}` (torch {torch.__version__}, 1 thread; load average at the end "
              f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})")
    table = markdown(results, args.arch, header)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
