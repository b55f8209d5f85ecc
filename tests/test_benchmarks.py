"""A fast smoke test of the benchmark harness (tiny sizes, no peers needed)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_knn():
    spec = importlib.util.spec_from_file_location(
        "bench_knn", ROOT / "benchmarks" / "bench_knn.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        else:  # median, min, ratio to the bound
            float(cells[2]), float(cells[3])
            assert re.fullmatch(r"\d+\.\d\dx", cells[4])
    assert rows["bare SGEMM (np.matmul, the bound)"][1:2] == ["yes"]
    assert rows["bare SGEMM (np.matmul, the bound)"][4] == "1.00x"
    # sklearn-ood's scores were checked against float64 brute force.
    assert rows["sklearn-ood KNNDetector"][6].endswith("(sq-mean)")
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
