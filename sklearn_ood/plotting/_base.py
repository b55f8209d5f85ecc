"""What every display shares: matplotlib, axes, and where the plotted data comes from.

:class:`OODDisplayMixin` is to the displays of this package what scikit-learn's
``_BinaryClassifierCurveDisplayMixin`` (``sklearn/utils/_plotting.py``) is to
``RocCurveDisplay``: it validates the two sources of data once,

- ``from_estimator``: a fitted detector (or a pipeline ending with one), ``X``
  and dataset labels ``y`` (``y == -1`` is OOD, every other label
  in-distribution, the rule of the OOD scorers);
- ``from_predictions``: metric labels (``+1`` / ``-1`` or booleans) and scores,
  checked as :mod:`sklearn_ood.metrics` checks them;

and hands the resulting ``(is_in, score)`` to the display's ``_from_scores``,
so that a display only says what it draws from scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils import check_consistent_length
from sklearn.utils.validation import _check_response_method

from ..metrics._validation import (
    check_inputs,
    check_score,
    labels_to_inlier_mask,
    operating_point_with_threshold,
)

#: Constraints of the parameters shared by every ``from_estimator``.
ESTIMATOR_CONSTRAINTS = {"name": [str, None], "response_method": [str, list, tuple]}
IN_COLOR, OUT_COLOR = "C0", "C1"
MARKER = {"marker": "o", "ms": 8, "ls": "none", "mec": "black", "zorder": 3}


def import_pyplot(caller: str):
    """Import ``matplotlib.pyplot``, or raise an ImportError naming the extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib, which is not installed. Install it "
            "with `pip install sklearn-ood[plot]` (or `pip install matplotlib`)."
        ) from exc
    return plt


def legend_label(name: str | None, metric: str, value: float | None) -> str | None:
    """``"name (metric = value)"``, or the parts of it that are given."""
    if value is not None and name is not None:
        return f"{name} ({metric} = {value:.3f})"
    if value is not None:
        return f"{metric} = {value:.3f}"
    return name


def final_step(estimator: Any) -> Any:
    """The detector of a pipeline ending with one, or the estimator itself."""
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def operating_point_dict(is_in: np.ndarray, score: np.ndarray, tpr: float) -> dict:
    """The operating point of :mod:`sklearn_ood.metrics`, with its threshold.

    The point of the metrics package's ``operating_point``, with the
    threshold of the same point of the same full ROC curve.
    """
    fpr, reached, threshold = operating_point_with_threshold(is_in, score, tpr)
    return {
        "target_tpr": float(tpr),
        "tpr": reached,
        "fpr": fpr,
        "tnr": 1.0 - fpr,
        "threshold": threshold,
    }


class OODDisplayMixin:
    """Shared by the displays: axes, data sources, legend and title.

    A display implements ``_from_scores(is_in, score, *, name, ax, estimator,
    response, **options)``; its public ``from_estimator`` and
    ``from_predictions`` call :meth:`_from_estimator` and
    :meth:`_from_predictions`, which validate the input and call it.
    """

    @classmethod
    def _caller(cls, method: str) -> str:
        return f"{cls.__name__}.{method}"

    def _set_axes(self, ax: Any, method: str = "plot") -> None:
        """Set ``ax_`` and ``figure_``: ``ax``, or the axes of a new figure.

        A new figure uses matplotlib's constrained layout, which keeps the axis
        labels, ticks and title inside the figure.
        """
        caller = self._caller(method)
        plt = import_pyplot(caller)
        from matplotlib.axes import Axes

        if ax is None:
            _, ax = plt.subplots(layout="constrained")
        elif not isinstance(ax, Axes):
            raise TypeError(
                f"The 'ax' parameter of {caller} must be a matplotlib Axes or None. "
                f"Got {type(ax).__name__} instead."
            )
        self.ax_, self.figure_ = ax, ax.figure

    def _finish_axes(self, title: str, legend_loc: str) -> None:
        """Set the title unless the user gave one, and (re)draw the legend."""
        ax = self.ax_
        if not ax.get_title():
            ax.set_title(title)
        if any(not lab.startswith("_") for lab in ax.get_legend_handles_labels()[1]):
            ax.legend(loc=legend_loc, fontsize="small")

    @classmethod
    def _scores_from_estimator(
        cls, estimator: Any, X: Any, y: Any, response_method: Any
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """``(is_in, score, method name)`` of a fitted detector on labelled data."""
        caller = cls._caller("from_estimator")
        import_pyplot(caller)
        if y is None:
            raise ValueError(
                f"{caller} needs labels y, where y == -1 marks OOD samples and any "
                "other label marks in-distribution samples. Got y=None."
            )
        check_consistent_length(X, y)
        try:
            is_in = labels_to_inlier_mask(y)
        except ValueError as exc:
            raise ValueError(f"Invalid y for {caller}: {exc}") from exc
        method = _check_response_method(estimator, response_method)
        score = check_score(method(X), is_in.shape[0], name=f"{method.__name__}(X)")
        return is_in, score, method.__name__

    @classmethod
    def _from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        name: str | None,
        ax: Any,
        response_method: Any,
        **options: Any,
    ):
        """Score ``X`` with ``estimator`` and plot with ``_from_scores``."""
        is_in, score, response = cls._scores_from_estimator(
            estimator, X, y, response_method
        )
        return cls._from_scores(
            is_in,
            score,
            name=type(estimator).__name__ if name is None else name,
            ax=ax,
            estimator=estimator,
            response=response,
            **options,
        )

    @classmethod
    def _from_predictions(
        cls, y_true: Any, score: Any, *, name: str | None, ax: Any, **options: Any
    ):
        """Check metric labels and scores, and plot with ``_from_scores``."""
        import_pyplot(cls._caller("from_predictions"))
        is_in, s = check_inputs(y_true, score)
        return cls._from_scores(
            is_in, s, name=name, ax=ax, estimator=None, response=None, **options
        )

    @classmethod
    def _from_scores(cls, is_in, score, *, name, ax, estimator, response, **options):
        raise NotImplementedError  # pragma: no cover - each display defines it


def curve_axes(ax, xlabel: str, ylabel: str, plot_chance: bool, chance_y, label):
    """Label a square [0, 1] x [0, 1] plot; return the chance line or None."""
    line = None
    if plot_chance:
        (line,) = ax.plot((0, 1), chance_y, color="k", ls="--", lw=1, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.set_aspect("equal")
    return line
