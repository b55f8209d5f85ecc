"""The outlier-detection contract, written once: base classes for detectors.

Every sklearn-ood detector follows scikit-learn's outlier convention, exactly as
:class:`~sklearn.ensemble.IsolationForest`:

- ``score_samples(X)``: higher means more normal (in-distribution);
- ``decision_function(X) = score_samples(X) - offset_``: negative for outliers;
- ``predict(X)``: ``+1`` for inliers and ``-1`` for outliers (int);
- ``contamination``: ``"auto"`` (:data:`AUTO_CONTAMINATION`, 2.5%) or a float in
  ``(0, 0.5]``.

Calibration: one meaning of ``contamination``
--------------------------------------------
A detector keeps the scores of its training rows computed by a model that did
not memorise them: leave-one-out (Mahalanobis, k-nearest neighbours),
out-of-fold (composites) or a held-out share (detectors that train a network).
These are its *calibration scores*, ``calibration_scores_``. For new data drawn
like the training data they are distributed like the scores of new normal
samples, which gives every decision a known false-positive rate:

- :meth:`~OutlierContractMixin.p_values` is the conformal p-value of a new
  sample against the ``n`` calibration scores,
  ``p(x) = (1 + #{calibration scores <= score(x)}) / (n + 1)``: small when the
  sample scores lower than most normal training samples;
- ``contamination = c`` is the share of new normal samples that ``predict``
  flags: ``predict(x) == -1`` exactly when ``p(x) <= c``, i.e. ``offset_`` is
  the ``k``-th smallest calibration score with ``k = floor(c (n + 1))``. With
  held-out calibration scores (exchangeable with new normal data) the share of
  new normal samples flagged is at most ``c`` and at least ``c - 1 / (n + 1)``
  (split conformal). Leave-one-out and out-of-fold scores come from models
  fitted on ``n - 1`` (or ``(1 - 1/k) n``) rows while new samples are scored by
  the model fitted on all ``n``: this is the plain jackknife / cross-validation
  rule, whose share is ``c`` up to the stability of the fit but has no
  distribution-free bound (for Mahalanobis and kNN the difference is a
  rank-one update; measured within binomial error of ``c`` on Fashion-MNIST
  features, see the guide "Choosing a threshold"). For a guarantee with any
  detector use :class:`sklearn_ood.conformal.ConformalDetector` (split
  conformal: exact; ``method="cross"``: the jackknife+ / cross-conformal bound
  of Barber, Candes, Ramdas & Tibshirani 2021);
- :meth:`~OutlierContractMixin.fit_predict` flags exactly ``floor(c n)`` of the
  ``n`` training rows (ties aside), as IsolationForest does: row ``i`` is flagged
  when its own calibration score is among the lowest, i.e. when its p-value
  against the calibration scores of the other rows is at most ``c``. This is
  why ``fit(X).predict(X)``, which scores memorised rows, may flag fewer rows
  than ``fit_predict(X)`` (as :class:`~sklearn.neighbors.LocalOutlierFactor`
  with ``novelty=True``).

Labels
------
``fit(X, y)`` takes optional labels. ``y == -1`` marks a known outlier sample
(outlier exposure, out-of-distribution mining). Detectors that can learn from
such samples use them; the others leave them out of the fit. Every other label
is a class label (integers or strings), used by class-conditional detectors and
ignored by the others. ``y=None`` means one class.

Writing a detector
------------------
Subclass :class:`BaseDetector` and implement two hooks: ``_fit(X, y,
X_outliers)``, which fits and returns the calibration scores, and
``_score(X)``, which returns the scores of validated input. ``fit``,
``score_samples``, ``decision_function``, ``predict``, ``fit_predict`` and
``p_values`` come with the base class (see its Examples).
"""

from __future__ import annotations

import warnings
from math import floor
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .utils._labels import split_outlier_labels
from .utils._numeric import check_feature_range
from .utils._tensors import tensor_to_numpy

__all__ = [
    "AUTO_CONTAMINATION",
    "BaseDetector",
    "CalibrationWarning",
    "OutlierContractMixin",
    "conformal_p_values",
]

#: Share of new normal samples that ``predict`` flags when
#: ``contamination="auto"``: the 97.5th-percentile rule of Varedzhan et al.
AUTO_CONTAMINATION = 0.025

#: The ``contamination`` parameter constraint shared by every detector.
CONTAMINATION_CONSTRAINT = [
    StrOptions({"auto"}),
    Interval(Real, 0.0, 0.5, closed="right"),
]


