"""Tests of the gradient input pre-processing against analytic gradients.

The networks are linear (a ``Linear`` layer, a 1x1 convolution followed by
global average pooling, a classifier-layout network whose penultimate features
are linear in the input), so the gradient of the Mahalanobis / nearest-neighbour
distances with respect to the input has a closed form, computed here in NumPy
in float64 from independently estimated statistics.

Tolerances. The network runs in float32: a feature that is a sum of ``m``
terms carries a rounding error of at most ``gamma_m * sum |terms|`` (Higham,
Accuracy and Stability, eq. 3.5; ``gamma_m ~ m * eps32``). :func:`_dist_atol`
turns that bound into one on the squared Mahalanobis distances (first order,
doubled for the higher-order terms). A step ``x - epsilon * s / std`` rounds
once in float32 (``epsilon`` itself is rounded to float32): at most
``eps32 * (|x_hat| + epsilon / std)``.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    PredefinedSplit,
    StratifiedKFold,
)
from sklearn.neighbors import NearestNeighbors
from torch import nn

from sklearn_ood import (
    InputPreprocessingDetector,
    KNNDetector,
    LayerEnsembleDetector,
    MahalanobisDetector,
    TorchFeatureExtractor,
)
from sklearn_ood.metrics import auroc, auroc_scorer
from tests._calibration import conformal_threshold

EPS32 = float(np.finfo(np.float32).eps)


def _sign_prime(g):
    return np.where(g >= 0, 1.0, -1.0)


def _linear(n_in, n_out, seed):
    layer = nn.Linear(n_in, n_out)
    gen = np.random.RandomState(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gen.normal(size=(n_out, n_in))))
        layer.bias.copy_(torch.from_numpy(gen.normal(size=n_out)))
    return layer


def _numpy_params(layer):
    return (
        layer.weight.detach().double().numpy(),
        layer.bias.detach().double().numpy(),
    )


def _step_atol(X_hat, epsilon, std=1.0):
    """One float32 rounding of the step and of epsilon (see the module doc)."""
    return EPS32 * (np.abs(X_hat).max() + epsilon / np.min(std))


def _dist_atol(gamma, mag_train, mag_test, R_train, F_test, mu, P):
    """Bound on the float32 error of ``D = (f - mu)^T P (f - mu)``.

    ``|delta f| <= gamma * mag`` elementwise for the training and the test
    features (``mag``: the sum of the absolute terms of each feature);
    ``R_train``: the training features minus their class mean, ``mu``: the
    mean each test row is compared with (one row, or one per test row). To
    first order, ``|dD| <= 2 |P r| (|df| + |dmu|) + |P r|^2 |dSigma|_2`` with
    ``r = f - mu``, ``|dmu| <= max_j |dF_j|`` and ``|dSigma|_2 <= 2 max_j
    |r_j| max_j |dF_j|`` (the statistics estimated from perturbed training
    features); doubled for the second-order terms. Scoring in float32 rounds
    ``f - mu`` once more: ``eps32 (|f| + |mu|)`` is added to ``|df|``.
    """
    dF = gamma * np.linalg.norm(mag_train, axis=1).max()
    df = gamma * np.linalg.norm(mag_test, axis=1) + EPS32 * (
        np.linalg.norm(F_test, axis=1) + np.linalg.norm(np.atleast_2d(mu), axis=1)
    )
    Pr = np.linalg.norm((F_test - mu) @ P, axis=1)
    dsigma = 2 * np.linalg.norm(R_train, axis=1).max() * dF
    return float(np.max(2 * (2 * Pr * (df + dF) + Pr**2 * dsigma)))


# ------------------------------------------------------ pre-processing
def _data(seed=0, n=60, d=3):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.repeat([0, 1, 2], n // 3)
    X += np.eye(d, dtype=np.float32)[y] * 2.0
    return X, y


def _tied_stats(F, y):
    classes = np.unique(y)
    means = np.stack([F[y == c].mean(axis=0) for c in classes])
    R = F - means[np.searchsorted(classes, y)]
    return means, np.linalg.inv(R.T @ R / F.shape[0])


def test_mahalanobis_preprocessing_direction_and_score():
    X, y = _data()
    lin = _linear(3, 3, seed=3)  # square: a non-singular feature covariance
    ext = TorchFeatureExtractor(lin, device="cpu")
    det = InputPreprocessingDetector(
        ext, MahalanobisDetector(mode="tied"), epsilon=0.05
    ).fit(X, y)

    A, b = _numpy_params(lin)
    F = X.astype(np.float64) @ A.T + b
    means, P = _tied_stats(F, y)
    X_test = np.random.RandomState(9).normal(size=(10, 3)).astype(np.float32) * 2
    F_test = X_test.astype(np.float64) @ A.T + b
    diff = F_test[:, None, :] - means[None]
    D = np.einsum("ncd,de,nce->nc", diff, P, diff)
    c = D.argmin(axis=1)
    grad = (F_test - means[c]) @ P @ A  # d/dx of 0.5 * Mahalanobis^2
    X_hat = X_test - 0.05 * _sign_prime(grad)
    np.testing.assert_allclose(
        det.perturb(X_test)[0], X_hat, rtol=0, atol=_step_atol(X_hat, 0.05)
    )

    F_hat = X_hat @ A.T + b
    diff = F_hat[:, None, :] - means[None]
    D_hat = np.einsum("ncd,de,nce->nc", diff, P, diff)
    expected = -D_hat.min(axis=1)
    c_hat = D_hat.argmin(axis=1)
    # X_hat itself is exact up to _step_atol; features: 3 products + bias.
    mag = lambda Z: np.abs(Z) @ np.abs(A).T + np.abs(b)  # noqa: E731
    R = F - means[np.searchsorted(np.unique(y), y)]
    atol = _dist_atol(4 * EPS32, mag(X), mag(X_hat), R, F_hat, means[c_hat], P)
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=0, atol=atol)
    # the step lowers the distance of every sample here (small epsilon)
    assert np.all(expected > -D.min(axis=1))


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_knn_preprocessing_direction(metric, aggregation):
    X, _ = _data(seed=1)
    lin = _linear(3, 4, seed=4)
    ext = TorchFeatureExtractor(lin, device="cpu")
    knn = KNNDetector(n_neighbors=3, metric=metric, aggregation=aggregation)
    det = InputPreprocessingDetector(ext, knn, epsilon=0.01).fit(X)

    A, b = _numpy_params(lin)
    F = X.astype(np.float64) @ A.T + b
    X_test = np.random.RandomState(5).normal(size=(8, 3)).astype(np.float32)
    F_test = X_test.astype(np.float64) @ A.T + b
    nn_metric = "cosine" if metric == "cosine" else "euclidean"
    dist, ind = (
        NearestNeighbors(n_neighbors=3, metric=nn_metric).fit(F).kneighbors(F_test)
    )
    grads = []
    for i in range(len(F_test)):
        f, R = F_test[i], F[ind[i]]
        if metric == "cosine":
            u = f / np.linalg.norm(f)
            V = R / np.linalg.norm(R, axis=1, keepdims=True)
            # d(1 - u.v)/df = -(v - (u.v) u) / |f|
            per = -(V - (V @ u)[:, None] * u[None]) / np.linalg.norm(f)
        elif metric == "sqeuclidean":
            per = 2.0 * (f - R)
        else:
            per = (f - R) / np.linalg.norm(f - R, axis=1, keepdims=True)
        gf = per.mean(axis=0) if aggregation == "mean" else per[dist[i].argmax()]
        grads.append(gf @ A)
    X_hat = X_test - 0.01 * _sign_prime(np.array(grads))
    np.testing.assert_allclose(
        det.perturb(X_test)[0], X_hat, rtol=0, atol=_step_atol(X_hat, 0.01)
    )


def test_per_layer_preprocessing_uses_each_layers_own_loss():
    X, y = _data(seed=2)
    l1, l2 = _linear(3, 3, seed=5), _linear(3, 2, seed=6)
    net = nn.Sequential(l1, l2)
    ext = TorchFeatureExtractor(net, layers=["0", "1"], device="cpu")
    ens = LayerEnsembleDetector(MahalanobisDetector(), random_state=0)
    det = InputPreprocessingDetector(ext, ens, epsilon=0.02).fit(X, y)
    assert det.detector_.feature_groups_ == {"0": slice(0, 3), "1": slice(3, 5)}

    A, a = _numpy_params(l1)
    B, b = _numpy_params(l2)
    H1 = X.astype(np.float64) @ A.T + a
    H2 = H1 @ B.T + b
    X_test = np.random.RandomState(6).normal(size=(9, 3)).astype(np.float32)
    T1 = X_test.astype(np.float64) @ A.T + a
    T2 = T1 @ B.T + b
    P1 = np.linalg.inv(np.cov(H1.T, bias=True))
    P2 = np.linalg.inv(np.cov(H2.T, bias=True))
    g1 = (T1 - H1.mean(0)) @ P1 @ A
    g2 = (T2 - H2.mean(0)) @ P2 @ B @ A
    X_hat = det.perturb(X_test)
    assert X_hat.shape == (2, 9, 3)
    for k, g in enumerate((g1, g2)):
        ref = X_test - 0.02 * _sign_prime(g)
        np.testing.assert_allclose(X_hat[k], ref, rtol=0, atol=_step_atol(ref, 0.02))

    # per-layer scores of the moved inputs, combined by the fitted combiner
    def maha(Fh, Ftr, P):
        d = Fh - Ftr.mean(0)
        return -np.einsum("nd,de,ne->n", d, P, d)

    Xh = X_hat.astype(np.float64)
    G1 = [Xh[0] @ A.T + a, Xh[1] @ A.T + a]
    S = np.column_stack([maha(G1[0], H1, P1), maha(G1[1] @ B.T + b, H2, P2)])
    # Rounding bounds: layer 1 sums 3 products and a bias; layer 2 propagates
    # layer 1's error through |B| and adds its own (3 products and a bias).
    m1 = lambda Z: np.abs(Z) @ np.abs(A).T + np.abs(a)  # noqa: E731
    m2 = lambda Z: m1(Z) @ np.abs(B).T + np.abs(b)  # noqa: E731
    atol = [
        _dist_atol(4 * EPS32, m1(X), m1(Xh[0]), H1 - H1.mean(0), G1[0], H1.mean(0), P1),
        _dist_atol(
            8 * EPS32,
            m2(X),
            m2(Xh[1]),
            H2 - H2.mean(0),
            G1[1] @ B.T + b,
            H2.mean(0),
            P2,
        ),
    ]
    L = det.layer_scores(X_test)
    for k in range(2):
        np.testing.assert_allclose(L[:, k], S[:, k], rtol=0, atol=atol[k])
    # combine: the mean of the layer scores standardised by the out-of-fold
    # layer statistics (exact arithmetic on the returned layer scores)
    ens_ = det.detector_
    expected = ((L - ens_.layer_mean_) / ens_.layer_scale_).mean(1)
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-12)


def test_image_preprocessing_divides_by_channel_std():
    rng = np.random.RandomState(3)
    conv = nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(rng.normal(size=(2, 2, 1, 1))))
        conv.bias.copy_(torch.from_numpy(rng.normal(size=2)))
    net = nn.Sequential(conv)
    mean, std = [0.4, 0.6], [0.25, 0.5]
    ext = TorchFeatureExtractor(net, layers=["0"], mean=mean, std=std, device="cpu")
    X = rng.uniform(size=(40, 2, 4, 4)).astype(np.float32)
    X[:, 0] *= rng.uniform(0.2, 1.0, size=(40, 1, 1))
    det = InputPreprocessingDetector(ext, MahalanobisDetector(), epsilon=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 32 out-of-fold scores for 2.5%
        det.fit(torch.from_numpy(X))

    Wc = conv.weight.detach().double().numpy()[:, :, 0, 0]
    bc = conv.bias.detach().double().numpy()
    m, s = np.array(mean)[None, :, None, None], np.array(std)[None, :, None, None]

    def features(Xn):
        return Xn.mean(axis=(2, 3)) @ Wc.T + bc

    F = features((X - m) / s)
    P = np.linalg.inv(np.cov(F.T, bias=True))
    X_test = torch.from_numpy(rng.uniform(size=(5, 2, 4, 4)).astype(np.float32))
    Xn = (X_test.numpy().astype(np.float64) - m) / s
    g_channel = (features(Xn) - F.mean(0)) @ P @ Wc / 16.0  # per pixel of channel
    expected = Xn - 0.01 * _sign_prime(g_channel)[:, :, None, None] / s
    # The normalisation (x - mean) / std rounds twice more before the step.
    atol = 3 * _step_atol(expected, 0.01, std)
    np.testing.assert_allclose(det.perturb(X_test)[0], expected, rtol=0, atol=atol)


class _TinyClassifier(nn.Module):
    """A classifier layout (conv -> global pool -> flatten -> fc): the default
    features are the input of ``fc``, the pooled penultimate features."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.RandomState(seed)
        self.conv = nn.Conv2d(2, 2, 1)  # 2 -> 2: a non-singular covariance
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape))))

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.conv(x))))


