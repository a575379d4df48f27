"""The parameters that shape the pipeline graph (which architectures, which data source).

Kedro builds pipelines before it knows the run's parameters, but which namespaced training
pipelines exist (``asc.architectures``) and whether the synthetic-data node runs
(``asc.data.source``) are parameters. The project hook records the run's resolved
parameters (all environments and ``--params`` applied) as soon as the context exists, which is
before Kedro first asks for the pipelines; outside a session (``kedro registry list``) the
``base`` + ``local`` configuration (or ``KEDRO_ENV``) is read instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_ACTIVE_PARAMS: dict[str, Any] | None = None


#: The pipeline ``kedro run`` runs when none is named (``__default__``).
DEFAULT_PIPELINE = "asc"
#: Where both runners keep each node's last duration (the Dask runner starts the longest work first).
NODE_SECONDS = "data/08_reporting/node_seconds.json"
#: Suffixes of the DVC stage slices of a pipeline (``asc_data``, ``asc_features``, ``asc_train``).
SLICE_SUFFIXES = ("_data", "_features", "_train")


def pipeline_family(name: str) -> str:
    """The pipeline a run name belongs to: ``asc_train`` (a DVC stage slice) and ``__default__`` are ``asc``."""
    if name == "__default__":
        return DEFAULT_PIPELINE
    for suffix in SLICE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def project_root() -> Path:
    """The folder holding ``pyproject.toml`` and ``conf/`` (found from the working directory)."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "conf" / "base").is_dir() and (p / "pyproject.toml").is_file():
            return p
    return Path(__file__).resolve().parents[2]


def set_active_params(params: dict[str, Any] | None) -> None:
    """Record the resolved parameters of the run that is starting (``None`` forgets them)."""
    global _ACTIVE_PARAMS
    _ACTIVE_PARAMS = params


def graph_params() -> dict[str, Any]:
    """Parameters of the active run, or of the configuration on disk when no run is active."""
    if _ACTIVE_PARAMS is not None:
        return _ACTIVE_PARAMS
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(
        conf_source=str(project_root() / "conf"),
        base_env="base",
        default_run_env=os.environ.get("KEDRO_ENV", "local"),
    )
    from kedro.config import MissingConfigException

    try:
        return dict(loader["parameters"])
    except MissingConfigException:  # no parameter files yet: an empty graph spec (a YAML error propagates)
        return {}


# -- Kedro's pipeline registry ---------------------------------------------------------------------
# Kedro builds the pipelines once per process and has no public getter for the names a run asked
# for. The two functions below are the project's only access to that state, kept in one place and
# guarded: on a Kedro major version other than the tested one, or without the attribute, the
# requested names are unknown (None) and every pipeline counts as requested.
KEDRO_TESTED_MAJOR = 1


def requested_pipelines() -> list[str] | None:
    """The pipeline names of the ``kedro run`` being set up (None: all, or unknown)."""
    import kedro
    from kedro.framework.project import pipelines

    major = int(str(kedro.__version__).split(".", 1)[0])
    if major != KEDRO_TESTED_MAJOR or not hasattr(pipelines, "_requested_pipelines"):
        logger.warning("kedro %s: the requested pipelines are unknown, so every pipeline's parameters "
                       "must build its graph (tested with kedro %d.x)", kedro.__version__, KEDRO_TESTED_MAJOR)
        return None
    requested = pipelines._requested_pipelines  # noqa: SLF001 - guarded above, tested in tests/test_config.py
    return list(requested) if requested is not None else None


def rebuild_pipelines() -> None:
    """Make Kedro rebuild this project's pipelines (from the parameters just recorded) on their next
    use, keeping which pipelines the run asked for: an earlier session in this process may have
    cached them with other parameters."""
    from kedro.framework.project import pipelines

    requested = requested_pipelines()
    pipelines.configure(f"{__package__}.pipeline_registry")
    pipelines.set_requested(requested)


def hook_manager(hooks: tuple[Any, ...]) -> Any:
    """A Kedro hook manager holding ``hooks`` and the installed plug-ins' hooks, as a Kedro
    session builds one (the Dask runner needs one per node on a worker). Kedro has no public API
    for it; its private functions are used here only, guarded like the registry access above."""
    import kedro

    major = int(str(kedro.__version__).split(".", 1)[0])
    try:
        from kedro.framework.hooks.manager import (  # noqa: PLC2701 - guarded, tested in tests/test_config.py
            _create_hook_manager,
            _register_hooks,
            _register_hooks_entry_points,
        )
    except ImportError as exc:
        raise RuntimeError(f"kedro {kedro.__version__} has no hook-manager functions the Dask runner can use "
                           f"(tested with kedro {KEDRO_TESTED_MAJOR}.x); run with the default runner") from exc
    if major != KEDRO_TESTED_MAJOR:
        logger.warning("kedro %s: the Dask runner builds its hook managers with Kedro internals tested with "
                       "kedro %d.x", kedro.__version__, KEDRO_TESTED_MAJOR)
    from kedro.framework.project import settings

    manager = _create_hook_manager()
    _register_hooks(manager, hooks)
    _register_hooks_entry_points(manager, settings.DISABLE_HOOKS_FOR_PLUGINS)
    return manager


def section(params: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``params['a']['b']`` for ``'a.b'``; also accepts already-flattened ``'a.b'`` keys."""
    if dotted in params:
        return params[dotted]
    node: Any = params
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif hasattr(node, part):
            node = getattr(node, part)
        else:
            return default
    return node


#: Registered model names whose input is one vector per example, (B, P), not a sequence: the graph
#: feeds them another dataset. Kept here, not in :mod:`mlsp_pipelines.models.generator` (which
#: re-exports it), so building the graph does not import torch.
ONE_TO_MANY: frozenset[str] = frozenset({"seq_generator"})


def architectures(params: dict[str, Any], task: str, key: str = "architectures") -> list[str]:
    """``<task>.architectures``, each checked to have a ``<task>.models`` entry (the graph has
    one namespaced training pipeline per name, so a dangling name must fail before the run)."""
    archs = list(section(params, f"{task}.{key}", []) or [])
    models = section(params, f"{task}.models", {}) or {}
    missing = [a for a in archs if a not in models]
    if missing:
        raise ValueError(f"{task}.{key} lists {missing} but {task}.models has no entry for them "
                         f"(defined: {sorted(models)}); add '{task}.models.<name>: {{arch: <registry name>}}'")
    return archs
