"""Tests of KNNDetector against independent nearest-neighbour computations.

References: float64 brute force from row differences (``tests/_knn_reference``)
and scikit-learn's ``NearestNeighbors``. Tolerances are the error bounds
derived in ``tests/_knn_reference``: ``REL64`` for the float64 recomputation
of the chosen neighbours' distances, plus ``selection_bound`` for the choice of
neighbours in the search dtype.
"""

import importlib.util
import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics.pairwise import cosine_distances
from sklearn.neighbors import NearestNeighbors

from sklearn_ood import KNNDetector
from sklearn_ood.base import AUTO_CONTAMINATION
from tests._calibration import conformal_threshold
from tests._knn_reference import (
    AGGREGATIONS,
    EPS64,
    knn_scores,
    loo_distances,
    pairwise,
    score_tolerance,
    to_metric,
)

METRICS = ["sqeuclidean", "euclidean", "cosine"]


def _rel64(d):
    """float64 sum of d squares, recomputed on both sides: 2 d eps64 relative."""
    return 2 * d * EPS64


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(60, 4)), rng.normal(size=(25, 4))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("aggregation", list(AGGREGATIONS))
@pytest.mark.parametrize("metric", METRICS)
def test_scores_match_brute_force(data, metric, aggregation, dtype):
    X, T = (a.astype(dtype) for a in data)
    det = KNNDetector(n_neighbors=3, metric=metric, aggregation=aggregation).fit(X)
    scores = det.score_samples(T)
    expected = knn_scores(X, T, 3, metric, aggregation)  # on the rounded data
    assert scores.dtype == np.float64
    tol = score_tolerance(X, T, dtype, metric, aggregation, 3)
    assert np.all(np.abs(scores - expected) <= tol + _rel64(4) * np.abs(expected))
    # decision_function is a float64 subtraction: exact up to one rounding.
    np.testing.assert_allclose(
        det.decision_function(T), scores - det.offset_, rtol=EPS64, atol=0
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
        # Small integers: every operation is exact in binary floating point.
        np.testing.assert_array_equal(det.score_samples(query), expected)


@pytest.mark.parametrize("metric", METRICS)
def test_kneighbors_matches_nearest_neighbors(data, metric):
    X, T = data
    det = KNNDetector(metric=metric).fit(X)
    nn = NearestNeighbors(
        n_neighbors=4,
        algorithm="brute",
        metric="cosine" if metric == "cosine" else "l2",
    ).fit(X)
    for query in (T, None):
        dist, ind = det.kneighbors(query, n_neighbors=4)
        ref_ind = nn.kneighbors(query)[1]
        np.testing.assert_array_equal(ind, ref_ind)  # no ties in this data
        D = pairwise(X, X if query is None else query, metric)
        want = to_metric(np.take_along_axis(D, ref_ind, axis=1), metric)
        # float64 throughout: the recomputation rounding only (sqrt halves it).
        np.testing.assert_allclose(dist, want, rtol=_rel64(4), atol=0)
        assert dist.dtype == np.float64
        assert np.all(np.diff(dist, axis=1) >= 0)
    ind_only = det.kneighbors(T, return_distance=False)
    np.testing.assert_array_equal(ind_only, nn.kneighbors(T, 2)[1])
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


def _duplicated_data():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(30, 3))
    # Duplicates (a pair, a triplet) and a scaled copy (not a duplicate).
    return np.vstack([X, X[:4], X[:1], X[10:11] * 3.0])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("aggregation", ["mean", "kth"])
def test_calibration_scores_are_leave_one_out(metric, aggregation):
    X = _duplicated_data()
    loo = -AGGREGATIONS[aggregation](to_metric(loo_distances(X, 2, metric), metric))
    for contamination in ("auto", 0.1, 0.5):
        det = KNNDetector(
            metric=metric, aggregation=aggregation, contamination=contamination
        ).fit(X)
        # Both sides are float64 sums of 3 squares of the same differences.
        np.testing.assert_allclose(det.calibration_scores_, loo, rtol=_rel64(3))
        share = AUTO_CONTAMINATION if contamination == "auto" else contamination
        expected = conformal_threshold(loo, share)
        assert det.offset_ == pytest.approx(expected, rel=_rel64(3), abs=0)


