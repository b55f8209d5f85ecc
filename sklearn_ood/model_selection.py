"""Decision thresholds of OOD detectors: fixed, or tuned by cross-validation.

The two wrappers mirror scikit-learn's
:class:`~sklearn.model_selection.FixedThresholdClassifier` and
:class:`~sklearn.model_selection.TunedThresholdClassifierCV` for outlier
detectors: they keep the wrapped detector's ``score_samples`` and replace its
``offset_``, so that ``predict`` accepts a chosen share of in-distribution data
or maximises a detection metric. Both keep the outlier contract of
:mod:`sklearn_ood.base` (``decision_function = score_samples - offset_``,
``predict`` in {+1, -1}) and accept any detector with ``fit`` and
``score_samples``, or a :class:`~sklearn.pipeline.Pipeline` ending in one.

For the hyper-parameters of a detector use
:class:`~sklearn.model_selection.GridSearchCV` with the scorers of
:mod:`sklearn_ood.metrics` on data where ``y == -1`` marks OOD samples.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.model_selection import (
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
    check_cv,
)
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, get_tags, indexable
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted

from .utils._labels import split_outlier_labels

__all__ = ["FixedThresholdDetector", "TunedThresholdDetectorCV"]

_SCORINGS = ("detection_accuracy", "balanced_accuracy", "accuracy", "f1")


# ----------------------------------------------------------------- helpers
def _final_step(detector):
    return detector[-1] if isinstance(detector, Pipeline) else detector


def _contamination_key(detector) -> str | None:
    """Name of the parameter setting the detector's ``offset_`` share, if any."""
    params = detector.get_params(deep=True)
    if isinstance(detector, Pipeline):
        key = f"{detector.steps[-1][0]}__contamination"
        return key if key in params else None
    return "contamination" if "contamination" in params else None


def _fit_detector(detector, X, y, rows):
    """Fit ``detector`` on ``X[rows]`` (with their labels when ``y`` is given)."""
    X_fit = _safe_indexing(X, rows)
    if y is None:
        return detector.fit(X_fit)
    return detector.fit(X_fit, _safe_indexing(y, rows))


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
    if scoring in ("detection_accuracy", "balanced_accuracy"):
        objective = 0.5 * (tp / n_in + (n_out - fp) / n_out)
    elif scoring == "accuracy":
        objective = (tp + n_out - fp) / (n_in + n_out)
    else:  # "f1", in-distribution positive
        denom = 2 * tp + fp + (n_in - tp)
        objective = np.divide(2.0 * tp, denom, out=np.zeros(cuts.size), where=denom > 0)
    return values, objective.astype(np.float64)


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
    if scoring in ("detection_accuracy", "balanced_accuracy"):
        return float(0.5 * (tp / n_in + (n_out - fp) / n_out))
    if scoring == "accuracy":
        return float((tp + n_out - fp) / (n_in + n_out))
    denom = tp + n_in + fp
    return float(2.0 * tp / denom) if denom else 0.0


class _ThresholdMixin(OutlierMixin):
    """Scoring methods shared by the two wrappers (``estimator_``, ``offset_``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.detector)
        tags.input_tags = sub.input_tags
        tags.non_deterministic = sub.non_deterministic
        return tags

    @property
    def n_features_in_(self) -> int:
        """Number of features seen by the fitted detector."""
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Names of the features seen by the fitted detector."""
        return self.estimator_.feature_names_in_

    def score_samples(self, X) -> np.ndarray:
        """Score samples with the fitted detector: higher means more normal.

        Parameters
        ----------
        X : array-like
            Samples, in the layout the detector was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``estimator_.score_samples(X)``.
        """
        check_is_fitted(self)
        return np.asarray(self.estimator_.score_samples(X), dtype=np.float64)

    def decision_function(self, X) -> np.ndarray:
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

    def predict(self, X) -> np.ndarray:
        """Predict inliers (+1) and outliers (-1) at the threshold ``offset_``.

        Parameters
        ----------
        X : array-like
            Samples to classify.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
            ``+1`` where ``score_samples(X) >= offset_``, else ``-1``.
        """
        decision = self.decision_function(X)
        labels = np.ones(decision.shape[0], dtype=int)
        labels[decision < 0] = -1
        return labels

    def fit_predict(self, X, y=None, **kwargs) -> np.ndarray:
        """Fit on ``X`` (and ``y``), then predict ``X``.

        Parameters
        ----------
        X : array-like
            Training data.
        y : array-like of shape (n_samples,), default=None
            Class labels; ``-1`` marks a known OOD sample.
        **kwargs
            Unused; accepted for compatibility with
            :meth:`sklearn.base.OutlierMixin.fit_predict`.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int
            ``+1`` for inliers, ``-1`` for outliers.
        """
        return self.fit(X, y).predict(X)


