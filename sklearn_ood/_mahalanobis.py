"""Mahalanobis-distance detectors on feature vectors.

Implements the Gaussian scores of Lee et al. (2018, class-conditional with a
tied covariance), Kamoi & Kobayashi (2020, marginal and partial), Varedzhan et
al. (2021, one covariance per class) and the Euclidean baseline those papers
compare with, behind one estimator. The estimation, distances and calibration
live in :mod:`sklearn_ood._gaussian` as functions of a fitted
``GaussianModel``; this module validates, routes and stores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._gaussian import (
    PINV,
    GaussianModel,
    GaussianSpec,
    GaussianStatistics,
    OffsetSample,
    distance_scores,
    fit_from_statistics,
    fit_gaussian,
    inlier_rows,
    score_torch,
    squared_distances,
    squared_distances_torch,
)
from .base import BaseDetector
from .nn._device import DEVICE_CONSTRAINT, compute_device
from .utils._labels import split_outlier_labels
from .utils._tensors import TorchInput, check_tensor, is_tensor

__all__ = ["MahalanobisDetector"]


@dataclass(frozen=True)
class _Stream:
    """State of a ``partial_fit`` stream: statistics, offset sample, settings."""

    statistics: GaussianStatistics
    sample: OffsetSample
    mode: str
    n_seen: int


# Public fitted arrays that are functions of the model: derived again on load
# instead of pickled twice (a 1280-d model: 26 MB on disk instead of 46 MB).
_MODEL_ATTRIBUTES = ("means_", "covariance_", "explained_variance_", "whitening_")


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
        mode. With several classes (``"tied"``, ``"per_class"``), a sample is
        compared with the class whose mean is nearest by the *full*
        Mahalanobis distance, and its score is minus the partial distance to
        that class, as Kamoi & Kobayashi (Sec. 4.1) subtract "the nearest class
        mean in terms of the Mahalanobis distance" before decomposing the tied
        covariance (their Table 1).
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
    eigenvalue_floor : float in [0, 1) or "pinv", default=1e-6
        How a singular or ill-conditioned covariance (more features than
        samples, constant features) is inverted.

        - A float: eigenvalues below ``eigenvalue_floor`` times the largest
          one are raised to that value before inversion, so deviations along
          nearly-constant directions count as very unusual but finite. ``0``
          floors exactly-zero eigenvalues at machine precision times the
          largest one.
        - ``"pinv"``: the pseudo-inverse of the papers' code (Lee et al. use
          scikit-learn's :class:`~sklearn.covariance.EmpiricalCovariance`,
          whose precision is :func:`scipy.linalg.pinvh`): directions whose
          eigenvalue is at most ``n_features * eps`` times the largest get
          weight 0 and every other direction weight ``1 / eigenvalue``, however
          small. The marginal score then equals
          ``-EmpiricalCovariance().fit(X).mahalanobis(X_new)``. Only the
          (numerically) zero-variance directions are ignored; small but
          non-zero variances weigh fully, which makes the score sensitive to
          rounding along them. Float32 features are accumulated in float64 in
          this setting (float32 rounding would read as variance).
    contamination : "auto" or float, default="auto"
        Share of new normal samples that ``predict`` flags (see
        :mod:`sklearn_ood.base`), set from the calibration scores of the
        training rows. ``"auto"`` is 0.025.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where ``score_samples`` (and ``decision_function``, ``predict``,
        ``class_distances``) compute. ``"auto"`` is the first GPU when CUDA is
        available and the CPU otherwise; ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
        (or a :class:`torch.device`) name a device. A CUDA device asked for on
        a machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`. NumPy input computed on the CPU
        uses NumPy; a torch tensor is scored with torch (on its own GPU under
        ``"auto"``), and so is anything computed on a GPU. Both paths multiply
        in the input's precision where that is accurate (see Notes) and return
        float64 NumPy scores; fitting always runs in NumPy.

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
        Eigenvalues of the directions the distance sums over (floored),
        decreasing. With ``eigenvalue_floor="pinv"``, only the directions kept
        (per-class models of lower rank are padded with zeros).
    whitening_ : ndarray of shape (n_features, n_components) or \
            (n_classes, n_features, n_components)
        Matrix ``W`` with ``distance = ||(x - mean) @ W||^2``, in the precision
        the distances are computed in (that of the training data, or float64
        where float32 would not be accurate).
    calibration_scores_ : ndarray of shape (n_samples,)
        Leave-one-out (or out-of-fold) scores of the training rows.
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
    centring and decomposed in float64 once at fit (with one BLAS thread for
    the eigen-decomposition, which is much faster when other processes share
    the cores); scoring is one matrix product per chunk of rows with the
    whitening matrix, so memory stays within scikit-learn's ``working_memory``
    (see :func:`sklearn.config_context`). Float32 products are used when the
    eigenvalues used span a ratio of at most 1e6 (relative error about 1e-4
    of a distance); otherwise float64. Features of any finite magnitude (1e30
    in float32, 1e150 in float64) are decomposed in a power-of-two unit and
    give finite scores; rows whose squared distance would overflow float64
    raise a ValueError.

    The training scores that set ``offset_`` are leave-one-out, in closed
    form (a Sherman-Morrison update, no refit): exact for the empirical
    covariance in every mode; for a shrunk covariance (``"ledoit_wolf"``,
    ``"oas"``, a float) with the shrinkage coefficient held at its full-data
    value (exact for a float; the estimated coefficients move by O(1/n) when
    one row is removed), in the eigenbasis of the full-data covariance; when
    the eigenvalue floor or the pseudo-inverse is active, with the floor held
    fixed. With a partial component range, or samples alone in some direction
    of an unshrunk covariance (more features than samples), they are
    out-of-fold scores of 5 interleaved folds.

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
    sample of at least 10,000 of them beyond. The same statistics are the
    detector's *mergeable-statistics protocol* (:meth:`block_statistics`,
    the statistics' ``merge``, :meth:`fit_from_statistics`), with
    which :func:`sklearn_ood.parallel.fit_dask` fits on a Dask array.

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
        "eigenvalue_floor": [
            Interval(Real, 0.0, 1.0, closed="left"),
            StrOptions({PINV}),
        ],
        "device": DEVICE_CONSTRAINT,
    }

    #: Most training rows partial_fit keeps to set ``offset_``.
    _max_offset_rows = 20_000

    def __init__(
        self,
        *,
        mode: str = "marginal",
        components: tuple | None = None,
        covariance: str | float = "empirical",
        eigenvalue_floor: float | str = 1e-6,
        contamination: str | float = "auto",
        device="auto",
    ):
        self.mode = mode
        self.components = components
        self.covariance = covariance
        self.eigenvalue_floor = eigenvalue_floor
        self.contamination = contamination
        self.device = device

    # ---------------------------------------------------------------- setup
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
        if self.covariance == "identity":
            raise ValueError(
                "The 'components' parameter of MahalanobisDetector selects principal "
                "components of the covariance and cannot be combined with "
                "covariance='identity' (the Euclidean baseline); use "
                "components=None."
            )
        return int(start), int(stop)

    def _spec(self, n_features) -> GaussianSpec:
        return GaussianSpec(
            per_class=self.mode == "per_class",
            covariance=self.covariance,
            eigenvalue_floor=self.eigenvalue_floor,
            components=self._check_components(n_features),
        )

    def _labelled(self, y) -> bool:
        return self.mode in ("tied", "per_class") and y is not None

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

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, X_outliers):
        del X_outliers  # known outliers are not part of a Gaussian fit
        self.__dict__.pop("_stream", None)
        spec = self._spec(X.shape[1])
        if self._labelled(y):
            classes, y_idx = np.unique(y, return_inverse=True)
        else:
            classes, y_idx = np.array([0]), np.zeros(X.shape[0], dtype=np.intp)
        self._check_counts(np.bincount(y_idx, minlength=len(classes)), classes)
        model, scores = fit_gaussian(X, y_idx, len(classes), spec)
        self._commit(classes, model)
        return scores

    def _commit(self, classes, model: GaussianModel):
        self.classes_ = classes
        self._model = model.for_scoring()
        self._set_model_attributes()

    def _set_model_attributes(self):
        model = self._model
        self.means_ = model.means
        self.covariance_ = model.covariance
        self.explained_variance_ = model.partial_eigenvalues
        self.whitening_ = model.partial_whitening.astype(model.dtype)

    def __getstate__(self):
        state = dict(super().__getstate__())  # may be self.__dict__ itself
        if "_model" in state:
            for key in _MODEL_ATTRIBUTES:
                state.pop(key, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_model" in state:
            self._set_model_attributes()

    # -------------------------------------------------------------- scoring
    def _validate_score_input(self, X):
        device = compute_device(self.device, X)
        if device is None:
            return super()._validate_score_input(X)
        if is_tensor(X):
            return TorchInput(check_tensor(self, X), device)
        return TorchInput(super()._validate_score_input(X), device)

    def _distances(self, X):
        """Distances to each class, and the full ones that choose the class."""
        if isinstance(X, TorchInput):
            return squared_distances_torch(self._model, X.data, X.device)
        return squared_distances(
            self._model, X, dtype=self._model.product_dtype(X.dtype)
        )

    def _score(self, X):
        return distance_scores(*self._distances(X))

    def class_distances(self, X):
        """Squared Mahalanobis distance of each sample to each class.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Samples (see ``device`` for where they are scored).

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes)
            Column ``k`` is the squared distance to class ``classes_[k]`` (one
            column in the marginal and partial modes), summed over
            ``components`` when set.
        """
        check_is_fitted(self)
        return self._distances(self._validate_score_input(X))[0]

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

    def score_samples_torch(self, F):
        """Differentiable score of feature rows: ``score_samples`` in torch.

        The class each row is compared with (the closest one, chosen as
        ``score_samples`` chooses it) is selected without gradient and held
        fixed, as in Lee et al.'s input pre-processing; the score, minus the
        squared distance to that class, is differentiable with respect to
        ``F``. It equals ``score_samples(F)`` to float rounding. Computed on
        ``F``'s device, whatever ``device`` says.

        Parameters
        ----------
        F : torch.Tensor of shape (n_samples, n_features)
            Feature rows (float32 or float64, any device), possibly requiring
            gradient.

        Returns
        -------
        scores : torch.Tensor of shape (n_samples,)
            Float64 scores on ``F``'s device, connected to ``F``'s graph.

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> from sklearn_ood import MahalanobisDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 3))
        >>> det = MahalanobisDetector().fit(X)
        >>> F = torch.zeros(1, 3, requires_grad=True)
        >>> det.score_samples_torch(F).sum().backward()
        >>> F.grad.shape
        torch.Size([1, 3])
        """
        check_is_fitted(self)
        if not is_tensor(F):
            raise TypeError(
                "score_samples_torch expects a torch.Tensor of feature rows; got "
                f"{type(F).__name__}. Use score_samples for arrays."
            )
        check_tensor(self, F)  # shape and feature checks (F itself keeps its graph)
        return score_torch(self._model, F)

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
        spec = self._spec(X.shape[1])
        y_in, outliers = split_outlier_labels(y, X.shape[0])
        X = X[~outliers] if outliers.any() else X
        labelled = self._labelled(y)
        if old is not None and (old.mode, old.statistics.labelled) != (
            self.mode,
            labelled,
        ):
            raise ValueError(
                "partial_fit must see the same 'mode' in every call, and labels y "
                "in every call or in none (with mode='tied' or 'per_class'); got "
                f"mode={self.mode!r} with y {'given' if y is not None else 'None'} "
                f"after mode={old.mode!r} with y "
                f"{'given' if old.statistics.labelled else 'None'}."
            )
        start = 0 if old is None else old.n_seen
        labels = y_in if labelled else None
        statistics = GaussianStatistics.of_rows(X, labels, start)
        if old is None:
            sample = OffsetSample.empty(X.shape[1], X.dtype, statistics.classes)
        else:
            statistics = old.statistics.merge(statistics)
            sample = old.sample
        kept = labels if labelled else np.zeros(X.shape[0], dtype=np.intp)
        sample = sample.add(X, kept, start, self._max_offset_rows)
        model, scores = self._model_and_scores(
            spec,
            statistics,
            lambda calibrator: [
                calibrator.scores(sample.rows, sample.labels, sample.index)
            ],
        )
        self._offset_from_scores(scores)  # validate before committing
        # Everything computed: commit (an error above leaves the detector as it was).
        self._commit(statistics.classes, model)
        self._set_calibration(scores)
        self._stream = _Stream(statistics, sample, self.mode, start + X.shape[0])
        return self

    def _model_and_scores(self, spec, statistics, map_blocks):
        self._check_counts(statistics.class_counts, statistics.classes)
        return fit_from_statistics(statistics, spec, map_blocks)

    # ---------------------------------------- mergeable-statistics protocol
    def block_statistics(self, X, y=None, *, start=0):
        """Mergeable statistics of a block of training rows.

        Part of the mergeable-statistics protocol that
        :func:`sklearn_ood.parallel.fit_dask` uses: the statistics of disjoint
        blocks merge exactly (``a.merge(b)``), and :meth:`fit_from_statistics`
        fits the detector from their merge. Nothing is stored on the detector.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A block of training rows.
        y : array-like of shape (n_samples,), default=None
            Their labels, as for ``fit`` (``-1``: known outliers, left out).
        start : int, default=0
            Index of the block's first in-distribution row among all the
            in-distribution training rows (it sets the calibration folds).

        Returns
        -------
        statistics : GaussianStatistics
            Per-(fold, class) moments of the block's in-distribution rows, with
            a ``merge(other)`` method.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import MahalanobisDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 2))
        >>> det = MahalanobisDetector()
        >>> stats = det.block_statistics(X[:60]).merge(
        ...     det.block_statistics(X[60:], start=60))
        >>> stats.n_rows
        100
        """
        self._validate_params()
        X, labels = inlier_rows(X, y, self._labelled(y))
        return GaussianStatistics.of_rows(X, labels, start)

    def fit_from_statistics(self, statistics, X_head, map_blocks):
        """Fit the detector from merged statistics of its training rows.

        Part of the mergeable-statistics protocol (see
        :meth:`block_statistics`). The model is built from ``statistics``;
        the calibration scores that set ``offset_`` need the rows again, block
        by block, which ``map_blocks`` provides: ``map_blocks(fn)`` must return
        the list ``[fn(X_block, y_block, start) for each block]``, in the order
        of the rows, for the blocks whose statistics were merged (``fn`` is
        picklable, so the blocks can be scored where they live). The result
        equals ``fit`` on all the rows, to rounding.

        Parameters
        ----------
        statistics : GaussianStatistics
            Merged statistics of every block (from :meth:`block_statistics`).
        X_head : array-like of shape (n_head, n_features)
            A few training rows (e.g. the first one), for the feature count,
            the feature names and parameter checks.
        map_blocks : callable
            Applies a function to every block, as described above.

        Returns
        -------
        self : MahalanobisDetector
            The fitted detector.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import MahalanobisDetector
        >>> X = np.random.RandomState(0).normal(size=(100, 2))
        >>> blocks = [(X[:60], None, 0), (X[60:], None, 60)]
        >>> det = MahalanobisDetector()
        >>> stats = det.block_statistics(*blocks[0][:2]).merge(
        ...     det.block_statistics(blocks[1][0], start=60))
        >>> det = det.fit_from_statistics(
        ...     stats, X[:1], lambda fn: [fn(*block) for block in blocks])
        >>> ref = MahalanobisDetector().fit(X)
        >>> bool(np.isclose(det.offset_, ref.offset_))
        True
        """
        self._validate_params()
        X_head = self._validate_fit_input(X_head)
        spec = self._spec(X_head.shape[1])
        if statistics.moments.n_features != X_head.shape[1]:
            raise ValueError(
                f"The statistics describe {statistics.moments.n_features} features "
                f"but X_head has {X_head.shape[1]}."
            )
        if statistics.labelled and self.mode not in ("tied", "per_class"):
            raise ValueError(
                f"The statistics hold class labels but mode={self.mode!r} ignores "
                "them; compute them with this detector's block_statistics."
            )
        model, scores = self._model_and_scores(spec, statistics, map_blocks)
        self._offset_from_scores(scores)
        self.__dict__.pop("_stream", None)
        self._commit(statistics.classes, model)
        self._set_calibration(scores)
        return self
