"""Tests for sklearn_ood.plotting: drawn data against independent computations."""

import sys
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.ensemble import IsolationForest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ood import MahalanobisDetector
from sklearn_ood.metrics import fpr_at_tpr, tnr_at_tpr
from sklearn_ood.plotting import (
    OODPrecisionRecallDisplay,
    OODRocDisplay,
    ScoreHistogramDisplay,
)

matplotlib.use("Agg")  # no display needed; set before any figure is made

DISPLAYS = [OODRocDisplay, OODPrecisionRecallDisplay, ScoreHistogramDisplay]

# Hand-computed ROC with ties (same case as tests/test_metrics.py). In (+1):
# 4, 3, 3, 1; OOD (-1): 3, 2, 1, 0. Points "accept if score >= t":
#   t=4: TPR 1/4, FPR 0/4;  t=3: TPR 3/4, FPR 1/4;  t=2: TPR 3/4, FPR 2/4;
#   t=1: TPR 4/4, FPR 3/4;  t=0: TPR 4/4, FPR 4/4.
Y_TIES = np.array([1, 1, 1, 1, -1, -1, -1, -1])
S_TIES = np.array([4.0, 3.0, 3.0, 1.0, 3.0, 2.0, 1.0, 0.0])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _random_case(seed=0, n_in=40, n_out=25, ties=False):
    rng = np.random.RandomState(seed)
    y = np.r_[np.ones(n_in, int), -np.ones(n_out, int)]
    s = np.r_[rng.normal(1.0, 1.0, n_in), rng.normal(-0.5, 1.2, n_out)]
    if ties:
        s = np.round(s * 2)
    perm = rng.permutation(len(y))
    return y[perm], s[perm]


def _detector_data(seed=0):
    """A fitted MahalanobisDetector and labelled test data (class labels + -1)."""
    rng = np.random.RandomState(seed)
    detector = MahalanobisDetector().fit(rng.normal(size=(80, 3)))
    X = np.r_[rng.normal(size=(40, 3)), rng.normal(1.0, 2.0, size=(20, 3))]
    y = np.r_[np.zeros(20, int), np.full(20, 3), -np.ones(20, int)]
    return detector, X, y


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ------------------------------------------------------------------- ROC
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("tpr", [0.5, 0.9, 0.95, 1.0])
def test_roc_from_predictions_matches_sklearn_and_metrics(ties, tpr):
    y, s = _random_case(seed=1, ties=ties)
    disp = OODRocDisplay.from_predictions(y, s, tpr=tpr)
    fpr_ref, tpr_ref, _ = roc_curve(y == 1, s)
    assert_array_equal(disp.line_.get_xdata(), fpr_ref)
    assert_array_equal(disp.line_.get_ydata(), tpr_ref)
    assert disp.roc_auc == pytest.approx(roc_auc_score(y == 1, s), abs=1e-15)

    op = disp.operating_point_
    marker = disp.operating_point_marker_
    assert marker.get_xdata()[0] == op["fpr"] == fpr_at_tpr(y, s, tpr=tpr)
    assert op["tnr"] == tnr_at_tpr(y, s, tpr=tpr)
    assert op["target_tpr"] == tpr and op["tpr"] >= tpr
    # The threshold reproduces the point when counted by hand.
    accepted = s >= op["threshold"]
    assert marker.get_ydata()[0] == op["tpr"] == np.mean(accepted[y == 1])
    assert op["fpr"] == np.mean(accepted[y == -1])
    # ...and it is the strictest one reaching the target: accepting only the
    # scores above it misses the target TPR.
    assert np.mean(s[y == 1] > op["threshold"]) < tpr

    texts = _legend_texts(disp.ax_)
    assert texts[0] == f"AUROC = {roc_auc_score(y == 1, s):.3f}"
    assert f"FPR {op['fpr']:.1%}, TNR {1 - op['fpr']:.1%}" in texts[1]


