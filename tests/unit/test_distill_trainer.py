"""The resumable training loop: bitwise resume, early stopping, clipping, schedules, AMP flags."""
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from workbench.api import Cancelled, ConfigError, Progress
from workbench.distill import (
    EarlyStopping,
    FeatureCapture,
    FeatureMSE,
    KLDiv,
    LossTerm,
    TensorBatches,
    Trainer,
    WeightedLoss,
    resolve_amp,
    seed_everything,
)
from workbench.testing.memory_context import MemoryContext, drive

EPOCHS = 4


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.2))
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.hidden(x))


def kd_pipeline(ctx, epochs=EPOCHS, init_seed=None):
    """A small KD run in the shape of a plugin pipeline: teacher features + logits, a student
    with dropout, a feature adapter, a global-RNG augmentation, a cosine schedule."""
    seed_everything(ctx.seed if init_seed is None else init_seed)  # what the worker does first
    data = torch.Generator().manual_seed(ctx.seed)
    x = torch.randn(48, 4, generator=data)
    xv = torch.randn(16, 4, generator=data)
    with torch.random.fork_rng():  # a "pretrained" teacher: the same in every process
        torch.manual_seed(99)
        teacher = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    student = Student()
    loss = WeightedLoss({
        "kd": LossTerm(KLDiv(2.0), 1.0, ("student", "teacher")),
        "feat": LossTerm(FeatureMSE(8, 16, spatial_dims=0), 0.5, ("s_feat", "t_feat")),
    })
    opt = torch.optim.Adam([*student.parameters(), *loss.parameters()], lr=0.02)
    t_hooks = FeatureCapture(teacher, ["1"], detach=True).register()
    s_hooks = FeatureCapture(student, ["hidden.1"]).register()

    def loss_fn(model, batch):
        (xb,) = batch
        xb = xb + 0.01 * torch.randn_like(xb) + 0.01 * float(np.random.randn()) + 0.01 * random.random()
        with torch.no_grad():
            t = teacher(xb)
        s = model(xb)
        return loss(student=s, teacher=t, s_feat=s_hooks["hidden.1"], t_feat=t_hooks["1"])

    def validate(model):
        total, parts = loss(student=model(xv), teacher=teacher(xv), s_feat=s_hooks["hidden.1"], t_feat=t_hooks["1"])
        return {"loss": total, "kd": parts["kd"]}

    trainer = Trainer(student, opt, ctx, epochs=epochs,
                      train_batches=lambda epoch: TensorBatches((x,), 16, seed=ctx.seed, epoch=epoch),
                      loss_fn=loss_fn, validate=validate, scheduler="cosine", grad_clip=5.0,
                      extra_modules={"loss": loss})
    summary = yield from trainer.fit()
    return {"summary": summary, "student": student.state_dict(), "adapter": loss.state_dict()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("stop", ["cancel_flag", "killed_mid_epoch"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, stop):
    full = MemoryContext(tmp_path / "full", seed=5)
    reference = drive(kd_pipeline(full))
    assert len(full.checkpoints) == EPOCHS

    if stop == "cancel_flag":  # the user cancels after epoch 2: the trainer stops at the next batch
        first = MemoryContext(tmp_path / "run", seed=5, cancel_after_checkpoints=2)
        gen = kd_pipeline(first)
        with pytest.raises(Cancelled):
            for _ in gen:  # no host check at yields: the trainer itself must notice
                pass
    else:  # the process dies in the middle of epoch 3 (after 2 of its 3 batches)
        first = MemoryContext(tmp_path / "run", seed=5,
                              cancel_when=lambda c: len(c.progress) >= 2 * 5 + 2)
        with pytest.raises(Cancelled):
            drive(kd_pipeline(first), first)
    assert [c.step for c in first.checkpoints] == [0, 1]

    # resume in a "new process": different global RNG state and a different initial model
    second = MemoryContext(tmp_path / "run", seed=5)
    resumed = drive(kd_pipeline(second, init_seed=1234))
    assert any("resumed after epoch 2/4" in m for m in second.messages())
    assert [c.step for c in second.checkpoints] == [2, 3]

    assert_same_state(resumed["student"], reference["student"])
    assert_same_state(resumed["adapter"], reference["adapter"])
    ref_metrics = full.metric_table()
    assert {"train_loss", "train_kd", "train_feat", "val_loss", "val_kd", "lr", "grad_norm"} <= set(ref_metrics)
    run_metrics = {}
    for ctx in (first, second):
        for key, steps in ctx.metric_table().items():
            run_metrics.setdefault(key, {}).update(steps)
    assert run_metrics == ref_metrics  # bitwise equal floats, every epoch
    assert resumed["summary"] == reference["summary"]


def test_checkpoint_is_safetensors_and_strict_json(tmp_path):
    ctx = MemoryContext(tmp_path, seed=1)
    drive(kd_pipeline(ctx, epochs=1))
    with safe_open(str(tmp_path / "checkpoints/last.safetensors"), framework="pt") as f:
        state = json.loads(f.metadata()["workbench.checkpoint"])  # written with allow_nan=False
    assert state["step"] == 0 and state["state"]["format"] == "workbench.distill.trainer/1"
    tensors, _ = ctx.load_checkpoint()
    assert "model.out.weight" in tensors and "extra.loss.terms.feat.adapter.weight" in tensors
    assert "state.rng.torch" in tensors and any(k.startswith("state.optimizer.state.") for k in tensors)
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))


