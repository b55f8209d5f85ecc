"""Tests for MahalanobisDetector against independent NumPy/scikit-learn code.

The reference below re-implements every mode from the papers' formulas with
scikit-learn's covariance estimators and ``np.linalg.pinv`` / ``np.linalg.eigh``
(the pseudo-inverse of Lee et al.'s ``sample_estimator``), without sharing any
code with ``sklearn_ood._mahalanobis``.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist
from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf, ShrunkCovariance

from sklearn_ood import MahalanobisDetector
from tests._calibration import conformal_threshold

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)

# Error bound of the float64 comparisons. A squared Mahalanobis distance
# computed through a factorisation (Cholesky or eigh) of a covariance with
# condition number kappa has a relative error of about d * kappa * eps64, and
# two estimates of the same covariance summed in different orders over n rows
# differ by about n * eps64 (relative), amplified by kappa again. The test data
# below have kappa < 300 (test_data_conditioning), d = 4 and n = 240:
# (4 + 240) * 300 * eps64 ~ 2e-11. RTOL leaves a margin of 60.
KAPPA_MAX = 300.0
RTOL = 1e-9
# The same with float32 rows and products: the whitening product loses about
# d * sqrt(kappa) * eps32 and the float32 scatter about kappa * eps32 per
# summation level; 8 * d * kappa * eps32 ~ 1e-3 bounds both.
RTOL32 = 8 * 4 * KAPPA_MAX * EPS32


# --------------------------------------------------------------------------
# independent reference
# --------------------------------------------------------------------------
def _cov_estimator(covariance, assume_centered):
    if covariance == "empirical":
        return EmpiricalCovariance(assume_centered=assume_centered)
    if covariance == "ledoit_wolf":
        return LedoitWolf(assume_centered=assume_centered)
    if covariance == "oas":
        return OAS(assume_centered=assume_centered)
    return ShrunkCovariance(shrinkage=covariance, assume_centered=assume_centered)


def _quad_form(diff, cov, components):
    """Squared distance of the rows of ``diff`` under ``cov`` (maybe partial)."""
    if components is None:
        P = np.linalg.pinv(cov)
        return np.einsum("ij,jk,ik->i", diff, P, diff)
    lam, U = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    start, stop = components
    stop = len(lam) if stop is None else stop
    Y = diff @ U[:, start:stop]
    return np.sum(Y**2 / lam[start:stop], axis=1)


def reference(Xtr, ytr, X, mode="marginal", covariance="empirical", components=None):
    """Return (scores, class distances, classes, covariance) from first principles."""
    Xtr = np.asarray(Xtr, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if mode in ("tied", "per_class") and ytr is not None:
        classes = np.unique(ytr)
    else:
        classes, ytr = np.array([0]), np.zeros(len(Xtr), dtype=int)
    means = np.array([Xtr[ytr == c].mean(axis=0) for c in classes])
    if covariance == "identity":
        D = cdist(X, means, "sqeuclidean")
        return -D.min(axis=1), D, classes, None
    if mode == "per_class":
        covs = [
            _cov_estimator(covariance, False).fit(Xtr[ytr == c]).covariance_
            for c in classes
        ]
    else:
        # Lee et al.: class-centred residuals, MLE covariance (global mean of
        # the residuals is 0); marginal: the usual centred estimate.
        R = Xtr - means[np.searchsorted(classes, ytr)]
        cov = _cov_estimator(covariance, True).fit(R).covariance_
        covs = [cov] * len(classes)
    D = np.column_stack(
        [
            _quad_form(X - mu, cov, components)
            for mu, cov in zip(means, covs, strict=True)
        ]
    )
    cov_out = np.stack(covs) if mode == "per_class" else covs[0]
    if components is None:
        return -D.min(axis=1), D, classes, cov_out
    # Kamoi & Kobayashi, Sec. 4.1: the class nearest by the full distance.
    D_full = np.column_stack(
        [_quad_form(X - mu, cov, None) for mu, cov in zip(means, covs, strict=True)]
    )
    return -D[np.arange(len(X)), D_full.argmin(axis=1)], D, classes, cov_out


def make_data(n=240, d=4, n_classes=3, shift=2.0, seed=0):
    """Correlated Gaussian classes with overlapping, well-conditioned shapes."""
    rng = np.random.RandomState(seed)
    A = rng.normal(size=(d, d)) + 2.0 * np.eye(d)
    y = np.arange(n) % n_classes
    centers = shift * rng.normal(size=(n_classes, d))
    # give each class a different shape so per_class != tied
    scales = 1.0 + 0.5 * np.arange(n_classes)
    X = (rng.normal(size=(n, d)) * scales[y][:, None]) @ A + centers[y] + 3.0
    return X, y


X_TRAIN, Y_TRAIN = make_data()
X_TEST = make_data(n=90, seed=1)[0] + np.random.RandomState(2).normal(size=(90, 4))


def test_data_conditioning():
    # The premise of RTOL: every covariance the tests estimate is well conditioned.
    for X, y in [(X_TRAIN, Y_TRAIN), (X_SMALL, Y_SMALL)]:
        means = np.array([X[y == c].mean(axis=0) for c in np.unique(y)])
        covs = [np.cov(X.T, bias=True), np.cov((X - means[y]).T, bias=True)]
        covs += [np.cov(X[y == c].T, bias=True) for c in np.unique(y)]
        assert max(np.linalg.cond(c) for c in covs) < KAPPA_MAX


CASES = [
    {"mode": "marginal"},
    {"mode": "tied"},
    {"mode": "per_class"},
    {"mode": "partial", "components": (1, 3)},
    {"mode": "partial", "components": (2, None)},
    {"mode": "marginal", "components": (0, 2)},
    {"mode": "tied", "components": (1, None)},
    {"mode": "per_class", "components": (0, 3)},
    {"mode": "marginal", "covariance": "identity"},
    {"mode": "tied", "covariance": "identity"},
    {"mode": "per_class", "covariance": "identity"},
    {"mode": "marginal", "covariance": "ledoit_wolf"},
    {"mode": "tied", "covariance": "ledoit_wolf"},
    {"mode": "per_class", "covariance": "ledoit_wolf"},
    {"mode": "marginal", "covariance": "oas"},
    {"mode": "tied", "covariance": "oas"},
    {"mode": "per_class", "covariance": "oas"},
    {"mode": "marginal", "covariance": 0.3},
    {"mode": "tied", "covariance": 0.7},
    {"mode": "per_class", "covariance": 0.0},
    {"mode": "partial", "components": (1, None), "covariance": "ledoit_wolf"},
]


# --------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------
@pytest.mark.parametrize("params", CASES, ids=repr)
def test_scores_match_reference(params):
    det = MahalanobisDetector(**params).fit(X_TRAIN, Y_TRAIN)
    ref_s, ref_D, classes, ref_cov = reference(X_TRAIN, Y_TRAIN, X_TEST, **params)
    assert_array_equal(det.classes_, classes)
    assert_allclose(det.score_samples(X_TEST), ref_s, rtol=RTOL)
    assert_allclose(det.class_distances(X_TEST), ref_D, rtol=RTOL)
    assert_allclose(det.mahalanobis(X_TEST), -ref_s, rtol=RTOL)
    if ref_cov is not None:
        assert_allclose(det.covariance_, ref_cov, rtol=RTOL, atol=1e-12)
    assert det.score_samples(X_TEST).dtype == np.float64


def test_marginal_is_sklearn_empirical_covariance():
    det = MahalanobisDetector().fit(X_TRAIN, Y_TRAIN)  # labels ignored
    emp = EmpiricalCovariance().fit(X_TRAIN)
    assert_allclose(det.score_samples(X_TEST), -emp.mahalanobis(X_TEST), rtol=RTOL)
    assert_allclose(det.covariance_, emp.covariance_, rtol=RTOL)
    assert_allclose(det.means_, X_TRAIN.mean(axis=0)[None], rtol=RTOL)


def test_per_class_is_max_over_sklearn_estimators():
    det = MahalanobisDetector(mode="per_class").fit(X_TRAIN, Y_TRAIN)
    D = np.column_stack(
        [
            EmpiricalCovariance().fit(X_TRAIN[Y_TRAIN == c]).mahalanobis(X_TEST)
            for c in range(3)
        ]
    )
    assert_allclose(det.score_samples(X_TEST), -D.min(axis=1), rtol=RTOL)
    assert det.covariance_.shape == (3, 4, 4)


def test_tied_is_lee_sample_estimator():
    # Lee et al.: EmpiricalCovariance on class-centred residuals, pinv precision.
    means = np.array([X_TRAIN[Y_TRAIN == c].mean(axis=0) for c in range(3)])
    emp = EmpiricalCovariance(assume_centered=False).fit(X_TRAIN - means[Y_TRAIN])
    P = emp.precision_
    D = np.column_stack(
        [np.einsum("ij,jk,ik->i", X_TEST - m, P, X_TEST - m) for m in means]
    )
    det = MahalanobisDetector(mode="tied").fit(X_TRAIN, Y_TRAIN)
    assert_allclose(det.score_samples(X_TEST), -D.min(axis=1), rtol=RTOL)
    assert_allclose(det.class_distances(X_TEST), D, rtol=RTOL)
    assert_allclose(det.covariance_, emp.covariance_, rtol=RTOL)


def test_partial_by_hand_eigh_and_full_range():
    mu = X_TRAIN.mean(axis=0)
    cov = (X_TRAIN - mu).T @ (X_TRAIN - mu) / len(X_TRAIN)
    lam, U = np.linalg.eigh(cov)
    lam, U = lam[::-1], U[:, ::-1]
    Y = (X_TEST - mu) @ U
    for start, stop in [(0, 1), (1, 3), (3, 4), (0, 4)]:
        det = MahalanobisDetector(mode="partial", components=(start, stop))
        det.fit(X_TRAIN)
        expected = np.sum(Y[:, start:stop] ** 2 / lam[start:stop], axis=1)
        assert_allclose(det.mahalanobis(X_TEST), expected, rtol=RTOL)
        assert_allclose(det.explained_variance_, lam[start:stop], rtol=RTOL)
    full = MahalanobisDetector().fit(X_TRAIN).score_samples(X_TEST)
    for comps in [(0, 4), (0, None)]:
        part = MahalanobisDetector(mode="partial", components=comps).fit(X_TRAIN)
        assert_allclose(part.score_samples(X_TEST), full, rtol=RTOL)
    # the parts add up to the whole
    lo = MahalanobisDetector(mode="partial", components=(0, 2)).fit(X_TRAIN)
    hi = MahalanobisDetector(mode="partial", components=(2, None)).fit(X_TRAIN)
    assert_allclose(
        lo.score_samples(X_TEST) + hi.score_samples(X_TEST), full, rtol=RTOL
    )


def test_tied_with_components_decomposes_tied_covariance():
    means = np.array([X_TRAIN[Y_TRAIN == c].mean(axis=0) for c in range(3)])
    R = X_TRAIN - means[Y_TRAIN]
    lam, U = np.linalg.eigh(R.T @ R / len(R))
    lam, U = lam[::-1], U[:, ::-1]
    D = np.column_stack(
        [np.sum(((X_TEST - m) @ U[:, 1:3]) ** 2 / lam[1:3], axis=1) for m in means]
    )
    P = np.linalg.inv(R.T @ R / len(R))
    D_full = np.column_stack(
        [np.einsum("ij,jk,ik->i", X_TEST - m, P, X_TEST - m) for m in means]
    )
    det = MahalanobisDetector(mode="tied", components=(1, 3)).fit(X_TRAIN, Y_TRAIN)
    assert_allclose(det.class_distances(X_TEST), D, rtol=RTOL)
    nearest = D_full.argmin(axis=1)
    assert_allclose(
        det.score_samples(X_TEST), -D[np.arange(len(D)), nearest], rtol=RTOL
    )


@pytest.mark.parametrize("mode", ["marginal", "tied", "per_class"])
def test_identity_is_squared_euclidean_to_nearest_mean(mode):
    det = MahalanobisDetector(mode=mode, covariance="identity").fit(X_TRAIN, Y_TRAIN)
    if mode == "marginal":
        means = X_TRAIN.mean(axis=0, keepdims=True)
    else:
        means = np.array([X_TRAIN[Y_TRAIN == c].mean(axis=0) for c in range(3)])
    D = ((X_TEST[:, None, :] - means[None]) ** 2).sum(axis=2)
    assert_allclose(det.score_samples(X_TEST), -D.min(axis=1), rtol=RTOL)


@pytest.mark.parametrize(
    "covariance, estimator",
    [
        ("ledoit_wolf", LedoitWolf()),
        ("oas", OAS()),
        (0.25, ShrunkCovariance(shrinkage=0.25)),
        (1.0, ShrunkCovariance(shrinkage=1.0)),
    ],
)
def test_shrinkage_matches_sklearn_marginal(covariance, estimator):
    det = MahalanobisDetector(covariance=covariance).fit(X_TRAIN)
    estimator.fit(X_TRAIN)
    assert_allclose(det.covariance_, estimator.covariance_, rtol=RTOL)
    assert_allclose(
        det.score_samples(X_TEST), -estimator.mahalanobis(X_TEST), rtol=RTOL
    )


@pytest.mark.parametrize("covariance", ["empirical", "ledoit_wolf", "identity"])
def test_per_class_without_labels_equals_marginal(covariance):
    # One class with its own covariance is the marginal model.
    det = MahalanobisDetector(mode="per_class", covariance=covariance).fit(X_TRAIN)
    ref = MahalanobisDetector(covariance=covariance).fit(X_TRAIN)
    assert_allclose(det.score_samples(X_TEST), ref.score_samples(X_TEST), rtol=RTOL)
    assert det.offset_ == pytest.approx(ref.offset_, rel=RTOL)


def test_tied_without_labels_equals_marginal():
    tied = MahalanobisDetector(mode="tied", contamination=0.1).fit(X_TRAIN)
    marg = MahalanobisDetector(contamination=0.1).fit(X_TRAIN)
    assert_allclose(tied.score_samples(X_TEST), marg.score_samples(X_TEST))
    assert tied.offset_ == pytest.approx(marg.offset_)
    assert_array_equal(tied.classes_, [0])


@pytest.mark.parametrize("params", CASES, ids=repr)
def test_float32_stays_float32(params):
    X32, Xt32 = X_TRAIN.astype(np.float32), X_TEST.astype(np.float32)
    d32 = MahalanobisDetector(**params).fit(X32, Y_TRAIN)
    d64 = MahalanobisDetector(**params).fit(X32.astype(np.float64), Y_TRAIN)
    assert d32.whitening_.dtype == np.float32
    assert d64.whitening_.dtype == np.float64
    s32 = d32.score_samples(Xt32)
    assert s32.dtype == np.float64
    assert_allclose(s32, d64.score_samples(Xt32.astype(np.float64)), rtol=RTOL32)
    assert d32.offset_ == pytest.approx(d64.offset_, rel=RTOL32)


# --------------------------------------------------------------------------
# offset_: leave-one-out / out-of-fold training scores
# --------------------------------------------------------------------------
X_SMALL, Y_SMALL = make_data(n=60, d=3, n_classes=3, shift=1.0, seed=3)


def _brute_force_loo(params):
    n = len(X_SMALL)
    scores = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        scores[i] = reference(
            X_SMALL[keep], Y_SMALL[keep], X_SMALL[i : i + 1], **params
        )[0][0]
    return scores


def _by_hand_out_of_fold(params):
    fold = np.arange(len(X_SMALL)) % 5
    scores = np.empty(len(X_SMALL))
    for k in range(5):
        test = fold == k
        scores[test] = reference(
            X_SMALL[~test], Y_SMALL[~test], X_SMALL[test], **params
        )[0]
    return scores


def _check_offsets(params, train_scores):
    for c in [0.05, 0.1, 0.25, 0.5]:
        det = MahalanobisDetector(contamination=c, **params).fit(X_SMALL, Y_SMALL)
        expected = conformal_threshold(train_scores, c)
        assert det.offset_ == pytest.approx(expected, rel=RTOL)
    det = MahalanobisDetector(**params).fit(X_SMALL, Y_SMALL)  # "auto"
    assert det.offset_ == pytest.approx(
        conformal_threshold(train_scores, 0.025), rel=RTOL
    )


def test_small_data_exercises_cross_class_terms():
    # In tied mode some training samples are nearest to another class's mean,
    # so the leave-one-out test below covers the other-class update as well.
    _, D, _, _ = reference(X_SMALL, Y_SMALL, X_SMALL, mode="tied")
    assert np.sum(D.argmin(axis=1) != Y_SMALL) >= 3


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "marginal"},
        {"mode": "tied"},
        {"mode": "per_class"},
        {"mode": "partial"},
        {"mode": "marginal", "covariance": "identity"},
        {"mode": "tied", "covariance": "identity"},
        {"mode": "per_class", "covariance": "identity"},
    ],
    ids=repr,
)
def test_offset_is_leave_one_out_percentile(params):
    _check_offsets(params, _brute_force_loo(params))


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "partial", "components": (1, None)},
        {"mode": "tied", "components": (0, 2)},
        {"mode": "per_class", "components": (1, 3)},
        # Shrinkage with a component range: the eigenbasis moves with the
        # data, so still out-of-fold (without one: test_mahalanobis_loo.py).
        {"mode": "partial", "components": (1, None), "covariance": "ledoit_wolf"},
        {"mode": "tied", "components": (0, 2), "covariance": 0.2},
        {"mode": "per_class", "components": (1, 3), "covariance": "oas"},
    ],
    ids=repr,
)
def test_offset_is_out_of_fold_percentile(params):
    _check_offsets(params, _by_hand_out_of_fold(params))


# --------------------------------------------------------------------------
# awkward but valid input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["marginal", "tied", "per_class", "partial"])
def test_more_features_than_samples_gives_finite_scores(mode):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 20))
    y = np.arange(12) % 2
    det = MahalanobisDetector(mode=mode, contamination=0.1).fit(X, y)
    scores = det.score_samples(rng.normal(size=(5, 20)))
    assert np.all(np.isfinite(scores))
    assert np.isfinite(det.offset_)


@pytest.mark.parametrize("mode", ["marginal", "tied", "per_class", "partial"])
def test_constant_column(mode):
    X, y = make_data(n=90, d=3, seed=4)
    X = np.column_stack([X, np.full(len(X), 5.0)])
    det = MahalanobisDetector(mode=mode).fit(X, y)
    assert np.isfinite(det.offset_)
    same = X[:3].copy()
    off = same.copy()
    off[:, 3] += 0.01  # leaves the constant column
    s_same, s_off = det.score_samples(same), det.score_samples(off)
    assert np.all(np.isfinite(s_same)) and np.all(np.isfinite(s_off))
    assert np.all(s_off < s_same)
    # away from the constant direction it agrees with a fit on the rest
    rest = MahalanobisDetector(mode=mode).fit(X[:, :3], y)
    # The constant column adds exactly 0 for these rows; the rest differs only by
    # the factorisation (eigenbasis vs Cholesky): within RTOL's bound.
    assert_allclose(s_same, rest.score_samples(same[:, :3]), rtol=RTOL)


def test_string_labels():
    names = np.array(["cat", "dog", "eel"])
    for mode in ["tied", "per_class"]:
        det_s = MahalanobisDetector(mode=mode, contamination=0.1)
        det_s.fit(X_TRAIN, names[Y_TRAIN])
        det_i = MahalanobisDetector(mode=mode, contamination=0.1)
        det_i.fit(X_TRAIN, Y_TRAIN)
        assert_array_equal(det_s.classes_, names)
        assert_allclose(det_s.score_samples(X_TEST), det_i.score_samples(X_TEST))
        assert det_s.offset_ == pytest.approx(det_i.offset_)
        # object arrays and lists of str behave the same
        det_o = MahalanobisDetector(mode=mode).fit(X_TRAIN, list(names[Y_TRAIN]))
        assert_array_equal(det_o.classes_, names)


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "marginal"},
        {"mode": "tied"},
        {"mode": "per_class"},
        {"mode": "tied", "covariance": "ledoit_wolf"},
    ],
    ids=repr,
)
def test_outlier_rows_are_left_out(params):
    rng = np.random.RandomState(5)
    X_out = rng.uniform(-30, 30, size=(15, 4))
    X = np.vstack([X_TRAIN, X_out])
    y = np.r_[Y_TRAIN, -np.ones(15, dtype=int)]
    perm = rng.permutation(len(X))
    with_out = MahalanobisDetector(contamination=0.1, **params)
    with_out.fit(X[perm], y[perm])
    # the in-distribution rows in the same relative order
    keep = y[perm] != -1
    without = MahalanobisDetector(contamination=0.1, **params)
    without.fit(X[perm][keep], y[perm][keep])
    assert_allclose(with_out.score_samples(X_TEST), without.score_samples(X_TEST))
    assert with_out.offset_ == pytest.approx(without.offset_)
    assert -1 not in with_out.classes_


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "marginal"},
        {"mode": "tied", "components": (0, 2)},
        {"mode": "per_class", "covariance": "oas"},
    ],
    ids=repr,
)
def test_inputs_are_not_modified(params):
    X = X_TRAIN.copy()
    y = Y_TRAIN.copy()
    y[:5] = -1
    X_copy, y_copy = X.copy(), y.copy()
    Xt = X_TEST.copy()
    det = MahalanobisDetector(**params).fit(X, y)
    det.score_samples(Xt)
    det.class_distances(Xt)
    det.predict(Xt)
    assert_array_equal(X, X_copy)
    assert_array_equal(y, y_copy)
    assert_array_equal(Xt, X_TEST)


def test_score_does_not_depend_on_chunking():
    from sklearn import config_context

    det = MahalanobisDetector(mode="tied").fit(X_TRAIN, Y_TRAIN)
    full = det.score_samples(X_TEST)
    with config_context(working_memory=1e-4):  # ~100 bytes: one row per chunk
        chunked = det.score_samples(X_TEST)
    # Only the BLAS blocking differs: a few eps64 * (|z|^2 + |M|^2) of the tied
    # expansion, with |M|^2 / distance < 1e3 here: 1e-12 is 4500 eps64.
    assert_allclose(chunked, full, rtol=1e-12)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad):
    X = X_TRAIN.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        MahalanobisDetector().fit(X)
    det = MahalanobisDetector().fit(X_TRAIN)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        det.score_samples(X)


def test_shape_errors():
    det = MahalanobisDetector().fit(X_TRAIN)
    with pytest.raises(ValueError, match="features"):
        det.score_samples(X_TEST[:, :3])
    with pytest.raises(ValueError, match="2D array"):
        MahalanobisDetector().fit(X_TRAIN[:, 0])
    with pytest.raises(ValueError, match="2D array"):
        det.score_samples(X_TEST[0])
    with pytest.raises(ValueError, match="0 sample"):
        MahalanobisDetector().fit(np.empty((0, 4)))
    with pytest.raises(ValueError, match="samples"):
        MahalanobisDetector().fit(X_TRAIN[:1])
    # one in-distribution row left after removing the known outliers
    with pytest.raises(ValueError, match="samples"):
        MahalanobisDetector().fit(X_TRAIN[:3], [0, -1, -1])


def test_per_class_singleton_class_raises():
    y = Y_TRAIN.copy()
    y[0] = 7
    with pytest.raises(ValueError, match=r"per_class.*at least 2 samples per class"):
        MahalanobisDetector(mode="per_class").fit(X_TRAIN, y)
    # tied mode copes with it
    det = MahalanobisDetector(mode="tied").fit(X_TRAIN, y)
    assert_array_equal(det.classes_, [0, 1, 2, 7])


def test_wrong_label_length_raises():
    with pytest.raises(ValueError, match="same length"):
        MahalanobisDetector(mode="tied").fit(X_TRAIN, Y_TRAIN[:-1])


@pytest.mark.parametrize(
    "params, name",
    [
        ({"mode": "foo"}, "mode"),
        ({"mode": None}, "mode"),
        ({"components": (0,)}, "components"),
        ({"components": (0, 1, 2)}, "components"),
        ({"components": (2, 2)}, "components"),
        ({"components": (3, 1)}, "components"),
        ({"components": (0, 5)}, "components"),
        ({"components": (-1, 2)}, "components"),
        ({"components": (0.0, 2)}, "components"),
        ({"components": (0, 2.0)}, "components"),
        ({"components": (True, 2)}, "components"),
        ({"components": [0, 2]}, "components"),
        ({"covariance": "foo"}, "covariance"),
        ({"covariance": 1.5}, "covariance"),
        ({"covariance": -0.1}, "covariance"),
        ({"eigenvalue_floor": -1e-3}, "eigenvalue_floor"),
        ({"eigenvalue_floor": 1.0}, "eigenvalue_floor"),
        ({"eigenvalue_floor": "big"}, "eigenvalue_floor"),
        ({"contamination": 0.0}, "contamination"),
        ({"contamination": 0.6}, "contamination"),
        ({"contamination": "foo"}, "contamination"),
    ],
    ids=repr,
)
def test_invalid_parameters(params, name):
    det = MahalanobisDetector(**params)
    with pytest.raises(
        ValueError, match=f"The '{name}' parameter of MahalanobisDetector must be"
    ):
        det.fit(X_TRAIN, Y_TRAIN)


@pytest.mark.parametrize("mode", ["marginal", "tied", "per_class"])
def test_floored_leave_one_out_matches_refits(mode):
    # One direction with a variance far below the eigenvalue floor: the
    # closed-form update (eigenbasis and floor held fixed) must agree with
    # refitting the detector without each sample.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 5))
    X[:, 4] *= 1e-4
    y = rng.randint(0, 3, 150)
    X[:, :2] += y[:, None]
    det = MahalanobisDetector(mode=mode, contamination=0.1).fit(X, y)
    eig = np.atleast_2d(det.explained_variance_)
    assert np.any(np.isclose(eig, 1e-6 * eig.max(axis=1, keepdims=True)))
    loo = []
    for i in range(X.shape[0]):
        keep = np.arange(X.shape[0]) != i
        ref = MahalanobisDetector(mode=mode).fit(X[keep], y[keep])
        loo.append(ref.score_samples(X[i : i + 1])[0])
    # Not a rounding bound: the one-row update holds the eigenbasis fixed, and
    # removing one of n = 150 rows turns the nearly degenerate floored
    # directions by O(1 / n); their weight is capped by the floor, so the
    # leave-one-out distances move by well under 1 / n = 7e-3 relative.
    assert det.offset_ == pytest.approx(conformal_threshold(loo, 0.1), rel=1e-3)


# --------------------------------------------------------------------------
# eigenvalue_floor="pinv": the papers' pseudo-inverse (scikit-learn's pinvh)
# --------------------------------------------------------------------------
def _pinv_rows(n, d, seed, constant=0, collinear=False):
    rng = np.random.RandomState(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    X = rng.normal(size=(n, d)) @ mix + 2.0
    if constant:
        X[:, -constant:] = 7.0
    if collinear:
        X[:, 0] = X[:, 1] - 2.0 * X[:, 2]
    return X


def _pinv_rtol(covariances, n):
    """Relative error bound of pseudo-inverse distances, from their spectra.

    Checks the premise of comparing two pseudo-inverses: each eigenvalue is
    clearly above scipy's cutoff (d * eps64 * largest) or clearly below it, so
    rounding cannot move a direction across. The kept directions then give
    distances with relative error about (n + d) * kappa * eps64, kappa the
    condition number of the kept spectrum; returns 100 times that.
    """
    kappa = 1.0
    for cov in covariances:
        lam = np.linalg.eigvalsh(cov)
        d = cov.shape[0]
        cutoff = d * EPS64 * np.abs(lam).max()
        assert np.all((lam > 1e3 * cutoff) | (np.abs(lam) < 0.25 * cutoff))
        kept = lam[lam > cutoff]
        kappa = max(kappa, kept.max() / kept.min())
    return 100 * (n + d) * kappa * EPS64


PINV_MARGINAL = {
    "more features than rows": (10, 80, 0, False),
    "constant features": (90, 6, 2, False),
    "collinear feature": (90, 5, 0, True),
    "full rank": (90, 5, 0, False),
}


@pytest.mark.parametrize("case", list(PINV_MARGINAL), ids=str)
def test_pinv_marginal_equals_sklearn_empirical_covariance(case):
    n, d, constant, collinear = PINV_MARGINAL[case]
    X = _pinv_rows(n, d, 0, constant, collinear)
    T = _pinv_rows(40, d, 1) + np.random.RandomState(2).normal(size=(40, d))
    emp = EmpiricalCovariance().fit(X)
    rtol = _pinv_rtol([emp.covariance_], n)
    det = MahalanobisDetector(eigenvalue_floor="pinv").fit(X)
    assert_allclose(det.score_samples(T), -emp.mahalanobis(T), rtol=rtol)
    assert_allclose(det.covariance_, emp.covariance_, rtol=rtol, atol=1e-14)
    assert np.all(np.isfinite(det.calibration_scores_))


@pytest.mark.parametrize("mode", ["tied", "per_class"])
def test_pinv_tied_and_per_class_use_pinvh_of_their_covariance(mode):
    # 3 classes of 20 rows in 70 dimensions: every class covariance (rank 19)
    # and the tied one (rank 57) are singular.
    X = _pinv_rows(60, 70, 3)
    y = np.arange(60) % 3
    X[y == 1] += 1.5
    T = _pinv_rows(30, 70, 4)
    means = np.array([X[y == c].mean(axis=0) for c in range(3)])
    if mode == "tied":
        # Lee et al.'s sample_estimator: EmpiricalCovariance of the class-centred
        # rows, precision_ = pinvh(covariance_).
        emp = EmpiricalCovariance(assume_centered=False).fit(X - means[y])
        covs, precisions = [emp.covariance_], [emp.precision_] * 3
    else:
        emps = [EmpiricalCovariance().fit(X[y == c]) for c in range(3)]
        covs = [e.covariance_ for e in emps]
        precisions = [e.precision_ for e in emps]
    D = np.column_stack(
        [np.einsum("ij,jk,ik->i", T - m, P, T - m) for m, P in zip(means, precisions)]
    )
    rtol = _pinv_rtol(covs, 60)
    det = MahalanobisDetector(mode=mode, eigenvalue_floor="pinv").fit(X, y)
    assert_allclose(det.class_distances(T), D, rtol=rtol)
    assert_allclose(det.score_samples(T), -D.min(axis=1), rtol=rtol)


def test_pinv_float32_rows_are_accumulated_in_float64():
    # float32 rounding of the scatter would read as variance in the directions
    # the pseudo-inverse drops: float32 rows give the model of the float64 fit
    # of the same values (the scatter is accumulated in float64).
    X32 = _pinv_rows(10, 80, 5).astype(np.float32)
    T32 = _pinv_rows(20, 80, 6).astype(np.float32)
    ref = MahalanobisDetector(eigenvalue_floor="pinv").fit(X32.astype(np.float64))
    det = MahalanobisDetector(eigenvalue_floor="pinv").fit(X32)
    rtol = _pinv_rtol([ref.covariance_], 10)
    assert_allclose(det.covariance_, ref.covariance_, rtol=rtol, atol=1e-14)
    assert_allclose(det.explained_variance_, ref.explained_variance_, rtol=rtol)
    # The 9 directions kept span an eigenvalue ratio above 1e-6, so the products
    # run in float32: d * sqrt(kappa) * eps32 relative, kappa < 1e4 here.
    kappa = ref.explained_variance_.max() / ref.explained_variance_.min()
    assert det.whitening_.dtype == np.float32 and kappa < 1e4
    assert_allclose(
        det.score_samples(T32),
        ref.score_samples(T32.astype(np.float64)),
        rtol=8 * 80 * np.sqrt(kappa) * EPS32,
    )


def _sklearn_pinv_score(X_fit, X):
    return -EmpiricalCovariance().fit(X_fit).mahalanobis(X)


def test_pinv_leave_one_out_closed_form_matches_refits():
    # Constant features, more rows than features: removing a row keeps the
    # null space, so the closed-form update is exact for the pseudo-inverse.
    X = _pinv_rows(60, 6, 7, constant=2)
    det = MahalanobisDetector(eigenvalue_floor="pinv", contamination=0.1).fit(X)
    loo = np.array(
        [
            _sklearn_pinv_score(np.delete(X, i, axis=0), X[i : i + 1])[0]
            for i in range(len(X))
        ]
    )
    # Sherman-Morrison denominators 1 - c a >= 0.5 here: at most a factor 2 on
    # the bound of the refits' distances.
    rtol = 2 * _pinv_rtol([np.cov(X.T, bias=True)], 60)
    assert_allclose(det.calibration_scores_, loo, rtol=rtol)
    assert det.offset_ == conformal_threshold(det.calibration_scores_, 0.1)


def test_pinv_more_features_than_rows_uses_out_of_fold_scores():
    # Each row is alone in some direction: no closed form (its removal changes
    # the rank); the calibration scores are out-of-fold, row i in fold i % 5.
    X = _pinv_rows(30, 50, 8)
    det = MahalanobisDetector(eigenvalue_floor="pinv").fit(X)
    fold = np.arange(30) % 5
    expected = np.empty(30)
    covs = []
    for k in range(5):
        expected[fold == k] = _sklearn_pinv_score(X[fold != k], X[fold == k])
        covs.append(np.cov(X[fold != k].T, bias=True))
    assert_allclose(det.calibration_scores_, expected, rtol=_pinv_rtol(covs, 30))


# --------------------------------------------------------------------------
# component ranges with several classes: Kamoi & Kobayashi, Sec. 4.1
# --------------------------------------------------------------------------
def _kamoi_data(seed=11, n=600):
    """Classes far apart along the top principal component (so the full
    distance picks the class), and one standard deviation apart, alternating,
    along a low one (so the smallest partial distance often picks another)."""
    rng = np.random.RandomState(seed)
    d = 6
    U = np.linalg.qr(rng.normal(size=(d, d)))[0]
    lam = np.array([9.0, 4.0, 1.0, 0.8, 0.6, 0.5])
    y = np.arange(n) % 3
    mu = np.outer([0.0, 24.0, 48.0], U[:, 0]) + np.outer([0.0, 1.0, -1.0], U[:, 4])
    X = (rng.normal(size=(n, d)) * np.sqrt(lam)) @ U.T + mu[y]
    return X, y


def _kamoi_reference(X, y, T, start, per_class=False):
    """Full and partial distances by NumPy eigh, Sec. 4.1's rule, and the other."""
    classes = np.unique(y)
    means = np.array([X[y == c].mean(axis=0) for c in classes])
    if per_class:
        covs = [np.cov(X[y == c].T, bias=True) for c in classes]
    else:
        covs = [np.cov((X - means[y]).T, bias=True)] * len(classes)
    full, part = [], []
    for m, cov in zip(means, covs):
        lam, U = np.linalg.eigh(cov)
        lam, U = lam[::-1], U[:, ::-1]
        Y2 = ((T - m) @ U) ** 2 / lam
        full.append(Y2.sum(axis=1))
        part.append(Y2[:, start:].sum(axis=1))
    full, part = np.column_stack(full), np.column_stack(part)
    kamoi = -part[np.arange(len(T)), full.argmin(axis=1)]
    return kamoi, -part.min(axis=1), part


