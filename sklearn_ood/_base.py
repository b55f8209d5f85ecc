"""The outlier-detection contract shared by every sklearn-ood detector.

Every detector follows scikit-learn's outlier convention, exactly as
:class:`~sklearn.ensemble.IsolationForest`:

- ``score_samples(X)``: higher means more normal (in-distribution);
- ``decision_function(X) = score_samples(X) - offset_``: negative for outliers;
- ``predict(X)``: ``+1`` for inliers and ``-1`` for outliers (int);
- ``contamination``: ``"auto"`` or a float in ``(0, 0.5]``.

How ``offset_`` is set
----------------------
``offset_`` is a percentile of scores of the training samples, computed so that
the training samples are scored *as if they were new data*: leave-one-out for
the Mahalanobis and k-nearest-neighbour detectors (a sample is not its own
neighbour), out-of-fold for the others. With ``contamination=c`` the offset is
the ``100 * c``-th percentile of those scores; ``"auto"`` uses ``c = 0.025``,
the 97.5th-percentile rule of Varedzhan et al. (2021). So about ``c`` of the
data the detector was fitted on, seen as new data, is flagged. Because
``predict`` on the training samples themselves scores them with a model that
has seen them, fewer than ``c`` of the *training* rows may be flagged by
``fit(X).predict(X)``; this is intended (it is the novelty-detection reading of
``contamination``).

Labels
------
``fit(X, y)`` takes optional labels. ``y == -1`` marks a known outlier sample
(outlier exposure, out-of-distribution mining). Detectors that can learn from
such samples use them; the others leave them out of the fit. Every other label
is a class label (integers or strings), used by class-conditional detectors and
ignored by the others. ``y=None`` means one class.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_is_fitted,
    column_or_1d,
    validate_data,
)

__all__ = ["AUTO_CONTAMINATION", "BaseDetector", "split_outlier_labels"]

#: Share of the (not memorised) training scores below ``offset_`` when
#: ``contamination="auto"``: the 97.5th-percentile rule of Varedzhan et al.
AUTO_CONTAMINATION = 0.025


def split_outlier_labels(y, n_samples: int):
    """Validate labels and separate known outliers (``-1``) from class labels.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or None
        Class labels; numeric ``-1`` marks a known outlier sample.
    n_samples : int
        Number of rows of ``X``.

    Returns
    -------
    y_inliers : ndarray or None
        Labels of the inlier rows (``None`` when ``y`` is None).
    outlier_mask : ndarray of bool, shape (n_samples,)
        True where ``y == -1``.
    """
    if y is None:
        return None, np.zeros(n_samples, dtype=bool)
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n_samples:
        raise ValueError(
            f"y has {y.shape[0]} labels but X has {n_samples} samples; they must "
            "have the same length."
        )
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity; labels must be finite.")
        outlier_mask = y == -1
    elif y.dtype.kind in "iub":
        outlier_mask = y == -1
    elif y.dtype.kind in "OUS":
        # Strings are class names; a numeric -1 inside an object array still
        # marks an outlier sample.
        outlier_mask = np.array(
            [
                isinstance(v, (int, float, np.integer, np.floating)) and v == -1
                for v in y
            ],
            dtype=bool,
        )
        if y.dtype.kind == "O":
            kinds = {type(v) for v in y[~outlier_mask]}
            if len(kinds) > 1 and not all(
                issubclass(k, (int, np.integer)) for k in kinds
            ):
                raise TypeError(
                    "y mixes label types "
                    f"{sorted(k.__name__ for k in kinds)}; use one type for class "
                    "labels (and the number -1 for known outliers)."
                )
    else:
        raise TypeError(f"y must hold class labels (int or str); got dtype {y.dtype}.")
    return y[~outlier_mask], outlier_mask


class BaseDetector(OutlierMixin, BaseEstimator):
    """Base class of sklearn-ood detectors: the outlier contract in one place.

    Subclasses implement

    - ``_fit(X, y, X_outliers)`` -> training scores used for ``offset_``: one
      score per row of ``X`` computed by a model that did not see that row
      (leave-one-out or out-of-fold); ``X`` and ``y`` hold the inlier rows only,
      ``X_outliers`` the rows labelled ``-1`` (or None);
    - ``_score(X)`` -> scores of validated input, higher = more normal.

    They may override ``_validate_fit_input`` / ``_validate_score_input`` for
    input that is not a 2-D feature matrix (images).
    """

    _parameter_constraints: dict = {
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0.0, 0.5, closed="right"),
        ],
    }

    #: Minimum number of inlier rows ``fit`` accepts.
    _min_samples = 2

    # -- input validation -------------------------------------------------
    def _validate_fit_input(self, X, reset=True):
        # Torch tensors (CPU or GPU) are accepted and copied to NumPy.
        from .parallel import tensor_to_numpy

        return validate_data(
            self,
            tensor_to_numpy(X),
            dtype=[np.float64, np.float32],
            ensure_min_samples=1,
            reset=reset,
        )

    def _validate_score_input(self, X):
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    # -- the contract -----------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the detector.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (in-distribution samples, plus known outliers when
            ``y`` marks them with ``-1``).
        y : array-like of shape (n_samples,), default=None
            Class labels; ``-1`` marks a known outlier sample. Ignored by
            unsupervised detectors (except that ``-1`` rows are left out).

        Returns
        -------
        self : object
            The fitted detector.
        """
        X = self._validate_fit_input(X)
        y_in, outlier_mask = split_outlier_labels(y, X.shape[0])
        X_in = X[~outlier_mask] if outlier_mask.any() else X
        X_out = X[outlier_mask] if outlier_mask.any() else None
        n_in = X_in.shape[0]
        if n_in < self._min_samples:
            raise ValueError(
                f"{type(self).__name__} needs at least {self._min_samples} "
                f"in-distribution samples, got {n_in} sample"
                f"{'s' if n_in != 1 else ''}."
            )
        train_scores = np.asarray(self._fit(X_in, y_in, X_out), dtype=np.float64)
        self.offset_ = self._offset_from_scores(train_scores)
        return self

    def _offset_from_scores(self, scores) -> float:
        if not np.all(np.isfinite(scores)):
            raise RuntimeError(
                f"{type(self).__name__} produced non-finite training scores; "
                "please report this with the data shape and parameters."
            )
        share = (
            AUTO_CONTAMINATION
            if self.contamination == "auto"
            else float(self.contamination)
        )
        return float(np.percentile(scores, 100.0 * share))

    def score_samples(self, X):
        """Score samples: higher means more normal (in-distribution).

        Parameters
        ----------
        X : array-like
            Samples to score, in the layout the detector was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
            Normality scores.
        """
        check_is_fitted(self)
        X = self._validate_score_input(X)
        return np.asarray(self._score(X), dtype=np.float64)

    def decision_function(self, X):
        """Shifted score: ``score_samples(X) - offset_``; negative = outlier.

        Parameters
        ----------
        X : array-like
            Samples to score.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            Negative values are outliers, non-negative values inliers.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Predict whether samples are inliers (+1) or outliers (-1).

        Parameters
        ----------
        X : array-like
            Samples to classify.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
            ``+1`` for inliers, ``-1`` for outliers.
        """
        decision = self.decision_function(X)
        labels = np.ones(decision.shape[0], dtype=int)
        labels[decision < 0] = -1
        return labels

    def fit_predict(self, X, y=None):
        """Fit the detector on ``X`` (and ``y``), then predict ``X``.

        Unlike :meth:`sklearn.base.OutlierMixin.fit_predict`, the labels are
        passed on to :meth:`fit` (class-conditional detectors and ``-1`` rows
        use them).

        Parameters
        ----------
        X : array-like
            Training data.
        y : array-like of shape (n_samples,), default=None
            Class labels; ``-1`` marks a known outlier sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
            ``+1`` for inliers, ``-1`` for outliers.
        """
        return self.fit(X, y).predict(X)

    # -- hooks --------------------------------------------------------------
    def _fit(self, X, y, X_outliers):  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X):  # pragma: no cover - abstract
        raise NotImplementedError
