"""``kedro run --pipeline=seq2seq`` end to end, through real Kedro sessions on ``conf/test`` in an
isolated copy of the project (its own ``data/`` and MLflow store)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import missing_real_data

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLSP_PROGRESS", "0")

ROOT = Path(__file__).resolve().parents[2]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k-sample"
MULTI30K_ENFR = ROOT.parent / "shared" / "data" / "multi30k-enfr"
ARCHS = ("gru_attn", "gru_noattn", "transformer_s2s")
REPORT = Path("data/08_reporting/seq2seq")


def _copy_project(dest: Path) -> Path:
    """``conf/`` (without machine-specific ``local``) and ``pyproject.toml``; the package is installed."""
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    (dest / "src").mkdir()
    return dest


def _session(path: Path, pipelines: list[str] | None, runtime_params: dict[str, Any] | None = None,
             env: str = "test") -> tuple[dict[str, Any], str, Any]:
    """Run ``pipelines`` (or only load the context when ``None``) in a fresh session of ``path``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from mlsp_pipelines import config

    bootstrap_project(path)
    try:
        with KedroSession.create(project_path=path, env=env, runtime_params=runtime_params) as session:
            context = session.load_context()
            result = session.run(pipeline_names=pipelines) if pipelines else {}
            return result, session.session_id, context
    finally:
        config.set_active_params(None)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = _copy_project(tmp_path_factory.mktemp("seq2seq") / "project")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path / 'mlflow.db'}")
        mp.delenv("KEDRO_ENV", raising=False)
        mp.chdir(path)
        yield path


@pytest.fixture(scope="module")
def default_run(project: Path) -> str:
    """The whole pipeline on the embedded date corpus (tiny sizes of conf/test)."""
    _, session_id, _ = _session(project, ["seq2seq"])
    return session_id


