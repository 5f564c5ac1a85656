"""Reusable pyqtgraph views for plugins (Qt only here; imported only by the GUI and plugin views).

Must not import workbench.core or workbench.gui: plugins use this package.
"""
from .curves import CurvesWidget
from .pareto import ParetoWidget, pareto_front
from .scatter import ScatterWidget
from .slice_viewer import SliceViewer, take_slice

__all__ = ["CurvesWidget", "ParetoWidget", "ScatterWidget", "SliceViewer", "pareto_front", "take_slice"]
