"""Parameter sections of the viscoelastic task (validated by Kedro before any node runs).

A bad value fails with the parameter key (``viscoelastic.material``) and the field at fault,
e.g. ``E`` <= 0, ``m`` < 1 or ``nu0`` <= 0, before the simulation starts; that section is
:class:`~mlsp_pipelines.simulation.viscoelastic.MaterialParams`, the simulator's own class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlsp_pipelines.evaluation.diagnostics import CellSpec
from mlsp_pipelines.params import FractionSplitParams
from mlsp_pipelines.section import Section

ProtocolKind = Literal["cyclic", "relaxation", "piecewise"]


def _check_range(name: str, value: tuple[float, float] | None) -> None:
    if value is not None and not (0.0 < value[0] <= value[1]):
        raise ValueError(f"{name} must satisfy 0 < lo <= hi, got {list(value)}")


class ExtrapolationParams(Section):
    """A second test set whose loading rates all lie above the training range."""

    n_trajectories: int = Field(60, ge=1)
    rate_range: tuple[float, float] = (0.6, 1.2)
    amplitude_range: tuple[float, float] | None = None  # None: the training amplitude range
    seed: int = 1

    @model_validator(mode="after")
    def _check(self) -> "ExtrapolationParams":
        _check_range("rate_range", self.rate_range)
        _check_range("amplitude_range", self.amplitude_range)
        return self


class AugmentationParams(Section):
    """Training-only trajectories sampled on coarser time grids (``dt_mean × scale``).

    Same protocol kinds and rates as the training protocols, so no rate leaves the training
    range; but each sample now covers a larger stretch increment ``Δλ = λ̇·Δt`` and a longer
    viscous flow, which is what faster loading produces on the base grid. ``amplitude_range``
    (``None``: the training one) may reach larger strains, so that slow loading also visits the
    higher stresses that fast loading reaches. Empty ``dt_scales`` (the default): none.
    """

    dt_scales: list[float] = Field(default_factory=list)
    n_per_scale: int = Field(105, ge=1)
    amplitude_range: tuple[float, float] | None = None
    seed: int = 43  # scale k uses seed + k

    @model_validator(mode="after")
    def _check(self) -> "AugmentationParams":
        bad = [s for s in self.dt_scales if not s > 0]
        if bad:
            raise ValueError(f"dt_scales must be > 0, got {bad}")
        _check_range("amplitude_range", self.amplitude_range)
        return self


class ProtocolParams(Section):
    """Seeded stretch histories for training/validation/test and the extrapolation set."""

    n_trajectories: int = Field(300, ge=3)
    n_steps: int = Field(200, ge=2)
    seed: int = 42
    kinds: list[ProtocolKind] = Field(default_factory=lambda: ["cyclic", "relaxation", "piecewise"], min_length=1)
    rate_range: tuple[float, float] = (0.05, 0.4)
    amplitude_range: tuple[float, float] = (0.05, 0.3)
    max_cycles: int = Field(4, ge=1)
    nonuniform_dt: bool = True
    dt_mean: float = Field(0.05, gt=0)
    dt_jitter: float = Field(0.5, ge=0, lt=1)
    baseline: float = 1.0
    extrapolation: ExtrapolationParams = Field(default_factory=ExtrapolationParams)
    augmentation: AugmentationParams = Field(default_factory=AugmentationParams)

    @model_validator(mode="after")
    def _check(self) -> "ProtocolParams":
        _check_range("rate_range", self.rate_range)
        _check_range("amplitude_range", self.amplitude_range)
        if self.extrapolation.rate_range[0] <= self.rate_range[1]:
            raise ValueError(
                f"extrapolation.rate_range {list(self.extrapolation.rate_range)} must lie above "
                f"rate_range {list(self.rate_range)} (its rates must be outside the training range)"
            )
        if self.extrapolation.seed == self.seed:
            raise ValueError(f"extrapolation.seed must differ from seed={self.seed} (it would repeat the same random draws)")
        aug = self.augmentation
        clash = {self.seed, self.extrapolation.seed} & {aug.seed + k for k in range(len(aug.dt_scales))}
        if clash:
            raise ValueError(f"augmentation seeds {aug.seed}..{aug.seed + len(aug.dt_scales) - 1} must not include "
                             f"seed or extrapolation.seed ({sorted(clash)}): they would repeat the same draws")
        return self


class GeneratorDataParams(Section):
    """Cyclic protocols on a uniform grid for the one-to-many model (``seq_generator``).

    Rates, amplitudes, cycles, ``n_steps`` and ``dt_mean`` come from ``protocols`` (and the
    extrapolation rates from ``protocols.extrapolation``), so the sets are comparable.
    """

    n_trajectories: int = Field(240, ge=3)
    n_extrapolation: int = Field(48, ge=1)
    seed: int = 7


FeatureName = Literal["stretch", "stretch_rate", "log_rate", "dstretch", "dt"]
Scaling = Literal["standard", "range", "none"]


def _check_features(key: str, names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"{key} lists a feature twice: {names}")


class FeatureSpec(Section):
    """One model's inputs: feature names and their scaling (``None``: the task's scaling)."""

    features: list[FeatureName] = Field(min_length=1)
    scaling: Scaling | None = None

    @model_validator(mode="after")
    def _check(self) -> "FeatureSpec":
        _check_features("features", self.features)
        return self


class InputParams(Section):
    """Per-step inputs of the sequence models, computed from ``(λ, λ̇, Δt)`` (see
    :func:`~mlsp_pipelines.simulation.viscoelastic.sequence_features`), and their scaling,
    fitted on the training set: ``standard`` (z-score), ``range`` (training range → [−1, 1]) or
    ``none`` (physical units). ``per_model`` overrides them for named models: the memoryless
    ``mlp`` keeps the rate (without memory it has no other way to see it), ``rate_ode`` needs
    the rate and Δt unscaled."""

    features: list[FeatureName] = Field(default_factory=lambda: ["stretch", "stretch_rate", "dt"], min_length=1)
    scaling: Scaling = "standard"
    per_model: dict[str, FeatureSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "InputParams":
        _check_features("features", self.features)
        return self

    def spec_for(self, model: str | None = None) -> tuple[list[str], str]:
        """Feature names and scaling of model ``model`` (``None``: the task's defaults)."""
        spec = self.per_model.get(model) if model is not None else None
        if spec is None:
            return list(self.features), self.scaling
        return list(spec.features), spec.scaling or self.scaling


class TrajectorySplitParams(FractionSplitParams):
    """Random split by trajectory (a trajectory is in exactly one of train/val/test)."""


class ViscoReportParams(Section):
    """How many trajectories the σ–λ loop figures show."""

    n_examples: int = Field(4, ge=1, le=12)


def _default_cells() -> dict[str, CellSpec]:
    return {
        "rnn_tanh": CellSpec(arch="rnn", kwargs={"nonlinearity": "tanh"}),
        "rnn_relu": CellSpec(arch="rnn", kwargs={"nonlinearity": "relu"}),
        "rnn_relu_identity": CellSpec(arch="rnn", kwargs={"nonlinearity": "relu"},
                                                recurrent_init="identity", gain=1.05),
        "gru": CellSpec(arch="gru"),
        "lstm": CellSpec(arch="lstm"),
    }


class DiagnosticsParams(Section):
    """Gradient norms through time on long simulated sequences."""

    seq_len: int = Field(300, ge=2)
    n_sequences: int = Field(16, ge=1)
    hidden_size: int = Field(32, ge=1)
    seed: int = 0
    train_steps: int = Field(50, ge=0)  # 0: at initialisation only
    lr: float = Field(3e-3, gt=0)
    num_threads: int | None = Field(1, ge=1)  # torch CPU threads (small models: 1 is fastest)
    cells: dict[str, CellSpec] = Field(default_factory=_default_cells, min_length=1)
