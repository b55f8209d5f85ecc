"""The search functions behind KNNDetector: engines, duplicates, streaming, torch.

References and error bounds: ``tests/_knn_reference`` (float64 brute force
from row differences; ``selection_bound`` for the choice of neighbours in the
search dtype; ``2 d eps64`` for the float64 recomputation of distances).
"""

import itertools
import pickle

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from sklearn_ood import KNNDetector
from sklearn_ood import _knn_search as ks
from sklearn_ood._knn_torch import leave_one_out_torch, search_torch
from tests._calibration import conformal_threshold
from tests._knn_reference import (
    EPS64,
    knn_scores,
    loo_distances,
    pairwise,
    selection_bound,
)

CPU = torch.device("cpu")
METRICS = ["sqeuclidean", "euclidean", "cosine"]


def _data(n=300, d=7, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) + 2.0
    X[5] = X[7]  # a pair
    X[[20, 21, 22]] = X[23]  # four copies
    X[[9, 10]] = 0.0  # zero rows: cosine distance 1 to every row
    X[11, 0] = -0.0  # -0.0 equals 0.0
    X[12] = X[11]
    X[12, 0] = 0.0
    Q = rng.normal(size=(90, d)) + 2.0
    Q[3] = 0.0
    Q[4] = X[5]  # a query equal to a duplicated training row
    return X, Q


def _bound(X, Q, dtype, metric):
    """Chosen distances vs true (search units), per query, plus recomputation."""
    return selection_bound(X, Q, dtype, metric)[:, None]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
@pytest.mark.parametrize(
    "engine",
    ["numpy", "numpy-2-threads", "numpy-small-tiles", "torch", "torch-small-tiles"],
)
def test_search_and_leave_one_out_match_brute_force(engine, metric, dtype, monkeypatch):
    from sklearn_ood import _knn_torch

    if engine.endswith("small-tiles"):  # many tiles, ragged last ones
        monkeypatch.setattr(_knn_torch, "_CPU_TILE", (7, 13))
        monkeypatch.setattr(ks, "_TILE_ROWS", 5)
        monkeypatch.setattr(ks, "_TILE_BYTES", 5 * 48 * np.dtype(dtype).itemsize)
        monkeypatch.setattr(ks, "_GROUP", 4)
    X, Q = (a.astype(dtype) for a in _data())
    index = ks.prepare_index(X, metric)
    assert index.n_distinct == X.shape[0] - 1 - 3 - 1 - 1  # pair, 4 copies, 0s
    k = 4
    if engine.startswith("torch"):
        dist, ind = search_torch(index, torch.from_numpy(Q), k, CPU)
        loo = leave_one_out_torch(index, k, CPU)
    else:
        n_threads = 1 if engine == "numpy" else 2
        dist, ind = ks.search(index, Q, k, n_threads=n_threads)
        loo = ks.leave_one_out(index, k, n_threads=n_threads)
    want = np.sort(pairwise(X, Q, metric), axis=1)[:, :k]
    got = ks.expand(index, dist, ind, k)
    # The torch engine ranks in float32 whatever the index dtype.
    rank = np.float32 if engine.startswith("torch") else dtype
    tol = _bound(X, Q, rank, metric) + 2 * X.shape[1] * EPS64 * want
    if metric == "cosine" and dtype == np.float32:
        tol = tol + 3 * np.finfo(np.float32).eps  # stored unit rows rounded
    assert np.all(np.abs(got - want) <= tol)
    if metric != "cosine":  # the returned ids are at the returned distances
        D = pairwise(index.rows[:, :-1], Q, metric)
        np.testing.assert_allclose(
            np.take_along_axis(D, ind, 1), dist, rtol=2 * X.shape[1] * EPS64, atol=0
        )
    calib = ks.calibration_distances(ks.with_neighbors(index, *loo))
    want = loo_distances(X, k, metric)
    tol = _bound(X, X, rank, metric) + 2 * X.shape[1] * EPS64 * want
    if metric == "cosine" and dtype == np.float32:
        tol = tol + 3 * np.finfo(np.float32).eps
    assert np.all(np.abs(calib - want) <= tol)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_symmetric_leave_one_out_equals_the_row_by_row_pass(
    dtype, k, n_threads, monkeypatch
):
    """The leave-one-out pass computes each pair's product once (blocks of 32
    rows here); it chooses the neighbours that searching every row against
    all rows chooses, exact ties included (equal values go to the smaller
    id). Entries in {-1, 0, 1} with every row's negation: the mean is exactly
    0 and every product exact in both passes, so ties are exact and abound.
    Rows sorted by their first feature: block 0 is far from most rows, its
    thresholds weak. k = 40 exceeds a block."""
    monkeypatch.setattr(ks, "_TILE_ROWS", 32)
    monkeypatch.setattr(ks, "_TILE_BYTES", 32 * 32 * np.dtype(dtype).itemsize)
    base = np.random.default_rng(0).integers(-1, 2, size=(150, 6))
    X = np.vstack([base, -base]).astype(dtype)
    X = X[np.argsort(X[:, 0], kind="stable")]
    index = ks.prepare_index(X, "sqeuclidean")
    m = index.n_distinct
    assert m > 3 * 32 and ks._tile_shape(dtype, n_threads)[1] == 32
    got = ks.leave_one_out(index, k, n_threads=n_threads)
    rows = ks._Stored(index, range(m))
    want = ks._search_numpy(index, rows, k, 0, m, n_threads)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    # And both are the brute-force neighbours (distances are exact here).
    D = pairwise(index.rows[:, :-1], index.rows[:, :-1], "sqeuclidean")
    np.fill_diagonal(D, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(m), D.shape), D), axis=1)
    np.testing.assert_array_equal(got[1], order[:, :k])