@pytest.mark.parametrize("per_class", [False, True], ids=["tied", "per_class"])
def test_partial_distance_to_the_class_nearest_by_full_distance(per_class):
    X, y = _kamoi_data(n=900)
    X, y, T = X[:600], y[:600], X[600:]
    kamoi, smallest, part = _kamoi_reference(X, y, T, 2, per_class)
    # the data make the two rules differ for many rows
    assert np.mean(np.abs(kamoi - smallest) > 1e-6 * np.abs(kamoi)) > 0.2
    mode = "per_class" if per_class else "tied"
    det = MahalanobisDetector(mode=mode, components=(2, None)).fit(X, y)
    # float64 eigh vs ours: kappa(cov) < 20 here, d = 6: within RTOL's bound
    assert_allclose(det.score_samples(T), kamoi, rtol=RTOL)
    assert_allclose(det.class_distances(T), part, rtol=RTOL)
    # calibration: out-of-fold scores under the same rule
    fold = np.arange(len(X)) % 5
    expected = np.empty(len(X))
    for k in range(5):
        tr = fold != k
        expected[~tr] = _kamoi_reference(X[tr], y[tr], X[~tr], 2, per_class)[0]
    assert_allclose(det.calibration_scores_, expected, rtol=RTOL)


# --------------------------------------------------------------------------
# finite but extreme input
# --------------------------------------------------------------------------
EXTREME_PARAMS = [
    {},
    {"mode": "tied"},
    {"mode": "per_class"},
    {"mode": "partial", "components": (1, None)},
    {"covariance": "ledoit_wolf"},
    {"covariance": "oas", "mode": "tied"},
    {"covariance": "identity", "mode": "per_class"},
    {"eigenvalue_floor": "pinv"},
]


