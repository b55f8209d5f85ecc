"""Networks of the papers the detectors reproduce.

- :class:`WideResNet`: the pre-activation Wide ResNet of Golan & El-Yaniv (2018).
- :class:`LeNet`: LeNet-5 with max-pooling and ReLU, as modified by Varedzhan et al.
  (2021).
- :class:`MLPHead`: the supervised anomaly head of Varedzhan et al. (2021).
- :class:`VGGEmbedding`: the VGG-style embedding network of Masana et al. (2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["LeNet", "MLPHead", "VGGEmbedding", "WideResNet"]


def _check_int(value, name: str, cls: str, low: int = 1) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
    ):
        raise ValueError(
            f"The '{name}' parameter of {cls} must be an integer >= {low}. "
            f"Got {value!r} instead."
        )
    return int(value)


def _check_rate(value, name: str, cls: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not 0.0 <= float(value) < 1.0
    ):
        raise ValueError(
            f"The '{name}' parameter of {cls} must be a float in [0, 1). "
            f"Got {value!r} instead."
        )
    return float(value)


def _check_size(value, name: str, cls: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in value
        )
    ):
        raise ValueError(
            f"The '{name}' parameter of {cls} must be a positive integer or a pair "
            f"(height, width). Got {value!r} instead."
        )
    return int(value[0]), int(value[1])


# --------------------------------------------------------------------------------------
# Wide ResNet (Golan & El-Yaniv 2018)
# --------------------------------------------------------------------------------------


def _he_normal_(weight: torch.Tensor) -> None:
    """Normal init with std sqrt(2 / fan_in), fan_in = kh * kw * C_in (Keras code)."""
    fan_in = weight[0].numel()
    nn.init.normal_(weight, mean=0.0, std=math.sqrt(2.0 / fan_in))


def _keras_dense_(linear: nn.Linear) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) kernel, zero bias."""
    bound = 1.0 / math.sqrt(linear.in_features)
    nn.init.uniform_(linear.weight, -bound, bound)
    nn.init.zeros_(linear.bias)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False
    )
    _he_normal_(conv.weight)
    return conv