@pytest.mark.slow
def test_pipeline_writes_reports_and_models(project: Path, default_run: str) -> None:
    report = project / REPORT
    for name in ("metrics.json", "leaderboard.csv", "leaderboard.md", "leaderboard.png", "data_quality.json"):
        assert (report / name).is_file(), name
    board = pd.read_csv(report / "leaderboard.csv")
    assert sorted(board["model"]) == sorted(ARCHS)
    assert {"exact_match", "token_accuracy", "bleu", "chrf", "params"} <= set(board.columns)
    assert "train_seconds" not in board  # timings stay out of the reproducible reports
    timings = pd.read_csv(report / "timings.csv")  # ... and go here (not a DVC output) and to MLflow
    assert sorted(timings["model"]) == sorted(ARCHS) and (timings["decode_seconds"] > 0).all()
    assert (report / "timings" / "bleu_vs_minutes.png").stat().st_size > 0  # drawn on wall-clock times
    for arch in ARCHS:
        per_epoch = json.loads((report / "timings" / f"{arch}.json").read_text())
        assert len(per_epoch["epoch_seconds"]) == per_epoch["epochs_run"] and min(per_epoch["epoch_seconds"]) > 0
    assert board["bleu"].is_monotonic_decreasing
    assert board[["exact_match", "token_accuracy"]].apply(lambda c: c.between(0, 1).all()).all()
    assert board[["bleu", "chrf"]].apply(lambda c: c.between(0, 100).all()).all()  # sacreBLEU's scale
    summary = json.loads((report / "metrics.json").read_text())
    assert "tok:13a" in summary["bleu_signature"] and "nc:6" in summary["chrf_signature"]
    assert set(summary["models"]) == set(ARCHS) and summary["best_model"] in ARCHS
    assert set(summary["bleu_by_source_words"]) == set(ARCHS)  # BLEU per source-length bucket, per model
    assert "| model |" in (report / "leaderboard.md").read_text()
    for arch in ARCHS:
        for name in ("attention.png", "learning_curves.png", "predictions.csv"):
            assert (report / "models" / arch / name).stat().st_size > 0, (arch, name)
        preds = pd.read_csv(report / "models" / arch / "predictions.csv", dtype=str)
        assert list(preds.columns) == ["source", "reference", "prediction", "correct", "source_words", "sentence_bleu"]
        assert preds["source_words"].astype(int).tolist() == [len(s.split()) for s in preds["source"]]
        assert preds["reference"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
        bundle = torch.load(project / "data/06_models/seq2seq" / f"{arch}.pt", weights_only=False)
        assert not [k for k in bundle if "seconds" in k], arch  # the model file hashes alike on re-runs
        per_model = json.loads((project / "data/07_model_output/seq2seq" / arch / "metrics.json").read_text())
        assert not [k for k in per_model if "seconds" in k or "rss" in k], arch
        assert per_model["bleu_by_source_words"] == summary["bleu_by_source_words"][arch]
        assert sum(per_model["n_by_source_words"].values()) == per_model["n_test"], arch
        assert not (project / "data/06_models/seq2seq/checkpoints" / f"{arch}.ckpt").exists()  # cleared
    quality = json.loads((report / "data_quality.json").read_text())
    assert quality["n_train"] + quality["n_val"] + quality["n_test"] == quality["pairs_used"]
    assert (project / "data/01_raw/seq2seq/dates.tsv").is_file()


@pytest.mark.slow
def test_mlflow_has_a_nested_run_per_model(project: Path, default_run: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("seq2seq-test")  # one experiment per pipeline and env
    runs = client.search_runs([exp.experiment_id], f"tags.kedro_session_id = '{default_run}'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 1 + len(ARCHS)
    parent = parents[0]
    children = {r.data.tags["architecture"]: r for r in client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert set(children) == set(ARCHS)
    for arch, run in children.items():
        assert run.info.status == "FINISHED"
        assert {"exact_match", "token_accuracy", "bleu"} <= set(run.data.metrics)
        assert run.data.params["model.name"] == arch and "train.epochs" in run.data.params
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 1
        # greedy validation BLEU every epoch, live; the kept epoch is the best by it
        bleu = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "epoch/val_bleu"), key=lambda m: m.step)]
        assert len(bleu) == int(run.data.metrics["epochs_run"]) and all(0 <= b <= 100 for b in bleu), arch
        assert int(run.data.metrics["best_epoch"]) == 1 + bleu.index(max(bleu)), arch
        assert any(k.startswith("bleu_by_source_words.") for k in run.data.metrics), arch
        examples = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
        assert "tables/predictions.csv" in examples, arch  # source, reference, hypothesis per test sentence
        artefacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/attention_plot.png" in artefacts and run.outputs.model_outputs  # a logged MLflow model
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"seq2seq.train", "seq2seq.val", "seq2seq.test"}
    assert "models.gru_attn.bleu" in parent.data.metrics
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "tables")} >= {"tables/leaderboard.csv"}


def test_registry_has_the_pipeline_and_its_dvc_slices() -> None:
    from mlsp_pipelines.pipelines.seq2seq import create_pipelines

    params = {"seq2seq": {"architectures": ["a", "b"], "models": {"a": {"arch": "rnn_seq2seq"},
                                                                   "b": {"arch": "transformer_seq2seq"}}}}
    pipes = create_pipelines(params)
    assert {"seq2seq", "seq2seq_data", "seq2seq_train"} <= set(pipes)
    names = {n.name for n in pipes["seq2seq"].nodes}
    assert {"seq2seq.generate_dates", "seq2seq.a.train_model", "seq2seq.b.plot_attention",
            "seq2seq.build_leaderboard"} <= names
    assert {n.name for n in pipes["seq2seq_data"].nodes} == {
        "seq2seq.generate_dates", "seq2seq.prepare_corpus", "seq2seq.build_vocabularies"}
    assert all("model_run" in n.tags for n in pipes["seq2seq"].nodes if n.namespace == "seq2seq.a")
    tsv = create_pipelines({**params, "corpus_path": "/x.tsv"})["seq2seq_data"]
    assert "seq2seq.generate_dates" not in {n.name for n in tsv.nodes} and "seq2seq.corpus" in tsv.inputs()
    files = create_pipelines({**params, "corpus_dir": "/x"})["seq2seq_data"]
    assert "seq2seq.corpus_splits" in files.inputs()
    with pytest.raises(ValueError, match="no entry"):
        create_pipelines({"seq2seq": {"architectures": ["c"], "models": {}}})


