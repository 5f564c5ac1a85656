"""Which teacher embeddings the student is distilled on: SEA's sampling strategies.

``sample_indices(strategy, embeddings, n, seed=...)`` returns unique, sorted int64 row indices.

Strategies (Srivastava et al., ICASSP 2021, and common baselines):

- ``random``: uniform without replacement.
- ``spl``: loudness-informed. Every frame gets a *relevance* in (0, 1]: the rank of its level
  among the frames of the same clip inside a sliding window of ``window`` frames centred on it,
  divided by the number of frames in that window (rank = 1 + number of strictly quieter frames,
  so ties share the lowest rank and the quietest frame still has 1/count). Frames are drawn
  without replacement with probability proportional to relevance (successive draws, the rule
  of ``numpy.random.choice(p=..., replace=False)``). SEA ranked each frame's SPL within fixed
  2-hour blocks of one sensor's recordings; here the clip plays the sensor and a sliding window
  the time block, so a frame counts as loud relative to its own surroundings.
- ``dpp``: a k-DPP for diversity, L = F Fᵀ + εI with F the L1-normalised embedding rows.
- ``dpp-qd``: quality and diversity, L = diag(q) F Fᵀ diag(q) + εI, q the ``spl`` relevance
  (SEA's choice: its relevance vector served as q), so q lies in (0, 1].
- ``class-balanced``: equal count per label (remainder spread at random), uniform in a class.
- ``kmeans``: MiniBatchKMeans with n clusters (on the top 64 principal components when the
  embeddings have more dimensions, see ``_kmeans_space``); the member nearest each centre
  represents its cell (cells are disjoint, so no duplicates); cells left empty are topped up
  uniformly from the rest.

Exact k-DPP at scale (``KDPP``). With G the N x D feature matrix (rank r <= D) and ε > 0,
    det(L_S) = det(G_S G_Sᵀ + εI) = Σ_{T ⊆ S} ε^{k-|T|} det((G Gᵀ)_T),
so the k-DPP is exactly this mixture: draw t with weight ε^{k-t} e_t(λ) C(N-t, k-t) (λ the
nonzero eigenvalues of GᵀG, e_t their elementary symmetric polynomial), draw T from the
t-DPP of G Gᵀ, then add k-t items uniformly from the rest. (Summing the mixture over T ⊆ S
gives back det(L_S)/Z, since each S ⊇ T is one of C(N-t, k-t) equally likely completions.)
The t-DPP of the low-rank kernel is sampled exactly in its dual form (Kulesza & Taskar 2012,
Alg. 8 with the D x D matrix GᵀG): choose t eigenvectors by the elementary-symmetric-polynomial
recursion (in log space, no overflow), lift them to N-space (V = G W Λ^{-1/2}), then draw the
projection DPP one item at a time by the chain rule, updating every item's residual norm with
one matrix-vector product per draw. Cost O(N D² + D³ + N t²), memory O(N t); no N x N matrix.
``k > rank`` needs no special case: t is at most r, the εI part supplies the other k - t.
"""
from __future__ import annotations

import numpy as np

from workbench.api import ConfigError

STRATEGIES = ("random", "spl", "dpp", "dpp-qd", "class-balanced", "kmeans")
DEFAULT_WINDOW = 100  # frames: 10 s at openl3's default 0.1 s hop, longer than most urban-sound clips
_NEEDS_LOUDNESS = ("spl", "dpp-qd")


# ----------------------------------------------------------------------------- public entry