def test_classifier_layout_differentiates_the_penultimate_features():
    # The gradient path must use the features transform returns (the input of
    # fc, 2 wide), not the logits (5 wide).
    rng = np.random.RandomState(7)
    net = _TinyClassifier(seed=1)
    mean, std = [0.5, 0.5], [0.25, 0.5]
    ext = TorchFeatureExtractor(net, image_size=None, mean=mean, std=std, device="cpu")
    X = rng.uniform(size=(60, 2, 4, 4)).astype(np.float32)
    det = InputPreprocessingDetector(ext, MahalanobisDetector(), epsilon=0.02)
    det.fit(torch.from_numpy(X))  # a tensor: (N, C, H, W)
    assert det.extractor_.n_features_out_ == 2
    assert det.detector_.n_features_in_ == 2

    Wc = net.conv.weight.detach().double().numpy()[:, :, 0, 0]
    bc = net.conv.bias.detach().double().numpy()
    m, s = np.array(mean)[None, :, None, None], np.array(std)[None, :, None, None]

    def features(Xn):
        return Xn.mean(axis=(2, 3)) @ Wc.T + bc

    F = features((X - m) / s)
    P = np.linalg.inv(np.cov(F.T, bias=True))
    X_test = torch.from_numpy(rng.uniform(size=(6, 2, 4, 4)).astype(np.float32))
    Xn = (X_test.numpy().astype(np.float64) - m) / s
    g_channel = (features(Xn) - F.mean(0)) @ P @ Wc / 16.0
    expected = Xn - 0.02 * _sign_prime(g_channel)[:, :, None, None] / s
    atol = 3 * _step_atol(expected, 0.02, std)
    np.testing.assert_allclose(det.perturb(X_test)[0], expected, rtol=0, atol=atol)
    # epsilon = 0: exactly the detector on transform's (penultimate) features
    plain = InputPreprocessingDetector(ext, MahalanobisDetector())
    plain.fit(torch.from_numpy(X))
    np.testing.assert_array_equal(
        plain.score_samples(X_test),
        plain.detector_.score_samples(plain.extractor_.transform(X_test)),
    )


