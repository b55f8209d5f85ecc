"""Exact k-nearest-neighbour search: the algorithms behind :class:`KNNDetector`.

Pure functions on a small fitted structure, :class:`KNNIndex` (the reference
set prepared once), in the manner of scikit-learn's function + thin class
pairs. The estimator in ``_neighbors.py`` only routes input here.

How the search works
--------------------
*Search space.* Distances are Euclidean between rows of the search space: the
features themselves, or for ``cosine`` their L2-normalised rows (``1 - cos(x,
y) = |u - v|^2 / 2``). An all-zero row has no direction; its cosine distance
to every row is 1 (as :func:`sklearn.metrics.pairwise.cosine_distances`).

*Distinct rows.* Exact duplicate rows are stored once, with a count. A search
finds the ``k`` nearest *distinct* rows, which always contain the ``k``
nearest rows counted with multiplicity (:func:`expand`). The leave-one-out
pass that calibrates the detector leaves a row's duplicates out together with
the row: a new sample is never an exact copy of a training row, so a
calibration score that counts a copy at distance 0 is not distributed like
the score of a new normal sample (with every row present twice, 20% instead
of 2.5% of new normal rows were flagged).

*Candidates by one matrix product, distances recomputed exactly.* With ``s``
the training mean, ``q' = [q - s, 1]`` and ``r' = [r, -|r - s|^2 / 2]``,
``q' . r' = -|q - r|^2 / 2 + c(q)`` with ``c(q)`` constant along a query row,
so the ``k`` nearest references of each query are the ``k`` largest entries
of its row of ``Q' R'^T``: one GEMM, with the reference norms folded in and
no pass over the distance matrix to add them. The matrix is computed in
tiles (``_tile_shape``: up to ``_TILE_ROWS`` queries and ``_TILE_BYTES``,
all threads' tiles within a quarter of ``working_memory``), stored as
references x queries, and each tile is reduced right after its product,
while it is still in cache: the maximum of each of ``G`` groups of references
(one elementwise pass over contiguous memory), a per-query threshold (the
running ``k``-th best, or the tile's ``k``-th largest group maximum), and a
vectorised merge of the few entries above it. The ``k`` distances of the
chosen neighbours are then recomputed in float64 from the exact rows,
``|q - r|^2`` (not the expanded form), so scores are exact up to which
neighbours are chosen: rounding in the product can only swap neighbours
whose distances agree to within its error bound, about
``eps * (|q - s|^2 + |r - s|^2)`` (centring on ``s`` keeps this small for
features that share an offset).

*Leave-one-out, each pair once.* The pass over the training rows that
calibrates the detector uses the symmetry of distances: with both norms
folded in (``[r - s, 1, h]`` against ``[r - s, h, 1]``, ``h = -|r - s|^2 /
2``) a tile holds ``-|r_i - r_j|^2 / 2`` exactly as the transposed tile
would, so it serves the rows of both blocks and only tiles on or above the
diagonal are computed (:func:`_leave_one_out_symmetric`).

*Threads.* Tiles of different queries are independent: the NumPy engine runs
them on ``n_threads`` Python threads (NumPy releases the GIL in the product
and the reductions) with BLAS limited to one thread inside the search (as
scikit-learn's KMeans does; ``utils._threads.threaded_map``, in order when
called outside the main thread, where that limit cannot be set); few queries
split the references instead. The
torch engine (``_knn_torch.py``) chooses neighbours the same way with torch
operations (any device) and hands the choice to :func:`exact_distances`;
``_knn_faiss.py`` lets a faiss index choose.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np
from sklearn import get_config

from .utils._chunking import _chunk_rows
from .utils._numeric import fits_float32
from .utils._tensors import is_tensor
from .utils._threads import blas_threads, threaded_map

__all__ = [
    "KNNIndex",
    "aggregate",
    "calibration_distances",
    "effective_n_threads",
    "exact_distances",
    "expand",
    "extend_index",
    "leave_one_out",
    "neighbor_rows",
    "prepare_index",
    "search",
    "search_space",
    "sort_neighbors",
    "with_neighbors",
]

# Tile of the distance matrix reduced while in cache: up to _TILE_ROWS queries
# x as many references as fit in _TILE_BYTES (2048 x 2048 float32: measured
# fastest with two threads, benchmarks/RESULTS.md), references in groups of
# _GROUP.
_TILE_ROWS = 2048
_TILE_BYTES = 16 * 2**20
_GROUP = 16
# Merges of up to this many neighbours use k rounds of argmax, beyond a sort.
_DENSE_MERGE_K = 16
# Rows of the float64 (rows, k, d) temporary of the exact distance pass.
_REFINE_BYTES = 8 * 2**20
# Torch tiles: the CPU as above; a GPU reduces whole rows.


@dataclass(frozen=True)
class KNNIndex:
    """A reference set prepared for exact k-nearest-neighbour search.

    Attributes
    ----------
    rows : ndarray of shape (m, d + 1), float32 or float64
        The ``m`` distinct rows of the search space (features, or unit rows
        for cosine), in order of first occurrence, then the column
        ``-|r - s|^2 / 2`` (``-(|r - s|^2 + 1) / 2`` for an all-zero row under
        cosine, which puts it at distance 1 from every row).
    shift : ndarray of shape (d,), float64
        ``s``: the mean of the search-space rows (duplicates counted).
    counts : ndarray of shape (m,), int64
        How many training rows each distinct row stands for.
    inverse : ndarray of shape (n,), intp
        The distinct row of each training row.
    hashes : ndarray of shape (m,), uint64
        Row hashes, to find duplicates of new rows (:func:`extend_index`).
    cosine : bool
        Whether the search space is the unit sphere (cosine distances).
    zero : ndarray of shape (m,), bool
        All-zero distinct rows (cosine only; all False otherwise).
    peak : float
        The largest ``|value|`` of the search-space rows (the torch engine
        computes in float64 when float32 squares could overflow).
    loo_dist, loo_ind : ndarray of shape (m, k)
        Leave-one-out neighbours of every distinct row among the *other*
        distinct rows: search-unit distances (float64, increasing; ``inf``
        when fewer than ``k`` exist) and their ids (``-1`` when missing).
    """

    rows: np.ndarray
    shift: np.ndarray
    counts: np.ndarray
    inverse: np.ndarray
    hashes: np.ndarray
    cosine: bool
    zero: np.ndarray
    peak: float
    loo_dist: np.ndarray
    loo_ind: np.ndarray

    @property
    def n_features(self) -> int:
        return self.rows.shape[1] - 1

    @property
    def n_distinct(self) -> int:
        return self.rows.shape[0]

    @property
    def n_samples(self) -> int:
        return self.inverse.shape[0]

    @property
    def has_duplicates(self) -> bool:
        return self.n_distinct < self.n_samples


# =============================================================== threads
def effective_n_threads(n_jobs=None) -> int:
    """Threads of the NumPy search: ``n_jobs``, or BLAS's own count for None.

    ``None`` follows the BLAS thread count (so ``threadpoolctl`` limits a
    caller sets apply); ``-1`` is every CPU (``joblib.cpu_count``), ``-2``
    all but one, and so on.
    """
    import joblib

    if n_jobs is None:
        return blas_threads()
    cpus = joblib.cpu_count()
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return int(n_jobs)


# ============================================================ rows & index
def _unit_rows(X, dtype):
    """L2-normalised rows (norms and division in float64, rounded once)."""
    U = np.empty(X.shape, dtype=dtype)
    zero = np.zeros(X.shape[0], dtype=bool)
    step = _chunk_rows(X.shape[0], 16 * X.shape[1])
    for i in range(0, X.shape[0], step):
        B = X[i : i + step].astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", B, B))
        zero[i : i + step] = norms == 0.0
        B /= np.where(norms == 0.0, 1.0, norms)[:, None]
        U[i : i + step] = B
    return U, zero


def search_space(X, cosine, dtype):
    """Rows of the search space in ``dtype``, and the all-zero mask (cosine)."""
    if cosine:
        return _unit_rows(X, dtype)
    return np.asarray(X, dtype=dtype), np.zeros(X.shape[0], dtype=bool)


def _row_hashes(S):
    """A 64-bit hash of every row's values (-0.0 and 0.0 hash alike).

    Duplicates are rows with equal hashes (of the features) and equal
    search-space rows; for cosine, ``x`` and ``2 x`` are not duplicates.
    """
    word = np.uint32 if S.dtype.itemsize == 4 else np.uint64
    mult = np.random.default_rng(20200211).integers(
        1, 2**63, size=S.shape[1], dtype=np.uint64
    )
    mult |= np.uint64(1)
    h = np.empty(S.shape[0], dtype=np.uint64)
    step = _chunk_rows(S.shape[0], 16 * S.shape[1])
    for i in range(0, S.shape[0], step):
        words = (S[i : i + step] + 0.0).view(word)  # + 0.0 turns -0.0 into 0.0
        h[i : i + step] = words.astype(np.uint64) @ mult  # modulo 2**64
    return h


def _group_rows(h, take):
    """Groups of equal rows, numbered by first occurrence.

    ``h``: hashes of the rows ``0..N-1``; ``take(idx)``: the rows ``idx``.
    Returns ``(inverse, first)``: the group of each row and the first row of
    each group (increasing), or ``None`` when all rows differ. Rows are equal
    when their hashes and their values are (-0.0 equals 0.0).
    """
    order = np.argsort(h, kind="stable")
    same = h[order][1:] == h[order][:-1]
    if not same.any():
        return None
    run = np.concatenate([[0], np.cumsum(~same)])  # run of each sorted position
    leader = order[np.flatnonzero(np.concatenate([[True], ~same]))][run]
    dup = np.flatnonzero(leader != order)
    if np.array_equal(take(order[dup]), take(leader[dup])):
        leader_of = np.empty_like(order)
        leader_of[order] = leader
    else:  # a hash collision: sort by (hash, values), stable
        rows = take(np.arange(h.shape[0]))
        order = np.lexsort((*rows.T[::-1], h))
        sr, sh = rows[order], h[order]
        new = np.concatenate(
            [[True], (sh[1:] != sh[:-1]) | np.any(sr[1:] != sr[:-1], axis=1)]
        )
        leader_of = np.empty_like(order)
        leader_of[order] = order[np.flatnonzero(new)][np.cumsum(new) - 1]
    first = np.flatnonzero(leader_of == np.arange(h.shape[0]))
    ids = np.full(h.shape[0], -1, dtype=np.intp)
    ids[first] = np.arange(first.size)
    return ids[leader_of], first


def _operand(U, zero, shift):
    """``[U, -|U - s|^2 / 2]``: norms in float64, ``s`` rounded as queries use it."""
    m, d = U.shape
    rows = np.empty((m, d + 1), dtype=U.dtype)
    rows[:, :d] = U
    s = shift.astype(U.dtype).astype(np.float64)
    step = _chunk_rows(m, 16 * d)
    for i in range(0, m, step):
        B = U[i : i + step].astype(np.float64) - s
        sq = np.einsum("ij,ij->i", B, B) + zero[i : i + step]
        rows[i : i + step, d] = -0.5 * sq
    return rows


def prepare_index(X, metric: str) -> KNNIndex:
    """Prepare the rows of ``X`` for search (no neighbour lists yet).

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64
        Validated training features (finite, in the safe range).
    metric : {"sqeuclidean", "euclidean", "cosine"}
        Only whether it is ``"cosine"`` matters here.
    """
    cosine = metric == "cosine"
    S, zero = search_space(X, cosine, X.dtype)
    h = _row_hashes(X)
    groups = _group_rows(h, lambda idx: S[idx])
    n = S.shape[0]
    if groups is None:
        inverse, first, counts = np.arange(n), None, np.ones(n, dtype=np.int64)
    else:
        inverse, first = groups
        counts = np.bincount(inverse).astype(np.int64)
    U = S if first is None else S[first]
    zero = zero if first is None else zero[first]
    shift = S.mean(axis=0, dtype=np.float64)
    m = U.shape[0]
    return KNNIndex(
        rows=_operand(U, zero, shift),
        shift=shift,
        counts=counts,
        inverse=inverse,
        hashes=h if first is None else h[first],
        cosine=cosine,
        zero=zero,
        peak=_peak(U),
        loo_dist=np.empty((m, 0)),
        loo_ind=np.empty((m, 0), dtype=np.intp),
    )


def leave_one_out(index: KNNIndex, k: int, *, rows=None, n_threads: int = 1):
    """The ``k`` nearest *other* distinct rows of every distinct row (NumPy).

    ``rows``: only those distinct rows (an index array). Returns ``(dist,
    ind)`` as :func:`search`; store them with :func:`with_neighbors`.
    """
    m = index.n_distinct
    if rows is None and _symmetric_pays(index, n_threads):
        return _leave_one_out_symmetric(index, k, n_threads)
    ids = range(m) if rows is None else np.asarray(rows)
    return _search_numpy(index, _Stored(index, ids), k, 0, m, n_threads)


def _symmetric_pays(index: KNNIndex, n_threads: int) -> bool:
    """Whether the leave-one-out pass takes the symmetric route: more than one
    block of rows, and its operand (a copy of the rows) within half of
    ``working_memory`` (the tiles take at most a quarter)."""
    m, d = index.n_distinct, index.n_features
    size = (m + _GROUP) * (d + 2) * index.rows.dtype.itemsize
    budget = get_config()["working_memory"] * 2**20 // 2
    return m > _tile_shape(index.rows.dtype, n_threads)[1] and size <= budget


def with_neighbors(index: KNNIndex, dist, ind) -> KNNIndex:
    """``index`` with its leave-one-out lists set."""
    return dataclasses.replace(index, loo_dist=dist, loo_ind=ind)


def _peak(U) -> float:
    return float(np.max(np.abs(U), initial=0.0))


# ============================================================ query sources
class _External:
    """Query rows given as a validated array (features, not search space)."""

    def __init__(self, index, X):
        self.index, self.X, self.n = index, X, X.shape[0]
        self.dtype = np.result_type(index.rows.dtype, X.dtype)
        self.ids = None

    def block(self, i0, i1):
        """``(Q', S64, zero)``: GEMM operand, exact search rows, zero mask."""
        index = self.index
        if index.cosine:
            S64, zero = _unit_rows(self.X[i0:i1], np.float64)
        else:
            S64, zero = self.X[i0:i1].astype(np.float64, copy=False), None
        return _query_operand(S64, index.shift, self.dtype), S64, zero


class _Stored:
    """Query rows ``ids`` (a range or an array) of the index itself."""

    def __init__(self, index, ids):
        self.index, self.ids, self.n = index, ids, len(ids)
        self.dtype = index.rows.dtype

    def block(self, i0, i1):
        index, rows = self.index, self.ids[i0:i1]
        if isinstance(rows, range):
            rows = slice(rows.start, rows.stop)
        S = index.rows[rows, :-1]
        zero = index.zero[rows] if index.cosine else None
        return _query_operand(S, index.shift, self.dtype), S, zero


def _query_operand(S, shift, dtype):
    Q = np.empty((S.shape[0], S.shape[1] + 1), dtype=dtype)
    np.subtract(S, shift.astype(dtype), out=Q[:, :-1], casting="unsafe")
    Q[:, -1] = 1.0
    return Q


# ============================================================ NumPy engine
def _tile_shape(dtype, n_threads: int) -> tuple[int, int]:
    """(queries, references) of a tile: ``_TILE_BYTES``, nearly square.

    All threads' tiles together take at most a quarter of scikit-learn's
    ``working_memory``. References come in whole groups of ``_GROUP``.
    """
    budget = get_config()["working_memory"] * 2**20 // (4 * max(1, n_threads))
    entries = max(1, min(_TILE_BYTES, budget) // np.dtype(dtype).itemsize)
    rows = max(1, min(_TILE_ROWS, math.isqrt(entries)))
    return rows, max(_GROUP, entries // rows // _GROUP * _GROUP)


def _select(T3, k, best_v, best_i, col0):
    """Merge the ``k`` largest entries of each query of a tile into the running best.

    ``T3`` is the tile (c, b) (references x queries, C order) viewed as
    (_GROUP, G, b): group ``g`` holds the references ``g, g + G, ...``, so the
    group maxima are one elementwise pass over contiguous memory. A tile
    stored queries x references comes as the view :func:`_across` (a strided
    reduction, a third of the speed). ``best_v`` (decreasing) / ``best_i``:
    the ``k`` best values and columns so far, per query.
    """
    _, G, b = T3.shape
    gm = T3.max(axis=0)  # (G, b)
    tau = best_v[:, -1]
    cand = gm > tau
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return
    floor = None
    if idx.size > 2 * k * b and G > k:
        # Many candidates (a first tile): the tile's k-th largest group
        # maximum bounds its k-th largest entry from below.
        floor = np.partition(np.ascontiguousarray(gm.T), G - k, axis=1)[:, G - k]
        idx = np.flatnonzero(cand & (gm >= floor))
    gg, qq = np.divmod(idx, b)
    V = T3[:, gg, qq]  # (_GROUP, candidate groups)
    keep = V > tau[qq]
    if floor is not None:
        keep &= V >= floor[qq]
    wi, ci = np.nonzero(keep)  # a row's entries in column order
    _merge_into(best_v, best_i, qq[ci], V[wi, ci], col0 + wi * G + gg[ci])


def _across(T):
    """A tile (b, c) stored queries x references as :func:`_select` reads it."""
    return T.reshape(T.shape[0], _GROUP, -1).transpose(1, 2, 0)


def _merge_into(best_v, best_i, rows, vals, cols):
    """Keep the ``k`` largest of ``best`` and the entries ``(rows, vals, cols)``.

    Ties go to the smaller column, so the result does not depend on tiling.
    The entries of a row must come in increasing column order, all above the
    columns already in its ``best`` (as a running search meets them).
    """
    k = best_v.shape[1]
    if rows.size == 0:
        return
    if k > _DENSE_MERGE_K:
        return _merge_sorting(best_v, best_i, rows, vals, cols)
    # Each active row's best and new entries side by side in a small dense
    # matrix, in column order; k rounds of argmax (which picks the first of
    # equal values: the smaller column).
    small = np.uint16 if best_v.shape[0] <= 2**16 else np.intp
    order = np.argsort(rows.astype(small), kind="stable")  # radix, keeps order
    hit = np.bincount(rows, minlength=best_v.shape[0])
    act = np.flatnonzero(hit)
    cnt = hit[act]
    na = act.size
    start = np.cumsum(cnt) - cnt
    at = (np.repeat(np.arange(na), cnt), np.arange(rows.size) - np.repeat(start, cnt))
    M = np.full((na, k + int(cnt.max())), -np.inf, dtype=best_v.dtype)
    C = np.empty(M.shape, dtype=best_i.dtype)
    M[:, :k], C[:, :k] = best_v[act], best_i[act]
    M[:, k:][at], C[:, k:][at] = vals[order], cols[order]
    every = np.arange(na)
    for j in range(k):
        top = M.argmax(axis=1)
        best_v[act, j], best_i[act, j] = M[every, top], C[every, top]
        M[every, top] = -np.inf


def _merge_sorting(best_v, best_i, rows, vals, cols):
    """:func:`_merge_into` by one sort of all entries (any ``k``)."""
    k = best_v.shape[1]
    hit = np.bincount(rows, minlength=best_v.shape[0])  # new entries per row
    act = np.flatnonzero(hit)
    na = act.size
    slot = np.cumsum(hit > 0) - 1  # position of each active row in act
    pos = slot[rows]
    all_r = np.concatenate([np.repeat(np.arange(na), k), pos])
    all_v = np.concatenate([best_v[act].ravel(), vals])
    all_c = np.concatenate([best_i[act].ravel(), cols])
    order = np.lexsort((all_c, -all_v, all_r))
    per_row = k + hit[act]
    take = order[(np.cumsum(per_row) - per_row)[:, None] + np.arange(k)]
    best_v[act] = all_v[take]
    best_i[act] = all_c[take]


def exact_distances(index, S64, zero, ids):
    """Search-unit distances from query rows ``S64`` to the distinct rows ``ids``."""
    b, k = ids.shape
    d = index.n_features
    out = np.empty((b, k))
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    step = max(1, _REFINE_BYTES // (8 * k * d + 8))
    for i in range(0, b, step):
        R = index.rows[safe[i : i + step], :-1]  # (rows, k, d)
        diff = np.subtract(S64[i : i + step, None, :], R, dtype=np.float64)
        out[i : i + step] = np.einsum("ijk,ijk->ij", diff, diff)
    if index.cosine:
        out *= 0.5
        np.minimum(out, 2.0, out=out)
        out[index.zero[safe]] = 1.0
        if zero is not None:
            out[zero] = 1.0
    out[~valid] = np.inf
    return out


def sort_neighbors(dist, ids):
    order = np.lexsort((ids, dist), axis=-1)
    return np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)


def _search_tiles(index, source, k, i0, i1, r0, r1, width, buffers):
    """``k`` nearest distinct rows in ``r0..r1`` of the queries ``i0..i1``."""
    Q, S64, zero = source.block(i0, i1)
    dtype, b = source.dtype, i1 - i0
    lowest = np.finfo(dtype).min  # finite: BLAS may scale the output by beta=0
    best_v = np.full((b, k), lowest, dtype=dtype)
    best_i = np.full((b, k), -1, dtype=np.intp)
    ids = None if source.ids is None else np.asarray(source.ids[i0:i1])
    A = index.rows
    for c0 in range(r0, r1, width):
        c1 = min(c0 + width, r1)
        c = c1 - c0
        cols = -(-c // _GROUP) * _GROUP
        T = buffers(cols * b, dtype).reshape(cols, b)
        R = A[c0:c1] if A.dtype == dtype else A[c0:c1].astype(dtype)
        np.matmul(R, Q.T, out=T[:c])
        T[c:] = lowest  # padding references
        if ids is not None:  # leave-one-out: a row is not its own neighbour
            own = np.flatnonzero((ids >= c0) & (ids < c1))
            T[ids[own] - c0, own] = lowest
        _select(T.reshape(_GROUP, -1, b), k, best_v, best_i, c0)
    best_i[best_v == lowest] = -1
    return sort_neighbors(exact_distances(index, S64, zero, best_i), best_i)


def _tile_buffers():
    """Per-thread reusable flat buffers, one per name and dtype."""
    local = threading.local()

    def get(size, dtype, name="tile"):
        cache = local.__dict__.setdefault("tiles", {})
        key = (name, np.dtype(dtype))
        T = cache.get(key)
        if T is None or T.size < size:
            T = np.empty(size, dtype=dtype)
            cache[key] = T
        return T[:size]

    return get


def _search_numpy(index, source, k, r0, r1, n_threads):
    """k nearest distinct rows in ``r0..r1`` of every query of ``source``."""
    n = source.n
    rows, width = _tile_shape(source.dtype, n_threads)
    # Blocks of at most ``rows`` queries, as many as a multiple of the
    # threads when there are enough (so that no thread waits for another).
    n_blocks = max(1, -(-n // rows))
    if n_threads > 1 and n_blocks >= n_threads:
        n_blocks = -(-n_blocks // n_threads) * n_threads
    size = max(1, -(-n // n_blocks))
    blocks = [(i, min(i + size, n)) for i in range(0, n, size)]
    tiles = max(1, -(-(r1 - r0) // width))
    parts = 1
    if n_threads > 1 and len(blocks) < 2 * n_threads:
        parts = min(tiles, -(-2 * n_threads // len(blocks)))
    per = -(-tiles // parts) * width
    spans = [(a, min(a + per, r1)) for a in range(r0, max(r1, r0 + 1), per)]
    items = [(blk, span) for blk in blocks for span in spans]
    buffers = _tile_buffers()

    def work(item):
        (i0, i1), (a, z) = item
        return _search_tiles(index, source, k, i0, i1, a, z, width, buffers)

    with threaded_map(n_threads if len(items) > 1 else 1) as run:
        results = list(run(work, items))
    dist = np.empty((n, k))
    ind = np.empty((n, k), dtype=np.intp)
    for j, (i0, i1) in enumerate(blocks):
        parts_j = results[j * len(spans) : (j + 1) * len(spans)]
        dist[i0:i1], ind[i0:i1] = _merge_sorted(parts_j, k)
    return dist, ind


def _symmetric_operand(index):
    """``P = [C, 1, h]`` with ``C = r - s`` and ``h = -|C|^2 / 2``.

    With ``P~`` the same rows with the last two columns swapped (built per
    query block, :func:`_swapped`), ``P_j . P~_i = C_j . C_i + h_i + h_j =
    -|C_i - C_j|^2 / 2``: symmetric in ``i`` and ``j``, so one product gives
    both rows' values. ``C`` is rounded as the query operand is; ``h`` is
    computed in float64 (an all-zero row under cosine gets ``-(|C|^2 + 1) /
    2``, as in the index). Rows are padded to whole groups; a padding row is
    ``[0, 0, lowest]``, at ``lowest`` from every real row either way.
    """
    U = index.rows[:, :-1]
    m, d = U.shape
    dtype = U.dtype
    P = np.zeros((-(-m // _GROUP) * _GROUP, d + 2), dtype=dtype)
    np.subtract(U, index.shift.astype(dtype), out=P[:m, :d])
    P[:m, d] = 1.0
    step = _chunk_rows(m, 16 * d)
    for i in range(0, m, step):
        C = P[i : i + step, :d].astype(np.float64)
        zero = index.zero[i : i + step]
        P[i : i + step, d + 1] = -0.5 * (np.einsum("ij,ij->i", C, C) + zero)
    P[m:, d + 1] = np.finfo(dtype).min
    return P


def _swapped(P, out):
    """``P`` with its last two columns swapped, written to ``out``."""
    out[:, :-2] = P[:, :-2]
    out[:, -2] = P[:, -1]
    out[:, -1] = P[:, -2]
    return out


def _leave_one_out_symmetric(index, k, n_threads):
    """:func:`leave_one_out` of every row, each pair's product computed once.

    The rows are cut into blocks of ``B`` (the tile width). The tile of blocks
    (I, J) holds ``-|r_i - r_j|^2 / 2`` (:func:`_symmetric_operand`) and
    gives both the neighbours of I among J and those of J among I, so only
    tiles with ``I <= J`` are computed: about half the products of two
    separate passes. First every row takes its ``k`` best in block 0 (the
    smallest ids); every other tile then keeps, per row, its ``k`` best
    entries *strictly* above that row's ``k``-th value from block 0, which is
    exact under the tie rule (equal values go to the smaller id, and block 0
    holds the smallest ids) and bounds the work of every tile; the partial
    lists are merged at the end.
    """
    m, dtype = index.n_distinct, index.rows.dtype
    B = _tile_shape(dtype, n_threads)[1]
    P = _symmetric_operand(index)
    d2 = P.shape[1]
    mp = P.shape[0]
    spans = [(a, min(a + B, mp)) for a in range(0, mp, B)]
    nb = len(spans)
    lowest = np.finfo(dtype).min
    buffers = _tile_buffers()

    def tile(ib, jb):
        """References of block ``jb`` x queries of block ``ib`` (own: lowest)."""
        (i0, i1), (j0, j1) = spans[ib], spans[jb]
        T = buffers((j1 - j0) * (i1 - i0), dtype).reshape(j1 - j0, i1 - i0)
        Pq = buffers((i1 - i0) * d2, dtype, "queries").reshape(i1 - i0, d2)
        np.matmul(P[j0:j1], _swapped(P[i0:i1], Pq).T, out=T)
        if ib == jb:
            own = np.arange(min(i1, m) - i0)
            T[own, own] = lowest
        return T

    def best(n, tau=None):
        """Empty best lists, or ``k`` placeholders (id -1) at ``tau``."""
        v = np.full((n, k), lowest, dtype=dtype)
        if tau is not None:
            v[:] = tau[:, None]
        return v, np.full((n, k), -1, dtype=np.intp)

    def seed(ib):
        T = tile(ib, 0)
        b = T.shape[1]
        own_v, own_i = best(b)
        _select(T.reshape(_GROUP, -1, b), k, own_v, own_i, 0)
        if ib == 0:
            return own_v, own_i, None
        part = best(T.shape[0])
        _select(_across(T), k, *part, spans[ib][0])
        return own_v, own_i, part

    def pair(pair_ids):
        ib, jb = pair_ids
        T = tile(ib, jb)
        b = T.shape[1]
        direct = best(b, tau[slice(*spans[ib])])
        _select(T.reshape(_GROUP, -1, b), k, *direct, spans[jb][0])
        if ib == jb:
            return [(ib, direct)]
        across = best(T.shape[0], tau[slice(*spans[jb])])
        _select(_across(T), k, *across, spans[ib][0])
        return [(ib, direct), (jb, across)]

    def finish(ib):
        i0, i1 = spans[ib]
        v, ids = seed_v[i0:i1].copy(), seed_i[i0:i1].copy()
        if parts[ib]:
            pv = np.concatenate([p[0] for p in parts[ib]], 1)
            pi = np.concatenate([p[1] for p in parts[ib]], 1)
            r, c = np.nonzero(pi >= 0)
            if r.size:
                by_column = np.argsort(pi[r, c], kind="stable")
                r, c = r[by_column], c[by_column]
                _merge_into(v, ids, r, pv[r, c], pi[r, c])
        n = min(i1, m) - i0
        v, ids = v[:n], ids[:n]
        ids[v == lowest] = -1
        zero = index.zero[i0 : i0 + n] if index.cosine else None
        S = index.rows[i0 : i0 + n, :-1]
        return sort_neighbors(exact_distances(index, S, zero, ids), ids)

    def phases(run):
        nonlocal seed_v, seed_i, tau, parts
        seeds = list(run(seed, range(nb)))
        seed_v = np.concatenate([s_[0] for s_ in seeds])
        seed_i = np.concatenate([s_[1] for s_ in seeds])
        tau = seed_v[:, -1]
        parts = [[] for _ in range(nb)]
        parts[0] = [s_[2] for s_ in seeds[1:]]
        tiles = [(ib, jb) for ib in range(1, nb) for jb in range(ib, nb)]
        for out in run(pair, tiles):
            for ib, part in out:
                parts[ib].append(part)
        results = list(run(finish, range(nb)))
        return (
            np.concatenate([r[0] for r in results]),
            np.concatenate([r[1] for r in results]),
        )

    seed_v = seed_i = tau = parts = None
    with threaded_map(n_threads) as run:
        return phases(run)


def _merge_sorted(parts, k):
    """The ``k`` nearest of several sorted ``(dist, ids)`` lists of the same rows."""
    if len(parts) == 1:
        return parts[0][0][:, :k], parts[0][1][:, :k]
    dist = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    dist, ids = sort_neighbors(dist, ids)
    return dist[:, :k], ids[:, :k]


def search(index: KNNIndex, X, k: int, *, n_threads: int = 1):
    """The ``k`` nearest distinct rows of each row of ``X`` (NumPy engine).

    Returns ``(dist, ind)`` of shape (n, k): search-unit distances (float64,
    increasing) and distinct-row ids (``-1`` with ``inf`` when fewer than
    ``k`` distinct rows exist).
    """
    return _search_numpy(index, _External(index, X), k, 0, index.n_distinct, n_threads)


# ====================================================== multiplicities
def _expand(dist, cnt, k):
    """The first ``k`` of the multiset ``dist[r, j]`` repeated ``cnt[r, j]`` times.

    ``dist`` is sorted along rows. Returns ``(dist_k, j, o)``: the distances,
    which column ``j`` each slot comes from (``-1``: exhausted, ``inf``), and
    the slot's rank ``o`` among the copies of that column.
    """
    cnt = np.minimum(cnt, k)
    cum = np.cumsum(cnt, axis=1)
    slot = np.arange(k)
    j = (cum[:, :, None] <= slot).sum(axis=1)  # (rows, k)
    before = np.concatenate([np.zeros((cum.shape[0], 1), cum.dtype), cum], 1)
    o = slot - np.take_along_axis(before, j, 1)
    out = np.take_along_axis(
        np.concatenate([dist, np.full((dist.shape[0], 1), np.inf)], 1), j, 1
    )
    j[j >= dist.shape[1]] = -1
    return out, j, o


def expand(index: KNNIndex, dist, ids, k: int, *, return_ids: bool = False):
    """Distances to the ``k`` nearest training rows, duplicates counted.

    ``dist, ids``: the nearest distinct rows (:func:`search`). With
    ``return_ids``, also the distinct row of each of the ``k`` places.
    """
    if not index.has_duplicates:
        return (dist, ids) if return_ids else dist
    cnt = np.where(ids >= 0, index.counts[np.maximum(ids, 0)], 0)
    out, j, _ = _expand(dist, cnt, k)
    if not return_ids:
        return out
    return out, np.where(j >= 0, np.take_along_axis(ids, np.maximum(j, 0), 1), -1)


def _own_fill(index):
    """Distance of a distinct row to its duplicates: 0 (1 for a zero row, cosine)."""
    return index.zero.astype(np.float64)


def calibration_distances(index: KNNIndex):
    """Leave-one-out distances of every training row, shape (n, k).

    A row's neighbours are searched among the rows that differ from it (its
    exact duplicates are left out with it). Only when fewer than ``k`` rows
    differ from it do its duplicates fill the remaining places.
    """
    dist, ids = index.loo_dist, index.loo_ind
    if not index.has_duplicates:
        return dist
    k = dist.shape[1]
    cnt = np.where(ids >= 0, index.counts[np.maximum(ids, 0)], 0)
    dist = np.concatenate([dist, _own_fill(index)[:, None]], 1)
    cnt = np.concatenate([cnt, index.counts[:, None] - 1], 1)
    out = np.sort(_expand(dist, cnt, k)[0], axis=1)
    return out[index.inverse]


def neighbor_rows(index: KNNIndex, dist, ids, k: int, query_rows=None):
    """Distances and training-row indices of the ``k`` nearest training rows.

    ``query_rows``: for leave-one-out lists (``dist, ids`` of the distinct
    rows of those training rows), the training rows themselves; their own
    duplicates then come first (as in ``NearestNeighbors.kneighbors()``, a row
    is not its own neighbour but its duplicates are).
    """
    counts = index.counts
    members = np.argsort(index.inverse, kind="stable")
    start = np.cumsum(counts) - counts
    cnt = np.where(ids >= 0, counts[np.maximum(ids, 0)], 0)
    if query_rows is not None:
        own = index.inverse[query_rows]
        dist = np.concatenate([_own_fill(index)[own][:, None], dist], 1)
        ids = np.concatenate([own[:, None], ids], 1)
        cnt = np.concatenate([counts[own][:, None] - 1, cnt], 1)
    out, j, o = _expand(dist, cnt, k)
    safe_j = np.maximum(j, 0)
    group = np.take_along_axis(ids, safe_j, 1)
    if query_rows is not None:
        # The o-th copy of a row's own group skips the row itself.
        rank = np.empty_like(members)
        rank[members] = np.arange(members.size) - start[index.inverse[members]]
        o = o + ((j == 0) & (o >= rank[query_rows][:, None]))
    rows = members[np.minimum(start[np.maximum(group, 0)] + o, members.size - 1)]
    rows[j < 0] = -1
    return out, rows


# ============================================================ streaming
def extend_index(index: KNNIndex, X, *, n_threads: int = 1) -> KNNIndex:
    """``index`` with the rows of ``X`` added, its leave-one-out lists updated.

    Rows equal to a stored row raise its count; new distinct rows are
    searched against all rows, and old rows against the new ones only (a
    stream of batches costs one leave-one-out pass over the final set). The
    result equals :func:`prepare_index` and the leave-one-out pass on all
    rows seen, up to ties. The
    stored dtype is kept, or promoted to float64 when ``X`` is float64
    because its values need it.
    """
    dtype = np.result_type(index.rows.dtype, X.dtype)
    if (
        dtype != index.rows.dtype
        and X.dtype == np.float64
        and fits_float32(float(np.max(np.abs(X), initial=0.0)), X.shape[1])
    ):
        dtype = index.rows.dtype  # a float64 batch joins a float32 index
    S, zero_b = search_space(X, index.cosine, dtype)
    old = index.rows[:, :-1].astype(dtype, copy=False)
    m, n_old = index.n_distinct, index.n_samples
    h_b = _row_hashes(np.asarray(X, dtype=dtype))
    h = np.concatenate([index.hashes, h_b])

    def take(idx):
        idx = np.asarray(idx)
        out = np.empty((idx.size, S.shape[1]), dtype=dtype)
        is_old = idx < m
        out[is_old] = old[idx[is_old]]
        out[~is_old] = S[idx[~is_old] - m]
        return out

    groups = _group_rows(h, take)
    if groups is None:
        inv_b = m + np.arange(S.shape[0])
        new = np.arange(S.shape[0])
    else:
        inverse, first = groups
        inv_b = inverse[m:]
        new = first[first >= m] - m
    m_new = m + new.size
    counts = np.concatenate([index.counts, np.zeros(new.size, np.int64)])
    counts += np.bincount(inv_b, minlength=m_new)
    shift = (n_old * index.shift + S.sum(axis=0, dtype=np.float64)) / (
        n_old + S.shape[0]
    )
    U = np.concatenate([old, S[new]])
    zero = np.concatenate([index.zero, zero_b[new]])
    k = index.loo_dist.shape[1]
    grown = KNNIndex(
        rows=_operand(U, zero, shift),
        shift=shift,
        counts=counts,
        inverse=np.concatenate([index.inverse, inv_b]),
        hashes=np.concatenate([index.hashes, h_b[new]]),
        cosine=index.cosine,
        zero=zero,
        peak=max(index.peak, _peak(S)),
        loo_dist=np.empty((m_new, 0)),
        loo_ind=np.empty((m_new, 0), dtype=np.intp),
    )
    if new.size == 0:
        return with_neighbors(grown, index.loo_dist, index.loo_ind)
    old_part = _search_numpy(
        grown, _Stored(grown, range(m)), min(k, new.size), m, m_new, n_threads
    )
    loo_old = _merge_sorted([(index.loo_dist, index.loo_ind), old_part], k)
    new_rows = _Stored(grown, range(m, m_new))
    loo_new = _search_numpy(grown, new_rows, k, 0, m_new, n_threads)
    return with_neighbors(
        grown,
        np.concatenate([loo_old[0], loo_new[0]]),
        np.concatenate([loo_old[1], loo_new[1]]),
    )


# ============================================================ scores
def aggregate(dist, metric: str, aggregation: str):
    """Turn ``k`` search-unit distances per row into one number (NumPy or torch).

    On tensors the square root of ``"euclidean"`` is taken at least at the
    smallest normal number, so that its gradient stays finite at distance 0.
    """
    tensor = is_tensor(dist)
    if metric == "euclidean":
        if tensor:
            dist = dist.clamp_min(np.finfo(np.float32).tiny).sqrt()
        else:
            dist = np.sqrt(dist)
    if aggregation == "mean":
        return dist.mean(1)
    if aggregation == "sum":
        return dist.sum(1)
    return dist.amax(1) if tensor else dist.max(1)  # "max" and "kth"
