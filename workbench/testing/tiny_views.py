"""The tiny plugin's view: the first layer's weights as an image."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg


def weights_view(run: dict, artifacts: list[dict], parent=None):
    from safetensors.numpy import load_file

    path = next(a["path"] for a in artifacts if a["kind"] == "model")
    weights = load_file(path)
    first = np.asarray(weights[sorted(k for k in weights if k.endswith("weight"))[0]])
    view = pg.PlotWidget(parent, background="w", title=f"first layer weights {first.shape}")
    image = pg.ImageItem(first.T, axisOrder="row-major")
    image.setColorMap(pg.colormap.get("viridis"))
    view.addItem(image)
    view.weights = first  # what it shows, for tests
    return view
