"""Passes over the rows of a 2-D array, one fixed block of rows per task, on threads.

:func:`map_row_blocks` runs a pass over the rows (the Gaussian fit's column
sums, centring and scatter products) on a few Python threads, one block of
rows per task, with BLAS limited to one thread: NumPy releases the GIL in its
ufuncs, reductions and products (SciPy's BLAS wrappers do not: two SciPy SYRKs
on two threads took 0.220 s against 0.225 s one after the other), so the
blocks' products run side by side and the centring of one block overlaps the
product of another.

Why not BLAS's own threads: the PyPI wheels of NumPy and SciPy each ship an
OpenBLAS with its own thread pool (``threadpoolctl.threadpool_info()`` lists
both), and when an OpenBLAS call ends its worker threads spin for about 2**28
cycles (0.1 s) before they sleep. A product in the *other* library within
that time runs its threads next to the spinning ones: on 2 cores a 50,000 x
512 float32 TRMM (SciPy, the leave-one-out whitening) took 0.105-0.12 s right
after NumPy's SYRK and 0.068 s after a 0.1 s pause, and NumPy's SYRK 0.13-0.15
s right after a SciPy TRMM instead of 0.078 s. Single-threaded products on
our own threads leave no BLAS thread spinning. With one BLAS library (MKL, or
a shared OpenBLAS) there is no such penalty, and the threads still help.

The blocks (:func:`row_blocks`) depend on the array's shape and the machine's
CPU count only, never on the load or the number of threads used, and callers
combine the blocks' results in block order, so a result is the same with any
number of threads (tested bit for bit). A pass that runs in order (one block,
one thread, or a caller's own thread) multiplies each block with BLAS's own
threads; OpenBLAS's SYRK gives the same bits with any number of threads.

Measured on 2 cores (``benchmarks/RESULTS.md``, "Speed"): a
``MahalanobisDetector`` fit of 50,000 x 512 float32 rows took 0.203-0.209 s
with blocks against 0.272 s with one NumPy SYRK over all rows.
"""

from __future__ import annotations

import itertools

from ._threads import available_cpus, blas_threads, threaded_map

__all__ = ["map_row_blocks", "row_blocks"]

#: Fewest rows per block (at least 16 per feature too): a block's SYRK then runs
#: at the single-thread GEMM rate, and the per-block results cost little to add.
_BLOCK_ROWS = 8192


def row_blocks(n_rows: int, n_features: int) -> list[slice]:
    """A fixed partition of ``n_rows`` rows into blocks for :func:`map_row_blocks`.

    Blocks of ``m = max(8192, 16 * n_features)`` to ``2 m`` rows, their sizes
    differing by at most one (a single block when there are fewer than ``2 m``
    rows); when there are at least as many blocks as CPUs, their number is a
    multiple of the CPU count, so that the threads finish together. The
    partition depends on the shape and the CPU count only.
    """
    rows = max(_BLOCK_ROWS, 16 * int(n_features))
    n_blocks = max(1, n_rows // rows)
    cpus = available_cpus()
    if n_blocks >= cpus:
        n_blocks -= n_blocks % cpus
    edges = [i * n_rows // n_blocks for i in range(n_blocks + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def map_row_blocks(fn, blocks, n_threads: int | None = None) -> list:
    """``[fn(block) for block in blocks]``, on up to ``n_threads`` threads.

    ``n_threads=None`` uses BLAS's own thread count
    (:func:`~sklearn_ood.utils._threads.blas_threads`: a ``threadpoolctl``
    limit the caller sets applies).

    The blocks run through :func:`~sklearn_ood.utils._threads.threaded_map`:
    on a thread pool with BLAS limited to one thread (NumPy releases the GIL in
    its products and ufuncs), the caller's ``np.errstate`` applying in the
    workers; in order on the calling thread, with BLAS's own threads, for one
    block, one thread, or outside the main thread.
    """
    if len(blocks) < 2:
        return [fn(block) for block in blocks]
    if n_threads is None:
        n_threads = blas_threads()
    with threaded_map(min(n_threads, len(blocks))) as run:
        return list(run(fn, blocks))
