"""Optuna TPE search with the shared training loop. The node returns a table of trials and the
best trial; the MLflow hook turns each trial into a nested run and records the best on the
parent run, so the search itself stays free of tracking code."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pandas as pd
from pydantic import Field, model_validator

from mlsp_pipelines.modular.classifier.nodes import fit_one
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.section import Section

logger = logging.getLogger(__name__)


class SearchDim(Section):
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


class SweepParams(Section):
    """What to search: which model entry, how many trials, the objective and the space.

    Space keys are ``train.<field>`` (TrainParams) or ``kwargs.<name>`` (model arguments).
    """

    enabled: bool = False
    model: str = "cnn"
    n_trials: int = Field(8, ge=1)
    epochs: int | None = Field(None, ge=1)  # trial epochs (default: train.epochs)
    objective: Literal["val_loss", "val_acc"] = "val_loss"
    seed: int = 0
    parallel: int = Field(1, ge=1)  # trials asked per batch (trained at once on a Dask cluster); part of the results
    storage: str | None = None  # shared Optuna storage: a journal file path or an RDB URL; None: in memory
    space: dict[str, SearchDim] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "SweepParams":
        bad = [k for k in self.space if k.split(".", 1)[0] not in ("train", "kwargs") or "." not in k]
        if bad:
            raise ValueError(f"space keys must be 'train.<field>' or 'kwargs.<name>', got {bad}")
        return self


def _distribution(dim: SearchDim) -> Any:
    """The Optuna distribution of one searched value (categoricals by position: Optuna stores
    scalars, and choices may be lists such as channel widths)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.type == "categorical":
        return CategoricalDistribution(list(range(len(dim.choices))))
    if dim.type == "int":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


def _value(dim: SearchDim, sampled: Any) -> Any:
    return dim.choices[sampled] if dim.type == "categorical" else sampled


def _storage(url: str | None) -> Any:
    """``None``: in memory; an RDB URL (``postgresql://...``, ``sqlite:///...``) as it is; else
    the path of a journal file (on a filesystem every worker sees)."""
    if url is None:
        return None
    if "://" in url:
        return url
    from pathlib import Path

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the open-lock works on network filesystems (NFS) too, unlike the default symlink lock
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def _evaluate_trial(model_input: dict, model: ModelSpec, train: TrainParams, sweep: SweepParams, study: tuple[str, str | None],
                    number: int, values: dict[str, Any]) -> dict[str, Any]:
    """Train trial ``number`` with ``values`` (wherever it runs); with a shared storage the trial's
    result is told to the study there. Returns the trial's metrics."""
    import optuna

    kwargs = {**model.kwargs, **{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("kwargs.")}}
    overrides = {**model.train, **{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("train.")}}
    if sweep.epochs is not None:
        overrides["epochs"] = sweep.epochs
    spec = ModelSpec(arch=model.arch, kwargs=kwargs, train=overrides)
    result = fit_one(model_input, spec, train, None, name=sweep.model, desc=f"trial {number}")[0].result
    best = result.best_epoch - 1
    metrics = {"val_loss": result.history["val_loss"][best], "val_acc": result.history["val_acc"][best],
               "best_epoch": result.best_epoch, "train_seconds": result.train_seconds}
    name, url = study
    if url is not None:  # the shared study records the trial where it ran
        shared = optuna.load_study(study_name=name, storage=_storage(url))
        trial_id = next(t._trial_id for t in shared.get_trials(deepcopy=False) if t.number == number)  # noqa: SLF001
        optuna.trial.Trial(shared, trial_id).set_user_attr("metrics", metrics)
        shared.tell(number, metrics[sweep.objective])
    logger.info("trial %d: %s → %s %.4f", number, values, sweep.objective, metrics[sweep.objective])
    return metrics


def run_sweep(model_input: dict, model: ModelSpec, train: TrainParams, sweep: SweepParams) -> tuple[pd.DataFrame, dict]:
    """``sweep.n_trials`` TPE trials of ``model`` (each trained by the shared loop on the train
    split, scored on validation); returns all trials and the best one.

    Trials are asked in batches of ``sweep.parallel`` (each batch sampled from the trials
    finished before it) and a batch's trials train at once on a Dask cluster when the node runs
    on one (:func:`~mlsp_pipelines.cluster.fan_out`), else one after another -- the same trials
    either way, so the results depend on the configuration, not on the runner. With
    ``sweep.storage`` the study lives in that shared storage and each trial reports to it itself.
    """
    import uuid

    import optuna

    from mlsp_pipelines import cluster

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"{sweep.model}-{uuid.uuid4().hex[:12]}"
    study = optuna.create_study(study_name=name, storage=_storage(sweep.storage),
                                direction="minimize" if sweep.objective == "val_loss" else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=sweep.seed))
    space = {key: _distribution(dim) for key, dim in sweep.space.items()}
    rows: list[dict[str, Any]] = []
    for start in range(0, sweep.n_trials, sweep.parallel):
        asked = [study.ask(space) for _ in range(min(sweep.parallel, sweep.n_trials - start))]
        values = [{k: _value(sweep.space[k], t.params[k]) for k in sweep.space} for t in asked]
        results = cluster.fan_out(_evaluate_trial, [(model, train, sweep, (name, sweep.storage), t.number, v)
                                                    for t, v in zip(asked, values)],
                                  shared=model_input, name=f"sweep-{sweep.model}-trial")
        for trial, vals, metrics in zip(asked, values, results):
            if sweep.storage is None:
                study.tell(trial, metrics[sweep.objective])
            rows.append({"trial": trial.number, **{f"param.{k}": v for k, v in vals.items()},
                         **{f"metric.{k}": v for k, v in metrics.items()}})
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
