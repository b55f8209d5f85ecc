"""TorchFeatureExtractor(tta="hflip"): features averaged over each image and its mirror.

Checked against explicit two-pass computations: a bare torch loop over the
network input and its mirror (bit-identical: the same operations in the same
order), the extractor without ``tta`` on the mirrored images (exact without a
resize, where the network input of the mirrored image is the mirror of the
network input; within a derived float32 bound with a symmetric resize and
crop), and the analytic gradient of a linear network, also through
InputPreprocessingDetector.
"""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_ood import (
    InputPreprocessingDetector,
    MahalanobisDetector,
    TorchFeatureExtractor,
)
from tests._torchvision_layouts import TimmLike, seeded

EPS32 = float(np.finfo(np.float32).eps)
CPU = {"device": "cpu"}
NO_PREP = {"image_size": None, "mean": None, "std": None}


def _rgb(n=6, size=12, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, size=(n, size, size, 3)).astype(np.uint8)


def _linear_net(in_channels, out_channels, seed):
    """conv -> global average pool -> flatten: features linear in the input."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        conv = nn.Conv2d(in_channels, out_channels, 3)
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_tta_is_bit_identical_to_a_bare_two_pass_loop():
    # The same operations in the same order as a plain inference loop over the
    # network input and its mirror (channels-last, inference mode, batches of 4;
    # n_threads=None: torch's own thread count, as in the bare loop).
    X = _rgb(n=10)
    ext = TorchFeatureExtractor(
        seeded(TimmLike), tta="hflip", batch_size=4, n_threads=None, **NO_PREP, **CPU
    ).fit(X)
    bare = seeded(TimmLike).to(memory_format=torch.channels_last)
    x = torch.from_numpy(X.astype(np.float32) / np.float32(255)).permute(0, 3, 1, 2)
    parts = []
    with torch.inference_mode():
        for start in range(0, 10, 4):
            views = []
            for xb in (x[start : start + 4], x[start : start + 4].flip(-1)):
                xb = xb.contiguous(memory_format=torch.channels_last)
                views.append(bare.forward_head(bare.forward_features(xb), True))
            parts.append((views[0] + views[1]) / 2)
    np.testing.assert_array_equal(ext.transform(X), torch.cat(parts).numpy())


def test_tta_equals_the_extractor_on_mirrored_images():
    # Without resizing, the network input of the mirrored image is exactly the
    # mirror of the network input (pixel-wise scaling and normalisation), so
    # the two computations are the same float32 operations.
    X = _rgb(n=5)
    net = seeded(TimmLike)
    kw = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25], "image_size": None}
    tta = TorchFeatureExtractor(net, tta="hflip", **kw, **CPU).fit(X)
    plain = TorchFeatureExtractor(net, **kw, **CPU).fit(X)
    mirrored = X[:, :, ::-1].copy()  # (N, H, W, C): the width axis
    expected = (plain.transform(X) + plain.transform(mirrored)) / np.float32(2)
    np.testing.assert_array_equal(tta.transform(X), expected)


def test_tta_with_a_symmetric_resize_and_crop():
    # 10-pixel grey images, image_size=12, crop_pct=0.75: resized to 16 (a
    # bilinear upsampling) and cropped 2 pixels on each side, a symmetric crop,
    # so the mirror of the network input is the network input of the mirror up
    # to rounding. A linear network (3x3 convolution, global mean) bounds the
    # difference: a resized pixel is two separable two-tap sums, computed in
    # another order for the mirror, each within 2 eps32 of the sum of |terms|
    # (Higham, eq. 3.5): |d pixel| <= 8 eps32 max|x| / min(std) after the
    # normalisation; a feature is K = 27 products plus a bias, averaged over P
    # positions, computed in another order too: 2 (K + 1 + P) eps32 (|w|_1
    # max|x_n| + |b|), plus |w|_1 |d pixel|.
    rng = np.random.RandomState(1)
    X = rng.randint(0, 256, size=(6, 10, 10)).astype(np.uint8)
    net = _linear_net(3, 4, seed=2)
    kw = {"image_size": 12, "crop_pct": 0.75, "interpolation": "bilinear"}
    kw |= {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    tta = TorchFeatureExtractor(net, tta="hflip", **kw, **CPU).fit(X)
    plain = TorchFeatureExtractor(net, **kw, **CPU).fit(X)
    assert tta.preprocessing_["load_size"] == (16, 16)

    def two_pass(mirrored):
        a = plain.transform(X).astype(np.float64)
        return (a + plain.transform(mirrored.copy()).astype(np.float64)) / 2

    conv = net[0]
    w1 = conv.weight.detach().double().abs().sum(dim=(1, 2, 3)).numpy()
    b = conv.bias.detach().double().abs().numpy()
    x_max = (1.0 + 0.5) / 0.25  # normalised pixels
    d_pixel = 8 * EPS32 * 1.0 / 0.25
    K, P = 27, 10 * 10
    bound = w1 * d_pixel + 2 * (K + 1 + P) * EPS32 * (w1 * x_max + b)
    F = tta.transform(X)
    assert np.all(np.abs(F - two_pass(X[:, :, ::-1])) <= bound)
    # the bound tells mirrors apart: the vertical mirror is far outside it
    assert np.any(np.abs(F - two_pass(X[:, ::-1, :])) > 10 * bound)


def test_forward_features_and_gradient_with_tta():
    # A linear network: d(sum_k f_k)/dx[c, i, j] is (1/P) sum_k of the kernel
    # weights covering (i, j) (test_feature_extraction_defaults); with tta it is
    # the mean of that gradient and of its mirror.
    X = np.random.RandomState(0).rand(2, 6, 6, 3).astype(np.float32)
    net = nn.Sequential(_linear_net(3, 2, seed=0)[0])
    conv = net[0]
    ext = TorchFeatureExtractor(
        net, layers=["0"], tta="hflip", mean=[0.5] * 3, std=[0.2, 0.25, 0.5], **CPU
    ).fit(X)
    w = conv.weight.detach().double().numpy()
    g = np.zeros((3, 6, 6))
    for i in range(4):
        for j in range(4):
            g[:, i : i + 3, j : j + 3] += w.sum(axis=0) / 16
    expected = (g + g[:, :, ::-1]) / 2
    # float32 accumulation of at most 2 * 9 * 16 terms of size |w| / 16 per
    # view (test_feature_extraction_defaults), for each of the two views.
    bound = 2 * (2 * 9 * 16) * EPS32 * np.abs(w).max()
    x = ext.network_input(X).requires_grad_(True)
    F = ext.forward_features(x)
    F.sum().backward()
    for grad in x.grad.double().numpy():
        np.testing.assert_allclose(grad, expected, rtol=0, atol=bound)
    # forward_features(network_input(X)) is transform(X): same operations,
    # other kernels (channels-last, inference mode); each feature is a sum of
    # 27 products averaged over 16 positions: (27 + 16) eps32 of |w|_1 max|x|.
    atol = 2 * (27 + 16) * EPS32 * (np.abs(w).sum() * 2.5 + 1)
    np.testing.assert_allclose(F.detach().numpy(), ext.transform(X), rtol=0, atol=atol)


def test_input_preprocessing_differentiates_both_views():
    # 1-channel 5x5 images, a 3x3 convolution and a global mean: the features
    # are f = J x + b with J[k] the kernel sums over the covering windows; with
    # tta, J is the mean of J and of its mirror. The Mahalanobis gradient is
    # (f - mu) P J (Lee's half squared distance; same sign), analytic here.
    rng = np.random.RandomState(3)
    X = rng.uniform(size=(60, 5, 5)).astype(np.float32)
    net = _linear_net(1, 2, seed=4)
    ext = TorchFeatureExtractor(net, tta="hflip", **NO_PREP, **CPU)
    det = InputPreprocessingDetector(ext, MahalanobisDetector(), epsilon=0.01)
    det.fit(X)
    w = net[0].weight.detach().double().numpy()[:, 0]
    b = net[0].bias.detach().double().numpy()
    J = np.zeros((2, 5, 5))
    for i in range(3):
        for j in range(3):
            J[:, i : i + 3, j : j + 3] += w / 9
    J = (J + J[:, :, ::-1]) / 2
    F = np.einsum("kij,nij->nk", J, X.astype(np.float64)) + b
    P = np.linalg.inv(np.cov(F.T, bias=True))
    X_test = rng.uniform(size=(4, 5, 5)).astype(np.float32)
    f = np.einsum("kij,nij->nk", J, X_test.astype(np.float64)) + b
    grad = np.einsum("nk,kl,lij->nij", f - F.mean(0), P, J)
    expected = X_test - 0.01 * np.where(grad >= 0, 1.0, -1.0)
    # one float32 rounding of the step (and of epsilon)
    atol = EPS32 * (np.abs(expected).max() + 0.01)
    moved = det.perturb(X_test)[0][:, 0]  # (N, 1, 5, 5) network input
    np.testing.assert_allclose(moved, expected, rtol=0, atol=atol)


def test_tta_parameter_validation_and_default():
    assert TorchFeatureExtractor("efficientnet_lite0").get_params()["tta"] is None
    X = np.random.RandomState(0).normal(size=(5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"'tta' parameter.*vectors"):
        TorchFeatureExtractor(nn.Tanh(), tta="hflip", **CPU).fit(X)
    with pytest.raises(ValueError, match="'tta' parameter"):
        TorchFeatureExtractor(nn.Tanh(), tta="vflip", **CPU).fit(X)
