"""Tests for sklearn_ood.nn._losses against hand / NumPy computations."""

import numpy as np
import pytest
import torch

from sklearn_ood.nn._losses import CenterLoss, ContrastiveLoss


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _center_setup(rng, n=9, d=4, k=3):
    x = rng.standard_normal((n, d))
    y = np.array([0, 2, -1, 0, 1, 2, 2, -1, 0])[:n]
    centers = rng.standard_normal((k, d)).astype(np.float32)
    loss_fn = CenterLoss(k, d)
    loss_fn.centers.copy_(torch.from_numpy(centers))
    return loss_fn, x, y, centers.astype(np.float64)


# ---------------------------------------------------------------- center loss
def test_center_loss_hand_computed_case():
    loss_fn = CenterLoss(num_classes=2, feature_dim=2)
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0, 1])
    # Centers start at zero: 1/2 * (1 + 9 + 4).
    assert loss_fn(x, y).item() == 7.0
    loss_fn.update_centers(x, y)
    # Class 0: delta = (2*0 - (4, 0)) / 3; c <- 0 - 0.5*delta = (2/3, 0).
    # Class 1: delta = (0 - (0, 2)) / 2; c <- (0, 0.5).
    expected = torch.tensor([[2 / 3, 0.0], [0.0, 0.5]])
    torch.testing.assert_close(loss_fn.centers, expected)


def test_center_loss_value_and_gradient_vs_numpy(rng):
    loss_fn, x, y, c = _center_setup(rng)
    keep = y >= 0
    diff = x[keep] - c[y[keep]]
    expected_loss = 0.5 * np.sum(diff**2)
    expected_grad = np.zeros_like(x)
    expected_grad[keep] = diff  # d/dx_i of 1/2 ||x_i - c||^2
    xt = torch.tensor(x, requires_grad=True)
    loss = loss_fn(xt, torch.from_numpy(y))
    assert loss.dtype == torch.float64
    np.testing.assert_allclose(loss.item(), expected_loss, rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), expected_grad, rtol=1e-12)
    # Centers are a buffer: no gradient, no parameter.
    assert list(loss_fn.parameters()) == []
    assert "centers" in loss_fn.state_dict()


def test_center_loss_mean_reduction(rng):
    loss_fn, x, y, c = _center_setup(rng)
    keep = y >= 0
    expected = 0.5 * np.sum((x[keep] - c[y[keep]]) ** 2) / keep.sum()
    mean_fn = CenterLoss(3, 4, reduction="mean")
    mean_fn.load_state_dict(loss_fn.state_dict())
    got = mean_fn(torch.from_numpy(x), torch.from_numpy(y)).item()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_center_update_vs_loop(rng):
    loss_fn, x, y, c = _center_setup(rng)
    alpha = 0.3
    loss_fn.alpha = alpha
    expected = c.copy()
    for j in range(3):
        members = x[y == j]
        delta = np.sum(c[j] - members, axis=0) / (1 + len(members))
        expected[j] = c[j] - alpha * delta
    xt = torch.tensor(x, requires_grad=True)
    loss_fn.update_centers(xt, torch.from_numpy(y))
    np.testing.assert_allclose(loss_fn.centers.numpy(), expected, rtol=1e-5)
    assert loss_fn.centers.dtype == torch.float32
    assert xt.grad is None and not loss_fn.centers.requires_grad


def test_center_update_leaves_absent_classes(rng):
    loss_fn = CenterLoss(4, 2)
    start = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    loss_fn.centers.copy_(start)
    loss_fn.update_centers(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    # Class 1: delta = (2, 2) / 2 = (1, 1), c <- (2, 2) - 0.5 = (1.5, 1.5).
    expected = start.clone()
    expected[1] = 1.5
    torch.testing.assert_close(loss_fn.centers, expected)


def test_minus_one_labels_are_ignored(rng):
    loss_fn, x, y, _ = _center_setup(rng)
    keep = y >= 0
    with_ood = loss_fn(torch.from_numpy(x), torch.from_numpy(y))
    without = loss_fn(torch.from_numpy(x[keep]), torch.from_numpy(y[keep]))
    assert with_ood.item() == without.item()
    a = CenterLoss(3, 4)
    b = CenterLoss(3, 4)
    a.update_centers(torch.from_numpy(x), torch.from_numpy(y))
    b.update_centers(torch.from_numpy(x[keep]), torch.from_numpy(y[keep]))
    assert torch.equal(a.centers, b.centers)


def test_all_ignored_gives_zero_loss_with_zero_gradient():
    loss_fn = CenterLoss(2, 3)
    x = torch.ones(4, 3, requires_grad=True)
    loss = loss_fn(x, torch.full((4,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros(4, 3))
    loss_fn.update_centers(x, torch.full((4,), -1))
    assert torch.equal(loss_fn.centers, torch.zeros(2, 3))


def test_forward_does_not_move_centers_and_alpha_zero_freezes(rng):
    loss_fn, x, y, c = _center_setup(rng)
    loss_fn(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_array_equal(loss_fn.centers.numpy(), c.astype(np.float32))
    frozen = CenterLoss(3, 4, alpha=0.0)
    frozen.update_centers(torch.from_numpy(x), torch.from_numpy(y))
    assert torch.equal(frozen.centers, torch.zeros(3, 4))


def test_centers_init_to_zero_and_follow_to():
    loss_fn = CenterLoss(5, 7)
    assert torch.equal(loss_fn.centers, torch.zeros(5, 7))
    assert loss_fn.to(torch.float64).centers.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0, "feature_dim": 2}, "num_classes"),
        ({"num_classes": 2, "feature_dim": 2.0}, "feature_dim"),
        ({"num_classes": 2, "feature_dim": 2, "alpha": 1.5}, "alpha"),
        ({"num_classes": 2, "feature_dim": 2, "reduction": "none"}, "reduction"),
    ],
)
def test_center_loss_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CenterLoss(**kwargs)


