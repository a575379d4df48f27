"""Optuna TPE search with the shared training loop. The node returns a table of trials and the
best trial; the MLflow hook turns each trial into a nested run and records the best on the
parent run, so the search itself stays free of tracking code."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pandas as pd
from pydantic import Field, model_validator

from mlsp_pipelines.modular.classifier.nodes import _fit_one
from mlsp_pipelines.params import ModelSpec, TrainParams, _Section

logger = logging.getLogger(__name__)


class SearchDim(_Section):
    """One searched value: ``float``/``int`` in [low, high] (optionally log-uniform) or a categorical."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "SearchDim":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical dimensions need a non-empty 'choices' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} dimensions need low < high, got low={self.low}, high={self.high}")
        return self


class SweepParams(_Section):
    """What to search: which model entry, how many trials, the objective and the space.

    Space keys are ``train.<field>`` (TrainParams) or ``kwargs.<name>`` (model arguments).
    """

    enabled: bool = False
    model: str = "cnn"
    n_trials: int = Field(8, ge=1)
    epochs: int | None = Field(None, ge=1)  # trial epochs (default: train.epochs)
    objective: Literal["val_loss", "val_acc"] = "val_loss"
    seed: int = 0
    space: dict[str, SearchDim] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "SweepParams":
        bad = [k for k in self.space if k.split(".", 1)[0] not in ("train", "kwargs") or "." not in k]
        if bad:
            raise ValueError(f"space keys must be 'train.<field>' or 'kwargs.<name>', got {bad}")
        return self


def _suggest(trial: Any, name: str, dim: SearchDim) -> Any:
    if dim.type == "categorical":
        # Optuna stores categoricals as scalars: index lists (e.g. channel widths) by position
        idx = trial.suggest_categorical(name, list(range(len(dim.choices))))
        return dim.choices[idx]
    if dim.type == "int":
        return trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, log=dim.log)


def run_sweep(model_input: dict, model: ModelSpec, train: TrainParams, sweep: SweepParams) -> tuple[pd.DataFrame, dict]:
    """``sweep.n_trials`` TPE trials of ``model`` (each trained by the shared loop on the train
    split, scored on validation); returns all trials and the best one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        values = {name: _suggest(trial, name, dim) for name, dim in sweep.space.items()}
        kwargs = {**model.kwargs, **{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("kwargs.")}}
        overrides = {**model.train, **{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("train.")}}
        if sweep.epochs is not None:
            overrides["epochs"] = sweep.epochs
        spec = ModelSpec(arch=model.arch, kwargs=kwargs, train=overrides)
        _, result, _ = _fit_one(model_input, spec, train, None, desc=f"trial {trial.number}")
        best = result.best_epoch - 1
        metrics = {"val_loss": result.history["val_loss"][best], "val_acc": result.history["val_acc"][best],
                   "best_epoch": result.best_epoch, "train_seconds": result.train_seconds}
        rows.append({"trial": trial.number, **{f"param.{k}": v for k, v in values.items()},
                     **{f"metric.{k}": v for k, v in metrics.items()}})
        logger.info("trial %d: %s → %s %.4f", trial.number, values, sweep.objective, metrics[sweep.objective])
        return metrics[sweep.objective]

    study = optuna.create_study(direction="minimize" if sweep.objective == "val_loss" else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=sweep.seed))
    study.optimize(objective, n_trials=sweep.n_trials)
    trials = pd.DataFrame(rows)
    best_row = trials.loc[trials["trial"] == study.best_trial.number].iloc[0]
    best = {
        "model": sweep.model, "arch": model.arch, "trial": int(best_row["trial"]), "objective": sweep.objective,
        "value": float(study.best_value),
        "params": {k[len("param."):]: _plain(v) for k, v in best_row.items() if k.startswith("param.")},
        "metrics": {k[len("metric."):]: float(v) for k, v in best_row.items() if k.startswith("metric.")},
    }
    logger.info("best trial %d: %s = %.4f with %s", best["trial"], sweep.objective, best["value"], best["params"])
    return trials, best


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
