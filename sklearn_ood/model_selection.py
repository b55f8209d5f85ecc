"""Decision thresholds of OOD detectors: fixed, or tuned by cross-validation.

The two wrappers mirror scikit-learn's
:class:`~sklearn.model_selection.FixedThresholdClassifier` and
:class:`~sklearn.model_selection.TunedThresholdClassifierCV` for outlier
detectors: they keep the wrapped detector's ``score_samples`` and replace its
``offset_``, so that ``predict`` accepts a chosen share of in-distribution data
or maximises a detection metric. Both keep the outlier contract of
:mod:`sklearn_ood.base` (``decision_function = score_samples - offset_``,
``predict`` in {+1, -1}, ``p_values`` against their ``calibration_scores_``)
and accept any detector with ``fit`` and ``score_samples``, or a
:class:`~sklearn.pipeline.Pipeline` ending in one. Leading Pipeline steps whose
``fit`` learns nothing (``fit_learns_from_data = False``, e.g.
:class:`~sklearn_ood.TorchFeatureExtractor`) run once, not once per fold.

A target share of accepted in-distribution data (``target_tpr``) is turned into
a threshold by the conformal rule of :mod:`sklearn_ood.base`: with ``c = 1 -
target_tpr``, ``offset_`` is the ``floor(c (n + 1))``-th smallest of the ``n``
calibration scores, so ``predict`` flags a sample exactly when its p-value is
at most ``c``. For a guarantee on new data use
:class:`sklearn_ood.conformal.ConformalDetector`.

For the hyper-parameters of a detector use
:class:`~sklearn.model_selection.GridSearchCV` with the scorers of
:mod:`sklearn_ood.metrics` on data where ``y == -1`` marks OOD samples.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import (
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
    check_cv,
)
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._meta import MetaDetector, featurize, fit_rows, join
from .base import conformal_offset

__all__ = ["FixedThresholdDetector", "TunedThresholdDetectorCV"]

_SCORINGS = ("detection_accuracy", "balanced_accuracy", "accuracy", "f1")


def _offset_at_share(calibration_scores, share: float, owner: str) -> float:
    """Threshold flagging the samples whose conformal p-value is at most ``share``.

    ``share`` in ``[0, 1)``: 0 gives the lowest calibration score (every
    calibration sample accepted); a share above ``n / (n + 1)`` the highest.
    """
    cal = np.asarray(calibration_scores, dtype=np.float64)
    n = cal.size
    if share == 0.0:
        return float(cal.min())
    if share * (n + 1) >= n:
        return float(cal.max())
    return conformal_offset(cal, share, owner)


# ----------------------------------------------------------------- helpers
def _threshold_curve(scores, is_in, scoring):
    """Metric of every threshold ``score >= t`` over the distinct ``t``.

    Returns ``(values, objective)``: ``values`` the sorted distinct scores and
    ``objective[k]`` the metric when the samples with ``score >= values[k]``
    are accepted; the last entry (index ``len(values)``) accepts nothing.
    """
    values = np.unique(scores)
    cuts = np.r_[values, np.inf]
    s_in = np.sort(scores[is_in])
    s_out = np.sort(scores[~is_in])
    n_in, n_out = s_in.size, s_out.size
    if callable(scoring):
        y_true = np.where(is_in, 1, -1)
        objective = np.array(
            [float(scoring(y_true, np.where(scores >= t, 1, -1))) for t in cuts]
        )
        return values, objective
    tp = n_in - np.searchsorted(s_in, cuts, side="left")
    fp = n_out - np.searchsorted(s_out, cuts, side="left")
    return values, _metric_from_counts(tp, fp, n_in, n_out, scoring)


def _metric_from_counts(tp, fp, n_in: int, n_out: int, scoring) -> np.ndarray:
    """A named metric from the accepted in-distribution (``tp``) and OOD
    (``fp``) counts, elementwise (arrays of thresholds or one threshold)."""
    tp, fp = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    if scoring in ("detection_accuracy", "balanced_accuracy"):
        return 0.5 * (tp / n_in + (n_out - fp) / n_out)
    if scoring == "accuracy":
        return (tp + n_out - fp) / (n_in + n_out)
    # "f1", in-distribution positive: 2 tp / (2 tp + fp + fn), fn = n_in - tp
    denom = tp + n_in + fp
    return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _best_threshold(scores, is_in, scoring):
    """Threshold maximising ``scoring`` (ties: the most lenient) and its value.

    The returned threshold lies half-way between the lowest accepted score and
    the highest rejected one, so it accepts exactly the same samples as the
    best cut and does not sit on a training score.
    """
    values, objective = _threshold_curve(scores, is_in, scoring)
    k = int(np.argmax(objective))  # first maximum = the lowest threshold
    if k == 0:
        threshold = float(values[0])
    elif k == values.size:
        threshold = float(np.nextafter(values[-1], np.inf))
    else:
        lo, hi = float(values[k - 1]), float(values[k])
        threshold = 0.5 * (lo + hi)
        if not lo < threshold <= hi:  # adjacent floats
            threshold = hi
    return threshold, float(objective[k])


def _metric_at(scores, is_in, threshold, scoring):
    """The metric (or the TPR for ``scoring=None``) at one threshold."""
    accepted = scores >= threshold
    if scoring is None:
        return float(np.mean(accepted[is_in])) if is_in.any() else np.nan
    if is_in.all() or not is_in.any():
        return np.nan
    if callable(scoring):
        return float(scoring(np.where(is_in, 1, -1), np.where(accepted, 1, -1)))
    tp = np.sum(accepted & is_in)
    fp = np.sum(accepted & ~is_in)
    n_in, n_out = int(is_in.sum()), int((~is_in).sum())
    return float(_metric_from_counts(tp, fp, n_in, n_out, scoring))


class _ThresholdDetector(MetaDetector):
    """A wrapper whose ``offset_`` is a threshold, not set by ``contamination``."""

    def _fit_predict_flags(self, scores) -> np.ndarray:
        # fit_predict flags the training rows scoring below the threshold.
        return np.asarray(scores, dtype=np.float64) < self.offset_


# ------------------------------------------------------------------- fixed
class FixedThresholdDetector(_ThresholdDetector):
    """Detector with a threshold set by value or by a target share of inliers.

    Fits a clone of ``detector`` and sets ``offset_`` on its score scale:
    ``predict`` is ``+1`` where ``detector.score_samples(X) >= offset_``.

    Parameters
    ----------
    detector : estimator with ``fit`` and ``score_samples``
        The detector (or a Pipeline ending in one), cloned in ``fit``.
    threshold : float or None, default=None
        The threshold on ``score_samples``, used as ``offset_`` as it is. It
        must be finite.
    target_tpr : float in (0, 1] or None, default=None
        Share of in-distribution data to accept: ``offset_`` is set from the
        calibration scores (below) by the conformal rule with ``c = 1 -
        target_tpr`` (see :mod:`sklearn_ood.model_selection`); ``target_tpr=1``
        gives the lowest calibration score. ``threshold`` and ``target_tpr``
        cannot both be set; with neither, ``offset_`` is the fitted detector's
        own ``offset_``.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``detector``.
    offset_ : float
        The threshold: ``decision_function = score_samples - offset_``.
    calibration_scores_ : ndarray of shape (n_calibration,)
        The fitted detector's ``calibration_scores_`` (those of the last step
        of a Pipeline): scores of in-distribution training rows from a model
        that did not memorise them, for sklearn-ood detectors. For a detector
        without them (e.g. :class:`~sklearn.svm.OneClassSVM`) the in-sample
        scores of the in-distribution training rows, which are optimistic for
        detectors that memorise their training data: use
        :class:`TunedThresholdDetectorCV` (out-of-fold scores) there.
    n_features_in_ : int
        Number of features seen during fit (from ``estimator_``).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    TunedThresholdDetectorCV : Threshold from out-of-fold scores.
    sklearn_ood.conformal.ConformalDetector : Threshold with a guaranteed
        false-positive rate.
    sklearn.model_selection.FixedThresholdClassifier : The classifier version.

    Notes
    -----
    ``fit_predict(X)`` flags the training rows whose calibration score is below
    ``offset_`` (the rows of a held-out calibration share: every
    in-distribution row by its score), and the rows labelled ``-1`` by
    ``predict``; ``fit(X).predict(X)`` scores memorised rows and may flag
    fewer.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MahalanobisDetector
    >>> from sklearn_ood.model_selection import FixedThresholdDetector
    >>> X = np.random.RandomState(0).normal(size=(200, 2))
    >>> det = FixedThresholdDetector(MahalanobisDetector(), threshold=-9.0).fit(X)
    >>> det.offset_, det.predict([[0.0, 0.0], [4.0, 0.0]]).tolist()
    (-9.0, [1, -1])
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit", "score_samples"])],
        "threshold": [Interval(Real, None, None, closed="neither"), None],
        "target_tpr": [Interval(Real, 0, 1, closed="right"), None],
    }

    def __init__(
        self,
        detector: Any,
        *,
        threshold: float | None = None,
        target_tpr: float | None = None,
    ):
        self.detector = detector
        self.threshold = threshold
        self.target_tpr = target_tpr

    def _fit(self, X, y, is_outlier):
        if self.threshold is not None and self.target_tpr is not None:
            raise ValueError(
                "The 'threshold' and 'target_tpr' parameters of "
                "FixedThresholdDetector cannot both be set; got threshold="
                f"{self.threshold!r} and target_tpr={self.target_tpr!r}."
            )
        est = clone(self.detector)
        self.estimator_ = est.fit(X) if y is None else est.fit(X, y)
        final = est[-1] if isinstance(est, Pipeline) else est
        own = self.threshold is None and self.target_tpr is None
        if own and getattr(final, "offset_", None) is None:
            raise ValueError(
                f"{type(final).__name__} has no offset_ attribute; set the "
                "'threshold' or 'target_tpr' parameter of FixedThresholdDetector."
            )
        n_in = int(np.sum(~is_outlier))
        cal = getattr(final, "calibration_scores_", None)
        if cal is None:  # in-sample scores of the in-distribution rows
            inliers = np.flatnonzero(~is_outlier)
            cal = est.score_samples(_safe_indexing(X, inliers))
        cal = np.asarray(cal, dtype=np.float64).ravel()
        # A calibration score per in-distribution row, in order (leave-one-out,
        # out-of-fold, in-sample), or a held-out share whose rows are the
        # detector's own business: then fit_predict ranks every row's score.
        self._store_calibration(cal, None if cal.size == n_in else np.arange(cal.size))
        if self.threshold is not None:
            self.offset_ = float(self.threshold)
        elif self.target_tpr is not None:
            share = 1.0 - float(self.target_tpr)
            self.offset_ = _offset_at_share(cal, share, type(self).__name__)
        else:
            self.offset_ = float(final.offset_)


