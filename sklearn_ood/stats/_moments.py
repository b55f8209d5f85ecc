"""Mergeable moments of sets of rows: count, mean, scatter and two higher moments.

The Gaussian model of :class:`~sklearn_ood.MahalanobisDetector` needs, per
class, the number of rows, their mean and their scatter matrix; Ledoit-Wolf
shrinkage also needs ``sum_i |e_i|^4`` (and merging that needs
``sum_i |e_i|^2 e_i``), with ``e_i`` a row minus the mean. The moments of two
disjoint sets of rows combine exactly (Chan, Golub & LeVeque's pairwise
update), so a fit can be computed batch by batch (``partial_fit``), block by
block on a cluster (Dask), or fold by fold (out-of-fold calibration).

Numerical range
---------------
The scatter, the third and the fourth moments grow as the second, third and
fourth power of the data: rows of 1e100 (finite, and accepted by the
detectors) would overflow the fourth moment. Moments are therefore kept in a
*unit* ``u``, a power of two: ``scatter = sum e e' / u^2``, ``t3 = sum |e|^2 e
/ u^3``, ``s4 = sum |e|^4 / u^4`` (means stay in the data's unit). ``u`` is 1
for data whose centred values lie in ``[2**-64, 2**64]`` and otherwise the
power of two nearest to the largest centred value, so that every moment is
representable for any finite float64 input. Multiplying by a power of two is
exact (short of underflow), so the unit changes no digit of the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..utils._chunking import _chunk_rows

__all__ = [
    "Moments",
    "ledoit_wolf_shrinkage_from_moments",
    "merge_moments",
    "moments_of_rows",
    "pool_moments",
    "safe_unit",
]

# Centred values in [2**-64, 2**64] keep every moment (up to the fourth power,
# summed over up to 2**60 rows and 2**20 features) finite and normal in float64.
_SAFE_EXPONENT = 64


def safe_unit(peak: float) -> float:
    """The unit (a power of two) in which centred values of magnitude ``peak`` are safe.

    1.0 when ``peak`` lies in ``[2**-64, 2**64]`` (or is 0), otherwise
    ``2**round(log2(peak))``.
    """
    peak = float(peak)
    if peak == 0.0 or 2.0**-_SAFE_EXPONENT <= peak <= 2.0**_SAFE_EXPONENT:
        return 1.0
    return float(np.ldexp(1.0, int(np.round(np.log2(peak)))))


@dataclass(frozen=True)
class Moments:
    """Moments of sets of rows, one set per cell of ``count.shape``.

    Attributes
    ----------
    count : ndarray of int64, shape ``cells``
        Number of rows of each cell.
    mean : ndarray of shape ``cells + (n_features,)``
        Mean of each cell's rows (float64, the data's unit; 0 for empty cells).
    scatter : ndarray of shape ``cells + (n_features, n_features)``
        ``sum_i e_i e_i' / unit**2``, ``e_i`` a row minus its cell's mean.
    t3 : ndarray of shape ``cells + (n_features,)``
        ``sum_i |e_i|^2 e_i / unit**3``.
    s4 : ndarray of shape ``cells``
        ``sum_i |e_i|^4 / unit**4``.
    unit : float
        A power of two, shared by all cells (see the module docstring).
    """

    count: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray
    t3: np.ndarray
    s4: np.ndarray
    unit: float = 1.0

    @classmethod
    def empty(cls, shape: tuple, n_features: int) -> Moments:
        """Moments of no rows, for every cell of ``shape``."""
        return cls(
            count=np.zeros(shape, dtype=np.int64),
            mean=np.zeros((*shape, n_features)),
            scatter=np.zeros((*shape, n_features, n_features)),
            t3=np.zeros((*shape, n_features)),
            s4=np.zeros(shape),
        )

    @property
    def n_features(self) -> int:
        return self.mean.shape[-1]

    def __getitem__(self, index) -> Moments:
        """The moments of the cells ``index`` (NumPy indexing of the cell axes)."""
        return Moments(
            count=self.count[index],
            mean=self.mean[index],
            scatter=self.scatter[index],
            t3=self.t3[index],
            s4=self.s4[index],
            unit=self.unit,
        )

    def reshape(self, shape: tuple) -> Moments:
        """The same moments with the cells arranged in ``shape``."""
        d = self.n_features
        return Moments(
            count=self.count.reshape(shape),
            mean=self.mean.reshape(*shape, d),
            scatter=self.scatter.reshape(*shape, d, d),
            t3=self.t3.reshape(*shape, d),
            s4=self.s4.reshape(shape),
            unit=self.unit,
        )

    def in_unit(self, unit: float) -> Moments:
        """The same moments expressed in another unit (a power of two)."""
        if unit == self.unit:
            return self
        r = self.unit / unit  # a power of two: exact scaling
        return Moments(
            count=self.count,
            mean=self.mean,
            scatter=self.scatter * r**2,
            t3=self.t3 * r**3,
            s4=self.s4 * r**4,
            unit=float(unit),
        )


def _cell_moments(X, unit):
    """Moments of the rows of ``X`` about their own mean, in ``unit`` (float64)."""
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    A = np.zeros((d, d))
    t3 = np.zeros(d)
    s4 = 0.0
    peak = 0.0
    step = _chunk_rows(n, 8 * (2 * d + 2))
    for start in range(0, n, step):
        R = X[start : start + step].astype(np.float64)
        R -= mean
        if R.size:
            peak = max(peak, float(np.max(R)), float(-np.min(R)))
        if unit != 1.0:
            R *= 1.0 / unit
        A += R.T @ R  # NumPy's SYRK releases the GIL (Dask runs tasks on threads)
        sq = np.einsum("ij,ij->i", R, R)
        t3 += sq @ R
        s4 += float(sq @ sq)
    return n, mean, A, t3, s4, peak


def moments_of_rows(X, cells, n_cells: int) -> Moments:
    """Moments of the rows of ``X`` in each of ``n_cells`` cells.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows (float32 or float64); moments are accumulated in float64.
    cells : ndarray of int of shape (n_samples,)
        Cell of each row, in ``[0, n_cells)``.
    n_cells : int
        Number of cells.

    Returns
    -------
    moments : Moments
        Cells along the first axis, in the unit :func:`safe_unit` gives for the
        largest centred value.
    """
    cells = np.asarray(cells, dtype=np.int64)
    order = np.argsort(cells, kind="stable")
    keys, starts = np.unique(cells[order], return_index=True)
    stops = np.r_[starts[1:], len(cells)]
    groups = [(int(k), X[order[a:b]]) for k, a, b in zip(keys, starts, stops)]
    unit = 1.0
    for _ in range(2):  # a second pass only when the data need another unit
        out = Moments.empty((n_cells,), X.shape[1])
        peak = 0.0
        for k, rows in groups:
            # Overflow in the first pass is expected for extreme data: the
            # peak then asks for another unit and the pass is redone.
            with np.errstate(over="ignore", invalid="ignore"):
                n, mean, A, t3, s4, p = _cell_moments(rows, unit)
            peak = max(peak, p)
            out.count[k], out.mean[k], out.scatter[k] = n, mean, A
            out.t3[k], out.s4[k] = t3, s4
        needed = safe_unit(peak)
        if needed == unit:
            break
        unit = needed
    return Moments(out.count, out.mean, out.scatter, out.t3, out.s4, unit)


def _recentre(m: Moments, new_mean):
    """Scatter, t3 and s4 of the same rows about ``new_mean`` (in ``m.unit``).

    With ``e = x - mean`` (so ``sum e = 0``) and ``d = (new_mean - mean) / unit``,
    ``e - d`` gives ``A + n dd'``, ``t3 - tr(A) d - 2 A d - n |d|^2 d`` and
    ``s4 + 4 d'Ad + n |d|^4 - 4 t3.d + 2 |d|^2 tr(A)``.
    """
    n = m.count.astype(np.float64)
    # An empty cell has no moments to move: a zero shift keeps it neutral (its
    # mean is arbitrary, and 0 * inf is NaN when the shift overflows).
    d = np.where((n > 0)[..., None], (new_mean - m.mean) * (1.0 / m.unit), 0.0)
    A = m.scatter
    tr = np.trace(A, axis1=-2, axis2=-1)
    Ad = np.matmul(A, d[..., None])[..., 0]
    dd = np.einsum("...i,...i->...", d, d)
    dAd = np.einsum("...i,...i->...", d, Ad)
    t3d = np.einsum("...i,...i->...", m.t3, d)
    scatter = A + n[..., None, None] * (d[..., :, None] * d[..., None, :])
    t3 = m.t3 - tr[..., None] * d - 2.0 * Ad - (n * dd)[..., None] * d
    s4 = m.s4 + 4.0 * dAd + n * dd**2 - 4.0 * t3d + 2.0 * dd * tr
    return scatter, t3, s4


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Exact moments of the union of two disjoint sets of rows, cell by cell.

    The pairwise update of Chan, Golub & LeVeque (1979): the merged mean is
    ``mean_a + n_b / n (mean_b - mean_a)`` and each side's moments are moved
    to it before they are added. Empty cells (count 0) are neutral. The result
    is in the larger of the two units, or a larger one when the two means are
    further apart than that unit can hold.
    """
    na = a.count.astype(np.float64)
    nb = b.count.astype(np.float64)
    n = na + nb
    w = np.where(n > 0, nb / np.maximum(n, 1.0), 0.0)
    mean = a.mean + w[..., None] * (b.mean - a.mean)
    both = (na > 0) & (nb > 0)
    gap = float(np.max(np.abs(a.mean - b.mean)[both], initial=0.0))
    unit = max(a.unit, b.unit, safe_unit(gap))
    a, b = a.in_unit(unit), b.in_unit(unit)
    sa, ta, qa = _recentre(a, mean)
    sb, tb, qb = _recentre(b, mean)
    return Moments(
        count=a.count + b.count,
        mean=mean,
        scatter=sa + sb,
        t3=ta + tb,
        s4=qa + qb,
        unit=unit,
    )


