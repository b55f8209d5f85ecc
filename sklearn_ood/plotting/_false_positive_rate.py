"""Target against measured false-positive rate: is a detector calibrated?"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from scipy.stats import binom
from sklearn.pipeline import Pipeline
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, validate_params

from ..base import AUTO_CONTAMINATION
from ._base import MARKER, OODDisplayMixin, final_step, import_pyplot

_RATE = Interval(Real, 0, 1, closed="right")
_CONFIDENCE = Interval(Real, 0, 1, closed="neither")
_CONSTRAINTS = {
    "max_rate": [_RATE],
    "confidence": [_CONFIDENCE],
    "name": [str, None],
}
_XLABEL = "target false-positive rate \N{GREEK SMALL LETTER ALPHA} (contamination)"
_YLABEL = (
    "measured share of normal samples flagged "
    "(p \N{LESS-THAN OR EQUAL TO} \N{GREEK SMALL LETTER ALPHA})"
)
# Built here, not in the decorators: Sphinx's source reader (viewcode) fails
# on ``**`` inside a decorator's dict.
_PREDICTIONS_CONSTRAINTS = {
    "p_values": ["array-like"],
    "contamination": [_RATE, None],
    **_CONSTRAINTS,
}
#: Points of the grid of target rates (the jumps of the measured curve are added).
_N_GRID = 201


def _check_p_values(p_values: Any, caller: str) -> np.ndarray:
    p = check_array(p_values, ensure_2d=False, dtype=np.float64, input_name="p_values")
    if p.ndim != 1:
        raise ValueError(
            f"{caller} needs a 1-D array of p-values; got an array of shape {p.shape}."
        )
    if np.any((p < 0) | (p > 1)):
        raise ValueError(
            f"{caller} needs p-values in [0, 1]; got values from {p.min():.4g} to "
            f"{p.max():.4g}. Pass p-values (detector.p_values(X)), not scores."
        )
    return p


def _p_values(estimator: Any, X: Any, caller: str) -> np.ndarray:
    """``estimator.p_values(X)``, through the leading steps of a pipeline."""
    final = final_step(estimator)
    if not hasattr(final, "p_values"):
        raise TypeError(
            f"{caller} needs a fitted detector with a p_values method (a "
            "sklearn_ood.base.OutlierContractMixin), or a pipeline ending with one. "
            f"Got {type(final).__name__}. For another detector, compute p-values "
            "and call from_predictions."
        )
    if final is not estimator and len(estimator) > 1:
        X = Pipeline(estimator.steps[:-1]).transform(X)
    return final.p_values(X)


def _share_at_most(p_sorted: np.ndarray, x):
    """Share of the sorted p-values at most ``x`` (the rule of ``predict``)."""
    return np.searchsorted(p_sorted, x, side="right") / p_sorted.size


def _contamination(estimator: Any) -> float | None:
    c = getattr(final_step(estimator), "contamination", None)
    if isinstance(c, str) and c == "auto":
        return AUTO_CONTAMINATION
    return float(c) if isinstance(c, Real) else None


class FalsePositiveRateDisplay(OODDisplayMixin):
    """Target against measured false-positive rate on held-out normal data.

    The calibration plot of an outlier detector (the analogue of
    :class:`sklearn.calibration.CalibrationDisplay`). A detector of
    :mod:`sklearn_ood` flags a sample when its conformal p-value is at most
    the target rate ``alpha`` (``predict`` does so at ``alpha =
    contamination``), so on normal data it never saw, the share of samples
    flagged should be close to ``alpha``. The display draws that measured
    share, ``mean(p_values <= alpha)``, against ``alpha``, with the diagonal
    and the band where the measured share of ``n`` samples falls with
    probability ``confidence`` when the true rate is ``alpha`` (binomial
    quantiles). A curve inside the band is consistent with a calibrated
    detector; a curve above it flags more normal samples than asked.

    The band accounts for the finite test set only. With a finite calibration
    set of ``m`` scores the p-values take the values ``k / (m + 1)``, so the
    measured curve is a staircase, and for one calibration set the true rate
    varies around ``alpha`` by about ``sqrt(alpha (1 - alpha) / m)``.

    Parameters
    ----------
    p_values : ndarray of shape (n_samples,)
        Conformal p-values of held-out normal samples, in [0, 1].
    max_rate : float, default=0.2
        Largest target rate shown, in (0, 1].
    confidence : float, default=0.95
        Probability of the binomial band, in (0, 1).
    contamination : float, default=None
        Target rate of the detector's ``predict``, marked on the curve; None
        marks none.
    name : str, default=None
        Name of the detector, shown in the legend.

    Attributes
    ----------
    rates_ : ndarray
        Target rates: a grid of ``[0, max_rate]`` and every p-value in it.
    measured_ : ndarray
        Share of the samples whose p-value is at most each rate.
    band_low_ : ndarray
        Lower end of the binomial band at each rate (a share).
    band_high_ : ndarray
        Upper end of the binomial band at each rate (a share).
    flagged_ : float or None
        Measured share at ``contamination``: the share ``predict`` flags.
    line_ : matplotlib Line2D
        Measured share, a step function of the target rate.
    band_ : matplotlib PolyCollection or None
        Binomial band, if plotted.
    diagonal_ : matplotlib Line2D or None
        Target = measured, if plotted.
    contamination_marker_ : matplotlib Line2D or None
        Marker at ``(contamination, flagged_)``.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    sklearn_ood.base.OutlierContractMixin.p_values : The p-values plotted.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn_ood.plotting import FalsePositiveRateDisplay
    >>> p = [0.01, 0.05, 0.3, 0.5, 0.9]
    >>> disp = FalsePositiveRateDisplay.from_predictions(p, contamination=0.05)
    >>> disp.flagged_  # 2 of the 5 p-values are at most 0.05
    0.4
    >>> plt.close(disp.figure_)
    """

    def __init__(
        self,
        *,
        p_values: np.ndarray,
        max_rate: float = 0.2,
        confidence: float = 0.95,
        contamination: float | None = None,
        name: str | None = None,
    ):
        self.p_values = p_values
        self.max_rate = max_rate
        self.confidence = confidence
        self.contamination = contamination
        self.name = name

    def plot(
        self,
        ax: Any = None,
        *,
        name: str | None = None,
        plot_reference: bool = True,
        **kwargs: Any,
    ) -> FalsePositiveRateDisplay:
        """Plot the measured rate, the diagonal and the binomial band.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure. To compare
            detectors, pass the ``ax_`` of a first display.
        name : str, default=None
            Legend name; None uses the ``name`` given at construction.
        plot_reference : bool, default=True
            Whether to draw the diagonal and the binomial band. Pass False when
            adding a detector to the axes of another display (same ``n``).
        **kwargs
            Keyword arguments of matplotlib's ``plot`` for the measured curve.

        Returns
        -------
        display : FalsePositiveRateDisplay
            The display, with its artists set.
        """
        caller = self._caller("plot")
        for param, interval in [("max_rate", _RATE), ("confidence", _CONFIDENCE)]:
            value = getattr(self, param)
            if not isinstance(value, Real) or not interval.is_satisfied_by(value):
                raise ValueError(
                    f"The '{param}' parameter of {type(self).__name__} must be a "
                    f"float in {interval}. Got {value!r} instead."
                )
        p = np.sort(_check_p_values(self.p_values, caller))
        n, max_rate = p.size, float(self.max_rate)  # n >= 1: checked above
        self._set_axes(ax)

        # The measured share is a step function that jumps at each p-value:
        # evaluating it on the grid and at every jump draws it exactly.
        rates = np.union1d(np.linspace(0.0, max_rate, _N_GRID), p[p <= max_rate])
        self.rates_ = rates
        self.measured_ = _share_at_most(p, rates)
        low, high = binom.interval(self.confidence, n, rates)
        self.band_low_, self.band_high_ = low / n, high / n

        self.diagonal_ = self.band_ = None
        if plot_reference:
            (self.diagonal_,) = self.ax_.plot(
                [0, max_rate], [0, max_rate], color="k", ls="--", lw=1, label="target"
            )
            self.band_ = self.ax_.fill_between(
                rates,
                self.band_low_,
                self.band_high_,
                color="0.5",
                alpha=0.25,
                lw=0,
                label=f"{self.confidence:.0%} binomial band (n = {n})",
            )
        name = self.name if name is None else name
        line_kw = {
            "label": name if name is not None else "measured",
            "drawstyle": "steps-post",
            **kwargs,
        }
        (self.line_,) = self.ax_.plot(rates, self.measured_, **line_kw)

        self.flagged_ = self.contamination_marker_ = None
        if self.contamination is not None:
            c = float(self.contamination)
            self.flagged_ = float(_share_at_most(p, c))
            (self.contamination_marker_,) = self.ax_.plot(
                [c],
                [self.flagged_],
                color=self.line_.get_color(),
                **MARKER,
                label=f"contamination = {c:g}: {self.flagged_:.1%} flagged",
            )
        top = max(max_rate, self.measured_.max(), self.band_high_.max())
        top = max(top, self.ax_.get_ylim()[1] / 1.02) if ax is not None else top
        self.ax_.set(
            xlim=(0, max_rate),
            ylim=(0, 1.02 * top),
            xlabel=_XLABEL,
            ylabel=_YLABEL,
        )
        self._finish_axes("False-positive rate on held-out normal data", "upper left")
        return self

    @classmethod
    @validate_params(_CONSTRAINTS, prefer_skip_nested_validation=True)
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        *,
        max_rate: float = 0.2,
        confidence: float = 0.95,
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> FalsePositiveRateDisplay:
        """Plot the measured false-positive rate of a fitted detector.

        ``X`` must be normal data the detector did not see in ``fit``. The
        p-values are ``estimator.p_values(X)`` (through the leading steps of a
        pipeline), and the detector's ``contamination`` is marked.

        Parameters
        ----------
        estimator : estimator
            Fitted detector with ``p_values`` (every detector of sklearn-ood,
            see :class:`sklearn_ood.base.OutlierContractMixin`), or a pipeline
            ending with one.
        X : array-like of shape (n_samples, n_features)
            Held-out normal samples.
        max_rate : float, default=0.2
            Largest target rate shown, in (0, 1].
        confidence : float, default=0.95
            Probability of the binomial band, in (0, 1).
        name : str, default=None
            Legend name; None uses the estimator's class name.
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        **kwargs
            Keyword arguments of :meth:`plot` (``plot_reference``) and of
            matplotlib's ``plot`` for the measured curve.

        Returns
        -------
        display : FalsePositiveRateDisplay
            The display, plotted.
        """
        caller = cls._caller("from_estimator")
        import_pyplot(caller)
        disp = cls(
            p_values=_p_values(estimator, X, caller),
            max_rate=max_rate,
            confidence=confidence,
            contamination=_contamination(estimator),
            name=type(estimator).__name__ if name is None else name,
        )
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    @validate_params(
        _PREDICTIONS_CONSTRAINTS,
        prefer_skip_nested_validation=True,
    )
    def from_predictions(
        cls,
        p_values: Any,
        *,
        contamination: float | None = None,
        max_rate: float = 0.2,
        confidence: float = 0.95,
        name: str | None = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> FalsePositiveRateDisplay:
        """Plot the measured false-positive rate from p-values of normal samples.

        Parameters
        ----------
        p_values : array-like of shape (n_samples,)
            The p-values of held-out normal samples, in [0, 1] (low = unusual),
            e.g. from :func:`sklearn_ood.base.conformal_p_values`.
        contamination : float, default=None
            Target rate to mark on the curve, in (0, 1]; None marks none.
        max_rate : float, default=0.2
            Largest target rate shown, in (0, 1].
        confidence : float, default=0.95
            Probability of the binomial band, in (0, 1).
        name : str, default=None
            Legend name; None shows "measured".
        ax : matplotlib Axes, default=None
            Axes to draw into; None creates a new figure.
        **kwargs
            Keyword arguments of :meth:`plot` (``plot_reference``) and of
            matplotlib's ``plot`` for the measured curve.

        Returns
        -------
        display : FalsePositiveRateDisplay
            The display, plotted.
        """
        caller = cls._caller("from_predictions")
        import_pyplot(caller)
        disp = cls(
            p_values=_check_p_values(p_values, caller),
            max_rate=max_rate,
            confidence=confidence,
            contamination=contamination,
            name=name,
        )
        return disp.plot(ax=ax, **kwargs)
