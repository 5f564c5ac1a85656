"""The network's input dose: a fast pencil-beam dose with the whole patient as water.

Computed with pydosert's ``DoseEngine`` (a PyTorch pencil-beam convolution engine, MIT)
through its public API. pydosert pulls SimpleITK, numba and OpenCV, so it is imported
only inside the functions that need it.

What makes this the *simple* model, on purpose (the reference differs in each):

- geometry: every voxel inside the external contour is water (density 1), air outside;
  the kernel of each depth plane is picked from the central-axis depth;
- machine (:data:`INPUT_MACHINE`): a 6 MV pencil-beam kernel parameterised by
  TPR20/10 alone, ideal MLC (no transmission, leaf ends at their nominal positions,
  no rounded-leaf dosimetric gap), point source, no head scatter, flat fluence;
- arcs: each control point is a static beam at its nominal angle;
- dose reported as dose to water.

Calibration (:func:`calibration_gy_per_mu`): 10 x 10 cm^2 at the isocentre, SAD 100 cm,
10 cm depth in water -> 1 cGy/MU (mean over a 4 x 1.2 x 4 cm^3 region at the isocentre),
the same reference condition the reference engines are calibrated to.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from .plan import LEAF_WIDTHS_MM, SAD_MM, VMATPlan

__all__ = ["INPUT_MACHINE", "InputMachine", "calibration_gy_per_mu", "compute_input_dose", "input_dose_steps",
           "REFERENCE_GY_PER_MU", "reference_region"]

#: the reference condition both engines are calibrated to: Gy per MU
REFERENCE_GY_PER_MU = 0.01


@dataclass(frozen=True)
class InputMachine:
    tpr_20_10: float = 0.68
    kernel_size: int = 31  # pixels of the dose grid, odd
    mlc_transmission: float = 0.0
    water_density: float = 1.0
    air_density: float = 0.0012


INPUT_MACHINE = InputMachine()


def reference_region(shape: tuple[int, int, int], spacing: tuple[float, float, float],
                     iso_index: tuple[float, float, float]) -> tuple[slice, slice, slice]:
    """Voxels of the calibration region: +-20 mm across the beam, +-6 mm in depth, around iso.

    ``iso_index`` is the isocentre's fractional (z, y, x) voxel index; the beam runs along y.
    """
    half = (20.0, 6.0, 20.0)
    out = []
    for ax in range(3):
        lo = int(np.ceil(iso_index[ax] - half[ax] / spacing[ax] - 1e-6))
        hi = int(np.floor(iso_index[ax] + half[ax] / spacing[ax] + 1e-6))
        out.append(slice(max(lo, 0), min(hi, shape[ax] - 1) + 1))
    return tuple(out)  # type: ignore[return-value]


def _torch():
    import torch

    return torch


def _engine(shape, spacing, device: str, machine: InputMachine):
    torch = _torch()
    from pydosert import DoseEngine, MachineConfig

    cfg = MachineConfig(
        tpr_20_10=machine.tpr_20_10,
        number_of_leaf_pairs=len(LEAF_WIDTHS_MM),
        leaf_widths=[float(w) for w in LEAF_WIDTHS_MM],
        mlc_transmission=machine.mlc_transmission,
        calibration_mu=100.0,
        mean_photon_energy_MeV=1.0,
    )
    return DoseEngine(cfg, kernel_size=machine.kernel_size, dose_grid_spacing=tuple(float(s) for s in spacing),
                      dose_grid_shape=tuple(int(n) for n in shape), device=device, dtype=torch.float32,
                      conv_backend="fft")


def _beams(plan: VMATPlan, sel: np.ndarray, iso_mm_grid: tuple[float, float, float], device: str):
    torch = _torch()
    from pydosert import BeamSequence

    n = int(sel.sum()) if sel.dtype == bool else len(sel)
    leaves = torch.as_tensor(plan.leaves[sel], dtype=torch.float32)
    jaws = torch.as_tensor(plan.jaws_v[sel], dtype=torch.float32)
    mus = torch.as_tensor(plan.mu[sel], dtype=torch.float32)
    gantry = [float(g) for g in plan.gantry_deg[sel]]
    seq = BeamSequence.create(gantry, len(plan.leaf_widths), (400, 400), iso_mm_grid, sid=plan.sad_mm,
                              device=device, requires_grad=False)
    seq = replace(seq, leaf_positions=leaves.to(device), jaw_positions=jaws.to(device), mus=mus.to(device))
    assert len(seq.mus) == n
    return seq


def _set_threads(threads: int | None) -> None:
    if threads:
        torch = _torch()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _resolve(device: str) -> str:
    torch = _torch()
    if device in ("auto", ""):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@functools.lru_cache(maxsize=16)
def calibration_gy_per_mu(spacing: tuple[float, float, float], device: str = "cpu",
                          machine: InputMachine = INPUT_MACHINE) -> float:
    """Factor turning the engine's raw dose per MU into Gy per MU at the reference condition."""
    torch = _torch()
    device = _resolve(device)
    dz, dy, dx = spacing
    shape = (int(round(160 / dz)) | 1, int(round(300 / dy)) | 1, int(round(200 / dx)) | 1)
    iso_idx = ((shape[0] - 1) / 2, (shape[1] - 1) / 2, (shape[2] - 1) / 2)
    iso_mm = (iso_idx[0] * dz, iso_idx[1] * dy, iso_idx[2] * dx)
    y = np.arange(shape[1]) * dy
    dens = np.full(shape, machine.air_density, np.float32)
    dens[:, y >= iso_mm[1] - 100.0 - 0.5 * dy, :] = machine.water_density  # surface 10 cm above iso
    from pydosert import BeamSequence

    seq = BeamSequence.create([0.0], len(LEAF_WIDTHS_MM), (400, 400), iso_mm, sid=SAD_MM, open_field_size=100.0,
                              device=device, requires_grad=False)
    seq = replace(seq, mus=torch.ones(1, device=device))
    eng = _engine(shape, spacing, device, machine)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = eng.compute_dose(seq, torch.as_tensor(dens, device=device))[0].float().cpu().numpy()
    region = reference_region(shape, spacing, iso_idx)
    raw = float(d[region].mean())
    if not raw > 0:
        raise RuntimeError("input-engine calibration produced no dose")
    return REFERENCE_GY_PER_MU / raw


