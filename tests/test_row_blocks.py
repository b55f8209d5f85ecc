"""Row-block passes on threads and the one-pass input check.

``sklearn_ood.utils._row_blocks`` runs the Gaussian fit's passes over the rows
(column sums, centring, the scatter's SYRK) on threads, block by block;
``check_feature_range`` finds NaN and infinity with the range it reads anyway.
Each is checked against an independent computation: float64 NumPy products,
scikit-learn's covariance estimators, scikit-learn's own input check.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.covariance import EmpiricalCovariance, LedoitWolf
from sklearn.utils import check_array
from threadpoolctl import threadpool_info, threadpool_limits

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood._gaussian import _distances
from sklearn_ood.utils import _row_blocks
from sklearn_ood.utils._numeric import check_feature_range
from sklearn_ood.utils._row_blocks import map_row_blocks, row_blocks

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def correlated_rows(n, d, seed, dtype=np.float64):
    rng = np.random.RandomState(seed)
    mix = rng.normal(size=(d, d)) + 2.0 * np.eye(d)
    return (rng.normal(size=(n, d)) @ mix + 3.0).astype(dtype)


# --------------------------------------------------------------------------
# row_blocks / map_row_blocks
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cpus", [1, 2, 3, 16])
@pytest.mark.parametrize("n", [0, 1, 8191, 8192, 16384, 50_000, 123_457])
@pytest.mark.parametrize("d", [4, 512, 2048])
def test_row_blocks_partition_the_rows(monkeypatch, cpus, n, d):
    monkeypatch.setattr(_row_blocks, "available_cpus", lambda: cpus)
    blocks = row_blocks(n, d)
    starts = [b.start for b in blocks]
    stops = [b.stop for b in blocks]
    assert starts[0] == 0 and stops[-1] == n
    assert starts[1:] == stops[:-1]  # contiguous, in order, no overlap
    fewest = max(8192, 16 * d)
    sizes = np.array(stops) - np.array(starts)
    if n >= fewest:
        assert sizes.min() >= fewest and sizes.max() <= 2 * fewest
        assert sizes.max() - sizes.min() <= 1
    else:
        assert len(blocks) == 1
    if len(blocks) >= cpus:  # threads finish together
        assert len(blocks) % cpus == 0


def test_map_row_blocks_runs_in_threads_with_one_blas_thread():
    blocks = row_blocks(40_000, 4)
    assert len(blocks) >= 2

    def probe(b):
        # The BLAS libraries of NumPy and SciPy, which the workers call (a
        # library loaded later, such as faiss's, is not limited: not called).
        blas = [
            i["num_threads"]
            for i in threadpool_info()
            if i["user_api"] == "blas"
            and ("numpy" in i["filepath"] or "scipy.libs" in i["filepath"])
        ]
        return b, threading.current_thread().name, max(blas), np.geterr()["over"]

    with np.errstate(over="ignore"):
        results = map_row_blocks(probe, blocks, n_threads=2)
    # A callback error mode reaches the workers too.
    seen = []
    old = np.seterrcall(lambda kind, flag: seen.append(kind))
    try:
        with np.errstate(over="call"):
            map_row_blocks(
                lambda b: np.float32(3e38) * np.float32(10), blocks, n_threads=2
            )
    finally:
        np.seterrcall(old)
    assert seen == ["overflow"] * len(blocks)
    assert [r[0] for r in results] == blocks  # in block order
    assert all(r[1] != threading.main_thread().name for r in results)
    assert all(r[2] == 1 for r in results)  # BLAS limited inside
    assert all(r[3] == "ignore" for r in results)  # the caller's errstate

    # One thread, one block, or a caller's worker thread: in order, here.
    for run in (
        lambda: map_row_blocks(probe, blocks, n_threads=1),
        lambda: map_row_blocks(probe, blocks[:1], n_threads=2),
    ):
        assert all(r[1] == threading.main_thread().name for r in run())
    with ThreadPoolExecutor(1) as pool:
        names = pool.submit(
            lambda: [
                (r[1], threading.current_thread().name)
                for r in map_row_blocks(probe, blocks, n_threads=2)
            ]
        ).result()
    assert all(mine == caller for mine, caller in names)


# --------------------------------------------------------------------------
# the blocked Gaussian fit
# --------------------------------------------------------------------------
@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 700 rows, whatever the machine: the threaded path on test data."""
    monkeypatch.setattr(_row_blocks, "_BLOCK_ROWS", 700)
    monkeypatch.setattr(_row_blocks, "available_cpus", lambda: 2)
    monkeypatch.setattr(_row_blocks, "blas_threads", lambda: 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "params",
    [
        {"mode": "marginal"},
        {"mode": "tied"},
        {"mode": "per_class"},
        {"mode": "marginal", "covariance": "ledoit_wolf"},
        {"mode": "tied", "covariance": "ledoit_wolf"},
    ],
    ids=repr,
)
def test_blocked_fit_matches_scikit_learn(small_blocks, params, dtype):
    X = correlated_rows(6000, 6, seed=0, dtype=dtype)
    y = np.random.RandomState(1).randint(0, 3, size=6000)  # no period
    X[y == 1] += 5.0  # classes apart: the pooled rows need their own centres
    assert len(row_blocks(*X.shape)) >= 8
    det = MahalanobisDetector(**params).fit(X, y)
    X64 = X.astype(np.float64)
    means = np.array([X64[y == c].mean(axis=0) for c in range(3)])
    Estimator = LedoitWolf if params.get("covariance") else EmpiricalCovariance
    if params["mode"] == "per_class":
        covs = [Estimator().fit(X64[y == c]).covariance_ for c in range(3)]
        expected = np.stack(covs)
    elif params["mode"] == "tied":
        expected = Estimator(assume_centered=True).fit(X64 - means[y]).covariance_
    else:
        expected = Estimator().fit(X64).covariance_
    # Float64: summation over n = 6000 rows in another order, n * eps64
    # relative to the entries' scale (the diagonal); float32 products: the same
    # with eps32 (the blocks' partial sums are float64).
    eps = EPS64 if dtype == np.float64 else EPS32
    scale = np.max(np.abs(np.diagonal(expected, axis1=-2, axis2=-1)))
    assert_allclose(det.covariance_, expected, rtol=0, atol=6000 * eps * scale)