@pytest.mark.parametrize(
    "tpr, expected",
    [
        (0.25, {"tpr": 0.25, "fpr": 0.0, "threshold": 4.0}),
        (0.6, {"tpr": 0.75, "fpr": 0.25, "threshold": 3.0}),
        (0.75, {"tpr": 0.75, "fpr": 0.25, "threshold": 3.0}),
        (0.8, {"tpr": 1.0, "fpr": 0.75, "threshold": 1.0}),
    ],
)
def test_roc_operating_point_hand_computed(tpr, expected):
    disp = OODRocDisplay.from_predictions(Y_TIES, S_TIES, tpr=tpr)
    assert disp.operating_point_ == {
        "target_tpr": tpr,
        **expected,
        "tnr": 1.0 - expected["fpr"],
    }
    label = disp.operating_point_marker_.get_label()
    if expected["tpr"] == tpr:
        assert label.startswith(f"At TPR {tpr:.1%}: ")
    else:  # the TPR reached exceeds the target: both are shown
        assert label.startswith(f"At TPR {expected['tpr']:.1%} (≥ {100 * tpr:g}%)")


def test_roc_from_estimator_uses_scorer_labels_and_score_samples():
    detector, X, y = _detector_data()
    disp = OODRocDisplay.from_estimator(detector, X, y, tpr=0.9)
    score = detector.score_samples(X)
    fpr_ref, tpr_ref, _ = roc_curve(y != -1, score)
    assert_array_equal(disp.line_.get_xdata(), fpr_ref)
    assert_array_equal(disp.line_.get_ydata(), tpr_ref)
    y_pm = np.where(y == -1, -1, 1)
    assert disp.operating_point_marker_.get_xdata()[0] == fpr_at_tpr(
        y_pm, score, tpr=0.9
    )
    auc = roc_auc_score(y != -1, score)
    assert _legend_texts(disp.ax_)[0] == f"MahalanobisDetector (AUROC = {auc:.3f})"
    assert "False positive rate" in disp.ax_.get_xlabel()
    assert "OOD accepted" in disp.ax_.get_xlabel()
    assert "in-distribution accepted" in disp.ax_.get_ylabel()
    assert disp.ax_.get_title()


def test_roc_decision_function_and_drop_intermediate():
    detector, X, y = _detector_data(seed=2)
    disp = OODRocDisplay.from_estimator(
        detector,
        X,
        y,
        response_method="decision_function",
        drop_intermediate=False,
        name="maha",
        plot_chance_level=True,
    )
    fpr_ref, tpr_ref, _ = roc_curve(
        y != -1, detector.decision_function(X), drop_intermediate=False
    )
    assert_array_equal(disp.line_.get_xdata(), fpr_ref)
    assert_array_equal(disp.line_.get_ydata(), tpr_ref)
    # decision_function = score_samples - offset_: same point, shifted threshold.
    ref = OODRocDisplay.from_predictions(
        np.where(y == -1, -1, 1), detector.score_samples(X)
    )
    assert disp.operating_point_["fpr"] == ref.operating_point_["fpr"]
    assert disp.operating_point_["threshold"] == pytest.approx(
        ref.operating_point_["threshold"] - detector.offset_
    )
    assert_array_equal(disp.chance_level_.get_xydata(), [[0, 0], [1, 1]])
    assert _legend_texts(disp.ax_)[0].startswith("maha (AUROC = ")


def test_roc_constructor_and_plot_kwargs():
    disp = OODRocDisplay(fpr=np.array([0.0, 0.5, 1.0]), tpr=np.array([0.0, 1.0, 1.0]))
    disp.plot(color="red", name="manual")
    assert disp.line_.get_color() == "red"
    assert disp.line_.get_label() == "manual"
    assert disp.operating_point_marker_ is None and disp.chance_level_ is None
    with pytest.raises(ValueError, match=r"'operating_point' parameter.*'threshold'"):
        OODRocDisplay(fpr=[0, 1], tpr=[0, 1], operating_point={"tpr": 1.0}).plot()


