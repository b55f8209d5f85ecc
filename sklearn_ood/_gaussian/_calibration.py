"""Calibration scores of training rows: leave-one-out in closed form, or out-of-fold.

The calibration scores are the training rows' scores from models that did not
see them (see :mod:`sklearn_ood.base`). Removing one row is a rank-one change
of the scatter matrix, so the leave-one-out distance has a closed form
(:func:`leave_one_out_scores`): exact for the empirical covariance and the
identity; for a shrunk covariance with the shrinkage coefficient held at its
full-data value (exact for a fixed coefficient), and for a floored one with
the floor held fixed, in the eigenbasis of the full-data covariance
(:func:`eigenbasis_scores`). With a component range the eigenbasis itself
moves with the data, and the rows are scored by models fitted without their
fold (:func:`out_of_fold_scores`): 5 interleaved folds, row ``i`` in fold ``i
% 5``; so are rows alone in some direction of an unshrunk covariance (more
features than rows), where the update is undefined.
"""

from __future__ import annotations

import numpy as np

from ..stats._moments import Moments, pool_moments
from ..utils._chunking import _chunk_rows
from ._distances import _rowsq, distance_scores, squared_distances, whiten
from ._estimate import gaussian_from_moments
from ._model import GaussianModel, GaussianSpec

__all__ = [
    "N_FOLDS",
    "calibration_folds",
    "eigenbasis_scores",
    "leave_one_out_scores",
    "out_of_fold_scores",
]

# Sherman-Morrison denominators 1 - c a at most this small are treated as 0:
# the row is (nearly) alone in some direction of an unshrunk covariance, and
# the update would divide a rounding error by a rounding error.
_MIN_DENOMINATOR = 1e-6

#: Number of interleaved folds of the out-of-fold scores (row i in fold i % 5).
N_FOLDS = 5


def calibration_folds(index, n_rows: int):
    """Fold of the training rows ``index`` among ``n_rows`` rows (``i % min(5, n)``)."""
    return np.asarray(index) % min(N_FOLDS, int(n_rows))


def _in_sample_distances(model: GaussianModel, X, residual):
    """Distances of the training rows, whitening ``residual`` in place if given."""
    if (
        residual is not None
        and model.n_classes == 1
        and model.whitening.ndim == 2
        and residual.dtype == model.dtype
        and residual.shape == X.shape
    ):
        Z = whiten(residual, model.prepared(model.dtype))
        D = _rowsq(Z)[:, None].astype(np.float64)
        if np.all(np.isfinite(D)):
            return D
    return squared_distances(model, X)[0]


def leave_one_out_scores(model: GaussianModel, X, y_idx, residual=None):
    """Leave-one-out scores of training rows by a rank-one (Sherman-Morrison) update.

    Removing row ``i`` of class ``c`` (``n_c`` rows, ``n`` in all) with
    residual ``e = x_i - mu_c`` turns the scatter ``A`` into ``A - b e e'`` with
    ``b = n_c / (n_c - 1)``, the MLE covariance into ``(A - b e e') / (n -
    1)``, and ``x_i - mu_c`` into ``b e``. With ``P`` the inverse of ``A / (n -
    1)``, ``c = b / (n - 1)`` and ``a = e'P e``: ``D_own = b^2 a / (1 - c a)``
    and, for another class ``k`` with ``f = x_i - mu_k``, ``D_k = f'P f + c
    (f'P e)^2 / (1 - c a)``, where ``f'P e`` follows from the distances by
    polarisation. In per-class models ``n`` is ``n_c`` and only the own class's
    Gaussian changes; with the identity covariance only its mean does.

    Exact for the empirical covariance. A shrunk covariance, or one whose
    eigenvalue floor (or pseudo-inverse) is active, is updated in its
    eigenbasis instead (:func:`eigenbasis_scores`).

    Parameters
    ----------
    model : GaussianModel
        Model fitted on the rows ``X`` (no component range), as
        :func:`~sklearn_ood._gaussian._estimate.estimate_gaussian` returns it
        (with its ``loo_basis``).
    X : ndarray of shape (n_samples, n_features)
        Training rows of the model.
    y_idx : ndarray of shape (n_samples,)
        Class index of each row.
    residual : ndarray of shape (n_samples, n_features), default=None
        ``X - means[0]`` in the model's precision (one-class models), which
        spares recomputing it; overwritten.

    Returns
    -------
    scores : ndarray of shape (n_samples,) or None
        None where the update is undefined: a class with a single row, or a
        row alone in some direction (more features than rows) of an unshrunk
        covariance, whose removal changes the rank. The caller then uses
        out-of-fold scores.
    """
    counts = model.counts
    n_c = counts[y_idx].astype(np.float64)
    if np.any(n_c < 2) or model.components is not None:
        return None
    if model.loo_basis is not None:
        return eigenbasis_scores(model, X, y_idx)
    if (model.shrunk or model.floored) and not model.identity:
        return None  # no eigenbasis kept (a model for scoring only)
    D = _in_sample_distances(model, X, residual)
    rows = np.arange(D.shape[0])
    b = n_c / (n_c - 1.0)
    if model.identity:
        D[rows, y_idx] *= b**2
        return -D.min(axis=1)
    per_class = model.per_class
    n_all = float(counts.sum())  # == D.shape[0] when D holds every row
    n_eff = n_c if per_class else n_all
    # P = (n - 1) / n * S^-1: a rescaling of the in-sample distances.
    scale = (n_eff - 1.0) / n_eff
    Dp = D * (scale[:, None] if per_class else scale)
    W_loo = model.whitening * np.sqrt((n_all - 1.0) / n_all)
    c = b / (n_eff - 1.0)
    a = Dp[rows, y_idx]
    denom = 1.0 - c * a
    if np.any(denom <= _MIN_DENOMINATOR):
        return None
    loo_own = b**2 * a / denom
    if per_class or D.shape[1] == 1:
        D[rows, y_idx] = loo_own
        return -D.min(axis=1)
    # |M_k - M_c|^2 between whitened class means (centred: no cancellation).
    M = (model.means - model.means.mean(axis=0)) @ W_loo
    M_sq = np.einsum("ij,ij->i", M, M)
    between = M_sq[:, None] + M_sq[None, :] - 2.0 * (M @ M.T)
    h = (Dp + a[:, None] - between[y_idx]) / 2.0  # f'P e
    loo_d = Dp + c[:, None] * h**2 / denom[:, None]
    loo_d[rows, y_idx] = loo_own
    return -loo_d.min(axis=1)


