from numbers import Real

import numpy as np
from sklearn.model_selection import KFold
from sklearn.neighbors import KernelDensity
from sklearn.utils._param_validation import Interval

from sklearn_ood.base import BaseDetector


class KDEDetector(BaseDetector):
    """Log-density of a Gaussian kernel density estimate: higher = more normal."""

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "bandwidth": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, *, bandwidth=1.0, contamination="auto"):
        self.bandwidth = bandwidth
        self.contamination = contamination

    def _fit(self, X, y, X_outliers):
        # Calibration scores: each row scored by a model fitted without it.
        scores = np.empty(X.shape[0])
        for fit_rows, held_out in KFold(n_splits=min(5, X.shape[0])).split(X):
            kde = KernelDensity(bandwidth=self.bandwidth).fit(X[fit_rows])
            scores[held_out] = kde.score_samples(X[held_out])
        self.kde_ = KernelDensity(bandwidth=self.bandwidth).fit(X)
        return scores

    def _score(self, X):
        return self.kde_.score_samples(X)
