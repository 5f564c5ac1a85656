"""Fold-wise downstream evaluation and the frame/clip helpers it relies on."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.api import ConfigError
from workbench_sea.compute.clips import assign_folds, mean_pool, split_clips, student_windows
from workbench_sea.compute.downstream import cross_validate, folds_to_test


def _data(n_per=12, classes=3, folds=4, dims=8, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per)
    centres = rng.normal(size=(classes, dims)) * sep
    x = centres[labels] + rng.normal(size=(len(labels), dims))
    f = np.tile(np.arange(1, folds + 1), len(labels) // folds + 1)[: len(labels)]
    return x, labels, f


def test_separable_features_score_high_and_noise_scores_near_chance():
    x, y, f = _data()
    good = cross_validate(x, y, f, test_folds=[1, 2, 3, 4], hidden=16, max_iter=300)
    assert sorted(good.per_fold) == [1, 2, 3, 4] and good.mean > 0.9
    noise = np.random.default_rng(1).normal(size=x.shape)
    bad = cross_validate(noise, y, f, test_folds=[1, 2, 3, 4], hidden=16, max_iter=300)
    assert bad.mean < 0.7
    assert good.to_dict()["sd"] == pytest.approx(np.std(list(good.per_fold.values()), ddof=1))


def test_the_tested_fold_is_never_trained_on():
    """Features that depend on the tested fold: only the held-out fold's rows are scrambled, and a
    classifier trained on the other folds must then fail on it."""
    x, y, f = _data()
    seen = []

    def features(fold):
        seen.append(fold)
        out = x.copy()
        out[f == fold] = -x[f == fold] * 5  # held-out rows: moved away from their classes
        return out

    res = cross_validate(features, y, f, test_folds=[2, 3], hidden=16, max_iter=300)
    assert seen == [2, 3] and res.mean < 0.7


def test_the_penalty_is_chosen_on_a_validation_fold_never_on_the_tested_one(monkeypatch):
    """The classifier is replaced by a recorder that is right only with alpha 0.1, so the
    selection, the refit on every training fold and the untouched tested fold are all visible."""
    import workbench_sea.compute.downstream as ds

    x, y, f = _data()
    rows = {tuple(r): i for i, r in enumerate(x)}
    calls = []

    def fake(x_train, y_train, x_test, *, alpha, **_):
        train = [rows[tuple(r)] for r in x_train]
        test = [rows[tuple(r)] for r in x_test]
        calls.append((alpha, set(f[train]), set(f[test])))
        return y[test] if alpha == 0.1 else (y[test] + 1) % 3

    monkeypatch.setattr(ds, "fit_predict_mlp", fake)
    res = cross_validate(x, y, f, test_folds=[2, 4], alphas=(1e-3, 0.1, 1.0))
    assert res.alpha == {2: 0.1, 4: 0.1} and res.mean == 1.0
    assert calls[:3] == [(a, {1, 4}, {3}) for a in (1e-3, 0.1, 1.0)]  # tested 2, validated on 3
    assert calls[3] == (0.1, {1, 3, 4}, {2})
    assert calls[4:7] == [(a, {2, 3}, {1}) for a in (1e-3, 0.1, 1.0)]  # tested 4, validated on 1 (cyclic)
    single = cross_validate(x, y, f, test_folds=[2], alphas=(1.0,))
    assert single.alpha == {2: 1.0} and single.mean == 0.0 and len(calls) == 9


def test_tested_folds_come_from_the_metadata():
    assert folds_to_test(np.array([3, 1, 2, 3, 1])) == [1, 2, 3]
    assert folds_to_test(np.array([3, 1, 2, 3, 1]), limit=2) == [1, 2]
    with pytest.raises(ConfigError):
        folds_to_test(np.array([1, 1, 1]))


def test_mean_pool_and_folds_and_split():
    frames = np.array([[1.0, 0], [3, 2], [10, 10]])
    np.testing.assert_allclose(mean_pool(frames, np.array([0, 0, 1]), 2), [[2, 1], [10, 10]])
    with pytest.raises(ValueError):
        mean_pool(frames, np.array([0, 0, 0]), 2)
    folds = assign_folds(np.repeat(np.arange(2), 20), 10, seed=0)
    assert sorted(np.bincount(folds)[1:]) == [4] * 10
    train, val = split_clips(20, 0.1, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == 20


def test_student_windows_are_centred_and_zero_padded():
    audio = np.arange(1, 21, dtype=np.float32)  # 20 samples at 10 Hz
    w = student_windows(audio, 10, np.array([0.0, 1.0]), 1.0, center=True)
    assert w.shape == (2, 10)
    np.testing.assert_array_equal(w[0], [0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(w[1], np.arange(6, 16))
    starts = student_windows(audio, 10, np.array([1.5]), 1.0, center=False)
    np.testing.assert_array_equal(starts[0], [16, 17, 18, 19, 20, 0, 0, 0, 0, 0])
