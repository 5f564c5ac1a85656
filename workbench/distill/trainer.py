"""The generic training loop plugins share, shaped as a generator for ``run(config, ctx)``.

    trainer = Trainer(model, optimizer, ctx, epochs=cfg.epochs,
                      train_batches=lambda epoch: TensorBatches((x, y), 32, ctx.seed, epoch),
                      loss_fn=lambda model, batch: F.mse_loss(model(batch[0]), batch[1]),
                      validate=lambda model: {"loss": float(F.mse_loss(model(xv), yv))},
                      scheduler="cosine", grad_clip=1.0,
                      early_stopping=EarlyStopping("val_loss", "min", patience=5))
    summary = yield from trainer.fit()

Per batch it yields `Progress` (``done`` counts epochs, fractional within one) and checks
``ctx.cancelled`` (raising `Cancelled`). Per epoch it logs ``train_loss`` (and
``train_<term>`` for every term a loss returns), ``val_<name>`` for what ``validate``
returns, ``lr`` and, with clipping, ``grad_norm`` (mean pre-clip norm), all with
``step=epoch`` (0-based); then it writes a checkpoint through ``ctx.save_checkpoint``:
model, extra modules, optimizer, scheduler, early-stopping state, AMP scaler, best
weights, RNG states (Python, NumPy, torch CPU and CUDA), history and ``user_state``,
as safetensors + JSON (see `workbench.distill.state`).

When ``ctx.load_checkpoint()`` returns a checkpoint, everything is restored and training
continues with the next epoch. With data order derived from (seed, epoch) (e.g.
`TensorBatches`) or from the global RNGs (restored too), a run interrupted after epoch k
and resumed ends bitwise equal, on CPU, to an uninterrupted one.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import numpy as np
import torch
from torch import nn

from workbench.api import Cancelled, ConfigError, Progress, RunContext, WorkbenchError

from .device import resolve_device
from .state import pack_state, storage_safe, unpack_state

CHECKPOINT_FORMAT = "workbench.distill.trainer/1"

LossOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, Any]]


# -- early stopping ------------------------------------------------------------------------
@dataclass
class EarlyStopping:
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``metric`` names a logged metric (``val_loss``, ``val_accuracy``, ``train_loss`` ...).
    With ``restore_best`` the model gets the weights of its best epoch back at the end.
    """

    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True
    # state (checkpointed)
    best: float | None = field(default=None, init=False)
    best_epoch: int = field(default=-1, init=False)
    bad_epochs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"early stopping mode must be 'min' or 'max', got {self.mode!r}", key="early_stopping")
        if self.patience < 1:
            raise ConfigError(f"early stopping patience must be >= 1, got {self.patience}", key="early_stopping")

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is a new best."""
        value = float(value)
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, int(epoch), 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], int(state["best_epoch"]), int(state["bad_epochs"])


# -- learning-rate schedule ----------------------------------------------------------------
@dataclass
class SchedulerSpec:
    """Per-epoch learning-rate schedule: ``none | cosine | step | plateau``."""

    kind: Literal["none", "cosine", "step", "plateau"] = "none"
    t_max: int | None = None  # cosine: epochs of one half-period (default: all epochs)
    eta_min: float = 0.0  # cosine: final learning rate
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step: decay factor
    factor: float = 0.1  # plateau: decay factor
    patience: int = 5  # plateau: epochs without improvement before a decay
    metric: str = "val_loss"  # plateau: watched metric
    mode: Literal["min", "max"] = "min"  # plateau
    min_lr: float = 0.0  # plateau

    @classmethod
    def coerce(cls, spec: "SchedulerSpec | str | Mapping[str, Any] | None") -> "SchedulerSpec":
        if spec is None:
            return cls()
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            spec = {"kind": spec}
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(f"unknown scheduler fields {sorted(unknown)} (known: {sorted(known)})", key="scheduler")
        out = cls(**dict(spec))
        if out.kind not in ("none", "cosine", "step", "plateau"):
            raise ConfigError(f"unknown scheduler {out.kind!r} (known: none, cosine, step, plateau)", key="scheduler")
        return out


def make_scheduler(spec: SchedulerSpec | str | Mapping[str, Any] | None, optimizer: torch.optim.Optimizer,
                   epochs: int) -> Any:
    """The torch scheduler for ``spec`` (None for ``none``); stepped once per epoch."""
    spec = SchedulerSpec.coerce(spec)
    sched = torch.optim.lr_scheduler
    if spec.kind == "none":
        return None
    if spec.kind == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, spec.t_max or epochs), eta_min=spec.eta_min)
    if spec.kind == "step":
        return sched.StepLR(optimizer, step_size=spec.step_size, gamma=spec.gamma)
    return sched.ReduceLROnPlateau(optimizer, mode=spec.mode, factor=spec.factor, patience=spec.patience,
                                   min_lr=spec.min_lr)


# -- mixed precision -----------------------------------------------------------------------
@dataclass(frozen=True)
class AmpSettings:
    enabled: bool
    dtype: torch.dtype | None = None
    use_scaler: bool = False
    note: str = ""


def resolve_amp(amp: bool | str | None, device: torch.device | str, bf16_supported: bool | None = None) -> AmpSettings:
    """Decide autocast and gradient scaling. AMP runs only on CUDA; elsewhere it is off (with a note).

    ``amp``: ``False | None | "off"`` -> off; ``True | "auto"`` -> bf16 where the GPU supports
    it, else fp16; ``"bf16"`` -> bf16 autocast, no scaler; ``"fp16"`` -> fp16 autocast + GradScaler.
    """
    device = torch.device(device)
    choice = {None: "off", False: "off", True: "auto"}.get(amp, amp) if not isinstance(amp, str) else amp.lower()
    if choice in ("off", "none", "no", "false", "fp32"):
        return AmpSettings(False)
    if choice not in ("auto", "bf16", "fp16"):
        raise ConfigError(f"unknown amp mode {amp!r} (off, auto, bf16, fp16)", key="amp")
    if device.type != "cuda":
        return AmpSettings(False, note=f"mixed precision ({choice}) runs only on CUDA; training in float32 on {device}")
    if bf16_supported is None:
        bf16_supported = bool(torch.cuda.is_bf16_supported())
    if choice == "auto":
        choice = "bf16" if bf16_supported else "fp16"
    if choice == "bf16" and not bf16_supported:
        return AmpSettings(True, torch.float16, True, note="this GPU lacks bf16; using fp16 with gradient scaling")
    if choice == "bf16":
        return AmpSettings(True, torch.bfloat16, False)
    return AmpSettings(True, torch.float16, True)


# -- helpers -------------------------------------------------------------------------------
def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors inside tuples / lists / dicts moved to ``device``; anything else untouched."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # named tuple
        return type(batch)(*(move_to_device(b, device, non_blocking) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_to_device(b, device, non_blocking) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    return batch


def batch_size_of(batch: Any) -> int | None:
    """Length of the first tensor found in ``batch`` (None when there is none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, (tuple, list)):
        items: Iterable[Any] = batch
    elif isinstance(batch, dict):
        items = batch.values()
    else:
        return None
    for item in items:
        n = batch_size_of(item)
        if n is not None:
            return n
    return None


