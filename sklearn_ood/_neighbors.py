"""k-nearest-neighbour distance detector on feature vectors (DN2).

Implements the Deep Nearest Neighbour score of Bergman, Cohen & Hoshen (2020):
the (mean) squared Euclidean distance of a sample's features to its ``k``
nearest training features. The search itself lives in
:mod:`sklearn_ood._knn_search` (NumPy), :mod:`sklearn_ood._knn_torch` (torch)
and :mod:`sklearn_ood._knn_faiss` (optional faiss indexes); this module only
validates and routes.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _knn_faiss as knn_faiss
from ._knn_search import (
    aggregate,
    calibration_distances,
    effective_n_threads,
    expand,
    extend_index,
    leave_one_out,
    neighbor_rows,
    prepare_index,
    search,
    with_neighbors,
)
from ._knn_torch import (
    check_tensor_range,
    compute_dtype,
    device_rows,
    leave_one_out_torch,
    search_torch,
    torch_neighbor_distances,
)
from .base import BaseDetector
from .nn._device import DEVICE_CONSTRAINT, compute_device
from .utils._labels import split_outlier_labels
from .utils._numeric import fits_float32
from .utils._tensors import (
    TorchInput,
    check_tensor,
    is_tensor,
    tensor_to_numpy,
)

__all__ = ["KNNDetector"]


def _search_array(X, peak: float):
    """A checked tensor with largest ``|value|`` ``peak`` as the NumPy engine's
    input: its array view, or a float64 copy for integers, float16, and
    float32 whose squares need float64 (the rule of ``check_feature_range``
    with ``promote_tiny``, from the peak already found)."""
    X = tensor_to_numpy(X)
    if X.dtype == np.float64 or (
        X.dtype == np.float32 and fits_float32(peak, X.shape[1])
    ):
        return X
    return X.astype(np.float64)


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
        - ``"cosine"``: ``1 - cos(x, x')``, in ``[0, 2]``, between the
          L2-normalised rows. A feature vector of all zeros has no direction:
          as in :func:`sklearn.metrics.pairwise.cosine_distances`, its
          similarity to every vector is 0, so its distance to every vector
          (another zero vector included) is 1.
    aggregation : {"mean", "sum", "max", "kth"}, default="mean"
        How the ``n_neighbors`` distances become one number.

        - ``"mean"``: their mean, DN2's score (the authors' code sums, which
          only rescales the score and leaves every ranking unchanged).
        - ``"sum"``: their sum.
        - ``"max"`` / ``"kth"``: the largest of them, which is the distance to
          the ``n_neighbors``-th nearest neighbour; the two names are synonyms.
    contamination : "auto" or float, default="auto"
        Share of new normal samples that :meth:`predict` flags (``"auto"``:
        0.025). ``offset_`` is set from the leave-one-out scores of the
        training samples (see :mod:`sklearn_ood.base`).
    algorithm : str, default="brute"
        The neighbour search. ``"brute"``: the exact search of this package
        (see Notes). ``"faiss:<index>"``: a `faiss
        <https://github.com/facebookresearch/faiss>`_ index built with
        ``faiss.index_factory`` from the string after ``"faiss:"``, for large
        reference sets: ``"faiss:Flat"`` (exact), ``"faiss:IVF1024,Flat"``
        (inverted lists, approximate), ``"faiss:HNSW32"`` (graph,
        approximate). faiss only chooses the neighbours; their distances are
        computed exactly as with ``"brute"``. Needs ``pip install
        "sklearn-ood[faiss]"``; runs on the CPU.
    search_params : dict, default=None
        Run-time parameters of the faiss index by name, e.g. ``{"nprobe":
        16}`` (IVF) or ``{"efSearch": 64}`` (HNSW). Only with a faiss
        ``algorithm``.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where the search runs: ``"auto"`` is the first GPU when CUDA is
        available and the CPU otherwise; ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
        (or a :class:`torch.device`) name a device. A CUDA device asked for on
        a machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`. Anything searched on the CPU,
        NumPy input or torch tensors, uses the NumPy engine (the faster one
        there); anything searched on a GPU uses torch (a tensor on its own
        GPU under ``"auto"``; the leave-one-out pass of ``fit`` included).
    n_jobs : int, default=None
        Threads of the NumPy search. ``None``: as many as BLAS uses (all cores
        unless limited, e.g. with ``threadpoolctl``); ``-1``: all CPUs. Called
        from a thread other than the main one, the search runs on that thread.

    Attributes
    ----------
    n_samples_fit_ : int
        Number of training samples indexed (in-distribution rows only: rows
        labelled ``-1`` are left out of the fit).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    calibration_scores_ : ndarray of shape (n_samples_fit_,)
        Leave-one-out scores of the training samples (see Notes).
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
    **Search.** Exact and brute force. The squared distances from a tile of
    queries to a tile of training rows are one matrix product (the training
    rows' squared norms ride along as an extra column), and each tile's ``k``
    nearest are picked while it is in cache, then merged. The search space is
    centred on the training mean, which limits the cancellation error of the
    product in float32. The distances to the chosen neighbours are then
    recomputed in float64 from the differences of the rows, so scores are
    exact up to which neighbours are chosen: rounding can only swap
    neighbours whose distances agree to within about ``1e-7 * (|x - m|^2 +
    |r - m|^2)`` in float32 (``m`` the training mean). The leave-one-out
    pass of ``fit`` computes each pair of training rows once (distances are
    symmetric). Tiles run on ``n_jobs`` threads. Memory stays within scikit-learn's
    ``working_memory`` (:func:`sklearn.config_context`); results do not depend
    on it. Computations run in the input dtype (float32 features search in
    float32); float32 features whose squares could overflow are searched in
    float64 (a clear error is raised where even float64 would overflow). On a
    GPU, torch searches in float32 unless the values need float64.

    **Duplicates and calibration.** The training scores that set ``offset_``
    are leave-one-out: each training sample's neighbours are searched among
    the *other* samples, and its exact duplicates are left out with it (a new
    sample is never an exact copy of a training sample, so a duplicate at
    distance 0 would make the training scores look more normal than new
    normal samples: with every row present twice, 20% of new normal samples
    were flagged instead of 2.5%). Only when fewer than ``n_neighbors``
    samples differ from a sample do its duplicates fill the remaining places.
    For scoring new samples, duplicates count as often as they occur. Exact
    duplicates are stored once. For data where new samples do repeat training
    samples exactly (discrete features), this calibration is conservative:
    fewer than ``contamination`` of new normal samples are flagged.

    :meth:`partial_fit` adds rows and keeps every row's leave-one-out
    neighbours up to date (old rows are searched against the new rows only),
    so it equals ``fit`` on all rows seen.

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

    _promote_tiny_float32 = True  # ranks by float32 dot products

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"sqeuclidean", "euclidean", "cosine"})],
        "aggregation": [StrOptions({"mean", "sum", "max", "kth"})],
        "algorithm": [str],  # "brute" or "faiss:<index>", checked in fit
        "search_params": [dict, None],
        "device": DEVICE_CONSTRAINT,
        "n_jobs": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Integral, None, -1, closed="right"),
            None,
        ],
    }

    def __init__(
        self,
        *,
        n_neighbors: int = 2,
        metric: str = "sqeuclidean",
        aggregation: str = "mean",
        contamination: str | float = "auto",
        algorithm: str = "brute",
        search_params: dict | None = None,
        device="auto",
        n_jobs: int | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.aggregation = aggregation
        self.contamination = contamination
        self.algorithm = algorithm
        self.search_params = search_params
        self.device = device
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, X_outliers):
        del y, X_outliers  # unsupervised: labels and known outliers unused
        spec = knn_faiss.parse_algorithm(self.algorithm, self.search_params)
        n, k = X.shape[0], self.n_neighbors
        if k >= n:
            raise ValueError(
                f"KNNDetector needs n_neighbors < the number of in-distribution "
                f"training samples, got n_neighbors={k} with "
                f"{n} sample{'s' if n != 1 else ''}: each training sample's "
                "leave-one-out score needs n_neighbors other samples."
            )
        index = prepare_index(X, self.metric)
        self._cache_rows = {}  # device copies of the index, dropped on pickling
        self._faiss = None
        device = None if spec else compute_device(self.device)
        if spec:
            self._faiss = knn_faiss.FaissSearch(index, spec, self.search_params)
            dist, ind = self._faiss.leave_one_out(index, k)
        elif device is None:
            dist, ind = leave_one_out(index, k, n_threads=self._n_threads())
        else:
            dist, ind = leave_one_out_torch(index, k, device, cache=self._cache_rows)
        self._index = with_neighbors(index, dist, ind)
        self._key = (k, self.metric, self.algorithm)
        self.n_samples_fit_ = n
        return self._calibration_scores(self._index)

    def _calibration_scores(self, index):
        dist = calibration_distances(index)
        return -aggregate(dist, self.metric, self.aggregation)

    def _n_threads(self) -> int:
        return effective_n_threads(self.n_jobs)

    # ------------------------------------------------------------- scoring
    def _validate_score_input(self, X):
        device = None if self._faiss is not None else compute_device(self.device, X)
        if device is None or device.type == "cpu":
            # CPU tensors too: the NumPy engine is the faster one on a CPU
            # (benchmarks/RESULTS.md); torch's computes on GPUs.
            if not is_tensor(X):
                return super()._validate_score_input(X)
            # The checks and messages of the torch path, then NumPy's view.
            X = check_tensor(self, X)
            return _search_array(X, check_tensor_range(X, self.n_features_in_))
        if is_tensor(X):
            return TorchInput(check_tensor(self, X), device)
        return TorchInput(super()._validate_score_input(X), device)

    def _neighbors(self, X, k):
        """Nearest distinct training rows of validated input: ``(dist, ind)``."""
        if self._faiss is not None:
            return self._faiss.search(self._index, X, k)
        if isinstance(X, TorchInput):
            return search_torch(
                self._index, X.data, k, X.device, cache=self._cache_rows
            )
        return search(self._index, X, k, n_threads=self._n_threads())

    def _score(self, X):
        k = self.n_neighbors
        dist = expand(self._index, *self._neighbors(X, k), k)
        return -aggregate(dist, self.metric, self.aggregation)

    def score_samples_torch(self, F):
        """Differentiable scores of feature rows: ``score_samples`` in torch.

        The neighbours of each row are chosen without gradient and then held
        fixed; the score is minus the aggregate of the distances to them,
        computed from the differences ``F - r`` with autograd, so that
        ``score.sum().backward()`` gives the gradient that input
        pre-processing (Lee et al. 2018) follows. Equal to
        ``score_samples(F)`` within float rounding.

        Parameters
        ----------
        F : torch.Tensor of shape (n_samples, n_features)
            Feature rows, float32 or float64, on any device.

        Returns
        -------
        scores : torch.Tensor of shape (n_samples,)
            On ``F``'s device; float32 for float32 ``F`` (float64 when its
            values need it, and for float64 ``F``). Higher is more normal.

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from sklearn_ood import KNNDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 3))
        >>> det = KNNDetector().fit(X)
        >>> F = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
        >>> det.score_samples_torch(F).sum().backward()
        >>> F.grad.shape
        torch.Size([1, 3])
        """
        check_is_fitted(self)
        if not torch.is_tensor(F):
            raise TypeError(
                "score_samples_torch expects a torch.Tensor; got "
                f"{type(F).__name__}. Use score_samples for arrays."
            )
        check_tensor(self, F)
        index, k = self._index, self.n_neighbors
        peak = check_tensor_range(F, index.n_features)
        with torch.no_grad():
            if self._faiss is None and F.device.type != "cpu":
                query = TorchInput(F, F.device)
            else:  # faiss, or the NumPy engine on a CPU, chooses
                query = _search_array(F, peak)
            dist, ids = self._neighbors(query, k)
        _, ids = expand(index, dist, ids, k, return_ids=True)
        dtype = compute_dtype(index, peak, F.dtype)
        rows = device_rows(index, F.device, dtype, self._cache_rows)
        ids = torch.as_tensor(ids, dtype=torch.int64, device=F.device)
        dist = torch_neighbor_distances(index, F, ids, rows)
        return -aggregate(dist, self.metric, self.aggregation)

    # ------------------------------------------------------------ streaming
    @available_if(lambda self: self.algorithm == "brute")
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add a batch of rows to the reference set.

        The leave-one-out neighbours of the reference rows are updated (old
        rows against the new ones, new rows against all) and ``offset_`` is
        recomputed from all of them, so after any sequence of calls the
        detector equals ``fit`` on all the rows seen, to rounding. The first
        call (or a call on a detector fitted with :meth:`fit`, which it
        continues) needs more than ``n_neighbors`` in-distribution rows in
        all; later batches may be of any size. Only with
        ``algorithm="brute"``; searches with NumPy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training rows (a torch tensor is copied to NumPy). It
            is stored in the dtype of the first batch (float64 if values
            need it).
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
        if not hasattr(self, "_index"):
            return self.fit(X, y)
        key = (self.n_neighbors, self.metric, self.algorithm)
        if key != self._key:
            raise ValueError(
                "partial_fit must see the same 'n_neighbors', 'metric' and "
                f"'algorithm' in every call; got {key} after {self._key}."
            )
        X = self._validate_fit_input(X, reset=False)
        _, outliers = split_outlier_labels(y, X.shape[0])
        B = X[~outliers]
        if B.shape[0] == 0:
            return self
        index = extend_index(self._index, B, n_threads=self._n_threads())
        scores = self._calibration_scores(index)
        self._offset_from_scores(scores)  # validate before committing
        self._index, self._cache_rows = index, {}
        self.n_samples_fit_ = index.n_samples
        self._set_calibration(scores)
        return self

    def kneighbors(
        self, X=None, n_neighbors: int | None = None, return_distance: bool = True
    ):
        """Find the nearest training samples of each query, exactly.

        Mirrors :meth:`sklearn.neighbors.NearestNeighbors.kneighbors`.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Query samples, searched on the CPU (a tensor is copied). If None,
            the neighbours of each training sample are returned, and a sample
            is not its own neighbour (a duplicate of it is, as in
            scikit-learn; the calibration scores leave duplicates out).
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
        k, index = int(n_neighbors), self._index
        n_fit = self.n_samples_fit_
        if X is not None:
            X = super()._validate_score_input(tensor_to_numpy(X))
        available = n_fit - 1 if X is None else n_fit
        if k > available:
            note = " (with X=None a sample is not its own neighbour)"
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit{' - 1' if X is None else ''}"
                f", but n_neighbors = {k}, n_samples_fit = {n_fit}, n_samples = "
                f"{n_fit if X is None else X.shape[0]}{note if X is None else ''}"
            )
        if X is None:
            if k == self.n_neighbors:
                dist, ind = index.loo_dist, index.loo_ind
            elif self._faiss is not None:
                dist, ind = self._faiss.leave_one_out(index, k)
            else:
                dist, ind = leave_one_out(index, k, n_threads=self._n_threads())
            rows = np.arange(n_fit)
            u = index.inverse
            dist, ind = neighbor_rows(index, dist[u], ind[u], k, query_rows=rows)
        else:
            dist, ind = neighbor_rows(index, *self._neighbors(X, k), k)
        if self.metric == "euclidean":
            dist = np.sqrt(dist)
        return (dist, ind) if return_distance else ind

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        state = {
            key: value
            for key, value in super().__getstate__().items()
            if not key.startswith("_cache")
        }
        if state.get("_faiss") is not None:
            state["_faiss"] = state["_faiss"].to_bytes()
        return state

    def __setstate__(self, state):
        state = dict(state)
        if isinstance(state.get("_faiss"), dict):
            state["_faiss"] = knn_faiss.FaissSearch.from_bytes(state["_faiss"])
        if "_index" in state:
            state["_cache_rows"] = {}
        super().__setstate__(state)
