"""MahalanobisDetector fit + score speed against a bare NumPy lower bound and peers.

Fits on ``n`` training rows and scores ``n`` other rows of ``d`` float32
features (default 50,000 x 512), side by side in one run: every repeat runs
each contender once, in a rotated order (so no contender always runs first or
after the same one), and the best and the median of the repeats are reported,
with each contender's ratio to the Cholesky bound.

Each contender starts after ``--pause`` seconds of idle time (default 0.3):
the BLAS worker threads of the contender before spin for about 0.1 s after its
last product and would otherwise compete with the next one's first products,
which a script that fits once does not see (``--pause 0``: back to back).

This is a plain script: it sets no thread or OpenMP environment variable
(``OMP_WAIT_POLICY``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) and warns
when the environment has one, so its numbers are what a user's own script
gets. ``--busy K`` starts K busy background processes for the whole run (a
machine shared with other work).

Contenders (peers are skipped, with a note, when they do not install):

- ``bare SGEMM of sklearn-ood's flops``: the hardware bound of the algorithm
  sklearn-ood runs (SYRK + two TRMMs = 3 n d^2 flops) as plain GEMMs, with
  no pass over the data besides them.
- ``numpy-cholesky``/``numpy-eigh``: the lower bounds. Mean, centred
  covariance (one SYRK), a Cholesky (or eigen) factorisation, and one GEMM
  for the scores; no validation, no calibration pass, no chunking. The
  factorisations are SciPy's; ``numpy-cholesky, one BLAS library`` does every
  product and factorisation in NumPy's (``np.linalg``), the tightest bound:
  the wheels of NumPy and SciPy carry separate OpenBLAS thread pools, and a
  product in one while the other's idle threads still spin (about 0.1 s after
  each call) runs next to them (``sklearn_ood/utils/_blas.py``).
- ``sklearn-ood``: ``MahalanobisDetector().fit(X).score_samples(X_test)``,
  including input validation and the leave-one-out pass over the training
  rows that sets ``offset_`` (which the bounds skip). ``sklearn-ood pinv`` is
  the same with ``eigenvalue_floor="pinv"`` (the papers' pseudo-inverse).
- ``sklearn EmpiricalCovariance``: ``fit(X)`` then ``mahalanobis(X_test)``.
- ``pytorch-ood Mahalanobis``: ``fit_features`` / ``predict_features`` on CPU.
- ``PyOD MCD``: robust covariance; minutes at full size, so it runs on
  ``--mcd-rows`` rows only and its time is reported for that size.

``--threads-probe`` adds the measurement behind the library's BLAS thread
management: a Ledoit-Wolf fit of 400 x 1280 features (six factorisations of
1280 x 1280: the full fit and five out-of-fold fits) as shipped (one BLAS
thread around the factorisations) and with that limit switched off, each with
and without a busy background process.

Usage::

    python benchmarks/bench_mahalanobis.py [--n 50000] [--d 512] [--repeat 5]
        [--pause 0.3] [--busy 0] [--threads-probe]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time

import numpy as np
from scipy import linalg
from threadpoolctl import threadpool_info

from sklearn_ood import MahalanobisDetector

THREAD_VARIABLES = (
    "OMP_WAIT_POLICY",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOTO_NUM_THREADS",
)


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


def bare_sgemm_same_flops(X, Xt):
    # sklearn-ood's products: the SYRK (n d^2 flops) and two TRMMs (n d^2
    # each), as 1.5 plain GEMMs of the training rows (3 n d^2 flops), no
    # other pass: the hardware bound of the algorithm it runs.
    W = np.eye(X.shape[1], dtype=X.dtype)
    X @ W
    X[: X.shape[0] // 2] @ W
    return -np.einsum("ij,ij->i", Xt, Xt)  # (not a score: timing only)


def numpy_one_library(X, Xt):
    mu = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    Xc = X - mu
    cov = (Xc.T @ Xc) / np.float32(X.shape[0])
    W = np.linalg.inv(np.linalg.cholesky(cov))  # L^-1: NumPy's LAPACK
    Z = (Xt - mu) @ W.T
    return -np.einsum("ij,ij->i", Z, Z)


def ours(X, Xt):
    return MahalanobisDetector().fit(X).score_samples(Xt)


def ours_pinv(X, Xt):
    return MahalanobisDetector(eigenvalue_floor="pinv").fit(X).score_samples(Xt)


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


@contextlib.contextmanager
def busy_processes(k):
    """``k`` background processes that spin for as long as the block runs."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)
    ]
    try:
        time.sleep(0.5 if k else 0.0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _why_not(module):
    try:
        __import__(module)
    except Exception as exc:  # any failure means "not run"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def header(args):
    env = {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}
    blas = sorted(
        {
            f"{i['internal_api']} {i['architecture']} "
            f"{i['threading_layer']} {i['num_threads']} threads"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        }
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}, BLAS: {'; '.join(blas)}, "
        f"{args.busy} busy background process(es)"
    )
    if env:
        print(f"WARNING: thread variables set in the environment: {env}")
    else:
        print("no thread or OpenMP environment variable set (plain script)")


