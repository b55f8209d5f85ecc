"""Torch tensors as input of the 2-D feature detectors, without importing torch.

The feature detectors accept ``torch.Tensor`` input (on any device) next to
NumPy arrays. These helpers recognise a tensor without importing torch (so a
NumPy-only user never pays for it), copy one to NumPy, validate one as
:func:`sklearn.utils.validation.validate_data` validates an array, and cut
finite float32 row chunks for the torch scoring paths.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "TorchInput",
    "check_tensor",
    "is_tensor",
    "tensor_to_numpy",
    "torch_chunk",
]


class TorchInput(NamedTuple):
    """Validated input for a torch scoring path: the data and where to score it."""

    data: Any  # a torch.Tensor (any device) or a validated NumPy array
    device: Any  # torch.device


def is_tensor(X) -> bool:
    """Whether ``X`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(X)


def tensor_to_numpy(X):
    """The values of a tensor as a NumPy array on the CPU; anything else unchanged.

    A CPU tensor's array shares its memory (do not write to it); bfloat16,
    which NumPy lacks, becomes float32.
    """
    if is_tensor(X):
        X = X.detach().cpu()
        if X.dtype == sys.modules["torch"].bfloat16:
            X = X.float()
        return X.numpy()
    return X


def check_tensor(estimator, X):
    """Validate a 2-D tensor against a fitted estimator, as ``validate_data``."""
    name = type(estimator).__name__
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D tensor, got a {X.ndim}D tensor of shape "
            f"{tuple(X.shape)} instead."
        )
    if X.is_complex():
        raise TypeError(f"Complex data not supported; got a {X.dtype} tensor.")
    if X.shape[0] < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a "
            f"minimum of 1 is required by {name}."
        )
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    if hasattr(estimator, "feature_names_in_"):
        warnings.warn(
            f"X does not have valid feature names, but {name} was fitted with "
            "feature names",
            UserWarning,
            stacklevel=3,
        )
    return X.detach()


def torch_chunk(X, sl, device, dtype=None):
    """Rows ``sl`` of ``X`` (tensor or array) as a finite tensor on ``device``.

    ``dtype`` defaults to float32. Raises a ValueError naming the problem when
    the rows hold NaN or infinity, or values that overflow ``dtype``.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    xb = X[sl]
    xb = torch.from_numpy(np.ascontiguousarray(xb)) if not torch.is_tensor(xb) else xb
    xb = xb.detach().to(device=device, dtype=dtype)
    # As scikit-learn: a finite sum proves every entry finite without the
    # element-wise check's temporaries (a full-size copy in torch).
    if not bool(torch.isfinite(xb.sum())) and not bool(torch.isfinite(xb).all()):
        raise ValueError(
            f"Input X contains NaN or infinity (or a value too large for {dtype})."
        )
    return xb
