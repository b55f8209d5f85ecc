"""Shrunk Mahalanobis detectors at n close to d: target vs measured false-positive rate.

``MahalanobisDetector(covariance="ledoit_wolf" | "oas" | float)`` sets
``offset_`` from calibration scores of its training rows. This script measures
the share of NEW normal samples that ``predict`` flags (``p_values <= c``,
the rule ``predict`` applies) against the target ``c``, for

- ``detector``: the detector's own calibration scores (whatever the installed
  version computes: closed-form leave-one-out with the shrinkage coefficient
  held at its full-data value since issue 14, out-of-fold before);
- ``out-of-fold``: 5 interleaved folds, row ``i`` scored by a detector refitted
  without fold ``i % 5`` (its own shrinkage coefficient), computed here with
  the public API: the calibration the detector used before.

Two data sets:

- ``--synthetic``: Gaussian rows in ``d`` dimensions with a power-law spectrum
  (eigenvalues ``1 / j``, random rotation), ``n = ratio * d`` training rows,
  ``--new`` new rows per repetition; the mean share over ``--repeats``
  repetitions with its standard error (the spread over repetitions);
- Fashion-MNIST (default): the EfficientNet-Lite0 ``bn2`` features (1280-d,
  112 px) cached by ``bench_fashion_recipe.py`` in ``benchmarks/_out/``; for
  each class in ``--classes``, 1,500 training rows drawn as the demo draws
  them (``one_vs_rest_split(..., n_train=1500, random_state=0)``), the share
  of the class's 1,000 test images flagged (binomial standard error
  ``sqrt(c (1 - c) / 1000)``: 0.5% at c = 2.5%, 0.7% at 5%), the AUROC, and
  the fit time (indicative only on a shared machine).

Usage::

    python benchmarks/bench_shrunk_calibration.py [--classes 0] [--no-oof] \\
        [--features benchmarks/_out/fmnist_recipe_lite0_112px.npz]
    python benchmarks/bench_shrunk_calibration.py --synthetic [--d 100] \\
        [--ratio 1.2] [--repeats 100]
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from sklearn_ood import MahalanobisDetector
from sklearn_ood.base import conformal_p_values
from sklearn_ood.metrics import auroc

OUT = Path(__file__).parent / "_out"
SHARES = (0.025, 0.05)


def out_of_fold_scores(make, X):
    """Row i scored by a detector refitted without fold i % 5."""
    fold = np.arange(X.shape[0]) % 5
    scores = np.empty(X.shape[0])
    for k in range(5):
        test = fold == k
        scores[test] = make().fit(X[~test]).score_samples(X[test])
    return scores


def flagged(calibration, scores, c):
    """Share of ``scores`` whose conformal p-value is at most ``c`` (predict's rule)."""
    return float(np.mean(conformal_p_values(calibration, scores) <= c))


def synthetic(args):
    rng = np.random.RandomState(args.seed)
    d, n = args.d, round(args.ratio * args.d)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scale = Q * np.sqrt(1.0 / np.arange(1, d + 1))
    print(
        f"Gaussian, d = {d}, n = {n} training rows, eigenvalues 1/j, "
        f"{args.new} new rows x {args.repeats} repetitions "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    for cov in ("ledoit_wolf", "oas", 0.1):
        rates = {(r, c): [] for r in ("detector", "out-of-fold") for c in SHARES}
        t_fit = 0.0
        for _ in range(args.repeats):
            X = rng.normal(size=(n, d)) @ scale.T
            T = rng.normal(size=(args.new, d)) @ scale.T
            t0 = time.perf_counter()
            det = MahalanobisDetector(covariance=cov).fit(X)
            t_fit += time.perf_counter() - t0
            s = det.score_samples(T)
            cals = {"detector": det.calibration_scores_}
            if not args.no_oof:
                make = partial(MahalanobisDetector, covariance=cov)
                cals["out-of-fold"] = out_of_fold_scores(make, X)
            for (r, c), out in rates.items():
                if r in cals:
                    out.append(flagged(cals[r], s, c))
        for (r, c), out in rates.items():
            if out:
                target = np.floor(c * (n + 1)) / (n + 1)
                se = np.std(out, ddof=1) / np.sqrt(len(out))
                print(
                    f"  {cov!s:12} {r:12} c = {c:.3f} (exact-conformal "
                    f"{target:.4f}): {np.mean(out):.4f} +- {se:.4f}"
                )
        print(f"  {cov!s:12} mean fit time {t_fit / args.repeats * 1e3:.1f} ms")


def fashion(args):
    from sklearn_ood.datasets import one_vs_rest_split

    data = np.load(args.features, allow_pickle=True)  # our own cache: layer bounds
    a, b = dict(data["groups"].tolist())["bn2"]
    F_train = data["F_train"][:, a:b]
    F_test = data["F_test"][:, a:b]
    from sklearn_ood.datasets import load_fashion_mnist

    _, y_train = load_fashion_mnist(subset="train")
    _, y_test = load_fashion_mnist(subset="test")
    print(
        f"Fashion-MNIST bn2 features {F_train.shape[1]}-d, 1,500 training rows "
        f"per class (load {os.getloadavg()[0]:.1f})"
    )
    for cls in args.classes:
        X_fit, _, X_eval, y_eval = one_vs_rest_split(
            F_train, y_train, F_test, y_test, cls, n_train=1500, random_state=0
        )
        make = lambda: MahalanobisDetector(covariance="ledoit_wolf")  # noqa: E731
        t0 = time.perf_counter()
        det = make().fit(X_fit)
        t_fit = time.perf_counter() - t0
        s = det.score_samples(X_eval)
        normal = s[y_eval == 1]
        line = [f"class {cls}: fit {t_fit:.2f} s, AUROC {100 * auroc(y_eval, s):.2f}"]
        for c in SHARES:
            share = flagged(det.calibration_scores_, normal, c)
            line.append(f"c={c}: detector {100 * share:.2f}%")
        if not args.no_oof:
            t0 = time.perf_counter()
            oof = out_of_fold_scores(make, X_fit)
            t_oof = time.perf_counter() - t0
            for c in SHARES:
                line.append(f"c={c}: out-of-fold {100 * flagged(oof, normal, c):.2f}%")
            line.append(f"(5 refits {t_oof:.1f} s)")
        print("  " + "; ".join(line), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--ratio", type=float, default=1.2)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, nargs="*", default=[0])
    parser.add_argument("--no-oof", action="store_true")
    parser.add_argument(
        "--features", type=Path, default=OUT / "fmnist_recipe_lite0_112px.npz"
    )
    args = parser.parse_args(argv)
    if args.synthetic:
        synthetic(args)
    else:
        fashion(args)


if __name__ == "__main__":
    main()
