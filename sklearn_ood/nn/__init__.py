"""Torch building blocks shared by the detectors that train or run a network.

Architectures (Wide ResNet, LeNet, MLP head, VGG embedding, EfficientNet-Lite0),
losses (center, contrastive), geometric transformations, pair sampling, and the
shared training loop, batched inference, device and seeding helpers.
"""

from ._architectures import LeNet, MLPHead, VGGEmbedding, WideResNet
from ._device import (
    cpu_state_dict,
    draw_seed,
    resolve_device,
    seeded_torch_rng,
    torch_generator,
    torch_threads,
)
from ._efficientnet import (
    LITE0_BLOCK_ARGS,
    EfficientNetLite0,
    remap_lukemelas_state_dict,
)
from ._losses import CenterLoss, ContrastiveLoss
from ._pairs import PairSampler, sample_pairs
from ._training import (
    TorchEstimatorMixin,
    TrainingHistory,
    build_module,
    predict_batches,
    train_module,
)
from ._transforms import PRESETS, GeometricTransformations

__all__ = [
    "LITE0_BLOCK_ARGS",
    "PRESETS",
    "CenterLoss",
    "ContrastiveLoss",
    "EfficientNetLite0",
    "GeometricTransformations",
    "LeNet",
    "MLPHead",
    "PairSampler",
    "TorchEstimatorMixin",
    "TrainingHistory",
    "VGGEmbedding",
    "WideResNet",
    "build_module",
    "cpu_state_dict",
    "draw_seed",
    "predict_batches",
    "remap_lukemelas_state_dict",
    "resolve_device",
    "sample_pairs",
    "seeded_torch_rng",
    "torch_generator",
    "torch_threads",
    "train_module",
]
