"""Feature ensemble of per-layer detectors (Lee et al., 2018).

One clone of a detector (or of each of several detectors) per group of feature
columns (per network layer), and a combiner of the per-layer scores: a
logistic regression trained on known OOD samples (unconstrained, as Lee et al.,
or with non-negative weights, for OOD proxies such as adversarial images), or
an unsupervised mean of standardised scores.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import (
    HasMethods,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._combiners import NonNegativeLogisticRegression, lee_logistic_regression
from ._mahalanobis import MahalanobisDetector
from ._meta import fit_for_scores, score_columns
from .base import BaseDetector
from .utils._folds import inlier_folds
from .utils._labels import split_outlier_labels

__all__ = ["LayerEnsembleDetector"]

_NAME_RE = re.compile(r"^(?P<group>.+)__[^_].*$")


def _as_columns(value, n_features: int, name: str):
    """A slice or a 1-D integer index array of columns, validated."""
    if isinstance(value, slice):
        start, stop, step = value.indices(n_features)
        cols = slice(start, stop, None if step == 1 else step)
        size = len(range(start, stop, step))
    else:
        arr = np.asarray(value)
        if arr.dtype == bool:
            if arr.shape != (n_features,):
                raise ValueError(
                    f"The boolean mask of feature group {name!r} has shape "
                    f"{arr.shape}; expected ({n_features},)."
                )
            arr = np.flatnonzero(arr)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(
                f"Feature group {name!r} must be a slice, a 1-D array of column "
                f"indices or a boolean mask; got {value!r}."
            )
        if arr.size and (arr.min() < -n_features or arr.max() >= n_features):
            raise ValueError(
                f"Feature group {name!r} holds column indices outside "
                f"[0, {n_features}): {value!r}."
            )
        cols = np.where(arr < 0, arr + n_features, arr).astype(np.intp)
        size = cols.size
    if size == 0:
        raise ValueError(
            f"Feature group {name!r} selects no column of X, which has "
            f"{n_features} feature(s)."
        )
    return cols


def _own_calibration_scores(det, n_rows: int) -> np.ndarray:
    """A fitted per-layer detector's calibration scores, one per training row."""
    scores = getattr(det, "calibration_scores_", None)
    if scores is None or np.shape(scores) != (n_rows,):
        found = (
            "none"
            if scores is None
            else f"{np.size(scores)} for {n_rows} training rows"
        )
        raise ValueError(
            "LayerEnsembleDetector(cv='calibration') takes each per-layer "
            "detector's own calibration_scores_ as its not-memorised per-layer "
            "scores, which needs one calibration score per training row "
            f"(leave-one-out or out-of-fold); {type(det).__name__} has {found}. "
            "Use an int cv instead."
        )
    return np.asarray(scores, dtype=np.float64)


