"""3D dose networks: a residual U-Net teacher and compact student families.

Input: ``(N, 2, Z, Y, X)`` = normalised CT and normalised dose in water (see
`normalise`); output ``(N, 1, Z, Y, X)`` = normalised patient dose. With ``residual``
the network predicts a relative correction of the dose in water, ``d_in * (1 + s)``
(``s`` zero at start), so an untrained network already returns the input dose, training
learns the heterogeneity/machine difference as a smooth factor field, and no dose
appears where the input engine put none (regions patches rarely visit cannot drift).

No normalisation layers: a convolution-only network gives the same answer on a patch as
on the same region of the full volume (away from the patch edges), so patch training and
full-volume inference agree, and the cached full-volume teacher features can be cropped
per patch for the feature term.

Named intermediate layers (for forward hooks): ``stem``, ``enc0``..``enc{L-1}``
(``enc{k}`` at 1/2**k resolution), ``bottleneck`` (1/2**(L-1)), ``dec{k}`` (decoder
output at 1/2**k, k = L-2..0), ``head``. The plain ``cnn`` student has ``stem``,
``block0``..``block{n-1}``, ``head``; its ``bottleneck`` alias is its last block and
``dec0`` its last block too, so the default feature pairs exist in every family.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

ARCHITECTURES = ("unet", "cnn")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network (stored as JSON beside its weights)."""

    arch: Literal["unet", "cnn"] = "unet"
    in_channels: int = 2
    base_channels: int = 16
    levels: int = 3
    blocks: int = 1  # residual blocks per level
    residual: bool = True
    max_channels: int = 256
    stem_stride: int = 1  # 2: the network works at half resolution and its output is up-sampled

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelSpec":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model fields {sorted(unknown)}")
        spec = cls(**data)
        spec.check()
        return spec

    def check(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r} (known: {', '.join(ARCHITECTURES)})")
        if not (1 <= self.base_channels <= 512 and 1 <= self.levels <= 6 and 1 <= self.blocks <= 8):
            raise ValueError(f"model sizes out of range: {self}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.in_channels != 2:
            raise ValueError(f"in_channels must be 2 (CT, dose in water), got {self.in_channels}")

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (down-sampling steps)."""
        return self.stem_stride * (2 ** (self.levels - 1) if self.arch == "unet" else 1)

    def widths(self) -> list[int]:
        return [min(self.base_channels * 2 ** k, self.max_channels) for k in range(self.levels)]


class ResBlock(nn.Module):
    """Two 3x3x3 convolutions with a skip connection (pre-activation style)."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.conv2.weight)  # starts as identity: deep stacks train without normalisation
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


def _stem(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    if stride == 1:
        return nn.Sequential(nn.Conv3d(in_channels, channels, 3, padding=1), nn.LeakyReLU(0.1))
    # half resolution from the start: the dose correction is smooth at the voxel scale, and
    # 8x fewer voxels is what makes a CPU student fast (thin 3D convolutions are memory-bound)
    return nn.Sequential(nn.Conv3d(in_channels, channels, stride, stride=stride), nn.LeakyReLU(0.1),
                         nn.Conv3d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1))


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return x
    return nn.functional.interpolate(x, scale_factor=float(factor), mode="trilinear", align_corners=False)


def _head(channels: int, residual: bool) -> nn.Conv3d:
    head = nn.Conv3d(channels, 1, 1)
    if residual:  # start at "output = dose in water"
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    return head


def _combine(x: torch.Tensor, out: torch.Tensor, residual: bool) -> torch.Tensor:
    if not residual:
        return out
    return x[:, 1:2] * (1.0 + out)


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])


