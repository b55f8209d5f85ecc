"""Image files and image batches: loading, validation, resizing and cropping.

Files: :func:`load_images` reads image files, folders and PIL images into one
uint8 array (:func:`iter_images` in batches, :func:`list_image_files` lists a
folder); the ``sklearn-ood`` command line reads files with them. Batches:
:func:`check_images` validates an array or tensor of images, and
:func:`resize_images`, :func:`center_crop` and :func:`to_minus1_1` transform
``(N, C, H, W)`` tensors.

Reading rule of :func:`load_images`
-----------------------------------
1. A file is opened with Pillow and rotated by its EXIF orientation tag; an
   in-memory PIL image is rotated the same way (as a copy); a uint8 array
   ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` is taken as it is.
2. It is converted to grey (``"L"``) or to ``"RGB"`` with Pillow's
   ``Image.convert`` (ITU-R 601-2 luma for colour to grey; an alpha channel is
   dropped, not composited). 16-bit grey images are mapped to 8 bits as
   ``round(v / 257)``; floating-point images are refused.
3. With a ``size`` ``(h, w)``: the image is scaled with its aspect ratio kept by
   ``f = max(h / H, w / W)`` to ``(max(h, round(H f)), max(w, round(W f)))``
   with Pillow's bicubic filter (antialiased when shrinking; not resized when the
   size already matches), then the central ``h x w`` window is kept, starting at
   ``round((H' - h) / 2)`` and ``round((W' - w) / 2)`` as in
   :func:`center_crop`.

Layout rule used by :func:`check_images`
----------------------------------------
- 3-D input ``(N, H, W)`` is a batch of grey images and gets one channel.
- A 4-D **torch tensor** is always read as channels-first ``(N, C, H, W)``, PyTorch's
  own convention.
- A 4-D **NumPy array** (or anything ``np.asarray`` accepts) is read as channels-last
  ``(N, H, W, C)`` when its last axis has size 1, 3 or 4, and as channels-first when
  only its second axis has size 1, 3 or 4. Any other shape is ambiguous and raises a
  ``ValueError``: pass such images as a ``(N, C, H, W)`` torch tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._image_files import (
    IMAGE_SUFFIXES,
    ImageBatch,
    iter_images,
    list_image_files,
    load_images,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageBatch",
    "ImageInfo",
    "center_crop",
    "check_images",
    "iter_images",
    "list_image_files",
    "load_images",
    "resize_images",
    "to_minus1_1",
]

_CHANNEL_SIZES = (1, 3, 4)
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`check_images` found out about its input.

    Parameters
    ----------
    was_uint8 : bool
        The input had dtype uint8 (pixel values 0..255, kept on that scale).
    layout : {"NHW", "NHWC", "NCHW"}
        Layout the input was read in.
    input_channels : int
        Number of channels of the input, before any replication.
    input_dtype : str
        Name of the input dtype.
    is_tensor : bool
        The input was a torch tensor.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.images import check_images
    >>> _, info = check_images(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    >>> info.layout, info.input_channels, info.was_uint8
    ('NHWC', 3, True)
    """

    was_uint8: bool
    layout: str
    input_channels: int
    input_dtype: str
    is_tensor: bool


def _shape_help(name: str, shape: tuple[int, ...]) -> str:
    return (
        f"{name} must be a batch of images of shape (N, H, W), (N, H, W, C) or "
        f"(N, C, H, W); got an array of shape {shape}"
    )