class LayerEnsembleDetector(BaseDetector):
    """Feature ensemble of per-layer detectors (Lee et al., 2018).

    One clone of ``detector`` is fitted on each group of feature columns (e.g.
    the pooled features of one network layer, as given by
    :class:`~sklearn_ood.TorchFeatureExtractor`'s ``feature_groups_``), and
    the per-layer scores are combined into one score, higher = more normal.
    With a list of detectors, a clone of each is fitted on each group, and
    all their scores are combined (several detectors on the same features,
    as in :func:`~sklearn_ood.make_ood_pipeline`).

    Parameters
    ----------
    detector : estimator with ``fit`` and ``score_samples``, list of them or \
None, default=None
        Detector of one group of columns; None means
        ``MahalanobisDetector(mode="tied")``, Lee et al.'s per-layer score.
        A list: a clone of each is fitted on each group (the per-layer scores
        then have ``len(detector)`` columns per group).
    feature_groups : "auto", dict or list, default="auto"
        Columns of each group: a dict ``{name: columns}`` or a list of
        ``columns`` (named ``"0"``, ``"1"``, ...), where ``columns`` is a
        slice, an array of column indices or a boolean mask. ``"auto"``:

        - inside :class:`~sklearn_ood.InputPreprocessingDetector`, the
          ``feature_groups_`` of its fitted feature extractor;
        - for ``X`` with string column names ``"<group>__<suffix>"`` (the
          names of ``TorchFeatureExtractor.get_feature_names_out``, e.g. in a
          Pipeline with ``set_output(transform="pandas")``), one group per
          prefix, in order of first appearance;
        - otherwise one group of all columns.
    combiner : {"auto", "logistic", "nonnegative_logistic", \
"mean_standardized"} or classifier, default="auto"
        How per-layer scores become one score (see :meth:`combine`).

        - ``"logistic"``: Lee et al.'s logistic regression
          (:func:`~sklearn_ood.lee_logistic_regression`) on the per-layer
          scores, trained with the in-distribution rows as class 1 and the
          rows labelled ``-1`` as class 0; the score is its
          ``decision_function``, the log-odds of in-distribution. Needs rows
          with ``y == -1``.
        - ``"nonnegative_logistic"``: the same with non-negative weights
          (:class:`~sklearn_ood.NonNegativeLogisticRegression`, ``C=1`` on
          standardised scores): the combined score never decreases when a
          layer's score increases. Use it when the ``-1`` rows are a proxy
          for OOD data (e.g. :func:`~sklearn_ood.adversarial.fgsm` images):
          an unconstrained combiner may give a layer a negative weight that
          inverts the ranking of real OOD data (measured in
          ``benchmarks/bench_lee_ensemble.py``, FGSM validation, tied: AUROC
          20% against MNIST unconstrained, 98% non-negative).
        - ``"mean_standardized"``: the mean over the per-layer scores of
          ``(s_l - mean_l) / std_l``, with the mean and standard deviation of
          the not-memorised per-layer scores of the in-distribution training
          rows (out-of-fold, or the detectors' own calibration scores with
          ``cv="calibration"``); unsupervised, ``-1`` rows are not used.
        - ``"auto"``: ``"logistic"`` when ``y`` has ``-1`` rows, else
          ``"mean_standardized"``.
        - a classifier (cloned): trained like ``"logistic"``; its
          ``decision_function`` (or the log-odds of ``predict_proba``) is the
          score, e.g. ``make_pipeline(StandardScaler(), LogisticRegressionCV())``
          or ``NonNegativeLogisticRegression(C=0.1)``.
    cv : int, cross-validation generator, iterable or "calibration", default=5
        Where the not-memorised per-layer scores of the in-distribution rows
        come from. An int, a splitter or an iterable: out-of-fold scores, each
        fold scored by clones of the detectors fitted on the other folds. An
        int is ``StratifiedKFold(cv, shuffle=True)`` on the class labels when
        ``y`` gives them and every class has ``cv`` rows, else
        ``KFold(cv, shuffle=True)``, both with ``random_state``; a splitter's
        ``split(X_in, y_in)`` is called on the in-distribution rows.
        ``"calibration"``: each per-layer detector's own
        ``calibration_scores_`` (leave-one-out for
        :class:`~sklearn_ood.MahalanobisDetector` and
        :class:`~sklearn_ood.KNNDetector`), with no refitting; valid only for
        detectors that give every training row a calibration score (an error
        otherwise), and not with a ``layer_scorer``.
    random_state : int, RandomState instance or None, default=None
        Shuffling of the folds of an int ``cv``.
    contamination : "auto" or float, default="auto"
        Share of the combined not-memorised scores of the in-distribution
        training rows (``calibration_scores_``) below ``offset_``. ``"auto"``
        is 0.025.

    Attributes
    ----------
    detectors_ : list of estimators
        The per-layer detectors, fitted on all in-distribution rows: one per
        group, or, with a list of detectors, one per group and detector
        (group by group, the detectors in the order of the list).
    feature_groups_ : dict of str to slice or ndarray
        The resolved column groups.
    layer_columns_ : dict of str to slice or ndarray
        The columns each detector of ``detectors_`` reads, in their order (one
        entry per column of :meth:`layer_scores`): ``feature_groups_`` itself
        for a single detector; with a list of detectors, ``"<group>[<j>]"``
        for the ``j``-th detector of the list on ``<group>``.
    combiner_ : estimator or None
        The fitted combiner classifier; None for ``"mean_standardized"``.
    calibration_scores_ : ndarray of shape (n_inliers,)
        The combined not-memorised per-layer scores of the in-distribution
        training rows (``combine`` of them).
    layer_mean_, layer_scale_ : ndarray of shape (n_layer_columns,)
        Mean and standard deviation (1 where it is 0) of the not-memorised
        per-layer scores of the in-distribution training rows.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    InputPreprocessingDetector : Per-layer input pre-processing before scoring.
    NonNegativeLogisticRegression : The combiner for proxy OOD samples.
    make_ood_pipeline : The recommended image pipeline, two detectors combined.
    sklearn_ood.model_selection.TunedThresholdDetectorCV : Threshold selection.

    Notes
    -----
    The rows labelled ``-1`` are used *only* by the combiner: each per-layer
    detector is fitted on the in-distribution rows. The per-layer scores of
    the in-distribution rows that train the combiner (and set ``offset_`` and
    the standardisation) are not memorised: out-of-fold (for each fold,
    clones of the detectors fitted on the other folds score it) or, with
    ``cv="calibration"``, the detectors' own leave-one-out scores. The ``-1``
    rows are scored by the final detectors, which never saw them. Lee et al.
    train the regression on raw per-layer scores (no standardisation), as
    ``"logistic"`` does; the combiner is trained on all in-distribution rows,
    so with few ``-1`` rows the classes are unbalanced (pass a classifier with
    ``class_weight="balanced"`` to reweight them).

    ``cv="calibration"`` with ``combiner="mean_standardized"`` standardises
    each detector's score by the mean and standard deviation of its own
    calibration scores, so that detectors on different scales (a Mahalanobis
    distance in the thousands, a cosine distance below 1) weigh alike; this
    inductive rule gave 95.67 mean AUROC on Fashion-MNIST one-vs-rest, the
    transductive rank average of the same two detectors 95.66
    (``benchmarks/bench_fashion_recipe.py``).

    Extension point: composites that score the layers their own way (e.g.
    :class:`~sklearn_ood.InputPreprocessingDetector`, which moves each input
    with its layer's gradient before scoring) pass ``layer_scorer`` to
    :meth:`fit`, which then uses it for every per-layer score it trains on,
    and combine their own per-layer scores of new data, computed with
    ``detectors_`` on the columns ``layer_columns_``, with :meth:`combine`.

    References
    ----------
    .. [1] K. Lee, K. Lee, H. Lee, J. Shin. "A Simple Unified Framework for
       Detecting Out-of-Distribution Samples and Adversarial Attacks".
       NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KNNDetector, LayerEnsembleDetector, MahalanobisDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> X_ood = rng.normal(3.0, size=(40, 4))
    >>> y = np.r_[np.zeros(200, int), -np.ones(40, int)]
    >>> ens = LayerEnsembleDetector(
    ...     MahalanobisDetector(), feature_groups={"a": slice(0, 2), "b": [2, 3]},
    ...     random_state=0,
    ... ).fit(np.r_[X, X_ood], y)
    >>> ens.layer_scores(X[:3]).shape
    (3, 2)
    >>> ens.predict([[0.0, 0.0, 0.0, 0.0], [4.0, 4.0, 4.0, 4.0]])
    array([ 1, -1])

    Two detectors on the same features (here centred at 3, so that directions
    mean something to the cosine distance), each standardised by its own
    leave-one-out calibration scores:

    >>> both = LayerEnsembleDetector(
    ...     [MahalanobisDetector(), KNNDetector(metric="cosine")],
    ...     combiner="mean_standardized", cv="calibration",
    ... ).fit(X + 3.0)
    >>> list(both.layer_columns_)
    ['all[0]', 'all[1]']
    >>> both.predict([[3.0, 3.0, 3.0, 3.0], [9.0, -3.0, 9.0, -3.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "detector": [HasMethods(["fit", "score_samples"]), list, tuple, None],
        "feature_groups": [StrOptions({"auto"}), dict, list],
        "combiner": [
            StrOptions(
                {"auto", "logistic", "nonnegative_logistic", "mean_standardized"}
            ),
            HasMethods(["fit"]),
        ],
        "cv": ["cv_object", StrOptions({"calibration"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        detector: Any = None,
        *,
        feature_groups: str | dict | list = "auto",
        combiner: str | Any = "auto",
        cv: int | str | Any = 5,
        random_state: int | np.random.RandomState | None = None,
        contamination: str | float = "auto",
    ):
        self.detector = detector
        self.feature_groups = feature_groups
        self.combiner = combiner
        self.cv = cv
        self.random_state = random_state
        self.contamination = contamination

    # ------------------------------------------------------------- groups
    def _resolve_groups(self, n_features: int) -> dict:
        groups = self.feature_groups
        if isinstance(groups, str):  # "auto"
            names = getattr(self, "feature_names_in_", None)
            parsed: dict[str, list[int]] = {}
            if names is not None:
                for j, col in enumerate(names):
                    match = _NAME_RE.match(str(col))
                    if match is None:
                        parsed = {}
                        break
                    parsed.setdefault(match.group("group"), []).append(j)
            if parsed:
                return {k: np.asarray(v, dtype=np.intp) for k, v in parsed.items()}
            return {"all": slice(0, n_features)}
        if isinstance(groups, dict):
            items = list(groups.items())
        else:
            items = [(str(i), g) for i, g in enumerate(groups)]
        if not items:
            raise ValueError(
                "The 'feature_groups' parameter of LayerEnsembleDetector must hold "
                "at least one group; got an empty "
                f"{type(groups).__name__}."
            )
        return {str(k): _as_columns(v, n_features, str(k)) for k, v in items}

    def _base_detectors(self) -> list:
        det = self.detector
        if det is None:
            return [MahalanobisDetector(mode="tied")]
        if not isinstance(det, (list, tuple)):
            return [det]
        if not det or not all(
            callable(getattr(d, "fit", None))
            and callable(getattr(d, "score_samples", None))
            for d in det
        ):
            raise InvalidParameterError(
                "The 'detector' parameter of LayerEnsembleDetector must be an "
                "estimator with fit and score_samples, a non-empty list of such "
                f"estimators or None. Got {det!r} instead."
            )
        return list(det)

    def _layer_columns(self, groups: dict, n_detectors: int) -> dict:
        if not isinstance(self.detector, (list, tuple)):
            return dict(groups)
        return {
            f"{name}[{j}]": cols
            for name, cols in groups.items()
            for j in range(n_detectors)
        }

    def _combiner_kind(self, has_outliers: bool) -> str:
        kind = self.combiner
        if isinstance(kind, str):
            if kind == "auto":
                return "logistic" if has_outliers else "mean_standardized"
            if kind != "mean_standardized" and not has_outliers:
                raise ValueError(
                    f"LayerEnsembleDetector(combiner={kind!r}) needs known OOD "
                    "samples to train the combiner: pass y with -1 for them, or use "
                    "combiner='mean_standardized'."
                )
            return kind
        if not has_outliers:
            raise ValueError(
                "LayerEnsembleDetector with a classifier as combiner needs known "
                "OOD samples (y == -1) to train it."
            )
        return "classifier"

    # --------------------------------------------------------------- fit
    def fit(self, X, y=None, *, layer_scorer=None):
        """Fit the per-layer detectors and the combiner; calibrate ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (in-distribution rows, plus known OOD rows where
            ``y == -1``).
        y : array-like of shape (n_samples,), default=None
            Class labels, passed to the per-layer detectors; ``-1`` marks a
            known OOD row, used only to train the combiner.
        layer_scorer : callable or None, default=None
            The extension point for composites that score the layers their
            own way. ``layer_scorer(detectors, layer_columns, rows)`` returns
            the per-layer scores, shape ``(len(rows), len(detectors))``, of
            the rows ``rows`` of ``X`` (indices into ``X`` as given here) by
            the list of fitted per-layer ``detectors`` (column ``l`` by
            ``detectors[l]``, fitted on the columns ``list(layer_columns.
            values())[l]`` of the fitting rows; ``layer_columns`` is
            ``layer_columns_``). It scores the out-of-fold rows and the
            ``-1`` rows that train the combiner; None scores the columns of
            ``X``. It is not stored: ``score_samples`` scores the columns;
            the composite combines its own per-layer scores with
            :meth:`combine`. Not with ``cv="calibration"``.

        Returns
        -------
        self : LayerEnsembleDetector
            The fitted detector.
        """
        if layer_scorer is not None and not callable(layer_scorer):
            raise TypeError(
                "The 'layer_scorer' argument of LayerEnsembleDetector.fit must be "
                f"a callable or None. Got {layer_scorer!r} instead."
            )
        if layer_scorer is None:
            return super().fit(X, y)
        if isinstance(self.cv, str) and self.cv == "calibration":
            raise ValueError(
                "LayerEnsembleDetector(cv='calibration') takes the per-layer "
                "detectors' own calibration scores of the columns of X, which a "
                "layer_scorer cannot replace; use an int cv with a layer_scorer."
            )
        _, is_out = split_outlier_labels(y, _num_samples(X))
        self._layer_scorer = (layer_scorer, np.flatnonzero(~is_out), is_out)
        try:
            return super().fit(X, y)
        finally:
            del self._layer_scorer

    def _fit(self, X, y, X_outliers):
        scorer = getattr(self, "_layer_scorer", None)
        if scorer is None:
            return self._fit_groups(X, y, X_outliers)
        layer_scorer, inliers, is_out = scorer
        rows_of = {"in": inliers, "out": np.flatnonzero(is_out)}

        def score_fn(detectors, rows, which):
            idx = rows_of[which][rows]
            S = np.asarray(
                layer_scorer(detectors, dict(self.layer_columns_), idx),
                dtype=np.float64,
            )
            if S.shape != (idx.size, len(detectors)):
                raise ValueError(
                    f"layer_scorer returned per-layer scores of shape {S.shape}; "
                    f"expected {(idx.size, len(detectors))}."
                )
            return S

        return self._fit_groups(X, y, X_outliers, score_fn=score_fn)

    def _fit_groups(self, X, y, X_outliers, score_fn=None):
        """Fit the per-layer detectors and the combiner; return the combined
        not-memorised scores of the inliers.

        ``score_fn(detectors, rows, which)`` returns the per-layer scores
        ``(len(rows), n_layer_columns)`` of the rows ``rows`` of the inliers
        (``which="in"``) or of the outliers (``which="out"``); the default
        scores the feature columns.
        """
        bases = self._base_detectors()
        groups = self._resolve_groups(X.shape[1])
        has_out = X_outliers is not None and X_outliers.shape[0] > 0
        kind = self._combiner_kind(has_out)
        self.feature_groups_ = groups
        self.layer_columns_ = self._layer_columns(groups, len(bases))
        cols = list(self.layer_columns_.values())
        base_of = [b for _ in groups for b in bases]  # group by group
        if score_fn is None:

            def score_fn(detectors, rows, which):
                data = X if which == "in" else X_outliers
                return _scores_of(detectors, cols, data[rows])

        def fit_all(rows):
            # The per-layer detectors' own offset_ is not used (ours is).
            y_rows = None if y is None else y[rows]
            X_rows = X[rows]  # one copy, not one per layer
            return [
                fit_for_scores(clone(base), X_rows[:, c], y_rows)
                for base, c in zip(base_of, cols)
            ]

        n_in = X.shape[0]
        if isinstance(self.cv, str):  # "calibration"
            self.detectors_ = fit_all(np.arange(n_in))
            oof = np.column_stack(
                [_own_calibration_scores(det, n_in) for det in self.detectors_]
            )
        else:
            oof = np.empty((n_in, len(cols)), dtype=np.float64)
            for train, test in inlier_folds(self.cv, self.random_state, n_in, y):
                oof[test] = score_fn(fit_all(train), test, "in")
            self.detectors_ = fit_all(np.arange(n_in))
        mean = oof.mean(axis=0)
        scale = oof.std(axis=0)
        scale[~(scale > 0)] = 1.0
        self.layer_mean_, self.layer_scale_ = mean, scale
        if kind == "mean_standardized":
            self.combiner_ = None
        else:
            out = score_fn(self.detectors_, np.arange(X_outliers.shape[0]), "out")
            if kind == "logistic":
                combiner = lee_logistic_regression()
            elif kind == "nonnegative_logistic":
                combiner = NonNegativeLogisticRegression()
            else:
                combiner = clone(self.combiner)
            S = np.vstack([oof, out])
            labels = np.r_[np.ones(n_in, dtype=int), np.zeros(out.shape[0], dtype=int)]
            self.combiner_ = combiner.fit(S, labels)
        return self.combine(oof)

    # ------------------------------------------------------------ scoring
    def combine(self, S) -> np.ndarray:
        """Combine per-layer scores into one score, higher = more normal.

        The extension point for composites that compute the per-layer scores
        their own way: ``score_samples(X)`` is ``combine(layer_scores(X))``.

        Parameters
        ----------
        S : array-like of shape (n_samples, n_layer_columns)
            Per-layer scores, column ``l`` on the scale of
            ``detectors_[l].score_samples``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The combiner's log-odds of in-distribution (``combiner_``), or
            the mean of the standardised per-layer scores
            (``"mean_standardized"``).
        """
        check_is_fitted(self)
        S = np.asarray(S, dtype=np.float64)
        if S.ndim != 2 or S.shape[1] != len(self.detectors_):
            raise ValueError(
                f"combine expects per-layer scores of shape (n_samples, "
                f"{len(self.detectors_)}); got shape {S.shape}."
            )
        if self.combiner_ is None:
            return ((S - self.layer_mean_) / self.layer_scale_).mean(axis=1)
        model = self.combiner_
        if hasattr(model, "decision_function"):
            return np.asarray(model.decision_function(S), dtype=np.float64)
        proba = np.asarray(model.predict_proba(S), dtype=np.float64)
        p = np.clip(proba[:, list(model.classes_).index(1)], 1e-300, 1.0 - 1e-16)
        return np.log(p) - np.log1p(-p)

    def _score(self, X):
        cols = list(self.layer_columns_.values())
        return self.combine(_scores_of(self.detectors_, cols, X))

    def layer_scores(self, X) -> np.ndarray:
        """Per-layer scores of the fitted detectors, before combination.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_layer_columns)
            Column ``l`` is ``detectors_[l].score_samples`` of the columns
            ``list(layer_columns_.values())[l]``; the combiner's input.
        """
        check_is_fitted(self)
        X = self._validate_score_input(X)
        return _scores_of(self.detectors_, list(self.layer_columns_.values()), X)


def _scores_of(detectors, cols, X) -> np.ndarray:
    return score_columns(detectors, [X[:, c] for c in cols])
