"""What a run records about where it ran: host, device, package versions."""
from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ("distillation-workbench", "torch", "torchaudio", "numpy", "pydantic", "safetensors",
            "scikit-learn", "pydicom", "onnx", "onnxruntime")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
