"""MahalanobisDetector fit + score speed against a bare NumPy lower bound and peers.

Fits on ``n`` training rows and scores ``n`` other rows of ``d`` float32
features (default 50,000 x 512), side by side in one run: each contender is
run ``--repeat`` times in interleaved order and its best time is reported.

Contenders (peers are skipped, with a note, when they do not install):

- ``numpy-eigh``/``numpy-cholesky``: the lower bound. Mean, centred covariance
  (one SYRK), decomposition, and one GEMM for the scores; no validation, no
  offset, no chunking.
- ``sklearn-ood``: ``MahalanobisDetector().fit(X).score_samples(X_test)``,
  including input validation and the leave-one-out training scores that set
  ``offset_`` (an extra GEMM over the training rows that the bound skips).
- ``sklearn EmpiricalCovariance``: ``fit(X)`` then ``mahalanobis(X_test)``.
- ``pytorch-ood Mahalanobis``: ``fit_features`` / ``predict_features`` on CPU.
- ``PyOD MCD``: robust covariance; minutes at full size, so it runs on
  ``--mcd-rows`` rows only and its time is reported for that size.

Usage::

    python benchmarks/bench_mahalanobis.py [--n 50000] [--d 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from scipy import linalg

from sklearn_ood import MahalanobisDetector


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    # Correlated features with a decaying spectrum, like pooled CNN features.
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    scales = 1.0 / np.sqrt(1.0 + np.arange(d))
    mix = (basis * scales).astype(np.float32)
    X = rng.standard_normal((2 * n, d), dtype=np.float32) @ mix.T + 3.0
    return X[:n], X[n:]


def numpy_eigh(X, Xt):
    mu = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    Xc = X - mu
    cov = (Xc.T @ Xc).astype(np.float64) / X.shape[0]
    eig, vec = linalg.eigh(cov)
    W = (vec / np.sqrt(eig)).astype(np.float32)
    Z = (Xt - mu) @ W
    return -np.einsum("ij,ij->i", Z, Z)


def numpy_cholesky(X, Xt):
    mu = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    Xc = X - mu
    cov = (Xc.T @ Xc) / np.float32(X.shape[0])
    L = linalg.cholesky(cov, lower=True)
    W = linalg.solve_triangular(L, np.eye(L.shape[0], dtype=np.float32), lower=True)
    Z = (Xt - mu) @ W.T
    return -np.einsum("ij,ij->i", Z, Z)


def ours(X, Xt):
    return MahalanobisDetector().fit(X).score_samples(Xt)


def sklearn_empirical(X, Xt):
    from sklearn.covariance import EmpiricalCovariance

    return -EmpiricalCovariance().fit(X).mahalanobis(Xt)


def run_pytorch_ood(X, Xt):
    import torch
    from pytorch_ood.detector import Mahalanobis

    det = Mahalanobis(None)
    z = torch.from_numpy(X)
    det.fit_features(z, torch.zeros(len(X), dtype=torch.long))
    # pytorch-ood returns half the squared distance, higher = more OOD.
    return -2.0 * det.predict_features(torch.from_numpy(Xt)).numpy()


def pyod_mcd(X, Xt):
    from pyod.models.mcd import MCD

    det = MCD(random_state=0).fit(X)
    return -det.decision_function(Xt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mcd-rows", type=int, default=2_000)
    args = parser.parse_args(argv)

    X, Xt = make_data(args.n, args.d)
    ref = (
        -MahalanobisDetector(eigenvalue_floor=0)
        .fit(X.astype(np.float64))
        .mahalanobis(Xt.astype(np.float64))
    )

    contenders = {
        "numpy-eigh (lower bound)": numpy_eigh,
        "numpy-cholesky (lower bound)": numpy_cholesky,
        "sklearn-ood MahalanobisDetector": ours,
        "sklearn EmpiricalCovariance": sklearn_empirical,
        "pytorch-ood Mahalanobis": run_pytorch_ood,
    }
    times = {name: [] for name in contenders}
    accuracy, skipped = {}, {}
    for name in list(contenders):
        if name.startswith("pytorch-ood"):
            why = None
            try:
                import pytorch_ood  # noqa: F401
            except Exception as exc:
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            if why:
                skipped[name] = why
                del contenders[name]
    for _ in range(args.repeat):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            s = fn(X, Xt)
            times[name].append(time.perf_counter() - t0)
            # Scale-normalised (pytorch-ood's covariance is not divided by n).
            s = s * (np.dot(s, ref) / np.dot(s, s))
            rel = np.max(np.abs(s - ref) / np.maximum(np.abs(ref), 1e-12))
            accuracy[name] = rel

    mcd_time = None
    try:
        import pyod  # noqa: F401

        m = args.mcd_rows
        t0 = time.perf_counter()
        pyod_mcd(X[:m], Xt[:m])
        mcd_time = time.perf_counter() - t0
    except Exception as exc:
        skipped["PyOD MCD"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    bound = min(
        min(times["numpy-eigh (lower bound)"]),
        min(times["numpy-cholesky (lower bound)"]),
    )
    print(
        f"\nMahalanobis fit + score, {args.n} x {args.d} float32 (fit) + "
        f"{args.n} x {args.d} (score); best of {args.repeat}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n"
    )
    print(
        "| contender | time (s) | ratio to lower bound | "
        "max rel. error vs float64 (scale-normalised) |"
    )
    print("|---|---|---|---|")
    for name in contenders:
        t = min(times[name])
        print(f"| {name} | {t:.3f} | {t / bound:.2f}x | {accuracy[name]:.1e} |")
    if mcd_time is not None:
        print(
            f"| PyOD MCD ({args.mcd_rows} rows only) | {mcd_time:.3f} | "
            f"n/a (not run at full size) | n/a |"
        )
    for name, why in skipped.items():
        print(f"| {name} | not run: {why} | | |")


if __name__ == "__main__":
    main()