@pytest.mark.parametrize("params", EXTREME_PARAMS, ids=repr)
@pytest.mark.parametrize(
    "scale, dtype",
    [
        (2.0**100, np.float32),  # 1e30 in float32
        (2.0**-100, np.float32),  # 1e-30: float32 squares underflow
        (2.0**490, np.float64),  # 1e148: squares of squares overflow
        (2.0**-500, np.float64),
    ],
    ids=["f32-1e30", "f32-1e-30", "f64-1e150", "f64-1e-150"],
)
def test_extreme_scales_give_the_scores_of_the_unscaled_rows(params, scale, dtype):
    # Mahalanobis scores do not change when every feature is multiplied by the
    # same power of two, and that scaling is exact in floating point.
    X, T = X_TRAIN.astype(dtype), X_TEST.astype(dtype)
    Xs, Ts = X * dtype(scale), T * dtype(scale)
    assert np.all(np.isfinite(Xs)) and np.all(Xs != 0)
    det = MahalanobisDetector(contamination=0.1, **params).fit(Xs, Y_TRAIN)
    # Huge float32 rows are promoted to float64 (exact); tiny float32 rows are
    # accumulated in float64 rather than float32: compare with the float64 fit
    # of the same values, within the float32 bound of the products.
    ref = MahalanobisDetector(contamination=0.1, **params)
    ref.fit(X.astype(np.float64), Y_TRAIN)
    rtol = RTOL32 if dtype == np.float32 else RTOL
    # The Euclidean baseline (identity covariance) scales with scale**2.
    unit = scale**2 if params.get("covariance") == "identity" else 1.0
    scores = det.score_samples(Ts)
    assert np.all(np.isfinite(scores))
    assert_allclose(scores / unit, ref.score_samples(T.astype(np.float64)), rtol=rtol)
    assert det.offset_ / unit == pytest.approx(ref.offset_, rel=rtol)
    # the torch path (CPU tensors), and partial_fit over three batches
    torch = pytest.importorskip("torch")
    assert_allclose(det.score_samples(torch.from_numpy(Ts)), scores, rtol=RTOL32)
    stream = MahalanobisDetector(contamination=0.1, **params)
    for part in np.array_split(np.arange(len(Xs)), 3):
        stream.partial_fit(Xs[part], Y_TRAIN[part])
    assert_allclose(stream.score_samples(Ts), scores, rtol=rtol)


