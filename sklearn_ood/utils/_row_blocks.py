"""Passes over the rows of a 2-D array, one fixed block of rows per task, on threads.

Memory-bound passes (column sums, centring, range checks, row norms) run on one
core at 6-10 GB/s; a product per block of rows (the scatter's SYRK) runs at
the single-thread rate of BLAS. :func:`map_row_blocks` runs such passes on a
few Python threads (NumPy releases the GIL in its ufuncs, reductions and
products; SciPy's BLAS wrappers do not), with BLAS limited to one thread, so
no BLAS worker thread is left spinning for the next call (see
:mod:`sklearn_ood.utils._blas`). The blocks (:func:`row_blocks`) depend on the
array's shape and the machine only, never on the load or the threads used, and
results are combined in block order, so they are reproducible.

Measured on 2 cores (``benchmarks/RESULTS.md``, "Speed"): a
``MahalanobisDetector`` fit of 50,000 x 512 float32 rows took 0.203-0.209 s
with blocks against 0.272 s with one NumPy SYRK over all rows.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._threads import available_cpus, blas_threads, single_blas_thread

__all__ = ["map_row_blocks", "row_blocks"]

#: Fewest rows per block (at least 16 per feature too): a block's SYRK then runs
#: at the single-thread GEMM rate, and the per-block results cost little to add.
_BLOCK_ROWS = 8192


def row_blocks(n_rows: int, n_features: int) -> list[slice]:
    """A fixed partition of ``n_rows`` rows into blocks for :func:`map_row_blocks`.

    Blocks of at least ``max(8192, 16 * n_features)`` rows (at most twice
    that); when there are at least as many blocks as CPUs, their number is a
    multiple of the CPU count, so that threads finish together. The partition
    depends on the shape and the machine only, never on the load or the
    threads used, so results summed over blocks are reproducible.
    """
    rows = max(_BLOCK_ROWS, 16 * int(n_features))
    n_blocks = max(1, n_rows // rows)
    cpus = available_cpus()
    if n_blocks >= cpus:
        n_blocks -= n_blocks % cpus
    step = max(1, -(-n_rows // n_blocks))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)] or [
        slice(0, 0)
    ]


def map_row_blocks(fn, blocks, n_threads: int | None = None) -> list:
    """``[fn(block) for block in blocks]``, on up to ``n_threads`` threads.

    ``n_threads=None`` uses BLAS's own thread count
    (:func:`~sklearn_ood.utils._threads.blas_threads`: a ``threadpoolctl``
    limit the caller sets applies).

    With more than one thread (and more than one block), the blocks run on a
    thread pool with BLAS limited to one thread (NumPy releases the GIL in its
    products and ufuncs); otherwise they run in order on the calling thread,
    with BLAS's own threads. Outside the main thread (a caller's own thread
    pool) the BLAS limit cannot be set
    (:func:`~sklearn_ood.utils._threads.single_blas_thread`), so the blocks run
    in order there too. The caller's ``np.errstate`` applies in the workers.
    """
    serial = (
        len(blocks) < 2 or threading.current_thread() is not threading.main_thread()
    )
    if not serial and n_threads is None:
        n_threads = blas_threads()
    if serial or n_threads < 2:
        return [fn(block) for block in blocks]
    errors = np.geterr()

    def run(block):
        with np.errstate(**errors):
            return fn(block)

    with single_blas_thread(), ThreadPoolExecutor(min(n_threads, len(blocks))) as pool:
        return list(pool.map(run, blocks))
