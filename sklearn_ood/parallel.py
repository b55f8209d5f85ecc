"""Scaling out: mergeable statistics, torch devices and Dask.

Three ways to take a detector past "one NumPy array on one core":

- **Mergeable statistics.** The Gaussian fit of
  :class:`~sklearn_ood.MahalanobisDetector` only needs, per class, the count,
  the mean, the scatter matrix (and, for Ledoit-Wolf shrinkage, two higher
  moments). Those of two disjoint sets of rows combine exactly (Chan, Golub &
  LeVeque's pairwise update), which is what ``partial_fit`` and
  :func:`fit_dask` use.
- **Torch devices.** Both feature-vector detectors take a ``device`` parameter
  and score ``torch`` tensors with float32 matrix products on the tensor's
  device (a GPU when there is one); scores come back as float64 NumPy arrays.
- **Dask.** :func:`fit_dask` fits a Mahalanobis detector on a ``dask.array``
  block by block (on a ``distributed`` cluster when a client is active), and
  :class:`ParallelPostFit` scores any fitted detector or pipeline over a Dask
  array or dataframe, block by block. Dask is optional: install it with
  ``pip install "sklearn-ood[dask]"``.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from .utils._chunking import _chunk_rows
from .utils._labels import check_label_kinds

__all__ = ["ParallelPostFit", "fit_dask"]


# ===================================================== mergeable statistics
def empty_moments(shape: tuple, n_features: int) -> dict:
    """Moments of no rows, for every cell of ``shape`` (e.g. folds x classes)."""
    return {
        "count": np.zeros(shape, dtype=np.int64),
        "mean": np.zeros((*shape, n_features)),
        "scatter": np.zeros((*shape, n_features, n_features)),
        "t3": np.zeros((*shape, n_features)),
        "s4": np.zeros(shape),
    }


def _group_moments(X):
    """Exact moments of the rows of ``X`` about their own mean, in float64.

    Returns ``(n, mean, A, t3, s4)`` with ``e_i = x_i - mean``,
    ``A = sum e_i e_i'``, ``t3 = sum |e_i|^2 e_i`` and ``s4 = sum |e_i|^4``.
    """
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    A = np.zeros((d, d))
    t3 = np.zeros(d)
    s4 = 0.0
    step = _chunk_rows(n, 8 * (2 * d + 2))
    for start in range(0, n, step):
        R = X[start : start + step].astype(np.float64)
        R -= mean
        A += R.T @ R
        sq = np.einsum("ij,ij->i", R, R)
        t3 += sq @ R
        s4 += float(sq @ sq)
    return n, mean, A, t3, s4


def block_moments(X, class_idx, fold_idx, n_folds: int, n_classes: int) -> dict:
    """Moments of the rows of ``X`` per (fold, class) cell.

    Returns a dict of arrays whose leading dimensions are (n_folds, n_classes).
    """
    out = empty_moments((n_folds, n_classes), X.shape[1])
    if X.shape[0] == 0:
        return out
    key = np.asarray(fold_idx, dtype=np.int64) * n_classes + class_idx
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    stops = np.r_[starts[1:], len(key)]
    for k, a, b in zip(keys, starts, stops):
        f, c = divmod(int(k), n_classes)
        n, mean, A, t3, s4 = _group_moments(X[order[a:b]])
        out["count"][f, c] = n
        out["mean"][f, c] = mean
        out["scatter"][f, c] = A
        out["t3"][f, c] = t3
        out["s4"][f, c] = s4
    return out


def _recenter(m, new_mean):
    """Moments of the same rows about ``new_mean`` instead of their own mean.

    With ``e = x - mean`` (so ``sum e = 0``) and ``delta = new_mean - mean``,
    ``e - delta`` gives ``A + n dd'``, ``t3 - tr(A) d - 2 A d - n |d|^2 d`` and
    ``s4 + 4 d'Ad + n |d|^4 - 4 t3.d + 2 |d|^2 tr(A)``.
    """
    n = m["count"].astype(np.float64)
    d = new_mean - m["mean"]
    A = m["scatter"]
    tr = np.trace(A, axis1=-2, axis2=-1)
    Ad = np.matmul(A, d[..., None])[..., 0]
    dd = np.einsum("...i,...i->...", d, d)
    dAd = np.einsum("...i,...i->...", d, Ad)
    t3d = np.einsum("...i,...i->...", m["t3"], d)
    scatter = A + n[..., None, None] * (d[..., :, None] * d[..., None, :])
    t3 = m["t3"] - tr[..., None] * d - 2.0 * Ad - (n * dd)[..., None] * d
    s4 = m["s4"] + 4.0 * dAd + n * dd**2 - 4.0 * t3d + 2.0 * dd * tr
    return scatter, t3, s4


def merge_moments(a: dict, b: dict) -> dict:
    """Exact moments of the union of two disjoint sets of rows (cell by cell).

    The pairwise update of Chan, Golub & LeVeque (1979): the merged mean is
    ``mean_a + n_b / n (mean_b - mean_a)`` and each side's moments are moved to
    it before they are added. Empty cells (count 0) are neutral.
    """
    na = a["count"].astype(np.float64)
    nb = b["count"].astype(np.float64)
    n = na + nb
    w = np.where(n > 0, nb / np.maximum(n, 1.0), 0.0)
    mean = a["mean"] + w[..., None] * (b["mean"] - a["mean"])
    sa, ta, qa = _recenter(a, mean)
    sb, tb, qb = _recenter(b, mean)
    return {
        "count": a["count"] + b["count"],
        "mean": mean,
        "scatter": sa + sb,
        "t3": ta + tb,
        "s4": qa + qb,
    }


def pool_moments(m: dict, keep=None) -> dict:
    """Merge the moments along the first axis (folds), over the ``keep`` entries."""
    idx = np.arange(m["count"].shape[0]) if keep is None else np.flatnonzero(keep)
    out = {key: value[idx[0]] for key, value in m.items()}
    for i in idx[1:]:
        out = merge_moments(out, {key: value[i] for key, value in m.items()})
    return out


def ledoit_wolf_from_moments(n: float, scatter, s4: float) -> float:
    """Ledoit-Wolf shrinkage from moments.

    Equals :func:`sklearn.covariance.ledoit_wolf_shrinkage` of the rows.

    ``scatter`` is the sum of the outer products of the centred rows and
    ``s4`` the sum of their squared norms squared (the ``beta`` term).
    """
    d = scatter.shape[0]
    if d == 1:
        return 0.0
    emp_cov_trace = np.diag(scatter) / n
    mu = emp_cov_trace.sum() / d
    delta_ = np.sum(scatter**2) / n**2
    beta = (s4 / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def add_classes(stream, y_in):
    """Classes after a batch, the batch's class indices, and re-indexed state."""
    old_classes = stream["classes"]
    check_label_kinds(np.asarray(y_in), old_classes)
    classes = np.unique(np.concatenate([old_classes, np.unique(y_in)]))
    moments, rows_class = stream["moments"], stream["rows_class"]
    if len(classes) != len(old_classes):
        pos = np.searchsorted(classes, old_classes)
        shape = (moments["count"].shape[0], len(classes))
        grown = empty_moments(shape, moments["mean"].shape[-1])
        for key, value in moments.items():
            grown[key][:, pos] = value
        moments, rows_class = grown, pos[rows_class]
    return classes, np.searchsorted(classes, y_in), moments, rows_class


