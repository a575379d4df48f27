"""Model architectures, selected by name through one registry.

Importing this package registers the built-in families (mlp, cnn, crnn, rnn, gru, lstm,
attn_lstm, transformer). A new family lives in its own module, registers itself with
:func:`register_model`, and is imported here.
"""

from mlsp_pipelines.models.registry import (
    build_model,
    count_parameters,
    list_models,
    model_config,
    rebuild_model,
    register_model,
)

# Imported for their registration side effect.
from mlsp_pipelines.models import (  # noqa: F401  isort: skip
    attention,
    cnn,
    constitutive,
    crnn,
    generator,
    mlp,
    recurrent,
    seq2seq,
    seq2seq_transformer,
    transformer,
    word2vec,
)

__all__ = [
    "build_model",
    "count_parameters",
    "list_models",
    "model_config",
    "rebuild_model",
    "register_model",
]