# ------------------------------------------------------------------- tuned
class TunedThresholdDetectorCV(_ThresholdDetector):
    """Detector whose threshold is tuned on out-of-fold scores.

    Clones of ``detector`` are fitted on the in-distribution rows of the
    training folds and score the held-out fold; the threshold is chosen on
    those out-of-fold scores, so the in-sample optimism of detectors that
    memorise their training data (k-nearest neighbours) does not bias it. The
    detector is then refitted on all in-distribution rows.

    - Without known OOD samples (``y`` is None or has no ``-1``), or with
      ``scoring=None``: the threshold accepts ``target_tpr`` of the
      in-distribution rows' out-of-fold scores by the conformal rule (see
      :mod:`sklearn_ood.model_selection`), so about ``target_tpr`` of new
      in-distribution data is accepted.
    - With known OOD samples (``y == -1`` rows) and a ``scoring``: the
      threshold maximising ``scoring`` over the out-of-fold scores of the
      in-distribution and OOD rows. OOD rows are never used to fit the detector
      (they only validate the threshold); the other labels are passed to it.

    When ``detector`` is a Pipeline whose leading steps learn nothing from the
    data (``fit_learns_from_data = False``, as
    :class:`~sklearn_ood.TorchFeatureExtractor`), those steps transform ``X``
    once and only the rest of the Pipeline is fitted per fold.

    Parameters
    ----------
    detector : estimator with ``fit`` and ``score_samples``
        The detector (or a Pipeline ending in one), cloned for each fold.
    target_tpr : float in (0, 1] or None, default=0.95
        Share of in-distribution data to accept when the threshold is not
        tuned on OOD samples. Needed when ``y`` has no ``-1`` row.
    scoring : {"detection_accuracy", "balanced_accuracy", "accuracy", "f1"}, \
callable or None, default="detection_accuracy"
        Metric maximised over thresholds when ``y == -1`` rows are given,
        with in-distribution as the positive class. ``"detection_accuracy"``
        is Lee et al.'s ``0.5 * (TPR + TNR)``, the same number as
        ``"balanced_accuracy"``; ``"accuracy"`` weights the two classes by
        their counts; ``"f1"`` is the F1 score of the in-distribution class. A
        callable ``metric(y_true, y_pred) -> float`` (greater is better) gets
        labels in {+1, -1}, e.g. :func:`sklearn.metrics.matthews_corrcoef`; it
        is evaluated once per distinct score. ``None``: always use
        ``target_tpr``.
    cv : int, float, cross-validation generator, iterable or "prefit", default=5
        - int: ``KFold(cv, shuffle=True, random_state=random_state)`` without
          OOD rows, ``StratifiedKFold`` on ``y == -1`` with them;
        - float in (0, 1): one shuffled split (stratified on ``y == -1`` when
          OOD rows are given) with that share of the rows for validation;
        - a splitter or an iterable of (train, test) index arrays: its
          ``split(X, y == -1)`` is used;
        - ``"prefit"``: ``detector`` is already fitted and scores all of ``X``
          (which should then be data it was not fitted on); needs
          ``refit=False``.

        Rows that fall in several test folds get the mean of their scores.
    refit : bool, default=True
        Refit the detector on all in-distribution rows after the threshold is
        chosen. ``False`` keeps the model of the single split (``cv`` a float
        or a single-split splitter) or the prefit detector, and is an error
        with several folds, as in
        :class:`~sklearn.model_selection.TunedThresholdClassifierCV`.
    random_state : int, RandomState instance or None, default=None
        Shuffling of the folds for an int or float ``cv``.

    Attributes
    ----------
    estimator_ : estimator
        The fitted detector whose scores are thresholded.
    best_threshold_ : float
        The chosen threshold on ``score_samples``.
    offset_ : float
        Equal to ``best_threshold_``.
    best_score_ : float
        Out-of-fold estimate at ``best_threshold_``: the metric over all
        out-of-fold scores with OOD rows, the share of in-distribution rows
        accepted (TPR) otherwise.
    cv_scores_ : ndarray of shape (n_splits,)
        The same number on each validation fold alone (NaN where a fold lacks
        a class the metric needs).
    oof_scores_ : ndarray of shape (n_samples,)
        Out-of-fold score of each training row (NaN for rows in no test fold).
    calibration_scores_ : ndarray of shape (n_calibration,)
        The out-of-fold scores of the in-distribution rows (in row order; the
        rows in a test fold only): the reference of ``p_values``.
    objective_ : str
        ``"target_tpr"``, the name of ``scoring``, or ``"callable"``.
    n_features_in_ : int
        Number of features seen during fit (from ``estimator_``).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    FixedThresholdDetector : Threshold set by value.
    sklearn_ood.conformal.ConformalDetector : Threshold with a guaranteed
        false-positive rate.
    sklearn.model_selection.TunedThresholdClassifierCV : The classifier version.

    Notes
    -----
    Among thresholds with the same best metric the lowest one (accepting the
    most samples) is kept, and it is placed half-way between the lowest
    accepted and the highest rejected out-of-fold score.

    ``p_values`` compare scores of the refitted detector with out-of-fold
    scores of clones fitted on fewer rows: the cross-conformal construction
    (Vovk 2015), whose false-positive rate is ``alpha`` up to the stability of
    the detector (see the user guide, "Choosing a threshold").
    ``fit_predict(X)`` flags the in-distribution rows whose out-of-fold score
    is below ``offset_`` and the ``-1`` rows that ``predict`` flags.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KNNDetector
    >>> from sklearn_ood.model_selection import TunedThresholdDetectorCV
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(300, 2))
    >>> det = TunedThresholdDetectorCV(KNNDetector(n_neighbors=1), random_state=0)
    >>> det = det.fit(X)
    >>> X_new = rng.normal(size=(2000, 2))
    >>> bool(abs(np.mean(det.predict(X_new) == 1) - 0.95) < 0.03)
    True
    """

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit", "score_samples"])],
        "target_tpr": [Interval(Real, 0, 1, closed="right"), None],
        "scoring": [StrOptions(set(_SCORINGS)), callable, None],
        "cv": [
            "cv_object",
            StrOptions({"prefit"}),
            Interval(Real, 0.0, 1.0, closed="neither"),
        ],
        "refit": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        detector: Any,
        *,
        target_tpr: float | None = 0.95,
        scoring: str | Any | None = "detection_accuracy",
        cv: Any = 5,
        refit: bool = True,
        random_state: int | np.random.RandomState | None = None,
    ):
        self.detector = detector
        self.target_tpr = target_tpr
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.random_state = random_state

    def _splits(self, strata, has_ood):
        """List of (train, test) index arrays."""
        cv = self.cv
        n = strata.shape[0]
        if isinstance(cv, Real) and not isinstance(cv, Integral):
            cls = StratifiedShuffleSplit if has_ood else ShuffleSplit
            splitter = cls(n_splits=1, test_size=cv, random_state=self.random_state)
        elif cv is None or isinstance(cv, Integral):
            k = 5 if cv is None else int(cv)
            cls = StratifiedKFold if has_ood else KFold
            splitter = cls(n_splits=k, shuffle=True, random_state=self.random_state)
        else:
            splitter = check_cv(cv)
        splits = [
            (np.asarray(tr), np.asarray(te))
            for tr, te in splitter.split(np.zeros((n, 1)), strata)
        ]
        if not self.refit and len(splits) > 1:
            raise ValueError(
                "The 'refit' parameter of TunedThresholdDetectorCV can be False only "
                f"with a single split or cv='prefit'; cv gives {len(splits)} splits."
            )
        return splits

    def _check_objective(self, is_out, has_ood):
        use_metric = has_ood and self.scoring is not None
        if not use_metric and self.target_tpr is None:
            raise ValueError(
                "TunedThresholdDetectorCV with target_tpr=None needs known OOD "
                "samples (y == -1) and a scoring to tune the threshold on; "
                + (
                    "scoring is None."
                    if has_ood
                    else "y has no -1 label. Set target_tpr, e.g. 0.95."
                )
            )
        if use_metric and (~is_out).sum() == 0:
            raise ValueError(
                "TunedThresholdDetectorCV needs in-distribution samples (y != -1); "
                "every label is -1."
            )
        return use_metric

    def _out_of_fold(self, X, y, is_out, has_ood):
        """Out-of-fold scores (NaN where unscored), the splits and the model."""
        n = is_out.shape[0]
        if self.cv == "prefit":
            if self.refit:
                raise ValueError(
                    "The 'refit' parameter of TunedThresholdDetectorCV must be False "
                    "when cv='prefit'."
                )
            check_is_fitted(self.detector)
            test = np.arange(n)
            oof = np.asarray(self.detector.score_samples(X), dtype=np.float64)
            return oof, [(np.array([], dtype=int), test)], self.detector
        feat = featurize(self.detector, X)
        splits = self._splits(is_out.astype(int), has_ood)
        sums, counts = np.zeros(n), np.zeros(n)
        models = []
        for train, test in splits:
            model = fit_rows(clone(feat.tail), feat.X, y, train[~is_out[train]])
            scores = model.score_samples(_safe_indexing(feat.X, test))
            np.add.at(sums, test, np.asarray(scores, dtype=np.float64))
            np.add.at(counts, test, 1.0)
            models.append(model)
        oof = np.full(n, np.nan)
        oof[counts > 0] = sums[counts > 0] / counts[counts > 0]
        if self.refit:
            tail = fit_rows(clone(feat.tail), feat.X, y, np.flatnonzero(~is_out))
        else:
            tail = models[0]
        return oof, splits, join(feat.prefix, tail)

    def _fit(self, X, y, is_out):
        has_ood = bool(is_out.any())
        use_metric = self._check_objective(is_out, has_ood)
        oof, splits, self.estimator_ = self._out_of_fold(X, y, is_out, has_ood)
        scored = ~np.isnan(oof)
        is_in = ~is_out
        if not (is_in & scored).any():
            raise ValueError(
                "The validation folds of TunedThresholdDetectorCV hold no "
                "in-distribution sample; use more samples or another cv."
            )
        if use_metric:
            if not (is_out & scored).any():
                raise ValueError(
                    "The validation folds of TunedThresholdDetectorCV hold no "
                    "in-distribution or no OOD sample; use more samples of each or "
                    "a stratified cv."
                )
            threshold, best = _best_threshold(oof[scored], is_in[scored], self.scoring)
            self.objective_ = (
                self.scoring if isinstance(self.scoring, str) else "callable"
            )
            metric = self.scoring
        else:
            s_in = oof[scored & is_in]
            share = 1.0 - float(self.target_tpr)
            threshold = _offset_at_share(s_in, share, type(self).__name__)
            best = float(np.mean(s_in >= threshold))
            self.objective_ = "target_tpr"
            metric = None
        self.cv_scores_ = np.array(
            [
                _metric_at(oof[test], is_in[test], threshold, metric)
                for _, test in splits
            ]
        )
        in_scored = scored[is_in]
        self._store_calibration(
            oof[is_in & scored], None if in_scored.all() else np.flatnonzero(in_scored)
        )
        self.best_threshold_ = float(threshold)
        self.offset_ = self.best_threshold_
        self.best_score_ = float(best)
        self.oof_scores_ = oof
