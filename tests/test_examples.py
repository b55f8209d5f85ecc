"""Run every script of ``examples/`` as a subprocess (matplotlib's Agg backend).

Each example takes from a few seconds to about a minute on a free CPU, so the
tests are marked ``slow``: ``pytest -m "not slow"`` skips them. Besides the exit
status, the output of each example written for this check is compared with what
the example claims (the metrics it prints are in range, every detector it
compares is reported).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))
TIMEOUT_S = 600


def _floats(pattern: str, text: str) -> list[float]:
    return [float(v) for v in re.findall(pattern, text)]


def _check_canonical(out: str) -> None:
    # The row of ood_report: auroc, aupr_in, aupr_out, tnr, fpr, det. acc., error.
    row = re.search(r"EfficientNet-Lite0 \+ Mahalanobis((?:\s+[\d.]+){7})", out)
    assert row is not None, out
    auroc = float(row.group(1).split()[0])
    assert 0.9 < auroc <= 1.0
    flagged = _floats(r"normal images flagged: ([\d.]+)%", out)
    assert len(flagged) == 1 and flagged[0] < 15.0  # 'auto' targets 2.5%


def _check_dropin(out: str) -> None:
    # Columns: AUROC, OOD flagged, fit_predict, predict(train), new normal.
    rows = {
        name: [
            float(v) for v in re.search(rf"{name}((?:\s+[\d.]+){{5}})", out)[1].split()
        ]
        for name in ("IsolationForest", "MahalanobisDetector", "KNNDetector")
    }
    for name, (auc, _, fit_predict, _, new_flagged) in rows.items():
        assert 0.5 < auc <= 1.0, name
        # fit_predict flags floor(0.05 * 600) = 30 of the 600 training images.
        assert fit_predict == pytest.approx(30 / 600, abs=5e-4), name
        # 300 new normal images: 5% plus 4 binomial standard errors (5.0 points).
        assert 0.0 <= new_flagged < 0.10, name
    # predict on memorised training rows flags fewer (leave-one-out detectors).
    assert rows["MahalanobisDetector"][3] < 0.05
    assert rows["KNNDetector"][3] < 0.05


def _check_compare(out: str) -> None:
    names = [
        "Mahalanobis marginal",
        "Mahalanobis tied",
        "Mahalanobis per class",
        "Euclidean (class means)",
        "kNN, k=2 (DN2)",
        "kNN, k=2, cosine",
        "IsolationForest",
    ]
    for name in names:
        # Once in ood_report (7 metrics), once in the per-class table (5 AUROCs).
        pattern = rf"^{re.escape(name)}((?:[ \t]+[\d.]+)+)$"
        rows = re.findall(pattern, out, flags=re.M)
        assert len(rows) == 2, name
        aurocs = [float(v) for v in rows[1].split()]
        assert len(aurocs) == 5 and all(0.4 < a <= 1.0 for a in aurocs), name


def _check_trained(out: str) -> None:
    aurocs = _floats(r"AUROC(?: on novel digits)? ([\d.]+)", out)
    assert len(aurocs) == 4, out  # GEOM, center loss, ML, ODM
    assert all(0.6 < a <= 1.0 for a in aurocs)


CHECKS = {
    "plot_canonical_pipeline": _check_canonical,
    "plot_isolation_forest_dropin": _check_dropin,
    "plot_compare_detectors": _check_compare,
    "plot_trained_detectors": _check_trained,
}


def test_examples_are_found():
    names = {p.stem for p in SCRIPTS}
    assert set(CHECKS) <= names


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs(script, tmp_path):
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,  # anything an example writes lands here
        env=env,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    check = CHECKS.get(script.stem)
    if check is not None:
        check(result.stdout)
