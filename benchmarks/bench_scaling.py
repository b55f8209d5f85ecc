"""MahalanobisDetector fit and score time against n and d, with log-log slopes.

Three tables, float32 features with a decaying spectrum (as pooled CNN
features):

1. time against the number of rows ``n`` (``--ns``, default 1e4 .. 1e6) at
   ``d = 512``: ``fit`` (statistics, eigendecomposition and the leave-one-out
   pass that sets ``offset_``) and ``score_samples`` of ``n`` rows;
2. time against the number of features ``d`` (``--ds``, default 64 .. 2048)
   at ``n = 20,000``;
3. the same fit three ways at ``n = 200,000``, ``d = 512``: ``fit``,
   ``partial_fit`` over 10 batches, and ``fit_dask`` on a Dask array of 10
   blocks (local threaded scheduler; skipped when Dask is not installed),
   with the largest relative difference of their scores to ``fit``'s.

The slope is the least-squares fit of ``log(time)`` on ``log(n)`` (or
``log(d)``) over the sizes at or above the third one (small sizes are
dominated by fixed costs). Expected: fit ~ ``n d^2 + d^3``, score ~ ``n d^2``.

Usage::

    python benchmarks/bench_scaling.py [--ns 10000 30000 ...] [--ds 64 128 ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from sklearn_ood import MahalanobisDetector


def make_features(n, d, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    mix = (basis / np.sqrt(1.0 + np.arange(d))).astype(np.float32)
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 50_000):
        block = rng.standard_normal((min(50_000, n - s), d), dtype=np.float32)
        X[s : s + len(block)] = block @ mix.T + 3.0
    return X


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def measure(n, d, repeat):
    X = make_features(n, d, seed=n + d)
    fit_t, score_t = [], []
    for _ in range(repeat):
        t, det = timed(MahalanobisDetector().fit, X)
        fit_t.append(t)
        t, _ = timed(det.score_samples, X)
        score_t.append(t)
    return min(fit_t), min(score_t)


def slope(sizes, times):
    sizes, times = np.asarray(sizes, float), np.asarray(times, float)
    sel = slice(2, None) if len(sizes) >= 4 else slice(None)
    return np.polyfit(np.log(sizes[sel]), np.log(times[sel]), 1)[0]


def table(label, sizes, rows):
    fit, score = [r[0] for r in rows], [r[1] for r in rows]
    print(f"| {label} | fit (s) | score (s) | fit rows/s | score rows/s |")
    print("|---|---|---|---|---|")
    for size, (f, s, n) in zip(sizes, rows):
        print(f"| {size:,} | {f:.3f} | {s:.3f} | {n / f:,.0f} | {n / s:,.0f} |")
    print(
        f"| log-log slope | {slope(sizes, fit):.2f} | {slope(sizes, score):.2f} | | |"
    )


def streaming(n, d, n_batches):
    X = make_features(n, d, seed=7)
    t_fit, ref = timed(MahalanobisDetector().fit, X)
    expected = ref.score_samples(X[:10_000])

    def stream():
        det = MahalanobisDetector()
        for batch in np.array_split(X, n_batches):
            det.partial_fit(batch)
        return det

    rows = [("fit", t_fit, ref)]
    rows.append((f"partial_fit, {n_batches} batches", *timed(stream)))
    try:
        import dask
        import dask.array as da

        from sklearn_ood.parallel import fit_dask

        Xd = da.from_array(X, chunks=(n // n_batches, d))
        with dask.config.set(scheduler="threads", num_workers=2):
            rows.append(
                (
                    f"fit_dask, {n_batches} blocks (threads)",
                    *timed(fit_dask, MahalanobisDetector(), Xd),
                )
            )
    except ImportError as exc:
        print(f"(fit_dask not run: {exc})")
    print(f"| {n:,} x {d} float32 | time (s) | max rel. diff of scores | offset_ |")
    print("|---|---|---|---|")
    for name, t, det in rows:
        got = det.score_samples(X[:10_000])
        diff = np.max(np.abs(got - expected) / np.abs(expected))
        print(f"| {name} | {t:.2f} | {diff:.1e} | {det.offset_:.6f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ns", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 10**6]
    )
    parser.add_argument("--n-for-d", type=int, default=20_000)
    parser.add_argument(
        "--ds", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048]
    )
    parser.add_argument("--d-for-n", type=int, default=512)
    parser.add_argument("--stream-n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average before: {os.getloadavg()[0]:.2f}; best of {args.repeat}"
    )
    print(f"\n### Against n (d = {args.d_for_n})\n")
    rows = []
    for n in args.ns:
        rows.append((*measure(n, args.d_for_n, args.repeat), n))
    table("n", args.ns, rows)
    print(f"\n### Against d (n = {args.n_for_d:,})\n")
    rows = []
    for d in args.ds:
        rows.append((*measure(args.n_for_d, d, args.repeat), args.n_for_d))
    table("d", args.ds, rows)
    print("\n### Streaming and Dask fits\n")
    streaming(args.stream_n, args.d_for_n, 10)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