def eigenbasis_scores(model: GaussianModel, X, y_idx):
    """Leave-one-out scores under a shrunk or floored covariance, in its eigenbasis.

    The covariance of ``n`` rows with scatter ``A = V diag(lambda) V'``,
    shrinkage ``s`` and target ``mu = tr(A) / (n d)`` is ``Sigma = (1 - s) A
    / n + s mu I``. Removing row ``i`` of class ``c`` (residual ``e = x_i -
    m_c``, ``b = n_c / (n_c - 1)``) gives ``A_i = A - b e e'``, ``mu_i =
    (tr(A) - b |e|^2) / ((n - 1) d)`` and, holding ``s`` at its full-data
    value, ``Sigma_i = B_i - c e e'`` with ``c = (1 - s) b / (n - 1)`` and
    ``B_i = V diag(h_i) V'``, ``h_i = (1 - s) lambda / (n - 1) + s mu_i``:
    diagonal in the same eigenbasis for every row, a per-row scalar shift of
    the eigenvalues. As ``x_i - m_c`` becomes ``b e``, Sherman-Morrison gives,
    with ``w = V'e`` and ``a = sum_k w_k^2 / h_ik = e'B_i^-1 e``::

        D_own = b^2 a / (1 - c a)

    and for another class ``k`` of a shared covariance (its mean unchanged,
    ``f = x_i - m_k = e + m_c - m_k``)::

        D_k = f'B_i^-1 f + c (f'B_i^-1 e)^2 / (1 - c a),

    both expanded in the eigenbasis around the class means (``V'f = w + V'(m_c
    - m_k)``). In per-class models ``n = n_c`` and only the own class's
    Gaussian changes. Cost: one ``n x d x r`` product for all rows, then ``O(n
    (d + K) r)``.

    Exact for a fixed shrinkage coefficient; Ledoit-Wolf and OAS coefficients
    are held at their full-data value (they move by ``O(1 / n)`` when a row is
    removed). The eigenvalue floor ``F`` (absolute, from the full-data
    covariance) is held fixed and applied to ``B_i``, ``h_i -> max(h_i, F)``,
    before the rank-one downdate, as for the empirical covariance: this
    equals flooring the refitted covariance at ``F`` where the removed row has
    no component along the floored directions (zero-variance or rank-deficient
    ones) and the downdated directions stay above ``F``, and is a one-row
    approximation elsewhere. Under the pseudo-inverse the update stays within
    the directions the full model keeps. ``1 - c a >= s mu_i / h_max`` is
    positive whenever ``s mu_i > 0``; rows with ``1 - c a`` within
    ``1e-6`` of 0 (no shrinkage and a row alone in some direction) return
    None.

    Returns
    -------
    scores : ndarray of shape (n_samples,) or None
    """
    basis = model.loo_basis
    counts = model.counts.astype(np.float64)
    K = model.n_classes
    r = basis.vectors.shape[-1]
    row_bytes = 8 * (X.shape[1] + 4 * r + 6 * K)
    if model.per_class:
        # The other classes' Gaussians do not change: in-sample distances.
        D = squared_distances(model, X)[0]
        for k in range(K):
            rows = np.flatnonzero(y_idx == k)
            step = _chunk_rows(rows.size, row_bytes)
            for start in range(0, rows.size, step):
                sub = rows[start : start + step]
                own = _eigenbasis_update(
                    basis, k, X[sub], y_idx[sub], model.means, counts, counts[k]
                )
                if own is None:
                    return None
                D[sub, k] = own
        return -D.min(axis=1)
    Mv = None
    if K > 1:  # class means in the eigenbasis, centred (differences only)
        Mv = (model.means - model.means.mean(axis=0)) @ basis.vectors[0]
    scores = np.empty(X.shape[0])
    step = _chunk_rows(X.shape[0], row_bytes)
    for start in range(0, X.shape[0], step):
        sl = slice(start, start + step)
        D = _eigenbasis_update(
            basis, 0, X[sl], y_idx[sl], model.means, counts, counts.sum(), Mv
        )
        if D is None:
            return None
        scores[sl] = -(D if D.ndim == 1 else D.min(axis=1))
    return scores