class CalibrationWarning(UserWarning):
    """Warn that the calibration scores cannot give the requested false-positive rate.

    Raised when there are too few calibration scores for ``contamination``:
    with ``n`` scores no p-value is below ``1 / (n + 1)``.

    Examples
    --------
    >>> import warnings
    >>> from sklearn_ood.base import CalibrationWarning
    >>> warnings.filterwarnings("ignore", category=CalibrationWarning)
    """


def _share(contamination) -> float:
    return AUTO_CONTAMINATION if contamination == "auto" else float(contamination)


def conformal_p_values(calibration_scores, scores) -> np.ndarray:
    """Conformal p-values of ``scores`` against ``calibration_scores``.

    ``p = (1 + #{calibration scores <= score}) / (n + 1)`` (Vovk et al.;
    Bates et al. 2023), higher score = more normal, so a low p-value means a
    score lower than most calibration scores. For a new sample exchangeable
    with the calibration samples, ``P(p <= alpha) <= alpha`` for every
    ``alpha``.

    Parameters
    ----------
    calibration_scores : array-like of shape (n_calibration,)
        Scores of normal samples the model did not memorise.
    scores : array-like of shape (n_samples,)
        Scores to turn into p-values.

    Returns
    -------
    p_values : ndarray of shape (n_samples,)
        Values in ``[1 / (n + 1), 1]``.

    Examples
    --------
    >>> from sklearn_ood.base import conformal_p_values
    >>> conformal_p_values([1.0, 2.0, 3.0], [0.5, 2.0, 9.0])
    array([0.25, 0.75, 1.  ])
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())
    s = np.asarray(scores, dtype=np.float64)
    below = np.searchsorted(cal, s, side="right")
    return (1.0 + below) / (cal.size + 1.0)


def conformal_offset(calibration_scores, contamination, owner: str = "detector"):
    """The threshold ``t`` with ``score < t`` iff the p-value is at most ``c``.

    ``t`` is the ``k``-th smallest calibration score, ``k = floor(c (n + 1))``.
    With ``k = 0`` no p-value can be that small: a :class:`CalibrationWarning`
    says so and ``t`` is the smallest calibration score (p-value ``1 / (n +
    1)``).
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())
    n = cal.size
    c = _share(contamination)
    # floor(c * (n + 1)) with a guard against c * (n + 1) landing a rounding
    # error below an integer (0.1 * 30 = 3.0000000000000004 is fine, but
    # 0.7 * 10 = 6.999999999999999 must count as 7).
    k = floor(c * (n + 1) * (1.0 + 4 * np.finfo(np.float64).eps))
    if k < 1:
        warnings.warn(
            f"{owner} has {n} calibration score(s): no p-value is below "
            f"1/(n+1) = {1.0 / (n + 1):.3g}, so contamination={c:g} cannot be "
            "met; predict flags only samples scoring below every calibration "
            f"score. Fit on at least {int(np.ceil(1.0 / c)) - 1} in-distribution "
            "samples for this contamination.",
            CalibrationWarning,
            stacklevel=3,
        )
        k = 1
    return float(cal[k - 1])


def _training_flags(calibration_scores, contamination) -> np.ndarray:
    """Rows flagged by ``fit_predict``: exactly ``floor(c n)`` (ties aside).

    Row ``i`` is flagged when ``#{j: s_j <= s_i} <= c n``, its p-value against
    the calibration scores of the other rows, ``#{j: s_j <= s_i} / n``, being at
    most ``c``.
    """
    s = np.asarray(calibration_scores, dtype=np.float64)
    n = s.size
    m = floor(_share(contamination) * n * (1.0 + 4 * np.finfo(np.float64).eps))
    rank = np.searchsorted(np.sort(s), s, side="right")  # #{j: s_j <= s_i}
    return rank <= m


