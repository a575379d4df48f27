"""The one base of every settings object: parameter sections (``params.py`` and each task's),
model configurations (``models/configs.py``) and the Dask settings (``cluster.py``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are errors (they catch typos such as ``n_mel``, which would otherwise be
    silently ignored), and values are immutable (a run, or a model, is what it was built with)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
