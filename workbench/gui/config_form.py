"""A form generated from a pipeline's pydantic config model: widgets, bounds, help, validation."""
from __future__ import annotations

import typing
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QWidget)

from workbench.api import Plugin, PipelineSpec, WorkbenchError, component_fields
from workbench.core.config_io import validate_config


def _bounds(schema: dict) -> tuple[float | None, float | None]:
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    return lo, hi


class ConfigForm(QWidget):
    validity_changed = Signal(bool)

    def __init__(self, plugin: Plugin, spec: PipelineSpec, parent=None):
        super().__init__(parent)
        self.plugin, self.spec = plugin, spec
        self.widgets: dict[str, QWidget] = {}
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020; font-weight: bold;")
        self.error.setWordWrap(True)
        layout = QFormLayout(self)
        schema = spec.config.model_json_schema()["properties"]
        components = component_fields(spec.config)
        registry = plugin.registry()
        for name, info in spec.config.model_fields.items():
            fs = schema.get(name, {})
            widget = self._make(name, info, fs, components.get(name), registry)
            help_text = info.description or ""
            widget.setToolTip(help_text)
            self.widgets[name] = widget
            label = QLabel(fs.get("title", name))
            label.setToolTip(help_text)
            holder = QWidget()
            col = QFormLayout(holder)
            col.setContentsMargins(0, 0, 0, 0)
            row = self._with_browse(name, widget)
            col.addRow(row)
            if help_text:
                hint = QLabel(help_text)
                hint.setStyleSheet("color: #777; font-size: 11px;")
                hint.setWordWrap(True)
                col.addRow(hint)
            layout.addRow(label, holder)
        # `error` is placed by the page, outside any scroll area, so it is always in view
        self.valid = True
        self.validate()

    # -- widgets -------------------------------------------------------------------------
    def _make(self, name: str, info: Any, fs: dict, kind: str | None, registry) -> QWidget:
        default = info.default
        ann = info.annotation
        if kind is not None:
            w = QComboBox()
            w.addItems(registry.keys(kind))
            w.setCurrentText(str(default))
            w.currentTextChanged.connect(self.validate)
        elif typing.get_origin(ann) is typing.Literal:
            w = QComboBox()
            w.addItems([str(v) for v in typing.get_args(ann)])
            w.setCurrentText(str(default))
            w._choices = list(typing.get_args(ann))
            w.currentTextChanged.connect(self.validate)
        elif ann is bool:
            w = QCheckBox()
            w.setChecked(bool(default))
            w.toggled.connect(self.validate)
        elif ann is int:
            w = QSpinBox()
            lo, hi = _bounds(fs)
            # one beyond the bound so an out-of-range entry reaches validation and gets a message
            w.setRange(int(lo) - 1 if lo is not None else -2**31, int(hi) + 1 if hi is not None else 2**31 - 1)
            w.setValue(int(default))
            w.valueChanged.connect(self.validate)
        elif ann is float:
            w = QDoubleSpinBox()
            lo, hi = _bounds(fs)
            w.setDecimals(6)
            w.setRange(float(lo) - 1 if lo is not None else -1e12, float(hi) + 1 if hi is not None else 1e12)
            w.setValue(float(default))
            w.valueChanged.connect(self.validate)
        else:
            w = QLineEdit(str(default) if default is not None else "")
            w.textChanged.connect(self.validate)
        return w

    def _with_browse(self, name: str, widget: QWidget) -> QWidget:
        if not (isinstance(widget, QLineEdit) and name.endswith(("_dir", "_file", "_path"))):
            return widget
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(widget)
        button = QPushButton("Browse…")

        def browse() -> None:
            path = (QFileDialog.getExistingDirectory(self, name) if name.endswith("_dir")
                    else QFileDialog.getOpenFileName(self, name)[0])
            if path:
                widget.setText(path)

        button.clicked.connect(browse)
        row.addWidget(button)
        return box

    # -- values --------------------------------------------------------------------------
    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, w in self.widgets.items():
            if isinstance(w, QComboBox):
                choices = getattr(w, "_choices", None)
                out[name] = choices[w.currentIndex()] if choices else w.currentText()
            elif isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                out[name] = w.value()
            else:
                out[name] = w.text()
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            w = self.widgets[name]
            if isinstance(w, QComboBox):
                w.setCurrentText(str(value))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(value)
            else:
                w.setText(str(value))

    def validate(self, *_: Any):
        try:
            config = validate_config(self.plugin, self.spec, self.data())
        except WorkbenchError as exc:
            self.error.setText(str(exc))
            self._mark(str(exc))
            self._set_valid(False)
            return None
        self.error.setText("")
        self._mark("")
        self._set_valid(True)
        return config

    def _mark(self, message: str) -> None:
        """Outline the fields the message names ('key: problem; key2: ...')."""
        named = {part.split(":", 1)[0].strip() for part in message.split(";") if ":" in part}
        for name, widget in self.widgets.items():
            widget.setStyleSheet("border: 1px solid #b00020;" if name in named else "")

    def _set_valid(self, valid: bool) -> None:
        if valid != self.valid:
            self.valid = valid
            self.validity_changed.emit(valid)