def test_differentiable_path_matches_extractor_transform():
    # uint8 grey images, replicated to 3 channels, resized, cropped and
    # normalised; two hooked layers. A step of 1e-12 leaves the float32 inputs
    # (normalised pixels of size ~1) unchanged, so the gradient path must
    # reproduce the plain features.
    rng = np.random.RandomState(4)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2), nn.ReLU()
    )
    ext = TorchFeatureExtractor(
        net,
        layers=["1", "3"],
        image_size=12,
        crop_pct=0.875,
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.3, 0.25],
        pooling="avgmax",
        device="cpu",
    )
    X = rng.randint(1, 256, size=(80, 10, 10)).astype(np.uint8)
    ens = LayerEnsembleDetector(MahalanobisDetector(), random_state=0)
    tiny = InputPreprocessingDetector(ext, ens, epsilon=1e-12).fit(X)
    plain = InputPreprocessingDetector(ext, ens, epsilon=0.0).fit(X)
    X_test = rng.randint(1, 256, size=(7, 10, 10)).astype(np.uint8)
    F = plain.extractor_.transform(X_test)
    expected = plain.detector_.layer_scores(F)
    np.testing.assert_array_equal(plain.layer_scores(X_test), expected)
    # forward_features (autograd, contiguous) vs transform (inference mode,
    # channels-last): the same float32 operations in other kernels, each
    # feature within TOL = 8 * K * eps32 relative (K = 4 * 27 + 5 * 36 + ...,
    # the longest dot product: 147 terms, as in test_feature_extraction).
    TOL = 8 * 147 * EPS32
    for k, (det, cols) in enumerate(
        zip(plain.detector_.detectors_, plain.detector_.layer_columns_.values())
    ):
        f = F[:, cols].astype(np.float64)
        W = det.whitening_.astype(np.float64)
        r = np.linalg.norm((f - det.means_[0]) @ W, axis=1)
        dz = np.linalg.norm(W, 2) * TOL * (np.linalg.norm(f, axis=1) + 1)
        atol = np.max(2 * r * dz + dz**2)  # |d |z|^2| <= 2 |z| |dz| + |dz|^2
        np.testing.assert_allclose(
            tiny.layer_scores(X_test)[:, k], expected[:, k], rtol=0, atol=atol
        )
    assert tiny.perturb(X_test).shape == (2, 7, 3, 12, 12)


