"""Evaluation metrics and scorers for out-of-distribution (OOD) detection.

Conventions
-----------
**Scores.** Every function takes ``(y_true, score)`` where ``score`` follows
scikit-learn's outlier contract (:term:`score_samples`): *higher means more
in-distribution*. Where the literature uses an "OOD score" (higher = more
abnormal), pass its negation. This module is the one place where the two
conventions meet: :func:`aupr_out` negates ``score`` internally.

**Labels.** ``y_true`` uses scikit-learn's outlier labels, ``+1`` for an
in-distribution (inlier) sample and ``-1`` for an OOD sample, or booleans with
``True`` for in-distribution. Labels ``0``/``1`` are rejected because they are
ambiguous (``1`` means "outlier" in PyOD and many papers, "inlier" elsewhere).
Both classes must be present. The scorers (:func:`make_ood_scorer`) use a
looser rule suited to labelled data sets: ``y == -1`` is OOD and every other
label (class labels, ``+1``) is in-distribution.

**Positive class.** In-distribution is the positive class: TPR is the fraction
of in-distribution samples accepted, FPR the fraction of OOD samples accepted,
and TNR = 1 - FPR the fraction of OOD samples rejected. :func:`auroc` is the
area under that ROC curve (it does not depend on which class is positive).
:func:`aupr_in` is the average precision with in-distribution positive and
``score`` as the ranking; :func:`aupr_out` is the average precision with OOD
positive and ``-score`` as the ranking.

**Operating point at a target TPR** (:func:`tnr_at_tpr`, :func:`fpr_at_tpr`,
:func:`detection_error`). The ROC curve is computed with
:func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``), whose points
are the thresholds ``score >= t`` for every distinct value ``t`` of ``score``,
from the strictest (``t = +inf``, nothing accepted) to the most lenient. The
operating point is the *first* point, i.e. the strictest threshold, whose TPR
is greater than or equal to the target ``tpr``; FPR, TNR and TPR are read at
that point, with no interpolation. Tied scores cross the threshold together,
so with ties (or few in-distribution samples) the TPR reached can exceed the
target, and an OOD sample tied with an in-distribution one is accepted with
it. Published code differs slightly: Lee et al. (2018, ``calculate_log.py``)
take the curve point *closest* to 95% TPR, which may lie below the target, and
Masana et al. (2018) average the FPR over all thresholds whose TPR lies in
[0.94, 0.96]. Numbers can therefore differ in the last digits from those
papers, most visibly on small test sets.

**Detection accuracy** (:func:`detection_accuracy`) is Lee et al.'s DTACC,
``max_t 0.5 * (TPR(t) + TNR(t))`` over all points of the ROC curve.
**Detection error** (:func:`detection_error`) is Masana et al.'s
``0.5 * (1 - TPR) + 0.5 * FPR`` at the operating point above (0 is perfect;
with the exact 95% TPR the best possible value is 0.025).

References
----------
.. [1] K. Lee, K. Lee, H. Lee, J. Shin, "A Simple Unified Framework for
   Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS
   2018.
.. [2] M. Masana, I. Ruiz, J. Serrat, J. van de Weijer, A. M. Lopez, "Metric
   Learning for Novelty and Anomaly Detection", BMVC 2018.
"""

from __future__ import annotations

from ._ranking import (
    aupr_in,
    aupr_out,
    auroc,
    detection_accuracy,
    detection_error,
    fpr_at_tpr,
    tnr_at_tpr,
)
from ._report import ood_report
from ._scorer import (
    aupr_in_scorer,
    aupr_out_scorer,
    auroc_scorer,
    detection_accuracy_scorer,
    get_ood_scorer,
    make_ood_scorer,
    neg_detection_error_scorer,
    neg_fpr_at_95_tpr_scorer,
    tnr_at_95_tpr_scorer,
)

__all__ = [
    "aupr_in",
    "aupr_in_scorer",
    "aupr_out",
    "aupr_out_scorer",
    "auroc",
    "auroc_scorer",
    "detection_accuracy",
    "detection_accuracy_scorer",
    "detection_error",
    "fpr_at_tpr",
    "get_ood_scorer",
    "make_ood_scorer",
    "neg_detection_error_scorer",
    "neg_fpr_at_95_tpr_scorer",
    "ood_report",
    "tnr_at_95_tpr_scorer",
    "tnr_at_tpr",
]
