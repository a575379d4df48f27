"""What the benchmarks share: a throw-away copy of the project that a ``kedro`` process can run in."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_copy(dest: Path) -> Path:
    """conf/ (without the machine's conf/local) and pyproject.toml in ``dest``; the installed
    package provides the code (Kedro only checks that ``src/`` exists)."""
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    (dest / "src").mkdir()
    return dest
