"""A form generated from a pipeline's pydantic config model.

int/float -> spin boxes bounded by the schema's ge/le/gt/lt; Literal -> combo box; bool ->
check box; str -> line edit (with Browse… for names ending in _dir/_file/_path); component
fields -> combo of the plugin registry's keys. Descriptions become tooltips and a grey hint
line. Every change is validated with `validate_config`; the message appears next to the
field it names, and `valid` / `validity_changed` drive the Run button.
"""
from __future__ import annotations

import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from PySide6.QtCore import QLocale, Qt, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from workbench.api import Plugin, PipelineSpec, WorkbenchError, component_fields
from workbench.core.config_io import validate_config

from .messages import RED

INT32 = 2**31 - 1
HINT_STYLE = "color: #6b7280; font-size: 11px;"
ERROR_STYLE = f"color: {RED}; font-size: 11px;"
# a dynamic property and one rule on the form: clearing a widget's own style sheet under a window
# style sheet left the red outline painted (Qt does not repolish that case)
FORM_STYLE = f"""
QLineEdit[invalid="true"], QSpinBox[invalid="true"], QDoubleSpinBox[invalid="true"], QComboBox[invalid="true"] {{
    border: 1px solid {RED}; border-radius: 2px; }}
"""


class FloatSpin(QDoubleSpinBox):
    """Shows 0.05 rather than 0.050000; always '.' as the decimal point (as in TOML configs)."""

    def __init__(self, decimals: int):
        super().__init__()
        self.setLocale(QLocale.c())
        self.setDecimals(decimals)
        self.setStepType(QAbstractSpinBox.AdaptiveDecimalStepType)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        text = f"{value:.{self.decimals()}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text


class BigIntSpin(QDoubleSpinBox):
    """An integer spin box for ranges beyond 32 bits (e.g. Monte Carlo histories)."""

    def __init__(self):
        super().__init__()
        self.setLocale(QLocale.c())
        self.setDecimals(0)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return str(int(round(value)))

    def int_value(self) -> int:
        return int(round(self.value()))


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(ann)) == 2:
            return args[0], True
    return ann, False


def _bounds(fs: dict, integer: bool, eps: float) -> tuple[float | None, float | None]:
    """Inclusive bounds from the JSON schema; gt/lt become one step inside."""
    lo, hi = fs.get("minimum"), fs.get("maximum")
    if fs.get("exclusiveMinimum") is not None:
        lo = fs["exclusiveMinimum"] + (1 if integer else eps)
    if fs.get("exclusiveMaximum") is not None:
        hi = fs["exclusiveMaximum"] - (1 if integer else eps)
    return lo, hi


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else f"{v:,d}"


def _range_text(fs: dict) -> str:
    """'1 – 1,000', '> 0, ≤ 10', '≥ 0'."""
    lo_ex, hi_ex = "exclusiveMinimum" in fs, "exclusiveMaximum" in fs
    lo = fs.get("exclusiveMinimum" if lo_ex else "minimum")
    hi = fs.get("exclusiveMaximum" if hi_ex else "maximum")
    if lo is not None and hi is not None and not lo_ex and not hi_ex:
        return f"{_fmt(lo)} – {_fmt(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_ex else '≥'} {_fmt(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_ex else '≤'} {_fmt(hi)}")
    return ", ".join(parts)


def label_for(name: str, info: Any) -> str:
    return info.title or name.replace("_", " ").capitalize()


