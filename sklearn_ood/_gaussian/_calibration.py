"""Calibration scores of training rows: leave-one-out in closed form, or out-of-fold.

The calibration scores are the training rows' scores from models that did not
see them (see :mod:`sklearn_ood.base`). With the empirical covariance (or the
identity) removing one row is a rank-one change of the scatter matrix, and the
leave-one-out distance has a closed form (:func:`leave_one_out_scores`). With
shrinkage or a component range it does not (the shrinkage coefficient and
the eigenbasis move with the data), and the rows are scored by models fitted
without their fold (:func:`out_of_fold_scores`): 5 interleaved folds, row ``i``
in fold ``i % 5``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..stats._moments import Moments, pool_moments
from ._distances import distance_scores, squared_distances, whiten
from ._estimate import gaussian_from_moments
from ._model import GaussianModel, GaussianSpec

__all__ = ["N_FOLDS", "calibration_folds", "leave_one_out_scores", "out_of_fold_scores"]

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
        D = np.einsum("ij,ij->i", Z, Z)[:, None].astype(np.float64)
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

    Exact for the empirical covariance. When the eigenvalue floor raised (or
    the pseudo-inverse dropped) a direction, the eigenbasis and the floor are
    held fixed while the eigenvalues are rescaled to ``n - 1`` rows (``P`` from
    ``model.loo_whitening``): a one-row update without refitting, which agrees
    with refits to about 1e-4 in the tests. Under the pseudo-inverse the
    update stays within the directions the full model keeps.

    Parameters
    ----------
    model : GaussianModel
        Model fitted on the rows ``X`` (empirical or identity covariance, no
        component range).
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
        row alone in some direction (more features than rows), whose removal
        changes the rank. The caller then uses out-of-fold scores.
    """
    counts = model.counts
    n_c = counts[y_idx].astype(np.float64)
    if np.any(n_c < 2):
        return None
    D = _in_sample_distances(model, X, residual)
    rows = np.arange(D.shape[0])
    b = n_c / (n_c - 1.0)
    if model.identity:
        D[rows, y_idx] *= b**2
        return -D.min(axis=1)
    if model.floored and model.loo_whitening is None:
        return None
    per_class = model.per_class
    n_all = float(counts.sum())  # == D.shape[0] when D holds every row
    n_eff = n_c if per_class else n_all
    if model.floored:
        W_loo = model.loo_whitening
        loo = replace(model, whitening=W_loo, floored=False, loo_whitening=None)
        Dp, _ = squared_distances(loo, X)
    else:  # P = (n - 1) / n * S^-1: a rescaling of the in-sample distances
        scale = (n_eff - 1.0) / n_eff
        Dp = D * (scale[:, None] if per_class else scale)
        W_loo = model.whitening * np.sqrt((n_all - 1.0) / n_all)
    c = b / (n_eff - 1.0)
    a = Dp[rows, y_idx]
    denom = 1.0 - c * a
    if np.any(denom <= 1e-6):
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
