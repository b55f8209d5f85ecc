"""The Gaussian model of the Mahalanobis detectors: what is fitted, as data.

:class:`GaussianSpec` says how to estimate (per-class or pooled covariance,
shrinkage, eigenvalue floor or pseudo-inverse, principal-component range);
:class:`GaussianModel` holds the result. Both are frozen dataclasses of plain
NumPy arrays (picklable, CPU), built by the functions of
:mod:`sklearn_ood._gaussian._estimate` and used by the distance and
calibration functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from numbers import Real

import numpy as np

__all__ = ["PINV", "GaussianModel", "GaussianSpec", "LooBasis", "Prepared"]

#: ``eigenvalue_floor`` value selecting the pseudo-inverse (scipy's ``pinvh``).
PINV = "pinv"

# Smallest eigenvalue ratio (smallest / largest eigenvalue used) for which the
# distances are computed in float32 for float32 input: the relative error of a
# float32 whitening product grows like eps32 * sqrt(largest / smallest), 1e-4 at
# this ratio; beyond it (a lower floor, or the pseudo-inverse) float64 is used.
FLOAT32_MIN_EIGENVALUE_RATIO = 1e-6


@dataclass(frozen=True)
class GaussianSpec:
    """How the Gaussian model is estimated.

    Attributes
    ----------
    per_class : bool
        One covariance per class (True) or one covariance of the class-centred
        rows shared by all classes (False; with one class, the marginal model).
    covariance : {"empirical", "ledoit_wolf", "oas", "identity"} or float
        Covariance estimate; a float is a fixed shrinkage coefficient.
    eigenvalue_floor : float or "pinv"
        Relative floor of the eigenvalues, or the pseudo-inverse.
    components : tuple (start, stop) of int or None
        Principal components (0-based, half-open, validated) the distance sums
        over; None for all.
    """

    per_class: bool = False
    covariance: str | float = "empirical"
    eigenvalue_floor: float | str = 1e-6
    components: tuple[int, int] | None = None

    @property
    def pinv(self) -> bool:
        return isinstance(self.eigenvalue_floor, str)

    @property
    def shrinkage(self) -> bool:
        """Whether the covariance is shrunk (Ledoit-Wolf, OAS or a fixed value)."""
        return self.covariance in ("ledoit_wolf", "oas") or (
            isinstance(self.covariance, Real) and not isinstance(self.covariance, str)
        )

    @property
    def closed_form_loo(self) -> bool:
        """Whether leave-one-out scores have a closed form (else out-of-fold).

        Every covariance without a component range: the empirical covariance
        and the identity exactly, a shrunk covariance with its shrinkage
        coefficient held at the full-data value (see
        :mod:`sklearn_ood._gaussian._calibration`).
        """
        return self.components is None

    @property
    def float32_scatter(self) -> bool:
        """Whether float32 rows may be accumulated into the scatter in float32.

        Float32 accumulation perturbs the eigenvalues by about eps32 times the
        largest one. A floor of at least 1e-6 hides that; a lower floor or the
        pseudo-inverse would read the rounding as variance, so their scatter
        is accumulated in float64, as scikit-learn's ``empirical_covariance``
        does. So is the scatter of a shrunk covariance: the Ledoit-Wolf and
        OAS coefficients are differences of such sums (``s4 / n - |S|_F^2``),
        where float32 rounding would be amplified, and the model then equals
        the one built from the float64 moments of ``partial_fit`` and Dask
        fits to float64 rounding.
        """
        return (
            not self.pinv
            and not self.shrinkage
            and self.eigenvalue_floor >= FLOAT32_MIN_EIGENVALUE_RATIO
        )


@dataclass(frozen=True)
class LooBasis:
    """The eigen-decomposition behind closed-form leave-one-out scores.

    For a covariance estimated from ``n`` rows with scatter matrix ``A``
    (about their mean), shrinkage coefficient ``s`` and target ``mu I``, ``mu
    = tr(A) / (n d)``: ``Sigma = (1 - s) A / n + s mu I = V diag(spread + s
    mu) V'``, whose eigenvalues are floored at ``floor`` before inversion
    (:mod:`sklearn_ood._gaussian._calibration` derives the update). The
    leading axis is the class in the per-class model and has length 1 for one
    shared covariance.

    Attributes
    ----------
    vectors : ndarray of shape (n_groups, n_features, n_directions)
        Eigenvectors ``V`` of the directions the model uses (under the
        pseudo-inverse, those kept; per-class models of different ranks are
        padded with zero columns).
    spread : ndarray of shape (n_groups, n_directions)
        Eigenvalues of ``(1 - s) A / n``, the shrunk covariance's less ``s
        mu`` (``inf`` for padding columns, which then weigh 0).
    shrinkage : ndarray of shape (n_groups,)
        The shrinkage coefficient ``s`` (0 for the empirical covariance).
    target : ndarray of shape (n_groups,)
        ``mu``, the mean eigenvalue of the unshrunk covariance.
    floor : ndarray of shape (n_groups,)
        The absolute eigenvalue floor (0 under the pseudo-inverse).
    """

    vectors: np.ndarray
    spread: np.ndarray
    shrinkage: np.ndarray
    target: np.ndarray
    floor: np.ndarray

    def scaled(self, factor: float) -> LooBasis:
        """The same basis for the data multiplied by ``sqrt(factor)``."""
        return replace(
            self,
            spread=self.spread * factor,
            target=self.target * factor,
            floor=self.floor * factor,
        )


@dataclass(frozen=True)
class GaussianModel:
    """A fitted Gaussian model: class means, covariances and their whitening.

    Squared distances are ``|(x - means[c]) @ W|^2`` with ``W = whitening``
    (``whitening[c]`` in the per-class model). With a component range, the
    distance sums the columns ``components`` of that product, and the class a
    sample is compared with is the one nearest by the full distance (Kamoi &
    Kobayashi, Sec. 4.1).

    Attributes
    ----------
    means : ndarray of shape (n_classes, n_features)
        Class means (float64).
    counts : ndarray of shape (n_classes,)
        Training rows per class.
    covariance : ndarray of shape (n_features, n_features) or \
            (n_classes, n_features, n_features)
        Covariance after shrinkage, before the floor (float64).
    eigenvalues : ndarray of shape (n_directions,) or (n_classes, n_directions)
        Eigenvalues (floored; decreasing) of the directions in ``whitening``
        (all directions when the whitening is a Cholesky factor). Per-class
        models of different pseudo-inverse ranks are padded with zeros.
    whitening : ndarray of shape (n_features, n_directions) or \
            (n_classes, n_features, n_directions)
        Whitening matrix of all the directions the model uses (float64).
    components : slice or None
        Columns of ``whitening`` the distance sums over.
    triangular : bool
        ``whitening`` is upper triangular (inverse Cholesky factor), so
        products with it can use TRMM.
    identity : bool
        The Euclidean model (``whitening`` is the identity).
    shrunk : bool
        The covariance is shrunk (Ledoit-Wolf, OAS or a fixed coefficient).
    floored : bool
        The eigenvalue floor raised, or the pseudo-inverse dropped, at least
        one direction.
    loo_basis : LooBasis or None
        The eigen-decomposition that closed-form leave-one-out scores need
        when the covariance is shrunk or the floor (or the pseudo-inverse)
        is active; None otherwise (the empirical covariance without an
        active floor needs only the distances), for the identity, with a
        component range, and on a model kept for scoring only
        (:meth:`for_scoring`).
    unit : float
        Power of two in which the data were decomposed (1.0 for data of
        ordinary magnitude; see :mod:`sklearn_ood.stats._moments`).
    float32_safe : bool
        The eigenvalues used span a ratio of at most 1e6, so float32 products
        lose at most about 1e-4 (relative) of a distance.
    dtype : numpy.dtype
        Precision of the distance products of the training rows
        (:meth:`product_dtype` of their dtype).
    """

    means: np.ndarray
    counts: np.ndarray
    covariance: np.ndarray
    eigenvalues: np.ndarray
    whitening: np.ndarray
    components: slice | None = None
    triangular: bool = False
    identity: bool = False
    shrunk: bool = False
    floored: bool = False
    loo_basis: LooBasis | None = None
    unit: float = 1.0
    float32_safe: bool = True
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float64))

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_prepared", None)  # a cache, rebuilt on demand
        return state

    def product_dtype(self, input_dtype) -> np.dtype:
        """Precision of the distance products for rows of ``input_dtype``: the
        input's where float32 is accurate (``float32_safe``), else float64.
        The one rule of the NumPy and torch scoring paths."""
        single = np.dtype(input_dtype) == np.float32 and self.float32_safe
        return np.dtype(np.float32 if single else np.float64)

    def for_scoring(self) -> GaussianModel:
        """The same model without what only the calibration needs (``loo_basis``)."""
        return self if self.loo_basis is None else replace(self, loo_basis=None)

    def prepared(self, dtype) -> Prepared:
        """The arrays of the distance products in ``dtype`` (cached)."""
        cache = self.__dict__.setdefault("_prepared", {})
        dtype = np.dtype(dtype)
        if dtype not in cache:
            cache[dtype] = Prepared.of(self, dtype)
        return cache[dtype]

    @property
    def n_classes(self) -> int:
        return self.means.shape[0]

    @property
    def per_class(self) -> bool:
        return self.whitening.ndim == 3

    @property
    def partial_whitening(self) -> np.ndarray:
        """Columns of ``whitening`` the distance sums over."""
        if self.components is None:
            return self.whitening
        return self.whitening[..., self.components]

    @property
    def partial_eigenvalues(self) -> np.ndarray:
        if self.components is None:
            return self.eigenvalues
        return self.eigenvalues[..., self.components]

    @property
    def chooses_by_full_distance(self) -> bool:
        """Whether the class is chosen by the full distance (a component range
        and several classes)."""
        return self.components is not None and self.n_classes > 1


@dataclass(frozen=True)
class Prepared:
    """A model's arrays cast for the distance products of one precision.

    ``W`` is the whitening the products use: all directions when the class is
    chosen by the full distance, else only ``components``. With several
    classes and one whitening, rows are whitened once around ``centre`` and
    the distance to class ``c`` expanded as ``|z|^2 - 2 z.M[c] + |M[c]|^2``
    (``M`` in float64).
    """

    dtype: np.dtype
    means: np.ndarray
    W: np.ndarray
    tri: np.ndarray | None = None
    centre: np.ndarray | None = None
    M: np.ndarray | None = None
    M_sq: np.ndarray | None = None

    @classmethod
    def of(cls, model: GaussianModel, dtype) -> Prepared:
        full = model.chooses_by_full_distance
        W64 = model.whitening if full else model.partial_whitening
        W = W64.astype(dtype)
        tri = None
        if model.triangular and W.ndim == 2:
            tri = np.asfortranarray(W.T)  # W' (lower triangular) for TRMM
        centre = M = M_sq = None
        if W.ndim == 2 and model.n_classes > 1:
            centre = model.means.mean(axis=0).astype(dtype)
            # In the cast precision's values, as the products use them.
            M = (model.means - centre.astype(np.float64)) @ W.astype(np.float64)
            M_sq = np.einsum("ij,ij->i", M, M)
        return cls(dtype, model.means.astype(dtype), W, tri, centre, M, M_sq)