def update_stream(old, X, y_in, labelled: bool, max_rows: int) -> dict:
    """The state of a ``partial_fit`` stream after the inlier rows ``X``.

    The state holds the sorted ``classes``, the per-(fold, class) ``moments``
    (fold: training-row index modulo 5), the number of rows seen, the dtype,
    and a systematic sample of the rows for the offset: every row while
    there are at most ``max_rows``, then every ``stride``-th, ``stride``
    doubling as needed, with their class and training-row indices.
    """
    from ._mahalanobis import _N_FOLDS

    if old is None:
        old = {
            "labelled": labelled,
            "classes": y_in[:0] if labelled else np.array([0]),
            "moments": empty_moments((_N_FOLDS, 0 if labelled else 1), X.shape[1]),
            "n_seen": 0,
            "dtype": X.dtype,
            "rows": X[:0],
            "rows_class": np.zeros(0, dtype=np.intp),
            "rows_index": np.zeros(0, dtype=np.int64),
            "stride": 1,
        }
    if labelled:
        classes, cls, moments, rows_class = add_classes(old, y_in)
    else:
        classes, moments, rows_class = old["classes"], old["moments"], old["rows_class"]
        cls = np.zeros(X.shape[0], dtype=np.intp)
    g = old["n_seen"] + np.arange(X.shape[0], dtype=np.int64)
    moments = merge_moments(
        moments, block_moments(X, cls, g % _N_FOLDS, _N_FOLDS, len(classes))
    )
    dtype = np.result_type(old["dtype"], X.dtype)
    stride = old["stride"]
    keep = g % stride == 0
    rows = np.concatenate([old["rows"].astype(dtype), X[keep].astype(dtype)])
    rows_class = np.concatenate([rows_class, cls[keep]])
    rows_index = np.concatenate([old["rows_index"], g[keep]])
    while rows.shape[0] > max_rows:
        stride *= 2
        sub = rows_index % stride == 0
        rows, rows_class, rows_index = rows[sub], rows_class[sub], rows_index[sub]
    return {
        "labelled": labelled,
        "classes": classes,
        "moments": moments,
        "n_seen": old["n_seen"] + X.shape[0],
        "dtype": dtype,
        "rows": rows,
        "rows_class": rows_class,
        "rows_index": rows_index,
        "stride": stride,
    }


