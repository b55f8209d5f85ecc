"""Run the speed and memory benchmarks: all of them, or some by name.

Each benchmark runs in its own subprocess, one after the other (never in
parallel: they measure time), and its Markdown output is printed as it comes,
headed by the exact command, the interpreter and the load average
(``os.getloadavg``) before and after, since the machine may be shared. Inside
a benchmark the contenders run side by side, interleaved (``knn``: every
contender of the exact search and the bare SGEMM bound, with the ratio
table). Peers (PyOD, pytorch-ood, faiss, Dask) are used where they import; a
peer that does not import gets a "not installed" row. The subprocesses import
``sklearn_ood`` from this checkout (``PYTHONPATH``), whatever the
interpreter, and no thread or OpenMP variable is set: the numbers are those
of a plain script.

Usage::

    python benchmarks/run_all.py                  # everything, full size
    python benchmarks/run_all.py knn memory       # some, by name
    python benchmarks/run_all.py --quick          # small sizes
    python benchmarks/run_all.py knn --smoke      # tiny sizes, seconds (a test)
    python benchmarks/run_all.py --list
    python benchmarks/run_all.py --out results.md # also write the output
    python benchmarks/run_all.py --python /tmp/peers-venv/bin/python
    python benchmarks/run_all.py --python-for knn=/tmp/peers-venv/bin/python

Extra arguments after ``--`` go to every selected benchmark.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, arguments for --quick[, arguments for --smoke])
BENCHMARKS = {
    "mahalanobis": (
        "bench_mahalanobis.py",
        ["--n", "5000", "--d", "64", "--repeat", "1", "--mcd-rows", "500"],
    ),
    "knn": (
        "bench_knn.py",
        [
            *("--sizes", "3000x3000x64", "--check", "200"),
            *("--approx-data", "synthetic", "--approx-n", "6000"),
        ],
        [
            *("--sizes", "300x200x16", "--check", "50"),
            *("--approx-data", "synthetic", "--approx-n", "600"),
        ],
    ),
    "scaling": (
        "bench_scaling.py",
        [
            "--ns",
            "2000",
            "4000",
            "8000",
            "16000",
            "--ds",
            "16",
            "32",
            "64",
            "128",
            "--n-for-d",
            "3000",
            "--d-for-n",
            "64",
            "--stream-n",
            "20000",
            "--repeat",
            "1",
        ],
    ),
    "memory": (
        "bench_memory.py",
        ["--n", "200000"],
        ["--n", "20000", "--d", "16"],
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"any of {sorted(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes (benchmarks that have them)"
    )
    parser.add_argument("--python", help="interpreter for every benchmark")
    parser.add_argument("--list", action="store_true", help="list and exit")
    parser.add_argument("--out", type=Path, help="also write the output here")
    parser.add_argument(
        "--python-for",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="run benchmark NAME with another interpreter (repeatable)",
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = parser.parse_args(argv)
    if args.list:
        for name, (script, *_) in BENCHMARKS.items():
            print(f"{name}: benchmarks/{script}")
        return 0
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(
            f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}"
        )
    names = args.names or list(BENCHMARKS)
    if args.smoke:
        names = [name for name in names if len(BENCHMARKS[name]) > 2]
    python = dict(item.split("=", 1) for item in args.python_for)
    root = str(HERE.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    lines = []

    def emit(text=""):
        print(text, flush=True)
        lines.append(text)

    emit(
        f"Python {platform.python_version()} ({sys.executable}), "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    failed = []
    for name in names:
        script, quick, *smoke = BENCHMARKS[name]
        exe = python.get(name, args.python or sys.executable)
        sizes = smoke[0] if args.smoke else quick if args.quick else []
        cmd = [exe, str(HERE / script), *sizes, *extra]
        shown = " ".join(
            shlex.quote(c) for c in ["python", f"benchmarks/{script}", *cmd[2:]]
        )
        emit(f"\n## {name}\n\n`{shown}` (interpreter: {exe})\n")
        emit(f"load average before: {os.getloadavg()[0]:.2f}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for line in proc.stdout:
            emit(line.rstrip("\n"))
        if proc.wait() != 0:
            failed.append(name)
        emit(
            f"\n(wall time {time.perf_counter() - t0:.0f} s, exit status "
            f"{proc.returncode}, load average after: {os.getloadavg()[0]:.2f})"
        )
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if failed:
        print(f"\nfailed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
