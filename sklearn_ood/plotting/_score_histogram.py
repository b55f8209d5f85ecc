"""Histograms of the scores of in-distribution and OOD samples, with a threshold."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..metrics._validation import DEFAULT_RESPONSE, TPR_CONSTRAINT
from ._base import (
    ESTIMATOR_CONSTRAINTS,
    IN_COLOR,
    OUT_COLOR,
    OODDisplayMixin,
    final_step,
    operating_point_dict,
)

_BINS = [Interval(Integral, 1, None, closed="left"), str, "array-like"]
_RANGE = [StrOptions({"auto"}), None, "array-like"]
# Built here, not in the decorator: Sphinx's source reader (viewcode) fails
# on ``**`` inside a decorator's dict.
_ESTIMATOR_CONSTRAINTS = {
    "bins": _BINS,
    "density": ["boolean"],
    "score_range": _RANGE,
    **ESTIMATOR_CONSTRAINTS,
}
#: Share of in-distribution scores left out of the core on each side.
_CORE_QUANTILE = 0.01
#: Scores are left out only when their range exceeds the axis this many times.
_CLIP_FACTOR = 3.0


def auto_score_range(
    s_in: np.ndarray, s_out: np.ndarray, threshold: float | None
) -> tuple[float, float] | None:
    """The x range of ``score_range="auto"``, or None to show every score.

    The rule is in the Notes of :class:`ScoreHistogramDisplay`.
    """
    core_source = s_in if s_in.size else s_out
    low, high = np.quantile(core_source, [_CORE_QUANTILE, 1.0 - _CORE_QUANTILE])
    if threshold is not None and np.isfinite(threshold):
        low, high = min(low, threshold), max(high, threshold)
    width = high - low
    every = np.concatenate([s_in, s_out])
    lowest, highest = float(every.min()), float(every.max())
    view = (low - width, high + width)
    if not width > 0 or highest - lowest <= _CLIP_FACTOR * (view[1] - view[0]):
        return None
    return max(view[0], lowest), min(view[1], highest)


def _estimator_threshold(estimator: Any, response: str) -> tuple[float | None, str]:
    """The detector's decision threshold on the scale of ``response``."""
    if response == "decision_function":
        return 0.0, "detector threshold (decision_function = 0)"
    offset = getattr(final_step(estimator), "offset_", None)
    if offset is None or np.ndim(offset) != 0:
        return None, ""
    offset = float(offset)
    return offset, f"detector threshold (offset_ = {offset:.4g})"


def _check_range(score_range: Any, caller: str) -> tuple[float, float]:
    values = np.asarray(score_range, dtype=np.float64)
    valid = values.shape == (2,) and np.all(np.isfinite(values))
    if not valid or values[0] >= values[1]:
        raise ValueError(
            f"The 'score_range' parameter of {caller} must be 'auto', None or a "
            f"pair (low, high) of finite floats with low < high. Got {score_range!r} "
            "instead."
        )
    return float(values[0]), float(values[1])


def _number(x: float) -> str:
    """``-15,243`` rather than ``-1.524e+04``; 4 significant digits if small."""
    return f"{x:,.0f}" if 1e3 <= abs(x) < 1e12 else f"{x:.4g}"


def _outside_note(n_outside: dict, low: float, high: float) -> str:
    """``"not shown: 870 OOD, 2 in-distribution scores below -1.7e+03"``."""
    parts = []
    for side, bound, word in [(0, low, "below"), (1, high, "above")]:
        counts = [
            f"{n_outside[key][side]} {label}"
            for key, label in [("out", "OOD"), ("in", "in-distribution")]
            if n_outside[key][side]
        ]
        if counts:
            parts.append(f"{', '.join(counts)} {word} {_number(bound)}")
    return "not shown (outside the axis): " + "; ".join(parts) if parts else ""