@pytest.mark.parametrize("params", EXTREME_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mixed_feature_scales_give_finite_scores(params, dtype):
    # Features of 1e120, 1, 1e-120 and 1e9 (1e30 / 1e-30 in float32): the
    # relative eigenvalue floor (or the pseudo-inverse) then ignores the small
    # features, but every score stays finite and an outlier along the largest
    # feature still scores lowest.
    e = 100 if dtype == np.float32 else 400
    scales = np.array([2.0**e, 1.0, 2.0**-e, 2.0**30]).astype(dtype)
    X = X_TRAIN.astype(dtype) * scales
    T = X_TEST.astype(dtype) * scales
    det = MahalanobisDetector(**params).fit(X, Y_TRAIN)
    far = T[:1].copy()
    far[0, 0] *= 50
    scores = det.score_samples(np.vstack([T, far]))
    assert np.all(np.isfinite(scores)) and np.isfinite(det.offset_)
    assert scores[-1] < scores[:-1].min()
    torch = pytest.importorskip("torch")
    assert np.all(np.isfinite(det.score_samples(torch.from_numpy(T))))


def test_rows_whose_distances_overflow_float64_raise():
    # Training rows of 1e-150, new rows of 1e150: the squared distance (1e600)
    # is beyond float64. A clear error, never an infinite score.
    det = MahalanobisDetector().fit(X_TRAIN * 2.0**-500)
    far = X_TEST * 2.0**490
    with pytest.raises(ValueError, match=r"values up to .* overflow float64"):
        det.score_samples(far)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"values up to .* overflow float64"):
        det.score_samples(torch.from_numpy(far))


