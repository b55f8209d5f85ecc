"""The safe numeric range of 2-D feature input.

Distances and covariances square the features. A float32 feature of 1e20 is
finite, but its square (1e40) is not representable in float32, and a float64
feature of 1e160 squares past float64's range. :func:`check_feature_range`
keeps every detector's arithmetic finite: float32 input whose squared norms
could overflow float32 is promoted to float64 (exact, and float64 holds the
squares of any float32 value), and input whose squared norms would overflow
even float64 is refused with an error that names the range found. For the
kNN search, which ranks by float32 dot products, float32 input too small to
square in float32 (all features below about 6e-16) is promoted as well
(``promote_tiny``).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import assert_all_finite

__all__ = ["check_feature_range", "fits_float32", "max_safe_abs", "min_safe_abs"]

# Head-room factor between the largest squared norm the input can produce and
# the largest finite float: sums of a few such terms (|x|^2 + |y|^2 - 2 x.y,
# scatter accumulations over rows) stay finite.
_HEADROOM = 2.0**16


def max_safe_abs(dtype, n_features: int) -> float:
    """Largest ``|x_j|`` with ``n_features * x_j**2 * 2**16 < finfo(dtype).max``."""
    big = float(np.finfo(dtype).max)
    return float(np.sqrt(big / (_HEADROOM * max(int(n_features), 1))))


def min_safe_abs(dtype) -> float:
    """Smallest largest ``|x_j|`` whose squares keep full precision in ``dtype``.

    Below it the products of a dot product fall under ``2**(nmant + 2)``
    times the smallest normal number, where they round to a coarse absolute
    grid (and to 0): float32 features of 1e-30 have squares of 1e-60, which
    float32 flushes to 0, so every distance looks alike.
    """
    fi = np.finfo(dtype)
    return float(np.sqrt(float(fi.tiny) * 2.0 ** (fi.nmant + 2)))


def fits_float32(peak: float, n_features: int) -> bool:
    """Whether features up to ``peak`` in absolute value square safely in float32."""
    return peak == 0.0 or (
        min_safe_abs(np.float32) <= peak <= max_safe_abs(np.float32, n_features)
    )


def check_feature_range(
    X, name: str = "X", *, promote_tiny: bool = False, estimator=None
):
    """Refuse non-finite features; promote float32 features to float64 when
    their squares need it; refuse features whose squares overflow float64.

    The largest and smallest values (two reads, no ``|X|`` copy) decide all
    three, so callers validate with scikit-learn's finiteness check switched off
    (``ensure_all_finite=False``) and save its extra pass over the data; a NaN
    or an infinity raises scikit-learn's own error and message.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Validated features.
    name : str, default="X"
        Name used in the error messages.
    promote_tiny : bool, default=False
        Also promote float32 features too small to square in float32
        (:func:`fits_float32`): for computations that rank by float32 dot
        products (the kNN search). Detectors that rescale by a power of two
        (the Gaussian moments) leave them in float32.
    estimator : estimator instance, default=None
        Named in the error for non-finite values, as scikit-learn does.

    Returns
    -------
    X : ndarray
        ``X`` itself, or a float64 copy of float32 ``X`` whose squared norms
        could overflow float32 (or, with ``promote_tiny``, whose squares
        underflow it).
    """
    if X.size == 0:
        return X
    hi, lo = float(np.max(X)), float(np.min(X))  # no |X| temporary: two reads
    if not (np.isfinite(hi) and np.isfinite(lo)):  # max and min propagate NaN
        assert_all_finite(
            X,
            input_name=name,
            estimator_name=None if estimator is None else type(estimator).__name__,
        )
    peak = max(hi, -lo)
    d = X.shape[1] if X.ndim == 2 else 1
    if peak > max_safe_abs(np.float64, d):
        raise ValueError(
            f"{name} holds values up to {peak:.3g} in absolute value; with "
            f"{d} feature(s) their squared distances overflow float64. Rescale "
            f"the features to at most {max_safe_abs(np.float64, d):.3g} in "
            "absolute value (e.g. with sklearn.preprocessing.StandardScaler)."
        )
    if X.dtype == np.float32 and (
        peak > max_safe_abs(np.float32, d)
        or (promote_tiny and not fits_float32(peak, d))
    ):
        return X.astype(np.float64)
    return X
