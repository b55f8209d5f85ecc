"""Plots for evaluating out-of-distribution (OOD) detectors.

Displays in scikit-learn's style (like :class:`~sklearn.metrics.RocCurveDisplay`):
build them with ``from_estimator`` (a fitted detector and data) or
``from_predictions`` (labels and scores, or p-values), or from precomputed
values with the constructor and then ``plot``. Each keeps its matplotlib
artists (``line_``, ``ax_``, ``figure_``, ...) for further styling.

- :class:`OODRocDisplay`: ROC curve with in-distribution as the positive
  class, and the operating point at a target TPR (95% by default).
- :class:`OODPrecisionRecallDisplay`: precision-recall curve for AUPR-In or
  AUPR-Out.
- :class:`ScoreHistogramDisplay`: histograms of the scores of in-distribution
  and OOD samples, with the detector's threshold, on an axis that stays
  readable when OOD scores have a long tail (Mahalanobis scores).
- :class:`FalsePositiveRateDisplay`: target against measured false-positive
  rate on held-out normal data, with a binomial band: is the detector's
  ``contamination`` the share of normal samples it flags?

The conventions are those of :mod:`sklearn_ood.metrics`: scores follow
``score_samples`` (higher = more in-distribution); ``from_predictions`` takes
``y_true`` with ``+1`` (or True) for in-distribution and ``-1`` (or False) for
OOD samples; ``from_estimator`` uses the rule of the OOD scorers, ``y == -1``
is OOD and every other label (class labels, ``+1``) is in-distribution. The
AUROC, average precision and operating point come from
:mod:`sklearn_ood.metrics`, so the plots show the numbers the metrics report.

matplotlib is an optional dependency: ``pip install sklearn-ood[plot]``.
"""

from ._false_positive_rate import FalsePositiveRateDisplay
from ._precision_recall import OODPrecisionRecallDisplay
from ._roc import OODRocDisplay
from ._score_histogram import ScoreHistogramDisplay

__all__ = [
    "FalsePositiveRateDisplay",
    "OODPrecisionRecallDisplay",
    "OODRocDisplay",
    "ScoreHistogramDisplay",
]
