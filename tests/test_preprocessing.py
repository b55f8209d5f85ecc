"""Tests of the gradient input pre-processing against analytic gradients.

The networks are linear (a ``Linear`` layer, a 1x1 convolution followed by
global average pooling), so the gradient of the
Mahalanobis / nearest-neighbour distances with respect to the input has a
closed form, computed here in NumPy from independently estimated statistics.
"""

import copy

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold, PredefinedSplit
from sklearn.neighbors import NearestNeighbors
from torch import nn

from sklearn_ood import KNNDetector, MahalanobisDetector, TorchFeatureExtractor
from sklearn_ood._ensemble import LayerEnsembleDetector
from sklearn_ood._preprocessing import InputPreprocessingDetector
from sklearn_ood.metrics import auroc, auroc_scorer
from tests._calibration import conformal_threshold


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
    np.testing.assert_allclose(det.perturb(X_test)[0], X_hat, atol=1e-6)

    F_hat = X_hat @ A.T + b
    diff = F_hat[:, None, :] - means[None]
    expected = -np.einsum("ncd,de,nce->nc", diff, P, diff).min(axis=1)
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-4)
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
    np.testing.assert_allclose(det.perturb(X_test)[0], X_hat, atol=1e-6)


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
    np.testing.assert_allclose(X_hat[0], X_test - 0.02 * _sign_prime(g1), atol=1e-6)
    np.testing.assert_allclose(X_hat[1], X_test - 0.02 * _sign_prime(g2), atol=1e-6)

    # per-layer scores of the moved inputs, combined by the fitted combiner
    def maha(Fh, Ftr, P):
        d = Fh - Ftr.mean(0)
        return -np.einsum("nd,de,ne->n", d, P, d)

    S = np.column_stack(
        [
            maha((X_hat[0] @ A.T + a), H1, P1),
            maha((X_hat[1] @ A.T + a) @ B.T + b, H2, P2),
        ]
    )
    np.testing.assert_allclose(det.layer_scores(X_test), S, rtol=1e-4)
    expected = ((S - det.detector_.layer_mean_) / det.detector_.layer_scale_).mean(1)
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-4)


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
    np.testing.assert_allclose(det.perturb(X_test)[0], expected, atol=1e-5)


def test_differentiable_path_matches_extractor_transform():
    # uint8 grey images, replicated to 3 channels, resized, cropped and
    # normalised; two hooked layers. A step of 1e-12 leaves float32 inputs
    # unchanged, so the gradient path must reproduce the plain features.
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
    np.testing.assert_allclose(plain.layer_scores(X_test), expected)
    np.testing.assert_allclose(tiny.layer_scores(X_test), expected, rtol=1e-4)
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
    from sklearn.model_selection import StratifiedKFold

    oof = np.empty(len(X))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        oof[te] = (
            MahalanobisDetector(mode="tied").fit(F[tr], y[tr]).score_samples(F[te])
        )
    assert det.offset_ == pytest.approx(conformal_threshold(oof, 0.025))
    assert np.array_equal(
        det.predict(X_test), np.where(det.score_samples(X_test) >= det.offset_, 1, -1)
    )


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
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], manual)


def test_unsupported_detectors_raise():
    X, _ = _data()
    ext = TorchFeatureExtractor(nn.Identity(), device="cpu")
    from sklearn.ensemble import IsolationForest

    with pytest.raises(TypeError, match="MahalanobisDetector, a KNNDetector"):
        InputPreprocessingDetector(ext, IsolationForest()).fit(X)
    with pytest.raises(TypeError, match="detector's detector"):
        InputPreprocessingDetector(ext, LayerEnsembleDetector(IsolationForest())).fit(X)
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
    assert det.offset_ == pytest.approx(conformal_threshold(oof, 0.025))
