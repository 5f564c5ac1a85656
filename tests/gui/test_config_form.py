"""The generated form on a config model with every kind of field (no runs, no worker)."""
from typing import Literal, Optional

import pytest
from pydantic import Field, model_validator

from workbench.api import ComponentSpec, PipelineConfig, PipelineSpec, Plugin, component_field

pytestmark = pytest.mark.gui


class AllKinds(PipelineConfig):
    histories: int = Field(0, ge=0, le=10_000_000_000, description="Beyond 32 bits.")
    reduced_dim: Literal[64, 128, 256] = Field(64, description="Literal of ints.")
    lr: float = Field(1e-3, gt=0, lt=1, description="Exclusive bounds.")
    center: bool = Field(True, description="A switch.")
    cohort_dir: str = Field("", description="A folder.")
    limit: Optional[int] = Field(None, description="Optional.")
    sizes: list[int] = Field(default_factory=lambda: [1, 2], description="A list.")
    teacher: str = component_field("teachers", "big", description="Teacher.")
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _order(self):
        if self.low >= self.high:
            raise ValueError("low must be below high")
        return self


PLUGIN = Plugin("kinds", "Kinds", "0", pipelines=[PipelineSpec("all", "All", AllKinds, "x.y:run")],
                components=[ComponentSpec("teachers", "big", "x.y:Big", "Big one"), ComponentSpec("teachers", "huge", "x.y:Huge")])


def test_every_field_kind_round_trips_and_validates(qtbot):
    from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QPushButton

    from workbench.gui.config_form import BigIntSpin, ConfigForm, FloatSpin

    form = ConfigForm(PLUGIN, PLUGIN.pipelines[0])
    qtbot.addWidget(form)
    w = form.widgets
    assert form.valid and form.validate() == AllKinds()
    assert isinstance(w["histories"], BigIntSpin) and w["histories"].maximum() == 10_000_000_000
    w["histories"].setValue(5_000_000_000)
    assert form.data()["histories"] == 5_000_000_000
    assert isinstance(w["reduced_dim"], QComboBox)
    w["reduced_dim"].setCurrentIndex(2)
    assert form.data()["reduced_dim"] == 256  # the int, not the text
    assert isinstance(w["lr"], FloatSpin) and w["lr"].text() == "0.001" and 0 < w["lr"].minimum() and w["lr"].maximum() < 1
    assert isinstance(w["center"], QCheckBox) and isinstance(w["cohort_dir"], QLineEdit)
    assert form.findChild(QPushButton, "browse_cohort_dir") is not None
    assert form.data()["limit"] is None and form.data()["sizes"] == [1, 2]
    w["limit"].setText("7")
    w["sizes"].setText("[3, 4, 5]")
    assert form.valid and form.config.limit == 7 and form.config.sizes == [3, 4, 5]
    assert [w["teacher"].itemData(i) for i in range(w["teacher"].count())] == ["big", "huge"]
    assert w["teacher"].itemText(0) == "big — Big one"
    w["teacher"].setCurrentIndex(1)
    assert form.data()["teacher"] == "huge"
    w["sizes"].setText("[1, \"x\"]")
    assert not form.valid and form.field_errors["sizes"].text() and form.error.text().startswith("sizes.1:")
    w["sizes"].setText("[1]")
    w["low"].setValue(2.0)  # a model-level error names no field: shown in the summary line
    assert not form.valid and "low must be below high" in form.error.text()
    assert not any(label.text() for label in form.field_errors.values())
    form.set_values({"low": 0.0, "reduced_dim": 128, "center": False, "unknown_key": 1})
    assert form.valid and form.config.reduced_dim == 128 and form.config.center is False


def test_installed_plugins_forms_are_valid_by_default(qtbot):
    from workbench.core.plugins import PluginManager
    from workbench.gui.config_form import ConfigForm

    plugins = PluginManager.discover().plugins
    if not plugins:
        pytest.skip("no plugins installed")
    for plugin in plugins.values():
        for spec in plugin.pipelines:
            form = ConfigForm(plugin, spec)
            qtbot.addWidget(form)
            assert form.valid, f"{plugin.name}.{spec.id}: {form.message}"
            assert form.config == spec.config(), f"{plugin.name}.{spec.id}: the form changed a default"
