"""One run of a pipeline at a time per project folder.

Two ``kedro run``s of the same pipeline in one folder would write the same ``data/`` files and
resume each other's checkpoints. The first run holds an OS file lock (``data/.locks/<name>.lock``,
released by the OS even after ``kill -9``) and describes itself in a JSON file beside it; a second
run is refused with a message naming the first (pid, start time, command, MLflow run).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any



class PipelineBusyError(RuntimeError):
    """Another run of the same pipeline holds this project folder."""


class PipelineLock:
    """``acquire()`` or raise :class:`PipelineBusyError`; ``release()`` when the run ends."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self.path = self.root / "data" / ".locks" / f"{name}.lock"
        self.info_path = self.path.with_suffix(".json")
        self._lock: Any = None
        self.info: dict[str, Any] = {}

    def acquire(self, **info: Any) -> None:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise PipelineBusyError(
                f"pipeline '{self.name}' is already running in {self.root}: {self.describe(self.holder())}. "
                "Two runs in one folder would share data/ and checkpoints; wait for it to finish, stop it, "
                "or run from another clone."
            ) from None
        self._lock = lock
        self.info = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), **info}
        self._write()

    def update(self, **info: Any) -> None:
        """Add facts learnt after acquiring (e.g. the MLflow run) to the holder's description."""
        if self._lock is not None:
            self.info.update(info)
            self._write()

    def release(self) -> None:
        if self._lock is None:
            return
        self.info_path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @staticmethod
    def describe(info: dict[str, Any]) -> str:
        if not info:
            return "a process that has not described itself yet"
        parts = [f"pid {info.get('pid')} on {info.get('host')}", f"started {info.get('started')}"]
        if info.get("command"):
            parts.append(f"command '{info['command']}'")
        if info.get("mlflow_run_name"):
            parts.append(f"MLflow run '{info['mlflow_run_name']}' ({info.get('mlflow_run_id')})")
        return ", ".join(parts)

    def _write(self) -> None:
        from mlsp_pipelines.datasets.atomic import atomic_path

        with atomic_path(self.info_path) as tmp:
            tmp.write_text(json.dumps(self.info, indent=2), encoding="utf-8")
