"""SEA reductions: PCA / UMAP / identity, pickle-free state round trips, named errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.api import ConfigError, InputError
from workbench_sea.compute.reduction import KINDS, Reduction, load_reduction, make_reduction, save_reduction


def low_rank(n=300, dims=24, rank=4, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dims, rank)))[0].T
    z = rng.normal(size=(n, rank)) * np.array([5.0, 3.0, 2.0, 1.0][:rank])
    return (z @ basis + 1.5 + noise * rng.normal(size=(n, dims))).astype(np.float32)


def clusters(per=60, dims=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, size=(3, dims))
    x = np.concatenate([c + rng.normal(size=(per, dims)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), per)


def roundtrip(red: Reduction) -> Reduction:
    tensors, meta = red.to_state()
    meta = json.loads(json.dumps(meta))  # must survive JSON
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    return Reduction.from_state({k: v.copy() for k, v in tensors.items()}, meta)


def test_pca_reconstructs_low_rank_data_and_explains_variance():
    x = low_rank()
    red = make_reduction("pca", 4, seed=0).fit(x)
    z = red.transform(x)
    assert z.dtype == np.float32 and z.shape == (300, 4) and red.output_dim == 4
    assert red.explained_variance_ratio.sum() > 0.999
    assert np.all(np.diff(red.explained_variance) <= 0)
    np.testing.assert_allclose(red.inverse_transform(z), x, atol=0.06)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)  # centred by the fitted mean
    two = make_reduction("pca", 2, seed=0).fit(x)
    assert np.abs(two.inverse_transform(two.transform(x)) - x).mean() > 0.1  # dropped components cost


def test_pca_state_roundtrip_and_file(tmp_path):
    x = low_rank()
    red = make_reduction("pca", 3, seed=1).fit(x[:200])
    np.testing.assert_array_equal(roundtrip(red).transform(x[200:]), red.transform(x[200:]))
    path = save_reduction(tmp_path / "pca.safetensors", red)
    back = load_reduction(path)
    assert back.kind == "pca" and back.dim == 3 and back.input_dim == 24
    np.testing.assert_array_equal(back.transform(x), red.transform(x))


def test_identity_and_named_errors(tmp_path):
    x = low_rank(n=20, dims=6)
    ident = make_reduction("none", 128, seed=0).fit(x)  # dim is ignored
    assert ident.output_dim == 6
    np.testing.assert_array_equal(roundtrip(ident).transform(x), x)
    assert set(KINDS) == {"pca", "umap", "none"}
    with pytest.raises(ConfigError, match="unknown reduction"):
        make_reduction("tsne", 2, seed=0)
    with pytest.raises(ConfigError, match="positive integer"):
        make_reduction("pca", 0, seed=0)
    with pytest.raises(ConfigError, match="exceeds the embeddings' 6 dimensions"):
        make_reduction("pca", 7, seed=0).fit(x)
    with pytest.raises(ConfigError, match="exceeds the sample size 5"):
        make_reduction("pca", 6, seed=0).fit(x[:5])
    with pytest.raises(ConfigError, match="not fitted"):
        make_reduction("pca", 2, seed=0).transform(x)
    pca = make_reduction("pca", 2, seed=0).fit(x)
    with pytest.raises(ConfigError, match="fitted on 6-d"):
        pca.transform(x[:, :5])
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ConfigError, match="NaN or infinite"):
        pca.transform(bad)
    tensors, meta = pca.to_state()
    with pytest.raises(ConfigError, match="malformed"):
        Reduction.from_state({**tensors, "components": tensors["components"][:1]}, meta)
    with pytest.raises(ConfigError, match="unknown kind"):
        Reduction.from_state(tensors, {**meta, "kind": "pickle"})
    with pytest.raises(ConfigError, match="format version"):
        Reduction.from_state(tensors, {**meta, "version": 99})
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    with pytest.raises(InputError, match="junk.safetensors"):
        load_reduction(junk)
    with pytest.raises(InputError, match="not found"):
        load_reduction(tmp_path / "missing.safetensors")


def test_umap_fit_transform_deterministic_and_roundtrip(tmp_path):
    # One tiny fit (umap-learn's numba JIT dominates the time): layout, determinism, file round trip.
    x, cluster = clusters(per=40)
    train, new = x[::2], x[1::2]
    red = make_reduction("umap", 2, seed=7)
    emb = red.fit_transform(train)
    assert emb.shape == (60, 2) and emb.dtype == np.float32 and red.output_dim == 2
    np.testing.assert_array_equal(red.transform(train), emb)  # training rows map to their layout
    z = red.transform(new)
    assert z.shape == (60, 2) and z.dtype == np.float32 and np.isfinite(z).all()
    np.testing.assert_array_equal(red.transform(new), z)
    np.testing.assert_array_equal(make_reduction("umap", 2, seed=7).fit(train).transform(new), z)
    tensors, meta = red.to_state()
    assert set(tensors) == {"train", "embedding"} and meta["umap"]["n_neighbors"] == 15
    back = load_reduction(save_reduction(tmp_path / "umap.safetensors", red))
    np.testing.assert_array_equal(back.transform(new), z)
    # new points land next to their own cluster in the layout
    centres = np.stack([emb[cluster[::2] == c].mean(axis=0) for c in range(3)])
    nearest = np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == cluster[1::2]).mean() > 0.95
    with pytest.raises(ConfigError, match="at least 3"):
        make_reduction("umap", 1, seed=0).fit(train[:2])


@pytest.mark.slow
def test_umap_transform_equals_umap_learn():
    import umap  # the reference: umap-learn's own transform of the same fitted model

    x, _ = clusters()
    train, new = x[::2], x[1::2]
    red = make_reduction("umap", 2, seed=7)
    emb = red.fit_transform(train)
    ref = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=7, transform_seed=7).fit(train)
    np.testing.assert_array_equal(ref.embedding_, emb)
    # same neighbours, memberships, start and SGD: identical below 4096 training points
    np.testing.assert_allclose(ref.transform(new), red.transform(new), atol=1e-5)
