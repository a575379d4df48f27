"""The graph-shaping parameters and the project's one guarded access to Kedro's pipeline registry."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import yaml

from mlsp_pipelines import config


def _project(tmp_path: Path, parameters: str | None) -> Path:
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    if parameters is not None:
        (tmp_path / "conf" / "base" / "parameters.yml").write_text(parameters)
    return tmp_path


def test_a_yaml_error_in_the_parameters_surfaces_as_a_yaml_error(tmp_path, monkeypatch) -> None:
    """It used to come out as an empty graph, so `kedro run` said a pipeline did not exist."""
    monkeypatch.chdir(_project(tmp_path, "asc:\n  architectures: [cnn, mlp\n  seed: 3\n"))
    with pytest.raises(yaml.YAMLError, match="parameters.yml"):
        config.graph_params()


def test_no_parameter_files_give_an_empty_graph_spec_and_valid_ones_are_read(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(_project(tmp_path, None))
    assert config.graph_params() == {}
    (tmp_path / "conf" / "base" / "parameters.yml").write_text("asc:\n  architectures: [mlp]\n")
    assert config.section(config.graph_params(), "asc.architectures") == ["mlp"]


def test_rebuilding_the_pipelines_keeps_the_requested_names_and_uses_the_recorded_parameters() -> None:
    from kedro.framework.project import pipelines

    params = copy.deepcopy(config.graph_params())
    params["asc"]["architectures"] = ["mlp"]
    try:
        pipelines.configure(f"{config.__package__}.pipeline_registry")
        pipelines.set_requested(["asc_train"])
        assert config.requested_pipelines() == ["asc_train"]
        before = {n.name for n in pipelines["asc_train"].nodes}
        config.set_active_params(params)
        config.rebuild_pipelines()
        assert config.requested_pipelines() == ["asc_train"]
        after = {n.name for n in pipelines["asc_train"].nodes}
        assert "asc.mlp.train_model" in after and not any(n.startswith("asc.cnn.") for n in after)
        assert any(n.startswith("asc.cnn.") for n in before)
    finally:
        config.set_active_params(None)
        pipelines.configure(f"{config.__package__}.pipeline_registry")


def test_on_an_untested_kedro_the_requested_names_are_unknown(monkeypatch, caplog) -> None:
    import kedro
    from kedro.framework.project import pipelines

    pipelines.set_requested(["asc"])
    try:
        monkeypatch.setattr(kedro, "__version__", "2.0.0")
        with caplog.at_level(logging.WARNING, logger="mlsp_pipelines.config"):
            assert config.requested_pipelines() is None
        assert "kedro 2.0.0" in caplog.text
        monkeypatch.setattr(kedro, "__version__", "1.7.0")
        assert config.requested_pipelines() == ["asc"]
    finally:
        pipelines.set_requested(None)


def test_the_hook_manager_holds_the_given_hooks_and_is_guarded(monkeypatch, caplog) -> None:
    import kedro
    import kedro.framework.hooks.manager as manager_module
    from kedro.framework.hooks import hook_impl

    class Seen:
        def __init__(self) -> None:
            self.calls: list[str] = []

        @hook_impl
        def before_dataset_loaded(self, dataset_name: str, node) -> None:  # type: ignore[no-untyped-def]
            self.calls.append(dataset_name)

    seen = Seen()
    manager = config.hook_manager((seen,))
    manager.hook.before_dataset_loaded(dataset_name="asc.features", node=None)
    assert seen.calls == ["asc.features"]
    monkeypatch.setattr(kedro, "__version__", "2.0.0")  # an untested major: said, still built
    with caplog.at_level(logging.WARNING, logger="mlsp_pipelines.config"):
        config.hook_manager(())
    assert "tested with kedro 1.x" in caplog.text
    monkeypatch.delattr(manager_module, "_register_hooks")  # gone in a later Kedro: a clear error
    with pytest.raises(RuntimeError, match="run with the default runner"):
        config.hook_manager(())
