"""Gradient norms through time: exact on a hand-made case, vanishing for tanh RNNs, kept longer by LSTMs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mlsp_pipelines.evaluation.diagnostics import (
    CellSpec,
    decay_summary,
    gradient_norms_through_time,
    run_gradient_diagnostics,
    set_recurrent_init,
)
from mlsp_pipelines.models import build_model
from mlsp_pipelines.pipelines.viscoelastic import report
from mlsp_pipelines.pipelines.viscoelastic.params import (
    DiagnosticsParams,
    InputParams,
    ProtocolParams,
)
from mlsp_pipelines.simulation.viscoelastic import (
    MaterialParams,
    build_sequence_dataset,
    generate_protocols,
    simulate,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def long_sequences() -> tuple[np.ndarray, np.ndarray]:
    """4 normalised viscoelastic trajectories of 150 steps."""
    pr = generate_protocols(n=4, n_steps=150, seed=0)
    x, y = build_sequence_dataset(pr.t, pr.stretch, simulate(pr, MaterialParams(E=1.0, nu0=1.0, sigma0=0.2, m=2.0)))
    x = (x - x.reshape(-1, 3).mean(0)) / x.reshape(-1, 3).std(0)
    return x, (y - y.mean()) / y.std()


def test_identity_relu_rnn_scales_exactly_by_the_gain() -> None:
    """All units active and W_hh = g·I: ∂h_{t+1}/∂h_t = g·I, so ‖∂L/∂h_t‖ = g^(T−1−t)·‖∂L/∂h_{T−1}‖."""
    torch.manual_seed(0)
    model = build_model("rnn", in_features=3, out_features=1, hidden_size=4, nonlinearity="relu",
                        per_step=True, dropout=0.0).double()
    set_recurrent_init(model.rnn, "identity", 1.1)
    with torch.no_grad():
        model.rnn.weight_ih_l0.abs_()
        model.rnn.bias_ih_l0.fill_(0.5)
    x = torch.rand(2, 30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(2, 30, 1, dtype=torch.float64)
    norms = gradient_norms_through_time(model, x, y)
    steps_back = np.arange(30)[::-1]
    np.testing.assert_allclose(norms / norms[-1], 1.1**steps_back, rtol=1e-10)
    # reported to SIGNIFICANT_DIGITS (8) significant digits: exact to that rounding
    assert decay_summary(norms)["log10_per_step"] == pytest.approx(np.log10(1.1), rel=1e-7)
    assert decay_summary(norms)["log10_per_step"] == float(f"{np.log10(1.1):.8g}")


def test_vanishing_for_tanh_rnn_not_so_for_lstm_exploding_for_scaled_identity(long_sequences: tuple) -> None:
    x, y = long_sequences
    cells = {
        "rnn_tanh": CellSpec(arch="rnn", kwargs={"nonlinearity": "tanh"}),
        "rnn_relu_identity": CellSpec(arch="rnn", kwargs={"nonlinearity": "relu"}, recurrent_init="identity", gain=1.05),
        "gru": CellSpec(arch="gru"),
        "lstm": CellSpec(arch="lstm"),
    }
    table, summary = run_gradient_diagnostics(cells, x, y, hidden_size=16, seed=0, train_steps=0)
    assert set(table["phase"]) == {"init"} and len(table) == 4 * x.shape[1]
    for cell, grp in table.groupby("cell"):
        norms = grp.sort_values("t")["grad_norm"].to_numpy()
        assert len(norms) == x.shape[1]
        assert np.all(np.isfinite(norms)) and np.all(norms > 0), cell
    init = summary["init"]
    # 150 steps back, a tanh RNN keeps less than 1e-10 of the gradient at the loss (vanishing) ...
    assert init["rnn_tanh"]["log10_ratio"] < -10
    # ... the gated cells keep at least 1000 times more of it (they decay more slowly per step) ...
    for gated in ("lstm", "gru"):
        assert init[gated]["log10_ratio"] > init["rnn_tanh"]["log10_ratio"] + 3, gated
        assert init[gated]["log10_per_step"] > init["rnn_tanh"]["log10_per_step"], gated
    # ... and a ReLU RNN whose recurrent matrix starts at 1.05·I grows it (exploding).
    assert init["rnn_relu_identity"]["log10_ratio"] > 1


def test_diagnostics_node_returns_norms_figure_and_summary() -> None:
    diag = DiagnosticsParams(seq_len=40, n_sequences=3, hidden_size=8, train_steps=2,
                             cells={"rnn_tanh": {"arch": "rnn"}, "rnn_relu": {"arch": "rnn", "kwargs": {"nonlinearity": "relu"}},
                                    "gru": {"arch": "gru"}, "lstm": {"arch": "lstm"}})
    inputs = InputParams(features=["stretch", "dt"])
    model_input = {"inputs": inputs.model_dump(), "norm": {"y": {"mean": [0.0], "std": [0.1]}},
                   "feature_sets": {"stretch+dt|standard": {"names": ["stretch", "dt"], "rate_scale": 0.1,
                                                   "norm": {"mean": [1.0, 0.05], "std": [0.1, 0.02]}}}}
    table, fig, summary = report.gradient_diagnostics(MaterialParams(), ProtocolParams(), diag, model_input)
    assert isinstance(fig, Figure)
    assert set(table["phase"]) == {"init", "trained"}
    assert table.groupby(["cell", "phase"]).size().eq(40).all() and len(table) == 4 * 2 * 40
    assert np.all(np.isfinite(table["grad_norm"])) and (table["grad_norm"] > 0).all()
    assert summary["seq_len"] == 40 and set(summary["trained"]) == {"rnn_tanh", "rnn_relu", "gru", "lstm"}
    assert np.isfinite(summary["trained"]["lstm"]["train_loss"])


def test_bad_cells_are_rejected() -> None:
    with pytest.raises(ValueError, match="identity"):
        DiagnosticsParams(cells={"x": {"arch": "lstm", "recurrent_init": "identity"}})
    with pytest.raises(ValueError, match="bidirectional"):
        DiagnosticsParams(cells={"x": {"arch": "gru", "kwargs": {"bidirectional": True}}})
    with pytest.raises(ValueError, match="arch"):
        DiagnosticsParams(cells={"x": {"arch": "transformer"}})
