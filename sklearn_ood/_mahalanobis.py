"""Mahalanobis-distance detectors on feature vectors.

Implements the Gaussian scores of Lee et al. (2018, class-conditional with a
tied covariance), Kamoi & Kobayashi (2020, marginal and partial), Varedzhan et
al. (2021, one covariance per class) and the Euclidean baseline those papers
compare with, behind one estimator.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from scipy import linalg
from scipy.linalg.blas import get_blas_funcs
from sklearn.base import _fit_context
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .base import BaseDetector
from .parallel import (
    TorchInput,
    check_device_param,
    check_tensor,
    is_tensor,
    ledoit_wolf_from_moments,
    pool_moments,
    scoring_device,
    torch_chunk,
    update_stream,
)
from .utils._chunking import _chunk_rows
from .utils._labels import split_outlier_labels

__all__ = ["MahalanobisDetector"]

_N_FOLDS = 5


def _shrink(cov, shrinkage):
    """``(1 - s) * cov + s * trace(cov) / d * I`` (scikit-learn's target)."""
    d = cov.shape[0]
    out = (1.0 - shrinkage) * cov
    out.flat[:: d + 1] += shrinkage * np.trace(cov) / d
    return out


def _stack_parts(parts):
    """Stack per-class ``_decompose`` results into one model's arrays."""
    cov, eig, W = (np.stack([p[i] for p in parts]) for i in range(3))
    floored = any(p[3] for p in parts)
    W_loo = (
        None if any(p[4] is None for p in parts) else np.stack([p[4] for p in parts])
    )
    return cov, eig, W, floored, W_loo


def _oas_shrinkage(cov, n_samples):
    """Oracle Approximating Shrinkage coefficient, as scikit-learn's ``oas``."""
    d = cov.shape[0]
    alpha = np.mean(cov**2)
    mu_squared = (np.trace(cov) / d) ** 2
    num = alpha + mu_squared
    den = (n_samples + 1) * (alpha - mu_squared / d)
    return 1.0 if den == 0 else min(num / den, 1.0)


class MahalanobisDetector(BaseDetector):
    """Mahalanobis-distance OOD detector on feature vectors.

    ``score_samples`` is minus the squared Mahalanobis distance of a sample to
    the Gaussian model of the training features (to the closest class for the
    class-conditional modes), the score of Lee et al. (2018, Eq. 2-4) and
    Kamoi & Kobayashi (2020, Eq. 7-9). Higher means more normal.

    Parameters
    ----------
    mode : {"marginal", "tied", "per_class", "partial"}, default="marginal"
        - ``"marginal"``: one Gaussian over all training features; labels are
          ignored (Kamoi & Kobayashi 2020, Eq. 7-9).
        - ``"tied"``: one mean per class and one covariance shared by all
          classes (the class-centred residuals); the score is the maximum over
          classes (Lee et al. 2018). With ``y=None`` it equals ``"marginal"``.
        - ``"per_class"``: a mean and a covariance per class; the score is the
          maximum over classes of minus the squared distance under that class's
          own covariance (Varedzhan et al. 2021).
        - ``"partial"``: the partial Mahalanobis distance of Kamoi & Kobayashi
          (Eq. 6): ``"marginal"`` restricted to the principal components in
          ``components``.
    components : tuple (start, stop) or None, default=None
        Principal components (eigenvectors of the covariance sorted by
        decreasing eigenvalue) the distance is summed over: 0-based and
        half-open like a Python slice, ``stop=None`` meaning "to the end". The
        paper's "Partial (10-512)" is ``(9, None)``. ``None`` uses all
        components, which is the full Mahalanobis distance. Honoured by every
        mode (``"tied"`` decomposes the tied covariance, as Kamoi's Table 1).
    covariance : {"empirical", "ledoit_wolf", "oas", "identity"} or float, \
            default="empirical"
        Covariance estimate. ``"empirical"`` is the maximum-likelihood estimate
        (divides by the number of samples) the papers use. ``"ledoit_wolf"``
        and ``"oas"`` shrink it towards a scaled identity with the coefficient
        of scikit-learn's :class:`~sklearn.covariance.LedoitWolf` and
        :class:`~sklearn.covariance.OAS`; a float in ``[0, 1]`` is a fixed
        shrinkage coefficient (as :class:`~sklearn.covariance.ShrunkCovariance`).
        ``"identity"`` gives the Euclidean baseline: squared distance to the
        closest (class) mean.
    eigenvalue_floor : float, default=1e-6
        Eigenvalues of the covariance below ``eigenvalue_floor`` times the
        largest one are raised to that value before inversion, so singular or
        ill-conditioned covariances (more features than samples, constant
        features) give finite scores; deviations along such nearly-constant
        directions count as very unusual. ``0`` disables the floor except for
        exactly-zero eigenvalues (then floored at the smallest positive float
        scale of the largest eigenvalue). The papers invert with a
        pseudo-inverse instead, which ignores those directions.
    contamination : "auto" or float, default="auto"
        Share of training samples, scored leave-one-out, that falls below
        ``offset_``. ``"auto"`` is 0.025 (the 97.5th-percentile rule of
        Varedzhan et al.). See :mod:`sklearn_ood` for the contract.
    device : {"auto", "cpu", "cuda", "cuda:N"}, torch.device or None, \
            default=None
        Where ``score_samples`` (and ``decision_function``, ``predict``,
        ``class_distances``) compute. ``None``: NumPy for NumPy input, and the
        tensor's own device for a ``torch`` tensor. ``"auto"``: the GPU when
        CUDA is available, else as ``None``. A device: torch on that device for
        any input (a CUDA device falls back to the CPU with a warning where
        there is none). The torch path multiplies in float32 (the class-mean
        expansion of ``"tied"`` in float64) and returns float64 NumPy scores;
        fitting always runs in NumPy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (a single ``0`` when fitted without labels or in the
        marginal and partial modes).
    means_ : ndarray of shape (n_classes, n_features)
        Mean of each class's training features (float64).
    covariance_ : ndarray of shape (n_features, n_features) or \
            (n_classes, n_features, n_features)
        Estimated covariance after shrinkage, before the eigenvalue floor (the
        empirical covariance, unused for scoring, when
        ``covariance="identity"``).
    explained_variance_ : ndarray of shape (n_components,) or (n_classes, n_components)
        Eigenvalues used for the distance (floored), decreasing.
    whitening_ : ndarray of shape (n_features, n_components) or \
            (n_classes, n_features, n_components)
        Matrix ``W`` with ``distance = ||(x - mean) @ W||^2``, in the dtype of
        the training data.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.covariance.EllipticEnvelope : Robust (MCD) Gaussian outlier detector.
    KNNDetector : Distance to the nearest training features (DN2).

    Notes
    -----
    Covariance statistics are accumulated in the input precision after
    centring and decomposed in float64 once at fit; scoring is one matrix
    product per chunk of rows with the whitening matrix, so memory stays within
    scikit-learn's ``working_memory`` (see :func:`sklearn.config_context`).

    The training scores that set ``offset_`` are leave-one-out: with the
    empirical covariance the leave-one-out distance has a closed form (a
    Sherman-Morrison update, exact for every mode; when the eigenvalue floor
    is active the eigenbasis and the floor are held fixed for the one-sample
    update, which agrees with refitting to about 1e-4 in our tests). With
    shrinkage, a partial component range, or samples alone in some direction
    (more features than samples) they are out-of-fold scores of 5 interleaved
    folds.

    :meth:`partial_fit` keeps, per class and per fold (the training row index
    modulo 5), the count, mean, scatter matrix and the two higher moments
    Ledoit-Wolf needs, in float64, and merges those of each batch exactly
    (Chan, Golub & LeVeque's pairwise update); the model is rebuilt from them
    after every call, so it equals ``fit`` on all the rows seen (to rounding),
    for every mode and covariance. Memory: ``5 * n_classes`` matrices of
    ``n_features**2`` float64. ``offset_`` needs training rows scored as new
    data, so ``partial_fit`` also keeps up to 20,000 of the rows: all of them
    while they fit, then every ``2**j``-th row (a systematic sample, so an
    ordered stream stays represented). Their leave-one-out (or out-of-fold,
    from the per-fold moments) scores are exact for those rows, so
    ``offset_`` equals ``fit``'s up to 20,000 rows and is a percentile of a
    sample of at least 10,000 of them beyond. :func:`sklearn_ood.parallel.fit_dask`
    uses the same moments to fit on a Dask array.

    References
    ----------
    .. [1] K. Lee, K. Lee, H. Lee, J. Shin. "A Simple Unified Framework for
       Detecting Out-of-Distribution Samples and Adversarial Attacks".
       NeurIPS 2018.
    .. [2] T. Kamoi, K. Kobayashi. "Why is the Mahalanobis Distance Effective
       for Anomaly Detection?". arXiv:2003.00402, 2020.
    .. [3] G. Varedzhan, A. Yurkov, K. Ushenin. "Anomaly Detection in Image
       Datasets Using Convolutional Neural Networks, Center Loss, and
       Mahalanobis Distance". USBEREIT 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MahalanobisDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3))
    >>> det = MahalanobisDetector().fit(X)
    >>> det.predict([[0.0, 0.0, 0.0], [6.0, 6.0, 6.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "mode": [StrOptions({"marginal", "tied", "per_class", "partial"})],
        "components": [tuple, None],
        "covariance": [
            StrOptions({"empirical", "ledoit_wolf", "oas", "identity"}),
            Interval(Real, 0.0, 1.0, closed="both"),
        ],
        "eigenvalue_floor": [Interval(Real, 0.0, 1.0, closed="left")],
        "device": "no_validation",  # checked by check_device_param
    }

    #: Most training rows partial_fit keeps to set ``offset_``.
    _max_offset_rows = 20_000

    def __init__(
        self,
        *,
        mode: str = "marginal",
        components: tuple | None = None,
        covariance: str | float = "empirical",
        eigenvalue_floor: float = 1e-6,
        contamination: str | float = "auto",
        device=None,
    ):
        self.mode = mode
        self.components = components
        self.covariance = covariance
        self.eigenvalue_floor = eigenvalue_floor
        self.contamination = contamination
        self.device = device

    # ------------------------------------------------------------------ fit
    def _check_components(self, n_features):
        if self.components is None:
            return None
        comp = self.components
        msg = (
            "The 'components' parameter of MahalanobisDetector must be None or a "
            "tuple (start, stop) of 0-based, half-open component indices with "
            f"0 <= start < stop <= n_features; got {comp!r} with "
            f"n_features={n_features}."
        )
        if len(comp) != 2:
            raise ValueError(msg)
        start, stop = comp
        if stop is None:
            stop = n_features
        if not (
            isinstance(start, Integral)
            and isinstance(stop, Integral)
            and not isinstance(start, bool)
            and not isinstance(stop, bool)
        ):
            raise ValueError(msg)
        if not 0 <= start < stop <= n_features:
            raise ValueError(msg)
        return int(start), int(stop)

    def _check_setup(self, n_features):
        check_device_param(self)
        self._components = self._check_components(n_features)
        if self._components is not None and self.covariance == "identity":
            raise ValueError(
                "The 'components' parameter of MahalanobisDetector selects principal "
                "components of the covariance and cannot be combined with "
                "covariance='identity' (the Euclidean baseline); use "
                "components=None."
            )

    def _check_counts(self, counts, classes):
        if self.mode == "per_class" and counts.min() < 2:
            small = classes[counts.argmin()]
            raise ValueError(
                "MahalanobisDetector(mode='per_class') needs at least 2 samples "
                f"per class to estimate a covariance; class {small!r} has "
                f"{counts.min()}. Use mode='tied' or remove that class."
            )
        if counts.sum() < self._min_samples:
            n = int(counts.sum())
            raise ValueError(
                f"MahalanobisDetector needs at least {self._min_samples} "
                f"in-distribution samples, got {n} sample{'s' if n != 1 else ''}."
            )

    def _fit(self, X, y, X_outliers):
        del X_outliers  # known outliers are not part of a Gaussian fit
        self.__dict__.pop("_stream", None)
        self._check_setup(X.shape[1])
        class_mode = self.mode in ("tied", "per_class")
        if class_mode and y is not None:
            classes, y_idx = np.unique(y, return_inverse=True)
        else:
            classes, y_idx = np.array([0]), np.zeros(X.shape[0], dtype=np.intp)
        self._check_counts(np.bincount(y_idx, minlength=len(classes)), classes)
        model = self._estimate(X, y_idx, len(classes))
        self._commit(classes, model, X.dtype)
        return self._loo_scores(X, y_idx, model)

    def _commit(self, classes, model, dtype):
        self.classes_ = classes
        self.means_ = model["means"]
        self.covariance_ = model["cov"]
        self.explained_variance_ = model["eig"]
        self._set_model(model, dtype)

    def _estimate(self, X, y_idx, n_classes):
        """Means, (shrunk) covariances and whitening matrices from data."""
        per_class = self.mode == "per_class"
        counts = np.bincount(y_idx, minlength=n_classes)
        # Residuals in the input precision; statistics promoted to float64.
        if n_classes == 1:
            means = X.mean(axis=0, dtype=np.float64)[None, :]
            R = X - means[0].astype(X.dtype)
        else:
            means = np.stack(
                [X[y_idx == c].mean(axis=0, dtype=np.float64) for c in range(n_classes)]
            )
            R = X - means.astype(X.dtype)[y_idx]
        if per_class:
            parts = []
            for c in range(n_classes):
                Rc = R[y_idx == c]
                cov = (Rc.T @ Rc).astype(np.float64) / Rc.shape[0]
                parts.append(self._decompose(cov, Rc.shape[0], self._lw(Rc)))
            return self._model(means, counts, _stack_parts(parts))
        cov = (R.T @ R).astype(np.float64) / R.shape[0]
        return self._model(means, counts, self._decompose(cov, R.shape[0], self._lw(R)))

    @staticmethod
    def _model(means, counts, parts):
        cov, eig, W, floored, W_loo = parts
        return {
            "means": means,
            "counts": counts,
            "cov": cov,
            "eig": eig,
            "W": W,
            "floored": floored,
            "W_loo": W_loo,
        }

    def _lw(self, R):
        """Ledoit-Wolf coefficient of centred residuals (None unless needed)."""
        if self.covariance != "ledoit_wolf":
            return None
        return ledoit_wolf_shrinkage(R, assume_centered=True)

    def _decompose(self, cov, n, lw_shrinkage=None):
        """Shrink, eigen-decompose, floor and select components."""
        cov = 0.5 * (cov + cov.T)
        if self.covariance == "ledoit_wolf":
            cov = _shrink(cov, lw_shrinkage)
        elif self.covariance == "oas":
            cov = _shrink(cov, _oas_shrinkage(cov, n))
        elif isinstance(self.covariance, Real) and not isinstance(self.covariance, str):
            cov = _shrink(cov, float(self.covariance))
        d = cov.shape[0]
        if self.covariance == "identity":
            eig, vecs = np.ones(d), np.eye(d)
        else:
            eig, vecs = linalg.eigh(cov, driver="evd")
            eig, vecs = eig[::-1], vecs[:, ::-1]
        top = eig[0] if eig[0] > 0 else 1.0
        floor = max(self.eigenvalue_floor * top, np.finfo(np.float64).eps * top)
        floored = bool(np.any(eig < floor))
        raw = eig
        eig = np.maximum(eig, floor)
        W_loo = None
        if self.covariance == "empirical" and self._components is None and n > 1:
            # Whitening of the leave-one-out-sized covariance A / (n - 1) with the
            # same floor, for the closed-form leave-one-out scores when the
            # floor is active (the eigenbasis is held fixed: see _closed_form_loo).
            W_loo = vecs / np.sqrt(np.maximum(raw * n / (n - 1.0), floor))
        if not floored and self._components is None and self.covariance != "identity":
            # Full distance under an unfloored covariance: whiten with the
            # inverse Cholesky factor instead (same distances, and an upper
            # triangular W lets scoring use TRMM at half the cost of a GEMM).
            L = linalg.cholesky(cov, lower=True)
            W = linalg.solve_triangular(L, np.eye(d), lower=True).T
            return cov, eig, np.triu(W), floored, W_loo
        if self._components is not None:
            # (validated in _fit: not combined with the identity covariance)
            start, stop = self._components
            eig, vecs = eig[start:stop], vecs[:, start:stop]
        return cov, eig, vecs / np.sqrt(eig), floored, W_loo

    def _set_model(self, model, dtype):
        self.whitening_ = model["W"].astype(dtype)
        W = self.whitening_
        triangular = (
            W.ndim == 2 and W.shape[0] == W.shape[1] and not np.any(np.tril(W, -1))
        )
        # W' (lower triangular, Fortran order) for _whiten's in-place TRMM.
        self._tri = np.asfortranarray(W.T) if triangular else None
        self._centers = model["means"].astype(dtype)

    # -------------------------------------------------------------- scoring
    def _distances(self, X, means, W):
        """Squared distances (n_samples, n_classes) under whitening ``W``."""
        n, d = X.shape
        n_classes = means.shape[0]
        r = W.shape[-1]
        dtype = X.dtype
        out = np.empty((n, n_classes), dtype=np.float64)
        step = _chunk_rows(n, X.itemsize * (d + 2 * r + 2 * n_classes))
        if W.ndim == 3:  # per-class covariances
            for start in range(0, n, step):
                sl = slice(start, start + step)
                for c in range(n_classes):
                    Z = (X[sl] - means[c]) @ W[c]
                    out[sl, c] = np.einsum("ij,ij->i", Z, Z)
            return out
        if n_classes == 1:
            for start in range(0, n, step):
                sl = slice(start, start + step)
                Z = self._whiten(X[sl] - means[0], W)
                out[sl, 0] = np.einsum("ij,ij->i", Z, Z)
            return out
        # Several classes, one whitening: whiten once around the centre of the
        # class means, then expand |z - m_c|^2. The expansion is done in float64
        # (n x r x n_classes, cheap) so that float32 input loses no accuracy when
        # the classes are far apart.
        center = means.mean(axis=0).astype(dtype)
        M = (means.astype(np.float64) - center) @ W.astype(np.float64)
        M_sq = np.einsum("ij,ij->i", M, M)
        for start in range(0, n, step):
            sl = slice(start, start + step)
            Z = self._whiten(X[sl] - center, W).astype(np.float64, copy=False)
            Z_sq = np.einsum("ij,ij->i", Z, Z)
            D = Z_sq[:, None] - 2.0 * (Z @ M.T) + M_sq[None, :]
            out[sl] = np.maximum(D, 0.0)
        return out

    def _whiten(self, Xc, W):
        """``Xc @ W`` for a fresh residual block ``Xc`` (may be overwritten).

        With the fitted triangular whitening this is one in-place TRMM
        (``W' Xc'`` on the Fortran view of ``Xc``), about half the flops of GEMM.
        """
        tri = self.__dict__.get("_tri")
        if tri is None or W is not self.whitening_ or tri.dtype != Xc.dtype:
            return Xc @ W
        Xc = np.ascontiguousarray(Xc)
        trmm = get_blas_funcs("trmm", (tri,))
        return trmm(1.0, tri, Xc.T, side=0, lower=1, overwrite_b=1).T

    def _distances_torch(self, X, device):
        """``_distances`` with torch on ``device`` (float32 products)."""
        import torch

        n, d = X.shape
        W, centers = self.whitening_, self._centers
        n_classes, r = centers.shape[0], W.shape[-1]
        out = np.empty((n, n_classes), dtype=np.float64)
        step = _chunk_rows(n, 4 * (d + 2 * r + 2 * n_classes))
        Wt = torch.as_tensor(W).to(device=device, dtype=torch.float32)
        tied = W.ndim == 2 and n_classes > 1
        if tied:  # as _distances: whiten around the centre, expand in float64
            center = centers.mean(axis=0).astype(centers.dtype)
            M = (centers.astype(np.float64) - center) @ W.astype(np.float64)
            Mt = torch.as_tensor(M).to(device)
            M_sq = (Mt * Mt).sum(dim=1)
            centers = center[None, :]
        Ct = torch.as_tensor(centers).to(device=device, dtype=torch.float32)
        with torch.inference_mode():
            for start in range(0, n, step):
                sl = slice(start, start + step)
                xb = torch_chunk(X, sl, device)
                if tied:
                    Z = ((xb - Ct[0]) @ Wt).double()
                    D = (Z * Z).sum(dim=1)[:, None] - 2.0 * (Z @ Mt.T) + M_sq
                    out[sl] = D.clamp_min_(0.0).cpu().numpy()
                    continue
                for c in range(n_classes):
                    Z = (xb - Ct[c]) @ (Wt[c] if W.ndim == 3 else Wt)
                    out[sl, c] = (Z * Z).sum(dim=1).double().cpu().numpy()
        return out

    def _validate_score_input(self, X):
        device = scoring_device(self, X)
        if device is None:
            return super()._validate_score_input(X)
        if is_tensor(X):
            return TorchInput(check_tensor(self, X), device)
        return TorchInput(super()._validate_score_input(X), device)

    def _all_distances(self, X):
        if isinstance(X, TorchInput):
            return self._distances_torch(X.data, X.device)
        return self._distances(X, self._centers, self.whitening_)

    def _score(self, X):
        return -self._all_distances(X).min(axis=1)

    def class_distances(self, X):
        """Squared Mahalanobis distance of each sample to each class.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Samples (see ``device`` for where they are scored).

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes)
            Column ``k`` is the squared distance to class ``classes_[k]``
            (one column in the marginal and partial modes).
        """
        check_is_fitted(self)
        return self._all_distances(self._validate_score_input(X))

    def mahalanobis(self, X):
        """Squared Mahalanobis distance to the closest class (``-score_samples``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        distances : ndarray of shape (n_samples,)
            Squared distances, as
            :meth:`sklearn.covariance.EmpiricalCovariance.mahalanobis`.
        """
        return -self.score_samples(X)

    # ------------------------------------------------------ leave-one-out
    def _loo_scores(self, X, y_idx, model):
        """Training scores from models that did not see each sample."""
        if self._closed_form_applies(model):
            D = self._distances(X, self._centers, self.whitening_)
            scores = self._closed_form_loo(D, y_idx, model, X)
            if scores is not None:
                return scores
        return self._out_of_fold_scores(X, y_idx, model)

    def _closed_form_loo(self, D, y_idx, model, X):
        """Leave-one-out distances by a rank-one (Sherman-Morrison) update.

        ``D`` holds the in-sample squared distances (n_samples, n_classes) of
        the rows ``X``. Removing sample ``i`` of class ``c`` (``n_c`` samples,
        ``n`` in all) with residual ``e = x_i - mu_c`` turns the scatter ``A``
        into ``A - b e e'`` with ``b = n_c / (n_c - 1)``, the MLE covariance into
        ``(A - b e e') / (n - 1)``, and ``x_i - mu_c`` into ``b e``. With ``P``
        the inverse of ``A / (n - 1)``, ``c = b / (n - 1)`` and ``a = e'P e``:
        ``D_own = b^2 a / (1 - c a)`` and, for another class ``k`` with
        ``f = x_i - mu_k``, ``D_k = f'P f + c (f'P e)^2 / (1 - c a)``, where
        ``f'P e`` follows from the distances by polarisation. In "per_class"
        mode ``n`` is ``n_c`` and only the own class's Gaussian changes; with the
        identity covariance only its mean does.

        Exact for the empirical covariance. With an active eigenvalue floor the
        eigenbasis and the floor are held fixed while the eigenvalues are
        rescaled to ``n - 1`` samples (``P`` from ``W_loo``): a one-sample update
        that needs no refit. Returns None where the update is undefined (a
        sample alone in some direction, e.g. more features than samples); the
        caller then falls back to out-of-fold scores.
        """
        counts = model["counts"]
        n_c = counts[y_idx].astype(np.float64)
        if np.any(n_c < 2):
            return None
        rows = np.arange(D.shape[0])
        b = n_c / (n_c - 1.0)
        if self.covariance == "identity":
            D = D.copy()
            D[rows, y_idx] = b**2 * D[rows, y_idx]
            return -D.min(axis=1)
        per_class = self.mode == "per_class"
        n_all = float(counts.sum())  # == D.shape[0] when D holds every row
        n_eff = n_c if per_class else n_all
        if model["floored"]:
            W_loo = model["W_loo"]
            Dp = self._distances(
                X, model["means"].astype(X.dtype), W_loo.astype(X.dtype)
            )
        else:  # P = (n - 1) / n * S^-1: a rescaling of the in-sample distances
            scale = (n_eff - 1.0) / n_eff
            Dp = D * (scale[:, None] if per_class else scale)
            W_loo = model["W"] * np.sqrt((n_all - 1.0) / n_all)
        c = b / (n_eff - 1.0)
        a = Dp[rows, y_idx]
        denom = 1.0 - c * a
        if np.any(denom <= 1e-6):
            return None
        loo_own = b**2 * a / denom
        if per_class or D.shape[1] == 1:
            D = D.copy()
            D[rows, y_idx] = loo_own
            return -D.min(axis=1)
        M = model["means"] @ W_loo
        M_sq = np.einsum("ij,ij->i", M, M)
        between = M_sq[:, None] + M_sq[None, :] - 2.0 * (M @ M.T)  # |M_k - M_c|^2
        h = (Dp + a[:, None] - between[y_idx]) / 2.0  # f'P e
        loo = Dp + c[:, None] * h**2 / denom[:, None]
        loo[rows, y_idx] = loo_own
        return -loo.min(axis=1)

    def _out_of_fold_scores(self, X, y_idx, model):
        """Scores of 5 interleaved folds, each from a model fitted on the others."""
        n = X.shape[0]
        n_folds = min(_N_FOLDS, n)
        fold = np.arange(n) % n_folds
        scores = np.empty(n, dtype=np.float64)
        n_classes = len(model["counts"])
        for k in range(n_folds):
            test = fold == k
            train = ~test
            present = np.unique(y_idx[train])
            remap = np.full(n_classes, -1)
            remap[present] = np.arange(len(present))
            if self.mode == "per_class" and np.bincount(y_idx[train]).min() < 2:
                # A class too small without this fold: use the full model
                # for it (documented approximation for tiny classes).
                sub = model
                sub_means = model["means"]
            else:
                sub = self._estimate(X[train], remap[y_idx[train]], len(present))
                sub_means = sub["means"]
            D = self._distances(X[test].astype(np.float64), sub_means, sub["W"])
            scores[test] = -D.min(axis=1)
        return scores

    # ------------------------------------------------------------ streaming
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the detector with a batch of rows (exact streaming fit).

        After any sequence of calls the model (means, covariances, whitening)
        equals ``fit`` on all the rows seen, to floating-point rounding; see
        the Notes for how ``offset_`` is kept. Classes may first appear in any
        batch; with ``mode="per_class"`` every class seen needs 2 rows by the
        end of each call. A detector fitted with :meth:`fit` keeps no
        statistics to continue from: ``partial_fit`` on it starts a new model
        (with a warning).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training rows (a torch tensor is copied to NumPy).
        y : array-like of shape (n_samples,), default=None
            Class labels of the batch (``-1``: known outliers, left out).
            Give labels in every call or in none.

        Returns
        -------
        self : MahalanobisDetector
            The updated detector.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import MahalanobisDetector
        >>> X = np.random.RandomState(0).normal(size=(300, 4))
        >>> det = MahalanobisDetector()
        >>> for batch in np.array_split(X, 3):
        ...     det = det.partial_fit(batch)
        >>> ref = MahalanobisDetector().fit(X)
        >>> bool(np.allclose(det.score_samples(X), ref.score_samples(X)))
        True
        >>> bool(np.isclose(det.offset_, ref.offset_))
        True
        """
        old = getattr(self, "_stream", None)
        if old is None and hasattr(self, "offset_"):
            warnings.warn(
                "partial_fit on a MahalanobisDetector fitted with fit (which keeps "
                "no mergeable statistics) starts a new model from this batch; use "
                "partial_fit for every batch, the first one included.",
                UserWarning,
                stacklevel=3,
            )
        X = self._validate_fit_input(X, reset=old is None)
        self._check_setup(X.shape[1])
        y_in, outliers = split_outlier_labels(y, X.shape[0])
        X = X[~outliers] if outliers.any() else X
        labelled = self.mode in ("tied", "per_class") and y is not None
        if old is not None and (old["mode"], old["labelled"]) != (self.mode, labelled):
            raise ValueError(
                "partial_fit must see the same 'mode' in every call, and labels y "
                "in every call or in none (with mode='tied' or 'per_class'); got "
                f"mode={self.mode!r} with y {'given' if y is not None else 'None'} "
                f"after mode={old['mode']!r} with y "
                f"{'given' if old['labelled'] else 'None'}."
            )
        new = update_stream(old, X, y_in, labelled, self._max_offset_rows)
        new["mode"] = self.mode
        classes, moments = new["classes"], new["moments"]
        rows, rows_class, dtype = new["rows"], new["rows_class"], new["dtype"]
        total = pool_moments(moments)
        self._check_counts(total["count"], classes)
        model = self._model_from_moments(total)
        scores = self._loo_from_moments(rows, rows_class, model, dtype)
        if scores is None:
            scores = self._oof_from_moments(
                rows, rows_class, new["rows_index"], model, moments
            )
        self._offset_from_scores(scores)  # validate before committing
        # Everything computed: commit (an error above leaves the detector as it was).
        self._commit(classes, model, dtype)
        self._set_calibration(scores)
        self._stream = new
        return self

    def _model_from_moments(self, total):
        """The model ``_estimate`` builds, from per-class moments (n_classes, ...)."""
        counts, A, s4 = total["count"], total["scatter"], total["s4"]
        lw = self.covariance == "ledoit_wolf"
        if self.mode == "per_class":
            parts = []
            for c, n_c in enumerate(counts):
                shrink = ledoit_wolf_from_moments(n_c, A[c], s4[c]) if lw else None
                parts.append(self._decompose(A[c] / n_c, n_c, shrink))
            return self._model(total["mean"], counts, _stack_parts(parts))
        n, A_all = counts.sum(), A.sum(axis=0)
        shrink = ledoit_wolf_from_moments(n, A_all, s4.sum()) if lw else None
        return self._model(total["mean"], counts, self._decompose(A_all / n, n, shrink))

    def _closed_form_applies(self, model):
        return (
            self.covariance in ("empirical", "identity")
            and self._components is None
            and (not model["floored"] or model["W_loo"] is not None)
        )

    def _loo_from_moments(self, X, cls, model, dtype):
        """Closed-form leave-one-out scores of training rows, or None (as fit)."""
        if not self._closed_form_applies(model):
            return None
        W, means = model["W"].astype(dtype), model["means"].astype(dtype)
        return self._closed_form_loo(self._distances(X, means, W), cls, model, X)

    def _oof_from_moments(self, X, cls, index, model, moments):
        """Out-of-fold scores of training rows with training index ``index``.

        Row ``i`` of the training set is in fold ``i % n_folds`` and the
        moments are kept per ``i % 5``: the same folds as ``fit`` (for fewer
        than 5 rows, ``i % 5 == i % n``).
        """
        n_folds = min(_N_FOLDS, int(model["counts"].sum()))
        fold = index % n_folds
        scores = np.empty(X.shape[0], dtype=np.float64)
        for k in np.unique(fold):
            test = fold == k
            train = pool_moments(moments, np.arange(_N_FOLDS) != k)
            present = np.flatnonzero(train["count"] > 0)
            # As fit: bincount over the classes present up to the last one.
            if self.mode == "per_class" and train["count"][: present[-1] + 1].min() < 2:
                sub = model
            else:
                sub = self._model_from_moments(
                    {key: value[present] for key, value in train.items()}
                )
            D = self._distances(X[test].astype(np.float64), sub["means"], sub["W"])
            scores[test] = -D.min(axis=1)
        return scores
