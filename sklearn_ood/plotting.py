"""Plots for evaluating out-of-distribution (OOD) detectors.

Three displays in scikit-learn's style (like
:class:`~sklearn.metrics.RocCurveDisplay`): build them with ``from_estimator``
(a fitted detector, ``X`` and labels) or ``from_predictions`` (labels and
scores), or from precomputed values with the constructor and then
:meth:`plot`. Each keeps its matplotlib artists (``line_``, ``ax_``,
``figure_``, ...) for further styling.

- :class:`OODRocDisplay`: ROC curve with in-distribution as the positive
  class, and the operating point at a target TPR (95% by default).
- :class:`OODPrecisionRecallDisplay`: precision-recall curve for AUPR-In or
  AUPR-Out.
- :class:`ScoreHistogramDisplay`: histograms of the scores of in-distribution
  and OOD samples, with the detector's threshold.

The conventions are those of :mod:`sklearn_ood.metrics`: scores follow
``score_samples`` (higher = more in-distribution); ``from_predictions`` takes
``y_true`` with ``+1`` (or True) for in-distribution and ``-1`` (or False) for
OOD samples; ``from_estimator`` uses the rule of the OOD scorers, ``y == -1``
is OOD and every other label (class labels, ``+1``) is in-distribution. The
AUROC, average precision and operating point come from
:mod:`sklearn_ood.metrics`, so the plots show the numbers the metrics report.

matplotlib is an optional dependency: ``pip install sklearn-ood[plot]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.pipeline import Pipeline
from sklearn.utils import check_consistent_length
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import _check_response_method

from .metrics import (
    _check_inputs,
    _check_score,
    _operating_point,
    _percent_name,
    _y_to_inlier_mask,
    aupr_in,
    aupr_out,
    auroc,
)

__all__ = ["OODPrecisionRecallDisplay", "OODRocDisplay", "ScoreHistogramDisplay"]

_DEFAULT_RESPONSE = ("score_samples", "decision_function")
_TPR = Interval(Real, 0, 1, closed="right")
_COMMON = {
    "name": [str, None],
    "response_method": [str, list, tuple],
}
_IN_COLOR, _OUT_COLOR = "C0", "C1"
_MARKER = {"marker": "o", "ms": 8, "ls": "none", "mec": "black", "zorder": 3}


# ---------------------------------------------------------------- helpers
def _import_pyplot(caller: str):
    """Import ``matplotlib.pyplot``, or raise an ImportError naming the extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib, which is not installed. Install it "
            "with `pip install sklearn-ood[plot]` (or `pip install matplotlib`)."
        ) from exc
    return plt


def _get_axes(ax: Any, caller: str):
    """Return ``(ax, figure)``, creating a new figure when ``ax`` is None."""
    plt = _import_pyplot(caller)
    from matplotlib.axes import Axes

    if ax is None:
        _, ax = plt.subplots()
    elif not isinstance(ax, Axes):
        raise TypeError(
            f"The 'ax' parameter of {caller} must be a matplotlib Axes or None. "
            f"Got {type(ax).__name__} instead."
        )
    return ax, ax.figure


def _legend_label(name: str | None, metric: str, value: float | None) -> str | None:
    if value is not None and name is not None:
        return f"{name} ({metric} = {value:.3f})"
    if value is not None:
        return f"{metric} = {value:.3f}"
    return name


def _finish_axes(ax, title: str, legend_loc: str) -> None:
    """Set the title unless the user already gave one, and (re)draw the legend."""
    if not ax.get_title():
        ax.set_title(title)
    if any(not label.startswith("_") for label in ax.get_legend_handles_labels()[1]):
        ax.legend(loc=legend_loc, fontsize="small")


