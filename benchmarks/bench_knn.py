"""Exact k-NN (k=2, DN2) against the bare matrix product and peers, side by side.

Part 1 (exact search): for each ``--sizes`` entry ``NxMxD`` (default
20,000 reference x 20,000 query x 256 and x 512 float32 rows), every
contender does the same two searches: the leave-one-out k-NN of every
reference row (what sets ``offset_``; a peer that does not compute it says
so) and the k-NN of every query. Contenders run interleaved (the order
rotates every repetition); the table gives the median and the minimum of
``--repeat`` runs, the ratio of the median to the bare SGEMM of the same two
searches, and to faiss's exact ``IndexFlatL2`` where it is installed.
Accuracy: the largest relative error of the contender's scores of the first
``--check`` queries against float64 brute force, in the contender's units.

Contenders (a peer that does not import gets a "not installed" row):

- ``bare SGEMM``: ``np.matmul`` of the same two searches into a reused
  output block (2,048 rows at a time, BLAS on all its threads): the floating
  point work of the exact search and nothing else, the bound to compare with.
- ``bare SGEMM, leave-one-out on and above the diagonal``: the products
  sklearn-ood's search computes (distances are symmetric, so its
  leave-one-out pass needs the blocks on and above the diagonal only), the
  bound of that algorithm.
- ``bare torch.mm``: the same with torch (the bound of the torch path).
- ``sklearn-ood KNNDetector``: ``fit`` (leave-one-out, ``offset_``) +
  ``score_samples`` (NumPy engine).
- ``sklearn-ood KNNDetector on CPU tensors``: ``fit`` and ``score_samples``
  on ``torch.from_numpy`` views (the NumPy engine searches them, no copy).
- ``sklearn-ood torch engine on the CPU``: the same two searches with the
  torch engine, which ``KNNDetector`` uses on a GPU only (for reference).
- ``sklearn-ood KNNDetector(device="cuda")``: only where CUDA is available.
- ``sklearn-ood KNNDetector(algorithm="faiss:Flat")``: faiss chooses.
- ``scikit-learn NearestNeighbors(algorithm="brute")``.
- ``PyOD KNN(method="mean")`` (scikit-learn inside).
- ``pytorch-ood KNN`` (one search only: it sets no threshold).
- ``faiss IndexFlatL2`` (exact): ``search(R, k + 1)`` minus self, ``search(Q, k)``.

Part 2 (approximate indexes): Fashion-MNIST pixels (784-d; reference: the
training images of classes 0-4, queries: the 10,000 test images, classes 5-9
out-of-distribution), or, without the data set, a synthetic stand-in (said in
the output). ``KNNDetector(algorithm="faiss:IVF...")`` and ``"faiss:HNSW..."``
against the exact search: recall of the exact k nearest, AUROC, its change.

Nothing here sets thread or OpenMP variables: the numbers are those of a
plain script.

Usage::

    python benchmarks/bench_knn.py [--sizes 20000x20000x256 20000x20000x512]
        [--k 2] [--repeat 3] [--check 1000] [--skip-approximate]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import time

import numpy as np

from sklearn_ood import KNNDetector


# ------------------------------------------------------------------ data
def make_data(n_ref, n_query, d, seed=0):
    """ReLU-like correlated float32 features (pooled CNN features are >= 0)."""
    rng = np.random.default_rng(seed)
    mix = (rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)).astype(
        np.float32
    )
    out = []
    for n in (n_ref, n_query):
        Z = np.empty((n, d), dtype=np.float32)
        for s in range(0, n, 10_000):
            block = rng.standard_normal((min(10_000, n - s), d), dtype=np.float32)
            Z[s : s + len(block)] = np.maximum(block @ mix + 0.3, 0.0)
        out.append(Z)
    return out


def reference_scores(R, Q, k):
    """float64 brute force: the k nearest squared distances of the queries Q."""
    R64, Q64 = R.astype(np.float64), Q.astype(np.float64)
    D = (
        np.einsum("ij,ij->i", Q64, Q64)[:, None]
        - 2.0 * Q64 @ R64.T
        + np.einsum("ij,ij->i", R64, R64)[None, :]
    )
    D = np.sort(np.maximum(D, 0.0), axis=1)[:, :k]
    return {
        "sq-mean": D.mean(axis=1),
        "mean": np.sqrt(D).mean(axis=1),
        "kth": np.sqrt(D[:, -1]),
    }


# ----------------------------------------------------------- contenders
_CHUNK = 2048


def bare_sgemm(R, Q, k):
    out = np.empty((_CHUNK, R.shape[0]), dtype=np.float32)
    for A in (R, Q):
        for s in range(0, A.shape[0], _CHUNK):
            block = A[s : s + _CHUNK]
            np.matmul(block, R.T, out=out[: block.shape[0]])
    return None


def bare_sgemm_symmetric(R, Q, k):
    """The products sklearn-ood's search does: the leave-one-out pass only on
    and above the block diagonal (distances are symmetric), the queries in
    full."""
    out = np.empty((_CHUNK, max(R.shape[0], _CHUNK)), dtype=np.float32)
    for s in range(0, R.shape[0], _CHUNK):
        block = R[s : s + _CHUNK]
        rest = R[s:]
        np.matmul(block, rest.T, out=out[: block.shape[0], : rest.shape[0]])
    for s in range(0, Q.shape[0], _CHUNK):
        block = Q[s : s + _CHUNK]
        np.matmul(block, R.T, out=out[: block.shape[0], : R.shape[0]])
    return None


def bare_torch(R, Q, k, device="cpu"):
    import torch

    Rt = torch.from_numpy(R).to(device)
    out = torch.empty((_CHUNK, R.shape[0]), device=device)
    for A in (Rt, torch.from_numpy(Q).to(device)):
        for s in range(0, A.shape[0], _CHUNK):
            block = A[s : s + _CHUNK]
            torch.mm(block, Rt.T, out=out[: block.shape[0]])
    if device != "cpu":
        torch.cuda.synchronize()
    return None


def ours(R, Q, k, **params):
    det = KNNDetector(n_neighbors=k, **params).fit(R)
    return -det.score_samples(Q)


def ours_cpu_tensors(R, Q, k):
    import torch

    det = KNNDetector(n_neighbors=k).fit(torch.from_numpy(R))
    return -det.score_samples(torch.from_numpy(Q))


def ours_torch_engine(R, Q, k):
    import torch

    from sklearn_ood._knn_search import expand, prepare_index, with_neighbors
    from sklearn_ood._knn_torch import leave_one_out_torch, search_torch

    cpu = torch.device("cpu")
    index = prepare_index(R, "sqeuclidean")
    index = with_neighbors(index, *leave_one_out_torch(index, k, cpu))
    dist, ind = search_torch(index, torch.from_numpy(Q), k, cpu)
    return expand(index, dist, ind, k).mean(axis=1)


def sklearn_brute(R, Q, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(R)
    nn.kneighbors()
    return nn.kneighbors(Q)[0].mean(axis=1)


def pyod_knn(R, Q, k):
    from pyod.models.knn import KNN

    det = KNN(n_neighbors=k, method="mean").fit(R)  # "auto": brute at d > 15
    return det.decision_function(Q)


def pytorch_ood_knn(R, Q, k):
    import torch
    from pytorch_ood.detector import KNN

    det = KNN(None, k=k, normalize=False, algorithm="brute")
    det.fit_features(torch.from_numpy(R), torch.zeros(len(R), dtype=torch.long))
    return det.predict_features(torch.from_numpy(Q)).numpy()


def faiss_flat(R, Q, k):
    import faiss

    index = faiss.IndexFlatL2(R.shape[1])
    index.add(R)
    index.search(R, k + 1)  # leave-one-out: k + 1, minus self
    return index.search(Q, k)[0].mean(axis=1)


def contenders():
    """name -> (function, score units, leave-one-out pass, module it needs)."""
    import torch

    out = {
        "bare SGEMM (np.matmul, the bound)": (bare_sgemm, None, True, None),
        "bare SGEMM, leave-one-out on and above the diagonal": (
            bare_sgemm_symmetric,
            None,
            True,
            None,
        ),
        "bare torch.mm (CPU)": (bare_torch, None, True, None),
        "sklearn-ood KNNDetector": (ours, "sq-mean", True, None),
        "sklearn-ood KNNDetector on CPU tensors": (
            ours_cpu_tensors,
            "sq-mean",
            True,
            None,
        ),
        "sklearn-ood torch engine on the CPU (GPU engine)": (
            ours_torch_engine,
            "sq-mean",
            True,
            None,
        ),
        'sklearn-ood KNNDetector(algorithm="faiss:Flat")': (
            lambda R, Q, k: ours(R, Q, k, algorithm="faiss:Flat"),
            "sq-mean",
            True,
            "faiss",
        ),
        'scikit-learn NearestNeighbors(algorithm="brute")': (
            sklearn_brute,
            "mean",
            True,
            None,
        ),
        'PyOD KNN(method="mean")': (pyod_knn, "mean", True, "pyod"),
        "pytorch-ood KNN (one search: no leave-one-out)": (
            pytorch_ood_knn,
            "kth",
            False,
            "pytorch_ood",
        ),
        "faiss IndexFlatL2 (exact)": (faiss_flat, "sq-mean", True, "faiss"),
    }
    if torch.cuda.is_available():
        out["bare torch.mm (CUDA)"] = (
            lambda R, Q, k: bare_torch(R, Q, k, "cuda"),
            None,
            True,
            None,
        )
        out['sklearn-ood KNNDetector(device="cuda")'] = (
            lambda R, Q, k: ours(R, Q, k, device="cuda"),
            "sq-mean",
            True,
            None,
        )
    return out


def _available(module):
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except Exception as exc:  # a peer that does not import: say why
        return f"not installed ({type(exc).__name__}: {exc})".splitlines()[0]
    return None


def exact_part(args, out):
    table = contenders()
    missing = {name: _available(spec[3]) for name, spec in table.items()}
    runnable = [name for name in table if missing[name] is None]
    bound = "bare SGEMM (np.matmul, the bound)"
    half = "bare SGEMM, leave-one-out on and above the diagonal"
    for size in args.sizes:
        n_ref, n_query, d = (int(v) for v in size.lower().split("x"))
        R, Q = make_data(n_ref, n_query, d)
        ref = reference_scores(R, Q[: args.check], args.k)
        times = {name: [] for name in runnable}
        errors = {}
        for rep in range(args.repeat):
            shift = rep % len(runnable)  # rotate the order: no position bias
            for name in runnable[shift:] + runnable[:shift]:
                fn, units, _, _ = table[name]
                t0 = time.perf_counter()
                scores = fn(R, Q, args.k)
                times[name].append(time.perf_counter() - t0)
                if units is not None:
                    got = np.asarray(scores[: args.check], dtype=np.float64)
                    want = ref[units]
                    errors[name] = np.max(np.abs(got - want) / np.maximum(want, 1e-30))
        med = {name: float(np.median(t)) for name, t in times.items()}
        faiss_name = "faiss IndexFlatL2 (exact)"
        out(
            f"\n### Exact k-NN, k={args.k}: {n_ref:,} reference x {n_query:,} "
            f"queries x {d} float32; leave-one-out pass + query pass; median "
            f"(min) of {args.repeat}, interleaved\n"
        )
        out(
            "| contender | leave-one-out | median s | min s | vs bare SGEMM "
            "| vs bare SGEMM on and above the diagonal | vs faiss exact "
            f"| max rel. error (first {args.check} queries) |"
        )
        out("|---|---|---|---|---|---|---|---|")
        for name, (_, units, loo, _) in table.items():
            if missing[name]:
                out(f"| {name} | | {missing[name]} | | | | | |")
                continue
            t = med[name]
            vs_faiss = f"{t / med[faiss_name]:.2f}x" if faiss_name in med else "n/a"
            err = f"{errors[name]:.1e} ({units})" if name in errors else "-"
            out(
                f"| {name} | {'yes' if loo else 'no'} | {t:.3f} | "
                f"{min(times[name]):.3f} | {t / med[bound]:.2f}x | "
                f"{t / med[half]:.2f}x | {vs_faiss} | {err} |"
            )


# ------------------------------------------------------ approximate part
def _approximate_data(args):
    try:
        if args.approx_data == "synthetic":
            raise RuntimeError("--approx-data synthetic")
        from sklearn_ood.datasets import load_fashion_mnist

        X, y = load_fashion_mnist(subset="train")
        T, t = load_fashion_mnist(subset="test")
    except Exception as exc:  # no data set here: a synthetic stand-in
        rng = np.random.default_rng(1)
        centres = rng.normal(size=(10, 64)).astype(np.float32) * 0.5
        n = args.approx_n
        y = rng.integers(0, 10, size=n)
        X = centres[y] + rng.normal(size=(n, 64)).astype(np.float32)
        t = rng.integers(0, 10, size=n // 3)
        T = centres[t] + rng.normal(size=(len(t), 64)).astype(np.float32)
        name = f"synthetic 10-cluster data, 64-d (not Fashion-MNIST: {exc})"
        return X[y < 5], T, t < 5, name
    R = (X[y < 5].reshape(-1, 784) / np.float32(255)).astype(np.float32)
    Q = (T.reshape(-1, 784) / np.float32(255)).astype(np.float32)
    return R, Q, t < 5, "Fashion-MNIST pixels, 784-d (classes 5-9 OOD)"


def approximate_part(args, out):
    from sklearn.metrics import roc_auc_score

    R, Q, inlier, name = _approximate_data(args)
    k = args.k
    out(
        f"\n### Approximate faiss indexes, k={k}: {name}; {len(R):,} reference "
        f"x {len(Q):,} queries\n"
    )
    out(
        "| search | fit (s) | score (s) | recall@k of the exact neighbours "
        "| AUROC | AUROC - exact |"
    )
    out("|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    exact = KNNDetector(n_neighbors=k).fit(R)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact_scores = exact.score_samples(Q)
    t_score = time.perf_counter() - t0
    exact_ind = exact.kneighbors(Q)[1]
    auc = roc_auc_score(inlier, exact_scores)
    out(f"| exact (brute) | {t_fit:.2f} | {t_score:.2f} | 1.000 | {auc:.4f} | 0 |")
    nlist = max(16, int(np.sqrt(len(R))) // 4 * 4)
    configs = [(f"faiss:IVF{nlist},Flat", {"nprobe": p}) for p in (1, 4, 16)] + [
        ("faiss:HNSW32", {"efSearch": ef}) for ef in (16, 64)
    ]
    missing = _available("faiss")
    if missing:
        out(f"| faiss indexes | {missing} | | | | |")
        return
    for algorithm, params in configs:
        t0 = time.perf_counter()
        det = KNNDetector(n_neighbors=k, algorithm=algorithm, search_params=params)
        det.fit(R)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = det.score_samples(Q)
        t_score = time.perf_counter() - t0
        ind = det.kneighbors(Q)[1]
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ind, exact_ind)])
        a = roc_auc_score(inlier, scores)
        out(
            f"| {algorithm} {params} | {t_fit:.2f} | {t_score:.2f} | {recall:.3f} "
            f"| {a:.4f} | {a - auc:+.4f} |"
        )


def describe_machine():
    from threadpoolctl import threadpool_info

    blas = [
        f"{lib.get('internal_api')} {lib.get('architecture', '')} x{lib['num_threads']}"
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    ]
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, BLAS: {', '.join(blas)}; "
        f"torch {torch.__version__} x{torch.get_num_threads()}; numpy "
        f"{np.__version__}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["20000x20000x256", "20000x20000x512"]
    )
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", type=int, default=1_000)
    parser.add_argument(
        "--approx-data", choices=["fashion-mnist", "synthetic"], default="fashion-mnist"
    )
    parser.add_argument("--approx-n", type=int, default=30_000, help="synthetic rows")
    parser.add_argument("--skip-approximate", action="store_true")
    args = parser.parse_args(argv)

    def out(text=""):
        print(text, flush=True)

    out(describe_machine())
    exact_part(args, out)
    if not args.skip_approximate:
        approximate_part(args, out)
    out(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
