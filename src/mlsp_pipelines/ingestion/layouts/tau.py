"""``tau``: TAU Urban Acoustic Scenes releases (DCASE Task 1): ``meta.csv``, the official
``evaluation_setup`` folds and the data-efficiency subsets (see ``ingestion/tau.py``)."""

from __future__ import annotations

from typing import Literal

from mlsp_pipelines.ingestion.layouts import LayoutIndex, register_layout
from mlsp_pipelines.section import Section


class TauParams(Section):
    setup_dir: str = "evaluation_setup"  # fold1_train.csv / fold1_evaluate.csv, relative to the dataset
    subset: Literal[5, 10, 25, 50, 100] = 100  # % of the training split (DCASE 2024/2025 data efficiency)
    subset_dir: str = "split_setup"  # official subset lists split<subset>.csv, when present
    subset_seed: int = 0  # seeded stratified subset when no official list is present


@register_layout("tau", params=TauParams)
def index(folder: str, options: TauParams, *, on_bad_file: str, task: str | None = None) -> LayoutIndex:
    from mlsp_pipelines.ingestion.tau import index_tau

    frame, quality = index_tau(folder, setup_dir=options.setup_dir, subset=options.subset,
                               subset_dir=options.subset_dir, subset_seed=options.subset_seed,
                               on_bad_file=on_bad_file, task=task)
    return LayoutIndex(frame, quality)
