"""``mlp``: the memoryless baseline.

Pooled mode summarises the input over time (per-band mean, and by default standard deviation:
the statistics a logistic-regression baseline sees) before the MLP, or (``frames``) maps every
frame on its own and pools the frame embeddings (a bag of frames); either way it cannot use
temporal order;
per-step mode maps every frame independently. Either way it shows how much a model gains
from context.
"""

from __future__ import annotations


import torch
from torch import nn

from mlsp_pipelines.models._config import (
    resolve_config,
)
from mlsp_pipelines.models._layers import check_features, check_sequence_input
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import MLPConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


@register_model("mlp", config_cls=MLPConfig)
class MLP(nn.Module):
    """Input (B, T, F) -> (B, out) (mean over time first) or (B, T, out) if ``per_step``.

    A pooled model also accepts already-pooled (B, F) input. ``config`` holds the
    hyper-parameters (:class:`MLPConfig`; ``None``: its defaults).
    """

    def __init__(self, config: MLPConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: MLPConfig = resolve_config(MLPConfig, config, "mlp")
        layers: list[nn.Module] = []
        width = self.in_features * (2 if self.config.pooling == "meanstd" and not self.config.per_step else 1)
        pooled = self.config.pooling in ("mean", "meanstd") and not self.config.per_step
        self.pooled_norm = nn.BatchNorm1d(width) if pooled and self.config.pooled_norm else nn.Identity()
        for size in self.config.hidden_sizes:
            layers += [nn.Linear(width, size), ACTIVATIONS[self.config.activation]()]
            layers.append(nn.Dropout(self.config.dropout))
            width = size
        if self.config.pooling == "frames" and not self.config.per_step:
            width *= 2  # mean and max of the frame embeddings
        layers.append(nn.Linear(width, self.out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Frames x (B, T, F) → logits (B, C) after pooling over time (``pooling``), or (B, T, C) with
        ``per_step``; already pooled statistics (B, F·k) → (B, C)."""
        if x.dim() == 2 and not self.config.per_step and x.shape[-1] == self.net[0].in_features:
            return self.net(self.pooled_norm(x))
        check_sequence_input(x, self.in_features, "mlp")
        if self.config.per_step:
            return self.net(x)
        if self.config.pooling == "mean":
            return self.net(self.pooled_norm(x.mean(dim=1)))
        if self.config.pooling == "frames":  # a bag of frames: no frame sees another
            h = self.net[:-1](x)
            return self.net[-1](torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1))
        return self.net(self.pooled_norm(torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=-1)))
