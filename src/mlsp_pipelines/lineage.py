"""What a run needs to be reproduced exactly: code version, data versions, configuration,
environment and command line. Recorded on every MLflow run (tags + ``lineage.json``)."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

KEY_PACKAGES = ("kedro", "torch", "mlflow", "dvc", "numpy", "scipy", "pandas", "librosa", "soundfile", "gensim",
                "scikit-learn", "pydantic")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers."""
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def dvc_data_versions(root: Path, experiment: str) -> dict[str, str]:
    """``{path: md5}`` of every dependency and output recorded in ``dvc.lock`` for this
    pipeline's stages (``<experiment>_*``): the DVC hash of each input dataset."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except yaml.YAMLError:
        return {}
    out: dict[str, str] = {}
    for name, stage in stages.items():
        if name != experiment and not name.startswith(f"{experiment}_"):
            continue
        for entry in stage.get("deps", []) + stage.get("outs", []):
            if "md5" in entry:
                out[entry["path"]] = entry["md5"]
    return out


def params_digest(params: dict[str, Any]) -> str:
    """Short hash of the resolved parameters (equal digests → equal configuration)."""
    return hashlib.sha256(yaml.safe_dump(params, sort_keys=True).encode()).hexdigest()[:16]


def collect(root: Path, experiment: str, params: dict[str, Any], git: dict[str, str], command: str) -> dict[str, Any]:
    """The lineage record of one run."""
    seeds = {k: v for k, v in _walk(params) if k.endswith("seed")}
    return {
        "git": git,
        "command": command,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "data_versions": dvc_data_versions(root, experiment),
        "params_digest": params_digest(params),
        "seeds": seeds,
        "params": params,
    }


def _walk(d: Any, prefix: str = ""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, d