# ------------------------------------------------------ precision-recall
@pytest.mark.parametrize("positive", ["in", "out"])
@pytest.mark.parametrize("ties", [False, True])
def test_pr_matches_sklearn(positive, ties):
    y, s = _random_case(seed=3, ties=ties)
    disp = OODPrecisionRecallDisplay.from_predictions(
        y, s, positive=positive, plot_chance_level=True
    )
    pos, ranking = (y == 1, s) if positive == "in" else (y == -1, -s)
    precision, recall, _ = precision_recall_curve(pos, ranking)
    assert_array_equal(disp.line_.get_xdata(), recall)
    assert_array_equal(disp.line_.get_ydata(), precision)
    assert disp.line_.get_drawstyle() == "steps-post"
    ap = average_precision_score(pos, ranking)
    assert disp.average_precision == pytest.approx(ap, abs=1e-15)
    assert _legend_texts(disp.ax_)[0] == f"AP = {ap:.3f}"
    assert_allclose(disp.chance_level_.get_ydata(), [pos.mean()] * 2)
    metric = "AUPR-In" if positive == "in" else "AUPR-Out"
    assert metric in disp.ax_.get_title()
    assert disp.ax_.get_xlabel().startswith("Recall")
    assert disp.ax_.get_ylabel().startswith("Precision")
    word = "accepted" if positive == "in" else "rejected"
    assert word in disp.ax_.get_xlabel()


def test_pr_from_estimator():
    detector, X, y = _detector_data(seed=4)
    disp = OODPrecisionRecallDisplay.from_estimator(detector, X, y, positive="out")
    score = detector.score_samples(X)
    precision, recall, _ = precision_recall_curve(y == -1, -score)
    assert_array_equal(disp.line_.get_xdata(), recall)
    assert_array_equal(disp.line_.get_ydata(), precision)
    ap = average_precision_score(y == -1, -score)
    assert _legend_texts(disp.ax_) == [f"MahalanobisDetector (AP = {ap:.3f})"]
    assert disp.chance_level_ is None


def test_pr_errors():
    y, s = _random_case()
    with pytest.raises(ValueError, match="'positive' parameter"):
        OODPrecisionRecallDisplay.from_predictions(y, s, positive="both")
    with pytest.raises(ValueError, match="'positive' parameter"):
        OODPrecisionRecallDisplay(precision=[1, 0], recall=[0, 1], positive=1).plot()
    with pytest.raises(ValueError, match="prevalence"):
        OODPrecisionRecallDisplay(precision=[1, 0], recall=[0, 1]).plot(
            plot_chance_level=True
        )


# -------------------------------------------------------------- histogram
def _bar_heights(bars):
    return np.array([b.get_height() for b in bars])


@pytest.mark.parametrize("density", [True, False])
@pytest.mark.parametrize("bins", ["auto", 7, [-4.0, -1.0, 0.0, 0.5, 4.0]])
def test_histogram_bars_match_numpy(density, bins):
    y, s = _random_case(seed=5)
    disp = ScoreHistogramDisplay.from_predictions(y, s, bins=bins, density=density)
    edges = np.histogram_bin_edges(s, bins=bins)
    assert_array_equal(disp.bin_edges_, edges)
    ref_in, _ = np.histogram(s[y == 1], bins=edges, density=density)
    ref_out, _ = np.histogram(s[y == -1], bins=edges, density=density)
    assert_allclose(_bar_heights(disp.bars_in_), ref_in, rtol=1e-12)
    assert_allclose(_bar_heights(disp.bars_out_), ref_out, rtol=1e-12)
    # Bars sit on the shared edges.
    assert_allclose([b.get_x() for b in disp.bars_in_], edges[:-1])
    assert_allclose([b.get_x() for b in disp.bars_out_], edges[:-1])
    assert disp.bars_in_[0].get_facecolor() != disp.bars_out_[0].get_facecolor()
    assert disp.ax_.get_xlabel() == "score_samples (higher = more in-distribution)"
    assert disp.ax_.get_ylabel() == ("density" if density else "count")
    assert disp.threshold_line_ is None
    assert _legend_texts(disp.ax_) == [
        f"in-distribution (n = {np.sum(y == 1)})",
        f"OOD (n = {np.sum(y == -1)})",
    ]


