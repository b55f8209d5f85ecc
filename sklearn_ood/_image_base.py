"""Shared base of the detectors that train their own network on images.

These detectors (geometric transformations, center loss, metric learning) take
images, not feature vectors: ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``,
uint8 or float, NumPy or torch (see :func:`sklearn_ood.images.check_images`).
They share:

- input validation (``_validate_fit_input`` / ``_validate_score_input``): images
  become a float32 ``(N, C, H, W)`` CPU tensor; the image shape seen at fit is
  stored in ``image_shape_`` and enforced when scoring;
- the offset rule of the contract for networks: a network memorises its
  training images, so ``offset_`` is computed on a held-out share
  (``validation_fraction``) of the training data that neither the network nor
  the fitted statistics saw (:meth:`_holdout_split`);
- pickling with fitted modules on the CPU
  (:class:`~sklearn_ood.nn.TorchEstimatorMixin`);
- scikit-learn tags saying the input is not a 2-D array.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .base import BaseDetector
from .images import check_images
from .nn._training import TorchEstimatorMixin

__all__ = ["BaseImageDetector"]


class BaseImageDetector(TorchEstimatorMixin, BaseDetector):
    """Base class of detectors that train a torch network on images.

    Subclasses declare their own parameters and merge
    ``BaseImageDetector._parameter_constraints`` into theirs; they implement
    ``_fit(X, y, X_outliers)`` (``X`` a float32 ``(N, C, H, W)`` tensor with the
    input's pixel scale, ``info`` in ``self._input_info``) and ``_score(X)``.
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"auto", "cpu", "cuda"}), str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "validation_fraction": [Interval(Real, 0.0, 1.0, closed="neither")],
    }

    def _validate_fit_input(self, X):
        x, info = check_images(X, name="X")
        self.image_shape_ = tuple(int(s) for s in x.shape[1:])
        self._input_info = info
        return x

    def _validate_score_input(self, X):
        x, info = check_images(X, name="X")
        if tuple(x.shape[1:]) != self.image_shape_:
            raise ValueError(
                f"X has images of shape {tuple(x.shape[1:])} (C, H, W) but "
                f"{type(self).__name__} was fitted on images of shape "
                f"{self.image_shape_}."
            )
        if info.was_uint8 != self._input_info.was_uint8:
            raise ValueError(
                f"X is {'uint8' if info.was_uint8 else 'float'} but "
                f"{type(self).__name__} was fitted on "
                f"{'uint8' if self._input_info.was_uint8 else 'float'} images; "
                "pass images on the same pixel scale as in fit."
            )
        return x

    def _holdout_split(self, n_samples: int, y=None, random_state=None):
        """Indices (fit, holdout) for the network and for ``offset_``.

        The holdout share is ``validation_fraction`` (at least one sample, and
        at least one sample left to fit), stratified by ``y`` when given.
        """
        rng = check_random_state(random_state)
        n_hold = round(self.validation_fraction * n_samples)
        n_hold = min(max(n_hold, 1), n_samples - 1)
        if y is None:
            perm = rng.permutation(n_samples)
            hold = np.sort(perm[:n_hold])
        else:
            from sklearn.model_selection import train_test_split

            _, counts = np.unique(y, return_counts=True)
            stratify = y if counts.min() >= 2 and n_hold >= len(counts) else None
            _, hold = train_test_split(
                np.arange(n_samples),
                test_size=n_hold,
                random_state=rng.randint(np.iinfo(np.int32).max),
                stratify=stratify,
            )
            hold = np.sort(hold)
        mask = np.ones(n_samples, dtype=bool)
        mask[hold] = False
        return np.flatnonzero(mask), hold

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags
