"""partial_fit: exact streaming fits of MahalanobisDetector (KNN: test_knn_search).

The reference is ``fit`` on the concatenated batches, plus independent
computations: moments and Ledoit-Wolf shrinkage from NumPy/scikit-learn, and
leave-one-out / out-of-fold offsets by refitting without each row.
"""

import itertools
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.covariance import (
    EmpiricalCovariance,
    LedoitWolf,
    ShrunkCovariance,
    ledoit_wolf_shrinkage,
)

from sklearn_ood import MahalanobisDetector
from sklearn_ood.base import CalibrationWarning
from sklearn_ood.stats._moments import (
    Moments,
    ledoit_wolf_shrinkage_from_moments,
    merge_moments,
    moments_of_rows,
    pool_moments,
)
from tests._calibration import conformal_threshold

# partial_fit (float64 moments merged batch by batch) against fit (one pass):
# centring rows of mean ~50 that vary by as little as 0.25 (|mean| / std_min =
# 210 for _data) perturbs covariance entries by ~eps64 * 210 relative, and the
# distances by up to kappa (cond(cov) = 2e4) times that: 1e-9. MAHA_RTOL: 10x.
MAHA_RTOL = 1e-8
RTOL = 1e-10  # the kNN tests' (unchanged here)


def _data(n=160, d=5, seed=0):
    rng = np.random.RandomState(seed)
    mix = rng.normal(size=(d, d)) + 2 * np.eye(d)
    X = rng.normal(size=(n, d)) @ mix * np.array([1.0, 10.0, 0.1, 3.0, 1.0])[:d] + 50
    y = np.repeat([0, 1, 2], [n // 2, n // 4, n - n // 2 - n // 4])
    perm = rng.permutation(n)
    X, y = X[perm], y[perm]
    # Class 2 only in the second half, so it first appears in a later batch.
    order = np.argsort(y == 2, kind="stable")
    X, y = X[order], y[order]
    y[[3, 40, 100]] = -1  # known outliers, left out
    T = rng.normal(size=(60, d)) @ mix + 50
    return X, y, T


SPLITS = [0, 25, 26, 90, 131]  # uneven batches, one of a single row


def _stream(det, X, y=None, splits=SPLITS):
    bounds = [*splits, len(X)]
    for a, b in itertools.pairwise(bounds):
        det.partial_fit(X[a:b], None if y is None else y[a:b])
    return det


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


# ---------------------------------------------------------------- moments
def _direct(rows):
    """count, mean, scatter, t3, s4 of rows about their own mean (float64)."""
    E = rows - rows.mean(axis=0)
    sq = np.sum(E**2, axis=1)
    return len(rows), rows.mean(axis=0), E.T @ E, E.T @ sq, np.sum(sq**2)


def _unscaled(m, c):
    """Moments of cell ``c`` back in the data's unit."""
    u = m.unit
    return m.count[c], m.mean[c], m.scatter[c] * u**2, m.t3[c] * u**3, m.s4[c] * u**4


def test_merged_moments_equal_direct_computation():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(97, 4)) * [1.0, 5.0, 0.2, 2.0] + [3.0, -7.0, 100.0, 0.0]
    cls = rng.randint(0, 2, size=97)
    fold = np.arange(97) % 3
    cells = fold * 2 + cls
    parts = [(0, 10), (10, 11), (11, 60), (60, 97)]
    merged = Moments.empty((6,), 4)
    for a, b in parts:
        merged = merge_moments(merged, moments_of_rows(X[a:b], cells[a:b], 6))
    # Bound: Chan's update moves moments between means ~100 of values varying by
    # 0.2, losing about eps64 * (100 / 0.2)^2 ~ 6e-11 relative of a scatter entry
    # (less for the mean: eps64 * 100 / 0.2); 1e-9 and 1e-12 leave a margin of 10.
    for c in range(6):
        n, mean, A, t3, s4 = _direct(X[cells == c])
        got = _unscaled(merged, c)
        assert got[0] == n
        assert_allclose(got[1], mean, rtol=1e-12)
        assert_allclose(got[2], A, rtol=1e-9, atol=1e-9 * np.abs(A).max())
        assert_allclose(got[3], t3, rtol=1e-9, atol=1e-9 * np.abs(t3).max())
        assert_allclose(got[4], s4, rtol=1e-9)
    by_fold = merged.reshape((3, 2))
    pooled = pool_moments(by_fold, keep=[True, False, True])
    for c in range(2):
        _, _, A, _, _ = _direct(X[(fold != 1) & (cls == c)])
        got = _unscaled(pooled, c)[2]
        assert_allclose(got, A, rtol=1e-9, atol=1e-9 * np.abs(A).max())


def test_merging_an_empty_cell_far_from_the_mean_is_neutral():
    # An empty cell's mean is arbitrary (0 here); merged with a cell of rows at
    # 1e120 the shift overflowed and 0 * inf made the moments NaN (a tied
    # Ledoit-Wolf fit with one row per class then died in scikit-learn).
    X = np.random.RandomState(5).normal(size=(3, 4)) * 1e120
    full = moments_of_rows(X, np.zeros(3, dtype=int), 1)
    with np.errstate(all="raise"):
        merged = merge_moments(Moments.empty((1,), 4), full)
        merged_back = merge_moments(full, Moments.empty((1,), 4))
    for m in (merged, merged_back):  # the same unit: compare in it
        assert m.count[0] == 3 and m.unit == full.unit
        assert_array_equal(m.mean, full.mean)
        for got, expected in [(m.scatter, full.scatter), (m.t3, full.t3)]:
            assert_array_equal(got, expected)
        assert_array_equal(m.s4, full.s4)
    det = MahalanobisDetector(mode="tied", covariance="ledoit_wolf")
    with pytest.warns(CalibrationWarning):  # 3 calibration scores
        det.fit(X, [0, 1, 2])
    assert np.all(np.isfinite(det.calibration_scores_))


@pytest.mark.parametrize("scale", [2.0**600, 2.0**-600, 2.0**100])
def test_moments_of_extreme_rows_are_exact_rescalings(scale):
    # Rows of 1e180 (or 1e-180) have fourth moments far outside float64: the
    # moments are kept in a power-of-two unit, and scaling by a power of two is
    # exact, so they equal those of the unscaled rows bit for bit.
    rng = np.random.RandomState(4)
    X = rng.normal(size=(50, 3)) + np.array([1.0, -2.0, 0.5])
    cells = np.arange(50) % 2
    small = moments_of_rows(X, cells, 2)
    big = moments_of_rows(X * scale, cells, 2)
    assert np.isfinite(big.s4).all() and np.all(big.s4 > 0)
    r = big.unit / (scale * small.unit)  # a power of two
    assert_array_equal(big.count, small.count)
    assert_array_equal(big.mean, small.mean * scale)
    assert_array_equal(big.scatter * r**2, small.scatter)
    assert_array_equal(big.s4 * r**4, small.s4)
    # merging blocks of that scale, and far apart, stays finite and exact to
    # rounding (bound as above: eps64 * (|mean| / std)^2 with means ~8 std apart)
    shift = np.where(np.arange(50)[:, None] < 25, 4.0, -4.0)
    Y = (X + shift) * scale
    merged = merge_moments(
        moments_of_rows(Y[:25], np.zeros(25, int), 1),
        moments_of_rows(Y[25:], np.zeros(25, int), 1),
    )
    direct = moments_of_rows(Y, np.zeros(50, int), 1)
    assert np.isfinite(merged.s4).all()
    unit = max(merged.unit, direct.unit)  # compare in one unit (data's overflow)
    a, b = merged.in_unit(unit), direct.in_unit(unit)
    for x, ref in [(a.scatter, b.scatter), (a.t3, b.t3), (a.s4, b.s4)]:
        assert_allclose(x, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_ledoit_wolf_from_moments_matches_sklearn():
    rng = np.random.RandomState(2)
    X = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)) + 4.0
    m = moments_of_rows(X, np.zeros(40, int), 1)
    E = X - X.mean(axis=0)
    got = ledoit_wolf_shrinkage_from_moments(40, m.scatter[0], m.s4[0])
    # Same formula from the same sums: only summation order differs (eps64 * n).
    assert got == pytest.approx(ledoit_wolf_shrinkage(E, assume_centered=True))
    assert ledoit_wolf_shrinkage_from_moments(5, np.ones((1, 1)), 1.0) == 0.0