class ScoreHistogramDisplay(OODDisplayMixin):
    """Histograms of the scores of in-distribution and OOD samples.

    Both histograms share their bins; a dashed vertical line marks a decision
    threshold, and the side of the rejected samples (scores below it) is
    shaded. By default the x axis is cut to the region where decisions are
    made when the OOD scores have a long tail (Mahalanobis scores on image
    features); what is cut is counted under the axis. See ``score_range`` in
    :meth:`plot`.

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
    score_range_ : tuple of float
        ``(low, high)``: the range of the x axis, the first and last bin edges.
    n_outside_ : dict
        ``{"in": (below, above), "out": (below, above)}``: how many scores of
        each group lie outside ``score_range_`` and are not drawn.
    bars_in_ : matplotlib BarContainer
        Bars of the in-distribution histogram.
    bars_out_ : matplotlib BarContainer
        Bars of the OOD histogram.
    threshold_line_ : matplotlib Line2D or None
        Threshold line.
    rejected_span_ : matplotlib Rectangle or None
        Shaded region of the scores below the threshold.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    sklearn_ood.plotting.OODRocDisplay : ROC curve with an operating point.

    Notes
    -----
    **Readable score axes.** Scores of distance-based detectors have a long
    tail on the OOD side: a Mahalanobis detector on 1,280 image features gives
    normal images scores around -1,300 (a spread of a few hundred) and OOD
    images scores down to -70,000. On one linear axis over all scores, the
    normal images then fall into one to three bins. A logarithmic axis does
    not help: the spread of the normal scores is small against their distance
    from 0, wherever the origin of the log is put.

    So with ``score_range="auto"`` the x axis keeps the region where decisions
    are made readable and says what it leaves out. The *core* is the range of
    the middle 98% of the in-distribution scores (1st to 99th percentile),
    extended to the threshold; the axis is the core widened by its own width
    on each side (so that overlapping OOD scores show), cut to the scores
    present. Only when all the scores span more than three times that axis
    are the scores beyond it left out: how many of each group lie below and
    above the axis is written under it (and kept in ``n_outside_``), and each
    density then integrates to the share of its group shown.
    ``score_range=None`` shows every score, ``score_range=(low, high)`` the
    range of your choice.

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
        score_range: str | tuple[float, float] | None = "auto",
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
            scores of both groups together within ``score_range``. Bin edges
            (an array) also set the range of the axis.
        density : bool, default=True
            If True, each histogram integrates to 1 (groups of different sizes
            compare well) or, when scores lie outside the axis, to the share of
            its group shown; if False, bars show counts.
        score_range : "auto", None or (float, float), default="auto"
            Range of the x axis. ``"auto"`` cuts a long tail of scores away
            from the in-distribution scores and the threshold (see the Notes of
            :class:`ScoreHistogramDisplay`), None shows every score, a pair
            sets the range. Scores outside it are counted under the axis.
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
        caller = self._caller("plot")
        if not isinstance(density, (bool, np.bool_)):
            raise TypeError(
                f"The 'density' parameter of {caller} must be an instance of "
                f"'bool'. Got {density!r} instead."
            )
        s_in = np.asarray(self.score_in, dtype=np.float64).ravel()
        s_out = np.asarray(self.score_out, dtype=np.float64).ravel()
        every = np.concatenate([s_in, s_out])
        if every.size == 0 or not np.all(np.isfinite(every)):
            raise ValueError(
                f"{caller} needs finite scores, at least one; got {every.size} "
                f"score(s), {int(np.sum(~np.isfinite(every)))} of them not finite."
            )
        threshold = None if self.threshold is None else float(self.threshold)
        if isinstance(score_range, str) and score_range == "auto":
            view = auto_score_range(s_in, s_out, threshold)
        elif score_range is None:
            view = None
        else:
            view = _check_range(score_range, caller)
        self._set_axes(ax)

        if isinstance(bins, (str, Integral)):
            if view is None:
                edges = np.histogram_bin_edges(every, bins)
            else:
                shown = every[(every >= view[0]) & (every <= view[1])]
                edges = np.histogram_bin_edges(shown, bins, range=view)
        else:
            edges = np.asarray(bins, dtype=np.float64)
            if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(
                    f"The 'bins' parameter of {caller} must be an int, a str or "
                    "increasing bin edges (at least two). Got "
                    f"{np.asarray(bins).tolist()!r} instead."
                )
        self.bin_edges_ = edges
        low, high = float(edges[0]), float(edges[-1])
        self.score_range_ = (low, high)
        self.n_outside_ = {
            key: (int(np.sum(v < low)), int(np.sum(v > high)))
            for key, v in [("in", s_in), ("out", s_out)]
        }

        hist_kw = {"alpha": 0.55, "edgecolor": "white", "linewidth": 0.5, **kwargs}
        widths = np.diff(edges)
        for attr, values, label, color in [
            ("bars_in_", s_in, "in-distribution", IN_COLOR),
            ("bars_out_", s_out, "OOD", OUT_COLOR),
        ]:
            counts, _ = np.histogram(values, edges)
            heights = counts / (max(values.size, 1) * widths) if density else counts
            kw = {"color": color, "label": f"{label} (n = {values.size})", **hist_kw}
            # One weighted sample per bin, at its left edge: the bars of
            # ``heights`` with every keyword of ``hist``.
            _, _, bars = self.ax_.hist(edges[:-1], edges, weights=heights, **kw)
            setattr(self, attr, bars)

        self.threshold_line_ = self.rejected_span_ = None
        if threshold is not None:
            self.threshold_line_ = self.ax_.axvline(
                threshold,
                color="black",
                linestyle="--",
                lw=1.5,
                label=self.threshold_label or f"threshold = {threshold:.4g}",
            )
            if threshold > low:
                self.rejected_span_ = self.ax_.axvspan(
                    low,
                    min(threshold, high),
                    color="0.5",
                    alpha=0.15,
                    lw=0,
                    zorder=0,
                    label="rejected (score < threshold)",
                )
        self.ax_.set_xlim(low, high)
        # Head room above the bars for the legend (about 0.07 of the axes
        # height per entry), so that it hides no bar.
        n_entries = (
            2 + (self.threshold_line_ is not None) + (self.rejected_span_ is not None)
        )
        tallest = max(
            (
                bar.get_height()
                for bars in (self.bars_in_, self.bars_out_)
                for bar in bars
            ),
            default=0.0,
        )
        if tallest > 0:
            top = tallest / (1.0 - 0.07 * n_entries - 0.06)
            self.ax_.set_ylim(top=max(top, self.ax_.get_ylim()[1]))
        xlabel = f"{self.score_name} (higher = more in-distribution)"
        note = _outside_note(self.n_outside_, low, high)
        self.ax_.set(
            xlabel=f"{xlabel}\n{note}" if note else xlabel,
            ylabel="density" if density else "count",
        )
        name = self.name if name is None else name
        title = "Scores of in-distribution and OOD samples"
        self._finish_axes(title if name is None else f"{name}: {title}", "best")
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
        name: str | None = None,
        ax: Any = None,
        response_method: str | Sequence[str] = DEFAULT_RESPONSE,
        bins: int | str | Sequence[float] = "auto",
        density: bool = True,
        score_range: str | tuple[float, float] | None = "auto",
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
        score_range : "auto", None or (float, float), default="auto"
            Range of the x axis; see :meth:`plot`.
        **kwargs
            Keyword arguments of matplotlib's ``hist``.

        Returns
        -------
        display : ScoreHistogramDisplay
            The display, plotted.
        """
        return cls._from_estimator(
            estimator,
            X,
            y,
            name=name,
            ax=ax,
            response_method=response_method,
            threshold=None,
            tpr=None,
            plot_kw={
                "bins": bins,
                "density": density,
                "score_range": score_range,
                **kwargs,
            },
        )

    @classmethod
    @validate_params(
        {
            "threshold": [Real, None],
            "tpr": [*TPR_CONSTRAINT, None],
            "name": [str, None],
            "score_name": [str],
            "bins": _BINS,
            "density": ["boolean"],
            "score_range": _RANGE,
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
        score_range: str | tuple[float, float] | None = "auto",
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
        score_range : "auto", None or (float, float), default="auto"
            Range of the x axis; see :meth:`plot`.
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
        return cls._from_predictions(
            y_true,
            score,
            name=name,
            ax=ax,
            threshold=threshold,
            tpr=tpr,
            score_name=score_name,
            plot_kw={
                "bins": bins,
                "density": density,
                "score_range": score_range,
                **kwargs,
            },
        )

    @classmethod
    def _from_scores(
        cls,
        is_in,
        score,
        *,
        name,
        ax,
        estimator,
        response,
        threshold,
        tpr,
        plot_kw,
        score_name="score_samples",
    ):
        label = None
        if estimator is not None:
            threshold, label = _estimator_threshold(estimator, response)
            score_name = response
        elif tpr is not None:
            op = operating_point_dict(is_in, score, tpr)
            threshold = op["threshold"]
            label = f"threshold at TPR {op['tpr']:.1%}: {threshold:.4g}"
        disp = cls(
            score_in=score[is_in],
            score_out=score[~is_in],
            threshold=None if threshold is None else float(threshold),
            threshold_label=label or None,
            score_name=score_name,
            name=name,
        )
        return disp.plot(ax=ax, **plot_kw)
