"""Downstream evaluation: fold-wise cross-validation of an MLP on clip-level embeddings.

UrbanSound8K's protocol: the folds come from the metadata; each tested fold is predicted by a
classifier trained on every other fold (never on clips of the tested fold). Features are
standardised with statistics of the training folds only. The classifier is scikit-learn's
MLPClassifier (one hidden layer, Adam, L2 penalty), seeded per fold.

The L2 penalty is fixed (1e-3 by default) or, given a grid, chosen per tested fold on a
validation fold (the next fold, cyclically, which is then one of the training folds), as
UrbanSound8K's train/validate/test protocol does; the classifier is then refitted on all
training folds with it. Why a grid can matter: one fixed penalty favours some feature sets over
others (low-variance PCA components, standardised, are mostly noise and want a stronger one).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from workbench.api import ConfigError


@dataclass
class CVResult:
    per_fold: dict[int, float] = field(default_factory=dict)  # fold -> accuracy in [0, 1]
    alpha: dict[int, float] = field(default_factory=dict)  # fold -> the L2 penalty chosen for it

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.per_fold.values())))

    @property
    def sd(self) -> float:
        values = list(self.per_fold.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "per_fold": {str(k): v for k, v in self.per_fold.items()},
                "alpha": {str(k): v for k, v in self.alpha.items()}}


def folds_to_test(folds: np.ndarray, limit: int = 0) -> list[int]:
    """The folds to test: all folds in the metadata, or the first ``limit`` of them."""
    present = sorted(int(f) for f in np.unique(folds))
    if len(present) < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, the dataset has {len(present)}", key="eval_folds")
    return present[:limit] if limit else present


def fit_predict_mlp(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, hidden: int, max_iter: int,
                    seed: int, alpha: float = 1e-3) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, max_iter=max_iter, random_state=seed % 2**32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the budget we chose
        clf.fit(scaler.transform(x_train), y_train)
    return clf.predict(scaler.transform(x_test))


def cross_validate(features: np.ndarray | Callable[[int], np.ndarray], labels: np.ndarray, folds: np.ndarray, *,
                   test_folds: list[int], hidden: int = 128, max_iter: int = 200, seed: int = 0,
                   alphas: tuple[float, ...] | list[float] = (1e-3,)) -> CVResult:
    """Accuracy per tested fold. ``features`` is (clips, dims), or ``fold -> (clips, dims)`` for
    features that depend on the fold (an embedding network trained without that fold). With
    several ``alphas`` each tested fold picks its penalty on a validation fold (needs >= 3 folds)."""
    labels, folds = np.asarray(labels), np.asarray(folds)
    if not alphas:
        raise ConfigError("the MLP needs at least one L2 penalty", key="mlp_alphas")
    present = sorted(int(f) for f in np.unique(folds))
    result = CVResult()
    for fold in test_folds:
        x = features(fold) if callable(features) else features
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] != len(labels):
            raise ValueError(f"{x.shape[0]} feature rows for {len(labels)} clips")
        test = folds == fold
        if not test.any() or test.all():
            raise ConfigError(f"fold {fold} leaves no clips on one side", key="eval_folds")
        fold_seed = seed * 1000 + fold
        alpha = alphas[0]
        if len(alphas) > 1 and len(present) >= 3:
            val_fold = present[(present.index(int(fold)) + 1) % len(present)]
            val = folds == val_fold
            fit = ~test & ~val
            scores = [float(np.mean(fit_predict_mlp(x[fit], labels[fit], x[val], hidden=hidden, max_iter=max_iter,
                                                    seed=fold_seed, alpha=a) == labels[val])) for a in alphas]
            alpha = alphas[int(np.argmax(scores))]  # ties: the first (smallest) penalty of the grid
        pred = fit_predict_mlp(x[~test], labels[~test], x[test], hidden=hidden, max_iter=max_iter, seed=fold_seed,
                               alpha=alpha)
        result.per_fold[int(fold)] = float(np.mean(pred == labels[test]))
        result.alpha[int(fold)] = float(alpha)
    return result
