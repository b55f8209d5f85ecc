"""Conformal calibration: a guaranteed false-positive rate, and FDR control for batches.

Every detector's ``p_values`` compare new scores with its calibration scores
(:mod:`sklearn_ood.base`). How exactly a p-value is calibrated depends on how
those calibration scores were obtained:

- **held out** (split conformal): the model never saw the calibration rows, so
  for a new sample exchangeable with them ``P(p <= alpha) <= alpha`` exactly,
  at any sample size and dimension (Vovk, Gammerman & Shafer 2005);
- **leave-one-out / out-of-fold with one refitted model** (the detectors'
  default calibration): the new sample is scored by a model fitted on all rows,
  the calibration rows by models fitted without them. The rate is ``alpha`` up
  to the stability of the fit; without stability there is no distribution-free
  bound (Barber, Candes, Ramdas & Tibshirani 2021, the "jackknife" and "CV");
- **cross-conformal** (jackknife+ / CV+): each fold's model scores both its
  held-out rows and the new sample, so ``P(p <= alpha) <= 2 alpha + min(2 (1 -
  1/K) / (n/K + 1), (1 - K/n) / (K + 1))`` for ``K`` folds of ``n`` rows
  (Barber et al. 2021, Theorem 4; ``K = n`` is the jackknife+, bound ``2
  alpha``), and in practice about ``alpha``.

:class:`ConformalDetector` wraps any detector (or Pipeline) with the first or
the third construction. :func:`benjamini_hochberg` screens a batch of p-values
with a controlled false discovery rate (Bates, Candes, Lei, Romano & Sesia
2023).
"""

from __future__ import annotations

from math import ceil
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
    validate_params,
)
from sklearn.utils.validation import check_is_fitted

from ._meta import MetaDetector, featurize, fit_rows, join
from .base import CONTAMINATION_CONSTRAINT
from .utils._folds import inlier_folds

__all__ = ["ConformalDetector", "benjamini_hochberg"]

# Comparisons of fractions computed in floating point (conformal p-values are
# (1 + j) / (n + 1)): values equal as fractions may differ by a few ulps.
_RTOL = 4 * np.finfo(np.float64).eps


