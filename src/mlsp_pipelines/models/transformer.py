"""``transformer``: self-attention encoder over the frame sequence.

With ``frontend`` channels the tokens are conv-stem features (each covering a few frames and
all bands) instead of raw mel frames: self-attention on a few hundred clips of real audio
learns order well but local spectral shape poorly, and a small conv stem supplies it (as the
conv-front-end audio Transformers and Conformers do).

Every frame can attend to every other (or, with ``causal``, to earlier frames only, which
makes frame-wise sequence-to-sequence regression possible without looking ahead).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlsp_pipelines.models._config import resolve_config
from mlsp_pipelines.models._layers import check_features, check_sequence_input, stretch_time
from mlsp_pipelines.models.cnn import conv_stem
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import TransformerConfig


def sinusoidal_encoding(
    length: int, d_model: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Fixed sin/cos positional encoding (length, d_model); works for any length, so clips
    longer than those seen in training need no resizing."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freqs = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    pe = torch.zeros(length, d_model, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(position * freqs)
    pe[:, 1::2] = torch.cos(position * freqs[: d_model // 2])
    return pe.to(dtype or torch.float32)


def _causal_mask(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive (L, L) mask: -inf above the diagonal, so step t sees steps <= t only."""
    return torch.triu(torch.full((length, length), float("-inf"), device=device, dtype=dtype), 1)


@register_model("transformer", config_cls=TransformerConfig)
class TransformerModel(nn.Module):
    """Input (B, T, F) -> linear to d_model + positional encoding -> encoder
    -> logits (B, out) (CLS or mean pooled), or (B, T, out) if ``per_step``.

    The learned CLS token is appended *after* the T frames: with a causal mask it can then
    still see every frame, while no frame sees it. ``config`` holds the hyper-parameters
    (:class:`TransformerConfig`; ``None``: its defaults).
    """

    def __init__(self, config: TransformerConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: TransformerConfig = resolve_config(TransformerConfig, config, "transformer")
        cfg = self.config
        self.stem, freq = conv_stem(cfg.frontend, in_features=self.in_features, convs_per_block=cfg.frontend_convs)
        self.input_proj = nn.Linear(cfg.frontend[-1] * freq if cfg.frontend else self.in_features, cfg.d_model)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.cls_token = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.n_heads,
            dim_feedforward=cfg.dim_feedforward,
            dropout=cfg.dropout,
            activation=cfg.activation,
            batch_first=True,
            norm_first=cfg.norm_first,
        )
        self.encoder = nn.TransformerEncoder(
            layer,
            cfg.n_layers,
            norm=nn.LayerNorm(cfg.d_model) if cfg.norm_first else None,
            enable_nested_tensor=False,
        )
        self.head = nn.Linear(cfg.d_model, self.out_features)

    @property
    def _uses_cls(self) -> bool:
        return self.config.pooling == "cls" and not self.config.per_step

    def _last_layer(
        self, layer: nn.TransformerEncoderLayer, h: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The last encoder layer spelled out, so its head-averaged attention weights
        (B, L, L) come out; used by both forward paths so their logits are identical."""

        def self_attention(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out, weights = layer.self_attn(
                z, z, z, attn_mask=mask, need_weights=True, average_attn_weights=True
            )
            return layer.dropout1(out), weights

        def feed_forward(z: torch.Tensor) -> torch.Tensor:
            return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(z)))))

        if layer.norm_first:
            out, weights = self_attention(layer.norm1(h))
            h = h + out
            h = h + feed_forward(layer.norm2(h))
        else:
            out, weights = self_attention(h)
            h = layer.norm1(h + out)
            h = layer.norm2(h + feed_forward(h))
        return h, weights

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, attention) with the last layer's attention averaged over heads.

        Pooled: attention (B, T) of the pooled output over the input steps (CLS row over the
        T frames renormalised to 1, or for mean pooling the mean of all query rows).
        ``per_step``: the full (B, T, T) matrix (query, key). Call in ``eval()`` mode:
        in training the returned weights include attention dropout.
        """
        check_sequence_input(x, self.in_features, "transformer")
        frames = x.shape[1]
        if len(self.stem):
            x = self.stem(x.unsqueeze(1)).permute(0, 2, 1, 3).flatten(2)  # (B, T', C*F')
        batch, steps, _ = x.shape
        h = self.input_proj(x) + sinusoidal_encoding(
            steps, self.config.d_model, device=x.device, dtype=x.dtype
        )
        if self._uses_cls:
            h = torch.cat([h, self.cls_token.expand(batch, 1, -1)], dim=1)
        h = self.input_dropout(h)
        mask = _causal_mask(h.shape[1], x.device, h.dtype) if self.config.causal else None
        layers = self.encoder.layers
        for layer in layers[:-1]:
            h = layer(h, src_mask=mask)
        h, weights = self._last_layer(layers[-1], h, mask)
        if self.encoder.norm is not None:
            h = self.encoder.norm(h)

        if self.config.per_step:
            return self.head(h), weights
        if self._uses_cls:
            attn = weights[:, -1, :steps]
            return self.head(h[:, -1]), stretch_time(attn / attn.sum(dim=-1, keepdim=True), frames)
        return self.head(h.mean(dim=1)), stretch_time(weights.mean(dim=1), frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel frames x (B, T, F) → class logits (B, C) (mean of the encoder's outputs, or [CLS])."""
        return self.forward_with_attention(x)[0]
