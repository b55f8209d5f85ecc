"""KNNDetector(algorithm="faiss:...") against the exact search.

faiss is an optional dependency (``pip install "sklearn-ood[faiss]"``): the
tests that build an index need it; the error without it is tested always.
"""

import pickle
import sys

import numpy as np
import pytest

from sklearn_ood import KNNDetector
from tests._knn_reference import EPS64, knn_scores, loo_distances, selection_bound


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(2000, 8)).astype(np.float32)
    X[5] = X[6]  # a duplicate: left out of the calibration as with "brute"
    return X, rng.normal(size=(300, 8)).astype(np.float32)


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss fails
    X, _ = _data()
    with pytest.raises(ImportError, match=r"sklearn-ood\[faiss\]"):
        KNNDetector(algorithm="faiss:Flat").fit(X)


try:
    import faiss
except ImportError:
    faiss = None
needs_faiss = pytest.mark.skipif(
    faiss is None, reason='faiss is optional: pip install "sklearn-ood[faiss]"'
)


@needs_faiss
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_flat_index_equals_the_exact_search(metric):
    X, Q = _data()
    det = KNNDetector(algorithm="faiss:Flat", metric=metric).fit(X)
    ref = KNNDetector(metric=metric).fit(X)
    # faiss chooses in float32 too and distances are recomputed exactly: on
    # this tie-free data the same neighbours, so the same float64 values.
    np.testing.assert_array_equal(det.kneighbors(Q)[1], ref.kneighbors(Q)[1])
    np.testing.assert_allclose(
        det.score_samples(Q), ref.score_samples(Q), rtol=2 * 8 * EPS64, atol=0
    )
    np.testing.assert_allclose(
        det.calibration_scores_, ref.calibration_scores_, rtol=2 * 8 * EPS64, atol=0
    )
    loo = loo_distances(X, 2, metric)
    loo = np.sqrt(loo) if metric == "euclidean" else loo
    bound = selection_bound(X, X, np.float32, metric)
    bound = np.sqrt(bound) if metric == "euclidean" else bound
    want = loo.mean(axis=1)
    assert np.all(np.abs(-det.calibration_scores_ - want) <= bound + 16 * EPS64 * want)


@needs_faiss
def test_ivf_probing_every_list_is_exact_and_fewer_lists_only_farther():
    X, Q = _data()
    exact = knn_scores(X, Q, 2, "sqeuclidean", "mean")
    full = KNNDetector(algorithm="faiss:IVF16,Flat", search_params={"nprobe": 16})
    # Every list probed: the exact neighbours (up to the float32 choice).
    tol = selection_bound(X, Q, np.float32, "sqeuclidean")
    assert np.all(np.abs(full.fit(X).score_samples(Q) - exact) <= tol)
    one = KNNDetector(algorithm="faiss:IVF16,Flat", search_params={"nprobe": 1})
    approx = one.fit(X).score_samples(Q)
    # An approximate search can only miss neighbours: its neighbours are
    # never nearer, so its scores are never higher (beyond the choice bound).
    assert np.all(approx <= exact + tol)
    assert np.any(approx < exact - tol)  # and with one list it does miss some


@needs_faiss
def test_hnsw_is_deterministic_and_pickles():
    X, Q = _data()
    params = {"efSearch": 32}
    a = KNNDetector(algorithm="faiss:HNSW16", search_params=params).fit(X)
    b = KNNDetector(algorithm="faiss:HNSW16", search_params=params).fit(X)
    np.testing.assert_array_equal(a.score_samples(Q), b.score_samples(Q))
    assert a.offset_ == b.offset_
    loaded = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(loaded.score_samples(Q), a.score_samples(Q))
    # queries searched through the unpickled faiss index (kneighbors() of the
    # training rows would return the stored leave-one-out lists)
    np.testing.assert_array_equal(loaded.kneighbors(Q)[1], a.kneighbors(Q)[1])
    exact = knn_scores(X, Q, 2, "sqeuclidean", "mean")
    assert np.all(
        a.score_samples(Q) <= exact + selection_bound(X, Q, np.float32, "sqeuclidean")
    )


@needs_faiss
@pytest.mark.parametrize(
    "params, match",
    [
        ({"algorithm": "faiss:NoSuchIndex"}, "faiss cannot build the index"),
        (
            {"algorithm": "faiss:Flat", "search_params": {"nprobe": 4}},
            "does not take",
        ),
        ({"algorithm": "faiss:IVF4096,Flat"}, "needs at least 4096 distinct"),
    ],
)
def test_faiss_errors(params, match):
    X, _ = _data()
    with pytest.raises(ValueError, match=match):
        KNNDetector(**params).fit(X)