def check_images(
    X,
    *,
    channels: int | None = None,
    allow_uint8: bool = True,
    name: str = "X",
) -> tuple[torch.Tensor, ImageInfo]:
    """Validate a batch of images and return it as a float32 ``(N, C, H, W)`` tensor.

    Parameters
    ----------
    X : array-like or torch.Tensor
        Images of shape ``(N, H, W)`` (grey), ``(N, H, W, C)`` or ``(N, C, H, W)``,
        with an integer, boolean or floating dtype. See the module docstring for how
        the channel axis of a 4-D input is found: a torch tensor is always
        channels-first; a NumPy array is channels-last when its last axis has size 1, 3
        or 4, channels-first when only its second axis does, and an error otherwise.
    channels : int, optional
        Number of channels the caller needs. One-channel images are replicated to
        ``channels`` (e.g. 3 for ImageNet networks); any other mismatch is an error.
    allow_uint8 : bool, default=True
        Whether uint8 input is accepted. Its values stay on the 0..255 scale (as
        float32); ``info.was_uint8`` tells the caller to rescale.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    images : torch.Tensor of shape (N, C, H, W)
        A new contiguous float32 CPU tensor; it never shares memory with ``X``.
    info : ImageInfo
        Input dtype, layout and channel count.

    Raises
    ------
    ValueError
        For an empty batch, a wrong number of dimensions, an ambiguous channel axis,
        NaN or infinite values, a channel mismatch, or uint8 input with
        ``allow_uint8=False``.
    TypeError
        For complex or non-numeric input.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.images import check_images
    >>> x, info = check_images(np.zeros((2, 28, 28), dtype=np.uint8), channels=3)
    >>> tuple(x.shape), x.dtype, info.was_uint8
    ((2, 3, 28, 28), torch.float32, True)
    """
    if channels is not None and (
        isinstance(channels, bool)
        or not isinstance(channels, (int, np.integer))
        or channels < 1
    ):
        raise ValueError(
            f"The 'channels' parameter must be a positive integer or None. "
            f"Got {channels!r} instead."
        )

    is_tensor = isinstance(X, torch.Tensor)
    if is_tensor:
        if X.is_complex():
            raise TypeError(f"{name} must be real-valued images; got complex dtype.")
        if not (X.is_floating_point() or X.dtype == torch.bool or _is_int(X.dtype)):
            raise TypeError(f"{name} must have a numeric dtype; got {X.dtype}.")
        was_uint8 = X.dtype == torch.uint8
        is_float = X.is_floating_point()
        dtype_name = str(X.dtype).replace("torch.", "")
        shape = tuple(X.shape)
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and other unconvertible objects
            raise ValueError(
                f"{name} could not be converted to an array of images: {exc}"
            ) from exc
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real-valued images; got complex dtype.")
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must have a numeric dtype; got dtype {arr.dtype!s}."
            )
        was_uint8 = arr.dtype == np.uint8
        is_float = arr.dtype.kind == "f"
        dtype_name = str(arr.dtype)
        shape = arr.shape

    if was_uint8 and not allow_uint8:
        raise ValueError(
            f"{name} must hold floating point images here; got uint8. Convert and "
            "scale the pixel values first."
        )

    ndim = len(shape)
    if ndim == 2:
        raise ValueError(
            _shape_help(name, shape) + ". Images are expected, not a 2-D matrix: if "
            "each row is a flattened image, reshape it, e.g. X.reshape(-1, H, W) or "
            "X.reshape(-1, H, W, C)."
        )
    if ndim not in (3, 4):
        raise ValueError(_shape_help(name, shape) + f" ({ndim} dimensions).")
    if shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is "
            f"required by {name}."
        )
    if 0 in shape:
        raise ValueError(f"{name} has an empty image dimension (shape={shape}).")

    # Work out the layout, then copy into a float32 NCHW tensor.
    if ndim == 3:
        layout = "NHW"
    elif is_tensor:
        layout = "NCHW"
    elif shape[-1] in _CHANNEL_SIZES:
        layout = "NHWC"
    elif shape[1] in _CHANNEL_SIZES:
        layout = "NCHW"
    else:
        raise ValueError(
            f"Cannot tell the channel axis of {name} with shape {shape}: neither the "
            "last axis (channels-last) nor the second axis (channels-first) has size "
            "1, 3 or 4. Pass the images as a torch.Tensor of shape (N, C, H, W); "
            "note that a 4-D torch tensor is always read as channels-first."
        )

    if is_tensor:
        images = X.detach().to(device="cpu", dtype=torch.float32, copy=True)
        if layout == "NHW":
            images = images.unsqueeze(1)
        images = images.contiguous()
    else:
        if layout == "NHW":
            arr = arr[:, None, :, :]
        elif layout == "NHWC":
            arr = np.transpose(arr, (0, 3, 1, 2))
        # np.array(copy=True) always copies, so the result never aliases X. Values
        # beyond the float32 range become inf here and are reported just below.
        with np.errstate(over="ignore"):
            images = np.array(arr, dtype=np.float32, order="C", copy=True)
        images = torch.from_numpy(images)

    if is_float and not bool(torch.isfinite(images).all()):
        raise ValueError(
            f"Input {name} contains NaN or infinity, or a value too large for float32."
        )

    n_in = images.shape[1]
    if channels is not None and n_in != channels:
        if n_in != 1:
            raise ValueError(
                f"{name} has {n_in} channel(s) but {channels} are expected (only "
                "1-channel images are replicated automatically)."
            )
        images = images.expand(-1, int(channels), -1, -1).contiguous()

    info = ImageInfo(
        was_uint8=bool(was_uint8),
        layout=layout,
        input_channels=int(n_in),
        input_dtype=dtype_name,
        is_tensor=is_tensor,
    )
    return images, info


