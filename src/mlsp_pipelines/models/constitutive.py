"""``rate_ode``: a recurrent model whose state is its output and whose law is learned.

A material driven by a variable λ (stretch) with response y (stress) is modelled as

    dy/dt = A(y, c) · λ̇ − G(y, c)

with ``A`` and ``G`` one small MLP (outputs ``2·out``) of the state ``y`` and optional extra
inputs ``c``. The right-hand side is *linear in the rate* λ̇ — the structure of rate-type
constitutive laws such as the power-law Maxwell element (A = E, G = E·φ(σ)) — so the model
extrapolates in loading rate as long as the states it visits were seen in training; the rate
itself may lie far outside the training range. Between two samples λ̇ is constant (λ is
piecewise linear), and each interval is integrated with ``substeps`` explicit Runge–Kutta steps
(``rk4``, ``heun`` or ``euler``), so Δt may vary from sample to sample.

Input x (B, T, F), F >= 2, in physical units (no normalisation: the rate must enter linearly):
``x[..., 0]`` the rate λ̇ over the interval ending at step t, ``x[..., 1]`` its length Δt,
``x[..., 2:]`` extra inputs ``c`` (held constant over the interval). Output (B, T, out): the
state after each interval, starting from a learned initial state (the same for every sequence:
at rest).

Training (``teacher_forcing = True``): ``forward(x, y_teacher)`` integrates every interval
from the TRUE previous state, all steps in parallel, so the law is fitted as a one-interval
map without backpropagation through time; ``forward(x)`` rolls the model out on its own
predictions (validation, inference). The shared training loop supports this as train tensors
``(x, y, y)`` and validation tensors ``(x, y)``, so early stopping judges free-running error.
The integrator is hand-written (a few lines) because it must run vectorised over every interval
of a batch and differentiate through the MLP; ``torchdiffeq`` would add a dependency for that.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from mlsp_pipelines.models._config import resolve_config
from mlsp_pipelines.models._layers import check_features, check_sequence_input
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import RateODEConfig

@register_model("rate_ode", config_cls=RateODEConfig)
class RateODE(nn.Module):
    """Input (B, T, F>=2) -> (B, T, out); see the module docstring. ``config`` holds the
    hyper-parameters (:class:`RateODEConfig`; ``None``: its defaults)."""

    teacher_forcing = True

    def __init__(self, config: RateODEConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = check_features(in_features, out_features)
        if self.in_features < 2:
            raise ValueError(f"rate_ode needs in_features >= 2 (rate and Δt first), got {in_features}")
        self.config: RateODEConfig = resolve_config(RateODEConfig, config, "rate_ode")
        cfg = self.config
        layers: list[nn.Module] = []
        width = self.out_features + self.in_features - 2
        for _ in range(cfg.num_layers):
            layers += [nn.Linear(width, cfg.hidden_size), nn.Tanh()]
            width = cfg.hidden_size
        layers.append(nn.Linear(width, 2 * self.out_features))
        self.law = nn.Sequential(*layers)
        self.initial_state = nn.Parameter(torch.zeros(self.out_features))

    def rate_functions(self, y: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``A(y, c)`` and ``G(y, c)``, each shaped like ``y``."""
        h = torch.cat([y, extra], -1) if extra.shape[-1] else y
        # The layers are applied functionally: a rollout calls this 4·substeps times per step, and
        # the per-call overhead of nn.Module dispatch would dominate such small matrices.
        for layer in self.law:
            h = F.linear(h, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else torch.tanh(h)
        a, g = h.chunk(2, dim=-1)
        return a, g

    def _rhs(self, y: torch.Tensor, rate: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        a, g = self.rate_functions(y, extra)
        return a * rate - g

    def step(self, y: torch.Tensor, rate: torch.Tensor, dt: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """The state after an interval of length ``dt`` at constant ``rate`` (any leading shape)."""
        h = dt / self.config.substeps
        f = self._rhs
        for _ in range(self.config.substeps):
            k1 = f(y, rate, extra)
            if self.config.method == "euler":
                y = y + h * k1
            elif self.config.method == "heun":
                y = y + h / 2 * (k1 + f(y + h * k1, rate, extra))
            else:
                k2 = f(y + h / 2 * k1, rate, extra)
                k3 = f(y + h / 2 * k2, rate, extra)
                y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + f(y + h * k3, rate, extra))
        return y

    def forward(self, x: torch.Tensor, y_teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs x (B, T, 2 + extra) -- strain rate, time step, extra drive -- → stress (B, T, out):
        integrated step by step from the learnt rate, or from ``y_teacher`` (B, T, out) in parallel."""
        check_sequence_input(x, self.in_features, "rate_ode")
        rate, dt, extra = x[..., :1], x[..., 1:2], x[..., 2:]
        start = self.initial_state.expand(x.shape[0], 1, self.out_features)
        if y_teacher is not None:  # every interval from the true previous state, in parallel
            return self.step(torch.cat([start, y_teacher[:, :-1]], dim=1), rate, dt, extra)
        y, out = start[:, 0], []
        for t in range(x.shape[1]):
            y = self.step(y, rate[:, t], dt[:, t], extra[:, t])
            out.append(y)
        return torch.stack(out, dim=1)
