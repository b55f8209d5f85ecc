"""Scaling out with Dask: fit and score detectors over Dask arrays and dataframes.

- :func:`fit_dask` fits a detector on a ``dask.array`` (or dataframe) block by
  block, on the active Dask scheduler (a ``distributed`` cluster when a client
  is active). A detector that implements the *mergeable-statistics protocol*
  (below), such as :class:`~sklearn_ood.MahalanobisDetector`, is fitted
  without gathering the data; any other estimator on the gathered array.
- :class:`ParallelPostFit` scores any fitted detector or pipeline over a Dask
  array or dataframe, block by block.

Dask is optional: install it with ``pip install "sklearn-ood[dask]"``.

The mergeable-statistics protocol
---------------------------------
A detector whose fit only needs statistics that merge exactly (counts, means,
scatter matrices) implements two methods:

- ``block_statistics(X, y=None, *, start=0)``: the statistics of one block of
  training rows (``start``: index of its first in-distribution row among all
  of them), an object with a ``merge(other)`` method that returns the
  statistics of both blocks;
- ``fit_from_statistics(statistics, X_head, map_blocks)``: fits the detector
  from the merged statistics. ``X_head`` holds a few training rows (feature
  count and names); ``map_blocks(fn)`` returns ``[fn(X_block, y_block, start)
  for every block]``, which the detector uses to compute the calibration
  scores of the training rows where the blocks live (``fn`` is picklable).

:func:`fit_dask` computes the statistics of every block in parallel, merges
them in a binary tree, and lets the detector finish, so the result equals
``fit`` on the whole array (to floating-point rounding).
"""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from .utils._labels import split_outlier_labels

__all__ = ["ParallelPostFit", "fit_dask"]


# ================================================================= Dask
def _require_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching
        raise ImportError(
            "This function needs Dask; install it with "
            "pip install 'sklearn-ood[dask]' (dask[array,dataframe] and distributed)."
        ) from exc
    return dask, da


def _is_dask_frame(X) -> bool:
    return type(X).__module__.startswith("dask") and hasattr(X, "map_partitions")


def _is_dask_array(X) -> bool:
    return type(X).__module__.startswith("dask") and hasattr(X, "map_blocks")


def _as_row_blocks(X, y):
    """``X`` as a dask array in row blocks (all columns in each) and ``y`` aligned."""
    _, da = _require_dask()
    names = None
    if _is_dask_frame(X):
        names = np.asarray(X.columns, dtype=object)
        X = X.to_dask_array(lengths=True)
    elif not _is_dask_array(X):
        X = da.asarray(np.asarray(X))
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array, got {X.ndim}D instead.")
    X = X.rechunk({1: -1})
    if y is not None:
        if _is_dask_frame(y):
            y = y.to_dask_array(lengths=True)
        y = y.rechunk((X.chunks[0],)) if _is_dask_array(y) else np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y has {y.shape[0]} labels but X has {X.shape[0]} samples; they "
                "must have the same length."
            )
    return X, y, names


def _inlier_count(y_block):
    """Number of in-distribution rows of a block of labels (``-1``: known outlier)."""
    y_in, _ = split_outlier_labels(y_block, len(y_block))
    return len(y_in)


def _is_mergeable(estimator) -> bool:
    return callable(getattr(estimator, "block_statistics", None)) and callable(
        getattr(estimator, "fit_from_statistics", None)
    )


def _merge(a, b):
    return a.merge(b)


def fit_dask(estimator, X, y=None):
    """Fit a detector on a Dask array or dataframe, block by block.

    A detector that implements the mergeable-statistics protocol (see
    :mod:`sklearn_ood.parallel`), such as
    :class:`~sklearn_ood.MahalanobisDetector`, is fitted without gathering the
    data: every block of rows is reduced to statistics (per-class, per-fold
    moments) that are merged exactly, then the calibration scores that set
    ``offset_`` are computed block by block. The result equals
    ``estimator.fit`` on the whole array (to floating-point rounding). Any
    other estimator is fitted on the array gathered into memory. Runs on the
    active Dask scheduler (a ``distributed`` cluster when a
    :class:`distributed.Client` is active).

    Parameters
    ----------
    estimator : estimator
        The detector to fit (fitted in place).
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)
        Training data; rows may be chunked in any way.
    y : dask array, dask series, array-like of shape (n_samples,) or None
        Labels, as for ``fit`` (``-1`` marks known outliers).

    Returns
    -------
    estimator : estimator
        The fitted estimator.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from sklearn_ood import MahalanobisDetector
    >>> from sklearn_ood.parallel import fit_dask
    >>> X = np.random.RandomState(0).normal(size=(300, 3))
    >>> det = fit_dask(MahalanobisDetector(), da.from_array(X, chunks=100))
    >>> ref = MahalanobisDetector().fit(X)
    >>> bool(np.allclose(det.score_samples(X), ref.score_samples(X)))
    True
    """
    dask, _ = _require_dask()
    X, y, names = _as_row_blocks(X, y)
    if not _is_mergeable(estimator):
        X_mem = X.compute()
        if names is not None:
            import pandas as pd

            X_mem = pd.DataFrame(X_mem, columns=names)
        y_mem = y.compute() if _is_dask_array(y) else y
        return estimator.fit(X_mem, y_mem)

    blocks = X.to_delayed().ravel()
    bounds = np.r_[0, np.cumsum(X.chunks[0])]
    if y is None:
        y_blocks = [None] * len(blocks)
        counts = np.diff(bounds)
    else:
        if _is_dask_array(y):
            y_blocks = list(y.to_delayed().ravel())
        else:
            y_blocks = [y[a:b] for a, b in itertools.pairwise(bounds)]
        counts = np.array(
            dask.compute(*[dask.delayed(_inlier_count)(yb) for yb in y_blocks])
        )
    starts = [int(s) for s in np.r_[0, np.cumsum(counts)[:-1]]]
    head = X[:1].compute()
    if names is not None:
        import pandas as pd

        head = pd.DataFrame(head, columns=names)
    est = dask.delayed(estimator, pure=True)
    parts = [
        est.block_statistics(xb, yb, start=g0)
        for xb, yb, g0 in zip(blocks, y_blocks, starts)
    ]
    while len(parts) > 1:  # binary tree of exact merges
        parts = [
            dask.delayed(_merge)(a, b) if b is not None else a
            for a, b in zip(parts[::2], [*parts[1::2], None])
        ]
    (statistics,) = dask.compute(parts[0])

    def map_blocks(fn):
        fn = dask.delayed(fn, pure=True)
        return list(
            dask.compute(
                *[fn(xb, yb, g0) for xb, yb, g0 in zip(blocks, y_blocks, starts)]
            )
        )

    return estimator.fit_from_statistics(statistics, head, map_blocks)


