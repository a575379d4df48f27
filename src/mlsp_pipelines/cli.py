"""Project CLI: Kedro's own ``kedro run`` whose default runner keeps each model's nodes together.

Kedro loads this module's ``cli`` group over its built-in commands. ``run`` is Kedro's command
(every option unchanged) with ``--runner`` defaulting to
:class:`~mlsp_pipelines.runner.NamespaceSequentialRunner`, so that a model's MLflow run lasts as
long as its own training and evaluation (see ``runner.py``).
"""

from __future__ import annotations

import copy
import re

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
    ``kedro.runner`` only). Invalid parameters end the command with one line per offending key."""
    from kedro.validation.exceptions import ParameterValidationError

    from mlsp_pipelines.runner import RUNNER_ALIASES

    try:
        return _kedro_callback(*args, runner=RUNNER_ALIASES.get(runner or "", runner), **kwargs)
    except ParameterValidationError as exc:
        raise click.ClickException(parameter_errors(str(exc))) from None


_DETAIL = re.compile(r"(?P<text>.*?)(?: \[type=[^,\]]+(?:, input_value=(?P<value>.*?))?(?:, input_type=[^\]]+)?\])?$")


def parameter_errors(message: str) -> str:
    """Kedro's parameter-validation message (pydantic's report per parameter section) as one line
    per offending key, ``asc.train.epoch = 3: Extra inputs are not permitted``, and a last line
    that names them and says where to fix them."""
    lines, keys = [], []
    for block in re.split(r"^- Parameter '", message, flags=re.MULTILINE)[1:]:
        section = block.split("'", 1)[0]
        body = block.split("\n")[1:]
        loc: str | None = None
        found = False
        for line in body:
            if not line.strip() or line.strip().startswith("For further information"):
                continue
            if not line.startswith("  "):
                loc = line.strip()
                continue
            m = _DETAIL.match(line.strip())
            text = re.sub(r"^(Value error|Assertion failed), ", "", m.group("text") if m else line.strip())
            key = f"{section}.{loc}" if loc else section
            value = f" = {m.group('value')}" if loc and m and m.group("value") is not None else ""
            lines.append(f"{key}{value}: {text}")
            keys.append(key)
            loc, found = None, True
        if not found:  # not pydantic's shape: the section and Kedro's text as they are
            lines.append(f"{section}: {block.split(':', 1)[-1].strip()}")
            keys.append(section)
    if not lines:
        return message
    return ("invalid parameters:\n  " + "\n  ".join(lines)
            + f"\nfix {', '.join(dict.fromkeys(keys))} in conf/<env>/parameters_*.yml or with --params <key>=<value>")


run.callback = _run_with_aliases


@click.group(name="mlsp_pipelines")
def cli() -> None:
    """Project commands."""


cli.add_command(run, "run")
