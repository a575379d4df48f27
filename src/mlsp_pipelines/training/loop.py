"""The training entry point every pipeline calls: :func:`fit` runs the one training loop
(:mod:`.engine`) in this process, or, with ``train.nproc`` > 1 outside ``torchrun``, as
DistributedDataParallel over processes it starts (:mod:`.launch`).

Seeded and deterministic on CPU, early stopping on validation loss (best weights restored),
gradient clipping, a checkpoint after every epoch, so an interrupted run resumes where it stopped
and ends with the same numbers as one that was not. The loop's helpers are re-exported here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training.engine import (
    BatchSampler,
    Collate,
    EpochCallback,
    LossFn,
    average_states,
    classification_loss,
    fit_here,
    make_optimizer,
    make_scheduler,
    predict,
    regression_loss,
    resolve_device,
    seed_everything,
)
from mlsp_pipelines.training.result import FitResult

logger = logging.getLogger(__name__)

__all__ = [
    "BatchSampler", "Collate", "EpochCallback", "FitResult", "LossFn", "average_states", "classification_loss",
    "fit", "make_optimizer", "make_scheduler", "predict", "regression_loss", "resolve_device", "seed_everything",
]


def fit(model: nn.Module, train: Sequence[Tensor], val: Sequence[Tensor] | None, *, params: TrainParams,
        **kwargs: Any) -> FitResult:
    """Train ``model`` (see :func:`~.engine.fit_here` for every option). With ``train.nproc`` > 1
    and ``distributed`` not ``off``, outside ``torchrun``, the ranks are started here and the
    per-epoch validation score is not computed (the kept epoch is the best by validation loss)."""
    if params.nproc > 1 and params.distributed != "off" and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        from mlsp_pipelines.training.launch import fit_in_processes

        if kwargs.pop("val_score", None) is not None:
            logger.warning("%s: the per-epoch validation score is not computed with train.nproc > 1; "
                           "the kept epoch is the best by validation loss", kwargs.get("desc", "train"))
        kwargs.pop("select_by", None)
        return fit_in_processes(model, train, val, params=params, **kwargs)
    return fit_here(model, train, val, params=params, **kwargs)
