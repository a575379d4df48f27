"""One factory for a model entry's pipeline and one composer for a task, used by all five tasks.

A model entry ``<task>.models.<name>`` becomes the namespace ``<task>.<name>``: its datasets are
``<task>.<name>.model``, ``.metrics``, ... (one catalog factory), its parameters
``params:model`` → ``params:<task>.models.<name>``, and it is one MLflow run (tag ``model_run``).
The entry's name reaches the node functions one way: a function with a keyword-only ``name``
parameter gets it bound; the model's leaderboard row, metrics entry, bundle and run are that name,
never the architecture's (two entries of one architecture are two models).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node

# a node of a model pipeline: (function, inputs, outputs, node name), names inside the model's namespace
Step = tuple[Callable[..., Any], str | list[str], str | list[str], str]


def bind_name(func: Callable[..., Any], name: str, task: str | None = None) -> Callable[..., Any]:
    """``func`` with ``name=`` (and ``task=``, which messages use to spell ``--params <task>.<key>``)
    bound where it takes them as keyword-only arguments (a named partial Kedro can describe),
    else ``func`` itself."""
    params = inspect.signature(func).parameters
    bound = {key: value for key, value in (("name", name), ("task", task))
             if value is not None and key in params and params[key].kind is inspect.Parameter.KEYWORD_ONLY}
    if "name" not in bound:
        return func
    return update_wrapper(partial(func, **bound), func)


def model_pipeline(task: str, name: str, steps: Sequence[Step], *, inputs: set[str] | dict[str, str],
                   parameters: Sequence[str] = (), model_key: str | None = None) -> Pipeline:
    """The pipeline of the model entry ``name`` of ``task``: ``steps`` in namespace ``name``,
    reading the shared ``inputs`` and the task parameters ``parameters`` (``params:train`` →
    ``params:train``, resolved in the task's namespace), with ``params:model`` mapped to
    ``params:models.<model_key or name>`` (an anchor trained with another entry's settings)."""
    nodes = [node(bind_name(func, name, task), ins, outs, name=node_name) for func, ins, outs, node_name in steps]
    params = {"params:model": f"params:models.{model_key or name}", **{f"params:{p}": f"params:{p}" for p in parameters}}
    return Pipeline(nodes, namespace=name, inputs=inputs, parameters=params, tags=[f"{task}_train", "model_run"])


def compose_task(task: str, *, data: Pipeline, train: Pipeline, report: Pipeline | None = None,
                 features: Pipeline | None = None) -> dict[str, Pipeline]:
    """``<task>`` and its DVC-stage slices: ``<task>_data``, ``<task>_features`` (when the task has
    a feature stage), ``<task>_train`` = ``train`` (model pipelines and task-level nodes, put in
    the task's namespace here) + ``report`` (full dataset names)."""
    train = Pipeline(train, namespace=task)
    if report is not None:
        train += report
    out = {f"{task}_data": data}
    if features is not None:
        out[f"{task}_features"] = features
    out[f"{task}_train"] = train
    out[task] = data + (features or Pipeline([])) + train
    return out
