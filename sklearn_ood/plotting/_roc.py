"""ROC curve of an OOD detector, in-distribution as the positive class."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve
from sklearn.utils._param_validation import Interval, validate_params

from ..metrics import auroc
from ..metrics._validation import DEFAULT_RESPONSE, percent_name
from ._base import (
    ESTIMATOR_CONSTRAINTS,
    MARKER,
    OODDisplayMixin,
    curve_axes,
    legend_label,
    operating_point_dict,
)

_TPR = Interval(Real, 0, 1, closed="right")
# Built here, not in the decorator: Sphinx's source reader (viewcode) fails
# on ``**`` inside a decorator's dict.
_ESTIMATOR_CONSTRAINTS = {
    "tpr": [_TPR],
    "drop_intermediate": ["boolean"],
    **ESTIMATOR_CONSTRAINTS,
}


class OODRocDisplay(OODDisplayMixin):
    """ROC curve of an OOD detector, in-distribution as the positive class.

    x is the false positive rate (share of OOD samples accepted), y the true
    positive rate (share of in-distribution samples accepted). The operating
    point at a target TPR (as in :func:`sklearn_ood.metrics.fpr_at_tpr`) is
    marked, with its FPR and TNR in the legend. Build it with
    :meth:`from_estimator` or :meth:`from_predictions`.

    Parameters
    ----------
    fpr : ndarray
        False positive rates, as returned by :func:`sklearn.metrics.roc_curve`.
    tpr : ndarray
        True positive rates.
    roc_auc : float, default=None
        Area under the curve, shown in the legend; None shows none.
    name : str, default=None
        Name of the detector, shown in the legend.
    operating_point : dict, default=None
        Point to mark, with keys ``"tpr"``, ``"fpr"``, ``"threshold"`` (and
        optionally ``"target_tpr"``, ``"tnr"``); stored as
        ``operating_point_``. None marks nothing.

    Attributes
    ----------
    operating_point_ : dict or None
        ``{"target_tpr", "tpr", "fpr", "tnr", "threshold"}``: the target TPR,
        the TPR reached (at least the target), the FPR and TNR there, and the
        score threshold (samples with ``score >= threshold`` are accepted).
    line_ : matplotlib Line2D
        ROC curve.
    operating_point_marker_ : matplotlib Line2D or None
        Marker of the operating point.
    chance_level_ : matplotlib Line2D or None
        Diagonal of a random detector, if plotted.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    sklearn_ood.metrics.auroc : Area under this curve.
    sklearn_ood.metrics.fpr_at_tpr : FPR at the operating point.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.plotting import OODRocDisplay
    >>> y = [1, 1, 1, -1, -1]
    >>> disp = OODRocDisplay.from_predictions(y, [0.9, 0.8, 0.4, 0.5, 0.1], tpr=0.9)
    >>> disp.operating_point_
    {'target_tpr': 0.9, 'tpr': 1.0, 'fpr': 0.5, 'tnr': 0.5, 'threshold': 0.4}
    >>> round(disp.roc_auc, 4)
    0.8333
    >>> plt.close(disp.figure_)
    """

    def __init__(
        self,
        *,
        fpr: np.ndarray,
        tpr: np.ndarray,
        roc_auc: float | None = None,
        name: str | None = None,
        operating_point: dict | None = None,
    ):
        self.fpr = fpr
        self.tpr = tpr
        self.roc_auc = roc_auc
        self.name = name
        self.operating_point_ = (
            None if operating_point is None else dict(operating_point)
        )

    def plot(
        self,
        ax: Any = None,
        *,
        name: str | None = None,
        plot_chance_level: bool = False,
        **kwargs: Any,
    ) -> OODRocDisplay:
        """Plot the curve and the operating point.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure. To compare
            detectors, pass the ``ax_`` of a first display.
        name : str, default=None
            Legend name; None uses the ``name`` given at construction.
        plot_chance_level : bool, default=False
            Whether to draw the diagonal of a random detector.
        **kwargs
            Keyword arguments of matplotlib's ``plot`` for the curve.

        Returns
        -------
        display : OODRocDisplay
            The display, with its artists set.
        """
        cls_name = type(self).__name__
        op = self.operating_point_
        if op is not None and not {"tpr", "fpr", "threshold"} <= set(op):
            raise ValueError(
                f"The 'operating_point' parameter of {cls_name} must be a dict with "
                f"the keys 'tpr', 'fpr' and 'threshold'. Got keys {sorted(op)}."
            )
        self._set_axes(ax)
        name = self.name if name is None else name
        line_kw = {"label": legend_label(name, "AUROC", self.roc_auc), **kwargs}
        (self.line_,) = self.ax_.plot(self.fpr, self.tpr, **line_kw)

        self.operating_point_marker_ = None
        if op is not None:
            target = op.get("target_tpr", op["tpr"])
            reached = f"TPR {op['tpr']:.1%}"
            if op["tpr"] != target:
                reached += f" (≥ {percent_name(target)}%)"
            (self.operating_point_marker_,) = self.ax_.plot(
                [op["fpr"]],
                [op["tpr"]],
                color=self.line_.get_color(),
                **MARKER,
                label=f"At {reached}: FPR {op['fpr']:.1%}, TNR {1 - op['fpr']:.1%}",
            )
        self.chance_level_ = curve_axes(
            self.ax_,
            "False positive rate (OOD accepted)",
            "True positive rate (in-distribution accepted)",
            plot_chance_level,
            (0, 1),
            "Chance level",
        )
        self._finish_axes("ROC curve, in-distribution as positive", "lower right")
        return self

    @classmethod
    @validate_params(
        _ESTIMATOR_CONSTRAINTS,
        prefer_skip_nested_validation=True,
    )
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        tpr: float = 0.95,
        name: str | None = None,
        ax: Any = None,
        response_method: str | Sequence[str] = DEFAULT_RESPONSE,
        drop_intermediate: bool = True,
        **kwargs: Any,
    ) -> OODRocDisplay:
        """Plot the ROC curve of a fitted detector on labelled data.

        Parameters
        ----------
        estimator : estimator
            Fitted detector (or pipeline ending with one).
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : array-like of shape (n_samples,)
            ``-1`` marks OOD samples, any other label (class labels, ``+1``)
            in-distribution ones; a boolean ``y`` is True for in-distribution.
        tpr : float, default=0.95
            Target true positive rate of the marked operating point, in (0, 1].
        name : str, default=None
            Legend name; None uses the estimator's class name.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        response_method : str or sequence of str, \
default=("score_samples", "decision_function")
            Estimator methods to try, in order; the first one present is used.
        drop_intermediate : bool, default=True
            Whether to drop collinear points of the curve (as
            :func:`sklearn.metrics.roc_curve`); the drawn curve is the same.
        **kwargs
            Keyword arguments of :meth:`plot` (``plot_chance_level``) and of
            matplotlib's ``plot`` for the curve.

        Returns
        -------
        display : OODRocDisplay
            The display, plotted.
        """
        return cls._from_estimator(
            estimator,
            X,
            y,
            name=name,
            ax=ax,
            response_method=response_method,
            tpr=tpr,
            drop_intermediate=drop_intermediate,
            plot_kw=kwargs,
        )

    @classmethod
    @validate_params(
        {"tpr": [_TPR], "drop_intermediate": ["boolean"], "name": [str, None]},
        prefer_skip_nested_validation=True,
    )
    def from_predictions(
        cls,
        y_true: Any,
        score: Any,
        *,
        tpr: float = 0.95,
        name: str | None = None,
        ax: Any = None,
        drop_intermediate: bool = True,
        **kwargs: Any,
    ) -> OODRocDisplay:
        """Plot the ROC curve from labels and scores.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            +1 (or True) for in-distribution, -1 (or False) for OOD samples.
        score : array-like of shape (n_samples,)
            Scores, higher for more in-distribution (as ``score_samples``).
        tpr : float, default=0.95
            Target true positive rate of the marked operating point, in (0, 1].
        name : str, default=None
            Legend name; None shows only the AUROC.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        drop_intermediate : bool, default=True
            Whether to drop collinear points of the curve.
        **kwargs
            Keyword arguments of :meth:`plot` (``plot_chance_level``) and of
            matplotlib's ``plot`` for the curve.

        Returns
        -------
        display : OODRocDisplay
            The display, plotted.
        """
        return cls._from_predictions(
            y_true,
            score,
            name=name,
            ax=ax,
            tpr=tpr,
            drop_intermediate=drop_intermediate,
            plot_kw=kwargs,
        )

    @classmethod
    def _from_scores(
        cls, is_in, score, *, name, ax, tpr, drop_intermediate, plot_kw, **_
    ):
        fprs, tprs, _ = roc_curve(is_in, score, drop_intermediate=drop_intermediate)
        op = operating_point_dict(is_in, score, tpr)
        disp = cls(
            fpr=fprs,
            tpr=tprs,
            roc_auc=auroc(is_in, score),
            name=name,
            operating_point=op,
        )
        return disp.plot(ax=ax, **plot_kw)
