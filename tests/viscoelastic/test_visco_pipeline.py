"""The ``viscoelastic`` pipeline: wiring, parameter errors before any work, a tiny real Kedro run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from mlsp_pipelines.pipelines.viscoelastic.pipeline import create_pipelines

ARCHS = ["mlp", "gru", "rate_ode", "seq_generator"]  # conf/test/parameters_viscoelastic.yml
PARAMS: dict[str, Any] = {"viscoelastic": {"architectures": ["mlp", "lstm"],
                                           "models": {"mlp": {"arch": "mlp"}, "lstm": {"arch": "lstm"}}}}


def test_pipelines_and_slices() -> None:
    pipes = create_pipelines(PARAMS)
    assert set(pipes) == {"viscoelastic", "viscoelastic_data", "viscoelastic_train"}
    data, train = pipes["viscoelastic_data"], pipes["viscoelastic_train"]
    assert {n.name for n in data.nodes} == {"viscoelastic.simulate_trajectories", "viscoelastic.build_dataset"}
    assert set(data.all_outputs()) >= {"viscoelastic.dataset", "viscoelastic.norm_stats"}
    # The training slice starts from the data slice's files.
    assert train.inputs() >= {"viscoelastic.dataset", "viscoelastic.norm_stats"}
    assert not train.inputs() & {"viscoelastic.trajectories", "viscoelastic.generator_trajectories"}
    runs = [n for n in train.nodes if "model_run" in n.tags]
    assert {n.namespace for n in runs} == {"viscoelastic.mlp", "viscoelastic.lstm"}
    assert "params:viscoelastic.models.lstm" in pipes["viscoelastic"].inputs()
    names = {n.name for n in train.nodes}
    assert {"viscoelastic.gradient_diagnostics", "viscoelastic.build_leaderboard",
            "viscoelastic.plot_loops_overview", "viscoelastic.lstm.train_model"} <= names
    assert len(pipes["viscoelastic"].nodes) == len(data.nodes) + len(train.nodes)


def test_each_model_reads_the_input_of_its_problem() -> None:
    """Two problems, two model inputs: the one-to-many generator's nodes read ``generator_input``,
    a sequence model's (whatever its entry is called) ``sequence_input``."""
    pipes = create_pipelines({"viscoelastic": {"architectures": ["gen", "cell"],
                                               "models": {"gen": {"arch": "seq_generator"}, "cell": {"arch": "gru"}}}})
    train = pipes["viscoelastic_train"]
    reads = {ns: set().union(*(n.inputs for n in train.nodes if n.namespace == f"viscoelastic.{ns}"))
             for ns in ("gen", "cell")}
    assert "viscoelastic.generator_input" in reads["gen"] and "viscoelastic.sequence_input" not in reads["gen"]
    assert "viscoelastic.sequence_input" in reads["cell"] and "viscoelastic.generator_input" not in reads["cell"]


def test_architecture_without_model_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"viscoelastic\.models"):
        create_pipelines({"viscoelastic": {"architectures": ["mlp", "wavenet"], "models": {"mlp": {"arch": "mlp"}}}})


def _no_work_done(path: Path) -> None:
    files = [p for p in (path / "data").rglob("*") if p.is_file()] if (path / "data").exists() else []
    assert files == [], f"files written before the parameter error: {files}"
    db = path / "mlflow.db"
    if db.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


@pytest.mark.parametrize(("item", "field"), [("viscoelastic.material.E=-1.0", "E"), ("viscoelastic.material.m=0.5", "m"),
                                             ("viscoelastic.material.nu0=0.0", "nu0")])
def test_bad_material_fails_before_any_work(project_copy: Path, kedro_run, item: str, field: str) -> None:  # type: ignore[no-untyped-def]
    params = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
    with pytest.raises(Exception) as exc:
        kedro_run(project_copy, ["viscoelastic"], runtime_params=params)
    msg = str(exc.value)
    assert "viscoelastic.material" in msg and field in msg, msg
    _no_work_done(project_copy)


