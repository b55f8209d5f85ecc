"""Tests of the threshold wrappers and of hyper-parameter search with OOD scorers.

Thresholds are checked against independent computations: a manual KFold loop
with the conformal rule (``tests/_calibration.py``), brute force over all cut
points with scikit-learn's metrics, explicit leave-one-out refits and
brute-force leave-one-out neighbour distances.

Scores compared without a stated tolerance come from the same computation on
the same rows in the same order (equal on one machine; numpy's default rtol of
1e-7 is far above the ~1e-15 variation of a threaded BLAS reduction).
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
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood.metrics import auroc, tnr_at_95_tpr_scorer, tnr_at_tpr
from sklearn_ood.model_selection import (
    FixedThresholdDetector,
    TunedThresholdDetectorCV,
)
from tests._calibration import conformal_threshold
from tests._counting import CountingNet, FrozenExtractor, LearningExtractor, images


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


def _knn_loo_scores(X, k):
    """Brute-force leave-one-out kNN scores: -mean of the k smallest squared
    distances to the other rows (KNNDetector's default score)."""
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    return -np.sort(D, axis=1)[:, :k].mean(axis=1)


def test_fixed_target_tpr_is_conformal_offset_of_calibration_scores():
    from sklearn.svm import OneClassSVM

    X = _inliers(n=80)
    loo = _knn_loo_scores(X, 3)
    # rtol: float64 squared distances of O(10), summed in a different order
    # (GEMM expansion vs the direct difference): ~1e-15 relative, 1e-9 is ample.
    for tpr in (0.8, 0.3, 0.97):
        det = FixedThresholdDetector(KNNDetector(n_neighbors=3), target_tpr=tpr)
        det.fit(X)
        np.testing.assert_allclose(det.calibration_scores_, loo, rtol=1e-9)
        expected = conformal_threshold(loo, 1 - tpr)
        assert det.offset_ == pytest.approx(expected, rel=1e-9)
    # with contamination expressible, the same as the detector's own offset_
    own = KNNDetector(n_neighbors=3, contamination=0.2).fit(X)
    det = FixedThresholdDetector(KNNDetector(n_neighbors=3), target_tpr=0.8).fit(X)
    assert det.offset_ == own.offset_
    # pipeline: calibration scores of the last step
    pipe = make_pipeline(StandardScaler(), KNNDetector(n_neighbors=3))
    det_p = FixedThresholdDetector(pipe, target_tpr=0.8).fit(X)
    loo_p = _knn_loo_scores(StandardScaler().fit_transform(X), 3)
    assert det_p.offset_ == pytest.approx(conformal_threshold(loo_p, 0.2), rel=1e-9)
    # target_tpr=1 accepts every calibration score
    full = FixedThresholdDetector(KNNDetector(n_neighbors=3), target_tpr=1.0).fit(X)
    assert full.offset_ == pytest.approx(loo.min(), rel=1e-9)
    # no calibration scores (OneClassSVM): in-sample scores of the inliers
    svm = FixedThresholdDetector(OneClassSVM(gamma=0.5), target_tpr=0.9).fit(X)
    in_sample = OneClassSVM(gamma=0.5).fit(X).score_samples(X)
    np.testing.assert_allclose(svm.calibration_scores_, in_sample)
    assert svm.offset_ == pytest.approx(conformal_threshold(in_sample, 0.1))
    # neither set: the detector's own offset_
    plain = FixedThresholdDetector(MahalanobisDetector(contamination=0.1)).fit(X)
    assert plain.offset_ == MahalanobisDetector(contamination=0.1).fit(X).offset_


def test_fixed_contract_from_the_mixin():
    X, y = _with_ood(seed=3)
    is_in = y != -1
    det = FixedThresholdDetector(KNNDetector(n_neighbors=3), threshold=-1.5)
    labels = det.fit_predict(X, y)
    loo = _knn_loo_scores(X[is_in], 3)  # -1 rows never fit nor calibrate
    # GEMM-expanded vs direct squared distances of O(10): ~1e-15 relative
    np.testing.assert_allclose(det.calibration_scores_, loo, rtol=1e-9)
    # inliers: flagged iff their calibration score is below the threshold
    np.testing.assert_array_equal(labels[is_in] == -1, loo < -1.5)
    # known outliers: predicted by the fitted model
    np.testing.assert_array_equal(labels[~is_in], det.predict(X[~is_in]))
    # p-values against the calibration scores, counted by brute force
    X_new = _inliers(seed=9, n=30) * 2
    s = det.score_samples(X_new)
    p = (1 + (loo[None, :] <= s[:, None]).sum(1)) / (loo.size + 1)
    np.testing.assert_allclose(det.p_values(X_new), p)
    np.testing.assert_allclose(det.decision_function(X_new), s + 1.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fixed_refuses_a_non_finite_threshold(bad):
    with pytest.raises(ValueError, match="'threshold' parameter of FixedThreshold"):
        FixedThresholdDetector(MahalanobisDetector(), threshold=bad).fit(_inliers())


def test_fixed_errors():
    X = _inliers()
    with pytest.raises(ValueError, match="cannot both be set"):
        FixedThresholdDetector(
            MahalanobisDetector(), threshold=0.0, target_tpr=0.9
        ).fit(X)
    with pytest.raises(ValueError, match="'target_tpr' parameter"):
        FixedThresholdDetector(MahalanobisDetector(), target_tpr=1.5).fit(X)

    class NoOffset:
        """A detector with fit and score_samples only."""

        def get_params(self, deep=True):
            return {}

        def set_params(self, **params):
            return self

        def fit(self, X, y=None):
            self.mean_ = np.mean(X, axis=0)
            return self

        def score_samples(self, X):
            return -np.sum((np.asarray(X) - self.mean_) ** 2, axis=1)

    with pytest.raises(ValueError, match="has no offset_"):
        FixedThresholdDetector(NoOffset()).fit(X)
    det = FixedThresholdDetector(NoOffset(), target_tpr=0.9).fit(X)
    in_sample = NoOffset().fit(X).score_samples(X)
    assert det.offset_ == pytest.approx(conformal_threshold(in_sample, 0.1))


# ------------------------------------------------------- TunedThreshold
@pytest.mark.parametrize(
    "detector", [MahalanobisDetector(), KNNDetector(n_neighbors=1)], ids=repr
)
def test_tuned_threshold_is_conformal_offset_of_out_of_fold_scores(detector):
    X = _inliers(n=100)
    det = TunedThresholdDetectorCV(detector, target_tpr=0.9, random_state=0).fit(X)
    oof = np.empty(len(X))
    for tr, te in KFold(5, shuffle=True, random_state=0).split(X):
        oof[te] = clone(detector).fit(X[tr]).score_samples(X[te])
    np.testing.assert_allclose(det.oof_scores_, oof)
    np.testing.assert_allclose(det.calibration_scores_, oof)
    assert det.best_threshold_ == pytest.approx(conformal_threshold(oof, 0.1))
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
    assert tpr.best_threshold_ == pytest.approx(conformal_threshold(oof_in, 0.2))
    # the single split: only the validation rows calibrate
    in_val = ~np.isnan(single.oof_scores_) & is_in
    np.testing.assert_allclose(single.calibration_scores_, single.oof_scores_[in_val])


def test_tuned_with_pipeline_and_class_labels():
    rng = np.random.RandomState(2)
    y_cls = np.repeat([0, 1], 50)
    X = rng.normal(size=(100, 2)) * [1.0, 10.0] + np.c_[4.0 * y_cls, np.zeros(100)]
    pipe = make_pipeline(StandardScaler(), MahalanobisDetector(mode="tied"))
    det = TunedThresholdDetectorCV(pipe, random_state=0).fit(X, y_cls)
    oof = np.empty(len(X))
    for tr, te in KFold(5, shuffle=True, random_state=0).split(X):
        oof[te] = clone(pipe).fit(X[tr], y_cls[tr]).score_samples(X[te])
    assert det.best_threshold_ == pytest.approx(conformal_threshold(oof, 0.05))
    np.testing.assert_array_equal(
        det.predict(X), np.where(det.score_samples(X) >= det.offset_, 1, -1)
    )


def test_tuned_contract_from_the_mixin():
    X, y = _with_ood(seed=4)
    is_in = y != -1
    det = TunedThresholdDetectorCV(MahalanobisDetector(), random_state=0)
    labels = det.fit_predict(X, y)
    oof_in = det.oof_scores_[is_in]
    np.testing.assert_allclose(det.calibration_scores_, oof_in)
    np.testing.assert_array_equal(labels[is_in] == -1, oof_in < det.offset_)
    np.testing.assert_array_equal(labels[~is_in], det.predict(X[~is_in]))
    # the share of inliers flagged is the out-of-fold estimate 1 - TPR
    assert np.mean(labels[is_in] == 1) == pytest.approx(
        np.mean(oof_in >= det.best_threshold_)
    )
    X_new = _inliers(seed=5, n=25)
    s = det.score_samples(X_new)
    p = (1 + (oof_in[None, :] <= s[:, None]).sum(1)) / (oof_in.size + 1)
    np.testing.assert_allclose(det.p_values(X_new), p)


# ------------------------------------------- features once for image Pipelines
def test_tuning_an_image_pipeline_extracts_features_once():
    X = images(60, seed=0)
    CountingNet.rows = 0
    probe = FrozenExtractor(CountingNet(), device="cpu").fit(X)
    fit_rows = CountingNet.rows  # images fit() runs (a probe of the network)
    F = probe.transform(X)
    det = MahalanobisDetector(covariance="ledoit_wolf")

    CountingNet.rows = 0
    pipe = make_pipeline(FrozenExtractor(CountingNet(), device="cpu"), det)
    tuned = TunedThresholdDetectorCV(pipe, target_tpr=0.9, random_state=0).fit(X)
    assert CountingNet.rows == fit_rows + len(X)  # one pass over X, not 6
    # the same threshold and scores as tuning the detector on the features
    ref = TunedThresholdDetectorCV(det, target_tpr=0.9, random_state=0).fit(F)
    np.testing.assert_allclose(tuned.oof_scores_, ref.oof_scores_)
    assert tuned.offset_ == ref.offset_
    X_new = images(7, seed=1)
    np.testing.assert_allclose(
        tuned.score_samples(X_new), ref.score_samples(probe.transform(X_new))
    )
    assert isinstance(tuned.estimator_, Pipeline) and len(tuned.estimator_) == 2

    # a step whose fit learns from the data is refitted on every fold
    CountingNet.rows = 0
    learning = make_pipeline(LearningExtractor(CountingNet(), device="cpu"), det)
    TunedThresholdDetectorCV(learning, target_tpr=0.9, random_state=0).fit(X)
    # 5 folds (fit + transform of the training part, score of the test part)
    # and the refit (fit + transform of all rows)
    assert CountingNet.rows == 6 * (fit_rows + len(X))


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


def test_fixed_around_a_held_out_calibration():
    # The wrapped detector calibrates on a held-out share (here split
    # conformal): its calibration scores belong to some rows only, so
    # fit_predict ranks every row by its score.
    from sklearn_ood.conformal import ConformalDetector

    X = _inliers(seed=6, n=90)
    inner = ConformalDetector(KNNDetector(), random_state=0)
    det = FixedThresholdDetector(inner, threshold=-1.0)
    labels = det.fit_predict(X)
    ref = clone(inner).fit(X)
    np.testing.assert_array_equal(det.calibration_scores_, ref.calibration_scores_)
    np.testing.assert_array_equal(labels == -1, ref.score_samples(X) < -1.0)
    X_new = _inliers(seed=7, n=20)
    np.testing.assert_allclose(det.p_values(X_new), ref.p_values(X_new))
