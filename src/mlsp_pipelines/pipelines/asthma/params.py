"""Parameter sections specific to the respiratory-sound task."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlsp_pipelines.params import _Section


class RespiratorySynthParams(_Section):
    """Size and seed of the embedded synthetic ICBHI-like corpus."""

    n_patients: int = Field(30, ge=3)
    recordings_per_patient: int = Field(3, ge=1)
    duration_s: float = Field(20.0, gt=2)
    sr: int = Field(4000, ge=2000)
    seed: int = 42


class RespiratoryDataParams(_Section):
    """Where the recordings come from, which task, and how bad files are treated."""

    source: Literal["synthetic", "icbhi"] = "synthetic"
    task: Literal["four_class", "wheeze"] = "four_class"  # normal/crackle/wheeze/both, or wheeze vs none
    official_split: str | None = None  # ICBHI train/test list, relative to the data folder
    on_bad_file: Literal["fail", "skip"] = "fail"
