"""The Gaussian (Mahalanobis) model as data and pure functions.

:class:`~sklearn_ood.MahalanobisDetector` is a thin estimator around this
sub-package, as scikit-learn pairs :func:`~sklearn.covariance.empirical_covariance`
with :class:`~sklearn.covariance.EmpiricalCovariance`:

- ``_model``: :class:`GaussianSpec` (how to estimate) and :class:`GaussianModel`
  (what is fitted), frozen dataclasses of NumPy arrays;
- ``_estimate``: means, shrunk covariances (scikit-learn's
  ``shrunk_covariance``), eigen-decomposition or Cholesky factor, eigenvalue
  floor or pseudo-inverse, whitening; from rows or from mergeable moments;
- ``_distances`` / ``_torch``: squared distances and scores, NumPy (with the
  in-place triangular product) and torch (any device, and a differentiable
  score);
- ``_calibration``: closed-form leave-one-out and out-of-fold calibration
  scores; ``_fit``: a model with its calibration scores, from rows or from
  merged statistics;
- ``_statistics``: mergeable per-(fold, class) statistics for streaming and
  Dask fits.

Nothing here is public API.
"""

from ._calibration import (
    N_FOLDS,
    calibration_folds,
    leave_one_out_scores,
    out_of_fold_scores,
)
from ._distances import distance_scores, squared_distances
from ._estimate import (
    estimate_gaussian,
    gaussian_from_moments,
    oas_shrinkage,
)
from ._fit import Calibrator, fit_from_statistics, fit_gaussian, inlier_rows
from ._model import PINV, GaussianModel, GaussianSpec
from ._statistics import GaussianStatistics, OffsetSample
from ._torch import score_torch, squared_distances_torch

__all__ = [
    "N_FOLDS",
    "PINV",
    "Calibrator",
    "GaussianModel",
    "GaussianSpec",
    "GaussianStatistics",
    "OffsetSample",
    "calibration_folds",
    "distance_scores",
    "estimate_gaussian",
    "fit_from_statistics",
    "fit_gaussian",
    "gaussian_from_moments",
    "inlier_rows",
    "leave_one_out_scores",
    "oas_shrinkage",
    "out_of_fold_scores",
    "score_torch",
    "squared_distances",
    "squared_distances_torch",
]
