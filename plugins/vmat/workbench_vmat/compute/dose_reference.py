"""The reference ("ground truth") dose: Monte Carlo in the real CT, reported as dose to medium.

Two engines, both with the *clinical* machine model :data:`REFERENCE_MACHINE` and both
calibrated to the input engine's reference condition (1 cGy/MU at 10 cm depth, 10 x 10
cm^2, SAD 100 cm, water):

``monte_carlo`` (the `paper` preset, and any run with a GPU)
    pyRadMC (photon/electron Monte Carlo, Apache-2.0) through its public API. pyRadMC has
    no plan API, so :class:`ArcSource` is a small VMAT source: each history picks a
    control point, a leaf-pair opening (or, for MLC transmission, a closed part inside
    the jaws) with probability MU x area, a gantry angle inside that control point's arc
    segment, a point in the opening, an energy from the Ali-Rogers 6 MV spectrum and a
    start point on a finite focal spot (plus a broad extra-focal head-scatter source).
    pyRadMC's cross sections are water's (its analytic source is water-only), so the
    transport runs in water of electron-density-equivalent mass density; dose to medium
    is then ``D_w / s_w,m`` with the water-to-medium stopping-power ratio of each voxel's
    tissue (:data:`SPR_WATER_TO_MEDIUM`: ~1.11 in cortical bone, 1.36 in titanium).
    It runs in a subprocess (:func:`start_monte_carlo`) whose HOME is a cache folder:
    pyRadMC and Warp keep their tables and compiled kernels under ``~/.cache``.

``pencil`` (the cheaper CPU-demo reference)
    pydosert's ``PencilDepthEngine`` (each pencil's kernel from its own radiological
    depth) on the electron-density map, with the clinical machine (MLC transmission,
    dosimetric leaf gap, finite source, head scatter), arcs sampled twice as finely as
    the input's, and the same dose-to-medium conversion. It has no lateral electron
    transport, so interface effects (rectal gas) are weaker than in Monte Carlo.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .dose_input import REFERENCE_GY_PER_MU, reference_region
from .phantom import TISSUES, mass_density, tissue_classes
from .plan import LEAF_WIDTHS_MM, SAD_MM, VMATPlan, beam_axes, leaf_edges

__all__ = [
    "ArcSource",
    "McJob",
    "REFERENCE_MACHINE",
    "ReferenceMachine",
    "SPR_WATER_TO_MEDIUM",
    "compute_pencil_reference",
    "dose_to_medium",
    "electron_density",
    "fill_from_neighbours",
    "mc_calibration",
    "monte_carlo_dose",
    "pencil_reference_steps",
    "segments",
    "start_monte_carlo",
]

#: water-to-medium collision stopping-power ratios (ICRU-37 formula for pyRadMC's ICRP
#: media at 0.7 MeV; titanium from Z/A = 0.460, I = 233 eV); D_medium = D_water / s
SPR_WATER_TO_MEDIUM = {"air": 1.12, "lung": 1.011, "adipose": 0.980, "soft": 1.011, "bone": 1.114, "metal": 1.36}
#: electron density per gram relative to water
_ZA_REL = {"air": 0.899, "lung": 0.990, "adipose": 1.006, "soft": 0.990, "bone": 0.939, "metal": 0.828}
_SOFT_RHO, _CORTICAL_RHO = 1.07, 1.96


@dataclass(frozen=True)
class ReferenceMachine:
    """The clinical machine both reference engines model (mm at the isocentre plane)."""

    spectrum: str = "varian-6mv"  # Ali-Rogers analytic spectrum
    mlc_transmission: float = 0.015
    dlg_mm: float = 1.6  # rounded leaf ends: each open pair is this much wider
    focal_spot_sigma_mm: float = 0.7
    extra_focal_fraction: float = 0.06
    extra_focal_sigma_mm: float = 14.0
    extra_focal_distance_mm: float = 125.0  # from the target
    collimator_distance_mm: float = 500.0  # MLC plane, from the target
    tpr_20_10: float = 0.67  # for the pencil-beam variant's kernel
    version: int = 1


REFERENCE_MACHINE = ReferenceMachine()


def _bone_fraction(rho: np.ndarray) -> np.ndarray:
    return np.clip((rho - _SOFT_RHO) / (_CORTICAL_RHO - _SOFT_RHO), 0.0, 1.0)


def electron_density(hu: np.ndarray) -> np.ndarray:
    """Electron-density-equivalent water density (g/cm^3) per voxel, from HU."""
    rho = mass_density(hu)
    cls = tissue_classes(hu)
    za = np.ones_like(rho)
    for name, code in TISSUES.items():
        za[cls == code] = _ZA_REL[name]
    bone = cls == TISSUES["bone"]
    f = _bone_fraction(rho[bone])
    za[bone] = _ZA_REL["soft"] + f * (_ZA_REL["bone"] - _ZA_REL["soft"])
    return (rho * za).astype(np.float32)


def dose_to_medium(dose_water: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """Convert dose to (density-scaled) water into dose to medium, voxel by voxel."""
    rho = mass_density(hu)
    cls = tissue_classes(hu)
    s = np.ones_like(rho)
    for name, code in TISSUES.items():
        s[cls == code] = SPR_WATER_TO_MEDIUM[name]
    bone = cls == TISSUES["bone"]
    f = _bone_fraction(rho[bone])
    s[bone] = SPR_WATER_TO_MEDIUM["soft"] + f * (SPR_WATER_TO_MEDIUM["bone"] - SPR_WATER_TO_MEDIUM["soft"])
    return (dose_water / s).astype(np.float32)


# ---------------------------------------------------------------------------------------
# The arc source
# ---------------------------------------------------------------------------------------

def segments(plan: VMATPlan, machine: ReferenceMachine = REFERENCE_MACHINE) -> dict[str, np.ndarray]:
    """Rectangles (at the isocentre plane) the arc source samples, with their weights.

    Per control point and leaf pair inside the Y jaws: the opening (widened by the DLG)
    with weight MU x area, and the closed parts inside the X jaws with weight
    MU x area x transmission. Returns arrays ``cp, u0, u1, v0, v1, weight``.
    """
    e = leaf_edges(plan.leaf_widths)
    cps, u0s, u1s, v0s, v1s, ws = [], [], [], [], [], []
    half = 0.5 * machine.dlg_mm
    for k in range(plan.n_control_points):
        jv0, jv1 = plan.jaws_v[k]
        ju0, ju1 = plan.jaws_u[k]
        if jv1 <= jv0 or ju1 <= ju0 or plan.mu[k] <= 0:
            continue
        v0 = np.clip(e[:-1], jv0, jv1)
        v1 = np.clip(e[1:], jv0, jv1)
        rows = np.nonzero(v1 > v0)[0]
        lo, hi = plan.leaves[k, rows, 0], plan.leaves[k, rows, 1]
        open_ = hi > lo
        lo = np.where(open_, lo - half, lo)
        hi = np.where(open_, hi + half, hi)
        lo_c, hi_c = np.clip(lo, ju0, ju1), np.clip(hi, ju0, ju1)
        for a, b, t in ((lo_c, hi_c, 1.0), (np.full_like(lo_c, ju0), lo_c, machine.mlc_transmission),
                        (hi_c, np.full_like(hi_c, ju1), machine.mlc_transmission)):
            w = plan.mu[k] * (b - a) * (v1[rows] - v0[rows]) * t
            keep = w > 0
            n = int(keep.sum())
            cps.append(np.full(n, k))
            u0s.append(a[keep])
            u1s.append(b[keep])
            v0s.append(v0[rows][keep])
            v1s.append(v1[rows][keep])
            ws.append(w[keep])
    cat = (lambda xs, dt=float: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return {"cp": cat(cps, int), "u0": cat(u0s), "u1": cat(u1s), "v0": cat(v0s), "v1": cat(v1s), "weight": cat(ws)}


def _make_source_class():
    from pyradmc import Primary, Source, ali_rogers_mv

    class _ArcSource(Source):
        """A VMAT arc as a pyRadMC source (positions in cm, patient frame)."""

        #: uniforms per history: segment, energy (2), point in the opening (2), gantry,
        #: focal-spot (2), extra-focal choice
        N_UNIFORMS = 9

        def __init__(self, plan: VMATPlan, machine: ReferenceMachine = REFERENCE_MACHINE):
            self.plan = plan
            self.machine = machine
            self.spectrum = ali_rogers_mv(machine.spectrum)
            self.seg = segments(plan, machine)
            if not len(self.seg["weight"]):
                raise ValueError("the plan has no open aperture")
            self.total_weight = float(self.seg["weight"].sum())  # MU x mm^2
            self._cdf = np.cumsum(self.seg["weight"]) / self.total_weight

        @property
        def max_energy(self) -> float:
            return self.spectrum.max_energy

        def _primaries(self, u: np.ndarray) -> dict[str, np.ndarray]:
            m, p, s = self.machine, self.plan, self.seg
            n = len(u)
            j = np.minimum(np.searchsorted(self._cdf, u[:, 0]), len(self._cdf) - 1)
            energy = self.spectrum.sample_energies(u[:, 1], u[:, 2])
            pu = s["u0"][j] + (s["u1"][j] - s["u0"][j]) * u[:, 3]
            pv = s["v0"][j] + (s["v1"][j] - s["v0"][j]) * u[:, 4]
            cp = s["cp"][j]
            gantry = p.gantry_deg[cp] + (u[:, 5] - 0.5) * p.gantry_span_deg
            b, ua, va = beam_axes(gantry)
            iso = np.asarray(p.isocenter_mm, float)
            target = iso - p.sad_mm * b  # focal point
            # point in the opening, brought back to the collimator plane
            at_iso = iso + pu[:, None] * ua + pv[:, None] * va
            f = m.collimator_distance_mm / p.sad_mm
            coll = target + (at_iso - target) * f
            # finite focal spot, and for a fraction of histories a broad extra-focal source
            # nearer the patient (the flattening filter)
            extra = u[:, 8] < m.extra_focal_fraction
            sigma = np.where(extra, m.extra_focal_sigma_mm, m.focal_spot_sigma_mm)
            r = sigma * np.sqrt(-2.0 * np.log(np.maximum(u[:, 6], 1e-12)))
            phi = 2.0 * np.pi * u[:, 7]
            start = target + np.where(extra, m.extra_focal_distance_mm, 0.0)[:, None] * b
            start = start + (r * np.cos(phi))[:, None] * ua + (r * np.sin(phi))[:, None] * va
            d = coll - start
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            start_cm = start / 10.0
            return {
                "particle_type": np.ones(n, dtype=np.int32),
                "energy": energy.astype(np.float32),
                "x": start_cm[:, 0].astype(np.float32),
                "y": start_cm[:, 1].astype(np.float32),
                "z": start_cm[:, 2].astype(np.float32),
                "ux": d[:, 0].astype(np.float32),
                "uy": d[:, 1].astype(np.float32),
                "uz": d[:, 2].astype(np.float32),
                "weight": np.ones(n, dtype=np.float32),
            }

        def sample_batch(self, seed: int, history_offset: int, n: int) -> dict[str, np.ndarray]:
            # history h always uses draws N*h .. N*h+N-1 of one PCG64 stream: chunk-invariant
            bitgen = np.random.PCG64(seed)
            bitgen.advance(self.N_UNIFORMS * history_offset)
            u = np.random.Generator(bitgen).random((n, self.N_UNIFORMS))
            return self._primaries(u)

        def emit(self, rng_state) -> Primary:  # the reference backend's per-history route
            from pyradmc.rng import uniform

            u = np.array([[uniform(rng_state) for _ in range(self.N_UNIFORMS)]])
            c = self._primaries(u)
            return Primary(float(c["energy"][0]), float(c["x"][0]), float(c["y"][0]), float(c["z"][0]),
                           float(c["ux"][0]), float(c["uy"][0]), float(c["uz"][0]))

    return _ArcSource


def ArcSource(plan: VMATPlan, machine: ReferenceMachine = REFERENCE_MACHINE):  # noqa: N802 (a factory)
    """A pyRadMC ``Source`` delivering ``plan`` (imports pyRadMC on first use)."""
    global _ARC_SOURCE_CLS
    try:
        cls = _ARC_SOURCE_CLS
    except NameError:
        cls = _ARC_SOURCE_CLS = _make_source_class()
    return cls(plan, machine)


def _calibration_plan(machine: ReferenceMachine) -> VMATPlan:
    """10 x 10 cm^2 static field at gantry 0, 1 MU, isocentre at the origin."""
    e = leaf_edges()
    leaves = np.zeros((1, len(LEAF_WIDTHS_MM), 2))
    rows = (e[:-1] >= -50.0) & (e[1:] <= 50.0)
    half = 0.5 * machine.dlg_mm  # the DLG is part of the machine: a nominal 10 cm field opens 10 cm
    leaves[0, rows] = (-50.0 + half, 50.0 - half)
    return VMATPlan(gantry_deg=np.zeros(1), gantry_span_deg=0.0, arc_index=np.zeros(1, int), mu=np.ones(1),
                    leaves=leaves, jaws_v=np.array([[-50.0, 50.0]]), jaws_u=np.array([[-50.0, 50.0]]),
                    isocenter_mm=(0.0, 0.0, 0.0))


# ---------------------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------------------

def fill_from_neighbours(dose: np.ndarray, holes: np.ndarray, sigma_vox: float = 1.0) -> np.ndarray:
    """Replace ``dose`` in ``holes`` by a Gaussian-weighted mean of the voxels around them.

    Used for gas inside the body: pyRadMC deposits an electron's energy below the
    transport cutoff where it stops, which in air (tiny mass, centimetres of range)
    inflates the dose several-fold. By Fano's theorem the electron fluence in a cavity
    equals that of its surroundings, so the cavity's dose to (density-scaled) water is
    taken from its tissue neighbours; the stopping-power ratio then makes it dose to air.
    """
    if not holes.any():
        return dose
    from scipy import ndimage

    valid = (~holes).astype(np.float32)
    out = dose.copy()
    s = sigma_vox
    for _ in range(8):  # widen until every hole has neighbours
        num = ndimage.gaussian_filter(dose * valid, s, mode="nearest")
        den = ndimage.gaussian_filter(valid, s, mode="nearest")
        ok = holes & (den > 1e-3)
        out[ok] = num[ok] / den[ok]
        if ok.sum() == holes.sum():
            break
        s *= 2.0
    return out


def _warp_device(device: str) -> str:
    if device.startswith("cuda"):
        return device if ":" in device else "cuda:0"
    if device == "auto":
        try:
            import warp as wp

            wp.config.quiet = True
            return "cuda:0" if wp.get_cuda_device_count() > 0 else "cpu"
        except Exception:  # noqa: BLE001
            return "cpu"
    return "cpu"


def _run_mc(density_xyz: np.ndarray, origin_cm, spacing_cm, source, n_histories: int, seed: int, device: str,
            progress=None):
    import warp as wp

    wp.config.quiet = True
    from pyradmc import AnalyticCrossSections, VoxelGrid, WarpEngine
    from pyradmc.data.materials import WATER

    density_xyz = np.maximum(np.asarray(density_xyz, np.float64), 1e-4)
    grid = VoxelGrid(shape=tuple(int(n) for n in density_xyz.shape), spacing=tuple(float(s) for s in spacing_cm),
                     density=density_xyz, material=np.full(density_xyz.shape, WATER, np.int32),
                     origin=tuple(float(o) for o in origin_cm))
    xs = AnalyticCrossSections(geometry_densities=grid.max_density_by_material())
    engine = WarpEngine(grid=grid, cross_sections=xs, device=device)
    n_batches = 10
    n_histories = max(n_batches, n_histories - n_histories % n_batches)
    return engine.run(source, n_histories=n_histories, n_batches=n_batches, seed=seed, progress=progress)


def mc_calibration(spacing_mm: tuple[float, float, float], *, histories: int = 5_000_000, device: str = "cpu",
                   machine: ReferenceMachine = REFERENCE_MACHINE, seed: int = 12345) -> dict[str, float]:
    """MeV/g per history in the reference region for the 10 x 10 cm^2 calibration field."""
    dz, dy, dx = spacing_mm
    shape_zyx = (int(round(120 / dz)) | 1, int(round(260 / dy)) | 1, int(round(200 / dx)) | 1)
    iso_idx = tuple((n - 1) / 2 for n in shape_zyx)
    # patient frame: isocentre at the origin, beam along +y (gantry 0), surface 10 cm above
    origin_mm = (-iso_idx[2] * dx, -iso_idx[1] * dy, -iso_idx[0] * dz)  # voxel [0,0,0] centre (x, y, z)
    y = origin_mm[1] + dy * np.arange(shape_zyx[1])
    dens = np.full(shape_zyx, 0.0012, np.float32)
    dens[:, y >= -100.0 - 0.5 * dy, :] = 1.0
    plan = _calibration_plan(machine)
    src = ArcSource(plan, machine)
    corner_cm = tuple((o - 0.5 * s) / 10.0 for o, s in zip(origin_mm, (dx, dy, dz)))
    res = _run_mc(np.transpose(dens, (2, 1, 0)), corner_cm, (dx / 10, dy / 10, dz / 10), src, histories, seed,
                  _warp_device(device))
    dose = np.transpose(res.dose, (2, 1, 0))
    sig = np.transpose(res.dose_sigma, (2, 1, 0))
    region = reference_region(shape_zyx, (dz, dy, dx), iso_idx)  # type: ignore[arg-type]
    d = float(dose[region].mean())
    err = float(np.sqrt((sig[region] ** 2).sum()) / sig[region].size)
    return {"mev_per_g_per_history": d, "relative_error": err / d, "weight_mu_mm2": src.total_weight,
            "histories": int(res.n_histories)}


def monte_carlo_dose(hu: np.ndarray, body: np.ndarray, spacing_mm, origin_mm, plan: VMATPlan, *,
                     histories: int, seed: int = 0, device: str = "cpu", calibration: dict[str, float] | None = None,
                     machine: ReferenceMachine = REFERENCE_MACHINE, progress=None) -> dict[str, Any]:
    """Monte Carlo dose to medium (Gy) on the CT grid, in this process.

    Returns ``{"dose", "sigma", "calibration", "histories", "seconds"}``; ``sigma`` is the
    1-sigma statistical uncertainty in Gy. pyRadMC reads and writes its tables under
    ``~/.cache``: call it with HOME pointing where that should go (or use
    :func:`start_monte_carlo`).
    """
    t0 = time.time()
    dz, dy, dx = (float(s) for s in spacing_mm)
    dev = _warp_device(device)
    if calibration is None:
        calibration = mc_calibration((dz, dy, dx), device=dev, machine=machine)
    src = ArcSource(plan, machine)
    dens = electron_density(hu)
    dens[~body] = np.minimum(dens[~body], 0.0012)
    x0, y0, z0 = origin_mm
    corner_cm = ((x0 - dx / 2) / 10, (y0 - dy / 2) / 10, (z0 - dz / 2) / 10)
    res = _run_mc(np.transpose(dens, (2, 1, 0)), corner_cm, (dx / 10, dy / 10, dz / 10), src, histories, seed, dev,
                  progress)
    per_hist = np.transpose(res.dose, (2, 1, 0)).astype(np.float64)
    sig = np.transpose(res.dose_sigma, (2, 1, 0)).astype(np.float64)
    gy = REFERENCE_GY_PER_MU * src.total_weight / (calibration["mev_per_g_per_history"] * calibration["weight_mu_mm2"])
    dose_w = (per_hist * gy).astype(np.float32)
    gas = body & (dens < 0.2)
    dose_w = fill_from_neighbours(dose_w, gas)
    dose = dose_to_medium(dose_w, hu)
    sigma = dose_to_medium((sig * gy).astype(np.float32), hu)
    dose[~body] = 0.0
    sigma[~body] = 0.0
    return {"dose": dose, "sigma": sigma, "calibration": calibration, "histories": int(res.n_histories),
            "seconds": time.time() - t0, "device": dev}


@dataclass
class McJob:
    """A Monte Carlo dose computing in a child process (see :func:`start_monte_carlo`)."""

    process: subprocess.Popen
    workdir: Path
    started: float

    @property
    def done(self) -> bool:
        return self.process.poll() is not None

    def progress(self) -> float:
        try:
            return float((self.workdir / "progress").read_text() or 0.0)
        except (OSError, ValueError):
            return 0.0

    def status(self) -> str:
        """What the child is doing (starting, calibrating, transporting)."""
        try:
            return (self.workdir / "status").read_text().strip() or "starting"
        except OSError:
            return "starting"

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the child and return :func:`monte_carlo_dose`'s dictionary."""
        rc = self.process.wait(timeout)
        if rc != 0:
            log = (self.workdir / "log.txt").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Monte Carlo process failed (exit {rc}):\n{log}")
        with np.load(self.workdir / "out.npz") as z:
            out = {"dose": z["dose"], "sigma": z["sigma"]}
        out.update(json.loads((self.workdir / "out.json").read_text()))
        return out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_monte_carlo(hu: np.ndarray, body: np.ndarray, spacing_mm, origin_mm, plan: VMATPlan, *, histories: int,
                      seed: int, device: str, home: str | Path, workdir: str | Path | None = None,
                      calibration_file: str | Path | None = None, machine: ReferenceMachine = REFERENCE_MACHINE) -> McJob:
    """Run :func:`monte_carlo_dose` in a child process with ``HOME=home`` (pyRadMC/Warp caches).

    ``calibration_file`` (JSON) caches :func:`mc_calibration` across cases and runs.
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="vmat-mc-"))
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez(workdir / "in.npz", hu=hu, body=body)
    job = {"spacing_mm": list(map(float, spacing_mm)), "origin_mm": list(map(float, origin_mm)),
           "plan": plan.to_dict(), "histories": int(histories), "seed": int(seed), "device": device,
           "calibration_file": str(calibration_file) if calibration_file else None, "machine": asdict(machine)}
    (workdir / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, HOME=str(home))
    home_path = Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "log.txt", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([sys.executable, "-m", "workbench_vmat.compute.dose_reference", str(workdir)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return McJob(proc, workdir, time.time())


def _watch_parent() -> None:
    """Exit when the process that started this one dies (a hard-stopped worker)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _child(workdir: Path) -> None:
    _watch_parent()
    job = json.loads((workdir / "job.json").read_text())
    with np.load(workdir / "in.npz") as z:
        hu, body = z["hu"], z["body"]
    machine = ReferenceMachine(**job["machine"])
    spacing = tuple(job["spacing_mm"])
    dev = _warp_device(job["device"])
    calibration = None
    cal_file = job.get("calibration_file")
    key = json.dumps({"spacing": spacing, "machine": job["machine"], "device": dev.split(":")[0]}, sort_keys=True)
    if cal_file and Path(cal_file).is_file():
        stored = json.loads(Path(cal_file).read_text())
        calibration = stored.get(key)
    if calibration is None:
        (workdir / "status").write_text("calibrating; the first run also builds pyRadMC's tables (minutes)")
        calibration = mc_calibration(spacing, device=dev, machine=machine)  # type: ignore[arg-type]
        if cal_file:
            stored = json.loads(Path(cal_file).read_text()) if Path(cal_file).is_file() else {}
            stored[key] = calibration
            tmp = Path(cal_file).with_suffix(".tmp")
            tmp.write_text(json.dumps(stored, indent=1))
            tmp.replace(cal_file)

    (workdir / "status").write_text(f"{job['histories']:.3g} histories on {dev}")

    def progress(event) -> None:
        (workdir / "progress").write_text(f"{event.histories_done / max(event.histories_total, 1):.4f}")

    out = monte_carlo_dose(hu, body, spacing, tuple(job["origin_mm"]), VMATPlan.from_dict(job["plan"]),
                           histories=job["histories"], seed=job["seed"], device=dev, calibration=calibration,
                           machine=machine, progress=progress)
    np.savez(workdir / "out.npz", dose=out.pop("dose"), sigma=out.pop("sigma"))
    (workdir / "out.json").write_text(json.dumps(out))