def pool_moments(m: Moments, keep=None) -> Moments:
    """Merge the moments along the first axis (over the entries ``keep``)."""
    idx = np.arange(m.count.shape[0]) if keep is None else np.flatnonzero(keep)
    out = m[idx[0]]
    for i in idx[1:]:
        out = merge_moments(out, m[i])
    return out


def ledoit_wolf_shrinkage_from_moments(n: float, scatter, s4: float) -> float:
    """Ledoit-Wolf shrinkage coefficient from moments of centred rows.

    Equals :func:`sklearn.covariance.ledoit_wolf_shrinkage` of the ``n``
    centred rows ``e_i`` (``assume_centered=True``) whose scatter matrix is
    ``scatter = sum e_i e_i'`` and ``s4 = sum |e_i|^4``, both in any one unit
    (the coefficient is scale-free). scikit-learn's function needs the rows and
    recomputes both from them (two more ``n d^2`` products); here they come
    from the moments the fit keeps anyway.
    """
    d = scatter.shape[0]
    if d == 1 or n == 0:
        return 0.0
    emp_cov_trace = np.diag(scatter) / n
    mu = emp_cov_trace.sum() / d
    delta_ = np.sum(scatter**2) / n**2
    beta = (s4 / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + d * mu**2) / d
    # beta >= 0 in exact arithmetic (Jensen: mean |e|^4 >= |mean e e'|_F^2);
    # rounding can leave it a few ulps below 0 (a 2-row class gave -8.9e-17,
    # which scikit-learn's shrunk_covariance refuses).
    beta = min(max(beta, 0.0), delta)
    return 0.0 if beta <= 0 else float(beta / delta)
