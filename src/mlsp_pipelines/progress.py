"""Progress bars that one switch turns off (parameter ``progress: false`` or ``MLSP_PROGRESS=0``)."""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress_enabled(enabled: bool = True) -> bool:
    """False when the caller or the environment (``MLSP_PROGRESS=0``) turns bars off."""
    return enabled and os.environ.get("MLSP_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


def progress(*, total: int | None = None, desc: str = "", enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar (to stderr) or a disabled one that costs nothing."""
    return tqdm(total=total, desc=desc, disable=not progress_enabled(enabled), dynamic_ncols=True, leave=False, **kwargs)