@pytest.mark.parametrize("metric", METRICS)
def test_kneighbors_none_counts_duplicates_as_scikit_learn(metric):
    X = _duplicated_data()
    det = KNNDetector(metric=metric).fit(X)
    dist, ind = det.kneighbors(n_neighbors=3)
    assert not np.any(ind == np.arange(X.shape[0])[:, None])
    D = pairwise(X, X, metric)
    np.fill_diagonal(D, np.inf)
    want = to_metric(np.sort(D, axis=1)[:, :3], metric)
    # Duplicates at distance exactly 0; others: the recomputation rounding.
    np.testing.assert_allclose(dist, want, rtol=_rel64(3), atol=0)
    # The returned rows are at the returned distances.
    got = to_metric(np.take_along_axis(D, ind, axis=1), metric)
    np.testing.assert_allclose(got, dist, rtol=_rel64(3), atol=0)


def test_leave_one_out_hand_computed_with_duplicates():
    X = np.array([[0.0], [0.0], [1.0], [3.0]])
    det = KNNDetector(n_neighbors=1, contamination=0.5).fit(X)
    # Calibration leaves a row's duplicates out: nearest other values 1, 1, 1, 4.
    np.testing.assert_array_equal(det.calibration_scores_, [-1.0, -1.0, -1.0, -4.0])
    assert det.offset_ == conformal_threshold([-1.0, -1.0, -1.0, -4.0], 0.5)
    # kneighbors(None), as scikit-learn, counts the duplicate: 0, 0, 1, 4.
    dist, ind = det.kneighbors()
    np.testing.assert_array_equal(dist[:, 0], [0.0, 0.0, 1.0, 4.0])
    np.testing.assert_array_equal(ind[:2, 0], [1, 0])


def test_duplicates_fill_in_when_too_few_other_rows():
    # Five copies of 0 and one 2: a copy of 0 has one other row, so with k = 2
    # a duplicate (distance 0) fills the second place.
    X = np.array([[0.0]] * 5 + [[2.0]])
    det = KNNDetector(n_neighbors=2, aggregation="sum").fit(X)
    np.testing.assert_array_equal(det.calibration_scores_, [-4.0] * 5 + [-8.0])