def test_epsilon_zero_equals_plain_detector_and_oof_offset():
    X, y = _data(seed=4)
    lin = _linear(3, 5, seed=7)
    ext = TorchFeatureExtractor(lin, device="cpu")
    det = InputPreprocessingDetector(
        ext, MahalanobisDetector(mode="tied"), epsilon=0.0, random_state=0
    ).fit(X, y)
    F = ext.fit(X).transform(X)
    plain = MahalanobisDetector(mode="tied").fit(F, y)
    X_test = np.random.RandomState(0).normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        det.score_samples(X_test), plain.score_samples(ext.transform(X_test))
    )
    # offset_: 2.5th percentile of out-of-fold scores (stratified 5 folds)
    oof = np.empty(len(X))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        oof[te] = (
            MahalanobisDetector(mode="tied").fit(F[tr], y[tr]).score_samples(F[te])
        )
    np.testing.assert_array_equal(det.calibration_scores_, oof)
    assert det.offset_ == conformal_threshold(oof, 0.025)
    assert np.array_equal(
        det.predict(X_test), np.where(det.score_samples(X_test) >= det.offset_, 1, -1)
    )


def test_outlier_rows_train_the_combiner_with_and_without_class_labels():
    # -1 rows only train the ensemble's combiner; without class labels the
    # in-distribution rows form one class, as for the ensemble on its own.
    X, y = _data(seed=10)
    X_ood = np.random.RandomState(3).normal(4.0, size=(20, 3)).astype(np.float32)
    lin = _linear(3, 3, seed=2)
    net = nn.Sequential(lin, nn.Tanh())
    ext = TorchFeatureExtractor(net, layers=["0", "1"], device="cpu")
    X_all = np.r_[X, X_ood]
    for labels in (y, np.zeros(len(X), int)):
        y_all = np.r_[labels, -np.ones(20, int)]
        ens = LayerEnsembleDetector(
            MahalanobisDetector(), combiner="nonnegative_logistic", random_state=0
        )
        det = InputPreprocessingDetector(ext, ens).fit(X_all, y_all)
        F_all = ext.fit(X).transform(X_all)
        groups = det.extractor_.feature_groups_
        ref = LayerEnsembleDetector(
            MahalanobisDetector(),
            feature_groups=groups,
            combiner="nonnegative_logistic",
            random_state=0,
        ).fit(F_all, y_all)
        np.testing.assert_array_equal(det.calibration_scores_, ref.calibration_scores_)
        np.testing.assert_array_equal(
            det.score_samples(X_all[::7]), ref.score_samples(F_all[::7])
        )
    # y=None with -1 rows cannot be given; without -1 rows, y=None is one class
    none = InputPreprocessingDetector(
        ext, LayerEnsembleDetector(MahalanobisDetector(), random_state=0)
    ).fit(X)
    zeros = InputPreprocessingDetector(
        ext, LayerEnsembleDetector(MahalanobisDetector(), random_state=0)
    ).fit(X, np.zeros(len(X), int))
    np.testing.assert_array_equal(none.calibration_scores_, zeros.calibration_scores_)


