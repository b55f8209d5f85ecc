"""Features of images (or vectors) from any torch network: a scikit-learn transformer.

:class:`TorchFeatureExtractor` turns a batch of images into a ``(n_samples,
n_features)`` float32 matrix: the pooled penultimate features of a pretrained backbone,
or the globally pooled outputs of named intermediate layers, ready for any detector.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)
from torch import nn

from .images import center_crop, check_images, resize_images
from .nn._device import resolve_device
from .nn._training import TorchEstimatorMixin, _get_tqdm, build_module

__all__ = ["TorchFeatureExtractor"]

_POOLINGS = ("avg", "max", "avgmax")
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
# timm's default crop_pct, used when a pretrained_cfg gives an input size only.
_DEFAULT_CROP_PCT = 0.875


class _Vectors:
    """Validated 2-D float32 input and whether it was uint8 before validation."""

    def __init__(self, data: np.ndarray, is_uint8: bool) -> None:
        self.data = data
        self.is_uint8 = is_uint8
        self.shape = data.shape

    def __getitem__(self, key) -> _Vectors:
        return _Vectors(self.data[key], self.is_uint8)


class _StopForward(Exception):
    """Raised by the last layer hook to skip the rest of the forward pass."""


def _input_channels(module: nn.Module) -> int | None:
    """Channels the network expects: the first Conv2d, else its ``pretrained_cfg``."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return int(sub.in_channels)
    size = (getattr(module, "pretrained_cfg", None) or {}).get("input_size")
    if isinstance(size, Sequence) and len(size) == 3:
        return int(size[0])
    return None


