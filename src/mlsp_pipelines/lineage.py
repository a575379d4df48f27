"""What a run needs to be reproduced exactly: code version, data versions, configuration,
environment and command line. Recorded on every MLflow run (tags + ``lineage.json``).

Data versions are computed from the data the run actually used, never copied from
``dvc.lock``: every DVC-tracked path (a ``deps``/``outs`` entry of ``dvc.lock``) that holds a
dataset the run loaded is hashed the way DVC hashes it (md5 of a file; for a folder, md5 of the
sorted ``[{"md5", "relpath"}]`` list plus ``.dir``), and compared with what ``dvc.lock``
records, so a mismatch (data changed since the last ``dvc repro``/``dvc commit``, another
environment or parameters) is reported instead of hidden. The in-memory train/validation/test
arrays are identified by content digests (:func:`data_digest`), the same ones the MLflow dataset
inputs carry.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlsp_pipelines.tracking.flatten import flatten

KEY_PACKAGES = ("kedro", "torch", "mlflow", "dvc", "numpy", "scipy", "pandas", "librosa", "soundfile", "gensim",
                "scikit-learn", "pydantic")
_IGNORED_PARTS = ("__pycache__",)
_CHUNK = 1 << 20


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers."""
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def data_digest(*arrays: Any) -> str:
    """Content digest (sha256, 16 hex) of arrays or tensors: shape, dtype and every byte, so two
    runs share a digest exactly when they used the same numbers."""
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        if arr.dtype.kind in "OU":
            arr = np.asarray([str(x) for x in arr.reshape(-1)], dtype=str).reshape(arr.shape)
        h.update(str((arr.shape, arr.dtype.str)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def dvc_locked(root: Path) -> dict[str, str]:
    """``{path: md5}`` of every ``deps``/``outs`` entry of ``dvc.lock`` (all stages)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except yaml.YAMLError:
        return {}
    out: dict[str, str] = {}
    for stage in stages.values():
        for entry in stage.get("deps", []) + stage.get("outs", []):
            if "md5" in entry:
                out[str(entry["path"]).rstrip("/")] = entry["md5"]
    return out


def _file_md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security measure
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def dvc_md5(path: Path) -> str | None:
    """DVC's hash of a file or folder (``None`` when it does not exist)."""
    if path.is_file():
        return _file_md5(path)
    if not path.is_dir():
        return None
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_PARTS]
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            full = Path(dirpath) / name
            entries.append({"md5": _file_md5(full), "relpath": full.relative_to(path).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    blob = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(blob).hexdigest() + ".dir"  # noqa: S324


def tracked_path_of(root: Path, filepath: str | os.PathLike, locked: dict[str, str]) -> str | None:
    """The ``dvc.lock`` path that is ``filepath`` or contains it (relative to ``root``)."""
    try:
        rel = Path(os.path.abspath(Path(root) / filepath)).relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None
    best = None
    for p in locked:
        if (rel == p or rel.startswith(p + "/")) and (best is None or len(p) > len(best)):
            best = p
    return best


def data_versions(root: Path, used: set[str], locked: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """For every DVC-tracked path in ``used``: its hash now and what ``dvc.lock`` records."""
    locked = dvc_locked(root) if locked is None else locked
    out = {}
    for p in sorted(used):
        now = dvc_md5(root / p)
        out[p] = {"md5": now, "dvc_lock": locked.get(p), "matches_dvc_lock": now is not None and now == locked.get(p)}
    return out


def params_digest(params: dict[str, Any]) -> str:
    """Short hash of the resolved parameters (equal digests → equal configuration)."""
    return hashlib.sha256(yaml.safe_dump(params, sort_keys=True).encode()).hexdigest()[:16]


def collect(params: dict[str, Any], git: dict[str, str], command: str) -> dict[str, Any]:
    """The lineage record of one run, before any data is read (``data_versions`` and
    ``datasets`` are filled in as the run uses data)."""
    seeds = {k: v for k, v in flatten(params).items() if k.endswith("seed")}
    return {
        "git": git,
        "command": command,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "kernel_tier": _kernel_tier(),
        "packages": package_versions(),
        "data_versions": {},
        "datasets": {},
        "params_digest": params_digest(params),
        "seeds": seeds,
        "params": params,
    }


def _kernel_tier() -> str:
    """The CPU kernel tier that made the run's numbers (``avx2``, ``sse4``, or ``native`` unpinned)."""
    from mlsp_pipelines import determinism

    return str(determinism.status()["tier"])
