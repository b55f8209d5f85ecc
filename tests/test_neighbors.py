"""Tests of KNNDetector against independent nearest-neighbour computations."""

import pickle

import numpy as np
import pytest
from sklearn import config_context
from sklearn.exceptions import NotFittedError
from sklearn.metrics.pairwise import cosine_distances
from sklearn.neighbors import NearestNeighbors

from sklearn_ood._neighbors import KNNDetector
from sklearn_ood.base import AUTO_CONTAMINATION
from tests._calibration import conformal_threshold

METRICS = ["sqeuclidean", "euclidean", "cosine"]
AGGREGATIONS = {
    "mean": lambda d: d.mean(axis=1),
    "sum": lambda d: d.sum(axis=1),
    "max": lambda d: d.max(axis=1),
    "kth": lambda d: d[:, -1],  # sklearn sorts the distances: k-th = last
}


def _reference_distances(X_fit, X_query, k, metric):
    """k nearest distances from scikit-learn's brute-force search (float64)."""
    nn = NearestNeighbors(
        n_neighbors=k,
        algorithm="brute",
        metric="cosine" if metric == "cosine" else "euclidean",
    ).fit(np.asarray(X_fit, dtype=np.float64))
    if X_query is None:
        dist, ind = nn.kneighbors()
    else:
        dist, ind = nn.kneighbors(np.asarray(X_query, dtype=np.float64))
    if metric == "sqeuclidean":
        dist = dist**2
    return dist, ind


