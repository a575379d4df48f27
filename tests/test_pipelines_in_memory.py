"""Every pipeline run the way Kedro's starters test theirs: built from conf/test's parameters,
on an in-memory catalog, with Kedro's own runner -- no session, no MLflow, no files but the
synthesised audio folder of the audio tasks.

Each pipeline also gets a second entry of one architecture ("twin"), which must come out as its
own leaderboard row and its own metrics entry: a model's name is its entry's key, never its
architecture's.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro.validation.parameter_validator import ParameterValidator
from matplotlib.figure import Figure

from mlsp_pipelines.datasets import AudioFolderDataset
from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.settings import CONFIG_LOADER_ARGS

ROOT = Path(__file__).resolve().parents[1]

# task → (the entries to train, the twin: a second entry of the first one's architecture)
CASES = {
    "asc": (["cnn"], "cnn_twin"),
    "asthma": (["cnn"], "cnn_twin"),
    "seq2seq": (["gru_attn", "transformer_s2s"], "gru_twin"),
    "viscoelastic": (["mlp", "gru", "rate_ode", "seq_generator"], "gru_twin"),
    "word2vec": (["sg", "cbow"], "sg_twin"),
}


@pytest.fixture(scope="module")
def conf_test_params() -> dict[str, Any]:
    loader = OmegaConfigLoader(conf_source=str(ROOT / "conf"), env="test", **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


def _with_twin(params: dict[str, Any], task: str) -> tuple[dict[str, Any], list[str]]:
    names, twin = CASES[task]
    params = copy.deepcopy(params)
    section = params[task]
    twin_of = "gru" if task == "viscoelastic" else names[0]
    section["models"][twin] = copy.deepcopy(section["models"][twin_of])
    section["architectures"] = [*names, twin]
    return params, section["architectures"]


def _param_datasets(raw: dict[str, Any], typed: dict[str, Any]) -> dict[str, MemoryDataset]:
    """``parameters`` and ``params:<dotted key>`` for every nested key of the raw parameters, as a
    Kedro context adds them; the value is the validated one (a pydantic model where a node's type
    hint asks for one)."""
    out: dict[str, MemoryDataset] = {"parameters": MemoryDataset(typed, copy_mode="assign")}

    def add(prefix: str, value: Any, typed_value: Any) -> None:
        out[f"params:{prefix}"] = MemoryDataset(typed_value, copy_mode="assign")
        if isinstance(value, dict):
            for key, sub in value.items():
                add(f"{prefix}.{key}", sub,
                    typed_value[key] if isinstance(typed_value, dict) else getattr(typed_value, key, sub))

    for key, value in raw.items():
        add(key, value, typed[key])
    return out


def _external_inputs(task: str, name: str, tmp_path: Path) -> Any:
    if name.endswith(".checkpoints"):
        return CheckpointStore(tmp_path / f"{name}.ckpt")
    from mlsp_pipelines.datasets import text  # word2vec's corpus and benchmarks: gensim's bundled files

    kinds = {"corpus": text.TextCorpusDataset, "wordsim": text.WordSimDataset, "analogies": text.AnalogyDataset}
    return kinds[name.split(".")[-1]](filepath=None).load()


def run_in_memory(task: str, params: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The task's whole pipeline (its data, features and train slices) on MemoryDatasets."""
    pipeline = importlib.import_module(f"mlsp_pipelines.pipelines.{task}").create_pipelines(params)[task]
    typed = ParameterValidator({task: pipeline}).validate_raw_params(params)
    datasets = _param_datasets(params, typed)
    for name in pipeline.inputs() - set(datasets):
        datasets[name] = MemoryDataset(_external_inputs(task, name, tmp_path), copy_mode="assign")
    if f"{task}.raw_audio" in pipeline.datasets():  # audio is a folder of files by nature: a temporary one
        datasets[f"{task}.raw_audio"] = AudioFolderDataset(filepath=str(tmp_path / "raw_audio"))
    for name in pipeline.datasets() - set(datasets):
        datasets[name] = _Kept(copy_mode="assign")
    catalog = DataCatalog(datasets)
    SequentialRunner().run(pipeline, catalog)
    return {name: datasets[name].load() for name in pipeline.all_outputs()}


class _Kept(MemoryDataset):
    """A MemoryDataset the runner cannot release, so intermediate outputs can be inspected."""

    def _release(self) -> None:
        pass


@pytest.mark.parametrize("task", list(CASES))
def test_pipeline_runs_in_memory_and_a_twin_entry_is_its_own_row(task: str, conf_test_params, tmp_path) -> None:
    params, entries = _with_twin(conf_test_params, task)
    out = run_in_memory(task, params, tmp_path)

    board = out[f"{task}.leaderboard"]
    assert isinstance(board, pd.DataFrame)
    rows = board["model"].tolist()
    anchors = [f"gensim_{k}" for k in params[task]["baseline"]["kinds"]] if task == "word2vec" else []
    assert sorted(rows) == sorted([*entries, *anchors]), rows  # one row per entry, the twin included
    summary = out[f"{task}.metrics"]
    models = summary.get("models", summary)
    assert set(entries) <= set(models), sorted(models)
    _, twin = CASES[task]
    # each entry's own outputs exist under its own name
    for name in entries:
        assert f"{task}.{name}.model" in out and f"{task}.{name}.metrics" in out, name
        assert out[f"{task}.{name}.metrics"]["model"] == name
        assert out[f"{task}.{name}.model"]["name"] == name
    assert out[f"{task}.{twin}.model"]["arch"] == out[f"{task}.{entries[0] if task != 'viscoelastic' else 'gru'}.model"]["arch"]
    # figures are plain matplotlib Figures, handed to the catalog, never left open in pyplot
    figures = [v for v in out.values() if isinstance(v, Figure)]
    assert figures and all(f.canvas.manager is None for f in figures)


def test_train_nodes_get_their_task_bound_for_command_line_hints() -> None:
    """Every node function taking a keyword-only ``task`` has it bound to the pipeline's task, so
    its messages can spell ``--params asc.<key>=<value>``."""
    import functools

    from mlsp_pipelines.pipeline_registry import register_pipelines

    bound = {}
    for node in register_pipelines()["asc"].nodes:
        func = node.func
        if isinstance(func, functools.partial) and "task" in func.keywords:
            bound[node.name] = func.keywords["task"]
    assert bound and set(bound.values()) == {"asc"}
    assert any("train" in name for name in bound)
