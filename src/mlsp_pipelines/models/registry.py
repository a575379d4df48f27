"""Name -> (module class, config class) registry.

Pipelines refer to architectures by name in YAML; the registry turns that name plus its
parameters into a validated config (:func:`model_config`, cheap, done up front) and later
into a module (:func:`build_model`, once the data fixes ``in_features``/``out_features``).

Two tables: config classes (:mod:`~mlsp_pipelines.models.configs`, no torch), which is all
that parameter validation at a run's start needs, and module classes, whose modules import
torch and are loaded on the first :func:`build_model` (or any look-up of a class).

Contract for a registered class: a constructor
``cls(config: ConfigCls | None = None, *, in_features: int, out_features: int)`` taking its
config object (a pydantic model, see :class:`~mlsp_pipelines.models._config.ModelConfig`),
so ``help(cls)`` leads to the hyper-parameters. Saved bundles keep the config as plain
keyword arguments, so they load without pickled classes.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=type)

_REGISTRY: dict[str, tuple[type[nn.Module], type[BaseModel]]] = {}
_CONFIGS: dict[str, type[BaseModel]] = {}
#: Modules of the built-in architectures (each registers itself when imported).
BUILTIN_MODULES = ("attention", "cnn", "constitutive", "crnn", "generator", "mlp", "recurrent", "seq2seq",
                   "seq2seq_transformer", "transformer", "word2vec")

#: Keys that belong to ``build_model`` itself, never to a config; named in error hints.
_BUILD_ARGS = ("in_features", "out_features")


def _qualified(obj: type) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def register_config(name: str, config_cls: type[BaseModel]) -> None:
    """Register the config class of model ``name`` (torch-free; the module class comes with
    :func:`register_model`). Re-registering the same class is allowed, another one is not."""
    existing = _CONFIGS.get(name)
    if existing is not None and _qualified(existing) != _qualified(config_cls):
        raise ValueError(f"model name {name!r} already has the config class {_qualified(existing)}")
    _CONFIGS[name] = config_cls


def _load_configs() -> None:
    importlib.import_module("mlsp_pipelines.models.configs")  # registers the built-in configs


def _load_builtin_models() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"mlsp_pipelines.models.{module}")


def register_model(
    name: str, cls: type[nn.Module] | None = None, config_cls: type[BaseModel] | None = None
) -> Any:
    """Register ``cls`` with its config class (a pydantic model) under ``name``.

    Use as a function, ``register_model("seq2seq", Seq2Seq, Seq2SeqConfig)``, or as a class
    decorator, ``@register_model("mlp", config_cls=MLPConfig)``. Re-registering the same
    class (e.g. after a module reload) is allowed; taking a name used by another class is not.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if not (isinstance(config_cls, type) and issubclass(config_cls, BaseModel)):
        raise ValueError(  # noqa: TRY004 - a ValueError, like every other registration error
            f"config_cls for model {name!r} must be a pydantic model class, got {config_cls!r}"
        )

    def _register(model_cls: M) -> M:
        existing = _REGISTRY.get(name)
        if existing is not None and (
            _qualified(existing[0]) != _qualified(model_cls)
            or _qualified(existing[1]) != _qualified(config_cls)
        ):
            raise ValueError(
                f"model name {name!r} is already registered to {_qualified(existing[0])}"
            )
        register_config(name, config_cls)
        _REGISTRY[name] = (model_cls, config_cls)
        return model_cls

    if cls is None:
        return _register
    return _register(cls)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    _load_configs()
    return sorted(set(_CONFIGS) | set(_REGISTRY))


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")


def _config_entry(name: str) -> type[BaseModel]:
    _load_configs()
    try:
        return _CONFIGS[name]
    except (KeyError, TypeError):
        raise _unknown(name) from None


def _entry(name: str) -> tuple[type[nn.Module], type[BaseModel]]:
    _config_entry(name)  # an unknown name fails here, before torch loads
    if name not in _REGISTRY:
        _load_builtin_models()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise _unknown(name) from None


def model_config(name: str, **kwargs: Any) -> Any:
    """Validated (frozen) config of model ``name`` from keyword arguments; needs no data shapes.

    Raises ``ValueError`` for an unknown name (listing the available ones), an unknown key
    (listing the accepted ones) or a bad value (naming the model, the key and the value), so
    the parameter sections that call it up front fail with the key in their message.
    """
    config_cls = _config_entry(name)
    accepted = list(config_cls.model_fields)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        hint = ""
        if set(unknown) & set(_BUILD_ARGS):
            hint = " (in_features/out_features are arguments of build_model, not config fields)"
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"accepted: {', '.join(accepted)}{hint}"
        )
    try:
        return config_cls(**kwargs)
    except ValidationError as err:
        # pydantic's own error is a ValueError too, but raised inside another model's validator
        # (ModelSpec) it would be nested; a flat message keeps the key and value readable.
        raise ValueError(f"model {name!r}: {describe_errors(err)}") from None


def describe_errors(err: ValidationError) -> str:
    """``key: message (got value)`` per error of ``err``, ``; ``-joined; a cross-field error (no
    key) is its message alone, which names the keys itself."""
    parts = []
    for e in err.errors(include_url=False):
        key = ".".join(map(str, e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{key}: {msg} (got {e['input']!r})" if key else msg)
    return "; ".join(parts)


def build_model(name: str, *, in_features: int, out_features: int, **kwargs: Any) -> nn.Module:
    """Instantiate model ``name`` for inputs with ``in_features`` features per step and
    ``out_features`` outputs (classes or regression targets)."""
    model_cls, _ = _entry(name)
    config = model_config(name, **kwargs)
    model = model_cls(config, in_features=in_features, out_features=out_features)
    logger.debug(
        "built model %r (%d trainable parameters) with %r", name, count_parameters(model), config
    )
    return model


BUNDLE_KEYS = ("arch", "in_features", "out_features", "kwargs", "state_dict")


def rebuild_model(bundle: dict[str, Any]) -> nn.Module:
    """The trained module of a saved model bundle (every pipeline's ``model`` artefact and the
    serving package), in ``eval()`` mode: the one way back from an artefact to its module."""
    missing = [k for k in BUNDLE_KEYS if k not in bundle]
    if missing:
        raise KeyError(f"model bundle lacks {missing} (has {sorted(bundle)}): not a bundle saved by a training node")
    net = build_model(bundle["arch"], in_features=int(bundle["in_features"]), out_features=int(bundle["out_features"]),
                      **bundle["kwargs"])
    net.load_state_dict(bundle["state_dict"])
    return net.eval()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (frozen ones excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

