"""What a flow step's preview returns, and what the host hands it.

A preview is a plain function ``preview(config, ctx) -> Preview`` run by the host off the
GUI thread. It returns plain data — key figures, tables, small images and scatter plots —
that the host renders; it never builds widgets. Arrays are numpy arrays or nested lists and
should be small (an image of a few hundred pixels a side, a few thousand points).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]  # cells: str, int or float (the host formats numbers)
    note: str = ""


@dataclass
class Image:
    """A 2-D array shown as an image, rows top to bottom; optional points drawn over it."""

    title: str
    data: Any  # 2-D array (rows, columns)
    colormap: str = "viridis"  # a matplotlib/pyqtgraph colormap name, e.g. "gray", "magma"
    levels: tuple[float, float] | None = None  # display range; None: the data's range
    points: Any = None  # N x 2 array of (row, column) drawn as markers
    x_label: str = ""
    y_label: str = ""
    caption: str = ""
    #: extent of the data in axis units (x0, x1, y0, y1) for labelled axes; None: pixels
    extent: tuple[float, float, float, float] | None = None
    #: "upper": row 0 at the top (a CT slice); "lower": row 0 at the bottom (a spectrogram)
    origin: str = "upper"


@dataclass
class Scatter:
    """A 2-D point cloud; `highlight` marks a subset (e.g. the sampled points)."""

    title: str
    x: Any
    y: Any
    highlight: Any = None  # boolean mask of len(x), or None
    labels: Any = None  # per-point category (str or int) used for colour, or None
    x_label: str = ""
    y_label: str = ""
    caption: str = ""


@dataclass
class Preview:
    summary: str = ""  # one or two sentences: what was found / what the choice means
    figures: dict[str, str] = field(default_factory=dict)  # key figures, label -> formatted value
    tables: list[Table] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    scatters: list[Scatter] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. skipped files, shown prominently


class PreviewContext(abc.ABC):
    """The host's side of a preview: caches, components and the host's own profiler."""

    #: the workbench home (a preview may read caches there; it should not write much)
    home: Path

    @abc.abstractmethod
    def profile(self, model: Any, example_input: Any, latency: bool = True) -> dict[str, Any]:
        """The host's profile of a torch model (keys as `workbench profile`: parameters,
        storage_bytes, activation_peak_bytes, macs, latency_median_ms, ...). With
        ``latency=False`` only the size, memory and compute figures (fast)."""

    @abc.abstractmethod
    def component(self, kind: str, key: str) -> Any:
        """Import and return a registered component of this plugin."""

    @property
    @abc.abstractmethod
    def cancelled(self) -> bool:
        """True once the user changed the settings or left: a long preview may stop early."""

    def cache_dir(self, name: str) -> Path:
        path = self.home / "cache" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def human_bytes(n: float) -> str:
    """1234567 -> '1.23 MB' (decimal units), for previews' key figures."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def human_count(n: float) -> str:
    """1234567 -> '1.23 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"
