"""Optional faiss indexes for :class:`~sklearn_ood.KNNDetector` (large reference sets).

``KNNDetector(algorithm="faiss:<index>")`` builds ``faiss.index_factory(d,
"<index>")`` over the distinct rows of the search space (centred on the
training mean, and scaled by a power of two into float32's safe range) and
lets it choose the neighbours; their distances are then computed exactly
from the rows, as for the brute-force search, and duplicates are handled the
same way. An approximate index (IVF, HNSW) can miss a true neighbour; the
score then uses a farther one. Rows for which it finds fewer than ``k``
neighbours at all are searched exactly.

The HNSW graph is built on one thread, so that it (and every score) is the
same on every run; other indexes use faiss's threads.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from ._knn_search import (
    KNNIndex,
    exact_distances,
    leave_one_out,
    search,
    search_space,
    sort_neighbors,
)
from .utils._numeric import max_safe_abs, min_safe_abs

__all__ = ["FaissSearch", "parse_algorithm"]

_PREFIX = "faiss:"


def parse_algorithm(algorithm: str, search_params) -> str | None:
    """The faiss index factory string of ``algorithm``, or None for ``"brute"``."""
    if algorithm == "brute":
        if search_params:
            raise ValueError(
                "The 'search_params' parameter of KNNDetector applies to faiss "
                f"algorithms only. Got {search_params!r} with algorithm='brute'."
            )
        return None
    spec = algorithm[len(_PREFIX) :].strip()
    if not algorithm.startswith(_PREFIX) or not spec:
        raise ValueError(
            "The 'algorithm' parameter of KNNDetector must be 'brute' or "
            "'faiss:<index factory string>' (e.g. 'faiss:Flat', "
            f"'faiss:IVF1024,Flat', 'faiss:HNSW32'). Got {algorithm!r} instead."
        )
    return spec


def _import_faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "KNNDetector(algorithm='faiss:...') needs faiss; install it with "
            'pip install "sklearn-ood[faiss]" (the faiss-cpu package).'
        ) from exc
    return faiss


@contextlib.contextmanager
def _faiss_threads(faiss, n):
    """faiss's OpenMP thread count inside the context (restored after)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissSearch:
    """A faiss index over the distinct rows of a :class:`KNNIndex`.

    Parameters
    ----------
    index : KNNIndex
        The prepared reference rows.
    spec : str
        ``faiss.index_factory`` description, e.g. ``"IVF1024,Flat"``.
    params : dict or None
        Run-time parameters set with ``faiss.ParameterSpace``.
    """

    def __init__(self, index: KNNIndex, spec: str, params=None):
        faiss = _import_faiss()
        self.spec, self.params = spec, dict(params or {})
        self.shift = index.shift
        limit = max_safe_abs(np.float32, index.n_features)
        low = min_safe_abs(np.float32)
        span = 2.0 * index.peak  # |r - shift| <= 2 peak
        self.scale = 1.0  # a power of two into float32's safe range
        if span > limit:
            self.scale = 2.0 ** -math.ceil(math.log2(span / limit))
        elif 0.0 < span < low:
            self.scale = 2.0 ** math.ceil(math.log2(low / span))
        Z = self._space(index.rows[:, :-1])
        try:
            faiss_index = faiss.index_factory(Z.shape[1], spec, faiss.METRIC_L2)
        except RuntimeError as exc:
            raise ValueError(
                f"faiss cannot build the index 'faiss:{spec}' of the 'algorithm' "
                f"parameter of KNNDetector: {str(exc).strip().splitlines()[-1]}"
            ) from exc
        single = "HNSW" in spec.upper()
        with _faiss_threads(faiss, 1) if single else contextlib.nullcontext():
            if not faiss_index.is_trained:
                if Z.shape[0] < getattr(faiss_index, "nlist", 1):
                    raise ValueError(
                        f"The faiss index 'faiss:{spec}' needs at least "
                        f"{faiss_index.nlist} distinct training rows to train; "
                        f"got {Z.shape[0]}."
                    )
                faiss_index.train(Z)
            faiss_index.add(Z)
        self.faiss_index = faiss_index
        self._set_params()

    def _set_params(self):
        faiss = _import_faiss()
        space = faiss.ParameterSpace()
        for name, value in self.params.items():
            try:
                space.set_index_parameter(self.faiss_index, name, value)
            except RuntimeError as exc:
                raise ValueError(
                    f"The 'search_params' parameter of KNNDetector has {name!r}, "
                    f"which the faiss index 'faiss:{self.spec}' does not take."
                ) from exc

    def _space(self, S):
        """Centred, scaled float32 rows (distances only rank, so scale is free)."""
        Z = (np.asarray(S, dtype=np.float64) - self.shift) * self.scale
        return np.ascontiguousarray(Z, dtype=np.float32)

    def search(self, index: KNNIndex, X, k: int):
        """Nearest distinct rows of validated features ``X``: ``(dist, ind)``.

        Rows for which the index finds fewer than ``k`` neighbours (an IVF
        index probing too few lists) are searched exactly instead.
        """
        S64, zero = search_space(X, index.cosine, np.float64)
        _, ind = self.faiss_index.search(self._space(S64), k)
        ind = ind.astype(np.intp)
        dist, ind = sort_neighbors(exact_distances(index, S64, zero, ind), ind)
        short = np.flatnonzero((ind < 0).any(axis=1))
        if short.size and index.n_distinct >= k:
            dist[short], ind[short] = search(index, X[short], k)
        return dist, ind

    def leave_one_out(self, index: KNNIndex, k: int):
        """The ``k`` nearest other distinct rows of every distinct row."""
        S = index.rows[:, :-1]
        m = S.shape[0]
        _, ind = self.faiss_index.search(self._space(S), k + 1)
        own = ind == np.arange(m)[:, None]
        keep = ~own
        keep[~own.any(axis=1), -1] = False  # self not found: drop the farthest
        ind = ind[keep].reshape(m, k).astype(np.intp)
        zero = index.zero if index.cosine else None
        dist, ind = sort_neighbors(exact_distances(index, S, zero, ind), ind)
        short = np.flatnonzero((ind < 0).any(axis=1))  # exactly, as in search
        if short.size and m > k:
            dist[short], ind[short] = leave_one_out(index, k, rows=short)
        return dist, ind

    def to_bytes(self) -> dict:
        """A picklable state (faiss indexes are serialised to bytes)."""
        faiss = _import_faiss()
        state = {k: v for k, v in vars(self).items() if k != "faiss_index"}
        state["faiss_index"] = faiss.serialize_index(self.faiss_index)
        return state

    @classmethod
    def from_bytes(cls, state: dict) -> FaissSearch:
        """Rebuild from :meth:`to_bytes`."""
        faiss = _import_faiss()
        self = cls.__new__(cls)
        vars(self).update({k: v for k, v in state.items() if k != "faiss_index"})
        self.faiss_index = faiss.deserialize_index(state["faiss_index"])
        self._set_params()
        return self
