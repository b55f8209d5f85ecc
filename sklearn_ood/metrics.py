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

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.metrics._scorer import _BaseScorer
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import _check_response_method

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

_LABEL_CONVENTION = (
    "Use +1 for in-distribution and -1 for out-of-distribution samples "
    "(scikit-learn's outlier labels), or booleans with True for in-distribution."
)

_TPR_CONSTRAINT = [Interval(Real, 0, 1, closed="right")]
_INPUTS = {"y_true": ["array-like"], "score": ["array-like"]}
_validate_inputs = validate_params(_INPUTS, prefer_skip_nested_validation=True)
_validate_inputs_tpr = validate_params(
    {**_INPUTS, "tpr": _TPR_CONSTRAINT}, prefer_skip_nested_validation=True
)


def _check_y_true(y_true: Any) -> np.ndarray:
    """Return a boolean array, True for in-distribution samples."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(
            f"y_true must be a 1-D array of labels; got an array of shape {y.shape}."
        )
    if y.shape[0] == 0:
        raise ValueError("y_true is empty; at least two samples are required.")
    if y.dtype == object:  # e.g. pandas nullable "boolean" / "Int64" columns
        if all(isinstance(v, (bool, np.bool_)) for v in y):
            y = y.astype(bool)
        elif all(isinstance(v, Real) and not isinstance(v, bool) for v in y):
            y = y.astype(np.float64)
    if y.dtype == bool:
        is_in = y.copy()
    else:
        try:
            values = np.unique(y)
        except TypeError:  # mixed, unorderable objects
            values = np.array(sorted({repr(v) for v in y}), dtype=object)
        numeric = y.dtype.kind in "iuf"
        if numeric and np.all(np.isin(values, [-1, 1])):
            is_in = y == 1
        elif numeric and np.all(np.isin(values, [0, 1])):
            raise ValueError(
                "y_true contains the labels 0/1, which are ambiguous for outlier "
                "detection (1 means 'outlier' in some libraries and papers, "
                "'inlier' in others). Map them to +1/-1 or to booleans, for "
                "example `y_true = np.where(y == 1, -1, 1)` if 1 marks OOD "
                f"samples. {_LABEL_CONVENTION}"
            )
        else:
            shown = ", ".join(repr(v) for v in values[:10].tolist())
            more = ", ..." if len(values) > 10 else ""
            raise ValueError(
                f"y_true must contain only the labels +1 and -1 or booleans. "
                f"{_LABEL_CONVENTION} Got labels [{shown}{more}] instead."
            )
    n_in = int(is_in.sum())
    if n_in == 0 or n_in == is_in.shape[0]:
        missing = "in-distribution (+1 / True)" if n_in == 0 else "OOD (-1 / False)"
        raise ValueError(
            "y_true must contain both in-distribution and out-of-distribution "
            f"samples; no {missing} sample was found. The metrics are undefined "
            "with a single class."
        )
    return is_in


def _check_score(score: Any, n_samples: int, name: str = "score") -> np.ndarray:
    """Return ``score`` as a finite float64 1-D array of length ``n_samples``."""
    s = check_array(score, ensure_2d=False, dtype=np.float64, input_name=name)
    if s.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of scores; got an array of shape {s.shape}."
        )
    if s.shape[0] != n_samples:
        raise ValueError(
            f"y_true and {name} have inconsistent numbers of samples: "
            f"{n_samples} and {s.shape[0]}."
        )
    return s


def _check_inputs(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    is_in = _check_y_true(y_true)
    return is_in, _check_score(score, is_in.shape[0])


def _operating_point(
    is_in: np.ndarray, score: np.ndarray, tpr: float
) -> tuple[float, float]:
    """Return (FPR, TPR) at the strictest ROC point whose TPR >= ``tpr``."""
    fprs, tprs, _ = roc_curve(is_in, score, drop_intermediate=False)
    # tprs is non-decreasing and ends at 1.0 >= tpr, so the index is valid.
    idx = int(np.searchsorted(tprs, tpr, side="left"))
    return float(fprs[idx]), float(tprs[idx])


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
    is_in, s = _check_inputs(y_true, score)
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
    is_in, s = _check_inputs(y_true, score)
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
    is_in, s = _check_inputs(y_true, score)
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
    is_in, s = _check_inputs(y_true, score)
    fpr, _ = _operating_point(is_in, s, tpr)
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
    is_in, s = _check_inputs(y_true, score)
    fpr, _ = _operating_point(is_in, s, tpr)
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
    is_in, s = _check_inputs(y_true, score)
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
    is_in, s = _check_inputs(y_true, score)
    fpr, reached = _operating_point(is_in, s, tpr)
    return 0.5 * (1.0 - reached) + 0.5 * fpr


def _percent_name(tpr: float) -> str:
    return f"{round(100 * tpr, 6):g}"


def _report_row(is_in: np.ndarray, s: np.ndarray, tpr: float) -> dict[str, float]:
    fprs, tprs, _ = roc_curve(is_in, s, drop_intermediate=False)
    idx = int(np.searchsorted(tprs, tpr, side="left"))
    fpr, reached = float(fprs[idx]), float(tprs[idx])
    pct = _percent_name(tpr)
    return {
        "auroc": float(roc_auc_score(is_in, s)),
        "aupr_in": float(average_precision_score(is_in, s)),
        "aupr_out": float(average_precision_score(~is_in, -s)),
        f"tnr_at_{pct}_tpr": 1.0 - fpr,
        f"fpr_at_{pct}_tpr": fpr,
        "detection_accuracy": float(np.max(0.5 * (tprs + 1.0 - fprs))),
        "detection_error": 0.5 * (1.0 - reached) + 0.5 * fpr,
    }


@validate_params(
    {
        "y_true": ["array-like"],
        "score": ["array-like", Mapping],
        "tpr": _TPR_CONSTRAINT,
        "output_dict": ["boolean"],
        "digits": [Interval(Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def ood_report(
    y_true: Any,
    score: Any,
    *,
    tpr: float = 0.95,
    output_dict: bool = False,
    digits: int = 4,
) -> str | dict:
    """Build a text report (or a dict) with every OOD metric.

    Like :func:`sklearn.metrics.classification_report`, returns a formatted
    table by default and a dict with ``output_dict=True``. The metrics, in
    column order, are ``auroc``, ``aupr_in``, ``aupr_out``,
    ``tnr_at_{P}_tpr``, ``fpr_at_{P}_tpr``, ``detection_accuracy`` and
    ``detection_error`` (at the same target TPR), where ``{P}`` is ``100 * tpr``
    (``95`` by default). All are fractions, not percentages.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        +1 (or True) for in-distribution, -1 (or False) for OOD samples.
    score : array-like of shape (n_samples,) or dict of str to array-like
        Scores, higher for more in-distribution. A dict ``{name: score}``
        reports several detectors on the same ``y_true``, one row each.
    tpr : float, default=0.95
        Target true positive rate for the operating-point metrics, in (0, 1].
    output_dict : bool, default=False
        If True, return a dict instead of a string.
    digits : int, default=4
        Number of digits for the floats of the text report; ignored when
        ``output_dict=True``.

    Returns
    -------
    report : str or dict
        Text table with one row per detector (a single row named ``"score"``
        when ``score`` is an array). With ``output_dict=True``: for an array,
        ``{metric: value}``; for a dict, ``{name: {metric: value}}``. Values
        in the dict are not rounded.

    Examples
    --------
    >>> from sklearn_ood.metrics import ood_report
    >>> y = [1, 1, 1, -1, -1]
    >>> report = ood_report(y, {"a": [0.9, 0.8, 0.4, 0.5, 0.1], "b": [3, 2, 1, 0, 0]},
    ...                     output_dict=True)
    >>> report["b"]["auroc"], report["b"]["tnr_at_95_tpr"]
    (1.0, 1.0)
    >>> text = ood_report(y, [3, 2, 1, 0, 0], digits=2)
    >>> print(text)  # doctest: +NORMALIZE_WHITESPACE
           auroc aupr_in aupr_out tnr_at_95_tpr fpr_at_95_tpr detection_accuracy
      detection_error
    score   1.00    1.00     1.00          1.00          0.00               1.00
                 0.00
    """
    is_in = _check_y_true(y_true)
    n = is_in.shape[0]
    if isinstance(score, Mapping):
        if len(score) == 0:
            raise ValueError("score is an empty dict; give at least one detector.")
        rows = {
            str(name): _report_row(is_in, _check_score(s, n, f"score[{name!r}]"), tpr)
            for name, s in score.items()
        }
        if len(rows) != len(score):
            raise ValueError("The keys of score must be unique once converted to str.")
        if output_dict:
            return rows
    else:
        row = _report_row(is_in, _check_score(score, n), tpr)
        if output_dict:
            return row
        rows = {"score": row}

    headers = list(next(iter(rows.values())))
    name_width = max(len(name) for name in rows)
    widths = [max(len(h), digits + 3) for h in headers]
    lines = [
        " " * name_width
        + "".join(f" {h:>{w}}" for h, w in zip(headers, widths, strict=True))
    ]
    for name, row in rows.items():
        cells = "".join(
            f" {row[h]:>{w}.{digits}f}" for h, w in zip(headers, widths, strict=True)
        )
        lines.append(f"{name:<{name_width}}{cells}")
    return "\n".join(lines) + "\n"


_METRICS: dict[str, tuple[Callable[..., float], int]] = {
    "auroc": (auroc, 1),
    "aupr_in": (aupr_in, 1),
    "aupr_out": (aupr_out, 1),
    "tnr_at_tpr": (tnr_at_tpr, 1),
    "fpr_at_tpr": (fpr_at_tpr, -1),
    "detection_accuracy": (detection_accuracy, 1),
    "detection_error": (detection_error, -1),
}

_DEFAULT_RESPONSE = ("score_samples", "decision_function")


def _y_to_inlier_mask(y: Any) -> np.ndarray:
    """Map dataset labels to the metrics' convention: ``-1`` is OOD, else inlier."""
    if y is None:
        raise ValueError(
            "OOD scorers need labels: call them with y where y == -1 marks OOD "
            "samples and any other label marks in-distribution samples."
        )
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels; got shape {y.shape}.")
    if y.dtype == bool:
        is_in = y.copy()
    elif y.dtype.kind in "iuf":
        is_in = y != -1
    else:
        is_in = np.fromiter((not _is_minus_one(v) for v in y), bool, y.shape[0])
    n_in = int(is_in.sum())
    if n_in == 0 or n_in == is_in.shape[0]:
        raise ValueError(
            "An OOD scorer needs both OOD samples (y == -1) and in-distribution "
            f"samples (any other label) in the evaluated data; got {n_in} "
            f"in-distribution and {is_in.shape[0] - n_in} OOD samples. With "
            "cross-validation, stratify the splits on `y == -1`, e.g. "
            "`StratifiedKFold().split(X, y == -1)`."
        )
    return is_in