def test_several_detectors_per_layer_each_move_the_input_their_way():
    X, _ = _data(seed=11)
    lin = _linear(3, 4, seed=12)
    ext = TorchFeatureExtractor(lin, device="cpu")
    maha, knn = MahalanobisDetector(), KNNDetector(n_neighbors=3, metric="cosine")
    both = InputPreprocessingDetector(
        ext, LayerEnsembleDetector([maha, knn], random_state=0), epsilon=0.03
    ).fit(X)
    assert list(both.detector_.layer_columns_) == ["output[0]", "output[1]"]
    X_test = np.random.RandomState(1).normal(size=(6, 3)).astype(np.float32)
    moved = both.perturb(X_test)
    for k, single in enumerate((maha, knn)):
        one = InputPreprocessingDetector(ext, single, epsilon=0.03).fit(X)
        np.testing.assert_array_equal(moved[k], one.perturb(X_test)[0])
        np.testing.assert_array_equal(
            both.layer_scores(X_test)[:, k], one.score_samples(X_test)
        )
    with pytest.raises(ValueError, match="cv='calibration'"):
        InputPreprocessingDetector(
            ext, LayerEnsembleDetector([maha, knn], cv="calibration")
        ).fit(X)


def test_extractor_and_network_not_modified():
    X, y = _data(seed=5)
    lin = _linear(3, 4, seed=8)
    state = copy.deepcopy(lin.state_dict())
    ext = TorchFeatureExtractor(lin, device="cpu")
    det = InputPreprocessingDetector(ext, epsilon=0.1).fit(X, y)
    det.score_samples(X[:5])
    assert not hasattr(ext, "module_")
    for k, v in lin.state_dict().items():
        assert torch.equal(v, state[k])
    assert all(p.grad is None for p in det.extractor_.module_.parameters())
    assert not det.extractor_.module_.training


