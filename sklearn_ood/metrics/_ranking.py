"""Ranking metrics of OOD detection: AUROC, AUPR, operating point, DTACC."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.utils._param_validation import validate_params

from ._validation import TPR_CONSTRAINT, check_inputs, operating_point

__all__ = [
    "aupr_in",
    "aupr_out",
    "auroc",
    "detection_accuracy",
    "detection_error",
    "fpr_at_tpr",
    "tnr_at_tpr",
]

_INPUTS = {"y_true": ["array-like"], "score": ["array-like"]}
_validate_inputs = validate_params(_INPUTS, prefer_skip_nested_validation=True)
_validate_inputs_tpr = validate_params(
    {**_INPUTS, "tpr": TPR_CONSTRAINT}, prefer_skip_nested_validation=True
)


@_validate_inputs
def auroc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve, in-distribution as the positive class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).

    Returns
    -------
    float
        AUROC in [0, 1]; 0.5 is chance, 1 is a perfect separation.

    Examples
    --------
    >>> from sklearn_ood.metrics import auroc
    >>> round(auroc([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1]), 4)
    0.8333
    """
    is_in, s = check_inputs(y_true, score)
    return float(roc_auc_score(is_in, s))


@_validate_inputs
def aupr_in(y_true: Any, score: Any) -> float:
    """Area under the precision-recall curve, in-distribution as positive.

    Computed as :func:`sklearn.metrics.average_precision_score` with the
    in-distribution samples as positives, ranked by ``score``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).

    Returns
    -------
    float
        AUPR-In in [0, 1].

    Examples
    --------
    >>> from sklearn_ood.metrics import aupr_in
    >>> round(aupr_in([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1]), 4)
    0.9167
    """
    is_in, s = check_inputs(y_true, score)
    return float(average_precision_score(is_in, s))


@_validate_inputs
def aupr_out(y_true: Any, score: Any) -> float:
    """Area under the precision-recall curve, OOD as positive.

    Computed as :func:`sklearn.metrics.average_precision_score` with the OOD
    samples as positives, ranked by ``-score``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).

    Returns
    -------
    float
        AUPR-Out in [0, 1].

    Examples
    --------
    >>> from sklearn_ood.metrics import aupr_out
    >>> round(aupr_out([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1]), 4)
    0.8333
    """
    is_in, s = check_inputs(y_true, score)
    return float(average_precision_score(~is_in, -s))


@_validate_inputs_tpr
def tnr_at_tpr(y_true: Any, score: Any, *, tpr: float = 0.95) -> float:
    """True negative rate (OOD rejected) at the operating point reaching ``tpr``.

    The operating point is the strictest threshold whose TPR is at least
    ``tpr`` (see the module docstring for the exact definition and how it
    differs from published code).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).
    tpr : float, default=0.95
        Target true positive rate (fraction of in-distribution samples
        accepted), in (0, 1].

    Returns
    -------
    float
        TNR = 1 - FPR at the operating point.

    Examples
    --------
    >>> from sklearn_ood.metrics import tnr_at_tpr
    >>> tnr_at_tpr([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1])
    0.5
    """
    is_in, s = check_inputs(y_true, score)
    fpr, _ = operating_point(is_in, s, tpr)
    return 1.0 - fpr


@_validate_inputs_tpr
def fpr_at_tpr(y_true: Any, score: Any, *, tpr: float = 0.95) -> float:
    """False positive rate (OOD accepted) at the operating point reaching ``tpr``.

    The operating point is the strictest threshold whose TPR is at least
    ``tpr`` (see the module docstring). Lower is better.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).
    tpr : float, default=0.95
        Target true positive rate, in (0, 1].

    Returns
    -------
    float
        FPR at the operating point.

    Examples
    --------
    >>> from sklearn_ood.metrics import fpr_at_tpr
    >>> fpr_at_tpr([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1])
    0.5
    """
    is_in, s = check_inputs(y_true, score)
    fpr, _ = operating_point(is_in, s, tpr)
    return fpr


@_validate_inputs
def detection_accuracy(y_true: Any, score: Any) -> float:
    """Best balanced accuracy over thresholds (Lee et al.'s DTACC).

    ``max_t 0.5 * (TPR(t) + TNR(t))`` over every point of the ROC curve
    (in-distribution positive), i.e. over every threshold ``score >= t``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).

    Returns
    -------
    float
        Detection accuracy in [0.5, 1].

    Examples
    --------
    >>> from sklearn_ood.metrics import detection_accuracy
    >>> round(detection_accuracy([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1]), 4)
    0.8333
    """
    is_in, s = check_inputs(y_true, score)
    fprs, tprs, _ = roc_curve(is_in, s, drop_intermediate=False)
    return float(np.max(0.5 * (tprs + 1.0 - fprs)))


@_validate_inputs_tpr
def detection_error(y_true: Any, score: Any, *, tpr: float = 0.95) -> float:
    """Masana et al.'s detection error at the operating point reaching ``tpr``.

    ``0.5 * (1 - TPR) + 0.5 * FPR``, with TPR and FPR read at the strictest
    threshold whose TPR is at least ``tpr`` (see the module docstring). Lower is
    better.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,)
        Scores, higher for more in-distribution (as ``score_samples``).
    tpr : float, default=0.95
        Target true positive rate, in (0, 1].

    Returns
    -------
    float
        Detection error in [0, 0.5 + 0.5 * (1 - tpr)].

    Examples
    --------
    >>> from sklearn_ood.metrics import detection_error
    >>> detection_error([1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1])
    0.25
    """
    is_in, s = check_inputs(y_true, score)
    fpr, reached = operating_point(is_in, s, tpr)
    return 0.5 * (1.0 - reached) + 0.5 * fpr