# ================================================================ torch
_DEVICE_NAMES = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


from .utils._tensors import (  # noqa: E402,F401
    TorchInput,
    check_tensor,
    is_tensor,
    tensor_to_numpy,
    torch_chunk,
)


def check_device_param(estimator) -> None:
    """Check the spelling of ``estimator.device`` (no device look-up)."""
    dev = estimator.device
    if dev is None:
        return
    if isinstance(dev, str) and _DEVICE_NAMES.match(dev.strip().lower()):
        return
    if type(dev).__name__ == "device" and type(dev).__module__.startswith("torch"):
        return
    raise ValueError(
        f"The 'device' parameter of {type(estimator).__name__} must be None, "
        "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device. Got "
        f"{dev!r} instead."
    )


def scoring_device(estimator, X=None):
    """The torch device to score ``X`` on, or None for the NumPy path.

    ``device=None``: the tensor's device for a tensor, NumPy otherwise;
    ``"auto"``: CUDA when available, else as None; anything else: that device
    (CUDA falls back to the CPU with a warning where there is none).
    """
    check_device_param(estimator)
    dev = estimator.device
    if dev is None or (isinstance(dev, str) and dev.strip().lower() == "auto"):
        if dev is not None:
            import torch

            if torch.cuda.is_available():
                return torch.device("cuda")
        return X.device if is_tensor(X) else None
    from .nn._device import resolve_device

    return resolve_device(dev)


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


# The Mahalanobis fit, in four steps that run on the driver or on the blocks.
def _maha_begin(det, first_rows, has_y, label_sets):
    det._validate_params()
    det.__dict__.pop("_stream", None)
    X = det._validate_fit_input(first_rows)
    det._check_setup(X.shape[1])
    labelled = det.mode in ("tied", "per_class") and has_y
    classes = np.array([0])
    if labelled:
        for labels in label_sets[1:]:
            check_label_kinds(labels, label_sets[0])
        classes = np.unique(np.concatenate(label_sets))
    return {"classes": classes, "labelled": labelled, "dtype": X.dtype}


def _maha_rows(xb, yb, g0, plan):
    """Inlier rows of a block, their class indices and training-row indices."""
    from sklearn.utils.validation import check_array

    from .utils._labels import split_outlier_labels

    xb = check_array(xb, dtype=[np.float64, np.float32])
    cls = np.zeros(xb.shape[0], dtype=np.intp)
    if yb is not None:
        y_in, outliers = split_outlier_labels(yb, xb.shape[0])
        xb = xb[~outliers]
        cls = np.searchsorted(plan["classes"], y_in) if plan["labelled"] else cls
        cls = cls[: xb.shape[0]]
    return xb, cls, g0 + np.arange(xb.shape[0], dtype=np.int64)


