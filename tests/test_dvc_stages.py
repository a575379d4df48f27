"""Every DVC stage declares what its Kedro slice reads: each parameter section its nodes and its
graph take, and each project source file (its node modules and everything they import from the
project). A missing declaration makes ``dvc repro`` / ``dvc exp run -S`` silently skip work."""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from mlsp_pipelines.pipelines import asc  # noqa: F401 - the package imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = "mlsp_pipelines"
#: Graph-shaping keys per slice kind: the registry reads them to build the slice's graph.
GRAPH_KEYS = {"_train": ("architectures", "split", "sweep")}


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _slice(cmd: str) -> str | None:
    m = re.search(r"--pipelines?=(\S+)", cmd)
    return m.group(1) if m else None


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):  # ``pkg.module.function``: not a module
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _project_imports(path: Path) -> set[str]:
    """Project modules imported by ``path`` (absolute and relative imports)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(SRC).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith(PKG)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith(PKG):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _closure(modules: set[str]) -> set[Path]:
    """The node modules and the project modules they import directly (one level: what the
    nodes call; deeper imports are the registry and package plumbing every stage shares)."""
    files = {f for f in map(_module_file, modules) if f is not None and f.is_relative_to(SRC)}
    direct = {f for m in files for f in map(_module_file, _project_imports(m)) if f is not None}
    return {f for f in files | direct if f.is_relative_to(SRC) and f.name != "__init__.py"}


def _node_modules(pipeline) -> set[str]:  # noqa: ANN001
    mods = set()
    for n in pipeline.nodes:
        func = n.func
        while isinstance(func, functools.partial):
            func = func.func
        func = getattr(func, "__wrapped__", func)
        mods.add(func.__module__)
    return mods


STAGES = {name: s for name, s in _stages().items() if _slice(s.get("cmd", ""))}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_the_parameters_and_sources_its_slice_reads(stage: str) -> None:
    from mlsp_pipelines.config import graph_params
    from mlsp_pipelines.pipeline_registry import register_pipelines

    spec = STAGES[stage]
    slice_name = _slice(spec["cmd"])
    pipeline = register_pipelines()[slice_name]
    declared = {k for block in spec.get("params", []) for keys in block.values() for k in keys}
    task = slice_name.split("_")[0]
    params = graph_params()

    read = set()
    for n in pipeline.nodes:
        for i in n.inputs:
            if i.startswith("params:"):
                parts = i[len("params:"):].split(".")
                read.add(".".join(parts[:2]))
    for suffix, keys in GRAPH_KEYS.items():
        if slice_name.endswith(suffix):
            section = params.get(task) or {}
            read |= {f"{task}.{k}" for k in keys
                     if k in section and (k != "split" or "cv" in (section.get("split") or {}))}
    missing = sorted(k for k in read if not any(k == d or k.startswith(d + ".") for d in declared))
    deps = [ROOT / d for d in spec.get("deps", [])]
    files = _closure(_node_modules(pipeline))
    uncovered = sorted(str(f.relative_to(ROOT)) for f in files
                       if not any(f == d or f.is_relative_to(d) for d in deps))
    assert not missing and not uncovered, (
        f"dvc.yaml stage '{stage}' reads parameters it does not declare: {missing}; "
        f"runs code it does not list under deps: {uncovered}")
