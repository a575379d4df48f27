"""The base of every model config and the field types the configs share.

Configs are pydantic models, like the rest of the project's parameters, so a typo or a bad
value in the YAML parameters fails when the config is built, before any data is loaded or any
model trained, with an error naming the key (``channels.0``, ``dropout``). The types here are
stricter than pydantic's defaults where YAML could otherwise slip a wrong value through: an
integer field takes no ``2.5``, ``"3"`` or ``True``, a flag takes no ``"false"`` (a string,
truthy) and choices are ``Literal`` types.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, StrictBool
from pydantic_core import PydanticCustomError

from mlsp_pipelines.section import Section

__all__ = [
    "Bool",
    "Dropout",
    "Int",
    "IntTuple",
    "ModelConfig",
    "NonNegativeInt",
    "PositiveInt",
    "check_choice",
    "check_int",
    "resolve_config",
]

C = TypeVar("C", bound="ModelConfig")


class ModelConfig(Section):
    """Base of the model configurations (unknown keys are errors, values immutable: a model's
    config is what it was built with)."""


def _integer(value: Any) -> Any:
    """Any integral number (numpy ones too), but no bool, float or string: YAML ``2.5``,
    ``"3"`` or ``true`` for a size is a mistake, not something to convert."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PydanticCustomError("integer_type", "Input should be an integer")
    return int(value)


def _real(value: Any) -> Any:
    """Any real number, but no bool or string."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PydanticCustomError("float_type", "Input should be a number")
    return float(value)


Int = Annotated[int, BeforeValidator(_integer)]
PositiveInt = Annotated[Int, Field(ge=1)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
#: A dropout probability in [0, 1).
Dropout = Annotated[float, BeforeValidator(_real), Field(ge=0.0, lt=1.0)]
#: A flag: ``true``/``false`` only (``"false"`` is a truthy string, so it is refused).
Bool = StrictBool
#: Integers >= 1, from a YAML list; stored as a tuple so the config stays immutable.
IntTuple = tuple[PositiveInt, ...]


def resolve_config(config_cls: type[C], config: C | None, model_name: str) -> C:
    """``config``, or the defaults for ``None``; anything else fails here, naming the class to
    build, instead of at the first attribute the constructor reads."""
    if config is None:
        return config_cls()
    if not isinstance(config, config_cls):
        raise TypeError(
            f"{model_name} takes a {config_cls.__name__} (or None for the defaults), got "
            f"{type(config).__name__}; build one with model_config({model_name!r}, **kwargs)"
        )
    return config


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as ``int`` if it is an integer (not a bool) ``>= minimum``; for the
    arguments that are not config fields (data sizes, decoding lengths)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {'|'.join(choices)}, got {value!r}")
    return value