def test_blocked_fit_does_not_depend_on_the_thread_count(monkeypatch):
    # Same blocks, each block's SYRK on one BLAS thread either way: 1 or 3
    # threads must give the same bits (fit, leave-one-out offset, scores).
    monkeypatch.setattr(_row_blocks, "_BLOCK_ROWS", 700)
    X = correlated_rows(6000, 6, seed=1, dtype=np.float32)
    X_test = correlated_rows(500, 6, seed=2, dtype=np.float32)
    runs = []
    with threadpool_limits(1, user_api="blas"):
        for threads in (1, 3):
            monkeypatch.setattr(_row_blocks, "blas_threads", lambda t=threads: t)
            det = MahalanobisDetector(covariance="ledoit_wolf").fit(X)
            runs.append((det.covariance_, det.offset_, det.score_samples(X_test)))
    for a, b in zip(*runs, strict=True):
        assert_array_equal(a, b)


def test_blocked_leave_one_out_scores_match_refits(small_blocks):
    # The calibration scores are leave-one-out scores (the residuals of the
    # blocked scatter pass, whitened in place): refit without a row and score
    # it, in float64, with scikit-learn.
    X = correlated_rows(3000, 5, seed=3)
    assert np.linalg.cond(np.cov(X.T)) < 300  # the premise of the tolerance
    det = MahalanobisDetector().fit(X)
    blocks = row_blocks(*X.shape)
    assert len(blocks) >= 4
    rows = sorted({i for b in blocks for i in (b.start, b.stop - 1)})  # the edges
    loo = []
    for i in rows:
        keep = np.ones(len(X), dtype=bool)
        keep[i] = False
        ref = EmpiricalCovariance().fit(X[keep])
        loo.append(-ref.mahalanobis(X[i : i + 1])[0])
    # Two float64 estimates summed in different orders over n rows, through a
    # factorisation: n * kappa * eps64 relative.
    assert_allclose(det.calibration_scores_[rows], loo, rtol=3000 * 300 * EPS64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scores_in_small_chunks_match_scikit_learn(monkeypatch, dtype):
    # Scoring writes each chunk's centred rows to one reused buffer: 3 rows per
    # chunk here, the last one shorter; every row against scikit-learn.
    X = correlated_rows(400, 5, seed=4, dtype=dtype)
    X_test = correlated_rows(101, 5, seed=5, dtype=dtype)
    det = MahalanobisDetector().fit(X)
    monkeypatch.setattr(_distances, "_CHUNK_BYTES", 3 * 5 * np.dtype(dtype).itemsize)
    chunked = det.score_samples(X_test)
    expected = -EmpiricalCovariance().fit(X.astype(np.float64)).mahalanobis(X_test)
    kappa = np.linalg.cond(np.cov(X.T.astype(np.float64)))
    assert kappa < 300  # the premise of the tolerance
    # Through a factorisation of the covariance, d * kappa * eps per distance,
    # plus the n * kappa * eps of two scatters summed in different orders.
    eps = EPS64 if dtype == np.float64 else EPS32
    rtol = (5 + 400) * 300 * eps
    assert_allclose(chunked, expected, rtol=rtol)
    X_before = X_test.copy()
    det.score_samples(X_test)
    assert_array_equal(X_test, X_before)  # the buffer is ours, not the input


# --------------------------------------------------------------------------
# NaN and infinity: found with the range, reported as scikit-learn does
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (17, 2), (-1, -1)])
@pytest.mark.parametrize("Detector", [MahalanobisDetector, KNNDetector])
def test_non_finite_input_gets_scikit_learns_error(Detector, where, bad, dtype):
    X = correlated_rows(60, 3, seed=6, dtype=dtype) * 1e3  # larger finite values
    X[where] = bad
    with pytest.raises(ValueError) as theirs:
        check_array(X, estimator=Detector(), input_name="X")  # as validate_data
    with pytest.raises(ValueError) as ours:
        Detector().fit(X)
    assert str(ours.value) == str(theirs.value)
    det = Detector().fit(correlated_rows(60, 3, seed=7, dtype=dtype))
    with pytest.raises(ValueError) as ours:
        det.score_samples(X)
    assert str(ours.value) == str(theirs.value)


def test_check_feature_range_without_an_estimator():
    X = np.ones((4, 2))
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        check_feature_range(X)
    with pytest.raises(ValueError, match="Input Z contains infinity"):
        check_feature_range(np.array([[1.0, np.inf]]), name="Z")
    assert check_feature_range(np.ones((3, 2))) is not None


def test_ledoit_wolf_with_a_two_row_class():
    # The shrinkage coefficient is >= 0 in exact arithmetic; rounding made it
    # -8.9e-17 for this 2-row class and scikit-learn's shrunk_covariance
    # refused it. Each class's covariance against scikit-learn's LedoitWolf.
    X = np.random.RandomState(33).normal(size=(17, 5))
    y = np.r_[[0] * 9, [1] * 2, [2] * 6]
    det = MahalanobisDetector(mode="per_class", covariance="ledoit_wolf").fit(X, y)
    for c in range(3):
        expected = LedoitWolf().fit(X[y == c]).covariance_
        # a few float64 sums of at most 9 rows
        assert_allclose(det.covariance_[c], expected, rtol=1e-12, atol=1e-14)