# ------------------------------------------------------- Mahalanobis exact
MAHA_CONFIGS = [
    {},
    {"mode": "tied"},
    {"mode": "per_class"},
    {"mode": "partial", "components": (1, None)},
    {"mode": "tied", "components": (0, 3)},
    {"covariance": "ledoit_wolf"},
    {"covariance": "ledoit_wolf", "mode": "per_class"},
    {"covariance": "oas", "mode": "tied"},
    {"covariance": 0.3},
    {"covariance": "identity", "mode": "tied"},
    {"eigenvalue_floor": 0.2},  # an active floor: the update in the eigenbasis
    {"contamination": 0.2},
]


@pytest.mark.parametrize("params", MAHA_CONFIGS, ids=repr)
def test_mahalanobis_partial_fit_equals_fit(params):
    X, y, T = _data()
    ref = MahalanobisDetector(**params).fit(X, y)
    det = _stream(MahalanobisDetector(**params), X, y)
    assert_array_equal(det.classes_, ref.classes_)
    assert det.n_features_in_ == ref.n_features_in_
    assert _rel(det.score_samples(T), ref.score_samples(T)) < MAHA_RTOL
    assert _rel(det.score_samples(X), ref.score_samples(X)) < MAHA_RTOL
    assert det.offset_ == pytest.approx(ref.offset_, rel=MAHA_RTOL)
    assert_allclose(det.means_, ref.means_, rtol=1e-12)  # eps64 * batches
    assert_allclose(det.covariance_, ref.covariance_, rtol=MAHA_RTOL, atol=1e-9)
    assert_array_equal(det.predict(T), ref.predict(T))


