"""TorchFeatureExtractor: speed without environment tweaks, overhead, image size.

Three studies, each a sub-command (run it on a machine nobody else is using; the
``threads`` study starts its own busy process):

``threads``
    A user's plain script against the project's tuned scripts, side by side. Each
    variant runs in its own Python process (``OMP_WAIT_POLICY`` is read once, when
    torch is imported), interleaved over the repetitions (the order rotates), in
    two conditions: a quiet machine, and ``--busy`` other processes that spin on
    a core each. Variants:

    - ``plain``: no environment variable, the library's defaults
      (``n_threads="auto"``): what a user's own script gets;
    - ``tuned``: ``OMP_WAIT_POLICY=PASSIVE`` (what ``scripts/`` export), defaults;
    - ``plain, torch threads`` / ``tuned, torch threads``: the same with
      ``n_threads=None`` (torch's own thread count: the library before it
      managed threads);
    - ``bare`` / ``bare, tuned``: a plain torch inference loop over the same,
      already pre-processed images (the hardware's pace, no library).

    The goal: ``plain`` within 10% of ``tuned`` in both conditions.

``overhead``
    In one process: the extractor on raw uint8 images and on pre-processed
    tensors against a bare loop on the same tensors (images/s and the largest
    feature difference; the extractor is meant to be bit-identical).

``image-size``
    Accuracy and speed of EfficientNet-Lite0 features for several input sizes on
    a small Fashion-MNIST subset: one-vs-rest AUROC (each class in turn is
    normal; Ledoit-Wolf Mahalanobis and 2-NN cosine distance, both from
    scikit-learn, on ``--n-train`` training images per class, scored on
    ``--n-test`` test images per class) and images/s. It chose the default input
    size shared by Python and the command line.

Commands used for RESULTS.md (2 cores, nothing else running)::

    python benchmarks/bench_feature_extraction.py threads --sizes 64 112 \\
        --n-images 512 --repeats 5 --busy 1
    python benchmarks/bench_feature_extraction.py overhead --sizes 64 112
    python benchmarks/bench_feature_extraction.py image-size \\
        --sizes 32 64 96 112 160 224 --n-train 200 --n-test 100

Data: Fashion-MNIST (:func:`sklearn_ood.datasets.load_fashion_mnist`); random
28 x 28 images for ``threads`` and ``overhead`` if it is not installed (the
script says so).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# torch is imported inside the functions: a worker must read its environment
# (OMP_WAIT_POLICY) before torch starts OpenMP.
VARIANTS = {
    "plain": ({}, "auto", False),
    "tuned": ({"OMP_WAIT_POLICY": "PASSIVE"}, "auto", False),
    "plain, torch threads": ({}, None, False),
    "tuned, torch threads": ({"OMP_WAIT_POLICY": "PASSIVE"}, None, False),
    "bare": ({}, None, True),
    "bare, tuned": ({"OMP_WAIT_POLICY": "PASSIVE"}, None, True),
}


def load_images(n, subset="test"):
    import numpy as np

    try:
        from sklearn_ood.datasets import load_fashion_mnist

        X, y = load_fashion_mnist(subset=subset)
        return X[:n], y[:n], "Fashion-MNIST"
    except (FileNotFoundError, ImportError) as exc:
        print(f"Fashion-MNIST not found ({exc}); using random images.", flush=True)
        rng = np.random.RandomState(0)
        X = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        return X, np.zeros(n, dtype=int), "random images"


def preprocess(X, size, crop_pct=0.875):
    """The backbone's evaluation transform, done once for the whole set."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(X).float().div(255.0)[:, None].expand(-1, 3, -1, -1)
    scale = math.floor(size / crop_pct)
    x = F.interpolate(
        x, size=(scale, scale), mode="bicubic", align_corners=False, antialias=True
    )
    top = round((scale - size) / 2.0)
    x = x[:, :, top : top + size, top : top + size]
    return ((x - 0.5) / 0.5).contiguous()


def bare_loop(model, P, batch_size):
    import numpy as np
    import torch

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


# ------------------------------------------------------------------ threads
def worker(args):
    """One timing in this process: print a JSON line with images/s."""
    import torch

    from sklearn_ood import TorchFeatureExtractor
    from sklearn_ood.backbones import load_backbone

    _, n_threads, bare = VARIANTS[args.variant]
    X, _, _ = load_images(args.n_images)
    model = load_backbone("efficientnet_lite0")
    if bare:
        net = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        P = preprocess(X, args.size)
        bare_loop(net, P[: args.batch_size], args.batch_size)  # warm-up
        seconds, _ = timed(lambda: bare_loop(net, P, args.batch_size))
    else:
        ext = TorchFeatureExtractor(
            model,
            image_size=args.size,
            batch_size=args.batch_size,
            n_threads=n_threads,
            verbose=False,
            device="cpu",
        ).fit(X[:1])
        ext.transform(X[: args.batch_size])  # warm-up
        seconds, _ = timed(lambda: ext.transform(X))
    print(json.dumps({"img_s": X.shape[0] / seconds}), flush=True)