def test_histogram_from_estimator_threshold_at_offset():
    detector, X, y = _detector_data(seed=6)
    disp = ScoreHistogramDisplay.from_estimator(detector, X, y, density=False)
    assert_array_equal(disp.threshold_line_.get_xdata(), [detector.offset_] * 2)
    assert disp.threshold == detector.offset_
    assert f"offset_ = {detector.offset_:.4g}" in disp.threshold_line_.get_label()
    score = detector.score_samples(X)
    counts, _ = np.histogram(score[y != -1], bins=disp.bin_edges_)
    assert_array_equal(_bar_heights(disp.bars_in_), counts)
    counts, _ = np.histogram(score[y == -1], bins=disp.bin_edges_)
    assert_array_equal(_bar_heights(disp.bars_out_), counts)
    assert disp.ax_.get_xlabel() == "score_samples (higher = more in-distribution)"
    assert disp.ax_.get_ylabel() == "count"
    assert "MahalanobisDetector" in disp.ax_.get_title()
    assert _legend_texts(disp.ax_)[2:] == [
        f"detector threshold (offset_ = {detector.offset_:.4g})",
        "rejected (score < threshold)",
    ]
    # The shaded rejected side runs from the left end of the axis to offset_.
    span = disp.rejected_span_
    assert span.get_x() == disp.bin_edges_[0]
    # x0 + (offset_ - x0) is offset_ up to a rounding of |x0| (a few ulp).
    assert span.get_x() + span.get_width() == pytest.approx(detector.offset_)


def test_histogram_from_estimator_pipeline_and_decision_function():
    detector, X, y = _detector_data(seed=7)
    pipe = make_pipeline(StandardScaler(), MahalanobisDetector()).fit(X[y != -1])
    disp = ScoreHistogramDisplay.from_estimator(pipe, X, y)
    assert disp.threshold == pipe[-1].offset_
    disp = ScoreHistogramDisplay.from_estimator(
        detector, X, y, response_method="decision_function"
    )
    assert disp.threshold == 0.0
    assert disp.ax_.get_xlabel().startswith("decision_function (")
    counts, _ = np.histogram(
        detector.decision_function(X)[y == -1], bins=disp.bin_edges_, density=True
    )
    assert_allclose(_bar_heights(disp.bars_out_), counts, rtol=1e-12)
    # IsolationForest: the same contract, so the same rule applies.
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    disp = ScoreHistogramDisplay.from_estimator(forest, X, y)
    assert disp.threshold == forest.offset_
    # No offset_ (a density estimator): histograms without a threshold line.
    kde = KernelDensity().fit(X[y != -1])
    disp = ScoreHistogramDisplay.from_estimator(kde, X, y, density=False)
    assert disp.threshold is None and disp.threshold_line_ is None
    counts, _ = np.histogram(kde.score_samples(X)[y != -1], bins=disp.bin_edges_)
    assert_array_equal(_bar_heights(disp.bars_in_), counts)


