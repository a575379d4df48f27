"""The package's modules import each other without circles (type-only imports included): a
module can be read, tested and moved without dragging in the ones that import it."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "mlsp_pipelines"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports anywhere in its file (functions included);
    imports of a module's own parent packages are left out (they run first anyway)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name not in mods:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("mlsp_pipelines") else None
                if target and target != mod and not mod.startswith(f"{target}.") and not target.startswith(f"{mod}."):
                    targets.add(target)
        graph[mod] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_is_in_an_import_circle() -> None:
    graph = import_graph()
    assert "mlsp_pipelines.training.engine" in graph["mlsp_pipelines.training.launch"]  # the graph is read
    assert cycles(graph) == []


def test_no_private_name_is_imported_from_another_package() -> None:
    """A name with a leading underscore is its package's business: other packages use public names."""
    found = []
    for mod, path in _modules().items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("mlsp_pipelines"):
                source_pkg = node.module if (PKG.parent / node.module.replace(".", "/")).is_dir() \
                    else node.module.rsplit(".", 1)[0]
                private = [a.name for a in node.names if a.name.startswith("_")]
                private += [node.module] if any(p.startswith("_") for p in node.module.split(".")) else []
                if private and source_pkg != pkg:
                    found.append(f"{mod}: {node.module} {private}")
    assert found == []


def test_every_model_forward_says_its_shapes() -> None:
    missing = []
    for path in sorted((PKG / "models").glob("*.py")):
        for cls in (n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "forward":
                    doc = ast.get_docstring(fn) or ""
                    if "(B" not in doc or "→" not in doc and "->" not in doc:
                        missing.append(f"{path.name}: {cls.name}.forward")
    assert missing == []


def test_every_kedro_dataset_is_in_the_datasets_package_on_one_base() -> None:
    """One place and one base for the project's datasets; the package imports no task code."""
    import importlib
    import inspect

    from kedro.io import AbstractDataset

    from mlsp_pipelines.datasets.files import FileDataset

    outside, off_base = [], []
    for mod in _modules():
        if mod.endswith("__main__"):
            continue
        module = importlib.import_module(mod)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != mod or not issubclass(cls, AbstractDataset):
                continue
            if not mod.startswith("mlsp_pipelines.datasets."):
                outside.append(f"{mod}.{cls.__name__}")
            elif not issubclass(cls, FileDataset):
                off_base.append(f"{mod}.{cls.__name__}")
    assert outside == [] and off_base == []
    graph = import_graph()
    upward = {t for m, ts in graph.items() if m.startswith("mlsp_pipelines.datasets") for t in ts
              if not t.startswith(("mlsp_pipelines.datasets", "mlsp_pipelines.section"))}
    assert upward == set()