def linear_setup(ctx, values, epochs=10, patience=2, snapshots=None):
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    y = x.sum(1, keepdim=True)
    calls = iter(values)

    def validate(m):
        if snapshots is not None:
            snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"loss": next(calls)}

    return model, Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ctx, epochs=epochs,
                          train_batches=lambda e: TensorBatches((x, y), 4, 0, e),
                          loss_fn=lambda m, b: F.mse_loss(m(b[0]), b[1]), validate=validate,
                          early_stopping=EarlyStopping("val_loss", "min", patience=patience))


def test_early_stopping_stops_and_restores_best(tmp_path):
    ctx = MemoryContext(tmp_path)
    snapshots = []
    model, trainer = linear_setup(ctx, [1.0, 0.5, 0.7, 0.6, 0.9, 0.1], snapshots=snapshots)
    summary = drive(trainer.fit())
    assert summary["stopped_early"] and summary["epochs_run"] == 4
    assert summary["best_epoch"] == 1 and summary["best_value"] == 0.5
    assert sorted(ctx.values("val_loss")) == [0, 1, 2, 3]
    assert_same_state(model.state_dict(), snapshots[1])
    assert not torch.equal(model.weight, snapshots[3]["weight"])
    assert any("early stopping after epoch 4" in m for m in ctx.messages())


def test_early_stopping_state_survives_resume(tmp_path):
    first = MemoryContext(tmp_path, cancel_after_checkpoints=3)
    snapshots = []
    _, trainer = linear_setup(first, [1.0, 0.5, 0.7, 0.6, 0.9], snapshots=snapshots)
    with pytest.raises(Cancelled):
        drive(trainer.fit(), first)
    second = MemoryContext(tmp_path)
    model, trainer = linear_setup(second, [0.6, 0.9])  # epochs 3, 4 of the same sequence
    summary = drive(trainer.fit())
    assert summary["stopped_early"] and summary["best_epoch"] == 1 and summary["epochs_run"] == 4
    assert_same_state(model.state_dict(), snapshots[1])
    # resuming a finished run trains nothing more and still ends on the best weights
    third = MemoryContext(tmp_path)
    model, trainer = linear_setup(third, [])
    assert drive(trainer.fit())["epochs_run"] == 4 and not third.metrics
    assert_same_state(model.state_dict(), snapshots[1])


def clip_run(tmp_path, clip):
    model = nn.Linear(3, 1, bias=False)
    nn.init.zeros_(model.weight)
    x, y = torch.ones(2, 3), torch.full((2, 1), 100.0)
    ctx = MemoryContext(tmp_path / str(clip))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), ctx, epochs=1,
                      train_batches=lambda e: [(x, y)], loss_fn=lambda m, b: F.mse_loss(m(b[0]), b[1]),
                      grad_clip=clip, checkpoint=False)
    drive(trainer.fit())
    return model.weight.detach().norm().item(), ctx


def test_grad_clipping_is_applied(tmp_path):
    raw_step, _ = clip_run(tmp_path, None)  # SGD lr=1 from zero: the step is the raw gradient
    assert raw_step == pytest.approx(200 * 3**0.5, rel=1e-5)
    clipped_step, ctx = clip_run(tmp_path, 0.5)
    assert clipped_step == pytest.approx(0.5, rel=1e-5)
    assert ctx.values("grad_norm")[0] == pytest.approx(raw_step, rel=1e-5)  # pre-clip norm logged


def test_cancel_stops_at_next_batch(tmp_path):
    ctx = MemoryContext(tmp_path)
    model = nn.Linear(2, 1)
    seen = []

    def loss_fn(m, b):
        seen.append(1)
        if len(seen) == 3:
            ctx.cancel()
        return m(b).square().mean()

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ctx, epochs=2,
                      train_batches=lambda e: [torch.randn(2, 2) for _ in range(5)], loss_fn=loss_fn)
    gen = trainer.fit()
    with pytest.raises(Cancelled):
        for _ in gen:
            pass
    assert len(seen) == 3 and not ctx.checkpoints


