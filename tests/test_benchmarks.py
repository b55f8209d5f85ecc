"""A fast smoke test of the benchmark harness (tiny sizes, no peers needed)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_knn():
    spec = importlib.util.spec_from_file_location(
        "bench_knn", ROOT / "benchmarks" / "bench_knn.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_all_memory_smoke_runs_every_case(tmp_path):
    """Every case of the memory benchmark runs (the kNN cases once failed on a
    device value the estimator no longer accepted) and stays within its
    bound."""
    out = tmp_path / "memory.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "memory", "--smoke", "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.read_text().splitlines()
        if line.startswith("| MahalanobisDetector") or line.startswith("| KNNDetector")
    ]
    assert len(rows) == 6
    for cells in rows:
        assert "failed" not in cells[2], cells
        bound, traced = float(cells[4].replace(",", "")), float(cells[5])
        assert traced <= bound, cells


def test_run_all_knn_smoke_writes_the_ratio_table(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "knn", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert "### Exact k-NN, k=2: 300 reference x 200 queries x 16 float32" in text
    bench = _bench_knn()
    rows = {}
    for name, (_, _, _, module) in bench.contenders().items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {name} |"))
        rows[name] = cells = [c.strip() for c in line.strip("|").split("|")]
        if module is not None and bench._available(module):
            assert "not installed" in cells[2]  # a peer absent here says so
        else:  # median, min, ratios to the two bounds
            float(cells[2]), float(cells[3])
            assert re.fullmatch(r"\d+\.\d\dx", cells[4])
            assert re.fullmatch(r"\d+\.\d\dx", cells[5])
    assert rows["bare SGEMM (np.matmul, the bound)"][1:2] == ["yes"]
    assert rows["bare SGEMM (np.matmul, the bound)"][4] == "1.00x"
    half = "bare SGEMM, leave-one-out on and above the diagonal"
    assert rows[half][5] == "1.00x"
    # sklearn-ood's scores were checked against float64 brute force.
    assert rows["sklearn-ood KNNDetector"][7].endswith("(sq-mean)")
    # The approximate part ran (faiss rows, or a row that says it is absent).
    assert "### Approximate faiss indexes, k=2: synthetic" in text
    assert "| exact (brute) |" in text


def test_run_all_lists_and_rejects_unknown_names():
    listing = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0 and "knn: benchmarks/bench_knn.py" in listing.stdout
    bad = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr


# --------------------------------------------------------------------------------------
# Reproduction scripts (issue 16): --quick runs and the pieces they rest on.
# --------------------------------------------------------------------------------------


def _load_bench(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_quick(script, *args):
    """Run a benchmark script with --quick, importing sklearn_ood from this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _table_rows(text):
    """{first cell: other cells} of the Markdown table rows in text."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_bench_kamoi_quick_prints_both_tables_with_the_paper_numbers():
    out = _run_quick("bench_kamoi.py")
    assert "MNIST 5k SUBSET (not full MNIST)" in out
    rows = _table_rows(out)
    # Paper AUROCs (Kamoi & Kobayashi Table 6 and Figure 1) sit in the last column.
    assert rows["class-conditional (tied, digit labels)"][-1] == "99.62"
    assert rows["partial (1-20), marginal"][-1] == "97.85"
    assert rows["tied Mahalanobis (digit labels)"][-1] == "80.78"
    for name in ("marginal", "partial (20-128), marginal", "Euclidean (to the mean)"):
        tnr, auc, dtacc, aupr_in, aupr_out = map(float, rows[name][:5])
        assert 0 <= tnr <= 100 and 0 <= auc <= 100
        # Lee's detection accuracy max_t (TPR + TNR) / 2 is at least 50%.
        assert 50 <= dtacc <= 100 and 0 < aupr_in <= 100 and 0 < aupr_out <= 100


def test_keras_autoencoder_matches_the_keras_blog_layer_list():
    torch = __import__("torch")
    bench = _load_bench("bench_kamoi")
    ae = bench.KerasConvAutoencoder()
    # Parameters of the blog's layers, counted by hand: 3x3 kernels plus biases.
    convs = [(1, 16), (16, 8), (8, 8), (8, 8), (8, 8), (8, 16), (16, 1)]
    assert sum(p.numel() for p in ae.parameters()) == sum(
        o * (9 * i + 1) for i, o in convs
    )
    x = torch.rand(3, 1, 28, 28)
    assert tuple(ae.encode(x).shape) == (3, 128)  # 4 x 4 x 8 code
    assert tuple(ae(x).shape) == (3, 1, 28, 28)
    # Keras' initialisation: zero biases, Glorot-uniform bound sqrt(6 / (fan_in +
    # fan_out)) with fan = 9 * channels.
    for m in ae.modules():
        if isinstance(m, torch.nn.Conv2d):
            assert not m.bias.any()
            bound = (6 / (9 * (m.in_channels + m.out_channels))) ** 0.5
            assert m.weight.abs().max() <= bound


def test_bench_dn2_quick_resumes_from_its_chunk_cache(tmp_path):
    first = _run_quick("bench_dn2_resolution.py", "--out", str(tmp_path))
    assert "chunk" in first and "'load_size': (36, 36)" in first  # 32 / (224/256)
    second = _run_quick("bench_dn2_resolution.py", "--out", str(tmp_path))
    assert "chunk" not in second  # every chunk came from the cache
    rows = [ln for ln in first.splitlines() if ln.startswith("| AUROC")]
    assert rows and rows == [
        ln for ln in second.splitlines() if ln.startswith("| AUROC")
    ]


def test_geom_ocsvm_precomputed_kernel_equals_libsvm_rbf():
    from sklearn.svm import OneClassSVM

    from sklearn_ood.metrics import auroc

    bench = _load_bench("bench_geom_ocsvm")
    rng = np.random.RandomState(0)
    A = rng.uniform(-1, 1, size=(120, 30))
    B = np.vstack([rng.uniform(-1, 1, size=(40, 30)), rng.normal(0, 1.5, (40, 30))])
    y = np.r_[np.ones(40), -np.ones(40)].astype(int)
    nus, gammas = [0.1, 0.5], [2.0**-5, 2.0**-2]
    grid = bench.grid_aurocs(A, B, y, nus, gammas)
    for i, g in enumerate(gammas):
        for j, nu in enumerate(nus):
            s = OneClassSVM(kernel="rbf", gamma=g, nu=nu).fit(A).decision_function(B)
            # Both kernels are exp(-g * d2) of float64 squared distances: they
            # differ by rounding (|dK| <= ~10 eps64 * g * d2 ~ 1e-14), far below
            # any gap between distinct scores here, so the rankings, and the
            # AUROCs, are equal.
            assert grid[i, j] == 100 * auroc(y, s)
    # scikit-learn's gamma="scale" is 1 / (n_features * X.var()).
    assert np.isclose(bench.scale_gamma(A), OneClassSVM(gamma="scale").fit(A)._gamma)


def test_bench_geom_ocsvm_quick_prints_the_hindsight_rows():
    rows = _table_rows(_run_quick("bench_geom_ocsvm.py"))
    best = float(rows["hindsight, per class (GEOM's protocol)"][-1].strip("*"))
    shared = next(v for k, v in rows.items() if k.startswith("hindsight, one point"))
    # The per-class optimum is at least as good as one point shared by all classes.
    assert best >= float(shared[-1].strip("*"))
    assert rows["GEOM Table 1, RAW-OC-SVM (hindsight)"][-1] == "92.8"


def test_fashion_one_vs_rest_reads_the_penultimate_columns_of_the_recipe_cache(
    tmp_path,
):
    bench = _load_bench("bench_fashion_one_vs_rest")
    rng = np.random.RandomState(0)
    groups = {"blocks.6": (0, 3), "bn2": (3, 7)}
    F_train, F_test = rng.normal(size=(6, 7)), rng.normal(size=(4, 7))
    path = tmp_path / "recipe.npz"
    np.savez(
        path,
        groups=np.array(list(groups.items()), dtype=object),
        F_train=F_train,
        F_test=F_test,
        F_train_flip=-F_train,
        F_test_flip=-F_test,
    )
    a, ya, b, yb = bench.penultimate_from_recipe(path, np.arange(6), np.arange(4))
    assert np.array_equal(a, F_train[:, 3:7]) and np.array_equal(b, F_test[:, 3:7])
    assert np.array_equal(ya, np.arange(6)) and np.array_equal(yb, np.arange(4))
    with pytest.raises(ValueError, match="full Fashion-MNIST"):
        bench.penultimate_from_recipe(path, np.arange(60), np.arange(4))
