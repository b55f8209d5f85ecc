"""KNNDetector (k=2) fit, leave-one-out offset and scoring, against a bound and peers.

Part 1 (exact search, synthetic): ``--n`` reference rows and ``--n`` query rows of
``--d`` float32 features (default 50,000 x 50,000 x 512), side by side in one
run. Each contender does the same two searches: the leave-one-out 2-NN of
every reference row (what sets ``offset_``; peers that do not compute it say
so) and the 2-NN of every query. Accuracy: the largest relative error of the
contender's scores on the first ``--check`` queries against float64 brute force
in the contender's own units (mean of squared distances, mean of distances, or
distance to the 2nd neighbour).

Contenders (peers are skipped, with the reason, when they do not import):

- ``numpy GEMM + partition (lower bound)``: for chunks of queries,
  ``D = |q|^2 - 2 Q R^T + |r|^2`` in float32 and ``np.partition(D, k-1)``;
  no validation, no centring, no offset.
- ``sklearn-ood KNNDetector``: ``fit`` (leave-one-out offset) +
  ``score_samples`` (NumPy path); also with ``device="cpu"`` (the torch path).
- ``sklearn NearestNeighbors(algorithm="brute")``: ``kneighbors()`` (leave-one-out)
  + ``kneighbors(Q)``.
- ``PyOD KNN(method="mean")``: ``fit`` (leave-one-out training scores) +
  ``decision_function`` (scikit-learn's ``algorithm="auto"``: brute force
  at more than 15 features).
- ``pytorch-ood KNN(normalize=False, algorithm="brute")``: ``fit_features`` +
  ``predict_features`` (no leave-one-out pass: it does not set a threshold).
- ``faiss IndexFlatL2`` (exact, BLAS): ``search(R, k + 1)`` minus self, and
  ``search(Q, k)``.

Part 2 (approximate index, real features): Fashion-MNIST pixels (784-d,
float32 in [0, 1]); reference: the training images of classes 0-4 (30,000);
queries: the 10,000 test images, classes 5-9 being out-of-distribution. faiss
IVF and HNSW indexes against the exact search: recall of the exact 2 nearest
neighbours, AUROC of the kNN score, build and search times.

Usage::

    python benchmarks/bench_knn.py [--n 50000] [--d 512] [--k 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from sklearn_ood import KNNDetector
from sklearn_ood.utils._chunking import _chunk_rows


def make_data(n, d, seed=0):
    """ReLU-like correlated features (pooled CNN features are non-negative)."""
    rng = np.random.default_rng(seed)
    mix = (rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)).astype(
        np.float32
    )
    out = []
    for _ in range(2):
        Z = np.empty((n, d), dtype=np.float32)
        for s in range(0, n, 10_000):
            block = rng.standard_normal((min(10_000, n - s), d), dtype=np.float32)
            Z[s : s + len(block)] = np.maximum(block @ mix + 0.3, 0.0)
        out.append(Z)
    return out


def _topk_numpy(Q, R, k, exclude_self):
    r_sq = np.einsum("ij,ij->i", R, R)
    n = Q.shape[0]
    out = np.empty((n, k), dtype=np.float32)
    step = _chunk_rows(n, 4 * (R.shape[0] + 2 * R.shape[1]))
    for s in range(0, n, step):
        q = Q[s : s + step]
        D = q @ R.T
        D *= -2.0
        D += np.einsum("ij,ij->i", q, q)[:, None]
        D += r_sq[None, :]
        if exclude_self:
            rows = np.arange(D.shape[0])
            D[rows, rows + s] = np.inf
        D.partition(k - 1, axis=1)
        out[s : s + len(q)] = D[:, :k]
    return np.maximum(out, 0.0)


def lower_bound(R, Q, k):
    loo = _topk_numpy(R, R, k, True).mean(axis=1)
    return loo, _topk_numpy(Q, R, k, False).mean(axis=1)


def ours(R, Q, k, device=None):
    det = KNNDetector(n_neighbors=k, device=device).fit(R)
    return det.offset_, -det.score_samples(Q)


def sklearn_brute(R, Q, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(R)
    loo = nn.kneighbors()[0].mean(axis=1)
    return loo, nn.kneighbors(Q)[0].mean(axis=1)


def pyod_knn(R, Q, k):
    from pyod.models.knn import KNN

    det = KNN(n_neighbors=k, method="mean").fit(R)  # "auto": brute at d > 15
    return det.decision_scores_, det.decision_function(Q)


def pytorch_ood_knn(R, Q, k):
    import torch
    from pytorch_ood.detector import KNN

    det = KNN(None, k=k, normalize=False, algorithm="brute")
    det.fit_features(torch.from_numpy(R), torch.zeros(len(R), dtype=torch.long))
    return None, det.predict_features(torch.from_numpy(Q)).numpy()


def faiss_flat(R, Q, k):
    import faiss

    index = faiss.IndexFlatL2(R.shape[1])
    index.add(R)
    D, ind = index.search(R, k + 1)
    own = ind == np.arange(len(R))[:, None]
    # Drop each row's own entry (or the farthest one if a duplicate hid it).
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(len(R)), drop] = False
    loo = D[keep].reshape(len(R), k).mean(axis=1)
    return loo, index.search(Q, k)[0].mean(axis=1)


# contender -> (function, score units, computes leave-one-out)
CONTENDERS = {
    "numpy GEMM + partition (lower bound)": (lower_bound, "sq-mean", True),
    "sklearn-ood KNNDetector": (ours, "sq-mean", True),
    'sklearn-ood KNNDetector(device="cpu") (torch)': (
        lambda R, Q, k: ours(R, Q, k, "cpu"),
        "sq-mean",
        True,
    ),
    'sklearn NearestNeighbors(algorithm="brute")': (sklearn_brute, "mean", True),
    'PyOD KNN(method="mean")': (pyod_knn, "mean", True),
    "pytorch-ood KNN(normalize=False, brute)": (pytorch_ood_knn, "kth", False),
    "faiss IndexFlatL2 (exact)": (faiss_flat, "sq-mean", True),
}
PEER_MODULES = {"PyOD": "pyod", "pytorch-ood": "pytorch_ood", "faiss": "faiss"}


def reference_scores(R, Q, k):
    """float64 brute-force 2-NN squared distances of the queries Q."""
    R64 = R.astype(np.float64)
    D = (
        np.einsum("ij,ij->i", Q, Q)[:, None]
        - 2.0 * Q @ R64.T
        + np.einsum("ij,ij->i", R64, R64)[None, :]
    )
    D = np.sort(np.maximum(D, 0.0), axis=1)[:, :k]
    return {
        "sq-mean": D.mean(axis=1),
        "mean": np.sqrt(D).mean(axis=1),
        "kth": np.sqrt(D[:, -1]),
    }


def exact_part(args):
    R, Q = make_data(args.n, args.d)
    k = args.k
    ref = reference_scores(R, Q[: args.check].astype(np.float64), k)
    contenders, skipped = dict(CONTENDERS), {}
    for name in list(contenders):
        for peer, module in PEER_MODULES.items():
            if name.startswith(peer):
                try:
                    __import__(module)
                except Exception as exc:
                    skipped[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    del contenders[name]
    times = {name: [] for name in contenders}
    errors = {}
    for _ in range(args.repeat):
        for name, (fn, units, _) in contenders.items():
            t0 = time.perf_counter()
            _, scores = fn(R, Q, k)
            times[name].append(time.perf_counter() - t0)
            got = np.asarray(scores[: args.check], dtype=np.float64)
            want = ref[units]
            errors[name] = np.max(np.abs(got - want) / np.maximum(want, 1e-12))
    bound = min(times["numpy GEMM + partition (lower bound)"])
    print(
        f"\n### Exact k-NN, k={k}: {args.n} reference x {args.n} queries x {args.d} "
        f"float32; best of {args.repeat}\n"
    )
    print(
        "| contender | leave-one-out pass | time (s) | ratio to lower bound "
        f"| max rel. error (first {args.check} queries) |"
    )
    print("|---|---|---|---|---|")
    for name, (_, units, loo) in contenders.items():
        t = min(times[name])
        print(
            f"| {name} | {'yes' if loo else 'no'} | {t:.1f} | {t / bound:.2f}x "
            f"| {errors[name]:.1e} ({units}) |"
        )
    for name, why in skipped.items():
        print(f"| {name} | | not run: {why} | | |")


def approximate_part(args):
    try:
        import faiss
    except Exception as exc:
        print(f"\n### Approximate index: not run (faiss: {exc})")
        return
    from sklearn.metrics import roc_auc_score

    from sklearn_ood.datasets import load_fashion_mnist

    X, y = load_fashion_mnist(subset="train")
    T, t = load_fashion_mnist(subset="test")
    R = (X[y < 5].reshape(-1, 784) / np.float32(255)).astype(np.float32)
    Q = (T.reshape(-1, 784) / np.float32(255)).astype(np.float32)
    inlier = t < 5
    k = args.k
    t0 = time.perf_counter()
    det = KNNDetector(n_neighbors=k).fit(R)
    t_fit = time.perf_counter() - t0
    exact_scores = det.score_samples(Q)
    t_exact = time.perf_counter() - t0 - t_fit
    _, exact_ind = det.kneighbors(Q, n_neighbors=k)
    auc_exact = roc_auc_score(inlier, exact_scores)
    print(
        f"\n### Approximate index (faiss {faiss.__version__}), k={k}: Fashion-MNIST "
        f"pixels, {len(R)} reference (classes 0-4) x {len(Q)} test queries "
        "(classes 5-9 OOD), 784-d\n"
    )
    print(
        "| index | build (s) | search (s) | recall@k of the exact neighbours "
        "| AUROC | AUROC - exact |"
    )
    print("|---|---|---|---|---|---|")
    print(
        "| exact: sklearn-ood KNNDetector (build = fit with its leave-one-out "
        f"pass) | {t_fit:.2f} | {t_exact:.2f} | 1.000 | {auc_exact:.4f} | 0 |"
    )
    d = R.shape[1]
    configs = []
    for nprobe in (1, 4, 16):
        configs.append((f"IVFFlat nlist=256 nprobe={nprobe}", "ivf", nprobe))
    for ef in (16, 64):
        configs.append((f"HNSWFlat M=32 efSearch={ef}", "hnsw", ef))
    built = {}
    for name, kind, param in configs:
        t0 = time.perf_counter()
        if kind not in built:
            if kind == "ivf":
                index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, 256)
                index.train(R)
            else:
                index = faiss.IndexHNSWFlat(d, 32)
            index.add(R)
            built[kind] = (index, time.perf_counter() - t0)
        index, t_build = built[kind]
        if kind == "ivf":
            index.nprobe = param
        else:
            index.hnsw.efSearch = param
        t0 = time.perf_counter()
        D, ind = index.search(Q, k)
        t_search = time.perf_counter() - t0
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ind, exact_ind)])
        auc = roc_auc_score(inlier, -D.mean(axis=1))
        print(
            f"| faiss {name} | {t_build:.2f} | {t_search:.2f} | {recall:.3f} "
            f"| {auc:.4f} | {auc - auc_exact:+.4f} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--check", type=int, default=1_000)
    parser.add_argument("--skip-approximate", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    exact_part(args)
    if not args.skip_approximate:
        approximate_part(args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