def test_mahalanobis_partial_fit_matches_sklearn_covariance():
    X, _, T = _data()
    det = _stream(MahalanobisDetector(eigenvalue_floor=0), X)
    emp = EmpiricalCovariance().fit(X)
    assert _rel(det.mahalanobis(T), emp.mahalanobis(T)) < MAHA_RTOL


def test_mahalanobis_partial_fit_string_labels_and_order():
    X, y, T = _data()
    names = np.array(["cat", "ant", "bee"])
    labels = np.where(y == -1, "x", names[np.maximum(y, 0)]).astype(object)
    labels[y == -1] = -1
    ref = MahalanobisDetector(mode="tied").fit(X, labels)
    det = _stream(MahalanobisDetector(mode="tied"), X, labels)
    assert list(det.classes_) == ["ant", "bee", "cat"]
    assert_array_equal(det.classes_, ref.classes_)
    assert _rel(det.class_distances(T), ref.class_distances(T)) < MAHA_RTOL
    with pytest.raises(TypeError, match="one type for class labels"):
        det.partial_fit(X[:5], np.arange(5))


def test_mahalanobis_partial_fit_float32():
    # The stream accumulates float32 rows in float64: its model is the float64
    # model of the same values (MAHA_RTOL), and it scores with float32 products,
    # which lose about d * sqrt(kappa) * eps32 = 5 * 141 * 1.2e-7 ~ 1e-4.
    X, y, T = _data()
    X32 = X.astype(np.float32)
    ref = MahalanobisDetector(mode="tied").fit(X32.astype(np.float64), y)
    det = _stream(MahalanobisDetector(mode="tied"), X32, y)
    assert det.whitening_.dtype == np.float32
    assert_allclose(det.covariance_, ref.covariance_, rtol=MAHA_RTOL, atol=1e-12)
    T32 = T.astype(np.float32)
    assert _rel(det.score_samples(T32), ref.score_samples(T32.astype(float))) < 4e-4
    assert det.offset_ == pytest.approx(ref.offset_, rel=4e-4)


def _brute_force_loo(X, rows):
    """Score of each X[i], i in rows, by a model fitted on X without row i."""
    out = []
    for i in rows:
        det = MahalanobisDetector(eigenvalue_floor=0).fit(np.delete(X, i, axis=0))
        out.append(det.score_samples(X[i : i + 1])[0])
    return np.array(out)


def test_offset_from_a_systematic_sample_beyond_the_cap():
    X, _, _ = _data(n=150)
    det = MahalanobisDetector(eigenvalue_floor=0)
    det._max_offset_rows = 40
    _stream(det, X, splits=[0, 30, 100])
    kept = det._stream.sample.index
    # 150 rows, at most 40 kept: every 4th row (stride doubled twice).
    assert_array_equal(kept, np.arange(0, 150, 4))
    assert_array_equal(det._stream.sample.rows, X[kept])
    expected = conformal_threshold(_brute_force_loo(X, kept), 0.025)
    assert det.offset_ == pytest.approx(expected, rel=MAHA_RTOL)
    # The model itself still uses every row.
    ref = MahalanobisDetector(eigenvalue_floor=0).fit(X)
    assert_allclose(det.covariance_, ref.covariance_, rtol=MAHA_RTOL)


