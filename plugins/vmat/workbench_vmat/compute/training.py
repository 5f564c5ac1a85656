"""Training of the dose networks, shared by the teacher and distill pipelines.

Cases are held in memory as normalised arrays (`CaseArrays`); patches are drawn by a
`PatchSampler`; the loop is `workbench.distill.Trainer` (checkpoint/resume, AMP on CUDA,
early stopping on ``val_gamma_2_2`` or ``val_loss``). Validation predicts every val case
on the full volume and scores it with the plugin's gamma (2%/2mm of the prescription, 10 %
cutoff), so early stopping watches the metric the model is judged by.

Distillation loss (per batch, normalised dose units)::

    L = L1(student, reference) + alpha * L1(student, teacher) + beta * sum_l FeatureMSE_l / s_l

with the teacher's outputs and features computed once per case on the full volume
(`TeacherCache`, cropped per patch) and ``s_l`` the teacher feature's mean square (so
beta does not depend on the layer's scale). Student features reach the loss through
forward hooks (`workbench.distill.FeatureCapture`) and 1x1x1 adapters
(`workbench.distill.FeatureMSE`) when widths differ.

Data-parallel training: when the process runs under ``torchrun`` (``WORLD_SIZE`` > 1) the
model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on CUDA), every rank draws
its own share of the epoch's patches (seeded by seed, epoch and rank), gradients are
averaged, and every rank validates the same cases, so all ranks take the same early-stopping
decisions. Only rank 0 talks to the host (the CLI gives the other ranks a silent context).
"""
from __future__ import annotations

import math
import zlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.api import ConfigError, Progress, RunContext
from workbench.distill import EarlyStopping, FeatureCapture, FeatureMSE, Trainer

from .models import layer_alias, layer_channels
from .normalise import Normalisation
from .patches import Patch, PatchSampler, predict_volume

GAMMA_CRITERIA = "2%/2mm 10%"


# -- presets ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingBudget:
    patch_size: int
    patches_per_epoch: int
    batch_size: int
    epochs: int
    student_epochs: int
    patience: int


BUDGETS: dict[str, TrainingBudget] = {
    "tiny": TrainingBudget(16, 8, 4, 2, 2, 0),
    "demo": TrainingBudget(48, 24, 2, 16, 20, 0),
    "paper": TrainingBudget(64, 800, 4, 200, 200, 30),
}


def budget_of(config: Any) -> TrainingBudget:
    b = BUDGETS[config.preset]
    return TrainingBudget(
        patch_size=config.patch_size or b.patch_size,
        patches_per_epoch=config.patches_per_epoch or b.patches_per_epoch,
        batch_size=config.batch_size or b.batch_size,
        epochs=config.epochs or b.epochs,
        student_epochs=getattr(config, "student_epochs", 0) or b.student_epochs,
        patience=config.patience or b.patience,
    )


# -- cases in memory ----------------------------------------------------------------------------
@dataclass
class CaseArrays:
    id: str
    split: str
    inputs: np.ndarray  # (2, Z, Y, X) normalised CT, dose in water
    target: np.ndarray  # (Z, Y, X) normalised reference dose
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ct_hu: np.ndarray | None = None
    dose_water_gy: np.ndarray | None = None
    reference_gy: np.ndarray | None = None
    structures: dict[str, np.ndarray] = field(default_factory=dict)
    volume: Any = None  # the CT Volume read from DICOM (for RTDOSE export)


def case_arrays(case_id: str, split: str, ct_hu: np.ndarray, dose_water_gy: np.ndarray, reference_gy: np.ndarray,
                spacing_mm: Sequence[float], norm: Normalisation, **extra: Any) -> CaseArrays:
    return CaseArrays(case_id, split, norm.inputs(ct_hu, dose_water_gy), norm.dose(reference_gy),
                      tuple(float(s) for s in spacing_mm), ct_hu=np.asarray(ct_hu, np.float32),
                      dose_water_gy=np.asarray(dose_water_gy, np.float32),
                      reference_gy=np.asarray(reference_gy, np.float32), **extra)


# -- distributed ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun describes (``WORLD_SIZE``/``RANK``); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def wrap_ddp(model: nn.Module, dist_info: Dist, device: torch.device) -> nn.Module:
    if not dist_info.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    model.to(device)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(getattr(model, "module"), nn.Module) else model


def train_device(ctx: RunContext) -> torch.device:
    dev = torch.device(str(ctx.device))
    if dev.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


