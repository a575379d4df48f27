"""``crnn``: convolutional front end + recurrent layer over time.

The convolutions learn local spectral patterns and shrink the frequency axis; the GRU/LSTM
then models how those patterns evolve over the whole clip, which a CNN with small
receptive fields cannot. Without time pooling the time resolution is kept, so the model can
also emit one output per input frame.
"""

from __future__ import annotations


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
from mlsp_pipelines.models.cnn import conv_stem
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import CRNNConfig


@register_model("crnn", config_cls=CRNNConfig)
class CRNN(nn.Module):
    """Input (B, T, F) -> conv (B, C, T', F') -> sequence (B, T', C*F') -> GRU/LSTM
    -> logits (B, out), or (B, T, out) if ``per_step``.

    ``config`` holds the hyper-parameters (:class:`CRNNConfig`; ``None``: its defaults).
    """

    def __init__(self, config: CRNNConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: CRNNConfig = resolve_config(CRNNConfig, config, "crnn")
        cfg = self.config
        freq = self.in_features
        for _ in cfg.channels:
            freq //= cfg.freq_pool
        if freq < 1:
            raise ValueError(
                f"in_features={self.in_features} is too small for {len(cfg.channels)} conv blocks "
                f"with freq_pool={cfg.freq_pool}; use fewer channels entries or a smaller freq_pool"
            )
        self.blocks, freq = conv_stem(cfg.channels, in_features=self.in_features, convs_per_block=cfg.convs_per_block,
                                      kernel_size=cfg.kernel_size, pooling=cfg.pooling,
                                      pool_size=(cfg.time_pool, cfg.freq_pool), batch_norm=cfg.batch_norm,
                                      dropout=cfg.dropout)
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
        """Log-mel spectrogram x (B, T, F) → class logits (B, C), or (B, T', C) per step (T' = T after
        the conv blocks' time pooling) with ``per_step``."""
        seq = self.dropout(self.hidden_states(x))
        if self.config.per_step:
            return self.head(seq)
        return self.head(
            pool_time(seq, self.config.temporal_pooling, bidirectional=self.config.bidirectional)
        )