def test_out_of_fold_offset_beyond_the_cap():
    # A component range has no closed form: out-of-fold scores of the kept rows.
    params = {"mode": "partial", "components": (1, None), "covariance": "ledoit_wolf"}
    X, _, _ = _data(n=120)
    det = MahalanobisDetector(**params)
    det._max_offset_rows = 50
    _stream(det, X, splits=[0, 70])
    kept = det._stream.sample.index
    assert_array_equal(kept, np.arange(0, 120, 4))
    folds = np.arange(120) % 5
    scores = []
    for i in kept:  # fit's folds: row i is scored by a model without fold i % 5
        sub = MahalanobisDetector(**params).fit(X[folds != i % 5])
        scores.append(sub.score_samples(X[i : i + 1])[0])
    assert det.offset_ == pytest.approx(
        conformal_threshold(scores, 0.025), rel=MAHA_RTOL
    )


def test_shrunk_leave_one_out_offset_beyond_the_cap():
    # Ledoit-Wolf: closed-form leave-one-out scores of the kept rows, equal to
    # scikit-learn refits without each row with the coefficient of all 120
    # rows (the full-data value, held fixed).
    X, _, _ = _data(n=120)
    det = MahalanobisDetector(covariance="ledoit_wolf", contamination=0.1)
    det._max_offset_rows = 50
    _stream(det, X, splits=[0, 70])
    kept = det._stream.sample.index
    assert_array_equal(kept, np.arange(0, 120, 4))
    s = LedoitWolf().fit(X).shrinkage_
    scores = [
        -ShrunkCovariance(shrinkage=s)
        .fit(np.delete(X, i, axis=0))
        .mahalanobis(X[i : i + 1])[0]
        for i in kept
    ]
    assert det.offset_ == pytest.approx(conformal_threshold(scores, 0.1), rel=MAHA_RTOL)
    assert_allclose(det.calibration_scores_, scores, rtol=MAHA_RTOL)


def test_mahalanobis_partial_fit_errors_leave_state_unchanged():
    X, y, T = _data()
    det = MahalanobisDetector(mode="per_class").partial_fit(X[:40], y[:40])
    before = det.score_samples(T)
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        det.partial_fit(X[-1:], np.array([7]))
    assert_array_equal(det.score_samples(T), before)
    assert det._stream.n_seen == 40 - np.sum(y[:40] == -1)
    with pytest.raises(ValueError, match="features"):
        det.partial_fit(X[:5, :3], y[:5])
    with pytest.raises(ValueError, match="labels y in every call or in none"):
        det.partial_fit(X[40:50])
    det.set_params(mode="tied")
    with pytest.raises(ValueError, match="same 'mode'"):
        det.partial_fit(X[40:50], y[40:50])
    with pytest.raises(ValueError, match="at least 2 in-distribution samples"):
        MahalanobisDetector().partial_fit(X[:1])
    with pytest.raises(ValueError, match="'contamination' parameter"):
        MahalanobisDetector(contamination=0.9).partial_fit(X)


def test_mahalanobis_partial_fit_after_fit_warns_and_restarts():
    X, _, T = _data()
    det = MahalanobisDetector().fit(X)
    with pytest.warns(UserWarning, match="starts a new model"):
        det.partial_fit(X[:50])
    ref = MahalanobisDetector().fit(X[:50])
    assert _rel(det.score_samples(T), ref.score_samples(T)) < MAHA_RTOL
    # fit after partial_fit starts over too.
    det.fit(X[50:])
    assert not hasattr(det, "_stream")
    ref = MahalanobisDetector().fit(X[50:])
    assert_array_equal(det.score_samples(T), ref.score_samples(T))


def test_partial_fit_does_not_mutate_input():
    X, y, _ = _data()
    X0, y0 = X.copy(), y.copy()
    _stream(MahalanobisDetector(mode="tied"), X, y)
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)


@pytest.mark.parametrize("make", [lambda: MahalanobisDetector(mode="tied")])
def test_stream_survives_pickling(make):
    X, y, T = _data()
    det = make().partial_fit(X[:70], y[:70])
    det = pickle.loads(pickle.dumps(det)).partial_fit(X[70:], y[70:])
    ref = make().fit(X, y)
    assert _rel(det.score_samples(T), ref.score_samples(T)) < RTOL
    assert det.offset_ == pytest.approx(ref.offset_, rel=RTOL)