def test_histogram_threshold_options():
    y, s = _random_case(seed=8)
    disp = ScoreHistogramDisplay.from_predictions(y, s, tpr=0.9)
    t = disp.threshold
    # The threshold of the operating point: reaches the TPR, FPR as in metrics.
    assert np.mean(s[y == 1] >= t) >= 0.9
    assert np.mean(s[y == -1] >= t) == fpr_at_tpr(y, s, tpr=0.9)
    assert disp.threshold_line_.get_xdata()[0] == t
    assert "TPR" in disp.threshold_line_.get_label()
    disp = ScoreHistogramDisplay.from_predictions(y, s, threshold=0.25, name="det")
    assert disp.threshold_line_.get_xdata()[0] == 0.25
    assert disp.threshold_line_.get_label() == "threshold = 0.25"
    assert disp.ax_.get_title().startswith("det: ")
    with pytest.raises(ValueError, match="at most one of threshold and tpr"):
        ScoreHistogramDisplay.from_predictions(y, s, threshold=0.0, tpr=0.95)


def _mahalanobis_like(seed=0, n=600):
    """Scores at the scale of the issue: Mahalanobis on 1,280 image features.

    Normal samples score -chi2(1280) (about -1,280, standard deviation 51);
    OOD samples have a log-uniform tail from -1,100 down to -70,000.
    """
    rng = np.random.RandomState(seed)
    s_in = -rng.chisquare(1280, n)
    s_out = -np.exp(rng.uniform(np.log(1100), np.log(70000), n))
    return np.r_[np.ones(n, int), -np.ones(n, int)], np.r_[s_in, s_out]


def _occupied_bins(values, edges):
    counts, _ = np.histogram(values, edges)
    return int(np.sum(counts > 0))


def test_histogram_auto_range_keeps_mahalanobis_scores_readable():
    y, s = _mahalanobis_like()
    s_in, s_out = s[y == 1], s[y == -1]
    t = float(np.quantile(s_in, 0.025))
    full = ScoreHistogramDisplay.from_predictions(
        y, s, threshold=t, bins=40, score_range=None
    )
    # The issue: over all scores, the normal samples fill 1-3 of 40 bins.
    assert _occupied_bins(s_in, full.bin_edges_) <= 3
    assert full.n_outside_ == {"in": (0, 0), "out": (0, 0)}

    disp = ScoreHistogramDisplay.from_predictions(y, s, threshold=t, bins=40)
    # The rule of the docstring, restated: 1st-99th percentile of the normal
    # scores and the threshold, widened by its width on each side.
    low, high = np.percentile(s_in, [1, 99])
    low, high = min(low, t), max(high, t)
    width = high - low
    expected = (max(low - width, s.min()), min(high + width, s.max()))
    assert_allclose(disp.score_range_, expected, rtol=1e-12)
    assert_allclose(disp.bin_edges_, np.linspace(*expected, 41), rtol=1e-12)
    # Readable: the normal scores now spread over a third of the bins or more.
    assert _occupied_bins(s_in, disp.bin_edges_) >= 13
    lo, hi = disp.score_range_
    below, above = int(np.sum(s_out < lo)), int(np.sum(s_out > hi))
    assert below > 400  # the long tail is left out...
    assert disp.n_outside_ == {
        "in": (int(np.sum(s_in < lo)), int(np.sum(s_in > hi))),
        "out": (below, above),
    }
    # ...and said so under the axis.
    assert f"{below} OOD" in disp.ax_.get_xlabel().splitlines()[1]
    # Densities are per sample of the whole group: the bars of each group
    # integrate to the share of the group inside the axis.
    for bars, values in [(disp.bars_in_, s_in), (disp.bars_out_, s_out)]:
        shown = np.mean((values >= lo) & (values <= hi))
        area = np.sum(_bar_heights(bars) * np.diff(disp.bin_edges_))
        assert area == pytest.approx(shown, rel=1e-12)
        counts, _ = np.histogram(values, disp.bin_edges_)
        assert_allclose(
            _bar_heights(bars),
            counts / (values.size * np.diff(disp.bin_edges_)),
            rtol=1e-12,
        )
    assert disp.ax_.get_xlim() == pytest.approx(disp.score_range_)


