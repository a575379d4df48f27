"""Dataset layouts as plug-ins: how a folder of audio becomes the one index every audio task reads.

A layout is one module of this package. It defines the settings it understands (a
:class:`~mlsp_pipelines.section.Section`) and registers its indexer under the layout's name::

    class MyParams(Section):
        metadata: str = "meta.csv"

    @register_layout("mine", params=MyParams)
    def index(folder: str, options: MyParams, *, on_bad_file: str, task: str | None = None) -> LayoutIndex:
        ...

A task's data section names the layout (``asc.data.source: mine``) beside that layout's
settings (``asc.data.metadata: ...``), which the layout's model checks (an unknown key is an
error naming the key and the layout's settings). Adding a layout touches its module, its conf
environment (``conf/<env>/parameters_<task>.yml``) and its test, nothing else: the modules of
this package are found when a layout is first looked up, and ``dvc.yaml`` tracks the whole
``<task>.data`` section.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ConfigDict, ValidationError, model_validator

from mlsp_pipelines.section import Section

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AudioDataParams", "Layout", "LayoutIndex", "get_layout", "layout_names", "register_layout"]


@dataclass(frozen=True)
class LayoutIndex:
    """What every layout's indexer returns: one row per clip (``path`` relative to the dataset
    folder, ``filename``, ``label``, ``fold``; optionally ``group``, ``split``, ``device``,
    ``city``, ``offset_s``/``duration_s`` for a segment of a longer recording) and the data
    quality report of the indexing (counts, skipped files), which goes to ``data_quality.json``."""

    frame: pd.DataFrame
    quality: dict[str, Any]


@dataclass(frozen=True)
class Layout:
    name: str
    params: type[Section]
    index: Callable[..., LayoutIndex]


_LAYOUTS: dict[str, Layout] = {}
_loaded = False


def register_layout(name: str, *, params: type[Section]) -> Callable[[Callable[..., LayoutIndex]], Callable[..., LayoutIndex]]:
    """Register the decorated indexer ``(folder, options, *, on_bad_file, task) -> LayoutIndex``
    as layout ``name`` with its settings model ``params``."""
    def register(index: Callable[..., LayoutIndex]) -> Callable[..., LayoutIndex]:
        if name in _LAYOUTS and _LAYOUTS[name].index is not index:
            raise ValueError(f"layout {name!r} is registered twice")
        _LAYOUTS[name] = Layout(name, params, index)
        return index
    return register


def _load() -> None:
    global _loaded
    if not _loaded:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def layout_names() -> list[str]:
    _load()
    return sorted(_LAYOUTS)


def get_layout(name: str) -> Layout:
    """The layout registered as ``name``; an unknown name is an error listing the known ones."""
    _load()
    if name not in _LAYOUTS:
        raise ValueError(f"unknown data source {name!r}: use 'synthetic' or a layout ({', '.join(sorted(_LAYOUTS))})")
    return _LAYOUTS[name]


class AudioDataParams(Section):
    """Where an audio task's data comes from: ``source`` (``synthetic``, the embedded data, read in
    the task's own layout; or a layout's name), how bad files are treated, and the layout's own
    settings (every other key), checked by that layout's model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    #: The layout the task's synthetic data is written in.
    SYNTHETIC_LAYOUT: ClassVar[str] = "generic"

    source: str = "synthetic"
    on_bad_file: Literal["fail", "skip"] = "fail"

    @model_validator(mode="after")
    def _check(self) -> AudioDataParams:
        layout = get_layout(self.layout_name)
        try:
            layout.params(**(self.model_extra or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"settings of data layout {layout.name!r}: {problems} (the layout's settings: "
                             f"{', '.join(layout.params.model_fields) or 'none'})") from None
        return self

    @property
    def layout_name(self) -> str:
        return self.SYNTHETIC_LAYOUT if self.source == "synthetic" else self.source

    @property
    def layout(self) -> Layout:
        return get_layout(self.layout_name)

    @property
    def options(self) -> Section:
        """The layout's settings, validated by its model (defaults filled in)."""
        return self.layout.params(**(self.model_extra or {}))

    def index(self, folder: str, *, task: str | None = None) -> LayoutIndex:
        """Index ``folder`` in this layout."""
        return self.layout.index(folder, self.options, on_bad_file=self.on_bad_file, task=task)