def _bn(channels: int) -> nn.BatchNorm2d:
    # Keras momentum 0.9 (keeps 0.9 of the old running value) = PyTorch momentum 0.1.
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class WideBasicBlock(nn.Module):
    """Pre-activation basic block of the Wide ResNet.

    ``b = ReLU(BN(x))``; ``out = Conv3x3(Dropout(ReLU(BN(Conv3x3_s(b)))))``; the
    shortcut is ``x`` when the channel count is unchanged and otherwise a strided 1x1
    convolution of ``b`` (the pre-activated input, not ``x``).

    Parameters
    ----------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    stride : int
        Stride of the first convolution and of the shortcut convolution.
    dropout : float
        Dropout rate between the two convolutions.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, dropout: float
    ) -> None:
        super().__init__()
        self.bn1 = _bn(in_channels)
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.bn2 = _bn(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv(out_channels, out_channels, 3, 1)
        self.shortcut = (
            _conv(in_channels, out_channels, 1, stride)
            if in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = torch.relu(self.bn1(x))
        out = self.conv1(b)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + (x if self.shortcut is None else self.shortcut(b))


class WideResNet(nn.Module):
    """Pre-activation Wide ResNet WRN-depth-k of Golan & El-Yaniv (2018).

    Follows ``models/wide_residual_network.py`` of
    izikgo/AnomalyDetectionTransformations: a 3x3 stem convolution with 16
    channels, three groups of ``n = (depth - 4) / 6`` :class:`WideBasicBlock` with
    ``16k, 32k, 64k`` channels and strides 1, 2, 2, then BN, ReLU, average pooling,
    flatten and a dense layer.

    Parameters
    ----------
    depth : int, default=10
        ``6 n + 4`` with ``n >= 1`` (10 for CIFAR-10/100 and Fashion-MNIST, 16 for
        Cats-vs-Dogs in the paper).
    widen_factor : int, default=4
        ``k`` (4 in the paper, 8 for Cats-vs-Dogs).
    num_classes : int, default=72
        Outputs of the (transformation) head.
    in_channels : int, default=3
        Input channels.
    dropout : float, default=0.0
        Dropout rate inside the blocks; the paper's experiments use none.
    num_classes_aux : int, optional
        If set, a second dense head on the same pooled features (the two-headed
        multi-class variant of the paper's Sec. 5.5) and ``forward`` returns the pair
        ``(logits, aux_logits)``.

    Attributes
    ----------
    feature_dim : int
        Size of the pooled features, ``64 k``.

    Notes
    -----
    Initialisation as in the original: convolutions have no bias and normal weights
    with std ``sqrt(2 / fan_in)``; dense layers ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    weights and zero bias; BatchNorm momentum 0.1 (Keras 0.9) and eps 1e-5.

    The original regularises every weight (conv, dense kernel and bias, BN gamma and
    beta) with a Keras L2 term ``2.5e-4 * sum(w**2)``; the detector must reproduce it
    as *coupled* L2, ``torch.optim.Adam(..., weight_decay=5e-4)`` on all parameters
    (not AdamW).

    Deviations: the final pooling is global (adaptive) so any input size works; the
    original's ``AveragePooling2D(8)`` is global only for 32x32 inputs (for 64x64
    inputs it leaves a 2x2 map). PyTorch pads stride-2 convolutions symmetrically
    while TensorFlow's 'same' padding pads at the bottom/right; the output sizes are
    equal.

    References
    ----------
    I. Golan and R. El-Yaniv. Deep Anomaly Detection Using Geometric Transformations.
    NeurIPS 2018. S. Zagoruyko and N. Komodakis. Wide Residual Networks. BMVC 2016.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import WideResNet
    >>> net = WideResNet(depth=10, widen_factor=1, num_classes=72, in_channels=1)
    >>> tuple(net(torch.zeros(2, 1, 32, 32)).shape)
    (2, 72)
    >>> tuple(net.forward_features(torch.zeros(2, 1, 32, 32)).shape)
    (2, 64)
    """

    def __init__(
        self,
        depth: int = 10,
        widen_factor: int = 4,
        num_classes: int = 72,
        in_channels: int = 3,
        dropout: float = 0.0,
        num_classes_aux: int | None = None,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        depth = _check_int(depth, "depth", cls, low=10)
        if (depth - 4) % 6 != 0:
            raise ValueError(
                f"The 'depth' parameter of {cls} must be 6n + 4 (10, 16, 22, ...). "
                f"Got {depth!r} instead."
            )
        widen_factor = _check_int(widen_factor, "widen_factor", cls)
        num_classes = _check_int(num_classes, "num_classes", cls)
        in_channels = _check_int(in_channels, "in_channels", cls)
        dropout = _check_rate(dropout, "dropout", cls)
        if num_classes_aux is not None:
            num_classes_aux = _check_int(num_classes_aux, "num_classes_aux", cls)

        n_blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.depth = depth
        self.widen_factor = widen_factor
        self.feature_dim = widths[3]

        self.conv1 = _conv(in_channels, widths[0], 3, 1)
        groups = []
        in_ch = widths[0]
        for out_ch, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for i in range(n_blocks):
                blocks.append(
                    WideBasicBlock(in_ch, out_ch, stride if i == 0 else 1, dropout)
                )
                in_ch = out_ch
            groups.append(nn.Sequential(*blocks))
        self.group1, self.group2, self.group3 = groups
        self.bn = _bn(widths[3])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        _keras_dense_(self.fc)
        self.fc_aux = None
        if num_classes_aux is not None:
            self.fc_aux = nn.Linear(widths[3], num_classes_aux)
            _keras_dense_(self.fc_aux)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the pooled penultimate features.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Input images.

        Returns
        -------
        torch.Tensor of shape (N, 64 * widen_factor)
            Globally pooled features of the last group.
        """
        out = self.group3(self.group2(self.group1(self.conv1(x))))
        out = torch.relu(self.bn(out))
        return torch.flatten(self.pool(out), 1)

    def forward(
        self, x: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Compute the logits (and those of the auxiliary head, if any).

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Input images.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Logits ``(N, num_classes)``, or ``(logits, aux_logits)`` with an
            auxiliary head.
        """
        features = self.forward_features(x)
        logits = self.fc(features)
        if self.fc_aux is None:
            return logits
        return logits, self.fc_aux(features)


# --------------------------------------------------------------------------------------
# LeNet (Varedzhan et al. 2021)
# --------------------------------------------------------------------------------------


class LeNet(nn.Module):
    """LeNet-5 with max-pooling and ReLU (Varedzhan et al., 2021).

    ``conv 6@5x5 (padding) -> ReLU -> maxpool 2 -> conv 16@5x5 -> ReLU -> maxpool 2
    -> fc 120 -> ReLU -> fc feature_dim [-> ReLU] -> fc num_classes``. The deep
    features are the last hidden layer (84-d in LeNet-5).

    Parameters
    ----------
    in_channels : int, default=1
        Input channels.
    num_classes : int, default=10
        Outputs of the classifier.
    feature_dim : int, default=84
        Size of the last hidden layer, the deep features (e.g. 2 or 5 for a
        metric-learning embedding).
    input_size : int or (int, int), default=28
        Spatial input size, used to size the first dense layer; other sizes are
        rejected in ``forward``.
    padding : int, default=2
        Padding of the first convolution: 2 gives the classic 16x5x5 map for 28x28
        input; use 0 with 32x32 input for the original LeNet-5 layout.
    feature_activation : bool, default=True
        Apply ReLU to the features (a hidden layer, as in the paper). Use ``False``
        for a linear embedding (metric learning), which is not confined to the
        positive orthant.

    Notes
    -----
    The paper does not give the initialisation; PyTorch's defaults are used.

    References
    ----------
    E. Varedzhan, A. Yurkov, A. Ushenin. Anomaly Detection in Image Datasets Using
    Convolutional Neural Networks, Center Loss, and Mahalanobis Distance. 2021.
    Y. LeCun et al. Gradient-based learning applied to document recognition. 1998.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import LeNet
    >>> features, logits = LeNet()(torch.zeros(4, 1, 28, 28))
    >>> tuple(features.shape), tuple(logits.shape)
    ((4, 84), (4, 10))
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        feature_dim: int = 84,
        input_size: int | tuple[int, int] = 28,
        padding: int = 2,
        feature_activation: bool = True,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        in_channels = _check_int(in_channels, "in_channels", cls)
        num_classes = _check_int(num_classes, "num_classes", cls)
        feature_dim = _check_int(feature_dim, "feature_dim", cls)
        padding = _check_int(padding, "padding", cls, low=0)
        self.input_size = _check_size(input_size, "input_size", cls)

        def after(size: int) -> int:
            size = (size + 2 * padding - 4) // 2  # conv1 5x5, maxpool 2
            return (size - 4) // 2  # conv2 5x5, maxpool 2

        h, w = (after(s) for s in self.input_size)
        if h < 1 or w < 1:
            raise ValueError(
                f"The 'input_size' parameter of {cls} is too small: {self.input_size} "
                f"with padding {padding} leaves no spatial output."
            )
        self.feature_dim = feature_dim
        self.feature_activation = bool(feature_activation)
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=padding)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * h * w, 120)
        self.fc2 = nn.Linear(120, feature_dim)
        self.fc3 = nn.Linear(feature_dim, num_classes)

    @staticmethod
    def min_input_size(padding: int = 2) -> int:
        """Return the smallest image side that leaves a spatial output.

        Two valid 5x5 convolutions (the first padded by ``padding``), each
        followed by a 2x2 max-pooling, need ``16 - 2 * padding`` pixels.

        Parameters
        ----------
        padding : int, default=2
            Padding of the first convolution.

        Returns
        -------
        size : int
            The minimum height and width (12 for the default padding).

        Examples
        --------
        >>> from sklearn_ood.nn import LeNet
        >>> LeNet.min_input_size(), LeNet.min_input_size(padding=0)
        (12, 16)
        """
        return max(1, 16 - 2 * int(padding))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the deep features (the last hidden layer).

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Input images of the size given by ``input_size``.

        Returns
        -------
        torch.Tensor of shape (N, feature_dim)
            The deep features.
        """
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"LeNet was built for {self.input_size[0]}x{self.input_size[1]} inputs "
                f"(input_size); got {x.shape[-2]}x{x.shape[-1]}."
            )
        out = self.pool(torch.relu(self.conv1(x)))
        out = self.pool(torch.relu(self.conv2(out)))
        out = torch.relu(self.fc1(torch.flatten(out, 1)))
        out = self.fc2(out)
        return torch.relu(out) if self.feature_activation else out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the deep features and the logits.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Input images of the size given by ``input_size``.

        Returns
        -------
        features : torch.Tensor of shape (N, feature_dim)
            The deep features (:meth:`forward_features`).
        logits : torch.Tensor of shape (N, num_classes)
            ``fc3(features)``.
        """
        features = self.forward_features(x)
        return features, self.fc3(features)