def sample_indices(strategy: str, embeddings: np.ndarray, n: int, *, seed: int,
                   loudness_db: np.ndarray | None = None, labels: np.ndarray | None = None,
                   groups: np.ndarray | None = None, window: int = DEFAULT_WINDOW,
                   epsilon: float = 1e-3) -> np.ndarray:
    """Unique sorted int64 indices of ``min(n, N)`` rows of ``embeddings`` chosen by ``strategy``."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown sampling strategy {strategy!r} (known: {', '.join(STRATEGIES)})",
                          key="strategy")
    x = _check_embeddings(embeddings)
    total = x.shape[0]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ConfigError(f"sample size must be a positive integer, got {n!r}", key="n")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window must be a positive number of frames, got {window!r}", key="window")
    if not (np.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}", key="epsilon")
    loud = _check_vector(loudness_db, total, "loudness_db", float) if loudness_db is not None else None
    lab = _check_vector(labels, total, "labels", None) if labels is not None else None
    grp = _check_vector(groups, total, "groups", None) if groups is not None else None
    if strategy in _NEEDS_LOUDNESS and loud is None:
        raise ConfigError(f"strategy {strategy!r} needs loudness_db (one level per embedding frame)",
                          key="loudness_db")
    if strategy == "class-balanced" and lab is None:
        raise ConfigError("strategy 'class-balanced' needs labels (one label per embedding frame)",
                          key="labels")
    k = int(min(n, total))
    rng = np.random.default_rng(seed)
    if k == total:
        return np.arange(total, dtype=np.int64)
    if strategy == "random":
        chosen = rng.choice(total, size=k, replace=False)
    elif strategy == "spl":
        chosen = weighted_without_replacement(loudness_relevance(loud, grp, window), k, rng)
    elif strategy == "dpp":
        chosen = KDPP(l1_normalise(x), epsilon).sample(k, rng)
    elif strategy == "dpp-qd":
        q = loudness_relevance(loud, grp, window)
        chosen = KDPP(l1_normalise(x) * q[:, None], epsilon).sample(k, rng)
    elif strategy == "class-balanced":
        chosen = _class_balanced(lab, k, rng)
    else:
        chosen = _kmeans_representatives(x, k, seed, rng)
    out = np.unique(np.asarray(chosen, dtype=np.int64))
    assert out.size == k, (strategy, out.size, k)
    return out


# ----------------------------------------------------------------------------- validation

def _check_embeddings(embeddings) -> np.ndarray:
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ConfigError(f"embeddings must be a 2-D array (frames x dims), got shape {x.shape}",
                          key="embeddings")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ConfigError(f"embeddings are empty (shape {x.shape})", key="embeddings")
    if not np.issubdtype(x.dtype, np.number):
        raise ConfigError(f"embeddings must be numeric, got dtype {x.dtype}", key="embeddings")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ConfigError(f"embeddings contain NaN or infinite values ({bad} of {x.shape[0]} rows)",
                          key="embeddings")
    return x.astype(np.float32, copy=False)


def _check_vector(values, total: int, key: str, dtype) -> np.ndarray:
    v = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    if v.ndim != 1 or v.shape[0] != total:
        raise ConfigError(f"{key} must have one value per embedding ({total}), got shape {v.shape}", key=key)
    if dtype is float and not np.isfinite(v).all():
        raise ConfigError(f"{key} contains NaN or infinite values", key=key)
    return v


# ----------------------------------------------------------------------------- loudness (spl, dpp-qd)

def loudness_relevance(loudness_db: np.ndarray, groups: np.ndarray | None = None,
                       window: int = DEFAULT_WINDOW) -> np.ndarray:
    """Relevance in (0, 1] of each frame: its loudness rank in a centred sliding window of its clip.

    Frames of one group are taken in their order in the array (the time order of a clip's
    embeddings). Without groups all frames form one sequence.
    """
    loud = np.asarray(loudness_db, dtype=np.float64).reshape(-1)
    out = np.empty(loud.shape[0], dtype=np.float64)
    if groups is None:
        members = [np.arange(loud.shape[0])]
    else:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        members = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
    left = (window - 1) // 2
    right = window - 1 - left
    for idx in members:
        out[idx] = _window_rank(loud[idx], left, right)
    return out


def _window_rank(values: np.ndarray, left: int, right: int, chunk: int = 8192) -> np.ndarray:
    padded = np.concatenate([np.full(left, np.nan), values, np.full(right, np.nan)])
    views = np.lib.stride_tricks.sliding_window_view(padded, left + right + 1)
    rel = np.empty(values.shape[0])
    for a in range(0, values.shape[0], chunk):  # bounded memory for very long groups
        win, v = views[a:a + chunk], values[a:a + chunk, None]
        quieter = (win < v).sum(axis=1)  # NaN padding compares False: outside the clip
        count = (~np.isnan(win)).sum(axis=1)
        rel[a:a + chunk] = (1.0 + quieter) / count
    return rel


def weighted_without_replacement(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct indices, drawn one after another with probability ∝ weight among those left.

    Efraimidis & Spirakis (2006): the k largest keys log(u)/w give exactly that distribution,
    in O(N) instead of k sequential renormalisations.
    """
    w = np.asarray(weights, dtype=np.float64)
    positive = np.flatnonzero(w > 0)
    if positive.size < k:
        raise ConfigError(f"only {positive.size} items have a positive weight, cannot draw {k}", key="n")
    keys = np.full(w.shape[0], -np.inf)
    keys[positive] = np.log(rng.random(positive.size)) / w[positive]
    return np.argpartition(-keys, k - 1)[:k]