# -- phases: metrics and checkpoints of several trainings in one run --------------------------------
class PhaseContext(RunContext):
    """A view of the run's context for one training phase: metric keys get a prefix
    (``teacher/``, ``student/``, ``student_only/``), steps an offset (so the host's
    "drop metrics after the checkpoint step" on resume spares earlier phases), and a
    checkpoint is handed back on resume only to the phase that wrote it."""

    def __init__(self, ctx: RunContext, phase: str, step_offset: int,
                 curves: dict[str, list[tuple[int, float]]] | None = None):
        self._ctx, self.phase, self.offset = ctx, phase, int(step_offset)
        self.curves = curves  # filled with (step, value) of the loss and val metrics, for the report
        self.run_id, self.seed, self.run_dir = ctx.run_id, ctx.seed, ctx.run_dir
        self.home, self.device = ctx.home, ctx.device

    def metric(self, key: str, value: float, step: int) -> None:
        self._ctx.metric(f"{self.phase}/{key}", value, step + self.offset)
        if self.curves is not None and key in ("train_loss", "val_loss", "val_gamma_2_2"):
            self.curves.setdefault(f"{self.phase}/{key}", []).append((step + self.offset, float(value)))

    def log(self, message: str, level: str = "info") -> None:
        self._ctx.log(f"{self.phase}: {message}", level)

    def artifact(self, kind: str, path: str | Path, **meta: Any) -> Path:
        return self._ctx.artifact(kind, path, **meta)

    def evaluation(self, subject: str, metric: str, value: float, criteria: str = "", case: str = "") -> None:
        self._ctx.evaluation(subject, metric, value, criteria, case)

    def save_checkpoint(self, tensors: dict[str, Any], state: dict[str, Any], step: int) -> Path:
        return self._ctx.save_checkpoint(tensors, {**state, "vmat_phase": self.phase}, step + self.offset)

    def load_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        loaded = self._ctx.load_checkpoint()
        if not loaded or loaded[1].get("vmat_phase") != self.phase:
            return None
        state = {k: v for k, v in loaded[1].items() if k != "vmat_phase"}
        return loaded[0], state

    @property
    def cancelled(self) -> bool:
        return self._ctx.cancelled

    def profile(self, model: Any, example_input: Any, **options: Any) -> dict[str, Any]:
        return self._ctx.profile(model, example_input, **options)

    def export(self, model: Any, example_input: Any, path: str | Path, format: str, **options: Any) -> dict[str, Any]:  # noqa: A002
        return self._ctx.export(model, example_input, path, format, **options)

    def component(self, kind: str, key: str) -> Any:
        return self._ctx.component(kind, key)


# -- teacher outputs and features, once per case ------------------------------------------------------
@dataclass
class TeacherTargets:
    output: np.ndarray  # (Z', Y', X') normalised dose on the padded grid
    features: dict[str, np.ndarray]  # name -> (C, Z'/s, Y'/s, X'/s) float16


def teacher_targets(teacher: nn.Module, inputs: np.ndarray, layers: Sequence[str], multiple: int) -> TeacherTargets:
    """The teacher's full-volume output and the named layers' features (padded grid)."""
    from .patches import _pad_to

    x, _ = _pad_to(torch.as_tensor(inputs).float().unsqueeze(0), multiple)
    names = [layer_alias(teacher, n) for n in layers]
    with torch.no_grad(), FeatureCapture(teacher, names, detach=True) as feats:
        out = teacher(x)
    return TeacherTargets(out[0, 0].numpy().astype(np.float32),
                          {n: feats[a][0].numpy().astype(np.float16) for n, a in zip(layers, names)})


