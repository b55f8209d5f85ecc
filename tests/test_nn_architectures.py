"""Tests of sklearn_ood.nn._architectures."""

import math

import pytest
import torch
from torch import nn

from sklearn_ood.nn import LeNet, MLPHead, VGGEmbedding, WideResNet, build_module
from sklearn_ood.nn._architectures import WideBasicBlock


def _n_params(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _wrn_param_count(depth, k, num_classes, in_channels):
    """Trainable parameters of WRN-depth-k, from the layer list of ALGORITHMS.md §1.

    stem conv3x3 (no bias); per block: BN(in) + conv3x3(in->out) + BN(out) +
    conv3x3(out->out) [+ conv1x1(in->out) when in != out]; final BN; dense + bias.
    A BN layer has 2 trainable parameters per channel (gamma, beta).
    """
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = 9 * in_channels * 16
    c_in = 16
    for c_out in widths[1:]:
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out
            if c_in != c_out:
                total += c_in * c_out
            c_in = c_out
    return total + 2 * c_in + c_in * num_classes + num_classes


@pytest.mark.parametrize("in_channels", [1, 3])
def test_wrn_10_4_parameter_count(in_channels):
    net = WideResNet(depth=10, widen_factor=4, num_classes=72, in_channels=in_channels)
    assert _n_params(net) == _wrn_param_count(10, 4, 72, in_channels)
    # written out for the 1-channel case: 144 + 47,264 + 229,760 + 918,272 + 512
    # + 18,504
    if in_channels == 1:
        assert _n_params(net) == 1_214_456


@pytest.mark.parametrize("depth, k", [(16, 2), (10, 1)])
def test_other_wrn_parameter_counts(depth, k):
    net = WideResNet(depth=depth, widen_factor=k, num_classes=10, in_channels=3)
    assert _n_params(net) == _wrn_param_count(depth, k, 10, 3)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_wrn_output_shapes(in_channels):
    net = WideResNet(depth=10, widen_factor=4, num_classes=72, in_channels=in_channels)
    net.eval()
    x = torch.randn(2, in_channels, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = net(x)
        features = net.forward_features(x)
    assert tuple(logits.shape) == (2, 72)
    assert tuple(features.shape) == (2, 256) and net.feature_dim == 256
    torch.testing.assert_close(net.fc(features), logits)
    # adaptive global pooling: other input sizes work
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, in_channels, 24, 40)).shape) == (1, 72)


def test_wrn_shortcut_structure():
    net = WideResNet(depth=10, widen_factor=4)
    blocks = [net.group1[0], net.group2[0], net.group3[0]]
    for block, (c_in, c_out, stride) in zip(
        blocks, [(16, 64, 1), (64, 128, 2), (128, 256, 2)]
    ):
        sc = block.shortcut
        assert isinstance(sc, nn.Conv2d)
        assert (sc.in_channels, sc.out_channels) == (c_in, c_out)
        assert sc.kernel_size == (1, 1) and sc.stride == (stride, stride)
        assert sc.bias is None
        assert block.conv1.stride == (stride, stride) and block.conv2.stride == (1, 1)
    # k = 1: the first group keeps 16 channels, so its shortcut is the identity
    assert WideResNet(depth=10, widen_factor=1).group1[0].shortcut is None
    # depth 16: two blocks per group, the second ones have identity shortcuts
    deep = WideResNet(depth=16, widen_factor=2)
    for group in (deep.group1, deep.group2, deep.group3):
        assert len(group) == 2
        assert group[0].shortcut is not None and group[1].shortcut is None


