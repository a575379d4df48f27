"""End to end: ``word2vec`` on conf/test through a real KedroSession, tracked in MLflow.

Runs in a throw-away copy of the project (``conf/`` + ``pyproject.toml``), so ``data/`` and the
MLflow store never touch the working tree. One full run (bundled Lee corpus, 1 epoch, dim 8) is
shared by the assertions; two short ``word2vec_data`` runs check ``--params corpus_path=...``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ("sg", "sg_small", "cbow", "gensim_sg")  # conf/test: two skip-gram entries


@pytest.fixture(scope="module")
def w2v_run(tmp_path_factory: pytest.TempPathFactory, new_project_copy: Any, kedro_run: Any) -> dict[str, Any]:
    project = new_project_copy(tmp_path_factory.mktemp("w2v") / "project")
    uri = f"sqlite:///{(project / 'mlflow.db').resolve()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("KEDRO_ENV", raising=False)
        mp.chdir(project)
        _, session_id = kedro_run(project, ["word2vec"], env="test")
    from mlsp_pipelines import config

    config.set_active_params(None)
    return {"project": project, "session_id": session_id, "uri": uri}


def test_reports_are_written(w2v_run: dict[str, Any]) -> None:
    reports = w2v_run["project"] / "data" / "08_reporting" / "word2vec"
    metrics = json.loads((reports / "metrics.json").read_text())
    board = pd.read_csv(reports / "leaderboard.csv")
    assert sorted(board["model"]) == sorted(MODELS)  # one row per entry, two of them word2vec_sg
    assert dict(zip(board["model"], board["kind"])) == {"sg": "sg", "sg_small": "sg", "cbow": "cbow", "gensim_sg": "sg"}
    assert {"spearman", "wordsim_pairs_oov", "analogy_questions_used"} <= set(board.columns)
    assert "words_per_second" not in board  # speed is apart: timings.csv and speed.png (not DVC outputs)
    speed = pd.read_csv(reports / "timings.csv")
    assert sorted(speed["model"]) == sorted(board["model"]) and (speed["words_per_second"] > 0).all()
    assert speed.set_index("model").loc["sg_small", "speed_ratio_to_anchor"] > 0
    assert (reports / "speed.png").read_bytes()[:8] == PNG_MAGIC
    assert (board["wordsim_pairs_used"] + board["wordsim_pairs_oov"] == 353).all()
    assert metrics["sg_vs_anchor"]["anchor"] == metrics["sg_small_vs_anchor"]["anchor"] == "gensim_sg"
    assert "| gensim_sg |" in (reports / "leaderboard.md").read_text()
    quality = json.loads((reports / "data_quality.json").read_text())
    assert quality["documents"] == 300 and quality["source"] == "gensim:lee_background.cor"  # not a venv path
    assert not [k for k in quality if "seconds" in k]  # a DVC output: no time in it
    for m in MODELS:
        assert (reports / "models" / m / "pca.png").read_bytes()[:8] == PNG_MAGIC
        neighbours = pd.read_csv(reports / "models" / m / "neighbours.csv")
        assert set(neighbours["probe"]) == {"police"}  # "notaword" is reported missing
        outputs = w2v_run["project"] / "data" / "07_model_output" / "word2vec"
        per_model = json.loads((outputs / m / "metrics.json").read_text())
        assert per_model["probes_missing"] == ["notaword"] and per_model["dim"] == 8


def test_embeddings_load_in_gensim_and_torch(w2v_run: dict[str, Any]) -> None:
    from gensim.models import KeyedVectors

    from mlsp_pipelines.datasets.files import TorchDataset

    models = w2v_run["project"] / "data" / "06_models" / "word2vec"
    for m in MODELS:
        kv = KeyedVectors.load_word2vec_format(str(models / f"{m}.vec.txt"), binary=False)
        emb = TorchDataset(filepath=str(models / f"{m}_embeddings.pt")).load()
        assert kv.index_to_key == emb["words"] and tuple(emb["vectors"].shape) == (len(kv), 8)
    assert not list((models / "checkpoints").glob("*.ckpt"))  # cleared after training


def test_mlflow_runs_per_model(w2v_run: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=w2v_run["uri"])
    exp = client.get_experiment_by_name("word2vec-test")  # one experiment per pipeline and env
    runs = client.search_runs([exp.experiment_id], f"tags.kedro_session_id = '{w2v_run['session_id']}'")
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    pid = parent[0].info.run_id
    kids = {r.data.tags["architecture"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == pid}
    assert set(kids) == set(MODELS)
    for name, run in kids.items():
        assert "spearman" in run.data.metrics or "wordsim_pairs_used" in run.data.metrics
        arts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/pca_plot.png" in arts, name
    assert "embedding.dim" in kids["sg"].data.params and "train.epochs" in kids["sg"].data.params
    assert len(client.get_metric_history(kids["sg"].info.run_id, "epoch/train_loss")) >= 1  # per-epoch, live
    assert kids["cbow"].outputs.model_outputs, "the trained model is an MLflow logged model"
    assert "model.arch" in kids["cbow"].data.params  # architecture-independent keys
    tables = {a.path for a in client.list_artifacts(parent[0].info.run_id, "tables")}
    assert {"tables/leaderboard.csv", "tables/leaderboard_md.md"} <= tables
    assert "vocab_size" in parent[0].data.metrics  # data_quality of the preprocessing node


def test_corpus_path_runtime_parameter(tmp_path: Path, w2v_run: dict[str, Any], new_project_copy: Any,
                                       kedro_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    project_copy = new_project_copy(tmp_path / "project")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", w2v_run["uri"])  # an existing store: no second migration
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    corpus = tmp_path / "my corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 5) + "\n",
                      encoding="utf-8")
    monkeypatch.chdir(project_copy)
    kedro_run(project_copy, ["word2vec_data"], env="test", runtime_params={"corpus_path": str(corpus)})
    quality = json.loads((project_copy / "data" / "08_reporting" / "word2vec" / "data_quality.json").read_text())
    assert quality["source"] == str(corpus) and quality["documents"] == 15 and quality["tokens"] == 85

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(Exception, match="empty") as err:
        kedro_run(project_copy, ["word2vec_data"], env="test", runtime_params={"corpus_path": str(empty)})
    assert str(empty) in str(err.value)