# ---------------------------------------------------------------------------------------
# The cheaper CPU reference: heterogeneous pencil beam with the clinical machine
# ---------------------------------------------------------------------------------------

def _pencil_machine(machine: ReferenceMachine):
    from pydosert import MachineConfig

    fwhm = 2.355 * machine.focal_spot_sigma_mm
    return MachineConfig(
        tpr_20_10=machine.tpr_20_10,
        number_of_leaf_pairs=len(LEAF_WIDTHS_MM),
        leaf_widths=[float(w) for w in LEAF_WIDTHS_MM],
        mlc_transmission=machine.mlc_transmission,
        dlg_mm=machine.dlg_mm,
        penumbra_fwhm=[fwhm, fwhm],
        head_scatter_amplitude=[machine.extra_focal_fraction, 1.0],
        head_scatter_sigma=[machine.extra_focal_sigma_mm / 10.0, machine.extra_focal_sigma_mm / 10.0],
        calibration_mu=100.0,
        mean_photon_energy_MeV=1.0,
    )


def _refine_plan(plan: VMATPlan, factor: int) -> VMATPlan:
    """Split every control point into ``factor`` sub-beams across its arc segment."""
    if factor <= 1 or plan.gantry_span_deg <= 0:
        return plan
    offs = ((np.arange(factor) + 0.5) / factor - 0.5) * plan.gantry_span_deg
    rep = lambda a: np.repeat(a, factor, axis=0)  # noqa: E731
    return replace(plan, gantry_deg=(rep(plan.gantry_deg) + np.tile(offs, plan.n_control_points)) % 360.0,
                   gantry_span_deg=plan.gantry_span_deg / factor, arc_index=rep(plan.arc_index),
                   mu=rep(plan.mu) / factor, leaves=rep(plan.leaves), jaws_v=rep(plan.jaws_v), jaws_u=rep(plan.jaws_u))