# ------------------------------------------------------------------- fixed
class FixedThresholdDetector(_ThresholdMixin, BaseEstimator):
    """Detector with a threshold set by value or by a target share of inliers.

    Fits a clone of ``detector`` and sets ``offset_`` on its score scale:
    ``predict`` is ``+1`` where ``detector.score_samples(X) >= offset_``.

    Parameters
    ----------
    detector : estimator with ``fit`` and ``score_samples``
        The detector (or a Pipeline ending in one), cloned in ``fit``.
    threshold : float or None, default=None
        The threshold on ``score_samples``, used as ``offset_`` as it is.
    target_tpr : float in (0, 1] or None, default=None
        Share of the in-distribution training data to accept, scored as the
        detector itself scores its training data when it sets ``offset_``:
        when the detector (or the last step of a Pipeline) has a
        ``contamination`` parameter and ``1 - target_tpr`` is in ``(0, 0.5]``,
        the clone is fitted with ``contamination = 1 - target_tpr`` and its
        own ``offset_`` is used. For sklearn-ood detectors those training
        scores are leave-one-out or out-of-fold (not memorised), so
        ``offset_`` is their ``(1 - target_tpr)`` quantile. Otherwise
        ``offset_`` is the ``(1 - target_tpr)`` quantile (``np.quantile``) of
        the *in-sample* scores of the in-distribution training rows, which is
        optimistic for detectors that memorise their training data (k-nearest
        neighbours): use :class:`TunedThresholdDetectorCV` for out-of-fold
        scores. ``threshold`` and ``target_tpr`` cannot both be set; with
        neither, ``offset_`` is the fitted detector's own ``offset_``.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``detector``.
    offset_ : float
        The threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit (from ``estimator_``).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    TunedThresholdDetectorCV : Threshold from out-of-fold scores.
    sklearn.model_selection.FixedThresholdClassifier : The classifier version.

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
        "threshold": [Real, None],
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

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None) -> FixedThresholdDetector:
        """Fit the detector and set the threshold.

        Parameters
        ----------
        X : array-like
            Training data.
        y : array-like of shape (n_samples,), default=None
            Class labels, passed to the detector; ``-1`` marks a known OOD
            sample (left out of the ``target_tpr`` quantile).

        Returns
        -------
        self : FixedThresholdDetector
            The fitted wrapper.
        """
        if self.threshold is not None and self.target_tpr is not None:
            raise ValueError(
                "The 'threshold' and 'target_tpr' parameters of "
                "FixedThresholdDetector cannot both be set; got threshold="
                f"{self.threshold!r} and target_tpr={self.target_tpr!r}."
            )
        n = _num_samples(X)
        _, outlier_mask = split_outlier_labels(y, n)
        est = clone(self.detector)
        key = _contamination_key(est)
        share = None if self.target_tpr is None else 1.0 - float(self.target_tpr)
        use_own = key is not None and share is not None and 0.0 < share <= 0.5
        if use_own:
            est.set_params(**{key: share})
        self.estimator_ = est.fit(X, y) if y is not None else est.fit(X)
        if self.threshold is not None:
            self.offset_ = float(self.threshold)
        elif share is None or use_own:
            offset = getattr(_final_step(self.estimator_), "offset_", None)
            if offset is None:
                raise ValueError(
                    f"{type(_final_step(self.estimator_)).__name__} has no offset_ "
                    "attribute; set the 'threshold' or 'target_tpr' parameter of "
                    "FixedThresholdDetector."
                )
            self.offset_ = float(offset)
        else:
            inliers = np.flatnonzero(~outlier_mask)
            scores = self.estimator_.score_samples(_safe_indexing(X, inliers))
            self.offset_ = float(np.quantile(np.asarray(scores), share))
        return self


# ------------------------------------------------------------------- tuned
class TunedThresholdDetectorCV(_ThresholdMixin, BaseEstimator):
    """Detector whose threshold is tuned on out-of-fold scores.

    Clones of ``detector`` are fitted on the in-distribution rows of the
    training folds and score the held-out fold; the threshold is chosen on
    those out-of-fold scores, so the in-sample optimism of detectors that
    memorise their training data (k-nearest neighbours) does not bias it. The
    detector is then refitted on all in-distribution rows.

    - Without known OOD samples (``y`` is None or has no ``-1``), or with
      ``scoring=None``: the threshold is the ``(1 - target_tpr)`` quantile
      (``np.quantile``) of the out-of-fold scores of the in-distribution rows,
      so about ``target_tpr`` of new in-distribution data is accepted.
    - With known OOD samples (``y == -1`` rows) and a ``scoring``: the
      threshold maximising ``scoring`` over the out-of-fold scores of the
      in-distribution and OOD rows. OOD rows are never used to fit the detector
      (they only validate the threshold); the other labels are passed to it.

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
    objective_ : str
        ``"target_tpr"``, the name of ``scoring``, or ``"callable"``.
    n_features_in_ : int
        Number of features seen during fit (from ``estimator_``).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    FixedThresholdDetector : Threshold set by value.
    sklearn.model_selection.TunedThresholdClassifierCV : The classifier version.

    Notes
    -----
    Among thresholds with the same best metric the lowest one (accepting the
    most samples) is kept, and it is placed half-way between the lowest
    accepted and the highest rejected out-of-fold score.

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

    def _splits(self, X, strata, has_ood):
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

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None) -> TunedThresholdDetectorCV:
        """Score out of fold, choose the threshold, refit the detector.

        Parameters
        ----------
        X : array-like
            Training data: in-distribution samples, plus known OOD samples
            where ``y == -1``.
        y : array-like of shape (n_samples,), default=None
            Class labels (passed to the detector for the in-distribution rows);
            ``-1`` marks a known OOD sample.

        Returns
        -------
        self : TunedThresholdDetectorCV
            The fitted wrapper.
        """
        X, y = indexable(X, y)
        n = _num_samples(X)
        _, is_out = split_outlier_labels(y, n)
        has_ood = bool(is_out.any())
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
        strata = is_out.astype(int)
        sums = np.zeros(n)
        counts = np.zeros(n)
        if self.cv == "prefit":
            if self.refit:
                raise ValueError(
                    "The 'refit' parameter of TunedThresholdDetectorCV must be False "
                    "when cv='prefit'."
                )
            check_is_fitted(self.detector)
            splits = [(np.array([], dtype=int), np.arange(n))]
            models = [self.detector]
        else:
            splits = self._splits(X, strata, has_ood)
            models = []
            for train, _ in splits:
                train_in = train[~is_out[train]]
                models.append(_fit_detector(clone(self.detector), X, y, train_in))
        for (_, test), model in zip(splits, models):
            scores = np.asarray(model.score_samples(_safe_indexing(X, test)), float)
            np.add.at(sums, test, scores)
            np.add.at(counts, test, 1.0)
        scored = counts > 0
        oof = np.full(n, np.nan)
        oof[scored] = sums[scored] / counts[scored]
        is_in = ~is_out
        if use_metric:
            if not (is_in & scored).any() or not (is_out & scored).any():
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
            threshold = float(np.quantile(s_in, 1.0 - float(self.target_tpr)))
            best = float(np.mean(s_in >= threshold))
            self.objective_ = "target_tpr"
            metric = None
        self.cv_scores_ = np.array(
            [
                _metric_at(oof[test], is_in[test], threshold, metric)
                for _, test in splits
            ]
        )
        if self.refit:
            self.estimator_ = _fit_detector(
                clone(self.detector), X, y, np.flatnonzero(is_in)
            )
        else:
            self.estimator_ = models[0]
        self.best_threshold_ = float(threshold)
        self.offset_ = self.best_threshold_
        self.best_score_ = float(best)
        self.oof_scores_ = oof
        return self
