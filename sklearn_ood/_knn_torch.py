"""The torch engine of the exact k-nearest-neighbour search (any device).

The neighbours are chosen as by the NumPy engine of
:mod:`sklearn_ood._knn_search` (one matrix product per tile of queries x
references with the reference norms folded in, the ``k`` largest entries of
each tile row merged into a running best), with torch operations so that it
runs on a GPU: ``KNNDetector`` uses it there only (CPU tensors go through the
NumPy engine, faster on a CPU); the tests run it on the CPU. Its
leave-one-out pass searches row by row (the NumPy engine's symmetric pass,
each pair once, is not ported: no GPU was at hand to measure it). After a
row's first tile, only
rows whose tile maximum beats their current ``k``-th best (one fast
reduction) go through ``torch.topk``, which is slow on a CPU. Tiles are
whole rows of the reference on a GPU, and ``_CPU_TILE`` on a CPU, where
torch's own threads run each operation. The distances of the chosen
neighbours are then recomputed exactly by the NumPy engine's code.

The product is computed in float32, or in float64 when the features' squares
could overflow float32 (the rule :func:`sklearn_ood.utils._numeric
.check_feature_range` applies to NumPy input), so extreme but finite input
gives finite distances.
"""

from __future__ import annotations

import numpy as np
import torch

from ._knn_search import KNNIndex, exact_distances, search_space, sort_neighbors
from .utils._chunking import _chunk_rows
from .utils._numeric import check_feature_range, fits_float32

__all__ = [
    "check_tensor_range",
    "leave_one_out_torch",
    "neighbor_ids_torch",
    "search_torch",
    "torch_neighbor_distances",
]

# (queries, references) per tile on a CPU.
_CPU_TILE = (1024, 4096)


def check_tensor_range(X, n_features: int) -> float:
    """The largest ``|x|`` of a tensor; refuses non-finite or too large values.

    Too large: squared distances would overflow float64 (the error of
    :func:`~sklearn_ood.utils._numeric.check_feature_range`, which names the
    range found).
    """
    if X.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(X.detach())
    peak = max(-float(lo), float(hi))
    if not np.isfinite(peak):
        raise ValueError("Input X contains NaN or infinity.")
    check_feature_range(np.full((1, n_features), peak))  # the one range rule
    return peak


def compute_dtype(index: KNNIndex, peak: float, dtype=None):
    """float32 (or ``dtype`` when float64), float64 when squares need it."""
    if dtype == torch.float64 or not fits_float32(
        max(peak, index.peak), index.n_features
    ):
        return torch.float64
    return torch.float32


def device_rows(index: KNNIndex, device, dtype, cache=None):
    """The index rows and cosine zero mask as tensors on ``device``.

    ``cache``: a dict kept by the caller (one copy per device and dtype).
    """
    key = (str(device), dtype)
    if cache is not None and key in cache:
        return cache[key]
    rows = torch.as_tensor(index.rows).to(device=device, dtype=dtype)
    out = rows, torch.as_tensor(index.zero).to(device)
    if cache is not None:
        cache[key] = out
    return out


def neighbor_ids_torch(index: KNNIndex, X, k: int, device, *, cache=None):
    """Ids of the ``k`` nearest distinct rows of each row of ``X``, chosen with torch.

    ``X``: a tensor or array of features, or None for the leave-one-out pass
    over the stored rows. Returns an (n, k) intp array (``-1`` where fewer
    than ``k`` distinct rows exist).
    """
    if X is None:
        peak = 0.0
    elif torch.is_tensor(X):
        peak = check_tensor_range(X, index.n_features)
    else:
        peak = float(np.max(np.abs(X), initial=0.0))
    rows = device_rows(index, device, compute_dtype(index, peak), cache)
    n = index.n_distinct if X is None else X.shape[0]
    return _choose(index, X, n, k, device, rows).cpu().numpy().astype(np.intp)


def search_torch(index: KNNIndex, X, k: int, device, *, cache=None):
    """:func:`~sklearn_ood._knn_search.search` with the neighbours chosen by torch.

    ``X=None``: the leave-one-out pass. The distances of the chosen
    neighbours are recomputed exactly from the rows, by the NumPy engine's
    code, so both engines give the same scores whenever they choose the same
    neighbours. Returns NumPy ``(dist, ind)``.
    """
    ids = neighbor_ids_torch(index, X, k, device, cache=cache)
    if X is None:
        S, zero = index.rows[:, :-1], index.zero
    else:
        X = X.detach().cpu().numpy() if torch.is_tensor(X) else X
        S, zero = search_space(X, index.cosine, np.float64)
    zero = zero if index.cosine else None
    return sort_neighbors(exact_distances(index, S, zero, ids), ids)


