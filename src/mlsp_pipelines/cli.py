"""Project CLI: Kedro's own ``kedro run`` whose default runner keeps each model's nodes together.

Kedro loads this module's ``cli`` group over its built-in commands. ``run`` is Kedro's command
(every option unchanged) with ``--runner`` defaulting to
:class:`~mlsp_pipelines.runner.NamespaceSequentialRunner`, so that a model's MLflow run lasts as
long as its own training and evaluation (see ``runner.py``).
"""

from __future__ import annotations

import copy

import click
from kedro.framework.cli.project import run as _kedro_run

DEFAULT_RUNNER = "mlsp_pipelines.runner.NamespaceSequentialRunner"


def _with_default_runner(command: click.Command) -> click.Command:
    cmd = copy.copy(command)
    cmd.params = [copy.copy(p) for p in command.params]
    for p in cmd.params:
        if p.name == "runner":
            p.default = DEFAULT_RUNNER
            p.help = (f"{p.help} Default here: {DEFAULT_RUNNER} (one model trained and evaluated at a time); "
                      "'dask' (mlsp_pipelines.runner.DaskRunner) fans nodes out on a Dask cluster (dask.yml).")
    return cmd


run = _with_default_runner(_kedro_run)
_kedro_callback = run.callback


def _run_with_aliases(*args: object, runner: str | None = None, **kwargs: object) -> object:
    """``--runner=dask`` is :class:`~mlsp_pipelines.runner.DaskRunner` (Kedro resolves bare names in
    ``kedro.runner`` only)."""
    from mlsp_pipelines.runner import RUNNER_ALIASES

    return _kedro_callback(*args, runner=RUNNER_ALIASES.get(runner or "", runner), **kwargs)


run.callback = _run_with_aliases


@click.group(name="mlsp_pipelines")
def cli() -> None:
    """Project commands."""


cli.add_command(run, "run")
