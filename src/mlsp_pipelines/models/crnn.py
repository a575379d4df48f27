"""``crnn``: convolutional front end + recurrent layer over time.

The convolutions learn local spectral patterns and shrink the frequency axis; the GRU/LSTM
then models how those patterns evolve over the whole clip, which a CNN with small
receptive fields cannot. Without time pooling the time resolution is kept, so the model can
also emit one output per input frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mlsp_pipelines.models._config import (
    check_bool,
    check_choice,
    check_dropout,
    check_int,
    check_int_tuple,
    make_config,
    set_field,
)
from mlsp_pipelines.models._layers import (
    POOLING_2D,
    TIME_POOLING,
    check_features,
    check_sequence_input,
    make_rnn,
    pool_time,
)
from mlsp_pipelines.models.cnn import ConvBlock
from mlsp_pipelines.models.registry import register_model


@dataclass(frozen=True)
class CRNNConfig:
    """Each conv block pools by ``time_pool`` x ``freq_pool`` (``time_pool=1``: keep all frames)."""

    channels: tuple[int, ...] = (16, 32)
    convs_per_block: int = 2
    kernel_size: int = 3
    pooling: str = "max"
    freq_pool: int = 2
    time_pool: int = 1
    batch_norm: bool = True
    rnn_type: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.1
    temporal_pooling: str = "mean"
    per_step: bool = False

    def __post_init__(self) -> None:
        set_field(self, "channels", check_int_tuple("channels", self.channels))
        check_int("convs_per_block", self.convs_per_block)
        check_int("kernel_size", self.kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so 'same' padding keeps the time axis, got {self.kernel_size!r}"
            )
        check_choice("pooling", self.pooling, POOLING_2D)
        check_int("freq_pool", self.freq_pool)
        check_int("time_pool", self.time_pool)
        check_bool("batch_norm", self.batch_norm)
        check_choice("rnn_type", self.rnn_type, ("gru", "lstm"))
        check_int("hidden_size", self.hidden_size)
        check_int("num_layers", self.num_layers)
        check_bool("bidirectional", self.bidirectional)
        set_field(self, "dropout", check_dropout("dropout", self.dropout))
        check_choice("temporal_pooling", self.temporal_pooling, TIME_POOLING)
        check_bool("per_step", self.per_step)
        if self.per_step and self.time_pool != 1:
            raise ValueError(
                f"per_step=True needs time_pool=1 (one output per input frame), got time_pool={self.time_pool!r}"
            )


@register_model("crnn", config_cls=CRNNConfig)
class CRNN(nn.Module):
    """Input (B, T, F) -> conv (B, C, T', F') -> sequence (B, T', C*F') -> GRU/LSTM
    -> logits (B, out), or (B, T, out) if ``per_step``.

    Keyword arguments are the fields of :class:`CRNNConfig`.
    """

    def __init__(self, *, in_features: int, out_features: int, **config: Any) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: CRNNConfig = make_config(CRNNConfig, config, model_name="crnn")
        cfg = self.config
        freq = self.in_features
        for _ in cfg.channels:
            freq //= cfg.freq_pool
        if freq < 1:
            raise ValueError(
                f"in_features={self.in_features} is too small for {len(cfg.channels)} conv blocks "
                f"with freq_pool={cfg.freq_pool}; use fewer channels entries or a smaller freq_pool"
            )
        widths = (1, *cfg.channels)
        self.blocks = nn.Sequential(
            *(
                ConvBlock(
                    c_in,
                    c_out,
                    kernel_size=cfg.kernel_size,
                    stride=1,
                    padding=cfg.kernel_size // 2,
                    pooling=cfg.pooling,
                    batch_norm=cfg.batch_norm,
                    dropout=cfg.dropout,
                    pool_size=(cfg.time_pool, cfg.freq_pool),
                    n_convs=cfg.convs_per_block,
                )
                for c_in, c_out in zip(widths[:-1], widths[1:])
            )
        )
        self.rnn = make_rnn(
            cfg.rnn_type,
            input_size=cfg.channels[-1] * freq,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            bidirectional=cfg.bidirectional,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size * (2 if cfg.bidirectional else 1), self.out_features)

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """Top recurrent layer's output sequence (B, T', H*dirs)."""
        check_sequence_input(x, self.in_features, "crnn")
        z = self.blocks(x.unsqueeze(1))  # (B, C, T', F')
        return self.rnn(z.permute(0, 2, 1, 3).flatten(2))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.dropout(self.hidden_states(x))
        if self.config.per_step:
            return self.head(seq)
        return self.head(
            pool_time(seq, self.config.temporal_pooling, bidirectional=self.config.bidirectional)
        )
