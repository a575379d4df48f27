"""Tests for the model registry and every registered architecture (tiny sizes, CPU)."""

from __future__ import annotations

import inspect
import pydoc
import re
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError

from mlsp_pipelines.models import (
    build_model,
    count_parameters,
    list_models,
    model_config,
    register_model,
)
from mlsp_pipelines.models.cnn import Pool2d

torch.set_num_threads(1)

B, T, FEAT, OUT = 4, 32, 16, 3

#: Small, dropout-free settings per architecture so the tests stay fast.
TINY: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_sizes": [32], "dropout": 0.0},
    "cnn": {"channels": [8, 16], "dropout": 0.0},
    "crnn": {"channels": [8], "hidden_size": 16, "dropout": 0.0},
    "rnn": {"hidden_size": 16, "dropout": 0.0},
    "gru": {"hidden_size": 16, "dropout": 0.0},
    "lstm": {"hidden_size": 16, "dropout": 0.0},
    "attn_lstm": {"hidden_size": 16, "attention_size": 16, "dropout": 0.0},
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32, "dropout": 0.0},
}


#: Registered models outside the (B, T, F) features -> (B, out) contract, with the reason; the
#: parametrised contract tests below skip them and their own test files cover them.
NOT_SEQUENCE_MODELS: dict[str, str] = {
    "word2vec_sg": "word ids (B,) -> embeddings (B, D); tested in tests/text/test_word2vec.py",
    "word2vec_cbow": "context ids (B, 2*window) -> embeddings (B, D); tested in tests/text/test_word2vec.py",
    "rnn_seq2seq": "token ids (B, S) + (B, T) -> logits (B, T, V); tested in tests/text/test_seq2seq_models.py",
    "transformer_seq2seq": "token ids (B, S) + (B, T) -> logits (B, T, V); tested in tests/text/test_seq2seq_models.py",
    "seq_generator": "one-to-many: one condition vector (B, P) -> sequence (B, T, out); "
                     "tested in tests/viscoelastic/test_generator.py",
    "rate_ode": "rate and Δt in physical units (B, T, F>=2) -> state sequence (B, T, out), a per-step model "
                "only; tested in tests/viscoelastic/test_visco_rate_ode.py",
}


def sequence_models() -> list[str]:
    """Registered models that follow the (B, T, F) -> (B, out) contract."""
    return [n for n in list_models() if n not in NOT_SEQUENCE_MODELS]


def tiny(name: str, **overrides: Any) -> torch.nn.Module:
    assert name in TINY, f"add tiny test settings for newly registered model {name!r} to TINY"
    return build_model(name, in_features=FEAT, out_features=OUT, **{**TINY[name], **overrides})


def batch(seed: int = 0, b: int = B) -> torch.Tensor:
    return torch.randn(b, T, FEAT, generator=torch.Generator().manual_seed(seed))


def supports_per_step(name: str) -> bool:
    return "per_step" in type(model_config(name)).model_fields and name != "cnn"


def test_builtin_families_are_registered() -> None:
    expected = {"mlp", "cnn", "crnn", "rnn", "gru", "lstm", "attn_lstm", "transformer"}
    assert expected <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", sequence_models())
def test_forward_backward_shape(name: str) -> None:
    torch.manual_seed(0)
    model = tiny(name)
    x = batch().requires_grad_(True)
    y = model(x)
    assert y.shape == (B, OUT)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in list_models() if supports_per_step(n)])
def test_per_step_shape(name: str) -> None:
    torch.manual_seed(0)
    y = tiny(name, per_step=True)(batch())
    assert y.shape == (B, T, OUT)
    y.sum().backward()


def test_mlp_per_step_ignores_context() -> None:
    """The memoryless baseline: output at t depends on frame t only."""
    torch.manual_seed(0)
    model = tiny("mlp", per_step=True).eval()
    x = batch()
    x2 = x.clone()
    x2[:, 5] += 1.0
    with torch.no_grad():
        changed = (model(x) - model(x2)).abs().amax(dim=(0, 2))
    assert changed[5] > 0
    assert torch.all(changed[torch.arange(T) != 5] == 0)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "crnn", "attn_lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_hidden_states_shape(name: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = tiny(name, bidirectional=bidirectional)
    h = model.hidden_states(batch())
    assert h.shape == (B, T, 16 * (2 if bidirectional else 1))
    assert model(batch()).shape == (B, OUT)