@pytest.mark.parametrize("floor", [1e-6, 0.0, "pinv"])
@pytest.mark.parametrize("mode", ["marginal", "tied", "per_class"])
def test_constant_training_rows_give_finite_scores(floor, mode):
    X = np.full((30, 3), 4.0)
    y = np.arange(30) % 2
    det = MahalanobisDetector(mode=mode, eigenvalue_floor=floor).fit(X, y)
    T = np.array([[4.0, 4.0, 4.0], [4.0, 5.0, 4.0]])
    scores = det.score_samples(T)
    assert np.all(np.isfinite(scores)) and np.isfinite(det.offset_)
    assert scores[0] == 0.0
    if floor == "pinv":  # every direction has zero variance: all ignored
        assert scores[1] == 0.0
    else:  # floored: a deviation counts as very unusual
        assert scores[1] < -1e5


@pytest.mark.parametrize("floor", [0.0, "pinv"])
@pytest.mark.parametrize("mode", ["marginal", "tied", "per_class", "partial"])
def test_more_features_than_samples_without_floor(floor, mode):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 20))
    y = np.arange(12) % 2
    det = MahalanobisDetector(mode=mode, eigenvalue_floor=floor, contamination=0.1)
    det.fit(X, y)
    assert np.all(np.isfinite(det.score_samples(rng.normal(size=(5, 20)))))
    assert np.all(np.isfinite(det.calibration_scores_))


