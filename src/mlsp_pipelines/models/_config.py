"""Argument checks shared by every model config.

Configs are validated when they are built, so a typo or a bad value in the YAML parameters
fails with a message naming the parameter before any data is loaded or any model trained.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

C = TypeVar("C")

#: Keys that belong to ``build_model`` itself, never to a config; named in error hints.
_BUILD_ARGS = ("in_features", "out_features")


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as ``int`` if it is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_dropout(name: str, value: Any) -> float:
    """Return ``value`` as ``float`` if it is a probability in ``[0, 1)``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) < 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {'|'.join(choices)}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Reject truthy strings such as ``"false"`` that YAML quoting can produce."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_int_tuple(
    name: str, value: Any, *, minimum: int = 1, allow_empty: bool = False
) -> tuple[int, ...]:
    """Return a list of integers (as YAML gives it) as an immutable tuple, checking each item."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    items = tuple(value)
    if not items and not allow_empty:
        raise ValueError(f"{name} must be a non-empty list of integers, got {value!r}")
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < minimum:
            raise ValueError(
                f"{name}[{i}] must be an integer >= {minimum}, got {item!r} ({name}={list(items)!r})"
            )
    return tuple(int(item) for item in items)


def set_field(obj: Any, name: str, value: Any) -> None:
    """Normalise a field of a frozen dataclass inside ``__post_init__``."""
    object.__setattr__(obj, name, value)


def config_fields(config_cls: type) -> list[str]:
    """Names a config dataclass accepts, in declaration order."""
    return [f.name for f in dataclasses.fields(config_cls) if f.init]


def make_config(config_cls: type[C], kwargs: Mapping[str, Any], *, model_name: str) -> C:
    """Build ``config_cls(**kwargs)``, turning unknown keys into a ``ValueError`` that lists
    the accepted ones (a ``TypeError`` from the dataclass would not say what is allowed)."""
    accepted = config_fields(config_cls)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        hint = ""
        if set(unknown) & set(_BUILD_ARGS):
            hint = " (in_features/out_features are arguments of build_model, not config fields)"
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for model {model_name!r}; "
            f"accepted: {', '.join(accepted)}{hint}"
        )
    return config_cls(**kwargs)


def config_values(config: Any) -> dict[str, Any]:
    """Field values of a config dataclass, shallow (unlike ``asdict``), for constructor kwargs."""
    return {name: getattr(config, name) for name in config_fields(type(config))}
