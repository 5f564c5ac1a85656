"""Synthetic male pelvis CTs that vary per case, with the structures a prostate plan needs.

Everything is analytic (ellipsoids, capsules, shells) painted on a voxel grid, so a case
is a pure function of ``(seed, case index, spacing)``. Arrays are indexed ``[z, y, x]``
(slice, row, column) in DICOM patient coordinates (LPS, head-first supine): +x is the
patient's left, +y posterior, +z superior. Distances are millimetres.

What varies per case (:class:`Anatomy`): body size and fat layer, femoral-head spacing
and size, bone density (osteopenic to dense), prostate, seminal-vesicle and bladder
size, rectum radius and its gas pocket (none to ~20 cm^3), and on some cases a
titanium hip prosthesis (left, right or both) that replaces femoral head, neck and
proximal shaft.

The CT numbers follow :data:`HU_TO_DENSITY` (a Schneider-style piecewise-linear
calibration) and :func:`tissue_classes` maps HU to the tissue classes the dose engines
use; the metal of a prosthesis saturates at 3071 HU like a 12-bit scanner's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "Anatomy",
    "HU_TO_DENSITY",
    "Phantom",
    "STRUCTURE_NAMES",
    "TISSUES",
    "grid_geometry",
    "make_phantom",
    "mass_density",
    "sample_anatomy",
    "tissue_classes",
]

#: HU -> mass density (g/cm^3) nodes, interpolated linearly; HU >= METAL_HU is titanium.
HU_TO_DENSITY: tuple[tuple[float, ...], tuple[float, ...]] = (
    (-1024.0, -1000.0, -100.0, 0.0, 100.0, 1600.0, 2900.0),
    (0.0012, 0.0012, 0.93, 1.00, 1.07, 1.96, 2.60),
)
METAL_HU = 2950.0
TITANIUM_DENSITY = 4.43  # Ti-6Al-4V, g/cm^3
HU_MAX = 3071  # 12-bit CT ceiling; metal saturates here

#: tissue class codes returned by :func:`tissue_classes`
TISSUES = {"air": 0, "lung": 1, "adipose": 2, "soft": 3, "bone": 4, "metal": 5}

#: the structures every case has (plus "Prosthesis" on cases with one)
STRUCTURE_NAMES = (
    "BODY", "PTV", "CTV", "Prostate", "SeminalVesicles", "Bladder", "Rectum",
    "FemoralHead_L", "FemoralHead_R",
)

#: physical extent of the grid, mm: in-plane square side and superior-inferior length
FOV_MM = 360.0
LENGTH_MM = 160.0


@dataclass(frozen=True)
class Anatomy:
    """The per-case parameters (mm, HU, or plain factors); all recorded in the cohort."""

    body_half_width: float = 155.0
    body_half_depth: float = 110.0
    body_offset_y: float = 15.0  # body centre is posterior of the prostate
    fat_thickness: float = 20.0
    hip_half_spacing: float = 95.0  # femoral-head centre distance from the midline
    femoral_head_radius: float = 24.0
    bone_density: float = 1.0  # scales bone HU above soft tissue (0.75 osteopenic .. 1.2 dense)
    prostate_radii: tuple[float, float, float] = (22.0, 17.0, 20.0)  # x, y, z semi-axes
    sv_length: float = 15.0
    bladder_radii: tuple[float, float, float] = (42.0, 32.0, 30.0)
    rectum_radius: float = 15.0
    rectum_distension: float = 0.0  # extra radius where the gas pocket sits
    gas_radius: float = 8.0  # 0: no gas pocket
    gas_length: float = 15.0  # superior-inferior semi-axis of the gas pocket
    gas_z: float = 5.0
    prosthesis: str = "none"  # none | left | right | both

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Phantom:
    """A synthetic CT with its structures, on a regular grid.

    ``hu`` is int16 ``[z, y, x]``; ``masks`` are boolean of the same shape; ``origin_mm``
    is the patient position (x, y, z) of voxel ``[0, 0, 0]``'s centre (DICOM
    ImagePositionPatient of the first slice); ``spacing_mm`` is (dz, dy, dx);
    ``isocenter_mm`` (x, y, z) is the centre of the PTV.
    """

    hu: np.ndarray
    masks: dict[str, np.ndarray]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    isocenter_mm: tuple[float, float, float]
    anatomy: Anatomy
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patient coordinates (z, y, x) of the voxel centres along each axis."""
        nz, ny, nx = self.hu.shape
        dz, dy, dx = self.spacing_mm
        x0, y0, z0 = self.origin_mm
        return (z0 + dz * np.arange(nz), y0 + dy * np.arange(ny), x0 + dx * np.arange(nx))

    def density(self) -> np.ndarray:
        """Mass density (g/cm^3) from the CT numbers, see :func:`mass_density`."""
        return mass_density(self.hu)


