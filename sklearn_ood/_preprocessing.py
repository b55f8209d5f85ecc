"""Gradient input pre-processing (Lee et al. 2018).

:class:`InputPreprocessingDetector` moves each input a small step ``epsilon``
against the gradient of its distance to the training features (the closest
class of a Mahalanobis model, or the nearest training features), then scores
the moved input: in-distribution inputs gain more from the step than OOD ones
(Lee et al. 2018, Sec. 2; Kamoi & Kobayashi 2020, Eq. 10). The FGSM images
that stand in for OOD samples in Lee et al.'s "validation on adversarial
samples" come from :func:`sklearn_ood.adversarial.fgsm`.
"""

from __future__ import annotations

import contextlib
import copy
from numbers import Real
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.base import _fit_context, clone
from sklearn.utils import check_array, get_tags
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._ensemble import LayerEnsembleDetector, _inlier_folds
from ._mahalanobis import MahalanobisDetector
from ._neighbors import KNNDetector
from .base import BaseDetector
from .images import check_images
from .nn._device import resolve_device
from .utils._labels import split_outlier_labels

__all__ = ["InputPreprocessingDetector"]


class _StopForward(Exception):
    """Raised by the last hook needed, to skip the rest of the forward pass."""


def _sign_prime(grad: torch.Tensor) -> torch.Tensor:
    """Lee et al.'s sign: +1 where ``grad >= 0`` (zero included), -1 elsewhere."""
    return torch.where(grad >= 0, 1.0, -1.0).to(grad.dtype)


def _channel_view(values, ndim: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1)
    return t.view(1, -1, *([1] * (ndim - 2)))


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Put ``model`` in evaluation mode, restoring each module's flag after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.train(flag)


# --------------------------------------------------- differentiable scores
def _mahalanobis_loss(det: MahalanobisDetector):
    """Half the squared distance to the closest class, the class held fixed."""
    return lambda f: -0.5 * det.score_samples_torch(f)


def _knn_loss(det: KNNDetector):
    """The detector's aggregated distance to neighbours held fixed."""
    return lambda f: -det.score_samples_torch(f)


def _torch_loss(det):
    if isinstance(det, MahalanobisDetector):
        return _mahalanobis_loss(det)
    if isinstance(det, KNNDetector):
        return _knn_loss(det)
    raise TypeError(  # pragma: no cover - checked at fit
        f"Cannot differentiate the score of {type(det).__name__}."
    )


def _check_differentiable(det, where: str) -> None:
    if not isinstance(det, (MahalanobisDetector, KNNDetector)):
        raise TypeError(
            f"The '{where}' of InputPreprocessingDetector must be a "
            "MahalanobisDetector, a KNNDetector or a LayerEnsembleDetector of one of "
            f"them (a score the pre-processing can differentiate). Got "
            f"{type(det).__name__} instead."
        )


# ------------------------------------------------- network of an extractor
def _pool(out: torch.Tensor, pooling: str) -> torch.Tensor:
    if out.ndim == 4:
        out = out.float()
        if pooling == "avg":
            return out.mean(dim=(2, 3))
        if pooling == "max":
            return out.amax(dim=(2, 3))
        return torch.cat([out.mean(dim=(2, 3)), out.amax(dim=(2, 3))], dim=1)
    return out.reshape(out.shape[0], -1).float()


def _forward(ext, module, x, needed=None) -> torch.Tensor:
    """Features ``(n, n_features_out_)`` of network inputs ``x``, with gradients.

    The same features as ``ext.transform`` (hooks on ``ext.layers_``, global
    pooling, concatenation), from already pre-processed inputs. Layers not
    in ``needed`` are left as zeros and the pass stops after the last needed.
    """
    if ext.layers_ is None:
        if callable(getattr(module, "forward_features", None)) and callable(
            getattr(module, "forward_head", None)
        ):
            out = module.forward_head(module.forward_features(x), pre_logits=True)
        else:
            out = module(x)
        return out.reshape(out.shape[0], -1).float()
    layers = ext.layers_
    needed = set(layers) if needed is None else set(needed)
    named = dict(module.named_modules())
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(mod, args, output):
            captured[name] = _pool(output, ext.pooling)
            if len(captured) == len(needed):
                raise _StopForward

        return hook

    handles = [named[n].register_forward_hook(make_hook(n)) for n in needed]
    try:
        module(x)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    parts = []
    for name in layers:
        sl = ext.feature_groups_[name]
        if name in captured:
            parts.append(captured[name])
        else:
            parts.append(x.new_zeros((x.shape[0], sl.stop - sl.start)))
    return torch.cat(parts, dim=1)


