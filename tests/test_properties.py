"""Property tests of the outlier contract for every 2-D detector (hypothesis).

Over generated shapes, dtypes and scales (from 1e-30 to 1e30, float32 and
float64, shifted data, duplicated rows, constant columns) every detector that
takes feature vectors must:

- leave its input unchanged;
- return finite float64 scores of shape (n,) for its training rows and for new
  rows;
- keep ``decision_function == score_samples - offset_`` and ``predict`` in
  {+1, -1} with ``predict == -1`` exactly where ``decision_function < 0``;
- flag a sample exactly when its conformal p-value is at most ``contamination``;
- give results independent of the chunk size (scikit-learn's
  ``working_memory``) within the rounding bound stated in ``_chunk_bound``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import config_context
from sklearn.base import clone

from sklearn_ood import KNNDetector
from sklearn_ood.base import CalibrationWarning
from tests._knn_reference import score_tolerance
from tests._registry import two_d_detectors

DETECTORS = two_d_detectors()


@st.composite
def feature_data(draw):
    """Training rows, new rows and the contamination to use."""
    n = draw(st.integers(min_value=40, max_value=90))
    d = draw(st.integers(min_value=2, max_value=6))  # components=(1, None) needs 2
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    big = 1e30 if dtype == np.float32 else 1e150
    scale = draw(st.sampled_from([1e-30, 1e-6, 1.0, 1e6, 1e15, big]))
    shift = draw(st.sampled_from([0.0, 1.0, 1e3]))
    duplicates = draw(st.booleans())
    constant = draw(st.booleans()) and d > 1
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    contamination = draw(st.sampled_from(["auto", 0.05, 0.1, 0.5]))
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d))
    if duplicates:
        X[n // 2 :] = X[: n - n // 2]
    if constant:
        X[:, 0] = 0.5
    X_new = rng.normal(size=(30, d)) * 1.5
    X = ((X + shift) * scale).astype(dtype)
    X_new = ((X_new + shift) * scale).astype(dtype)
    return X, X_new, contamination


def _chunk_bound(scores, dtype, d):
    """Largest difference two summation orders can make in a score.

    Every score is a sum of O(d) products formed in ``dtype`` (a GEMM-expanded
    squared distance or a whitened norm), plus terms of the same magnitude;
    reordering such a sum changes it by at most ``gamma_m * sum |terms|`` with
    ``gamma_m = m eps / (1 - m eps)`` (Higham, Accuracy and Stability, 3.1),
    and ``sum |terms|`` is within a small factor of the largest score of the
    batch (the expansion ``|q|^2 + |r|^2 - 2 q.r`` is centred on the training
    mean, so its terms are of the size of the distances). ``m = 4 (d + 4)``
    covers the products, the norm terms and the aggregation of neighbours.
    """
    eps = np.finfo(dtype).eps
    m = 4 * (d + 4)
    return m * eps / (1 - m * eps) * (np.max(np.abs(scores)) + np.finfo(float).tiny)


@pytest.mark.parametrize("detector", DETECTORS, ids=repr)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=feature_data())
def test_contract_properties(detector, data):
    X, X_new, contamination = data
    X_before, X_new_before = X.copy(), X_new.copy()
    det = clone(detector).set_params(contamination=contamination)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        try:
            det.fit(X)
        except ValueError as exc:
            # The documented refusal: features whose squares overflow float64,
            # named with their range (sklearn_ood.utils._numeric).
            assert "in absolute value" in str(exc), str(exc)
            assert np.abs(X).max() > 1e100
            np.testing.assert_array_equal(X, X_before)
            return
    np.testing.assert_array_equal(X, X_before)

    for Z in (X, X_new):
        s = det.score_samples(Z)
        assert s.dtype == np.float64 and s.shape == (Z.shape[0],)
        assert np.all(np.isfinite(s)), f"non-finite scores for scale {np.abs(Z).max()}"
        dec = det.decision_function(Z)
        np.testing.assert_array_equal(dec, s - det.offset_)
        pred = det.predict(Z)
        assert pred.dtype.kind == "i"
        np.testing.assert_array_equal(pred, np.where(dec < 0, -1, 1))
        c = 0.025 if contamination == "auto" else contamination
        p = det.p_values(Z)
        n_cal = det.calibration_scores_.size
        assert np.all((p >= 1.0 / (n_cal + 1) - 1e-15) & (p <= 1.0))
        if np.floor(c * (n_cal + 1) * (1 + 1e-12)) >= 1:
            np.testing.assert_array_equal(pred == -1, p <= c * (1 + 1e-12))
    np.testing.assert_array_equal(X_new, X_new_before)

    # Chunk size: one row at a time (working_memory tiny) vs all rows at once.
    s_all = det.score_samples(X_new)
    with config_context(working_memory=1e-6):
        s_rows = det.score_samples(X_new)
    tol = _chunk_bound(s_all, X.dtype, X.shape[1])
    if isinstance(det, KNNDetector):
        # Other tiles, other BLAS calls (a GEMV for one row): rounding may
        # swap neighbours whose distances agree to within the selection
        # bound; each run is within score_tolerance of the exact scores.
        k = det.n_neighbors
        tol = tol + 2 * score_tolerance(
            X, X_new, X.dtype, det.metric, det.aggregation, k
        )
    assert np.all(np.abs(s_rows - s_all) <= tol), np.max(np.abs(s_rows - s_all) - tol)
