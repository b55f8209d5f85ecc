"""Narrow networks with torchvision's (and timm's) module names and forward passes.

torchvision cannot be installed beside the pinned torch here, so the layouts that
matter to feature extraction are written out: the same attribute names, the same
order of operations in ``forward``, far fewer channels. Each class has a
``penultimate(x)`` method that computes, step by step from its submodules, the
features a user means (the input of the final classifier layer); the tests compare
TorchFeatureExtractor's default output with it.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision.models.ResNet: conv1, bn1, relu, maxpool, layer1-4, avgpool, fc."""

    def __init__(self, num_classes=10, widths=(4, 8, 8, 16)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = widths[0]
        for i, planes in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            block = BasicBlock(inplanes, planes, stride)
            setattr(self, f"layer{i}", nn.Sequential(block))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)

    def penultimate(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class DenseNet(nn.Module):
    """torchvision.models.DenseNet: features, then relu, pooling, classifier."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                conv0=nn.Conv2d(3, 8, 3, 2, 1, bias=False),
                norm0=nn.BatchNorm2d(8),
                relu0=nn.ReLU(inplace=True),
                conv1=nn.Conv2d(8, 12, 3, 1, 1),
                norm5=nn.BatchNorm2d(12),
            )
        )
        self.classifier = nn.Linear(12, num_classes)

    def forward(self, x):
        out = F.relu(self.features(x), inplace=True)
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)

    def penultimate(self, x):
        out = F.relu(self.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)


class VGG(nn.Module):
    """torchvision.models.VGG: features, avgpool, classifier (a Sequential)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(8 * 4, 20),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(20, 20),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(20, num_classes),
        )

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)

    def penultimate(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:6](x)  # fc7 after its ReLU (dropout is off in eval)


def _conv_bn(cin, cout, stride, act):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), act()
    )


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2: features, pooling, classifier."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 2, nn.ReLU6), _conv_bn(8, 16, 2, nn.ReLU6)
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))

    def penultimate(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.features(x), (1, 1)), 1)


class MobileNetV3(nn.Module):
    """torchvision.models.MobileNetV3: classifier Linear, Hardswish, Dropout, Linear."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 2, nn.Hardswish), _conv_bn(8, 12, 2, nn.Hardswish)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(12, 24),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=0.2, inplace=True),
            nn.Linear(24, num_classes),
        )

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)

    def penultimate(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[1](self.classifier[0](x))


class EfficientNet(nn.Module):
    """torchvision.models.EfficientNet: features, avgpool, classifier."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 8, 2, nn.SiLU), _conv_bn(8, 20, 1, nn.SiLU)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.2, inplace=True), nn.Linear(20, num_classes)
        )

    def forward(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)

    def penultimate(self, x):
        return torch.flatten(self.avgpool(self.features(x)), 1)


class VisionTransformer(nn.Module):
    """torchvision.models.VisionTransformer: conv_proj, class token, encoder, heads."""

    def __init__(self, num_classes=10, patch=4, dim=12):
        super().__init__()
        self.patch, self.dim = patch, dim
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.linspace(-1, 1, dim).view(1, 1, dim))
        self.encoder = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim)
        )
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, num_classes)))

    def _tokens(self, x):
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.encoder(x)[:, 0]

    def forward(self, x):
        return self.heads(self._tokens(x))

    def penultimate(self, x):
        return self._tokens(x)


class TimmLike(nn.Module):
    """timm's interface: forward_features, forward_head(pre_logits), pretrained_cfg."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, num_classes)

    def forward_features(self, x):
        return self.act(self.conv_stem(x))

    def forward_head(self, x, pre_logits=False):
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def penultimate(self, x):
        return self.act(self.conv_stem(x)).mean(dim=(2, 3))


LAYOUTS = {
    "resnet": (ResNet, "fc", 16),
    "densenet": (DenseNet, "classifier", 12),
    "vgg": (VGG, "classifier.6", 20),
    "mobilenet_v2": (MobileNetV2, "classifier.1", 16),
    "mobilenet_v3": (MobileNetV3, "classifier.3", 24),
    "efficientnet": (EfficientNet, "classifier.1", 20),
    "vit": (VisionTransformer, "heads.head", 12),
}


def seeded(cls, seed=0, **kwargs):
    """An instance built under a fixed seed, with non-trivial batch-norm statistics."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = cls(**kwargs)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()