def test_center_loss_bad_inputs():
    loss_fn = CenterLoss(2, 3)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        loss_fn(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        loss_fn.update_centers(x, torch.tensor([-2, 0]))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        loss_fn(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        loss_fn(x, torch.tensor([0]))
    with pytest.raises(TypeError, match="integer"):
        loss_fn(x, torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------- contrastive loss
def _pairs(rng, n=8, d=5):
    e1 = rng.standard_normal((n, d)) * 3
    e2 = rng.standard_normal((n, d)) * 3
    e2[0] = e1[0]  # a zero-distance similar pair
    e2[1] = e1[1]  # a zero-distance dissimilar pair
    same = np.array([1, 0, 1, 0, 1, 0, 0, 0], dtype=bool)[:n]
    return e1, e2, same


@pytest.mark.parametrize("squared", [False, True])
def test_contrastive_loss_vs_numpy(rng, squared):
    e1, e2, same = _pairs(rng)
    m, eps = 6.0, 1e-12
    sq = np.sum((e1 - e2) ** 2, axis=1)
    d = np.sqrt(sq + eps)
    hinge = np.maximum(0.0, m - d)
    s = same.astype(float)
    if squared:
        expected = 0.5 * np.mean(s * sq + (1 - s) * hinge**2)
    else:
        expected = 0.5 * np.mean(s * d + (1 - s) * hinge)
    loss = ContrastiveLoss(m, squared=squared)(
        torch.from_numpy(e1), torch.from_numpy(e2), torch.from_numpy(same)
    )
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    # Float flags give the same value as bool flags.
    loss_f = ContrastiveLoss(m, squared=squared)(
        torch.from_numpy(e1), torch.from_numpy(e2), torch.from_numpy(s)
    )
    assert loss_f.item() == loss.item()


def test_contrastive_default_is_linear_with_margin_10():
    loss_fn = ContrastiveLoss()
    assert loss_fn.margin == 10.0 and loss_fn.squared is False
    e1 = torch.zeros(2, 2, dtype=torch.float64)
    e2 = torch.tensor([[3.0, 4.0], [6.0, 8.0]], dtype=torch.float64)
    same = torch.tensor([False, False])
    # d = 5 and 10: 0.5 * mean(5, 0) = 1.25 (the second pair is at the margin).
    np.testing.assert_allclose(loss_fn(e1, e2, same).item(), 1.25, rtol=1e-12)


@pytest.mark.parametrize("squared", [False, True])
def test_contrastive_gradient_finite_at_zero_distance(squared):
    e1 = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    e2 = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    loss = ContrastiveLoss(squared=squared)(e1, e2, torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(e1.grad).all() and torch.isfinite(e2.grad).all()
    # By symmetry (d depends on e1 - e2 only) the gradient at e1 == e2 is zero.
    assert torch.equal(e1.grad, torch.zeros(2, 3, dtype=torch.float64))


def test_contrastive_without_eps_reproduces_the_unguarded_nan():
    e1 = torch.ones(1, 3, dtype=torch.float64, requires_grad=True)
    e2 = torch.ones(1, 3, dtype=torch.float64)
    ContrastiveLoss(eps=0.0)(e1, e2, torch.tensor([1])).backward()
    assert torch.isnan(e1.grad).all()


@pytest.mark.parametrize("squared", [False, True])
def test_contrastive_gradient_vs_closed_form(rng, squared):
    e1, e2, same = _pairs(rng)
    e1[1] += 0.5  # keep away from the zero-distance kink for this check
    m = 6.0
    n = len(same)
    diff = e1 - e2
    d = np.sqrt(np.sum(diff**2, axis=1) + 1e-12)
    s = same.astype(float)[:, None]
    unit = diff / d[:, None]
    active = (m - d > 0).astype(float)[:, None]
    if squared:
        g = s * 2 * diff - (1 - s) * active * 2 * (m - d)[:, None] * unit
    else:
        g = s * unit - (1 - s) * active * unit
    expected = 0.5 * g / n
    e1_t = torch.tensor(e1, requires_grad=True)
    ContrastiveLoss(m, squared=squared)(
        e1_t, torch.from_numpy(e2), torch.from_numpy(same)
    ).backward()
    np.testing.assert_allclose(e1_t.grad.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_contrastive_bad_inputs_and_parameters():
    loss_fn = ContrastiveLoss()
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="at least one pair"):
        loss_fn(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        loss_fn(np.zeros((2, 3)), torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(0.0)
    with pytest.raises(ValueError, match="eps"):
        ContrastiveLoss(eps=-1.0)
    with pytest.raises(ValueError, match="squared"):
        ContrastiveLoss(squared=1)
