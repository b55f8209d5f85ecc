"""k-nearest-neighbour distance detector on feature vectors (DN2).

Implements the Deep Nearest Neighbour score of Bergman, Cohen & Hoshen (2020):
the (mean) squared Euclidean distance of a sample's features to its ``k``
nearest training features, with an exact, chunked, matrix-product search.
"""

from __future__ import annotations

import re
from numbers import Integral

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .base import BaseDetector
from .nn._device import resolve_device
from .utils._chunking import _chunk_rows
from .utils._labels import split_outlier_labels
from .utils._tensors import (
    TorchInput,
    check_tensor,
    is_tensor,
    tensor_to_numpy,
    torch_chunk,
)

__all__ = ["KNNDetector"]

# The old device checks, moved here unchanged from parallel.py (now Dask only)
# until KNNDetector moves to nn._device's DEVICE_CONSTRAINT / compute_device.
_DEVICE_NAMES = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


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
    return resolve_device(dev)


def _unit_rows(X):
    """Rows of ``X`` scaled to unit L2 norm, and the mask of all-zero rows.

    Zero rows stay zero. Norms are computed in float64.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    zero = norms == 0.0
    norms[zero] = 1.0
    return X / norms.astype(X.dtype)[:, None], zero


class KNNDetector(BaseDetector):
    """Distance to the nearest training features: the DN2 OOD detector.

    ``score_samples`` is minus an aggregate (by default the mean) of the
    distances of a sample to its ``n_neighbors`` nearest training samples, the
    Deep Nearest Neighbour (DN2) score of Bergman, Cohen & Hoshen (2020) when
    the features come from a pretrained network. Higher means more normal.

    Parameters
    ----------
    n_neighbors : int, default=2
        Number of nearest training samples ``k`` the score aggregates (DN2
        uses 2). Must be smaller than the number of in-distribution training
        samples, since each training sample's leave-one-out score needs
        ``n_neighbors`` *other* samples.
    metric : {"sqeuclidean", "euclidean", "cosine"}, default="sqeuclidean"
        Distance between feature vectors.

        - ``"sqeuclidean"``: squared Euclidean distance, what DN2 uses (faiss
          ``IndexFlatL2`` returns squared distances).
        - ``"euclidean"``: Euclidean distance.
        - ``"cosine"``: ``1 - cos(x, x')``, in ``[0, 2]``. Reference and query
          features are L2-normalised once (at fit and per scored chunk). A
          feature vector of all zeros has no direction: as in
          :func:`sklearn.metrics.pairwise.cosine_distances`, its similarity to
          every vector is 0, so its distance to every vector (another zero
          vector included) is 1.
    aggregation : {"mean", "sum", "max", "kth"}, default="mean"
        How the ``n_neighbors`` distances become one number.

        - ``"mean"``: their mean, DN2's score (the authors' code sums, which
          only rescales the score and leaves every ranking unchanged).
        - ``"sum"``: their sum.
        - ``"max"`` / ``"kth"``: the largest of them, which is the distance to
          the ``n_neighbors``-th nearest neighbour; the two names are synonyms.
    contamination : "auto" or float, default="auto"
        Share of training samples, scored leave-one-out, that falls below
        ``offset_``. ``"auto"`` is 0.025 (the 97.5th-percentile rule of
        Varedzhan et al.). See :mod:`sklearn_ood` for the contract.
    device : {"auto", "cpu", "cuda", "cuda:N"}, torch.device or None, \
            default=None
        Where the neighbour search of ``score_samples`` (and
        ``decision_function``, ``predict``) and of the leave-one-out pass of
        ``fit`` runs. ``None``: NumPy for NumPy input, and the tensor's own
        device for a ``torch`` tensor. ``"auto"``: the GPU when CUDA is
        available, else as ``None``. A device: torch on that device for any
        input (a CUDA device falls back to the CPU with a warning where there
        is none). The torch path searches in float32 and returns float64
        NumPy scores; ``kneighbors`` and ``partial_fit`` always use NumPy.

    Attributes
    ----------
    n_samples_fit_ : int
        Number of training samples indexed (in-distribution rows only: rows
        labelled ``-1`` are left out of the fit).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : General nearest-neighbour search.
    sklearn.neighbors.LocalOutlierFactor : Density-ratio score from neighbours.
    MahalanobisDetector : Distance to a Gaussian model of the training features.

    Notes
    -----
    The search is exact and brute force: for a chunk of query rows ``Q`` the
    squared distances to all training rows ``R`` are one matrix product,
    ``||q||^2 - 2 Q R^T + ||r||^2`` (clipped at 0), followed by a partial sort
    of each row; cosine distances are ``||u - v||^2 / 2`` between the
    L2-normalised rows ``u, v``, which equals ``1 - cos``. Chunks are sized so
    that one chunk's distance matrix fits in scikit-learn's
    ``working_memory`` (see :func:`sklearn.config_context`); results do not
    depend on the chunk size beyond floating-point rounding.

    Computations run in the input dtype, so float32 features are searched in
    float32 (half the memory of float64, and faster). The expanded form of
    the squared distance loses precision by cancellation when the distances
    are small next to the squared norms of the features (float32 keeps about
    7 digits of ``||q||^2``). To limit this, the search space (the features,
    or their unit vectors for cosine) is centred on the training mean, which
    leaves distances unchanged and makes the norms that cancel those of the
    centred features. On synthetic ReLU-like 512-d features, float32 scores
    then agree with float64 to about ``3e-7`` relative (without centring:
    ``3e-6``, and ``1e-4`` once the features share an offset of 10). Fit on
    float64 data when distances between near-duplicates must be exact. The
    selected distances are aggregated in float64.

    The training scores that set ``offset_`` are leave-one-out: each training
    sample's neighbours are searched among the *other* training samples (the
    sample's own entry is excluded by index, so an exact duplicate of it still
    counts as a neighbour at distance 0), in one pass that costs the same as
    scoring the training set.

    :meth:`partial_fit` appends rows to the reference set (re-centring it on
    the mean of all rows) and keeps each reference row's ``n_neighbors``
    leave-one-out distances up to date: old rows are searched against the
    new rows only, new rows against all of them, so a stream of batches costs
    one leave-one-out pass over the final set in all, and ``offset_`` is
    recomputed from the leave-one-out scores of every reference row. The
    result equals ``fit`` on all the rows seen, to rounding.

    References
    ----------
    .. [1] L. Bergman, N. Cohen, Y. Hoshen. "Deep Nearest Neighbor Anomaly
       Detection". arXiv:2002.10445, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import KNNDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3))
    >>> det = KNNDetector(n_neighbors=2).fit(X)
    >>> det.predict([[0.0, 0.0, 0.0], [6.0, 6.0, 6.0]])
    array([ 1, -1])
    >>> dist, ind = det.kneighbors([[0.0, 0.0, 0.0]], n_neighbors=1)
    >>> ind.shape
    (1, 1)
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"sqeuclidean", "euclidean", "cosine"})],
        "aggregation": [StrOptions({"mean", "sum", "max", "kth"})],
        "device": "no_validation",  # checked by check_device_param
    }

    def __init__(
        self,
        *,
        n_neighbors: int = 2,
        metric: str = "sqeuclidean",
        aggregation: str = "mean",
        contamination: str | float = "auto",
        device=None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.aggregation = aggregation
        self.contamination = contamination
        self.device = device

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, X_outliers):
        del y, X_outliers  # unsupervised: labels and known outliers unused
        check_device_param(self)
        n = X.shape[0]
        if self.n_neighbors >= n:
            raise ValueError(
                f"KNNDetector needs n_neighbors < the number of in-distribution "
                f"training samples, got n_neighbors={self.n_neighbors} with "
                f"{n} sample{'s' if n != 1 else ''}: each training sample's "
                "leave-one-out score needs n_neighbors other samples."
            )
        R = X
        if self.metric == "cosine":
            R, _ = _unit_rows(X)
        # Centre the search space on the training mean: distances do not
        # change, and the squared norms that cancel in the expanded form
        # ||q||^2 - 2 q.r + ||r||^2 shrink (float32 accuracy).
        self._mean = R.mean(axis=0, dtype=np.float64)
        self._shift = self._mean.astype(X.dtype)
        self._reference, self._reference_sq = self._prepare(X)
        self.n_samples_fit_ = n
        # Leave-one-out: the queries are the indexed rows themselves. Their
        # k distances are kept, for partial_fit.
        self._loo = np.empty((n, self.n_neighbors), dtype=np.float64)
        self._loo_key = (self.n_neighbors, self.metric)
        device = scoring_device(self)
        search = (
            self._search(None, self.n_neighbors)
            if device is None
            else self._search_torch(None, self.n_neighbors, device)
        )
        for sl, values, _ in search:
            self._loo[sl] = values
        return -self._aggregate(self._loo)

    # -------------------------------------------------------------- search
    def _prepare(self, X):
        """Rows in the centred search space, and their "squared norms".

        Returns ``(Z, z_sq)`` such that the search distance between two rows
        is ``z_sq[i] + z_sq[j] - 2 Z[i] . Z[j]`` (squared Euclidean), or half
        of it for cosine. For cosine, ``Z`` holds the unit rows minus the
        shift, so that expression is ``||u_i - u_j||^2 / 2 = 1 - cos``; an
        all-zero row gets ``+1`` on its squared norm, which makes its
        distance to every row exactly ``1`` (similarity 0).
        """
        if self.metric == "cosine":
            X, zero = _unit_rows(X)
        Z = X - self._shift
        z_sq = np.einsum("ij,ij->i", Z, Z)
        if self.metric == "cosine":
            z_sq[zero] += 1.0
        return Z, z_sq

    def _chunk_distances(self, Q, q_sq):
        """Distances (search units) from prepared queries to all references.

        For the Euclidean metrics the values are *squared* distances (the
        square root, monotonic, is taken on the selected neighbours only).
        """
        return self._distances_to(Q, q_sq, self._reference, self._reference_sq)

    def _distances_to(self, Q, q_sq, R, r_sq):
        """``_chunk_distances`` to the prepared rows ``R`` (norms ``r_sq``)."""
        D = Q @ R.T
        D *= -2.0
        D += q_sq[:, None]
        D += r_sq[None, :]
        np.maximum(D, 0.0, out=D)
        if self.metric == "cosine":
            D *= 0.5
            np.minimum(D, 2.0, out=D)
        return D

    def _search(
        self, X, k, *, return_indices=False, reference=None, exclude_offset=None
    ):
        """Yield ``(rows, distances, indices)`` of the ``k`` nearest, by chunk.

        ``distances`` (float64, in the metric's units) and ``indices`` have
        shape ``(chunk, k)``; neither is sorted unless ``return_indices``, in
        which case both are sorted by increasing distance. ``indices`` is None
        when not requested. With ``X=None`` the queries are the indexed
        training rows and query ``i`` never returns reference ``i`` (its
        diagonal entry is set to +inf before the partial sort): leave-one-out.
        ``X`` may also be a prepared ``(Z, z_sq)`` pair, searched in
        ``reference`` (a prepared pair; default: the index) with query ``i``
        never returning reference ``i + exclude_offset`` unless that is None.
        """
        prepared = X is None or isinstance(X, tuple)
        if X is None:
            X, exclude_offset = (self._reference, self._reference_sq), 0
        own = reference is None
        reference = reference or (self._reference, self._reference_sq)
        exclude_self = exclude_offset is not None
        n_ref = reference[0].shape[0]
        n, d = X[0].shape if prepared else X.shape
        X_sq = X[1] if prepared else None
        X = X[0] if prepared else X
        itemsize = X.dtype.itemsize
        row_bytes = itemsize * (n_ref + 2 * d)
        if return_indices:
            row_bytes += np.dtype(np.intp).itemsize * n_ref
        step = _chunk_rows(n, row_bytes)
        for start in range(0, n, step):
            sl = slice(start, min(start + step, n))
            if prepared:
                Q, q_sq = X[sl], X_sq[sl]
            else:
                Q, q_sq = self._prepare(X[sl])
            if own:
                D = self._chunk_distances(Q, q_sq)
            else:
                D = self._distances_to(Q, q_sq, *reference)
            if exclude_self:
                rows = np.arange(D.shape[0])
                D[rows, rows + start + exclude_offset] = np.inf
            if return_indices:
                ind = np.argpartition(D, k - 1, axis=1)[:, :k]
                vals = np.take_along_axis(D, ind, axis=1)
                order = np.argsort(vals, axis=1, kind="stable")
                ind = np.take_along_axis(ind, order, axis=1)
                vals = np.take_along_axis(vals, order, axis=1)
            else:
                D.partition(k - 1, axis=1)
                ind, vals = None, D[:, :k]
            vals = vals.astype(np.float64)
            # Free this chunk's distances before the next one is computed, so
            # that one chunk, not two, is alive at a time (working_memory).
            del D
            if self.metric == "euclidean":
                np.sqrt(vals, out=vals)
            yield sl, vals, ind

    def _aggregate(self, values):
        if self.aggregation == "mean":
            return values.mean(axis=1)
        if self.aggregation == "sum":
            return values.sum(axis=1)
        return values.max(axis=1)  # "max" and "kth"

    def _search_torch(self, X, k, device):
        """``_search`` (no indices) with torch on ``device``, in float32."""
        import torch

        f32 = torch.float32
        R = torch.as_tensor(self._reference).to(device=device, dtype=f32)
        r_sq = torch.as_tensor(self._reference_sq).to(device=device, dtype=f32)
        shift = torch.as_tensor(self._shift).to(device=device, dtype=f32)
        n = R.shape[0] if X is None else X.shape[0]
        step = _chunk_rows(n, 4 * (R.shape[0] + 2 * R.shape[1]))
        with torch.inference_mode():
            for start in range(0, n, step):
                sl = slice(start, min(start + step, n))
                if X is None:
                    Q, q_sq = R[sl], r_sq[sl]
                else:
                    xb = torch_chunk(X, sl, device)
                    zero = None
                    if self.metric == "cosine":
                        norms = torch.linalg.vector_norm(xb, dim=1, dtype=torch.float64)
                        zero = norms == 0.0
                        xb = xb / norms.masked_fill(zero, 1.0).to(f32)[:, None]
                    Q = xb - shift
                    q_sq = (Q * Q).sum(dim=1)
                    if zero is not None:
                        q_sq += zero.to(f32)
                D = Q @ R.T
                D.mul_(-2.0).add_(q_sq[:, None]).add_(r_sq[None, :]).clamp_min_(0.0)
                if self.metric == "cosine":
                    D.mul_(0.5).clamp_max_(2.0)
                if X is None:
                    rows = torch.arange(D.shape[0], device=device)
                    D[rows, rows + start] = float("inf")
                vals = torch.topk(D, k, dim=1, largest=False, sorted=False).values
                del D  # one chunk of distances alive at a time
                vals = vals.double()
                if self.metric == "euclidean":
                    vals.sqrt_()
                yield sl, vals.cpu().numpy(), None

    # -------------------------------------------------------------- scoring
    def _validate_score_input(self, X):
        device = scoring_device(self, X)
        if device is None:
            return super()._validate_score_input(X)
        if is_tensor(X):
            return TorchInput(check_tensor(self, X), device)
        return TorchInput(super()._validate_score_input(X), device)

    def _score(self, X):
        if isinstance(X, TorchInput):
            search = self._search_torch(X.data, self.n_neighbors, X.device)
            scores = np.empty(X.data.shape[0], dtype=np.float64)
        else:
            search = self._search(X, self.n_neighbors)
            scores = np.empty(X.shape[0], dtype=np.float64)
        for sl, values, _ in search:
            scores[sl] = -self._aggregate(values)
        return scores

    # ------------------------------------------------------------ streaming
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add a batch of rows to the reference set.

        The leave-one-out distances of the reference rows are updated (old
        rows against the new ones, new rows against all) and ``offset_`` is
        recomputed from all of them, so after any sequence of calls the
        detector equals ``fit`` on all the rows seen, to rounding. The first
        call (or a call on a detector fitted with :meth:`fit`, which it
        continues) needs more than ``n_neighbors`` in-distribution rows in
        all; later batches may be of any size.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training rows (a torch tensor is copied to NumPy). It
            is stored in the dtype of the first batch.
        y : array-like of shape (n_samples,), default=None
            Ignored, except that rows labelled ``-1`` are left out.

        Returns
        -------
        self : KNNDetector
            The updated detector.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import KNNDetector
        >>> X = np.random.RandomState(0).normal(size=(300, 4))
        >>> det = KNNDetector().partial_fit(X[:100]).partial_fit(X[100:])
        >>> ref = KNNDetector().fit(X)
        >>> bool(np.allclose(det.score_samples(X), ref.score_samples(X)))
        True
        >>> bool(np.isclose(det.offset_, ref.offset_))
        True
        """
        if not hasattr(self, "_loo"):
            return self.fit(X, y)
        if self._loo_key != (self.n_neighbors, self.metric):
            raise ValueError(
                "partial_fit must see the same 'n_neighbors' and 'metric' in every "
                f"call; got {(self.n_neighbors, self.metric)} after "
                f"{self._loo_key}."
            )
        X = self._validate_fit_input(X, reset=False)
        _, outliers = split_outlier_labels(y, X.shape[0])
        B = X[~outliers].astype(self._reference.dtype, copy=False)
        n_old, m, k = self.n_samples_fit_, B.shape[0], self.n_neighbors
        if m == 0:
            return self
        S, zero = _unit_rows(B) if self.metric == "cosine" else (B, None)
        mean = (n_old * self._mean + S.sum(axis=0, dtype=np.float64)) / (n_old + m)
        shift = mean.astype(B.dtype)
        Z = np.empty((n_old + m, B.shape[1]), dtype=B.dtype)
        Z[:n_old] = self._reference
        Z[:n_old] += (self._shift.astype(np.float64) - shift).astype(B.dtype)
        Z[n_old:] = S - shift
        z_sq = np.einsum("ij,ij->i", Z, Z)
        if self.metric == "cosine":  # zero rows stay at distance 1 from all
            old_sq = np.einsum("ij,ij->i", self._reference, self._reference)
            z_sq[:n_old][self._reference_sq - old_sq > 0.5] += 1.0
            z_sq[n_old:][zero] += 1.0
        loo = np.empty((n_old + m, k), dtype=np.float64)
        new = (Z[n_old:], z_sq[n_old:])
        for sl, values, _ in self._search(
            (Z[:n_old], z_sq[:n_old]), min(k, m), reference=new
        ):
            both = np.concatenate([self._loo[sl], values], axis=1)
            both.partition(k - 1, axis=1)
            loo[sl] = both[:, :k]
        for sl, values, _ in self._search(
            new, k, reference=(Z, z_sq), exclude_offset=n_old
        ):
            loo[n_old + sl.start : n_old + sl.stop] = values
        self._offset_from_scores(-self._aggregate(loo))  # validate first
        self._mean, self._shift = mean, shift
        self._reference, self._reference_sq, self._loo = Z, z_sq, loo
        self.n_samples_fit_ = n_old + m
        self._set_calibration(-self._aggregate(loo))
        return self

    def kneighbors(
        self, X=None, n_neighbors: int | None = None, return_distance: bool = True
    ):
        """Find the nearest training samples of each query, exactly.

        Mirrors :meth:`sklearn.neighbors.NearestNeighbors.kneighbors`.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Query samples, searched with NumPy (also when ``device`` is set
            or ``X`` is a torch tensor). If None, the neighbours of each
            training sample are returned, and a sample is not its own
            neighbour (a duplicate of it is).
        n_neighbors : int, default=None
            Number of neighbours; ``None`` uses the detector's ``n_neighbors``.
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), dtype float64
            Distances in the detector's ``metric``, increasing along each row.
            Only present if ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Indices of the neighbours among the in-distribution training
            samples (rows labelled ``-1`` at fit are not indexed).
        """
        check_is_fitted(self)
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        if not isinstance(n_neighbors, Integral) or isinstance(n_neighbors, bool):
            raise TypeError(
                "n_neighbors does not take "
                f"{type(n_neighbors).__name__} value, enter integer value."
            )
        if n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors}")
        n_neighbors = int(n_neighbors)
        if X is None:
            n_queries = self.n_samples_fit_
            available = self.n_samples_fit_ - 1
            note = " (with X=None a sample is not its own neighbour)"
        else:
            # Always NumPy (a tensor is copied to the CPU).
            X = super()._validate_score_input(tensor_to_numpy(X))
            n_queries = X.shape[0]
            available = self.n_samples_fit_
            note = ""
        if n_neighbors > available:
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit{' - 1' if note else ''}, "
                f"but n_neighbors = {n_neighbors}, n_samples_fit = "
                f"{self.n_samples_fit_}, n_samples = {n_queries}{note}"
            )
        dist = np.empty((n_queries, n_neighbors), dtype=np.float64)
        ind = np.empty((n_queries, n_neighbors), dtype=np.intp)
        for sl, values, idx in self._search(X, n_neighbors, return_indices=True):
            dist[sl] = values
            ind[sl] = idx
        return (dist, ind) if return_distance else ind