def _apply(block, estimator, method):
    return np.asarray(getattr(estimator, method)(block))


def _apply_frame(frame, estimator, method):
    import pandas as pd

    return pd.Series(np.asarray(getattr(estimator, method)(frame)), index=frame.index)


class ParallelPostFit(MetaEstimatorMixin, BaseEstimator):
    """Score with any fitted detector or pipeline over Dask collections, block by block.

    A small version of dask-ml's ``ParallelPostFit`` for the outlier contract:
    ``score_samples``, ``decision_function`` and ``predict`` on a Dask array
    (rows in any chunks) return a lazy Dask array of one value per row; on a
    Dask dataframe, a lazy Dask series with the dataframe's index. Each block
    is scored by the wrapped estimator as a NumPy array (a pandas dataframe
    for a Dask dataframe), so results equal scoring everything at once. Other
    input is passed to the estimator unchanged.

    Parameters
    ----------
    estimator : estimator
        A detector or pipeline ending in one. If it is already fitted, the
        wrapper can score without being fitted itself.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator`` (only after :meth:`fit`).

    See Also
    --------
    fit_dask : Fit a detector on a Dask array.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from sklearn_ood import KNNDetector
    >>> from sklearn_ood.parallel import ParallelPostFit
    >>> rng = np.random.RandomState(0)
    >>> det = KNNDetector().fit(rng.normal(size=(100, 3)))
    >>> X = rng.normal(size=(1000, 3))
    >>> lazy = ParallelPostFit(det).score_samples(da.from_array(X, chunks=250))
    >>> bool(np.allclose(lazy.compute(), det.score_samples(X)))
    True
    """

    _parameter_constraints: dict = {"estimator": [HasMethods(["predict"])]}

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y=None):
        """Fit a clone of the estimator (with :func:`fit_dask` for Dask input).

        Parameters
        ----------
        X : array-like, dask array or dask dataframe
            Training data.
        y : array-like or None
            Labels, passed on to ``fit``.

        Returns
        -------
        self : ParallelPostFit
            The fitted wrapper.
        """
        self._validate_params()
        est = clone(self.estimator)
        if _is_dask_array(X) or _is_dask_frame(X):
            self.estimator_ = fit_dask(est, X, y)
        else:
            self.estimator_ = est.fit(X, y)
        return self

    @property
    def n_features_in_(self) -> int:
        """Number of features seen by the fitted estimator."""
        return self._fitted().n_features_in_

    def _fitted(self):
        if hasattr(self, "estimator_"):
            return self.estimator_
        check_is_fitted(self.estimator)
        return self.estimator

    def _run(self, method, X, dtype):
        est = self._fitted()
        if _is_dask_frame(X):
            import pandas as pd

            meta = pd.Series(np.array([], dtype=dtype))
            return X.map_partitions(_apply_frame, est, method, meta=meta)
        if _is_dask_array(X):
            X = X.rechunk({1: -1})
            return X.map_blocks(_apply, est, method, dtype=dtype, drop_axis=1)
        return getattr(est, method)(X)

    def score_samples(self, X):
        """Normality scores of ``X`` (lazy for Dask input).

        Parameters
        ----------
        X : array-like, dask array or dask dataframe
            Samples.

        Returns
        -------
        scores : ndarray, dask array or dask series of shape (n_samples,)
            As the estimator's ``score_samples``, block by block.
        """
        return self._run("score_samples", X, np.float64)

    def decision_function(self, X):
        """``score_samples(X) - offset_`` (lazy for Dask input).

        Parameters
        ----------
        X : array-like, dask array or dask dataframe
            Samples.

        Returns
        -------
        decision : ndarray, dask array or dask series of shape (n_samples,)
            Negative for outliers.
        """
        return self._run("decision_function", X, np.float64)

    def predict(self, X):
        """``+1`` for inliers, ``-1`` for outliers (lazy for Dask input).

        Parameters
        ----------
        X : array-like, dask array or dask dataframe
            Samples.

        Returns
        -------
        labels : ndarray, dask array or dask series of shape (n_samples,)
            Predicted labels.
        """
        return self._run("predict", X, np.int64)
