"""viewkit widgets built from small numpy data."""
import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_curves_hold_points_and_redraw_only_when_changed(qtbot):
    from workbench.viewkit import CurvesWidget

    w = CurvesWidget(title="t", log_y=True)
    qtbot.addWidget(w)
    for step in range(5):
        w.add_point("train_loss", step, 1.0 / (step + 1))
        w.add_point("val_loss", step, 2.0 / (step + 1))
    w.redraw()
    assert set(w.items) == {"train_loss", "val_loss"}
    item = w.items["val_loss"]
    assert list(item.xData) == [0, 1, 2, 3, 4] and item.yData[0] == pytest.approx(2.0)
    calls = []
    item.setData = lambda *a, **k: calls.append(a)
    w.redraw()
    assert calls == []  # nothing new: the plot is not touched
    w.add_point("val_loss", 5, 0.3)
    w.redraw()
    assert len(calls) == 1 and list(calls[0][0]) == [0, 1, 2, 3, 4, 5]
    del item.setData
    assert len(w.plotItem.legend.items) == 2 and w.log_y
    w.set_log_y(False)
    assert not w.plotItem.ctrl.logYCheck.isChecked()
    w.clear_all()
    assert not w.items and not w.series and len(w.plotItem.legend.items) == 0


def test_scatter_by_class_with_legend(qtbot):
    from workbench.viewkit import ScatterWidget

    w = ScatterWidget(title="embeddings")
    qtbot.addWidget(w)
    pts = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.repeat([0, 1, 2], 10)
    w.set_data(pts, labels, class_names=["dog", "siren", "drill"])
    assert set(w.items) == {"dog", "siren", "drill"}
    assert len(w.items["siren"].data) == 10 and len(w.plotItem.legend.items) == 3
    assert w.points.shape == (30, 2)
    with pytest.raises(ValueError):
        w.set_data(pts[:, :1], labels)


def test_pareto_front_and_labels(qtbot):
    from workbench.viewkit import ParetoWidget, pareto_front

    pts = [(1.0, 0.5), (2.0, 0.8), (3.0, 0.7), (4.0, 0.9), (2.0, 0.6)]
    assert pareto_front(pts) == [0, 1, 3]
    w = ParetoWidget(cost_label="parameters", quality_label="accuracy")
    qtbot.addWidget(w)
    w.set_points(pts, ["a", "b", "c", "d", "e"])
    assert w.front == [0, 1, 3] and [t.textItem.toPlainText() for t in w.text_items] == ["a", "b", "c", "d", "e"]


def test_slice_viewer_orientations_overlay_isocurves_colorbar(qtbot):
    import pyqtgraph as pg

    from workbench.viewkit import SliceViewer

    z, y, x = np.mgrid[0:8, 0:10, 0:12]
    ct = (x + 10 * y + 100 * z).astype(np.float32)
    dose = np.exp(-((x - 6) ** 2 + (y - 5) ** 2 + (z - 4) ** 2) / 8.0).astype(np.float32)
    v = SliceViewer(spacing=(3.0, 1.0, 1.0))
    qtbot.addWidget(v)
    v.set_volume(ct)
    assert v.index == 0 and v.slider.maximum() == 7
    v.set_index(4)
    assert np.array_equal(v.current_slice(), ct[4]) and np.array_equal(v.image.image, ct[4])
    v.set_overlay(dose, alpha=0.4, label="dose", threshold=0.1)
    v.set_isocurves([0.5, 0.9])
    assert isinstance(v.colorbar, pg.ColorBarItem) and v.overlay_item.opacity() == pytest.approx(0.4)
    assert len(v.isocurves) == 2 and all(isinstance(i, pg.IsocurveItem) for i in v.isocurves)
    assert v.isocurves[0].level == 0.5 and np.array_equal(v.isocurves[0].data, dose[4])
    assert np.isnan(v.overlay_item.image[0, 0]) and v.overlay_item.image[5, 6] == pytest.approx(1.0)  # below threshold: clear
    v.set_orientation("coronal")
    assert v.slider.maximum() == 9 and v.current_slice().shape == (8, 12)
    assert np.array_equal(v.current_overlay_slice(), dose[:, v.index, :])
    assert v.image.boundingRect().height() == 8  # pixels; the rect scales rows by the 3 mm slice spacing
    assert v.image.mapRectToParent(v.image.boundingRect()).height() == pytest.approx(24.0)
    v.set_orientation("sagittal")
    assert v.current_slice().shape == (8, 10)
    v.orientation_box.setCurrentText("axial")
    assert v.orientation == "axial"
    with pytest.raises(ValueError):
        v.set_overlay(dose[:4])


def test_tiny_weights_view_image_bars_and_errors(qtbot, tmp_path):
    from safetensors.numpy import save_file

    from workbench.api import InputError
    from workbench.testing.tiny_views import weights_view

    mlp = tmp_path / "mlp.safetensors"
    save_file({"0.weight": np.arange(12, dtype=np.float32).reshape(3, 4), "0.bias": np.zeros(3, np.float32),
               "2.weight": np.ones((1, 3), np.float32)}, str(mlp))
    view = weights_view({"id": "r1"}, [{"kind": "model", "path": str(mlp)}])
    qtbot.addWidget(view)
    assert view.weights.shape == (3, 4) and view.image.image.shape == (4, 3)
    linear = tmp_path / "linear.safetensors"
    save_file({"0.weight": np.array([[0.5, -1.0, 2.0, 0.0]], np.float32)}, str(linear))
    bars = weights_view({"id": "r2"}, [{"kind": "model", "path": str(linear)}])
    qtbot.addWidget(bars)
    assert list(bars.bars.opts["height"]) == [0.5, -1.0, 2.0, 0.0]
    with pytest.raises(InputError, match="not found"):
        weights_view({"id": "r3"}, [{"kind": "model", "path": str(tmp_path / "gone.safetensors")}])
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="bad.safetensors"):
        weights_view({"id": "r4"}, [{"kind": "model", "path": str(tmp_path / "bad.safetensors")}])