class ConformalDetector(MetaDetector):
    """Detector with a conformal threshold: a guaranteed false-positive rate.

    Split conformal (``method="split"``): a clone of ``detector`` is fitted on
    part of the in-distribution training rows, and its scores of the other
    rows, which it never saw, are the calibration scores. ``predict`` flags a
    sample exactly when its conformal p-value is at most ``contamination``, so
    a new normal sample (exchangeable with the training rows) is flagged with
    probability at most ``contamination`` whatever the detector, the sample
    size and the dimension, and at least ``contamination - 1 / (n_cal + 1)``.

    Cross-conformal (``method="cross"``): ``n_folds`` clones, each fitted
    without one fold of the in-distribution rows and scoring that fold; a new
    sample is compared with each fold's scores by that fold's model. Every row
    calibrates and every model sees most rows, at the price of a weaker bound
    (see Notes).

    Parameters
    ----------
    detector : estimator with ``fit`` and ``score_samples``
        The detector, or a Pipeline ending in one. Leading Pipeline steps
        whose ``fit`` learns nothing (``fit_learns_from_data = False``, as
        :class:`~sklearn_ood.TorchFeatureExtractor`) transform ``X`` once;
        the rest is cloned and fitted.
    calibration_size : float in (0, 1) or int, default=0.5
        ``method="split"``: the share (rounded up) or the number of
        in-distribution rows held out for calibration. More calibration rows
        give finer p-values; more fitting rows a better detector.
    contamination : "auto" or float in (0, 0.5], default="auto"
        The guaranteed bound on the share of new normal samples that
        ``predict`` flags; ``"auto"`` is 0.025.
    method : {"split", "cross"}, default="split"
        Split conformal (exact guarantee) or cross-conformal (every row
        calibrates, bound ``2 contamination`` plus a small term, see Notes).
    n_folds : int, default=5
        ``method="cross"``: the number of folds (at least 2, at most the
        number of in-distribution rows, which gives the jackknife+).
    random_state : int, RandomState instance or None, default=None
        The random split into fitting and calibration rows, or the folds.

    Attributes
    ----------
    estimator_ : estimator
        ``method="split"``: the detector (or Pipeline) fitted on the fitting
        rows; ``score_samples`` is its.
    estimators_ : list of estimators
        ``method="cross"``: the detector fitted without each fold.
    calibration_scores_ : ndarray of shape (n_calibration,)
        ``method="split"``: the scores of the held-out rows;
        ``method="cross"``: the out-of-fold score of every in-distribution
        row (row order), each by the model fitted without its fold.
    offset_ : float
        ``decision_function = score_samples - offset_``; ``predict`` flags
        ``score_samples < offset_``, which is ``p_values <= contamination``.
    n_features_in_ : int
        Number of features seen during fit (from the fitted detector).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    benjamini_hochberg : Screen a batch of p-values with FDR control.
    sklearn_ood.model_selection.TunedThresholdDetectorCV : Threshold tuned on
        out-of-fold scores, with known outliers.

    Notes
    -----
    Rows labelled ``-1`` in ``y`` are passed on to the detector's ``fit``
    (with ``y``) and never calibrate.

    ``method="split"``: ``score_samples`` is the fitted detector's, and with
    ``n_cal`` calibration scores and ``k = floor(c (n_cal + 1))``, ``offset_``
    is the ``k``-th smallest of them. For continuous scores the probability
    that a new normal sample is flagged is exactly ``k / (n_cal + 1)``,
    averaged over the random calibration set (Vovk et al. 2005; Bates et al.
    2023).

    ``method="cross"``: ``score_samples`` is the cross-conformal p-value ``p(x)
    = (1 + sum_k #{i in fold k: s_i^(k) <= s^(k)(x)}) / (n + 1)``, where
    ``s^(k)`` is the score of the model fitted without fold ``k`` and ``n``
    the number of in-distribution rows; ``p_values`` equals it and
    ``offset_`` lies between the p-value grid points, so ``predict`` flags
    ``p(x) <= contamination``. Barber et al. (2021, Theorem 4) bound the
    probability that a new normal sample is flagged by ``2 c + min(2 (1 -
    1/K) / (n/K + 1), (1 - K/n) / (K + 1))``; for detectors whose fit is
    stable under the removal of a fold it is close to ``c``.

    ``fit_predict(X)`` flags ``floor(c n)`` in-distribution training rows:
    by their calibration scores (``"cross"``), or by ``score_samples``
    (``"split"``, where the fitting rows are memorised).

    References
    ----------
    .. [1] V. Vovk, A. Gammerman, G. Shafer. "Algorithmic Learning in a Random
       World". Springer, 2005.
    .. [2] S. Bates, E. Candes, L. Lei, Y. Romano, M. Sesia. "Testing for
       outliers with conformal p-values". Annals of Statistics 51(1), 2023.
    .. [3] R. F. Barber, E. Candes, A. Ramdas, R. Tibshirani. "Predictive
       inference with the jackknife+". Annals of Statistics 49(1), 2021.
    .. [4] V. Vovk. "Cross-conformal predictors". Annals of Mathematics and
       Artificial Intelligence 74, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KNNDetector
    >>> from sklearn_ood.conformal import ConformalDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(400, 2))
    >>> det = ConformalDetector(KNNDetector(), contamination=0.05, random_state=0)
    >>> det = det.fit(X)
    >>> det.calibration_scores_.shape  # half of the rows calibrate
    (200,)
    >>> det.predict([[0.0, 0.0], [4.0, 4.0]])
    array([ 1, -1])
    >>> X_new = rng.normal(size=(4000, 2))  # new normal data: about 5% flagged
    >>> bool(np.mean(det.predict(X_new) == -1) < 0.07)
    True
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit", "score_samples"])],
        "calibration_size": [
            Interval(RealNotInt, 0.0, 1.0, closed="neither"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "contamination": CONTAMINATION_CONSTRAINT,
        "method": [StrOptions({"split", "cross"})],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        detector: Any,
        *,
        calibration_size: float | int = 0.5,
        contamination: str | float = "auto",
        method: str = "split",
        n_folds: int = 5,
        random_state: int | np.random.RandomState | None = None,
    ):
        self.detector = detector
        self.calibration_size = calibration_size
        self.contamination = contamination
        self.method = method
        self.n_folds = n_folds
        self.random_state = random_state

    # ----------------------------------------------------------------- fit
    def _fit(self, X, y, is_outlier):
        inliers = np.flatnonzero(~is_outlier)
        outliers = np.flatnonzero(is_outlier)
        if inliers.size < 2:
            raise ValueError(
                "ConformalDetector needs at least 2 in-distribution samples (one "
                f"to fit, one to calibrate), got {inliers.size} sample"
                f"{'s' if inliers.size != 1 else ''}."
            )
        rng = check_random_state(self.random_state)
        feat = featurize(self.detector, X)
        for attr in ("estimator_", "estimators_"):
            self.__dict__.pop(attr, None)
        if self.method == "split":
            self._fit_split(feat, y, inliers, outliers, rng)
        else:
            self._fit_cross(feat, y, inliers, outliers, rng)

    def _fit_split(self, feat, y, inliers, outliers, rng):
        n_in = inliers.size
        size = self.calibration_size
        n_cal = int(size) if isinstance(size, Integral) else ceil(size * n_in)
        if not 1 <= n_cal <= n_in - 1:
            raise ValueError(
                f"The 'calibration_size' parameter of ConformalDetector asks for "
                f"{n_cal} calibration rows out of {n_in} in-distribution rows; "
                "at least one row must calibrate and one fit the detector."
            )
        perm = rng.permutation(n_in)
        cal_pos, fit_pos = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
        train = np.sort(np.r_[inliers[fit_pos], outliers])
        tail = fit_rows(clone(feat.tail), feat.X, y, train)
        cal = tail.score_samples(_safe_indexing(feat.X, inliers[cal_pos]))
        self.estimator_ = join(feat.prefix, tail)
        self._prefix, self._tails = None, None
        self._set_calibration(cal, rows=cal_pos)

    def _fit_cross(self, feat, y, inliers, outliers, rng):
        n_in, k = inliers.size, self.n_folds
        if k > n_in:
            raise ValueError(
                f"The 'n_folds' parameter of ConformalDetector is {k}, more than "
                f"the {n_in} in-distribution rows."
            )
        oof = np.empty(n_in, dtype=np.float64)
        tails, folds = [], []
        for train, test in inlier_folds(k, rng, n_in):
            rows = np.sort(np.r_[inliers[train], outliers])
            tail = fit_rows(clone(feat.tail), feat.X, y, rows)
            oof[test] = tail.score_samples(_safe_indexing(feat.X, inliers[test]))
            tails.append(tail)
            folds.append(test)
        # offset_ on the p-value scale, between grid points (1 + j) / (n + 1):
        # the conformal offset of scores (j + 1.5) / (n + 1), j = 0..n-1,
        # against which a p-value (1 + m) / (n + 1) has exactly m scores <= it.
        grid = (np.arange(n_in) + 1.5) / (n_in + 1)
        offset = self._offset_from_scores(grid)
        self._store_calibration(oof)
        self._fold_scores = [np.sort(oof[test]) for test in folds]
        self._prefix, self._tails = feat.prefix, tails
        self.estimators_ = [join(feat.prefix, t) for t in tails]
        self.offset_ = offset

    def _fitted_detector(self):
        if hasattr(self, "estimators_"):
            return self.estimators_[0]
        return self.estimator_

    # ------------------------------------------------------------- scoring
    def score_samples(self, X) -> np.ndarray:
        """Score samples: higher means more normal.

        Parameters
        ----------
        X : array-like
            Samples, in the layout the detector was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
            ``method="split"``: the fitted detector's ``score_samples``;
            ``method="cross"``: the cross-conformal p-values.
        """
        check_is_fitted(self)
        if self._tails is None:
            return super().score_samples(X)
        F = X if self._prefix is None else self._prefix.transform(X)
        below = 0
        for tail, cal in zip(self._tails, self._fold_scores):
            s = np.asarray(tail.score_samples(F), dtype=np.float64)
            below = below + np.searchsorted(cal, s, side="right")
        return (1.0 + below) / (self.calibration_scores_.size + 1.0)

    def p_values(self, X) -> np.ndarray:
        """Conformal p-values of samples: low values are unusual samples.

        Parameters
        ----------
        X : array-like
            Samples.

        Returns
        -------
        p_values : ndarray of shape (n_samples,)
            ``method="split"``: ``(1 + #{calibration scores <= score}) / (n_cal
            + 1)``; ``method="cross"``: the cross-conformal p-values (equal to
            ``score_samples``). Values in ``[1 / (n + 1), 1]``.
        """
        check_is_fitted(self)
        if self._tails is None:
            return super().p_values(X)
        return self.score_samples(X)


@validate_params(
    {
        "p_values": ["array-like"],
        "q": [Interval(Real, 0.0, 1.0, closed="neither")],
        "method": [StrOptions({"bh", "storey"})],
        "lambda_": [Interval(Real, 0.0, 1.0, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def benjamini_hochberg(p_values, q=0.1, *, method="bh", lambda_=0.5) -> np.ndarray:
    """Flag the samples of a batch with a controlled false discovery rate.

    Benjamini-Hochberg: with ``p_(1) <= ... <= p_(m)`` the sorted p-values and
    ``k`` the largest index with ``p_(k) <= q k / m``, flag every sample with a
    p-value at most ``p_(k)`` (none if there is no such ``k``). For conformal
    p-values of a batch of new samples scored against the same calibration
    scores (``ConformalDetector(method="split").p_values``), the expected share
    of normal samples among the flagged ones is at most ``q m_0 / m <= q``
    (``m_0`` normal samples in the batch): the p-values are positively
    dependent (PRDS), and BH controls the FDR under PRDS (Bates et al. 2023,
    Theorem 4).

    Parameters
    ----------
    p_values : array-like of shape (n_samples,)
        P-values in ``[0, 1]``, e.g. :meth:`ConformalDetector.p_values` of a
        batch.
    q : float in (0, 1), default=0.1
        Target false discovery rate.
    method : {"bh", "storey"}, default="bh"
        ``"storey"``: Storey's adaptive variant, BH at level ``q / pi0`` with
        ``pi0 = min(1, (1 + #{p > lambda_}) / (m (1 - lambda_)))`` the
        estimated share of normal samples; more discoveries when a large
        share of the batch is outliers. Its FDR control is proved for
        independent p-values only; for conformal p-values it held in our
        simulations (see the user guide, "Choosing a threshold").
    lambda_ : float in (0, 1), default=0.5
        Storey's ``lambda``, used by ``method="storey"``.

    Returns
    -------
    flagged : ndarray of shape (n_samples,), dtype bool
        True for the samples to flag as outliers.

    See Also
    --------
    ConformalDetector : Conformal p-values with an exact guarantee.
    scipy.stats.false_discovery_control : BH-adjusted p-values.

    Notes
    -----
    Conformal p-values are fractions ``(1 + j) / (n + 1)``: comparisons treat
    values within a relative ``4 eps`` as equal, so a p-value equal to ``q k /
    m`` as a fraction is flagged, as BH's ``<=`` asks.

    References
    ----------
    .. [1] Y. Benjamini, Y. Hochberg. "Controlling the false discovery rate: a
       practical and powerful approach to multiple testing". JRSS B 57, 1995.
    .. [2] J. D. Storey, J. E. Taylor, D. Siegmund. "Strong control,
       conservative point estimation and simultaneous conservative consistency
       of false discovery rates". JRSS B 66, 2004.
    .. [3] S. Bates, E. Candes, L. Lei, Y. Romano, M. Sesia. "Testing for
       outliers with conformal p-values". Annals of Statistics 51(1), 2023.

    Examples
    --------
    >>> from sklearn_ood.conformal import benjamini_hochberg
    >>> benjamini_hochberg([0.001, 0.02, 0.03, 0.5, 0.9], q=0.1)
    array([ True,  True,  True, False, False])
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(
            "The 'p_values' parameter of benjamini_hochberg must be 1-D; got an "
            f"array of shape {p.shape}."
        )
    if not np.all((p >= 0.0) & (p <= 1.0)):  # also refuses NaN
        raise ValueError(
            "The 'p_values' parameter of benjamini_hochberg must hold values in "
            f"[0, 1]; got values in [{np.nanmin(p)}, {np.nanmax(p)}]"
            + (" and NaN." if np.isnan(p).any() else ".")
        )
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    level = float(q)
    if method == "storey":
        pi0 = (1.0 + np.sum(p > lambda_)) / (m * (1.0 - lambda_))
        level = level / min(1.0, pi0)
    ps = np.sort(p)
    ok = ps * m <= level * np.arange(1, m + 1) * (1.0 + _RTOL)
    if not ok.any():
        return np.zeros(m, dtype=bool)
    cut = ps[np.flatnonzero(ok)[-1]]
    return p <= cut
