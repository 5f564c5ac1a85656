"""Errors a plugin raises and the host understands.

Every error that concerns user input names the offending file or key, so the CLI can
print it as one readable line (exit code 2) and the GUI can show it without a traceback.
"""
from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """Base of every error the host reports as a message rather than a traceback."""


class ConfigError(WorkbenchError):
    """A configuration is invalid: unknown key, wrong type, out of range, unknown component."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class InputError(WorkbenchError):
    """A data file is unusable. Always names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class PluginError(WorkbenchError):
    """A plugin failed to import or does not satisfy the contract."""


class UnknownComponentError(ConfigError):
    def __init__(self, kind: str, key: str, known: list[str]):
        choices = ", ".join(sorted(known)) or "none registered"
        super().__init__(f"unknown {kind} {key!r} (known: {choices})", key=kind)


class DuplicateComponentError(PluginError):
    pass


class Cancelled(WorkbenchError):
    """Raised inside a pipeline when the user cancelled the run."""