def rng_state(include_cuda: bool) -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if include_cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def _split_loss(out: Any) -> tuple[Any, Mapping[str, Any]]:
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], Mapping):
            raise TypeError("loss_fn/step_fn must return a loss or (loss, {term: value})")
        return out[0], out[1]
    return out, {}


def _as_float(value: Any) -> float:
    return float(value.detach().float().item()) if isinstance(value, torch.Tensor) else float(value)


def _prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


# -- the trainer ---------------------------------------------------------------------------
class Trainer:
    """See the module docstring. Exactly one of ``loss_fn`` / ``step_fn``:

    - ``loss_fn(model, batch) -> loss | (loss, {term: value})``: the trainer zeroes grads,
      runs it under autocast (AMP), back-propagates (scaled for fp16), clips and steps.
    - ``step_fn(model, batch, optimizer) -> loss | (loss, {term: value})``: a complete
      custom step; the trainer only logs, checkpoints and reports (no AMP, no clipping).

    ``train_batches(epoch)`` returns the epoch's batches (tensors are moved to the device);
    ``validate(model) -> {name: value}`` runs under ``eval()`` and ``no_grad`` after every epoch
    (names get a ``val_`` prefix unless they have one). ``extra_modules`` (adapters, a loss
    with parameters) are trained, moved and checkpointed alongside the model. Anything
    put in ``user_state`` (JSON-able values and tensors) is checkpointed and comes back on
    resume; call `resume()` before `fit()` to read it early.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ctx: RunContext,
        *,
        epochs: int,
        train_batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[nn.Module, Any], LossOutput] | None = None,
        step_fn: Callable[[nn.Module, Any, torch.optim.Optimizer], LossOutput] | None = None,
        validate: Callable[[nn.Module], Mapping[str, float]] | None = None,
        scheduler: SchedulerSpec | str | Mapping[str, Any] | None = "none",
        grad_clip: float | None = None,
        amp: bool | str | None = "off",
        early_stopping: EarlyStopping | None = None,
        extra_modules: Mapping[str, nn.Module] | None = None,
        device: str | torch.device | None = None,
        checkpoint: bool = True,
        resume: bool = True,
        phase: str = "train",
    ):
        if (loss_fn is None) == (step_fn is None):
            raise ValueError("give exactly one of loss_fn and step_fn")
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}", key="epochs")
        if grad_clip is not None and not grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0, got {grad_clip}", key="grad_clip")
        self.model, self.optimizer, self.ctx = model, optimizer, ctx
        self.epochs, self.train_batches = int(epochs), train_batches
        self.loss_fn, self.step_fn, self.validate_fn = loss_fn, step_fn, validate
        self.grad_clip = grad_clip
        self.early_stopping = early_stopping
        self.extra_modules = dict(extra_modules or {})
        self.device = resolve_device(device if device is not None else getattr(ctx, "device", "cpu"))
        self.checkpoint_enabled, self.resume_enabled, self.phase = checkpoint, resume, phase
        self.scheduler_spec = SchedulerSpec.coerce(scheduler)
        self.scheduler = make_scheduler(self.scheduler_spec, optimizer, self.epochs)
        self.amp = resolve_amp(amp, self.device) if step_fn is None else AmpSettings(False)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp.use_scaler else None
        if early_stopping is not None and validate is None and early_stopping.metric.startswith("val_"):
            raise ConfigError(f"early stopping watches {early_stopping.metric!r} but no validate function was given",
                              key="early_stopping")
        if self.scheduler_spec.kind == "plateau" and validate is None and self.scheduler_spec.metric.startswith("val_"):
            raise ConfigError(f"the plateau scheduler watches {self.scheduler_spec.metric!r} but no validate "
                              "function was given", key="scheduler")
        self.user_state: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.start_epoch = 0
        self.stopped_early = False
        self.resumed_from: int | None = None
        self._resumed = False
        self._noted_amp = False

    # -- checkpoint -----------------------------------------------------------------------
    def _modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, **{f"extra.{k}": m for k, m in self.extra_modules.items()}}

    def state_tensors_and_json(self, epoch: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What `fit` writes after ``epoch``: (tensors, JSON state)."""
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in self._modules().items():
            tensors.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        if self.best_state is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_state.items()})
        packed, skeleton = pack_state({
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(include_cuda=self.device.type == "cuda"),
            "history": self.history,
            "stopped_early": self.stopped_early,
            "user": self.user_state,
        }, prefix="state.")
        tensors.update(packed)
        state = {"format": CHECKPOINT_FORMAT, "epoch": int(epoch), "epochs": self.epochs,
                 "modules": sorted(self._modules()), "skeleton": skeleton}
        return storage_safe(tensors), state

    def save(self, epoch: int) -> None:
        tensors, state = self.state_tensors_and_json(epoch)
        self.ctx.save_checkpoint(tensors, state, step=int(epoch))

    def resume(self) -> bool:
        """Restore from ``ctx.load_checkpoint()`` if there is one (once); True when resumed."""
        if self._resumed:
            return self.resumed_from is not None
        self._resumed = True
        self._place()
        loaded = self.ctx.load_checkpoint() if self.resume_enabled else None
        if not loaded:
            return False
        tensors, state = loaded
        if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
            raise WorkbenchError("the run's checkpoint was not written by workbench.distill.Trainer "
                                 f"(format {state.get('format') if isinstance(state, Mapping) else None!r})")
        if sorted(self._modules()) != state["modules"]:
            raise WorkbenchError(f"checkpoint holds modules {state['modules']}, this trainer has {sorted(self._modules())}")
        for prefix, module in self._modules().items():
            try:
                module.load_state_dict(_prefixed(tensors, prefix + "."))
            except RuntimeError as exc:
                raise WorkbenchError(f"checkpoint does not fit {prefix}: {exc}") from None
        restored = unpack_state(tensors, state["skeleton"])
        self.optimizer.load_state_dict(restored["optimizer"])
        if self.scheduler is not None and restored["scheduler"] is not None:
            self.scheduler.load_state_dict(restored["scheduler"])
        if self.early_stopping is not None and restored["early_stopping"] is not None:
            self.early_stopping.load_state_dict(restored["early_stopping"])
        if self.scaler is not None and restored["scaler"] is not None:
            self.scaler.load_state_dict(restored["scaler"])
        best = _prefixed(tensors, "best.")
        self.best_state = {k: v.clone() for k, v in best.items()} or None
        self.history = [dict(h) for h in restored["history"]]
        self.stopped_early = bool(restored["stopped_early"])
        self.user_state = dict(restored["user"] or {})
        set_rng_state(restored["rng"])
        self.resumed_from = int(state["epoch"])
        self.start_epoch = self.resumed_from + 1
        self.ctx.log(f"resumed after epoch {self.start_epoch}/{self.epochs}")
        return True

    def _place(self) -> None:
        for module in self._modules().values():
            module.to(self.device)

    # -- loop -------------------------------------------------------------------------------
    def _check_cancel(self) -> None:
        if self.ctx.cancelled:
            raise Cancelled("cancelled by the user")

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _set_mode(self, train: bool) -> None:
        for module in self._modules().values():
            module.train(train)

    def _step(self, batch: Any) -> tuple[torch.Tensor | float, Mapping[str, Any], float | None]:
        if self.step_fn is not None:
            loss, parts = _split_loss(self.step_fn(self.model, batch, self.optimizer))
            return loss, parts, None
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp.dtype, enabled=self.amp.enabled):
            loss, parts = _split_loss(self.loss_fn(self.model, batch))  # type: ignore[misc]
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            raise TypeError("loss_fn must return a differentiable tensor (or (tensor, parts))")
        if self.scaler is None and not torch.isfinite(loss.detach()).all():
            raise WorkbenchError(f"training diverged: the loss is {float(loss.detach()):g}")
        norm = None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                norm = float(torch.nn.utils.clip_grad_norm_(self._params(), self.grad_clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip is not None:
                norm = float(torch.nn.utils.clip_grad_norm_(self._params(), self.grad_clip))
            self.optimizer.step()
        return loss, parts, norm

    def _train_epoch(self, epoch: int, sums: dict[str, float]) -> Iterator[Progress]:
        self._set_mode(True)
        batches = self.train_batches(epoch)
        total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
        count = 0
        norms: list[float] = []
        for b, batch in enumerate(batches):
            self._check_cancel()
            batch = move_to_device(batch, self.device, non_blocking=self.device.type == "cuda")
            loss, parts, norm = self._step(batch)
            n = batch_size_of(batch) or 1
            value = _as_float(loss)
            sums["train_loss"] = sums.get("train_loss", 0.0) + value * n
            for name, part in parts.items():
                sums[f"train_{name}"] = sums.get(f"train_{name}", 0.0) + _as_float(part) * n
            if norm is not None:
                norms.append(norm)
            count += n
            done = epoch + ((b + 1) / total if total else 0.0)
            of = f"/{total}" if total else ""
            yield Progress(done, self.epochs, f"epoch {epoch + 1}/{self.epochs} batch {b + 1}{of} loss {value:.4g}",
                           phase=self.phase)
        if count == 0:
            raise WorkbenchError(f"epoch {epoch}: train_batches returned no batches")
        for key in list(sums):
            sums[key] /= count
        if norms:
            sums["grad_norm"] = float(sum(norms) / len(norms))

    def _validate(self) -> dict[str, float]:
        if self.validate_fn is None:
            return {}
        self._set_mode(False)
        with torch.no_grad():
            raw = self.validate_fn(self.model) or {}
        return {(k if k.startswith("val_") else f"val_{k}"): _as_float(v) for k, v in raw.items()}

    def _watched(self, metrics: Mapping[str, float], name: str, who: str) -> float:
        if name not in metrics:
            raise ConfigError(f"{who} watches {name!r}, which is not logged (logged: {', '.join(sorted(metrics))})",
                              key=who.replace(" ", "_"))
        return metrics[name]

    def fit(self) -> Iterator[Progress]:
        """Train (resuming when a checkpoint exists); returns a summary dict (``yield from``)."""
        self.resume()
        if self.amp.note and not self._noted_amp:
            self._noted_amp = True
            self.ctx.log(self.amp.note, "warning" if self.amp.enabled else "info")
        for epoch in range(self.start_epoch, self.epochs):
            if self.stopped_early:
                break
            lr = float(self.optimizer.param_groups[0]["lr"])
            metrics: dict[str, float] = {}
            yield from self._train_epoch(epoch, metrics)
            self._check_cancel()
            if self.validate_fn is not None:
                yield Progress(epoch + 1, self.epochs, f"epoch {epoch + 1}/{self.epochs}: validating", phase="validate")
                self._check_cancel()
                metrics.update(self._validate())
            metrics["lr"] = lr
            for key, value in metrics.items():
                self.ctx.metric(key, value, step=epoch)
            if self.scheduler is not None:
                if self.scheduler_spec.kind == "plateau":
                    self.scheduler.step(self._watched(metrics, self.scheduler_spec.metric, "scheduler"))
                else:
                    self.scheduler.step()
            es = self.early_stopping
            if es is not None:
                if es.update(self._watched(metrics, es.metric, "early stopping"), epoch):
                    self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
                if es.should_stop:
                    self.stopped_early = True
                    self.ctx.log(f"early stopping after epoch {epoch + 1}: {es.metric} has not improved for "
                                 f"{es.patience} epochs (best {es.best:.6g} at epoch {es.best_epoch + 1})")
            self.history.append({"epoch": epoch, **metrics})
            if self.checkpoint_enabled:
                self.save(epoch)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "lr")
            yield Progress(epoch + 1, self.epochs, f"epoch {epoch + 1}/{self.epochs}: {shown}", phase=self.phase)
        self._set_mode(False)
        es = self.early_stopping
        if es is not None and es.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.ctx.log(f"restored the best weights (epoch {es.best_epoch + 1}, {es.metric} {es.best:.6g})")
        return self.summary()

    def summary(self) -> dict[str, Any]:
        es = self.early_stopping
        last = self.history[-1] if self.history else {}
        out: dict[str, Any] = {
            "epochs_run": len(self.history),
            "last_epoch": int(last.get("epoch", -1)),
            "stopped_early": self.stopped_early,
            "final": {k: v for k, v in last.items() if k != "epoch"},
        }
        if es is not None:
            out.update(best_epoch=es.best_epoch, best_metric=es.metric, best_value=es.best)
        return out
