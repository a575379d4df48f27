"""Model complexity as the DCASE low-complexity task counts it: parameters, parameter bytes and
multiply-accumulate operations (MACs) per second of audio, plus an optional budget.

MACs come from torch's own ``FlopCounterMode`` (convolutions, matrix products, attention),
one forward pass of one clip; recurrent layers are counted by hand because their CPU kernel is
a single fused op that the counter does not see (4 gates for LSTM, 3 for GRU, 1 for a plain
RNN, each ``H * (input + H)`` MACs per step, layer and direction).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

logger = logging.getLogger(__name__)

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _rnn_macs(module: nn.RNNBase, steps: int) -> int:
    gates = _GATES[module.mode]
    dirs = 2 if module.bidirectional else 1
    h, total, width = module.hidden_size, 0, module.input_size
    for _ in range(module.num_layers):
        total += dirs * steps * gates * h * (width + h)
        width = h * dirs
    return total


@torch.inference_mode()
def model_complexity(net: nn.Module, example: torch.Tensor, clip_seconds: float) -> dict[str, Any]:
    """``params``, ``param_bytes``, ``macs_per_clip`` and ``macs_per_s`` of ``net`` on one clip
    ``example`` (1, T, F) lasting ``clip_seconds``."""
    net = net.eval()
    rnn_macs: list[int] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: rnn_macs.append(_rnn_macs(mod, inp[0].shape[1])))
             for m in net.modules() if isinstance(m, nn.RNNBase)]
    try:
        with FlopCounterMode(display=False) as counter:
            net(example)
    finally:
        for h in hooks:
            h.remove()
    macs = counter.get_total_flops() // 2 + sum(rnn_macs)
    params = [p for p in net.parameters() if p.requires_grad]
    return {
        "params": int(sum(p.numel() for p in params)),
        "param_bytes": int(sum(p.numel() * p.element_size() for p in params)),
        "macs_per_clip": int(macs),
        "macs_per_s": int(round(macs / max(clip_seconds, 1e-9))),
    }


def check_budget(name: str, cx: dict[str, Any], *, max_macs: float | None, max_param_bytes: float | None,
                 action: str, task: str | None = None) -> bool:
    """True when ``cx`` is within the budget; over it, a warning (``flag``) or ``ValueError`` (``fail``)
    naming the model and the limit. ``max_macs`` is per second of audio; ``task`` spells the keys
    as the command line takes them."""
    from mlsp_pipelines.params import param_hint

    key = f"{task}.report" if task else "report"
    over = []
    if max_macs is not None and cx["macs_per_s"] > max_macs:
        over.append(f"{cx['macs_per_s']:,} MACs/s > {key}.max_macs={max_macs:,.0f}")
    if max_param_bytes is not None and cx["param_bytes"] > max_param_bytes:
        over.append(f"{cx['param_bytes']:,} parameter bytes > {key}.max_param_bytes={max_param_bytes:,.0f}")
    if not over:
        return True
    msg = f"model '{name}' is over the complexity budget: {'; '.join(over)}"
    if action == "fail":
        raise ValueError(msg + f" ({param_hint('report.budget_action', 'flag', task)} trains it anyway)")
    logger.warning(msg)
    return False
