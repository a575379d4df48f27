"""``transformer_seq2seq``: Transformer encoder–decoder over token sequences.

Token embeddings (scaled by √d_model) plus sinusoidal positions; an encoder of multi-head
self-attention layers over the source (padding masked); a decoder whose layers apply causal
self-attention (step t sees target steps <= t only), cross-attention to the encoder output
and a feed-forward block. The decoder layers are ``nn.TransformerDecoderLayer`` modules whose
sub-blocks are called here one by one, so the last layer's cross-attention weights (averaged
over heads) come out of the same computation that gives the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mlsp_pipelines.models._config import (
    check_bool,
    check_choice,
    check_dropout,
    check_int,
    make_config,
    set_field,
)
from mlsp_pipelines.models._layers import check_features
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.seq2seq import Seq2SeqModel, State, check_special_indices, check_tokens
from mlsp_pipelines.models.transformer import sinusoidal_encoding


@dataclass(frozen=True)
class TransformerSeq2SeqConfig:
    """Pre-norm layers (``norm_first``) by default: they train more stably on small data."""

    d_model: int = 64
    n_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.1
    activation: str = "relu"
    norm_first: bool = True
    pad_idx: int = 0
    bos_idx: int = 1
    eos_idx: int = 2

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model)
        check_int("n_heads", self.n_heads)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model!r}, n_heads={self.n_heads!r}"
            )
        check_int("num_encoder_layers", self.num_encoder_layers)
        check_int("num_decoder_layers", self.num_decoder_layers)
        check_int("dim_feedforward", self.dim_feedforward)
        set_field(self, "dropout", check_dropout("dropout", self.dropout))
        check_choice("activation", self.activation, ("relu", "gelu"))
        check_bool("norm_first", self.norm_first)
        check_special_indices(self.pad_idx, self.bos_idx, self.eos_idx)


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """Boolean (L, L) mask, ``True`` above the diagonal = "may not attend": step t sees steps <= t."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