@pytest.mark.parametrize("m", [33, 47, 49, 97])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_symmetric_leave_one_out_on_ragged_blocks(m, k, monkeypatch):
    """Blocks of 32 rows with a last block of 1-17 rows (padded to whole
    groups), k beyond a block: the distances are the brute-force k smallest
    (small integers: exact) and each returned id is at its distance."""
    monkeypatch.setattr(ks, "_TILE_ROWS", 32)
    monkeypatch.setattr(ks, "_TILE_BYTES", 32 * 32 * 4)
    X = np.random.default_rng(m).integers(-2, 3, size=(m, 5)).astype(np.float32)
    X[0] = 0.0
    index = ks.prepare_index(X, "sqeuclidean")
    n = index.n_distinct
    assert n > 32  # more than one block
    k = min(k, n - 1)
    dist, ids = ks.leave_one_out(index, k, n_threads=2)
    U = index.rows[:, :-1].astype(np.float64)
    D = ((U[:, None, :] - U[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_array_equal(dist, np.sort(D, axis=1)[:, :k])
    np.testing.assert_array_equal(np.take_along_axis(D, ids, 1), dist)


def test_symmetric_leave_one_out_only_when_its_operand_fits():
    """The symmetric pass keeps a copy of the rows (its operand); beyond half
    of working_memory the pass searches row by row, with the same result."""
    from sklearn import config_context

    X = np.random.default_rng(1).normal(size=(3000, 64))  # operand 1.6 MB
    index = ks.prepare_index(X, "sqeuclidean")
    results = []
    for mib, symmetric in ((1, False), (4, True)):
        with config_context(working_memory=mib):
            assert ks._symmetric_pays(index, 1) is symmetric
            results.append(ks.leave_one_out(index, 3))
    # float64 normal data, no near-ties: the same neighbours, recomputed alike.
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][0], results[1][0])
    # and they are the brute-force neighbours (first 100 rows; float64 sums
    # of 64 squares on both sides: 2 d eps64 relative).
    for i in range(100):
        D = np.sum((X - X[i]) ** 2, axis=1)
        D[i] = np.inf
        np.testing.assert_allclose(
            results[1][0][i], np.sort(D)[:3], rtol=2 * 64 * EPS64, atol=0
        )


@pytest.mark.parametrize("k", [1, 3, 16, 20])
def test_merges_keep_the_k_largest_ties_to_the_smaller_column(k):
    """Both merges (argmax rounds up to k = 16, one sort beyond) against a
    plain per-row sort of (value descending, column ascending)."""
    rng = np.random.default_rng(k)
    n, m = 50, 700
    best_v = -np.sort(rng.integers(0, 6, size=(n, k)), axis=1).astype(np.float32)
    best_i = np.arange(n * k).reshape(n, k)  # columns below every new one
    best_v[:5] = np.finfo(np.float32).min  # empty lists
    best_i[:5] = -1
    rows = rng.integers(0, n, size=m)
    vals = -rng.integers(0, 6, size=m).astype(np.float32)  # many ties
    cols = n * k + np.arange(m)  # increasing: each row's in column order
    want_v, want_i = best_v.copy(), best_i.copy()
    for r in range(n):
        entries = list(zip(best_v[r], best_i[r]))
        entries += [(v, c) for v, c, rr in zip(vals, cols, rows) if rr == r]
        entries.sort(key=lambda e: (-e[0], e[1]))
        want_v[r], want_i[r] = zip(*entries[:k])
    for merge in (ks._merge_into, ks._merge_sorting):
        got_v, got_i = best_v.copy(), best_i.copy()
        merge(got_v, got_i, rows, vals, cols)
        np.testing.assert_array_equal(got_v, want_v)
        np.testing.assert_array_equal(got_i, want_i)
    none = np.array([], dtype=np.intp)
    ks._merge_into(got_v, got_i, none, none.astype(np.float32), none)  # no-op
    np.testing.assert_array_equal(got_v, want_v)


def test_duplicates_are_found_exactly():
    X, _ = _data()
    index = ks.prepare_index(X, "sqeuclidean")
    np.testing.assert_array_equal(
        index.counts[index.inverse[[5, 7, 20, 23, 9, 11, 12, 0]]],
        [2, 2, 4, 4, 2, 2, 2, 1],
    )
    # Distinct rows in order of first occurrence; every row maps to its copy.
    np.testing.assert_array_equal(index.rows[index.inverse, :-1], X)
    assert np.all(np.diff(np.flatnonzero(np.r_[True, np.diff(index.inverse) > 0])) > 0)
    # Rows equal to a stored row get its id (also after a hash collision:
    # constant hashes force the exact comparison of every row).
    for hashes in (ks._row_hashes, lambda S: np.zeros(len(S), np.uint64)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ks, "_row_hashes", hashes)
            other = ks.prepare_index(X, "sqeuclidean")
        np.testing.assert_array_equal(other.inverse, index.inverse)
    # Cosine: x and 2x have the same unit row but are not duplicates.
    Y = np.vstack([X[:3], 2.0 * X[:1]])
    assert ks.prepare_index(Y, "cosine").n_distinct == 4


@pytest.mark.parametrize("metric", METRICS)
def test_kneighbors_rows_include_duplicates_of_a_query(metric):
    X, Q = _data()
    det = KNNDetector(n_neighbors=3, metric=metric).fit(X)
    dist, ind = det.kneighbors(Q, n_neighbors=6)
    D = pairwise(X, Q, metric)
    D = np.sqrt(D) if metric == "euclidean" else D
    want = np.sort(D, axis=1)[:, :6]
    np.testing.assert_allclose(dist, want, rtol=2 * X.shape[1] * EPS64, atol=0)
    np.testing.assert_allclose(
        np.take_along_axis(D, ind, 1), dist, rtol=2 * X.shape[1] * EPS64, atol=0
    )
    # Query 4 equals rows 5 and 7: both at distance exactly 0.
    if metric != "cosine":
        assert sorted(ind[4, :2]) == [5, 7] and np.all(dist[4, :2] == 0.0)
    assert all(len(set(row)) == 6 for row in ind)  # each training row once


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 3])
def test_partial_fit_equals_fit(metric, k):
    X, Q = _data()
    y = np.zeros(len(X), dtype=int)
    y[[3, 40, 100]] = -1  # known outliers, left out
    det = KNNDetector(n_neighbors=k, metric=metric)
    # Uneven batches, one of a single row; duplicates across batches (rows 5
    # and 7, 20..23) and a batch of duplicates only.
    bounds = [0, 6, 7, 8, 21, 90, 200, len(X)]
    for a, b in itertools.pairwise(bounds):
        det.partial_fit(X[a:b], y[a:b])
    det.partial_fit(X[[5, 7]])
    ref = KNNDetector(n_neighbors=k, metric=metric).fit(
        np.vstack([X[y != -1], X[[5, 7]]])
    )
    assert det.n_samples_fit_ == ref.n_samples_fit_
    # The same neighbours are chosen (no near-ties in this float64 data) and
    # their distances recomputed from the same rows: equal to rounding.
    rtol = 2 * X.shape[1] * EPS64
    np.testing.assert_allclose(det.score_samples(Q), ref.score_samples(Q), rtol=rtol)
    np.testing.assert_allclose(
        det.calibration_scores_, ref.calibration_scores_, rtol=rtol
    )
    assert det.offset_ == pytest.approx(ref.offset_, rel=rtol, abs=0)
    # (Under cosine the zero query 3 is at distance 1 from every row: a tie.)
    rows = np.arange(len(Q)) != 3
    np.testing.assert_array_equal(
        det.kneighbors(Q)[1][rows], ref.kneighbors(Q)[1][rows]
    )


