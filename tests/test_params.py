"""Invalid parameters stop a run before any work, with an error that names the key at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from pydantic import ValidationError

from mlsp_pipelines.params import FeatureParams, ModelSpec, SplitParams, TrainParams


def cli_params(*items: str) -> dict[str, Any]:
    """``--params a.b=1,c=[x,y]`` as the Kedro CLI turns it into runtime parameters (a nested dict)."""
    return OmegaConf.to_container(OmegaConf.from_dotlist(list(items)))


def run_expecting_error(path: Path, kedro_run, *items: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as exc:
        kedro_run(path, ["asc"], runtime_params=cli_params(*items))
    return str(exc.value)


def assert_no_work_done(path: Path) -> None:
    data_files = [p for p in (path / "data").rglob("*") if p.is_file()] if (path / "data").exists() else []
    assert data_files == [], f"files written before the parameter error: {data_files}"
    db = path / "mlflow.db"
    if db.exists():  # no MLflow run was started for a run that never began
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        assert [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])] == []


def test_negative_n_mels_fails_before_any_work(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    msg = run_expecting_error(project_copy, kedro_run, "asc.features.n_mels=-3")
    assert "asc.features" in msg and "n_mels" in msg
    assert "greater than 0" in msg
    assert_no_work_done(project_copy)


def test_typo_in_a_key_is_named(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    msg = run_expecting_error(project_copy, kedro_run, "asc.train.epoch=3")
    assert "asc.train" in msg and "epoch" in msg and "Extra inputs are not permitted" in msg
    assert_no_work_done(project_copy)


def test_unknown_architecture_is_named_with_choices(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    msg = run_expecting_error(project_copy, kedro_run, "asc.models.cnn.arch=resnet9000")
    assert "asc.models.cnn" in msg and "resnet9000" in msg
    for choice in ("attn_lstm", "cnn", "crnn", "mlp", "transformer"):
        assert choice in msg
    assert_no_work_done(project_copy)


def test_unknown_model_kwarg_is_named(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    msg = run_expecting_error(project_copy, kedro_run, "asc.models.attn_lstm.kwargs.hidden=8")
    assert "asc.models.attn_lstm" in msg and "'hidden'" in msg and "hidden_size" in msg
    assert_no_work_done(project_copy)


def test_architecture_without_model_entry(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    msg = run_expecting_error(project_copy, kedro_run, "asc.architectures=[cnn,wavenet]")
    assert "asc.architectures" in msg and "wavenet" in msg and "asc.models" in msg
    assert_no_work_done(project_copy)


def test_fmax_above_nyquist(project_copy: Path, kedro_run) -> None:  # type: ignore[no-untyped-def]
    # conf/test uses sr 8000, so sr/2 = 4000
    msg = run_expecting_error(project_copy, kedro_run, "asc.features.fmax=5000")
    assert "asc.features" in msg and "fmax=5000" in msg and "4000" in msg
    assert_no_work_done(project_copy)


# -- the parameter models themselves (no session) ------------------------------------------------------
def test_feature_params_checks() -> None:
    FeatureParams(sr=8000, fmax=4000.0, n_fft=256, hop_length=128)  # the boundary sr/2 is allowed
    with pytest.raises(ValidationError, match="hop_length"):
        FeatureParams(n_fft=256, hop_length=512)
    with pytest.raises(ValidationError, match="fmin"):
        FeatureParams(sr=8000, fmin=4000.0, fmax=None)
    with pytest.raises(ValidationError, match="fmax"):
        FeatureParams(fmin=500.0, fmax=400.0)
    with pytest.raises(ValidationError, match="crop"):
        FeatureParams(crop="end")
    with pytest.raises(ValidationError, match="frozen"):
        FeatureParams().n_mels = 3  # type: ignore[misc]


def test_split_and_train_params_ranges() -> None:
    with pytest.raises(ValidationError, match="test_fraction"):
        SplitParams(test_fraction=1.0)
    with pytest.raises(ValidationError, match="epochs"):
        TrainParams(epochs=0)
    with pytest.raises(ValidationError, match="grad_clip"):
        TrainParams(grad_clip=0)
    assert TrainParams(grad_clip=None, patience=None).grad_clip is None


def test_model_spec_train_overrides() -> None:
    spec = ModelSpec(arch="transformer", kwargs={"d_model": 16, "n_heads": 2}, train={"lr": 0.0005})
    merged = spec.train_params(TrainParams(lr=0.01, epochs=7))
    assert merged.lr == 0.0005 and merged.epochs == 7
    with pytest.raises(ValidationError, match="lrate"):
        ModelSpec(arch="cnn", train={"lrate": 0.1})


@pytest.mark.parametrize(
    ("arch", "kwargs", "expected"),
    [
        ("cnn", {"channels": [8, 0]}, "channels.1: Input should be greater than or equal to 1 (got 0)"),
        ("gru", {"bidirectional": "false"}, "bidirectional: Input should be a valid boolean (got 'false')"),
        ("lstm", {"hidden_size": 2.5}, "hidden_size: Input should be an integer (got 2.5)"),
        ("transformer", {"pooling": "max"}, "pooling: Input should be 'cls' or 'mean' (got 'max')"),
        ("attn_lstm", {"hidden": 8}, "unknown parameter(s) 'hidden' for model 'attn_lstm'; accepted: hidden_size"),
    ],
)
def test_model_spec_names_the_bad_kwarg(arch: str, kwargs: dict[str, Any], expected: str) -> None:
    """The registry's config check runs inside the spec's validator: its message, key and value
    included, reaches the spec's error (and Kedro's, which adds the parameter key)."""
    with pytest.raises(ValidationError) as err:
        ModelSpec(arch=arch, kwargs=kwargs)
    assert expected in str(err.value)


def test_word2vec_model_spec_names_the_bad_kwarg() -> None:
    from mlsp_pipelines.pipelines.word2vec.params import Word2VecModelSpec

    assert Word2VecModelSpec(arch="word2vec_sg", kwargs={"negative": 3}).kwargs == {"negative": 3}
    with pytest.raises(ValidationError, match=r"model 'word2vec_sg': negative: Input should be greater than or equal to 1 \(got 0\)"):
        Word2VecModelSpec(arch="word2vec_sg", kwargs={"negative": 0})
    with pytest.raises(ValidationError, match=r"sparse: Input should be a valid boolean \(got 'yes'\)"):
        Word2VecModelSpec(arch="word2vec_cbow", kwargs={"sparse": "yes"})
    with pytest.raises(ValidationError, match="unknown parameter.*'window'.*accepted: negative, sparse"):
        Word2VecModelSpec(arch="word2vec_cbow", kwargs={"window": 5})


def test_epochs_scale_is_relative_to_the_task_epochs_and_an_absolute_epochs_wins() -> None:
    """A per-model length must follow the task's epochs (conf/test's 2, ``--params
    asc.train.epochs=5``), where an absolute per-model ``epochs`` would shadow them."""
    spec = ModelSpec(arch="cnn", train={"epochs_scale": 1.67, "lr": 0.002})
    assert spec.train_params(TrainParams(epochs=30)).epochs == 50
    assert spec.train_params(TrainParams(epochs=2)).epochs == 3
    assert spec.train_params(TrainParams(epochs=1)).lr == 0.002
    assert ModelSpec(arch="cnn", train={"epochs_scale": 0.01}).train_params(TrainParams(epochs=5)).epochs == 1
    assert ModelSpec(arch="cnn", train={"epochs_scale": 3, "epochs": 4}).train_params(TrainParams(epochs=30)).epochs == 4
    assert ModelSpec(arch="cnn").train_params(TrainParams(epochs=7)).epochs == 7
    for bad in (0, -1, "2", True):
        with pytest.raises(ValidationError, match="epochs_scale"):
            ModelSpec(arch="cnn", train={"epochs_scale": bad})


def test_a_broken_pipeline_config_does_not_block_another_pipeline(project_copy, caplog) -> None:
    """A dangling architecture in word2vec's parameters stops `kedro run --pipeline=word2vec`
    but not `--pipeline=asc_data`, which runs and warns that word2vec was left out."""
    from conftest import run_session

    broken = {"word2vec": {"architectures": ["sg", "nonexistent"]}}
    with pytest.raises(Exception, match="word2vec.architectures lists \\['nonexistent'\\]"):
        run_session(project_copy, ["word2vec"], runtime_params=broken)
    run_session(project_copy, ["asc_data"], runtime_params=broken)
    assert (project_copy / "data" / "01_raw" / "asc" / "metadata.csv").is_file()
    assert "pipeline 'word2vec' left out" in caplog.text


def test_invalid_parameters_end_with_the_offending_keys() -> None:
    """What ``kedro run`` prints last for invalid parameters (Kedro's message rewritten by the project CLI)."""
    import os

    from pydantic import ValidationError

    from mlsp_pipelines.cli import parameter_errors
    from mlsp_pipelines.params import FeatureParams, TrainParams

    assert os.environ["PYDANTIC_ERRORS_INCLUDE_URL"] == "0"  # set by the package: no documentation link last
    blocks = []
    for section, cls, raw in (("asc.train", TrainParams, {"epoch": 3, "lr": "abc"}),
                              ("asc.features", FeatureParams, {"n_mels": -5})):
        with pytest.raises(ValidationError) as err:
            cls(**raw)
        blocks.append(f"- Parameter '{section}': Failed to instantiate {cls.__name__} for parameter '{section}': {err.value}")
    text = parameter_errors("Parameter validation failed:\n" + "\n".join(blocks))
    lines = text.splitlines()
    assert lines[0] == "invalid parameters:"
    assert "  asc.train.epoch = 3: Extra inputs are not permitted" in lines
    assert any(line.startswith("  asc.train.lr = 'abc': Input should be a valid number") for line in lines)
    assert "  asc.features: n_mels=-5 must be greater than 0 (or 'auto')" in lines
    assert lines[-1] == ("fix asc.train.lr, asc.train.epoch, asc.features in conf/<env>/parameters_*.yml "
                         "or with --params <key>=<value>")
    assert parameter_errors("Parameter validation failed:\n- Parameter 'x': value is None but type is not Optional") \
        .splitlines()[1] == "  x: value is None but type is not Optional"
