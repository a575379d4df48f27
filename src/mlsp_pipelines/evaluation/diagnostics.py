"""Gradients through time: how far back a loss at the last step still reaches.

For a recurrent model and a loss ``L`` on the output at the LAST step only, the norm
``‖∂L/∂h_t‖`` of the gradient with respect to the top layer's hidden state at every earlier
step ``t`` shows whether backpropagation through time can carry a learning signal from step
``T`` back to step ``t``. It shrinks geometrically (vanishing gradients) when the recurrent
Jacobians ``∂h_{t+1}/∂h_t`` are contractive — a tanh or ReLU Elman RNN at the usual
initialisation — and grows geometrically (exploding gradients) when they expand, e.g. a ReLU
RNN whose recurrent matrix starts as ``1.05·I``. Gated cells (GRU, LSTM) add paths through their
gates and cell state whose per-step factor can stay close to 1, so they keep the signal
over more steps.

The norms are computed by unrolling the model's own ``torch`` recurrent layer one step at a
time, so every ``h_t`` is a node of the autograd graph (the fused layer's output sequence is
not: gradients with respect to it would only see the direct output path). Computations run in
float64 so that norms of 1e-70 are still representable instead of underflowing to zero.

The results are rounded to :data:`SIGNIFICANT_DIGITS` significant digits. In float64 the gates'
``exp`` and ``tanh`` come from the C library, whose variants for CPUs with and without FMA differ
in the last bit (measured: up to 5e-16 relative in these norms, between an AMD EPYC and the same
machine with FMA masked); eight digits are far more than a log-scale diagnostic needs and make the
outputs the same bytes on every x86 CPU, like the rest of the pipeline. The brief training uses
the fused Adam step for the same reason (the unfused one takes MKL's vector ``sqrt``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from mlsp_pipelines.section import Section

if TYPE_CHECKING:  # annotations only: the functions import these where they run
    import torch
    from matplotlib.figure import Figure
    from torch import nn

RECURRENT_INITS = ("default", "identity")


class CellSpec(Section):
    """One recurrent model to diagnose: registry ``arch`` (rnn|gru|lstm) with ``kwargs`` and the
    initialisation of its recurrent weights: ``default`` (torch's, multiplied by ``gain``) or
    ``identity`` (``W_hh = gain·I``, recurrent bias 0; Elman ``rnn`` only). Also the type of each
    entry of the viscoelastic task's ``diagnostics.cells``, so YAML is checked by the same class."""

    arch: Literal["rnn", "gru", "lstm"]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    recurrent_init: Literal["default", "identity"] = "default"
    gain: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> CellSpec:
        from mlsp_pipelines.models import model_config

        if model_config(self.arch, **self.kwargs).bidirectional:
            raise ValueError("bidirectional models have no single direction to backpropagate through time")
        if self.recurrent_init == "identity" and self.arch != "rnn":
            raise ValueError(f"recurrent_init 'identity' applies to arch 'rnn' only, got {self.arch!r}")
        return self


def set_recurrent_init(rnn: nn.RNNBase, init: str = "default", gain: float = 1.0) -> None:
    """Re-initialise the hidden-to-hidden weights of every layer of ``rnn`` in place."""
    import torch

    if init not in RECURRENT_INITS:
        raise ValueError(f"recurrent_init must be one of {'|'.join(RECURRENT_INITS)}, got {init!r}")
    if init == "identity" and rnn.mode not in ("RNN_TANH", "RNN_RELU"):
        raise ValueError(f"recurrent_init 'identity' needs an Elman rnn, got {rnn.mode}")
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight_hh"):
                if init == "identity":
                    p.copy_(gain * torch.eye(p.shape[0], dtype=p.dtype))
                else:
                    p.mul_(gain)
            elif name.startswith("bias_hh") and init == "identity":
                p.zero_()


def gradient_norms_through_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``‖∂L/∂h_t‖`` for ``t = 0 … T−1`` (mean over the batch), ``L`` = MSE at the last step.

    ``model`` is a unidirectional ``rnn``/``gru``/``lstm`` registry model (attributes ``rnn``
    and ``head``); ``x`` (B, T, F) and ``y`` (B, T, out) or (B, out) are the inputs and targets
    (only ``y[:, -1]`` enters the loss). ``h_t`` is the top layer's hidden state (for an LSTM
    the output ``h``, not the cell state). Runs in the model's dtype and mode as given.
    """
    import torch
    from torch import nn

    rnn: nn.RNNBase = model.rnn
    if rnn.bidirectional:
        raise ValueError("gradient norms through time need a unidirectional model")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (batch, time, features), got {tuple(x.shape)}")
    target = y[:, -1] if y.dim() == 3 else y
    state: Any = None
    hs: list[torch.Tensor] = []
    for t in range(x.shape[1]):
        _, state = rnn(x[:, t : t + 1], state)
        hs.append(state[0] if isinstance(state, tuple) else state)  # (layers, B, H)
    pred = model.head(hs[-1][-1])
    if getattr(model, "skip", None) is not None:  # a linear input-to-output path: part of the prediction
        pred = pred + model.skip(x[:, -1])
    loss = nn.functional.mse_loss(pred, target)
    grads = torch.autograd.grad(loss, hs)
    return np.array([float(g[-1].norm(dim=-1).mean()) for g in grads])


#: Significant digits kept in every reported norm and summary value (module doc).
SIGNIFICANT_DIGITS = 8


def significant(values: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``values`` (a float or an array) rounded to ``digits`` significant digits, exactly as
    ``f"{v:.{digits}g}"`` reads back, so the same float64 noise below that rounds the same way."""
    if np.isscalar(values):
        return float(f"{float(values):.{digits}g}")
    arr = np.asarray(values, dtype=np.float64)
    return np.array([float(f"{v:.{digits}g}") for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)


def decay_summary(norms: np.ndarray) -> dict[str, float]:
    """How the norm changes going back in time from the loss (step T−1) to step 0.

    ``log10_ratio``: ``log10(‖∂L/∂h_0‖ / ‖∂L/∂h_{T−1}‖)`` (negative: vanishing, positive:
    exploding); ``log10_per_step``: least-squares slope of ``log10‖∂L/∂h_t‖`` against the
    number of steps back; ``norm_first``/``norm_last``: the two norms.
    """
    norms = np.asarray(norms, dtype=np.float64)
    logs = np.log10(np.maximum(norms, np.finfo(np.float64).tiny))
    back = np.arange(len(norms))[::-1]  # steps between h_t and the loss
    slope = float(np.polyfit(back, logs, 1)[0]) if len(norms) > 1 else 0.0
    return {
        "log10_ratio": significant(logs[0] - logs[-1]),
        "log10_per_step": significant(slope),
        "norm_first": significant(norms[0]),
        "norm_last": significant(norms[-1]),
    }


def _build(spec: CellSpec, in_features: int, out_features: int, hidden_size: int, seed: int) -> nn.Module:
    import torch
    from torch import nn

    from mlsp_pipelines.models import build_model

    torch.manual_seed(seed)
    kwargs = {"hidden_size": hidden_size, "dropout": 0.0, **spec.kwargs, "per_step": True, "bidirectional": False}
    model = build_model(spec.arch, in_features=in_features, out_features=out_features, **kwargs)
    if not hasattr(model, "rnn") or not isinstance(model.rnn, nn.RNNBase):
        raise ValueError(f"gradient diagnostics need a recurrent model (rnn|gru|lstm), got {spec.arch!r}")
    set_recurrent_init(model.rnn, spec.recurrent_init, spec.gain)
    return model.double()


def _train_briefly(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int) -> float:
    """``steps`` full-batch Adam steps on the whole-sequence MSE, gradients clipped to norm 1."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # exact sqrt (module doc)
    loss = torch.tensor(float("nan"))
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        if not torch.isfinite(loss):
            break
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return float(loss.detach())


def run_gradient_diagnostics(
    cells: Mapping[str, CellSpec],
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    hidden_size: int = 32,
    seed: int = 0,
    train_steps: int = 0,
    lr: float = 3e-3,
) -> tuple[pd.DataFrame, dict[str, dict[str, dict[str, float]]]]:
    """Norms for every cell at initialisation and (``train_steps > 0``) after brief training.

    Every cell is built and trained from ``seed``. Returns a long
    table (``cell, phase, t, steps_back, grad_norm``) and ``{phase: {cell: decay_summary}}``.
    """
    import torch

    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).double()
    if yt.dim() == 2:
        yt = yt.unsqueeze(-1)
    rows: list[pd.DataFrame] = []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    n_t = xt.shape[1]
    for name, spec in cells.items():
        model = _build(spec, xt.shape[-1], yt.shape[-1], hidden_size, seed).eval()
        phases = [("init", model)]
        final_loss = None
        if train_steps > 0:
            trained = copy.deepcopy(model)
            final_loss = _train_briefly(trained, xt, yt, train_steps, lr, seed)
            phases.append(("trained", trained))
        for phase, net in phases:
            norms = significant(gradient_norms_through_time(net, xt, yt))
            rows.append(pd.DataFrame({"cell": name, "phase": phase, "t": np.arange(n_t),
                                      "steps_back": np.arange(n_t)[::-1], "grad_norm": norms}))
            info = decay_summary(norms)
            if phase == "trained" and final_loss is not None:
                info["train_loss"] = significant(final_loss)
            summary.setdefault(phase, {})[name] = info
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["cell", "phase", "t", "steps_back", "grad_norm"])
    return table, summary


def gradient_norms_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """``‖∂L/∂h_t‖`` against steps back from the loss, log scale, one panel per phase."""
    from mlsp_pipelines.evaluation.figures import subplots

    phases = list(dict.fromkeys(table["phase"])) or ["init"]
    fig, axes = subplots(1, len(phases), figsize=(5.5 * len(phases), 4), squeeze=False, sharey=True)
    labels = {"init": "at initialisation", "trained": "after brief training"}
    for ax, phase in zip(axes[0], phases):
        part = table[table["phase"] == phase]
        for cell, grp in part.groupby("cell", sort=False):
            g = grp.sort_values("steps_back")
            ax.semilogy(g["steps_back"], np.maximum(g["grad_norm"], 1e-300), label=str(cell))
        ax.set_xlabel("steps back from the loss (T−1−t)")
        ax.set_title(labels.get(phase, phase))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("‖∂L/∂h_t‖ (L: loss at the last step)")
    fig.suptitle(title or "gradient norm through time")
    fig.tight_layout()
    return fig
