"""The torch scoring path (``device`` parameter, torch tensor input).

On the CPU the torch path must agree with the NumPy path to 1e-5 relative;
the CUDA tests run the same comparisons on a GPU and are skipped without one.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from sklearn_ood import KNNDetector, MahalanobisDetector

# For MahalanobisDetector: float32 products (torch) against the NumPy path lose
# about d * sqrt(kappa) * eps32 = 8 * 6 * 1.2e-7 ~ 6e-6 of a distance (kappa =
# 36 for _data's features).
RTOL = 1e-5
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


def _data(seed=0, n=300, d=8):
    """Correlated features (condition number 36) in three classes."""
    rng = np.random.RandomState(seed)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    mix = rotation * np.linspace(0.5, 3.0, d)
    X = rng.normal(size=(n, d)) @ mix + 5.0
    y = rng.randint(0, 3, size=n)
    X[y == 1] += 2.0
    T = rng.normal(size=(120, d)) @ mix + 5.0
    T[:5] = 0.0
    return X, y, T


def _rel(a, b):
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


DETECTORS = [
    MahalanobisDetector(),
    MahalanobisDetector(mode="tied"),
    MahalanobisDetector(mode="per_class"),
    MahalanobisDetector(mode="partial", components=(2, None)),
    MahalanobisDetector(mode="tied", covariance="identity"),
    KNNDetector(),
    KNNDetector(n_neighbors=1, metric="euclidean"),
    KNNDetector(n_neighbors=3, metric="cosine", aggregation="kth"),
]
IDS = [repr(d) for d in DETECTORS]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_cpu_tensor_matches_numpy(detector, dtype):
    X, y, T = _data()
    det = detector.fit(X.astype(dtype), y)
    expected = det.score_samples(T.astype(dtype))
    Tt = torch.from_numpy(T.astype(np.float32))
    got = det.score_samples(Tt)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert _rel(got, expected) < RTOL
    assert_array_equal(det.predict(Tt), det.predict(T.astype(dtype)))
    # The device parameter sends NumPy input through torch as well.
    det.set_params(device="cpu")
    assert _rel(det.score_samples(T), expected) < RTOL
    assert _rel(det.decision_function(T), det.score_samples(T) - det.offset_) < 1e-12


def test_class_distances_with_tensor():
    X, y, T = _data()
    det = MahalanobisDetector(mode="tied").fit(X, y)
    got = det.class_distances(torch.from_numpy(T))
    assert got.shape == (len(T), 3)
    assert _rel(got, det.class_distances(T)) < RTOL


def test_kneighbors_uses_numpy_for_tensors_and_devices():
    X, _, T = _data()
    ref = KNNDetector(n_neighbors=3).fit(X)
    dist, ind = ref.kneighbors(T)
    for det, query in [
        (ref, torch.from_numpy(T)),
        (KNNDetector(n_neighbors=3, device="cpu").fit(X), T),
    ]:
        got_dist, got_ind = det.kneighbors(query)
        assert_array_equal(got_ind, ind)
        assert _rel(got_dist, dist) < 1e-12


def test_tensor_is_not_modified_and_may_require_grad():
    X, _, T = _data()
    det = MahalanobisDetector().fit(X)
    Tt = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    before = Tt.detach().clone()
    scores = det.score_samples(Tt)
    assert torch.equal(Tt.detach(), before)
    assert _rel(scores, det.score_samples(T)) < RTOL


def test_fit_accepts_tensors():
    X, y, T = _data()
    for det in (MahalanobisDetector(mode="tied"), KNNDetector()):
        a = type(det)(**det.get_params()).fit(torch.from_numpy(X), torch.from_numpy(y))
        b = det.fit(X, y)
        assert_array_equal(a.score_samples(T), b.score_samples(T))


@pytest.mark.parametrize("detector", [MahalanobisDetector(), KNNDetector()], ids=repr)
def test_tensor_validation(detector):
    X, _, _ = _data()
    det = detector.fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but"):
        det.score_samples(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="Expected a 2D tensor"):
        det.score_samples(torch.zeros(8))
    with pytest.raises(ValueError, match="0 sample"):
        det.score_samples(torch.zeros(0, 8))
    bad = torch.zeros(4, 8)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        det.score_samples(bad)
    with pytest.raises(TypeError, match="Complex"):
        det.score_samples(torch.zeros(4, 8, dtype=torch.complex64))


def test_feature_names_warning_for_tensors():
    pd = pytest.importorskip("pandas")
    X, _, T = _data()
    det = KNNDetector().fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        det.score_samples(torch.from_numpy(T))


@pytest.mark.parametrize("cls", [MahalanobisDetector, KNNDetector])
def test_invalid_device(cls):
    X, _, _ = _data()
    with pytest.raises(ValueError, match="The 'device' parameter of"):
        cls(device="tpu").fit(X)
    with pytest.raises(ValueError, match="The 'device' parameter of"):
        cls(device=3).fit(X)


def test_mahalanobis_device_default_and_constraint():
    X, _, _ = _data()
    assert MahalanobisDetector().device == "auto"
    # one device system: None is not a device (the NumPy path is "auto" on CPU)
    with pytest.raises(ValueError, match="The 'device' parameter of Mahalanobis"):
        MahalanobisDetector(device=None).fit(X)
    MahalanobisDetector(device=torch.device("cpu")).fit(X)


@pytest.mark.parametrize(
    "params", [{}, {"mode": "tied"}, {"mode": "per_class"}], ids=repr
)
def test_mahalanobis_float64_tensors_are_scored_in_float64(params):
    # Products in the input's precision: a float64 tensor gives the NumPy
    # float64 scores to the float64 bound (d * kappa * eps64 with kappa = 36,
    # d = 8: 6e-14; 1e-11 leaves a margin).
    X, y, T = _data()
    det = MahalanobisDetector(**params).fit(X, y)
    got = det.score_samples(torch.from_numpy(T))
    assert _rel(got, det.score_samples(T)) < 1e-11


# ------------------------------------------- Mahalanobis: differentiable score
MAHA_TORCH = [
    {},
    {"mode": "tied"},
    {"mode": "per_class"},
    {"mode": "partial", "components": (2, None)},
    {"mode": "tied", "components": (2, None)},
    {"mode": "per_class", "components": (0, 5)},
    {"eigenvalue_floor": "pinv", "mode": "tied"},
    {"covariance": "ledoit_wolf", "mode": "tied"},
]


def _compared_class(det, params, T):
    """The class each row is compared with: nearest by the full distance."""
    full = dict(params, components=None)
    if full.get("mode") == "partial":
        full["mode"] = "marginal"
    X, y, _ = _data()
    return MahalanobisDetector(**full).fit(X, y).class_distances(T).argmin(axis=1)


@pytest.mark.parametrize("params", MAHA_TORCH, ids=repr)
def test_score_samples_torch_value_and_analytic_gradient(params):
    X, y, T = _data()
    det = MahalanobisDetector(**params).fit(X, y)
    F = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    scores = det.score_samples_torch(F)
    assert scores.dtype == torch.float64 and scores.requires_grad
    # float64 throughout (the NumPy path's bound: d * kappa * eps64 ~ 6e-14)
    assert _rel(scores.detach().numpy(), det.score_samples(T)) < 1e-11
    scores.sum().backward()
    # d/dx of -(x - m_c)' W W' (x - m_c) is -2 W W' (x - m_c), with c the class
    # the score compares x with, held fixed (Lee et al.'s pre-processing loss).
    c = _compared_class(det, params, T)
    W = det.whitening_
    Wc = W[c] if W.ndim == 3 else np.broadcast_to(W, (len(T), *W.shape))
    diff = T - det.means_[c]
    expected = -2.0 * np.einsum("nd,ndr,ner->ne", diff, Wc, Wc)
    assert _rel(F.grad.numpy(), expected) < 1e-10


def test_score_samples_torch_float32_and_errors():
    X, y, T = _data()
    det = MahalanobisDetector(mode="tied").fit(X.astype(np.float32), y)
    F = torch.tensor(T, dtype=torch.float32, requires_grad=True)
    got = det.score_samples_torch(F)
    assert _rel(got.detach().numpy(), det.score_samples(T.astype(np.float32))) < RTOL
    with pytest.raises(TypeError, match=r"expects a torch\.Tensor"):
        det.score_samples_torch(T)
    with pytest.raises(ValueError, match="X has 3 features"):
        det.score_samples_torch(torch.zeros(2, 3))
    bad = torch.zeros(2, 8)
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        det.score_samples_torch(bad)


@pytest.mark.skipif(CUDA, reason="checks the fallback on machines without CUDA")
def test_cuda_request_falls_back_to_cpu_with_warning():
    X, _, T = _data()
    ref = MahalanobisDetector().fit(X)
    det = MahalanobisDetector(device="cuda").fit(X)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        got = det.score_samples(T)
    assert _rel(got, ref.score_samples(T)) < RTOL


@pytest.mark.skipif(CUDA, reason="'auto' picks the GPU where there is one")
def test_auto_device_without_cuda_is_the_numpy_path():
    X, _, T = _data()
    for cls in (MahalanobisDetector, KNNDetector):
        ref = cls().fit(X)
        det = cls(device="auto").fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert_array_equal(det.score_samples(T), ref.score_samples(T))
        assert det.offset_ == ref.offset_


# -------------------------------------------------------------------- CUDA
@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("detector", DETECTORS, ids=IDS)
def test_cuda_tensor_matches_numpy(detector):
    X, y, T = _data()
    det = detector.fit(X.astype(np.float32), y)
    expected = det.score_samples(T.astype(np.float32))
    got = det.score_samples(torch.from_numpy(T.astype(np.float32)).cuda())
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert _rel(got, expected) < RTOL
    det.set_params(device="cuda")
    assert _rel(det.score_samples(T), expected) < RTOL


@needs_cuda
@pytest.mark.gpu
def test_cuda_knn_fit_and_pickle():
    X, _, T = _data()
    ref = KNNDetector().fit(X)
    det = KNNDetector(device="cuda").fit(X)
    assert det.offset_ == pytest.approx(ref.offset_, rel=RTOL)
    state = pickle.dumps(det)
    assert b"cuda:0" not in state  # no device handle is kept
    loaded = pickle.loads(state)
    assert _rel(loaded.score_samples(T), ref.score_samples(T)) < RTOL
