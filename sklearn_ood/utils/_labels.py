"""The one label rule: ``-1`` marks a known outlier sample, anything else a class."""

from __future__ import annotations

from numbers import Number

import numpy as np
from sklearn.utils.validation import column_or_1d

__all__ = ["check_label_kinds", "split_outlier_labels"]


def split_outlier_labels(y, n_samples: int):
    """Validate labels and separate known outliers (``-1``) from class labels.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or None
        Class labels; numeric ``-1`` marks a known outlier sample.
    n_samples : int
        Number of rows of ``X``.

    Returns
    -------
    y_inliers : ndarray or None
        Labels of the inlier rows (``None`` when ``y`` is None).
    outlier_mask : ndarray of bool, shape (n_samples,)
        True where ``y == -1``.
    """
    if y is None:
        return None, np.zeros(n_samples, dtype=bool)
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n_samples:
        raise ValueError(
            f"y has {y.shape[0]} labels but X has {n_samples} samples; they must "
            "have the same length."
        )
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity; labels must be finite.")
        outlier_mask = y == -1
    elif y.dtype.kind in "iub":
        outlier_mask = y == -1
    elif y.dtype.kind in "OUS":
        # Strings are class names; a numeric -1 inside an object array still
        # marks an outlier sample.
        outlier_mask = np.array(
            [
                isinstance(v, (int, float, np.integer, np.floating)) and v == -1
                for v in y
            ],
            dtype=bool,
        )
        if y.dtype.kind == "O":
            kinds = {type(v) for v in y[~outlier_mask]}
            if len(kinds) > 1 and not all(
                issubclass(k, (int, np.integer)) for k in kinds
            ):
                raise TypeError(
                    "y mixes label types "
                    f"{sorted(k.__name__ for k in kinds)}; use one type for class "
                    "labels (and the number -1 for known outliers)."
                )
    else:
        raise TypeError(f"y must hold class labels (int or str); got dtype {y.dtype}.")
    return y[~outlier_mask], outlier_mask


def _numeric_labels(a) -> bool:
    if a.dtype.kind == "O":
        return all(isinstance(v, Number) for v in a)
    return a.dtype.kind in "iufb"


def check_label_kinds(new, old):
    """Refuse to mix numeric and string class labels across batches of one fit."""
    numeric = [_numeric_labels(a) for a in (new, old) if len(a)]
    if len(set(numeric)) > 1:
        raise TypeError(
            f"y holds labels of dtype {new.dtype} but earlier batches had labels of "
            f"dtype {old.dtype}; use one type for class labels in every batch."
        )
    return new
