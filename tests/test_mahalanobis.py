"""Tests for MahalanobisDetector against independent NumPy/scikit-learn code.

The reference below re-implements every mode from the papers' formulas with
scikit-learn's covariance estimators and ``np.linalg.pinv`` / ``np.linalg.eigh``
(the pseudo-inverse of Lee et al.'s ``sample_estimator``), without sharing any
code with ``sklearn_ood._mahalanobis``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist
from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf, ShrunkCovariance

from sklearn_ood import MahalanobisDetector
from tests._calibration import conformal_threshold

RTOL = 1e-6


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
    assert_allclose(s32, d64.score_samples(Xt32.astype(np.float64)), rtol=1e-4)
    assert d32.offset_ == pytest.approx(d64.offset_, rel=1e-4)


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
        {"mode": "marginal", "covariance": "ledoit_wolf"},
        {"mode": "tied", "covariance": 0.2},
        {"mode": "per_class", "covariance": "oas"},
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
    assert_allclose(s_same, rest.score_samples(same[:, :3]), rtol=1e-6)


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
    assert det.offset_ == pytest.approx(conformal_threshold(loo, 0.1), rel=1e-3)
