"""Dataset layouts are plug-ins: a module registering its settings and indexer is all a new layout needs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from mlsp_pipelines.ingestion import layouts
from mlsp_pipelines.ingestion.layouts import AudioDataParams, LayoutIndex, register_layout
from mlsp_pipelines.pipelines.asthma.params import RespiratoryDataParams
from mlsp_pipelines.section import Section


def test_every_layout_module_is_registered_with_its_settings() -> None:
    assert layouts.layout_names() == ["esc50", "generic", "icbhi", "tau"]
    assert AudioDataParams().layout_name == "generic"  # the embedded scenes are written in the generic layout
    assert RespiratoryDataParams().layout_name == "icbhi"  # the embedded patients in ICBHI's
    assert AudioDataParams(source="esc50", esc10_only=True).options.esc10_only is True
    assert RespiratoryDataParams(task="wheeze").options.task == "wheeze"


def test_unknown_layouts_and_settings_are_errors_naming_them() -> None:
    with pytest.raises(ValidationError, match=r"unknown data source 'dcase': use 'synthetic' or a layout \(esc50, generic"):
        AudioDataParams(source="dcase")
    with pytest.raises(ValidationError, match=r"layout 'generic': label_colum: Extra inputs are not permitted"):
        AudioDataParams(source="generic", label_colum="class")  # a typo
    with pytest.raises(ValidationError, match="layout 'icbhi': task: Input should be 'four_class' or 'wheeze'"):
        RespiratoryDataParams(task="crackle")


def test_a_new_layout_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new layout's module does, registered at run time: the data section accepts it and
    its settings, and indexing goes through it."""

    layouts.layout_names()  # the layout modules loaded first
    monkeypatch.setattr(layouts, "_LAYOUTS", dict(layouts._LAYOUTS))  # the registry as it was, after the test

    class ListParams(Section):
        list_file: str = "files.txt"

    @register_layout("listfile", params=ListParams)
    def index(folder: str, options: ListParams, *, on_bad_file: str, task: str | None = None) -> LayoutIndex:
        names = (Path(folder) / options.list_file).read_text().split()
        return LayoutIndex(pd.DataFrame({"path": names, "filename": names, "label": ["a"] * len(names),
                                         "fold": [1] * len(names)}), {"n_listed": len(names)})

    (tmp_path / "mine.txt").write_text("x.wav y.wav\n")
    data = AudioDataParams(source="listfile", list_file="mine.txt")
    result = data.index(str(tmp_path))
    assert list(result.frame["filename"]) == ["x.wav", "y.wav"] and result.quality == {"n_listed": 2}
    from mlsp_pipelines.modular.audio.nodes import index_audio

    frame, quality = index_audio(str(tmp_path), data)  # the audio pipeline's node, unchanged
    assert len(frame) == 2 and quality["n_listed"] == 2
