"""Tests of LayerEnsembleDetector against a hand-assembled feature ensemble, and
of NonNegativeLogisticRegression against scikit-learn's LogisticRegression."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB

from sklearn_ood import (
    KNNDetector,
    LayerEnsembleDetector,
    MahalanobisDetector,
    NonNegativeLogisticRegression,
    lee_logistic_regression,
)
from tests._calibration import conformal_threshold

GROUPS = {"low": slice(0, 3), "high": np.array([3, 4, 5, 6])}


def _data(seed=0, n_per_class=40, n_ood=30):
    rng = np.random.RandomState(seed)
    y = np.repeat([0, 1, 2], n_per_class)
    X = rng.normal(size=(y.size, 7))
    X[:, :3] += 3.0 * np.eye(3)[y]
    X[:, 3:] += 2.0 * np.eye(3, 4)[y]
    X_ood = rng.normal(size=(n_ood, 7)) * 1.5 + 1.0
    X_all = np.r_[X, X_ood]
    y_all = np.r_[y, -np.ones(n_ood, dtype=int)]
    return X_all, y_all


def _oof_layer_scores(X, y, folds, groups, detector):
    cols = list(groups.values())
    S = np.empty((X.shape[0], len(cols)))
    for tr, te in folds:
        for j, c in enumerate(cols):
            det = detector().fit(X[tr][:, c], None if y is None else y[tr])
            S[te, j] = det.score_samples(X[te][:, c])
    return S


def _final_scores(X_fit, y_fit, X, groups, detector):
    return np.column_stack(
        [
            detector().fit(X_fit[:, c], y_fit).score_samples(X[:, c])
            for c in groups.values()
        ]
    )


def test_logistic_combiner_equals_hand_assembled_ensemble():
    X_all, y_all = _data()
    inl = y_all != -1
    X, y, X_ood = X_all[inl], y_all[inl], X_all[~inl]
    ens = LayerEnsembleDetector(feature_groups=GROUPS, random_state=0)
    ens.fit(X_all, y_all)

    def tied():
        return MahalanobisDetector(mode="tied")

    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    oof = _oof_layer_scores(X, y, folds, GROUPS, tied)
    out = _final_scores(X, y, X_ood, GROUPS, tied)
    lr = LogisticRegressionCV(**lee_logistic_regression().get_params())
    lr.fit(np.r_[oof, out], np.r_[np.ones(len(X)), np.zeros(len(X_ood))])

    X_test = np.random.RandomState(1).normal(size=(15, 7)) * 2
    S_test = _final_scores(X, y, X_test, GROUPS, tied)
    np.testing.assert_allclose(ens.layer_scores(X_test), S_test)
    np.testing.assert_allclose(ens.score_samples(X_test), lr.decision_function(S_test))
    assert ens.offset_ == pytest.approx(
        conformal_threshold(lr.decision_function(oof), 0.025)
    )
    np.testing.assert_allclose(ens.combiner_.coef_, lr.coef_)
    assert list(ens.feature_groups_) == ["low", "high"]
    # Lee's settings: L2, Cs=10, accuracy
    assert ens.combiner_.Cs == 10 and ens.combiner_.scoring == "accuracy"


def test_outlier_rows_only_train_the_combiner():
    X_all, y_all = _data(seed=1)
    inl = y_all != -1
    ens = LayerEnsembleDetector(feature_groups=GROUPS, random_state=0)
    ens.fit(X_all, y_all)
    for det, c in zip(ens.detectors_, GROUPS.values()):
        ref = MahalanobisDetector(mode="tied").fit(X_all[inl][:, c], y_all[inl])
        np.testing.assert_allclose(det.means_, ref.means_)
        np.testing.assert_allclose(det.covariance_, ref.covariance_)
    # more OOD rows change the combiner but not the per-layer detectors
    X2 = np.r_[X_all, np.full((5, 7), 8.0)]
    y2 = np.r_[y_all, -np.ones(5, int)]
    ens2 = LayerEnsembleDetector(feature_groups=GROUPS, random_state=0).fit(X2, y2)
    np.testing.assert_allclose(
        ens2.layer_scores(X_all[:10]), ens.layer_scores(X_all[:10])
    )


def test_mean_standardized_rule_without_outliers():
    X_all, y_all = _data(seed=2)
    inl = y_all != -1
    X = X_all[inl]
    groups = [np.arange(3), slice(3, None)]
    ens = LayerEnsembleDetector(
        KNNDetector(n_neighbors=3), feature_groups=groups, cv=KFold(4)
    ).fit(X)
    g = {"0": np.arange(3), "1": slice(3, 7)}
    oof = _oof_layer_scores(
        X, None, KFold(4).split(X), g, lambda: _NoY(KNNDetector(n_neighbors=3))
    )
    mu, sd = oof.mean(0), oof.std(0)
    X_test = np.random.RandomState(3).normal(size=(12, 7))
    S = _final_scores(X, None, X_test, g, lambda: _NoY(KNNDetector(n_neighbors=3)))
    np.testing.assert_allclose(ens.score_samples(X_test), ((S - mu) / sd).mean(1))
    assert ens.offset_ == pytest.approx(
        conformal_threshold(((oof - mu) / sd).mean(1), 0.025)
    )
    assert ens.combiner_ is None
    # "auto" ignores -1 rows with the unsupervised rule forced
    forced = LayerEnsembleDetector(
        KNNDetector(n_neighbors=3),
        feature_groups=groups,
        combiner="mean_standardized",
        cv=KFold(4),
    ).fit(np.r_[X, X_all[~inl]], np.r_[np.zeros(len(X)), -np.ones((~inl).sum())])
    np.testing.assert_allclose(forced.score_samples(X_test), ens.score_samples(X_test))


class _NoY:
    """Adapter: fit(X, None) -> fit(X)."""

    def __init__(self, det):
        self.det = det

    def fit(self, X, y=None):
        self.det.fit(X)
        return self

    def score_samples(self, X):
        return self.det.score_samples(X)


def test_classifier_combiner_with_predict_proba_only():
    X_all, y_all = _data(seed=3)
    ens = LayerEnsembleDetector(
        feature_groups=GROUPS, combiner=GaussianNB(), random_state=0
    ).fit(X_all, y_all)
    X_test = X_all[:20]
    S = ens.layer_scores(X_test)
    p = ens.combiner_.predict_proba(S)[:, 1]
    np.testing.assert_allclose(ens.score_samples(X_test), np.log(p / (1 - p)))


def test_auto_groups_from_feature_names():
    pd = pytest.importorskip("pandas")
    X_all, y_all = _data(seed=4)
    names = [f"conv1__{i}" for i in range(3)] + [f"layer2_1__avg{i}" for i in range(4)]
    df = pd.DataFrame(X_all, columns=names)
    ens = LayerEnsembleDetector(random_state=0).fit(df, y_all)
    assert list(ens.feature_groups_) == ["conv1", "layer2_1"]
    np.testing.assert_array_equal(ens.feature_groups_["layer2_1"], [3, 4, 5, 6])
    ref = LayerEnsembleDetector(
        feature_groups=[slice(0, 3), slice(3, 7)], random_state=0
    ).fit(X_all, y_all)
    np.testing.assert_allclose(ens.score_samples(df), ref.score_samples(X_all))
    # plain arrays without names: one group of all columns
    one = LayerEnsembleDetector(random_state=0).fit(X_all[y_all != -1])
    assert one.feature_groups_ == {"all": slice(0, 7)}


@pytest.mark.parametrize(
    "groups, match",
    [
        ({}, "at least one group"),
        ({"a": [0, 9]}, "outside"),
        ({"a": slice(7, 9)}, "selects no column"),
        ({"a": [[0, 1]]}, "1-D array"),
        ({"a": np.ones(3, bool)}, "boolean mask"),
    ],
)
def test_bad_feature_groups(groups, match):
    X_all, y_all = _data()
    with pytest.raises(ValueError, match=match):
        LayerEnsembleDetector(feature_groups=groups).fit(X_all, y_all)


def test_boolean_mask_and_negative_indices():
    X_all, y_all = _data(seed=5)
    mask = np.zeros(7, bool)
    mask[:3] = True
    a = LayerEnsembleDetector(feature_groups=[mask, [-4, -3, -2, -1]], random_state=0)
    b = LayerEnsembleDetector(
        feature_groups=[slice(0, 3), [3, 4, 5, 6]], random_state=0
    )
    X_test = X_all[::7]
    np.testing.assert_allclose(
        a.fit(X_all, y_all).score_samples(X_test),
        b.fit(X_all, y_all).score_samples(X_test),
    )


def test_logistic_needs_outliers_and_enough_samples():
    X_all, y_all = _data()
    X = X_all[y_all != -1]
    with pytest.raises(ValueError, match="needs known OOD"):
        LayerEnsembleDetector(combiner="logistic").fit(X)
    with pytest.raises(ValueError, match="needs known OOD"):
        LayerEnsembleDetector(combiner=GaussianNB()).fit(X)
    with pytest.raises(ValueError, match="cv=5"):
        LayerEnsembleDetector().fit(X[:4])
    with pytest.raises(ValueError, match="'combiner' parameter"):
        LayerEnsembleDetector(combiner="max").fit(X)


def test_auto_groups_in_a_pipeline_after_the_extractor():
    pytest.importorskip("pandas")
    torch = pytest.importorskip("torch")
    from sklearn.pipeline import make_pipeline

    from sklearn_ood import TorchFeatureExtractor

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    X_all, y_all = _data(seed=6)
    X_all = X_all[:, :3].astype(np.float32)
    ext = TorchFeatureExtractor(net, layers=["0", "1"], device="cpu")
    pipe = make_pipeline(ext, LayerEnsembleDetector(random_state=0))
    pipe.set_output(transform="pandas").fit(X_all, y_all)
    ens = pipe[-1]
    groups = pipe[0].feature_groups_
    assert list(ens.feature_groups_) == ["0", "1"]
    for name, cols in ens.feature_groups_.items():
        np.testing.assert_array_equal(
            cols, np.arange(groups[name].start, groups[name].stop)
        )
    F = TorchFeatureExtractor(net, layers=["0", "1"], device="cpu").fit(X_all)
    ref = LayerEnsembleDetector(feature_groups=groups, random_state=0)
    ref.fit(F.transform(X_all), y_all)
    np.testing.assert_allclose(
        pipe.score_samples(X_all[:9]),
        ref.score_samples(F.transform(X_all[:9])),
        rtol=1e-6,
    )


# ------------------------------------------------ the public extension point
def test_combine_is_the_public_combination_of_layer_scores():
    X_all, y_all = _data(seed=7)
    for combiner in ("logistic", "mean_standardized", "nonnegative_logistic"):
        ens = LayerEnsembleDetector(
            feature_groups=GROUPS, combiner=combiner, random_state=0
        ).fit(X_all, y_all)
        X_test = X_all[::5]
        # Per-layer scores computed here from the fitted detectors on their
        # columns, and the combination written out: the standardised mean, or
        # the logistic model's decision value (the linear logit; coef_ and
        # intercept_ of scikit-learn's LogisticRegression(CV) and of the
        # non-negative one alike).
        S = np.column_stack(
            [
                det.score_samples(X_test[:, cols])
                for det, cols in zip(ens.detectors_, ens.layer_columns_.values())
            ]
        )
        np.testing.assert_array_equal(ens.layer_scores(X_test), S)
        if combiner == "mean_standardized":
            expected = ((S - ens.layer_mean_) / ens.layer_scale_).mean(axis=1)
        else:
            model = ens.combiner_
            expected = S @ np.ravel(model.coef_) + np.ravel(model.intercept_)[0]
        # the same float64 sums in another order: a few eps64 of |S| |w|
        np.testing.assert_allclose(
            ens.score_samples(X_test), expected, rtol=1e-12, atol=1e-12
        )
        np.testing.assert_array_equal(ens.score_samples(X_test), ens.combine(S))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        ens.combine(np.zeros((3, 5)))


def test_layer_scorer_replaces_every_per_layer_score_of_the_fit():
    # A composite that scores each row through its own transform (here: the
    # rows of another array, as a pre-processing would give).
    X_all, y_all = _data(seed=8)
    X_moved = X_all + 0.3 * np.sin(X_all)
    calls = []

    def scorer(detectors, groups, rows):
        calls.append(rows)
        assert list(groups) == ["low", "high"]
        parts = zip(detectors, groups.values())
        return np.column_stack([d.score_samples(X_moved[rows][:, c]) for d, c in parts])

    ens = LayerEnsembleDetector(
        feature_groups=GROUPS, combiner="nonnegative_logistic", random_state=0
    ).fit(X_all, y_all, layer_scorer=scorer)
    inl = np.flatnonzero(y_all != -1)
    out = np.flatnonzero(y_all == -1)
    # row indices are those of X as given to fit: folds of the inliers, then
    # the -1 rows
    np.testing.assert_array_equal(np.sort(np.concatenate(calls[:-1])), inl)
    np.testing.assert_array_equal(calls[-1], out)
    # hand-assembled: out-of-fold scores of the moved inlier rows
    X, y = X_all[inl], y_all[inl]
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    oof = np.empty((len(X), 2))
    for tr, te in folds:
        for j, c in enumerate(GROUPS.values()):
            det = MahalanobisDetector(mode="tied").fit(X[tr][:, c], y[tr])
            oof[te, j] = det.score_samples(X_moved[inl][te][:, c])
    S_out = _final_scores(
        X, y, X_moved[out], GROUPS, lambda: MahalanobisDetector(mode="tied")
    )
    clf = NonNegativeLogisticRegression().fit(
        np.r_[oof, S_out], np.r_[np.ones(len(X)), np.zeros(len(out))]
    )
    # The per-layer detectors are fitted on the columns; the combiner and the
    # calibration come from the scorer's scores. Same computation on the same
    # inputs (up to BLAS rounding of the scores, ~1e-13 relative): the solver
    # lands within its tolerance (1e-10 on the gradient) of the same optimum.
    tol = {"rtol": 1e-6, "atol": 1e-9}
    np.testing.assert_allclose(ens.combiner_.coef_, clf.coef_, **tol)
    np.testing.assert_allclose(
        ens.calibration_scores_, clf.decision_function(oof), **tol
    )
    assert not hasattr(ens, "_layer_scorer")  # not stored
    X_test = X_all[:9]
    S_test = ens.layer_scores(X_test)
    np.testing.assert_allclose(
        ens.score_samples(X_test), clf.decision_function(S_test), **tol
    )

    with pytest.raises(ValueError, match=r"expected \(\d+, 2\)"):
        LayerEnsembleDetector(feature_groups=GROUPS, random_state=0).fit(
            X_all, y_all, layer_scorer=lambda d, g, rows: np.zeros((len(rows), 3))
        )
    with pytest.raises(TypeError, match="'layer_scorer'"):
        LayerEnsembleDetector().fit(X_all, y_all, layer_scorer="no")


def test_tensor_requiring_grad_is_scored_like_numpy():
    torch = pytest.importorskip("torch")
    X_all, y_all = _data(seed=9)
    X = X_all[y_all != -1]
    t = torch.tensor(X, requires_grad=True)
    ens = LayerEnsembleDetector(feature_groups=GROUPS, random_state=0).fit(t)
    ref = LayerEnsembleDetector(feature_groups=GROUPS, random_state=0).fit(X)
    np.testing.assert_array_equal(ens.score_samples(t), ref.score_samples(X))
    np.testing.assert_array_equal(ens.layer_scores(t), ref.layer_scores(X))
    assert t.grad is None and t.requires_grad


# ------------------------------------------------ non-negative combiner
def _nonneg_data(seed, signs):
    rng = np.random.RandomState(seed)
    scales = np.array([1.0, 30.0, 0.1, 5.0])[: len(signs)]
    X = rng.normal(size=(300, len(signs))) * scales
    z = (X - X.mean(0)) / X.std(0)
    y = (z @ np.asarray(signs, float) + rng.logistic(size=300) > 0).astype(int)
    return X, y


# L-BFGS-B stops at a projected gradient below tol = 1e-10, scikit-learn's
# lbfgs at tol = 1e-12 on the objective divided by C * n. The objective is
# 1-strongly convex in the standardised weights (the ||beta||^2 / 2 term), so
# each solution is within its gradient norm of the optimum: a few 1e-10 for
# n = 300. On the data's scale (|z| up to ~4, 300 rows) the decision values
# then agree to ~1e-7; 1e-6 leaves room for the conditioning of the loss.
_TOL = 1e-6


def test_nonnegative_logistic_equals_logistic_when_weights_are_positive():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _nonneg_data(0, [1.0, 0.5, 2.0, 0.3])
    clf = NonNegativeLogisticRegression(C=0.5).fit(X, y)
    ref = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.5, tol=1e-12, max_iter=10000)
    ).fit(X, y)
    assert np.all(ref[-1].coef_ > 0)
    np.testing.assert_allclose(
        clf.decision_function(X), ref.decision_function(X), rtol=0, atol=_TOL
    )
    np.testing.assert_allclose(
        clf.coef_[0] * X.std(0), ref[-1].coef_[0], rtol=0, atol=_TOL
    )
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=_TOL)
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X))


def test_nonnegative_logistic_active_set_and_kkt():
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _nonneg_data(1, [1.0, -1.5, 0.8, -0.2])
    free = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12)).fit(X, y)
    assert np.sum(free[-1].coef_ < 0) >= 1  # the constraint matters here
    clf = NonNegativeLogisticRegression().fit(X, y)
    beta = clf.coef_[0] * X.std(0)
    assert np.all(beta >= 0)
    active = beta > 0
    assert 0 < active.sum() < 4
    # independent solution: scikit-learn on the columns with a positive weight
    # (standardisation is per column, so it is the same on the subset)
    sub = make_pipeline(
        StandardScaler(), LogisticRegression(tol=1e-12, max_iter=10000)
    ).fit(X[:, active], y)
    np.testing.assert_allclose(beta[active], sub[-1].coef_[0], rtol=0, atol=_TOL)
    np.testing.assert_allclose(
        clf.decision_function(X), sub.decision_function(X[:, active]), atol=_TOL
    )
    # KKT: the gradient of the objective is >= 0 at the zero weights
    Z = (X - X.mean(0)) / X.std(0)
    t = np.where(y == 1, 1.0, -1.0)
    margin = t * clf.decision_function(X)
    grad = Z.T @ (-t * expit(-margin)) + beta
    assert np.all(grad[~active] >= -_TOL)


def test_nonnegative_logistic_is_monotone_and_validates():
    X, y = _nonneg_data(2, [1.0, -1.0])
    clf = NonNegativeLogisticRegression().fit(X, y)
    base = clf.decision_function(X)
    for j in range(2):
        up = X.copy()
        up[:, j] += 1.0
        assert np.all(clf.decision_function(up) >= base)
    with pytest.raises(ValueError, match="Only binary classification"):
        NonNegativeLogisticRegression().fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ValueError, match="'C' parameter"):
        NonNegativeLogisticRegression(C=0).fit(X, y)


def test_nonnegative_combiner_in_the_ensemble():
    X_all, y_all = _data(seed=10)
    inl = y_all != -1
    X, y, X_ood = X_all[inl], y_all[inl], X_all[~inl]
    ens = LayerEnsembleDetector(
        feature_groups=GROUPS, combiner="nonnegative_logistic", random_state=0
    ).fit(X_all, y_all)

    def tied():
        return MahalanobisDetector(mode="tied")

    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    oof = _oof_layer_scores(X, y, folds, GROUPS, tied)
    out = _final_scores(X, y, X_ood, GROUPS, tied)
    clf = NonNegativeLogisticRegression().fit(
        np.r_[oof, out], np.r_[np.ones(len(X)), np.zeros(len(X_ood))]
    )
    X_test = X_all[::4]
    np.testing.assert_allclose(
        ens.score_samples(X_test), clf.decision_function(ens.layer_scores(X_test))
    )
    assert np.all(ens.combiner_.coef_ >= 0)
    with pytest.raises(ValueError, match="needs known OOD"):
        LayerEnsembleDetector(combiner="nonnegative_logistic").fit(X)


# ------------------------------- several detectors, calibration-score folds
EPS64 = float(np.finfo(np.float64).eps)


def _standardised_mean(parts):
    """Hand-assembled rule: each detector's score standardised by the mean and
    standard deviation of its own calibration scores, then averaged."""
    out = 0.0
    for s, cal in parts:
        out = out + (s - cal.mean()) / cal.std()
    return out / len(parts)


def test_list_of_detectors_with_calibration_scores_as_folds():
    X_all, y_all = _data(seed=11)
    X = X_all[y_all != -1]
    X_test = X_all[::3]
    dets = [
        MahalanobisDetector(covariance="ledoit_wolf"),
        KNNDetector(n_neighbors=2, metric="cosine"),
    ]
    ens = LayerEnsembleDetector(
        dets, combiner="mean_standardized", cv="calibration"
    ).fit(X)
    assert list(ens.layer_columns_) == ["all[0]", "all[1]"]
    assert [type(d) for d in ens.detectors_] == [MahalanobisDetector, KNNDetector]
    refs = [type(d)(**d.get_params()).fit(X) for d in dets]
    for det, ref in zip(ens.detectors_, refs):
        np.testing.assert_array_equal(det.calibration_scores_, ref.calibration_scores_)
    expected = _standardised_mean(
        [(r.score_samples(X_test), r.calibration_scores_) for r in refs]
    )
    cal = _standardised_mean([(r.calibration_scores_,) * 2 for r in refs])
    # The same float64 operations; only the two-term sum may be ordered
    # differently: a few ulps of the largest standardised term.
    tol = 4 * EPS64 * max(np.abs(expected).max(), np.abs(cal).max())
    np.testing.assert_allclose(ens.score_samples(X_test), expected, rtol=0, atol=tol)
    np.testing.assert_allclose(ens.calibration_scores_, cal, rtol=0, atol=tol)
    assert ens.offset_ == conformal_threshold(ens.calibration_scores_, 0.025)
    # Means of the same n numbers summed in another order (a strided column):
    # at most (n - 1) eps64 * mean(|s|) apart (Higham, eq. 3.5).
    for mean, r in zip(ens.layer_mean_, refs):
        cal_r = r.calibration_scores_
        assert abs(mean - cal_r.mean()) <= cal_r.size * EPS64 * np.abs(cal_r).mean()


def test_list_of_detectors_on_several_groups_out_of_fold():
    X_all, y_all = _data(seed=12)
    inl = y_all != -1
    X, y = X_all[inl], y_all[inl]
    dets = [MahalanobisDetector(mode="tied"), KNNDetector(n_neighbors=3)]
    ens = LayerEnsembleDetector(
        dets, feature_groups=GROUPS, combiner="mean_standardized", random_state=0
    ).fit(X, y)
    assert list(ens.layer_columns_) == ["low[0]", "low[1]", "high[0]", "high[1]"]
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    oof = np.empty((len(X), 4))
    for tr, te in folds:
        for j, (c, det) in enumerate([(c, d) for c in GROUPS.values() for d in dets]):
            fitted = type(det)(**det.get_params()).fit(X[tr][:, c], y[tr])
            oof[te, j] = fitted.score_samples(X[te][:, c])
    # out-of-fold scores of the same fits; their means as above
    bound = len(X) * EPS64 * np.abs(oof).mean(0)
    assert np.all(np.abs(ens.layer_mean_ - oof.mean(0)) <= bound)
    X_test = X_all[::4]
    S = np.column_stack(
        [
            type(d)(**d.get_params()).fit(X[:, c], y).score_samples(X_test[:, c])
            for c in GROUPS.values()
            for d in dets
        ]
    )
    np.testing.assert_array_equal(ens.layer_scores(X_test), S)


class _HeldOut(MahalanobisDetector):
    """A detector whose calibration scores cover only half of its rows."""

    def _fit(self, X, y, X_outliers):
        scores = super()._fit(X, y, X_outliers)
        rows = np.arange(0, X.shape[0], 2)
        return np.asarray(scores)[rows], rows


def test_calibration_cv_needs_one_calibration_score_per_row():
    X_all, y_all = _data(seed=13)
    X = X_all[y_all != -1]
    from sklearn.ensemble import IsolationForest

    for det, found in ((_HeldOut(), "60 for 120"), (IsolationForest(), "none")):
        with pytest.raises(ValueError, match=f"cv='calibration'.*has {found}"):
            LayerEnsembleDetector(
                [KNNDetector(), det], combiner="mean_standardized", cv="calibration"
            ).fit(X)
    with pytest.raises(ValueError, match="cannot replace"):
        LayerEnsembleDetector(cv="calibration").fit(
            X, layer_scorer=lambda d, g, rows: np.zeros((len(rows), 1))
        )
    for bad in ([], [KNNDetector(), "knn"]):
        with pytest.raises(ValueError, match="'detector' parameter"):
            LayerEnsembleDetector(bad).fit(X)
    with pytest.raises(ValueError, match="'cv' parameter"):
        LayerEnsembleDetector(cv="loo").fit(X)
