"""Fashion-MNIST one-vs-rest with pretrained features: the DN2 / GEOM protocol.

For each of the ten classes: fit on all 6,000 training images of the class,
score the full 10,000-image test set, AUROC with the class as normal. Features
come from the offline ImageNet-pretrained EfficientNet-Lite0
(``TorchFeatureExtractor("efficientnet_lite0")``, pooled 1280-d penultimate
features); they are extracted once for the 70,000 images and cached in
``benchmarks/_out/fmnist_lite0_<size>px.npz``. When that file is absent and
``bench_fashion_recipe.py``'s multi-layer cache
``benchmarks/_out/fmnist_recipe_lite0_<size>px.npz`` exists (a symbolic link
to it will do), its ``bn2`` columns of the un-flipped images are used: the
pooled output of ``bn2`` (with its activation) is the same penultimate 1280-d
feature, so nothing is extracted again.

Detectors: MahalanobisDetector (marginal with the empirical and the
Ledoit-Wolf covariance, partial over components 10..end), KNNDetector (k=2,
squared Euclidean = DN2, and cosine), and Kamoi & Kobayashi's rows with the
papers' pseudo-inverse (``eigenvalue_floor="pinv"``): marginal, partial (1-9)
= ``components=(0, 9)``, partial (10-end) = ``components=(9, None)``, and the
Euclidean baseline (``covariance="identity"``: squared distance to the class
mean). Kamoi's "tied" (class-conditional) row needs several classes: in
one-vs-rest there is one normal class, so tied equals marginal; the pinv and
the 1e-6 eigenvalue-floor marginal rows are reported instead. Papers: DN2
94.4, GEOM 93.5, OC-SVM 92.8 (mean AUROC, full data).

Usage::

    python benchmarks/bench_fashion_one_vs_rest.py [--image-size 112] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from sklearn_ood import KNNDetector, MahalanobisDetector, TorchFeatureExtractor
from sklearn_ood.datasets import load_fashion_mnist
from sklearn_ood.metrics import auroc

PAPERS = {
    "DN2 (Bergman et al.)": [None] * 10 + [94.4],
    "GEOM (Golan & El-Yaniv)": [
        99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2, 93.5,
    ],
}  # fmt: skip

PINV = {"eigenvalue_floor": "pinv"}

DETECTORS = {
    "Maha marginal": lambda: MahalanobisDetector(mode="marginal"),
    "Maha marginal, pinv (= tied here)": lambda: MahalanobisDetector(**PINV),
    "Maha Ledoit-Wolf": lambda: MahalanobisDetector(covariance="ledoit_wolf"),
    "Maha partial (10-end)": lambda: MahalanobisDetector(
        mode="partial", components=(9, None)
    ),
    "Maha partial (10-end), pinv": lambda: MahalanobisDetector(
        mode="partial", components=(9, None), **PINV
    ),
    "Maha partial (1-9), pinv": lambda: MahalanobisDetector(
        mode="partial", components=(0, 9), **PINV
    ),
    "Euclidean (to the mean)": lambda: MahalanobisDetector(covariance="identity"),
    "kNN k=2 sqeucl. (DN2)": lambda: KNNDetector(n_neighbors=2),
    "kNN k=2 cosine": lambda: KNNDetector(n_neighbors=2, metric="cosine"),
}


def features(image_size, batch_size, quick):
    out = Path(__file__).parent / "_out"
    out.mkdir(exist_ok=True)
    tag = f"lite0_{image_size}px{'_quick' if quick else ''}"
    path = out / f"fmnist_{tag}.npz"
    X_train, y_train = load_fashion_mnist(subset="train")
    X_test, y_test = load_fashion_mnist(subset="test")
    if quick:
        rng = np.random.RandomState(0)
        tr = np.sort(rng.choice(len(y_train), 3000, replace=False))
        te = np.sort(rng.choice(len(y_test), 1000, replace=False))
        X_train, y_train, X_test, y_test = (
            X_train[tr],
            y_train[tr],
            X_test[te],
            y_test[te],
        )
    if path.exists():
        data = np.load(path)
        return data["F_train"], y_train, data["F_test"], y_test, float(data["rate"])
    recipe = out / f"fmnist_recipe_lite0_{image_size}px.npz"
    if not quick and recipe.exists():
        return (*penultimate_from_recipe(recipe, y_train, y_test), float("nan"))
    fe = TorchFeatureExtractor(
        "efficientnet_lite0", image_size=image_size, batch_size=batch_size
    ).fit(X_train[:2])
    t0 = time.perf_counter()
    F_train = fe.transform(X_train)
    F_test = fe.transform(X_test)
    rate = (len(X_train) + len(X_test)) / (time.perf_counter() - t0)
    np.savez(path, F_train=F_train, F_test=F_test, rate=rate)
    return F_train, y_train, F_test, y_test, rate


def penultimate_from_recipe(path, y_train, y_test):
    """The ``bn2`` columns (plain view) of bench_fashion_recipe.py's cache."""
    data = np.load(path, allow_pickle=True)  # our own cache: layer bounds
    a, b = dict(data["groups"].tolist())["bn2"]
    F_train = np.ascontiguousarray(data["F_train"][:, int(a) : int(b)])
    F_test = np.ascontiguousarray(data["F_test"][:, int(a) : int(b)])
    if len(F_train) != len(y_train) or len(F_test) != len(y_test):
        raise ValueError(f"{path} does not hold the full Fashion-MNIST features.")
    print(f"features: bn2 columns {a}:{b} of {path}")
    return F_train, y_train, F_test, y_test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="3000/1000 images")
    args = parser.parse_args(argv)

    F_train, y_train, F_test, y_test, rate = features(
        args.image_size, args.batch_size, args.quick
    )
    print(
        f"features: {F_train.shape[0]} train + {F_test.shape[0]} test, "
        f"d={F_train.shape[1]}, extraction "
        + (f"{rate:.0f} img/s " if np.isfinite(rate) else "rate not recorded ")
        + f"(load average {os.getloadavg()[0]:.1f})"
    )
    results = {name: [] for name in DETECTORS}
    seconds = {name: 0.0 for name in DETECTORS}
    for c in range(10):
        y_true = np.where(y_test == c, 1, -1)
        for name, make in DETECTORS.items():
            t0 = time.perf_counter()
            det = make().fit(F_train[y_train == c])
            s = det.score_samples(F_test)
            seconds[name] += time.perf_counter() - t0
            results[name].append(100 * auroc(y_true, s))
    names = list(DETECTORS) + list(PAPERS)
    print(
        f"\nFashion-MNIST one-vs-rest AUROC (%), EfficientNet-Lite0 "
        f"{args.image_size} px features\n"
    )
    print("| class | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    rows = [*range(10), "mean"]
    for i, c in enumerate(rows):
        cells = []
        for name in DETECTORS:
            vals = results[name]
            cells.append(f"{(vals[i] if c != 'mean' else np.mean(vals)):.1f}")
        for name in PAPERS:
            v = PAPERS[name][i]
            cells.append("" if v is None else f"{v:.1f}")
        print(f"| {c} | " + " | ".join(cells) + " |")
    print(
        "| fit+score s/class | "
        + " | ".join(f"{seconds[n] / 10:.2f}" for n in DETECTORS)
        + " |" * (len(PAPERS) + 0)
        + " |"
    )


if __name__ == "__main__":
    main()
