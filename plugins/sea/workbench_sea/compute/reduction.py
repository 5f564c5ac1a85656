"""Dimensionality reduction of teacher embeddings (SEA fits PCA or UMAP on the sampled embeddings).

``make_reduction(kind, dim, seed)`` gives an unfitted ``Reduction``; ``fit(sample)``,
``transform(x)`` (float32), ``fit_transform(sample)``. ``to_state()`` returns
``(tensors, meta)``: numpy arrays for safetensors and a JSON-able dict; ``Reduction.from_state``
rebuilds an identical transform from them. Nothing is pickled, so loading never runs code.
``save_reduction``/``load_reduction`` put both in one .safetensors file (meta as JSON in the
file's string metadata).

Kinds:
- ``pca``: sklearn PCA (whiten off). State: mean, components, explained variance (ratio).
- ``umap``: umap-learn, fitted with a fixed seed. UMAP's out-of-sample ``transform`` needs only
  the training sample, its embedding and a handful of scalars (a, b, neighbour count, ...): it
  finds each new point's neighbours in the sample, builds their fuzzy memberships, starts at the
  membership-weighted mean of the neighbours' embeddings and refines by SGD against the fixed
  training embedding. We store exactly those pieces and run the same steps with umap-learn's
  own numeric routines, so loading needs no refit and no pickled model; the result equals
  ``UMAP.transform`` for training samples below 4096 points (where UMAP itself uses exact
  neighbours; above that UMAP approximates them with NN-descent, we stay exact). A parametric
  approximation was rejected: it would change the mapping. umap-learn (numba) is imported only here.
- ``none``: identity (``dim`` is ignored, the output keeps the input's dimensions).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from workbench.api import ConfigError, InputError

KINDS = ("pca", "umap", "none")
STATE_VERSION = 1
_UMAP_NEIGHBOURS = 15  # umap-learn's default
_UMAP_MIN_DIST = 0.1


def make_reduction(kind: str, dim: int, seed: int) -> "Reduction":
    if kind not in _BY_KIND:
        raise ConfigError(f"unknown reduction {kind!r} (known: {', '.join(KINDS)})", key="reduction")
    if kind != "none" and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1):
        raise ConfigError(f"reduced dimension must be a positive integer, got {dim!r}", key="dim")
    return _BY_KIND[kind](int(dim) if kind != "none" and dim is not None else None, int(seed))


def _as_matrix(x, key: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"expected a non-empty 2-D array (rows x dims), got shape {a.shape}", key=key)
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise ConfigError("array must be numeric with no NaN or infinite values", key=key)
    return a


class Reduction:
    """Base: a fitted map from input_dim to output_dim dimensions."""

    kind = ""

    def __init__(self, dim: int | None, seed: int):
        self.dim, self.seed = dim, seed
        self.input_dim: int | None = None

    # -- public API
    @property
    def fitted(self) -> bool:
        return self.input_dim is not None

    @property
    def output_dim(self) -> int:
        self._need_fitted()
        return self.input_dim if self.dim is None else self.dim

    def fit(self, sample: np.ndarray) -> "Reduction":
        x = _as_matrix(sample, "sample")
        if self.dim is not None:
            if self.dim > x.shape[1]:
                raise ConfigError(f"reduced dimension {self.dim} exceeds the embeddings' {x.shape[1]} dimensions",
                                  key="dim")
            if self.dim > x.shape[0]:
                raise ConfigError(f"reduced dimension {self.dim} exceeds the sample size {x.shape[0]}: "
                                  "sample more embeddings or reduce to fewer dimensions", key="dim")
        self._fit(x)
        self.input_dim = int(x.shape[1])
        return self

    def fit_transform(self, sample: np.ndarray) -> np.ndarray:
        return self.fit(sample).transform(sample)

    def transform(self, x: np.ndarray) -> np.ndarray:
        self._need_fitted()
        a = _as_matrix(x, "embeddings")
        if a.shape[1] != self.input_dim:
            raise ConfigError(f"{self.kind} reduction was fitted on {self.input_dim}-d embeddings, got {a.shape[1]}-d",
                              key="embeddings")
        return np.ascontiguousarray(self._transform(a), dtype=np.float32)

    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        self._need_fitted()
        tensors, extra = self._state()
        meta = {"kind": self.kind, "dim": self.dim, "seed": self.seed, "input_dim": self.input_dim,
                "version": STATE_VERSION, **extra}
        return {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta

    @classmethod
    def from_state(cls, tensors: dict[str, np.ndarray], meta: dict) -> "Reduction":
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if kind not in _BY_KIND:
            raise ConfigError(f"stored reduction has unknown kind {kind!r} (known: {', '.join(KINDS)})",
                              key="reduction")
        if meta.get("version") != STATE_VERSION:
            raise ConfigError(f"stored reduction has format version {meta.get('version')!r}, "
                              f"this workbench reads {STATE_VERSION}", key="reduction")
        try:
            dim = None if meta["dim"] is None else int(meta["dim"])
            obj = _BY_KIND[kind](dim, int(meta["seed"]))
            obj.input_dim = int(meta["input_dim"])
            obj._load(tensors, meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"stored {kind} reduction is incomplete or malformed: {exc}", key="reduction") from None
        return obj

    # -- helpers for subclasses
    def _need_fitted(self):
        if not self.fitted:
            raise ConfigError(f"the {self.kind} reduction is not fitted yet: call fit(sample) first", key="reduction")

    @staticmethod
    def _tensor(tensors, name, shape):
        a = np.asarray(tensors[name])
        if a.shape != shape:
            raise ValueError(f"tensor {name!r} has shape {a.shape}, expected {shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"tensor {name!r} holds NaN or infinite values")
        return a

    def _fit(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _transform(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _state(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _load(self, tensors, meta):  # pragma: no cover - abstract
        raise NotImplementedError


class IdentityReduction(Reduction):
    kind = "none"

    def _fit(self, x):
        pass

    def _transform(self, x):
        return x

    def _state(self):
        return {}, {}

    def _load(self, tensors, meta):
        pass


class PCAReduction(Reduction):
    kind = "pca"

    def _fit(self, x):
        from sklearn.decomposition import PCA

        pca = PCA(n_components=self.dim, whiten=False, random_state=self.seed % (2 ** 32)).fit(x.astype(np.float64))
        self.mean = pca.mean_.astype(np.float64)
        self.components = pca.components_.astype(np.float64)
        self.explained_variance = pca.explained_variance_.astype(np.float64)
        self.explained_variance_ratio = pca.explained_variance_ratio_.astype(np.float64)

    def _transform(self, x):
        return (x.astype(np.float64) - self.mean) @ self.components.T

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        self._need_fitted()
        return (np.asarray(z, dtype=np.float64) @ self.components + self.mean).astype(np.float32)

    def _state(self):
        return {"mean": self.mean, "components": self.components, "explained_variance": self.explained_variance,
                "explained_variance_ratio": self.explained_variance_ratio}, {}

    def _load(self, tensors, meta):
        d, k = self.input_dim, self.dim
        self.mean = self._tensor(tensors, "mean", (d,)).astype(np.float64)
        self.components = self._tensor(tensors, "components", (k, d)).astype(np.float64)
        self.explained_variance = self._tensor(tensors, "explained_variance", (k,)).astype(np.float64)
        self.explained_variance_ratio = self._tensor(tensors, "explained_variance_ratio", (k,)).astype(np.float64)


class UMAPReduction(Reduction):
    kind = "umap"
    _PARAMS = ("n_neighbors", "a", "b", "local_connectivity", "repulsion_strength", "initial_alpha",
               "negative_sample_rate", "n_epochs", "transform_seed")

    def _fit(self, x):
        if x.shape[0] < 3:
            raise ConfigError(f"UMAP needs at least 3 sampled embeddings, got {x.shape[0]}", key="sample")
        import umap  # lazy: pulls numba and pynndescent

        train = np.ascontiguousarray(x, dtype=np.float32)
        model = umap.UMAP(n_components=self.dim, n_neighbors=min(_UMAP_NEIGHBOURS, train.shape[0] - 1),
                          min_dist=_UMAP_MIN_DIST, metric="euclidean", random_state=self.seed % (2 ** 32),
                          transform_seed=self.seed % (2 ** 32))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")  # seeded UMAP runs single-threaded
            embedding = model.fit_transform(train)
        self.train, self.embedding = train, np.asarray(embedding, dtype=np.float32)
        self.params = {"n_neighbors": int(model._n_neighbors), "a": float(model._a), "b": float(model._b),
                       "local_connectivity": float(model.local_connectivity),
                       "repulsion_strength": float(model.repulsion_strength),
                       "initial_alpha": float(model._initial_alpha),
                       "negative_sample_rate": int(model.negative_sample_rate),
                       "n_epochs": None if model.n_epochs is None else int(model.n_epochs),
                       "transform_seed": int(model.transform_seed)}

    def fit_transform(self, sample):
        """The UMAP layout of the sample itself (what UMAP.fit_transform returns)."""
        self.fit(sample)
        return self.embedding.copy()

    def _transform(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape == self.train.shape and np.array_equal(x, self.train):
            return self.embedding.copy()  # as UMAP.transform does for its own training data
        return umap_transform(x, self.train, self.embedding, self.params)

    def _state(self):
        return {"train": self.train, "embedding": self.embedding}, {"umap": dict(self.params)}

    def _load(self, tensors, meta):
        train = np.asarray(tensors["train"])
        self.train = np.ascontiguousarray(self._tensor(tensors, "train", (train.shape[0], self.input_dim)),
                                          dtype=np.float32)
        self.embedding = np.ascontiguousarray(self._tensor(tensors, "embedding", (train.shape[0], self.dim)),
                                              dtype=np.float32)
        params = meta["umap"]
        self.params = {k: params[k] for k in self._PARAMS}
        if not 1 <= int(self.params["n_neighbors"]) < train.shape[0]:
            raise ValueError(f"n_neighbors {self.params['n_neighbors']} does not fit {train.shape[0]} training points")


def umap_transform(x: np.ndarray, train: np.ndarray, embedding: np.ndarray, params: dict,
                   chunk: int = 2048) -> np.ndarray:
    """UMAP's out-of-sample transform (umap-learn 0.5 ``UMAP.transform``, euclidean) from stored state."""
    import scipy.sparse
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import (INT32_MAX, INT32_MIN, compute_membership_strengths, init_graph_transform,
                            make_epochs_per_sample, smooth_knn_dist)

    k = int(params["n_neighbors"])
    indices, dists = _exact_neighbours(x, train, k, chunk)
    sigmas, rhos = smooth_knn_dist(dists, float(k),
                                   local_connectivity=float(max(0.0, params["local_connectivity"] - 1.0)))
    rows, cols, vals, _ = compute_membership_strengths(indices, dists, sigmas, rhos, bipartite=True)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(x.shape[0], train.shape[0]))
    csr = graph.tocsr()
    csr.eliminate_zeros()
    start = init_graph_transform(csr, embedding)
    if params["n_epochs"] is None:
        n_epochs = 100 if x.shape[0] <= 10000 else 30
    else:
        n_epochs = int(params["n_epochs"] // 3.0)
    graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
    graph.eliminate_zeros()
    rng_state = np.random.RandomState(int(params["transform_seed"])).randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    return optimize_layout_euclidean(
        start, embedding.astype(np.float32, copy=True), graph.row, graph.col, n_epochs, graph.shape[1],
        make_epochs_per_sample(graph.data, n_epochs), float(params["a"]), float(params["b"]), rng_state,
        float(params["repulsion_strength"]), float(params["initial_alpha"]) / 4.0,
        float(params["negative_sample_rate"]), False)


def _exact_neighbours(x: np.ndarray, train: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest training points of each row of x, sorted, with umap-learn's own distance values.

    Candidates come from fast float64 BLAS distances (2k of them, so rounding cannot push a true
    neighbour out); umap's numba ``euclidean`` then recomputes the candidates' distances, so the
    neighbour order and distances are the ones ``UMAP.transform`` sees.
    """
    refine = _umap_distance_kernel()
    n_cand = min(train.shape[0], 2 * k)
    y64 = train.astype(np.float64)
    y_sq = (y64 ** 2).sum(axis=1)
    indices = np.empty((x.shape[0], k), dtype=np.int64)
    dists = np.empty((x.shape[0], k), dtype=np.float32)
    for a in range(0, x.shape[0], chunk):  # bounded memory
        x64 = x[a:a + chunk].astype(np.float64)
        sq = (x64 ** 2).sum(axis=1)[:, None] - 2.0 * x64 @ y64.T + y_sq[None, :]
        cand = np.argpartition(sq, n_cand - 1, axis=1)[:, :n_cand] if n_cand < train.shape[0] else np.tile(
            np.arange(train.shape[0]), (sq.shape[0], 1))
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        d = refine(x[a:a + chunk], train, cand)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        indices[a:a + chunk] = np.take_along_axis(cand, order, axis=1)
        dists[a:a + chunk] = np.take_along_axis(d, order, axis=1)
    return indices, dists


_KERNEL = None


def _umap_distance_kernel():
    global _KERNEL
    if _KERNEL is None:
        import numba
        from umap.distances import euclidean

        @numba.njit(cache=False)
        def refine(x, train, cand):
            out = np.empty(cand.shape, dtype=np.float32)
            for i in range(cand.shape[0]):
                for c in range(cand.shape[1]):
                    out[i, c] = euclidean(x[i], train[cand[i, c]])
            return out

        _KERNEL = refine
    return _KERNEL


_BY_KIND = {"pca": PCAReduction, "umap": UMAPReduction, "none": IdentityReduction}


# ----------------------------------------------------------------------------- one-file persistence

def save_reduction(path: str | Path, reduction: Reduction) -> Path:
    """Write tensors + JSON meta to one .safetensors file (atomic rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    tensors, meta = reduction.to_state()
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"workbench_reduction": json.dumps(meta)})
    tmp.replace(path)
    return path


def load_reduction(path: str | Path) -> Reduction:
    """Read a file written by ``save_reduction``; a bad file raises InputError naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "reduction file not found")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {})["workbench_reduction"])
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except KeyError:
        raise InputError(path, "not a reduction file (no 'workbench_reduction' metadata)") from None
    except Exception as exc:  # noqa: BLE001 - safetensors/JSON raise several types for corrupt files
        raise InputError(path, f"cannot read reduction file: {exc}") from None
    try:
        return Reduction.from_state(tensors, meta)
    except ConfigError as exc:
        raise InputError(path, str(exc)) from None
