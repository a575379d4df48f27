"""``generic``: any folder of audio files with a CSV ``filename,label[,fold]`` (and the embedded
synthetic scenes, written in this layout)."""

from __future__ import annotations

from mlsp_pipelines.ingestion.layouts import LayoutIndex, register_layout
from mlsp_pipelines.section import Section


class GenericParams(Section):
    metadata: str | None = None  # CSV path relative to the folder; None: the only *.csv there
    audio_dir: str = "audio"  # audio folder relative to the folder
    label_column: str = "label"


@register_layout("generic", params=GenericParams)
def index(folder: str, options: GenericParams, *, on_bad_file: str, task: str | None = None) -> LayoutIndex:
    from mlsp_pipelines.ingestion.index import index_generic

    frame, report = index_generic(folder, metadata=options.metadata, audio_dir=options.audio_dir,
                                  label_column=options.label_column, on_bad_file=on_bad_file, task=task)
    return LayoutIndex(frame, report.to_dict())
