"""Device resolution, seeding, deterministic batches, losses and forward hooks."""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.api import ConfigError
from workbench.distill import (
    L1,
    MSE,
    Cosine,
    FeatureCapture,
    FeatureMSE,
    KLDiv,
    LossTerm,
    TensorBatches,
    WeightedLoss,
    build_loss,
    capture_features,
    epoch_generator,
    resolve_device,
    seed_everything,
)


# -- device / seeding ------------------------------------------------------------------------
def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_resolve_device_errors():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        for spec in ("cuda", "cuda:1"):
            with pytest.raises(ConfigError, match="no CUDA device is available"):
                resolve_device(spec)
    else:
        with pytest.raises(ConfigError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(11)
    first = draw()
    seed_everything(11)
    assert draw() == first
    seed_everything(12)
    assert draw() != first


def test_epoch_batches_depend_only_on_seed_and_epoch():
    x = torch.arange(10.0)
    torch.manual_seed(0)
    a = [b.tolist() for b in TensorBatches(x, 4, seed=3, epoch=1)]
    torch.manual_seed(99)  # the global RNG plays no part
    b = [b.tolist() for b in TensorBatches(x, 4, seed=3, epoch=1)]
    c = [b.tolist() for b in TensorBatches(x, 4, seed=3, epoch=2)]
    assert a == b and a != c
    assert len(TensorBatches(x, 4, 3, 1)) == 3 and [len(v) for v in a] == [4, 4, 2]
    assert sorted(sum(a, [])) == x.tolist()
    assert len(TensorBatches(x, 4, 3, 1, drop_last=True)) == 2
    pairs = list(TensorBatches((x, 2 * x), 5, seed=0, epoch=0))
    assert all(torch.equal(p[1], 2 * p[0]) for p in pairs)
    assert not torch.equal(epoch_generator(1, 0).get_state(), epoch_generator(1, 1).get_state())


# -- losses ----------------------------------------------------------------------------------
def test_weighted_loss_sums_terms():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5), torch.randn(6, 5)
    loss = WeightedLoss({
        "gt": LossTerm(MSE(), 0.25, ("student", "target")),
        "kd": LossTerm(L1(), 2.0, ("student", "teacher")),
        "cos": LossTerm(Cosine(), 0.5, ("student", "teacher")),
    })
    total, parts = loss(student=s, teacher=t, target=y)
    mse, l1 = F.mse_loss(s, y), F.l1_loss(s, t)
    cos = (1 - F.cosine_similarity(s, t, dim=1)).mean()
    assert torch.allclose(total, 0.25 * mse + 2.0 * l1 + 0.5 * cos)
    assert set(parts) == {"gt", "kd", "cos"}
    assert torch.allclose(parts["gt"], mse) and torch.allclose(parts["kd"], l1) and torch.allclose(parts["cos"], cos)
    assert not any(p.requires_grad for p in parts.values())
    total.backward()
    assert s.grad is not None
    with pytest.raises(KeyError, match="needs inputs \\['teacher'\\]"):
        loss(student=s, target=y)


def test_kl_with_temperature():
    torch.manual_seed(0)
    s, t = torch.randn(4, 7), torch.randn(4, 7)
    T = 3.0
    expected = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="batchmean", log_target=True) * T * T
    assert torch.allclose(KLDiv(T)(s, t), expected, atol=1e-6)
    assert float(KLDiv(2.0)(t, t)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError):
        KLDiv(0)


def test_feature_mse_adapters():
    f2 = FeatureMSE(8, 16, spatial_dims=2)
    assert isinstance(f2.adapter, nn.Conv2d) and f2.adapter.kernel_size == (1, 1)
    s, t = torch.randn(2, 8, 5, 5), torch.randn(2, 16, 5, 5)
    assert torch.allclose(f2(s, t), F.mse_loss(f2.adapter(s), t))
    assert isinstance(FeatureMSE(4, 6, spatial_dims=3).adapter, nn.Conv3d)
    assert isinstance(FeatureMSE(4, 6, spatial_dims=0).adapter, nn.Linear)
    same = FeatureMSE(16, 16)
    assert isinstance(same.adapter, nn.Identity) and torch.equal(same(t, t), torch.tensor(0.0))
    with pytest.raises(ValueError, match="channels differ"):
        FeatureMSE()(s, t)
    with pytest.raises(ValueError, match="sizes differ"):
        same(torch.randn(2, 16, 3, 3), t)
    assert FeatureMSE(16, 16, resize=True)(torch.randn(2, 16, 3, 3), t).shape == ()


def test_build_loss_from_config():
    loss = build_loss([
        {"key": "mse", "weight": 0.5},
        {"key": "kl", "name": "kd", "weight": 0.5, "inputs": ["student", "teacher"], "kwargs": {"temperature": 2}},
    ])
    assert loss.weights == {"mse": 0.5, "kd": 0.5} and loss.inputs["kd"] == ("student", "teacher")
    assert loss.terms["kd"].temperature == 2.0
    with pytest.raises(ConfigError, match="unknown loss term 'huber'"):
        build_loss([{"key": "huber"}])
    with pytest.raises(ConfigError, match="duplicate"):
        build_loss([{"key": "mse"}, {"key": "mse"}])
    with pytest.raises(ConfigError, match="bad kwargs"):
        build_loss([{"key": "mse", "kwargs": {"x": 1}}])


# -- hooks -----------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.body(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


def test_hooks_capture_shapes_and_are_removed():
    net = Net()
    x = torch.randn(2, 3, 8, 8)
    with FeatureCapture(net, ["stem", "body.0", "head"]) as feats:
        out = net(x)
        assert feats["stem"].shape == (2, 4, 8, 8)
        assert feats["body.0"].shape == (2, 8, 4, 4)
        assert torch.equal(feats["head"], out)
        assert feats["stem"].requires_grad  # not detached by default: usable in a loss
    assert not feats.active
    feats.clear()
    net(x)
    assert len(feats) == 0  # no hook left behind
    assert all(not m._forward_hooks for m in net.modules())

    inputs = FeatureCapture(net, ["head"], capture="input", detach=True)
    with inputs:
        net(x)
    assert inputs["head"].shape == (2, 8) and not inputs["head"].requires_grad

    out, feats = capture_features(net, ["body"], x)
    assert feats["body"].shape == (2, 8, 4, 4) and not feats["body"].requires_grad


def test_hooks_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean 'body.0'"):
        FeatureCapture(Net(), ["body0"])
