"""Squared Mahalanobis distances and scores of NumPy rows under a Gaussian model.

Rows are scored in chunks that fit scikit-learn's ``working_memory``: one
matrix product with the whitening per chunk (an in-place triangular TRMM, half
the flops of a GEMM, when the whitening is an inverse Cholesky factor), in the
model's precision. A chunk whose float32 distances overflow is recomputed in
float64; distances that overflow even float64 raise a ValueError naming the
input's range, so no score is ever infinite.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import get_blas_funcs

from ..utils._chunking import _chunk_rows
from ._model import GaussianModel, Prepared

__all__ = [
    "distance_scores",
    "overflow_error",
    "squared_distances",
    "whiten",
]


#: Centred rows per chunk of the distance products: scoring 50,000 x 512
#: float32 rows in chunks of 8 MB through one buffer took 78-86 ms against 96 ms
#: for one fresh 100 MB array (2 cores; benchmarks/RESULTS.md, "Speed").
_CHUNK_BYTES = 2**23


def whiten(R, p: Prepared):
    """``R @ p.W`` for a fresh residual block ``R`` (which may be overwritten)."""
    if p.tri is None or R.dtype != p.dtype:
        return R @ p.W
    R = np.ascontiguousarray(R)
    # W' R' on the Fortran view of R: one in-place TRMM.
    trmm = get_blas_funcs("trmm", (p.tri,))
    return trmm(1.0, p.tri, R.T, side=0, lower=1, overwrite_b=1).T


def _rowsq(Z):
    return np.einsum("ij,ij->i", Z, Z)


def _centred(X, centre, buf):
    """``X - centre``, into the first rows of ``buf`` when given (and of its dtype)."""
    if buf is None or buf.dtype != np.result_type(X, centre):
        return X - centre
    return np.subtract(X, centre, out=buf[: X.shape[0]])


def _chunk(model: GaussianModel, p: Prepared, X, buf=None):
    """Distances (n, K), and full distances or None, of one chunk in ``p.dtype``.

    ``buf`` (at least as many rows as ``X``) receives the centred rows.
    """
    full = model.chooses_by_full_distance
    cols = model.components
    X = X.astype(p.dtype, copy=False)
    K = model.n_classes
    if p.W.ndim == 3:  # a whitening per class
        D = np.empty((X.shape[0], K))
        D_full = np.empty_like(D) if full else None
        for c in range(K):
            Z = (X - p.means[c]) @ p.W[c]
            if full:
                D_full[:, c] = _rowsq(Z)
                Z = Z[:, cols]
            D[:, c] = _rowsq(Z)
        return D, D_full
    if K == 1:
        Z = whiten(_centred(X, p.means[0], buf), p)
        return _rowsq(Z)[:, None].astype(np.float64), None
    # Several classes, one whitening: whiten once around the centre of the class
    # means, then expand |z - m_c|^2 in float64 (n x r x n_classes, cheap), so
    # float32 rows lose no accuracy when the classes are far apart.
    Z = whiten(_centred(X, p.centre, buf), p).astype(np.float64, copy=False)

    def expand(Z, M, M_sq):
        return np.maximum(_rowsq(Z)[:, None] - 2.0 * (Z @ M.T) + M_sq[None, :], 0.0)

    D_full = expand(Z, p.M, p.M_sq) if full else None
    if full:
        Ms = p.M[:, cols]
        return expand(Z[:, cols], Ms, np.einsum("ij,ij->i", Ms, Ms)), D_full
    return expand(Z, p.M, p.M_sq), None


def overflow_error(X, model: GaussianModel) -> ValueError:
    """The error for rows whose squared distances overflow float64."""
    peak = float(np.max(np.abs(X)))
    eig = model.partial_eigenvalues
    scale = float(np.sqrt(np.min(eig[eig > 0], initial=np.inf)))
    return ValueError(
        f"X holds values up to {peak:.3g} in absolute value: their squared "
        "Mahalanobis distances to the training data overflow float64 (the "
        f"training features vary by as little as {scale:.3g} along some "
        "direction). Rescale the features, or check the input."
    )


def squared_distances(model: GaussianModel, X, *, dtype=None):
    """Squared distances of the rows ``X`` to every class, chunk by chunk.

    Parameters
    ----------
    model : GaussianModel
        The fitted model.
    X : ndarray of shape (n_samples, n_features)
        Validated rows.
    dtype : dtype, default=None
        Precision of the products (default: ``model.dtype``).

    Returns
    -------
    D : ndarray of shape (n_samples, n_classes)
        Squared distances (over ``model.components`` when set), float64.
    D_full : ndarray of shape (n_samples, n_classes) or None
        Squared distances over all directions, which choose the class, when the
        model has a component range and several classes; None otherwise.
    """
    p = model.prepared(model.dtype if dtype is None else dtype)
    n, d = X.shape
    K = model.n_classes
    r = p.W.shape[-1]
    full = model.chooses_by_full_distance
    D = np.empty((n, K))
    D_full = np.empty((n, K)) if full else None
    # Temporaries per row: the centred row and its whitened image in the
    # products' precision; the float64 distances (and, with several classes
    # and one whitening, the float64 whitened row).
    row_bytes = p.dtype.itemsize * (d + r) + 8 * (4 * K + (r if K > 1 else 0))
    # Chunks of at most _CHUNK_BYTES of centred rows, written to one reused
    # buffer: fresh pages for all rows at once cost more than the cache misses.
    step = min(
        _chunk_rows(n, row_bytes), max(1, _CHUNK_BYTES // (p.dtype.itemsize * d))
    )
    buf = np.empty((min(step, n), d), dtype=p.dtype) if p.W.ndim == 2 else None
    for start in range(0, n, step):
        sl = slice(start, start + step)
        Dc, Fc = _chunk(model, p, X[sl], buf)
        if not (np.all(np.isfinite(Dc)) and (Fc is None or np.all(np.isfinite(Fc)))):
            if p.dtype != np.float64:  # float32 overflow: this chunk in float64
                Dc, Fc = _chunk(model, model.prepared(np.float64), X[sl])
            if not np.all(np.isfinite(Dc if Fc is None else Dc + Fc)):
                raise overflow_error(X[sl], model)
        D[sl] = Dc
        if full:
            D_full[sl] = Fc
    return D, D_full


def distance_scores(D, D_full=None):
    """Scores ``-D`` of each row's class: the nearest by ``D_full`` when given
    (Kamoi & Kobayashi's partial distance), else the nearest by ``D``."""
    if D_full is None:
        return -D.min(axis=1)
    return -D[np.arange(D.shape[0]), D_full.argmin(axis=1)]