# ----------------------------------------------------------------------------- k-DPP

def l1_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L1 norm (all-zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.abs(x).sum(axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _log_esp_table(log_lam: np.ndarray, kmax: int) -> np.ndarray:
    """E[l, m] = log e_l(λ_1..λ_m), for l <= kmax, m <= len(λ); all terms positive, so log-sum-exp is exact."""
    r = log_lam.shape[0]
    table = np.full((kmax + 1, r + 1), -np.inf)
    table[0, :] = 0.0
    for m in range(1, r + 1):
        table[1:, m] = np.logaddexp(table[1:, m - 1], log_lam[m - 1] + table[:-1, m - 1])
    return table


def _log_binom(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)


class KDPP:
    """Exact k-DPP sampler for L = G Gᵀ + εI (G: N x D), in dual form (see the module docstring).

    The D x D eigendecomposition is done once; ``sample`` can then be called many times.
    """

    def __init__(self, features: np.ndarray, epsilon: float = 1e-3, rank_tol: float | None = None):
        g = np.asarray(features, dtype=np.float32)
        if g.ndim != 2 or g.shape[0] == 0:
            raise ConfigError(f"DPP features must be a non-empty 2-D array, got shape {g.shape}", key="embeddings")
        if not (np.isfinite(epsilon) and epsilon >= 0):
            raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}", key="epsilon")
        self.features, self.epsilon = g, float(epsilon)
        self.n_items, dims = g.shape
        gram = np.zeros((dims, dims))
        for a in range(0, self.n_items, 16384):  # float64 Gram without a float64 copy of G
            block = g[a:a + 16384].astype(np.float64)
            gram += block.T @ block
        lam, vec = np.linalg.eigh(gram)
        tol = rank_tol if rank_tol is not None else max(lam.max(initial=0.0), 0.0) * dims * np.finfo(np.float32).eps
        keep = lam > tol  # below float32 resolution of G the direction is noise, not rank
        self.eigenvalues, self.eigenvectors = lam[keep], vec[:, keep]
        self.rank = int(keep.sum())

    def size_weights(self, k: int) -> np.ndarray:
        """P(t items come from the G Gᵀ part), t = 0..min(k, rank)."""
        log_w = self._log_size_weights(k, _log_esp_table(np.log(self.eigenvalues), min(k, self.rank)))
        w = np.exp(log_w - log_w.max())
        return w / w.sum()

    def _log_size_weights(self, k: int, table: np.ndarray) -> np.ndarray:
        t = np.arange(min(k, self.rank) + 1)
        log_e = table[t, self.rank]
        if self.epsilon == 0:
            log_w = np.where(t == k, log_e, -np.inf)
        else:
            log_w = (k - t) * np.log(self.epsilon) + log_e + _log_binom(self.n_items - t, k - t)
        if not np.isfinite(log_w).any():
            raise ConfigError(f"a {k}-DPP needs epsilon > 0 here: the features have rank {self.rank} < {k}",
                              key="epsilon")
        return log_w

    def sample(self, k: int, rng: np.random.Generator) -> np.ndarray:
        if not 0 < k <= self.n_items:
            raise ConfigError(f"cannot draw {k} of {self.n_items} items", key="n")
        kmax = min(k, self.rank)
        log_lam = np.log(self.eigenvalues)
        table = _log_esp_table(log_lam, kmax)
        log_w = self._log_size_weights(k, table)
        p = np.exp(log_w - log_w.max())
        t = int(rng.choice(p.size, p=p / p.sum()))
        chosen = self._sample_low_rank(t, log_lam, table, rng)
        if t < k:  # the εI part: a uniform completion
            rest = np.setdiff1d(np.arange(self.n_items), chosen, assume_unique=True)
            chosen = np.concatenate([chosen, rng.choice(rest, size=k - t, replace=False)])
        return np.sort(chosen.astype(np.int64))

    def _sample_low_rank(self, t: int, log_lam, table, rng) -> np.ndarray:
        if t == 0:
            return np.empty(0, dtype=np.int64)
        # Phase 1: which t eigenvectors (Kulesza & Taskar 2012, Alg. 8), in log space.
        picked, need = [], t
        for m in range(self.rank, 0, -1):
            if need == 0:
                break
            if m == need or np.log(rng.random()) < log_lam[m - 1] + table[need - 1, m - 1] - table[need, m]:
                picked.append(m - 1)
                need -= 1
        cols = np.array(picked[::-1])
        lift = (self.eigenvectors[:, cols] / np.sqrt(self.eigenvalues[cols])).astype(np.float32)
        basis = self.features @ lift  # N x t, orthonormal columns: spans the chosen eigenvectors of G Gᵀ
        # Phase 2: projection DPP by the chain rule. residual[i] = squared norm of row i outside
        # the span of the rows chosen so far; each draw adds one Gram-Schmidt direction.
        residual = np.einsum("ij,ij->i", basis, basis, dtype=np.float64)
        directions = np.zeros((t, t))
        out = np.empty(t, dtype=np.int64)
        for s in range(t):
            cdf = np.cumsum(np.maximum(residual, 0.0))
            if not cdf[-1] > 1e-3 * (t - s):  # exactly t - s in exact arithmetic
                raise ArithmeticError(f"DPP projection sampling lost precision at draw {s + 1} of {t}")
            # side="right" never lands on a zero-residual item (already chosen or in the span)
            i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            if i == self.n_items:  # u·total rounded up to total: take the last eligible item
                i = int(np.flatnonzero(residual > 0)[-1])
            out[s] = i
            row = basis[i].astype(np.float64)
            row -= directions[:s].T @ (directions[:s] @ row)
            norm = np.linalg.norm(row)
            if norm <= 0:
                raise ArithmeticError("DPP projection sampling lost orthogonality")
            directions[s] = row / norm
            proj = basis @ directions[s].astype(np.float32)
            residual -= proj.astype(np.float64) ** 2
            residual[out[: s + 1]] = 0.0
        return out


# ----------------------------------------------------------------------------- class-balanced, k-means

def _class_balanced(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    classes, inverse = np.unique(labels, return_inverse=True)
    sizes = np.bincount(inverse, minlength=classes.size)
    quota = np.zeros(classes.size, dtype=np.int64)
    left = k
    open_ = sizes > 0
    while left > 0:  # water-filling: small classes give everything, the rest share what remains
        active = np.flatnonzero(open_ & (quota < sizes))
        share, extra = divmod(left, active.size)
        give = np.full(active.size, share)
        give[rng.permutation(active.size)[:extra]] += 1  # remainder to random classes
        give = np.minimum(give, sizes[active] - quota[active])
        quota[active] += give
        left -= int(give.sum())
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(sizes)[:-1])
    return np.concatenate([rng.choice(m, size=q, replace=False) for m, q in zip(members, quota) if q])


def _kmeans_representatives(x: np.ndarray, k: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    from sklearn.cluster import MiniBatchKMeans

    z = _kmeans_space(x, seed)
    # Two passes over the data: coverage needs every cell placed, not converged centres; each
    # pass costs N·k·dims, the dominant cost at 100k x 2000.
    batch = min(z.shape[0], 4096)
    model = MiniBatchKMeans(n_clusters=k, random_state=seed % (2 ** 32), n_init=1, max_iter=2,
                            batch_size=batch, init_size=min(z.shape[0], max(3 * k, 3 * batch)),
                            compute_labels=True)
    model.fit(z)
    cells = model.labels_
    offset = z - model.cluster_centers_[cells]
    dist = np.einsum("ij,ij->i", offset, offset)
    # nearest member of each cell: sort by (cell, distance), keep each cell's first
    order = np.lexsort((dist, cells))
    firsts = order[np.r_[True, np.diff(cells[order]) != 0]]
    if firsts.size < k:  # empty cells: top up uniformly
        rest = np.setdiff1d(np.arange(z.shape[0]), firsts, assume_unique=True)
        firsts = np.concatenate([firsts, rng.choice(rest, size=k - firsts.size, replace=False)])
    return firsts


KMEANS_MAX_DIMS = 64


def _kmeans_space(x: np.ndarray, seed: int) -> np.ndarray:
    """The space k-means runs in: the embeddings, or their top KMEANS_MAX_DIMS principal components.

    k-means costs N·k·dims per pass; teacher embeddings (512-d) concentrate their variance in far
    fewer directions, so clustering the leading components keeps the cells and cuts the cost ~8x.
    """
    # float64: sklearn's k-means++ takes a slow chunked upcast path for float32 (~20x slower here)
    if x.shape[1] <= KMEANS_MAX_DIMS:
        return x.astype(np.float64)
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    fit_on = x if x.shape[0] <= 20000 else x[rng.choice(x.shape[0], 20000, replace=False)]
    pca = PCA(n_components=min(KMEANS_MAX_DIMS, fit_on.shape[0]), random_state=seed % (2 ** 32)).fit(fit_on)
    return pca.transform(x).astype(np.float64)


# ----------------------------------------------------------------------------- coverage summary

def coverage(embeddings: np.ndarray, indices: np.ndarray, *, seed: int, labels: np.ndarray | None = None,
             cells: int = 32, max_points: int = 20000) -> dict:
    """A small JSON-ready summary of how well ``indices`` cover ``embeddings``.

    - ``cell_coverage``: fraction of non-empty k-means cells (``cells`` clusters of all points)
      holding at least one sampled point;
    - ``mean_nn_distance``: mean Euclidean distance from a point to its nearest sampled point,
      over all points or a seeded subset of ``max_points`` (``evaluated_points`` says which);
    - ``label_counts``: sampled count per label, when labels are given.
    """
    from sklearn.cluster import MiniBatchKMeans

    x = _check_embeddings(embeddings)
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if idx.size == 0 or idx[0] < 0 or idx[-1] >= x.shape[0]:
        raise ConfigError(f"indices must be non-empty and within 0..{x.shape[0] - 1}", key="indices")
    rng = np.random.default_rng(seed)
    n_cells = int(min(cells, x.shape[0]))
    fit_on = x if x.shape[0] <= max_points else x[rng.choice(x.shape[0], max_points, replace=False)]
    km = MiniBatchKMeans(n_clusters=n_cells, random_state=seed % (2 ** 32), n_init=3,
                         batch_size=2048).fit(fit_on)
    assign = km.predict(x)
    occupied = np.unique(assign)
    covered = np.intersect1d(occupied, np.unique(assign[idx]))
    probe = np.arange(x.shape[0]) if x.shape[0] <= max_points else np.sort(
        rng.choice(x.shape[0], max_points, replace=False))
    sample = x[idx].astype(np.float64)
    s_sq = (sample ** 2).sum(axis=1)
    nearest = np.empty(probe.size)
    for a in range(0, probe.size, 2048):
        p = x[probe[a:a + 2048]].astype(np.float64)
        d2 = (p ** 2).sum(axis=1)[:, None] - 2 * p @ sample.T + s_sq[None, :]
        nearest[a:a + 2048] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    out = {
        "n_total": int(x.shape[0]),
        "n_sampled": int(idx.size),
        "cells": int(occupied.size),
        "cells_covered": int(covered.size),
        "cell_coverage": float(covered.size / occupied.size),
        "mean_nn_distance": float(nearest.mean()),
        "evaluated_points": int(probe.size),
    }
    if labels is not None:
        lab = _check_vector(labels, x.shape[0], "labels", None)
        names, counts = np.unique(lab[idx], return_counts=True)
        out["label_counts"] = {str(a): int(c) for a, c in zip(names.tolist(), counts.tolist())}
    return out
