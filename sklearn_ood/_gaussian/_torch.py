"""Squared Mahalanobis distances with torch, on any device, and a differentiable score.

The products run in the input's precision: float32 for float32 input when the
model allows it (``float32_safe``: an eigenvalue ratio of at most 1e6), float64
otherwise. Rows are centred in
their own precision and expressed in the model's unit (a power of two) before
they are cast, so features far beyond float32's range (1e150 in float64) are
scored in float32 without overflow; a chunk whose float32 distances overflow is
recomputed in float64, and distances beyond float64 raise a ValueError.
"""

from __future__ import annotations

import numpy as np
import torch

from ..utils._chunking import _chunk_rows
from ..utils._tensors import torch_chunk
from ._distances import overflow_error
from ._model import GaussianModel

__all__ = ["score_torch", "squared_distances_torch"]


class _Arrays:
    """The model's arrays as tensors on one device and dtype (unit-scaled)."""

    def __init__(self, model: GaussianModel, device, dtype):
        u = model.unit
        full = model.chooses_by_full_distance
        W = (model.whitening if full else model.partial_whitening) * u
        self.dtype = dtype
        self.W = torch.as_tensor(W).to(device=device, dtype=dtype)
        self.means = torch.as_tensor(model.means).to(device)  # float64
        self.tied = W.ndim == 2 and model.n_classes > 1
        if self.tied:  # as the NumPy path: whiten around the centre of the means
            centre = model.means.mean(axis=0)
            self.centre = torch.as_tensor(centre).to(device)
            M = ((model.means - centre) / u) @ W.astype(np.float64)
            self.M = torch.as_tensor(M).to(device)
            self.M_sq = (self.M * self.M).sum(dim=1)


def _residual(xb, centre, unit, dtype):
    """``(xb - centre) / unit`` in ``dtype``, computed without overflow."""
    if xb.dtype == dtype == torch.float32 and unit == 1.0:
        return xb - centre.to(torch.float32)
    R = xb.to(torch.float64) - centre
    if unit != 1.0:
        R = R * (1.0 / unit)
    return R.to(dtype)


def _chunk(model: GaussianModel, a: _Arrays, xb):
    full = model.chooses_by_full_distance
    cols = model.components
    u = model.unit
    K = model.n_classes
    if a.W.ndim == 3:
        D = torch.empty((xb.shape[0], K), dtype=torch.float64, device=xb.device)
        D_full = torch.empty_like(D) if full else None
        for c in range(K):
            Z = _residual(xb, a.means[c], u, a.dtype) @ a.W[c]
            if full:
                D_full[:, c] = (Z * Z).sum(dim=1).double()
                Z = Z[:, cols]
            D[:, c] = (Z * Z).sum(dim=1).double()
        return D, D_full
    if not a.tied:
        Z = _residual(xb, a.means[0], u, a.dtype) @ a.W
        return (Z * Z).sum(dim=1).double()[:, None], None
    Z = (_residual(xb, a.centre, u, a.dtype) @ a.W).double()

    def expand(Z, M):
        return (
            (Z * Z).sum(dim=1)[:, None] - 2.0 * (Z @ M.T) + (M * M).sum(dim=1)
        ).clamp_min_(0.0)

    if full:
        return expand(Z[:, cols], a.M[:, cols]), expand(Z, a.M)
    return expand(Z, a.M), None


def _input_dtype(X):
    if torch.is_tensor(X):
        return torch.float64 if X.dtype == torch.float64 else torch.float32
    return torch.float64 if X.dtype == np.float64 else torch.float32


def _precision(model: GaussianModel, input_dtype):
    """:meth:`GaussianModel.product_dtype` as a torch dtype."""
    single = input_dtype == torch.float32
    product = model.product_dtype(np.float32 if single else np.float64)
    return torch.float32 if product == np.float32 else torch.float64


def squared_distances_torch(model: GaussianModel, X, device):
    """:func:`~sklearn_ood._gaussian._distances.squared_distances` with torch.

    ``X`` is a validated NumPy array or a 2-D tensor (any device); the
    distances come back as float64 NumPy arrays.
    """
    n, d = X.shape
    dtype = _precision(model, _input_dtype(X))
    arrays = {dtype: _Arrays(model, device, dtype)}
    K = model.n_classes
    full = model.chooses_by_full_distance
    D = np.empty((n, K))
    D_full = np.empty((n, K)) if full else None
    r = arrays[dtype].W.shape[-1]
    step = _chunk_rows(n, 8 * (2 * d + 2 * r + 4 * K))
    with torch.inference_mode():
        for start in range(0, n, step):
            sl = slice(start, start + step)
            xb = torch_chunk(X, sl, device, dtype=_input_dtype(X))
            Dc, Fc = _chunk(model, arrays[dtype], xb)
            both = Dc if Fc is None else Dc + Fc
            if not bool(torch.isfinite(both).all()):
                if torch.float64 not in arrays:
                    arrays[torch.float64] = _Arrays(model, device, torch.float64)
                Dc, Fc = _chunk(model, arrays[torch.float64], xb)
                both = Dc if Fc is None else Dc + Fc
                if not bool(torch.isfinite(both).all()):
                    raise overflow_error(xb.cpu().numpy(), model)
            D[sl] = Dc.cpu().numpy()
            if full:
                D_full[sl] = Fc.cpu().numpy()
    return D, D_full


def score_torch(model: GaussianModel, F):
    """Differentiable score ``-distance`` of feature rows ``F`` (a tensor).

    The class of each row (the nearest by the full distance) is chosen without
    gradient and held fixed, as in Lee et al.'s input pre-processing; the
    distance to it is differentiable with respect to ``F``. Returns a float64
    tensor on ``F``'s device.
    """
    if F.is_complex() or not F.is_floating_point():
        raise TypeError(f"Expected a float32 or float64 tensor; got {F.dtype}.")
    if not bool(torch.isfinite(F.detach()).all()):
        raise ValueError("Input contains NaN or infinity.")
    device = F.device
    if model.n_classes == 1:
        c = torch.zeros(F.shape[0], dtype=torch.long, device=device)
    else:
        with torch.no_grad():
            D, D_full = squared_distances_torch(model, F.detach(), device)
        nearest = (D if D_full is None else D_full).argmin(axis=1)
        c = torch.as_tensor(nearest, device=device)
    dtype = _precision(model, F.dtype)
    for attempt in (dtype, torch.float64):
        score = _score_rows(model, F, c, attempt)
        if bool(torch.isfinite(score.detach()).all()):
            return score
    raise overflow_error(F.detach().cpu().numpy(), model)


def _score_rows(model, F, c, dtype):
    """``-|(F - means[c]) W|^2`` (differentiable), the classes ``c`` fixed."""
    u = model.unit
    W = torch.as_tensor(model.partial_whitening * u).to(device=F.device, dtype=dtype)
    R = F.to(torch.float64) - torch.as_tensor(model.means).to(F.device)[c]
    R = (R * (1.0 / u) if u != 1.0 else R).to(dtype)
    if W.ndim == 2:
        Z = R @ W
        return -(Z.double() ** 2).sum(dim=1)
    score = torch.zeros(F.shape[0], dtype=torch.float64, device=F.device)
    for k in torch.unique(c).tolist():  # rows of one class share its whitening
        rows = torch.nonzero(c == k).ravel()
        Z = R[rows] @ W[k]
        score = score.index_put((rows,), -(Z.double() ** 2).sum(dim=1))
    return score
