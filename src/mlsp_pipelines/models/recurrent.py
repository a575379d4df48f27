"""``rnn`` (Elman), ``gru`` and ``lstm``: recurrent models over the frame sequence.

All three share one implementation so that comparisons between them (e.g. how gradients
flow back through time) differ only in the recurrent cell.
Elman: h_t = phi(W_x x_t + W_h h_{t-1} + b), phi in {tanh, relu}.

``skip`` (per-step models, off by default) adds a linear map of the input to every step's
output, ``y_t = head(h_t) + W_s x_t``: the part of a response that is instantaneous and linear
in the input (the elastic response of a solid to its stretch) passes straight through and
extrapolates linearly beyond the training range, while the recurrent state only has to carry
the history (e.g. the viscous strain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from mlsp_pipelines.models._config import (
    check_bool,
    check_choice,
    check_dropout,
    check_int,
    make_config,
    set_field,
)
from mlsp_pipelines.models._layers import (
    TIME_POOLING,
    check_features,
    check_sequence_input,
    make_rnn,
    pool_time,
)
from mlsp_pipelines.models.registry import register_model


@dataclass(frozen=True)
class RecurrentConfig:
    """``pooling`` (last|mean) summarises the sequence unless ``per_step`` is set.
    ``dropout`` acts between stacked layers and before the output layer. ``skip`` adds a
    linear input-to-output path at every step (``per_step`` only)."""

    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.1
    bidirectional: bool = False
    per_step: bool = False
    pooling: str = "last"
    skip: bool = False

    def __post_init__(self) -> None:
        check_int("hidden_size", self.hidden_size)
        check_int("num_layers", self.num_layers)
        set_field(self, "dropout", check_dropout("dropout", self.dropout))
        check_bool("bidirectional", self.bidirectional)
        check_bool("per_step", self.per_step)
        check_choice("pooling", self.pooling, TIME_POOLING)
        check_bool("skip", self.skip)
        if self.skip and not self.per_step:
            raise ValueError("skip=True needs per_step=True (it adds the input of each step to that step's output)")


@dataclass(frozen=True)
class RNNConfig(RecurrentConfig):
    nonlinearity: str = "tanh"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("nonlinearity", self.nonlinearity, ("tanh", "relu"))


@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    pass


@dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
    pass


class RecurrentModel(nn.Module):
    """Input (B, T, F) -> logits (B, out), or (B, T, out) if ``per_step``.

    Keyword arguments are the fields of the subclass's config.
    """

    rnn_type: ClassVar[str]
    config_cls: ClassVar[type[RecurrentConfig]]

    def __init__(self, *, in_features: int, out_features: int, **config: Any) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config = make_config(self.config_cls, config, model_name=self.rnn_type)
        cfg = self.config
        self.rnn = make_rnn(
            self.rnn_type,
            input_size=self.in_features,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            bidirectional=cfg.bidirectional,
            nonlinearity=getattr(cfg, "nonlinearity", "tanh"),
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size * (2 if cfg.bidirectional else 1), self.out_features)
        # Created only when asked for, so state dicts and parameter counts of other models are unchanged.
        self.skip = nn.Linear(self.in_features, self.out_features, bias=False) if cfg.skip else None

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """Top layer's hidden sequence (B, T, H*dirs), e.g. for gradient-through-time plots."""
        check_sequence_input(x, self.in_features, self.rnn_type)
        return self.rnn(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.dropout(self.hidden_states(x))
        if self.config.per_step:
            out = self.head(seq)
            return out if self.skip is None else out + self.skip(x)
        return self.head(pool_time(seq, self.config.pooling, bidirectional=self.config.bidirectional))


@register_model("rnn", config_cls=RNNConfig)
class ElmanRNN(RecurrentModel):
    """Elman RNN; see :class:`RecurrentModel`."""

    rnn_type = "rnn"
    config_cls = RNNConfig


@register_model("gru", config_cls=GRUConfig)
class GRUModel(RecurrentModel):
    """GRU; see :class:`RecurrentModel`."""

    rnn_type = "gru"
    config_cls = GRUConfig


@register_model("lstm", config_cls=LSTMConfig)
class LSTMModel(RecurrentModel):
    """LSTM; see :class:`RecurrentModel`."""

    rnn_type = "lstm"
    config_cls = LSTMConfig
