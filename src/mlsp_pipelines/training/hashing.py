"""Stable hashes of configuration and data: a checkpoint is resumed only under the configuration
and on the very data it was trained with."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from torch import Tensor


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able configuration (decides whether a checkpoint may be resumed)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def array_digest(a: np.ndarray | Tensor) -> str:
    """Content hash of an array: a checkpoint is only resumed on the very data it was trained on."""
    arr = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
    h = hashlib.sha256(str((arr.shape, arr.dtype.str)).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]