def _pencil_engine(shape, spacing, device, machine, kernel_size=31):
    import torch
    from pydosert import PencilDepthEngine

    return PencilDepthEngine(_pencil_machine(machine), kernel_size=kernel_size,
                             dose_grid_spacing=tuple(float(s) for s in spacing),
                             dose_grid_shape=tuple(int(n) for n in shape), device=device, dtype=torch.float32,
                             conv_backend="fft")


_PENCIL_CAL: dict[Any, float] = {}


def _pencil_calibration(spacing, device, machine) -> float:
    key = (tuple(spacing), device, machine)
    if key in _PENCIL_CAL:
        return _PENCIL_CAL[key]
    import warnings

    import torch
    from pydosert import BeamSequence

    dz, dy, dx = spacing
    shape = (int(round(160 / dz)) | 1, int(round(300 / dy)) | 1, int(round(200 / dx)) | 1)
    iso_idx = ((shape[0] - 1) / 2, (shape[1] - 1) / 2, (shape[2] - 1) / 2)
    iso_mm = (iso_idx[0] * dz, iso_idx[1] * dy, iso_idx[2] * dx)
    y = np.arange(shape[1]) * dy
    dens = np.full(shape, 0.0012, np.float32)
    dens[:, y >= iso_mm[1] - 100.0 - 0.5 * dy, :] = 1.0
    cal = _calibration_plan(machine)
    seq = BeamSequence.create([0.0], len(LEAF_WIDTHS_MM), (400, 400), iso_mm, sid=SAD_MM, device=device,
                              requires_grad=False)
    import dataclasses

    seq = dataclasses.replace(seq, leaf_positions=torch.as_tensor(cal.leaves, dtype=torch.float32, device=device),
                              jaw_positions=torch.as_tensor(cal.jaws_v, dtype=torch.float32, device=device),
                              mus=torch.ones(1, device=device))
    eng = _pencil_engine(shape, spacing, device, machine)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = eng.compute_dose(seq, torch.as_tensor(dens, device=device))[0].float().cpu().numpy()
    raw = float(d[reference_region(shape, spacing, iso_idx)].mean())
    _PENCIL_CAL[key] = REFERENCE_GY_PER_MU / raw
    return _PENCIL_CAL[key]


