"""Tests of the threshold wrappers and of hyper-parameter search with OOD scorers.

Thresholds are checked against independent computations: a manual KFold loop
with ``np.quantile``, brute force over all cut points with scikit-learn's
metrics, and explicit leave-one-out refits.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    PredefinedSplit,
    RandomizedSearchCV,
    StratifiedKFold,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood.metrics import auroc, tnr_at_95_tpr_scorer, tnr_at_tpr
from sklearn_ood.model_selection import (
    FixedThresholdDetector,
    TunedThresholdDetectorCV,
)
from tests._calibration import conformal_threshold


def _inliers(seed=0, n=120, d=3):
    return np.random.RandomState(seed).normal(size=(n, d))


def _with_ood(seed=0, n=120, n_ood=40):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    X_ood = rng.normal(size=(n_ood, 3)) * 1.2 + 1.6
    return np.r_[X, X_ood], np.r_[np.zeros(n, int), -np.ones(n_ood, int)]


# ------------------------------------------------------- FixedThreshold
def test_fixed_threshold_by_value_keeps_contract():
    X = _inliers()
    det = FixedThresholdDetector(MahalanobisDetector(), threshold=-4.0).fit(X)
    X_test = _inliers(seed=1, n=50) * 1.5
    ref = MahalanobisDetector().fit(X)
    s = det.score_samples(X_test)
    np.testing.assert_allclose(s, ref.score_samples(X_test))
    np.testing.assert_allclose(det.decision_function(X_test), s + 4.0)
    np.testing.assert_array_equal(det.predict(X_test), np.where(s >= -4.0, 1, -1))
    assert det.predict(X_test).dtype.kind == "i"
    assert det.offset_ == -4.0
    assert det.n_features_in_ == 3


def test_fixed_target_tpr_uses_leave_one_out_scores():
    X = _inliers(n=60)
    det = FixedThresholdDetector(MahalanobisDetector(), target_tpr=0.9).fit(X)
    # explicit leave-one-out refits (MLE covariance, as the detector)
    loo = np.empty(len(X))
    for i in range(len(X)):
        rest = np.delete(X, i, axis=0)
        cov = EmpiricalCovariance().fit(rest)
        loo[i] = -cov.mahalanobis(X[i : i + 1])[0]
    assert det.offset_ == pytest.approx(conformal_threshold(loo, 0.1), rel=1e-8)
    # the user's detector is not modified
    assert det.detector.contamination == "auto"


def test_fixed_target_tpr_in_sample_fallback_and_default_offset():
    from sklearn.svm import OneClassSVM

    X = _inliers(n=80)
    det = FixedThresholdDetector(KNNDetector(n_neighbors=3), target_tpr=0.8).fit(X)
    # detector with contamination -> its own leave-one-out offset
    own = KNNDetector(n_neighbors=3, contamination=0.2).fit(X)
    assert det.offset_ == pytest.approx(own.offset_)
    # pipeline: contamination of the last step
    pipe = make_pipeline(StandardScaler(), KNNDetector(n_neighbors=3))
    det_p = FixedThresholdDetector(pipe, target_tpr=0.8).fit(X)
    ref = make_pipeline(StandardScaler(), KNNDetector(n_neighbors=3, contamination=0.2))
    assert det_p.offset_ == pytest.approx(ref.fit(X)[-1].offset_)
    # target_tpr < 0.5: contamination cannot express it -> in-sample quantile
    low = FixedThresholdDetector(KNNDetector(n_neighbors=3), target_tpr=0.3).fit(X)
    in_sample = KNNDetector(n_neighbors=3).fit(X).score_samples(X)
    assert low.offset_ == pytest.approx(np.quantile(in_sample, 0.7))
    # no contamination parameter -> in-sample quantile
    svm = FixedThresholdDetector(OneClassSVM(gamma=0.5), target_tpr=0.9).fit(X)
    in_sample = OneClassSVM(gamma=0.5).fit(X).score_samples(X)
    assert svm.offset_ == pytest.approx(np.quantile(in_sample, 0.1))
    # neither set: the detector's own offset_
    plain = FixedThresholdDetector(MahalanobisDetector(contamination=0.1)).fit(X)
    assert plain.offset_ == MahalanobisDetector(contamination=0.1).fit(X).offset_


def test_fixed_errors():
    X = _inliers()
    with pytest.raises(ValueError, match="cannot both be set"):
        FixedThresholdDetector(
            MahalanobisDetector(), threshold=0.0, target_tpr=0.9
        ).fit(X)
    with pytest.raises(ValueError, match="'target_tpr' parameter"):
        FixedThresholdDetector(MahalanobisDetector(), target_tpr=1.5).fit(X)
    from sklearn.svm import OneClassSVM

    class NoOffset(OneClassSVM):
        def fit(self, X, y=None):
            super().fit(X)
            del self.offset_
            return self

    with pytest.raises(ValueError, match="has no offset_"):
        FixedThresholdDetector(NoOffset()).fit(X)


# ------------------------------------------------------- TunedThreshold
@pytest.mark.parametrize(
    "detector", [MahalanobisDetector(), KNNDetector(n_neighbors=1)], ids=repr
)
def test_tuned_threshold_is_quantile_of_out_of_fold_scores(detector):
    X = _inliers(n=100)
    det = TunedThresholdDetectorCV(detector, target_tpr=0.9, random_state=0).fit(X)
    oof = np.empty(len(X))
    for tr, te in KFold(5, shuffle=True, random_state=0).split(X):
        oof[te] = clone(detector).fit(X[tr]).score_samples(X[te])
    np.testing.assert_allclose(det.oof_scores_, oof)
    assert det.best_threshold_ == pytest.approx(np.quantile(oof, 0.1))
    assert det.offset_ == det.best_threshold_
    assert det.best_score_ == pytest.approx(np.mean(oof >= det.best_threshold_))
    assert det.objective_ == "target_tpr"
    assert det.cv_scores_.shape == (5,)
    # refit on everything
    X_test = _inliers(seed=3, n=20)
    np.testing.assert_allclose(
        det.score_samples(X_test), clone(detector).fit(X).score_samples(X_test)
    )


def test_out_of_fold_threshold_removes_in_sample_optimism():
    # 1-NN memorises its training data: in-sample scores are all 0
    X = _inliers(n=300, d=2)
    X_new = _inliers(seed=7, n=3000, d=2)
    knn = KNNDetector(n_neighbors=1)
    in_sample = np.quantile(knn.fit(X).score_samples(X), 0.05)
    assert in_sample == pytest.approx(0.0, abs=1e-12)
    assert np.mean(knn.score_samples(X_new) >= in_sample) < 0.01
    det = TunedThresholdDetectorCV(knn, target_tpr=0.95, random_state=0).fit(X)
    assert abs(np.mean(det.predict(X_new) == 1) - 0.95) < 0.03


def _brute_force(scores, is_in, metric):
    """Best metric over every cut ``score >= t`` (sklearn's metric functions)."""
    y_true = np.where(is_in, 1, -1)
    cuts = np.r_[np.unique(scores), np.inf]
    values = [metric(y_true, np.where(scores >= t, 1, -1)) for t in cuts]
    return max(values)


@pytest.mark.parametrize(
    "scoring, metric",
    [
        ("detection_accuracy", balanced_accuracy_score),
        ("balanced_accuracy", balanced_accuracy_score),
        ("accuracy", lambda a, b: float(np.mean(a == b))),
        ("f1", f1_score),
        (matthews_corrcoef, matthews_corrcoef),
    ],
)
def test_tuned_threshold_maximises_metric_on_oof_scores(scoring, metric):
    X, y = _with_ood()
    det = TunedThresholdDetectorCV(
        MahalanobisDetector(), scoring=scoring, random_state=0
    ).fit(X, y)
    is_in = y != -1
    oof = np.empty(len(X))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, ~is_in):
        fit_rows = tr[is_in[tr]]  # the detector never sees OOD rows
        oof[te] = MahalanobisDetector().fit(X[fit_rows]).score_samples(X[te])
    np.testing.assert_allclose(det.oof_scores_, oof)
    best = _brute_force(oof, is_in, metric)
    assert det.best_score_ == pytest.approx(best)
    pred = np.where(oof >= det.best_threshold_, 1, -1)
    assert metric(np.where(is_in, 1, -1), pred) == pytest.approx(best)
    # half-way between the lowest accepted and highest rejected score
    accepted = oof[oof >= det.best_threshold_]
    rejected = oof[oof < det.best_threshold_]
    if accepted.size and rejected.size:
        assert det.best_threshold_ == pytest.approx(
            0.5 * (accepted.min() + rejected.max())
        )
    # refit on the inlier rows only
    ref = MahalanobisDetector().fit(X[is_in])
    np.testing.assert_allclose(det.score_samples(X[:5]), ref.score_samples(X[:5]))
    assert det.cv_scores_.shape == (5,)


