"""What a training produced (:class:`FitResult`): shared by the loop, its process launcher and
its observers, so none of them imports another for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class FitResult:
    """What training produced: best weights, per-epoch history and bookkeeping."""

    state_dict: dict[str, Tensor]
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    stopped_early: bool
    resumed_from: int = 0
    # wall-clock seconds of every epoch run (training + validation), resumed ones included: the
    # x axis of a quality-vs-time curve; like ``train_seconds``, never part of a reproducible output
    epoch_seconds: list[float] = field(default_factory=list)
    # how many epochs' weights the kept state averages (``average_last``; 1: one epoch's weights)
    averaged_epochs: int = 1
