"""Figures on matplotlib's object API, with no global backend switch.

``matplotlib.figure.Figure`` objects are not registered with pyplot: they need no ``Agg``
backend set at import time (which used to cost every plotting module an import-order
exception), are never kept alive by pyplot's figure manager, and save to PNG on any machine,
with or without a display. Every figure of the project starts here.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

_FIGURE_KEYS = ("figsize", "dpi", "layout", "constrained_layout", "tight_layout", "facecolor")


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots`` without pyplot: figure keywords (``figsize``, ``layout``, ...) go to the
    :class:`Figure`, the rest (``squeeze``, ``sharex``, ``gridspec_kw``, ...) to ``Figure.subplots``."""
    fig = Figure(**{k: kwargs.pop(k) for k in _FIGURE_KEYS if k in kwargs})
    return fig, fig.subplots(nrows, ncols, **kwargs)
