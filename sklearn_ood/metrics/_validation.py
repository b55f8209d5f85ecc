"""Input checks and the operating point shared by the metrics and the displays.

Internal to sklearn-ood (:mod:`sklearn_ood.metrics` and :mod:`sklearn_ood.plotting`
use it); the conventions are those of the :mod:`sklearn_ood.metrics` docstring.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval

#: Methods tried in order to get scores from an estimator.
DEFAULT_RESPONSE = ("score_samples", "decision_function")
#: Constraint of every ``tpr`` parameter: a target true positive rate.
TPR_CONSTRAINT = [Interval(Real, 0, 1, closed="right")]

LABEL_CONVENTION = (
    "Use +1 for in-distribution and -1 for out-of-distribution samples "
    "(scikit-learn's outlier labels), or booleans with True for in-distribution."
)


def check_y_true(y_true: Any) -> np.ndarray:
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
                f"samples. {LABEL_CONVENTION}"
            )
        else:
            shown = ", ".join(repr(v) for v in values[:10].tolist())
            more = ", ..." if len(values) > 10 else ""
            raise ValueError(
                f"y_true must contain only the labels +1 and -1 or booleans. "
                f"{LABEL_CONVENTION} Got labels [{shown}{more}] instead."
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


def check_score(score: Any, n_samples: int, name: str = "score") -> np.ndarray:
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


def check_inputs(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(is_in, score)`` checked as the metrics take them."""
    is_in = check_y_true(y_true)
    return is_in, check_score(score, is_in.shape[0])


def operating_point(
    is_in: np.ndarray, score: np.ndarray, tpr: float
) -> tuple[float, float]:
    """Return (FPR, TPR) at the strictest ROC point whose TPR >= ``tpr``."""
    fpr, reached, _ = operating_point_with_threshold(is_in, score, tpr)
    return fpr, reached


def operating_point_with_threshold(
    is_in: np.ndarray, score: np.ndarray, tpr: float
) -> tuple[float, float, float]:
    """(FPR, TPR, threshold) of that point, from one full ROC curve."""
    fprs, tprs, thresholds = roc_curve(is_in, score, drop_intermediate=False)
    # tprs is non-decreasing and ends at 1.0 >= tpr, so the index is valid.
    idx = int(np.searchsorted(tprs, tpr, side="left"))
    return float(fprs[idx]), float(tprs[idx]), float(thresholds[idx])


def percent_name(tpr: float) -> str:
    """``100 * tpr`` as the shortest exact string (``0.95`` -> ``"95"``)."""
    return f"{round(100 * tpr, 6):g}"


def labels_to_inlier_mask(y: Any) -> np.ndarray:
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
