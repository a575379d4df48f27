"""The one-to-many ``seq_generator``: (B, P) condition vector -> (B, T, out) sequence."""

from __future__ import annotations

import pytest
import torch

from mlsp_pipelines.models import build_model, list_models, model_config
from mlsp_pipelines.models.generator import ONE_TO_MANY
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training.loop import fit

torch.set_num_threads(1)

B, P, T = 6, 5, 24


def tiny(**overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"n_steps": T, "hidden_size": 16, "context_size": 8, **overrides}
    return build_model("seq_generator", in_features=P, out_features=1, **kwargs)


def vectors(seed: int = 0, b: int = B) -> torch.Tensor:
    return torch.randn(b, P, generator=torch.Generator().manual_seed(seed))


def test_registered_as_one_to_many() -> None:
    assert "seq_generator" in list_models() and "seq_generator" in ONE_TO_MANY


@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_backward_shapes(num_layers: int) -> None:
    model = tiny(num_layers=num_layers)
    p = vectors().requires_grad_(True)
    y = model(p)
    assert y.shape == (B, T, 1) and torch.isfinite(y).all()
    assert model.hidden_states(p).shape == (B, T, 16)
    y.square().mean().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(q.grad is not None for q in model.parameters())
    # Another length on request; the first T steps do not depend on how many follow.
    with torch.no_grad():
        longer = model(vectors(), n_steps=2 * T)
        assert longer.shape == (B, 2 * T, 1)
        torch.testing.assert_close(longer[:, :T], model(vectors()))
    # Different condition vectors give different sequences.
    with torch.no_grad():
        assert not torch.allclose(model(vectors(0)), model(vectors(1)))


def test_wrong_input_and_bad_config_are_reported() -> None:
    model = tiny()
    with pytest.raises(ValueError, match=r"\(batch, 5\)"):
        model(torch.randn(B, T, P))
    with pytest.raises(ValueError, match="n_steps"):
        model_config("seq_generator", n_steps=0)
    with pytest.raises(ValueError, match="context_size"):
        model_config("seq_generator", context_size=-1)
    with pytest.raises(ValueError, match="hiden_size"):
        model_config("seq_generator", hiden_size=3)


def test_overfits_a_tiny_batch() -> None:
    model = tiny().train()
    p = vectors(seed=1, b=8)
    t = torch.linspace(0, 1, T)
    # Smooth targets that depend on the condition vector: a sine whose frequency and phase vary.
    target = torch.sin(2 * torch.pi * (1 + p[:, :1].abs()) * t + p[:, 1:2]).unsqueeze(-1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = last = None
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(p), target)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
        if last < 0.05 * first:
            break
    assert last < 0.05 * first, f"loss {last:.4f} vs start {first:.4f}"


def test_trains_with_the_shared_loop() -> None:
    model = tiny()
    p = vectors(seed=2, b=16)
    target = p[:, :1].unsqueeze(1).expand(-1, T, 1) * torch.linspace(0, 1, T).view(1, T, 1)
    result = fit(model, (p, target), (p[:4], target[:4]), task="regression",
                 params=TrainParams(epochs=3, batch_size=8, lr=1e-2, patience=None, progress=False))
    assert len(result.history["train_loss"]) == 3
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