def test_grid_search_over_epsilon_matches_manual_loop():
    X, y = _data(seed=6, n=90)
    rng = np.random.RandomState(0)
    X_ood = (rng.normal(size=(30, 3)) * 0.7 + [0.0, 0.0, 3.5]).astype(np.float32)
    X_all = np.r_[X, X_ood]
    y_all = np.r_[y, -np.ones(30, int)]
    fold = np.full(len(X_all), -1)
    fold[::3] = 0  # a third of the rows validate, the rest train
    lin = _linear(3, 4, seed=9)
    est = InputPreprocessingDetector(
        TorchFeatureExtractor(lin, device="cpu"),
        MahalanobisDetector(mode="tied"),
        random_state=0,
    )
    grid = [0.0, 0.05, 0.2, 0.5]
    search = GridSearchCV(
        est, {"epsilon": grid}, scoring=auroc_scorer, cv=PredefinedSplit(fold)
    ).fit(X_all, y_all)
    tr, va = fold == -1, fold == 0
    manual = []
    for eps in grid:
        fitted = copy.deepcopy(est).set_params(epsilon=eps).fit(X_all[tr], y_all[tr])
        manual.append(auroc(y_all[va] != -1, fitted.score_samples(X_all[va])))
    assert search.best_params_ == {"epsilon": grid[int(np.argmax(manual))]}
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], manual)


def test_unsupported_detectors_and_extractors_raise():
    X, _ = _data()
    ext = TorchFeatureExtractor(nn.Identity(), device="cpu")
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(TypeError, match=r"'detector'.*score_samples_torch"):
        InputPreprocessingDetector(ext, IsolationForest()).fit(X)
    with pytest.raises(TypeError, match="per-layer detectors of the 'detector'"):
        InputPreprocessingDetector(ext, LayerEnsembleDetector(IsolationForest())).fit(X)
    with pytest.raises(TypeError, match="network_input or forward_features"):
        InputPreprocessingDetector(StandardScaler(), KNNDetector()).fit(X)
    with pytest.raises(ValueError, match="'epsilon' parameter"):
        InputPreprocessingDetector(ext, epsilon=-1.0).fit(X)
    det = InputPreprocessingDetector(ext, epsilon=0.1).fit(X)
    with pytest.raises(ValueError, match="expecting 3 features"):
        det.score_samples(np.zeros((2, 4), np.float32))