def test_shortcut_takes_the_preactivated_input():
    g = torch.Generator().manual_seed(0)
    block = WideBasicBlock(4, 8, stride=2, dropout=0.0).eval()
    with torch.no_grad():
        block.bn1.running_mean.copy_(torch.randn(4, generator=g))
        block.bn1.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        x = torch.randn(2, 4, 6, 6, generator=g)
        bn1 = block.bn1
        b = torch.relu(
            (x - bn1.running_mean[:, None, None])
            / torch.sqrt(bn1.running_var[:, None, None] + 1e-5)
            * bn1.weight[:, None, None]
            + bn1.bias[:, None, None]
        )
        main = block.conv2(torch.relu(block.bn2(block.conv1(b))))
        expected = main + nn.functional.conv2d(b, block.shortcut.weight, stride=2)
        wrong = main + nn.functional.conv2d(x, block.shortcut.weight, stride=2)
        out = block(x)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, wrong)


def test_wrn_initialisation_and_batchnorm_settings():
    net = build_module(WideResNet, default=WideResNet, random_state=0)
    w = net.group3[0].conv2.weight  # 256 x 256 x 3 x 3
    fan_in = 256 * 9
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.01)
    assert abs(w.mean().item()) < 0.01 * math.sqrt(2 / fan_in)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
        if isinstance(m, nn.BatchNorm2d):
            assert m.momentum == 0.1 and m.eps == 1e-5
    bound = 1 / math.sqrt(256)
    assert net.fc.weight.abs().max().item() <= bound
    assert net.fc.weight.abs().max().item() > 0.9 * bound  # uniform, not normal
    assert torch.count_nonzero(net.fc.bias) == 0


def test_wrn_aux_head_returns_both_logits():
    net = WideResNet(depth=10, widen_factor=1, num_classes=72, num_classes_aux=10)
    net.eval()
    x = torch.zeros(3, 3, 32, 32)
    with torch.no_grad():
        logits, aux = net(x)
        features = net.forward_features(x)
    assert tuple(logits.shape) == (3, 72) and tuple(aux.shape) == (3, 10)
    torch.testing.assert_close(net.fc_aux(features), aux)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 12}, "6n \\+ 4"),
        ({"depth": 4}, "'depth'"),
        ({"widen_factor": 0}, "'widen_factor'"),
        ({"dropout": 1.0}, "'dropout'"),
        ({"num_classes_aux": 0}, "'num_classes_aux'"),
    ],
)
def test_wrn_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WideResNet(**kwargs)


@pytest.mark.parametrize(
    "input_size, padding, flat",
    [(28, 2, 16 * 5 * 5), (32, 0, 16 * 5 * 5), (32, 2, 16 * 6 * 6)],
)
def test_lenet_shapes(input_size, padding, flat):
    net = LeNet(input_size=input_size, padding=padding)
    assert net.fc1.in_features == flat
    x = torch.randn(4, 1, input_size, input_size)
    with torch.no_grad():
        features, logits = net(x)
    assert tuple(features.shape) == (4, 84) and tuple(logits.shape) == (4, 10)
    # the features feed the logits
    torch.testing.assert_close(net.fc3(features), logits)
    assert bool((features >= 0).all())  # a ReLU hidden layer


def test_lenet5_parameter_count():
    # conv 1->6 5x5, conv 6->16 5x5, fc 400->120->84->10 (classic LeNet-5: 61,706)
    net = LeNet(in_channels=1, num_classes=10, input_size=32, padding=0)
    expected = (25 * 6 + 6) + (6 * 25 * 16 + 16) + (400 * 120 + 120)
    expected += (120 * 84 + 84) + (84 * 10 + 10)
    assert _n_params(net) == expected == 61_706
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 1 and pools[0].kernel_size == 2  # max, not average pooling


