"""Reusable pyqtgraph views for plugins (Qt only here; imported only by the GUI)."""
from .curves import CurvesWidget
from .pareto import ParetoWidget, pareto_front

__all__ = ["CurvesWidget", "ParetoWidget", "pareto_front"]
