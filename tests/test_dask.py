"""Dask: fit_dask and ParallelPostFit on a local in-process cluster.

The cluster runs in this process (``processes=False``: the in-process
transport, no network sockets) with four single-threaded workers. Results must
equal the single-machine ones to 1e-8 relative: block moments merged in float64
differ from one pass over the rows by about eps64 * (|mean| / std)^2 per merge
(means ~3, stds ~1 here: ~1e-14 a merge), far below that bound.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood.parallel import ParallelPostFit, fit_dask

da = pytest.importorskip("dask.array", reason="needs the dask extra")
dd = pytest.importorskip("dask.dataframe", reason="needs the dask extra")
distributed = pytest.importorskip("distributed", reason="needs the dask extra")
pd = pytest.importorskip("pandas")

RTOL = 1e-8


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=4, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("inproc://")
        with distributed.Client(cluster) as c:
            yield c


def _data(n=400, d=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) + 2 * np.eye(d)) + 3.0
    y = rng.randint(0, 3, size=n)
    X[y == 2] += 1.5
    y[::37] = -1
    T = rng.normal(size=(90, d)) * 2 + 3.0
    return X, y, T


def _rel(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


CONFIGS = [
    {},
    {"mode": "tied"},
    {"mode": "per_class"},
    {"mode": "partial", "components": (2, None)},
    {"mode": "tied", "components": (1, None)},  # class by the full distance
    {"mode": "tied", "covariance": "ledoit_wolf"},  # closed-form, eigenbasis
    {"covariance": "identity", "mode": "per_class", "contamination": 0.1},
    {"eigenvalue_floor": "pinv", "mode": "tied"},
]


@pytest.mark.parametrize("params", CONFIGS, ids=repr)
def test_fit_dask_equals_fit(client, params):
    X, y, T = _data()
    ref = MahalanobisDetector(**params).fit(X, y)
    det = fit_dask(
        MahalanobisDetector(**params),
        da.from_array(X, chunks=(77, 2)),  # uneven rows, split columns
        da.from_array(y, chunks=50),  # label chunks unlike X's
    )
    assert_array_equal(det.classes_, ref.classes_)
    assert _rel(det.score_samples(T), ref.score_samples(T)) < RTOL
    assert det.offset_ == pytest.approx(ref.offset_, rel=RTOL)
    assert det.n_features_in_ == 5


def test_fit_dask_string_labels_numpy_y_and_dataframe(client):
    X, y, T = _data()
    labels = np.array(["b", "a", "c"], dtype=object)[np.maximum(y, 0)]
    labels[y == -1] = -1
    cols = [f"f{i}" for i in range(5)]
    frame = pd.DataFrame(X, columns=cols)
    ref = MahalanobisDetector(mode="per_class").fit(frame, labels)
    ddf = dd.from_pandas(frame, npartitions=4)
    det = fit_dask(MahalanobisDetector(mode="per_class"), ddf, labels)
    assert list(det.feature_names_in_) == cols
    assert list(det.classes_) == ["a", "b", "c"]
    Tf = pd.DataFrame(T, columns=cols)
    assert _rel(det.score_samples(Tf), ref.score_samples(Tf)) < RTOL
    assert det.offset_ == pytest.approx(ref.offset_, rel=RTOL)


def test_fit_dask_without_labels_and_errors(client):
    X, _, T = _data()
    ref = MahalanobisDetector(mode="tied").fit(X)
    det = fit_dask(MahalanobisDetector(mode="tied"), da.from_array(X, chunks=64))
    assert _rel(det.score_samples(T), ref.score_samples(T)) < RTOL
    with pytest.raises(ValueError, match="same length"):
        fit_dask(MahalanobisDetector(), da.from_array(X, chunks=64), np.zeros(3))
    bad = X.copy()
    bad[300, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_dask(MahalanobisDetector(), da.from_array(bad, chunks=64))
    one = np.zeros(len(X), dtype=int)
    one[0] = 1
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        fit_dask(MahalanobisDetector(mode="per_class"), da.from_array(X), one)


@pytest.mark.parametrize(
    "scale, dtype", [(2.0**100, np.float32), (2.0**490, np.float64)], ids=str
)
@pytest.mark.parametrize(
    "params", [{}, {"covariance": "ledoit_wolf", "mode": "tied"}], ids=repr
)
def test_fit_dask_extreme_values(client, scale, dtype, params):
    # 1e30 in float32 and 1e148 in float64: the block moments are kept in a
    # power-of-two unit, so the fit is finite and equals fit's.
    X, y, T = _data()
    X, T = X.astype(dtype) * dtype(scale), T.astype(dtype) * dtype(scale)
    ref = MahalanobisDetector(**params).fit(X, y)
    det = fit_dask(MahalanobisDetector(**params), da.from_array(X, chunks=90), y)
    scores = det.score_samples(T)
    assert np.all(np.isfinite(scores))
    assert _rel(scores, ref.score_samples(T)) < RTOL
    assert det.offset_ == pytest.approx(ref.offset_, rel=RTOL)


class _MeanDistance:
    """A third-party detector with the mergeable-statistics protocol (counts
    and sums merge exactly): distance to the training mean."""

    class Stats:
        def __init__(self, n, total):
            self.n, self.total = n, total

        def merge(self, other):
            return _MeanDistance.Stats(self.n + other.n, self.total + other.total)

    def block_statistics(self, X, y=None, *, start=0):
        X = np.asarray(X)
        return self.Stats(len(X), X.sum(axis=0))

    def fit_from_statistics(self, statistics, X_head, map_blocks):
        self.mean_ = statistics.total / statistics.n
        self.block_sizes_ = map_blocks(lambda X, y, start: (start, len(X)))
        return self

    def fit(self, X, y=None):  # pragma: no cover - fit_dask must not gather
        raise AssertionError("fit_dask gathered the data")


def test_fit_dask_dispatches_on_the_protocol(client):
    X, _, _ = _data()
    det = fit_dask(_MeanDistance(), da.from_array(X, chunks=150))
    assert_allclose(det.mean_, X.mean(axis=0), rtol=1e-12)
    assert det.block_sizes_ == [(0, 150), (150, 150), (300, 100)]


def test_fit_dask_other_estimators_gather(client):
    X, _, T = _data()
    det = fit_dask(KNNDetector(n_neighbors=3), da.from_array(X, chunks=100))
    ref = KNNDetector(n_neighbors=3).fit(X)
    assert_array_equal(det.score_samples(T), ref.score_samples(T))


def test_parallel_post_fit_dask_array(client):
    X, y, _ = _data()
    rng = np.random.RandomState(5)
    Q = rng.normal(size=(1000, 5)) * 2 + 3.0
    det = MahalanobisDetector(mode="tied").fit(X, y)
    wrapped = ParallelPostFit(det)
    lazy = wrapped.score_samples(da.from_array(Q, chunks=(130, 3)))
    assert isinstance(lazy, da.Array)
    assert _rel(lazy.compute(), det.score_samples(Q)) < RTOL
    dec = wrapped.decision_function(da.from_array(Q, chunks=250)).compute()
    assert _rel(dec, det.decision_function(Q)) < RTOL
    pred = wrapped.predict(da.from_array(Q, chunks=250)).compute()
    assert_array_equal(pred, det.predict(Q))
    # NumPy input passes straight through.
    assert_array_equal(wrapped.predict(Q), det.predict(Q))


def test_parallel_post_fit_pipeline_on_dataframe(client):
    X, _, T = _data()
    cols = list("abcde")
    pipe = make_pipeline(StandardScaler(), KNNDetector(n_neighbors=2))
    wrapped = ParallelPostFit(pipe).fit(pd.DataFrame(X, columns=cols))
    ref = make_pipeline(StandardScaler(), KNNDetector(n_neighbors=2))
    ref.fit(pd.DataFrame(X, columns=cols))
    Tf = pd.DataFrame(T, columns=cols, index=np.arange(1000, 1000 + len(T)))
    out = wrapped.score_samples(dd.from_pandas(Tf, npartitions=3)).compute()
    assert isinstance(out, pd.Series)
    assert_array_equal(out.index, Tf.index)
    assert _rel(out.to_numpy(), ref.score_samples(Tf)) < RTOL


def test_parallel_post_fit_fits_mahalanobis_blockwise(client):
    X, y, T = _data()
    wrapped = ParallelPostFit(MahalanobisDetector(mode="tied"))
    wrapped.fit(da.from_array(X, chunks=90), da.from_array(y, chunks=90))
    ref = MahalanobisDetector(mode="tied").fit(X, y)
    assert _rel(wrapped.score_samples(T), ref.score_samples(T)) < RTOL
    assert wrapped.estimator_.offset_ == pytest.approx(ref.offset_, rel=RTOL)
    with pytest.raises(Exception, match="not fitted"):
        ParallelPostFit(MahalanobisDetector()).score_samples(T)


def test_missing_dask_names_the_extra(monkeypatch):
    X, _, _ = _data()
    for name in ("dask", "dask.array"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"sklearn-ood\[dask\]"):
        fit_dask(MahalanobisDetector(), X)


def test_modules_import_without_dask(monkeypatch):
    """Re-run the modules' code with every Dask import failing."""
    import sklearn_ood

    for name in ("dask", "dask.array", "dask.dataframe", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)
    for module_name in ("parallel", "_mahalanobis", "_neighbors"):
        path = Path(sklearn_ood.__file__).parent / f"{module_name}.py"
        spec = importlib.util.spec_from_file_location(
            f"sklearn_ood._without_dask_{module_name}", path
        )
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # for its dataclasses
        spec.loader.exec_module(module)  # raises ImportError on any dask import
    assert callable(module.KNNDetector)
