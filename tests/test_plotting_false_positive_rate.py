"""FalsePositiveRateDisplay: plotted data against independent computations."""

import sys
import warnings
from math import comb

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood.plotting import FalsePositiveRateDisplay

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _binomial_quantile(n, rate, q):
    """Smallest k with P(Binomial(n, rate) <= k) >= q, by summing the pmf."""
    cdf = 0.0
    for k in range(n + 1):
        cdf += comb(n, k) * rate**k * (1.0 - rate) ** (n - k)
        # The sum of n + 1 terms in [0, 1] has a rounding error of at most
        # (n + 1) eps: accept a CDF within that of q (no ulp-level flip).
        if cdf >= q - (n + 1) * np.finfo(float).eps:
            return k
    return n


def test_from_predictions_measured_share_and_band():
    rng = np.random.RandomState(0)
    p = rng.uniform(size=60)
    disp = FalsePositiveRateDisplay.from_predictions(p, max_rate=0.3, confidence=0.9)
    rates = disp.rates_
    # Every p-value in the range is a point of the curve (it jumps there).
    assert set(p[p <= 0.3]) <= set(rates)
    assert rates[0] == 0.0 and rates[-1] == 0.3 and np.all(np.diff(rates) > 0)
    expected = np.array([np.mean(p <= r) for r in rates])
    assert_array_equal(disp.measured_, expected)
    assert_array_equal(disp.line_.get_xdata(), rates)
    assert_array_equal(disp.line_.get_ydata(), expected)
    assert disp.line_.get_drawstyle() == "steps-post"
    # The band: 5% and 95% binomial quantiles of n = 60 draws, as shares.
    for r, lo, hi in zip(rates[::17], disp.band_low_[::17], disp.band_high_[::17]):
        assert lo * 60 == _binomial_quantile(60, r, 0.05)
        assert hi * 60 == _binomial_quantile(60, r, 0.95)
    assert_array_equal(disp.diagonal_.get_xydata(), [[0, 0], [0.3, 0.3]])
    assert disp.ax_.get_xlim() == (0.0, 0.3)
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert labels == ["target", "90% binomial band (n = 60)", "measured"]
    assert disp.contamination_marker_ is None and disp.flagged_ is None


def test_exact_conformal_p_values_follow_the_diagonal():
    # The p-values of m calibration scores against n = m new samples drawn
    # like them take each value k / (m + 1) once: measured(a) is then
    # floor(a (m + 1)) / m, hand-computed for these targets.
    m = 99
    p = np.arange(1, m + 1) / (m + 1)
    disp = FalsePositiveRateDisplay.from_predictions(p, contamination=0.05)
    assert disp.flagged_ == 5 / 99  # floor(0.05 * 100) = 5 of 99
    assert_array_equal(disp.contamination_marker_.get_xydata(), [[0.05, 5 / 99]])
    for a in [0.01, 0.1, 0.2]:
        i = np.searchsorted(disp.rates_, a)
        assert disp.rates_[i] == a
        assert disp.measured_[i] == np.floor(a * (m + 1) + 1e-9) / m
        assert disp.band_low_[i] <= disp.measured_[i] <= disp.band_high_[i]


@pytest.mark.parametrize("contamination", ["auto", 0.1])
def test_from_estimator_uses_p_values_and_marks_contamination(contamination):
    rng = np.random.RandomState(1)
    detector = MahalanobisDetector(contamination=contamination)
    detector.fit(rng.normal(size=(150, 4)))
    X_new = rng.normal(size=(200, 4))
    disp = FalsePositiveRateDisplay.from_estimator(detector, X_new)
    # p-values by hand: (1 + #{calibration scores <= score}) / (n + 1).
    cal = detector.calibration_scores_
    s = detector.score_samples(X_new)
    p = (1 + np.sum(cal[None, :] <= s[:, None], axis=1)) / (cal.size + 1)
    assert_array_equal(disp.measured_, [np.mean(p <= r) for r in disp.rates_])
    c = 0.025 if contamination == "auto" else contamination
    assert disp.contamination == c
    # The marked share is what predict flags (predict flags p <= c).
    assert disp.flagged_ == np.mean(detector.predict(X_new) == -1)
    assert disp.line_.get_label() == "MahalanobisDetector"