def mass_density(hu: np.ndarray) -> np.ndarray:
    """Mass density in g/cm^3 from HU (:data:`HU_TO_DENSITY`; metal above METAL_HU)."""
    h = np.asarray(hu, dtype=np.float32)
    rho = np.interp(h, HU_TO_DENSITY[0], HU_TO_DENSITY[1]).astype(np.float32)
    rho[h >= METAL_HU] = TITANIUM_DENSITY
    return rho


def tissue_classes(hu: np.ndarray) -> np.ndarray:
    """Tissue class per voxel (:data:`TISSUES`) from HU thresholds."""
    h = np.asarray(hu, dtype=np.float32)
    out = np.full(h.shape, TISSUES["soft"], dtype=np.uint8)
    out[h < -900] = TISSUES["air"]
    out[(h >= -900) & (h < -200)] = TISSUES["lung"]
    out[(h >= -200) & (h < -20)] = TISSUES["adipose"]
    out[(h >= 150) & (h < METAL_HU)] = TISSUES["bone"]
    out[h >= METAL_HU] = TISSUES["metal"]
    return out


def grid_geometry(spacing_mm: float) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (nz, ny, nx) and origin (x, y, z of voxel [0,0,0]) of the grid for a spacing.

    The in-plane grid is centred on the prostate (patient x = y = 0), so the dose
    engines' rotation about the isocentre keeps the whole body; z = 0 is the prostate
    centre too.
    """
    n_xy = int(round(FOV_MM / spacing_mm))
    n_z = int(round(LENGTH_MM / spacing_mm))
    half_xy = (n_xy - 1) / 2 * spacing_mm
    half_z = (n_z - 1) / 2 * spacing_mm
    return (n_z, n_xy, n_xy), (-half_xy, -half_xy, -half_z)


def sample_anatomy(seed: int, case_index: int, prosthesis: str | None = None) -> Anatomy:
    """Draw one case's anatomy, deterministic in (seed, case_index).

    Cases 3, 8, 13, ... (``case_index % 5 == 3``) get a titanium hip prosthesis
    (alternating right, left, both) unless ``prosthesis`` says otherwise.
    """
    rng = np.random.default_rng([int(seed), int(case_index), 0x9E1])
    u = rng.uniform
    if prosthesis is None:
        prosthesis = ("right", "left", "both")[(case_index // 5) % 3] if case_index % 5 == 3 else "none"
    gas = u() < 0.7  # most cases have some rectal gas, which distends the rectum
    rect_r = float(u(12.0, 17.0))
    distension = float(u(2.0, 9.0)) if gas else 0.0
    return Anatomy(
        body_half_width=float(u(140.0, 162.0)),
        body_half_depth=float(u(95.0, 120.0)),
        body_offset_y=float(u(8.0, 20.0)),
        fat_thickness=float(u(8.0, 32.0)),
        hip_half_spacing=float(u(86.0, 100.0)),
        femoral_head_radius=float(u(21.0, 26.0)),
        bone_density=float(u(0.75, 1.2)),
        prostate_radii=(float(u(18.0, 26.0)), float(u(14.0, 20.0)), float(u(16.0, 24.0))),
        sv_length=float(u(10.0, 20.0)),
        bladder_radii=(float(u(32.0, 52.0)), float(u(24.0, 40.0)), float(u(20.0, 40.0))),
        rectum_radius=rect_r,
        rectum_distension=distension,
        gas_radius=float(u(0.6, 0.95) * (rect_r + distension - 3.0)) if gas else 0.0,
        gas_length=float(u(10.0, 30.0)) if gas else 0.0,
        gas_z=float(u(-20.0, 20.0)),
        prosthesis=prosthesis,
    )


# -- shape helpers (coordinates broadcast as z[:,None,None], y[None,:,None], x[None,None,:]) --

def _ellipsoid(z, y, x, c, r) -> np.ndarray:
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0


def _capsule_dist(z, y, x, a, b) -> np.ndarray:
    """Distance from each voxel centre to the segment a-b (points as x, y, z)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    ab = b - a
    t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / float(ab @ ab)
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2)


