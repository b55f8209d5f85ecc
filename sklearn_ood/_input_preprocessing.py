"""Gradient input pre-processing (Lee et al. 2018).

:class:`InputPreprocessingDetector` moves each input a small step ``epsilon``
against the gradient of its distance to the training features (the closest
class of a Mahalanobis model, or the nearest training features), then scores
the moved input: in-distribution inputs gain more from the step than OOD ones
(Lee et al. 2018, Sec. 2; Kamoi & Kobayashi 2020, Eq. 10). The FGSM images
that stand in for OOD samples in Lee et al.'s "validation on adversarial
samples" come from :func:`sklearn_ood.adversarial.fgsm`.

It is a composite that uses only public protocols of the modules it combines:

- the feature extractor's :meth:`~sklearn_ood.TorchFeatureExtractor.
  network_input` and :meth:`~sklearn_ood.TorchFeatureExtractor.
  forward_features` (the differentiable halves of ``transform``), its
  ``preprocessing_["std"]``, ``layers_`` and ``feature_groups_``;
- a feature detector's ``score_samples_torch`` (differentiable score): any
  detector that has one can be differentiated;
- a composite of per-layer detectors (:class:`~sklearn_ood.
  LayerEnsembleDetector`): ``fit(X, y, layer_scorer=...)``, ``combine``,
  ``detectors_`` and ``layer_columns_``.
"""

from __future__ import annotations

import os
from numbers import Real
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.base import clone
from sklearn.utils import check_array, get_tags
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._mahalanobis import MahalanobisDetector
from ._meta import fit_for_scores, score_columns
from .base import BaseDetector
from .nn._gradients import channel_view, sign_prime
from .utils._folds import inlier_folds

__all__ = ["InputPreprocessingDetector"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _rows(X, index):
    """Rows ``index`` (integer array) of an array, a tensor or a list."""
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(np.asarray(index), dtype=torch.long)]
    if isinstance(X, (list, tuple)):
        return [X[i] for i in index]
    return X[index]


def _n_rows(X) -> int:
    return len(X) if isinstance(X, (list, tuple)) else int(X.shape[0])


def _scores_of(detectors, cols, F) -> np.ndarray:
    """Per-layer scores: column ``l`` is ``detectors[l]`` on ``F[:, cols[l]]``."""
    return score_columns(detectors, [F[:, c] for c in cols])


def _check_differentiable(detectors, where: str) -> None:
    for det in detectors:
        if not callable(getattr(det, "score_samples_torch", None)):
            raise TypeError(
                f"The {where} of InputPreprocessingDetector must have a "
                "differentiable score, score_samples_torch (as MahalanobisDetector "
                "and KNNDetector), or be a composite of such detectors "
                f"(LayerEnsembleDetector). Got {type(det).__name__} instead."
            )


def _check_float32_range(X) -> None:
    """The network computes in float32: refuse values it cannot represent."""
    if isinstance(X, torch.Tensor):
        if X.dtype != torch.float64:
            return
        values = X.detach()
        finite = bool(torch.isfinite(values).all())
        peak = float(values.abs().max()) if finite and values.numel() else 0.0
    elif isinstance(X, np.ndarray) and X.dtype.kind == "f" and X.itemsize > 4:
        finite = bool(np.isfinite(X).all())
        peak = float(max(np.max(X), -np.min(X))) if finite and X.size else 0.0
    else:
        return
    if peak > _FLOAT32_MAX:
        raise ValueError(
            f"X holds values up to {peak:.3g} in absolute value, beyond the float32 "
            f"range ({_FLOAT32_MAX:.3g}) in which the network computes. Rescale the "
            "input (e.g. with sklearn.preprocessing.StandardScaler)."
        )


