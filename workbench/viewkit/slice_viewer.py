"""A 3-D volume slice viewer: axial / coronal / sagittal slices of a base volume (e.g. CT),
an optional colour-wash overlay (e.g. dose) with adjustable alpha, isocurves at given levels
and a colour bar. Built from pyqtgraph pieces (ImageItem, IsocurveItem, ColorBarItem in a
PlotItem), not by subclassing ImageView. Volumes are indexed (z, y, x); images are row-major.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

ORIENTATIONS = ("axial", "coronal", "sagittal")
ISO_COLORS = ["#00e5ff", "#ffea00", "#ff3d00", "#76ff03", "#d500f9", "#ffffff"]


def take_slice(volume: np.ndarray, orientation: str, index: int) -> np.ndarray:
    """The 2-D slice (rows, cols) of a (z, y, x) volume."""
    if orientation == "axial":
        return volume[index]
    if orientation == "coronal":
        return volume[:, index, :]
    if orientation == "sagittal":
        return volume[:, :, index]
    raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")


class SliceViewer(QWidget):
    def __init__(self, parent=None, spacing: Sequence[float] = (1.0, 1.0, 1.0), title: str = ""):
        super().__init__(parent)
        self.volume: np.ndarray | None = None
        self.overlay: np.ndarray | None = None
        self.spacing = tuple(float(s) for s in spacing)  # (z, y, x)
        self.orientation = "axial"
        self.index = 0
        self.iso_levels: list[float] = []
        self.isocurves: list[pg.IsocurveItem] = []
        self.overlay_threshold: float | None = None

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plot = self.graphics.addPlot(title=title)
        self.plot.setAspectLocked(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(5)
        self.overlay_item.setVisible(False)
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay_item)
        self.colorbar: pg.ColorBarItem | None = None

        self.orientation_box = QComboBox()
        self.orientation_box.addItems(ORIENTATIONS)
        self.orientation_box.currentTextChanged.connect(self.set_orientation)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.valueChanged.connect(self.set_index)
        self.slice_label = QLabel("")
        self.alpha_slider = QSlider(Qt.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(50)
        self.alpha_slider.setMaximumWidth(120)
        self.alpha_slider.valueChanged.connect(lambda v: self.set_alpha(v / 100))
        self.alpha_label = QLabel("overlay α")
        controls = QHBoxLayout()
        controls.addWidget(self.orientation_box)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.slice_label)
        controls.addWidget(self.alpha_label)
        controls.addWidget(self.alpha_slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.graphics, 1)
        self._show_overlay_controls(False)

    # -- data ----------------------------------------------------------------------------
    def set_volume(self, volume, spacing: Sequence[float] | None = None, levels: tuple[float, float] | None = None) -> None:
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise ValueError(f"expected a 3-D (z, y, x) volume, got shape {volume.shape}")
        self.volume = volume
        if spacing is not None:
            self.spacing = tuple(float(s) for s in spacing)
        if levels is None:
            lo, hi = np.nanpercentile(volume, [0.5, 99.5]) if volume.size else (0.0, 1.0)
            levels = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        self.image.setLevels(levels)
        self.image.setColorMap(pg.colormap.get("CET-L1"))  # grey
        self.index = min(self.index, self._depth() - 1)
        self._update_slider()
        self._render()

    def set_overlay(self, overlay, alpha: float = 0.5, colormap: str = "turbo",
                    levels: tuple[float, float] | None = None, label: str = "",
                    threshold: float | None = None) -> None:
        """A second volume on the same grid, colour-washed over the base; values below
        `threshold` are left transparent."""
        overlay = np.asarray(overlay, dtype=np.float32)
        if self.volume is not None and overlay.shape != self.volume.shape:
            raise ValueError(f"overlay shape {overlay.shape} does not match the volume's {self.volume.shape}")
        self.overlay = overlay
        self.overlay_threshold = threshold
        if levels is None:
            levels = (float(np.nanmin(overlay)), float(np.nanmax(overlay)))
            if levels[1] <= levels[0]:
                levels = (levels[0], levels[0] + 1.0)
        cmap = pg.colormap.get(colormap)
        if self.colorbar is None:
            self.colorbar = pg.ColorBarItem(values=levels, colorMap=cmap, label=label, interactive=True, width=15)
            self.colorbar.setImageItem(self.overlay_item, insert_in=self.plot)
        else:
            self.colorbar.setColorMap(cmap)
            self.colorbar.setLevels(levels)
        self.overlay_item.setVisible(True)
        self._show_overlay_controls(True)
        self.alpha_slider.setValue(int(round(alpha * 100)))
        self.set_alpha(alpha)
        self._render()

    def set_isocurves(self, levels: Sequence[float], colors: Sequence[str] | None = None, width: float = 1.5) -> None:
        """Isocurves of the overlay (or of the base volume when there is no overlay)."""
        for item in self.isocurves:
            item.setParentItem(None)
            self.plot.removeItem(item)
        self.iso_levels = [float(v) for v in levels]
        colors = list(colors) if colors else ISO_COLORS
        self.isocurves = []
        for i, level in enumerate(self.iso_levels):
            item = pg.IsocurveItem(level=level, pen=pg.mkPen(colors[i % len(colors)], width=width), axisOrder="row-major")
            item.setParentItem(self.image)  # shares the image's transform (voxel spacing)
            item.setZValue(10)
            self.isocurves.append(item)
        self._render()

    def set_alpha(self, alpha: float) -> None:
        self.overlay_item.setOpacity(float(np.clip(alpha, 0.0, 1.0)))

    def set_orientation(self, orientation: str) -> None:
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        if orientation == self.orientation and self.orientation_box.currentText() == orientation:
            return
        self.orientation = orientation
        if self.orientation_box.currentText() != orientation:
            self.orientation_box.setCurrentText(orientation)
        self.index = self._depth() // 2
        self._update_slider()
        self._render()
        self.plot.autoRange()

    def set_index(self, index: int) -> None:
        if self.volume is None:
            return
        self.index = int(np.clip(index, 0, self._depth() - 1))
        if self.slider.value() != self.index:
            self.slider.setValue(self.index)
        self._render()

    # -- what is shown -------------------------------------------------------------------
    def current_slice(self) -> np.ndarray | None:
        return None if self.volume is None else take_slice(self.volume, self.orientation, self.index)

    def current_overlay_slice(self) -> np.ndarray | None:
        return None if self.overlay is None else take_slice(self.overlay, self.orientation, self.index)

    def _depth(self) -> int:
        if self.volume is None:
            return 1
        return self.volume.shape[ORIENTATIONS.index(self.orientation)]

    def _pixel_size(self) -> tuple[float, float]:
        """(width, height) of one pixel of the current slice, from the voxel spacing (z, y, x)."""
        sz, sy, sx = self.spacing
        return {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}[self.orientation]

    def _update_slider(self) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(self._depth() - 1, 0))
        self.slider.setValue(self.index)
        self.slider.blockSignals(False)

    def _render(self) -> None:
        if self.volume is None:
            return
        base = self.current_slice()
        pw, ph = self._pixel_size()
        rows, cols = base.shape
        # axial: row 0 (anterior) at the top; coronal/sagittal: z increases upwards
        self.plot.invertY(self.orientation == "axial")
        self.image.setImage(base, autoLevels=False)
        self.image.setRect(0, 0, cols * pw, rows * ph)
        iso_source = base
        if self.overlay is not None:
            over = self.current_overlay_slice()
            shown = over
            if self.overlay_threshold is not None:
                shown = np.where(over >= self.overlay_threshold, over, np.nan)  # NaN: transparent
            levels = self.colorbar.levels() if self.colorbar is not None else None
            self.overlay_item.setImage(shown, autoLevels=False, levels=levels)
            self.overlay_item.setRect(0, 0, cols * pw, rows * ph)
            iso_source = over
        for item in self.isocurves:
            item.setData(iso_source)
        self.slice_label.setText(f"{self.orientation} {self.index + 1}/{self._depth()}")

    def _show_overlay_controls(self, visible: bool) -> None:
        self.alpha_slider.setVisible(visible)
        self.alpha_label.setVisible(visible)
