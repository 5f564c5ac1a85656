"""SEA sampling strategies, the exact k-DPP sampler, loudness relevance and per-frame SPL."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import chisquare

from workbench.api import ConfigError
from workbench_sea.compute.audio_io import frame_audio
from workbench_sea.compute.loudness import a_weighting_gain, frame_spl_db
from workbench_sea.compute.sampling import (KDPP, STRATEGIES, coverage, l1_normalise, loudness_relevance,
                                            sample_indices, weighted_without_replacement)


def clustered(n_clusters=8, per=200, big=0, dims=16, seed=0):
    """Clusters of unequal size: cluster 0 holds ``big`` extra points (a dominant class)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(n_clusters, dims))
    sizes = [per + (big if c == 0 else 0) for c in range(n_clusters)]
    x = np.concatenate([c + rng.normal(0, 0.3, size=(s, dims)) for c, s in zip(centres, sizes)])
    cluster = np.repeat(np.arange(n_clusters), sizes)
    return x.astype(np.float32), cluster


def _mean_pairwise(x):
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return d[np.triu_indices(len(x), 1)].mean()


# ----------------------------------------------------------------------------- contract

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_unique_sorted_deterministic(strategy):
    x, cluster = clustered(n_clusters=4, per=60)
    loud = np.random.default_rng(1).normal(60, 10, len(x))
    kw = dict(seed=3, loudness_db=loud, labels=cluster, groups=np.arange(len(x)) // 20)
    a = sample_indices(strategy, x, 25, **kw)
    b = sample_indices(strategy, x, 25, **kw)
    assert a.dtype == np.int64 and len(a) == 25 and len(np.unique(a)) == 25
    assert np.all(np.diff(a) > 0) and a[0] >= 0 and a[-1] < len(x)
    np.testing.assert_array_equal(a, b)
    if strategy != "kmeans":  # kmeans with n=25 of 240 points can legitimately repeat across seeds
        assert not np.array_equal(a, sample_indices(strategy, x, 25, **{**kw, "seed": 4}))
    assert len(sample_indices(strategy, x, 10_000, **kw)) == len(x)  # n > N: everything


def test_named_errors():
    x, cluster = clustered(n_clusters=2, per=10)
    with pytest.raises(ConfigError, match="unknown sampling strategy"):
        sample_indices("fps", x, 3, seed=0)
    for bad in (0, -2, 2.5):
        with pytest.raises(ConfigError, match="positive integer"):
            sample_indices("random", x, bad, seed=0)
    for s in ("spl", "dpp-qd"):
        with pytest.raises(ConfigError, match="needs loudness_db"):
            sample_indices(s, x, 3, seed=0)
    with pytest.raises(ConfigError, match="needs labels"):
        sample_indices("class-balanced", x, 3, seed=0)
    y = x.copy()
    y[3, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN or infinite values \\(1 of 20 rows\\)"):
        sample_indices("dpp", y, 3, seed=0)
    with pytest.raises(ConfigError, match="one value per embedding"):
        sample_indices("spl", x, 3, seed=0, loudness_db=np.zeros(5))
    with pytest.raises(ConfigError, match="2-D"):
        sample_indices("random", x[0], 3, seed=0)
    with pytest.raises(ConfigError, match="epsilon"):
        sample_indices("dpp", x, 3, seed=0, epsilon=-1.0)
    with pytest.raises(ConfigError, match="rank"):  # k-DPP beyond the rank needs the εI part
        KDPP(x[:, :2], epsilon=0.0).sample(5, np.random.default_rng(0))


# ----------------------------------------------------------------------------- exact k-DPP

def _kdpp_probabilities(g, eps, k):
    L = g.astype(np.float64) @ g.T.astype(np.float64) + eps * np.eye(len(g))
    subsets = list(itertools.combinations(range(len(g)), k))
    p = np.array([np.linalg.det(L[np.ix_(s, s)]) for s in subsets])
    return subsets, p / p.sum()


@pytest.mark.parametrize("n_items,dims,k,eps", [(6, 3, 2, 0.05),   # k below the rank
                                                 (6, 2, 4, 0.05),   # k above the rank: εI must supply items
                                                 (7, 3, 3, 0.0)])   # pure low-rank, k == rank
def test_kdpp_subset_frequencies_match_determinants(n_items, dims, k, eps):
    g = np.random.default_rng(n_items * 10 + k).normal(size=(n_items, dims)).astype(np.float32)
    subsets, p = _kdpp_probabilities(g, eps, k)
    sampler, rng, draws = KDPP(g, eps), np.random.default_rng(5), 4000
    counts = dict.fromkeys(subsets, 0)
    for _ in range(draws):
        counts[tuple(sampler.sample(k, rng).tolist())] += 1
    observed = np.array([counts[s] for s in subsets])
    assert observed.sum() == draws  # every draw is a valid k-subset
    assert chisquare(observed, p * draws).pvalue > 1e-3
    assert 0.5 * np.abs(observed / draws - p).sum() < 0.06


def test_kdpp_size_mixture_weights_sum_to_exact_normaliser():
    # Σ_t ε^{k-t} e_t(λ) C(N-t, k-t) must equal e_k of the eigenvalues of G Gᵀ + εI.
    g = np.random.default_rng(2).normal(size=(9, 3))
    eps, k = 0.3, 4
    w = KDPP(g, eps).size_weights(k)
    lam = np.linalg.eigvalsh(g @ g.T + eps * np.eye(9))
    from math import comb
    ek = sum(np.prod(lam[list(s)]) for s in itertools.combinations(range(9), k))
    lam_g = np.clip(np.linalg.eigvalsh(g.T @ g), 0, None)
    terms = [eps ** (k - t) * sum(np.prod(lam_g[list(s)]) for s in itertools.combinations(range(3), t))
             * comb(9 - t, k - t) for t in range(4)]
    assert np.isclose(sum(terms), ek, rtol=1e-9)
    np.testing.assert_allclose(w, np.array(terms) / sum(terms), rtol=1e-6)


def test_dpp_is_more_diverse_than_random_on_imbalanced_clusters():
    # 8 clusters, one of them 10x larger: random sampling mostly hits the big one, a DPP spreads out.
    x, cluster = clustered(n_clusters=8, per=100, big=1900)
    hits = {"random": [], "dpp": []}
    spread = {"random": [], "dpp": []}
    for seed in range(5):
        for s in hits:
            idx = sample_indices(s, x, 16, seed=seed, epsilon=1e-6)
            hits[s].append(len(np.unique(cluster[idx])))
            spread[s].append(_mean_pairwise(x[idx]))
    assert np.mean(hits["dpp"]) >= 7.0 and np.mean(hits["dpp"]) > np.mean(hits["random"]) + 1.5
    assert np.mean(spread["dpp"]) > 1.2 * np.mean(spread["random"])


def test_dpp_uses_l1_normalised_rows():
    # Scaling a row leaves its L1-normalised feature, hence the DPP sample, unchanged.
    x, _ = clustered(n_clusters=3, per=30)
    x = np.abs(x)
    y = x * np.random.default_rng(0).uniform(0.5, 3.0, size=(len(x), 1)).astype(np.float32)
    np.testing.assert_allclose(l1_normalise(x), l1_normalise(y), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(sample_indices("dpp", x, 10, seed=1), sample_indices("dpp", y, 10, seed=1))


def test_dpp_qd_prefers_high_relevance_items():
    # Same features for both; only q differs. k below the rank, so every item comes from the kernel
    # and det(L_S) carries Π q_i²: the louder half should dominate, plain dpp stays near 1/2.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 64)).astype(np.float32)
    loud = rng.normal(50, 8, len(x))
    q = loudness_relevance(loud, None, window=len(x))
    top = q > np.median(q)
    frac = [top[sample_indices("dpp-qd", x, 12, seed=s, loudness_db=loud, window=len(x))].mean() for s in range(8)]
    frac_div = [top[sample_indices("dpp", x, 12, seed=s)].mean() for s in range(8)]
    assert np.mean(frac) > 0.8 and 0.3 < np.mean(frac_div) < 0.7


def test_kdpp_beyond_rank_mixes_in_uniform_items():
    # k > rank: at most rank items can come from F Fᵀ, the εI part adds the rest.
    x, _ = clustered(n_clusters=3, per=100, dims=4)
    sampler = KDPP(l1_normalise(x), 1e-3)
    w = sampler.size_weights(20)
    assert sampler.rank == 4 and len(w) == 5 and np.isclose(w.sum(), 1.0)
    assert len(np.unique(sampler.sample(20, np.random.default_rng(0)))) == 20


# ----------------------------------------------------------------------------- spl

def test_loudness_relevance_is_windowed_rank_within_clip():
    loud = np.array([1.0, 3.0, 2.0, 2.0, 9.0, 0.0, 5.0])
    groups = np.array([0, 0, 0, 0, 1, 1, 1])
    # Whole-clip window: rank (1 + strictly quieter) / frames in the clip.
    np.testing.assert_allclose(loudness_relevance(loud, groups, window=99),
                               [1 / 4, 4 / 4, 2 / 4, 2 / 4, 3 / 3, 1 / 3, 2 / 3])
    # Window 3: neighbours only, never across clips (frame 3 sees [2, 2]; frame 4 sees [9, 0]).
    np.testing.assert_allclose(loudness_relevance(loud, groups, window=3),
                               [1 / 2, 3 / 3, 1 / 3, 1 / 2, 2 / 2, 1 / 3, 2 / 2])
    # Group ids need not be contiguous: frames keep their array order within a clip.
    shuffled_groups = np.array([0, 1, 0, 1, 0, 1, 0])
    r = loudness_relevance(loud, shuffled_groups, window=99)
    np.testing.assert_allclose(r[[0, 2, 4, 6]], [1 / 4, 2 / 4, 4 / 4, 3 / 4])
    assert np.all((r > 0) & (r <= 1))


def test_spl_favours_loud_frames():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4)).astype(np.float32)
    loud = rng.normal(60, 10, 4000)
    groups = np.repeat(np.arange(100), 40)
    r = loudness_relevance(loud, groups, window=100)
    idx = sample_indices("spl", x, 400, seed=0, loudness_db=loud, groups=groups)
    loud_half = r > np.median(r)
    # p ∝ rank: the louder half holds about 3/4 of the weight, so ~0.7 of the draws (random: 0.5)
    assert 0.62 < loud_half[idx].mean() < 0.80
    assert loud[idx].mean() > loud.mean() + 2.5


def test_weighted_without_replacement_matches_successive_draws():
    # P(first = i) = w_i / Σw and P({i, j}) from successive draws, checked on a 4-item case.
    w = np.array([1.0, 2.0, 3.0, 4.0])
    rng = np.random.default_rng(0)
    pairs = {}
    for _ in range(6000):
        s = tuple(sorted(weighted_without_replacement(w, 2, rng).tolist()))
        pairs[s] = pairs.get(s, 0) + 1
    tot = w.sum()
    expected = {(i, j): w[i] / tot * w[j] / (tot - w[i]) + w[j] / tot * w[i] / (tot - w[j])
                for i, j in itertools.combinations(range(4), 2)}
    keys = sorted(expected)
    assert chisquare([pairs.get(k, 0) for k in keys], [expected[k] * 6000 for k in keys]).pvalue > 1e-3


# ----------------------------------------------------------------------------- class-balanced, kmeans

def test_class_balanced_counts_with_remainder_and_small_classes():
    labels = np.array(["car"] * 500 + ["dog"] * 300 + ["siren"] * 7 + ["drill"] * 200)
    x = np.zeros((len(labels), 3), np.float32)
    idx = sample_indices("class-balanced", x, 100, seed=2, labels=labels)
    names, counts = np.unique(labels[idx], return_counts=True)
    got = dict(zip(names, counts))
    assert got["siren"] == 7  # a small class gives everything it has
    others = [got[c] for c in ("car", "dog", "drill")]
    assert sum(others) == 93 and max(others) - min(others) <= 1  # the rest split evenly
    idx = sample_indices("class-balanced", x, 10, seed=2, labels=labels)
    counts = np.unique(labels[idx], return_counts=True)[1]
    assert sorted(counts) == [2, 2, 3, 3]


def test_kmeans_covers_every_cluster_and_coverage_summary():
    x, cluster = clustered(n_clusters=8, per=100, big=1900)
    idx = sample_indices("kmeans", x, 24, seed=0)
    assert len(np.unique(cluster[idx])) == 8
    rnd = sample_indices("random", x, 24, seed=0)
    cov_k = coverage(x, idx, seed=0, labels=cluster)
    cov_r = coverage(x, rnd, seed=0, labels=cluster)
    assert cov_k["n_total"] == len(x) and cov_k["n_sampled"] == 24
    assert sum(cov_k["label_counts"].values()) == 24 and set(cov_k["label_counts"]) == {str(c) for c in range(8)}
    assert cov_k["cell_coverage"] > cov_r["cell_coverage"]
    assert cov_k["mean_nn_distance"] < cov_r["mean_nn_distance"]
    full = coverage(x, np.arange(len(x)), seed=0)
    assert full["cell_coverage"] == 1.0 and full["mean_nn_distance"] < 1e-3
    with pytest.raises(ConfigError, match="indices"):
        coverage(x, [len(x)], seed=0)


# ----------------------------------------------------------------------------- per-frame SPL

def test_frame_spl_db_levels_alignment_and_weighting():
    rate = 16000
    t = np.arange(3 * rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    tone[rate:2 * rate] *= 0.1  # the middle second is 20 dB quieter
    frames, ts = frame_audio(tone, rate, hop_s=0.5)
    level = frame_spl_db(tone, rate, ts, a_weighting=False)
    assert level.shape == ts.shape == (frames.shape[0],)
    # Same as the mean square of the framed (zero-padded) windows the teacher embeds.
    np.testing.assert_allclose(level, 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1)), atol=1e-3)
    assert abs(level[1] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.05  # fully inside: sine RMS
    assert abs(level[3] - (level[1] - 20)) < 0.05  # centred in the quiet second
    # A-weighting: 1 kHz passes unchanged, 50 Hz is cut by ~30 dB.
    assert abs(20 * np.log10(a_weighting_gain(np.array([1000.0]))[0])) < 0.01
    low = 0.5 * np.sin(2 * np.pi * 50 * t)
    drop = frame_spl_db(low, rate, ts[2:3], a_weighting=False) - frame_spl_db(low, rate, ts[2:3])
    assert 29.0 < drop[0] < 31.5
    np.testing.assert_allclose(frame_spl_db(tone, rate, ts[2:3]), level[2:3], atol=0.1)
    assert frame_spl_db(np.zeros(rate), rate, np.array([0.5]))[0] == -120.0
    with pytest.raises(ConfigError, match="NaN"):
        frame_spl_db(np.array([0.0, np.nan]), rate, np.array([0.0]))