def test_partial_fit_offset_matches_brute_force_loo():
    rng = np.random.RandomState(3)
    X = rng.normal(size=(50, 3))
    X[10] = X[3]  # a duplicate in another batch
    det = KNNDetector(n_neighbors=2, contamination=0.1)
    for batch in np.array_split(X, 5):
        det.partial_fit(batch)
    loo = -loo_distances(X, 2, "sqeuclidean").mean(axis=1)
    rtol = 2 * 3 * EPS64  # recomputation rounding of sums of 3 squares
    np.testing.assert_allclose(det.calibration_scores_, loo, rtol=rtol)
    assert det.offset_ == pytest.approx(conformal_threshold(loo, 0.1), rel=rtol)


def test_partial_fit_dtype_and_range():
    X, Q = _data()
    X32 = X.astype(np.float32)
    det = KNNDetector().partial_fit(X32[:100]).partial_fit(X[100:])  # float64 joins
    assert det._index.rows.dtype == np.float32
    ref = KNNDetector().fit(X32)
    np.testing.assert_array_equal(det.kneighbors(Q)[1], ref.kneighbors(Q)[1])
    # A batch whose squares overflow float32 promotes the stored rows.
    det.partial_fit((X[:5] + 10.0) * 1e30)
    assert det._index.rows.dtype == np.float64
    assert np.all(np.isfinite(det.score_samples(Q)))
    assert np.isfinite(det.offset_)


