"""k-nearest-neighbour distance detector on feature vectors (DN2).

Implements the Deep Nearest Neighbour score of Bergman, Cohen & Hoshen (2020):
the (mean) squared Euclidean distance of a sample's features to its ``k``
nearest training features, with an exact, chunked, matrix-product search.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseDetector
from .utils._chunking import _chunk_rows

__all__ = ["KNNDetector"]


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
    }

    def __init__(
        self,
        *,
        n_neighbors: int = 2,
        metric: str = "sqeuclidean",
        aggregation: str = "mean",
        contamination: str | float = "auto",
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.aggregation = aggregation
        self.contamination = contamination

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, X_outliers):
        del y, X_outliers  # unsupervised: labels and known outliers unused
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
        self._shift = R.mean(axis=0, dtype=np.float64).astype(X.dtype)
        self._reference, self._reference_sq = self._prepare(X)
        self.n_samples_fit_ = n
        scores = np.empty(n, dtype=np.float64)
        # Leave-one-out: the queries are the indexed rows themselves.
        for sl, values, _ in self._search(None, self.n_neighbors):
            scores[sl] = -self._aggregate(values)
        return scores

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
        D = Q @ self._reference.T
        D *= -2.0
        D += q_sq[:, None]
        D += self._reference_sq[None, :]
        np.maximum(D, 0.0, out=D)
        if self.metric == "cosine":
            D *= 0.5
            np.minimum(D, 2.0, out=D)
        return D

    def _search(self, X, k, *, return_indices=False):
        """Yield ``(rows, distances, indices)`` of the ``k`` nearest, by chunk.

        ``distances`` (float64, in the metric's units) and ``indices`` have
        shape ``(chunk, k)``; neither is sorted unless ``return_indices``, in
        which case both are sorted by increasing distance. ``indices`` is None
        when not requested. With ``X=None`` the queries are the indexed
        training rows and query ``i`` never returns reference ``i`` (its
        diagonal entry is set to +inf before the partial sort): leave-one-out.
        """
        exclude_self = X is None
        if exclude_self:
            X = self._reference
        n_ref = self._reference.shape[0]
        n, d = X.shape
        itemsize = X.dtype.itemsize
        row_bytes = itemsize * (n_ref + 2 * d)
        if return_indices:
            row_bytes += np.dtype(np.intp).itemsize * n_ref
        step = _chunk_rows(n, row_bytes)
        for start in range(0, n, step):
            sl = slice(start, min(start + step, n))
            if exclude_self:
                Q, q_sq = X[sl], self._reference_sq[sl]
            else:
                Q, q_sq = self._prepare(X[sl])
            D = self._chunk_distances(Q, q_sq)
            if exclude_self:
                rows = np.arange(D.shape[0])
                D[rows, rows + start] = np.inf
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
            if self.metric == "euclidean":
                np.sqrt(vals, out=vals)
            yield sl, vals, ind

    def _aggregate(self, values):
        if self.aggregation == "mean":
            return values.mean(axis=1)
        if self.aggregation == "sum":
            return values.sum(axis=1)
        return values.max(axis=1)  # "max" and "kth"

    # -------------------------------------------------------------- scoring
    def _score(self, X):
        scores = np.empty(X.shape[0], dtype=np.float64)
        for sl, values, _ in self._search(X, self.n_neighbors):
            scores[sl] = -self._aggregate(values)
        return scores

    def kneighbors(
        self, X=None, n_neighbors: int | None = None, return_distance: bool = True
    ):
        """Find the nearest training samples of each query, exactly.

        Mirrors :meth:`sklearn.neighbors.NearestNeighbors.kneighbors`.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Query samples. If None, the neighbours of each training sample
            are returned, and a sample is not its own neighbour (a duplicate
            of it is).
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
            X = self._validate_score_input(X)
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
