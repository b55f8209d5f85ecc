"""Fitting a Gaussian model together with its calibration scores.

The two ways the detector fits: from training rows in memory
(:func:`fit_gaussian`) and from merged statistics of blocks of rows that are
scored where they live (:func:`fit_from_statistics`, for ``partial_fit`` and
Dask). Both return the model and the calibration scores of the training rows
(closed-form leave-one-out where it applies, else out-of-fold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import check_array

from ..stats._moments import pool_moments
from ..utils._labels import split_outlier_labels
from ..utils._numeric import check_feature_range
from ._calibration import calibration_folds, leave_one_out_scores, out_of_fold_scores
from ._estimate import estimate_gaussian, gaussian_from_moments
from ._model import GaussianModel, GaussianSpec
from ._statistics import GaussianStatistics

__all__ = ["Calibrator", "fit_from_statistics", "fit_gaussian", "inlier_rows"]


def fit_gaussian(X, y_idx, n_classes: int, spec: GaussianSpec):
    """The model of the rows ``X`` (classes ``y_idx``) and their calibration scores."""
    labels = y_idx if n_classes > 1 else None
    if spec.closed_form_loo:
        model, R = estimate_gaussian(X, y_idx, n_classes, spec, return_residual=True)
        scores = leave_one_out_scores(model, X, y_idx, residual=R)
        if scores is not None:
            return model, scores
        statistics = GaussianStatistics.of_rows(X, labels)
    else:  # out-of-fold: one pass of per-fold moments gives every model
        statistics = GaussianStatistics.of_rows(X, labels)
        model = gaussian_from_moments(pool_moments(statistics.moments), spec, X.dtype)
    fold = calibration_folds(np.arange(X.shape[0]), X.shape[0])
    return model, out_of_fold_scores(statistics.moments, model, spec, X, fold)


def inlier_rows(X, y, labelled: bool):
    """Validated rows of a block without its known outliers, and their labels."""
    X = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite=False)
    X = check_feature_range(X)  # finiteness too, in the same pass
    y_in, outliers = split_outlier_labels(y, X.shape[0])
    if outliers.any():
        X = X[~outliers]
    return X, (y_in if labelled else None)


@dataclass(frozen=True)
class Calibrator:
    """Calibration scores of training rows under a model fitted from statistics.

    Closed-form leave-one-out when ``closed_form`` (None where undefined),
    else out-of-fold from the per-fold statistics. Picklable, so that a Dask
    worker can score its block of training rows.
    """

    model: GaussianModel
    spec: GaussianSpec
    statistics: GaussianStatistics
    closed_form: bool

    def scores(self, X, labels, index):
        """Scores of validated in-distribution rows with training indices ``index``."""
        if self.statistics.labelled:
            y_idx = np.searchsorted(self.statistics.classes, labels)
        else:
            y_idx = np.zeros(X.shape[0], dtype=np.intp)
        if self.closed_form:
            return leave_one_out_scores(self.model, X, y_idx)
        fold = calibration_folds(index, self.statistics.n_rows)
        moments = self.statistics.moments
        return out_of_fold_scores(moments, self.model, self.spec, X, fold)

    def __call__(self, X, y, start: int):
        """Scores of the in-distribution rows of a raw block (first one: ``start``)."""
        X, labels = inlier_rows(X, y, self.statistics.labelled)
        return self.scores(X, labels, start + np.arange(X.shape[0], dtype=np.int64))


def fit_from_statistics(statistics: GaussianStatistics, spec: GaussianSpec, map_blocks):
    """The model of merged statistics and the calibration scores of its rows.

    ``map_blocks(calibrator)`` returns ``calibrator``'s scores of every block
    of training rows, in order (a list). Closed-form leave-one-out scores are
    used where ``fit`` would use them (defined for every block), else
    out-of-fold scores from the per-fold statistics, as ``fit`` decides.
    """
    total = pool_moments(statistics.moments)
    model = gaussian_from_moments(total, spec, statistics.dtype)
    for closed_form in (True, False) if spec.closed_form_loo else (False,):
        parts = map_blocks(Calibrator(model, spec, statistics, closed_form))
        if all(part is not None for part in parts):
            break
    return model, np.concatenate(parts)