def input_dose_steps(body: np.ndarray, spacing_mm: tuple[float, float, float], origin_mm: tuple[float, float, float],
                     plan: VMATPlan, *, device: str = "cpu", threads: int | None = 1, chunk: int = 24,
                     machine: InputMachine = INPUT_MACHINE) -> Iterator[float]:
    """Compute the water dose (Gy) chunk by chunk; yields the fraction done, returns the dose.

    Use as ``dose = yield from input_dose_steps(...)`` or through :func:`compute_input_dose`.
    ``body`` is the external contour ``[z, y, x]``; ``origin_mm`` is (x, y, z) of voxel
    [0,0,0]; the dose comes back on the same grid, zero outside the body.
    """
    torch = _torch()
    _set_threads(threads)
    device = _resolve(device)
    import warnings

    shape = tuple(int(n) for n in body.shape)
    spacing = tuple(float(s) for s in spacing_mm)
    x0, y0, z0 = origin_mm
    ix, iy, iz = plan.isocenter_mm
    iso_grid = (iz - z0, iy - y0, ix - x0)  # pydosert: (h, d, w) mm from voxel [0,0,0]'s centre
    dens = np.where(body, machine.water_density, machine.air_density).astype(np.float32)
    dens_t = torch.as_tensor(dens, device=device)
    cal = calibration_gy_per_mu(spacing, device, machine)  # type: ignore[arg-type]
    eng = _engine(shape, spacing, device, machine)
    total = np.zeros(shape, np.float64)
    n = plan.n_control_points
    starts = list(range(0, n, chunk))
    for i, s in enumerate(starts):
        idx = np.arange(s, min(s + chunk, n))
        seq = _beams(plan, idx, iso_grid, device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CPU autocast notice; rotation clipping is checked by the caller
            d = eng.compute_dose(seq, dens_t)[0].float().cpu().numpy()
        total += d
        yield (i + 1) / len(starts)
    dose = (total * cal).astype(np.float32)
    dose[~body] = 0.0
    np.clip(dose, 0.0, None, out=dose)
    return dose


def compute_input_dose(body, spacing_mm, origin_mm, plan, **kw) -> np.ndarray:
    """:func:`input_dose_steps` run to the end."""
    gen = input_dose_steps(body, spacing_mm, origin_mm, plan, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
