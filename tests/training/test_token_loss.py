"""The one-exponential cross-entropy used for seq2seq training: the same loss and gradient as
PyTorch's ``cross_entropy`` (padding ignored, label smoothing), and the valid-steps-only logits
of the seq2seq models give the same loss as the full (B, T, V) logits with padding ignored."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mlsp_pipelines.features.vocab import IGNORE_INDEX, flat_targets
from mlsp_pipelines.models import build_model
from mlsp_pipelines.training.token_loss import softmax_cross_entropy


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("with_padding", [False, True])
def test_loss_and_gradient_equal_torch_cross_entropy(label_smoothing: float, with_padding: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 7, 300, generator=gen) * 6).requires_grad_()
    target = torch.randint(0, 300, (4, 7), generator=gen)
    if with_padding:
        target[0, 5:] = IGNORE_INDEX
        target[2, 3:] = IGNORE_INDEX
    ref = F.cross_entropy(logits.reshape(-1, 300), target.reshape(-1), ignore_index=IGNORE_INDEX,
                          label_smoothing=label_smoothing)
    (ref_grad,) = torch.autograd.grad(ref, logits)
    ours = softmax_cross_entropy(logits, target, label_smoothing)
    (grad,) = torch.autograd.grad(ours * 3.0, logits)  # an upstream gradient other than 1 is applied
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, 3.0 * ref_grad, rtol=1e-5, atol=1e-7)
    if with_padding:
        assert torch.all(grad[0, 5:] == 0) and torch.all(grad[2, 3:] == 0)


def test_extreme_logits_give_a_finite_loss() -> None:
    """A target whose probability underflows float32 still has its exact (large) loss."""
    logits = torch.tensor([[0.0, 200.0, -300.0]], requires_grad=True)
    loss = softmax_cross_entropy(logits, torch.tensor([2]))
    torch.testing.assert_close(loss, torch.tensor(500.0))
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[0.0, 1.0, -1.0]]))


def test_backward_runs_once_and_soft_labels_are_refused() -> None:
    logits = torch.randn(3, 5, requires_grad=True)
    loss = softmax_cross_entropy(logits, torch.tensor([0, 1, 2]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once"):
        loss.backward()
    with pytest.raises(ValueError, match="class ids"):
        softmax_cross_entropy(logits, torch.rand(3, 5))


@pytest.mark.parametrize("kwargs", [
    {"arch": "rnn_seq2seq", "attention": "bahdanau"}, {"arch": "rnn_seq2seq", "attention": "luong", "cell": "lstm"},
    {"arch": "rnn_seq2seq", "attention": "none"}, {"arch": "transformer_seq2seq"},
])
def test_valid_steps_only_logits_give_the_full_loss(kwargs: dict) -> None:
    arch = kwargs.pop("arch")
    torch.manual_seed(0)
    net = build_model(arch, in_features=20, out_features=30, **kwargs).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    tgt_in = torch.tensor([[1, 11, 12, 13, 14], [1, 15, 16, 0, 0]])
    tgt_out = torch.tensor([[11, 12, 13, 14, 2], [15, 16, 2, -100, -100]])
    with torch.no_grad():
        full = F.cross_entropy(net(src, tgt_in).reshape(-1, 30), tgt_out.reshape(-1), ignore_index=IGNORE_INDEX)
        net.valid_only = True
        logits = net(src, tgt_in)
    _, _, flat = flat_targets((src, tgt_in, tgt_out))
    assert logits.shape == (8, 30) and flat.tolist() == [11, 12, 13, 14, 2, 15, 16, 2]
    torch.testing.assert_close(softmax_cross_entropy(logits, flat), full, rtol=1e-5, atol=1e-6)
