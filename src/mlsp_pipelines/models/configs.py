"""Hyper-parameters of every registered architecture: one pydantic class per model family.

They live apart from the modules (which import torch) so that a run validates every model entry
of its parameters at start-up -- unknown keys, bad values, with the key in the message -- without
importing torch (about a second of every ``kedro run``, ``kedro registry list`` and DVC stage).
Each model module re-exports its config (``from mlsp_pipelines.models.cnn import CNNConfig``
works) and registers the class under the same name (:func:`~mlsp_pipelines.models.registry.register_model`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlsp_pipelines.models._config import (
    Bool,
    Dropout,
    IntTuple,
    ModelConfig,
    NonNegativeInt,
    PositiveInt,
)
from mlsp_pipelines.models.registry import register_config

Pooling2d = Literal["max", "mean", "min"]
TimePooling = Literal["last", "mean"]
GlobalPooling = Literal["mean", "max", "meanmax"]
Activation = Literal["relu", "tanh", "gelu"]  # the keys of ACTIVATIONS
Method = Literal["rk4", "heun", "euler"]


def check_special_indices(pad_idx: int, bos_idx: int, eos_idx: int) -> None:
    """Special token indices (non-negative integers by their field type) must differ."""
    if len({pad_idx, bos_idx, eos_idx}) != 3:
        raise ValueError(f"pad_idx, bos_idx and eos_idx must differ, got {pad_idx!r}, {bos_idx!r}, {eos_idx!r}")


class MLPConfig(ModelConfig):
    """``hidden_sizes`` may be empty: a single linear layer (logistic/linear regression)."""

    hidden_sizes: IntTuple = (128, 64)
    dropout: Dropout = 0.1
    activation: Activation = "relu"
    per_step: Bool = False
    # pooled mode: ``mean`` / ``meanstd`` summarise the bands over time before the MLP;
    # ``frames`` applies the hidden layers to every frame alone, then pools mean and max over time
    pooling: Literal["mean", "meanstd", "frames"] = "meanstd"
    # batch-normalise the pooled statistics before the first layer: a band's mean over a clip varies
    # far less between clips than its std over time, and without standardising them the MLP fell
    # below logistic regression on the same statistics (real noisy digits: 0.26 vs 0.40 accuracy)
    pooled_norm: Bool = True


class CNNConfig(ModelConfig):
    """One conv block per entry of ``channels`` (its length is the depth, values the widths)."""

    channels: IntTuple = Field((16, 32, 64, 128), min_length=1)
    convs_per_block: PositiveInt = 2
    kernel_size: PositiveInt = 3
    stride: PositiveInt = 1
    padding: NonNegativeInt = 1
    pooling: Pooling2d = "max"
    batch_norm: Bool = True
    dropout: Dropout = 0.1
    global_pooling: GlobalPooling = "meanmax"
    per_step: Bool = False

    @model_validator(mode="after")
    def _check(self) -> CNNConfig:
        if self.per_step:
            raise ValueError(
                "per_step=True is not supported by 'cnn' (it only gives pooled output (B, out)); "
                "use 'crnn' or a recurrent model for per-step output"
            )
        return self


class CRNNConfig(ModelConfig):
    """Each conv block pools by ``time_pool`` x ``freq_pool`` (``time_pool=1``: keep all frames)."""

    channels: IntTuple = Field((16, 32), min_length=1)
    convs_per_block: PositiveInt = 2
    kernel_size: PositiveInt = 3
    pooling: Pooling2d = "max"
    freq_pool: PositiveInt = 2
    time_pool: PositiveInt = 1
    batch_norm: Bool = True
    rnn_type: Literal["gru", "lstm"] = "gru"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: Bool = False
    dropout: Dropout = 0.1
    temporal_pooling: TimePooling = "mean"
    per_step: Bool = False

    @model_validator(mode="after")
    def _check(self) -> CRNNConfig:
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so 'same' padding keeps the time axis, got {self.kernel_size!r}"
            )
        if self.per_step and self.time_pool != 1:
            raise ValueError(
                f"per_step=True needs time_pool=1 (one output per input frame), got time_pool={self.time_pool!r}"
            )
        return self


class RecurrentConfig(ModelConfig):
    """``pooling`` (last|mean) summarises the sequence unless ``per_step`` is set.
    ``dropout`` acts between stacked layers and before the output layer. ``skip`` adds a
    linear input-to-output path at every step (``per_step`` only)."""

    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    dropout: Dropout = 0.1
    bidirectional: Bool = False
    per_step: Bool = False
    pooling: TimePooling = "last"
    skip: Bool = False

    @model_validator(mode="after")
    def _check(self) -> RecurrentConfig:
        if self.skip and not self.per_step:
            raise ValueError("skip=True needs per_step=True (it adds the input of each step to that step's output)")
        return self


class RNNConfig(RecurrentConfig):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class GRUConfig(RecurrentConfig):
    pass


class LSTMConfig(RecurrentConfig):
    pass


class AttnLSTMConfig(ModelConfig):
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: Bool = True
    dropout: Dropout = 0.1
    attention_size: PositiveInt = 64
    frontend: IntTuple = ()  # conv-stem channels per block; () = LSTM on the mel frames
    frontend_convs: PositiveInt = 2


class TransformerConfig(ModelConfig):
    """``pooling`` (cls|mean) is ignored when ``per_step`` is set. Pre-norm layers
    (``norm_first``) by default: they train more stably on small data sets."""

    d_model: PositiveInt = 64
    n_heads: PositiveInt = 4
    n_layers: PositiveInt = 2
    dim_feedforward: PositiveInt = 128
    dropout: Dropout = 0.1
    activation: Literal["relu", "gelu"] = "gelu"
    norm_first: Bool = True
    pooling: Literal["cls", "mean"] = "cls"
    causal: Bool = False
    per_step: Bool = False
    frontend: IntTuple = ()  # conv-stem channels per block; () = one token per mel frame
    frontend_convs: PositiveInt = 2

    @model_validator(mode="after")
    def _check(self) -> TransformerConfig:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model!r}, n_heads={self.n_heads!r}"
            )
        if self.frontend and self.per_step:
            raise ValueError("frontend pools time, so it cannot be combined with per_step=True")
        return self


class RateODEConfig(ModelConfig):
    """``hidden_size``/``num_layers``: the tanh MLP giving ``A`` and ``G``; ``substeps`` and
    ``method``: the integrator over each sampling interval."""

    hidden_size: PositiveInt = 32
    num_layers: PositiveInt = 2
    substeps: PositiveInt = 1
    method: Method = "rk4"


class SeqGeneratorConfig(ModelConfig):
    """``n_steps`` default output length; ``context_size`` width of the per-step embedding of
    the condition vector; ``dropout`` between stacked layers and before the output layer."""

    n_steps: PositiveInt = 100
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    context_size: PositiveInt = 32
    dropout: Dropout = 0.0


class RNNSeq2SeqConfig(ModelConfig):
    """``attention``: bahdanau (additive) | luong (multiplicative) | none (fixed summary).
    ``bidirectional`` applies to the encoder; the decoder is unidirectional. ``attention_size``
    is used by Bahdanau attention only."""

    cell: Literal["gru", "lstm"] = "gru"
    attention: Literal["bahdanau", "luong", "none"] = "bahdanau"
    embedding_dim: PositiveInt = 32
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: Bool = True
    attention_size: PositiveInt = 64
    dropout: Dropout = 0.1
    pad_idx: NonNegativeInt = 0
    bos_idx: NonNegativeInt = 1
    eos_idx: NonNegativeInt = 2

    @model_validator(mode="after")
    def _check(self) -> RNNSeq2SeqConfig:
        check_special_indices(self.pad_idx, self.bos_idx, self.eos_idx)
        return self


class TransformerSeq2SeqConfig(ModelConfig):
    """Pre-norm layers (``norm_first``) by default: they train more stably on small data."""

    d_model: PositiveInt = 64
    n_heads: PositiveInt = 4
    num_encoder_layers: PositiveInt = 2
    num_decoder_layers: PositiveInt = 2
    dim_feedforward: PositiveInt = 128
    dropout: Dropout = 0.1
    activation: Literal["relu", "gelu"] = "relu"
    norm_first: Bool = True
    # one embedding matrix for source, target and the output layer (needs seq2seq.vocab.shared):
    # fewer parameters and better rare-word estimates on small corpora (Press & Wolf 2017)
    tie_embeddings: Bool = False
    pad_idx: NonNegativeInt = 0
    bos_idx: NonNegativeInt = 1
    eos_idx: NonNegativeInt = 2

    @model_validator(mode="after")
    def _check(self) -> TransformerSeq2SeqConfig:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model!r}, n_heads={self.n_heads!r}"
            )
        check_special_indices(self.pad_idx, self.bos_idx, self.eos_idx)
        return self


class Word2VecConfig(ModelConfig):
    """``negative``: noise words per training example; ``sparse``: sparse embedding gradients
    (only the rows a batch touches are updated — use with ``train.optimizer: sparse_adam``)."""

    negative: PositiveInt = 5
    sparse: Bool = False


#: Registry name -> config class of the built-in architectures (the model modules register the
#: same pairs with their classes; :func:`register_config` refuses a mismatch).
BUILTIN_CONFIGS: dict[str, type[ModelConfig]] = {
    "mlp": MLPConfig,
    "cnn": CNNConfig,
    "crnn": CRNNConfig,
    "rnn": RNNConfig,
    "gru": GRUConfig,
    "lstm": LSTMConfig,
    "attn_lstm": AttnLSTMConfig,
    "transformer": TransformerConfig,
    "rate_ode": RateODEConfig,
    "seq_generator": SeqGeneratorConfig,
    "rnn_seq2seq": RNNSeq2SeqConfig,
    "transformer_seq2seq": TransformerSeq2SeqConfig,
    "word2vec_sg": Word2VecConfig,
    "word2vec_cbow": Word2VecConfig,
}
for _name, _cls in BUILTIN_CONFIGS.items():
    register_config(_name, _cls)
