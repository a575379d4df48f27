"""``attn_lstm``: LSTM with attention pooling over time.

With ``frontend`` channels, a VGG-style conv stem (:func:`~mlsp_pipelines.models.cnn.conv_stem`)
first turns the log-mel into a shorter sequence of learned local patterns: on real recordings
an LSTM over raw mel frames has to learn spectral shapes and their order at once, and loses to
a linear model; over conv features it only has to learn the order.

Instead of trusting the last state or weighting all frames equally, the model learns which
frames matter, and the weights can be plotted over the spectrogram:
u_t = tanh(W h_t + b), a_t = softmax_t(u_t . u_c), l = sum_t a_t h_t.
"""

from __future__ import annotations

import torch
from torch import nn

from mlsp_pipelines.models._config import resolve_config
from mlsp_pipelines.models._layers import check_features, check_sequence_input, make_rnn, stretch_time
from mlsp_pipelines.models.cnn import conv_stem
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import AttnLSTMConfig


@register_model("attn_lstm", config_cls=AttnLSTMConfig)
class AttentionLSTM(nn.Module):
    """Input (B, T, F) -> logits (B, out); attention weights (B, T) via
    :meth:`forward_with_attention`. ``config`` holds the hyper-parameters
    (:class:`AttnLSTMConfig`; ``None``: its defaults).
    """

    def __init__(self, config: AttnLSTMConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: AttnLSTMConfig = resolve_config(AttnLSTMConfig, config, "attn_lstm")
        cfg = self.config
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        self.stem, freq = conv_stem(cfg.frontend, in_features=self.in_features, convs_per_block=cfg.frontend_convs)
        self.rnn = make_rnn(
            "lstm",
            input_size=cfg.frontend[-1] * freq if cfg.frontend else self.in_features,
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
        if len(self.stem):
            x = self.stem(x.unsqueeze(1)).permute(0, 2, 1, 3).flatten(2)  # (B, T', C*F')
        return self.rnn(x)[0]

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, out), attention (B, T)); each attention row is non-negative, sums to 1."""
        seq = self.hidden_states(x)  # (B, T', D); T' = T without a front end
        u = torch.tanh(self.attn_proj(seq))  # (B, T', A)
        attn = torch.softmax(u @ self.context, dim=1)  # (B, T')
        pooled = torch.bmm(attn.unsqueeze(1), seq).squeeze(1)  # (B, D)
        return self.head(self.dropout(pooled)), stretch_time(attn, x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel frames x (B, T, F) → class logits (B, C): attention-weighted mean of the LSTM states."""
        return self.forward_with_attention(x)[0]