def pencil_reference_steps(hu: np.ndarray, body: np.ndarray, spacing_mm, origin_mm, plan: VMATPlan, *,
                           device: str = "cpu", threads: int | None = 1, chunk: int = 24, refine: int = 2,
                           machine: ReferenceMachine = REFERENCE_MACHINE) -> Iterator[float]:
    """The cheaper reference (see the module docstring); yields the fraction done, returns Gy."""
    import dataclasses
    import warnings

    import torch
    from pydosert import BeamSequence

    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    spacing = tuple(float(s) for s in spacing_mm)
    shape = tuple(int(n) for n in hu.shape)
    x0, y0, z0 = origin_mm
    ix, iy, iz = plan.isocenter_mm
    iso_grid = (iz - z0, iy - y0, ix - x0)
    dens = electron_density(hu)
    dens[~body] = 0.0012
    dens_t = torch.as_tensor(dens, device=device)
    cal = _pencil_calibration(spacing, device, machine)
    eng = _pencil_engine(shape, spacing, device, machine)
    fine = _refine_plan(plan, refine)
    total = np.zeros(shape, np.float64)
    starts = list(range(0, fine.n_control_points, chunk))
    for i, s in enumerate(starts):
        idx = np.arange(s, min(s + chunk, fine.n_control_points))
        seq = BeamSequence.create([float(g) for g in fine.gantry_deg[idx]], len(fine.leaf_widths), (400, 400),
                                  iso_grid, sid=fine.sad_mm, device=device, requires_grad=False)
        seq = dataclasses.replace(
            seq, leaf_positions=torch.as_tensor(fine.leaves[idx], dtype=torch.float32, device=device),
            jaw_positions=torch.as_tensor(fine.jaws_v[idx], dtype=torch.float32, device=device),
            mus=torch.as_tensor(fine.mu[idx], dtype=torch.float32, device=device))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            total += eng.compute_dose(seq, dens_t)[0].float().cpu().numpy()
        yield (i + 1) / len(starts)
    dose = dose_to_medium((total * cal).astype(np.float32), hu)
    dose[~body] = 0.0
    np.clip(dose, 0.0, None, out=dose)
    return dose


def compute_pencil_reference(hu, body, spacing_mm, origin_mm, plan, **kw) -> np.ndarray:
    """:func:`pencil_reference_steps` run to the end."""
    gen = pencil_reference_steps(hu, body, spacing_mm, origin_mm, plan, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


if __name__ == "__main__":  # the Monte Carlo child process
    _child(Path(sys.argv[1]))