def test_translation_preset_scores_tokenised_bleu_in_the_target_language(project: Path) -> None:
    """``--env=translation``: the papers' BLEU is computed in the run's target language."""
    for runtime, lang in (({"corpus_dir": "/x", "source_lang": "en", "target_lang": "fr"}, "fr"), ({}, "de")):
        _, _, context = _session(project, None, runtime, env="translation")
        report = context.params["seq2seq"]["report"]
        assert report.tokenized_bleu == lang and report.beam_size == 5, runtime


@pytest.mark.slow
def test_real_corpus_is_selected_by_corpus_path(project: Path) -> None:
    if not (MULTI30K / "train.tsv").is_file():
        missing_real_data(f"parallel-corpus sample not available: {MULTI30K}/train.tsv does not exist")
    runtime = {"corpus_path": str(MULTI30K / "train.tsv"), "seq2seq": {"vocab": {"level": "word"}}}
    _, _, context = _session(project, ["seq2seq_data"], runtime)
    assert len(context.catalog.load("seq2seq.corpus")) == 300
    quality = json.loads((project / REPORT / "data_quality.json").read_text())
    assert quality["pairs_read"] == 300 and quality["level"] == "word"
    vocab = json.loads((project / "data/04_feature/seq2seq/vocab.json").read_text())
    assert vocab["source"]["level"] == "word" and "Two" in vocab["source"]["tokens"]
    assert "Männer" in vocab["target"]["tokens"]


@pytest.mark.slow
def test_official_splits_are_selected_by_corpus_dir(project: Path) -> None:
    if not (MULTI30K / "test.tsv").is_file():
        missing_real_data(f"parallel-corpus sample not available: {MULTI30K}/test.tsv does not exist")
    runtime = {"corpus_dir": str(MULTI30K), "seq2seq": {"vocab": {"level": "subword", "subword_vocab_size": 400}}}
    _session(project, ["seq2seq_data"], runtime)
    quality = json.loads((project / REPORT / "data_quality.json").read_text())
    assert quality["split_source"] == "files" and quality["n_test"] == 100  # the official test split, whole
    assert "held out of train" in quality["val_source"] and quality["n_train"] + quality["n_val"] <= 300
    pairs = json.loads((project / "data/02_intermediate/seq2seq/pairs.json").read_text())
    test_lines = (MULTI30K / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert pairs["test"]["source"] == [line.split("\t")[0] for line in test_lines]
    vocab = json.loads((project / "data/04_feature/seq2seq/vocab.json").read_text())
    assert vocab["target"]["level"] == "subword" and vocab["target"]["subword_model"]


@pytest.mark.slow
def test_the_translation_direction_is_a_run_time_choice(project: Path) -> None:
    """``--params corpus_dir=...,source_lang=fr,target_lang=en`` reads French as the source."""
    if not (MULTI30K_ENFR / "test.fr").is_file():
        missing_real_data(f"Multi30K en-fr not available: {MULTI30K_ENFR}/test.fr does not exist")
    runtime = {"corpus_dir": str(MULTI30K_ENFR), "source_lang": "fr", "target_lang": "en",
               "seq2seq": {"vocab": {"level": "word", "min_freq": 5}}}
    _session(project, ["seq2seq_data"], runtime)
    pairs = json.loads((project / "data/02_intermediate/seq2seq/pairs.json").read_text())
    fr = [line.strip() for line in (MULTI30K_ENFR / "test.fr").read_text(encoding="utf-8").splitlines()]
    en = [line.strip() for line in (MULTI30K_ENFR / "test.en").read_text(encoding="utf-8").splitlines()]
    assert pairs["test"]["source"] == fr and pairs["test"]["target"] == en
    assert 28900 < len(pairs["train"]["source"]) <= 29000  # exact duplicates dropped (dedupe)