def _eigenbasis_update(basis, g, X, y_idx, means, counts, n, Mv=None):
    """Leave-one-out distances of rows ``X`` (classes ``y_idx``) under covariance ``g``.

    ``n``: rows of that covariance. Returns the own-class distances (``Mv``
    None) or the distances to every class (``Mv``: the centred class means in
    the eigenbasis), or None where a denominator vanishes.
    """
    V = basis.vectors[g]
    s, mu, floor = basis.shrinkage[g], basis.target[g], basis.floor[g]
    d = X.shape[1]
    E = X.astype(np.float64, copy=True)
    E -= means[y_idx]
    b = counts[y_idx] / (counts[y_idx] - 1.0)
    # mu_i = (tr(A) - b |e|^2) / ((n - 1) d), tr(A) = n d mu.
    mu_i = np.maximum((n * d * mu - b * _rowsq(E)) / ((n - 1.0) * d), 0.0)
    h = basis.spread[g] * (n / (n - 1.0)) + (s * mu_i)[:, None]
    np.maximum(h, floor, out=h)
    W = E @ V
    Y = W / h  # B_i^-1 e in the eigenbasis
    a = np.einsum("ij,ij->i", W, Y)
    c = (1.0 - s) * b / (n - 1.0)
    denom = 1.0 - c * a
    if not np.all(denom > _MIN_DENOMINATOR):
        return None
    own = b**2 * a / denom
    if Mv is None:
        return own
    # f = e + (m_c - m_k): V'f = w + Mv_c - Mv_k.
    rows = np.arange(X.shape[0])
    T = Y @ Mv.T  # e'B^-1 (m_k - centre)
    t = T[rows, y_idx][:, None] - T  # e'B^-1 (m_c - m_k)
    Q = np.empty_like(T)  # (m_c - m_k)'B^-1 (m_c - m_k)
    inv_h = 1.0 / h
    for k in np.unique(y_idx):
        mine = y_idx == k
        Q[mine] = inv_h[mine] @ ((Mv[k] - Mv) ** 2).T
    fe = a[:, None] + t
    ff = np.maximum(a[:, None] + 2.0 * t + Q, 0.0)
    D = ff + (c / denom)[:, None] * fe**2
    D[rows, y_idx] = own
    return D


def out_of_fold_scores(
    moments: Moments, model: GaussianModel, spec: GaussianSpec, X, fold
):
    """Scores of training rows by models fitted without their fold.

    Parameters
    ----------
    moments : Moments
        Moments of all training rows per (fold, class) cell, shape
        ``(N_FOLDS, n_classes)``.
    model : GaussianModel
        The model of all rows (used for a fold whose removal leaves a class of
        the per-class model with fewer than 2 rows: a documented approximation
        for tiny classes).
    spec : GaussianSpec
        How the models are estimated.
    X : ndarray of shape (n_samples, n_features)
        Training rows to score (any subset of the training rows).
    fold : ndarray of shape (n_samples,)
        Fold of each row (:func:`calibration_folds`).

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    """
    scores = np.empty(X.shape[0])
    folds = np.arange(moments.count.shape[0])
    for k in np.unique(fold):
        test = fold == k
        train = pool_moments(moments, folds != k)
        present = np.flatnonzero(train.count > 0)
        if spec.per_class and train.count[: present[-1] + 1].min() < 2:
            sub = model
        else:
            sub = gaussian_from_moments(train[present], spec, np.float64)
        D, D_full = squared_distances(sub, X[test], dtype=np.float64)
        scores[test] = distance_scores(D, D_full)
    return scores
