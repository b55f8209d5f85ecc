"""The input side of TorchFeatureExtractor: files, images or vectors -> network input.

A mixin of :class:`~sklearn_ood.TorchFeatureExtractor` (kept apart so that each
file reads in one sitting): what ``fit``, ``transform`` and ``network_input``
accept, how it is checked (layout, channels, finiteness, pixel range) and how a
batch becomes float32 network input with torch operations.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy import sparse
from sklearn.utils.validation import validate_data

from . import images as _images
from ._image_files import is_file_source
from .images import check_images
from .nn._pixels import apply_preprocessing, pixel_range

# Float images are read as [0, 1] pixels under input_range="auto"; values outside
# this interval are refused. The margin covers the overshoot of a bicubic resize
# (Keys' kernel, a = -0.75: at most 0.1875 per axis, 1.1875**2 - 1 < 0.41 in 2-D),
# while a 0..255 image only fits if it is nearly black.
FLOAT_RANGE = (-0.5, 1.5)


class _Vectors:
    """Validated 2-D float32 input and whether it was uint8 before validation."""

    def __init__(self, data, is_uint8: bool) -> None:
        self.data = data
        self.is_uint8 = is_uint8
        self.shape = data.shape

    def __getitem__(self, key) -> _Vectors:
        return _Vectors(self.data[key], self.is_uint8)


class ExtractorInputMixin:
    """Input validation and conversion of TorchFeatureExtractor."""

    def _as_input(self, X):
        """``(X, kind)``: kind is "images", "vectors" or "files" (a list)."""
        if sparse.issparse(X):
            raise TypeError(
                "Sparse data was passed for X, but dense data is required. Use "
                "'.toarray()' to convert to a dense numpy array."
            )
        if isinstance(X, (str, os.PathLike)):  # one file or a folder
            return self._load_files(X), "images"
        if is_file_source(X):
            return list(X), "files"
        if not isinstance(X, torch.Tensor) and not (
            hasattr(X, "shape") and hasattr(X, "__getitem__")
        ):
            try:
                X = np.asarray(X)
            except ValueError as exc:  # e.g. a list of images of different sizes
                raise ValueError(
                    "X could not be converted to one array (images of different "
                    f"sizes?): {exc}. Pass equal-sized images, or a list of image "
                    "files / PIL images, which are loaded at the network's input "
                    "size."
                ) from exc
        ndim = len(X.shape)
        if ndim in (3, 4):
            return X, "images"
        if (self._has_conv and ndim < 3) or ndim > 4:
            check_images(X)  # raises the layout error, with a reshape hint for 2-D
        return X, "vectors"

    def _checked_input(self, X):
        """Validated input of a fitted extractor: a list of files, a _Vectors,
        or images (checked for finiteness and pixel range)."""
        X, kind = self._as_input(X)
        if kind == "files":
            if self._input_kind != "images":
                raise ValueError(
                    "TorchFeatureExtractor was fitted on vectors but X is a list of "
                    "image files."
                )
            return X
        if kind != self._input_kind:
            raise ValueError(
                f"TorchFeatureExtractor was fitted on {self._input_kind} but X holds "
                f"{kind} (shape {tuple(X.shape)})."
            )
        if kind == "vectors":
            return self._validate_vectors(X, reset=False)
        if X.shape[0] == 0:
            check_images(X)  # raises the empty-input error
        self._scan_images(X)
        return X

    def _load_files(self, files) -> np.ndarray:
        # The command line's rule: grey for a one-channel network, else RGB.
        mode = "L" if self.input_channels_ == 1 else "RGB"
        return _images.load_images(
            files, size=self.preprocessing_["load_size"], mode=mode
        )

    def _validate_vectors(self, X, *, reset: bool) -> _Vectors:
        """scikit-learn validation of 2-D input; remembers whether it was uint8."""
        if isinstance(X, torch.Tensor) and X.requires_grad:
            # Keep the graph: check the values on a detached copy only.
            validate_data(self, X.detach().cpu().numpy(), reset=reset)
            return _Vectors(X, X.dtype == torch.uint8)
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        is_uint8 = getattr(X, "dtype", None) == np.uint8
        return _Vectors(validate_data(self, X, dtype=np.float32, reset=reset), is_uint8)

    def _scan_images(self, X) -> None:
        """Layout, channels, finiteness and pixel range of all of ``X``."""
        _, info = check_images(X[:1].detach() if isinstance(X, torch.Tensor) else X[:1])
        self._check_channels(info.input_channels)
        check_range = self.input_range == "auto" and not info.was_uint8
        if not (check_range or info.input_dtype.startswith(("float", "bfloat"))):
            return
        finite, low, high = pixel_range(X)
        if not finite:
            raise ValueError("Input X contains NaN or infinity.")
        if check_range and (low < FLOAT_RANGE[0] or high > FLOAT_RANGE[1]):
            raise ValueError(
                f"X holds {info.input_dtype} images with values in [{low:g}, "
                f"{high:g}], but TorchFeatureExtractor reads images that are not "
                "uint8 as pixels on the [0, 1] scale (input_range='auto'). For "
                "images on the 0..255 scale set input_range=255.0 (or pass uint8 "
                "images); for input that is already scaled or normalised for the "
                "network, set input_range=1.0."
            )

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

    def _network_batch(self, xb, device: torch.device) -> torch.Tensor:
        """One checked batch -> float32 network input on ``device``."""
        if isinstance(xb, _Vectors):
            data = xb.data
            if isinstance(data, torch.Tensor):
                x = data.to(device=device, dtype=torch.float32, copy=True)
            else:
                x = torch.from_numpy(np.array(data, dtype=np.float32)).to(device)
            scale = self._scale(xb.is_uint8)
            return x / scale if scale != 1.0 else x
        if isinstance(xb, list):
            xb = self._load_files(xb)
        if isinstance(xb, torch.Tensor):  # torch ops only: gradients reach X
            _, info = check_images(xb[:1].detach())
            x = xb.to(device=device, dtype=torch.float32, copy=True)
            x = x.unsqueeze(1) if info.layout == "NHW" else x
        else:
            x, info = check_images(xb)
            x = x.to(device)
        self._check_channels(info.input_channels)
        channels = self.input_channels_
        if channels is not None and x.shape[1] != channels:
            x = x.expand(-1, channels, -1, -1)
        scale = self._scale(info.was_uint8)
        if scale != 1.0:
            x = x / scale
        return apply_preprocessing(x, self.preprocessing_)

    def _batches(self, X):
        """Yield ``(start, batch)``; files of every batch must have one size."""
        n = len(X) if isinstance(X, list) else X.shape[0]
        first_size = None
        for start in range(0, n, self.batch_size):
            xb = X[start : start + self.batch_size]
            if isinstance(xb, list):
                xb = self._load_files(xb)
                if first_size is None:
                    first_size = xb.shape[1:3]
                elif xb.shape[1:3] != first_size:
                    raise ValueError(
                        f"The image files have different sizes ({first_size} and "
                        f"{xb.shape[1:3]}); set the 'image_size' parameter of "
                        "TorchFeatureExtractor so that they are resized."
                    )
            yield start, xb
