"""Dirichlet maximum-likelihood fit and the GEOM Dirichlet normality score.

This module implements the statistics used by the geometric-transformation
detector of Golan & El-Yaniv (2018): Minka's fixed-point maximum-likelihood
estimate of a Dirichlet distribution fitted to softmax outputs, initialised
with Wicker et al.'s approximation of the total concentration, and the
normality score ``sum_k (alpha_k - 1) log q_k`` averaged over transformations.

All computations are done in float64, whatever the input dtype, and the
probability arrays are processed one transformation at a time so that a
float32 ``(T, N, K)`` input is never copied to float64 as a whole.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln, polygamma, psi
from sklearn.utils._param_validation import Interval, validate_params

__all__ = [
    "dirichlet_log_likelihood",
    "dirichlet_mle",
    "dirichlet_normality_score",
    "inverse_digamma",
]

#: psi(1) = -Euler-Mascheroni constant.
_PSI_1 = float(psi(1.0))
#: Above this value ``exp(y)`` overflows float64, so does the inverse digamma.
_LOG_MAX = float(np.log(np.finfo(np.float64).max))
#: Row sums further than this from 1 trigger a warning in :func:`dirichlet_mle`.
_ROW_SUM_ATOL = 1e-3
#: Default lower clip of probabilities before logarithms: the smallest normal
#: float64, so that only exact zeros (``log 0 = -inf``) are changed.
_TINY = float(np.finfo(np.float64).tiny)


# --------------------------------------------------------------------------------------
# inverse digamma
# --------------------------------------------------------------------------------------


def _inverse_digamma(y: np.ndarray, n_newton: int) -> np.ndarray:
    """Vectorised Minka inverse digamma on a float64 array, without checks."""
    x = np.empty_like(y)
    nan = np.isnan(y)
    x[nan] = np.nan
    big = y > _LOG_MAX  # the root exceeds the float64 range (includes +inf)
    x[big] = np.inf
    neg_inf = y == -np.inf  # psi(x) -> -inf as x -> 0+
    x[neg_inf] = 0.0
    regular = ~(nan | big | neg_inf)
    hi = regular & (y >= -2.22)
    lo = regular & (y < -2.22)
    x[hi] = np.exp(y[hi]) + 0.5
    x[lo] = -1.0 / (y[lo] - _PSI_1)
    if n_newton > 0 and regular.any():
        xr = x[regular]
        yr = y[regular]
        for _ in range(n_newton):
            xr = xr - (psi(xr) - yr) / polygamma(1, xr)
        x[regular] = xr
    return x


@validate_params(
    {
        "y": ["array-like", numbers.Real],
        "n_newton": [Interval(numbers.Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def inverse_digamma(y: ArrayLike | float, *, n_newton: int = 5) -> np.ndarray | float:
    """Inverse of the digamma function, by Minka's Newton recipe.

    Solves ``psi(x) = y`` for ``x > 0`` element-wise. The initial guess is
    ``exp(y) + 0.5`` if ``y >= -2.22`` and ``-1 / (y - psi(1))`` otherwise,
    followed by ``n_newton`` Newton steps
    ``x <- x - (psi(x) - y) / psi'(x)`` with :func:`scipy.special.psi` and
    ``scipy.special.polygamma(1, .)``. Five steps reach full float64 accuracy
    (relative error ~1e-14) for ``x`` anywhere in ``[1e-300, 1e300]``.

    Parameters
    ----------
    y : array-like or float
        Values of the digamma function. Computed in float64. ``+inf`` (and any
        ``y`` above ``log(float64 max)``, whose root overflows) maps to
        ``inf``, ``-inf`` maps to ``0`` and NaN stays NaN.
    n_newton : int, default=5
        Number of Newton steps after the initial guess (0 returns the guess).

    Returns
    -------
    x : ndarray of float64 or float
        The inverse digamma of ``y``, with the shape of ``y``; a Python float
        when ``y`` is a scalar.

    References
    ----------
    T. P. Minka, "Estimating a Dirichlet distribution", technical report,
    2000 (revised 2012), Appendix C.

    Examples
    --------
    >>> from scipy.special import psi
    >>> from sklearn_ood.stats import inverse_digamma
    >>> round(inverse_digamma(psi(3.5)), 12)
    3.5
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            "The 'y' parameter of inverse_digamma must be an array of real numbers. "
            f"Got an array of dtype {arr.dtype} instead."
        )
    arr = np.asarray(arr, dtype=np.float64)
    out = _inverse_digamma(arr.reshape(-1), int(n_newton)).reshape(arr.shape)
    if out.ndim == 0:
        return float(out)
    return out


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _as_real_array(x, name: str, func: str, ndims: tuple[int, ...], shape_doc: str):
    """Return ``np.asarray(x)`` after checking its dtype and number of dims."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"The '{name}' parameter of {func} must be an array of real numbers. "
            f"Got an array of dtype {arr.dtype} instead."
        )
    if arr.ndim not in ndims:
        raise ValueError(
            f"The '{name}' parameter of {func} must be {shape_doc}. "
            f"Got an array of shape {arr.shape} instead."
        )
    return arr


def _check_probabilities(block: np.ndarray, name: str, func: str) -> None:
    """Raise if a float64 block of probabilities has non-finite/negative values."""
    if not np.isfinite(block).all():
        raise ValueError(
            f"The '{name}' parameter of {func} must contain only finite values. "
            "Got NaN or infinity instead."
        )
    if (block < 0).any():
        raise ValueError(
            f"The '{name}' parameter of {func} must contain non-negative "
            f"probabilities. Got a minimum of {block.min()!r} instead."
        )


def _check_alpha(alpha, func: str, ndims: tuple[int, ...], shape_doc: str):
    arr = _as_real_array(alpha, "alpha", func, ndims, shape_doc)
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all() or (arr <= 0).any():
        raise ValueError(
            f"The 'alpha' parameter of {func} must contain finite, strictly positive "
            "concentration parameters. Got non-positive or non-finite values instead."
        )
    return arr


def _clip_eps(eps) -> float:
    return _TINY if eps is None else float(eps)


def _log_clipped(block, eps) -> np.ndarray:
    """``log(clip(block, eps, 1))`` in float64."""
    return np.log(np.clip(np.asarray(block, dtype=np.float64), _clip_eps(eps), 1.0))


# --------------------------------------------------------------------------------------
# MLE
# --------------------------------------------------------------------------------------


def _sufficient_statistics(P: np.ndarray, eps: float, func: str):
    """Per-transformation column means of ``P`` and of ``log P`` (clipped), and
    whether all rows of ``P[t]`` are identical."""
    n_fits, _, n_classes = P.shape
    mean_p = np.empty((n_fits, n_classes))
    mean_log_p = np.empty((n_fits, n_classes))
    identical = np.zeros(n_fits, dtype=bool)
    max_dev = 0.0
    for t in range(n_fits):
        block = np.asarray(P[t], dtype=np.float64)
        _check_probabilities(block, "P", func)
        max_dev = max(max_dev, float(np.max(np.abs(block.sum(axis=1) - 1.0))))
        identical[t] = bool((block == block[:1]).all())
        clipped = np.clip(block, eps, 1.0)
        # Means about the first row: NumPy sums the rows of a C-ordered block
        # one after the other (error growing like N eps, not log2(N) eps), so
        # the deviations are summed, whose rounding is relative to the spread
        # itself; rows without spread give the first row exactly.
        log_clipped = np.log(clipped)
        mean_p[t] = clipped[0] + (clipped - clipped[0]).mean(axis=0)
        mean_log_p[t] = log_clipped[0] + (log_clipped - log_clipped[0]).mean(axis=0)
    if max_dev > _ROW_SUM_ATOL:
        warnings.warn(
            f"The rows of 'P' passed to {func} should sum to 1 (probability "
            f"vectors); the largest deviation is {max_dev:.3g}. The values are "
            "used as given, without renormalisation.",
            UserWarning,
            stacklevel=4,  # helper, function, validate_params wrapper
        )
    return mean_p, mean_log_p, identical


def _wicker_initial_alpha(
    mean_p: np.ndarray, mean_log_p: np.ndarray, identical: np.ndarray, n_samples: int
) -> np.ndarray:
    """Wicker et al.'s initial alpha ``f * s0`` for each row of ``mean_p``.

    ``s0 = N (K-1) gamma / (N sum_k f_k log f_k - sum_k f_k sum_i log P_ik)``;
    dividing numerator and denominator by ``N`` gives the form used here.
    """
    n_classes = mean_p.shape[1]
    log_f = np.log(mean_p)
    denom = np.sum(mean_p * (log_f - mean_log_p), axis=1)
    # By Jensen's inequality denom >= 0, with equality iff all rows are equal.
    # Computed in float64 it carries rounding errors: a column mean (taken
    # about the first row, so its error is that of the last addition plus a
    # share of the spread) is within about (log2(N) + 1) eps of its value,
    # which moves log f_k and the mean of log P_ik by that much times
    # (1 + |value|). A denom within that bound is indistinguishable
    # from 0: the rows have no resolvable spread and the concentration diverges
    # (identical rows would otherwise give alpha ~ 1e15 from pure rounding).
    gamma = (np.ceil(np.log2(max(n_samples, 2))) + 2.0) * np.finfo(np.float64).eps
    bound = gamma * np.sum(
        mean_p * (1.0 + 2.0 * np.abs(log_f) + 2.0 * np.abs(mean_log_p)), axis=1
    )
    bad = identical | ~(denom > bound) | ~np.isfinite(denom)
    if bad.any():
        idx = np.flatnonzero(bad).tolist()
        raise ValueError(
            "The 'P' parameter of dirichlet_mle has no spread: all its rows are "
            f"(numerically) identical for fit(s) {idx}, so the Dirichlet "
            "maximum-likelihood estimate does not exist (the concentration "
            "diverges)."
        )
    s0 = (n_classes - 1) * (-_PSI_1) / denom
    return mean_p * s0[:, None]


def _fixed_point(alpha0, mean_log_p, tol, max_iter, n_newton=5):
    """Minka's fixed point for each row, freezing rows that have converged."""
    alpha = alpha0.copy()
    n_iter = np.zeros(alpha.shape[0], dtype=np.intp)
    active = np.arange(alpha.shape[0])
    for it in range(1, max_iter + 1):
        old = alpha[active]
        y = psi(old.sum(axis=1))[:, None] + mean_log_p[active]
        new = _inverse_digamma(y, n_newton)
        if not np.isfinite(new).all():
            raise FloatingPointError(
                "The Dirichlet fixed-point iteration of dirichlet_mle diverged "
                f"(non-finite alpha at iteration {it}); the data are too "
                "concentrated for a finite maximum-likelihood estimate."
            )
        # psi^{-1} of a finite value is positive; keep alpha a valid parameter
        # even if rounding ever produced 0.
        np.maximum(new, np.finfo(np.float64).tiny, out=new)
        alpha[active] = new
        n_iter[active] = it
        step = np.sqrt(np.sum((old - new) ** 2, axis=1))
        active = active[~(step < tol)]
        if active.size == 0:
            break
    return alpha, n_iter