def _loo_scores(X, k, metric, aggregation):
    """Leave-one-out scores: refit a search on X without row i, for each i."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        dist, _ = _reference_distances(np.delete(X, i, axis=0), X[i : i + 1], k, metric)
        out[i] = -AGGREGATIONS[aggregation](dist)[0]
    return out


def _features(rng, n, d=256, offset=0.0):
    """ReLU-like clustered features, as pooled CNN features look."""
    centers = rng.gamma(2.0, 0.5, size=(5, d))
    labels = rng.randint(5, size=n)
    Z = centers[labels] * rng.lognormal(0.0, 0.3, size=(n, d))
    return np.maximum(Z + 0.3 * rng.normal(size=(n, d)) + 1.0, 0.0) + offset


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(60, 4)), rng.normal(size=(25, 4))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("aggregation", list(AGGREGATIONS))
@pytest.mark.parametrize("metric", METRICS)
def test_scores_match_nearest_neighbors(data, metric, aggregation, dtype):
    X, T = data
    det = KNNDetector(n_neighbors=3, metric=metric, aggregation=aggregation)
    det.fit(X.astype(dtype))
    scores = det.score_samples(T.astype(dtype))
    dist, _ = _reference_distances(X, T, 3, metric)
    expected = -AGGREGATIONS[aggregation](dist)
    assert scores.dtype == np.float64
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-5, 1e-6)
    np.testing.assert_allclose(scores, expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        det.decision_function(T.astype(dtype)), scores - det.offset_, rtol=1e-12
    )


def test_hand_computed_scores():
    X = np.array([[0.0], [1.0], [3.0]])
    query = np.array([[2.0], [10.0]])
    # distances from 2: 2, 1, 1; from 10: 10, 9, 7 -> two nearest: {1, 1}, {9, 7}
    cases = {
        ("sqeuclidean", "mean"): [-1.0, -(81 + 49) / 2],
        ("sqeuclidean", "sum"): [-2.0, -130.0],
        ("euclidean", "mean"): [-1.0, -8.0],
        ("euclidean", "kth"): [-1.0, -9.0],
        ("euclidean", "max"): [-1.0, -9.0],
    }
    for (metric, aggregation), expected in cases.items():
        det = KNNDetector(metric=metric, aggregation=aggregation).fit(X)
        np.testing.assert_allclose(det.score_samples(query), expected, rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_kneighbors_matches_nearest_neighbors(data, metric):
    X, T = data
    det = KNNDetector(metric=metric).fit(X)
    for query in (T, None):
        dist, ind = det.kneighbors(query, n_neighbors=4)
        ref_dist, ref_ind = _reference_distances(X, query, 4, metric)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(ind, ref_ind)
        assert dist.dtype == np.float64
        assert np.all(np.diff(dist, axis=1) >= 0)
    ind_only = det.kneighbors(T, return_distance=False)
    np.testing.assert_array_equal(ind_only, _reference_distances(X, T, 2, metric)[1])
    # All training samples as neighbours of a query.
    dist, ind = det.kneighbors(T[:3], n_neighbors=X.shape[0])
    assert sorted(ind[0]) == list(range(X.shape[0]))


def test_kneighbors_errors(data):
    X, T = data
    with pytest.raises(NotFittedError):
        KNNDetector().kneighbors(T)
    det = KNNDetector().fit(X)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        det.kneighbors(T, n_neighbors=61)
    with pytest.raises(ValueError, match="not its own neighbour"):
        det.kneighbors(None, n_neighbors=60)
    with pytest.raises(ValueError, match="Expected n_neighbors > 0"):
        det.kneighbors(T, n_neighbors=0)
    with pytest.raises(TypeError, match="enter integer value"):
        det.kneighbors(T, n_neighbors=2.5)
    with pytest.raises(ValueError, match="4 features"):
        det.kneighbors(T[:, :3])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("aggregation", ["mean", "kth"])
def test_offset_from_leave_one_out_scores(metric, aggregation):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(30, 3))
    # Duplicate rows: a duplicate is a legitimate neighbour at distance 0,
    # and a triplicate gives ties among the k + 1 smallest.
    X = np.vstack([X, X[:4], X[:1], X[10:11] * 3.0])
    loo = _loo_scores(X, 2, metric, aggregation)
    for contamination in ("auto", 0.1, 0.5):
        det = KNNDetector(
            metric=metric, aggregation=aggregation, contamination=contamination
        ).fit(X)
        share = AUTO_CONTAMINATION if contamination == "auto" else contamination
        expected = conformal_threshold(loo, share)
        assert det.offset_ == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # The same leave-one-out search through kneighbors(None).
    dist, ind = det.kneighbors()
    assert not np.any(ind == np.arange(X.shape[0])[:, None])
    np.testing.assert_allclose(
        -AGGREGATIONS[aggregation](dist), loo, rtol=1e-9, atol=1e-12
    )


def test_leave_one_out_hand_computed_with_duplicates():
    X = np.array([[0.0], [0.0], [1.0], [3.0]])
    det = KNNDetector(n_neighbors=1, contamination=0.5).fit(X)
    # Leave-one-out nearest squared distances: 0 (duplicate), 0, 1, 4.
    assert det.offset_ == pytest.approx(
        conformal_threshold([0.0, 0.0, -1.0, -4.0], 0.5)
    )
    dist, ind = det.kneighbors()
    np.testing.assert_allclose(dist[:, 0], [0.0, 0.0, 1.0, 4.0], atol=1e-12)
    np.testing.assert_array_equal(ind[:2, 0], [1, 0])


@pytest.mark.parametrize("metric", METRICS)
def test_chunking_invariance(data, monkeypatch, metric):
    X, T = data
    det = KNNDetector(n_neighbors=3, metric=metric, contamination=0.2).fit(X)
    scores, (dist, ind) = det.score_samples(T), det.kneighbors()
    calls = []
    original = KNNDetector._chunk_distances

    def counting(self, Q, q_sq):
        calls.append(Q.shape[0])
        return original(self, Q, q_sq)

    monkeypatch.setattr(KNNDetector, "_chunk_distances", counting)
    with config_context(working_memory=1e-6):  # one row per chunk
        small = KNNDetector(n_neighbors=3, metric=metric, contamination=0.2).fit(X)
        assert calls == [1] * X.shape[0]
        small_scores, (small_dist, small_ind) = (
            small.score_samples(T),
            small.kneighbors(),
        )
    assert calls == [1] * (2 * X.shape[0] + T.shape[0])
    assert small.offset_ == pytest.approx(det.offset_, rel=1e-12)
    np.testing.assert_allclose(small_scores, scores, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(small_dist, dist, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(small_ind, ind)


@pytest.mark.parametrize("metric", METRICS)
def test_float32_accuracy_on_realistic_features(metric):
    rng = np.random.RandomState(2)
    # A common offset makes the squared norms large next to the distances:
    # the cancellation that centring the reference guards against.
    X, T = _features(rng, 400, offset=10.0), _features(rng, 100, offset=10.0)
    s64 = KNNDetector(metric=metric).fit(X).score_samples(T)
    det32 = KNNDetector(metric=metric).fit(X.astype(np.float32))
    s32 = det32.score_samples(T.astype(np.float32))
    assert det32._reference.dtype == np.float32
    np.testing.assert_allclose(s32, s64, rtol=1e-4)


def test_cosine_zero_vectors():
    rng = np.random.RandomState(3)
    X = np.vstack([rng.normal(size=(10, 3)), np.zeros((1, 3))])
    T = np.vstack([rng.normal(size=(4, 3)), np.zeros((1, 3))])
    det = KNNDetector(n_neighbors=3, metric="cosine", aggregation="sum").fit(X)
    dist, ind = det.kneighbors(T, n_neighbors=11)
    expected = np.sort(cosine_distances(T, X), axis=1)
    np.testing.assert_allclose(dist, expected, atol=1e-12)
    # The zero query is at distance 1 from everything; the zero reference
    # is at distance 1 from every query.
    np.testing.assert_allclose(dist[-1], 1.0)
    np.testing.assert_allclose(
        np.take_along_axis(dist, np.argsort(ind, axis=1), axis=1)[:, -1], 1.0
    )
    # Cosine is invariant to positive rescaling.
    np.testing.assert_allclose(
        det.score_samples(3.0 * T), det.score_samples(T), rtol=1e-12
    )


def test_n_neighbors_must_be_below_n_samples():
    X = np.random.RandomState(4).normal(size=(5, 2))
    with pytest.raises(ValueError, match=r"n_neighbors < the number.*n_neighbors=5"):
        KNNDetector(n_neighbors=5).fit(X)
    KNNDetector(n_neighbors=4).fit(X)  # k + 1 = n samples is enough
    # Rows labelled -1 are left out of the index, and so of the count.
    y = np.array([0, 0, 0, -1, -1])
    with pytest.raises(ValueError, match="n_neighbors=3 with 3 samples"):
        KNNDetector(n_neighbors=3).fit(X, y)
    det = KNNDetector(n_neighbors=2).fit(X, y)
    ref = KNNDetector(n_neighbors=2).fit(X[:3])
    assert det.n_samples_fit_ == 3
    np.testing.assert_allclose(det.score_samples(X), ref.score_samples(X))
    assert det.offset_ == ref.offset_


@pytest.mark.parametrize(
    "params, match",
    [
        ({"metric": "manhattan"}, "The 'metric' parameter of KNNDetector must be"),
        ({"aggregation": "median"}, "The 'aggregation' parameter of KNNDetector"),
        ({"n_neighbors": 0}, "The 'n_neighbors' parameter of KNNDetector must be"),
        ({"n_neighbors": 1.5}, "The 'n_neighbors' parameter of KNNDetector must be"),
        ({"contamination": 0.7}, "The 'contamination' parameter of KNNDetector"),
    ],
)
def test_invalid_parameters(data, params, match):
    with pytest.raises(ValueError, match=match):
        KNNDetector(**params).fit(data[0])


@pytest.mark.parametrize("metric", METRICS)
def test_inputs_not_mutated(data, metric):
    X, T = data
    X32 = np.asfortranarray(X.astype(np.float32))
    for fit_X, query in ((X, T), (X32, T.astype(np.float32))):
        fit_copy, query_copy = fit_X.copy(), query.copy()
        det = KNNDetector(metric=metric).fit(fit_X)
        det.score_samples(query)
        det.kneighbors(query)
        det.kneighbors()
        np.testing.assert_array_equal(fit_X, fit_copy)
        np.testing.assert_array_equal(query, query_copy)


def test_pickle_round_trip(data):
    X, T = data
    det = KNNDetector(n_neighbors=3, metric="euclidean", aggregation="kth").fit(X)
    loaded = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(loaded.score_samples(T), det.score_samples(T))
    assert loaded.offset_ == det.offset_
    np.testing.assert_array_equal(loaded.kneighbors(T)[1], det.kneighbors(T)[1])


def test_predict_int_labels(data):
    X, _ = data
    det = KNNDetector().fit(X)
    labels = det.predict(np.vstack([np.zeros((1, 4)), np.full((1, 4), 8.0)]))
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, [1, -1])
    train_labels = det.predict(X)
    assert set(np.unique(train_labels)) <= {-1, 1}
    np.testing.assert_array_equal(
        train_labels, np.where(det.decision_function(X) < 0, -1, 1)
    )


def test_constraints_cover_parameters():
    det = KNNDetector()
    assert set(det._parameter_constraints) == set(det.get_params())
