"""GUI views of SEA runs (imported only by the GUI, through the manifest's ViewSpec factories).

Each factory is ``factory(run_record, artifacts, parent) -> QWidget`` and reads the run's
artifact files: the 2-D projection (teacher vs student, coloured by class), the sampling
coverage, the training curves, and accuracy against cost (storage, activation memory,
latency) with the Pareto front, for one distillation run or across a sweep's combinations.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget

from workbench.api import InputError
from workbench.viewkit import CurvesWidget, ParetoWidget, ScatterWidget

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _artifact(run: dict, artifacts: list[dict], kind: str, required: bool = True) -> Path | None:
    found = [a for a in artifacts if a["kind"] == kind]
    if not found:
        if required:
            raise InputError(run.get("id", "?"), f"the run has no {kind!r} artifact")
        return None
    path = Path(found[0]["path"])
    if not path.is_file():
        raise InputError(path, "artifact file not found (moved or deleted?)")
    return path


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable .npz file: {exc}") from None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable JSON file: {exc}") from None


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #444;")
    return label


# -- embedding scatter -----------------------------------------------------------------------------
def scatter_view(run: dict, artifacts: list[dict], parent=None) -> QWidget:
    data = _npz(_artifact(run, artifacts, "sea-projection"))
    classes = [str(c) for c in data["classes"]]
    widget = QWidget(parent)
    row = QHBoxLayout()
    widget.teacher = ScatterWidget(title="reduced teacher", x_label="PC 1", y_label="PC 2")
    widget.student = ScatterWidget(title="student", x_label="PC 1", y_label="PC 2")
    widget.teacher.set_data(data["teacher_xy"], data["labels"], classes, size=5)
    widget.student.set_data(data["student_xy"], data["labels"], classes, size=5)
    both = np.concatenate([data["teacher_xy"], data["student_xy"]]).astype(float)
    lo, hi = both.min(axis=0), both.max(axis=0)
    pad = (hi - lo) * 0.05 + 1e-9
    for plot in (widget.teacher, widget.student):  # the same frame on both: distances compare directly
        plot.setXRange(lo[0] - pad[0], hi[0] + pad[0], padding=0)
        plot.setYRange(lo[1] - pad[1], hi[1] + pad[1], padding=0)
    row.addWidget(widget.teacher)
    row.addWidget(widget.student)
    col = QVBoxLayout(widget)
    col.addWidget(_note(f"{len(data['labels'])} frames projected on the first two principal components of the "
                        "reduced teacher embeddings; the student's outputs in the same plane. Same axes on both."))
    col.addLayout(row, 1)
    return widget


# -- sampling coverage ---------------------------------------------------------------------------
def sampling_view(run: dict, artifacts: list[dict], parent=None) -> QWidget:
    import pyqtgraph as pg

    data = _npz(_artifact(run, artifacts, "sea-sampling-projection"))
    info_path = _artifact(run, artifacts, "sea-sampling", required=False)
    info = _json(info_path) if info_path else {}
    xy, sampled = data["xy"], data["sampled"].astype(bool)
    plot = pg.PlotWidget(background="w")
    plot.setTitle(f"teacher embeddings: sampled ({info.get('sampler', '?')}) vs all", color="#333", size="11pt")
    plot.setLabel("bottom", "PC 1")
    plot.setLabel("left", "PC 2")
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.addLegend(offset=(-10, 10), labelTextColor="#333")
    plot.addItem(pg.ScatterPlotItem(xy[~sampled, 0], xy[~sampled, 1], size=4, pen=None,
                                    brush=pg.mkBrush(150, 160, 175, 120), name="not sampled"))
    plot.addItem(pg.ScatterPlotItem(xy[sampled, 0], xy[sampled, 1], size=6, pen=pg.mkPen("#8b0000"),
                                    brush=pg.mkBrush("#d62728"), name="sampled"))
    cov = info.get("coverage", {})
    counts = cov.get("label_counts", {})
    classes = [str(c) for c in data["classes"]]
    bars = pg.PlotWidget(background="w")
    bars.setTitle("sampled frames per class", color="#333", size="11pt")
    values = [counts.get(str(i), 0) for i in range(len(classes))]
    bars.addItem(pg.BarGraphItem(x=np.arange(len(classes)), height=values, width=0.7, brush="#1f77b4"))
    bars.getAxis("bottom").setTicks([[(i, str(i)) for i in range(len(classes))]])
    bars.setLabel("bottom", "class (numbered as listed above)")
    widget = QWidget(parent)
    col = QVBoxLayout(widget)
    text = (f"{info.get('sample_size', int(sampled.sum()))} of {info.get('frames', len(sampled))} frames sampled. "
            f"Cells covered: {cov.get('cells_covered', '?')}/{cov.get('cells', '?')} k-means cells "
            f"({cov.get('cell_coverage', float('nan')) * 100:.0f} %); mean distance to the nearest sampled frame "
            f"{cov.get('mean_nn_distance', float('nan')):.3g}.")
    col.addWidget(_note(text + " Classes: " + ", ".join(f"{i} {c}" for i, c in enumerate(classes)) + "."))
    row = QHBoxLayout()
    row.addWidget(plot, 3)
    row.addWidget(bars, 2)
    col.addLayout(row, 1)
    widget.plot, widget.bars, widget.sampled, widget.label_counts = plot, bars, sampled, values
    return widget


# -- training curves -------------------------------------------------------------------------------
def training_view(run: dict, artifacts: list[dict], parent=None) -> QWidget:
    found = [a for a in artifacts if a["kind"] == "sea-training"]
    if not found:
        raise InputError(run.get("id", "?"), "the run has no 'sea-training' artifact")
    curves = CurvesWidget(title="student training: MSE to the reduced teacher embeddings", log_y=False)
    lr = CurvesWidget(title="learning rate")
    for j, art in enumerate(found):
        hist = _json(Path(art["path"]))["history"]
        tag = (art.get("meta") or {}).get("combo", "")
        prefix = f"{tag} " if tag else ""
        epochs = [h["epoch"] + 1 for h in hist]
        color = COLORS[j % len(COLORS)]
        curves.set_series(f"{prefix}train", epochs, [h.get("train_loss") for h in hist], color=color, style=0)
        if any("val_loss" in h for h in hist):
            curves.set_series(f"{prefix}validation", epochs, [h.get("val_loss") for h in hist], color=color, style=1)
        lr.set_series(f"{prefix}lr", epochs, [h.get("lr") for h in hist], color=color)
    curves.redraw()
    lr.redraw()
    widget = QWidget(parent)
    col = QVBoxLayout(widget)
    col.addWidget(curves, 3)
    col.addWidget(lr, 1)
    widget.curves, widget.lr = curves, lr
    return widget


# -- accuracy against cost ---------------------------------------------------------------------------
COSTS = (("storage_bytes", "storage (log10 MB)", 1e-6), ("activation_peak_bytes", "peak activation memory (log10 MB)",
                                                                1e-6),
         ("latency_median_ms", "latency, median (log10 ms)", 1.0))


def pareto_points(doc: dict) -> list[dict]:
    """Points {label, accuracy (%), storage_bytes, activation_peak_bytes, latency_median_ms} of a
    distillation's results.json or a sweep's sweep.json; models without a profile are left out."""
    points = []
    if "rows" in doc:  # a sweep
        t = doc["teacher"]
        if t.get("storage_bytes"):
            points.append({"label": "teacher", "accuracy": t["accuracy"]["mean"] * 100, **{k: t[k] for k, _, _ in COSTS}})
        for r in doc["rows"]:
            if r.get("storage_bytes"):
                points.append({"label": r["name"], "accuracy": r["accuracy"]["mean"] * 100,
                               **{k: r[k] for k, _, _ in COSTS}})
        return points
    for name, prof in doc.get("profiles", {}).items():
        if name in doc.get("accuracy", {}):
            points.append({"label": name, "accuracy": doc["accuracy"][name]["mean"] * 100,
                           **{k: prof[k] for k, _, _ in COSTS}})
    return points


def pareto_view(run: dict, artifacts: list[dict], parent=None) -> QWidget:
    path = _artifact(run, artifacts, "sea-sweep", required=False) or _artifact(run, artifacts, "sea-results")
    points = pareto_points(_json(path))
    if not points:
        raise InputError(path, "no profiled model in the results (the run was made with profile off)")
    tabs = QTabWidget()
    widget = QWidget(parent)
    widget.plots = {}
    for key, label, scale in COSTS:
        plot = ParetoWidget(cost_label=label, quality_label="downstream accuracy (%)",
                            title=f"accuracy vs {label.split(' (')[0]} (red: Pareto front)")
        # log10 of the cost: teacher and students differ by orders of magnitude (pyqtgraph's log mode
        # would not move the front's scatter and text items, so the values are transformed here)
        plot.set_points([(float(np.log10(max(p[key] * scale, 1e-12))), p["accuracy"]) for p in points],
                        [p["label"] for p in points])
        tabs.addTab(plot, label.split(" (")[0])
        widget.plots[key] = plot
    col = QVBoxLayout(widget)
    col.addWidget(_note(f"{len(points)} models; cost as log10. Accuracy: fold-wise CV of an MLP on clip-mean "
                        "embeddings; cost: the host profiler (CPU, 1 thread, batch 1)."))
    col.addWidget(tabs, 1)
    widget.points = points
    return widget