# --------------------------------------------------------------------------------------
# MLP head (Varedzhan et al. 2021)
# --------------------------------------------------------------------------------------


class MLPHead(nn.Module):
    """Binary anomaly head: dense 256 -> ReLU -> dense 256 -> ReLU -> dense 1.

    The supervised detector of Varedzhan et al. (2021) puts this head on the deep
    features and trains it with binary cross-entropy (main data = 1, anomalies = 0).
    It returns the *logit*: the paper's final sigmoid is part of the loss
    (:class:`torch.nn.BCEWithLogitsLoss`, numerically safer); apply
    :func:`torch.sigmoid` for a probability.

    Parameters
    ----------
    in_features : int
        Size of the input features.
    hidden : sequence of int, default=(256, 256)
        Widths of the hidden layers.
    dropout : float, default=0.0
        Dropout after each hidden ReLU (not in the paper).

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import MLPHead
    >>> tuple(MLPHead(84)(torch.zeros(5, 84)).shape)
    (5,)
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        in_features = _check_int(in_features, "in_features", cls)
        if not isinstance(hidden, Sequence) or isinstance(hidden, str):
            raise ValueError(
                f"The 'hidden' parameter of {cls} must be a sequence of positive "
                f"integers. Got {hidden!r} instead."
            )
        hidden = [_check_int(h, "hidden", cls) for h in hidden]
        dropout = _check_rate(dropout, "dropout", cls)
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the logits (higher = more likely main data).

        Parameters
        ----------
        x : torch.Tensor of shape (N, in_features)
            Deep features.

        Returns
        -------
        torch.Tensor of shape (N,)
            One logit per sample.
        """
        return self.layers(x).squeeze(-1)


