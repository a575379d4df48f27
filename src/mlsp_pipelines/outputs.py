"""What a run owns in its output folders, and what a DVC stage may read.

Two project hooks (registered in ``settings.py``):

- **Stale temporaries.** Every dataset writes through a temporary file beside its target
  (``datasets/atomic.py``); a process killed mid-write (``kill -9``, power loss) leaves it there,
  inside a DVC output. At the start of a run, once the pipeline's lock is held (the MLflow hook
  takes it first), the temporaries of the run's own outputs and checkpoints are removed -- only
  the names ``atomic_path``/``atomic_dir`` create (``.<name>.<8 characters>.tmp|.old``) beside the
  datasets of this run, nothing else in those folders.
- **DVC sees every input.** A DVC stage (``dvc repro``; DVC sets ``DVC_STAGE`` for its commands)
  reads only ``conf/base`` as declared in ``dvc.yaml``. An override in ``conf/local`` of the
  running pipeline's parameters, of a catalog entry or of dask.yml's ``torch_threads`` -- or
  another Kedro environment (``KEDRO_ENV``) -- would change the outputs while ``dvc.lock`` records
  the base values and ``dvc status`` reports nothing. Such a stage stops before any work, naming
  the file and the keys and how to proceed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from mlsp_pipelines.config import pipeline_family
from mlsp_pipelines.datasets.atomic import remove_stale_temporaries

logger = logging.getLogger(__name__)

#: Set by DVC for every stage command (``dvc repro``, ``dvc exp run``): the stage's address.
DVC_STAGE_ENV = "DVC_STAGE"
#: Configuration groups whose ``conf/local`` overrides change outputs, by file-name pattern
#: (those of ``settings.CONFIG_LOADER_ARGS`` and Kedro's defaults).
OUTPUT_GROUPS = ("parameters", "catalog", "dask")
#: dask.yml keys that change what a run computes (the rest say where and how fast it runs).
DASK_OUTPUT_KEYS = frozenset({"torch_threads"})


class DvcConfigError(RuntimeError):
    """A DVC stage would read configuration that ``dvc.yaml`` does not declare."""


def dvc_stage() -> str | None:
    """The DVC stage this process runs for (None outside ``dvc repro``)."""
    return os.environ.get(DVC_STAGE_ENV) or None


def _dotted(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        return [k for key, sub in value.items() for k in _dotted(sub, f"{prefix}.{key}" if prefix else str(key))]
    return [prefix] if prefix else []


def _group(path: Path) -> str | None:
    name = path.name
    for group in OUTPUT_GROUPS:
        if name.startswith(group) or any(part.startswith(group) for part in path.parts[:-1]):
            return group
    return None


def local_overrides(local_dir: Path, families: list[str] | None) -> dict[Path, list[str]]:
    """Keys of ``local_dir`` (``conf/local``) that change the outputs of ``families`` (None: any
    pipeline): parameters under ``<family>.``, every catalog entry, dask.yml's output keys."""
    import yaml

    found: dict[Path, list[str]] = {}
    if not local_dir.is_dir():
        return found
    for path in sorted(p for p in local_dir.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()):
        group = _group(path.relative_to(local_dir))
        if group is None:
            continue
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DvcConfigError(f"{path}: cannot be read ({exc}); fix or move it aside before `dvc repro`") from exc
        if not isinstance(content, dict):
            continue
        if group == "parameters":
            keys = [k for k in _dotted(content) if families is None or k.split(".", 1)[0] in families]
        elif group == "catalog":
            keys = [str(k) for k in content if not str(k).startswith("_")]  # _anchors are not entries
        else:
            keys = [k for k in content if k in DASK_OUTPUT_KEYS]
        if keys:
            found[path] = keys
    return found


def _families(requested: list[str] | None) -> list[str] | None:
    return None if requested is None else [pipeline_family(name) for name in requested]


def check_dvc_inputs(project_path: Path, env: str | None, requested: list[str] | None) -> None:
    """Under a DVC stage, refuse configuration ``dvc.yaml`` cannot see (module doc)."""
    stage = dvc_stage()
    if stage is None:
        return
    if env not in (None, "", "local"):
        raise DvcConfigError(
            f"DVC stage '{stage}' runs with Kedro environment '{env}', but dvc.yaml tracks conf/base only "
            f"and dvc.lock would record base values for outputs computed with conf/{env}. Unset it "
            f"(`unset KEDRO_ENV`) before `dvc repro`, or run `kedro run --env={env}` outside DVC")
    local = Path(project_path) / "conf" / "local"
    found = local_overrides(local, _families(requested))
    if not found:
        return
    listed = "; ".join(f"{path.relative_to(project_path)}: {', '.join(keys)}" for path, keys in found.items())
    first = next(iter(found)).relative_to(project_path)
    raise DvcConfigError(
        f"DVC stage '{stage}' refuses conf/local overrides that dvc.yaml does not track ({listed}): the "
        f"outputs would follow them while dvc.lock records the conf/base values. Move the file aside for "
        f"`dvc repro` (`mv {first} {first}.off`), or put the change in conf/base (tracked through "
        f"dvc.yaml's params), or run the pipeline outside DVC with `kedro run --pipelines=<name>`")


class OutputsHook:
    """The checks and clean-up of the module doc. Registered *before* the MLflow hook in
    ``settings.HOOKS``: pluggy calls hooks in reverse registration order, so the pipeline lock is
    held when the temporaries are removed."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from mlsp_pipelines import config

        env = getattr(context, "env", None)
        check_dvc_inputs(Path(context.project_path), env, config.requested_pipelines())
        try:
            suffix = str(context.config_loader["globals"].get("data_suffix") or "")
        except Exception:  # noqa: BLE001 - no globals.yml: the default paths
            suffix = ""
        if suffix:
            logger.info("environment '%s' writes its outputs under data/<layer>/<task>%s/, apart from the default "
                        "pipeline's DVC outputs (conf/%s/globals.yml: data_suffix)", env, suffix, env)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun rank 0 owns the files
        for path in owned_paths(pipeline, catalog):
            for removed in remove_stale_temporaries(path):
                logger.warning("removed %s, left by an interrupted write of %s", removed, path)


def owned_paths(pipeline: Any, catalog: Any) -> list[Path]:
    """Files and folders this run writes: its outputs and its checkpoints (project datasets only)."""
    from mlsp_pipelines.datasets.files import AudioFolderDataset, CheckpointStoreDataset, FileDataset

    outputs = set(pipeline.all_outputs())
    paths = []
    for name in sorted(pipeline.datasets()):
        try:
            dataset = catalog.get(name)
        except Exception:  # noqa: BLE001 - a dataset the catalog cannot build fails the run elsewhere
            continue
        owned = isinstance(dataset, CheckpointStoreDataset) or (
            name in outputs and isinstance(dataset, (FileDataset, AudioFolderDataset)))
        if owned:
            paths.append(Path(dataset._filepath))  # noqa: SLF001 - the project's own datasets
    return paths