def leave_one_out_torch(index: KNNIndex, k: int, device, *, cache=None):
    """:func:`~sklearn_ood._knn_search.leave_one_out` with torch (NumPy output)."""
    return search_torch(index, None, k, device, cache=cache)


def _choose(index, X, n, k, device, rows):
    A, _ = rows
    dtype, d, m = A.dtype, index.n_features, A.shape[0]
    shift = torch.as_tensor(index.shift).to(device=device, dtype=dtype)
    if device.type == "cuda":
        tq, tr = _chunk_rows(n, (dtype.itemsize + 8) * m + 16 * d), m
    else:
        tq, tr = _CPU_TILE
    ind = torch.empty((n, k), dtype=torch.int64, device=device)
    buffers = {}  # reused tiles: no allocation per tile
    with torch.inference_mode():
        for i0 in range(0, n, tq):
            i1 = min(i0 + tq, n)
            S = A[i0:i1, :d] if X is None else _search_rows(X, i0, i1, device, index)
            ones = torch.ones((i1 - i0, 1), dtype=dtype, device=device)
            Q = torch.cat([S.to(dtype) - shift, ones], 1)
            best_v = torch.full((i1 - i0, k), -torch.inf, dtype=dtype, device=device)
            best_i = torch.full((i1 - i0, k), -1, dtype=torch.int64, device=device)
            for c0 in range(0, m, tr):
                c1 = min(c0 + tr, m)
                shape = (i1 - i0, c1 - c0)
                if buffers.get(shape) is None:
                    buffers[shape] = torch.empty(shape, dtype=dtype, device=device)
                T = torch.mm(Q, A[c0:c1].T, out=buffers[shape])  # -|q-r|^2/2 + c(q)
                if X is None and max(i0, c0) < min(i1, c1):
                    own = torch.arange(max(i0, c0), min(i1, c1), device=device)
                    T[own - i0, own - c0] = -torch.inf  # not its own neighbour
                if c0 == 0:
                    act = None
                else:  # only rows whose tile maximum beats their k-th best
                    act = torch.nonzero(T.amax(dim=1) > best_v[:, -1]).squeeze(1)
                    if act.numel() == 0:
                        continue
                    T = T[act]
                v, i = torch.topk(T, min(k, c1 - c0), dim=1)
                sel = slice(None) if act is None else act
                v = torch.cat([best_v[sel], v], 1)
                i = torch.cat([best_i[sel], i + c0], 1)
                v, top = torch.topk(v, k, dim=1)
                best_v[sel], best_i[sel] = v, i.gather(1, top)
            ind[i0:i1] = best_i.masked_fill(best_v == -torch.inf, -1)
    return ind


def _search_rows(X, i0, i1, device, index):
    """Search-space rows ``i0..i1`` of ``X`` on ``device``, in float64 (unit
    rows for cosine; zero rows stay zero)."""
    xb = X[i0:i1]
    if not torch.is_tensor(xb):
        xb = torch.from_numpy(np.ascontiguousarray(xb))
    S = xb.detach().to(device=device, dtype=torch.float64)
    if not index.cosine:
        return S
    norms = torch.linalg.vector_norm(S, dim=1)
    return S / norms.masked_fill(norms == 0.0, 1.0)[:, None]


def torch_neighbor_distances(index: KNNIndex, F, ids, rows):
    """Differentiable search-unit distances from feature rows ``F`` to ``ids``.

    ``ids``: (n, k) int64 tensor of distinct-row ids, held fixed (no
    gradient flows through the choice of neighbours); ``rows``:
    :func:`device_rows` on ``F``'s device. Distances are computed from the
    differences ``F - r`` (not the expanded form), in ``rows``' dtype.
    """
    A, zero_r = rows
    d = index.n_features
    Fc = F.to(A.dtype)
    R = A[ids, :d]
    if not index.cosine:
        return ((Fc[:, None, :] - R) ** 2).sum(-1)
    norms = torch.linalg.vector_norm(Fc, dim=1, keepdim=True)
    U = Fc / norms.clamp_min(torch.finfo(A.dtype).tiny)
    dist = (0.5 * ((U[:, None, :] - R) ** 2).sum(-1)).clamp_max(2.0)
    # An all-zero row (query or reference) is at distance 1 from every row.
    constant = zero_r[ids] | (norms == 0.0)
    return torch.where(constant, torch.ones_like(dist), dist)
