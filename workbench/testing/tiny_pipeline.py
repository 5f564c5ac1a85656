"""Compute side of the tiny plugin (imported only when its pipeline runs)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.api import InputError, Progress, RunContext, WorkbenchError

from .tiny import TinyFitConfig


class MLP(nn.Sequential):
    def __init__(self, hidden: int):
        super().__init__(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 1))


class Linear(nn.Sequential):
    def __init__(self, hidden: int):  # same signature as MLP; `hidden` unused
        super().__init__(nn.Linear(4, 1))


def make_data(config: TinyFitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(config.seed)
    if config.data_file:
        path = Path(config.data_file)
        if not path.is_file():
            raise InputError(path, "data file not found")
        try:
            x = np.load(path, allow_pickle=False).astype(np.float32)
        except ValueError as exc:
            raise InputError(path, f"not a .npy array: {exc}") from None
        if x.ndim != 2 or x.shape[1] != 4:
            raise InputError(path, f"expected an N x 4 array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InputError(path, "contains NaN or Inf")
    else:
        x = rng.normal(size=(config.samples, 4)).astype(np.float32)
    y = np.sin(x[:, :1] * 1.5) + 0.5 * x[:, 1:2] * x[:, 2:3] - 0.3 * x[:, 3:4]
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))


def run_fit(config: TinyFitConfig, ctx: RunContext):
    x, y = make_data(config)
    n_val = max(len(x) // 5, 1)
    xv, yv, xt, yt = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    model = ctx.component("students", config.student)(config.hidden)
    opt_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    kwargs = {"lr": config.lr} | ({"momentum": 0.9} if config.optimizer == "sgd" else {})
    optimizer = opt_cls(model.parameters(), **kwargs)
    start = 0
    resumed = ctx.load_checkpoint()
    if resumed:
        tensors, state = resumed
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state = optimizer.state_dict()
        for i, entry in state["optimizer"].items():
            opt_state["state"][int(i)] = {name: tensors[f"opt.{i}.{name}"] for name in entry}
        optimizer.load_state_dict(opt_state)
        torch.set_rng_state(tensors["rng.torch"])
        start = state["epoch"] + 1
        ctx.log(f"resumed after epoch {state['epoch']}")
    steps_per_epoch = (len(xt) + config.batch_size - 1) // config.batch_size
    loss_fn = nn.MSELoss()
    for epoch in range(start, config.epochs):
        if epoch == config.fail_at_epoch:
            raise WorkbenchError(f"failing at epoch {epoch} as configured (fail_at_epoch)")
        # Batch order depends only on (seed, epoch): a resumed run sees the same batches.
        order = torch.randperm(len(xt), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
        model.train()
        total = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            if config.step_delay_s:
                time.sleep(config.step_delay_s)
            yield Progress(epoch * steps_per_epoch + b + 1, config.epochs * steps_per_epoch,
                           f"epoch {epoch + 1}/{config.epochs} loss {loss.item():.4f}", phase="train")
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(xv), yv))
        ctx.metric("train_loss", total / len(xt), epoch)
        ctx.metric("val_loss", val, epoch)
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        opt_state = {}
        for i, entry in optimizer.state_dict()["state"].items():
            opt_state[str(i)] = sorted(entry)
            tensors.update({f"opt.{i}.{name}": torch.as_tensor(t) for name, t in entry.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        ctx.save_checkpoint(tensors, {"epoch": epoch, "optimizer": opt_state}, step=epoch)
    from safetensors.torch import save_file

    path = ctx.run_dir / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    ctx.artifact("model", path, family=config.student, hidden=config.hidden)
    with torch.no_grad():
        final = float(loss_fn(model(xv), yv))
    ctx.evaluation("student", "val_mse", final)
    return {"val_loss": final}


def build_model(run_dir: Path, config: dict, name: str):
    """Profile target: the trained model and an example input."""
    from safetensors.torch import load_file

    cfg = TinyFitConfig.model_validate(config)
    model = (MLP if cfg.student == "mlp" else Linear)(cfg.hidden)
    model.load_state_dict(load_file(str(Path(run_dir) / "model.safetensors")))
    return model.eval(), torch.zeros(1, 4)
