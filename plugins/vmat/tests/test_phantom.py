"""The synthetic pelvis: deterministic, varied, anatomically ordered, with the structures a plan needs."""
from __future__ import annotations

import numpy as np
import pytest

from workbench_vmat.compute.phantom import (
    HU_MAX,
    STRUCTURE_NAMES,
    TISSUES,
    Anatomy,
    grid_geometry,
    make_phantom,
    mass_density,
    sample_anatomy,
    tissue_classes,
)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(seed=0, case_index=1, spacing_mm=8.0)


def test_deterministic_per_seed_and_case():
    a = make_phantom(3, 2, 8.0)
    b = make_phantom(3, 2, 8.0)
    c = make_phantom(3, 5, 8.0)
    d = make_phantom(4, 2, 8.0)
    assert np.array_equal(a.hu, b.hu)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert not np.array_equal(a.hu, c.hu) and not np.array_equal(a.hu, d.hu)
    assert sample_anatomy(3, 2) == sample_anatomy(3, 2) != sample_anatomy(3, 5)


def test_grid_geometry_centres_the_prostate():
    shape, origin = grid_geometry(4.0)
    assert shape == (40, 90, 90)
    # voxel centres symmetric about 0 in x and y
    assert origin[0] == pytest.approx(-(shape[2] - 1) / 2 * 4.0)
    assert origin[2] == pytest.approx(-(shape[0] - 1) / 2 * 4.0)


def test_structures_and_anatomy(phantom):
    m = phantom.masks
    assert set(STRUCTURE_NAMES) <= set(m)
    for name, mask in m.items():
        assert mask.shape == phantom.shape and mask.dtype == bool
        assert mask.any(), name
    body = m["BODY"]
    for name in STRUCTURE_NAMES:
        assert not (m[name] & ~body).any(), f"{name} sticks out of the body"
    assert (m["Prostate"] & m["CTV"]).sum() == m["Prostate"].sum()  # CTV holds the prostate
    assert (m["CTV"] & ~m["PTV"]).sum() == 0  # PTV holds the CTV
    assert not (m["Prostate"] & m["Rectum"]).any() and not (m["Prostate"] & m["Bladder"]).any()
    # anatomy in the right places: bladder superior-anterior, rectum posterior of the prostate
    _, y, x = phantom.axes_mm()
    zc = lambda k: np.nonzero(m[k])[0].mean()  # noqa: E731
    yc = lambda k: y[np.nonzero(m[k])[1]].mean()  # noqa: E731
    assert zc("Bladder") > zc("Prostate")
    assert yc("Rectum") > yc("Prostate") > yc("Bladder") - 30
    assert x[np.nonzero(m["FemoralHead_L"])[2]].mean() > 50 > -50 > x[np.nonzero(m["FemoralHead_R"])[2]].mean()
    # isocentre inside the PTV's bounding box, close to the prostate
    assert np.linalg.norm(phantom.isocenter_mm) < 25


def test_hu_values_are_tissue_like(phantom):
    hu, m = phantom.hu, phantom.masks
    assert hu.dtype == np.int16 and hu.min() >= -1024 and hu.max() <= HU_MAX
    assert np.median(hu[~m["BODY"]]) <= -990
    assert -60 < np.median(hu[m["Prostate"]]) < 100
    assert np.percentile(hu[m["FemoralHead_L"]], 90) > 150  # bone
    assert np.median(hu[m["BODY"] & ~m["PTV"]]) < 100


def test_prosthesis_is_metal_and_masked():
    a = sample_anatomy(0, 3)
    assert a.prosthesis != "none"  # cases 3, 8, 13, ... carry one
    p = make_phantom(0, 3, 8.0, anatomy=Anatomy(prosthesis="left"))
    assert "Prosthesis" in p.masks
    assert (p.hu[p.masks["Prosthesis"]] == HU_MAX).all()
    assert (tissue_classes(p.hu)[p.masks["Prosthesis"]] == TISSUES["metal"]).all()
    assert mass_density(p.hu)[p.masks["Prosthesis"]].min() > 4.0


def test_rectal_gas_varies():
    gas = [make_phantom(0, i, 8.0).meta["gas_cc"] for i in range(6)]
    assert max(gas) > 3.0 and min(gas) == 0.0


def test_density_and_classes():
    hu = np.array([-1000, -500, -95, 0, 40, 300, 1350, 3071], np.int16)
    rho = mass_density(hu)
    assert rho[0] < 0.01 and 0.9 < rho[2] < 0.97 and rho[3] == pytest.approx(1.0) and rho[-1] > 4
    assert np.all(np.diff(rho) > 0)
    cls = tissue_classes(hu)
    assert list(cls) == [TISSUES[k] for k in ("air", "lung", "adipose", "soft", "soft", "bone", "bone", "metal")]