def _is_minus_one(value: Any) -> bool:
    if isinstance(value, (str, bytes, bool, np.bool_)):
        return False
    try:
        return bool(value == -1)
    except Exception:  # missing values (pd.NA) and exotic objects: not -1
        return False


class _OODScorer(_BaseScorer):
    """Scorer calling an OOD metric on ``estimator.score_samples(X)``.

    Built by :func:`make_ood_scorer`. ``y == -1`` marks OOD samples and every
    other label marks in-distribution ones.
    """

    def _score(self, method_caller, estimator, X, y_true, **kwargs):
        is_in = _y_to_inlier_mask(y_true)
        # The first available method; AttributeError naming them if none is.
        name = _check_response_method(estimator, self._response_method).__name__
        score = method_caller(estimator, name, X, pos_label=None)
        return self._sign * self._score_func(is_in, score, **self._kwargs, **kwargs)

    def __repr__(self) -> str:
        sign = "" if self._sign > 0 else ", greater_is_better=False"
        response = (
            ""
            if tuple(self._response_method) == _DEFAULT_RESPONSE
            else f", response_method={self._response_method!r}"
        )
        kw = "".join(f", {k}={v!r}" for k, v in self._kwargs.items())
        name = getattr(self._score_func, "__name__", repr(self._score_func))
        return f"make_ood_scorer({name}{sign}{response}{kw})"


