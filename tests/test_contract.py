"""The outlier contract: MahalanobisDetector as a drop-in for IsolationForest."""

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.covariance import EmpiricalCovariance
from sklearn.datasets import make_blobs
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle
from sklearn.utils._testing import create_memmap_backed_data

from sklearn_ood import MahalanobisDetector

N_FEATURES = 5
_RNG = np.random.RandomState(42)
_MIX = _RNG.normal(size=(N_FEATURES, N_FEATURES)) + 1.5 * np.eye(N_FEATURES)
_SCALE = np.array([1.0, 10.0, 100.0, 0.1, 5.0])
_SHIFT = np.array([3.0, -20.0, 500.0, 0.0, 1.0])


def sample_inliers(n, rng):
    """Strongly correlated Gaussian features on very different scales."""
    return (rng.normal(size=(n, N_FEATURES)) @ _MIX) * _SCALE + _SHIFT


def sample_outliers(n, rng):
    """Same per-feature marginals as the inliers, correlations broken."""
    Z = sample_inliers(n, rng)
    return np.column_stack([rng.permutation(col) for col in Z.T])


def make_problem(n_in, n_out, seed):
    rng = np.random.RandomState(seed)
    X = np.vstack([sample_inliers(n_in, rng), sample_outliers(n_out, rng)])
    y = np.r_[np.ones(n_in, dtype=int), -np.ones(n_out, dtype=int)]
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def ood_auroc(estimator, X, y):
    """Scorer: ROC-AUC of score_samples with in-distribution (y != -1) positive."""
    return roc_auc_score(y != -1, estimator.score_samples(X))


CV = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)


def user_script(detector, param_grid, tmp_path):
    """What a user writes once and keeps when swapping the detector."""
    X, y = make_problem(300, 30, seed=0)
    pipe = Pipeline([("scale", StandardScaler()), ("det", detector)])
    search = GridSearchCV(pipe, param_grid, scoring=ood_auroc, cv=CV)
    search.fit(X, y)
    best = search.best_estimator_

    path = tmp_path / "detector.joblib"
    joblib.dump(best, path)
    loaded = joblib.load(path)
    X_new, y_new = make_problem(200, 50, seed=1)
    assert_array_equal(loaded.score_samples(X_new), best.score_samples(X_new))
    assert_array_equal(loaded.decision_function(X_new), best.decision_function(X_new))
    assert_array_equal(loaded.predict(X_new), best.predict(X_new))
    return search, best, X, y, X_new, y_new


def test_drop_in_for_isolation_forest(tmp_path):
    forest, *_ = user_script(
        IsolationForest(contamination=0.1, random_state=0),
        {"det__max_features": [1.0]},
        tmp_path,
    )
    search, best, X, y, X_new, y_new = user_script(
        MahalanobisDetector(contamination=0.1),
        {
            "det__mode": ["marginal", "tied", "per_class", "partial"],
            "det__covariance": ["empirical", "ledoit_wolf", "identity"],
        },
        tmp_path,
    )
    assert isinstance(best[-1], MahalanobisDetector)
    # correlations broken, marginals kept: a Gaussian model sees it, trees less so
    assert search.best_score_ > 0.9
    assert search.best_score_ > forest.best_score_
    res = search.cv_results_
    emp = res["param_det__covariance"] == "empirical"
    euclid = res["param_det__covariance"] == "identity"
    assert res["mean_test_score"][emp].min() > res["mean_test_score"][euclid].max()
    assert ood_auroc(best, X_new, y_new) > 0.9

    # the grid-search score of (marginal, empirical) recomputed by hand
    marginal = np.flatnonzero(emp & (res["param_det__mode"] == "marginal")).item()
    aucs = []
    for train, test in CV.split(X, y):
        scaler = StandardScaler().fit(X[train])
        Xs_train = scaler.transform(X[train])[y[train] != -1]  # -1 rows left out
        cov = EmpiricalCovariance().fit(Xs_train)
        scores = -cov.mahalanobis(scaler.transform(X[test]))
        aucs.append(roc_auc_score(y[test] != -1, scores))
    assert res["mean_test_score"][marginal] == pytest.approx(np.mean(aucs), rel=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "marginal"},
        {"mode": "tied", "covariance": "ledoit_wolf"},
        {"mode": "partial", "components": (1, None)},
    ],
    ids=repr,
)
def test_contamination_share_on_new_data(params):
    rng = np.random.RandomState(3)
    X = sample_inliers(300, rng)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("det", MahalanobisDetector(contamination=0.1, **params)),
        ]
    ).fit(X)
    det = pipe[-1]
    Xs = pipe[:-1].transform(X)
    n = len(Xs)

    # training rows scored as new data: a model refitted without each row
    loo = np.array(
        [
            clone(det).fit(np.delete(Xs, i, axis=0)).score_samples(Xs[i : i + 1])[0]
            for i in range(n)
        ]
    )
    share = np.mean(loo < det.offset_)
    if "components" in params or params.get("covariance") == "ledoit_wolf":
        # out-of-fold training scores: only close to leave-one-out
        assert abs(share - 0.1) <= 0.03
    else:
        # offset_ is the k-th smallest leave-one-out score, k = floor(0.1 (n+1)):
        # k - 1 rows lie strictly below it. The closed-form scores and the
        # refits' agree to rounding (d * kappa * eps64 relative, kappa ~1e2 for
        # these standardised features: ~1e-12), so the row whose score is
        # offset_ (and any other that close) may fall either side.
        k = int(np.floor(0.1 * (n + 1)))
        tol = 1e-9 * abs(det.offset_)
        below = np.sum(loo < det.offset_ - tol)
        near = np.sum(np.abs(loo - det.offset_) <= tol)
        assert below <= k - 1 <= below + near
    # predict on the training rows themselves flags at most that share
    assert np.mean(pipe.predict(X) == -1) <= 0.1 + 1.0 / n

    # fresh samples from the same distribution: ~10% flagged. The offset is
    # itself estimated from n rows, so both sampling errors count.
    n_fresh = 4000
    flagged = np.mean(pipe.predict(sample_inliers(n_fresh, rng)) == -1)
    sd = np.sqrt(0.1 * 0.9 * (1.0 / n + 1.0 / n_fresh))
    assert abs(flagged - 0.1) <= 3.5 * sd


