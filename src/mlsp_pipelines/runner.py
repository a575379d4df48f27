"""A sequential runner that finishes one namespace before starting the next.

Kedro's ``SequentialRunner`` runs nodes level by level of the topological sort: every model's
training, then every model's evaluation. A model's MLflow run (opened when its training starts,
closed when its evaluation ends) would then span the training of all the other models, and its
duration would say nothing about its own work. This runner executes the same nodes in another
valid topological order: among the nodes whose inputs are ready it prefers the one that shares
the longest namespace with the node that ran last (ties keep Kedro's order), so ``asc.cnn``'s
train → evaluate → explain run back to back. It is the default of ``kedro run`` in this project
(``cli.py``); ``--runner=SequentialRunner`` restores Kedro's order.
"""

from __future__ import annotations

from typing import Any

from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import SequentialRunner


def _shared_depth(a: str | None, b: str | None) -> int:
    """Number of leading namespace parts ``a`` and ``b`` have in common."""
    pa, pb = (a or "").split("."), (b or "").split(".")
    n = 0
    for x, y in zip(pa, pb):
        if not x or x != y:
            break
        n += 1
    return n


def namespace_order(pipeline: Pipeline) -> list[Node]:
    """A topological order of ``pipeline``'s nodes that keeps each namespace's nodes together
    wherever the dependencies allow."""
    rank = {n: i for i, n in enumerate(pipeline.nodes)}  # Kedro's own order breaks ties
    deps = {n: set(d) for n, d in pipeline.node_dependencies.items()}
    children: dict[Node, list[Node]] = {n: [] for n in deps}
    for n, ds in deps.items():
        for d in ds:
            children[d].append(n)
    ready = {n for n, ds in deps.items() if not ds}
    order: list[Node] = []
    last: Node | None = None
    while ready:
        nxt = min(ready, key=lambda n: (-_shared_depth(n.namespace, last.namespace if last else None), rank[n]))
        ready.remove(nxt)
        order.append(nxt)
        last = nxt
        for c in children[nxt]:
            deps[c].discard(nxt)
            if not deps[c]:
                ready.add(c)
    if len(order) != len(rank):  # pragma: no cover - Kedro rejects cyclic pipelines first
        raise RuntimeError("pipeline has a dependency cycle")
    return order


class NamespaceSequentialRunner(SequentialRunner):
    """``SequentialRunner`` in :func:`namespace_order` (each model trained and evaluated in one go)."""

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        ordered = Pipeline(pipeline.nodes)
        # ``Pipeline.nodes`` (a cached property over ``_toposorted_nodes``) is the order the
        # sequential loop follows; set it to ours (tests/test_tracking.py checks the order is used)
        ordered._toposorted_nodes = namespace_order(pipeline)  # noqa: SLF001
        ordered.__dict__.pop("nodes", None)
        super()._run(ordered, catalog, hook_manager, run_id)
