"""Adversarial samples: the fast gradient sign method (FGSM).

Lee et al. (2018) tune their feature ensemble on FGSM images of
in-distribution samples when no real out-of-distribution sample is at hand
("validation on adversarial samples"): :func:`fgsm` makes those images for any
torch classifier. Use them as the ``y == -1`` rows of
:class:`~sklearn_ood.LayerEnsembleDetector`, preferably with
``combiner="nonnegative_logistic"``: adversarial images are only a proxy for
real OOD samples, and an unconstrained combiner may learn a negative weight
for a layer that separates them the wrong way.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_array, column_or_1d
from sklearn.utils._param_validation import Interval, validate_params
from torch import nn

# The sign and evaluation-mode helpers are shared with the input
# pre-processing of Lee et al., which moves inputs the same way.
from .nn._gradients import channel_view, eval_mode, sign_prime

__all__ = ["fgsm"]


@validate_params(
    {
        "model": [nn.Module],
        "X": ["array-like"],
        "y": ["array-like"],
        "eps": [Interval(Real, 0, None, closed="left")],
        "std": [Interval(Real, 0, None, closed="neither"), "array-like", None],
        "clip": [tuple, list, None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def fgsm(
    model: nn.Module,
    X,
    y,
    eps: float,
    *,
    std: float | Any | None = None,
    clip: tuple[float, float] | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Fast gradient sign method adversarial samples (Goodfellow et al.).

    ``x_adv = x + eps * sign'(grad_x CE(model(x), y)) / std``, clamped to
    ``clip``, as in Lee et al.'s ``ADV_Samples.py``: the cross-entropy of the
    true labels, ``sign'`` mapping a gradient ``>= 0`` (zero included) to
    ``+1`` and a negative one to ``-1``, and the step divided per channel by
    the normalisation std so that ``eps`` is in pixel units.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier taking ``X`` (the network input, already normalised if
        the network expects it) and returning logits, or a tuple/list whose
        last element is the logits (e.g. :class:`~sklearn_ood.nn.LeNet`'s
        ``(features, logits)``). It runs in evaluation mode (its modes are
        restored afterwards) on the device of its parameters; its parameters
        and their gradients are left unchanged.
    X : array-like or torch.Tensor of shape (n_samples, n_channels, ...)
        Network inputs, e.g. ``(N, C, H, W)`` images or ``(N, D)`` vectors.
    y : array-like of shape (n_samples,)
        True class indices in ``[0, n_classes)``.
    eps : float
        Step size (>= 0), in the units of ``X * std``.
    std : float, array-like of shape (n_channels,) or None, default=None
        Per-channel normalisation std (axis 1 of ``X``); None means 1.
    clip : (float, float) or None, default=None
        Clamp the result to ``[clip[0], clip[1]]`` (in network-input units).
        Lee et al. clamp to the normalised image range; None does not clamp.
    batch_size : int, default=128
        Samples per forward pass; the result does not depend on it (the loss
        is summed over a batch, so each sample's gradient is its own).

    Returns
    -------
    X_adv : ndarray of the shape of ``X``, dtype float32
        The adversarial samples.

    References
    ----------
    .. [1] I. Goodfellow, J. Shlens, C. Szegedy. "Explaining and Harnessing
       Adversarial Examples". ICLR 2015.
    .. [2] K. Lee, K. Lee, H. Lee, J. Shin. "A Simple Unified Framework for
       Detecting Out-of-Distribution Samples and Adversarial Attacks".
       NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_ood.adversarial import fgsm
    >>> net = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ...     _ = net.bias.zero_()
    >>> fgsm(net, np.zeros((1, 2)), [0], eps=0.1)
    array([[-0.1,  0.1]], dtype=float32)
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = check_array(X, dtype=np.float32, allow_nd=True, ensure_min_features=1)
    y = column_or_1d(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y has {y.shape[0]} labels but X has {X.shape[0]} samples; they must "
            "have the same length."
        )
    if y.dtype.kind not in "iu":
        raise ValueError(
            f"y must hold integer class indices for fgsm; got dtype {y.dtype}."
        )
    std_values = np.ones(1) if std is None else np.asarray(std, dtype=np.float64)
    std_values = std_values.reshape(-1)
    if std_values.size not in (1, X.shape[1]) or not np.all(std_values > 0):
        raise ValueError(
            "The 'std' parameter of fgsm must be None, a positive float or one "
            f"positive value per channel ({X.shape[1]}). Got {std!r} instead."
        )
    if clip is not None:
        if len(clip) != 2 or not float(clip[0]) < float(clip[1]):
            raise ValueError(
                "The 'clip' parameter of fgsm must be None or a pair (low, high) "
                f"with low < high. Got {clip!r} instead."
            )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out = np.empty_like(X)
    with eval_mode(model), torch.enable_grad():
        for start in range(0, X.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            xb = torch.from_numpy(np.array(X[sl])).to(device).requires_grad_(True)
            yb = torch.as_tensor(y[sl], dtype=torch.long, device=device)
            output = model(xb)
            logits = output[-1] if isinstance(output, (tuple, list)) else output
            if yb.min() < 0 or yb.max() >= logits.shape[1]:
                raise ValueError(
                    f"y must hold class indices in [0, {logits.shape[1]}) for a "
                    f"model with {logits.shape[1]} outputs."
                )
            loss = F.cross_entropy(logits.float(), yb, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            step = sign_prime(grad) / channel_view(std_values, xb.ndim, grad)
            adv = xb.detach() + float(eps) * step
            if clip is not None:
                adv = adv.clamp(float(clip[0]), float(clip[1]))
            out[sl] = adv.cpu().numpy()
    return out
