"""Small building blocks shared by several architecture families."""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from mlsp_pipelines.models._config import check_choice, check_int
from mlsp_pipelines.models.configs import Pooling2d

POOLING_2D: tuple[str, ...] = get_args(Pooling2d)
RNN_TYPES = ("rnn", "gru", "lstm")


class Pool2d(nn.Module):
    """Non-overlapping 2-D pooling by ``max``, ``mean`` or ``min`` over (B, C, H, W).

    ``min`` is computed as ``-maxpool(-x)`` so it really takes minima (there is no
    ``MinPool2d`` in torch). The window is clipped to the input size, so a deep stack on a
    small input degrades to no pooling along an exhausted axis instead of crashing.
    """

    def __init__(self, mode: str, kernel_size: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.mode = check_choice("pooling", mode, POOLING_2D)
        self.kernel_size = (
            check_int("kernel_size[0]", kernel_size[0]),
            check_int("kernel_size[1]", kernel_size[1]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H // kh, W // kw)."""
        k = (min(self.kernel_size[0], x.shape[-2]), min(self.kernel_size[1], x.shape[-1]))
        if k == (1, 1):
            return x
        if self.mode == "max":
            return F.max_pool2d(x, k)
        if self.mode == "mean":
            return F.avg_pool2d(x, k)
        return -F.max_pool2d(-x, k)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, kernel_size={self.kernel_size}"


def pool_time(seq: torch.Tensor, mode: str, *, bidirectional: bool) -> torch.Tensor:
    """Summarise a recurrent output sequence (B, T, H*dirs) as (B, H*dirs).

    ``last`` takes, per direction, the state that has seen the whole sequence: the last step
    of the forward direction and the first step of the backward direction.
    """
    if mode == "mean":
        return seq.mean(dim=1)
    if not bidirectional:
        return seq[:, -1]
    half = seq.shape[-1] // 2
    return torch.cat([seq[:, -1, :half], seq[:, 0, half:]], dim=-1)


def make_rnn(
    rnn_type: str,
    *,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    bidirectional: bool,
    nonlinearity: str = "tanh",
) -> nn.RNNBase:
    """Batch-first torch recurrent layer; inter-layer dropout only when it has an effect
    (torch warns when dropout is set on a single-layer RNN)."""
    kwargs = dict(
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
    )
    if rnn_type == "rnn":
        return nn.RNN(nonlinearity=nonlinearity, **kwargs)
    if rnn_type == "gru":
        return nn.GRU(**kwargs)
    return nn.LSTM(**kwargs)


def check_features(in_features: int, out_features: int) -> tuple[int, int]:
    """Validate the two sizes every model takes from the data, not from the config."""
    return check_int("in_features", in_features), check_int("out_features", out_features)


def check_sequence_input(x: torch.Tensor, in_features: int, model_name: str) -> None:
    """Fail with the expected layout instead of an opaque matmul shape error."""
    if x.dim() != 3 or x.shape[-1] != in_features:
        raise ValueError(
            f"{model_name} expects input of shape (batch, time, {in_features}), "
            f"got {tuple(x.shape)}"
        )


def stretch_time(weights: torch.Tensor, steps: int) -> torch.Tensor:
    """Attention over T' pooled steps (B, T') spread back over the ``steps`` input frames (B, T),
    each pooled step's weight shared by the frames it covers; rows still sum to 1."""
    if weights.shape[-1] == steps:
        return weights
    factor = max(1, steps // weights.shape[-1])
    out = weights.repeat_interleave(factor, dim=-1)[..., :steps] / factor
    if out.shape[-1] < steps:
        out = F.pad(out, (0, steps - out.shape[-1]))
    return out / out.sum(dim=-1, keepdim=True)
