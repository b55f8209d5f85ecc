"""Precision-recall curve of an OOD detector (AUPR-In or AUPR-Out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve
from sklearn.utils._param_validation import StrOptions, validate_params

from ..metrics import aupr_in, aupr_out
from ..metrics._validation import DEFAULT_RESPONSE
from ._base import ESTIMATOR_CONSTRAINTS, OODDisplayMixin, curve_axes, legend_label

_PR_TEXT = {
    "in": (
        "AUPR-In",
        "Recall (in-distribution accepted)",
        "Precision (accepted that are in-distribution)",
    ),
    "out": (
        "AUPR-Out",
        "Recall (OOD rejected)",
        "Precision (rejected that are OOD)",
    ),
}

# Built here, not in the decorator: Sphinx's source reader (viewcode) fails
# on ``**`` inside a decorator's dict.
_ESTIMATOR_CONSTRAINTS = {
    "positive": [StrOptions({"in", "out"})],
    **ESTIMATOR_CONSTRAINTS,
}


class OODPrecisionRecallDisplay(OODDisplayMixin):
    """Precision-recall curve of an OOD detector (AUPR-In or AUPR-Out).

    With ``positive="in"``, in-distribution samples are the positives, ranked
    by ``score`` (:func:`sklearn_ood.metrics.aupr_in`); with
    ``positive="out"``, OOD samples are the positives, ranked by ``-score``
    (:func:`sklearn_ood.metrics.aupr_out`). The legend gives the average
    precision. Drawn as a step function, consistent with the average
    precision (as :class:`sklearn.metrics.PrecisionRecallDisplay`).

    Parameters
    ----------
    precision : ndarray
        Precision values, as returned by
        :func:`sklearn.metrics.precision_recall_curve`.
    recall : ndarray
        Recall values.
    average_precision : float, default=None
        Average precision, shown in the legend; None shows none.
    positive : {"in", "out"}, default="in"
        Which class is positive; sets the axis labels and title.
    name : str, default=None
        Name of the detector, shown in the legend.
    prevalence : float, default=None
        Share of positive samples, the precision of a random detector; needed
        for ``plot_chance_level=True``.

    Attributes
    ----------
    line_ : matplotlib Line2D
        Precision-recall curve.
    chance_level_ : matplotlib Line2D or None
        Precision of a random detector, if plotted.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    sklearn_ood.metrics.aupr_in : AUPR with in-distribution positive.
    sklearn_ood.metrics.aupr_out : AUPR with OOD positive.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.plotting import OODPrecisionRecallDisplay
    >>> y, s = [1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1]
    >>> disp = OODPrecisionRecallDisplay.from_predictions(y, s, positive="out")
    >>> round(disp.average_precision, 4)
    0.8333
    >>> disp.line_.get_label()
    'AP = 0.833'
    >>> plt.close(disp.figure_)
    """

    def __init__(
        self,
        *,
        precision: np.ndarray,
        recall: np.ndarray,
        average_precision: float | None = None,
        positive: str = "in",
        name: str | None = None,
        prevalence: float | None = None,
    ):
        self.precision = precision
        self.recall = recall
        self.average_precision = average_precision
        self.positive = positive
        self.name = name
        self.prevalence = prevalence

    def plot(
        self,
        ax: Any = None,
        *,
        name: str | None = None,
        plot_chance_level: bool = False,
        **kwargs: Any,
    ) -> OODPrecisionRecallDisplay:
        """Plot the precision-recall curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        name : str, default=None
            Legend name; None uses the ``name`` given at construction.
        plot_chance_level : bool, default=False
            Whether to draw the precision of a random detector (the
            prevalence of the positive class).
        **kwargs
            Keyword arguments of matplotlib's ``plot`` for the curve.

        Returns
        -------
        display : OODPrecisionRecallDisplay
            The display, with its artists set.
        """
        cls_name = type(self).__name__
        if self.positive not in _PR_TEXT:
            raise ValueError(
                f"The 'positive' parameter of {cls_name} must be a str among "
                f"{{'in', 'out'}}. Got {self.positive!r} instead."
            )
        if plot_chance_level and self.prevalence is None:
            raise ValueError(
                "plot_chance_level=True needs the prevalence of the positive class: "
                f"pass prevalence to {cls_name}, or use from_estimator or "
                "from_predictions."
            )
        metric, xlabel, ylabel = _PR_TEXT[self.positive]
        self._set_axes(ax)
        name = self.name if name is None else name
        label = legend_label(name, "AP", self.average_precision)
        line_kw = {"label": label, "drawstyle": "steps-post", **kwargs}
        (self.line_,) = self.ax_.plot(self.recall, self.precision, **line_kw)
        self.chance_level_ = curve_axes(
            self.ax_,
            xlabel,
            ylabel,
            plot_chance_level,
            (self.prevalence, self.prevalence),
            f"Chance level (AP = {self.prevalence or 0:.3f})",
        )
        positive = "in-distribution" if self.positive == "in" else "OOD"
        title = f"Precision-recall, {positive} as positive ({metric})"
        self._finish_axes(title, "lower left")
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
        positive: str = "in",
        name: str | None = None,
        ax: Any = None,
        response_method: str | Sequence[str] = DEFAULT_RESPONSE,
        **kwargs: Any,
    ) -> OODPrecisionRecallDisplay:
        """Plot the precision-recall curve of a fitted detector.

        Parameters
        ----------
        estimator : estimator
            Fitted detector (or pipeline ending with one).
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : array-like of shape (n_samples,)
            ``-1`` marks OOD samples, any other label in-distribution ones; a
            boolean ``y`` is True for in-distribution.
        positive : {"in", "out"}, default="in"
            ``"in"`` for AUPR-In (in-distribution positive, ranked by score),
            ``"out"`` for AUPR-Out (OOD positive, ranked by ``-score``).
        name : str, default=None
            Legend name; None uses the estimator's class name.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        response_method : str or sequence of str, \
default=("score_samples", "decision_function")
            Estimator methods to try, in order; the first one present is used.
        **kwargs
            Keyword arguments of :meth:`plot` (``plot_chance_level``) and of
            matplotlib's ``plot`` for the curve.

        Returns
        -------
        display : OODPrecisionRecallDisplay
            The display, plotted.
        """
        return cls._from_estimator(
            estimator,
            X,
            y,
            name=name,
            ax=ax,
            response_method=response_method,
            positive=positive,
            plot_kw=kwargs,
        )

    @classmethod
    @validate_params(
        {"positive": [StrOptions({"in", "out"})], "name": [str, None]},
        prefer_skip_nested_validation=True,
    )
    def from_predictions(
        cls,
        y_true: Any,
        score: Any,
        *,
        positive: str = "in",
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> OODPrecisionRecallDisplay:
        """Plot the precision-recall curve from labels and scores.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            +1 (or True) for in-distribution, -1 (or False) for OOD samples.
        score : array-like of shape (n_samples,)
            Scores, higher for more in-distribution (as ``score_samples``).
        positive : {"in", "out"}, default="in"
            ``"in"`` for AUPR-In, ``"out"`` for AUPR-Out.
        name : str, default=None
            Legend name; None shows only the average precision.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        **kwargs
            Keyword arguments of :meth:`plot` (``plot_chance_level``) and of
            matplotlib's ``plot`` for the curve.

        Returns
        -------
        display : OODPrecisionRecallDisplay
            The display, plotted.
        """
        return cls._from_predictions(
            y_true, score, name=name, ax=ax, positive=positive, plot_kw=kwargs
        )

    @classmethod
    def _from_scores(cls, is_in, score, *, name, ax, positive, plot_kw, **_):
        if positive == "in":
            pos, ranking, ap = is_in, score, aupr_in(is_in, score)
        else:
            pos, ranking, ap = ~is_in, -score, aupr_out(is_in, score)
        precision, recall, _ = precision_recall_curve(pos, ranking)
        disp = cls(
            precision=precision,
            recall=recall,
            average_precision=ap,
            positive=positive,
            name=name,
            prevalence=float(np.mean(pos)),
        )
        return disp.plot(ax=ax, **plot_kw)
