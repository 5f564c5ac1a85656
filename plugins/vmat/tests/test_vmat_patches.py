"""Patch sampling strategies and full-volume inference by blended sliding windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench_vmat.compute.models import build_model, teacher_spec
from workbench_vmat.compute.patches import PatchSampler, patch_shape, predict_volume
from workbench_vmat.compute.tiny_cohort import tiny_case


def _refs(n=3, shape=(24, 24, 24)):
    return [tiny_case(shape, (4.0, 4.0, 4.0), seed=i)[2] for i in range(n)]


def _centre_doses(refs, patches):
    out = []
    for p in patches:
        c = tuple(k + s // 2 for k, s in zip(p.corner, p.size))
        out.append(refs[p.case][c] / refs[p.case].max())
    return np.array(out)


def _centre_gradients(refs, patches):
    grads = [np.sqrt(sum(g * g for g in np.gradient(r))) for r in refs]
    out = []
    for p in patches:
        c = tuple(k + s // 2 for k, s in zip(p.corner, p.size))
        out.append(grads[p.case][c])
    return np.array(out)


def test_random_patches_lie_inside_and_are_aligned():
    refs = _refs()
    sampler = PatchSampler(refs, 8, "random", align=4)
    for p in sampler.sample(200, np.random.default_rng(0)):
        assert all(c % 4 == 0 for c in p.corner)
        assert all(0 <= c and c + s <= n for c, s, n in zip(p.corner, p.size, refs[p.case].shape))
        assert p.size == (8, 8, 8)


def test_dose_weighted_sampling_prefers_the_high_dose_region():
    refs = _refs()
    rng = np.random.default_rng(1)
    rand = _centre_doses(refs, PatchSampler(refs, 8, "random").sample(600, rng))
    dose = _centre_doses(refs, PatchSampler(refs, 8, "dose-weighted").sample(600, rng))
    assert (dose > 0.8).mean() > 2 * (rand > 0.8).mean()


def test_gradient_weighted_sampling_prefers_the_penumbra():
    refs = _refs()
    rng = np.random.default_rng(2)
    rand = _centre_gradients(refs, PatchSampler(refs, 8, "random").sample(600, rng))
    grad = _centre_gradients(refs, PatchSampler(refs, 8, "gradient-weighted").sample(600, rng))
    assert np.median(grad) > 1.5 * np.median(rand)


def test_case_balanced_sampling_draws_every_case_equally_even_when_sizes_differ():
    refs = [tiny_case((16, 16, 16), (4.0,) * 3, seed=0)[2], tiny_case((24, 32, 32), (4.0,) * 3, seed=1)[2]]
    patches = PatchSampler(refs, 8, "case-balanced").sample(100, np.random.default_rng(3))
    counts = np.bincount([p.case for p in patches], minlength=2)
    assert counts.tolist() == [50, 50]
    rand = PatchSampler(refs, 8, "random").sample(400, np.random.default_rng(3))
    assert np.bincount([p.case for p in rand])[1] > 250  # the big case dominates random draws


def test_unknown_sampler_and_volumes_smaller_than_a_block_are_errors():
    with pytest.raises(ValueError, match="unknown sampler"):
        PatchSampler(_refs(1), 8, "dpp")
    with pytest.raises(ValueError, match="smaller"):
        patch_shape((3, 16, 16), 8, align=4)
    assert patch_shape((12, 40, 40), 32, align=4) == (12, 32, 32)


def test_sliding_window_with_blending_equals_one_pass_for_a_pointwise_model():
    model = torch.nn.Conv3d(2, 1, 1)
    x = np.random.default_rng(0).random((2, 20, 23, 26)).astype(np.float32)
    full = predict_volume(model, x)
    windowed = predict_volume(model, x, window=8, overlap=0.5)
    assert windowed.shape == (20, 23, 26)
    np.testing.assert_allclose(windowed, full, atol=1e-5)


def test_sliding_window_of_a_unet_is_close_to_one_pass_and_pads_odd_sizes():
    torch.manual_seed(0)
    model = build_model(teacher_spec("tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = np.random.default_rng(1).random((2, 18, 21, 22)).astype(np.float32)
    full = predict_volume(model, x, multiple=model.spec.multiple)
    assert full.shape == (18, 21, 22)
    windowed = predict_volume(model, x, multiple=model.spec.multiple, window=12, overlap=0.5)
    assert np.median(np.abs(windowed - full)) < 0.05 * np.abs(full).mean()