def test_schedules_and_progress(tmp_path):
    def run(spec, vals=None):
        ctx = MemoryContext(tmp_path / str(spec).replace(" ", ""))
        model = nn.Linear(2, 1)
        v = iter(vals or [1.0] * 6)
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), ctx, epochs=6,
                          train_batches=lambda e: TensorBatches(torch.randn(6, 2), 3, 0, e),
                          loss_fn=lambda m, b: m(b).square().mean(), validate=lambda m: {"loss": next(v)},
                          scheduler=spec, checkpoint=False)
        gen = trainer.fit()
        progress = [p for p in drive_all(gen)]
        return [ctx.values("lr")[e] for e in range(6)], progress

    lrs, progress = run("cosine")
    assert lrs[0] == 1.0 and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert all(isinstance(p, Progress) and p.total == 6 for p in progress)
    assert [p.done for p in progress if p.phase == "train"][:3] == [0.5, 1.0, 1.0]
    assert progress[-1].done == 6
    assert run({"kind": "step", "step_size": 2, "gamma": 0.5})[0] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert run({"kind": "plateau", "patience": 1, "factor": 0.1})[0] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01])
    assert run("none")[0] == [1.0] * 6
    with pytest.raises(ConfigError, match="unknown scheduler"):
        run("linear")


def drive_all(gen):
    return list(gen)


def test_amp_flags_without_cuda():
    cpu = torch.device("cpu")
    for amp in (False, None, "off"):
        assert not resolve_amp(amp, cpu).enabled
    off = resolve_amp("fp16", cpu)
    assert not off.enabled and off.dtype is None and "only on CUDA" in off.note
    gpu = torch.device("cuda:0")  # pure flag logic: no CUDA needed
    assert resolve_amp("bf16", gpu, bf16_supported=True) == resolve_amp(True, gpu, bf16_supported=True)
    bf16 = resolve_amp("bf16", gpu, bf16_supported=True)
    assert bf16.enabled and bf16.dtype is torch.bfloat16 and not bf16.use_scaler
    fp16 = resolve_amp("fp16", gpu, bf16_supported=True)
    assert fp16.enabled and fp16.dtype is torch.float16 and fp16.use_scaler
    fallback = resolve_amp("bf16", gpu, bf16_supported=False)
    assert fallback.dtype is torch.float16 and fallback.use_scaler and "lacks bf16" in fallback.note
    assert resolve_amp("auto", gpu, bf16_supported=False).dtype is torch.float16
    with pytest.raises(ConfigError):
        resolve_amp("int8", gpu)


def test_amp_request_on_cpu_trains_in_float32(tmp_path):
    ctx = MemoryContext(tmp_path)
    model = nn.Linear(2, 1)
    dtypes = []

    def loss_fn(m, b):
        out = m(b)
        dtypes.append(out.dtype)
        return out.square().mean()

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ctx, epochs=1, amp="bf16",
                      train_batches=lambda e: [torch.randn(2, 2)], loss_fn=loss_fn)
    assert not trainer.amp.enabled and trainer.scaler is None
    drive(trainer.fit())
    assert dtypes == [torch.float32]
    assert any("only on CUDA" in m for m in ctx.messages())


def test_bad_arguments(tmp_path):
    ctx = MemoryContext(tmp_path)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kw = dict(epochs=1, train_batches=lambda e: [torch.randn(2, 2)])
    with pytest.raises(ValueError, match="exactly one"):
        Trainer(model, opt, ctx, **kw)
    with pytest.raises(ConfigError, match="no validate"):
        Trainer(model, opt, ctx, loss_fn=lambda m, b: m(b).sum(), early_stopping=EarlyStopping(), **kw)
    trainer = Trainer(model, opt, ctx, loss_fn=lambda m, b: m(b).sum() * float("nan"), **kw)
    with pytest.raises(Exception, match="diverged"):
        drive(trainer.fit())


def test_step_fn_custom_step(tmp_path):
    ctx = MemoryContext(tmp_path)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step_fn(m, batch, optimizer):
        optimizer.zero_grad()
        loss = m(batch).square().mean()
        loss.backward()
        optimizer.step()
        return loss.detach(), {"extra": 2.0}

    trainer = Trainer(model, opt, ctx, epochs=2, train_batches=lambda e: [torch.ones(2, 2)], step_fn=step_fn)
    summary = drive(trainer.fit())
    assert summary["epochs_run"] == 2 and ctx.values("train_extra") == {0: 2.0, 1: 2.0}
    assert len(ctx.checkpoints) == 2