def test_tuned_single_split_prefit_and_errors():
    X, y = _with_ood(seed=1)
    is_in = y != -1
    single = TunedThresholdDetectorCV(
        MahalanobisDetector(), cv=0.5, refit=False, random_state=0
    ).fit(X, y)
    assert np.isnan(single.oof_scores_).sum() == len(X) // 2
    assert single.cv_scores_[0] == pytest.approx(single.best_score_)
    # prefit: all rows are scored by the given detector
    fitted = MahalanobisDetector().fit(X[is_in][:60])
    pre = TunedThresholdDetectorCV(fitted, cv="prefit", refit=False).fit(X, y)
    np.testing.assert_allclose(pre.oof_scores_, fitted.score_samples(X))
    assert pre.estimator_ is fitted
    with pytest.raises(ValueError, match="must be False when cv='prefit'"):
        TunedThresholdDetectorCV(fitted, cv="prefit").fit(X, y)
    with pytest.raises(ValueError, match="only with a single split"):
        TunedThresholdDetectorCV(MahalanobisDetector(), refit=False).fit(X, y)
    with pytest.raises(ValueError, match="target_tpr=None needs known OOD"):
        TunedThresholdDetectorCV(MahalanobisDetector(), target_tpr=None).fit(X[is_in])
    with pytest.raises(ValueError, match="'scoring' parameter"):
        TunedThresholdDetectorCV(MahalanobisDetector(), scoring="auroc").fit(X, y)
    # scoring=None: target TPR even with OOD rows
    tpr = TunedThresholdDetectorCV(
        MahalanobisDetector(), scoring=None, target_tpr=0.8, random_state=0
    ).fit(X, y)
    oof_in = tpr.oof_scores_[is_in]
    assert tpr.best_threshold_ == pytest.approx(np.quantile(oof_in, 0.2))


