"""Estimating the Gaussian model: means, (shrunk) covariances, whitening.

Two entry points give the same model (to floating-point rounding):
:func:`estimate_gaussian` from training rows, and :func:`gaussian_from_moments`
from the mergeable moments of :mod:`sklearn_ood.stats._moments` (streaming,
Dask, out-of-fold). Both end in :func:`gaussian_from_scatter`, which shrinks
(scikit-learn's :func:`~sklearn.covariance.shrunk_covariance`), decomposes
and whitens in float64.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import linalg
from sklearn.covariance import shrunk_covariance

from ..stats._moments import Moments, ledoit_wolf_shrinkage_from_moments, safe_unit
from ..utils._chunking import _chunk_rows
from ..utils._row_blocks import map_row_blocks, row_blocks
from ..utils._threads import single_blas_thread
from ._model import (
    FLOAT32_MIN_EIGENVALUE_RATIO,
    GaussianModel,
    GaussianSpec,
    LooBasis,
)

__all__ = [
    "estimate_gaussian",
    "gaussian_from_moments",
    "gaussian_from_scatter",
    "oas_shrinkage",
]

_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------- shrinkage
def oas_shrinkage(covariance, n_samples: float) -> float:
    """Oracle Approximating Shrinkage coefficient of an empirical covariance.

    The coefficient of :func:`sklearn.covariance.oas` (Chen et al. 2010, Eq.
    23, as scikit-learn computes it), from the covariance and the number of
    rows: scikit-learn's function needs the rows themselves, which streaming
    and Dask fits do not keep, and also inverts the covariance.
    """
    d = covariance.shape[0]
    if d == 1:
        return 0.0
    alpha = np.mean(covariance**2)
    mu_squared = (np.trace(covariance) / d) ** 2
    num = alpha + mu_squared
    den = (n_samples + 1) * (alpha - mu_squared / d)
    return 1.0 if den == 0 else float(min(num / den, 1.0))


def _shrink(cov, n, scatter, s4, spec: GaussianSpec):
    """The shrunk covariance and its shrinkage coefficient (0: not shrunk)."""
    if spec.covariance == "ledoit_wolf":
        coef = ledoit_wolf_shrinkage_from_moments(n, scatter, s4)
    elif spec.covariance == "oas":
        coef = oas_shrinkage(cov, n)
    elif spec.shrinkage:
        coef = float(spec.covariance)
    else:
        return cov, 0.0
    return shrunk_covariance(cov, shrinkage=coef), coef


# ----------------------------------------------------------- decomposition
@dataclass(frozen=True)
class _Part:
    """The decomposition of one covariance (in the decomposition's unit)."""

    cov: np.ndarray
    eig: np.ndarray
    W: np.ndarray
    triangular: bool = False
    floored: bool = False
    basis: LooBasis | None = None


def _eigh(cov, vectors: bool):
    """Eigenvalues (and vectors), decreasing, on one BLAS thread."""
    with single_blas_thread():
        if not vectors:
            return linalg.eigvalsh(cov, driver="evd")[::-1], None
        eig, vecs = linalg.eigh(cov, driver="evd")
    return eig[::-1], vecs[:, ::-1]


def _decompose(cov, n, scatter, s4, spec: GaussianSpec, basis_only=False) -> _Part:
    """Shrink, decompose, floor (or pseudo-invert) and whiten one covariance.

    The whitening is the inverse Cholesky factor when no direction is floored
    and every component is used, else the floored eigenbasis. The
    eigenvectors that closed-form leave-one-out scores need (a shrunk
    covariance, an active floor, or ``basis_only``) are kept in ``basis``;
    ``basis_only`` returns once the basis is known (no whitening).
    """
    d = cov.shape[0]
    emp = 0.5 * (cov + cov.T)
    cov, coef = _shrink(emp, n, scatter, s4, spec)
    if spec.covariance == "identity":
        return _Part(cov, np.ones(d), np.eye(d))
    # The leave-one-out update needs the eigenvectors of a shrunk covariance
    # (and of a floored one, computed below when the floor turns out active).
    loo = spec.components is None and n > 1
    eager = loo and (spec.shrinkage or basis_only)
    eig, vecs = _eigh(cov, vectors=spec.components is not None or eager)
    if spec.pinv:
        # scipy.linalg.pinvh's default cutoff (scikit-learn's precision_).
        cutoff = d * _EPS * float(np.max(np.abs(eig), initial=0.0))
        floor = 0.0
    else:
        top = eig[0] if eig[0] > 0 else 1.0
        floor = max(spec.eigenvalue_floor * top, _EPS * top)

    def classify(eig):
        """(directions kept by the pseudo-inverse or None, whether any is floored)."""
        if spec.pinv:
            keep = eig > cutoff
            return keep, not bool(keep.all())
        return None, bool(np.any(eig < floor))

    keep, floored = classify(eig)
    if floored and vecs is None:  # the eigenvectors are needed after all
        eig, vecs = _eigh(cov, vectors=True)
        keep, floored = classify(eig)
    basis = None
    if loo and (floored or eager):
        target = float(np.trace(emp)) / d  # shrunk_covariance's mu
        k = slice(None) if keep is None else keep
        basis = LooBasis(
            vectors=vecs[None, :, k],
            spread=(eig[k] - coef * target)[None, :],
            shrinkage=np.array([coef]),
            target=np.array([target]),
            floor=np.array([floor]),
        )
    if basis_only:
        return _Part(cov, eig, None, basis=basis)
    if not floored and spec.components is None:
        # Full distance under an invertible covariance: whiten with the
        # inverse Cholesky factor (same distances; an upper triangular W lets
        # scoring use TRMM at half the cost of a GEMM).
        try:
            with single_blas_thread():
                L = linalg.cholesky(cov, lower=True)
                L_inv, info = linalg.lapack.dtrtri(L, lower=1)
            if info != 0:
                raise linalg.LinAlgError("singular Cholesky factor")
            W = L_inv.T
        except linalg.LinAlgError:  # indefinite in rounding: use the eigenbasis
            pass
        else:
            return _Part(cov, eig, np.triu(W), triangular=True, basis=basis)
    if vecs is None:  # indefinite in rounding: the eigenvectors are needed
        eig, vecs = _eigh(cov, vectors=True)
        keep, floored = classify(eig)
    if keep is not None:
        eig, vecs = eig[keep], vecs[:, keep]
    else:
        eig = np.maximum(eig, floor)
    W = vecs / np.sqrt(eig)
    return _Part(cov, eig, W, floored=floored, basis=basis)


def _stack_bases(bases):
    """One :class:`LooBasis` of per-class bases (padding directions weigh 0)."""
    return LooBasis(
        vectors=_pad([b.vectors[0] for b in bases]),
        spread=_pad([b.spread[0] for b in bases], fill=np.inf),
        shrinkage=np.concatenate([b.shrinkage for b in bases]),
        target=np.concatenate([b.target for b in bases]),
        floor=np.concatenate([b.floor for b in bases]),
    )


def _pad(arrays, fill=0.0):
    """Stack arrays whose last axis differs, padding it with ``fill``."""
    width = max(a.shape[-1] for a in arrays)
    out = np.full((len(arrays), *arrays[0].shape[:-1], width), fill)
    for i, a in enumerate(arrays):
        out[i, ..., : a.shape[-1]] = a
    return out


def gaussian_from_scatter(
    means, counts, scatter, s4, unit: float, spec: GaussianSpec, dtype
) -> GaussianModel:
    """The Gaussian model from class means, counts and scatter matrices.

    Parameters
    ----------
    means : ndarray of shape (n_classes, n_features)
        Class means.
    counts : ndarray of shape (n_classes,)
        Rows per class.
    scatter : ndarray of shape (n_features, n_features) or \
            (n_classes, n_features, n_features)
        Sum of outer products of the class-centred rows, in ``unit``: pooled
        over classes, or per class when ``spec.per_class``.
    s4 : float or ndarray of shape (n_classes,)
        Sum of the fourth powers of the norms of those rows, in ``unit``
        (used by Ledoit-Wolf shrinkage only).
    unit : float
        Power of two the scatter is expressed in.
    spec : GaussianSpec
        How to estimate.
    dtype : dtype
        Precision of the training rows (float32 or float64).

    Returns
    -------
    model : GaussianModel
    """
    counts = np.asarray(counts)
    if spec.per_class:
        parts = [
            _decompose(scatter[c] / n_c, n_c, scatter[c], s4[c], spec)
            for c, n_c in enumerate(counts)
        ]
        cov = np.stack([p.cov for p in parts])
        eig, W = _pad([p.eig for p in parts]), _pad([p.W for p in parts])
        if any(p.basis is not None for p in parts):
            # Every class's update needs its eigenbasis once one class has it
            # (a floor active in some classes only): the others' bases alone.
            bases = [
                p.basis
                if p.basis is not None
                else _decompose(
                    scatter[c] / n_c, n_c, scatter[c], s4[c], spec, basis_only=True
                ).basis
                for c, (p, n_c) in enumerate(zip(parts, counts, strict=True))
            ]
        else:
            bases = [None]
        floored = any(p.floored for p in parts)
        basis = None
        if all(b is not None for b in bases):
            basis = _stack_bases(bases)
        triangular = False
    else:
        n = counts.sum()
        p = _decompose(scatter / n, n, scatter, s4, spec)
        cov, eig, W, floored, basis = p.cov, p.eig, p.W, p.floored, p.basis
        triangular = p.triangular
    if unit != 1.0:  # back to the data's unit (exact: unit is a power of two)
        cov = cov * unit**2
        if spec.covariance != "identity":  # the Euclidean model has no scale
            eig, W = eig * unit**2, W * (1.0 / unit)
            basis = None if basis is None else basis.scaled(unit**2)
    components = None
    if spec.components is not None:
        components = slice(*spec.components)
    used = eig[..., components] if components is not None else eig
    used = used[used > 0]
    ratio = used.min() / used.max() if used.size else 1.0
    # The Euclidean model does not whiten: rows decomposed in another unit (far
    # from 1) keep that magnitude, whose squares float32 cannot hold.
    euclid_scaled = spec.covariance == "identity" and unit != 1.0
    float32_safe = bool(ratio >= FLOAT32_MIN_EIGENVALUE_RATIO) and not euclid_scaled
    single = dtype == np.float32 and float32_safe
    return GaussianModel(
        means=np.asarray(means, dtype=np.float64),
        counts=counts,
        covariance=cov,
        eigenvalues=eig,
        whitening=W,
        components=components,
        triangular=triangular,
        identity=spec.covariance == "identity",
        shrunk=spec.shrinkage,
        floored=floored,
        loo_basis=basis,
        unit=unit,
        float32_safe=float32_safe,
        dtype=np.dtype(np.float32 if single else np.float64),
    )


# ------------------------------------------------------------------- rows
def class_means(X, y_idx, n_classes: int):
    """Mean of each class's rows (float64)."""
    if n_classes == 1:
        # Float64 sums of fixed row blocks, on threads, added in block order.
        sums = map_row_blocks(
            lambda rows: np.add.reduce(X[rows], axis=0, dtype=np.float64),
            row_blocks(*X.shape),
        )
        return (np.sum(sums, axis=0) / X.shape[0])[None, :]
    return np.stack(
        [X[y_idx == c].mean(axis=0, dtype=np.float64) for c in range(n_classes)]
    )


# Scatter diagonals in [lo, hi] are safely inside the accumulation precision
# (their squares, for the fourth moment, too).
_SAFE_DIAGONAL = {
    np.dtype(np.float32): (2.0**-60, 2.0**100),
    np.dtype(np.float64): (2.0**-400, 2.0**400),
}


def _centred_block_scatter(b, *, rows, R, centre, labels, unit, fourth):
    """Centre block ``b`` of ``rows`` into ``R`` (``centre``, or ``centre[labels]``
    row by row) in ``unit``; the block's scatter (in ``R``'s precision) and s4."""
    Rb = R[b]
    np.subtract(rows[b], centre if labels is None else centre[labels[b]], out=Rb)
    if unit != 1.0:
        Rb *= Rb.dtype.type(1.0 / unit)
    # NumPy's SYRK: it releases the GIL (utils._row_blocks). Added to the
    # float64 total by the caller (a float32 block result takes half the memory).
    G = Rb.T @ Rb
    if not fourth:
        return G, 0.0
    sq = np.einsum("ij,ij->i", Rb, Rb, dtype=np.float64)
    return G, float(sq @ sq)


def _scatter(X, y_idx, means, per_class: bool, work, unit: float, fourth: bool):
    """Scatter of class-centred rows (float64, in ``unit``), and their s4."""
    n_classes, d = means.shape
    A = np.zeros((n_classes, d, d) if per_class else (d, d))
    s4 = np.zeros(n_classes) if per_class else 0.0
    groups = [(c, y_idx == c) for c in range(n_classes)] if per_class else [(0, None)]
    centres = means.astype(work)
    for c, mask in groups:
        rows = X if mask is None else X[mask]
        # Rows of the pooled model are centred on their own class's mean.
        labels = y_idx if mask is None and n_classes > 1 else None
        step = _chunk_rows(rows.shape[0], np.dtype(work).itemsize * (d + 1))
        for start in range(0, rows.shape[0], step):
            chunk = rows[start : start + step]
            R = np.empty(chunk.shape, dtype=work)
            block = functools.partial(
                _centred_block_scatter,
                rows=chunk,
                R=R,
                centre=centres[c] if labels is None else centres,
                labels=None if labels is None else labels[start : start + step],
                unit=unit,
                fourth=fourth,
            )
            blocks = row_blocks(*chunk.shape)
            for G, s4_block in map_row_blocks(block, blocks):
                if per_class:
                    A[c] += G
                    s4[c] += s4_block
                else:
                    A += G
                    s4 += s4_block
    # The residuals of the one-class model in one chunk, for the caller to
    # reuse (the leave-one-out distances of the same rows).
    whole = n_classes == 1 and step >= X.shape[0] and unit == 1.0
    return A, s4, (R if whole else None)


def _peak_residual(X, y_idx, means):
    peak = 0.0
    step = _chunk_rows(X.shape[0], 8 * X.shape[1])
    for start in range(0, X.shape[0], step):
        sl = slice(start, start + step)
        R = X[sl].astype(np.float64) - means[y_idx[sl]]
        peak = max(peak, float(np.max(np.abs(R), initial=0.0)))
    return peak


def estimate_gaussian(
    X, y_idx, n_classes: int, spec: GaussianSpec, *, return_residual=False
):
    """The Gaussian model of training rows ``X`` with class indices ``y_idx``.

    The scatter is accumulated in the rows' precision (float64 where
    ``spec.float32_scatter`` says float32 is not enough) and decomposed in
    float64. Rows too large or too small for that precision (float32 values
    whose squares overflow or underflow, float64 values of 1e150) are
    accumulated in float64 in a power-of-two unit instead, so the model is
    finite for any finite input.

    With ``return_residual``, returns ``(model, R)``: ``R`` is the array of
    centred rows ``X - means[0]`` the scatter was computed from (its own
    buffer, in the scatter's precision) when the model has one class and the
    rows fit in one chunk, else None.
    """
    counts = np.bincount(y_idx, minlength=n_classes)
    means = class_means(X, y_idx, n_classes)
    work = X.dtype.type if spec.float32_scatter else np.float64
    fourth = spec.covariance == "ledoit_wolf"
    unit = 1.0
    # Overflow is possible for extreme rows; it is detected below and the
    # scatter recomputed in float64 in a safe unit.
    with np.errstate(over="ignore", invalid="ignore"):
        A, s4, R = _scatter(X, y_idx, means, spec.per_class, work, unit, fourth)
    diag = np.diagonal(A, axis1=-2, axis2=-1)
    lo, hi = _SAFE_DIAGONAL[np.dtype(work)]
    top = float(np.max(diag)) if np.all(np.isfinite(A)) else np.inf
    if not (lo <= top <= hi) or not np.isfinite(s4).all():
        peak = _peak_residual(X, y_idx, means)  # 0: constant rows, nothing to fix
        if peak > 0.0:
            unit = safe_unit(peak)
            A, s4, R = _scatter(
                X, y_idx, means, spec.per_class, np.float64, unit, fourth
            )
    model = gaussian_from_scatter(means, counts, A, s4, unit, spec, X.dtype)
    return (model, R) if return_residual else model


def gaussian_from_moments(moments: Moments, spec: GaussianSpec, dtype) -> GaussianModel:
    """The Gaussian model from per-class moments (cells: the classes).

    Equals :func:`estimate_gaussian` on the rows the moments summarise, to
    rounding.
    """
    if spec.per_class:
        scatter, s4 = moments.scatter, moments.s4
    else:  # residuals about each class's own mean, pooled
        scatter, s4 = moments.scatter.sum(axis=0), float(moments.s4.sum())
    return gaussian_from_scatter(
        moments.mean, moments.count, scatter, s4, moments.unit, spec, dtype
    )
