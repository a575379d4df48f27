"""Names for the annotations of node functions whose classes live in heavy libraries.

Kedro validates a run's parameters against the node functions' annotations, evaluating every
one of them with :func:`typing.get_type_hints` when the run starts, so each name a node function
annotates with must exist at run time. Importing matplotlib only for that would cost every
``kedro run``, ``kedro registry list`` and test a large part of a second (the node modules
import it inside the functions that draw). Type checkers see the real classes; at run time
the names stand for :data:`typing.Any`, which Kedro does not validate (it validates parameter
models only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
else:
    Figure = Any

__all__ = ["Figure"]