def test_kfold_splitter_is_honoured():
    X, _ = _data(seed=7)
    ext = TorchFeatureExtractor(nn.Identity(), device="cpu")
    cv = KFold(3)
    det = InputPreprocessingDetector(ext, KNNDetector(), cv=cv).fit(X)
    oof = np.empty(len(X))
    for tr, te in cv.split(X):
        oof[te] = KNNDetector().fit(X[tr]).score_samples(X[te])
    np.testing.assert_array_equal(det.calibration_scores_, oof)
    assert det.offset_ == conformal_threshold(oof, 0.025)


# ------------------------------------------- bad input (issue 12): clear errors
@pytest.mark.parametrize("epsilon", [0.0, 0.05])
def test_dataframe_feature_names_are_kept_and_checked(epsilon):
    pd = pytest.importorskip("pandas")
    X, _ = _data(seed=8)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    ext = TorchFeatureExtractor(nn.Identity(), device="cpu")
    det = InputPreprocessingDetector(ext, KNNDetector(), epsilon=epsilon).fit(df)
    ref = InputPreprocessingDetector(ext, KNNDetector(), epsilon=epsilon).fit(X)
    np.testing.assert_array_equal(det.feature_names_in_, ["a", "b", "c"])
    assert det.feature_names_in_.dtype == object and det.n_features_in_ == 3
    assert not hasattr(ref, "feature_names_in_")
    np.testing.assert_array_equal(det.score_samples(df), ref.score_samples(X))
    with pytest.raises(ValueError, match="must be in the same order"):
        det.score_samples(df[["c", "b", "a"]])
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        det.score_samples(df.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="InputPreprocessingDetector was fitted with"):
        det.score_samples(X)
    with pytest.warns(UserWarning, match="InputPreprocessingDetector was fitted wit"):
        ref.score_samples(df)


@pytest.mark.parametrize("epsilon", [0.0, 0.05])
def test_same_validation_whatever_epsilon(epsilon):
    X, _ = _data(seed=9)
    ext = TorchFeatureExtractor(nn.Identity(), device="cpu")
    det = InputPreprocessingDetector(ext, KNNDetector(), epsilon=epsilon).fit(X)
    # a 3-D array whose trailing size is n_features: images, not vectors
    with pytest.raises(ValueError, match="fitted on vectors but X holds images"):
        det.score_samples(X[:8].reshape(4, 2, 3))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        det.score_samples(X[0])
    with pytest.raises(ValueError, match="0 sample"):
        det.score_samples(X[:0])
    # values float32 (the network's arithmetic) cannot hold: the range error
    with pytest.raises(ValueError, match=r"e\+150 in absolute value.*float32"):
        det.fit(X.astype(np.float64) * 1e150)
    with pytest.raises(ValueError, match=r"in absolute value.*float32"):
        det.score_samples(torch.full((2, 3), 1e300, dtype=torch.float64))
    with pytest.raises(TypeError, match="single path"):
        det.score_samples("images/")


@pytest.mark.parametrize("epsilon", [0.0, 0.05])
def test_images_errors_are_the_extractors(epsilon):
    rng = np.random.RandomState(2)
    conv = nn.Conv2d(1, 2, 5)
    net = nn.Sequential(conv, nn.ReLU())
    ext = TorchFeatureExtractor(net, layers=["1"], image_size=None, device="cpu")
    X = rng.randint(0, 256, size=(30, 8, 8)).astype(np.uint8)
    det = InputPreprocessingDetector(ext, MahalanobisDetector(), epsilon=epsilon)
    det.fit(X)
    # an empty batch of images: the extractor's message, not NumPy's
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        det.score_samples(X[:0])
    # images smaller than the receptive field: the layer and the size needed
    with pytest.raises(ValueError, match=r"too small for this layer.*at least 5 x 5"):
        det.score_samples(X[:3, :4, :4])
    with pytest.raises(ValueError, match="Images are expected, not a 2-D matrix"):
        det.score_samples(X[:3, 0, :])
