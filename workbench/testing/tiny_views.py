"""The tiny plugin's view (ViewSpec "tiny.weights", accepts "model"): the first layer's weights.

An image (input x hidden unit) with a colour bar for the MLP; bars for a single output row.
Imported only by the GUI, when the view's tab is first shown.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg

from workbench.api import InputError


def weights_view(run: dict, artifacts: list[dict], parent=None):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    model = next((a for a in artifacts if a["kind"] == "model"), None)
    if model is None:
        raise InputError(run.get("id", "?"), "the run has no 'model' artifact")
    path = Path(model["path"])
    if not path.is_file():
        raise InputError(path, "model file not found (moved or deleted?)")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise InputError(path, f"not a readable safetensors file: {exc}") from None
    names = sorted(k for k in weights if k.endswith("weight"))
    if not names:
        raise InputError(path, "no weight tensors in the file")
    first = np.asarray(weights[names[0]], dtype=np.float32)  # (out, in)
    view = pg.PlotWidget(parent, background="w")
    view.setTitle(f"{names[0]} {tuple(first.shape)} · run {run.get('id', '')}", color="#333", size="11pt")
    if first.ndim == 2 and first.shape[0] > 1:
        image = pg.ImageItem(first.T, axisOrder="row-major")  # rows: inputs, columns: hidden units
        view.addItem(image)
        lim = float(np.abs(first).max()) or 1.0
        bar = pg.ColorBarItem(values=(-lim, lim), colorMap=pg.colormap.get("CET-D1"), label="weight",
                              interactive=False, width=15)
        bar.setImageItem(image, insert_in=view.getPlotItem())
        view.setLabel("bottom", "hidden unit")
        view.setLabel("left", "input")
        view.getAxis("left").setTicks([[(i + 0.5, f"x{i}") for i in range(first.shape[1])]])
        view.image = image
    else:
        values = first.reshape(-1)
        bars = pg.BarGraphItem(x=np.arange(len(values)), height=values, width=0.7,
                               brushes=[pg.mkBrush("#1f77b4" if v >= 0 else "#d62728") for v in values])
        view.addItem(bars)
        view.setLabel("bottom", "input")
        view.setLabel("left", "weight")
        view.bars = bars
    view.weights = first  # what it shows (tests)
    return view
