"""Mergeable statistics of training rows, for streaming and distributed fits.

:class:`GaussianStatistics` holds the moments of the training rows per (fold,
class) cell: everything the Gaussian model and its out-of-fold calibration
need. Statistics of disjoint sets of rows merge exactly (classes may differ:
they are aligned), so a fit can be assembled batch by batch
(``partial_fit``) or block by block (:func:`sklearn_ood.parallel.fit_dask`).
:class:`OffsetSample` keeps a bounded, systematic sample of the rows seen, for
the calibration scores of a streaming fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stats._moments import Moments, merge_moments, moments_of_rows
from ..utils._labels import check_label_kinds
from ._calibration import N_FOLDS

__all__ = ["GaussianStatistics", "OffsetSample"]


def _grow(moments: Moments, positions, n_classes: int) -> Moments:
    """Moments with their class axis (the last cell axis) spread over ``n_classes``."""
    if moments.count.shape[-1] == n_classes:
        return moments
    out = Moments.empty((moments.count.shape[0], n_classes), moments.n_features)
    for field in ("count", "mean", "scatter", "t3", "s4"):
        getattr(out, field)[:, positions] = getattr(moments, field)
    return Moments(out.count, out.mean, out.scatter, out.t3, out.s4, moments.unit)


@dataclass(frozen=True)
class GaussianStatistics:
    """Moments of training rows per (fold, class): the mergeable part of a fit.

    Row ``i`` of the training set (counting in-distribution rows only) is in
    fold ``i % 5``, as in ``fit``'s out-of-fold calibration.

    Attributes
    ----------
    classes : ndarray
        Sorted class labels (``[0]`` for unlabelled rows).
    moments : Moments
        Cells ``(5, n_classes)``.
    dtype : numpy.dtype
        Precision of the rows (float64 once any row was float64).
    labelled : bool
        Whether class labels were given.
    """

    classes: np.ndarray
    moments: Moments
    dtype: np.dtype
    labelled: bool

    @classmethod
    def of_rows(cls, X, labels, start: int = 0) -> GaussianStatistics:
        """Statistics of the validated rows ``X`` (training rows ``start``, ...).

        ``labels``: class labels of the rows, or None for unlabelled rows.
        """
        if labels is None:
            classes, idx = np.array([0]), np.zeros(X.shape[0], dtype=np.intp)
        else:
            classes, idx = np.unique(labels, return_inverse=True)
        fold = (start + np.arange(X.shape[0], dtype=np.int64)) % N_FOLDS
        K = len(classes)
        moments = moments_of_rows(X, fold * K + idx, N_FOLDS * K)
        return cls(classes, moments.reshape((N_FOLDS, K)), X.dtype, labels is not None)

    @property
    def n_rows(self) -> int:
        return int(self.moments.count.sum())

    @property
    def class_counts(self):
        return self.moments.count.sum(axis=0)

    def merge(self, other: GaussianStatistics) -> GaussianStatistics:
        """Statistics of the rows of both (disjoint sets of rows)."""
        if self.labelled != other.labelled:
            raise ValueError(
                "Statistics of labelled and unlabelled rows cannot be merged: give "
                "labels y for every batch or for none."
            )
        if other.n_rows == 0:
            return self
        if self.n_rows == 0:
            return other
        classes = self.classes
        if self.labelled:
            check_label_kinds(other.classes, self.classes)
            classes = np.unique(np.concatenate([self.classes, other.classes]))
        K = len(classes)
        a = _grow(self.moments, np.searchsorted(classes, self.classes), K)
        b = _grow(other.moments, np.searchsorted(classes, other.classes), K)
        return GaussianStatistics(
            classes,
            merge_moments(a, b),
            np.result_type(self.dtype, other.dtype),
            self.labelled,
        )


@dataclass(frozen=True)
class OffsetSample:
    """A bounded, systematic sample of the training rows, for calibration scores.

    Every row while there are at most ``max_rows``, then every ``stride``-th
    training row (``stride`` doubling as needed), so an ordered stream stays
    represented.
    """

    rows: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    stride: int = 1

    @classmethod
    def empty(cls, n_features: int, dtype, labels_like) -> OffsetSample:
        return cls(
            np.zeros((0, n_features), dtype=dtype),
            np.asarray(labels_like)[:0],
            np.zeros(0, dtype=np.int64),
        )

    def add(self, X, labels, start: int, max_rows: int) -> OffsetSample:
        """The sample after the rows ``X`` (training rows ``start``, ...)."""
        g = start + np.arange(X.shape[0], dtype=np.int64)
        keep = g % self.stride == 0
        dtype = np.result_type(self.rows.dtype, X.dtype)
        rows = np.concatenate([self.rows.astype(dtype), X[keep].astype(dtype)])
        labels = np.concatenate([self.labels, np.asarray(labels)[keep]])
        index = np.concatenate([self.index, g[keep]])
        stride = self.stride
        while rows.shape[0] > max_rows:
            stride *= 2
            sub = index % stride == 0
            rows, labels, index = rows[sub], labels[sub], index[sub]
        return OffsetSample(rows, labels, index, stride)