def test_lenet_embedding_variant_and_errors():
    net = LeNet(in_channels=3, num_classes=6, feature_dim=2, feature_activation=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        features, logits = net(torch.randn(50, 3, 28, 28, generator=g))
    assert tuple(features.shape) == (50, 2) and tuple(logits.shape) == (50, 6)
    assert bool((features < 0).any())  # linear embedding
    with pytest.raises(ValueError, match="built for 28x28"):
        net(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="'input_size'"):
        LeNet(input_size=8)
    with pytest.raises(ValueError, match="'feature_dim'"):
        LeNet(feature_dim=0)


def test_mlp_head():
    head = MLPHead(84)
    assert _n_params(head) == (84 * 256 + 256) + (256 * 256 + 256) + (256 + 1)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [256, 256, 1]
    x = torch.randn(7, 84, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = head(x)
        # the same function written out by hand
        h = torch.relu(linears[0](x))
        h = torch.relu(linears[1](h))
        expected = linears[2](h)[:, 0]
    assert tuple(logits.shape) == (7,)
    torch.testing.assert_close(logits, expected)
    target = torch.tensor([1.0, 0, 1, 0, 1, 1, 0])
    torch.testing.assert_close(
        nn.functional.binary_cross_entropy_with_logits(logits, target),
        nn.functional.binary_cross_entropy(torch.sigmoid(logits), target),
    )
    assert len(MLPHead(5, hidden=(3,)).layers) == 3
    with pytest.raises(ValueError, match="'hidden'"):
        MLPHead(5, hidden=(0,))


def _vgg_param_count(in_channels, width, embedding_dim):
    total, c_in = 0, in_channels
    for c in (64, 128, 256, 512, 512):
        c_out = c // width
        total += 9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out
        c_in = c_out
    hidden = 512 // width
    return (
        total
        + (c_in * hidden + hidden)
        + (hidden * hidden + hidden)
        + (hidden * embedding_dim + embedding_dim)
    )


def test_vgg_embedding_shapes_and_parameters():
    net = VGGEmbedding(in_channels=3, embedding_dim=10, width=16)
    assert _n_params(net) == _vgg_param_count(3, 16, 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert isinstance(net.features[-1], nn.AvgPool2d)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 4
    net.eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
        out_again = net(x)
    assert tuple(out.shape) == (3, 10)
    torch.testing.assert_close(out, out_again)  # dropout is off in eval
    assert net.fc6.in_features == 512 // 16  # 1x1 spatial map at 32x32

    grey = VGGEmbedding(in_channels=1, embedding_dim=5, width=32, input_size=28)
    assert grey.fc6.in_features == 16 * 1 * 1  # 28 -> 14 -> 7 -> 4 -> 2 -> 1
    with torch.no_grad():
        assert tuple(grey(torch.zeros(2, 1, 28, 28)).shape) == (2, 5)


def test_vgg_initialisation():
    net = build_module(VGGEmbedding, {"width": 4}, default=VGGEmbedding, random_state=0)
    conv = net.features[-3]  # last conv: 128 -> 128 channels at width 4
    fan_in, fan_out = 128 * 9, 128 * 9
    bound = math.sqrt(6 / (fan_in + fan_out))  # Xavier (Glorot) uniform
    assert conv.weight.abs().max().item() <= bound
    assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert torch.all(conv.bias == 0.1)
    assert net.fc7.weight.std().item() == pytest.approx(0.1, rel=0.03)
    assert net.fc7.bias.std().item() == pytest.approx(0.1, rel=0.3)
    assert isinstance(net.dropout, nn.Dropout) and net.dropout.p == 0.2
    with pytest.raises(ValueError, match="'width'"):
        VGGEmbedding(width=0)


def test_architectures_train_one_step():
    # every net produces finite gradients for a tiny batch
    g = torch.Generator().manual_seed(0)
    cases = [
        (
            WideResNet(depth=10, widen_factor=1, num_classes=4, in_channels=1),
            torch.randn(2, 1, 32, 32, generator=g),
            lambda o: o.sum(),
        ),
        (LeNet(), torch.randn(2, 1, 28, 28, generator=g), lambda o: o[1].sum()),
        (
            VGGEmbedding(width=32),
            torch.randn(2, 3, 32, 32, generator=g),
            lambda o: o.sum(),
        ),
    ]
    for net, x, reduce in cases:
        net.train()
        reduce(net(x)).backward()
        grads = [p.grad for p in net.parameters()]
        assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