def test_histogram_score_range_options():
    y, s = _random_case(seed=12)
    # Two overlapping normal groups: nothing to cut, "auto" shows every score.
    auto = ScoreHistogramDisplay.from_predictions(y, s, bins=9)
    assert_array_equal(auto.bin_edges_, np.histogram_bin_edges(s, 9))
    assert auto.ax_.get_xlabel() == "score_samples (higher = more in-distribution)"
    disp = ScoreHistogramDisplay.from_predictions(
        y, s, bins=5, score_range=(-1.0, 1.0), density=False
    )
    assert_allclose(disp.bin_edges_, np.linspace(-1.0, 1.0, 6), rtol=1e-15)
    counts, _ = np.histogram(s[y == 1], disp.bin_edges_)
    assert_array_equal(_bar_heights(disp.bars_in_), counts)
    assert disp.n_outside_["in"] == (
        int(np.sum(s[y == 1] < -1.0)),
        int(np.sum(s[y == 1] > 1.0)),
    )
    note = disp.ax_.get_xlabel().splitlines()[1]
    assert "below -1" in note and "above 1" in note
    for bad in [(1.0, -1.0), (0.0, np.inf), (1.0,), "all"]:
        with pytest.raises(ValueError, match="'score_range' parameter"):
            ScoreHistogramDisplay.from_predictions(y, s, score_range=bad)


def _inside(inner, outer, tol=0.5):
    """Whether display-space box ``inner`` lies within ``outer`` (pixels)."""
    return (
        inner.x0 >= outer.x0 - tol
        and inner.y0 >= outer.y0 - tol
        and inner.x1 <= outer.x1 + tol
        and inner.y1 <= outer.y1 + tol
    )


@pytest.mark.parametrize(
    "case, score_range",
    [
        ("mahalanobis", "auto"),
        # Density ticks such as 0.00005 on a full axis: the y label of a plain
        # figure is cut off there; the displays' figures use constrained layout.
        ("mahalanobis x3", None),
        ("unit", "auto"),
    ],
)
def test_histogram_layout_nothing_clipped_nothing_overlaps(case, score_range):
    y, s = _random_case() if case == "unit" else _mahalanobis_like(seed=3)
    s = 3.0 * s if case.endswith("x3") else s
    disp = ScoreHistogramDisplay.from_predictions(
        y,
        s,
        threshold=float(np.quantile(s[y == 1], 0.025)),
        name="det",
        bins=40,
        score_range=score_range,
    )
    fig, ax = disp.figure_, disp.ax_
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # Everything the axes draw (tick labels, axis labels, title, offset text)
    # lies within the figure: nothing is cut off.
    assert _inside(ax.get_tightbbox(renderer), fig.bbox)
    for text in [ax.title, ax.xaxis.label, ax.yaxis.label]:
        assert _inside(text.get_window_extent(renderer), fig.bbox)
    # No free text in the axes (the old "rejected / accepted" notes): the
    # legend says which side is rejected, and lies inside the axes, clear of
    # the title and the axis labels.
    assert len(ax.texts) == 0
    legend = ax.get_legend().get_window_extent(renderer)
    assert _inside(legend, ax.get_window_extent(renderer))
    for text in [ax.title, ax.xaxis.label, ax.yaxis.label]:
        assert not legend.overlaps(text.get_window_extent(renderer))
    # ... and hides no bar.
    for bar in [*disp.bars_in_, *disp.bars_out_]:
        if bar.get_height() > 0:
            assert not legend.overlaps(bar.get_window_extent(renderer))


# ------------------------------------------------------------------ common
def _make(display, ax=None, **kw):
    y, s = _random_case(seed=9)
    return display.from_predictions(y, s, ax=ax, **kw)