def _is_int(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def _pair(size, name: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size
        )
        or min(size) < 1
    ):
        raise ValueError(
            f"The '{name}' parameter must be a positive integer or a pair of positive "
            f"integers (height, width). Got {size!r} instead."
        )
    return int(size[0]), int(size[1])


def _check_nchw(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D torch.Tensor of shape (N, C, H, W); "
            f"got {type(x).__name__}"
            + (f" with shape {tuple(x.shape)}." if isinstance(x, torch.Tensor) else ".")
        )


def resize_images(
    x: torch.Tensor,
    size: int | tuple[int, int],
    *,
    interpolation: str = "bilinear",
    antialias: bool = True,
) -> torch.Tensor:
    """Resize a batch of ``(N, C, H, W)`` images.

    Parameters
    ----------
    x : torch.Tensor of shape (N, C, H, W)
        Floating point images.
    size : int or (int, int)
        A pair is the exact output ``(height, width)``. A single integer is the length
        of the *shorter* side, the aspect ratio being kept (the torchvision
        ``Resize(int)`` convention); follow with :func:`center_crop` for a square.
    interpolation : {"nearest", "bilinear", "bicubic", "area"}, default="bilinear"
        Interpolation mode of :func:`torch.nn.functional.interpolate`.
    antialias : bool, default=True
        Low-pass filter when down-sampling (bilinear and bicubic only; ignored for the
        other modes).

    Returns
    -------
    resized : torch.Tensor of shape (N, C, h, w)
        A new tensor.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.images import resize_images
    >>> tuple(resize_images(torch.zeros(2, 3, 40, 80), 20).shape)
    (2, 3, 20, 40)
    """
    _check_nchw(x)
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"The 'interpolation' parameter must be one of {_INTERPOLATIONS}. "
            f"Got {interpolation!r} instead."
        )
    height, width = x.shape[-2:]
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        short = _pair(size, "size")[0]
        if height <= width:
            out = (short, max(1, int(short * width / height)))
        else:
            out = (max(1, int(short * height / width)), short)
    else:
        out = _pair(size, "size")
    if not x.is_floating_point():
        x = x.float()
    kwargs = {}
    if interpolation in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": bool(antialias)}
    return F.interpolate(x, size=out, mode=interpolation, **kwargs)


def center_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop the centre ``size`` window of a batch of ``(N, C, H, W)`` images.

    The window starts at ``round((H - h) / 2)``, ``round((W - w) / 2)`` as in
    torchvision's ``center_crop``.

    Parameters
    ----------
    x : torch.Tensor of shape (N, C, H, W)
        Images at least as large as the window.
    size : int or (int, int)
        Output ``(height, width)``; an integer gives a square.

    Returns
    -------
    cropped : torch.Tensor of shape (N, C, h, w)
        A contiguous copy.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.images import center_crop
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> center_crop(x, 2)[0, 0].tolist()
    [[5.0, 6.0], [9.0, 10.0]]
    """
    _check_nchw(x)
    h, w = _pair(size, "size")
    height, width = x.shape[-2:]
    if h > height or w > width:
        raise ValueError(
            f"Cannot crop a {h}x{w} window from images of size {height}x{width}."
        )
    top = round((height - h) / 2.0)
    left = round((width - w) / 2.0)
    return x[..., top : top + h, left : left + w].contiguous()


def to_minus1_1(x: torch.Tensor) -> torch.Tensor:
    """Map pixel values on the 0..255 scale to [-1, 1] as ``2 * (x / 255) - 1``.

    This is ``normalize_minus1_1`` of Golan & El-Yaniv's code, applied after the uint8
    images are cast to float32.

    Parameters
    ----------
    x : torch.Tensor
        Values in [0, 255].

    Returns
    -------
    scaled : torch.Tensor
        A new float tensor with values in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.images import to_minus1_1
    >>> to_minus1_1(torch.tensor([0.0, 127.5, 255.0])).tolist()
    [-1.0, 0.0, 1.0]
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}.")
    if not x.is_floating_point():
        x = x.float()
    return 2.0 * (x / 255.0) - 1.0
