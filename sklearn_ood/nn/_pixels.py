"""From pixels to network input: the pre-processing a network's weights expect.

:func:`resolve_preprocessing` turns an estimator's parameters and a model's
``pretrained_cfg`` (timm's keys) into one dictionary; :func:`apply_preprocessing`
applies it to a float32 ``(N, C, H, W)`` batch on the [0, 1] scale with torch
operations only (differentiable, on any device); :func:`pixel_range` reads the
value range of a batch of images without copying it whole. Used by
:class:`~sklearn_ood.TorchFeatureExtractor`, whose ``network_input`` is the one
public way to this transform.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np
import torch

from ..images import center_crop, resize_images

__all__ = ["apply_preprocessing", "pixel_range", "resolve_preprocessing"]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
# timm's default crop_pct, used when a pretrained_cfg gives an input size only.
_DEFAULT_CROP_PCT = 0.875


def _pair_or_none(value, owner: str) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = (value, value) if isinstance(value, Integral) else value
    if len(pair) == 2 and all(
        isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        return int(pair[0]), int(pair[1])
    raise ValueError(
        f"The 'image_size' parameter of {owner} must be 'auto', None, a positive "
        f"int or a pair of positive ints (height, width). Got {value!r} instead."
    )


def _channel_stats(value, name: str, channels: int | None, owner: str):
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"The '{name}' parameter of {owner} must hold finite per-channel "
            f"values. Got {value!r} instead."
        )
    if channels is not None and arr.size not in (1, channels):
        raise ValueError(
            f"The '{name}' parameter of {owner} must have 1 or {channels} values "
            f"(one per channel). Got {arr.size}."
        )
    if name == "std" and np.any(arr <= 0):
        raise ValueError(
            f"The 'std' parameter of {owner} must be positive. Got {value!r} instead."
        )
    return tuple(float(v) for v in arr)


def resolve_preprocessing(
    cfg: Mapping | None,
    *,
    image_size,
    crop_pct,
    interpolation: str,
    mean,
    std,
    channels: int | None,
    owner: str = "TorchFeatureExtractor",
) -> dict[str, Any]:
    """Resolve ``"auto"`` values against a model's ``pretrained_cfg``.

    Parameters
    ----------
    cfg : mapping or None
        The model's ``pretrained_cfg`` (``test_input_size`` or else
        ``input_size``, ``crop_pct``, ``interpolation``, ``mean``, ``std``), if
        any.
    image_size, crop_pct, interpolation, mean, std
        The estimator's parameters, each possibly ``"auto"``.
    channels : int or None
        Channels of the network input, to check ``mean`` and ``std``.
    owner : str, default="TorchFeatureExtractor"
        The estimator named in error messages.

    Returns
    -------
    preprocessing : dict
        ``image_size`` ((h, w) or None), ``crop_pct``, ``interpolation``,
        ``mean``, ``std`` (tuples or None), ``load_size`` (the pre-crop size
        ``floor(image_size / crop_pct)``, or None) and ``source``
        (``"parameters"`` when any of image_size/mean/std was given,
        ``"pretrained_cfg"`` when the config set them, else ``"none"``).
    """
    cfg = cfg if isinstance(cfg, Mapping) else {}
    size = image_size
    if isinstance(size, str):  # "auto": the test-time size, as timm's use_test_size
        input_size = cfg.get("test_input_size") or cfg.get("input_size")
        size = tuple(input_size[-2:]) if input_size is not None else None
    size = _pair_or_none(size, owner)
    if isinstance(crop_pct, str):
        crop_pct = float(cfg.get("crop_pct") or _DEFAULT_CROP_PCT) if cfg else 1.0
    if interpolation == "auto":
        interpolation = str(cfg.get("interpolation", "bilinear"))
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"The model's pretrained_cfg asks for the interpolation "
                f"{interpolation!r}, which is not supported; set the "
                f"'interpolation' parameter to one of {INTERPOLATIONS}."
            )
    stats = {}
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, str):  # "auto"
            value = cfg.get(name)
        stats[name] = _channel_stats(value, name, channels, owner)
    if (stats["mean"] is None) != (stats["std"] is None):
        stats["mean"] = stats["mean"] or (0.0,)
        stats["std"] = stats["std"] or (1.0,)
    given = [not isinstance(v, str) for v in (image_size, mean, std)]
    if any(given):
        source = "parameters"
    elif size is not None or stats["mean"] is not None:
        source = "pretrained_cfg"
    else:
        source = "none"
    load_size = None
    if size is not None:
        load_size = tuple(math.floor(s / float(crop_pct)) for s in size)
    return {
        "image_size": size,
        "crop_pct": float(crop_pct),
        "interpolation": interpolation,
        **stats,
        "load_size": load_size,
        "source": source,
    }


def apply_preprocessing(x: torch.Tensor, prep: Mapping) -> torch.Tensor:
    """Resize, center-crop and normalise ``(N, C, H, W)`` images on the [0, 1] scale.

    The image is scaled (aspect ratio kept) to just cover ``load_size`` (for a
    square size: its shorter side becomes ``floor(size / crop_pct)``), the
    central ``image_size`` window is kept, then ``(x - mean) / std`` per channel.
    Every step is a torch operation, so gradients flow through it.
    """
    size = prep["image_size"]
    if size is not None:
        th, tw = size
        sh, sw = prep["load_size"]
        height, width = x.shape[-2:]
        if sh == sw:
            if min(height, width) != sh:
                x = resize_images(x, sh, interpolation=prep["interpolation"])
        else:
            factor = max(sh / height, sw / width)
            new = (max(sh, int(height * factor)), max(sw, int(width * factor)))
            if new != (height, width):
                x = resize_images(x, new, interpolation=prep["interpolation"])
        if tuple(x.shape[-2:]) != (th, tw):
            x = center_crop(x, (th, tw))
    if prep["mean"] is not None:
        mean = torch.tensor(prep["mean"], dtype=x.dtype, device=x.device)
        std = torch.tensor(prep["std"], dtype=x.dtype, device=x.device)
        x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return x


def pixel_range(X, chunk: int = 1024) -> tuple[bool, float, float]:
    """``(all finite, min, max)`` of a batch of images, read chunk by chunk.

    Parameters
    ----------
    X : ndarray or torch.Tensor
        Any real dtype; the values are not copied whole.
    chunk : int, default=1024
        Images per chunk.
    """
    finite, low, high = True, math.inf, -math.inf
    for start in range(0, X.shape[0], chunk):
        part = X[start : start + chunk]
        if isinstance(part, torch.Tensor):
            part = part.detach()
            if part.is_floating_point():
                finite = finite and bool(torch.isfinite(part).all())
            if finite and part.numel():
                low = min(low, float(part.min()))
                high = max(high, float(part.max()))
        else:
            part = np.asarray(part)
            if part.dtype.kind == "f":
                finite = finite and bool(np.isfinite(part).all())
            if finite and part.size:
                low = min(low, float(part.min()))
                high = max(high, float(part.max()))
        if not finite:
            break
    return finite, low, high