@pytest.mark.slow
def test_tiny_end_to_end_run(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    _, session_id = kedro_run(project_copy, ["viscoelastic"])
    data = project_copy / "data"
    report = data / "08_reporting" / "viscoelastic"
    for rel in ("02_intermediate/viscoelastic/trajectories.npz", "05_model_input/viscoelastic/dataset.npz",
                "05_model_input/viscoelastic/norm_stats.json", "08_reporting/viscoelastic/loops_overview.png",
                "08_reporting/viscoelastic/gradient_norms.png", "08_reporting/viscoelastic/gradient_norms.csv",
                "08_reporting/viscoelastic/leaderboard.png", "08_reporting/viscoelastic/leaderboard.md",
                "08_reporting/viscoelastic/trained_gradients.png", "08_reporting/viscoelastic/hysteresis_extrapolation.png"):
        assert (data / rel).is_file(), rel
    for arch in ARCHS:
        assert (data / "06_models" / "viscoelastic" / f"{arch}.pt").is_file()
        assert (data / "07_model_output" / "viscoelastic" / arch / "history.csv").is_file()
        assert (report / "models" / arch / "loops.png").is_file()
        metrics = json.loads((data / "07_model_output" / "viscoelastic" / arch / "metrics.json").read_text())
        for key in ("rel_rmse", "rel_rmse_extrap", "max_err", "max_err_extrap"):
            assert math.isfinite(metrics[key]) and metrics[key] >= 0, (arch, key)
        assert "train_seconds" not in metrics  # timings stay out of the reproducible outputs
        bundle = torch.load(data / "06_models" / "viscoelastic" / f"{arch}.pt", weights_only=False)
        assert not [k for k in bundle if "seconds" in k], arch  # the model file hashes alike on re-runs
    assert not (data / "06_models" / "viscoelastic" / "checkpoints" / "gru.ckpt").exists()  # cleared after training

    timings = pd.read_csv(report / "timings.csv")
    assert sorted(timings["model"]) == sorted(ARCHS)
    assert (timings["train_cpu_seconds"] > 0).all() and (timings["train_seconds"] > 0).all()
    board = pd.read_csv(report / "leaderboard.csv")
    assert "train_seconds" not in board
    assert sorted(board["model"]) == sorted(ARCHS)
    assert board["rel_rmse"].is_monotonic_increasing
    summary = json.loads((report / "metrics.json").read_text())
    assert set(summary["models"]) == set(ARCHS) and summary["mlp_baseline"] == "mlp"
    assert set(summary["gradient_diagnostics"]) == {"init", "trained"}
    grads = pd.read_csv(report / "gradient_norms.csv")
    assert (grads["grad_norm"] > 0).all()
    # The trained recurrent model's gradient through time sits beside its error (gru is the only one here).
    trained = pd.read_csv(report / "trained_gradient_norms.csv")
    assert set(trained["model"]) == {"gru"} and len(trained) == 40
    assert (trained["grad_norm"] > 0).all() and (trained["rel_err"] >= 0).all()
    gru_row = board.set_index("model").loc["gru"]
    assert math.isfinite(gru_row["grad_log10_ratio"]) and math.isnan(board.set_index("model").loc["mlp", "grad_log10_ratio"])
    assert summary["models"]["gru"]["grad_log10_ratio"] == pytest.approx(gru_row["grad_log10_ratio"])
    # Hysteresis at unseen rates: per-cycle energies of the cyclic extrapolation trajectories.
    hyst = json.loads((report / "hysteresis_extrapolation.json").read_text())
    assert set(hyst["models"]) == {"gru", "rate_ode"}  # the recurrent models
    assert hyst["best_model"] == min(hyst["val_rel_rmse"], key=hyst["val_rel_rmse"].get)
    cycles = [c for t in hyst["models"]["gru"]["trajectories"].values() for c in t["cycles"]]
    assert cycles and hyst["models"]["gru"]["n_cycles"] == len(cycles)
    assert all(c["energy_true"] > 0 for c in cycles)
    assert all(t["rate"] > 0.4 for t in hyst["models"]["gru"]["trajectories"].values())

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project_copy / 'mlflow.db'}")
    exp = client.get_experiment_by_name("viscoelastic-test")  # one experiment per pipeline and env
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["kedro_session_id"] == session_id
    children = {r.data.tags["architecture"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == set(ARCHS)
    for arch, run in children.items():
        assert {"rel_rmse", "rel_rmse_extrap", "train_loss", "val_loss"} <= set(run.data.metrics), arch
        # params:viscoelastic.models.<name> and params:viscoelastic.train, under architecture-independent keys
        # train.* are the effective settings: the test env's models.seq_generator.train.epochs=3 overrides train.epochs
        assert run.data.params["model.name"] == arch
        assert run.data.params["train.epochs"] == ("3" if arch == "seq_generator" else "2")
        arts = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
        assert "tables/trajectory_errors.csv" in arts, "declared in the catalog, so logged"
    parent = parents[0]
    assert "n_train" in parent.data.metrics and "models.gru.rel_rmse" in parent.data.metrics
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/gradient_norms_plot.png", "plots/loops_overview.png"} <= arts
    assert "leaderboard.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