def test_tuned_with_pipeline_and_class_labels():
    rng = np.random.RandomState(2)
    y_cls = np.repeat([0, 1], 50)
    X = rng.normal(size=(100, 2)) * [1.0, 10.0] + np.c_[4.0 * y_cls, np.zeros(100)]
    pipe = make_pipeline(StandardScaler(), MahalanobisDetector(mode="tied"))
    det = TunedThresholdDetectorCV(pipe, random_state=0).fit(X, y_cls)
    oof = np.empty(len(X))
    for tr, te in KFold(5, shuffle=True, random_state=0).split(X):
        oof[te] = clone(pipe).fit(X[tr], y_cls[tr]).score_samples(X[te])
    assert det.best_threshold_ == pytest.approx(np.quantile(oof, 0.05))
    np.testing.assert_array_equal(
        det.predict(X), np.where(det.score_samples(X) >= det.offset_, 1, -1)
    )


# ------------------------------------------------------ estimator checks
# No check is expected to fail: the wrappers have no ``contamination``
# parameter, so the exact-outlier-count checks that the leave-one-out offsets
# of the bare detectors fail (tests/test_common.py) do not apply.
@parametrize_with_checks(
    [
        FixedThresholdDetector(MahalanobisDetector()),
        FixedThresholdDetector(MahalanobisDetector(), target_tpr=0.9),
        FixedThresholdDetector(MahalanobisDetector(mode="tied"), threshold=-3.0),
        TunedThresholdDetectorCV(MahalanobisDetector(), random_state=0),
        TunedThresholdDetectorCV(MahalanobisDetector(), cv=3, target_tpr=0.8),
    ],
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "est",
    [
        FixedThresholdDetector(MahalanobisDetector()),
        TunedThresholdDetectorCV(MahalanobisDetector()),
    ],
    ids=lambda e: type(e).__name__,
)
def test_constraints_cover_parameters(est):
    assert set(est._parameter_constraints) == set(est.get_params(deep=False))