DETECTORS = [
    MahalanobisDetector(),
    MahalanobisDetector(mode="tied", contamination=0.2),
    MahalanobisDetector(mode="per_class", covariance="oas"),
    MahalanobisDetector(mode="partial", components=(1, None), contamination=0.1),
    MahalanobisDetector(covariance="identity", contamination=0.5),
    MahalanobisDetector(eigenvalue_floor="pinv", mode="tied", components=(1, None)),
]


def _blobs():
    X, y = make_blobs(n_samples=300, random_state=0)
    return shuffle(X, y, random_state=7)


@pytest.mark.parametrize("detector", DETECTORS, ids=repr)
def test_clone_keeps_params(detector):
    fitted = clone(detector).fit(*_blobs())
    copy = clone(fitted)
    assert copy.get_params() == detector.get_params()
    assert not hasattr(copy, "offset_")
    with pytest.raises(NotFittedError):
        copy.score_samples(_blobs()[0])


@pytest.mark.parametrize("detector", DETECTORS, ids=repr)
def test_fit_predict_predict_decision(detector):
    X, y = _blobs()
    X_new = X + np.random.RandomState(0).normal(scale=2.0, size=X.shape)
    labels = clone(detector).fit_predict(X, y)
    det = clone(detector).fit(X, y)
    # fit_predict flags exactly floor(c n) training rows: those with the lowest
    # calibration (leave-one-out / out-of-fold) scores, as IsolationForest.
    c = 0.025 if det.contamination == "auto" else det.contamination
    cal = det.calibration_scores_
    assert cal.shape == (len(X),)
    m = int(np.floor(c * len(X)))
    assert np.sum(labels == -1) == m
    assert_array_equal(
        np.sort(np.flatnonzero(labels == -1)), np.sort(np.argsort(cal)[:m])
    )
    # predict on the memorised training rows flags no more than that
    assert np.sum(det.predict(X) == -1) <= m

    pred = det.predict(X_new)
    assert pred.dtype.kind == "i"
    assert set(np.unique(pred)) == {-1, 1}
    decision = det.decision_function(X_new)
    scores = det.score_samples(X_new)
    assert_array_equal(decision, scores - det.offset_)
    assert_array_equal(pred, np.where(decision < 0, -1, 1))
    assert isinstance(det.offset_, float)


@pytest.mark.parametrize("detector", DETECTORS, ids=repr)
def test_check_outliers_train_without_exact_count(detector):
    # scikit-learn's check_outliers_train, less its exact-count assertion
    X, _ = _blobs()
    X = create_memmap_backed_data(X)
    n_samples = X.shape[0]
    det = clone(detector)
    det.fit(X)
    det_list = clone(detector).fit(X.tolist())
    assert_allclose(det_list.score_samples(X), det.score_samples(X))
    assert det_list.offset_ == pytest.approx(det.offset_)

    y_pred = det.predict(X)
    assert y_pred.shape == (n_samples,)
    assert y_pred.dtype.kind == "i"
    assert_array_equal(np.unique(y_pred), [-1, 1])
    decision = det.decision_function(X)
    scores = det.score_samples(X)
    for output in (decision, scores):
        assert output.dtype == np.dtype("float")
        assert output.shape == (n_samples,)
    dec_pred = np.where(decision >= 0, 1, -1)
    assert_array_equal(dec_pred, y_pred)
    assert_allclose(scores - det.offset_, decision)
    for method in (det.predict, det.decision_function, det.score_samples):
        with pytest.raises(ValueError):
            method(X.T)

    # the count that does hold: at most `contamination` of the training rows
    det.set_params(contamination=0.1).fit(X)
    assert np.sum(det.predict(X) == -1) <= 30
