"""``attn_lstm``: LSTM with attention pooling over time.

Instead of trusting the last state or weighting all frames equally, the model learns which
frames matter, and the weights can be plotted over the spectrogram:
u_t = tanh(W h_t + b), a_t = softmax_t(u_t . u_c), l = sum_t a_t h_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mlsp_pipelines.models._config import (
    check_bool,
    check_dropout,
    check_int,
    make_config,
    set_field,
)
from mlsp_pipelines.models._layers import check_features, check_sequence_input, make_rnn
from mlsp_pipelines.models.registry import register_model


@dataclass(frozen=True)
class AttnLSTMConfig:
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1
    attention_size: int = 64

    def __post_init__(self) -> None:
        check_int("hidden_size", self.hidden_size)
        check_int("num_layers", self.num_layers)
        check_bool("bidirectional", self.bidirectional)
        set_field(self, "dropout", check_dropout("dropout", self.dropout))
        check_int("attention_size", self.attention_size)


@register_model("attn_lstm", config_cls=AttnLSTMConfig)
class AttentionLSTM(nn.Module):
    """Input (B, T, F) -> logits (B, out); attention weights (B, T) via
    :meth:`forward_with_attention`. Keyword arguments are the fields of :class:`AttnLSTMConfig`.
    """

    def __init__(self, *, in_features: int, out_features: int, **config: Any) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: AttnLSTMConfig = make_config(AttnLSTMConfig, config, model_name="attn_lstm")
        cfg = self.config
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        self.rnn = make_rnn(
            "lstm",
            input_size=self.in_features,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            bidirectional=cfg.bidirectional,
        )
        self.attn_proj = nn.Linear(width, cfg.attention_size)
        self.context = nn.Parameter(torch.randn(cfg.attention_size) * cfg.attention_size**-0.5)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, self.out_features)

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """Top LSTM layer's output sequence (B, T, H*dirs)."""
        check_sequence_input(x, self.in_features, "attn_lstm")
        return self.rnn(x)[0]

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, out), attention (B, T)); each attention row is non-negative, sums to 1."""
        seq = self.hidden_states(x)  # (B, T, D)
        u = torch.tanh(self.attn_proj(seq))  # (B, T, A)
        attn = torch.softmax(u @ self.context, dim=1)  # (B, T)
        pooled = torch.bmm(attn.unsqueeze(1), seq).squeeze(1)  # (B, D)
        return self.head(self.dropout(pooled)), attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]