# --------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------
def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted(
        (i["filepath"], i["num_threads"])
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def test_single_blas_thread_limits_and_restores():
    from threadpoolctl import threadpool_limits

    from sklearn_ood.utils._threads import single_blas_thread

    with threadpool_limits(2, user_api="blas"):
        outer = _blas_threads()
        with single_blas_thread():
            assert all(n == 1 for _, n in _blas_threads())
            with single_blas_thread():  # nested
                assert all(n == 1 for _, n in _blas_threads())
            assert all(n == 1 for _, n in _blas_threads())
        assert _blas_threads() == outer


def test_concurrent_fits_restore_blas_threads():
    from concurrent.futures import ThreadPoolExecutor

    before = _blas_threads()

    def fit(seed):
        X = make_data(n=120, d=12, seed=seed)[0]
        return MahalanobisDetector(covariance="ledoit_wolf").fit(X).offset_

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(fit, seed) for seed in range(8)]
        offsets = [fit(seed) for seed in range(8, 12)]  # the main thread limits
        offsets += [f.result() for f in futures]
    assert np.all(np.isfinite(offsets))
    assert _blas_threads() == before
    # and the main thread still controls the limit afterwards
    from sklearn_ood.utils._threads import single_blas_thread

    with single_blas_thread():
        assert all(n == 1 for _, n in _blas_threads())
    assert _blas_threads() == before


