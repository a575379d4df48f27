"""``esc50``: the ESC-50 release (``meta/esc50.csv``, ``audio/``, five official folds)."""

from __future__ import annotations

from mlsp_pipelines.ingestion.layouts import LayoutIndex, register_layout
from mlsp_pipelines.section import Section


class Esc50Params(Section):
    esc10_only: bool = False  # the ESC-10 subset (10 classes, 400 clips)


@register_layout("esc50", params=Esc50Params)
def index(folder: str, options: Esc50Params, *, on_bad_file: str, task: str | None = None) -> LayoutIndex:
    from mlsp_pipelines.ingestion.index import index_esc50

    frame, report = index_esc50(folder, esc10_only=options.esc10_only, on_bad_file=on_bad_file, task=task)
    return LayoutIndex(frame, report.to_dict())