def test_partial_fit_errors_and_no_op():
    X, _ = _data()
    with pytest.raises(ValueError, match="n_neighbors < the number"):
        KNNDetector(n_neighbors=5).partial_fit(X[:5])
    det = KNNDetector(n_neighbors=2).partial_fit(X[:20])
    with pytest.raises(ValueError, match="features"):
        det.partial_fit(X[:5, :2])
    det.set_params(n_neighbors=3)
    with pytest.raises(ValueError, match="same 'n_neighbors', 'metric' and"):
        det.partial_fit(X[20:30])
    det.set_params(n_neighbors=2)
    before = det.offset_
    det.partial_fit(X[20:25], -np.ones(5))  # known outliers only: nothing added
    assert det.n_samples_fit_ == 20 and det.offset_ == before
    # partial_fit exists with the brute-force search only.
    assert not hasattr(KNNDetector(algorithm="faiss:Flat"), "partial_fit")


def test_stream_survives_pickling():
    X, Q = _data()
    det = pickle.loads(pickle.dumps(KNNDetector().partial_fit(X[:70])))
    det.partial_fit(X[70:])
    ref = KNNDetector().fit(X)
    np.testing.assert_array_equal(det.kneighbors(Q)[1], ref.kneighbors(Q)[1])
    assert det.offset_ == pytest.approx(ref.offset_, rel=2 * X.shape[1] * EPS64)