# --------------------------------------------------------------------------
# the speed benchmark's harness (a smoke run at a tiny size)
# --------------------------------------------------------------------------
def test_bench_mahalanobis_smoke(capsys, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_mahalanobis.py"
    spec = importlib.util.spec_from_file_location("bench_mahalanobis", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_mahalanobis", bench)
    spec.loader.exec_module(bench)
    sizes = ["--n", "20000", "--d", "32", "--repeat", "2", "--mcd-rows", "100"]
    bench.main([*sizes, "--pause", "0.01"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    ours = [row for row in rows if row.startswith("| sklearn-ood")]
    assert len(ours) == 2  # the default and the pseudo-inverse
    for row in rows:
        if "not run" in row or "rows only" in row or "contender" in row:
            continue
        cells = [cell.strip() for cell in row.split("|")]
        ratios = [float(cells[i].rstrip("x")) for i in (4, 5, 6)]
        assert min(ratios) > 0
        if "hardware bound" in row:  # timing only: no scores
            assert cells[7] == "n/a"
            continue
        # float32 scores vs a float64 reference: eps32 * d * sqrt(kappa) with
        # kappa = d = 32 (the benchmark's spectrum 1 / (1 + i)): ~1e-5
        assert float(cells[7]) < 1e-4
    # The ratio column against the printed times: each time is rounded to
    # +-0.0005 s, the ratio to +-0.005.
    tight = next(row for row in rows if "one BLAS library" in row)
    b = float(tight.split("|")[2])
    for row in ours:
        cells = [cell.strip() for cell in row.split("|")]
        a = float(cells[2])
        if b >= 0.002:  # printed with enough digits to check
            slack = 0.005 + 0.0005 / (b - 0.0005) * (1.0 + a / (b - 0.0005))
            assert abs(float(cells[4].rstrip("x")) - a / b) <= slack
    assert "sklearn-ood / bare SGEMM of its flops (best to best): " in out


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "marginal", "covariance": "ledoit_wolf"},
        {"mode": "per_class"},
        {"mode": "partial", "components": (2, None)},
    ],
    ids=repr,
)
def test_pickle_stores_each_model_array_once(params):
    # The public fitted arrays (means_, covariance_, explained_variance_,
    # whitening_) are functions of the model: stored once, derived on load.
    # Bound on the pickle: the model's float64 covariance and whitening per
    # Gaussian (2 d^2 * 8 bytes each) plus the small arrays and names; one
    # more stored copy of covariance_ or whitening_ would add d^2 * 4 bytes
    # or more.
    rng = np.random.RandomState(0)
    d = 60
    X = rng.normal(size=(300, d)) @ rng.normal(size=(d, d))
    y = np.repeat([0, 1], 150)
    det = MahalanobisDetector(**params).fit(
        X, y if params["mode"] != "marginal" else None
    )
    blob = pickle.dumps(det)
    n_gaussians = 2 if params["mode"] == "per_class" else 1
    assert len(blob) < n_gaussians * 2 * d * d * 8 + d * d * 4
    loaded = pickle.loads(blob)
    for name in ("means_", "covariance_", "explained_variance_", "whitening_"):
        got, want = getattr(loaded, name), getattr(det, name)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        loaded.score_samples(X[:20]), det.score_samples(X[:20])
    )
    assert loaded.offset_ == det.offset_