class OutlierContractMixin(OutlierMixin):
    """Mixin: the outlier contract from ``score_samples`` and calibration scores.

    Gives ``decision_function``, ``predict``, ``p_values`` and ``fit_predict``
    to any estimator that defines ``fit``, ``score_samples`` and, once fitted,
    ``offset_`` and ``calibration_scores_`` (see :mod:`sklearn_ood.base`).
    :class:`BaseDetector` and the meta-estimators of
    :mod:`sklearn_ood.model_selection` and :mod:`sklearn_ood.conformal` use it.

    Examples
    --------
    >>> from sklearn_ood import KNNDetector
    >>> from sklearn_ood.base import OutlierContractMixin
    >>> issubclass(KNNDetector, OutlierContractMixin)
    True
    """

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

    def p_values(self, X):
        """Conformal p-values of samples against the calibration scores.

        ``p(x) = (1 + #{calibration scores <= score(x)}) / (n + 1)`` with ``n =
        len(calibration_scores_)``: the share of normal training samples, scored
        without being memorised, that score at most as high as ``x``. A new
        normal sample gets ``p <= alpha`` with probability at most ``alpha``
        for held-out calibration (see :mod:`sklearn_ood.base`).

        Parameters
        ----------
        X : array-like
            Samples.

        Returns
        -------
        p_values : ndarray of shape (n_samples,)
            Values in ``[1 / (n + 1), 1]``; low values are unusual samples.
        """
        check_is_fitted(self, "calibration_scores_")
        return conformal_p_values(self.calibration_scores_, self.score_samples(X))

    def fit_predict(self, X, y=None, **kwargs):
        """Fit on ``X`` (and ``y``) and flag the training rows that are outliers.

        Exactly ``floor(contamination * n)`` of the ``n`` in-distribution rows
        are flagged (ties aside), those with the lowest calibration scores
        (scores from a model that did not memorise them), as
        :meth:`sklearn.ensemble.IsolationForest.fit_predict` flags its share.
        Rows labelled ``-1`` in ``y`` are predicted by the fitted model. Unlike
        :meth:`sklearn.base.OutlierMixin.fit_predict`, ``y`` is passed on to
        ``fit``.

        Parameters
        ----------
        X : array-like
            Training data.
        y : array-like of shape (n_samples,), default=None
            Class labels; ``-1`` marks a known outlier sample.
        **kwargs
            Passed on to ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
            ``+1`` for inliers, ``-1`` for outliers.
        """
        self.fit(X, y, **kwargs)
        return self._fit_predict_labels(X, y)

    def _fit_predict_labels(self, X, y):
        n = _num_rows(X)
        _, outlier_mask = split_outlier_labels(y, n)
        inliers = np.flatnonzero(~outlier_mask)
        rows = getattr(self, "_calibration_rows", None)
        labels = np.ones(n, dtype=int)
        if rows is None:  # a calibration score for every inlier row
            flags = self._fit_predict_flags(self.calibration_scores_)
        else:
            # Only some rows have calibration scores (a held-out share): rank
            # every inlier row by its score, as IsolationForest does.
            scores = self.score_samples(_take_rows(X, inliers))
            flags = self._fit_predict_flags(scores)
        labels[inliers[flags]] = -1
        if outlier_mask.any():
            labels[outlier_mask] = self.predict(
                _take_rows(X, np.flatnonzero(outlier_mask))
            )
        return labels

    def _fit_predict_flags(self, scores) -> np.ndarray:
        """Training rows that ``fit_predict`` flags, given one score per row.

        ``floor(contamination * n)`` rows (ties aside). Meta-estimators without
        ``contamination`` (the threshold wrappers) flag the rows scoring below
        ``offset_`` instead.
        """
        return _training_flags(scores, self.contamination)

    def _offset_from_scores(self, scores) -> float:
        """``offset_`` for the calibration scores ``scores`` (validated, not stored)."""
        scores = self._check_calibration_scores(scores)
        return conformal_offset(scores, self.contamination, type(self).__name__)

    def _check_calibration_scores(self, scores) -> np.ndarray:
        """Calibration scores as a finite, non-empty float64 vector, or a ValueError."""
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.size == 0:
            raise ValueError(
                f"{type(self).__name__} has no calibration scores to set offset_."
            )
        if not np.all(np.isfinite(scores)):
            bad = int(np.sum(~np.isfinite(scores)))
            raise ValueError(
                f"{type(self).__name__} computed {bad} non-finite calibration "
                "score(s) from the training data. The features are probably "
                "degenerate (constant, or values too extreme for the "
                "computation); check the input or choose a regularised setting."
            )
        return scores

    def _store_calibration(self, scores, rows=None) -> None:
        """Store validated calibration scores (and their rows), not ``offset_``."""
        self.calibration_scores_ = self._check_calibration_scores(scores)
        self._calibration_rows = None if rows is None else np.asarray(rows)

    def _set_calibration(self, scores, rows=None) -> None:
        """Store calibration scores and set ``offset_`` from ``contamination``.

        ``rows``: indices of the in-distribution training rows the scores
        belong to, when not every row has one (``None``: all rows, in order).
        """
        offset = self._offset_from_scores(scores)
        self._store_calibration(scores, rows)
        self.offset_ = offset


def _num_rows(X) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


def _take_rows(X, rows):
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if isinstance(X, list):
        return [X[i] for i in rows]
    if type(X).__module__.startswith("torch"):
        import torch

        return X[torch.as_tensor(rows, dtype=torch.long)]
    return np.asarray(X)[rows] if not hasattr(X, "shape") else X[rows]