def _network_inputs(ext, X, device):
    """Yield ``(start, stop, x)``: pre-processed network inputs of ``X``."""
    step = ext.batch_size
    if len(X.shape) == 2:
        is_uint8 = getattr(X, "dtype", None) == np.uint8
        data = check_array(
            X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X,
            dtype=np.float32,
        )
        expected = getattr(ext, "n_features_in_", data.shape[1])
        if data.shape[1] != expected:
            raise ValueError(
                f"X has {data.shape[1]} features, but InputPreprocessingDetector is "
                f"expecting {expected} features as input."
            )
        scale = ext._scale(is_uint8)
        for start in range(0, data.shape[0], step):
            xb = torch.from_numpy(np.array(data[start : start + step])).to(device)
            yield start, start + xb.shape[0], xb / scale if scale != 1.0 else xb
        return
    for start in range(0, X.shape[0], step):
        xb, info = check_images(X[start : start + step], channels=ext.input_channels_)
        scale = ext._scale(info.was_uint8)
        xb = xb.to(device)
        if scale != 1.0:
            xb = xb / scale
        # The extractor's own resize, center crop and normalisation (torch ops,
        # differentiable), so the gradient path cannot drift from transform().
        yield start, start + xb.shape[0], ext._preprocess(xb)


def _input_std(ext, x: torch.Tensor) -> torch.Tensor:
    prep = ext.preprocessing_
    if x.ndim != 4 or prep.get("std") is None:
        return torch.ones((), dtype=x.dtype, device=x.device)
    return _channel_view(prep["std"], 4, x)


def _take(X, rows):
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(np.asarray(rows))]
    return X[rows]


