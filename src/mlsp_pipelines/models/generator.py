"""``seq_generator``: a one-to-many model, one vector of conditions -> a whole sequence.

The other families map a sequence to a sequence (or to one vector). This one starts from a
single vector ``p`` (B, P), e.g. the loading parameters of a test (amplitude, rate, number of
cycles, time step), and a recurrent decoder (GRU) unrolls it into ``n_steps`` outputs
(B, T, out):

* the initial state of every layer is ``tanh(W_0 p + b_0)``;
* the input at step ``j`` is a learned embedding of ``p`` (the same at every step) and the
  normalised step index ``j / n_steps``; the decoder does not see its own earlier outputs, so it
  trains with the shared loop exactly like a sequence regressor (inputs ``(p,)``, target
  ``(B, T, out)``) and needs no teacher forcing; the recurrent state carries the phase.

``n_steps`` (config) is the default length; ``forward(p, n_steps=...)`` generates another.
"""

from __future__ import annotations

import torch
from torch import nn

from mlsp_pipelines.config import ONE_TO_MANY  # noqa: F401 - registered names whose input is (B, P)
from mlsp_pipelines.models._config import check_int, resolve_config
from mlsp_pipelines.models._layers import check_features, make_rnn
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import SeqGeneratorConfig


@register_model("seq_generator", config_cls=SeqGeneratorConfig)
class SeqGenerator(nn.Module):
    """Input (B, P) -> output (B, T, out) with ``T = n_steps``; see the module docstring.

    ``config`` holds the hyper-parameters (:class:`SeqGeneratorConfig`; ``None``: its defaults).
    """

    one_to_many = True

    def __init__(self, config: SeqGeneratorConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        self.config: SeqGeneratorConfig = resolve_config(SeqGeneratorConfig, config, "seq_generator")
        cfg = self.config
        self.context = nn.Sequential(nn.Linear(self.in_features, cfg.context_size), nn.Tanh())
        self.init_state = nn.Linear(self.in_features, cfg.num_layers * cfg.hidden_size)
        self.rnn = make_rnn(
            "gru",
            input_size=cfg.context_size + 1,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout,
            bidirectional=False,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, self.out_features)

    def _check(self, p: torch.Tensor) -> None:
        if p.dim() != 2 or p.shape[-1] != self.in_features:
            raise ValueError(
                f"seq_generator expects input of shape (batch, {self.in_features}), got {tuple(p.shape)}"
            )

    def decoder_inputs(self, p: torch.Tensor, n_steps: int | None = None) -> torch.Tensor:
        """Per-step decoder input (B, T, context_size + 1): embedding of ``p`` and ``j/n_steps``."""
        self._check(p)
        steps = check_int("n_steps", self.config.n_steps if n_steps is None else n_steps)
        ctx = self.context(p)
        tau = torch.arange(steps, device=p.device, dtype=p.dtype) / self.config.n_steps
        return torch.cat([ctx.unsqueeze(1).expand(-1, steps, -1), tau.view(1, steps, 1).expand(len(p), -1, -1)], -1)

    def initial_state(self, p: torch.Tensor) -> torch.Tensor:
        """(num_layers, B, H) initial decoder state computed from the condition vector."""
        self._check(p)
        cfg = self.config
        h0 = torch.tanh(self.init_state(p)).view(len(p), cfg.num_layers, cfg.hidden_size)
        return h0.transpose(0, 1).contiguous()

    def hidden_states(self, p: torch.Tensor, n_steps: int | None = None) -> torch.Tensor:
        """Top layer's hidden sequence (B, T, H)."""
        return self.rnn(self.decoder_inputs(p, n_steps), self.initial_state(p))[0]

    def forward(self, p: torch.Tensor, n_steps: int | None = None) -> torch.Tensor:
        """Parameters p (B, P) → a generated sequence (B, n_steps, out) (one-to-many)."""
        return self.head(self.dropout(self.hidden_states(p, n_steps)))