def speed(args):
    X, Xt = make_data(args.n, args.d)
    ref = (
        -MahalanobisDetector(eigenvalue_floor=0)
        .fit(X.astype(np.float64))
        .mahalanobis(Xt.astype(np.float64))
    )
    contenders = {
        "bare SGEMM of sklearn-ood's flops (hardware bound)": bare_sgemm_same_flops,
        "numpy-cholesky, one BLAS library (lower bound)": numpy_one_library,
        "numpy-cholesky (lower bound)": numpy_cholesky,
        "numpy-eigh (lower bound)": numpy_eigh,
        "sklearn-ood MahalanobisDetector": ours,
        "sklearn-ood MahalanobisDetector(eigenvalue_floor='pinv')": ours_pinv,
        "sklearn EmpiricalCovariance": sklearn_empirical,
        "pytorch-ood Mahalanobis": run_pytorch_ood,
    }
    skipped = {}
    why = _why_not("pytorch_ood")
    if why:
        skipped["pytorch-ood Mahalanobis"] = why
        del contenders["pytorch-ood Mahalanobis"]
    names = list(contenders)
    times = {name: [] for name in names}
    accuracy = {}
    for r in range(args.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            time.sleep(args.pause)
            t0 = time.perf_counter()
            s = contenders[name](X, Xt)
            times[name].append(time.perf_counter() - t0)
            if "hardware bound" in name:
                continue
            # Scale-normalised (pytorch-ood's covariance is not divided by n).
            s = s * (np.dot(s, ref) / np.dot(s, s))
            accuracy[name] = np.max(np.abs(s - ref) / np.maximum(np.abs(ref), 1e-12))

    mcd_time = None
    why = _why_not("pyod") or ("--mcd-rows 0" if args.mcd_rows < 1 else None)
    if why:
        skipped["PyOD MCD"] = why
    else:
        m = args.mcd_rows
        t0 = time.perf_counter()
        pyod_mcd(X[:m], Xt[:m])
        mcd_time = time.perf_counter() - t0

    tight = times["numpy-cholesky, one BLAS library (lower bound)"]
    bound = times["numpy-cholesky (lower bound)"]
    print(
        f"\nMahalanobis fit + score, {args.n} x {args.d} float32 (fit) + "
        f"{args.n} x {args.d} (score); {args.repeat} interleaved repeats, "
        f"{args.pause} s pause before each\n"
    )
    print(
        "| contender | best (s) | median (s) | best / best of one-library bound | "
        "median / median of one-library bound | best / best of Cholesky bound | "
        "max rel. error vs float64 (scale-normalised) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        t = times[name]
        error = f"{accuracy[name]:.1e}" if name in accuracy else "n/a"
        print(
            f"| {name} | {min(t):.3f} | {np.median(t):.3f} | "
            f"{min(t) / min(tight):.2f}x | {np.median(t) / np.median(tight):.2f}x | "
            f"{min(t) / min(bound):.2f}x | {error} |"
        )
    if mcd_time is not None:
        print(
            f"| PyOD MCD ({args.mcd_rows} rows only) | {mcd_time:.3f} | | "
            "n/a (not run at full size) | | | n/a |"
        )
    for name, why in skipped.items():
        print(f"| {name} | not run: {why} | | | | | |")
    ours_best = min(times["sklearn-ood MahalanobisDetector"])
    gemm_best = min(times["bare SGEMM of sklearn-ood's flops (hardware bound)"])
    print(
        f"\nsklearn-ood / bare SGEMM of its flops (best to best): "
        f"{ours_best / gemm_best:.2f}x"
    )


def threads_probe(args):
    """Ledoit-Wolf fit of 400 x 1280: one BLAS thread for the factorisations or not."""
    from sklearn_ood._gaussian import _estimate

    X, _ = make_data(400, 1280, seed=1)
    shipped = _estimate.single_blas_thread

    @contextlib.contextmanager
    def no_limit():
        yield

    def fit(limit):
        _estimate.single_blas_thread = shipped if limit else no_limit
        try:
            t0 = time.perf_counter()
            MahalanobisDetector(covariance="ledoit_wolf").fit(X)
            return time.perf_counter() - t0
        finally:
            _estimate.single_blas_thread = shipped

    print(
        "\nLedoit-Wolf fit, 400 x 1280 float32 (its 1280 x 1280 "
        "factorisations and the leave-one-out pass); best of "
        f"{args.repeat}, interleaved\n"
    )
    print("| background | shipped: 1 BLAS thread for factorisations (s) | "
          "BLAS default threads (s) | ratio |")  # fmt: skip
    print("|---|---|---|---|")
    for k in (0, max(1, args.busy)):
        with busy_processes(k):
            t = {True: [], False: []}
            for _ in range(args.repeat):
                for limit in (True, False):
                    t[limit].append(fit(limit))
        a, b = min(t[True]), min(t[False])
        print(f"| {k} busy process(es) | {a:.2f} | {b:.2f} | {b / a:.1f}x |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--pause", type=float, default=0.3, help="idle seconds before each contender"
    )
    parser.add_argument("--mcd-rows", type=int, default=2_000)
    parser.add_argument("--busy", type=int, default=0, help="busy background processes")
    parser.add_argument("--threads-probe", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="only the probe")
    args = parser.parse_args(argv)
    header(args)
    if not args.no_speed:
        with busy_processes(args.busy):
            speed(args)
    if args.threads_probe:
        threads_probe(args)


if __name__ == "__main__":
    main()
