"""Tests of LayerEnsembleDetector against a hand-assembled feature ensemble."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood._ensemble import LayerEnsembleDetector, lee_logistic_regression
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


@parametrize_with_checks(
    [
        LayerEnsembleDetector(),
        LayerEnsembleDetector(
            KNNDetector(), feature_groups=[[0], [-1]], cv=3, random_state=0
        ),
    ],
    expected_failed_checks=lambda est: {
        "check_outliers_train": "offset_ comes from out-of-fold training scores",
        "check_outliers_fit_predict": "offset_ comes from out-of-fold training scores",
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_constraints_cover_parameters():
    est = LayerEnsembleDetector()
    assert set(est._parameter_constraints) == set(est.get_params(deep=False))


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