def _curve_axes(ax, xlabel: str, ylabel: str, plot_chance: bool, chance_y, label):
    """Label a square [0, 1] x [0, 1] plot; return the chance line or None."""
    line = None
    if plot_chance:
        (line,) = ax.plot((0, 1), chance_y, color="k", ls="--", lw=1, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.set_aspect("equal")
    return line


def _estimator_scores(
    cls: type, estimator: Any, X: Any, y: Any, response_method: Any
) -> tuple[np.ndarray, np.ndarray, str]:
    """Return ``(is_in, score, method_name)`` for ``from_estimator``."""
    caller = f"{cls.__name__}.from_estimator"
    _import_pyplot(caller)
    if y is None:
        raise ValueError(
            f"{caller} needs labels y, where y == -1 marks OOD samples and any "
            "other label marks in-distribution samples. Got y=None."
        )
    check_consistent_length(X, y)
    try:
        is_in = _y_to_inlier_mask(y)
    except ValueError as exc:
        raise ValueError(f"Invalid y for {caller}: {exc}") from exc
    method = _check_response_method(estimator, response_method)
    score = _check_score(method(X), is_in.shape[0], name=f"{method.__name__}(X)")
    return is_in, score, method.__name__


def _prediction_scores(
    cls: type, y_true: Any, score: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(is_in, score)`` for ``from_predictions`` (metrics' labels)."""
    _import_pyplot(f"{cls.__name__}.from_predictions")
    return _check_inputs(y_true, score)


def _operating_point_dict(is_in: np.ndarray, score: np.ndarray, tpr: float) -> dict:
    """The operating point of :mod:`sklearn_ood.metrics`, with its threshold.

    FPR and TPR come from the metrics module; the threshold is the one of the
    (unique) point of the full ROC curve with these coordinates.
    """
    fpr, reached = _operating_point(is_in, score, tpr)
    fprs, tprs, thresholds = roc_curve(is_in, score, drop_intermediate=False)
    # Successive points of the full curve differ in FPR or TPR, so the match
    # is unique.
    idx = int(np.flatnonzero((fprs == fpr) & (tprs == reached))[0])
    return {
        "target_tpr": float(tpr),
        "tpr": reached,
        "fpr": fpr,
        "tnr": 1.0 - fpr,
        "threshold": float(thresholds[idx]),
    }


# -------------------------------------------------------------------- ROC
class OODRocDisplay:
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
        self.ax_, self.figure_ = _get_axes(ax, f"{cls_name}.plot")
        name = self.name if name is None else name
        line_kw = {"label": _legend_label(name, "AUROC", self.roc_auc), **kwargs}
        (self.line_,) = self.ax_.plot(self.fpr, self.tpr, **line_kw)

        self.operating_point_marker_ = None
        if op is not None:
            target = op.get("target_tpr", op["tpr"])
            reached = f"TPR {op['tpr']:.1%}"
            if op["tpr"] != target:
                reached += f" (≥ {_percent_name(target)}%)"
            (self.operating_point_marker_,) = self.ax_.plot(
                [op["fpr"]],
                [op["tpr"]],
                color=self.line_.get_color(),
                **_MARKER,
                label=f"At {reached}: FPR {op['fpr']:.1%}, TNR {1 - op['fpr']:.1%}",
            )
        self.chance_level_ = _curve_axes(
            self.ax_,
            "False positive rate (OOD accepted)",
            "True positive rate (in-distribution accepted)",
            plot_chance_level,
            (0, 1),
            "Chance level",
        )
        _finish_axes(self.ax_, "ROC curve, in-distribution as positive", "lower right")
        return self

    @classmethod
    @validate_params(
        {"tpr": [_TPR], "drop_intermediate": ["boolean"], **_COMMON},
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
        response_method: str | Sequence[str] = _DEFAULT_RESPONSE,
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
        is_in, score, _ = _estimator_scores(cls, estimator, X, y, response_method)
        name = type(estimator).__name__ if name is None else name
        return cls._from_scores(is_in, score, tpr, name, ax, drop_intermediate, kwargs)

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
        is_in, s = _prediction_scores(cls, y_true, score)
        return cls._from_scores(is_in, s, tpr, name, ax, drop_intermediate, kwargs)

    @classmethod
    def _from_scores(cls, is_in, score, tpr, name, ax, drop_intermediate, kwargs):
        fprs, tprs, _ = roc_curve(is_in, score, drop_intermediate=drop_intermediate)
        op = _operating_point_dict(is_in, score, tpr)
        disp = cls(
            fpr=fprs,
            tpr=tprs,
            roc_auc=auroc(is_in, score),
            name=name,
            operating_point=op,
        )
        return disp.plot(ax=ax, **kwargs)


# ------------------------------------------------------- precision-recall
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


class OODPrecisionRecallDisplay:
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
        self.ax_, self.figure_ = _get_axes(ax, f"{cls_name}.plot")
        name = self.name if name is None else name
        label = _legend_label(name, "AP", self.average_precision)
        line_kw = {"label": label, "drawstyle": "steps-post", **kwargs}
        (self.line_,) = self.ax_.plot(self.recall, self.precision, **line_kw)
        self.chance_level_ = _curve_axes(
            self.ax_,
            xlabel,
            ylabel,
            plot_chance_level,
            (self.prevalence, self.prevalence),
            f"Chance level (AP = {self.prevalence or 0:.3f})",
        )
        positive = "in-distribution" if self.positive == "in" else "OOD"
        title = f"Precision-recall, {positive} as positive ({metric})"
        _finish_axes(self.ax_, title, "lower left")
        return self

    @classmethod
    @validate_params(
        {"positive": [StrOptions({"in", "out"})], **_COMMON},
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
        response_method: str | Sequence[str] = _DEFAULT_RESPONSE,
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
        is_in, score, _ = _estimator_scores(cls, estimator, X, y, response_method)
        name = type(estimator).__name__ if name is None else name
        return cls._from_scores(is_in, score, positive, name, ax, kwargs)

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
        is_in, s = _prediction_scores(cls, y_true, score)
        return cls._from_scores(is_in, s, positive, name, ax, kwargs)

    @classmethod
    def _from_scores(cls, is_in, score, positive, name, ax, kwargs):
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
        return disp.plot(ax=ax, **kwargs)


# -------------------------------------------------------------- histogram
def _estimator_threshold(estimator: Any, method: str) -> tuple[float | None, str]:
    """The detector's decision threshold on the scale of ``method``."""
    if method == "decision_function":
        return 0.0, "detector threshold (decision_function = 0)"
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    offset = getattr(final, "offset_", None)
    if offset is None or np.ndim(offset) != 0:
        return None, ""
    offset = float(offset)
    return offset, f"detector threshold (offset_ = {offset:.4g})"


_BINS = [Interval(Integral, 1, None, closed="left"), str, "array-like"]


class ScoreHistogramDisplay:
    """Histograms of the scores of in-distribution and OOD samples.

    Both histograms share their bins; a dashed vertical line marks a decision
    threshold: samples scoring at or above it are accepted as
    in-distribution.

    Parameters
    ----------
    score_in : ndarray
        Scores of the in-distribution samples.
    score_out : ndarray
        Scores of the OOD samples.
    threshold : float, default=None
        Threshold to mark; None marks none.
    threshold_label : str, default=None
        Legend entry of the threshold line; None gives ``"threshold = ..."``.
    score_name : str, default="score_samples"
        Name of the score on the x axis.
    name : str, default=None
        Name of the detector, shown in the title.

    Attributes
    ----------
    bin_edges_ : ndarray
        Shared bin edges.
    bars_in_ : matplotlib BarContainer
        Bars of the in-distribution histogram.
    bars_out_ : matplotlib BarContainer
        Bars of the OOD histogram.
    threshold_line_ : matplotlib Line2D or None
        Threshold line.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.plotting import ScoreHistogramDisplay
    >>> y, s = [1, 1, 1, -1, -1], [0.9, 0.8, 0.4, 0.5, 0.1]
    >>> disp = ScoreHistogramDisplay.from_predictions(y, s, tpr=0.9, bins=4,
    ...                                               density=False)
    >>> disp.threshold
    0.4
    >>> [float(b.get_height()) for b in disp.bars_out_]
    [1.0, 0.0, 1.0, 0.0]
    >>> plt.close(disp.figure_)
    """

    def __init__(
        self,
        *,
        score_in: np.ndarray,
        score_out: np.ndarray,
        threshold: float | None = None,
        threshold_label: str | None = None,
        score_name: str = "score_samples",
        name: str | None = None,
    ):
        self.score_in = score_in
        self.score_out = score_out
        self.threshold = threshold
        self.threshold_label = threshold_label
        self.score_name = score_name
        self.name = name

    def plot(
        self,
        ax: Any = None,
        *,
        bins: int | str | Sequence[float] = "auto",
        density: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> ScoreHistogramDisplay:
        """Plot both histograms and the threshold.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        bins : int, str or array-like, default="auto"
            Bins, as in :func:`numpy.histogram_bin_edges`, computed on the
            scores of both groups together.
        density : bool, default=True
            If True, each histogram integrates to 1 (groups of different sizes
            compare well); if False, bars show counts.
        name : str, default=None
            Detector name for the title; None uses the ``name`` given at
            construction.
        **kwargs
            Keyword arguments of matplotlib's ``hist``, for both histograms.

        Returns
        -------
        display : ScoreHistogramDisplay
            The display, with its artists set.
        """
        caller = f"{type(self).__name__}.plot"
        if not isinstance(density, (bool, np.bool_)):
            raise TypeError(
                f"The 'density' parameter of {caller} must be an instance of "
                f"'bool'. Got {density!r} instead."
            )
        s_in = np.asarray(self.score_in, dtype=np.float64).ravel()
        s_out = np.asarray(self.score_out, dtype=np.float64).ravel()
        self.ax_, self.figure_ = _get_axes(ax, caller)
        self.bin_edges_ = np.histogram_bin_edges(np.concatenate([s_in, s_out]), bins)
        hist_kw = {"alpha": 0.55, "edgecolor": "white", "linewidth": 0.5, **kwargs}
        for attr, values, label, color in [
            ("bars_in_", s_in, "in-distribution", _IN_COLOR),
            ("bars_out_", s_out, "OOD", _OUT_COLOR),
        ]:
            kw = {"color": color, "label": f"{label} (n = {values.size})", **hist_kw}
            _, _, bars = self.ax_.hist(values, self.bin_edges_, density=density, **kw)
            setattr(self, attr, bars)

        self.threshold_line_ = None
        if self.threshold is not None:
            t = float(self.threshold)
            self.threshold_line_ = self.ax_.axvline(
                t,
                color="black",
                linestyle="--",
                lw=1.5,
                label=self.threshold_label or f"threshold = {t:.4g}",
            )
            # Which side is accepted, just under the top of the axes.
            trans = self.ax_.get_xaxis_transform()
            for text, ha in [("← rejected ", "right"), (" accepted →", "left")]:
                self.ax_.text(t, 0.97, text, ha=ha, va="top", transform=trans)
            self.ax_.set_ylim(top=self.ax_.get_ylim()[1] * 1.12)
        self.ax_.set(
            xlabel=f"{self.score_name} (higher = more in-distribution)",
            ylabel="density" if density else "count",
        )
        name = self.name if name is None else name
        title = "Scores of in-distribution and OOD samples"
        _finish_axes(self.ax_, title if name is None else f"{name}: {title}", "best")
        return self

    @classmethod
    @validate_params(
        {"bins": _BINS, "density": ["boolean"], **_COMMON},
        prefer_skip_nested_validation=True,
    )
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        name: str | None = None,
        ax: Any = None,
        response_method: str | Sequence[str] = _DEFAULT_RESPONSE,
        bins: int | str | Sequence[float] = "auto",
        density: bool = True,
        **kwargs: Any,
    ) -> ScoreHistogramDisplay:
        """Plot the score histograms of a fitted detector, with its threshold.

        The threshold line is the detector's own: ``offset_`` on the
        ``score_samples`` scale (where ``decision_function`` is 0 and
        ``predict`` switches from -1 to +1), or 0 when ``decision_function``
        is used. A detector without ``offset_`` gets no line.

        Parameters
        ----------
        estimator : estimator
            Fitted detector (or pipeline ending with one).
        X : array-like of shape (n_samples, n_features)
            Samples to score.
        y : array-like of shape (n_samples,)
            ``-1`` marks OOD samples, any other label in-distribution ones; a
            boolean ``y`` is True for in-distribution.
        name : str, default=None
            Title name; None uses the estimator's class name.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        response_method : str or sequence of str, \
default=("score_samples", "decision_function")
            Estimator methods to try, in order; the first one present is used.
        bins : int, str or array-like, default="auto"
            Shared bins, as in :func:`numpy.histogram_bin_edges`.
        density : bool, default=True
            Densities (True) or counts (False).
        **kwargs
            Keyword arguments of matplotlib's ``hist``.

        Returns
        -------
        display : ScoreHistogramDisplay
            The display, plotted.
        """
        is_in, score, method = _estimator_scores(cls, estimator, X, y, response_method)
        threshold, label = _estimator_threshold(estimator, method)
        disp = cls(
            score_in=score[is_in],
            score_out=score[~is_in],
            threshold=threshold,
            threshold_label=label or None,
            score_name=method,
            name=type(estimator).__name__ if name is None else name,
        )
        return disp.plot(ax=ax, bins=bins, density=density, **kwargs)

    @classmethod
    @validate_params(
        {
            "threshold": [Real, None],
            "tpr": [_TPR, None],
            "name": [str, None],
            "score_name": [str],
            "bins": _BINS,
            "density": ["boolean"],
        },
        prefer_skip_nested_validation=True,
    )
    def from_predictions(
        cls,
        y_true: Any,
        score: Any,
        *,
        threshold: float | None = None,
        tpr: float | None = None,
        name: str | None = None,
        score_name: str = "score_samples",
        ax: Any = None,
        bins: int | str | Sequence[float] = "auto",
        density: bool = True,
        **kwargs: Any,
    ) -> ScoreHistogramDisplay:
        """Plot the score histograms from labels and scores.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            +1 (or True) for in-distribution, -1 (or False) for OOD samples.
        score : array-like of shape (n_samples,)
            Scores, higher for more in-distribution (as ``score_samples``).
        threshold : float, default=None
            Threshold to mark. Exclusive with ``tpr``.
        tpr : float, default=None
            Mark instead the threshold of the operating point at this target
            TPR, in (0, 1] (the one of :func:`sklearn_ood.metrics.fpr_at_tpr`).
        name : str, default=None
            Detector name for the title.
        score_name : str, default="score_samples"
            Name of the score on the x axis.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        bins : int, str or array-like, default="auto"
            Shared bins, as in :func:`numpy.histogram_bin_edges`.
        density : bool, default=True
            Densities (True) or counts (False).
        **kwargs
            Keyword arguments of matplotlib's ``hist``.

        Returns
        -------
        display : ScoreHistogramDisplay
            The display, plotted.
        """
        if threshold is not None and tpr is not None:
            raise ValueError(
                f"Pass at most one of threshold and tpr to {cls.__name__}."
                f"from_predictions; got threshold={threshold!r} and tpr={tpr!r}."
            )
        is_in, s = _prediction_scores(cls, y_true, score)
        label = None
        if tpr is not None:
            op = _operating_point_dict(is_in, s, tpr)
            threshold = op["threshold"]
            label = f"threshold at TPR {op['tpr']:.1%}: {threshold:.4g}"
        disp = cls(
            score_in=s[is_in],
            score_out=s[~is_in],
            threshold=None if threshold is None else float(threshold),
            threshold_label=label,
            score_name=score_name,
            name=name,
        )
        return disp.plot(ax=ax, bins=bins, density=density, **kwargs)
