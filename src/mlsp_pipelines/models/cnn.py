"""``cnn``: a 2-D CNN over the (time, frequency) image of a log-mel spectrogram.

Treating the spectrogram as an image gives local time-frequency patterns (onsets, harmonics)
translation-tolerant detectors; global pooling then makes the decision position-free.

The default is VGG-style (two 3x3 conv + batch-norm + ReLU layers per block, channels widening
block by block, 2x2 pooling between blocks), the shape of the CNN baselines that win on real
audio (DCASE, PANNs); ``convs_per_block: 1`` gives the small single-conv network of the pooling
lesson, where ``pooling`` (max|mean|min) makes the difference visible. :func:`conv_stem` builds the
stack for this CNN and, as their front end, for ``crnn``, ``attn_lstm`` and ``transformer``.
"""

from __future__ import annotations


import torch
from torch import nn

from mlsp_pipelines.models._config import (
    resolve_config,
)
from mlsp_pipelines.models._layers import (
    Pool2d,
    check_features,
    check_sequence_input,
)
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import CNNConfig

__all__ = ["CNN", "CNNConfig", "ConvBlock", "Pool2d", "conv_stem", "global_pool"]

def global_pool(z: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, C, T, F) -> (B, C). ``meanmax``: mean over frequency, then max + mean over time
    (the PANNs head: a short loud event and a steady texture both register)."""
    if mode == "mean":
        return z.mean(dim=(2, 3))
    if mode == "max":
        return z.amax(dim=(2, 3))
    z = z.mean(dim=3)
    return z.amax(dim=2) + z.mean(dim=2)


class ConvBlock(nn.Module):
    """``n_convs`` x (conv -> batch norm -> ReLU) -> 2x2 pooling -> dropout:
    (B, Cin, H, W) -> (B, Cout, H', W')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        padding: int,
        pooling: str,
        batch_norm: bool,
        dropout: float,
        pool_size: tuple[int, int] = (2, 2),
        n_convs: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not batch_norm
        )
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        more: list[nn.Module] = []
        for _ in range(n_convs - 1):
            more += [nn.Conv2d(out_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm),
                     nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(), nn.ReLU()]
        self.more = nn.Sequential(*more)
        self.pool = Pool2d(pooling, pool_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps (B, C_in, H, W) → (B, C_out, H / pool_h, W / pool_w)."""
        return self.drop(self.pool(self.more(self.act(self.norm(self.conv(x))))))


def conv_stem(
    channels: tuple[int, ...], *, in_features: int, convs_per_block: int = 2, kernel_size: int = 3,
    stride: int = 1, padding: int | None = None, pooling: str = "max", pool_size: tuple[int, int] = (2, 2),
    batch_norm: bool = True, dropout: float = 0.0,
) -> tuple[nn.Sequential, int]:
    """The one conv stack of the project (the CNN's body, the CRNN's front end, the attention
    models' optional stem): a :class:`ConvBlock` per entry of ``channels``, (B, 1, T, F) ->
    (B, C, T', F'), and the number of frequency bins F' left (at least 1). ``padding`` None keeps
    the size ("same", ``kernel_size // 2``)."""
    freq = in_features
    for _ in channels:
        freq = max(1, freq // pool_size[1])
    widths = (1, *channels)
    stem = nn.Sequential(*(
        ConvBlock(c_in, c_out, kernel_size=kernel_size, stride=stride,
                  padding=kernel_size // 2 if padding is None else padding, pooling=pooling,
                  batch_norm=batch_norm, dropout=dropout, pool_size=pool_size, n_convs=convs_per_block)
        for c_in, c_out in zip(widths[:-1], widths[1:])
    ))
    return stem, freq


@register_model("cnn", config_cls=CNNConfig)
class CNN(nn.Module):
    """Input (B, T, F), seen as a one-channel image (B, 1, T, F) -> logits (B, out).

    ``config`` holds the hyper-parameters (:class:`CNNConfig`; ``None``: its defaults).
    """

    def __init__(self, config: CNNConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: CNNConfig = resolve_config(CNNConfig, config, "cnn")
        cfg = self.config
        self.blocks, _ = conv_stem(cfg.channels, in_features=self.in_features, convs_per_block=cfg.convs_per_block,
                                   kernel_size=cfg.kernel_size, stride=cfg.stride, padding=cfg.padding,
                                   pooling=cfg.pooling, batch_norm=cfg.batch_norm, dropout=cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.channels[-1], self.out_features)

    @property
    def first_conv(self) -> nn.Conv2d:
        """First convolution, whose filters are directly interpretable as time-frequency
        patches (a property, so the weights are not duplicated in the state dict)."""
        return self.blocks[0].conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram x (B, T, F) → class logits (B, C) (global pooling over the last feature map)."""
        check_sequence_input(x, self.in_features, "cnn")
        z = self.blocks(x.unsqueeze(1))  # (B, C, T', F')
        return self.head(self.dropout(global_pool(z, self.config.global_pooling)))
