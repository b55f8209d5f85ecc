"""Target vs measured false-positive rate of every threshold route, Fashion-MNIST.

One-vs-rest on Fashion-MNIST features: each class in turn is the normal data;
a detector is fitted on ``n`` training images of the class (nested random
subsets, ``n`` from 300 to 6,000) and the false-positive rate is measured on
the class's 1,000 test images (the share of them flagged), for the target
shares ``c`` = 1%, 2.5%, 5% and 10%. The table reports the mean over the ten
classes (10,000 test images: binomial standard error about
``sqrt(c (1 - c) / 10000)``, 0.1% at ``c = 1%``, 0.3% at ``c = 10%``, plus the
spread of the calibration draws).

Routes (sklearn-ood):

- ``contamination``: the detector's own ``offset_`` from its leave-one-out
  calibration scores (``predict`` = ``p_values <= c``);
- ``split conformal``: :class:`~sklearn_ood.conformal.ConformalDetector`, half
  of the rows fit, half calibrate (guarantee: at most ``c``);
- ``cross-conformal``: ``ConformalDetector(method="cross", n_folds=5)``;
- ``CV threshold``: :class:`~sklearn_ood.model_selection.TunedThresholdDetectorCV`
  with ``target_tpr = 1 - c`` (5 folds, out-of-fold scores).

The two cross-fitted routes run for k-nearest neighbours only: each
Ledoit-Wolf Mahalanobis fit already costs six eigendecompositions of 1280 x
1280 (its own out-of-fold calibration, which a wrapper does not use), too slow
for 2 shared cores; ``--all-routes`` runs them for Mahalanobis too.

The peers' rule, side by side on the same scores:

- ``in-sample percentile``: ``np.percentile`` of the detector's scores of its
  own training rows, as scikit-learn's ``EllipticEnvelope`` and
  ``IsolationForest`` set ``offset_`` and PyOD sets ``threshold_`` for
  detectors whose training scores are in-sample (MCD, PCA, OCSVM, ...);
- ``LOO percentile``: ``np.percentile`` of the leave-one-out training scores,
  PyOD ``KNN``'s rule (its training scores exclude the point itself);
- ``IsolationForest``: scikit-learn's own, fitted on the same features.

Features: the EfficientNet-Lite0 features of ``bench_fashion_one_vs_rest.py``
at 64 px (cached in ``benchmarks/_out/``, extracted on first use: 70,000
images, about 10 minutes on 2 busy cores). The rates are accuracy numbers:
they do not depend on the machine's load.

``--fdr`` runs instead a simulation of batch screening: FDR and power of
:func:`~sklearn_ood.conformal.benjamini_hochberg` and of its Storey variant
on split-conformal p-values (Gaussian data in 10 dimensions, 500 training
rows, batches of 200 with 2% to 50% outliers shifted by 1 in every dimension,
Mahalanobis, 300 repetitions, ``q = 0.1``).

Usage::

    python benchmarks/bench_calibration.py [--sizes 300 1000 3000 6000] \\
        [--classes 0 1 ...] [--image-size 64] [--out FILE]
    python benchmarks/bench_calibration.py --fdr
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from sklearn.ensemble import IsolationForest
from threadpoolctl import threadpool_limits

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood.base import conformal_p_values
from sklearn_ood.conformal import ConformalDetector, benjamini_hochberg
from sklearn_ood.model_selection import TunedThresholdDetectorCV

sys.path.insert(0, str(Path(__file__).parent))
from bench_fashion_one_vs_rest import features

TARGETS = (0.01, 0.025, 0.05, 0.1)
DETECTORS = {
    "Mahalanobis (Ledoit-Wolf)": lambda: MahalanobisDetector(covariance="ledoit_wolf"),
    "kNN k=2": lambda: KNNDetector(n_neighbors=2),
}
ROUTES = [
    "contamination",
    "split conformal",
    "cross-conformal",
    "CV threshold",
    "in-sample percentile",
    "LOO percentile",
]
T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def rates_from_p(p):
    """Share of samples with p-value <= c, for each target c."""
    return [float(np.mean(p <= c)) for c in TARGETS]


def rates_from_threshold(scores, train_scores):
    """Share below the in-sample ``np.percentile`` threshold, for each c."""
    return [
        float(np.mean(scores < np.percentile(train_scores, 100 * c))) for c in TARGETS
    ]


def one_setting(make, F, F_test_in, seed, cross_fitted=True):
    """FPR of each route for one detector, class and training size."""
    out = {}
    det = make().fit(F)
    out["contamination"] = rates_from_p(det.p_values(F_test_in))
    # predict is p <= contamination ("auto" = 2.5%): the contract, checked
    assert np.array_equal(
        det.predict(F_test_in) == -1, det.p_values(F_test_in) <= 0.025
    )
    s_test = det.score_samples(F_test_in)
    out["in-sample percentile"] = rates_from_threshold(s_test, det.score_samples(F))
    out["LOO percentile"] = rates_from_threshold(s_test, det.calibration_scores_)
    split = ConformalDetector(make(), random_state=seed).fit(F)
    out["split conformal"] = rates_from_p(split.p_values(F_test_in))
    if not cross_fitted:
        return out
    det = ConformalDetector(make(), method="cross", random_state=seed).fit(F)
    out["cross-conformal"] = rates_from_p(det.p_values(F_test_in))
    tuned = TunedThresholdDetectorCV(make(), random_state=seed).fit(F)
    p = conformal_p_values(tuned.calibration_scores_, tuned.score_samples(F_test_in))
    out["CV threshold"] = rates_from_p(p)
    return out


def fdr_simulation(reps=300, d=10, n=500, m=200, q=0.1, shift=1.0):
    """FDR and power of BH and Storey-BH on split-conformal p-values."""
    print("| outliers in the batch | BH: FDR / power | Storey: FDR / power |")
    print("|---|---|---|")
    for share in (0.02, 0.1, 0.3, 0.5):
        res = {"bh": [], "storey": []}
        for r in range(reps):
            rng = np.random.RandomState(r)
            det = ConformalDetector(MahalanobisDetector(), random_state=r)
            det.fit(rng.normal(size=(n, d)))
            m1 = int(share * m)
            X = np.r_[rng.normal(size=(m - m1, d)), rng.normal(size=(m1, d)) + shift]
            out = np.r_[np.zeros(m - m1, bool), np.ones(m1, bool)]
            p = det.p_values(X)
            for method, values in res.items():
                flagged = benjamini_hochberg(p, q, method=method)
                fdp = (flagged & ~out).sum() / max(flagged.sum(), 1)
                values.append((fdp, (flagged & out).sum() / max(m1, 1)))
        cells = []
        for values in res.values():
            v = np.asarray(values)
            se = v[:, 0].std(ddof=1) / np.sqrt(reps)
            cells.append(f"{v[:, 0].mean():.3f} (+-{se:.3f}) / {v[:, 1].mean():.3f}")
        print(f"| {100 * share:g}% | " + " | ".join(cells) + " |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000, 6000])
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the Markdown table here")
    parser.add_argument("--fdr", action="store_true", help="BH / Storey simulation")
    parser.add_argument(
        "--all-routes", action="store_true", help="cross-fitted routes for all"
    )
    args = parser.parse_args(argv)
    if args.fdr:
        with threadpool_limits(1, user_api="blas"):
            return fdr_simulation()
    F_train, y_train, F_test, y_test, _ = features(args.image_size, 64, False)
    # float32, as the extractor gives them (and as a user passes them)
    log(f"features {F_train.shape} + {F_test.shape}")
    raw: dict = {}
    perms = {}
    for c in args.classes:
        rng = np.random.RandomState(args.seed + c)
        perms[c] = rng.permutation(np.flatnonzero(y_train == c))
    with threadpool_limits(args.blas_threads, user_api="blas"):
        # sizes outer: a partial run has complete rows for the smaller sizes
        for n in args.sizes:
            for c in args.classes:
                F = F_train[perms[c][:n]]
                F_in = F_test[y_test == c]
                for name, make in DETECTORS.items():
                    full = args.all_routes or name.startswith("kNN")
                    res = one_setting(make, F, F_in, args.seed, cross_fitted=full)
                    for route, r in res.items():
                        raw.setdefault((name, route, n), []).append(r)
                iso = IsolationForest(random_state=args.seed).fit(F)
                r = rates_from_threshold(iso.score_samples(F_in), iso.score_samples(F))
                key = ("IsolationForest (scikit-learn)", "in-sample percentile", n)
                raw.setdefault(key, []).append(r)
                log(f"class {c}, n={n} done")
            report(raw, args)


def report(raw, args):
    """Print (and write) the table of the settings done so far."""
    header = (
        "| detector | route | n | "
        + " | ".join(f"c = {100 * c:g}%" for c in TARGETS)
        + " |\n|---|---|---|"
        + "---|" * len(TARGETS)
    )
    order = [*DETECTORS, "IsolationForest (scikit-learn)"]
    keys = sorted(
        raw,
        key=lambda k: (
            order.index(k[0]),
            ROUTES.index(k[1]) if k[1] in ROUTES else 0,
            k[2],
        ),
    )
    lines = []
    for key in keys:
        mean = np.mean(raw[key], axis=0)
        cells = " | ".join(f"{100 * v:.2f}" for v in mean)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {cells} |")
    table = "\n".join([header, *lines])
    print(table)
    n_done = min(len(v) for v in raw.values())
    info = (
        f"Measured false-positive rate (%) on the class's test images, mean over "
        f"{n_done} classes of {args.classes}; EfficientNet-Lite0 "
        f"{args.image_size} px features; {(time.perf_counter() - T0) / 60:.1f} min "
        f"so far on {platform.processor() or platform.machine()}; command: "
        f"`python {' '.join(sys.argv)}`"
    )
    print(info, flush=True)
    out_dir = Path(__file__).parent / "_out"
    out_dir.mkdir(exist_ok=True)
    with open(out_dir / "calibration.json", "w") as fh:
        json.dump({" | ".join(map(str, k)): v for k, v in raw.items()}, fh)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n\n" + info + "\n")


if __name__ == "__main__":
    main()