def test_from_estimator_pipeline_and_other_detectors():
    rng = np.random.RandomState(2)
    X = rng.normal(size=(120, 3)) * [1.0, 10.0, 100.0]
    X_new = rng.normal(size=(80, 3)) * [1.0, 10.0, 100.0]
    pipe = make_pipeline(StandardScaler(), KNNDetector(n_neighbors=3)).fit(X)
    disp = FalsePositiveRateDisplay.from_estimator(pipe, X_new, name="scaled kNN")
    cal = pipe[-1].calibration_scores_
    s = pipe.score_samples(X_new)
    p = (1 + np.sum(cal[None, :] <= s[:, None], axis=1)) / (cal.size + 1)
    assert_array_equal(disp.measured_, [np.mean(p <= r) for r in disp.rates_])
    assert disp.flagged_ == np.mean(pipe.predict(X_new) == -1)
    assert disp.line_.get_label() == "scaled kNN"
    forest = IsolationForest(n_estimators=5, random_state=0).fit(X)
    with pytest.raises(TypeError, match=r"p_values method.*IsolationForest"):
        FalsePositiveRateDisplay.from_estimator(forest, X_new)


def test_two_detectors_on_one_axes_and_plot_kwargs():
    rng = np.random.RandomState(3)
    first = FalsePositiveRateDisplay.from_predictions(rng.uniform(size=50), name="a")
    second = FalsePositiveRateDisplay.from_predictions(
        rng.uniform(size=50), name="b", ax=first.ax_, color="red", plot_reference=False
    )
    assert second.ax_ is first.ax_
    assert second.line_.get_color() == "red"
    assert second.band_ is None and second.diagonal_ is None
    labels = [t.get_text() for t in first.ax_.get_legend().get_texts()]
    # One diagonal and one band for both curves.
    assert labels == ["target", "95% binomial band (n = 50)", "a", "b"]


def test_bad_input():
    with pytest.raises(ValueError, match=r"p-values in \[0, 1\].*not scores"):
        FalsePositiveRateDisplay.from_predictions([-3.0, -1.0, 0.5])
    with pytest.raises(ValueError, match="1-D array of p-values"):
        FalsePositiveRateDisplay.from_predictions([[0.1, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        FalsePositiveRateDisplay.from_predictions([0.1, np.nan])
    for kw in [{"max_rate": 0.0}, {"confidence": 1.0}, {"contamination": 2.0}]:
        with pytest.raises(ValueError, match=f"'{next(iter(kw))}' parameter"):
            FalsePositiveRateDisplay.from_predictions([0.1, 0.5], **kw)
    with pytest.raises(ValueError, match="'confidence' parameter"):
        FalsePositiveRateDisplay(p_values=[0.5], confidence=0).plot()
    with pytest.raises(TypeError, match="'ax' parameter"):
        FalsePositiveRateDisplay.from_predictions([0.1, 0.5], ax="left")


def test_renders_without_warnings_and_inputs_kept(tmp_path):
    p = np.random.RandomState(4).uniform(size=30)
    p0 = p.copy()
    disp = FalsePositiveRateDisplay.from_predictions(p, contamination=0.1)
    assert_array_equal(p, p0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a glyph missing from the font
        disp.figure_.savefig(tmp_path / "plot.png")
    fig = disp.figure_
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = disp.ax_.get_tightbbox(renderer)
    assert box.x0 >= -0.5 and box.y0 >= -0.5
    assert box.x1 <= fig.bbox.x1 + 0.5 and box.y1 <= fig.bbox.y1 + 0.5
    assert_allclose(disp.ax_.get_xlim(), (0, 0.2))


def test_import_error_without_matplotlib(monkeypatch):
    detector = MahalanobisDetector().fit(np.random.RandomState(5).normal(size=(50, 2)))
    for mod in ["matplotlib", "matplotlib.pyplot", "matplotlib.axes"]:
        monkeypatch.setitem(sys.modules, mod, None)
    match = r"requires matplotlib.*pip install sklearn-ood\[plot\]"
    with pytest.raises(ImportError, match=match):
        FalsePositiveRateDisplay.from_predictions([0.1, 0.5])
    with pytest.raises(ImportError, match=match):
        FalsePositiveRateDisplay.from_estimator(detector, np.zeros((3, 2)))