class ConfigForm(QWidget):
    validity_changed = Signal(bool)
    changed = Signal()

    def __init__(self, plugin: Plugin, spec: PipelineSpec, parent=None):
        super().__init__(parent)
        self.plugin, self.spec = plugin, spec
        self.widgets: dict[str, QWidget] = {}
        self.field_errors: dict[str, QLabel] = {}
        self.kinds: dict[str, str] = {}  # field -> how its value is read
        self.defaults: dict[str, Any] = {}
        # the summary message; the page places it by the Run button, so it is always in view
        self.error = QLabel()
        self.error.setObjectName("formError")
        self.error.setStyleSheet(f"color: {RED}; font-weight: bold;")
        self.error.setWordWrap(True)
        self.message = ""
        self.config = None
        self.setStyleSheet(FORM_STYLE)
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        layout.setVerticalSpacing(6)
        schema = spec.config.model_json_schema().get("properties", {})
        components = component_fields(spec.config)
        registry = plugin.registry()
        for name, info in spec.config.model_fields.items():
            fs = schema.get(name, {})
            widget = self._make(name, info, fs, components.get(name), registry)
            help_text = info.description or ""
            widget.setToolTip(f"<b>{name}</b><br>{help_text}" if help_text else name)
            self.widgets[name] = widget
            self.defaults[name] = info.get_default(call_default_factory=True)
            label = QLabel(label_for(name, info))
            label.setToolTip(widget.toolTip())
            holder = QWidget()
            col = QVBoxLayout(holder)
            col.setContentsMargins(0, 0, 0, 0)
            col.setSpacing(1)
            col.addWidget(self._with_browse(name, widget))
            hint_text = " ".join(p for p in (help_text, f"({_range_text(fs)})" if _range_text(fs) else "") if p)
            if hint_text:
                hint = QLabel(hint_text)
                hint.setStyleSheet(HINT_STYLE)
                hint.setWordWrap(True)
                col.addWidget(hint)
            err = QLabel()
            err.setStyleSheet(ERROR_STYLE)
            err.setWordWrap(True)
            err.setVisible(False)
            col.addWidget(err)
            self.field_errors[name] = err
            layout.addRow(label, holder)
        self.valid = True
        self.validate()

    # -- widgets -------------------------------------------------------------------------
    def _make(self, name: str, info: Any, fs: dict, kind: str | None, registry) -> QWidget:
        default = info.get_default(call_default_factory=True)
        ann, optional = _unwrap_optional(info.annotation)
        origin = typing.get_origin(ann)
        if kind is not None and origin not in (list, tuple):
            w = QComboBox()
            for key in registry.keys(kind):
                spec = registry.spec(kind, key)
                w.addItem(f"{key} — {spec.title}" if spec.title and spec.title.lower() != key else key, key)
                w.setItemData(w.count() - 1, spec.description or spec.title or key, Qt.ToolTipRole)
            self._select(w, default)
            w.currentIndexChanged.connect(self.validate)
            self.kinds[name] = "combo"
        elif origin is typing.Literal:
            w = QComboBox()
            for value in typing.get_args(ann):
                w.addItem(str(value), value)
            self._select(w, default)
            w.currentIndexChanged.connect(self.validate)
            self.kinds[name] = "combo"
        elif ann is bool and not optional:
            w = QCheckBox()
            w.setChecked(bool(default))
            w.toggled.connect(self.validate)
            self.kinds[name] = "bool"
        elif ann is int and not optional:
            lo, hi = _bounds(fs, True, 1)
            lo = int(lo) if lo is not None else -INT32
            hi = int(hi) if hi is not None else INT32
            if -INT32 <= lo and hi <= INT32:
                w = QSpinBox()
                self.kinds[name] = "int"
            else:
                w = BigIntSpin()
                self.kinds[name] = "bigint"
            w.setRange(lo, hi)
            w.setValue(int(default))
            w.setGroupSeparatorShown(False)
            w.valueChanged.connect(self.validate)
        elif ann is float and not optional:
            decimals = 6
            if default:
                decimals = min(max(6, 3 - math.floor(math.log10(abs(float(default))))), 12)
            w = FloatSpin(decimals)
            lo, hi = _bounds(fs, False, 10.0 ** -decimals)
            w.setRange(float(lo) if lo is not None else -1e12, float(hi) if hi is not None else 1e12)
            w.setValue(float(default))
            w.valueChanged.connect(self.validate)
            self.kinds[name] = "float"
        else:
            w = QLineEdit(self._text(default))
            w.textChanged.connect(self.validate)
            if ann in (str, Path):
                self.kinds[name] = "optional-str" if optional else "str"
            else:
                w.setPlaceholderText("a value, e.g. 3, 0.5, [1, 2] or text")
                self.kinds[name] = "value"
        w.setObjectName(f"field_{name}")
        return w

    @staticmethod
    def _text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, (list, dict, tuple)):
            return json.dumps(value)
        return str(value)

    @staticmethod
    def _select(combo: QComboBox, value: Any) -> None:
        index = combo.findData(value)
        if index < 0:
            index = combo.findText(str(value))
        if index >= 0:
            combo.setCurrentIndex(index)

    def _with_browse(self, name: str, widget: QWidget) -> QWidget:
        if not (isinstance(widget, QLineEdit) and name.endswith(("_dir", "_file", "_path"))):
            return widget
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(widget, 1)
        button = QPushButton("Browse…")
        button.setObjectName(f"browse_{name}")

        def browse() -> None:
            start = widget.text() or str(Path.home())
            if name.endswith("_dir"):
                path = QFileDialog.getExistingDirectory(self, f"Choose {name}", start)
            else:
                path = QFileDialog.getOpenFileName(self, f"Choose {name}", start)[0]
            if path:
                widget.setText(path)

        button.clicked.connect(browse)
        row.addWidget(button)
        return box

    # -- values --------------------------------------------------------------------------
    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, w in self.widgets.items():
            kind = self.kinds[name]
            if kind == "combo":
                out[name] = w.currentData()
            elif kind == "bool":
                out[name] = w.isChecked()
            elif kind == "bigint":
                out[name] = w.int_value()
            elif kind in ("int", "float"):
                out[name] = w.value()
            elif kind == "optional-str":
                out[name] = w.text() or None
            elif kind == "value":
                text = w.text().strip()
                if not text:
                    out[name] = None
                else:
                    try:
                        out[name] = json.loads(text)
                    except ValueError:
                        out[name] = text
            else:
                out[name] = w.text()
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill fields from a config dict (e.g. an earlier run's); unknown keys are ignored."""
        for name, value in values.items():
            w = self.widgets.get(name)
            if w is None:
                continue
            w.blockSignals(True)
            try:
                kind = self.kinds[name]
                if kind == "combo":
                    self._select(w, value)
                elif kind == "bool":
                    w.setChecked(bool(value))
                elif kind in ("int", "bigint", "float"):
                    w.setValue(value)
                else:
                    w.setText(self._text(value))
            finally:
                w.blockSignals(False)
        self.validate()

    def reset(self) -> None:
        self.set_values(self.defaults)

    # -- validation ----------------------------------------------------------------------
    def validate(self, *_: Any):
        """The validated config model, or None (the message is then shown by the fields)."""
        try:
            config = validate_config(self.plugin, self.spec, self.data())
        except WorkbenchError as exc:
            self._show(str(exc))
            self.config = None
            self._set_valid(False)
        else:
            self._show("")
            self.config = config
            self._set_valid(True)
        self.changed.emit()
        return self.config

    def field_messages(self, message: str) -> dict[str, str]:
        """'key: problem; key2: problem' -> {key: problem}, for the keys that are fields."""
        out: dict[str, str] = {}
        for part in message.split("; "):
            key, sep, problem = part.partition(": ")
            field = key.strip().split(".")[0]
            if sep and field in self.widgets:
                out[field] = f"{out[field]}; {problem}" if field in out else problem
        return out

    def _show(self, message: str) -> None:
        self.message = message
        self.error.setText(message)
        self.error.setVisible(bool(message))
        per_field = self.field_messages(message)
        for name, label in self.field_errors.items():
            text = per_field.get(name, "")
            label.setText(text)
            label.setVisible(bool(text))
            widget = self.widgets[name]
            if bool(widget.property("invalid")) != bool(text):
                widget.setProperty("invalid", bool(text))
                widget.style().unpolish(widget)
                widget.style().polish(widget)
                widget.update()

    def _set_valid(self, valid: bool) -> None:
        if valid != self.valid:
            self.valid = valid
            self.validity_changed.emit(valid)