# ------------------------------------------------------------ the detector
class InputPreprocessingDetector(BaseDetector):
    """Detector on network features with Lee et al.'s input pre-processing.

    Each input ``x`` (as the network sees it, after the extractor's resizing
    and normalisation) is moved to ``x_hat = x - epsilon * sign'(g) / std``,
    with ``g`` the gradient with respect to ``x`` of the detector's distance
    (the closest class held fixed), ``sign'`` mapping ``g >= 0`` to ``+1``
    and ``std`` the extractor's per-channel normalisation std; ``x_hat`` is
    then featurised and scored. With a :class:`LayerEnsembleDetector` this is
    done separately for each group (layer), with that group's detector, and
    the per-group scores are combined (Lee et al. 2018, Sec. 2 and 3).
    ``epsilon`` is a parameter, to be tuned with
    :class:`~sklearn.model_selection.GridSearchCV` on validation data with
    known OOD samples (``y == -1``).

    Parameters
    ----------
    extractor : TorchFeatureExtractor
        Unfitted feature extractor (cloned and fitted in ``fit``); its
        ``module_`` is differentiated, never modified.
    detector : MahalanobisDetector, KNNDetector or LayerEnsembleDetector, \
default=None
        Detector of the features; None means ``MahalanobisDetector(
        mode="tied")``. A LayerEnsembleDetector must wrap a MahalanobisDetector
        or a KNNDetector; its ``feature_groups="auto"`` means the extractor's
        ``feature_groups_``.
    epsilon : float, default=0.0
        Noise magnitude, in pixel units of the ``[0, 1]`` scale (Lee et al.
        tried 0, 0.0005, 0.001, 0.0014, 0.002, 0.005 and 0.01). ``0`` scores
        the plain features.
    cv : int, cross-validation generator or iterable, default=5
        Folds for the out-of-fold training scores that set ``offset_`` with a
        single detector (as :class:`LayerEnsembleDetector`'s ``cv``); a
        LayerEnsembleDetector uses its own ``cv`` and ``random_state``.
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
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of input features, for 2-D (vector) input only.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the input features, for 2-D input with string column names.

    See Also
    --------
    LayerEnsembleDetector : Per-layer detectors and their combination.
    sklearn_ood.adversarial.fgsm : Adversarial samples to stand in for OOD samples.

    Notes
    -----
    As in Lee et al.'s code, the step is taken in the network's (normalised)
    input space and is not clamped to the valid pixel range; the gradient of
    the *sum* over a batch is used (each sample's gradient is its own, so
    results do not depend on the batch size). The model runs in evaluation
    mode, ``torch.no_grad`` is lifted only for the gradient, and the
    gradient is taken with respect to the input only (no parameter ``.grad``
    is touched). With ``epsilon=0`` the scores equal those of the detector on
    ``extractor_.transform(X)``. The out-of-fold training scores (for
    ``offset_`` and a LayerEnsembleDetector's combiner) are pre-processed
    with the fold's detectors. Images are given as to the extractor
    (``(N, H, W)``, ``(N, H, W, C)``, ``(N, C, H, W)``, uint8 or float);
    vectors ``(N, D)`` for networks without convolutions.

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
    >>> from sklearn_ood import MahalanobisDetector, TorchFeatureExtractor
    >>> from sklearn_ood._preprocessing import InputPreprocessingDetector
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
    @staticmethod
    def _as_input(X):
        if sparse.issparse(X):
            raise TypeError(
                "Sparse data was passed for X, but dense data is required. Use "
                "'.toarray()' to convert to a dense numpy array."
            )
        if not isinstance(X, torch.Tensor) and not isinstance(X, np.ndarray):
            X = np.asarray(X)
        if X.ndim < 2:
            raise ValueError(
                f"Expected 2D array (vectors) or a batch of images, got {X.ndim}D "
                "array instead. Reshape your data either using array.reshape(-1, 1) "
                "if your data has a single feature or array.reshape(1, -1) if it "
                "contains a single sample."
            )
        return X

    @property
    def n_features_in_(self) -> int:
        """Number of input features (2-D vector input only), from the extractor."""
        return self.extractor_.n_features_in_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Names of the input features (2-D input with string column names)."""
        return self.extractor_.feature_names_in_

    # -------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the extractor and the detector; set ``offset_``.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images (or vectors) of in-distribution samples, plus known OOD
            samples where ``y == -1`` (used only by a LayerEnsembleDetector's
            combiner).
        y : array-like of shape (n_samples,), default=None
            Class labels; ``-1`` marks a known OOD sample.

        Returns
        -------
        self : InputPreprocessingDetector
            The fitted detector.
        """
        X = self._as_input(X)
        y_in, out_mask = split_outlier_labels(y, X.shape[0])
        X_in = _take(X, np.flatnonzero(~out_mask))
        X_out = _take(X, np.flatnonzero(out_mask)) if out_mask.any() else None
        n_in = X_in.shape[0]
        if n_in < 2:
            raise ValueError(
                "InputPreprocessingDetector needs at least 2 in-distribution "
                f"samples, got {n_in} sample{'s' if n_in != 1 else ''}."
            )
        scores = self._fit(X_in, y_in, X_out)
        self._set_calibration(scores)
        return self

    def _fit(self, X_in, y_in, X_out):
        ext = clone(self.extractor).fit(X_in)
        for attr in ("module_", "preprocessing_", "feature_groups_", "layers_"):
            if not hasattr(ext, attr):
                raise TypeError(
                    "The 'extractor' of InputPreprocessingDetector must be a "
                    f"TorchFeatureExtractor; the fitted {type(ext).__name__} has no "
                    f"{attr}."
                )
        self.extractor_ = ext
        F_in = ext.transform(X_in)
        F_out = ext.transform(X_out) if X_out is not None else None
        det = clone(self.detector if self.detector is not None else _default())
        if isinstance(det, LayerEnsembleDetector):
            _check_differentiable(det._base_detector(), "detector's detector")
            if isinstance(det.feature_groups, str):  # "auto"
                det.set_params(feature_groups=dict(ext.feature_groups_))
            if det.random_state is None:
                det.set_params(random_state=self.random_state)
            cols = list(det._resolve_groups(F_in.shape[1]).values())
            data = {"in": (X_in, F_in), "out": (X_out, F_out)}

            def score_fn(detectors, rows, which):
                X_rows, F_rows = data[which]
                return self._group_scores(
                    detectors, cols, _take(X_rows, rows), F_rows[rows]
                )

            det.n_features_in_ = F_in.shape[1]
            oof = det._fit_groups(F_in, y_in, F_out, score_fn=score_fn)
            det._set_calibration(oof)
            self.detector_ = det
            self._cols = cols
            return oof
        _check_differentiable(det, "detector")
        cols = [slice(None)]
        oof = np.empty(F_in.shape[0], dtype=np.float64)
        for train, test in _inlier_folds(
            self.cv, self.random_state, F_in.shape[0], y_in
        ):
            fold = _fit_on(
                clone(det), F_in[train], None if y_in is None else y_in[train]
            )
            oof[test] = self._group_scores([fold], cols, _take(X_in, test), F_in[test])[
                :, 0
            ]
        self.detector_ = _fit_on(det, F_in, y_in)
        self._cols = cols
        return oof

    # ---------------------------------------------------------- scoring
    def _module(self, device):
        module = self.extractor_.module_
        return module if device.type == "cpu" else copy.deepcopy(module).to(device)

    def _perturbed(self, X, detectors, cols):
        """Yield ``(start, stop, [x_hat per group])`` for batches of ``X``."""
        ext = self.extractor_
        device = resolve_device(ext.device)
        module = self._module(device)
        losses = [_torch_loss(d) for d in detectors]
        eps = float(self.epsilon)
        with _eval_mode(module):
            for start, stop, x0 in _network_inputs(ext, X, device):
                if eps == 0.0:
                    yield start, stop, [x0] * len(cols), module
                    continue
                x = x0.clone().requires_grad_(True)
                steps = []
                with torch.enable_grad():
                    feats = _forward(ext, module, x)
                    for k, (loss_fn, c) in enumerate(zip(losses, cols)):
                        loss = loss_fn(feats[:, c]).sum()
                        (grad,) = torch.autograd.grad(
                            loss, x, retain_graph=k < len(cols) - 1
                        )
                        steps.append(_sign_prime(grad))
                std = _input_std(ext, x0)
                yield start, stop, [x0 - eps * s / std for s in steps], module

    def _needed_layers(self, c):
        ext = self.extractor_
        if ext.layers_ is None:
            return None
        columns = np.arange(ext.n_features_out_)[c]
        return [
            name
            for name in ext.layers_
            if np.any(
                (columns >= ext.feature_groups_[name].start)
                & (columns < ext.feature_groups_[name].stop)
            )
        ]

    def _group_scores(self, detectors, cols, X, F_plain=None) -> np.ndarray:
        """Per-group scores ``(n, n_groups)`` of inputs ``X`` after the step."""
        if float(self.epsilon) == 0.0:
            if F_plain is None:
                F_plain = self.extractor_.transform(X)
            return LayerEnsembleDetector._scores_of(detectors, cols, F_plain)
        n = X.shape[0]
        feats = [None] * len(cols)
        needed = [self._needed_layers(c) for c in cols]
        with torch.no_grad():
            for start, stop, xs, module in self._perturbed(X, detectors, cols):
                for k, (x_hat, c) in enumerate(zip(xs, cols)):
                    f = _forward(self.extractor_, module, x_hat, needed[k])[:, c]
                    if feats[k] is None:
                        feats[k] = np.empty((n, f.shape[1]), dtype=np.float32)
                    feats[k][start:stop] = f.cpu().numpy()
        return np.column_stack(
            [
                np.asarray(det.score_samples(f), dtype=np.float64)
                for det, f in zip(detectors, feats)
            ]
        )

    def _detectors(self):
        det = self.detector_
        if isinstance(det, LayerEnsembleDetector):
            return det.detectors_
        return [det]

    def _score(self, X):
        S = self._group_scores(self._detectors(), self._cols, X)
        if isinstance(self.detector_, LayerEnsembleDetector):
            return self.detector_.combine(S)
        return S[:, 0]

    def layer_scores(self, X) -> np.ndarray:
        """Per-group scores of the pre-processed inputs, before combination.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images (or vectors), as given to ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_groups)
            Column ``l``: group ``l``'s detector on the features of the input
            moved by group ``l``'s step (one column for a single detector).
            A LayerEnsembleDetector's combiner turns them into
            ``score_samples``.
        """
        check_is_fitted(self)
        return self._group_scores(self._detectors(), self._cols, self._as_input(X))

    def score_samples(self, X) -> np.ndarray:
        """Score the pre-processed inputs: higher means more normal.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images (or vectors), as given to ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples,), dtype float64
            Normality scores.
        """
        check_is_fitted(self)
        return np.asarray(self._score(self._as_input(X)), dtype=np.float64)

    def perturb(self, X) -> np.ndarray:
        """The pre-processed network inputs ``x_hat``, one set per group.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images (or vectors), as given to ``fit``.

        Returns
        -------
        X_hat : ndarray of shape (n_groups, n_samples, ...), dtype float32
            ``X_hat[l]`` holds the inputs as the network sees them (resized
            and normalised) after the step of group ``l`` (one group for a
            single detector).
        """
        check_is_fitted(self)
        X = self._as_input(X)
        parts = []
        with torch.no_grad():
            for _, _, xs, _ in self._perturbed(X, self._detectors(), self._cols):
                parts.append(torch.stack([x.detach() for x in xs]).cpu().numpy())
        return np.concatenate(parts, axis=1)


def _default():
    return MahalanobisDetector(mode="tied")


def _fit_on(det, F, y):
    return det.fit(F) if y is None else det.fit(F, y)