def _dilate_mm(mask: np.ndarray, spacing_zyx: tuple[float, float, float], mm: float) -> np.ndarray:
    """Grow a mask by ``mm`` (Euclidean, anisotropic spacing aware)."""
    if mm <= 0:
        return mask.copy()
    dist = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx)
    return dist <= mm


def make_phantom(seed: int = 0, case_index: int = 0, spacing_mm: float = 4.0,
                 anatomy: Anatomy | None = None, noise_hu: float = 12.0) -> Phantom:
    """Build one synthetic pelvis (CT numbers + structure masks), deterministic in its inputs.

    ``anatomy`` overrides the sampled parameters (see :func:`sample_anatomy`).
    """
    if not 1.0 <= spacing_mm <= 10.0:
        raise ValueError(f"spacing_mm must be within 1..10 mm, got {spacing_mm}")
    a = anatomy or sample_anatomy(seed, case_index)
    shape, origin = grid_geometry(spacing_mm)
    nz, ny, nx = shape
    sp = (spacing_mm,) * 3
    z = (origin[2] + spacing_mm * np.arange(nz))[:, None, None]
    y = (origin[1] + spacing_mm * np.arange(ny))[None, :, None]
    x = (origin[0] + spacing_mm * np.arange(nx))[None, None, :]
    full = np.broadcast_shapes(z.shape, y.shape, x.shape)

    # -- body: a super-ellipse, flatter at the back (the patient lies on the couch) --
    taper = 1.0 + 0.05 * np.clip(z / 80.0, -1.0, 1.0)  # hips widen superiorly
    bw, bd, by = a.body_half_width * taper, a.body_half_depth * taper, a.body_offset_y
    ry = (y - by) / bd
    power = np.where(ry > 0, 3.0, 2.0)
    body_r = np.abs(x / bw) ** 2 + np.abs(ry) ** power
    body = np.broadcast_to(body_r <= 1.0, full).copy()
    inner = (np.abs(x / (bw - a.fat_thickness)) ** 2
             + np.abs((y - by) / (bd - 0.8 * a.fat_thickness)) ** power) <= 1.0
    hu = np.full(full, -1000.0, dtype=np.float32)
    hu[body] = -95.0  # subcutaneous fat
    muscle = body & np.broadcast_to(inner, full)
    hu[muscle] = 45.0
    # pelvic fat around the organs (ischiorectal fossa, perivesical fat)
    pelvic_fat = _ellipsoid(z, y, x, (0.0, 10.0, 0.0), (62.0, 70.0, 400.0)) & muscle
    hu[pelvic_fat] = -85.0

    # -- bones --
    bone_cort = np.zeros(full, bool)
    bone_trab = np.zeros(full, bool)
    s, r_fh = a.hip_half_spacing, a.femoral_head_radius
    fh_y, fh_z = 5.0, 10.0
    heads = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        c = (sign * s, fh_y, fh_z)
        d_head = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
        head = d_head <= r_fh
        heads[side] = head
        troch = (sign * (s + 48.0), fh_y + 8.0, fh_z - 32.0)
        d_neck = _capsule_dist(z, y, x, c, troch)
        d_shaft = _capsule_dist(z, y, x, troch, (sign * (s + 36.0), fh_y + 12.0, -140.0))
        d_troch = np.sqrt((x - troch[0]) ** 2 + (y - troch[1]) ** 2 + (z - troch[2]) ** 2)
        femur = head | (d_neck <= 15.0) | (d_shaft <= 14.0) | (d_troch <= 19.0)
        femur_inner = (d_head <= r_fh - 3.0) | (d_neck <= 11.0) | (d_shaft <= 9.0) | (d_troch <= 15.0)
        # acetabulum: a cup medial-superior of the head
        cup = (d_head > r_fh + 1.5) & (d_head <= r_fh + 9.0) & ((sign * (x - c[0]) < 8.0) | (z - c[2] > 4.0))
        cup &= (z - c[2] > -14.0)
        # pubic ramus, ischium, iliac wing
        d_pubis = _capsule_dist(z, y, x, (sign * 9.0, -72.0, fh_z - 18.0), (sign * (s - 26.0), -24.0, fh_z - 4.0))
        d_isch_inf = _capsule_dist(z, y, x, (sign * 12.0, -66.0, fh_z - 40.0), (sign * 55.0, 42.0, fh_z - 52.0))
        d_isch = _capsule_dist(z, y, x, (sign * 55.0, 42.0, fh_z - 52.0), (sign * (s - 18.0), 26.0, fh_z - 2.0))
        d_ilium = _capsule_dist(z, y, x, (sign * (s - 10.0), 10.0, fh_z + 12.0), (sign * (s + 30.0), 40.0, 200.0))
        pelvis = cup | (d_pubis <= 10.0) | (d_isch_inf <= 9.0) | (d_isch <= 12.0) | (d_ilium <= 13.0)
        pelvis_inner = (d_pubis <= 6.5) | (d_isch_inf <= 5.5) | (d_isch <= 8.0) | (d_ilium <= 8.5)
        bone_cort |= femur | pelvis
        bone_trab |= femur_inner | pelvis_inner
    # sacrum and coccyx: a curved plate behind the rectum
    sac_y = 96.0 - 0.006 * (z - 25.0) ** 2
    sac_half_w = np.clip(20.0 + 0.45 * (z + 30.0), 0.0, 55.0)
    sacrum = (np.abs(y - sac_y) <= 11.0) & (np.abs(x) <= sac_half_w) & (z >= -35.0)
    sacrum_inner = (np.abs(y - sac_y) <= 7.0) & (np.abs(x) <= sac_half_w - 4.0) & (z >= -31.0)
    bone_cort |= np.broadcast_to(sacrum, full)
    bone_trab |= np.broadcast_to(sacrum_inner, full)
    bone_cort &= body
    bone_trab &= bone_cort
    hu[bone_cort] = 45.0 + (1350.0 - 45.0) * a.bone_density
    hu[bone_trab] = 45.0 + (260.0 - 45.0) * a.bone_density

    # -- organs (painted over fat/muscle; none overlaps a bone) --
    pr = a.prostate_radii
    prostate = _ellipsoid(z, y, x, (0.0, 0.0, 0.0), pr)
    sv = np.zeros(full, bool)
    for sign in (1.0, -1.0):
        c = (sign * (8.0 + 0.6 * a.sv_length), pr[1] * 0.55, pr[2] + 4.0)
        sv |= _ellipsoid(z, y, x, c, (a.sv_length, 6.0, 7.5))
    sv &= ~prostate
    br = a.bladder_radii
    bladder = _ellipsoid(z, y, x, (0.0, -10.0, pr[2] + br[2] - 4.0), br) & ~prostate & ~sv
    R = a.rectum_radius
    if a.gas_length > 0:
        R = R + a.rectum_distension * np.exp(-(((z - a.gas_z) / a.gas_length) ** 2))
    rect_y = pr[1] + 2.0 + R + 0.35 * np.clip(z - 25.0, 0.0, None)
    rect_d = np.sqrt(x ** 2 + (y - rect_y) ** 2)
    rectum = (rect_d <= R) & (z >= -75.0) & (z <= 70.0)
    rectum &= ~prostate & ~sv
    lumen = (rect_d <= R - 3.0) & rectum
    hu[prostate] = 42.0
    hu[sv] = 35.0
    hu[bladder] = 8.0
    hu[rectum] = 40.0
    hu[lumen] = -30.0  # stool
    gas = np.zeros(full, bool)
    if a.gas_radius > 0.5 and a.gas_length > 0.5:
        # gas rises anteriorly in a supine patient
        gas_y = rect_y - np.clip(R - 3.0 - a.gas_radius, 0.0, None)
        gas = ((x / a.gas_radius) ** 2 + ((y - gas_y) / a.gas_radius) ** 2
               + ((z - a.gas_z) / a.gas_length) ** 2 <= 1.0) & lumen
        hu[gas] = -1000.0

    # -- prosthesis: titanium head, neck and stem --
    metal = np.zeros(full, bool)
    if a.prosthesis != "none":
        for side, sign in (("L", 1.0), ("R", -1.0)):
            if a.prosthesis not in ("both", {"L": "left", "R": "right"}[side]):
                continue
            c = (sign * s, fh_y, fh_z)
            troch = (sign * (s + 48.0), fh_y + 8.0, fh_z - 32.0)
            metal |= heads[side]
            metal |= _capsule_dist(z, y, x, c, troch) <= 9.0
            metal |= _capsule_dist(z, y, x, troch, (sign * (s + 36.0), fh_y + 12.0, -120.0)) <= 7.0
        metal &= body
        hu[metal] = float(HU_MAX)

    # -- scanner noise, clip to the 12-bit range --
    rng = np.random.default_rng([int(seed), int(case_index), 0xC7])
    noisy = hu + rng.normal(0.0, noise_hu, size=full).astype(np.float32) * (hu > -990)
    noisy[metal] = HU_MAX
    ct = np.clip(np.rint(noisy), -1024, HU_MAX).astype(np.int16)

    # -- structures --
    ctv_sv = sv & _dilate_mm(prostate, sp, 12.0)
    ctv = prostate | ctv_sv
    ptv = _dilate_mm(ctv, sp, 7.0) & body
    masks = {
        "BODY": body,
        "PTV": ptv,
        "CTV": ctv,
        "Prostate": prostate,
        "SeminalVesicles": sv,
        "Bladder": bladder,
        "Rectum": rectum,
        "FemoralHead_L": heads["L"] & body,
        "FemoralHead_R": heads["R"] & body,
    }
    if metal.any():
        masks["Prosthesis"] = metal
    masks = {k: np.ascontiguousarray(v, dtype=bool) for k, v in masks.items()}

    # isocentre: PTV centre of mass, rounded to a millimetre
    zz, yy, xx = np.nonzero(ptv)
    iso = tuple(float(np.round(v)) for v in (
        origin[0] + spacing_mm * xx.mean(), origin[1] + spacing_mm * yy.mean(), origin[2] + spacing_mm * zz.mean()))
    meta = {
        "gas_cc": float(gas.sum() * spacing_mm ** 3 / 1000.0),
        "ptv_cc": float(ptv.sum() * spacing_mm ** 3 / 1000.0),
        "bladder_cc": float(bladder.sum() * spacing_mm ** 3 / 1000.0),
    }
    return Phantom(hu=ct, masks=masks, spacing_mm=sp, origin_mm=origin, isocenter_mm=iso,  # type: ignore[arg-type]
                   anatomy=a, meta=meta)
