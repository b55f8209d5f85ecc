"""Features of images (or vectors) from any torch network: a scikit-learn transformer.

:class:`TorchFeatureExtractor` turns a batch of images into a ``(n_samples,
n_features)`` float32 matrix: the pooled penultimate features of a classification
network, or the globally pooled outputs of named intermediate layers, ready for
any detector. Its two public building blocks, :meth:`~TorchFeatureExtractor.
network_input` and :meth:`~TorchFeatureExtractor.forward_features`, are what
``transform`` does in two differentiable steps.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
)
from torch import nn

from ._extractor_input import ExtractorInputMixin
from .backbones import (
    BackboneReference,
    available_backbones,
    load_backbone,
    weights_checksum,
)
from .nn._device import DEVICE_CONSTRAINT, resolve_device
from .nn._hooks import (
    LayerFeatures,
    check_layer_names,
    default_features,
    forward_error,
)
from .nn._pixels import INTERPOLATIONS, resolve_preprocessing
from .nn._training import TorchEstimatorMixin, build_module
from .utils._progress import progress
from .utils._threads import adaptive_threads

__all__ = ["TorchFeatureExtractor"]

_POOLINGS = ("avg", "max", "avgmax")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
# A progress bar under verbose="auto" appears only for work longer than this (s).
_PROGRESS_DELAY = 2.0


def _input_channels(module: nn.Module) -> int | None:
    """Channels the network expects: the first Conv2d, else its ``pretrained_cfg``."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return int(sub.in_channels)
    size = (getattr(module, "pretrained_cfg", None) or {}).get("input_size")
    if isinstance(size, Sequence) and len(size) == 3:
        return int(size[0])
    return None