@validate_params(
    {
        "P": ["array-like"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "eps": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "return_n_iter": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def dirichlet_mle(
    P: ArrayLike,
    *,
    tol: float = 1e-9,
    max_iter: int = 1000,
    eps: float | None = None,
    return_n_iter: bool = False,
) -> np.ndarray | tuple[np.ndarray, int | np.ndarray]:
    """Maximum-likelihood Dirichlet fit by Minka's fixed-point iteration.

    With ``f`` the column mean of ``P`` and ``log p_hat`` the column mean of
    ``log P``, the iteration starts from Wicker et al.'s approximation
    ``alpha0 = f * s0`` with
    ``s0 = N (K-1) gamma / (N sum_k f_k log f_k - sum_k f_k sum_i log P[i, k])``
    (``gamma = -psi(1)``) and repeats
    ``alpha_new = psi^{-1}(psi(sum(alpha_old)) + log p_hat)`` until
    ``||alpha_old - alpha_new||_2 < tol`` or ``max_iter`` updates, returning
    the last ``alpha_new``. This is the procedure of Golan & El-Yaniv's
    geometric-transformation code.

    Parameters
    ----------
    P : array-like of shape (n_samples, n_classes) or \
            (n_fits, n_samples, n_classes)
        Probability vectors (e.g. softmax outputs), one per row. A 3-D array
        fits ``n_fits`` independent Dirichlets at once (e.g. one per geometric
        transformation); the result equals fitting each ``P[t]`` separately.
        Values must be finite and non-negative, ``n_samples >= 2`` and
        ``n_classes >= 2``. Rows should sum to 1: a ``UserWarning`` is issued
        if some row sum is off by more than 1e-3, and the values are then used
        as given. Processed in float64, one ``P[t]`` at a time; never modified.
    tol : float, default=1e-9
        Convergence threshold on the Euclidean norm of the change of alpha.
    max_iter : int, default=1000
        Maximum number of fixed-point updates per fit.
    eps : float or None, default=None
        ``P`` is clipped to ``[eps, 1]`` before taking logarithms. None is the
        smallest normal float64 (about 2.2e-308), which changes only exact
        zeros (whose logarithm is ``-inf``), so the estimate is the MLE of the
        data as given. A larger ``eps`` (e.g. the 1e-12 of earlier versions)
        moves alpha when many probabilities are tiny.
    return_n_iter : bool, default=False
        Whether to also return the number of fixed-point updates.

    Returns
    -------
    alpha : ndarray of shape (n_classes,) or (n_fits, n_classes)
        Estimated concentration parameters (float64, strictly positive).
    n_iter : int or ndarray of shape (n_fits,)
        Number of updates performed (``max_iter`` if not converged). Only
        returned when ``return_n_iter=True``.

    Raises
    ------
    ValueError
        For invalid input, or when the rows of some ``P[t]`` are identical (or
        differ by less than the float64 rounding of their column means), in
        which case the maximum-likelihood estimate does not exist.
    FloatingPointError
        If the iteration produces a non-finite alpha (extremely concentrated
        data).

    Notes
    -----
    Deviations from the authors' code, both numerical safeguards:

    * ``P`` is clipped to ``[eps, 1]`` before the logarithms (the original has
      no clipping, so a float32 softmax value of exactly 0 gives ``-inf`` and
      then NaN). With the default ``eps`` only exact zeros change. Column
      means ``f`` are taken on the clipped values.
    * Rows without spread are refused instead of being fitted: the Wicker
      denominator is then zero in exact arithmetic, and its float64 rounding
      alone would give a concentration of order 1e15.
    * alpha is kept strictly positive: the inverse digamma of a finite value is
      positive, and any update that would round to a non-positive value is
      clipped to the smallest positive normal float64; a non-finite update
      raises ``FloatingPointError`` instead of returning NaN.

    References
    ----------
    .. [1] T. P. Minka, "Estimating a Dirichlet distribution", technical
       report, 2000.
    .. [2] N. Wicker, J. Muller, R. K. R. Kalathur and O. Poch, "A maximum
       likelihood approximation method for Dirichlet's parameter estimation",
       Computational Statistics & Data Analysis 52(3), 2008.
    .. [3] I. Golan and R. El-Yaniv, "Deep Anomaly Detection Using Geometric
       Transformations", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.stats import dirichlet_mle
    >>> rng = np.random.default_rng(0)
    >>> P = rng.dirichlet([2.0, 5.0, 3.0], size=20000)
    >>> np.round(dirichlet_mle(P), 1)
    array([2., 5., 3.])
    """
    func = "dirichlet_mle"
    arr = _as_real_array(
        P,
        "P",
        func,
        (2, 3),
        "a 2-D array of shape (n_samples, n_classes) or a 3-D array of shape "
        "(n_fits, n_samples, n_classes)",
    )
    squeeze = arr.ndim == 2
    arr3 = arr[None] if squeeze else arr
    n_fits, n_samples, n_classes = arr3.shape
    if n_fits < 1:
        raise ValueError(
            f"The 'P' parameter of {func} must contain at least one fit. "
            f"Got an array of shape {arr.shape} instead."
        )
    if n_samples < 2:
        raise ValueError(
            f"The 'P' parameter of {func} needs at least 2 samples (rows) per fit. "
            f"Got n_samples={n_samples} instead."
        )
    if n_classes < 2:
        raise ValueError(
            f"The 'P' parameter of {func} needs at least 2 classes (columns). "
            f"Got n_classes={n_classes} instead."
        )
    mean_p, mean_log_p, identical = _sufficient_statistics(arr3, _clip_eps(eps), func)
    alpha0 = _wicker_initial_alpha(mean_p, mean_log_p, identical, n_samples)
    alpha, n_iter = _fixed_point(alpha0, mean_log_p, float(tol), int(max_iter))
    if squeeze:
        alpha = alpha[0]
        n_iter_out: int | np.ndarray = int(n_iter[0])
    else:
        n_iter_out = n_iter
    if return_n_iter:
        return alpha, n_iter_out
    return alpha


# --------------------------------------------------------------------------------------
# densities and scores
# --------------------------------------------------------------------------------------


@validate_params(
    {
        "alpha": ["array-like"],
        "P": ["array-like"],
        "eps": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "normalised": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def dirichlet_log_likelihood(
    alpha: ArrayLike,
    P: ArrayLike,
    *,
    eps: float | None = None,
    normalised: bool = True,
) -> np.ndarray:
    """Per-sample Dirichlet log density.

    ``log Gamma(sum_k a_k) - sum_k log Gamma(a_k) + sum_k (a_k - 1) log p_k``.

    Parameters
    ----------
    alpha : array-like of shape (n_classes,) or (n_fits, n_classes)
        Concentration parameters, finite and strictly positive.
    P : array-like of shape (n_samples, n_classes) or \
            (n_fits, n_samples, n_classes)
        Points on the simplex, one per row (2-D with a 1-D ``alpha``, 3-D with
        a 2-D ``alpha``). Finite and non-negative; clipped to ``[eps, 1]``
        before the logarithm and otherwise used as given (rows are not
        renormalised nor checked to sum to 1).
    eps : float or None, default=None
        Lower clipping bound of ``P``; None is the smallest normal float64,
        which changes only exact zeros.
    normalised : bool, default=True
        If False, drop the constant ``log Gamma(sum a) - sum log Gamma(a_k)``,
        which gives the GEOM per-transformation score.

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples,) or (n_fits, n_samples)
        Log density of each sample (float64).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.stats import dirichlet_log_likelihood
    >>> dirichlet_log_likelihood([1.0, 1.0, 1.0], [[0.2, 0.3, 0.5]])
    array([0.69314718])
    """
    func = "dirichlet_log_likelihood"
    a = _check_alpha(
        alpha, func, (1, 2), "a 1-D array (n_classes,) or 2-D array (n_fits, n_classes)"
    )
    arr = _as_real_array(
        P,
        "P",
        func,
        (a.ndim + 1,),
        f"a {a.ndim + 1}-D array of shape "
        + (
            "(n_samples, n_classes)"
            if a.ndim == 1
            else "(n_fits, n_samples, n_classes)"
        )
        + f" to match the {a.ndim}-D 'alpha'",
    )
    squeeze = a.ndim == 1
    a2 = a[None] if squeeze else a
    arr3 = arr[None] if squeeze else arr
    if arr3.shape[0] != a2.shape[0] or arr3.shape[2] != a2.shape[1]:
        raise ValueError(
            f"The 'P' parameter of {func} must have shape (..., n_samples, "
            f"{a2.shape[1]}) matching 'alpha' of shape {a.shape}. "
            f"Got shape {arr.shape} instead."
        )
    out = np.empty(arr3.shape[:2])
    for t in range(arr3.shape[0]):
        block = np.asarray(arr3[t], dtype=np.float64)
        _check_probabilities(block, "P", func)
        out[t] = _log_clipped(block, eps) @ (a2[t] - 1.0)
        if normalised:
            out[t] += gammaln(a2[t].sum()) - gammaln(a2[t]).sum()
    return out[0] if squeeze else out


@validate_params(
    {
        "alpha": ["array-like"],
        "Q": ["array-like"],
        "eps": [Interval(numbers.Real, 0, 1, closed="neither"), None],
    },
    prefer_skip_nested_validation=True,
)
def dirichlet_normality_score(
    alpha: ArrayLike, Q: ArrayLike, *, eps: float | None = None
) -> np.ndarray:
    """GEOM Dirichlet normality score, averaged over transformations.

    ``score[n] = (1/T) sum_t sum_k (alpha[t, k] - 1) log Q[t, n, k]``, the
    Dirichlet log-likelihood without its normalising constant, as in
    Golan & El-Yaniv (2018). Higher means more normal.

    Parameters
    ----------
    alpha : array-like of shape (n_fits, n_classes) or (n_classes,)
        Concentration parameters of the ``n_fits`` (transformation) Dirichlets,
        e.g. from :func:`dirichlet_mle`.
    Q : array-like of shape (n_fits, n_samples, n_classes) or \
            (n_samples, n_classes)
        Softmax outputs for the ``n_fits`` transformed copies of each test
        sample (2-D with a 1-D ``alpha``, i.e. a single transformation).
        Finite and non-negative; clipped to ``[eps, 1]`` before the logarithm.
        Processed in float64 one transformation at a time (the input is not
        copied as a whole nor modified).
    eps : float or None, default=None
        Lower clipping bound of ``Q`` (the authors' code has none); None is the
        smallest normal float64, which changes only exact zeros (see
        :func:`dirichlet_mle`).

    Returns
    -------
    score : ndarray of shape (n_samples,)
        Normality score of each sample (float64); higher is more normal.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.stats import dirichlet_normality_score
    >>> alpha = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> Q = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    >>> dirichlet_normality_score(alpha, Q)  # (log 0.5 + 2 log 0.5) / 2
    array([-1.03972077])
    """
    func = "dirichlet_normality_score"
    a = _check_alpha(
        alpha, func, (1, 2), "a 2-D array (n_fits, n_classes) or 1-D array (n_classes,)"
    )
    arr = _as_real_array(
        Q,
        "Q",
        func,
        (a.ndim + 1,),
        f"a {a.ndim + 1}-D array of shape "
        + (
            "(n_samples, n_classes)"
            if a.ndim == 1
            else "(n_fits, n_samples, n_classes)"
        )
        + f" to match the {a.ndim}-D 'alpha'",
    )
    a2 = a[None] if a.ndim == 1 else a
    arr3 = arr[None] if arr.ndim == 2 else arr
    if arr3.shape[0] != a2.shape[0] or arr3.shape[2] != a2.shape[1]:
        raise ValueError(
            f"The 'Q' parameter of {func} must have shape (n_fits, n_samples, "
            f"n_classes) = ({a2.shape[0]}, n_samples, {a2.shape[1]}) to match "
            f"'alpha' of shape {a.shape}. Got shape {arr.shape} instead."
        )
    score = np.zeros(arr3.shape[1])
    for t in range(arr3.shape[0]):
        block = np.asarray(arr3[t], dtype=np.float64)
        _check_probabilities(block, "Q", func)
        score += np.einsum("nk,k->n", _log_clipped(block, eps), a2[t] - 1.0)
    score /= a2.shape[0]
    return score