class InputPreprocessingDetector(BaseDetector):
    """Detector on network features with Lee et al.'s input pre-processing.

    Each input ``x`` (as the network sees it, after the extractor's resizing
    and normalisation: :meth:`TorchFeatureExtractor.network_input
    <sklearn_ood.TorchFeatureExtractor.network_input>`) is moved to ``x_hat =
    x - epsilon * sign'(g) / std``, with ``g`` the gradient with respect to
    ``x`` of the detector's distance, ``-score_samples_torch`` of the
    features (the closest class or the neighbours held fixed), ``sign'``
    mapping ``g >= 0`` to ``+1`` and ``std`` the extractor's per-channel
    normalisation std (``preprocessing_["std"]``); ``x_hat`` is then
    featurised and scored. With a :class:`LayerEnsembleDetector` this is
    done separately for each of its per-layer detectors, with that
    detector's own distance, and the per-layer scores are combined (Lee et
    al. 2018, Sec. 2 and 3). ``epsilon`` is a parameter, to be tuned with
    :class:`~sklearn.model_selection.GridSearchCV` on validation data with
    known OOD samples (``y == -1``).

    Parameters
    ----------
    extractor : TorchFeatureExtractor
        Unfitted feature extractor (cloned and fitted in ``fit``); its
        network is differentiated through ``forward_features``, never
        modified.
    detector : estimator, default=None
        Detector of the features: any detector with a differentiable score
        ``score_samples_torch`` (:class:`MahalanobisDetector`,
        :class:`KNNDetector`), or a :class:`LayerEnsembleDetector` of such
        detectors; None means ``MahalanobisDetector(mode="tied")``. A
        LayerEnsembleDetector's ``feature_groups="auto"`` means the
        extractor's ``feature_groups_``.
    epsilon : float, default=0.0
        Noise magnitude, in pixel units of the ``[0, 1]`` scale (Lee et al.
        tried 0, 0.0005, 0.001, 0.0014, 0.002, 0.005 and 0.01). ``0`` scores
        the plain features.
    cv : int, cross-validation generator or iterable, default=5
        Folds for the out-of-fold, pre-processed training scores that set
        ``offset_`` with a single detector (as :class:`LayerEnsembleDetector`'s
        ``cv``); a LayerEnsembleDetector uses its own ``cv`` and
        ``random_state``.
    random_state : int, RandomState instance or None, default=None
        Shuffling of the folds of an int ``cv``; also used by a
        LayerEnsembleDetector whose own ``random_state`` is None.
    contamination : "auto" or float, default="auto"
        Share of the out-of-fold, pre-processed training scores below
        ``offset_``. ``"auto"`` is 0.025.

    Attributes
    ----------
    extractor_ : TorchFeatureExtractor
        The fitted extractor.
    detector_ : estimator
        The detector fitted on the features of the in-distribution rows
        (a LayerEnsembleDetector's combiner is trained on pre-processed
        per-layer scores).
    calibration_scores_ : ndarray of shape (n_inliers,)
        The out-of-fold scores of the pre-processed in-distribution training
        rows (a LayerEnsembleDetector's combined ones).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of input features, for 2-D (vector) input only.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the input features, for 2-D input with string column names
        (a DataFrame); scoring checks them as scikit-learn does.

    See Also
    --------
    LayerEnsembleDetector : Per-layer detectors and their combination.
    sklearn_ood.adversarial.fgsm : Adversarial samples to stand in for OOD samples.

    Notes
    -----
    As in Lee et al.'s code, the step is taken in the network's (normalised)
    input space and is not clamped to the valid pixel range; the gradient of
    the *sum* over a batch is used (each sample's gradient is its own, so
    results do not depend on the batch size). Lee et al.'s loss for the
    Mahalanobis score is half the squared distance, ``-0.5 *
    score_samples_torch``; the step uses ``-score_samples_torch`` for every
    detector, whose gradient has the same sign. The extractor's network is
    in evaluation mode with frozen parameters, so the gradient is taken with
    respect to the input only. With ``epsilon=0`` the scores equal those of
    the detector on ``extractor_.transform(X)``. The out-of-fold training
    scores (for ``offset_`` and a LayerEnsembleDetector's combiner) are
    pre-processed with the fold's detectors. Input is given as to the
    extractor (images ``(N, H, W)``, ``(N, H, W, C)``, ``(N, C, H, W)``,
    uint8 or float, a list of image files, or vectors ``(N, D)`` for
    networks without convolutions) and validated by it, whatever
    ``epsilon``.

    References
    ----------
    .. [1] K. Lee, K. Lee, H. Lee, J. Shin. "A Simple Unified Framework for
       Detecting Out-of-Distribution Samples and Adversarial Attacks".
       NeurIPS 2018.
    .. [2] T. Kamoi, K. Kobayashi. "Why is the Mahalanobis Distance Effective
       for Anomaly Detection?". arXiv:2003.00402, 2020.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_ood import (
    ...     InputPreprocessingDetector, MahalanobisDetector, TorchFeatureExtractor)
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3)).astype(np.float32)
    >>> ext = TorchFeatureExtractor(torch.nn.Identity(), device="cpu")
    >>> det = InputPreprocessingDetector(ext, MahalanobisDetector(), epsilon=0.1)
    >>> det = det.fit(X)
    >>> det.perturb(X[:2]).shape  # (groups, samples, network input)
    (1, 2, 3)
    >>> x_far = np.full((1, 3), 4.0, dtype=np.float32)
    >>> bool(det.score_samples(x_far)[0] > det.detector_.score_samples(x_far)[0])
    True
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "extractor": [HasMethods(["fit", "transform"])],
        "detector": [HasMethods(["fit", "score_samples"]), None],
        "epsilon": [Interval(Real, 0, None, closed="left")],
        "cv": ["cv_object"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        extractor: Any,
        detector: Any = None,
        *,
        epsilon: float = 0.0,
        cv: int | Any = 5,
        random_state: int | np.random.RandomState | None = None,
        contamination: str | float = "auto",
    ):
        self.extractor = extractor
        self.detector = detector
        self.epsilon = epsilon
        self.cv = cv
        self.random_state = random_state
        self.contamination = contamination

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = get_tags(self.extractor).input_tags
        return tags

    # ------------------------------------------------------------ input
    def _checked_input(self, X, *, reset: bool):
        """Raw input for the extractor, with the checks that belong here.

        Sparse data and single paths are refused; 2-D input gets
        scikit-learn's ``n_features_in_`` / ``feature_names_in_`` checks (a
        DataFrame then becomes an array: the names are this estimator's);
        float64 values beyond float32's range are refused. Everything else
        (layout, channels, dtype, range, finiteness) is the extractor's.
        """
        if sparse.issparse(X):
            raise TypeError(
                "Sparse data was passed for X, but dense data is required. Use "
                "'.toarray()' to convert to a dense numpy array."
            )
        if isinstance(X, (str, os.PathLike)):
            raise TypeError(
                "InputPreprocessingDetector takes a batch of images, a list of image "
                f"files or vectors; got a single path {str(X)!r}. Pass a list of "
                "files (sklearn_ood.images.load_images reads a folder)."
            )
        if not hasattr(X, "shape") and not isinstance(X, (list, tuple)):
            X = np.asarray(X)
        if hasattr(X, "shape") and len(X.shape) == 2:
            validate_data(self, X, reset=reset, skip_check_array=True)
            if hasattr(X, "columns") and not isinstance(X, np.ndarray):
                X = check_array(
                    X, dtype=None, ensure_all_finite=False, ensure_min_samples=0
                )
        elif reset:
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)
        _check_float32_range(X)
        return X

    def _validate_fit_input(self, X, reset=True):
        return self._checked_input(X, reset=True)

    def _validate_score_input(self, X):
        return self._checked_input(X, reset=False)

    # -------------------------------------------------------------- fit
    def _fit(self, X_in, y_in, X_out):
        ext = clone(self.extractor).fit(X_in)
        missing = [
            m
            for m in ("network_input", "forward_features")
            if not callable(getattr(ext, m, None))
        ]
        if missing:
            raise TypeError(
                "The 'extractor' of InputPreprocessingDetector must have the "
                "differentiable halves of transform, network_input and "
                f"forward_features (a TorchFeatureExtractor); {type(ext).__name__} "
                f"has no {' or '.join(missing)}."
            )
        self.extractor_ = ext
        det = clone(self.detector) if self.detector is not None else None
        det = MahalanobisDetector(mode="tied") if det is None else det
        F_in = ext.transform(X_in)
        self._composite = callable(getattr(det, "combine", None))
        if self._composite:
            return self._fit_composite(det, X_in, y_in, X_out, F_in)
        _check_differentiable([det], "'detector'")
        n_in = F_in.shape[0]
        oof = np.empty(n_in, dtype=np.float64)
        for train, test in inlier_folds(self.cv, self.random_state, n_in, y_in):
            fold = fit_for_scores(
                clone(det), F_in[train], None if y_in is None else y_in[train]
            )
            S = self._layer_scores([fold], [slice(None)], _rows(X_in, test), F_in[test])
            oof[test] = S[:, 0]
        self.detector_ = fit_for_scores(det, F_in, y_in)
        return oof

    def _fit_composite(self, det, X_in, y_in, X_out, F_in):
        """Fit a LayerEnsembleDetector-like composite through its layer_scorer."""
        ext = self.extractor_
        params = det.get_params(deep=False)
        if isinstance(params.get("feature_groups"), str):  # "auto"
            det.set_params(feature_groups=dict(ext.feature_groups_))
        if "random_state" in params and params["random_state"] is None:
            det.set_params(random_state=self.random_state)
        n_in = F_in.shape[0]
        F, y = F_in, y_in
        if X_out is not None:
            F = np.vstack([F_in, ext.transform(X_out)])
            y = np.empty(F.shape[0], dtype=object if y_in is not None else int)
            y[:n_in] = 0 if y_in is None else y_in
            y[n_in:] = -1

        def layer_scorer(detectors, layer_columns, rows):
            _check_differentiable(detectors, "per-layer detectors of the 'detector'")
            cols = list(layer_columns.values())
            S = np.empty((rows.size, len(detectors)), dtype=np.float64)
            inl = rows < n_in
            for mask, data, shift in ((inl, X_in, 0), (~inl, X_out, n_in)):
                if mask.any():
                    idx = rows[mask]
                    S[mask] = self._layer_scores(
                        detectors, cols, _rows(data, idx - shift), F[idx]
                    )
            return S

        det.fit(F, y, layer_scorer=layer_scorer)
        self.detector_ = det
        return det.calibration_scores_

    # ---------------------------------------------------------- scoring
    def _network_batches(self, X):
        """Yield ``(start, stop, x)``: the network input of batches of ``X``."""
        ext = self.extractor_
        n = _n_rows(X)
        if n == 0:
            ext.network_input(X)  # the extractor's error for empty input
            return
        step = int(getattr(ext, "batch_size", 64))
        for start in range(0, n, step):
            stop = min(start + step, n)
            yield start, stop, ext.network_input(X[start:stop])

    def _step_std(self, x: torch.Tensor) -> torch.Tensor:
        std = self.extractor_.preprocessing_.get("std")
        if x.ndim != 4 or std is None:
            return torch.ones((), dtype=x.dtype, device=x.device)
        return channel_view(std, 4, x)

    def _needed_layers(self, cols) -> list[str] | None:
        """The extractor's layers whose columns ``cols`` reads (None: all)."""
        ext = self.extractor_
        if ext.layers_ is None:
            return None
        columns = np.arange(ext.n_features_out_)[cols]
        names = []
        for name in ext.layers_:
            group = ext.feature_groups_[name]
            if np.any((columns >= group.start) & (columns < group.stop)):
                names.append(name)
        return names

    def _moved(self, x0: torch.Tensor, detectors, cols) -> list[torch.Tensor]:
        """``x_hat`` of each per-layer detector for network input ``x0``."""
        eps = float(self.epsilon)
        if eps == 0.0:
            return [x0] * len(cols)
        ext = self.extractor_
        needed = self._needed_layers(np.r_[tuple(_as_index(c, ext) for c in cols)])
        x = x0.detach().clone().requires_grad_(True)
        steps = []
        with torch.enable_grad():
            F = ext.forward_features(x, layers=needed)
            for k, (det, c) in enumerate(zip(detectors, cols)):
                f = F[:, torch.as_tensor(_as_index(c, ext), device=F.device)]
                loss = -det.score_samples_torch(f).sum()
                (grad,) = torch.autograd.grad(loss, x, retain_graph=k < len(cols) - 1)
                steps.append(sign_prime(grad))
        std = self._step_std(x0)
        return [(x0 - eps * s / std).detach() for s in steps]

    def _layer_scores(self, detectors, cols, X, F_plain=None) -> np.ndarray:
        """Per-layer scores ``(n, len(detectors))`` of inputs ``X`` after the step."""
        if float(self.epsilon) == 0.0:
            F = self.extractor_.transform(X) if F_plain is None else F_plain
            return _scores_of(detectors, cols, F)
        ext = self.extractor_
        n = _n_rows(X)
        index = [torch.as_tensor(_as_index(c, ext)) for c in cols]
        needed = [self._needed_layers(i.numpy()) for i in index]
        feats = [np.empty((n, i.numel()), dtype=np.float32) for i in index]
        for start, stop, x0 in self._network_batches(X):
            moved = self._moved(x0, detectors, cols)
            with torch.no_grad():
                for k, x_hat in enumerate(moved):
                    f = ext.forward_features(x_hat, layers=needed[k])
                    feats[k][start:stop] = f[:, index[k].to(f.device)].cpu().numpy()
        return score_columns(detectors, feats)

    def _parts(self):
        """The per-layer detectors and the columns each reads."""
        det = self.detector_
        if self._composite:
            return list(det.detectors_), list(det.layer_columns_.values())
        return [det], [slice(None)]

    def _score(self, X):
        S = self._layer_scores(*self._parts(), X)
        return self.detector_.combine(S) if self._composite else S[:, 0]

    def layer_scores(self, X) -> np.ndarray:
        """Per-layer scores of the pre-processed inputs, before combination.

        Parameters
        ----------
        X : array-like, torch.Tensor or list of image files
            Images (or vectors), as given to ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_layer_columns)
            Column ``l``: per-layer detector ``l`` on the features of the
            input moved by its own step (one column for a single detector).
            A LayerEnsembleDetector's ``combine`` turns them into
            ``score_samples``.
        """
        check_is_fitted(self)
        return self._layer_scores(*self._parts(), self._validate_score_input(X))

    def perturb(self, X) -> np.ndarray:
        """The pre-processed network inputs ``x_hat``, one set per layer detector.

        Parameters
        ----------
        X : array-like, torch.Tensor or list of image files
            Images (or vectors), as given to ``fit``.

        Returns
        -------
        X_hat : ndarray of shape (n_layer_columns, n_samples, ...), dtype float32
            ``X_hat[l]`` holds the inputs as the network sees them (resized
            and normalised) after the step of per-layer detector ``l`` (one
            for a single detector).
        """
        check_is_fitted(self)
        X = self._validate_score_input(X)
        detectors, cols = self._parts()
        parts = [
            torch.stack(self._moved(x0, detectors, cols)).cpu().numpy()
            for _, _, x0 in self._network_batches(X)
        ]
        return np.concatenate(parts, axis=1)


def _as_index(cols, ext) -> np.ndarray:
    """Integer column indices of a slice or an index array of the features."""
    return np.arange(ext.n_features_out_)[cols]
