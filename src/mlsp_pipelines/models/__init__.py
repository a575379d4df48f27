"""Model architectures, selected by name through one registry.

Importing this package is cheap: it loads the registry and the config classes (no torch), so
parameters are validated at a run's start before torch loads. The built-in families (mlp, cnn,
crnn, rnn, gru, lstm, attn_lstm, transformer, ...) are imported on the first
:func:`build_model`. A new family lives in its own module, registers itself with
:func:`register_model`, and is added to ``registry.BUILTIN_MODULES`` (its config to
:mod:`~mlsp_pipelines.models.configs`).
"""

from mlsp_pipelines.models.registry import (
    build_model,
    count_parameters,
    list_models,
    model_config,
    rebuild_model,
    register_model,
)

__all__ = [
    "build_model",
    "count_parameters",
    "list_models",
    "model_config",
    "rebuild_model",
    "register_model",
]