@register_model("transformer_seq2seq", config_cls=TransformerSeq2SeqConfig)
class TransformerSeq2Seq(Seq2SeqModel):
    """Source ids (B, S) + teacher-forced target ids (B, T) → logits (B, T, out_features).

    Keyword arguments are the fields of :class:`TransformerSeq2SeqConfig`.
    """

    model_name = "transformer_seq2seq"

    def __init__(self, *, in_features: int, out_features: int, **config: Any) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: TransformerSeq2SeqConfig = make_config(TransformerSeq2SeqConfig, config,
                                                            model_name=self.model_name)
        cfg = self.config
        self.pad_idx, self.bos_idx, self.eos_idx = cfg.pad_idx, cfg.bos_idx, cfg.eos_idx
        for name, idx in (("pad_idx", cfg.pad_idx), ("bos_idx", cfg.bos_idx), ("eos_idx", cfg.eos_idx)):
            if idx >= out_features or (name == "pad_idx" and idx >= in_features):
                raise ValueError(f"{name}={idx} is outside the vocabulary (in_features={in_features}, "
                                 f"out_features={out_features})")
        d = cfg.d_model
        self.scale = math.sqrt(d)
        self.src_embed = nn.Embedding(self.in_features, d, padding_idx=cfg.pad_idx)
        self.tgt_embed = nn.Embedding(self.out_features, d, padding_idx=cfg.pad_idx)
        for embedding in (self.src_embed, self.tgt_embed):
            # std d^-1/2, so that after the sqrt(d) scaling tokens and positions have equal weight
            # (the default N(0, 1) would scale to std sqrt(d) and drown the positional encoding)
            nn.init.normal_(embedding.weight, std=d**-0.5)
            with torch.no_grad():
                embedding.weight[cfg.pad_idx].zero_()
        self.dropout = nn.Dropout(cfg.dropout)
        layer_kwargs = dict(dim_feedforward=cfg.dim_feedforward, dropout=cfg.dropout, activation=cfg.activation,
                            batch_first=True, norm_first=cfg.norm_first)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, cfg.n_heads, **layer_kwargs),
            cfg.num_encoder_layers,
            norm=nn.LayerNorm(d) if cfg.norm_first else None,
            enable_nested_tensor=False,
        )
        self.decoder_layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d, cfg.n_heads, **layer_kwargs) for _ in range(cfg.num_decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.head = nn.Linear(d, self.out_features)

    def _embed(self, embedding: nn.Embedding, ids: Tensor) -> Tensor:
        x = embedding(ids) * self.scale
        return self.dropout(x + sinusoidal_encoding(ids.shape[1], self.config.d_model, device=ids.device, dtype=x.dtype))

    def encode(self, src: Tensor) -> State:
        """``memory`` (B, S, d_model), ``src_pad`` (B, S) and the (empty) decoded ``prefix`` (B, 0)."""
        check_tokens(src, "src", self.model_name)
        src_pad = src == self.pad_idx
        memory = self.encoder(self._embed(self.src_embed, src), src_key_padding_mask=src_pad)
        prefix = torch.empty(src.shape[0], 0, dtype=torch.long, device=src.device)
        return {"memory": memory, "src_pad": src_pad, "prefix": prefix}

    @staticmethod
    def _decoder_layer(
        layer: nn.TransformerDecoderLayer, x: Tensor, memory: Tensor, mask: Tensor, src_pad: Tensor,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """``layer(x, memory)`` spelled out so its cross-attention weights (B, T, S) can come out."""

        def self_attention(z: Tensor) -> Tensor:
            return layer.dropout1(layer.self_attn(z, z, z, attn_mask=mask, need_weights=False)[0])

        def cross_attention(z: Tensor) -> tuple[Tensor, Tensor | None]:
            out, weights = layer.multihead_attn(z, memory, memory, key_padding_mask=src_pad,
                                                need_weights=need_weights, average_attn_weights=True)
            return layer.dropout2(out), weights

        def feed_forward(z: Tensor) -> Tensor:
            return layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(z)))))

        if layer.norm_first:
            x = x + self_attention(layer.norm1(x))
            out, weights = cross_attention(layer.norm2(x))
            x = x + out
            x = x + feed_forward(layer.norm3(x))
        else:
            x = layer.norm1(x + self_attention(x))
            out, weights = cross_attention(x)
            x = layer.norm2(x + out)
            x = layer.norm3(x + feed_forward(x))
        return x, weights

    def _decode(self, tgt_in: Tensor, memory: Tensor, src_pad: Tensor, need_weights: bool = False,
                last_only: bool = False) -> tuple[Tensor, Tensor | None]:
        mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        h = self._embed(self.tgt_embed, tgt_in)
        weights = None
        last = len(self.decoder_layers) - 1
        for i, layer in enumerate(self.decoder_layers):
            h, w = self._decoder_layer(layer, h, memory, mask, src_pad, need_weights and i == last)
            if i == last:
                weights = w
        if last_only:  # decoding: only the newest position's logits (B, 1, V), not (B, T, V)
            h, weights = h[:, -1:], None if weights is None else weights[:, -1:]
        return self.head(self.decoder_norm(h)), weights

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) → logits (B, T, out_features)."""
        check_tokens(tgt_in, "tgt_in", self.model_name)
        state = self.encode(src)
        return self._decode(tgt_in, state["memory"], state["src_pad"])[0]

    def decode_step(self, state: State, prev: Tensor) -> tuple[Tensor, State, Tensor | None]:
        """Appends ``prev`` (N,) to the decoded prefix and runs the decoder over it (causal, so
        earlier positions are unchanged): logits (N, V) of the next token and the cross-attention
        (N, S) of its query."""
        prefix = torch.cat([state["prefix"], prev.unsqueeze(1)], dim=1)
        logits, weights = self._decode(prefix, state["memory"], state["src_pad"], need_weights=True, last_only=True)
        return logits[:, -1], {**state, "prefix": prefix}, weights[:, -1]

    def attention_weights(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """(B, T, S): the last decoder layer's cross-attention, averaged over heads; rows sum to 1
        over the non-padded source. Call in ``eval()`` mode (training adds attention dropout)."""
        check_tokens(tgt_in, "tgt_in", self.model_name)
        state = self.encode(src)
        return self._decode(tgt_in, state["memory"], state["src_pad"], need_weights=True)[1]
