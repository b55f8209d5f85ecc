"""Level-3 products of the Gaussian models in one BLAS library: SciPy's.

Why this exists
---------------
The PyPI wheels of NumPy and SciPy each ship their own OpenBLAS, each with its
own thread pool (``threadpoolctl.threadpool_info()`` lists both). When an
OpenBLAS call ends, its worker threads spin-wait for the next call for about
2**28 cycles (0.1 s) before they sleep. A product in the *other* library
within that time runs its own threads next to the spinning ones: on a 2-core
machine, a 50,000 x 512 float32 TRMM took 0.105-0.12 s right after NumPy's
SYRK and 0.068 s after SciPy's (or after a 0.1 s pause), and NumPy's SYRK
0.12-0.15 s right after a SciPy TRMM instead of 0.078 s
(``benchmarks/RESULTS.md``, "Speed"). A fit then does its scatter (SYRK), its
decomposition (LAPACK) and its whitening products (TRMM) in a row, so all of
them go to SciPy's library, which is the only one that offers TRMM and
LAPACK. With a single BLAS library (MKL, or a shared OpenBLAS) nothing changes.

The passes over the rows that come before (column sums, centring, the
scatter) run on Python threads instead, each with single-threaded BLAS
(:mod:`sklearn_ood.utils._row_blocks`), so no BLAS thread is left spinning.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import get_blas_funcs

__all__ = ["gram"]


def gram(R):
    """``R.T @ R`` by one SYRK in SciPy's BLAS, in ``R``'s precision.

    Parameters
    ----------
    R : ndarray of shape (n_rows, n_features), float32 or float64

    Returns
    -------
    G : ndarray of shape (n_features, n_features)
        The symmetric product (both triangles), C-contiguous.
    """
    if R.dtype not in (np.float32, np.float64):
        raise TypeError(f"gram needs float32 or float64 rows, got {R.dtype}")
    syrk = get_blas_funcs("syrk", (R,))
    # On the Fortran view of R (no copy when R is C-contiguous): R' R, upper
    # triangle; the strict lower triangle of the result is not set.
    upper = syrk(1.0, R.T, trans=0)
    G = np.triu(upper)
    G += np.triu(upper, 1).T
    return G
