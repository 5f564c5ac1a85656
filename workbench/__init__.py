"""Distillation Workbench: distill large teachers into compact domain students."""
__version__ = "0.1.0"
