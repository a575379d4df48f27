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

import torch
from torch import Tensor, nn

from mlsp_pipelines.models._config import (
    resolve_config,
)
from mlsp_pipelines.models._layers import check_features
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.seq2seq import Seq2SeqModel, State, check_tokens
from mlsp_pipelines.models.transformer import sinusoidal_encoding
from mlsp_pipelines.models.configs import TransformerSeq2SeqConfig


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """Boolean (L, L) mask, ``True`` above the diagonal = "may not attend": step t sees steps <= t."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


@register_model("transformer_seq2seq", config_cls=TransformerSeq2SeqConfig)
class TransformerSeq2Seq(Seq2SeqModel):
    """Source ids (B, S) + teacher-forced target ids (B, T) → logits (B, T, out_features).

    ``config`` holds the hyper-parameters (:class:`TransformerSeq2SeqConfig`; ``None``: its defaults).
    """

    model_name = "transformer_seq2seq"

    def __init__(
        self, config: TransformerSeq2SeqConfig | None = None, *, in_features: int, out_features: int
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: TransformerSeq2SeqConfig = resolve_config(TransformerSeq2SeqConfig, config, self.model_name)
        cfg = self.config
        self._set_special_tokens(cfg.pad_idx, cfg.bos_idx, cfg.eos_idx)
        d = cfg.d_model
        self.scale = math.sqrt(d)
        if cfg.tie_embeddings and self.in_features != self.out_features:
            raise ValueError(f"tie_embeddings needs one vocabulary for source and target (seq2seq.vocab.shared: "
                             f"true), got {self.in_features} source and {self.out_features} target tokens")
        self.src_embed = nn.Embedding(self.in_features, d, padding_idx=cfg.pad_idx)
        self.tgt_embed = self.src_embed if cfg.tie_embeddings else nn.Embedding(self.out_features, d, padding_idx=cfg.pad_idx)
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
        if cfg.tie_embeddings:
            self.head.weight = self.tgt_embed.weight

    def _embed(self, embedding: nn.Embedding, ids: Tensor) -> Tensor:
        x = embedding(ids) * self.scale
        return self.dropout(x + sinusoidal_encoding(ids.shape[1], self.config.d_model, device=ids.device, dtype=x.dtype))

    def encode(self, src: Tensor) -> State:
        """``memory`` (B, S, d_model), ``src_pad`` (B, S), the (empty) decoded ``prefix`` (B, 0) and
        per decoder layer the (empty) self-attention keys and values ``self_k_<i>``, ``self_v_<i>``
        (B, 0, d_model); the first :meth:`decode_step` adds the cross-attention keys and values of
        the memory (``mem_k_<i>``, ``mem_v_<i>``), which the training forward never needs."""
        check_tokens(src, "src", self.model_name)
        src_pad = src == self.pad_idx
        memory = self.encoder(self._embed(self.src_embed, src), src_key_padding_mask=src_pad)
        prefix = torch.empty(src.shape[0], 0, dtype=torch.long, device=src.device)
        state = {"memory": memory, "src_pad": src_pad, "prefix": prefix}
        for i in range(len(self.decoder_layers)):  # each decoder layer's self-attention keys and values so far
            state[f"self_k_{i}"] = memory.new_zeros(src.shape[0], 0, self.config.d_model)
            state[f"self_v_{i}"] = memory.new_zeros(src.shape[0], 0, self.config.d_model)
        return state

    @staticmethod
    def _decoder_layer(
        layer: nn.TransformerDecoderLayer, x: Tensor, memory: Tensor, mask: Tensor | None, src_pad: Tensor,
        need_weights: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """``layer(x, memory)`` spelled out so its cross-attention weights (B, T, S) can come out."""

        def self_attention(z: Tensor, kv: Tensor) -> Tensor:
            return layer.dropout1(layer.self_attn(z, kv, kv, attn_mask=mask, need_weights=False)[0])

        def cross_attention(z: Tensor) -> tuple[Tensor, Tensor | None]:
            out, weights = layer.multihead_attn(z, memory, memory, key_padding_mask=src_pad,
                                                need_weights=need_weights, average_attn_weights=True)
            return layer.dropout2(out), weights

        def feed_forward(z: Tensor) -> Tensor:
            return layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(z)))))

        if layer.norm_first:
            z = layer.norm1(x)
            x = x + self_attention(z, z)
            out, weights = cross_attention(layer.norm2(x))
            x = x + out
            x = x + feed_forward(layer.norm3(x))
        else:
            x = layer.norm1(x + self_attention(x, x))
            out, weights = cross_attention(x)
            x = layer.norm2(x + out)
            x = layer.norm3(x + feed_forward(x))
        return x, weights

    def _decode(self, tgt_in: Tensor, memory: Tensor, src_pad: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        h = self._embed(self.tgt_embed, tgt_in)
        weights = None
        last = len(self.decoder_layers) - 1
        for i, layer in enumerate(self.decoder_layers):
            h, w = self._decoder_layer(layer, h, memory, mask, src_pad, need_weights and i == last)
            if i == last:
                weights = w
        return self.head(self._rows(self.decoder_norm(h), tgt_in)), weights

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) → logits (B, T, out_features) ((M, out_features)
        at the non-padded steps with ``valid_only``)."""
        check_tokens(tgt_in, "tgt_in", self.model_name)
        state = self.encode(src)
        return self._decode(tgt_in, state["memory"], state["src_pad"])[0]

    def decode_step(self, state: State, prev: Tensor) -> tuple[Tensor, State, Tensor | None]:
        """Appends ``prev`` (N,) to the decoded prefix and runs the decoder for that one new
        position, with a key/value cache: causal attention means earlier positions never change,
        so each layer keeps the self-attention keys and values of the positions so far and the
        cross-attention keys and values of the memory (computed at the first step), and a step
        projects only the new position. Returns the next token's logits (N, V) and the
        cross-attention (N, S) of its query (last layer, averaged over heads)."""
        pos = state["prefix"].shape[1]
        d = self.config.d_model
        x = self.tgt_embed(prev).unsqueeze(1) * self.scale
        x = self.dropout(x + sinusoidal_encoding(pos + 1, d, device=x.device, dtype=x.dtype)[pos])
        new_state = {**state, "prefix": torch.cat([state["prefix"], prev.unsqueeze(1)], dim=1)}
        weights = None
        last = len(self.decoder_layers) - 1
        for i, layer in enumerate(self.decoder_layers):
            x, w = self._cached_layer(layer, i, x, state, new_state, need_weights=i == last)
            if i == last:
                weights = w
        logits = self.head(self.decoder_norm(x))[:, 0]
        return logits, new_state, weights[:, 0]

    @staticmethod
    def _project(attn: nn.MultiheadAttention, x: Tensor, part: int) -> Tensor:
        """Query (0), key (1) or value (2) projection of ``attn`` applied to ``x`` (N, L, d)."""
        d = attn.embed_dim
        bias = attn.in_proj_bias[part * d : (part + 1) * d] if attn.in_proj_bias is not None else None
        return nn.functional.linear(x, attn.in_proj_weight[part * d : (part + 1) * d], bias)

    def _attend(self, attn: nn.MultiheadAttention, q: Tensor, k: Tensor, v: Tensor, key_pad: Tensor | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``attn``'s multi-head attention from projected queries (N, T, d), keys and values (N, S, d):
        (output (N, T, d), weights (N, T, S) averaged over heads or None)."""
        n, t, d = q.shape
        heads = attn.num_heads

        def split(z: Tensor) -> Tensor:
            return z.view(n, z.shape[1], heads, d // heads).transpose(1, 2)

        scores = torch.matmul(split(q) * (d // heads) ** -0.5, split(k).transpose(-2, -1))  # (N, h, T, S)
        if key_pad is not None:
            scores = scores.masked_fill(key_pad[:, None, None, :], float("-inf"))
        w = torch.softmax(scores, dim=-1)
        out = torch.matmul(nn.functional.dropout(w, attn.dropout, self.training), split(v))
        out = attn.out_proj(out.transpose(1, 2).reshape(n, t, d))
        return out, (w.mean(dim=1) if need_weights else None)

    def _cached_layer(self, layer: nn.TransformerDecoderLayer, i: int, x: Tensor, state: State, new_state: State,
                      need_weights: bool) -> tuple[Tensor, Tensor | None]:
        """:meth:`_decoder_layer` for the newest position ``x`` (N, 1, d), keys and values from the
        cache (``new_state`` receives the grown cache)."""
        pre = layer.norm_first
        sa, ca = layer.self_attn, layer.multihead_attn
        z = layer.norm1(x) if pre else x
        k = torch.cat([state[f"self_k_{i}"], self._project(sa, z, 1)], dim=1)
        v = torch.cat([state[f"self_v_{i}"], self._project(sa, z, 2)], dim=1)
        new_state[f"self_k_{i}"], new_state[f"self_v_{i}"] = k, v
        out = layer.dropout1(self._attend(sa, self._project(sa, z, 0), k, v)[0])
        x = x + out if pre else layer.norm1(x + out)
        if f"mem_k_{i}" not in state:  # first step: the memory's keys and values, once per sentence
            new_state[f"mem_k_{i}"] = self._project(ca, state["memory"], 1)
            new_state[f"mem_v_{i}"] = self._project(ca, state["memory"], 2)
        z = layer.norm2(x) if pre else x
        out, weights = self._attend(ca, self._project(ca, z, 0), new_state[f"mem_k_{i}"], new_state[f"mem_v_{i}"],
                                    state["src_pad"], need_weights)
        out = layer.dropout2(out)
        x = x + out if pre else layer.norm2(x + out)
        z = layer.norm3(x) if pre else x
        ff = layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(z)))))
        return (x + ff if pre else layer.norm3(x + ff)), weights

    def attention_weights(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """(B, T, S): the last decoder layer's cross-attention, averaged over heads; rows sum to 1
        over the non-padded source. Call in ``eval()`` mode (training adds attention dropout)."""
        check_tokens(tgt_in, "tgt_in", self.model_name)
        state = self.encode(src)
        return self._decode(tgt_in, state["memory"], state["src_pad"], need_weights=True)[1]