def test_effective_n_threads():
    assert ks.effective_n_threads(3) == 3
    import joblib

    assert ks.effective_n_threads(-1) == joblib.cpu_count()
    with threadpool_limits(1, user_api="blas"):
        assert ks.effective_n_threads(None) == 1


# ------------------------------------------------------------------ torch
DETECTORS = [
    {},
    {"n_neighbors": 1, "metric": "euclidean"},
    {"n_neighbors": 3, "metric": "cosine", "aggregation": "kth"},
    {"n_neighbors": 3, "aggregation": "sum"},
]


@pytest.mark.parametrize("tensor_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("params", DETECTORS, ids=repr)
def test_torch_path_matches_numpy_path(params, tensor_dtype):
    X, Q = _data()
    det = KNNDetector(**params).fit(X)
    expected = det.score_samples(Q)
    Qt = torch.from_numpy(Q).to(tensor_dtype)
    got = det.score_samples(Qt)  # CPU tensor: the torch engine
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    # Different neighbours only within the float32 choice bound; distances
    # recomputed exactly (float64 sums of 7 squares).
    k = det.n_neighbors
    Qr = Qt.double().numpy()
    want = knn_scores(X, Qr, k, det.metric, det.aggregation)
    tol = selection_bound(X, Qr, np.float32, det.metric)
    if det.metric == "euclidean":
        tol = np.sqrt(tol)
    tol = tol * (k if det.aggregation == "sum" else 1) + 14 * EPS64 * np.abs(want)
    assert np.all(np.abs(got - want) <= tol)
    if tensor_dtype == torch.float64:
        assert np.all(np.abs(got - expected) <= 2 * tol)
    np.testing.assert_array_equal(det.predict(Qt), np.where(got < det.offset_, -1, 1))


@pytest.mark.parametrize("params", DETECTORS, ids=repr)
def test_score_samples_torch_equals_score_samples_and_has_the_analytic_gradient(
    params,
):
    X, Q = _data()
    det = KNNDetector(**params).fit(X)
    F = torch.from_numpy(Q).requires_grad_()
    scores = det.score_samples_torch(F)
    assert scores.shape == (len(Q),) and scores.dtype == torch.float64
    # float64 F: the same neighbours and distances from the same differences,
    # summed in another order (d eps64 relative each); the Euclidean square
    # root is taken at least at float32's smallest normal number.
    d = X.shape[1]
    np.testing.assert_allclose(
        scores.detach().numpy(),
        det.score_samples(F.detach()),
        rtol=2 * d * EPS64,
        atol=np.sqrt(np.finfo(np.float32).tiny),
    )
    scores.sum().backward()
    # Analytic gradient with the neighbours held fixed (kneighbors' rows).
    k = det.n_neighbors
    dist, ind = det.kneighbors(Q, n_neighbors=k)
    R = X[ind]  # (n, k, d)
    diff = Q[:, None, :] - R
    metric, agg = det.metric, det.aggregation
    # Queries at distance 0 from a neighbour (3 and 4 equal training rows):
    # the Euclidean distance has no gradient there (ours: 0, by the clamp).
    at_zero = (
        (dist == 0).any(axis=1) if metric == "euclidean" else np.zeros(len(Q), bool)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "sqeuclidean":
            g = -2.0 * diff  # d(-|f - r|^2)/df
        elif metric == "euclidean":
            g = -diff / np.linalg.norm(diff, axis=2, keepdims=True)
        else:  # cosine: d(-(1 - u.v))/df = (v - (u.v) u) / |f|, v = r / |r|
            norm = np.linalg.norm(Q, axis=1, keepdims=True)[:, None, :]
            u = Q[:, None, :] / norm
            v = R / np.linalg.norm(R, axis=2, keepdims=True)
            g = (v - np.sum(u * v, axis=2, keepdims=True) * u) / norm
            g[3] = 0.0  # the zero query: distance 1 to everything, a constant
    g[at_zero] = 0.0
    if agg == "mean":
        want = g.mean(axis=1)
    elif agg == "sum":
        want = g.sum(axis=1)
    else:  # the farthest of the k, as chosen
        want = g[np.arange(len(Q)), -1]
    assert at_zero.sum() == (2 if metric == "euclidean" else 0)
    # Both sides are float64 sums of at most k d terms no larger than max|g|:
    # 4 k d eps64 max|g| absolute.
    np.testing.assert_allclose(
        F.grad.numpy(), want, rtol=0, atol=4 * k * d * EPS64 * np.abs(g).max()
    )


def test_score_samples_torch_float32_and_errors():
    X, Q = _data()
    det = KNNDetector().fit(X.astype(np.float32))
    F = torch.from_numpy(Q.astype(np.float32))
    scores = det.score_samples_torch(F)
    assert scores.dtype == torch.float32
    want = det.score_samples(Q.astype(np.float32))
    # Distances summed in float32: d eps32 relative each.
    np.testing.assert_allclose(scores.numpy(), want, rtol=7 * np.finfo(np.float32).eps)
    with pytest.raises(TypeError, match=r"expects a torch\.Tensor"):
        det.score_samples_torch(Q)
    with pytest.raises(ValueError, match="X has 3 features"):
        det.score_samples_torch(F[:, :3])


def test_tensor_validation():
    X, Q = _data()
    det = KNNDetector().fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but"):
        det.score_samples(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="Expected a 2D tensor"):
        det.score_samples(torch.zeros(7))
    with pytest.raises(ValueError, match="0 sample"):
        det.score_samples(torch.zeros(0, 7))
    with pytest.raises(TypeError, match="Complex"):
        det.score_samples(torch.zeros(4, 7, dtype=torch.complex64))
    Qt = torch.tensor(Q, requires_grad=True)  # accepted, not modified
    before = Qt.detach().clone()
    det.score_samples(Qt)
    assert torch.equal(Qt.detach(), before)


def test_cpu_tensors_of_other_dtypes_are_converted_as_arrays():
    X, Q = _data()
    det = KNNDetector().fit(X)
    # bfloat16 (which NumPy lacks) is read as float32; integers as float64,
    # as validate_data converts integer arrays.
    Qb = torch.from_numpy(Q).to(torch.bfloat16)
    np.testing.assert_array_equal(
        det.score_samples(Qb), det.score_samples(Qb.float().numpy())
    )
    Qi = torch.from_numpy(np.rint(Q)).to(torch.int64)
    np.testing.assert_array_equal(det.score_samples(Qi), det.score_samples(np.rint(Q)))


@pytest.mark.parametrize("n_threads", [1, 2, 8])
def test_tiles_stay_within_working_memory(n_threads):
    from sklearn import config_context

    X, Q = _data()
    index = ks.prepare_index(X, "sqeuclidean")
    # Brute force on the distinct rows; float64 sums of d squares: 2 d eps64.
    D = pairwise(index.rows[:, :-1], Q, "sqeuclidean")
    want = np.sort(D, axis=1)[:, :3]
    for mib in (1, 1024):
        with config_context(working_memory=mib):
            for dtype in (np.float32, np.float64):
                rows, cols = ks._tile_shape(dtype, n_threads)
                tile = rows * cols * np.dtype(dtype).itemsize
                assert tile <= min(ks._TILE_BYTES, mib * 2**20 // (4 * n_threads))
                assert cols % ks._GROUP == 0 and rows >= 1
            dist, ids = ks.search(index, Q, 3, n_threads=n_threads)
        rtol = 2 * X.shape[1] * EPS64
        np.testing.assert_allclose(dist, want, rtol=rtol, atol=0)
        np.testing.assert_allclose(np.take_along_axis(D, ids, 1), dist, rtol=rtol)


def test_kneighbors_uses_numpy_for_tensors():
    X, Q = _data()
    det = KNNDetector(n_neighbors=3).fit(X)
    dist, ind = det.kneighbors(Q)
    got_dist, got_ind = det.kneighbors(torch.from_numpy(Q))
    np.testing.assert_array_equal(got_ind, ind)
    np.testing.assert_array_equal(got_dist, dist)


def test_device_parameter_routes_numpy_and_tensors(monkeypatch):
    """On a CPU, arrays and tensors go through the NumPy engine (the faster
    one there); a GPU device sends the search to the torch engine."""
    from sklearn_ood import _neighbors

    X, Q = _data()
    calls = []
    real_torch, real_numpy = _neighbors.search_torch, _neighbors.search

    def spy_torch(index, X, k, device, **kwargs):
        calls.append(("torch", device.type))
        return real_torch(index, X, k, CPU, **kwargs)

    def spy_numpy(*args, **kwargs):
        calls.append(("numpy", "cpu"))
        return real_numpy(*args, **kwargs)

    monkeypatch.setattr(_neighbors, "search_torch", spy_torch)
    monkeypatch.setattr(_neighbors, "search", spy_numpy)
    Qt = torch.from_numpy(Q)
    for device in ("auto", "cpu"):
        det = KNNDetector(device=device).fit(X)
        want = det.score_samples(Q)
        np.testing.assert_array_equal(det.score_samples(Qt), want)
        # Same neighbours; distances summed by torch: d eps64 relative.
        got = det.score_samples_torch(Qt).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=2 * Q.shape[1] * EPS64)
        assert calls == [("numpy", "cpu")] * 3
        calls.clear()
    # A GPU (simulated: the device is reported as CUDA, the spy computes on
    # the CPU) sends tensors and arrays to torch.
    det = KNNDetector().fit(X)
    cuda = torch.device("cuda")
    monkeypatch.setattr(_neighbors, "compute_device", lambda device, X=None: cuda)
    for query in (Q, Qt):
        det.score_samples(query)
    assert calls == [("torch", "cuda")] * 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_cuda_request_falls_back_to_cpu_with_warning():
    from sklearn_ood.nn._device import DeviceWarning

    X, Q = _data()
    ref = KNNDetector().fit(X)
    with pytest.warns(DeviceWarning, match="CUDA is not available"):
        det = KNNDetector(device="cuda").fit(X)
    assert det.offset_ == ref.offset_
    with pytest.warns(DeviceWarning):
        np.testing.assert_array_equal(det.score_samples(Q), ref.score_samples(Q))


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("params", DETECTORS, ids=repr)
def test_cuda_fit_score_and_pickle(params):
    X, Q = _data()
    ref = KNNDetector(**params).fit(X)
    det = KNNDetector(**params, device="cuda").fit(X)  # leave-one-out on the GPU
    k = ref.n_neighbors
    tol = selection_bound(X, X, np.float32, ref.metric).max()
    tol = np.sqrt(tol) if ref.metric == "euclidean" else tol
    assert abs(det.offset_ - ref.offset_) <= k * tol + 1e-12 * abs(ref.offset_)
    got = det.score_samples(torch.from_numpy(Q).cuda())
    want = knn_scores(X, Q, k, ref.metric, ref.aggregation)
    assert np.max(np.abs(got - want)) <= k * tol + 1e-12 * np.abs(want).max()
    F = torch.from_numpy(Q).cuda().requires_grad_()
    det.score_samples_torch(F).sum().backward()
    assert F.grad.device.type == "cuda"
    state = pickle.dumps(det)
    assert b"cuda:0" not in state
    np.testing.assert_array_equal(pickle.loads(state).score_samples(Q), got)


def test_feature_names_warning_for_tensors():
    pd = pytest.importorskip("pandas")
    X, Q = _data()
    det = KNNDetector().fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(7)]))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        det.score_samples(torch.from_numpy(Q))


def test_fit_accepts_tensors():
    X, Q = _data()
    a = KNNDetector().fit(torch.from_numpy(X))
    b = KNNDetector().fit(X)
    np.testing.assert_array_equal(a.score_samples(Q), b.score_samples(Q))
    assert a.offset_ == b.offset_