def test_products_in_the_input_precision_on_both_paths():
    # One rule for NumPy and torch (GaussianModel.product_dtype): float64 rows
    # scored by a model fitted on float32 rows get float64 products, float32
    # rows float32 ones. Reference: the float64 quadratic form of covariance_
    # (condition number ~10 here, so float64 products agree to ~1e-13 relative
    # and float32 ones differ by ~1e-7).
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    A = rng.normal(size=(8, 8)) * 0.2 + np.eye(8)
    X = (rng.normal(size=(500, 8)) @ A).astype(np.float32)
    Q = rng.normal(size=(50, 8)) @ A
    det = MahalanobisDetector(device="cpu").fit(X)
    diff = Q - det.means_[0]
    ref = -np.einsum("ij,ij->i", diff, np.linalg.solve(det.covariance_, diff.T).T)
    for scores in (det.score_samples(Q), det.score_samples(torch.from_numpy(Q))):
        assert_allclose(scores, ref, rtol=1e-10)
    Q32 = Q.astype(np.float32)
    s_np, s_torch = det.score_samples(Q32), det.score_samples(torch.from_numpy(Q32))
    # float32 products on both: within float32 rounding of the reference
    # (a few eps32 times the condition number), and not float64-exact.
    assert_allclose(s_np, ref, rtol=1e-4)
    assert_allclose(s_torch, ref, rtol=1e-4)
    assert np.max(np.abs(s_np / ref - 1)) > 1e-9