@pytest.mark.parametrize("copies", [2, 3])
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_duplicated_training_rows_keep_the_false_positive_rate(copies, metric):
    """Every row present 2 or 3 times: new normal rows are flagged at about
    ``contamination``, as without duplicates (it was 20% and 100%)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1000, 4))
    det = KNNDetector(metric=metric, contamination=0.05).fit(np.repeat(X, copies, 0))
    new = rng.normal(size=(20000, 4))
    share = np.mean(det.predict(new) == -1)
    # The flagged share of new rows is c up to the sampling error of the
    # offset, a quantile of 1000 leave-one-out scores (sd sqrt(c(1-c)/1000),
    # 0.007), and of the 20,000 new rows (0.0015): 4 standard deviations.
    c = 0.05
    sd = np.sqrt(c * (1 - c) / 1000) + np.sqrt(c * (1 - c) / 20000)
    assert abs(share - c) <= 4 * sd
    assert det.offset_ < 0
    assert det.n_samples_fit_ == copies * 1000


@pytest.mark.parametrize("metric", METRICS)
def test_tiling_and_threads_do_not_change_results(data, monkeypatch, metric):
    from sklearn_ood import _knn_search

    X, T = data
    det = KNNDetector(n_neighbors=3, metric=metric, contamination=0.2).fit(X)
    scores, (dist, ind) = det.score_samples(T), det.kneighbors()
    # Tiles of 1 query x 16 references, groups of 4, 2 threads: many tiles,
    # references split among threads.
    monkeypatch.setattr(_knn_search, "_TILE_ROWS", 1)
    monkeypatch.setattr(_knn_search, "_TILE_BYTES", 64)
    monkeypatch.setattr(_knn_search, "_GROUP", 4)
    from concurrent.futures import ThreadPoolExecutor

    def fit(n_jobs):
        return KNNDetector(
            n_neighbors=3, metric=metric, contamination=0.2, n_jobs=n_jobs
        ).fit(X)

    with ThreadPoolExecutor(1) as pool:  # a caller's thread: tiles in order
        from_a_thread = pool.submit(fit, 2).result()
    for small in (fit(1), fit(2), from_a_thread):
        # float64 data without near-ties: the same neighbours are chosen and
        # their distances recomputed identically.
        np.testing.assert_array_equal(small.score_samples(T), scores)
        np.testing.assert_array_equal(small.kneighbors()[1], ind)
        np.testing.assert_array_equal(small.kneighbors()[0], dist)
        assert small.offset_ == det.offset_


@pytest.mark.parametrize("metric", METRICS)
def test_float32_accuracy_on_realistic_features(metric):
    rng = np.random.RandomState(2)
    # ReLU-like clustered features with a common offset of 10: the squared
    # norms are large next to the distances.
    centers = rng.gamma(2.0, 0.5, size=(5, 256))

    def features(n):
        Z = centers[rng.randint(5, size=n)] * rng.lognormal(0.0, 0.3, size=(n, 256))
        return np.maximum(Z + 0.3 * rng.normal(size=(n, 256)) + 1.0, 0.0) + 10.0

    X, T = features(400).astype(np.float32), features(100).astype(np.float32)
    det = KNNDetector(metric=metric).fit(X)
    assert det._index.rows.dtype == np.float32
    got = det.score_samples(T)
    want = knn_scores(X, T, 2, metric, "mean")
    tol = score_tolerance(X, T, np.float32, metric, "mean", 2)
    assert np.all(np.abs(got - want) <= tol + _rel64(256) * np.abs(want))


def test_cosine_zero_vectors():
    rng = np.random.RandomState(3)
    X = np.vstack([rng.normal(size=(10, 3)), np.zeros((1, 3))])
    T = np.vstack([rng.normal(size=(4, 3)), np.zeros((1, 3))])
    det = KNNDetector(n_neighbors=3, metric="cosine", aggregation="sum").fit(X)
    dist, ind = det.kneighbors(T, n_neighbors=11)
    expected = np.sort(cosine_distances(T, X), axis=1)
    # scikit-learn computes 1 - u.v in float64 (a few eps64 absolute), we
    # |u - v|^2 / 2 from the differences (2 d eps64).
    np.testing.assert_allclose(dist, expected, rtol=0, atol=8 * EPS64)
    # The zero query is at distance 1 from everything; the zero reference
    # is at distance 1 from every query (exactly: a constant).
    np.testing.assert_array_equal(dist[-1], 1.0)
    np.testing.assert_array_equal(
        np.take_along_axis(dist, np.argsort(ind, axis=1), axis=1)[:, -1], 1.0
    )
    # Cosine is invariant to positive rescaling: 3 T has the unit rows of T
    # up to the rounding of the division (eps64 per coordinate).
    np.testing.assert_allclose(
        det.score_samples(3.0 * T), det.score_samples(T), rtol=0, atol=8 * EPS64
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
    np.testing.assert_array_equal(det.score_samples(X), ref.score_samples(X))
    assert det.offset_ == ref.offset_


@pytest.mark.parametrize(
    "params, match",
    [
        ({"metric": "manhattan"}, "The 'metric' parameter of KNNDetector must be"),
        ({"aggregation": "median"}, "The 'aggregation' parameter of KNNDetector"),
        ({"n_neighbors": 0}, "The 'n_neighbors' parameter of KNNDetector must be"),
        ({"n_neighbors": 1.5}, "The 'n_neighbors' parameter of KNNDetector must be"),
        ({"contamination": 0.7}, "The 'contamination' parameter of KNNDetector"),
        ({"device": "tpu"}, "The 'device' parameter of KNNDetector must be"),
        ({"n_jobs": 0}, "The 'n_jobs' parameter of KNNDetector must be"),
        ({"algorithm": "kd_tree"}, "The 'algorithm' parameter of KNNDetector must be"),
        ({"algorithm": "faiss:"}, "The 'algorithm' parameter of KNNDetector must be"),
        ({"search_params": {"nprobe": 4}}, "applies to faiss algorithms only"),
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
        det.partial_fit(query)
        np.testing.assert_array_equal(fit_X, fit_copy)
        np.testing.assert_array_equal(query, query_copy)


def test_pickle_round_trip(data):
    X, T = data
    det = KNNDetector(n_neighbors=3, metric="euclidean", aggregation="kth").fit(X)
    det.score_samples(torch.from_numpy(T))  # fills the device cache
    state = pickle.dumps(det)
    assert b"_cache_rows" not in state
    loaded = pickle.loads(state)
    np.testing.assert_array_equal(loaded.score_samples(T), det.score_samples(T))
    assert loaded.offset_ == det.offset_
    np.testing.assert_array_equal(loaded.kneighbors(T)[1], det.kneighbors(T)[1])
    loaded.partial_fit(T)  # a loaded detector keeps streaming


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


# ------------------------------------------------------- extreme values
@pytest.mark.parametrize("metric", METRICS)
def test_extreme_float32_values_give_finite_exact_scores(metric):
    """Features of 1e30 in float32: squares overflow float32. The NumPy path
    promotes them to float64 and the torch path computes in float64, so the
    scores are finite: the scores of the unscaled data times 1e60 (squared
    Euclidean) or 1e30 (Euclidean), or unchanged (cosine)."""
    rng = np.random.RandomState(5)
    X0, T0 = rng.normal(size=(80, 6)), rng.normal(size=(20, 6))
    X, T = (X0 * 1e30).astype(np.float32), (T0 * 1e30).astype(np.float32)
    det = KNNDetector(metric=metric).fit(X)
    want = knn_scores(X, T, 2, metric, "mean")  # float64 brute force
    # float64 search (no choice errors at this scale: selection_bound in
    # float64) and recomputation: 2 d eps64 relative.
    tol = _rel64(6) * np.abs(want) + score_tolerance(
        X, T, np.float64, metric, "mean", 2
    )
    for query in (T, torch.from_numpy(T)):
        got = det.score_samples(query)
        assert np.all(np.isfinite(got))
        assert np.all(np.abs(got - want) <= tol)
    assert np.isfinite(det.offset_)
    F = torch.from_numpy(T).requires_grad_()
    got = det.score_samples_torch(F)
    assert got.dtype == torch.float64 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=_rel64(6) * 4)
    got.sum().backward()
    assert torch.isfinite(F.grad).all()


@pytest.mark.parametrize(
    "scale, dtype", [(1e-30, np.float32), (1e-44, np.float32), (1e-150, np.float64)]
)
def test_tiny_values_give_the_exact_nearest_neighbours(scale, dtype):
    """Features of 1e-30 in float32 square to 1e-60, which float32 flushes to
    0: every ranking value looked alike and arbitrary neighbours were chosen
    (scores off by 350x). float32 this small is searched in float64 (1e-44:
    subnormal input); float64 of 1e-150 squares within float64's range. The
    scores equal float64 brute force up to the recomputation (2 d eps64)."""
    from sklearn_ood._knn_search import expand, prepare_index
    from sklearn_ood._knn_torch import search_torch
    from sklearn_ood.utils._numeric import check_feature_range

    rng = np.random.RandomState(7)
    X = (rng.normal(size=(80, 3)) * scale).astype(dtype)
    T = (rng.normal(size=(30, 3)) * scale).astype(dtype)
    want = knn_scores(X, T, 2, "sqeuclidean", "mean")
    tol = _rel64(3) * np.abs(want)
    det = KNNDetector().fit(X)
    for query in (T, torch.from_numpy(T)):
        assert np.all(np.abs(det.score_samples(query) - want) <= tol)
    # The torch engine (GPUs) and a faiss index choose in float64 / rescaled.
    index = prepare_index(check_feature_range(X, promote_tiny=True), "sqeuclidean")
    dist, ind = search_torch(index, torch.from_numpy(T), 2, torch.device("cpu"))
    got = -expand(index, dist, ind, 2).mean(axis=1)
    assert np.all(np.abs(got - want) <= tol)
    if importlib.util.find_spec("faiss") is not None:
        flat = KNNDetector(algorithm="faiss:Flat").fit(X)
        assert np.all(np.abs(flat.score_samples(T) - want) <= tol)


def test_values_too_large_for_float64_are_refused_naming_the_range():
    X = np.random.RandomState(6).normal(size=(30, 4))
    det = KNNDetector().fit(X)
    huge = X * 1e200
    for call in (
        lambda: KNNDetector().fit(huge),
        lambda: det.score_samples(huge),
        lambda: det.score_samples(torch.from_numpy(huge)),
        lambda: det.score_samples_torch(torch.from_numpy(huge)),
    ):
        with pytest.raises(ValueError, match=r"holds values up to .* overflow float64"):
            call()
    bad = torch.from_numpy(X.copy())
    bad[0, 0] = float("nan")
    for call in (lambda: det.score_samples(bad), lambda: det.score_samples_torch(bad)):
        with pytest.raises(ValueError, match="NaN or infinity"):
            call()