class TorchFeatureExtractor(
    TorchEstimatorMixin, ExtractorInputMixin, TransformerMixin, BaseEstimator
):
    """Extract features of images with a torch network, in batches.

    ``transform`` turns each batch into network input (pixel scaling, resize and
    center crop, per-channel normalisation), runs the network in evaluation mode
    under :func:`torch.inference_mode` and returns one float32 row per image: by
    default the pooled penultimate features of a classification network, or the
    globally pooled outputs of the modules named in ``layers``, concatenated.

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
        ``None``: the features a classification network is used for (see Notes):
        for a model with timm's interface, ``forward_head(forward_features(x),
        pre_logits=True)``; for a network whose last layer is a
        :class:`torch.nn.Linear` classifier named ``fc``, ``classifier``,
        ``head``, ``heads`` or ``last_linear`` (the torchvision layouts), the input
        of that classifier, i.e. the pooled penultimate features; for any other
        model, its output flattened to ``(N, -1)``. ``feature_source_`` says which.
        A list of module names, as in ``model.named_modules()``: the outputs of
        those modules, captured by forward hooks, a ``(N, C, H, W)`` map reduced
        by ``pooling`` and a ``(N, D)`` output kept as it is, concatenated in the
        order given (name the classifier, e.g. ``"fc"``, to get the logits).
        Each module must run exactly once per forward pass, and the pass stops
        right after the last of them.
    pooling : {"avg", "max", "avgmax"}, default="avg"
        Global pooling of the feature maps of ``layers``: the mean or the maximum
        over all spatial positions, or both concatenated (means first).
    tta : {"hflip"} or None, default=None
        Test-time augmentation. ``"hflip"``: each row is the mean of the
        (pooled) features of the image and of its horizontal mirror image,
        computed inside :meth:`forward_features` on the mirrored network input
        (after resize and crop: the mirror of the image whenever the crop is
        symmetric, e.g. 28-pixel images at 112 pixels), so gradients flow
        through both views. Twice the forward passes; images only. It raised
        Fashion-MNIST one-vs-rest AUROC by 0.2 points for Ledoit-Wolf
        Mahalanobis and cosine kNN (``benchmarks/bench_fashion_recipe.py``).
    image_size : "auto", int, (int, int) or None, default="auto"
        Size ``(height, width)`` of the network input; an int gives a square. The
        image is scaled (aspect ratio kept) to just cover
        ``floor(height / crop_pct) x floor(width / crop_pct)``, which for a square
        size means its shorter side becomes ``floor(size / crop_pct)``, and the
        central ``height x width`` window is cropped (timm's evaluation transform).
        ``"auto"``: the model's ``pretrained_cfg["test_input_size"]`` (the
        test-time size, which timm's own inference and validation scripts use)
        or else ``["input_size"]``, when it has one (112 for the built-in
        ``"efficientnet_lite0"``, shared with the command line), else None.
        None: no resizing.
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
        uint8 input; any other dtype is taken to be on the [0, 1] scale already,
        and images whose values leave [-0.5, 1.5] (room for a bicubic resize's
        overshoot) are refused with an error, e.g. float images on the 0..255
        scale: for those, set ``input_range=255.0``. A number is used as it is,
        without a check (``1.0`` passes already scaled or normalised input).
        Vectors (2-D input) are never checked.
    batch_size : int, default=64
        Images per forward pass. Results do not depend on it (up to float rounding).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where the network runs: ``"auto"`` is the first GPU when CUDA is
        available and the CPU otherwise; ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
        (or a :class:`torch.device`) name a device. A CUDA device asked for on a
        machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`. ``module_`` always stays on the
        CPU; the copy on the device is cached and not pickled.
    autocast : {"bf16", "fp16"} or None, default=None
        Run the forward pass under :func:`torch.autocast` with that dtype (mixed
        precision); features are returned as float32 either way. Meant for GPUs; it
        also works on the CPU, where it is slower than float32 unless the processor
        has native bfloat16/float16 arithmetic (e.g. AMX).
    channels_last : "auto" or bool, default="auto"
        Run convolutional networks in the channels-last memory format, much faster
        for CPU convolutions. ``"auto"``: True for image input to a network with a
        Conv2d on the CPU, or on a GPU with ``autocast`` set.
    n_threads : "auto", int or None, default="auto"
        CPU threads of the forward passes in ``transform``, set with
        :func:`torch.set_num_threads` and restored afterwards. ``"auto"``: at most
        ``torch.get_num_threads()``, and no more than the CPUs that other
        processes leave free, re-checked before each batch (see Notes: this is
        what makes a plain script as fast as one run with
        ``OMP_WAIT_POLICY=PASSIVE``). An int: that many. None: torch's setting.
        Some convolutions round differently with different thread counts (up
        to about 1e-5 absolute on EfficientNet-Lite0 features at 32 pixels,
        batch 16; bit-identical at 112 pixels, batch 64): with ``"auto"`` the
        count follows the machine's load, so set an int for features that are
        bit-identical from run to run.
    random_state : int, RandomState instance or None, default=None
        Seeds the parameter initialisation when ``model`` is a class; torch's global
        random state is left unchanged. Unused otherwise.
    verbose : "auto", bool or int, default="auto"
        Progress bar (tqdm, on stderr) over the images of ``transform``.
        ``"auto"``: shown when stderr is a terminal or a notebook and the work
        takes more than 2 seconds; True or a positive int: always (a one-line
        summary when tqdm is not installed); False or 0: never. In a
        :class:`~sklearn.pipeline.Pipeline`, set it with
        ``set_params(<step>__verbose=False)``.

    Attributes
    ----------
    module_ : torch.nn.Module
        The network, on the CPU, in evaluation mode, with gradients switched off
        for its parameters (gradients still flow to the input).
    layers_ : tuple of str or None
        The validated layer names.
    feature_source_ : str
        What the features are, in words (e.g. the input of the classifier
        ``'fc'``: the pooled penultimate features).
    input_channels_ : int or None
        Channels the network expects (``in_channels`` of its first Conv2d, else
        ``pretrained_cfg["input_size"][0]``); one-channel images are replicated to
        it. None when unknown (no check, no replication).
    preprocessing_ : dict
        The resolved ``image_size``, ``crop_pct``, ``interpolation``, ``mean`` and
        ``std``, ``load_size`` (the size image files are loaded at:
        ``floor(image_size / crop_pct)``, or None) and ``source`` (where they
        came from: ``"pretrained_cfg"``, ``"parameters"`` or ``"none"``).
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
    sklearn_ood.images.load_images : The loader of image files used for paths.

    Notes
    -----
    **Input.** Images ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` (NumPy
    or torch, any real dtype; see :func:`sklearn_ood.images.check_images` for the
    channel axis), or a list of image files / PIL images, loaded with
    :func:`sklearn_ood.images.load_images` at ``preprocessing_["load_size"]`` (the
    command line reads files the same way, so both see the same pixels). Each
    batch becomes float32 ``(N, C, H, W)``, grey is replicated to
    ``input_channels_``, divided by ``input_range``, resized and cropped,
    normalised, then passed to the network. 2-D input ``(N, D)`` is accepted for
    networks without Conv2d (e.g. an MLP): validated as scikit-learn does
    (``n_features_in_``), divided by ``input_range``, passed as is.

    **Which features.** For a ResNet in torchvision's layout (``... -> avgpool ->
    flatten -> fc``), ``layers=None`` gives the 2,048 (ResNet-50) pooled features
    that enter ``fc``, not the 1,000 logits; ``layers="fc"`` gives the logits and
    ``layers=["layer3", "layer4"]`` the pooled maps of two stages. A network
    that is not recognised as a classifier gives its output.

    **Pre-processing.** The model's ``pretrained_cfg`` (timm's, or the one
    :func:`~sklearn_ood.backbones.load_backbone` builds from torchvision's
    ``Weights.transforms()``) sets resize, crop and normalisation. A
    classification network without one, and without explicit ``image_size``,
    ``mean`` and ``std``, only gets its pixels scaled to [0, 1], and ``fit`` warns
    once about it.

    **Threads.** With ``OMP_WAIT_POLICY`` unset, torch's OpenMP threads spin while
    they wait; when another process keeps a core busy, inference then ran 5 to 10
    times slower. ``n_threads="auto"`` uses no more threads than there are free
    cores, which removes the waits without changing the environment, and
    restores torch's thread count after ``transform``.

    ``fit`` learns nothing from the data (``fit_learns_from_data = False``): it
    builds the network, checks ``X`` and runs one sample to learn the output width.

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

    #: ``fit`` only builds the network: wrappers may transform the data once.
    fit_learns_from_data = False

    _parameter_constraints: dict = {
        "model": [nn.Module, type, str, callable],
        "model_kwargs": [dict, None],
        "layers": [str, list, tuple, None],
        "pooling": [StrOptions(set(_POOLINGS))],
        "tta": [StrOptions({"hflip"}), None],
        "image_size": [
            Interval(Integral, 1, None, closed="left"),
            tuple,
            list,
            StrOptions({"auto"}),
            None,
        ],
        "crop_pct": [Interval(Real, 0, 1, closed="right"), StrOptions({"auto"})],
        "interpolation": [StrOptions({"auto", *INTERPOLATIONS})],
        "mean": ["array-like", StrOptions({"auto"}), None],
        "std": ["array-like", StrOptions({"auto"}), None],
        "input_range": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": DEVICE_CONSTRAINT,
        "autocast": [StrOptions(set(_AUTOCAST)), None],
        "channels_last": ["boolean", StrOptions({"auto"})],
        "n_threads": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose", StrOptions({"auto"})],
    }

    def __init__(
        self,
        model: nn.Module | type[nn.Module] | str,
        *,
        model_kwargs: dict | None = None,
        layers: str | Sequence[str] | None = None,
        pooling: str = "avg",
        tta: str | None = None,
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
        n_threads: str | int | None = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: str | bool | int = "auto",
    ) -> None:
        self.model = model
        self.model_kwargs = model_kwargs
        self.layers = layers
        self.pooling = pooling
        self.tta = tta
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
        self.n_threads = n_threads
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

        Nothing is trained: ``X`` is checked (layout, channels, finiteness, pixel
        range) and its first sample is run once through the network.

        Parameters
        ----------
        X : array-like, torch.Tensor or list of image files / PIL images
            Images of shape (N, H, W), (N, H, W, C) or (N, C, H, W) (see the class
            Notes), files, or vectors (N, D) for a network without Conv2d.
        y : None
            Ignored.

        Returns
        -------
        self : TorchFeatureExtractor
            The fitted extractor.
        """
        self._clear_torch_cache()
        self.module_, self._backbone_checksum = self._build_module()
        self.input_channels_ = _input_channels(self.module_)
        self._has_conv = any(isinstance(m, nn.Conv2d) for m in self.module_.modules())
        self.layers_ = check_layer_names(self.module_, self.layers)
        self.preprocessing_ = self._resolve_preprocessing(self.module_)

        X, kind = self._as_input(X)
        if kind == "files":
            X, kind = self._load_files(X[:1]), "images"
        self._input_kind = kind
        if kind == "vectors" and self.tta is not None:
            raise ValueError(
                f"The 'tta' parameter of TorchFeatureExtractor is {self.tta!r}, which "
                "mirrors images, but X holds vectors (2-D input); use tta=None."
            )
        if kind == "vectors":
            first = self._validate_vectors(X, reset=True)[:1]
        else:
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)
            self._scan_images(X)
            first = X[:1]

        device = resolve_device(self.device)
        x = self._network_batch(first, device)
        module = self._device_module(device)
        with torch.inference_mode():
            if self.layers_ is None:
                self._features = self._guarded(
                    default_features, module, self._to_memory_format(x, device)
                )
            else:
                self._features = LayerFeatures(self.layers_, self.pooling)
            probe = self._guarded(
                self._features.probe, module, self._to_memory_format(x, device)
            )
        self.feature_groups_, self._pooled_groups = {}, {}
        start = 0
        for name, width, pooled in probe:
            self.feature_groups_[name] = slice(start, start + width)
            self._pooled_groups[name] = pooled
            start += width
        self.n_features_out_ = start
        self.feature_source_ = self._features.describe(self._pooled_groups)
        self._warn_missing_preprocessing()
        return self

    def _build_module(self) -> tuple[nn.Module, str | None]:
        """The network (CPU, eval, frozen) and, for a built-in pretrained backbone,
        the checksum of its weights (it is then pickled by reference)."""
        kwargs = self.model_kwargs or {}
        checksum = None
        if isinstance(self.model, str):
            try:
                module = load_backbone(self.model, **kwargs)
            except TypeError as exc:
                raise ValueError(
                    "The 'model_kwargs' parameter of TorchFeatureExtractor must hold "
                    "arguments of load_backbone when 'model' is a name. Got "
                    f"{kwargs} ({exc})."
                ) from exc
            if self.model in available_backbones() and kwargs.get("pretrained", True):
                checksum = weights_checksum(module)
        else:
            module = build_module(
                self.model,
                self.model_kwargs,
                default=self.model,
                random_state=self.random_state,
                name="model",
                kwargs_name="model_kwargs",
            )
        return module.to("cpu").eval().requires_grad_(False), checksum

    def _resolve_preprocessing(self, module: nn.Module) -> dict[str, Any]:
        return resolve_preprocessing(
            getattr(module, "pretrained_cfg", None),
            image_size=self.image_size,
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            channels=self.input_channels_,
        )

    def _warn_missing_preprocessing(self) -> None:
        prep = self.preprocessing_
        if (
            self._input_kind != "images"
            or self._features.source != "classifier"
            or prep["source"] != "none"
        ):
            return
        warnings.warn(
            f"The model ({type(self.module_).__name__}) is a classification network "
            f"(features: the input of {self._features.classifier!r}) without a "
            "'pretrained_cfg' describing the pre-processing its weights expect, so "
            "TorchFeatureExtractor only scales the pixels to [0, 1]: no resize, no "
            "normalisation. For weights trained on ImageNet, pass the values of the "
            "weights' transforms, e.g. "
            "**sklearn_ood.backbones.preprocessing_from_weights(weights) or "
            "image_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, "
            "0.225); or load the model with load_backbone('torchvision:<name>'). "
            "Set image_size, mean and std explicitly (None for none) to silence "
            "this warning.",
            UserWarning,
            stacklevel=4,  # fit's caller (through scikit-learn's _fit_context)
        )

    # ------------------------------------------------------------ transform
    def transform(self, X) -> np.ndarray:
        """Compute the features of ``X``.

        Parameters
        ----------
        X : array-like, torch.Tensor or list of image files / PIL images
            Images of shape (N, H, W), (N, H, W, C) or (N, C, H, W) in any layout
            and dtype accepted by ``fit``, files, or vectors (N, D).

        Returns
        -------
        features : ndarray of shape (N, n_features_out_), dtype float32
            One row per input, equal to
            ``forward_features(network_input(X))`` up to float rounding (the same
            operations, batch by batch, under :func:`torch.inference_mode`).
        """
        check_is_fitted(self)
        X = self._checked_input(X)
        n = len(X) if isinstance(X, list) else X.shape[0]
        out = np.empty((n, self.n_features_out_), dtype=np.float32)
        device = resolve_device(self.device)
        module = self._device_module(device)
        with self._cpu_threads(device) as adjust, self._progress(n) as bar:
            for start, xb in self._batches(X):
                adjust()
                with torch.inference_mode():
                    x = self._network_batch(xb, device)
                    block = self._forward(module, x, device)
                out[start : start + block.shape[0]] = block.float().cpu().numpy()
                bar(block.shape[0])
        return out

    def network_input(self, X, device=None) -> torch.Tensor:
        """Turn raw input into the network's input, exactly as ``transform`` does.

        Validation, channel replication, pixel scaling (``input_range``), resize
        and center crop, normalisation, all made of torch operations: when ``X``
        is a float tensor that requires gradients, they flow back to it.

        Parameters
        ----------
        X : array-like, torch.Tensor or list of image files / PIL images
            One batch of input, as for ``transform`` (processed at once, not in
            ``batch_size`` batches).
        device : str, torch.device or None, default=None
            Where the result lies; None: the extractor's ``device``, resolved.

        Returns
        -------
        x : torch.Tensor of shape (N, C, H, W) or (N, D), dtype float32
            The network input, contiguous, in the standard memory format.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from sklearn_ood import TorchFeatureExtractor
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten())
        >>> X = np.full((2, 8, 8), 255, dtype=np.uint8)
        >>> ext = TorchFeatureExtractor(net, mean=[0.5], std=[0.25], device="cpu")
        >>> x = ext.fit(X).network_input(X)
        >>> tuple(x.shape), float(x.max())  # grey -> 3 channels, (1 - 0.5) / 0.25
        ((2, 3, 8, 8), 2.0)
        """
        check_is_fitted(self)
        device = resolve_device(self.device if device is None else device)
        X = self._checked_input(X)
        if isinstance(X, list):
            X = self._load_files(X)
        return self._network_batch(X, device).contiguous()

    def forward_features(self, x: torch.Tensor, layers=None) -> torch.Tensor:
        """Compute the features of network inputs ``x``, with autograd enabled.

        The same hooks, pooling and concatenation as ``transform`` (one shared
        implementation), so ``forward_features(network_input(X))`` equals
        ``transform(X)`` up to float rounding, and gradients flow from the
        features to ``x`` (the network's own parameters stay frozen). With
        ``tta="hflip"``: the mean of the features of ``x`` and of
        ``x.flip(-1)``.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W) or (N, D)
            Network input, e.g. from :meth:`network_input`, on any device; the
            network runs there (a cached copy of ``module_``).
        layers : list of str or None, default=None
            A subset of ``layers_``: only their columns are computed, the pass
            stops after the last of them, and the other groups' columns are
            zero. None: all groups.

        Returns
        -------
        features : torch.Tensor of shape (N, n_features_out_), dtype float32
            On ``x.device``.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from sklearn_ood import TorchFeatureExtractor
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
        >>> X = np.random.RandomState(0).rand(3, 8, 8).astype(np.float32)
        >>> ext = TorchFeatureExtractor(net, layers=["0", "1"], device="cpu").fit(X)
        >>> x = ext.network_input(X).requires_grad_()
        >>> F = ext.forward_features(x)
        >>> F.sum().backward()
        >>> x.grad.shape == x.shape, np.allclose(F.detach(), ext.transform(X))
        (True, True)
        """
        check_is_fitted(self)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(
                "x must be a floating point torch.Tensor of network input (see "
                f"network_input). Got {type(x).__name__}"
                + (f" of dtype {x.dtype}." if isinstance(x, torch.Tensor) else ".")
            )
        expected = 4 if self._input_kind == "images" else 2
        if x.ndim != expected:
            raise ValueError(
                f"x must have {expected} dimensions (the network input of "
                f"{self._input_kind}); got shape {tuple(x.shape)}."
            )
        needed = self._needed_layers(layers)
        module = self._device_module(x.device)
        return self._forward(module, x.to(torch.float32), x.device, needed)

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
        names: list[str] = []
        for name, cols in self.feature_groups_.items():
            width = cols.stop - cols.start
            prefix = name.replace(".", "_") if name else "root"
            if self._pooled_groups[name] and self.pooling == "avgmax":
                names += [f"{prefix}__avg{j}" for j in range(width // 2)]
                names += [f"{prefix}__max{j}" for j in range(width // 2)]
            else:
                names += [f"{prefix}__{j}" for j in range(width)]
        return np.asarray(names, dtype=object)

    # ----------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        checksum = state.get("_backbone_checksum")
        if checksum is not None and weights_checksum(state["module_"]) == checksum:
            # A built-in backbone, unchanged since fit: stored by reference.
            state["module_"] = BackboneReference(
                self.model, dict(self.model_kwargs or {}), checksum
            )
        return state

    def __setstate__(self, state):
        if isinstance(state.get("module_"), BackboneReference):
            module = state["module_"].load()
            state = {**state, "module_": module.eval().requires_grad_(False)}
        super().__setstate__(state)

    def _channels_last(self, device: torch.device) -> bool:
        if self.channels_last != "auto":
            return bool(self.channels_last) and self._input_kind == "images"
        if not self._has_conv or self._input_kind != "images":
            return False
        return device.type == "cpu" or self.autocast is not None

    def _to_memory_format(self, x: torch.Tensor, device) -> torch.Tensor:
        if x.ndim == 4 and self._channels_last(device):
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _device_module(self, device: torch.device) -> nn.Module:
        return self._module_on_device(
            "module_", device, channels_last=self._channels_last(device)
        )

    def _guarded(self, fn, module, x, *args):
        """``fn(module, x, *args)``, a failure inside the network explained."""
        try:
            return fn(module, x, *args)
        except RuntimeError as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            raise forward_error(
                lambda z: fn(module, z, *args),
                module,
                x,
                exc,
                hint=self._size_hint(),
            ) from exc

    def _size_hint(self) -> str:
        if self._input_kind != "images":
            return "X does not have the shape the network was built for."
        size = self.preprocessing_["image_size"]
        now = "None: images enter at their own size" if size is None else size
        return (
            "Set the 'image_size' parameter of TorchFeatureExtractor to the input "
            f"size the network needs (it is {now})."
        )

    def _needed_layers(self, layers) -> list[str] | None:
        if layers is None:
            return None
        names = [layers] if isinstance(layers, str) else list(layers)
        known = self.layers_ or ()
        if not names or any(n not in known for n in names):
            raise ValueError(
                "The 'layers' argument of forward_features must be None or a "
                f"non-empty subset of layers_={self.layers_!r}. Got {layers!r}."
            )
        return names

    def _forward(self, module, x, device, needed=None) -> torch.Tensor:
        """``(N, n_features_out_)`` features of network inputs on ``device``
        (with ``tta="hflip"``, the mean of those of ``x`` and of its mirror)."""
        features = self._forward_view(module, x, device, needed)
        if self.tta == "hflip":
            mirrored = self._forward_view(module, x.flip(-1), device, needed)
            features = (features + mirrored) / 2
        return features

    def _forward_view(self, module, x, device, needed=None) -> torch.Tensor:
        x = self._to_memory_format(x, device)
        dtype = _AUTOCAST.get(self.autocast)
        context = (
            torch.autocast(device.type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        with context:
            parts = self._guarded(self._features, module, x, needed)
        blocks = []
        for name, part in zip(self._features.groups, parts):
            cols = self.feature_groups_[name]
            if part is None:
                part = x.new_zeros((x.shape[0], cols.stop - cols.start))
            elif part.shape[1] != cols.stop - cols.start:
                raise ValueError(
                    f"The network gave {part.shape[1]} features per sample for "
                    f"{name!r} but {cols.stop - cols.start} at fit; were the images "
                    "a different size? Set 'image_size' to resize them."
                )
            blocks.append(part.float())
        return torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]

    @contextlib.contextmanager
    def _cpu_threads(self, device):
        with adaptive_threads(
            None if device.type != "cpu" else self.n_threads,
            torch.get_num_threads,
            torch.set_num_threads,
        ) as adjust:
            yield adjust

    def _progress(self, total: int):
        return progress(
            total, self.verbose, desc=type(self).__name__, delay=_PROGRESS_DELAY
        )