@validate_params(
    {
        "metric": [StrOptions(set(_METRICS)), callable],
        "greater_is_better": ["boolean", None],
        "response_method": [str, list, tuple],
    },
    prefer_skip_nested_validation=True,
)
def make_ood_scorer(
    metric: str | Callable[..., float],
    *,
    greater_is_better: bool | None = None,
    response_method: str | Sequence[str] = _DEFAULT_RESPONSE,
    **kwargs: Any,
) -> _OODScorer:
    """Make a scorer ``scorer(estimator, X, y)`` from an OOD metric.

    The scorer computes ``estimator.score_samples(X)`` (or
    ``decision_function`` when ``score_samples`` is absent), maps ``y`` to the
    metrics' convention (``y == -1`` is OOD, every other label, e.g. class
    labels or ``+1``, is in-distribution; a boolean ``y`` is used as is, True
    for in-distribution) and returns ``sign * metric(y_in, score, **kwargs)``.
    It works with a :class:`~sklearn.pipeline.Pipeline` ending with a
    detector, and in ``scoring=`` of :class:`~sklearn.model_selection.GridSearchCV`
    or :func:`~sklearn.model_selection.cross_val_score`, alone or in a dict
    for multi-metric search.

    Parameters
    ----------
    metric : str or callable
        One of ``"auroc"``, ``"aupr_in"``, ``"aupr_out"``, ``"tnr_at_tpr"``,
        ``"fpr_at_tpr"``, ``"detection_accuracy"``, ``"detection_error"``, or a
        callable ``metric(y_true, score, **kwargs)`` taking a boolean
        ``y_true`` (True for in-distribution). Prefer a module-level function
        so that the scorer can be pickled.
    greater_is_better : bool or None, default=None
        Whether higher metric values are better. None means: False for
        ``fpr_at_tpr`` and ``detection_error`` (the scorer then returns the
        negated metric, so greater is always better), True otherwise.
    response_method : str or sequence of str, default=("score_samples", \
"decision_function")
        Estimator methods to try, in order; the first one present is used.
    **kwargs
        Keyword arguments of ``metric``, e.g. ``tpr=0.9``.

    Returns
    -------
    scorer : callable
        Scorer object ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.covariance import EllipticEnvelope
    >>> from sklearn_ood.metrics import make_ood_scorer
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.normal(size=(40, 2)), rng.uniform(6, 8, size=(5, 2))]
    >>> y = np.r_[np.zeros(20, int), np.ones(20, int), -np.ones(5, int)]
    >>> scorer = make_ood_scorer("tnr_at_tpr", tpr=0.9)
    >>> scorer
    make_ood_scorer(tnr_at_tpr, tpr=0.9)
    >>> scorer(EllipticEnvelope(random_state=0).fit(X[:40]), X, y)
    1.0
    """
    if isinstance(metric, str):
        func, sign = _METRICS[metric]
    else:
        func = metric
        sign = next((s for f, s in _METRICS.values() if f is metric), 1)
    if greater_is_better is not None:
        sign = 1 if greater_is_better else -1
    if isinstance(response_method, str):
        response_method = (response_method,)
    response_method = tuple(response_method)
    if not response_method or not all(isinstance(m, str) for m in response_method):
        raise ValueError(
            "The 'response_method' parameter of make_ood_scorer must be a str or a "
            f"non-empty sequence of str. Got {response_method!r} instead."
        )
    try:
        inspect.signature(func).bind(None, None, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"Invalid keyword arguments {sorted(kwargs)} for the metric "
            f"{getattr(func, '__name__', func)!r}: {exc}"
        ) from exc
    except ValueError:  # builtins without a signature: checked at call time
        pass
    return _OODScorer(func, sign, kwargs, response_method)