def test_rnn_relu_nonlinearity_and_mean_pooling() -> None:
    torch.manual_seed(0)
    model = tiny("rnn", nonlinearity="relu", pooling="mean", num_layers=2).eval()
    assert model.rnn.nonlinearity == "relu" and model.rnn.num_layers == 2
    with torch.no_grad():
        h = model.hidden_states(batch())
        assert (h >= 0).all()  # relu states
        torch.testing.assert_close(model(batch()), model.head(h.mean(dim=1)))


# Per-architecture Adam learning rates for the overfitting check.
LR = {"transformer": 3e-3}


@pytest.mark.parametrize(
    ("name", "overrides"),
    [(n, {}) for n in sequence_models()] + [("transformer", {"causal": True, "per_step": True})],
)
def test_overfits_tiny_batch(name: str, overrides: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = tiny(name, **overrides).train()
    x = batch(seed=1, b=8)
    per_step = overrides.get("per_step", False)
    if per_step:
        target = torch.randn(8, T, OUT, generator=torch.Generator().manual_seed(2))
        loss_fn = F.mse_loss
    else:
        target = torch.randint(0, OUT, (8,), generator=torch.Generator().manual_seed(2))
        loss_fn = F.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=LR.get(name, 1e-2))
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        if loss.item() < 0.1 * first:
            break
    assert loss.item() < 0.1 * first, f"{name}: loss {loss.item():.4f} vs start {first:.4f}"