class BaseDetector(OutlierContractMixin, BaseEstimator):
    """Base class of sklearn-ood detectors: the outlier contract in one place.

    Subclasses declare their parameters (``contamination`` among them, with
    ``BaseDetector._parameter_constraints``) and implement two hooks:

    - ``_fit(X, y, X_outliers)``: fit on the in-distribution rows ``X`` (class
      labels ``y`` or None) and the known outlier rows ``X_outliers`` (rows
      labelled ``-1``, or None); return the *calibration scores*: one score per
      row of ``X`` from a model that did not memorise that row (leave-one-out,
      out-of-fold), or a pair ``(scores, rows)`` when only the rows ``rows`` of
      ``X`` have one (a held-out share);
    - ``_score(X)``: scores of validated input, higher = more normal.

    ``fit`` validates the input (2-D float features; torch tensors are copied
    to NumPy; float32 features whose squares could overflow are promoted to
    float64, features whose squares overflow float64 are refused), splits the
    labels, calls ``_fit`` and sets ``calibration_scores_`` and ``offset_``.
    Override ``_validate_fit_input`` / ``_validate_score_input`` for input that
    is not a 2-D feature matrix.

    Examples
    --------
    A detector in a few lines: the distance to the training mean, with
    leave-one-out calibration scores (the mean of the other rows).

    >>> import numpy as np
    >>> from sklearn_ood.base import BaseDetector
    >>> class MeanDistance(BaseDetector):
    ...     def __init__(self, *, contamination="auto"):
    ...         self.contamination = contamination
    ...     def _fit(self, X, y, X_outliers):
    ...         n = X.shape[0]
    ...         self.mean_ = X.mean(axis=0)
    ...         loo_means = (n * self.mean_ - X) / (n - 1)
    ...         return -np.sum((X - loo_means) ** 2, axis=1)
    ...     def _score(self, X):
    ...         return -np.sum((X - self.mean_) ** 2, axis=1)
    >>> X = np.random.RandomState(0).normal(size=(200, 2))
    >>> det = MeanDistance(contamination=0.05).fit(X)
    >>> det.predict([[0.0, 0.0], [5.0, 5.0]])
    array([ 1, -1])
    >>> int((det.fit_predict(X) == -1).sum())  # floor(0.05 * 200)
    10
    """

    _parameter_constraints: dict = {"contamination": CONTAMINATION_CONSTRAINT}

    #: Minimum number of inlier rows ``fit`` accepts.
    _min_samples = 2
    #: Promote float32 input too small to square in float32 to float64 (for
    #: detectors that rank by float32 dot products; see check_feature_range).
    _promote_tiny_float32 = False

    # -- input validation -------------------------------------------------
    # Finiteness is checked by check_feature_range with the range, in the same
    # pass (validate_data's own pass is off), so input that has both a NaN and
    # the wrong number of features gets the feature-count error first
    # (scikit-learn's validate_data reports the NaN first).
    def _validate_fit_input(self, X, reset=True):
        X = validate_data(
            self,
            tensor_to_numpy(X),
            dtype=[np.float64, np.float32],
            ensure_min_samples=1,
            ensure_all_finite=False,  # checked with the range, in one pass
            reset=reset,
        )
        return check_feature_range(
            X, promote_tiny=self._promote_tiny_float32, estimator=self
        )

    def _validate_score_input(self, X):
        X = validate_data(
            self,
            tensor_to_numpy(X),
            dtype=[np.float64, np.float32],
            ensure_all_finite=False,  # checked with the range, in one pass
            reset=False,
        )
        return check_feature_range(
            X, promote_tiny=self._promote_tiny_float32, estimator=self
        )

    # -- the contract -----------------------------------------------------
    # Nested validation stays on: composites fit clones of user estimators.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the detector and calibrate ``offset_``.

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
        y_in, outlier_mask = split_outlier_labels(y, _num_rows(X))
        has_out = bool(outlier_mask.any())
        X_in = _take_rows(X, np.flatnonzero(~outlier_mask)) if has_out else X
        X_out = _take_rows(X, np.flatnonzero(outlier_mask)) if has_out else None
        n_in = _num_rows(X_in)
        if n_in < self._min_samples:
            raise ValueError(
                f"{type(self).__name__} needs at least {self._min_samples} "
                f"in-distribution samples, got {n_in} sample"
                f"{'s' if n_in != 1 else ''}."
            )
        result = self._fit(X_in, y_in, X_out)
        scores, rows = result if isinstance(result, tuple) else (result, None)
        self._set_calibration(scores, rows)
        return self

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

    # -- hooks --------------------------------------------------------------
    def _fit(self, X, y, X_outliers):  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X):  # pragma: no cover - abstract
        raise NotImplementedError
