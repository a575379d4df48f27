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

from typing import ClassVar

import torch
from torch import nn

from mlsp_pipelines.models._config import (
    resolve_config,
)
from mlsp_pipelines.models._layers import (
    check_features,
    check_sequence_input,
    make_rnn,
    pool_time,
)
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import GRUConfig, LSTMConfig, RNNConfig, RecurrentConfig


class RecurrentModel(nn.Module):
    """Input (B, T, F) -> logits (B, out), or (B, T, out) if ``per_step``.

    ``config`` holds the hyper-parameters (the subclass's ``config_cls``; ``None``: its defaults).
    Subclasses restate ``__init__`` only so that its signature (and ``help()``) names their own
    config class.
    """

    rnn_type: ClassVar[str]
    config_cls: ClassVar[type[RecurrentConfig]]

    def __init__(self, config: RecurrentConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config = resolve_config(self.config_cls, config, self.rnn_type)
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
        """Sequence x (B, T, F) → (B, T, out) per step with ``per_step``, else (B, out) from the states
        pooled over time (``pooling``)."""
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

    def __init__(self, config: RNNConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__(config, in_features=in_features, out_features=out_features)


@register_model("gru", config_cls=GRUConfig)
class GRUModel(RecurrentModel):
    """GRU; see :class:`RecurrentModel`."""

    rnn_type = "gru"
    config_cls = GRUConfig

    def __init__(self, config: GRUConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__(config, in_features=in_features, out_features=out_features)


@register_model("lstm", config_cls=LSTMConfig)
class LSTMModel(RecurrentModel):
    """LSTM; see :class:`RecurrentModel`."""

    rnn_type = "lstm"
    config_cls = LSTMConfig

    def __init__(self, config: LSTMConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__(config, in_features=in_features, out_features=out_features)
