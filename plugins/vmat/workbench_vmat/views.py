"""GUI views of a distillation run (imported only by the GUI, through ViewSpec factories).

- :func:`dose_viewer` (artifacts ``vmat-case-doses``): a test case's CT with a dose colour
  wash and isodose lines, axial / coronal / sagittal with a slice slider; the dose shown is
  the reference, the dose in water (input), the teacher's, the student's or the
  student-only baseline's, or a prediction's difference to the reference, or its gamma map
  (2%/2mm, failing points in red); a click on the image sets the point a line profile of
  every dose goes through, along the chosen axis.
- :func:`evaluation_view` (artifact ``vmat-evaluation``): pass rates mean ± sd per subject,
  any metric per case and subject, and pass rate against latency or size (Pareto front) for
  the models of the run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from workbench.api import InputError
from workbench.viewkit import ParetoWidget, SliceViewer

from .compute.evaluation import (CRITERIA, LOW_DOSE_CUTOFF_PCT, gamma_map, load_case_doses, ordered_subjects,
                                 read_evaluation)

#: what the dose selector offers: label -> npz array
DOSES = {"reference": "reference", "student": "student", "teacher": "teacher", "student-only": "student_only",
         "input (dose in water)": "dose_water"}
DISPLAYS = ("dose", "difference to reference", "gamma 2%/2mm")
PROFILE_AXES = {"left–right (x)": 2, "anterior–posterior (y)": 1, "superior–inferior (z)": 0}
ISODOSE_PCT = (50, 80, 95, 100, 105)
WASH_FROM_PCT = 20.0
ISODOSE_COLORS = ("#00bcd4", "#4caf50", "#ffeb3b", "#ff9800", "#e91e63")
PROFILE_COLORS = {"reference": "#222222", "student": "#d62728", "teacher": "#1f77b4", "student_only": "#ff7f0e",
                  "dose_water": "#8c8c8c"}
SUBJECT_LABELS = {"input": "input (dose in water)", "teacher": "teacher", "student": "student (KD)",
                  "student_only": "student-only"}


def _artifact_paths(artifacts: list[dict], kind: str, run: dict) -> list[Path]:
    paths = [Path(a["path"]) for a in artifacts if a.get("kind") == kind]
    if not paths:
        raise InputError(run.get("id", "?"), f"the run has no {kind!r} artifact")
    return paths


def _gamma_colormap() -> pg.ColorMap:
    """Green shades for gamma <= 1 (passing), red for > 1 (failing), on levels 0..2."""
    return pg.ColorMap(pos=[0.0, 0.5, 0.5001, 1.0],
                       color=[(0, 90, 30), (190, 235, 190), (255, 70, 60), (120, 0, 0)])


class DoseViewer(QWidget):
    """CT + dose of one test case at a time; see the module notes."""

    def __init__(self, paths: list[Path], parent=None):
        super().__init__(parent)
        self.paths = {p.stem: p for p in sorted(paths, key=lambda p: p.stem)}
        self.case: dict[str, Any] | None = None
        self._gamma: dict[tuple[str, str], np.ndarray] = {}
        self.point: tuple[int, int, int] | None = None  # (z, y, x) of the profile

        self.case_box = QComboBox()
        self.case_box.addItems(list(self.paths))
        self.dose_box = QComboBox()
        self.display_box = QComboBox()
        self.display_box.addItems(DISPLAYS)
        self.axis_box = QComboBox()
        self.axis_box.addItems(list(PROFILE_AXES))
        self.info = QLabel("")
        self.info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        top = QHBoxLayout()
        for label, box in (("case", self.case_box), ("dose", self.dose_box), ("show", self.display_box),
                           ("profile along", self.axis_box)):
            top.addWidget(QLabel(label))
            top.addWidget(box)
        top.addStretch(1)

        self.viewer = SliceViewer(self, title="")
        self.profile = pg.PlotWidget(background="w")
        self.profile.setLabel("bottom", "position (mm)")
        self.profile.setLabel("left", "dose (Gy)")
        self.profile.showGrid(x=True, y=True, alpha=0.25)
        self.profile.addLegend(offset=(-10, 10), labelTextColor="#333")
        self.profile_marker = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.path_item = pg.PlotDataItem(pen=pg.mkPen("#ffffff", width=1.5, style=Qt.DashLine))
        self.point_item = pg.ScatterPlotItem(size=10, pen=pg.mkPen("#000"), brush=pg.mkBrush("#ffffff"))
        for item in (self.path_item, self.point_item):
            item.setZValue(20)
            self.viewer.plot.addItem(item)
        self.profile_curves: dict[str, np.ndarray] = {}

        split = QSplitter(Qt.Vertical)
        split.addWidget(self.viewer)
        split.addWidget(self.profile)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.info)
        layout.addWidget(split, 1)

        self.case_box.currentTextChanged.connect(self.set_case)
        self.dose_box.currentTextChanged.connect(lambda _: self._show())
        self.display_box.currentTextChanged.connect(lambda _: self._show())
        self.axis_box.currentTextChanged.connect(lambda _: self._update_profile())
        self.viewer.slider.valueChanged.connect(lambda _: self._draw_path())
        self.viewer.orientation_box.currentTextChanged.connect(lambda _: self._draw_path())
        self.viewer.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.set_case(self.case_box.currentText())

    # -- data ----------------------------------------------------------------------------
    def set_case(self, case_id: str) -> None:
        if case_id not in self.paths:
            raise ValueError(f"unknown case {case_id!r} (known: {', '.join(self.paths)})")
        if self.case_box.currentText() != case_id:
            self.case_box.setCurrentText(case_id)  # comes back here through the signal
            return
        self.case = load_case_doses(self.paths[case_id])
        doses = self.case["doses"]
        current = self.dose_box.currentText()
        self.dose_box.blockSignals(True)
        self.dose_box.clear()
        self.dose_box.addItems([label for label, key in DOSES.items() if key in doses])
        default = current if current in DOSES and DOSES[current] in doses else "student" if "student" in doses else "reference"
        self.dose_box.setCurrentText(default)
        self.dose_box.blockSignals(False)
        self.viewer.set_volume(self.case["ct"], spacing=self.case["spacing_mm"], levels=(-160.0, 240.0))
        ref = doses["reference"]
        target = self.case["structures"].get("PTV")
        focus = np.argwhere(target).mean(0) if target is not None and target.any() else np.argwhere(ref >= 0.9 * ref.max()).mean(0)
        self.point = tuple(int(round(c)) for c in focus)  # type: ignore[assignment]
        self.viewer.set_index(self.point[("axial", "coronal", "sagittal").index(self.viewer.orientation)])
        self._show()

    @property
    def prescription(self) -> float:
        assert self.case is not None
        return float(self.case["prescription_gy"] or self.case["doses"]["reference"].max())

    def dose_key(self) -> str:
        return DOSES.get(self.dose_box.currentText(), "reference")

    def gamma_volume(self, key: str) -> np.ndarray:
        """Gamma 2%/2mm of dose ``key`` against the reference (computed once per case and dose)."""
        assert self.case is not None
        cache = (self.case["case"], key)
        if cache not in self._gamma:
            QGuiApplication.setOverrideCursor(Qt.WaitCursor)
            try:
                self._gamma[cache] = gamma_map(self.case["doses"]["reference"], self.case["doses"][key],
                                               self.case["spacing_mm"], 2, 2, LOW_DOSE_CUTOFF_PCT,
                                               prescription_gy=self.case["prescription_gy"])
            finally:
                QGuiApplication.restoreOverrideCursor()
        return self._gamma[cache]

    # -- drawing -------------------------------------------------------------------------
    def set_display(self, display: str, dose: str | None = None) -> None:
        if display not in DISPLAYS:
            raise ValueError(f"display must be one of {DISPLAYS}, not {display!r}")
        if dose is not None:
            self.dose_box.setCurrentText(dose)
        self.display_box.setCurrentText(display)
        self._show()

    def _show(self) -> None:
        if self.case is None:
            return
        doses = self.case["doses"]
        key = self.dose_key()
        rx = self.prescription
        ref = doses["reference"]
        display = self.display_box.currentText()
        label = self.dose_box.currentText()
        if display == "dose":
            # the wash from 20 % of the prescription up, so the anatomy stays readable in the low-dose bath
            self.viewer.set_overlay(doses[key], alpha=0.45, colormap="turbo", levels=(0.0, 1.1 * rx),
                                    label="dose (Gy)", threshold=WASH_FROM_PCT / 100 * rx)
            self.viewer.set_isocurves([p / 100 * rx for p in ISODOSE_PCT], ISODOSE_COLORS)
            self._bar_label("dose (Gy)")
            text = (f"{label} dose · colour wash from {WASH_FROM_PCT:g} %, isodose lines "
                    f"{', '.join(f'{p} %' for p in ISODOSE_PCT)} of {rx:g} Gy")
        elif display == "difference to reference":
            low = (ref < LOW_DOSE_CUTOFF_PCT / 100 * ref.max()) & (doses[key] < LOW_DOSE_CUTOFF_PCT / 100 * ref.max())
            diff = np.where(low, np.nan, doses[key] - ref).astype(np.float32)
            self.viewer.set_isocurves([])
            self.viewer.set_overlay(diff, alpha=0.85, colormap="CET-D1", levels=(-0.05 * rx, 0.05 * rx),
                                    label="difference (Gy)")
            self._bar_label(f"{label} − reference (Gy)")
            text = f"{label} − reference · colour scale ±5 % of {rx:g} Gy = ±{0.05 * rx:.2f} Gy"
        else:
            g = self.gamma_volume(key)
            self.viewer.set_isocurves([])
            self.viewer.set_overlay(g, alpha=0.8, colormap="turbo", levels=(0.0, 2.0), label="gamma")
            self.viewer.colorbar.setColorMap(_gamma_colormap())
            self._bar_label("gamma 2%/2mm (red: fails)")
            evaluated = ~np.isnan(g)
            rate = 100.0 * np.count_nonzero(g <= 1) / max(int(evaluated.sum()), 1)
            text = (f"gamma 2%/2mm of {label} against the reference: {rate:.2f} % of {int(evaluated.sum())} points "
                    f"pass (green); failing points in red; below {LOW_DOSE_CUTOFF_PCT:g} % of the maximum not evaluated")
        self.info.setText(f"<b>{self.case['case']}</b> · {text}")
        self._update_profile()

    def _bar_label(self, text: str) -> None:
        # the viewkit colour bar takes its label once; it follows the display here
        bar = self.viewer.colorbar
        if bar is not None:  # a vertical bar carries its label on its left axis
            bar.getAxis("bottom" if getattr(bar, "horizontal", False) else "left").setLabel(text)

    def _clicked(self, event) -> None:
        if self.case is None or event.button() != Qt.LeftButton:
            return
        pos = self.viewer.image.mapFromScene(event.scenePos())
        col, row = int(np.floor(pos.x())), int(np.floor(pos.y()))
        self.set_point_in_slice(row, col)

    def set_point_in_slice(self, row: int, col: int) -> None:
        """Set the profile's point from a pixel (row, column) of the slice shown."""
        assert self.case is not None
        shape = self.case["ct"].shape
        i = self.viewer.index
        orient = self.viewer.orientation
        z, y, x = {"axial": (i, row, col), "coronal": (row, i, col), "sagittal": (row, col, i)}[orient]
        if not (0 <= z < shape[0] and 0 <= y < shape[1] and 0 <= x < shape[2]):
            return
        self.point = (z, y, x)
        self._update_profile()

    def _update_profile(self) -> None:
        if self.case is None or self.point is None:
            return
        axis = PROFILE_AXES[self.axis_box.currentText()]
        z, y, x = self.point
        index: list[Any] = [z, y, x]
        index[axis] = slice(None)
        spacing, origin = self.case["spacing_mm"], self.case["origin_mm"]
        # origin_mm is (x, y, z) in the patient frame; the volume is (z, y, x)
        org = {0: origin[2], 1: origin[1], 2: origin[0]}[axis] if len(origin) == 3 else 0.0
        positions = org + np.arange(self.case["ct"].shape[axis]) * spacing[axis]
        self.profile.clear()
        self.profile_curves = {}
        for label, key in DOSES.items():
            if key in self.case["doses"]:
                values = self.case["doses"][key][tuple(index)]
                self.profile_curves[key] = values
                width = 2.4 if key in ("reference", self.dose_key()) else 1.2
                self.profile.plot(positions, values, pen=pg.mkPen(PROFILE_COLORS.get(key, "#555"), width=width), name=label)
        self.profile_marker.setPos(positions[self.point[axis]])
        self.profile.addItem(self.profile_marker)
        self.profile_positions = positions
        names = "zyx"
        self.profile.setTitle(f"profile along {self.axis_box.currentText()} through voxel "
                              f"(z {z}, y {y}, x {x})", color="#333", size="10pt")
        self.profile.setLabel("bottom", f"{names[axis]} (mm)")
        self._draw_path()

    def _draw_path(self) -> None:
        """The profile's path and point on the slice (when the path lies in its plane)."""
        if self.case is None or self.point is None:
            return
        orient = self.viewer.orientation
        pw, ph = self.viewer._pixel_size()
        z, y, x = self.point
        row, col, depth = {"axial": (y, x, z), "coronal": (z, x, y), "sagittal": (z, y, x)}[orient]
        self.point_item.setData([(col + 0.5) * pw], [(row + 0.5) * ph])
        self.point_item.setOpacity(1.0 if depth == self.viewer.index else 0.35)
        axis = PROFILE_AXES[self.axis_box.currentText()]
        rows, cols = self.viewer.current_slice().shape
        in_plane = {"axial": {1: "rows", 2: "cols"}, "coronal": {0: "rows", 2: "cols"},
                    "sagittal": {0: "rows", 1: "cols"}}[orient].get(axis)
        if in_plane == "cols":
            self.path_item.setData([0, cols * pw], [(row + 0.5) * ph] * 2)
        elif in_plane == "rows":
            self.path_item.setData([(col + 0.5) * pw] * 2, [0, rows * ph])
        else:
            self.path_item.setData([], [])