def threads_study(args):
    conditions = ["quiet", "busy"] if args.busy > 0 else ["quiet"]
    print(
        f"{args.n_images} images, batch {args.batch_size}, sizes {args.sizes}, "
        f"{args.repeats} interleaved repetitions, busy = {args.busy} spinning "
        f"process(es), {os.cpu_count()} CPUs\n",
        flush=True,
    )
    rates = {}
    for condition in conditions:
        spinners = []
        if condition == "busy":
            code = "while True: pass"
            spinners = [
                subprocess.Popen([sys.executable, "-c", code]) for _ in range(args.busy)
            ]
            time.sleep(1.0)
        try:
            names = list(VARIANTS)
            for rep in range(args.repeats):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for size in args.sizes:
                    for name in order:
                        env = {**os.environ, **VARIANTS[name][0]}
                        if not VARIANTS[name][0]:
                            env.pop("OMP_WAIT_POLICY", None)
                        cmd = [
                            sys.executable,
                            __file__,
                            "worker",
                            "--variant",
                            name,
                            "--size",
                            str(size),
                            "--n-images",
                            str(args.n_images),
                            "--batch-size",
                            str(args.batch_size),
                        ]
                        out = subprocess.run(
                            cmd, env=env, capture_output=True, text=True, check=True
                        )
                        line = out.stdout.strip().splitlines()[-1]
                        rate = json.loads(line)["img_s"]
                        rates.setdefault((condition, size, name), []).append(rate)
                        print(f"  {condition:5s} {size:4d} px {name:22s} {rate:7.1f}")
        finally:
            for p in spinners:
                p.kill()
                p.wait()

    print("\nMedian images/s over the repetitions (ratios of medians):\n")
    header = "| condition | size (px) | " + " | ".join(VARIANTS) + " | plain / tuned |"
    print(header)
    print("|" + "---|" * (len(VARIANTS) + 3))
    for condition in conditions:
        for size in args.sizes:
            med = {
                name: sorted(rates[(condition, size, name)])[args.repeats // 2]
                for name in VARIANTS
            }
            cells = " | ".join(f"{med[name]:.0f}" for name in VARIANTS)
            print(
                f"| {condition} | {size} | {cells} | "
                f"{med['plain'] / med['tuned']:.2f} |"
            )


# ----------------------------------------------------------------- overhead
def overhead_study(args):
    import numpy as np
    import torch

    from sklearn_ood import TorchFeatureExtractor
    from sklearn_ood.backbones import load_backbone

    X, _, source = load_images(args.n_images)
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
        common = {"batch_size": args.batch_size, "device": "cpu", "n_threads": None}
        ext_pre = TorchFeatureExtractor(
            model, image_size=None, mean=None, std=None, input_range=1.0, **common
        ).fit(P[:1])
        ext_raw = TorchFeatureExtractor(model, image_size=size, **common).fit(X[:1])
        runs = {
            "bare": lambda P=P: bare_loop(bare_model, P, args.batch_size),
            "pre": lambda P=P, e=ext_pre: e.transform(P),
            "raw": lambda e=ext_raw: e.transform(X),
        }
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


# --------------------------------------------------------------- image size
def image_size_study(args):
    import numpy as np
    from sklearn.covariance import LedoitWolf
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    from sklearn_ood import TorchFeatureExtractor

    Xtr, ytr, source = load_images(60000, "train")
    Xte, yte, _ = load_images(10000, "test")
    if source != "Fashion-MNIST":
        raise SystemExit("The image-size study needs Fashion-MNIST.")
    tr = np.concatenate([np.flatnonzero(ytr == c)[: args.n_train] for c in range(10)])
    te = np.concatenate([np.flatnonzero(yte == c)[: args.n_test] for c in range(10)])
    Xtr, ytr, Xte, yte = Xtr[tr], ytr[tr], Xte[te], yte[te]
    print(
        f"Fashion-MNIST, {args.n_train} training and {args.n_test} test images per "
        "class; one-vs-rest mean AUROC over the 10 classes\n"
    )
    print("| size (px) | Mahalanobis (Ledoit-Wolf) | 2-NN cosine | images/s |")
    print("|---|---|---|---|")
    for size in args.sizes:
        ext = TorchFeatureExtractor(
            "efficientnet_lite0", image_size=size, verbose=False, device="cpu"
        ).fit(Xtr[:1])
        seconds, Ftr = timed(lambda e=ext: e.transform(Xtr))
        Fte = ext.transform(Xte)
        auc = {"maha": [], "knn": []}
        for c in range(10):
            F = Ftr[ytr == c].astype(np.float64)
            auc["maha"].append(
                roc_auc_score(yte == c, -LedoitWolf().fit(F).mahalanobis(Fte))
            )
            N = F / np.linalg.norm(F, axis=1, keepdims=True)
            Q = Fte / np.linalg.norm(Fte, axis=1, keepdims=True)
            dist, _ = NearestNeighbors(n_neighbors=2).fit(N).kneighbors(Q)
            auc["knn"].append(roc_auc_score(yte == c, -dist[:, 1]))
        print(
            f"| {size} | {100 * np.mean(auc['maha']):.2f} | "
            f"{100 * np.mean(auc['knn']):.2f} | {len(Xtr) / seconds:.0f} |",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="study", required=True)
    for name in ("threads", "overhead", "image-size", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--n-images", type=int, default=512)
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
        p.add_argument("--busy", type=int, default=1)
        p.add_argument("--n-train", type=int, default=200)
        p.add_argument("--n-test", type=int, default=100)
        p.add_argument("--variant", choices=list(VARIANTS), default="plain")
        p.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    {
        "threads": threads_study,
        "overhead": overhead_study,
        "image-size": image_size_study,
        "worker": worker,
    }[args.study](args)


if __name__ == "__main__":
    main()
