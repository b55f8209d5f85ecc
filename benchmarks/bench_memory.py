"""Peak memory of chunked scoring against the documented ``working_memory`` bound.

Each case runs in a fresh subprocess: it builds the input (float32), then
scores it and reports the extra memory the scoring took at its peak, two ways:

- ``tracemalloc``: the peak of NumPy's (and Python's) allocations during
  ``score_samples``, the input excluded;
- peak RSS: the process's resident-set high-water mark during
  ``score_samples`` minus its resident size before (Linux: the high-water
  mark is reset through ``/proc/self/clear_refs``); this one also sees
  torch's and BLAS's own buffers.

The bound the estimators document: one chunk's temporaries fit in
scikit-learn's ``working_memory`` (see :func:`sklearn.config_context`), plus
the outputs, which grow with ``n``: 8 bytes per row for the scores and, for
the Mahalanobis distances, 8 bytes per row and class.

Cases (``--n`` rows of 512 features, default 2,000,000):

- ``MahalanobisDetector`` (one class) with ``working_memory`` 64, 256 and
  1024 MiB (NumPy path), and 256 MiB on a CPU torch tensor (torch path);
- ``KNNDetector`` (k=2) scoring ``--n / 10`` queries against 20,000
  reference rows with ``working_memory`` 64 and 256 MiB.

Usage::

    python benchmarks/bench_memory.py [--n 2000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

MiB = 2**20


def _rss():
    """(current, peak) resident set size in bytes, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_case(case):
    """Run in the subprocess: build the data, score it, report JSON."""
    import time
    import tracemalloc

    import numpy as np
    from sklearn import config_context

    from sklearn_ood import KNNDetector, MahalanobisDetector

    rng = np.random.default_rng(0)
    n, d = case["n"], case["d"]

    def block_data(rows):
        X = np.empty((rows, d), dtype=np.float32)
        for s in range(0, rows, 100_000):
            m = min(100_000, rows - s)
            X[s : s + m] = rng.standard_normal((m, d), dtype=np.float32)
        return X

    if case["detector"] == "knn":
        det = KNNDetector(n_neighbors=2).fit(block_data(20_000))
    else:
        det = MahalanobisDetector().fit(block_data(20_000))
    X = block_data(n)
    if case["device"] == "tensor":  # the torch path (the tensor shares X's memory)
        import torch

        X = torch.from_numpy(X)
    else:
        det.set_params(device=case["device"])
    with config_context(working_memory=case["working_memory"]):
        # Warm up on a few rows: the code pages of BLAS and torch kernels that
        # load on first use count in the RSS, not in the scoring's memory.
        det.score_samples(X[:2_000])
        rss_before, _ = _rss()
        reset = _reset_peak()
        tracemalloc.start()
        t0 = time.perf_counter()
        scores = det.score_samples(X)
        elapsed = time.perf_counter() - t0
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        _, rss_peak = _rss()
    assert scores.shape == (n,)
    return {
        "input_bytes": X.nbytes,
        "traced_peak": traced_peak,
        "rss_extra": rss_peak - rss_before if reset else None,
        "seconds": elapsed,
    }


CASES = [
    ("MahalanobisDetector", "maha", "auto", 64),
    ("MahalanobisDetector", "maha", "auto", 256),
    ("MahalanobisDetector", "maha", "auto", 1024),
    ("MahalanobisDetector, CPU torch tensor", "maha", "tensor", 256),
    ("KNNDetector, 20,000 reference rows", "knn", "auto", 64),
    ("KNNDetector, 20,000 reference rows", "knn", "auto", 256),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # inside the subprocess
        print(json.dumps(run_case(json.loads(args.case))))
        return
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average before: {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| case | rows scored | input (MiB) | working_memory (MiB) | bound: "
        "working_memory + outputs (MiB) | tracemalloc peak (MiB) | peak RSS "
        "increase (MiB) | time (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, detector, device, wm in CASES:
        n = args.n if detector == "maha" else args.n // 10
        case = {
            "detector": detector,
            "device": device,
            "working_memory": wm,
            "n": n,
            "d": args.d,
        }
        out = subprocess.run(
            [sys.executable, __file__, "--case", json.dumps(case)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"| {label} | {n:,} | failed: {out.stderr.strip()[-200:]} |")
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        # Scores (8 bytes a row), plus the (n, 1) distance matrix for Mahalanobis.
        outputs = 8 * n * (2 if detector == "maha" else 1)
        rss = res["rss_extra"]
        print(
            f"| {label} | {n:,} | {res['input_bytes'] / MiB:,.0f} | {wm} | "
            f"{wm + outputs / MiB:,.0f} | {res['traced_peak'] / MiB:,.1f} | "
            f"{'n/a' if rss is None else f'{rss / MiB:,.1f}'} | "
            f"{res['seconds']:.1f} |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
