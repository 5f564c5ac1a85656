"""Testing support shipped with the workbench: a pytest plugin, a tiny plugin, helpers."""