class TeacherCache:
    """Teacher targets per case, on disk (npz under ``folder``, written atomically) and in memory."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.memory: dict[str, TeacherTargets] = {}

    def get(self, case: CaseArrays, compute: Callable[[], TeacherTargets]) -> TeacherTargets:
        if case.id in self.memory:
            return self.memory[case.id]
        path = self.folder / f"{case.id}.npz" if self.folder is not None else None
        targets = None
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    targets = TeacherTargets(z["output"], {k[5:]: z[k] for k in z.files if k.startswith("feat_")})
            except (OSError, ValueError, KeyError):
                targets = None  # a damaged cache entry is recomputed
        if targets is None:
            targets = compute()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
                np.savez(tmp, output=targets.output, **{f"feat_{k}": v for k, v in targets.features.items()})
                os.replace(tmp, path)
        self.memory[case.id] = targets
        return targets


# -- the student with its feature adapters -----------------------------------------------------------
class StudentWithAdapters(nn.Module):
    """The student plus one `FeatureMSE` (1x1x1 adapter when widths differ) per feature pair.

    ``forward(x, teacher_features)`` returns ``(dose, {pair: feature loss})``; the adapters
    live in this module so DistributedDataParallel averages their gradients too. Export
    ``.student`` alone.
    """

    def __init__(self, student: nn.Module, pairs: Sequence[tuple[str, str]], teacher: nn.Module | None,
                 scales: dict[str, float] | None = None):
        super().__init__()
        self.student = student
        self.pairs = [(t, s) for t, s in pairs]
        self.losses = nn.ModuleDict()
        for t, s in self.pairs:
            assert teacher is not None
            self.losses[t] = FeatureMSE(layer_channels(student, s), layer_channels(teacher, t), spatial_dims=3,
                                        resize=True)
        self.scales = dict(scales or {})
        self._capture = FeatureCapture(student, [layer_alias(student, s) for _, s in self.pairs]).register() \
            if self.pairs else None

    def forward(self, x: torch.Tensor, teacher_features: dict[str, torch.Tensor] | None = None):
        out = self.student(x)
        parts: dict[str, torch.Tensor] = {}
        if self._capture is not None and teacher_features is not None:
            for t, s in self.pairs:
                feat = self._capture[layer_alias(self.student, s)]
                target = teacher_features[t].to(feat.dtype)
                parts[t] = self.losses[t](feat, target) / self.scales.get(t, 1.0)
        return out, parts


def parse_layer_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        t, _, s = item.partition("=")
        pairs.append((t.strip(), (s or t).strip()))
    return pairs


def check_layer_pairs(pairs: Sequence[tuple[str, str]], teacher: nn.Module, student: nn.Module) -> None:
    for t, s in pairs:
        for who, model, name in (("teacher", teacher, t), ("student", student, s)):
            if layer_alias(model, name) not in dict(model.named_modules()):
                raise ConfigError(f"the {who} ({type(model).__name__}) has no layer {name!r}", key="feature_layers")


# -- batches ---------------------------------------------------------------------------------------------
class PatchBatches:
    """One epoch of patch batches for this rank (a length, for in-epoch progress)."""

    def __init__(self, cases: Sequence[CaseArrays], sampler: PatchSampler, n_patches: int, batch_size: int,
                 rng: np.random.Generator, teacher: Sequence[TeacherTargets] | None = None,
                 feature_strides: dict[str, int] | None = None):
        self.cases, self.batch_size = cases, batch_size
        self.patches = sampler.sample(n_patches, rng)
        self.teacher, self.strides = teacher, dict(feature_strides or {})

    def __len__(self) -> int:
        return -(-len(self.patches) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for b in range(len(self)):
            chunk = self.patches[b * self.batch_size:(b + 1) * self.batch_size]
            yield self._batch(chunk)

    def _crop(self, arr: np.ndarray, p: Patch, stride: int = 1) -> np.ndarray:
        sl = p.slices(stride)
        return arr[(Ellipsis,) + sl]

    def _batch(self, chunk: Sequence[Patch]) -> dict[str, Any]:
        # patches of one batch share a size unless volumes are smaller than the patch: crop to the common minimum
        size = tuple(min(p.size[a] for p in chunk) for a in range(3))
        chunk = [Patch(p.case, p.corner, size) for p in chunk]  # type: ignore[arg-type]
        x = np.stack([self._crop(self.cases[p.case].inputs, p) for p in chunk])
        y = np.stack([self._crop(self.cases[p.case].target, p) for p in chunk])[:, None]
        batch: dict[str, Any] = {"x": torch.from_numpy(np.ascontiguousarray(x)),
                                 "y": torch.from_numpy(np.ascontiguousarray(y))}
        if self.teacher is not None:
            t = np.stack([self._crop(self.teacher[p.case].output, p) for p in chunk])[:, None]
            batch["t"] = torch.from_numpy(np.ascontiguousarray(t))
            feats = {}
            for name, stride in self.strides.items():
                f = np.stack([self._crop(self.teacher[p.case].features[name], p, stride) for p in chunk])
                feats[name] = torch.from_numpy(np.ascontiguousarray(f.astype(np.float32)))
            batch["f"] = feats
        return batch


# -- validation ---------------------------------------------------------------------------------------------
def score_case(model: nn.Module, case: CaseArrays, norm: Normalisation, multiple: int, device: torch.device,
               window: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Full-volume prediction (Gy) of one case and its val metrics (gamma 2%/2mm, L1)."""
    from .gamma import gamma

    pred_norm = predict_volume(model, case.inputs, multiple=multiple, window=window, device=device)
    loss = float(np.abs(pred_norm - case.target).mean())
    pred = norm.to_gy(pred_norm)
    ref = norm.to_gy(case.target)
    g = gamma(ref, pred, spacing=case.spacing_mm, dd=2.0, dta=2.0, cutoff=10.0, prescription=norm.dose_scale_gy,
              max_gamma=1.01, interp_fraction=5, device=device if device.type == "cuda" else "cpu")
    return pred, {"gamma_2_2": float(g.pass_rate), "loss": loss}


