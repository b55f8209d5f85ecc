"""The OOD metrics of one or several detectors in one table: ``ood_report``."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from ._ranking import (
    aupr_in,
    aupr_out,
    auroc,
    detection_accuracy,
    detection_error,
    fpr_at_tpr,
    tnr_at_tpr,
)
from ._validation import TPR_CONSTRAINT, check_score, check_y_true, percent_name

__all__ = ["ood_report"]


def _report_row(is_in: np.ndarray, s: np.ndarray, tpr: float) -> dict[str, float]:
    pct = percent_name(tpr)
    return {
        "auroc": auroc(is_in, s),
        "aupr_in": aupr_in(is_in, s),
        "aupr_out": aupr_out(is_in, s),
        f"tnr_at_{pct}_tpr": tnr_at_tpr(is_in, s, tpr=tpr),
        f"fpr_at_{pct}_tpr": fpr_at_tpr(is_in, s, tpr=tpr),
        "detection_accuracy": detection_accuracy(is_in, s),
        "detection_error": detection_error(is_in, s, tpr=tpr),
    }


@validate_params(
    {
        "y_true": ["array-like"],
        "score": ["array-like", Mapping],
        "tpr": TPR_CONSTRAINT,
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
    is_in = check_y_true(y_true)
    n = is_in.shape[0]
    if isinstance(score, Mapping):
        if len(score) == 0:
            raise ValueError("score is an empty dict; give at least one detector.")
        rows = {
            str(name): _report_row(is_in, check_score(s, n, f"score[{name!r}]"), tpr)
            for name, s in score.items()
        }
        if len(rows) != len(score):
            raise ValueError("The keys of score must be unique once converted to str.")
        if output_dict:
            return rows
    else:
        row = _report_row(is_in, check_score(score, n), tpr)
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
