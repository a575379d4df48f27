"""The checkpoint handle of the training loop (free of Kedro, so the loop runs anywhere)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .atomic import atomic_path

logger = logging.getLogger(__name__)


class CheckpointStore:
    """Handle a training node uses to save and resume its per-epoch checkpoint.

    The path lives in the catalog, not in the node: the node only calls ``load``/``save``/
    ``clear``. Saves are atomic, so a run killed mid-save resumes from the previous epoch.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        import torch

        if not self.path.is_file():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint must not block training
            logger.warning("%s: ignoring unreadable checkpoint (%s)", self.path, exc)
            return None

    def save(self, state: dict[str, Any]) -> None:
        import torch

        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)  # a file object: no temporary name inside the archive

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.path)!r})"
