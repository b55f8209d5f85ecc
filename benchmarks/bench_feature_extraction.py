"""Throughput of TorchFeatureExtractor against a bare torch inference loop.

Both run the pretrained EfficientNet-Lite0 of
:func:`sklearn_ood.backbones.load_backbone` on the CPU, with the same batch size,
``torch.inference_mode()`` and the channels-last memory format, and compute the
same pooled 1280-d features (``forward_head(forward_features(x),
pre_logits=True)``). Three variants are timed side by side, alternating within each
repetition (best of ``--repeats``):

- ``bare``: a plain loop over batches of images pre-processed once beforehand
  (uint8 -> [0, 1], grey -> 3 channels, bicubic resize of the shorter side to
  ``floor(size / 0.875)``, central ``size x size`` crop, ``(x - 0.5) / 0.5``);
- ``extractor, pre-processed``: TorchFeatureExtractor fed those same pre-processed
  tensors with its own pre-processing switched off (the wrapper's overhead only);
- ``extractor, raw``: TorchFeatureExtractor fed the raw 28 x 28 uint8 images, doing
  the pre-processing itself batch by batch (end-to-end cost).

Run it alone on the machine (other busy processes distort the numbers)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_feature_extraction.py

``OMP_WAIT_POLICY=PASSIVE`` stops OpenMP threads from spin-waiting between parallel
regions; on a small shared machine spinning made torch CPU inference 10-50x slower
(see ENVIRONMENT.md). The script sets it itself, before importing torch, unless it
is already set. Data: the first ``--n-images`` Fashion-MNIST test images (found by
:func:`sklearn_ood.datasets.load_fashion_mnist`); random 28 x 28 images if the data
set is not installed (the script says so).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F

from sklearn_ood._feature_extraction import TorchFeatureExtractor
from sklearn_ood.backbones import load_backbone


def load_images(n):
    try:
        from sklearn_ood.datasets import load_fashion_mnist

        X, _ = load_fashion_mnist(subset="test")
        return X[:n], "Fashion-MNIST test images"
    except (FileNotFoundError, ImportError) as exc:
        print(f"Fashion-MNIST not found ({exc}); using random images.")
        rng = np.random.RandomState(0)
        return rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8), "random images"


def preprocess(X, size, crop_pct=0.875):
    """The backbone's evaluation transform, done once for the whole set."""
    x = torch.from_numpy(X).float().div(255.0)[:, None].expand(-1, 3, -1, -1)
    scale = math.floor(size / crop_pct)
    x = F.interpolate(
        x, size=(scale, scale), mode="bicubic", align_corners=False, antialias=True
    )
    top = round((scale - size) / 2.0)
    x = x[:, :, top : top + size, top : top + size]
    return ((x - 0.5) / 0.5).contiguous()


def bare_loop(model, P, batch_size):
    out = np.empty((P.shape[0], model.num_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, P.shape[0], batch_size):
            xb = P[start : start + batch_size].contiguous(
                memory_format=torch.channels_last
            )
            f = model.forward_head(model.forward_features(xb), pre_logits=True)
            out[start : start + batch_size] = f.float().numpy()
    return out


def timed(fn):
    tic = time.perf_counter()
    out = fn()
    return time.perf_counter() - tic, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    X, source = load_images(args.n_images)
    n = X.shape[0]
    model = load_backbone("efficientnet_lite0")
    bare_model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    print(
        f"{n} {source}, batch {args.batch_size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, best of "
        f"{args.repeats}\n"
    )

    rows = []
    for size in args.sizes:
        P = preprocess(X, size)
        common = {"batch_size": args.batch_size, "device": "cpu"}
        ext_pre = TorchFeatureExtractor(
            model, image_size=None, mean=None, std=None, **common
        ).fit(P[:1])
        ext_raw = TorchFeatureExtractor(model, image_size=size, **common).fit(X[:1])
        runs = {
            "bare": lambda P=P: bare_loop(bare_model, P, args.batch_size),
            "pre": lambda P=P, e=ext_pre: e.transform(P),
            "raw": lambda e=ext_raw: e.transform(X),
        }
        # Warm-up: one batch each.
        bare_loop(bare_model, P[: args.batch_size], args.batch_size)
        ext_pre.transform(P[: args.batch_size])
        ext_raw.transform(X[: args.batch_size])

        best = dict.fromkeys(runs, math.inf)
        outputs = {}
        for _ in range(args.repeats):
            for key, fn in runs.items():
                seconds, outputs[key] = timed(fn)
                best[key] = min(best[key], seconds)
        diff_pre = float(np.abs(outputs["pre"] - outputs["bare"]).max())
        diff_raw = float(np.abs(outputs["raw"] - outputs["bare"]).max())
        rate = {key: n / seconds for key, seconds in best.items()}
        rows.append((size, rate, diff_pre, diff_raw))

    print(
        "| size (px) | bare loop (img/s) | extractor, pre-processed (img/s) | ratio "
        "| extractor, raw uint8 (img/s) | ratio | max abs diff (pre / raw) |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, rate, diff_pre, diff_raw in rows:
        print(
            f"| {size} | {rate['bare']:.0f} | {rate['pre']:.0f} | "
            f"{rate['pre'] / rate['bare']:.2f} | {rate['raw']:.0f} | "
            f"{rate['raw'] / rate['bare']:.2f} | {diff_pre:.1e} / {diff_raw:.1e} |"
        )


if __name__ == "__main__":
    main()
