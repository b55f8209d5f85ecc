"""Tests for sklearn_ood.metrics against independent computations."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ood import metrics as M
from sklearn_ood.metrics import (
    aupr_in,
    aupr_out,
    auroc,
    detection_accuracy,
    detection_error,
    fpr_at_tpr,
    get_ood_scorer,
    make_ood_scorer,
    ood_report,
    tnr_at_tpr,
)

ALL_METRICS = [
    auroc,
    aupr_in,
    aupr_out,
    tnr_at_tpr,
    fpr_at_tpr,
    detection_accuracy,
    detection_error,
]

# Hand-computed case with ties. In-distribution (+1) scores 4, 3, 3, 1; OOD (-1)
# scores 3, 2, 1, 0. Thresholds "accept if score >= t" (TP out of 4, FP out of 4):
#   t=+inf: TPR 0/4,  FPR 0/4
#   t=4:    TPR 1/4,  FPR 0/4
#   t=3:    TPR 3/4,  FPR 1/4   (both tied in-dist 3s and the OOD 3 cross together)
#   t=2:    TPR 3/4,  FPR 2/4
#   t=1:    TPR 4/4,  FPR 3/4   (in-dist 1 and OOD 1 cross together)
#   t=0:    TPR 4/4,  FPR 4/4
# 0.5 * (TPR + TNR) per row: 0.5, 0.625, 0.75, 0.625, 0.625, 0.5 -> DTACC = 0.75.
Y_TIES = np.array([1, 1, 1, 1, -1, -1, -1, -1])
S_TIES = np.array([4.0, 3.0, 3.0, 1.0, 3.0, 2.0, 1.0, 0.0])


def _random_case(seed=0, n_in=30, n_out=20, ties=False):
    rng = np.random.RandomState(seed)
    y = np.r_[np.ones(n_in, int), -np.ones(n_out, int)]
    s = np.r_[rng.normal(1.0, 1.0, n_in), rng.normal(0.0, 1.0, n_out)]
    if ties:
        s = np.round(s * 2)  # few distinct values, many ties across classes
    perm = rng.permutation(len(y))
    return y[perm], s[perm]


def _brute_force_curve(y, s):
    """(TPR, FPR) for every threshold 'score >= t', strictest first, by counting."""
    thresholds = np.r_[np.inf, np.sort(np.unique(s))[::-1]]
    pos, neg = s[y == 1], s[y == -1]
    return [(np.mean(pos >= t), np.mean(neg >= t)) for t in thresholds]


# --------------------------------------------------------------------------
# Metrics against references
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ties", [False, True])
def test_auroc_matches_roc_auc_score(ties):
    y, s = _random_case(ties=ties)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))


@pytest.mark.parametrize("ties", [False, True])
def test_aupr_in_and_out_match_average_precision(ties):
    y, s = _random_case(seed=1, ties=ties)
    assert aupr_in(y, s) == pytest.approx(average_precision_score(y, s, pos_label=1))
    assert aupr_out(y, s) == pytest.approx(average_precision_score(y, -s, pos_label=-1))
    # With imbalance the two areas genuinely differ.
    assert aupr_in(y, s) != pytest.approx(aupr_out(y, s))


@pytest.mark.parametrize(
    "tpr, exp_fpr, exp_tpr",
    [
        (0.95, 3 / 4, 4 / 4),  # first point with TPR >= 0.95 is t=1
        (0.75, 1 / 4, 3 / 4),  # t=3 reaches exactly 0.75
        (0.5, 1 / 4, 3 / 4),  # ties make TPR jump from 1/4 to 3/4 at t=3
        (0.25, 0 / 4, 1 / 4),  # t=4
        (1.0, 3 / 4, 4 / 4),
    ],
)
def test_operating_point_hand_computed_with_ties(tpr, exp_fpr, exp_tpr):
    assert fpr_at_tpr(Y_TIES, S_TIES, tpr=tpr) == pytest.approx(exp_fpr)
    assert tnr_at_tpr(Y_TIES, S_TIES, tpr=tpr) == pytest.approx(1 - exp_fpr)
    exp_err = 0.5 * (1 - exp_tpr) + 0.5 * exp_fpr
    assert detection_error(Y_TIES, S_TIES, tpr=tpr) == pytest.approx(exp_err)


def test_default_tpr_is_95_percent_hand_computed():
    assert tnr_at_tpr(Y_TIES, S_TIES) == pytest.approx(0.25)
    assert fpr_at_tpr(Y_TIES, S_TIES) == pytest.approx(0.75)
    assert detection_error(Y_TIES, S_TIES) == pytest.approx(0.375)


def test_detection_accuracy_hand_computed_with_ties():
    assert detection_accuracy(Y_TIES, S_TIES) == pytest.approx(0.75)


def test_perfect_and_reversed_scores():
    y = [1, 1, 1, -1, -1]
    perfect = [5.0, 4.0, 3.0, 1.0, 0.0]
    assert auroc(y, perfect) == 1.0
    assert aupr_in(y, perfect) == 1.0
    assert aupr_out(y, perfect) == 1.0
    assert tnr_at_tpr(y, perfect) == 1.0
    assert fpr_at_tpr(y, perfect) == 0.0
    assert detection_accuracy(y, perfect) == 1.0
    assert detection_error(y, perfect) == 0.0
    # Reversed: accepting all 3 inliers accepts both OOD samples; the best
    # balanced accuracy is the trivial 0.5 (accept all / reject all).
    reversed_ = [-v for v in perfect]
    assert auroc(y, reversed_) == 0.0
    assert tnr_at_tpr(y, reversed_) == 0.0
    assert detection_accuracy(y, reversed_) == 0.5
    assert detection_error(y, reversed_) == 0.5


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("tpr", [0.5, 0.8, 0.95, 1.0])
def test_operating_point_matches_brute_force(ties, tpr):
    y, s = _random_case(seed=2, ties=ties)
    curve = _brute_force_curve(y, s)
    t_reached, f_reached = next((t, f) for t, f in curve if t >= tpr)
    assert fpr_at_tpr(y, s, tpr=tpr) == pytest.approx(f_reached)
    assert tnr_at_tpr(y, s, tpr=tpr) == pytest.approx(1 - f_reached)
    assert detection_error(y, s, tpr=tpr) == pytest.approx(
        0.5 * (1 - t_reached) + 0.5 * f_reached
    )


@pytest.mark.parametrize("ties", [False, True])
def test_detection_accuracy_matches_brute_force(ties):
    y, s = _random_case(seed=3, ties=ties)
    expected = max(0.5 * (t + 1 - f) for t, f in _brute_force_curve(y, s))
    assert detection_accuracy(y, s) == pytest.approx(expected)


# --------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ALL_METRICS)
def test_boolean_and_container_inputs_equal_pm1_labels(metric):
    y, s = _random_case(seed=4, ties=True)
    expected = metric(y, s)
    assert metric(y == 1, s) == expected
    assert metric(list(y == 1), list(s)) == expected
    assert metric(y.tolist(), s.tolist()) == expected
    assert metric(y.astype(float), s) == expected
    assert metric(pd.Series(y), pd.Series(s)) == expected
    assert metric(pd.Series(y, dtype="Int64"), s) == expected
    assert metric(pd.Series(y == 1, dtype="boolean"), s) == expected


def test_inputs_not_mutated():
    y = pd.Series([1, -1, 1, -1])
    s = np.array([0.3, 0.1, 0.2, 0.4])
    y_copy, s_copy = y.copy(), s.copy()
    for metric in ALL_METRICS:
        metric(y, s)
    ood_report(y, {"a": s})
    pd.testing.assert_series_equal(y, y_copy)
    np.testing.assert_array_equal(s, s_copy)


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("labels", [[0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0]])
def test_zero_one_labels_rejected_as_ambiguous(metric, labels):
    with pytest.raises(ValueError, match=r"ambiguous.*\+1/-1 or to booleans"):
        metric(labels, [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("labels", [[1, 2, 1, 2], ["in", "out", "in", "out"]])
def test_other_labels_rejected(labels):
    with pytest.raises(ValueError, match=r"y_true must contain only the labels"):
        auroc(labels, [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize(
    "labels", [[1, 1, 1], [-1, -1, -1], [True, True, True], [False] * 3]
)
def test_single_class_rejected(metric, labels):
    with pytest.raises(ValueError, match="both in-distribution and out-of-dist"):
        metric(labels, [0.1, 0.2, 0.3])


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_score_rejected(metric, bad):
    with pytest.raises(ValueError, match="score"):
        metric([1, -1, 1], [0.1, bad, 0.3])


def test_shape_errors():
    with pytest.raises(ValueError, match="inconsistent numbers of samples: 3 and 2"):
        auroc([1, -1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="score must be a 1-D array"):
        auroc([1, -1], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match="y_true must be a 1-D array"):
        auroc([[1, -1]], [0.1, 0.2])


@pytest.mark.parametrize("tpr", [0.0, 1.5, -0.1])
def test_invalid_tpr_rejected(tpr):
    with pytest.raises(ValueError, match="'tpr' parameter of tnr_at_tpr"):
        tnr_at_tpr([1, -1], [0.1, 0.2], tpr=tpr)


# --------------------------------------------------------------------------
# ood_report
# --------------------------------------------------------------------------
def test_ood_report_dict_equals_individual_metrics():
    y, s = _random_case(seed=5, ties=True)
    rep = ood_report(y, s, output_dict=True)
    assert rep == {
        "auroc": auroc(y, s),
        "aupr_in": aupr_in(y, s),
        "aupr_out": aupr_out(y, s),
        "tnr_at_95_tpr": tnr_at_tpr(y, s),
        "fpr_at_95_tpr": fpr_at_tpr(y, s),
        "detection_accuracy": detection_accuracy(y, s),
        "detection_error": detection_error(y, s),
    }
    rep90 = ood_report(y, s, tpr=0.9, output_dict=True)
    assert rep90["tnr_at_90_tpr"] == tnr_at_tpr(y, s, tpr=0.9)
    assert rep90["fpr_at_90_tpr"] == fpr_at_tpr(y, s, tpr=0.9)
    assert rep90["detection_error"] == detection_error(y, s, tpr=0.9)


def test_ood_report_several_detectors():
    y, s = _random_case(seed=6)
    scores = {"good": s, "reversed": -s, "rounded": np.round(s)}
    rep = ood_report(y, scores, output_dict=True)
    assert list(rep) == ["good", "reversed", "rounded"]
    for name, sc in scores.items():
        assert rep[name] == ood_report(y, sc, output_dict=True)
    text = ood_report(y, scores, digits=3)
    lines = text.strip("\n").split("\n")
    assert lines[0].split() == list(rep["good"])
    assert len(lines) == 1 + len(scores)
    for line, (name, row) in zip(lines[1:], rep.items(), strict=True):
        cells = line.split()
        assert cells[0] == name
        assert cells[1:] == [f"{v:.3f}" for v in row.values()]


def test_ood_report_single_array_text():
    text = ood_report(Y_TIES, S_TIES, digits=2)
    lines = text.strip("\n").split("\n")
    assert len(lines) == 2
    # Hand-computed: fpr@95 = 0.75, tnr@95 = 0.25, DTACC 0.75, error 0.375.
    assert lines[1].split()[0] == "score"
    assert lines[1].split()[4:] == ["0.25", "0.75", "0.75", "0.38"]


def test_ood_report_errors():
    with pytest.raises(ValueError, match="empty dict"):
        ood_report([1, -1], {})
    with pytest.raises(ValueError, match=r"score\['b'\].*NaN"):
        ood_report([1, -1], {"a": [1.0, 0.0], "b": [np.nan, 0.0]})
    with pytest.raises(ValueError, match="'digits' parameter of ood_report"):
        ood_report([1, -1], [1.0, 0.0], digits=-1)


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------
SCORER_METRICS = {
    "auroc": (auroc, {}, 1),
    "aupr_in": (aupr_in, {}, 1),
    "aupr_out": (aupr_out, {}, 1),
    "tnr_at_95_tpr": (tnr_at_tpr, {"tpr": 0.95}, 1),
    "detection_accuracy": (detection_accuracy, {}, 1),
    "neg_fpr_at_95_tpr": (fpr_at_tpr, {"tpr": 0.95}, -1),
    "neg_detection_error": (detection_error, {"tpr": 0.95}, -1),
}


def _ood_data():
    rng = np.random.RandomState(0)
    X_in = rng.normal(size=(45, 2))
    X_out = rng.uniform(1.5, 4.0, size=(15, 2)) * rng.choice([-1, 1], size=(15, 2))
    X = np.r_[X_in, X_out]
    y = np.r_[np.repeat([0, 1, 2], 15), -np.ones(15, int)]
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def _manual_cv(estimator, X, y, cv, metric, kwargs, sign):
    values = []
    for train, test in cv.split(X, y):
        est = clone(estimator).fit(X[train], y[train])
        y_test = np.where(y[test] == -1, -1, 1)
        assert (y_test == -1).any() and (y_test == 1).any()
        values.append(sign * metric(y_test, est.score_samples(X[test]), **kwargs))
    return np.array(values)


@pytest.mark.parametrize("name", list(SCORER_METRICS))
def test_cross_val_score_equals_manual_metric(name):
    X, y = _ood_data()
    est = EllipticEnvelope(random_state=0)
    cv = KFold(3, shuffle=True, random_state=0)
    metric, kwargs, sign = SCORER_METRICS[name]
    got = cross_val_score(est, X, y, cv=cv, scoring=get_ood_scorer(name))
    np.testing.assert_allclose(got, _manual_cv(est, X, y, cv, metric, kwargs, sign))


def test_multimetric_grid_search_with_pipeline_clone_and_pickle():
    X, y = _ood_data()
    pipe = make_pipeline(StandardScaler(), IsolationForest(random_state=0))
    cv = KFold(3, shuffle=True, random_state=1)
    grid = {"isolationforest__n_estimators": [5, 10]}
    scoring = {name: get_ood_scorer(name) for name in SCORER_METRICS}
    search = GridSearchCV(pipe, grid, scoring=scoring, refit="auroc", cv=cv)
    search = pickle.loads(pickle.dumps(clone(search)))
    search.fit(X, y)
    for i, params in enumerate(search.cv_results_["params"]):
        est = clone(pipe).set_params(**params)
        for name, (metric, kwargs, sign) in SCORER_METRICS.items():
            expected = _manual_cv(est, X, y, cv, metric, kwargs, sign)
            got = [search.cv_results_[f"split{k}_test_{name}"][i] for k in range(3)]
            np.testing.assert_allclose(got, expected)
    best = np.argmax(search.cv_results_["mean_test_auroc"])
    assert search.best_params_ == search.cv_results_["params"][best]
    # A fitted search pickles and scores the same afterwards.
    restored = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(restored.score_samples(X), search.score_samples(X))


def test_scorer_sign_values_and_boolean_y():
    X, y = _ood_data()
    est = EllipticEnvelope(random_state=0).fit(X[y != -1])
    s = est.score_samples(X)
    y_pm = np.where(y == -1, -1, 1)
    assert M.auroc_scorer(est, X, y) == auroc(y_pm, s)
    assert M.aupr_in_scorer(est, X, y) == aupr_in(y_pm, s)
    assert M.aupr_out_scorer(est, X, y) == aupr_out(y_pm, s)
    assert M.tnr_at_95_tpr_scorer(est, X, y) == tnr_at_tpr(y_pm, s)
    assert M.detection_accuracy_scorer(est, X, y) == detection_accuracy(y_pm, s)
    assert get_ood_scorer("neg_fpr_at_95_tpr")(est, X, y) == -fpr_at_tpr(y_pm, s)
    assert get_ood_scorer("neg_detection_error")(est, X, y) == -detection_error(y_pm, s)
    # Boolean y is used as the inlier mask directly.
    assert M.auroc_scorer(est, X, y != -1) == auroc(y_pm, s)
    scorer = make_ood_scorer("tnr_at_tpr", tpr=0.8)
    assert scorer(est, X, y) == tnr_at_tpr(y_pm, s, tpr=0.8)
    assert pickle.loads(pickle.dumps(scorer))(est, X, y) == scorer(est, X, y)


class _ScoreAndDecision(OutlierMixin, BaseEstimator):
    """score_samples ranks by -x0; decision_function deliberately the reverse."""

    def fit(self, X, y=None):
        return self

    def score_samples(self, X):
        return -np.asarray(X)[:, 0]

    def decision_function(self, X):
        return np.asarray(X)[:, 0]


class _DecisionOnly(OutlierMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def decision_function(self, X):
        return -np.asarray(X)[:, 0]


def test_scorer_prefers_score_samples_and_falls_back_to_decision_function():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([7, 7, -1, -1])  # class label 7 = in-distribution
    assert M.auroc_scorer(_ScoreAndDecision().fit(X), X, y) == 1.0
    assert M.auroc_scorer(_DecisionOnly().fit(X), X, y) == 1.0
    forced = make_ood_scorer("auroc", response_method="decision_function")
    assert forced(_ScoreAndDecision().fit(X), X, y) == 0.0


def _mean_score(y_true, score):
    return float(np.mean(score[y_true]))


def test_make_ood_scorer_custom_callable_and_sign():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 1, -1, -1])
    est = _DecisionOnly().fit(X)
    assert make_ood_scorer(_mean_score)(est, X, y) == -0.5
    assert make_ood_scorer(_mean_score, greater_is_better=False)(est, X, y) == 0.5
    # Passing the built-in error function infers the sign like its name does.
    assert make_ood_scorer(fpr_at_tpr)(est, X, y) == -0.0
    assert make_ood_scorer(detection_error, tpr=0.5)(est, X, y) == -0.25


def test_scorer_errors():
    X = np.array([[0.0], [1.0], [2.0]])
    est = _DecisionOnly().fit(X)
    with pytest.raises(ValueError, match=r"both OOD samples \(y == -1\)"):
        M.auroc_scorer(est, X, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="'metric' parameter of make_ood_scorer"):
        make_ood_scorer("accuracy")
    with pytest.raises(TypeError, match="Invalid keyword arguments"):
        make_ood_scorer("auroc", tpr=0.9)
    with pytest.raises(ValueError, match="'name' parameter of get_ood_scorer"):
        get_ood_scorer("tnr_at_tpr")
    with pytest.raises(AttributeError, match="none of the following attributes"):
        M.auroc_scorer(object(), X, np.array([0, 1, -1]))


def test_get_ood_scorer_returns_fresh_copy_with_readable_repr():
    a, b = get_ood_scorer("tnr_at_95_tpr"), get_ood_scorer("tnr_at_95_tpr")
    assert a is not b and a._kwargs is not b._kwargs
    assert repr(a) == "make_ood_scorer(tnr_at_tpr, tpr=0.95)"
    assert repr(get_ood_scorer("neg_detection_error")) == (
        "make_ood_scorer(detection_error, greater_is_better=False, tpr=0.95)"
    )
