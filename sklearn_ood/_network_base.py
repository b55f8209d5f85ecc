"""Shared base of the detectors that train their own network on images.

:class:`~sklearn_ood.DirichletTransformDetector` (geometric transformations),
:class:`~sklearn_ood.CenterLossDetector` and
:class:`~sklearn_ood.MetricLearningDetector` differ in their loss and their
score; everything else is written once here:

- **parameters**: ``network``, ``network_kwargs``, ``epochs``, ``batch_size``,
  ``lr``, ``optimizer``, ``weight_decay``, ``lr_schedule``, ``device``,
  ``random_state``, ``verbose``, ``validation_fraction``, ``cv`` and
  ``contamination``: same names, same constraints, same meaning;
- **input**: images ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, uint8
  (divided by 255) or float (used as given), NumPy or torch (see
  :func:`sklearn_ood.images.check_images`); scoring requires the image shape and
  pixel type seen at fit; copies of one image are refused (nothing to learn);
- **build**: ``network`` is None (the detector's paper architecture), a class
  (called with the arguments derived from the data when it is a subclass of a
  default architecture, then ``network_kwargs``) or an instance (deep-copied,
  never modified); images smaller than an architecture's minimum size, or that
  the network cannot process, are refused with an error naming ``X``;
- **training**: the one loop :func:`sklearn_ood.nn.train_module`, with local
  seeding; ``history_`` records the per-epoch mean losses;
- **inference**: batched, under ``inference_mode``, with the network in eval
  mode on ``device`` (moved only through ``_module_on_device``), results on the
  CPU and independent of ``batch_size``; non-finite outputs are reported as an
  input problem;
- **calibration** (see :mod:`sklearn_ood.base`): a network memorises its
  training images, so the calibration scores come from images it did not
  train on. ``validation_fraction > 0`` holds out that share of the
  in-distribution images (stratified by class), trains on the rest and scores
  the held-out images. ``validation_fraction=0`` trains the final network on
  every image and takes the calibration scores from cross-fitting: ``cv``
  extra networks, each trained on all folds but one and scoring the images of
  that fold (cross-conformal calibration: every row gets a score, so
  ``fit_predict`` flags exactly ``floor(contamination * n)`` rows). It costs
  ``cv`` more trainings; in-sample scores would be cheaper but are biased
  towards "normal" (the network has memorised them), so ``predict`` would flag
  more new normal images than ``contamination`` says.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._image_files import is_file_source
from .base import BaseDetector
from .images import check_images, load_images
from .nn._device import DEVICE_CONSTRAINT, TorchEstimatorMixin, resolve_device
from .nn._training import build_module, predict_batches, train_module

__all__ = ["BaseNetworkDetector"]

_OPTIMIZERS = ("adam", "adamw", "sgd")


def _is_optimizer_class(value) -> bool:
    return isinstance(value, type) and issubclass(value, torch.optim.Optimizer)


def _outputs_finite(out) -> bool:
    if isinstance(out, torch.Tensor):
        return bool(torch.isfinite(out).all())
    if isinstance(out, (tuple, list)):
        return all(_outputs_finite(o) for o in out)
    if isinstance(out, dict):
        return all(_outputs_finite(o) for o in out.values())
    return True


class BaseNetworkDetector(TorchEstimatorMixin, BaseDetector):
    """Base class of the detectors that train a torch network on images.

    Subclasses merge ``BaseNetworkDetector._parameter_constraints`` into theirs
    and implement:

    - ``_default_epochs()``: the number of epochs ``epochs=None`` means;
    - ``_prepare(X, y, X_outliers)``: check the labels and set up what does
      not depend on the training rows (``classes_`` when the detector uses
      classes); return integer class codes of the in-distribution rows (or
      None), which stratify the splits;
    - ``_fit_network(X, codes, X_outliers, rng)``: train the network on the
      float32 ``(N, C, H, W)`` images ``X`` (raw pixel scale) and fit every
      statistic the score needs, setting ``module_``, ``history_`` and the
      detector's own attributes;
    - ``_score(X)``: scores of validated images.

    They use ``_build(...)``, ``_train(...)`` and ``_forward(...)`` for the
    network, and ``_pixels(x)`` for the pixel scaling of a batch.
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "network": [None, callable, nn.Module],
        "network_kwargs": [dict, None],
        "epochs": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0.0, None, closed="neither")],
        "optimizer": [StrOptions(set(_OPTIMIZERS)), type],
        "weight_decay": [Interval(Real, 0.0, None, closed="left")],
        "lr_schedule": [None, tuple, list, dict],
        "device": DEVICE_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "validation_fraction": [Interval(Real, 0.0, 1.0, closed="left")],
        "cv": [Interval(Integral, 2, None, closed="left")],
    }

    # -- input --------------------------------------------------------------
    def _validate_fit_input(self, X):
        if is_file_source(X):
            # Image files / PIL images at their own (common) size, grey or RGB
            # as the files are (sklearn_ood.images.load_images).
            X = load_images(X)
        x, info = check_images(X, name="X")
        self.image_shape_ = tuple(int(s) for s in x.shape[1:])
        self._input_info = info
        return x

    def _validate_score_input(self, X):
        if is_file_source(X):
            # New files are brought to the training images' size and channels.
            channels, height, width = self.image_shape_
            X = load_images(
                X, size=(height, width), mode="L" if channels == 1 else "RGB"
            )
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

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel scaling of a batch: uint8 input (0..255) to [0, 1], floats as given."""
        return x / 255.0 if self._input_info.was_uint8 else x

    def _value_range(self, x: torch.Tensor) -> str:
        return f"[{float(x.min()):.4g}, {float(x.max()):.4g}]"

    # -- fit: splits and calibration ----------------------------------------
    def _fit(self, X, y, X_outliers):
        name = type(self).__name__
        self._clear_torch_cache()
        n = X.shape[0]
        if bool((X == X[:1]).all()):
            raise ValueError(
                f"X holds {n} identical images (e.g. constant images of one "
                f"value): {name} learns from the differences between images and "
                "needs at least two different in-distribution images."
            )
        codes = self._prepare(X, y, X_outliers)
        self.epochs_ = (
            int(self._default_epochs()) if self.epochs is None else int(self.epochs)
        )
        rng = check_random_state(self.random_state)
        if self.validation_fraction > 0:
            fit_idx, hold_idx = self._holdout_split(n, codes, rng)
            self._fit_network(*self._rows(X, codes, fit_idx), X_outliers, rng)
            return self._score(X[torch.from_numpy(hold_idx)]), hold_idx
        scores = np.empty(n)
        for train, test in self._cross_fit_folds(n, codes, rng):
            self._fit_network(*self._rows(X, codes, train), X_outliers, rng)
            scores[test] = self._score(X[torch.from_numpy(test)])
        self._fit_network(X, codes, X_outliers, rng)
        return scores

    @staticmethod
    def _rows(X, codes, idx):
        return X[torch.from_numpy(idx)], None if codes is None else codes[idx]

    def _holdout_split(self, n_samples: int, y=None, random_state=None):
        """Indices (fit, holdout) for the network and for the calibration.

        The holdout share is ``validation_fraction`` (at least one sample, and
        at least one sample left to fit), stratified by ``y`` when given and
        every class can be split.
        """
        rng = check_random_state(random_state)
        n_hold = round(self.validation_fraction * n_samples)
        n_hold = min(max(n_hold, 1), n_samples - 1)
        if y is None:
            perm = rng.permutation(n_samples)
            hold = np.sort(perm[:n_hold])
        else:
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

    def _cross_fit_folds(self, n_samples: int, y, rng):
        """``cv`` (train, test) folds of the rows, stratified when possible."""
        k = int(self.cv)
        if n_samples < k:
            raise ValueError(
                f"With validation_fraction=0, {type(self).__name__} takes its "
                f"calibration scores from cv={k} cross-fitted networks, which "
                f"needs at least {k} in-distribution images; got {n_samples}. "
                "Lower cv or use validation_fraction > 0."
            )
        seed = rng.randint(np.iinfo(np.int32).max)
        if y is not None and np.bincount(y).min() >= k:
            splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros(n_samples), y))
        splitter = KFold(k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n_samples)))

    # -- build, train, infer --------------------------------------------------
    def _build(self, defaults: dict, default: type, rng, probe: torch.Tensor):
        """Build ``network`` (see the module docstring) and run it on two images.

        Returns the module (in train mode) and its output on ``probe[:2]``.

        ``defaults`` maps default architectures to the keyword arguments the
        detector derives from the data; a ``network`` class that subclasses one
        of them gets those, then ``network_kwargs``.
        """
        network = default if self.network is None else self.network
        derived = {}
        if isinstance(network, type):
            for arch, kwargs in defaults.items():
                if issubclass(network, arch):
                    derived = kwargs
                    self._check_min_size(
                        network, {**kwargs, **(self.network_kwargs or {})}
                    )
                    break
        module = build_module(
            network,
            self.network_kwargs,
            default=default,
            default_kwargs=derived,
            random_state=rng,
        )
        return module, self._probe(module, probe)

    def _check_min_size(self, arch: type, kwargs: dict) -> None:
        min_size = getattr(arch, "min_input_size", None)
        if min_size is None:
            return
        need = int(min_size(**{k: v for k, v in kwargs.items() if k == "padding"}))
        h, w = self.image_shape_[1:]
        if min(h, w) < need:
            raise ValueError(
                f"X has images of {h}x{w} pixels, smaller than the {need}x{need} "
                f"that {arch.__name__} (the network of {type(self).__name__}) "
                "needs to produce features; pad or resize the images to at least "
                f"{need}x{need}, or pass a network for smaller images."
            )

    def _probe(self, module: nn.Module, x: torch.Tensor):
        """Output of ``_probe_forward`` on two images (eval mode, no gradient).

        An error of the network on them (too small for its receptive field,
        wrong channel count, ...) is raised again naming X's image size.
        """
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return self._probe_forward(module, self._pixels(x[:2]))
        except (RuntimeError, ValueError) as exc:
            h, w = self.image_shape_[1:]
            raise ValueError(
                f"The network of {type(self).__name__} cannot process the images "
                f"of X ({self.image_shape_[0]} channel(s), {h}x{w} pixels): "
                f"{exc} Pass images the network accepts (for a convolutional "
                "network, at least its receptive field) or another network."
            ) from exc
        finally:
            module.train(was_training)

    def _probe_forward(self, module, x):
        """The forward pass that ``_probe`` checks (the module's ``forward``)."""
        return module(x)

    def _train(self, module, loss_fn, data, rng, *, X, stage="network", **kwargs):
        """Train with the shared parameters; failures name X's value range."""
        options = {
            "epochs": self.epochs_,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "lr_schedule": self.lr_schedule,
            "batch_size": self.batch_size,
            **kwargs,
        }
        if not (
            isinstance(options["optimizer"], str)
            or _is_optimizer_class(options["optimizer"])
        ):
            raise ValueError(
                f"The 'optimizer' parameter of {type(self).__name__} must be one "
                f"of {set(_OPTIMIZERS)} or a torch.optim.Optimizer subclass. Got "
                f"{options['optimizer']!r} instead."
            )
        name = type(self).__name__
        try:
            history = train_module(
                module,
                loss_fn,
                data,
                device=resolve_device(self.device),
                random_state=rng,
                verbose=int(self.verbose),
                desc=f"{name} {stage}",
                stage=stage,
                **options,
            )
        except FloatingPointError as exc:
            raise ValueError(
                f"Training the {stage} of {name} diverged: {exc} X holds pixel "
                f"values in {self._value_range(X)}; rescale them (uint8 0..255 or "
                "floats in [0, 1]) or lower 'lr'."
            ) from exc
        state = module.state_dict().values()
        if not all(
            bool(torch.isfinite(t).all()) for t in state if t.is_floating_point()
        ):
            raise ValueError(
                f"Training the {stage} of {name} left non-finite weights or "
                f"statistics (float32 overflow): X holds pixel values in "
                f"{self._value_range(X)}; rescale them to a moderate range "
                "(uint8 0..255 or floats in [0, 1])."
            )
        return history

    def _forward(self, fn, x, *, attr="module_", preprocess=None):
        """``fn(module)(batch)`` over ``x`` in batches on ``device``, CPU output.

        ``fn`` turns the module on the device into the function of a batch
        (e.g. ``lambda m: m.forward_features``); ``preprocess`` defaults to the
        pixel scaling. Non-finite outputs raise an error that names X.
        """
        device = resolve_device(self.device)
        module = self._module_on_device(attr, device)
        out = predict_batches(
            fn(module),
            x,
            batch_size=self.batch_size,
            device=device,
            preprocess=self._pixels if preprocess is None else preprocess,
            module=module,
        )
        if not _outputs_finite(out):
            raise ValueError(
                f"The network of {type(self).__name__} gives non-finite outputs "
                f"on X (pixel values in {self._value_range(x)}): pass images on "
                "the scale used in fit (uint8 0..255 or floats in [0, 1])."
            )
        return out

    def _finish_module(self, module: nn.Module) -> nn.Module:
        """A trained module as stored: on the CPU, in eval mode."""
        self._clear_torch_cache()
        return module.to("cpu").eval()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    # -- hooks ----------------------------------------------------------------
    def _default_epochs(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, X, y, X_outliers):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_network(self, X, codes, X_outliers, rng):  # pragma: no cover
        raise NotImplementedError