def make_validate(cases: Sequence[CaseArrays], norm: Normalisation, multiple: int, device: torch.device,
                  pick: Callable[[nn.Module], nn.Module], window: int | None = None, every: int = 1,
                  epochs: int = 1):
    """Mean val metrics over ``cases``; computed every ``every`` epochs (and on the last one),
    in between the last values are repeated (so they count towards early-stopping patience)."""
    state = {"epoch": -1, "last": None}

    def validate(model: nn.Module) -> dict[str, float]:
        state["epoch"] += 1
        e = state["epoch"]
        if state["last"] is not None and (e + 1) % every != 0 and e + 1 < epochs:
            return dict(state["last"])
        net = pick(model)
        scores = [score_case(net, c, norm, multiple, device, window)[1] for c in cases]
        state["last"] = {k: float(np.mean([s[k] for s in scores])) for k in ("gamma_2_2", "loss")}
        return dict(state["last"])

    return validate


# -- one training ----------------------------------------------------------------------------------------------
@dataclass
class FitSettings:
    epochs: int
    patches_per_epoch: int
    batch_size: int
    patch_size: int
    sampler: str
    lr: float
    weight_decay: float
    early_stop_metric: str
    patience: int
    amp: bool
    seed: int
    align: int
    val_every: int = 1
    alpha: float = 0.0
    beta: float = 0.0


def fit(model: nn.Module, train: Sequence[CaseArrays], val: Sequence[CaseArrays], norm: Normalisation,
        settings: FitSettings, ctx: RunContext, *, phase: str, step_offset: int, dist_info: Dist,
        device: torch.device, multiple: int, teacher: Sequence[TeacherTargets] | None = None,
        feature_strides: dict[str, int] | None = None, progress: Callable[[Progress], Progress] | None = None,
        curves: dict[str, list[tuple[int, float]]] | None = None) -> Iterator[Progress]:
    """Train ``model`` (a dose network, or a `StudentWithAdapters`) in place; returns the
    trainer's summary. ``teacher``: per-train-case targets for the KD terms."""
    pctx = PhaseContext(ctx, phase, step_offset, curves)
    model.to(device)
    net = wrap_ddp(model, dist_info, device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    sampler = PatchSampler([c.target for c in train], settings.patch_size, settings.sampler, align=settings.align)
    per_rank = max(settings.batch_size, math.ceil(settings.patches_per_epoch / dist_info.world))
    kd = isinstance(model, StudentWithAdapters)
    alpha, beta = settings.alpha, settings.beta

    def batches(epoch: int) -> PatchBatches:
        rng = np.random.default_rng([settings.seed, epoch, dist_info.rank, zlib.crc32(phase.encode())])
        return PatchBatches(train, sampler, per_rank, settings.batch_size, rng,
                            teacher if kd and (alpha > 0 or beta > 0) else None, feature_strides)

    def loss_fn(m: nn.Module, batch: dict[str, Any]):
        if kd:
            out, feats = m(batch["x"], batch.get("f") if beta > 0 else None)
        else:
            out, feats = m(batch["x"]), {}
        gt = F.l1_loss(out.float(), batch["y"])
        total, parts = gt, {"ground_truth": gt.detach()}
        if kd and alpha > 0:
            t = F.l1_loss(out.float(), batch["t"])
            total = total + alpha * t
            parts["teacher"] = t.detach()
        if kd and beta > 0 and feats:
            f = sum(v.float() for v in feats.values()) / len(feats)
            total = total + beta * f
            parts["features"] = f.detach()
        return total, parts

    inner = (lambda m: unwrap(m).student) if kd else unwrap  # noqa: E731
    validate = make_validate(val, norm, multiple, device, inner, every=settings.val_every,
                             epochs=settings.epochs) if val else None
    metric = settings.early_stop_metric
    stopping = None
    if validate is not None:
        stopping = EarlyStopping(metric, "max" if metric.endswith("gamma_2_2") else "min",
                                 patience=settings.patience if settings.patience > 0 else 10**9)
    elif settings.early_stop_metric:
        pctx.warn("no val cases: training without validation or early stopping")
    trainer = Trainer(net, opt, pctx, epochs=settings.epochs, train_batches=batches, loss_fn=loss_fn,
                      validate=validate, scheduler={"kind": "cosine", "eta_min": settings.lr * 0.05}, grad_clip=1.0,
                      amp="auto" if settings.amp else "off", early_stopping=stopping, device=device, phase=phase)
    gen = trainer.fit()
    try:
        while True:
            item = next(gen)
            yield progress(item) if progress is not None else item
    except StopIteration as stop:
        return stop.value
