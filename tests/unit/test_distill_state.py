"""pack_state / unpack_state: nested training state as safetensors + strict JSON, no pickle."""
import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from workbench.distill import pack_state, storage_safe, unpack_state


def roundtrip(obj, prefix=""):
    tensors, skeleton = pack_state(obj, prefix=prefix)
    blob = save(storage_safe(tensors))  # what a checkpoint writes ...
    text = json.dumps(skeleton, allow_nan=False)  # ... strict JSON
    return unpack_state(load(blob), json.loads(text)), tensors


def adam_after_steps(steps=3):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 3)).square().mean().backward()
        opt.step()
    return model, opt


def test_adam_state_dict_round_trip_and_continues_identically():
    model, opt = adam_after_steps()
    back, tensors = roundtrip(opt.state_dict(), prefix="opt.")
    assert all(k.startswith("opt.") for k in tensors)
    ref = opt.state_dict()
    assert back["param_groups"] == ref["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert set(back["state"]) == set(ref["state"]) == {0, 1, 2, 3}  # int keys survive JSON
    for i, entry in ref["state"].items():
        for name, value in entry.items():
            assert torch.equal(back["state"][i][name], value), (i, name)

    # a fresh optimizer loaded from the round trip takes the very same next step
    clone = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    clone.load_state_dict(model.state_dict())
    opt2 = torch.optim.Adam(clone.parameters(), lr=0.5)
    opt2.load_state_dict(back)
    x = torch.randn(5, 3)
    for m, o in ((model, opt), (clone, opt2)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)


def test_rng_states_round_trip():
    gen = np.random.default_rng(7)
    gen.random(3)
    obj = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "generator": gen.bit_generator.state,  # 128-bit ints
        "torch": torch.get_rng_state(),
    }
    back, _ = roundtrip(obj)
    assert back["python"] == obj["python"] and isinstance(back["python"], tuple)
    assert back["generator"] == obj["generator"]
    assert back["numpy"][0] == "MT19937" and np.array_equal(back["numpy"][1], obj["numpy"][1])
    assert back["numpy"][1].dtype == obj["numpy"][1].dtype
    assert torch.equal(back["torch"], obj["torch"])

    expected = (random.random(), np.random.random(), gen.random(), torch.rand(1))
    random.setstate(back["python"])
    np.random.set_state(back["numpy"])
    gen2 = np.random.default_rng()
    gen2.bit_generator.state = back["generator"]
    torch.set_rng_state(back["torch"])
    assert (random.random(), np.random.random(), gen2.random(), torch.rand(1)) == expected


def test_scalars_and_containers():
    obj = {
        "nan": float("nan"), "inf": float("inf"), "ninf": -float("inf"), "big": 2**100, "neg": -(2**60),
        "b": b"\x00\xff", "none": None, "flag": True, "np32": np.float32(1.25), "npint": np.int64(-3),
        "tuple": (1, (2.5, "x")), "list": [1, [2]], "mixed_keys": {1: "a", "1": "b", (2, 3): "c"},
        "dtype": torch.float16, "arr": np.arange(6, dtype=np.uint16).reshape(2, 3), "t0": torch.tensor(3.0),
        "shared": None,
    }
    t = torch.arange(4)
    obj["shared"] = [t, t]
    back, tensors = roundtrip(obj)
    assert np.isnan(back["nan"]) and back["inf"] == float("inf") and back["ninf"] == -float("inf")
    assert back["big"] == 2**100 and back["neg"] == -(2**60)
    assert back["b"] == b"\x00\xff" and back["none"] is None and back["flag"] is True
    assert type(back["np32"]) is np.float32 and back["np32"] == 1.25 and type(back["npint"]) is np.int64
    assert back["tuple"] == (1, (2.5, "x")) and back["list"] == [1, [2]]
    assert back["mixed_keys"] == {1: "a", "1": "b", (2, 3): "c"}
    assert back["dtype"] is torch.float16
    assert back["arr"].dtype == np.uint16 and np.array_equal(back["arr"], obj["arr"])
    assert back["t0"].shape == () and float(back["t0"]) == 3.0
    assert back["shared"][0] is back["shared"][1] and len([k for k in tensors if "shared" in k]) == 1


def test_unsupported_type_names_the_path():
    with pytest.raises(TypeError, match=r"\['a'\]\['b'\].*object"):
        pack_state({"a": {"b": object()}})


def test_missing_tensor_is_a_clear_error():
    tensors, skeleton = pack_state({"w": torch.zeros(2)})
    with pytest.raises(KeyError, match="missing tensor 'w'"):
        unpack_state({}, skeleton)


def test_storage_safe_unties_shared_weights():
    w = torch.randn(3, 3)
    safe = storage_safe({"a": w, "b": w, "c": w[1]})
    save(safe)  # safetensors refuses shared storage; this must not raise
    assert torch.equal(safe["a"], w) and torch.equal(safe["c"], w[1])
