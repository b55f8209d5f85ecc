"""Tests of FGSM against the analytic cross-entropy gradient of linear networks.

For a linear classifier ``z = A x + b`` the gradient of the cross-entropy with
respect to the input is ``(softmax(z) - onehot(y)) A``, computed here in NumPy.
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_ood.adversarial import fgsm


def _sign_prime(g):
    return np.where(g >= 0, 1.0, -1.0)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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


def test_fgsm_matches_analytic_cross_entropy_gradient():
    rng = np.random.RandomState(0)
    n, C, H, W, K = 7, 2, 3, 3, 4
    net = nn.Sequential(nn.Flatten(), _linear(C * H * W, K, seed=1))
    with torch.no_grad():  # a zero column: exactly-zero gradient -> +1
        net[1].weight[:, 5] = 0.0
    X = rng.normal(size=(n, C, H, W)).astype(np.float32)
    y = rng.randint(0, K, n)
    std = [0.5, 2.0]
    out = fgsm(net, X, y, 0.03, std=std, batch_size=3)

    A, b = _numpy_params(net[1])
    Z = X.reshape(n, -1).astype(np.float64) @ A.T + b
    G = (_softmax(Z) - np.eye(K)[y]) @ A  # d CE / d x
    G = G.reshape(n, C, H, W)
    assert np.all(G.reshape(n, -1)[:, 5] == 0)
    expected = X + 0.03 * _sign_prime(G) / np.array(std)[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert out.dtype == np.float32
    # the zero-gradient pixel moved up, by eps / std of its channel (0)
    np.testing.assert_allclose(
        out.reshape(n, -1)[:, 5] - X.reshape(n, -1)[:, 5], 0.03 / 0.5, atol=1e-6
    )


def test_fgsm_clip_tuple_output_and_model_untouched():
    rng = np.random.RandomState(1)
    lin = _linear(5, 3, seed=2)

    class TwoOutputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return x, self.drop(self.lin(x))  # (features, logits)

    net = TwoOutputs().train()
    state = copy.deepcopy(net.state_dict())
    X = rng.uniform(size=(20, 5)).astype(np.float32)
    y = rng.randint(0, 3, 20)
    out = fgsm(net, X, y, 0.5, clip=(0.0, 1.0))
    A, b = _numpy_params(lin)
    G = (_softmax(X.astype(np.float64) @ A.T + b) - np.eye(3)[y]) @ A
    expected = np.clip(X + 0.5 * _sign_prime(G), 0.0, 1.0)
    # eval mode inside fgsm: dropout off, so the gradient is the analytic one
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert net.training and net.drop.training  # modes restored
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])
    # batch size does not matter
    np.testing.assert_array_equal(out, fgsm(net, X, y, 0.5, clip=(0, 1), batch_size=7))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": -0.1}, "'eps' parameter"),
        ({"std": [1.0, 2.0, 3.0]}, "'std' parameter"),
        ({"std": 0.0}, "'std' parameter"),
        ({"clip": (1.0, 0.0)}, "'clip' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"y": [0, 1]}, "same length"),
        ({"y": [0, 0, 9]}, "class indices"),
    ],
)
def test_fgsm_errors(kwargs, match):
    args = {"X": np.zeros((3, 2), np.float32), "y": [0, 1, 0], "eps": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fgsm(nn.Linear(2, 2), **args)


def test_fgsm_needs_a_module():
    with pytest.raises(TypeError, match="'model' parameter of fgsm"):
        fgsm(lambda x: x, np.zeros((3, 2)), [0, 1, 0], 0.1)
