"""Dose networks: sizes per preset, residual start, named layers, safe save/load with named errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.api import InputError
from workbench.distill import FeatureCapture
from workbench_vmat.compute.models import (
    STUDENT_PRESETS,
    ModelSpec,
    build_model,
    count_parameters,
    layer_alias,
    layer_channels,
    layer_stride,
    student_spec,
    teacher_spec,
)
from workbench_vmat.compute.normalise import Normalisation
from workbench_vmat.compute.teacher_io import ModelFileError, load_model, save_model


def test_paper_teacher_is_large_and_every_student_family_is_at_most_a_tenth():
    assert count_parameters(build_model(teacher_spec("paper"))) >= 10_000_000
    for preset, families in STUDENT_PRESETS.items():
        n_teacher = count_parameters(build_model(teacher_spec(preset)))
        for family in families:
            n_student = count_parameters(build_model(student_spec(preset, family)))
            assert n_student * 10 <= n_teacher, (preset, family, n_student, n_teacher)


def test_channels_are_configurable():
    small = count_parameters(build_model(teacher_spec("demo", base_channels=4)))
    big = count_parameters(build_model(teacher_spec("demo", base_channels=8)))
    assert big > 3 * small
    assert student_spec("demo", "unet-s", channels=7).base_channels == 7


@pytest.mark.parametrize("spec", [teacher_spec("tiny"), student_spec("tiny", "unet-s"), student_spec("tiny", "cnn"),
                                  student_spec("tiny", "unet-xs")])
def test_residual_network_starts_as_the_dose_in_water_and_keeps_the_shape(spec):
    model = build_model(spec).eval()
    x = torch.rand(1, 2, 8, 12, 16)
    out = model(x)
    assert out.shape == (1, 1, 8, 12, 16)
    assert torch.equal(out, x[:, 1:2])  # zero-initialised head: output = input dose


def test_non_residual_network_predicts_the_dose_itself():
    model = build_model(ModelSpec("unet", base_channels=4, levels=2, residual=False))
    x = torch.rand(1, 2, 8, 8, 8)
    assert not torch.allclose(model(x), x[:, 1:2])


@pytest.mark.parametrize("spec", [teacher_spec("tiny"), student_spec("demo", "unet-s"), student_spec("demo", "cnn")])
def test_named_layers_have_the_declared_channels_and_strides(spec):
    model = build_model(spec).eval()
    x = torch.rand(1, 2, 16, 16, 16)
    names = ["stem", "bottleneck", "dec0"]
    with FeatureCapture(model, [layer_alias(model, n) for n in names]) as feats:
        model(x)
    for n in names:
        f = feats[layer_alias(model, n)]
        assert f.shape[1] == layer_channels(model, n), n
        assert f.shape[2] == 16 // layer_stride(model, n), n


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="architecture"):
        ModelSpec.from_json({"arch": "transformer"})
    with pytest.raises(ValueError, match="unknown model fields"):
        ModelSpec.from_json({"arch": "unet", "code": "import os"})


def test_save_and_load_round_trip(tmp_path):
    spec = student_spec("tiny", "unet-s")
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():  # make the head non-zero so the round trip is a real check
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    norm = Normalisation(dose_scale_gy=2.5)
    save_model(tmp_path / "m.safetensors", model, spec, norm, role="student", grid={"spacing_mm": [3, 3, 3]})
    loaded = load_model(tmp_path / "m.json", role="student")
    assert loaded.spec == spec and loaded.normalisation == norm and loaded.grid["spacing_mm"] == [3, 3, 3]
    x = torch.rand(1, 2, 8, 8, 8)
    assert torch.equal(loaded.model(x), model.eval()(x))


def _saved(tmp_path):
    spec = teacher_spec("tiny")
    save_model(tmp_path / "t.safetensors", build_model(spec), spec, Normalisation(), role="teacher")
    return tmp_path / "t.safetensors", tmp_path / "t.json"


def test_named_errors_for_unusable_model_files(tmp_path):
    weights, meta = _saved(tmp_path)
    with pytest.raises(ModelFileError, match="expected a 'student'") as e:
        load_model(weights, role="student")
    assert isinstance(e.value, InputError) and e.value.path == str(meta)

    text = meta.read_text()
    meta.write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(weights)
    meta.write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(ModelFileError, match="not a workbench VMAT model"):
        load_model(weights)
    wrong = json.loads(text)
    wrong["architecture"]["base_channels"] = 5
    meta.write_text(json.dumps(wrong))
    with pytest.raises(ModelFileError, match="do not fit the architecture") as e:
        load_model(weights)
    assert e.value.path == str(weights)
    meta.write_text(text)
    weights.write_bytes(b"\x00" * 40)
    with pytest.raises(ModelFileError, match="cannot read the weights"):
        load_model(weights)
    meta.unlink()
    with pytest.raises(ModelFileError, match="metadata not found"):
        load_model(weights)
    with pytest.raises(ModelFileError, match="weights not found"):
        load_model(tmp_path / "missing.safetensors")


def test_normalisation_round_trip_and_inverse():
    norm = Normalisation(dose_scale_gy=2.0)
    ct = np.array([[[-1000.0, 0.0, 1000.0, 5000.0]]], np.float32)
    dose = np.array([[[0.0, 1.0, 2.0, 4.0]]], np.float32)
    x = norm.inputs(ct, dose)
    assert x.shape == (2, 1, 1, 4)
    assert np.allclose(x[0], [[[-1.0, 0.0, 1.0, 3.0]]])  # metal clipped
    assert np.allclose(norm.to_gy(x[1]), dose)
    assert Normalisation.from_json(json.loads(json.dumps(norm.to_json()))) == norm
    with pytest.raises(ValueError):
        norm.inputs(ct, dose[..., :2])