# ------------------------------------------------ search with OOD scorers
def _validation_split(seed=0):
    rng = np.random.RandomState(seed)
    y_cls = np.repeat([0, 1, 2], 60)
    X = rng.normal(size=(180, 6))
    X[:, :3] += 2.5 * np.eye(3)[y_cls]
    X_ood = rng.normal(size=(60, 6)) * [1, 1, 1, 2.5, 2.5, 2.5]
    X_all = np.r_[X, X_ood]
    y_all = np.r_[y_cls, -np.ones(60, int)]
    fold = np.full(len(X_all), -1)
    fold[1::3] = 0  # validation rows: inliers and OOD
    fold[180:][fold[180:] == -1] = 0  # no OOD row is used for fitting
    return X_all, y_all, fold


def test_grid_search_with_ood_scorer_matches_manual_loop():
    X, y, fold = _validation_split()
    grid = {"mode": ["marginal", "tied"], "components": [None, (0, 3), (3, None)]}
    search = GridSearchCV(
        MahalanobisDetector(),
        grid,
        scoring=tnr_at_95_tpr_scorer,
        cv=PredefinedSplit(fold),
    ).fit(X, y)
    tr, va = fold == -1, fold == 0
    results = {}
    for mode in grid["mode"]:
        for comp in grid["components"]:
            det = MahalanobisDetector(mode=mode, components=comp).fit(X[tr], y[tr])
            results[(mode, comp)] = tnr_at_tpr(y[va] != -1, det.score_samples(X[va]))
    # every candidate's validation score, and the winner
    for params, score in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"]
    ):
        assert score == pytest.approx(results[(params["mode"], params["components"])])
    winners = [k for k, v in results.items() if v == max(results.values())]
    chosen = (search.best_params_["mode"], search.best_params_["components"])
    assert chosen in winners
    assert search.best_score_ == pytest.approx(max(results.values()))


def test_randomized_search_knn_matches_manual_loop():
    X, y, fold = _validation_split(seed=1)
    from sklearn_ood.metrics import auroc_scorer

    search = RandomizedSearchCV(
        KNNDetector(),
        {"n_neighbors": [1, 2, 5, 10, 20]},
        n_iter=5,
        scoring=auroc_scorer,
        cv=PredefinedSplit(fold),
        random_state=0,
    ).fit(X, y)
    tr, va = fold == -1, fold == 0
    manual = {
        k: auroc(
            y[va] != -1, KNNDetector(n_neighbors=k).fit(X[tr]).score_samples(X[va])
        )
        for k in [1, 2, 5, 10, 20]
    }
    for params, score in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"]
    ):
        assert score == pytest.approx(manual[params["n_neighbors"]])
    best = max(manual.values())
    assert manual[search.best_params_["n_neighbors"]] == best
    assert search.best_score_ == pytest.approx(max(manual.values()))
