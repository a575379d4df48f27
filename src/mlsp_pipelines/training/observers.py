"""Ambient observers of the training loop.

Who watches a training run (the MLflow hook, a test) is decided outside the nodes, so nodes stay
pure functions: the project hook installs an observer for the node it is about to run and
removes it afterwards, and :func:`~mlsp_pipelines.training.loop.fit` reports to whatever
observers are installed in the calling context. A :class:`contextvars.ContextVar` (not a
module-level list) keeps nodes that run concurrently in threads (``ThreadRunner``) apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from mlsp_pipelines.params import TrainParams
    from mlsp_pipelines.training.result import FitResult

_ACTIVE: ContextVar[tuple[FitObserver, ...]] = ContextVar("mlsp_fit_observers", default=())


class FitObserver:
    """Receives the events of :func:`fit` on the main rank; every method is optional."""

    def fit_started(self, *, desc: str, train: Sequence[Tensor], val: Sequence[Tensor] | None,
                    params: TrainParams) -> None:
        """Before the first epoch, with the tensors actually trained and validated on."""

    def epoch_ended(self, epoch: int, metrics: dict[str, float]) -> None:
        """After every epoch (1-based), with the metrics ``fit``'s callbacks receive."""

    def fit_ended(self, result: FitResult) -> None:
        """After training, with the kept (best-epoch) weights restored."""


def active() -> tuple[FitObserver, ...]:
    """The observers installed in this context (innermost last)."""
    return _ACTIVE.get()


def install(*observers: FitObserver) -> Token:
    """Add observers for the current context; undo with :func:`uninstall` and the token."""
    return _ACTIVE.set(_ACTIVE.get() + tuple(observers))


def uninstall(token: Token) -> None:
    _ACTIVE.reset(token)


@contextmanager
def observing(*observers: FitObserver) -> Iterator[None]:
    """``with observing(obs): fit(...)`` — observers for the enclosed code only."""
    token = install(*observers)
    try:
        yield
    finally:
        uninstall(token)