# --------------------------------------------------------------------------------------
# VGG embedding (Masana et al. 2018)
# --------------------------------------------------------------------------------------


class VGGEmbedding(nn.Module):
    """VGG-style embedding network of Masana et al. (2018), without BatchNorm.

    ``[conv64 x2, maxpool] [conv128 x2, maxpool] [conv256 x2, maxpool]
    [conv512 x2, maxpool] [conv512 x2, avgpool] -> flatten -> fc512 -> ReLU ->
    dropout -> fc512 -> ReLU -> dropout -> fc embedding_dim`` (linear), ReLU after
    every 3x3 'same' convolution, 2x2 stride-2 pools.

    Parameters
    ----------
    in_channels : int, default=3
        Input channels.
    embedding_dim : int, default=10
        Size of the embedding (``num_feats`` in the original).
    width : int, default=1
        Divisor of every convolution and hidden dense width (``64 // width`` ...),
        for small test networks; 1 is the original.
    dropout : float, default=0.2
        Drop rate after fc6 and fc7 (the original's keep probability 0.8).
    input_size : int or (int, int), default=32
        Spatial input size, used to size fc6 (1x1x512 after the last pool at 32x32).

    Notes
    -----
    Initialisation as in ``src/models/vgg_net.py`` of mmasana/OoD_Mining: conv
    weights Xavier-uniform with bias 0.1; dense weights and biases N(0, 0.1^2).
    TensorFlow's 'SAME' pooling is reproduced with ``ceil_mode=True`` (identical for
    even sizes).

    References
    ----------
    M. Masana, I. Ruiz, J. Serrat, J. van de Weijer, A. M. Lopez. Metric Learning for
    Novelty and Anomaly Detection. BMVC 2018.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import VGGEmbedding
    >>> net = VGGEmbedding(width=16)
    >>> tuple(net(torch.zeros(2, 3, 32, 32)).shape)
    (2, 10)
    """

    def __init__(
        self,
        in_channels: int = 3,
        embedding_dim: int = 10,
        width: int = 1,
        dropout: float = 0.2,
        input_size: int | tuple[int, int] = 32,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        in_channels = _check_int(in_channels, "in_channels", cls)
        embedding_dim = _check_int(embedding_dim, "embedding_dim", cls)
        width = _check_int(width, "width", cls)
        dropout = _check_rate(dropout, "dropout", cls)
        self.input_size = _check_size(input_size, "input_size", cls)
        self.embedding_dim = embedding_dim

        layers: list[nn.Module] = []
        c_in = in_channels
        for stage, c in enumerate((64, 128, 256, 512, 512)):
            c_out = max(1, c // width)
            for _ in range(2):
                conv = nn.Conv2d(c_in, c_out, 3, padding=1)
                nn.init.xavier_uniform_(conv.weight)
                nn.init.constant_(conv.bias, 0.1)
                layers += [conv, nn.ReLU()]
                c_in = c_out
            pool = nn.AvgPool2d if stage == 4 else nn.MaxPool2d
            layers.append(pool(2, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)

        h, w = self.input_size
        for _ in range(5):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        hidden = max(1, 512 // width)
        self.fc6 = nn.Linear(c_in * h * w, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.fc8 = nn.Linear(hidden, embedding_dim)
        for fc in (self.fc6, self.fc7, self.fc8):
            nn.init.normal_(fc.weight, std=0.1)
            nn.init.normal_(fc.bias, std=0.1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the embedding.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Input images of the size given by ``input_size``.

        Returns
        -------
        torch.Tensor of shape (N, embedding_dim)
            The embedding.
        """
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"VGGEmbedding was built for {self.input_size[0]}x"
                f"{self.input_size[1]} inputs (input_size); got "
                f"{x.shape[-2]}x{x.shape[-1]}."
            )
        out = torch.flatten(self.features(x), 1)
        out = self.dropout(torch.relu(self.fc6(out)))
        out = self.dropout(torch.relu(self.fc7(out)))
        return self.fc8(out)
