"""Common tests of every public estimator: scikit-learn's checks and the contract.

The instances and the expected failures come from one registry,
``tests/_registry.py``; estimators are discovered automatically, so a new
public estimator without registered instances fails
``test_every_public_estimator_is_registered``.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.utils import shuffle
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    parametrize_with_checks,
)

from tests._registry import (
    INSTANCES,
    all_estimators,
    expected_failed_checks,
    instances,
    two_d_detectors,
)


def test_every_public_estimator_is_registered():
    missing = [cls.__name__ for cls in all_estimators() if not INSTANCES.get(cls)]
    assert not missing, f"register test instances in tests/_registry.py: {missing}"


@parametrize_with_checks(instances(), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", instances(), ids=repr)
def test_constraints_cover_parameters(estimator):
    assert set(estimator._parameter_constraints) == set(
        estimator.get_params(deep=False)
    )


def _takes_2d(estimator) -> bool:
    return estimator.__sklearn_tags__().input_tags.two_d_array


@pytest.mark.parametrize(
    "estimator", [e for e in instances() if not _takes_2d(e)], ids=repr
)
def test_api_checks_of_image_estimators(estimator):
    """scikit-learn skips every check of an estimator that refuses 2-D input
    (its tags): run the ones that need no data."""
    name = type(estimator).__name__
    check_no_attributes_set_in_init(name, estimator)
    check_get_params_invariance(name, estimator)
    check_set_params(name, estimator)
    check_parameters_default_constructible(name, type(estimator)())
    assert clone(estimator).get_params() == estimator.get_params()


def _blobs(n=300):
    X, y = make_blobs(n_samples=n, random_state=0)
    return shuffle(X, y, random_state=7)


@pytest.mark.parametrize("detector", two_d_detectors(), ids=repr)
@pytest.mark.parametrize("contamination", [0.05, 0.1, 0.5])
def test_fit_predict_share(detector, contamination):
    """fit_predict flags exactly floor(c n) rows: those with the lowest
    calibration scores (IsolationForest's share, from scores of rows the model
    did not memorise)."""
    X, _ = _blobs()
    det = clone(detector).set_params(contamination=contamination)
    labels = det.fit_predict(X)
    assert labels.dtype.kind == "i" and set(np.unique(labels)) <= {-1, 1}
    cal = det.calibration_scores_
    assert np.all(np.isfinite(cal))
    # Every row has a calibration score (leave-one-out, out-of-fold): they
    # rank the rows. A held-out calibration share (split conformal): the
    # in-sample scores rank them, as IsolationForest's.
    ranked = cal if cal.shape == (len(X),) else det.score_samples(X)
    m = int(np.floor(contamination * len(X)))
    order = np.argsort(ranked, kind="stable")
    if m < len(X) and ranked[order[m - 1]] == ranked[order[m]]:
        pytest.skip("tied scores at the cut")  # ties aside, by design
    assert np.sum(labels == -1) == m
    assert_array_equal(np.flatnonzero(labels == -1), np.sort(order[:m]))


@pytest.mark.parametrize(
    "detector",
    # method="cross" scores with the cross-conformal p-value itself (checked by
    # brute force in tests/test_conformal.py), not against one calibration set.
    [d for d in two_d_detectors() if d.get_params(deep=False).get("method") != "cross"],
    ids=repr,
)
def test_offset_and_p_values_agree(detector):
    """predict(x) == -1 exactly when the conformal p-value of x is <= c."""
    X, _ = _blobs()
    rng = np.random.RandomState(0)
    X_new = X[rng.choice(len(X), 200)] + rng.normal(scale=1.5, size=(200, 2))
    det = clone(detector).set_params(contamination=0.1).fit(X)
    cal = np.sort(det.calibration_scores_)
    s = det.score_samples(X_new)
    # Independent statement: p = (1 + #{cal <= s}) / (n + 1), by counting.
    p = np.array([(1 + np.sum(cal <= v)) / (cal.size + 1) for v in s])
    np.testing.assert_allclose(det.p_values(X_new), p, rtol=0, atol=1e-15)
    assert_array_equal(det.predict(X_new) == -1, p <= 0.1)
