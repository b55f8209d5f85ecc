"""Gradient-sign steps on network input, shared by FGSM and input pre-processing.

Lee et al. (2018) move network inputs by ``epsilon * sign'(gradient) / std``
in two places: the fast gradient sign method that makes adversarial samples
(:func:`sklearn_ood.adversarial.fgsm`, up the cross-entropy) and the input
pre-processing of :class:`sklearn_ood.InputPreprocessingDetector` (down the
distance to the training features). Both use the helpers here:

- :func:`sign_prime`: Lee et al.'s sign, ``+1`` for a gradient ``>= 0`` (zero
  included, as ``torch.ge(grad, 0)`` in their code), ``-1`` otherwise;
- :func:`channel_view`: per-channel values (the normalisation std) shaped to
  broadcast over axis 1 of a batch;
- :func:`eval_mode`: a network in evaluation mode for the duration of a block,
  each module's own flag restored afterwards.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["channel_view", "eval_mode", "sign_prime"]


def sign_prime(grad: torch.Tensor) -> torch.Tensor:
    """Lee et al.'s sign: ``+1`` where ``grad >= 0`` (zero included), ``-1`` elsewhere.

    Parameters
    ----------
    grad : torch.Tensor
        A gradient.

    Returns
    -------
    sign : torch.Tensor
        Of ``grad``'s shape, dtype and device.
    """
    return torch.where(grad >= 0, 1.0, -1.0).to(grad.dtype)


def channel_view(values, ndim: int, like: torch.Tensor) -> torch.Tensor:
    """Per-channel ``values`` as a tensor of shape ``(1, C, 1, ...)`` of ``ndim`` axes.

    Parameters
    ----------
    values : float or array-like of shape (C,)
        One value, or one value per channel (axis 1 of the batch).
    ndim : int
        Number of axes of the batch the result broadcasts over.
    like : torch.Tensor
        Gives the dtype and device.

    Returns
    -------
    view : torch.Tensor
        ``values`` on ``like``'s device, in its dtype.
    """
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1)
    return t.view(1, -1, *([1] * (ndim - 2)))


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in evaluation mode, restoring each module's flag afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Yields
    ------
    model : torch.nn.Module
        The same network, in evaluation mode.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.train(flag)