def _maha_block_moments(xb, yb, g0, plan):
    from ._mahalanobis import _N_FOLDS

    xb, cls, g = _maha_rows(xb, yb, g0, plan)
    return block_moments(xb, cls, g % _N_FOLDS, _N_FOLDS, len(plan["classes"]))


def _maha_model(det, moments, plan):
    total = pool_moments(moments)
    det._check_counts(total["count"], plan["classes"])
    model = det._model_from_moments(total)
    det._commit(plan["classes"], model, plan["dtype"])
    return {"model": model, "moments": moments, "plan": plan}


def _maha_block_scores(det, xb, yb, g0, state, out_of_fold):
    xb, cls, g = _maha_rows(xb, yb, g0, state["plan"])
    if not out_of_fold:
        return det._loo_from_moments(xb, cls, state["model"], state["plan"]["dtype"])
    return det._oof_from_moments(xb, cls, g, state["model"], state["moments"])


def _label_pass(y_block):
    from .utils._labels import split_outlier_labels

    y_in, _ = split_outlier_labels(y_block, len(y_block))
    return len(y_in), np.unique(y_in)


def fit_dask(estimator, X, y=None):
    """Fit a detector on a Dask array or dataframe, block by block.

    A :class:`~sklearn_ood.MahalanobisDetector` is fitted without gathering
    the data: every block of rows is reduced to per-class, per-fold moments
    (counts, means, scatter matrices) that are merged exactly, then the
    leave-one-out or out-of-fold training scores that set ``offset_`` are
    computed block by block. The result equals ``estimator.fit`` on the whole
    array (to floating-point rounding). Any other estimator is fitted on the
    array gathered into memory. Runs on the active Dask scheduler (a
    ``distributed`` cluster when a :class:`distributed.Client` is active).

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
    from ._mahalanobis import MahalanobisDetector

    X, y, names = _as_row_blocks(X, y)
    if not isinstance(estimator, MahalanobisDetector):
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
        labels = [np.array([0])]
    else:
        if _is_dask_array(y):
            y_blocks = list(y.to_delayed().ravel())
        else:
            y_blocks = [y[a:b] for a, b in itertools.pairwise(bounds)]
        passes = dask.compute(*[dask.delayed(_label_pass)(yb) for yb in y_blocks])
        counts = np.array([p[0] for p in passes])
        labels = [p[1] for p in passes if len(p[1])]
    first = X[:1].compute()
    if names is not None:
        import pandas as pd

        first = pd.DataFrame(first, columns=names)
    plan = _maha_begin(estimator, first, y is not None, labels)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    parts = [
        dask.delayed(_maha_block_moments)(xb, yb, g0, plan)
        for xb, yb, g0 in zip(blocks, y_blocks, starts)
    ]
    while len(parts) > 1:  # binary tree of exact merges
        parts = [
            dask.delayed(merge_moments)(a, b) if b is not None else a
            for a, b in zip(parts[::2], [*parts[1::2], None])
        ]
    (moments,) = dask.compute(parts[0])
    state = _maha_model(estimator, moments, plan)
    # Leave-one-out in closed form where fit would use it (defined for every
    # block), else out-of-fold from the per-fold moments, as fit decides.
    est, state_d = dask.delayed(estimator, pure=True), dask.delayed(state, pure=True)
    scores = None
    for out_of_fold in (False, True):
        if not out_of_fold and not estimator._closed_form_applies(state["model"]):
            continue
        scores = dask.compute(
            *[
                dask.delayed(_maha_block_scores)(est, xb, yb, g0, state_d, out_of_fold)
                for xb, yb, g0 in zip(blocks, y_blocks, starts)
            ]
        )
        if all(s is not None for s in scores):
            break
    estimator._set_calibration(np.concatenate(scores))
    return estimator


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
