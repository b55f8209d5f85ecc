"""Scorers for model selection: an OOD metric on ``estimator.score_samples(X)``."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from sklearn.metrics._scorer import _BaseScorer
from sklearn.utils._param_validation import StrOptions, validate_params
from sklearn.utils.validation import _check_response_method

from ._ranking import (
    aupr_in,
    aupr_out,
    auroc,
    detection_accuracy,
    detection_error,
    fpr_at_tpr,
    tnr_at_tpr,
)
from ._validation import DEFAULT_RESPONSE, labels_to_inlier_mask

__all__ = [
    "aupr_in_scorer",
    "aupr_out_scorer",
    "auroc_scorer",
    "detection_accuracy_scorer",
    "get_ood_scorer",
    "make_ood_scorer",
    "neg_detection_error_scorer",
    "neg_fpr_at_95_tpr_scorer",
    "tnr_at_95_tpr_scorer",
]

_METRICS: dict[str, tuple[Callable[..., float], int]] = {
    "auroc": (auroc, 1),
    "aupr_in": (aupr_in, 1),
    "aupr_out": (aupr_out, 1),
    "tnr_at_tpr": (tnr_at_tpr, 1),
    "fpr_at_tpr": (fpr_at_tpr, -1),
    "detection_accuracy": (detection_accuracy, 1),
    "detection_error": (detection_error, -1),
}


class _OODScorer(_BaseScorer):
    """Scorer calling an OOD metric on ``estimator.score_samples(X)``.

    Built by :func:`make_ood_scorer`. ``y == -1`` marks OOD samples and every
    other label marks in-distribution ones.
    """

    def _score(self, method_caller, estimator, X, y_true, **kwargs):
        is_in = labels_to_inlier_mask(y_true)
        # The first available method; AttributeError naming them if none is.
        name = _check_response_method(estimator, self._response_method).__name__
        score = method_caller(estimator, name, X, pos_label=None)
        return self._sign * self._score_func(is_in, score, **self._kwargs, **kwargs)

    def __repr__(self) -> str:
        sign = "" if self._sign > 0 else ", greater_is_better=False"
        response = (
            ""
            if tuple(self._response_method) == DEFAULT_RESPONSE
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
    response_method: str | Sequence[str] = DEFAULT_RESPONSE,
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
