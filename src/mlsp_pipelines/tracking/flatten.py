"""The one flattener of nested configuration and reports: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``,
for MLflow parameters and metrics, the lineage record's seeds and the reproduce command line."""

from __future__ import annotations

import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")  # what MLflow accepts in metric keys


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts / pydantic models → ``{"a.b.c": value}`` (lists kept as values)."""
    if hasattr(d, "model_dump"):
        d = d.model_dump()
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if hasattr(v, "model_dump") or (isinstance(v, dict) and v):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


_RENAMED: set[str] = set()


def metric_key(key: str) -> str:
    """``key`` with characters MLflow rejects in metric names (e.g. from class labels such as
    ``dog(bark)``) replaced by ``_``; each renaming is reported once. A parameter count
    ``params`` is logged as ``n_params`` (a metric named ``params`` reads as the Parameters tab)."""
    if key == "params" or key.endswith(".params"):  # the parameter count: not to be read as the Parameters tab
        key = key[: -len("params")] + "n_params"
    safe = _BAD_KEY_CHARS.sub("_", key)
    if safe != key and key not in _RENAMED:
        _RENAMED.add(key)
        logger.warning("metric %r logged as %r (MLflow allows letters, digits, _ - . / and space)", key, safe)
    return safe


def flatten_numbers(value: Any) -> dict[str, float]:
    """The numeric leaves of a nested dict, dotted keys (strings, lists and bools left out)."""
    return {k: v for k, v in flatten(value).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
