"""Parameter sections specific to the respiratory-sound task."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mlsp_pipelines.ingestion.layouts import AudioDataParams
from mlsp_pipelines.section import Section


class RespiratorySynthParams(Section):
    """Size and seed of the embedded synthetic ICBHI-like corpus."""

    n_patients: int = Field(30, ge=3)
    recordings_per_patient: int = Field(3, ge=1)
    duration_s: float = Field(20.0, gt=2)
    sr: int = Field(4000, ge=2000)
    seed: int = 42


class RespiratoryDataParams(AudioDataParams):
    """Where the recordings come from (``synthetic`` patients or a layout, ICBHI by default), which
    labels (the ``icbhi`` layout's ``task``: four classes or wheeze vs none), how bad files are treated."""

    SYNTHETIC_LAYOUT: ClassVar[str] = "icbhi"