class UNet3D(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        spec.check()
        self.spec = spec
        w = spec.widths()
        self.stem = _stem(spec.in_channels, w[0], spec.stem_stride)
        for k in range(spec.levels - 1):
            setattr(self, f"enc{k}", _stage(w[k], spec.blocks))
            setattr(self, f"down{k}", nn.Conv3d(w[k], w[k + 1], 2, stride=2))
        self.bottleneck = _stage(w[-1], spec.blocks + 1)
        for k in reversed(range(spec.levels - 1)):
            setattr(self, f"up{k}", nn.ConvTranspose3d(w[k + 1], w[k], 2, stride=2))
            setattr(self, f"merge{k}", nn.Sequential(nn.Conv3d(2 * w[k], w[k], 1), nn.LeakyReLU(0.1)))
            setattr(self, f"dec{k}", _stage(w[k], spec.blocks))
        self.head = _head(w[0], spec.residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.spec.levels
        h = self.stem(x)
        skips = []
        for k in range(levels - 1):
            h = getattr(self, f"enc{k}")(h)
            skips.append(h)
            h = getattr(self, f"down{k}")(h)
        h = self.bottleneck(h)
        for k in reversed(range(levels - 1)):
            h = getattr(self, f"up{k}")(h)
            h = getattr(self, f"merge{k}")(torch.cat([h, skips[k]], dim=1))
            h = getattr(self, f"dec{k}")(h)
        return _combine(x, _upsample(self.head(h), self.spec.stem_stride), self.spec.residual)


class PlainCNN3D(nn.Module):
    """A full-resolution stack of dilated residual blocks (no down-sampling)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        spec.check()
        self.spec = spec
        c = spec.base_channels
        self.stem = _stem(spec.in_channels, c, spec.stem_stride)
        n = max(2, spec.levels)
        for k in range(n):
            setattr(self, f"block{k}", ResBlock(c, dilation=2 ** (k % 3)))
        self.n_blocks = n
        self.head = _head(c, spec.residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for k in range(self.n_blocks):
            h = getattr(self, f"block{k}")(h)
        return _combine(x, _upsample(self.head(h), self.spec.stem_stride), self.spec.residual)


def build_model(spec: ModelSpec) -> nn.Module:
    return UNet3D(spec) if spec.arch == "unet" else PlainCNN3D(spec)


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def layer_alias(model: nn.Module, name: str) -> str:
    """The real module name of a feature layer (``bottleneck``/``dec0`` on the plain CNN
    are its last block)."""
    if isinstance(model, PlainCNN3D) and name in ("bottleneck", "dec0"):
        return f"block{model.n_blocks - 1}"
    return name


def layer_channels(model: nn.Module, name: str) -> int:
    """Channels of a named layer's output (by a dry run on a tiny input)."""
    name = layer_alias(model, name)
    modules = dict(model.named_modules())
    if name not in modules:
        raise KeyError(f"{type(model).__name__} has no layer {name!r}")
    spec: ModelSpec = model.spec  # type: ignore[assignment]
    if isinstance(model, UNet3D):
        w = spec.widths()
        if name == "stem":
            return w[0]
        if name == "bottleneck":
            return w[-1]
        if name[:3] in ("enc", "dec") and name[3:].isdigit():
            return w[int(name[3:])]
        if name == "head":
            return 1
    if isinstance(model, PlainCNN3D):
        return 1 if name == "head" else spec.base_channels
    raise KeyError(f"no channel count known for layer {name!r}")


def layer_stride(model: nn.Module, name: str) -> int:
    """Down-sampling factor of a named layer's output relative to the input."""
    name = layer_alias(model, name)
    s = model.spec.stem_stride  # type: ignore[union-attr]
    if isinstance(model, UNet3D):
        if name == "bottleneck":
            return s * 2 ** (model.spec.levels - 1)
        if name[:3] in ("enc", "dec") and name[3:].isdigit():
            return s * 2 ** int(name[3:])
    return 1 if name == "head" else s


# -- presets ---------------------------------------------------------------------------------
#: teacher networks per preset (the paper preset has >= 10 M parameters)
TEACHER_PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec("unet", base_channels=8, levels=2, blocks=1),
    # the demo teacher works at half resolution too (it must train in minutes on 2 CPU cores)
    "demo": ModelSpec("unet", base_channels=16, levels=3, blocks=1, stem_stride=2),
    "paper": ModelSpec("unet", base_channels=32, levels=4, blocks=2),
}

#: student families per preset: (arch, base channels, levels, blocks, stem stride)
STUDENT_PRESETS: dict[str, dict[str, tuple[str, int, int, int, int]]] = {
    "tiny": {"unet-s": ("unet", 2, 2, 1, 2), "unet-xs": ("unet", 1, 2, 1, 2), "cnn": ("cnn", 2, 2, 1, 2)},
    "demo": {"unet-s": ("unet", 4, 3, 1, 2), "unet-xs": ("unet", 3, 2, 1, 2), "cnn": ("cnn", 6, 3, 1, 2)},
    "paper": {"unet-s": ("unet", 10, 4, 1, 2), "unet-xs": ("unet", 8, 3, 1, 2), "cnn": ("cnn", 16, 4, 1, 2)},
}


def teacher_spec(preset: str, base_channels: int = 0, levels: int = 0, residual: bool = True) -> ModelSpec:
    p = TEACHER_PRESETS[preset]
    return ModelSpec(p.arch, 2, base_channels or p.base_channels, levels or p.levels, p.blocks, residual,
                     stem_stride=p.stem_stride)


def student_spec(preset: str, family: str, channels: int = 0, residual: bool = True) -> ModelSpec:
    if family not in STUDENT_PRESETS[preset]:
        raise ValueError(f"unknown student family {family!r} (known: {', '.join(STUDENT_PRESETS[preset])})")
    arch, base, levels, blocks, stride = STUDENT_PRESETS[preset][family]
    return ModelSpec(arch, 2, channels or base, levels, blocks, residual, stem_stride=stride)  # type: ignore[arg-type]
