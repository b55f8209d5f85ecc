"""Torch building blocks of the detectors that train a network.

What a user needs to build, train or run the networks of sklearn-ood's
detectors, or their own:

- architectures: :class:`WideResNet` (GEOM), :class:`LeNet` (center loss,
  metric learning), :class:`VGGEmbedding` (metric learning), :class:`MLPHead`;
  pretrained backbones live in :mod:`sklearn_ood.backbones`;
- losses: :class:`CenterLoss`, :class:`ContrastiveLoss`;
- transformations: :class:`GeometricTransformations` and its ``PRESETS``;
- training and inference: :func:`train_module` (the one training loop),
  :class:`TrainingHistory`, :func:`predict_batches`, :func:`build_module`;
- devices and threads: :func:`resolve_device`, :class:`DeviceWarning`,
  :func:`torch_threads`.

Helpers for seeding, pickling and weight remapping stay private.
"""

from ._architectures import LeNet, MLPHead, VGGEmbedding, WideResNet
from ._device import DeviceWarning, resolve_device, torch_threads
from ._losses import CenterLoss, ContrastiveLoss
from ._training import TrainingHistory, build_module, predict_batches, train_module
from ._transforms import PRESETS, GeometricTransformations

__all__ = [
    "PRESETS",
    "CenterLoss",
    "ContrastiveLoss",
    "DeviceWarning",
    "GeometricTransformations",
    "LeNet",
    "MLPHead",
    "TrainingHistory",
    "VGGEmbedding",
    "WideResNet",
    "build_module",
    "predict_batches",
    "resolve_device",
    "torch_threads",
    "train_module",
]
