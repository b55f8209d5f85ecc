"""The third-party detector of docs/user_guide/custom_detector.rst, as printed there.

The page includes ``docs/user_guide/code/kde_detector.py`` verbatim; this test
loads that file and runs scikit-learn's estimator checks on it, with the two
expected failures of every sklearn-ood detector (see CONTRACT: ``predict`` on
memorised training rows), and checks its calibration against a brute-force
computation.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from numpy.testing import assert_allclose
from sklearn.neighbors import KernelDensity
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood.base import BaseDetector

CODE = Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "code"
_spec = importlib.util.spec_from_file_location("kde_detector", CODE / "kde_detector.py")
kde_detector = importlib.util.module_from_spec(_spec)
sys.modules["kde_detector"] = kde_detector  # so that pickling finds the class
_spec.loader.exec_module(kde_detector)
KDEDetector = kde_detector.KDEDetector

from tests._registry import CALIBRATED as EXPECTED_FAILED_CHECKS  # noqa: E402


def test_the_page_shows_this_file():
    page = (CODE.parent / "custom_detector.rst").read_text()
    assert ".. literalinclude:: code/kde_detector.py" in page
    lines = (CODE / "kde_detector.py").read_text().splitlines()
    assert len(lines) <= 35  # a short example, imports included


@parametrize_with_checks(
    [KDEDetector()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_calibration_scores_are_out_of_fold_log_densities():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 2))
    det = KDEDetector(bandwidth=0.5, contamination=0.1).fit(X)
    assert isinstance(det, BaseDetector)
    # Brute force: five contiguous folds of 10 rows, each scored by a KDE
    # fitted on the other 40 rows (KFold without shuffling).
    expected = np.concatenate(
        [
            KernelDensity(bandwidth=0.5)
            .fit(np.delete(X, np.s_[i : i + 10], axis=0))
            .score_samples(X[i : i + 10])
            for i in range(0, 50, 10)
        ]
    )
    # Same arithmetic in the same order: equal up to the summation order of
    # the kernel sums (a few ulp of the log-density).
    assert_allclose(det.calibration_scores_, expected, rtol=1e-12)
    # offset_: the k-th smallest calibration score, k = floor(0.1 * 51) = 5.
    assert det.offset_ == np.sort(expected)[4]
    assert (det.fit_predict(X) == -1).sum() == 5  # floor(0.1 * 50)
