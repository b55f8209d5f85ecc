"""Meta-detectors: the outlier contract around a wrapped detector or Pipeline.

:class:`MetaDetector` is the base of the wrappers that refit a detector and set
its decision threshold (:mod:`sklearn_ood.model_selection`,
:mod:`sklearn_ood.conformal`). As scikit-learn's ``BaseThresholdClassifier``,
it validates once: the parameters (``_fit_context``), ``X`` and ``y`` made
indexable and the ``-1`` labels split, then ``_fit``; the wrapped detector
validates the data itself. ``decision_function``, ``predict``, ``p_values`` and
``fit_predict`` come from :class:`~sklearn_ood.base.OutlierContractMixin`.

Features once: Pipelines whose leading steps learn nothing
-----------------------------------------------------------
A wrapper that fits several clones of a Pipeline (one per fold, or a fit part
and a calibration part) would run its feature extractor on every fold. Steps
whose ``fit`` learns nothing from the data declare the class attribute
``fit_learns_from_data = False`` (:class:`~sklearn_ood.TorchFeatureExtractor`).
:func:`featurize` fits the leading run of such steps once, transforms ``X``
once, and leaves the rest of the Pipeline (the *tail*) to be cloned and fitted
on the features; :func:`join` puts the fitted prefix back in front of a fitted
tail, so the wrapper's ``estimator_`` scores raw input as the user's Pipeline
does.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, get_tags, indexable
from sklearn.utils.validation import _num_samples, check_is_fitted

from .base import CalibrationWarning, OutlierContractMixin
from .utils._labels import split_outlier_labels

__all__ = ["Featurized", "MetaDetector", "featurize", "fit_rows", "join"]


def _learns_nothing(step) -> bool:
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return True
    return getattr(step, "fit_learns_from_data", True) is False


class Featurized(NamedTuple):
    """``X`` after the leading steps of a Pipeline that learn nothing."""

    prefix: Pipeline | None  # the fitted leading steps, or None
    X: Any  # the transformed input (X itself without a prefix)
    tail: Any  # an unfitted clone of the rest of the detector


def featurize(detector, X) -> Featurized:
    """Fit the leading steps of ``detector`` that learn nothing; transform ``X`` once.

    Without such steps (or when ``detector`` is not a Pipeline) the prefix is
    None, ``X`` is returned as it is and the tail is a clone of ``detector``.
    The last step (the detector) is never part of the prefix.
    """
    if not isinstance(detector, Pipeline):
        return Featurized(None, X, clone(detector))
    n = 0
    for _, step in detector.steps[:-1]:
        if not _learns_nothing(step):
            break
        n += 1
    if n == 0:
        return Featurized(None, X, clone(detector))
    pipe = clone(detector)
    prefix = pipe[:n]
    # The steps learn nothing from the data: fit them on X, transform X once.
    return Featurized(prefix, prefix.fit_transform(X), pipe[n:])


def join(prefix: Pipeline | None, tail):
    """The fitted ``prefix`` steps followed by the fitted ``tail`` (one Pipeline)."""
    if prefix is None:
        return tail
    steps = tail.steps if isinstance(tail, Pipeline) else [("detector", tail)]
    return Pipeline(prefix.steps + steps, memory=prefix.memory, verbose=prefix.verbose)


def fit_for_scores(detector, X, y=None):
    """Fit ``detector`` whose scores, not its own ``offset_``, the caller uses.

    Composites and wrappers set their own threshold, so the inner detector's
    :class:`~sklearn_ood.base.CalibrationWarning` (too few rows for its
    ``contamination``) would only repeat theirs: it is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=CalibrationWarning)
        return detector.fit(X) if y is None else detector.fit(X, y)


def fit_rows(detector, X, y, rows):
    """:func:`fit_for_scores` on the rows ``rows`` of ``X`` (and of ``y``)."""
    y_rows = None if y is None else _safe_indexing(y, rows)
    return fit_for_scores(detector, _safe_indexing(X, rows), y_rows)


def score_columns(detectors, inputs) -> np.ndarray:
    """``(n, len(detectors))`` float64 scores: column ``j`` is
    ``detectors[j].score_samples(inputs[j])``."""
    return np.column_stack(
        [
            np.asarray(det.score_samples(data), dtype=np.float64)
            for det, data in zip(detectors, inputs, strict=True)
        ]
    )


class MetaDetector(OutlierContractMixin, BaseEstimator):
    """Base of the wrappers around a ``detector``: validation once, then ``_fit``.

    Subclasses have a ``detector`` parameter and implement ``_fit(X, y,
    is_outlier)``, which sets ``estimator_`` (the fitted detector or Pipeline
    whose ``score_samples`` is the wrapper's), ``offset_`` and
    ``calibration_scores_``. ``n_features_in_`` and ``feature_names_in_`` are
    copied from ``estimator_``.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.detector)
        tags.input_tags = sub.input_tags
        tags.non_deterministic = sub.non_deterministic
        return tags

    # Nested validation stays on: the wrapped detectors are user estimators.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the wrapped detector and set the threshold ``offset_``.

        Parameters
        ----------
        X : array-like
            Training data: in-distribution samples, plus known outlier samples
            where ``y == -1``.
        y : array-like of shape (n_samples,), default=None
            Class labels, passed on to the detector; ``-1`` marks a known
            outlier sample, which never calibrates the threshold.

        Returns
        -------
        self : object
            The fitted wrapper.
        """
        X, y = indexable(X, y)
        _, is_outlier = split_outlier_labels(y, _num_samples(X))
        self._fit(X, y, is_outlier)
        fitted = self._fitted_detector()
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(fitted, attr):
                setattr(self, attr, getattr(fitted, attr))
            else:
                self.__dict__.pop(attr, None)
        return self

    def _fitted_detector(self):
        return self.estimator_

    def score_samples(self, X) -> np.ndarray:
        """Score samples with the fitted detector: higher means more normal.

        Parameters
        ----------
        X : array-like
            Samples, in the layout the detector was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
            ``estimator_.score_samples(X)``.
        """
        check_is_fitted(self)
        return np.asarray(self.estimator_.score_samples(X), dtype=np.float64)