def dose_viewer(run: dict, artifacts: list[dict], parent=None) -> QWidget:
    """ViewSpec factory for ``vmat-case-doses`` artifacts (one per test case)."""
    return DoseViewer(_artifact_paths(artifacts, "vmat-case-doses", run), parent)


# ---------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------

def _ms(s: dict | None, digits: int = 2) -> str:
    if not s or not s.get("n"):
        return "–"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def _numeric_leaves(d: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_numeric_leaves(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


class EvaluationView(QWidget):
    """Tables of a run's evaluation.json and a pass rate vs cost plot of its models."""

    SUMMARY_COLUMNS = [(k, f"γ {dd:g}%/{dta:g}mm\n(%)") for k, dd, dta in CRITERIA] + [
        ("mae_high_dose_pct", "MAE hi-dose\n(% Rx)"), ("mean_diff_high_dose_pct", "mean diff.\nhi-dose (% Rx)")]

    def __init__(self, path: Path, parent=None):
        super().__init__(parent)
        self.data = read_evaluation(path)
        self.subjects = ordered_subjects(list(self.data["subjects"]))
        blocks = self.data["subjects"]
        self.cases = sorted({c for s in self.subjects for c in blocks[s].get("per_case", {})})
        self.metrics = sorted({k for s in self.subjects for m in blocks[s].get("per_case", {}).values() for k in m},
                              key=lambda k: (k.startswith("dvh/"), k))

        self.summary = QTableWidget(len(self.subjects), len(self.SUMMARY_COLUMNS))
        self.summary.setWordWrap(False)
        self.summary.setHorizontalHeaderLabels([label for _, label in self.SUMMARY_COLUMNS])
        self.summary.setVerticalHeaderLabels([SUBJECT_LABELS.get(s, s) for s in self.subjects])
        for r, s in enumerate(self.subjects):
            summ = blocks[s].get("summary", {})
            for c, (key, _) in enumerate(self.SUMMARY_COLUMNS):
                self.summary.setItem(r, c, self._item(_ms(summ.get(key))))
        self._fit(self.summary)

        self.metric_box = QComboBox()
        self.metric_box.addItems(self.metrics)
        self.per_case = QTableWidget(len(self.cases) + 2, len(self.subjects))
        self.per_case.setHorizontalHeaderLabels([SUBJECT_LABELS.get(s, s) for s in self.subjects])
        self.per_case.setVerticalHeaderLabels(self.cases + ["mean", "sd"])
        self.metric_box.currentTextChanged.connect(self.set_metric)

        footprint = self.data.get("footprint") or {}
        self.costs = {m: _numeric_leaves(v) for m, v in footprint.items() if isinstance(v, dict)}
        cost_keys = sorted({k for v in self.costs.values() for k in v},
                           key=lambda k: (("latency" not in k and "ms" not in k), k))
        self.cost_box = QComboBox()
        self.cost_box.addItems(cost_keys)
        self.quality_box = QComboBox()
        self.quality_box.addItems([k for k, _, _ in CRITERIA])
        self.pareto = ParetoWidget(cost_label="cost", quality_label="pass rate (%)", title="")
        self.pareto.getPlotItem().getViewBox().setDefaultPadding(0.18)  # room for the labels
        self.cost_box.currentTextChanged.connect(lambda _: self.update_pareto())
        self.quality_box.currentTextChanged.connect(lambda _: self.update_pareto())

        left = QVBoxLayout()
        left.addWidget(QLabel(f"<b>Mean ± sd over the {len(self.cases)} test cases</b> (global 3-D gamma, "
                              f"{LOW_DOSE_CUTOFF_PCT:g} % low-dose cutoff; MAE where the reference ≥ 80 % Rx)"))
        left.addWidget(self.summary)
        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Per case:</b>"))
        row.addWidget(self.metric_box, 1)
        left.addLayout(row)
        left.addWidget(self.per_case, 1)
        right = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Pass rate</b>"))
        row.addWidget(self.quality_box)
        row.addWidget(QLabel("against"))
        row.addWidget(self.cost_box, 1)
        right.addLayout(row)
        right.addWidget(self.pareto, 1)
        self.pareto_note = QLabel("")
        self.pareto_note.setWordWrap(True)
        right.addWidget(self.pareto_note)
        lw, rw = QWidget(), QWidget()
        lw.setLayout(left)
        rw.setLayout(right)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(lw)
        split.addWidget(rw)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([620, 420])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)
        rw.setVisible(bool(cost_keys))
        if self.metrics:
            self.set_metric("gamma_2_2" if "gamma_2_2" in self.metrics else self.metrics[0])
        self.update_pareto()

    @staticmethod
    def _item(text: str) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        item.setFlags(item.flags() & ~Qt.ItemIsEditable)
        return item

    @staticmethod
    def _fit(table: QTableWidget) -> None:
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        table.resizeColumnsToContents()
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        table.horizontalHeader().setMinimumSectionSize(60)
        table.horizontalHeader().setMinimumHeight(40)
        h = max(table.horizontalHeader().sizeHint().height(), 40) + sum(table.rowHeight(r) for r in range(table.rowCount())) + 6
        table.setMaximumHeight(h)
        table.setMinimumHeight(min(h, 200))

    def set_metric(self, metric: str) -> None:
        if self.metric_box.currentText() != metric:
            self.metric_box.setCurrentText(metric)
            return
        blocks = self.data["subjects"]
        for c, s in enumerate(self.subjects):
            per_case = blocks[s].get("per_case", {})
            for r, case in enumerate(self.cases):
                v = per_case.get(case, {}).get(metric)
                self.per_case.setItem(r, c, self._item(f"{v:.3f}" if isinstance(v, (int, float)) and np.isfinite(v) else "–"))
            summ = blocks[s].get("summary", {}).get(metric, {})
            self.per_case.setItem(len(self.cases), c, self._item(f"{summ['mean']:.3f}" if summ.get("n") else "–"))
            self.per_case.setItem(len(self.cases) + 1, c, self._item(f"{summ['sd']:.3f}" if summ.get("n") else "–"))
        self.per_case.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)

    def model_of(self, subject: str) -> str | None:
        """The footprint entry of a subject: its own, or the student's for the student-only
        baseline (the same network trained without the teacher)."""
        if subject in self.costs:
            return subject
        if subject == "student_only" and "student" in self.costs:
            return "student"
        return None

    def update_pareto(self) -> None:
        cost, quality = self.cost_box.currentText(), self.quality_box.currentText()
        points, labels = [], []
        for s in self.subjects:
            model = self.model_of(s)
            summ = self.data["subjects"][s].get("summary", {}).get(quality, {})
            if model is None or cost not in self.costs[model] or not summ.get("n"):
                continue
            points.append((self.costs[model][cost], summ["mean"]))
            labels.append(SUBJECT_LABELS.get(s, s))
        self.pareto.set_points(points, labels)
        self.pareto.setLabel("bottom", cost)
        self.pareto.setLabel("left", f"{quality} mean (%)")
        self.pareto_note.setText("Each model of this run at its cost; the red line joins those no other beats on "
                                 "both. The student-only baseline has the student's network, so the student's cost.")


def evaluation_view(run: dict, artifacts: list[dict], parent=None) -> QWidget:
    """ViewSpec factory for the ``vmat-evaluation`` artifact."""
    return EvaluationView(_artifact_paths(artifacts, "vmat-evaluation", run)[0], parent)