def _pair_or_none(value) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = (value, value) if isinstance(value, Integral) else value
    if len(pair) == 2 and all(
        isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        return int(pair[0]), int(pair[1])
    raise ValueError(
        "The 'image_size' parameter of TorchFeatureExtractor must be 'auto', None, a "
        f"positive int or a pair of positive ints (height, width). Got {value!r} "
        "instead."
    )


def _channel_stats(value, name: str, channels: int | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"The '{name}' parameter of TorchFeatureExtractor must hold finite "
            f"per-channel values. Got {value!r} instead."
        )
    if channels is not None and arr.size not in (1, channels):
        raise ValueError(
            f"The '{name}' parameter of TorchFeatureExtractor must have 1 or "
            f"{channels} values (one per channel). Got {arr.size}."
        )
    if name == "std" and np.any(arr <= 0):
        raise ValueError(
            f"The 'std' parameter of TorchFeatureExtractor must be positive. Got "
            f"{value!r} instead."
        )
    return tuple(float(v) for v in arr)


def _pool(name: str, out, pooling: str) -> torch.Tensor:
    """Reduce a hooked output to ``(N, d)`` float32."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"Layer {name!r} returned a {type(out).__name__}, not a tensor; choose a "
            "module whose output is a tensor in the 'layers' parameter."
        )
    if out.ndim == 4:
        out = out.float()
        if pooling == "avg":
            return out.mean(dim=(2, 3))
        if pooling == "max":
            return out.amax(dim=(2, 3))
        return torch.cat([out.mean(dim=(2, 3)), out.amax(dim=(2, 3))], dim=1)
    if out.ndim == 2:
        return out.float()
    raise ValueError(
        f"Layer {name!r} returned an output of shape {tuple(out.shape)}; only "
        "(N, C, H, W) feature maps (pooled over H and W) and (N, D) vectors are "
        "supported."
    )


class TorchFeatureExtractor(TorchEstimatorMixin, TransformerMixin, BaseEstimator):
    """Extract features of images with a torch network, in batches.

    ``transform`` pre-processes each batch (pixel scaling, resize and center crop,
    per-channel normalisation), runs the network in evaluation mode under
    :func:`torch.inference_mode` and returns one float32 row per image: the pooled
    penultimate features of a backbone, or the globally pooled outputs of the
    modules named in ``layers``, concatenated.

    Parameters
    ----------
    model : torch.nn.Module, torch.nn.Module subclass or str
        The network. An instance is deep-copied in ``fit`` (the copy is ``module_``;
        the instance passed is never modified), a class (or factory) is called with
        ``model_kwargs``, and a string names a backbone of
        :func:`sklearn_ood.backbones.load_backbone` (e.g. ``"efficientnet_lite0"``),
        which is called with ``model_kwargs`` (e.g. ``{"pretrained": False}``).
    model_kwargs : dict, default=None
        Keyword arguments for a class or for ``load_backbone``.
    layers : str or list of str, default=None
        ``None``: for a model with timm's interface (``forward_features`` and
        ``forward_head``), ``forward_head(forward_features(x), pre_logits=True)``,
        i.e. its own pooled penultimate features; for any other model, its output
        flattened to ``(N, -1)`` (an output that is not a tensor, e.g. a tuple, is an
        error: name the layer to use instead). A list of module names, as in
        ``model.named_modules()``: the outputs of those modules, captured by forward
        hooks, a ``(N, C, H, W)`` map reduced by ``pooling`` and a ``(N, D)`` output
        kept as it is, concatenated in the order given. Each module must run exactly
        once per forward pass, and the pass stops right after the last of them.
    pooling : {"avg", "max", "avgmax"}, default="avg"
        Global pooling of the feature maps of ``layers``: the mean or the maximum
        over all spatial positions, or both concatenated (means first).
    image_size : "auto", int, (int, int) or None, default="auto"
        Size ``(height, width)`` of the network input; an int gives a square. The
        image is scaled (aspect ratio kept) to just cover
        ``floor(height / crop_pct) x floor(width / crop_pct)``, which for a square
        size means its shorter side becomes ``floor(size / crop_pct)``, and the
        central ``height x width`` window is cropped (timm's evaluation transform).
        ``"auto"``: ``model.pretrained_cfg["input_size"]`` when the model has one,
        else None. None: no resizing.
    crop_pct : "auto" or float in (0, 1], default="auto"
        Fraction of the resized image kept by the center crop. ``"auto"``:
        ``pretrained_cfg["crop_pct"]`` (0.875 when the config has none) for a model
        with a ``pretrained_cfg``, else 1. Unused without ``image_size``.
    interpolation : {"auto", "nearest", "bilinear", "bicubic", "area"}, \
default="auto"
        Resampling of the resize (antialiased when shrinking). ``"auto"``:
        ``pretrained_cfg["interpolation"]``, else ``"bilinear"``.
    mean, std : "auto", array-like of shape (n_channels,) or None, default="auto"
        Per-channel normalisation ``(x - mean) / std``, applied after scaling to
        [0, 1] and resizing. ``"auto"``: ``pretrained_cfg["mean"]`` and ``["std"]``
        when present, else None (no normalisation).
    input_range : "auto" or float > 0, default="auto"
        Pixel value that maps to 1: the input is divided by it. ``"auto"``: 255 for
        uint8 input and 1 for any other dtype (float images are taken to be in
        [0, 1] already). Use 255.0 for float images on the 0..255 scale.
    batch_size : int, default=64
        Images per forward pass. Results do not depend on it (up to float rounding).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where the network runs; ``"auto"`` picks CUDA when available. A CUDA device
        on a machine without one falls back to the CPU with a warning. ``module_``
        always stays on the CPU; the copy on the device is cached and not pickled.
    autocast : {"bf16", "fp16"} or None, default=None
        Run the forward pass under :func:`torch.autocast` with that dtype (mixed
        precision); features are returned as float32 either way. Meant for GPUs; it
        also works on the CPU, where it is slower than float32 unless the processor
        has native bfloat16/float16 arithmetic (e.g. AMX).
    channels_last : "auto" or bool, default="auto"
        Run convolutional networks in the channels-last memory format, much faster
        for CPU convolutions. ``"auto"``: True for image input to a network with a
        Conv2d on the CPU, or on a GPU with ``autocast`` set.
    random_state : int, RandomState instance or None, default=None
        Seeds the parameter initialisation when ``model`` is a class; torch's global
        random state is left unchanged. Unused otherwise.
    verbose : int, default=0
        Show a tqdm progress bar over images in ``transform`` (a one-line summary
        when tqdm is not installed).

    Attributes
    ----------
    module_ : torch.nn.Module
        The network, on the CPU, in evaluation mode.
    layers_ : tuple of str or None
        The validated layer names.
    input_channels_ : int or None
        Channels the network expects (``in_channels`` of its first Conv2d, else
        ``pretrained_cfg["input_size"][0]``); one-channel images are replicated to
        it. None when unknown (no check, no replication).
    preprocessing_ : dict
        The resolved ``image_size``, ``crop_pct``, ``interpolation``, ``mean`` and
        ``std``.
    feature_groups_ : dict of str to slice
        Columns of the output that come from each layer (``"output"`` when
        ``layers`` is None), e.g. for a per-layer ensemble.
    n_features_out_ : int
        Number of output features.
    n_features_in_ : int
        Number of input features, set only when fitted on 2-D (vector) input.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the input columns, set only for 2-D input with string column names.

    See Also
    --------
    sklearn_ood.backbones.load_backbone : Built-in pretrained backbones.

    Notes
    -----
    Images ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` (NumPy or torch, any
    real dtype; see :func:`sklearn_ood.images.check_images` for the channel axis) are
    converted batch by batch to float32 ``(N, C, H, W)``, grey replicated to
    ``input_channels_``, divided by ``input_range``, resized and cropped,
    normalised, then passed to the network. Without a ``pretrained_cfg`` the
    defaults only map uint8 to [0, 1]. 2-D input ``(N, D)`` is accepted for
    networks without Conv2d (e.g. an MLP): validated as scikit-learn does
    (``n_features_in_``), divided by ``input_range``, passed as is.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_ood import TorchFeatureExtractor
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    >>> X = np.zeros((5, 8, 8), dtype=np.uint8)
    >>> ext = TorchFeatureExtractor(net, layers=["0", "1"], device="cpu").fit(X)
    >>> ext.transform(X).shape, ext.feature_groups_["1"]
    ((5, 8), slice(4, 8, None))
    """

    _parameter_constraints: dict = {
        "model": [nn.Module, type, str, callable],
        "model_kwargs": [dict, None],
        "layers": [str, list, tuple, None],
        "pooling": [StrOptions(set(_POOLINGS))],
        "image_size": [
            Interval(Integral, 1, None, closed="left"),
            tuple,
            list,
            StrOptions({"auto"}),
            None,
        ],
        "crop_pct": [Interval(Real, 0, 1, closed="right"), StrOptions({"auto"})],
        "interpolation": [StrOptions({"auto", *_INTERPOLATIONS})],
        "mean": ["array-like", StrOptions({"auto"}), None],
        "std": ["array-like", StrOptions({"auto"}), None],
        "input_range": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "autocast": [StrOptions(set(_AUTOCAST)), None],
        "channels_last": ["boolean", StrOptions({"auto"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model: nn.Module | type[nn.Module] | str,
        *,
        model_kwargs: dict | None = None,
        layers: str | Sequence[str] | None = None,
        pooling: str = "avg",
        image_size: str | int | tuple[int, int] | None = "auto",
        crop_pct: str | float = "auto",
        interpolation: str = "auto",
        mean: str | Sequence[float] | None = "auto",
        std: str | Sequence[float] | None = "auto",
        input_range: str | float = "auto",
        batch_size: int = 64,
        device: str | torch.device = "auto",
        autocast: str | None = None,
        channels_last: str | bool = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.model = model
        self.model_kwargs = model_kwargs
        self.layers = layers
        self.pooling = pooling
        self.image_size = image_size
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.mean = mean
        self.std = std
        self.input_range = input_range
        self.batch_size = batch_size
        self.device = device
        self.autocast = autocast
        self.channels_last = channels_last
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (N, H, W) and (N, H, W, C) images
        # 2-D input suits networks without Conv2d; a class cannot be inspected
        # before it is built, so it keeps scikit-learn's default.
        model = self.model
        tags.input_tags.two_d_array = not (
            isinstance(model, str)
            or (
                isinstance(model, nn.Module)
                and any(isinstance(m, nn.Conv2d) for m in model.modules())
            )
        )
        tags.transformer_tags.preserves_dtype = []  # always float32
        return tags

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None) -> TorchFeatureExtractor:
        """Build the network, resolve the pre-processing and record the output width.

        Nothing is trained: ``X`` is checked (layout, channels, finiteness) and its
        first sample is run once through the network.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (N, H, W), (N, H, W, C), \
(N, C, H, W) or (N, D)
            Images (see the class Notes), or vectors for a network without Conv2d.
        y : None
            Ignored.

        Returns
        -------
        self : TorchFeatureExtractor
            The fitted extractor.
        """
        self._clear_torch_cache()
        self.module_ = self._build_module()
        self._timm_api = all(
            callable(getattr(self.module_, f, None))
            for f in ("forward_features", "forward_head")
        )
        self.input_channels_ = _input_channels(self.module_)
        self._has_conv = any(isinstance(m, nn.Conv2d) for m in self.module_.modules())
        self.layers_ = self._check_layers(self.module_)
        self.preprocessing_ = self._resolve_preprocessing(self.module_)

        X, kind = self._as_input(X)
        self._input_kind = kind
        if kind == "vectors":
            first = self._validate_vectors(X, reset=True)[:1]
        else:
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)
            self._check_images_finite(X)
            first = X[:1]
        self.feature_groups_ = {}
        names: list[str] = []
        start = 0
        for name, width, pooled in self._probe(first):
            self.feature_groups_[name] = slice(start, start + width)
            start += width
            prefix = name.replace(".", "_") if name else "root"
            if pooled and self.pooling == "avgmax":
                half = width // 2
                names += [f"{prefix}__avg{j}" for j in range(half)]
                names += [f"{prefix}__max{j}" for j in range(half)]
            else:
                names += [f"{prefix}__{j}" for j in range(width)]
        self.n_features_out_ = start
        self._feature_names_out = np.asarray(names, dtype=object)
        return self

    def _build_module(self) -> nn.Module:
        kwargs = self.model_kwargs or {}
        if isinstance(self.model, str):
            from .backbones import load_backbone

            try:
                module = load_backbone(self.model, **kwargs)
            except TypeError as exc:
                raise ValueError(
                    "The 'model_kwargs' parameter of TorchFeatureExtractor must hold "
                    f"arguments of load_backbone when 'model' is a name. Got {kwargs} "
                    f"({exc})."
                ) from exc
        else:
            module = build_module(
                self.model,
                self.model_kwargs,
                default=self.model,
                random_state=self.random_state,
                name="model",
                kwargs_name="model_kwargs",
            )
        return module.to("cpu").eval()

    def _check_layers(self, module: nn.Module) -> tuple[str, ...] | None:
        layers = self.layers
        if layers is None:
            return None
        if isinstance(layers, str):
            layers = [layers]
        if len(layers) == 0 or not all(isinstance(n, str) for n in layers):
            raise ValueError(
                "The 'layers' parameter of TorchFeatureExtractor must be None, a "
                f"module name or a non-empty list of module names. Got {self.layers!r}"
                " instead."
            )
        if len(set(layers)) != len(layers):
            raise ValueError(
                f"The 'layers' parameter of TorchFeatureExtractor has duplicate "
                f"names: {list(layers)!r}."
            )
        known = dict(module.named_modules())
        unknown = [n for n in layers if n not in known]
        if unknown:
            valid = [n for n in known if n]
            shown = ", ".join(repr(n) for n in valid[:8])
            more = f", ... ({len(valid)} in all)" if len(valid) > 8 else ""
            raise ValueError(
                f"The 'layers' parameter of TorchFeatureExtractor names modules that "
                f"the model does not have: {unknown!r}. Valid names are those of "
                f"model.named_modules(), e.g. {shown}{more}."
            )
        return tuple(layers)

    def _resolve_preprocessing(self, module: nn.Module) -> dict[str, Any]:
        cfg = getattr(module, "pretrained_cfg", None)
        cfg = cfg if isinstance(cfg, Mapping) else {}
        size = self.image_size
        if isinstance(size, str):  # "auto"
            input_size = cfg.get("input_size")
            size = tuple(input_size[-2:]) if input_size is not None else None
        size = _pair_or_none(size)
        crop_pct = self.crop_pct
        if isinstance(crop_pct, str):
            crop_pct = float(cfg.get("crop_pct") or _DEFAULT_CROP_PCT) if cfg else 1.0
        interpolation = self.interpolation
        if interpolation == "auto":
            interpolation = str(cfg.get("interpolation", "bilinear"))
            if interpolation not in _INTERPOLATIONS:
                raise ValueError(
                    f"The model's pretrained_cfg asks for the interpolation "
                    f"{interpolation!r}, which is not supported; set the "
                    f"'interpolation' parameter to one of {_INTERPOLATIONS}."
                )
        stats = {}
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, str):  # "auto"
                value = cfg.get(name)
            stats[name] = _channel_stats(value, name, self.input_channels_)
        if (stats["mean"] is None) != (stats["std"] is None):
            stats["mean"] = stats["mean"] or (0.0,)
            stats["std"] = stats["std"] or (1.0,)
        return {
            "image_size": size,
            "crop_pct": float(crop_pct),
            "interpolation": interpolation,
            **stats,
        }

    # ------------------------------------------------------------ transform
    def transform(self, X) -> np.ndarray:
        """Compute the features of ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (N, H, W), (N, H, W, C), \
(N, C, H, W) or (N, D)
            Images, in any layout and dtype accepted by ``fit``.

        Returns
        -------
        features : ndarray of shape (N, n_features_out_), dtype float32
            One row per input.
        """
        check_is_fitted(self)
        X, kind = self._as_input(X)
        if kind != self._input_kind:
            raise ValueError(
                f"TorchFeatureExtractor was fitted on {self._input_kind} but X holds "
                f"{kind} (shape {tuple(X.shape)})."
            )
        if kind == "vectors":
            X = self._validate_vectors(X, reset=False)
        return self._extract(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Get the names of the output features: ``"<layer>__<index>"``.

        Dots in layer names become underscores (``"layer1.3"`` gives
        ``"layer1_3__0"``, ...); the group of ``layers=None`` is ``"output"``, and
        ``pooling="avgmax"`` gives ``"<layer>__avg<i>"`` then ``"<layer>__max<i>"``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against ``feature_names_in_`` for 2-D input; otherwise unused.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``n_features_out_`` names.
        """
        check_is_fitted(self)
        if self._input_kind == "vectors":
            _check_feature_names_in(self, input_features, generate_names=False)
        return self._feature_names_out.copy()

    # -------------------------------------------------------------- helpers
    def _as_input(self, X):
        """Return ``X`` (an ndarray unless a tensor) and its kind: images or vectors."""
        if sparse.issparse(X):
            raise TypeError(
                "Sparse data was passed for X, but dense data is required. Use "
                "'.toarray()' to convert to a dense numpy array."
            )
        if isinstance(X, torch.Tensor):
            ndim = X.ndim
            if ndim < 3 and not self._has_conv:
                X = X.detach().cpu().numpy()
        else:
            if not hasattr(X, "shape") or not hasattr(X, "__getitem__"):
                X = np.asarray(X)
            ndim = len(X.shape)
        if ndim in (3, 4):
            return X, "images"
        if self._has_conv and ndim < 3:
            check_images(X)  # raises the layout error, with a reshape hint for 2-D
        if ndim > 4:
            check_images(X)
        return X, "vectors"

    def _validate_vectors(self, X, *, reset: bool) -> _Vectors:
        """scikit-learn validation of 2-D input; remembers whether it was uint8."""
        is_uint8 = getattr(X, "dtype", None) == np.uint8
        data = validate_data(self, X, dtype=np.float32, reset=reset)
        return _Vectors(data, is_uint8)

    def _check_images_finite(self, X) -> None:
        """Layout, dtype, size and finiteness of the whole batch, chunk by chunk."""
        _, info = check_images(X[:1])
        self._check_channels(info.input_channels)
        if info.input_dtype.startswith(("float", "bfloat")):
            for start in range(0, X.shape[0], 1024):
                chunk = X[start : start + 1024]
                ok = (
                    bool(torch.isfinite(chunk).all())
                    if isinstance(chunk, torch.Tensor)
                    else bool(np.isfinite(chunk).all())
                )
                if not ok:
                    raise ValueError("Input X contains NaN or infinity.")

    def _check_channels(self, n_channels: int) -> None:
        expected = self.input_channels_
        if expected is not None and n_channels not in (1, expected):
            raise ValueError(
                f"X has {n_channels} channel(s) but the model expects {expected} "
                "(only 1-channel images are replicated automatically)."
            )

    def _scale(self, is_uint8: bool) -> float:
        if isinstance(self.input_range, str):  # "auto"
            return 255.0 if is_uint8 else 1.0
        return float(self.input_range)

    def _preprocess(self, xb: torch.Tensor) -> torch.Tensor:
        prep = self.preprocessing_
        size = prep["image_size"]
        if size is not None:
            th, tw = size
            pct = prep["crop_pct"]
            sh, sw = math.floor(th / pct), math.floor(tw / pct)
            height, width = xb.shape[-2:]
            if sh == sw:
                if min(height, width) != sh:
                    xb = resize_images(xb, sh, interpolation=prep["interpolation"])
            else:
                factor = max(sh / height, sw / width)
                new = (max(sh, int(height * factor)), max(sw, int(width * factor)))
                if new != (height, width):
                    xb = resize_images(xb, new, interpolation=prep["interpolation"])
            if tuple(xb.shape[-2:]) != (th, tw):
                xb = center_crop(xb, (th, tw))
        if prep["mean"] is not None:
            mean = torch.tensor(prep["mean"], dtype=xb.dtype, device=xb.device)
            std = torch.tensor(prep["std"], dtype=xb.dtype, device=xb.device)
            xb = (xb - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return xb

    def _resolve_channels_last(self, device: torch.device) -> bool:
        if self.channels_last != "auto":
            return bool(self.channels_last)
        if not self._has_conv or self._input_kind != "images":
            return False
        return device.type == "cpu" or self.autocast is not None

    def _device_module(self, device: torch.device, channels_last: bool) -> nn.Module:
        """``module_`` on ``device`` (a cached copy unless it is usable as is)."""
        if device.type == "cpu" and not channels_last:
            return self.module_
        cached = self.__dict__.get("_cache_module")
        key = (str(device), channels_last)
        if cached is not None and cached[0] is self.module_ and cached[1] == key:
            return cached[2]
        moved = copy.deepcopy(self.module_).to(device).eval()
        if channels_last:
            moved = moved.to(memory_format=torch.channels_last)
        self._cache_module = (self.module_, key, moved)
        return moved

    def _forward(self, module, xb, probe: dict | None = None) -> list[torch.Tensor]:
        """Features of one pre-processed batch, one ``(n, d)`` tensor per group.

        With ``probe`` (a dict), the whole forward pass runs (no early stop) and
        ``probe[layer]`` records whether the layer's output was a pooled map.
        """
        if self.layers_ is None:
            if self._timm_api:
                out = module.forward_head(module.forward_features(xb), pre_logits=True)
            else:
                out = module(xb)
            if not isinstance(out, torch.Tensor) or out.ndim == 0:
                raise ValueError(
                    f"The model returned a {type(out).__name__}"
                    + (" of shape ()" if isinstance(out, torch.Tensor) else "")
                    + ", not a batch of tensors; use the 'layers' parameter to name "
                    "the module(s) whose output to use."
                )
            return [out.reshape(out.shape[0], -1).float()]

        named = dict(module.named_modules())
        captured: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers_}
        n_layers = len(self.layers_)

        def make_hook(name):
            def hook(mod, args, output):
                captured[name].append(_pool(name, output, self.pooling))
                if probe is not None:
                    probe[name] = output.ndim == 4
                elif sum(map(bool, captured.values())) == n_layers:
                    raise _StopForward

            return hook

        handles = [named[n].register_forward_hook(make_hook(n)) for n in self.layers_]
        try:
            module(xb)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        for name, outs in captured.items():
            if len(outs) != 1:
                raise ValueError(
                    f"Layer {name!r} ran {len(outs)} times in one forward pass; "
                    "choose modules that run exactly once in the 'layers' parameter."
                )
        return [captured[name][0] for name in self.layers_]

    def _batches(self, X):
        """Yield ``(start, stop, float32 NCHW or (n, D) CPU tensor, is_uint8)``."""
        n = X.shape[0]
        step = self.batch_size
        if isinstance(X, _Vectors):
            for start in range(0, n, step):
                xb = torch.from_numpy(np.array(X.data[start : start + step]))
                yield start, start + xb.shape[0], xb, X.is_uint8
            return
        if n == 0:
            check_images(X)  # raises the empty-input error
        for start in range(0, n, step):
            xb, info = check_images(X[start : start + step])
            self._check_channels(info.input_channels)
            yield start, start + xb.shape[0], xb, info.was_uint8

    def _run(self, X, probe: dict | None = None):
        device = resolve_device(self.device)
        channels_last = self._resolve_channels_last(device)
        module = self._device_module(device, channels_last)
        dtype = _AUTOCAST.get(self.autocast)
        channels = self.input_channels_
        with torch.inference_mode():
            for start, stop, xb, is_uint8 in self._batches(X):
                xb = xb.to(device, non_blocking=True)
                if xb.ndim == 4 and channels is not None and xb.shape[1] != channels:
                    xb = xb.expand(-1, channels, -1, -1)
                scale = self._scale(is_uint8)
                if scale != 1.0:
                    xb = xb / scale
                if xb.ndim == 4:
                    xb = self._preprocess(xb)
                    if channels_last:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                context = (
                    torch.autocast(device.type, dtype=dtype)
                    if dtype is not None
                    else contextlib.nullcontext()
                )
                with context:
                    parts = self._forward(module, xb, probe)
                yield start, stop, [p.float().cpu() for p in parts]

    def _probe(self, X) -> list[tuple[str, int, bool]]:
        """``(group name, width, pooled map?)`` from one forward pass of ``X``."""
        pooled: dict[str, bool] = {}
        (_, _, parts), *_ = list(self._run(X, pooled))
        names = self.layers_ if self.layers_ is not None else ("output",)
        return [
            (name, int(p.shape[1]), pooled.get(name, False))
            for name, p in zip(names, parts)
        ]

    def _extract(self, X) -> np.ndarray:
        n = X.shape[0]
        out = np.empty((n, self.n_features_out_), dtype=np.float32)
        tqdm = _get_tqdm() if self.verbose else None
        bar = (
            tqdm(total=n, desc=type(self).__name__, unit="img", file=sys.stderr)
            if tqdm is not None
            else None
        )
        tic = time.perf_counter()  # for the summary printed without tqdm
        try:
            for start, stop, parts in self._run(X):
                block = torch.cat(parts, dim=1)
                if block.shape[1] != self.n_features_out_:
                    raise ValueError(
                        f"The network gave {block.shape[1]} features per sample but "
                        f"{self.n_features_out_} at fit; were the images a different "
                        "size? Set 'image_size' to resize them."
                    )
                out[start:stop] = block.numpy()
                if bar is not None:
                    bar.update(stop - start)
        finally:
            if bar is not None:
                bar.close()
        if self.verbose and bar is None:
            elapsed = time.perf_counter() - tic
            print(
                f"{type(self).__name__}: {n} samples in {elapsed:.1f}s "
                f"({n / max(elapsed, 1e-9):.0f}/s)",
                flush=True,
            )
        return out