@pytest.mark.parametrize("display", DISPLAYS)
def test_draws_into_given_ax_and_keeps_user_title(display):
    fig, (ax0, ax1) = plt.subplots(1, 2)
    ax1.set_title("mine")
    disp = _make(display, ax=ax1)
    assert disp.ax_ is ax1 and disp.figure_ is fig
    assert ax1.get_title() == "mine"
    assert not ax0.lines and not ax0.patches
    assert ax1.lines or ax1.patches
    assert len(plt.get_fignums()) == 1


@pytest.mark.parametrize("display", [OODRocDisplay, OODPrecisionRecallDisplay])
def test_two_detectors_on_one_ax(display):
    y, s = _random_case(seed=10)
    first = display.from_predictions(y, s, name="a")
    second = display.from_predictions(y, s + np.sin(7 * s), name="b", ax=first.ax_)
    assert second.ax_ is first.ax_
    texts = _legend_texts(first.ax_)
    assert any(t.startswith("a (") for t in texts)
    assert any(t.startswith("b (") for t in texts)
    assert first.line_.get_color() != second.line_.get_color()
    if display is OODRocDisplay:  # each marker takes the colour of its curve
        for disp in (first, second):
            marker_color = disp.operating_point_marker_.get_markerfacecolor()
            assert to_rgba(marker_color) == to_rgba(disp.line_.get_color())


@pytest.mark.parametrize("display", DISPLAYS)
def test_renders_to_png_without_warnings(display, tmp_path):
    disp = _make(display)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a glyph missing from the font
        disp.figure_.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


@pytest.mark.parametrize("display", DISPLAYS)
def test_inputs_not_mutated(display):
    y, s = _random_case(seed=11)
    y0, s0 = y.copy(), s.copy()
    display.from_predictions(y, s)
    assert_array_equal(y, y0)
    assert_array_equal(s, s0)
    detector, X, yd = _detector_data()
    X0, yd0 = X.copy(), yd.copy()
    display.from_estimator(detector, X, yd)
    assert_array_equal(X, X0)
    assert_array_equal(yd, yd0)


@pytest.mark.parametrize("display", DISPLAYS)
def test_import_error_without_matplotlib(display, monkeypatch):
    disp = _make(display)
    detector, X, y = _detector_data()
    for mod in ["matplotlib", "matplotlib.pyplot", "matplotlib.axes"]:
        monkeypatch.setitem(sys.modules, mod, None)
    match = r"requires matplotlib.*pip install sklearn-ood\[plot\]"
    with pytest.raises(ImportError, match=match):
        display.from_predictions(*_random_case())
    with pytest.raises(ImportError, match=match):
        display.from_estimator(detector, X, y)
    with pytest.raises(ImportError, match=f"{display.__name__}.plot requires"):
        disp.plot()


@pytest.mark.parametrize("display", DISPLAYS)
def test_bad_input(display):
    y, s = _random_case()
    with pytest.raises(ValueError, match="0/1"):
        display.from_predictions((y == 1).astype(int), s)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        display.from_predictions(y, s[:-1])
    with pytest.raises(TypeError, match=r"'ax' parameter.*matplotlib Axes"):
        display.from_predictions(y, s, ax="left")
    with pytest.raises(ValueError, match="'name' parameter"):
        display.from_predictions(y, s, name=3)
    detector, X, yd = _detector_data()
    with pytest.raises(ValueError, match="needs labels y"):
        display.from_estimator(detector, X, None)
    with pytest.raises(ValueError, match="both OOD samples"):
        display.from_estimator(detector, X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        display.from_estimator(detector, X, yd[:-1])
    with pytest.raises(AttributeError, match="predict_proba"):
        display.from_estimator(detector, X, yd, response_method="predict_proba")


@pytest.mark.parametrize("display", [OODRocDisplay, ScoreHistogramDisplay])
@pytest.mark.parametrize("tpr", [0.0, 1.5, "high"])
def test_bad_tpr(display, tpr):
    y, s = _random_case()
    with pytest.raises(ValueError, match="'tpr' parameter"):
        display.from_predictions(y, s, tpr=tpr)
