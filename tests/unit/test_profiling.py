"""profile_model: exact parameters, MACs and activation memory on tiny models; latency bookkeeping."""
import json

import pytest
import torch
from safetensors.torch import save
from torch import nn

from workbench.api import ConfigError
from workbench.core.profiling import compare_profiles, profile_model

FAST = dict(warmup=1, repeats=20)


def test_linear_exact_numbers():
    model = nn.Linear(64, 32)
    p = profile_model(model, torch.randn(8, 64), **FAST)
    assert p["parameters"] == p["trainable_parameters"] == 64 * 32 + 32
    assert p["buffers"] == 0 and p["parameter_bytes"] == (64 * 32 + 32) * 4
    assert p["macs"] == 8 * 64 * 32 and p["flops"] == 2 * 8 * 64 * 32
    assert p["storage_bytes"] == len(save(model.state_dict()))
    assert 0 < p["storage_bytes"] - p["parameter_bytes"] < 512  # the safetensors header
    assert p["activation_peak_bytes"] == 8 * 32 * 4  # just the output
    assert p["input_shapes"] == [[8, 64]] and p["dtype"] == "float32"
    json.dumps(p, allow_nan=False)


def test_conv_macs_and_buffers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
    p = profile_model(model, torch.randn(1, 3, 10, 10), **FAST)
    assert p["macs"] == (8 * 10 * 10) * (3 * 3 * 3)  # output elements x kernel volume
    assert p["parameters"] == 8 * 3 * 3 * 3 + 2 * 8 and p["buffers"] == 8 + 8 + 1


class Chain(nn.Module):
    def forward(self, x):
        return (x * 2 + 1) * 3  # each temporary dies as soon as the next op has used it


class KeepAlive(nn.Module):
    def forward(self, x):
        a = x * 2
        b = a + 1
        c = b * a  # a, b and c alive together
        return c


class Inplace(nn.Module):
    def forward(self, x):
        y = x * 2
        y.add_(1).mul_(3)  # in place: no new storage
        return y.view(-1)


def test_activation_memory_of_known_chains():
    x = torch.randn(1000)  # 4000 bytes, excluded
    assert profile_model(Chain(), x, **FAST)["activation_peak_bytes"] == 2 * 4000
    assert profile_model(KeepAlive(), x, **FAST)["activation_peak_bytes"] == 3 * 4000
    assert profile_model(Inplace(), x, **FAST)["activation_peak_bytes"] == 4000
    assert profile_model(nn.ReLU(inplace=True), x.clone(), **FAST)["activation_peak_bytes"] == 0


def test_tied_weights_count_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 16)
            self.head = nn.Linear(16, 50, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, idx):
            return self.head(self.embed(idx))

    p = profile_model(Tied(), torch.tensor([[1, 2, 3]]), **FAST)
    assert p["parameters"] == 50 * 16
    assert p["storage_bytes"] < 50 * 16 * 4 + 512


def test_latency_threads_and_state_restored():
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
    model.train()
    before = torch.get_num_threads()
    p = profile_model(model, torch.randn(4, 16), threads=1, warmup=2, repeats=25)
    assert p["threads"] == 1 and torch.get_num_threads() == before
    assert p["repeats"] == 25 and p["warmup"] == 2
    assert 0 < p["latency_min_ms"] <= p["latency_median_ms"] <= p["latency_p90_ms"] <= p["latency_max_ms"]
    assert model.training
    assert p["device"] == "cpu" and p["device_name"] and p["torch"] == torch.__version__
    assert profile_model(model, torch.randn(4, 16), **FAST)["threads"] == before


def test_bad_arguments():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="repeats"):
        profile_model(model, torch.randn(1, 2), repeats=5)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            profile_model(model, torch.randn(1, 2), device="cuda")


def test_tuple_and_dict_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, a, b):
            return self.lin(a) + b

    model = Two()
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    assert profile_model(model, (a, b), **FAST)["macs"] == 2 * 3 * 3
    assert profile_model(model, {"a": a, "b": b}, **FAST)["input_shapes"] == [[2, 3], [2, 3]]


def test_compare_profiles():
    teacher = {"parameters": 1000, "storage_bytes": 4000, "activation_peak_bytes": 800, "macs": 10_000,
               "latency_median_ms": 2.0, "latency_p90_ms": 3.0, "device": "cpu", "threads": 2, "torch": "x"}
    student = {"parameters": 100, "storage_bytes": 500, "activation_peak_bytes": 0, "macs": 1000,
               "latency_median_ms": 0.5, "latency_p90_ms": 1.0, "device": "cpu", "threads": 2, "torch": "x"}
    r = compare_profiles(teacher, student)
    assert r["parameters"] == 10 and r["storage_bytes"] == 8 and r["macs"] == 10
    assert r["latency_median_ms"] == 4 and r["latency_p90_ms"] == 3
    assert r["activation_peak_bytes"] is None and r["flops"] is None
    assert r["same_conditions"]
    assert not compare_profiles(teacher, {**student, "threads": 1})["same_conditions"]
    json.dumps(r, allow_nan=False)
