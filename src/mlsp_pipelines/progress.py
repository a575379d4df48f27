"""Progress bars that one switch turns off (parameter ``progress: false`` or ``MLSP_PROGRESS=0``)."""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

# No tqdm monitor thread: it would be the one thread that makes forking feature workers unsafe.
tqdm.monitor_interval = 0


def progress_enabled(enabled: bool = True) -> bool:
    """False when the caller or the environment (``MLSP_PROGRESS=0``) turns bars off."""
    return enabled and os.environ.get("MLSP_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


def progress(*, total: int | None = None, desc: str = "", enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr when it is a terminal; a disabled one (costs nothing) otherwise."""
    disable = None if progress_enabled(enabled) else True  # None: tqdm turns itself off on non-TTYs
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