def manual_min_pool(x: torch.Tensor) -> torch.Tensor:
    """Min over non-overlapping 2x2 windows, written independently of the model code."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return x[..., :h, :w].unfold(-2, 2, 2).unfold(-2, 2, 2).amin(dim=(-1, -2))


def test_min_pooling_takes_minima() -> None:
    x = torch.randn(2, 3, 7, 10, generator=torch.Generator().manual_seed(0))
    got = Pool2d("min")(x)
    assert got.shape == (2, 3, 3, 5)
    torch.testing.assert_close(got, manual_min_pool(x), rtol=0, atol=0)
    assert not torch.allclose(got, Pool2d("max")(x))
    assert torch.all(got <= Pool2d("mean")(x))


def test_cnn_min_pooling_is_used_in_blocks() -> None:
    torch.manual_seed(0)
    model = tiny("cnn", pooling="min", batch_norm=False).eval()
    block = model.blocks[0]
    x = batch()
    with torch.no_grad():
        pre_pool = block.more(block.act(block.norm(block.conv(x.unsqueeze(1)))))
        torch.testing.assert_close(block(x.unsqueeze(1)), manual_min_pool(pre_pool), rtol=0, atol=0)
        max_model = tiny("cnn", pooling="max", batch_norm=False).eval()
        max_model.load_state_dict(model.state_dict())
        assert not torch.allclose(model(x), max_model(x))


def test_cnn_first_conv_and_global_max_pooling() -> None:
    model = tiny("cnn", global_pooling="max", kernel_size=5, padding=2)
    assert isinstance(model.first_conv, torch.nn.Conv2d)
    assert model.first_conv.weight.shape == (8, 1, 5, 5)
    assert not any("first_conv" in key for key in model.state_dict())
    assert model(batch()).shape == (B, OUT)


def test_deep_cnn_on_small_input_does_not_crash() -> None:
    """Pooling windows are clipped once an axis is exhausted (16 mels, 6 blocks)."""
    model = tiny("cnn", channels=[4] * 6)
    assert model(batch()).shape == (B, OUT)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("attn_lstm", {}),
        ("attn_lstm", {"bidirectional": False}),
        ("transformer", {"pooling": "cls"}),
        ("transformer", {"pooling": "mean"}),
        ("transformer", {"pooling": "cls", "causal": True}),
        ("transformer", {"n_layers": 2, "norm_first": False}),
    ],
)
def test_attention_weights_are_distributions(name: str, overrides: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = tiny(name, **overrides).eval()
    x = batch()
    with torch.no_grad():
        logits, attn = model.forward_with_attention(x)
        plain = model(x)
    assert attn.shape == (B, T)
    assert (attn >= 0).all()
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(B))
    assert torch.equal(logits, plain)
    assert attn.std(dim=1).gt(0).all()  # not trivially uniform


def test_transformer_attention_same_in_training_mode_logits() -> None:
    """Also with autograd on (no inference fast path), both paths agree exactly."""
    torch.manual_seed(0)
    model = tiny("transformer", n_layers=2)
    x = batch()
    assert torch.equal(model.forward_with_attention(x)[0], model(x))


def test_transformer_causal_does_not_look_ahead() -> None:
    torch.manual_seed(0)
    model = tiny("transformer", causal=True, per_step=True, n_layers=2).eval()
    x = batch()
    t = 20
    x2 = x.clone()
    x2[:, t] += 3.0
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    torch.testing.assert_close(y[:, :t], y2[:, :t], rtol=0, atol=1e-6)
    assert not torch.allclose(y[:, t:], y2[:, t:])
    # Without the mask the past does change: the test above can fail.
    acausal = tiny("transformer", causal=False, per_step=True, n_layers=2).eval()
    acausal.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(acausal(x)[:, :t], acausal(x2)[:, :t])


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ValueError) as err:
        build_model("resnet9000", in_features=FEAT, out_features=OUT)
    for name in list_models():
        assert name in str(err.value)
    with pytest.raises(ValueError, match="resnet9000"):
        model_config("resnet9000")


@pytest.mark.parametrize(
    ("name", "kwargs", "key", "bad"),
    [
        ("lstm", {"hidden_size": -4}, "hidden_size", "-4"),
        ("rnn", {"hidden_size": 0}, "hidden_size", "0"),
        ("rnn", {"nonlinearity": "sigmoid"}, "nonlinearity", "sigmoid"),
        ("gru", {"pooling": "first"}, "pooling", "first"),
        ("gru", {"bidirectional": "yes"}, "bidirectional", "yes"),
        ("cnn", {"pooling": "median"}, "pooling", "median"),
        ("cnn", {"dropout": 1.0}, "dropout", "1.0"),
        ("cnn", {"dropout": -0.1}, "dropout", "-0.1"),
        ("cnn", {"channels": [8, 0]}, "channels", "0"),
        ("cnn", {"global_pooling": "min"}, "global_pooling", "min"),
        ("cnn", {"per_step": True}, "per_step", "True"),
        ("crnn", {"per_step": True, "time_pool": 2}, "time_pool", "2"),
        ("crnn", {"rnn_type": "rnn"}, "rnn_type", "rnn"),
        ("mlp", {"hidden_sizes": [16, -2]}, "hidden_sizes", "-2"),
        ("mlp", {"activation": "swish"}, "activation", "swish"),
        ("attn_lstm", {"attention_size": 2.5}, "attention_size", "2.5"),
        ("transformer", {"d_model": 30, "n_heads": 4}, "d_model", "30"),
        ("transformer", {"pooling": "max"}, "pooling", "max"),
        ("cnn", {"batch_norm": "false"}, "batch_norm", "false"),  # a YAML string, truthy: refused
        ("cnn", {"kernel_size": "3"}, "kernel_size", "3"),
        ("cnn", {"stride": True}, "stride", "True"),
        ("cnn", {"padding": -1}, "padding", "-1"),
        ("cnn", {"channels": []}, "channels", "[]"),
        ("crnn", {"kernel_size": 4}, "kernel_size", "4"),
        ("rnn", {"skip": True}, "skip", "True"),
        ("mlp", {"dropout": "0.1"}, "dropout", "0.1"),
        ("transformer", {"frontend": [8], "per_step": True}, "frontend", "per_step"),
    ],
)
def test_bad_hyperparameters_name_the_key(name: str, kwargs: dict[str, Any], key: str, bad: str) -> None:
    with pytest.raises(ValueError) as err:
        model_config(name, **kwargs)
    assert f"model {name!r}" in str(err.value) and key in str(err.value) and bad in str(err.value)
    with pytest.raises(ValueError, match=key):
        build_model(name, in_features=FEAT, out_features=OUT, **kwargs)


def test_bad_value_message_names_model_key_and_value() -> None:
    with pytest.raises(ValueError) as err:
        model_config("cnn", channels=[8, 0], dropout=2)
    message = str(err.value)
    assert not isinstance(err.value, ValidationError)  # flat, so it reads well inside ModelSpec's error
    assert message.startswith("model 'cnn': ")
    assert "channels.1: Input should be greater than or equal to 1 (got 0)" in message
    assert "dropout: Input should be less than 1 (got 2)" in message


@pytest.mark.parametrize("name", list_models())
def test_unknown_kwarg_lists_accepted(name: str) -> None:
    with pytest.raises(ValueError) as err:
        model_config(name, hiden_size=8)
    message = str(err.value)
    assert "hiden_size" in message
    for field in type(model_config(name)).model_fields:
        assert field in message


@pytest.mark.parametrize("name", list_models())
def test_every_config_is_a_pydantic_model_that_names_an_unknown_key(name: str) -> None:
    from mlsp_pipelines.models._config import ModelConfig
    from mlsp_pipelines.models.registry import _entry

    model_cls, config_cls = _entry(name)  # loads the model modules as a first build does
    assert issubclass(config_cls, BaseModel) and issubclass(config_cls, ModelConfig)
    with pytest.raises(ValidationError) as err:
        config_cls(hiden_size=8)
    assert "hiden_size" in str(err.value)
    # the defaults are valid, and a model builds from its config object
    net = model_cls(config_cls(), in_features=FEAT, out_features=OUT)
    assert net.config == config_cls() == model_config(name)


@pytest.mark.parametrize("name", list_models())
def test_signature_and_help_show_the_config_type(name: str) -> None:
    from mlsp_pipelines.models.registry import _entry

    model_cls, config_cls = _entry(name)  # loads the model modules as a first build does
    params = inspect.signature(model_cls).parameters
    assert list(params)[:3] == ["config", "in_features", "out_features"]
    assert config_cls.__name__ in str(params["config"].annotation)
    assert params["config"].default is None
    doc = pydoc.render_doc(model_cls, renderer=pydoc.plaintext)
    assert re.search(rf"config: '?{config_cls.__name__} \| None'? = None", doc), doc[:300]
    # the config class's own signature lists the hyper-parameters with their defaults
    config_params = inspect.signature(config_cls).parameters
    assert list(config_params) == list(config_cls.model_fields)
    assert all(p.default == config_cls.model_fields[n].default for n, p in config_params.items())


def test_constructor_takes_the_config_object_only() -> None:
    from mlsp_pipelines.models.cnn import CNN, CNNConfig

    torch.manual_seed(0)
    direct = CNN(CNNConfig(channels=(4,)), in_features=FEAT, out_features=OUT)
    torch.manual_seed(0)
    built = build_model("cnn", in_features=FEAT, out_features=OUT, channels=[4])
    assert direct.config == built.config
    assert all(torch.equal(a, b) for a, b in zip(direct.state_dict().values(), built.state_dict().values()))
    assert CNN(in_features=FEAT, out_features=OUT).config == CNNConfig()  # None: the defaults
    with pytest.raises(TypeError, match="CNNConfig"):
        CNN({"channels": [4]}, in_features=FEAT, out_features=OUT)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CNNConfig"):
        CNN(model_config("crnn"), in_features=FEAT, out_features=OUT)
    with pytest.raises(TypeError):
        CNN(in_features=FEAT, out_features=OUT, channels=[4])  # type: ignore[call-arg]


def test_in_out_features_are_validated() -> None:
    with pytest.raises(ValueError, match="in_features"):
        build_model("mlp", in_features=0, out_features=OUT)
    with pytest.raises(ValueError, match="out_features"):
        build_model("lstm", in_features=FEAT, out_features=-1)
    with pytest.raises(ValueError, match="in_features"):
        build_model("crnn", in_features=3, out_features=OUT, channels=[4, 4])
    with pytest.raises(ValueError, match="in_features"):
        model_config("mlp", in_features=FEAT)


def test_wrong_input_shape_is_reported() -> None:
    with pytest.raises(ValueError, match=r"\(batch, time, 16\)"):
        tiny("lstm")(torch.randn(B, T, FEAT + 1))


def test_config_is_frozen_and_normalised() -> None:
    cfg = model_config("cnn", channels=[4, 8])
    assert cfg.channels == (4, 8)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.dropout = 0.5  # type: ignore[misc]
    assert model_config("transformer").d_model % model_config("transformer").n_heads == 0


@pytest.mark.parametrize("name", sequence_models())
def test_same_seed_same_output(name: str) -> None:
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = tiny(name, **({"dropout": 0.3} if "dropout" in TINY[name] else {}))
        torch.manual_seed(7)
        outputs.append(model(batch()))  # training mode: dropout is seeded too
    assert torch.equal(outputs[0], outputs[1])
    torch.manual_seed(124)
    other = tiny(name)
    assert not torch.equal(outputs[0], other(batch()))


def test_register_model_function_and_conflicts() -> None:
    from mlsp_pipelines.models.mlp import MLP, MLPConfig
    from mlsp_pipelines.models.registry import _REGISTRY

    try:
        register_model("mlp_alias_for_test", MLP, MLPConfig)
        assert "mlp_alias_for_test" in list_models()
        model = build_model("mlp_alias_for_test", in_features=FEAT, out_features=OUT, hidden_sizes=[])
        # per-band mean and std in, batch-normalised (a scale and a shift each)
        assert count_parameters(model) == 2 * FEAT * OUT + OUT + 2 * 2 * FEAT
        register_model("mlp_alias_for_test", MLP, MLPConfig)  # idempotent
        with pytest.raises(ValueError, match="already registered"):
            register_model("mlp", torch.nn.Linear, MLPConfig)
        with pytest.raises(ValueError, match="pydantic"):
            register_model("not_a_config", MLP, dict)
    finally:
        _REGISTRY.pop("mlp_alias_for_test", None)


def test_count_parameters_excludes_frozen() -> None:
    model = tiny("mlp")
    total = count_parameters(model)
    model.net[0].weight.requires_grad_(False)
    assert count_parameters(model) == total - model.net[0].weight.numel()


def test_default_cnn_is_vgg_style_and_single_conv_stays_selectable() -> None:
    vgg = build_model("cnn", in_features=FEAT, out_features=OUT)
    convs = [m for m in vgg.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 * len(vgg.config.channels)  # two conv layers per block
    assert [c.out_channels for c in convs[::2]] == list(vgg.config.channels)
    small = build_model("cnn", in_features=FEAT, out_features=OUT, channels=[4, 8], convs_per_block=1, pooling="min")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in small.modules()) == 2


@pytest.mark.parametrize("arch", ["attn_lstm", "transformer"])
def test_conv_frontend_shortens_sequence_but_attention_covers_every_frame(arch: str) -> None:
    torch.manual_seed(0)
    plain = build_model(arch, in_features=FEAT, out_features=OUT).eval()
    fronted = build_model(arch, in_features=FEAT, out_features=OUT, frontend=[4, 8]).eval()
    x = torch.randn(3, 20, FEAT)
    with torch.no_grad():
        logits, attn = fronted.forward_with_attention(x)
    assert logits.shape == (3, OUT) and attn.shape == (3, 20)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3))
    assert sum(p.numel() for p in fronted.parameters()) != sum(p.numel() for p in plain.parameters())


def test_mlp_meanstd_pooling_sees_variance_that_mean_pooling_cannot() -> None:
    torch.manual_seed(0)
    x = torch.zeros(2, 10, FEAT)
    x[1, ::2], x[1, 1::2] = 1.0, -1.0  # same per-band mean (0), different spread
    mean_only = build_model("mlp", in_features=FEAT, out_features=OUT, pooling="mean").eval()
    both = build_model("mlp", in_features=FEAT, out_features=OUT, pooling="meanstd").eval()
    with torch.no_grad():
        torch.testing.assert_close(mean_only(x)[0], mean_only(x)[1])
        assert not torch.allclose(both(x)[0], both(x)[1])


def test_complexity_counts_recurrent_macs_and_budget_fails_with_the_model_named() -> None:
    from mlsp_pipelines.evaluation.complexity import check_budget, model_complexity

    net = build_model("gru", in_features=FEAT, out_features=OUT, hidden_size=8, bidirectional=False)
    cx = model_complexity(net, torch.randn(1, 50, FEAT), clip_seconds=2.0)
    gru = 50 * 3 * 8 * (FEAT + 8)  # steps x gates x H x (input + H)
    assert cx["macs_per_clip"] >= gru and cx["macs_per_s"] == round(cx["macs_per_clip"] / 2.0)
    assert cx["param_bytes"] == 4 * cx["params"]
    assert check_budget("g", cx, max_macs=None, max_param_bytes=None, action="fail")
    assert not check_budget("g", cx, max_macs=10, max_param_bytes=None, action="flag")
    with pytest.raises(ValueError, match="model 'g'.*max_param_bytes"):
        check_budget("g", cx, max_macs=None, max_param_bytes=10, action="fail")
    # the hint is what the command line takes when the task is known
    with pytest.raises(ValueError, match=r"asc\.report\.max_param_bytes=10 \(--params asc\.report\.budget_action=flag"):
        check_budget("g", cx, max_macs=None, max_param_bytes=10, action="fail", task="asc")


def test_mlp_bag_of_frames_ignores_frame_order() -> None:
    torch.manual_seed(0)
    net = build_model("mlp", in_features=FEAT, out_features=OUT, pooling="frames").eval()
    x = torch.randn(2, 10, FEAT)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x[:, torch.randperm(10)]))  # memoryless: order-free
        assert not torch.allclose(net(x), net(x.mean(1, keepdim=True).expand_as(x)))  # but not just the mean


def test_rebuild_model_returns_the_saved_module_and_names_a_missing_key() -> None:
    """Every pipeline's model artefact and the serving package come back through one function."""
    from mlsp_pipelines.models import rebuild_model

    torch.manual_seed(0)
    net = build_model("mlp", in_features=6, out_features=3, hidden_sizes=[8])
    bundle = {"arch": "mlp", "in_features": 6, "out_features": 3, "kwargs": {"hidden_sizes": [8]},
              "state_dict": net.state_dict()}
    back = rebuild_model(bundle)
    x = torch.randn(2, 5, 6)
    assert not back.training and torch.equal(back(x), net.eval()(x))
    with pytest.raises(KeyError, match="state_dict"):
        rebuild_model({k: v for k, v in bundle.items() if k != "state_dict"})


def test_pooled_mlp_standardises_its_clip_statistics() -> None:
    """A band's clip mean varies far less between clips than its std over time; the pooled MLP
    batch-normalises the statistics, so (in training) a per-band rescaling of its input changes nothing."""
    torch.manual_seed(0)
    net = build_model("mlp", in_features=FEAT, out_features=OUT, pooling="meanstd", dropout=0.0)
    x = torch.randn(16, 20, FEAT)
    scale, shift = torch.rand(FEAT) * 5 + 0.5, torch.randn(FEAT) * 10
    net.train()
    assert torch.allclose(net(x), net(x * scale + shift), atol=1e-4)
    plain = build_model("mlp", in_features=FEAT, out_features=OUT, pooling="meanstd", dropout=0.0, pooled_norm=False)
    plain.train()
    assert not torch.allclose(plain(x), plain(x * scale + shift), atol=1e-2)