auroc_scorer = make_ood_scorer("auroc")
aupr_in_scorer = make_ood_scorer("aupr_in")
aupr_out_scorer = make_ood_scorer("aupr_out")
tnr_at_95_tpr_scorer = make_ood_scorer("tnr_at_tpr", tpr=0.95)
detection_accuracy_scorer = make_ood_scorer("detection_accuracy")
neg_fpr_at_95_tpr_scorer = make_ood_scorer("fpr_at_tpr", tpr=0.95)
neg_detection_error_scorer = make_ood_scorer("detection_error", tpr=0.95)

_SCORERS = {
    "auroc": auroc_scorer,
    "aupr_in": aupr_in_scorer,
    "aupr_out": aupr_out_scorer,
    "tnr_at_95_tpr": tnr_at_95_tpr_scorer,
    "detection_accuracy": detection_accuracy_scorer,
    "neg_fpr_at_95_tpr": neg_fpr_at_95_tpr_scorer,
    "neg_detection_error": neg_detection_error_scorer,
}


def get_ood_scorer(name: str) -> _OODScorer:
    """Return a ready-made OOD scorer by name.

    Parameters
    ----------
    name : str
        One of ``"auroc"``, ``"aupr_in"``, ``"aupr_out"``, ``"tnr_at_95_tpr"``,
        ``"detection_accuracy"``, ``"neg_fpr_at_95_tpr"``,
        ``"neg_detection_error"``. Every scorer is "greater is better": the
        ``neg_`` ones return the negated error.

    Returns
    -------
    scorer : callable
        A scorer ``scorer(estimator, X, y)``; see :func:`make_ood_scorer`.
        A new copy is returned, so modifying it does not affect later calls.

    Examples
    --------
    >>> from sklearn_ood.metrics import get_ood_scorer
    >>> get_ood_scorer("neg_fpr_at_95_tpr")
    make_ood_scorer(fpr_at_tpr, greater_is_better=False, tpr=0.95)
    """
    if not isinstance(name, str) or name not in _SCORERS:
        raise ValueError(
            f"The 'name' parameter of get_ood_scorer must be one of "
            f"{sorted(_SCORERS)}. Got {name!r} instead."
        )
    return copy.deepcopy(_SCORERS[name])
