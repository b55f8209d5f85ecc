"""Tests of ConformalDetector and benjamini_hochberg.

- The split and the cross-conformal p-values are recomputed by hand (the same
  random split, explicit refits, brute-force counts).
- The guarantees are checked by repetition on fresh data: the share of new
  normal samples with ``p <= alpha``, averaged over ``R`` repetitions, must be
  at most its bound plus three standard errors of that average (the standard
  deviation of the per-repetition shares over sqrt(R)); for split conformal,
  also at least its exact value ``floor(alpha (n_cal + 1)) / (n_cal + 1)`` less
  three standard errors. The seeds are fixed, so a run is deterministic.
- Benjamini-Hochberg is compared with ``scipy.stats.false_discovery_control``
  and with an exact computation in fractions; its FDR by simulation.

Tolerances: p-values are counts over the same float scores, compared exactly
(``assert_allclose``'s default 1e-7 only absorbs the division). Scores
compared without a stated tolerance come from the same computation on the same
rows in the same order (equal on one machine; numpy's default rtol of 1e-7 is
far above the ~1e-15 variation of a threaded BLAS reduction).
"""

from fractions import Fraction
from math import ceil, floor

import numpy as np
import pytest
from scipy.stats import false_discovery_control
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline

from sklearn_ood import KNNDetector, LayerEnsembleDetector, MahalanobisDetector
from sklearn_ood.base import CalibrationWarning
from sklearn_ood.conformal import ConformalDetector, benjamini_hochberg
from tests._calibration import conformal_threshold
from tests._counting import CountingNet, FrozenExtractor, images

ALPHAS = (0.05, 0.1, 0.2)


def _gaussian(rng, n, d=3):
    return rng.normal(size=(n, d))


def _manual_split(X, seed, n_cal):
    """The split of ConformalDetector: a permutation of the inlier rows from
    ``RandomState(seed)``, its first ``n_cal`` entries calibrate."""
    perm = np.random.RandomState(seed).permutation(len(X))
    return np.sort(perm[n_cal:]), np.sort(perm[:n_cal])


def _p_values(cal, s):
    """Conformal p-values by brute-force counting."""
    return (1 + (np.asarray(cal)[None, :] <= np.asarray(s)[:, None]).sum(1)) / (
        len(cal) + 1
    )


# ------------------------------------------------------------------ split
def test_split_conformal_against_a_manual_split():
    rng = np.random.RandomState(0)
    X = _gaussian(rng, 101)
    det = ConformalDetector(MahalanobisDetector(), contamination=0.1, random_state=3)
    det.fit(X)
    fit, cal = _manual_split(X, 3, ceil(0.5 * 101))
    ref = MahalanobisDetector().fit(X[fit])
    cal_scores = ref.score_samples(X[cal])
    np.testing.assert_array_equal(det.calibration_scores_, cal_scores)
    assert det.offset_ == conformal_threshold(cal_scores, 0.1)
    X_new = np.r_[X[cal], _gaussian(rng, 200) * 1.5]  # ties with cal scores too
    s = ref.score_samples(X_new)
    np.testing.assert_array_equal(det.score_samples(X_new), s)
    p = _p_values(cal_scores, s)
    np.testing.assert_allclose(det.p_values(X_new), p)
    # predict flags exactly the samples with p <= contamination
    np.testing.assert_array_equal(det.predict(X_new) == -1, p <= 0.1)
    np.testing.assert_array_equal(det.decision_function(X_new), s - det.offset_)


def test_calibration_size_as_a_count_and_bad_sizes():
    X = _gaussian(np.random.RandomState(1), 60)
    det = ConformalDetector(KNNDetector(), calibration_size=45, random_state=0).fit(X)
    assert det.calibration_scores_.shape == (45,)
    with pytest.raises(ValueError, match="'calibration_size' parameter"):
        ConformalDetector(KNNDetector(), calibration_size=60).fit(X)
    with pytest.raises(ValueError, match="'calibration_size' parameter"):
        ConformalDetector(KNNDetector(), calibration_size=1.0).fit(X)
    with pytest.raises(ValueError, match="'n_folds' parameter"):
        ConformalDetector(KNNDetector(), method="cross", n_folds=61).fit(X)
    with pytest.warns(CalibrationWarning, match="calibration score"):
        ConformalDetector(KNNDetector(), contamination=0.01).fit(X)


def test_outlier_rows_are_passed_on_and_never_calibrate():
    rng = np.random.RandomState(2)
    X = _gaussian(rng, 80, d=4)
    X_ood = _gaussian(rng, 20, d=4) + 3.0
    X_all = np.r_[X, X_ood]
    y = np.r_[np.zeros(80, int), -np.ones(20, int)]
    ens = LayerEnsembleDetector(
        feature_groups=[[0, 1], [2, 3]], combiner=LogisticRegression(), random_state=0
    )
    det = ConformalDetector(ens, random_state=5).fit(X_all, y)
    fit, cal = _manual_split(X, 5, 40)
    rows = np.r_[fit, np.arange(80, 100)]  # the -1 rows train the combiner
    ref = clone(ens).fit(X_all[rows], y[rows])
    # same fits on the same rows in the same order: equal up to threaded BLAS
    # reductions (~1e-15 relative)
    np.testing.assert_allclose(
        det.calibration_scores_, ref.score_samples(X[cal]), rtol=1e-12
    )
    assert det.estimator_.combiner_ is not None


# ------------------------------------------------------------------ cross
def test_cross_conformal_p_values_by_brute_force():
    rng = np.random.RandomState(3)
    X = _gaussian(rng, 47)
    det = ConformalDetector(
        KNNDetector(n_neighbors=3),
        method="cross",
        n_folds=4,
        contamination=0.1,
        random_state=7,
    ).fit(X)
    folds = KFold(4, shuffle=True, random_state=np.random.RandomState(7))
    X_new = np.r_[_gaussian(rng, 100) * 1.3, X[:5]]
    count = np.zeros(len(X_new))
    oof = np.empty(len(X))
    for train, test in folds.split(X):
        model = KNNDetector(n_neighbors=3).fit(X[train])
        oof[test] = model.score_samples(X[test])
        s_new = model.score_samples(X_new)
        count += (oof[test][None, :] <= s_new[:, None]).sum(1)
    p = (1 + count) / (len(X) + 1)
    np.testing.assert_allclose(det.p_values(X_new), p)
    np.testing.assert_allclose(det.score_samples(X_new), p)
    np.testing.assert_array_equal(det.calibration_scores_, oof)
    np.testing.assert_array_equal(det.predict(X_new) == -1, p <= 0.1)
    assert len(det.estimators_) == 4


# ------------------------------------------------- guarantees by repetition
def _shares(make, sample, *, n, m, reps, method="split", y=None, **kw):
    """Mean and standard error over ``reps`` of the share of ``m`` new normal
    samples with p <= alpha, for each alpha of ALPHAS."""
    shares = np.empty((reps, len(ALPHAS)))
    for r in range(reps):
        rng = np.random.RandomState(1000 + r)
        X, X_new = sample(rng, n), sample(rng, m)
        det = ConformalDetector(make(), method=method, random_state=r, **kw)
        p = det.fit(X, y).p_values(X_new)
        shares[r] = [np.mean(p <= a) for a in ALPHAS]
    return shares.mean(0), shares.std(0, ddof=1) / np.sqrt(reps)


def _check_split(mean, se, n_cal):
    for a, mu, e in zip(ALPHAS, mean, se):
        exact = floor(a * (n_cal + 1)) / (n_cal + 1)  # continuous scores
        assert mu <= a + 3 * e, (a, mu, e)
        assert mu >= exact - 3 * e, (a, mu, e)


def _ensemble():
    return LayerEnsembleDetector(
        KNNDetector(n_neighbors=2), feature_groups=[[0], [1, 2]], cv=3, random_state=0
    )


@pytest.mark.parametrize(
    "make",
    [
        MahalanobisDetector,
        lambda: KNNDetector(n_neighbors=1),
        _ensemble,
    ],
    ids=["mahalanobis", "knn", "ensemble"],
)
def test_split_p_values_are_exactly_calibrated(make):
    mean, se = _shares(make, _gaussian, n=80, m=50, reps=150)
    _check_split(mean, se, n_cal=40)


def test_split_guarantee_at_n_over_d_two():
    # 40 rows in 20 dimensions: 20 fit a (floored) Mahalanobis model, 20
    # calibrate. Heavy tails (Student t, 3 degrees of freedom) for good measure.
    def sample(rng, n):
        return rng.standard_t(3, size=(n, 20))

    mean, se = _shares(MahalanobisDetector, sample, n=40, m=50, reps=200)
    _check_split(mean, se, n_cal=20)


def test_split_p_values_of_a_tiny_image_pipeline():
    def make():
        return make_pipeline(
            FrozenExtractor(CountingNet(), device="cpu"),
            MahalanobisDetector(covariance="ledoit_wolf"),
        )

    def sample(rng, n):
        return images(n, seed=rng.randint(2**31))

    mean, se = _shares(make, sample, n=60, m=40, reps=40)
    _check_split(mean, se, n_cal=30)


@pytest.mark.parametrize(
    "make", [MahalanobisDetector, lambda: KNNDetector(n_neighbors=1)], ids=repr
)
def test_cross_conformal_bound(make):
    n, k = 40, 5
    mean, se = _shares(make, _gaussian, n=n, m=50, reps=80, method="cross", n_folds=k)
    # Barber et al. (2021), Theorem 4 (CV+): 2 alpha + min(...)
    extra = min(2 * (1 - 1 / k) / (n / k + 1), (1 - k / n) / (k + 1))
    for a, mu, e in zip(ALPHAS, mean, se):
        assert mu <= 2 * a + extra + 3 * e, (a, mu, e)


@pytest.mark.parametrize("method", ["split", "cross"])
def test_fit_predict_flags_exactly_the_share(method):
    X = _gaussian(np.random.RandomState(4), 200)
    for c in (0.05, 0.1, 0.25):
        det = ConformalDetector(
            KNNDetector(), contamination=c, method=method, random_state=0
        )
        assert np.sum(det.fit_predict(X) == -1) == floor(c * 200)


# ------------------------------------------- features once for image Pipelines
@pytest.mark.parametrize("method", ["split", "cross"])
def test_image_pipeline_features_extracted_once(method):
    X = images(50, seed=0)
    CountingNet.rows = 0
    probe = FrozenExtractor(CountingNet(), device="cpu").fit(X)
    fit_rows = CountingNet.rows
    F = probe.transform(X)
    det = MahalanobisDetector(covariance="ledoit_wolf")
    CountingNet.rows = 0
    pipe = make_pipeline(FrozenExtractor(CountingNet(), device="cpu"), det)
    kw = {"method": method, "n_folds": 3, "random_state": 0}
    conf = ConformalDetector(pipe, **kw).fit(X)
    assert CountingNet.rows == fit_rows + len(X)
    ref = ConformalDetector(det, **kw).fit(F)
    np.testing.assert_allclose(conf.calibration_scores_, ref.calibration_scores_)
    X_new = images(9, seed=1)
    np.testing.assert_allclose(
        conf.score_samples(X_new), ref.score_samples(probe.transform(X_new))
    )
    assert conf.offset_ == ref.offset_


# ------------------------------------------------------------ BH procedure
def _bh_fractions(p, q):
    """BH in exact arithmetic: flag p <= p_(k), k the largest with
    p_(k) <= q k / m."""
    m = len(p)
    ps = sorted(p)
    ks = [k for k in range(1, m + 1) if ps[k - 1] <= q * k / m]
    return [x <= ps[ks[-1] - 1] for x in p] if ks else [False] * m


@pytest.mark.parametrize("m", [1, 7, 50, 400])
@pytest.mark.parametrize("q", [0.05, 0.1, 0.3])
def test_bh_matches_scipy(m, q):
    rng = np.random.RandomState(m)
    p = np.r_[rng.uniform(size=m - m // 4), rng.uniform(size=m // 4) * 0.01]
    rng.shuffle(p)
    expected = false_discovery_control(p, method="bh") <= q
    np.testing.assert_array_equal(benjamini_hochberg(p, q), expected)


def test_bh_on_conformal_grid_matches_exact_fractions():
    # p-values (1 + j) / 100 and q = 1/10, m = 50: p_(k) = q k / m happens
    # exactly (as fractions), where float products can round either way.
    rng = np.random.RandomState(0)
    for _ in range(200):
        j = rng.randint(0, 100, size=50)
        fr = [Fraction(1 + int(v), 100) for v in j]
        expected = _bh_fractions(fr, Fraction(1, 10))
        got = benjamini_hochberg((1 + j) / 100, 0.1)
        np.testing.assert_array_equal(got, expected)


def test_bh_storey_is_bh_at_the_adjusted_level():
    rng = np.random.RandomState(1)
    p = np.r_[rng.uniform(size=60), rng.uniform(size=40) * 0.02]
    pi0 = (1 + np.sum(p > 0.5)) / (100 * 0.5)
    expected = false_discovery_control(p, method="bh") <= 0.1 / min(pi0, 1.0)
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.1, method="storey"), expected)
    assert expected.sum() > benjamini_hochberg(p, 0.1).sum()


def test_bh_input_checks():
    assert benjamini_hochberg([], 0.1).shape == (0,)
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        benjamini_hochberg([0.1, np.nan], 0.1)
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        benjamini_hochberg([0.1, 1.5], 0.1)
    with pytest.raises(ValueError, match="1-D"):
        benjamini_hochberg([[0.1, 0.2]], 0.1)
    with pytest.raises(ValueError, match="'q' parameter"):
        benjamini_hochberg([0.1], 1.5)


@pytest.mark.parametrize("method", ["bh", "storey"])
def test_fdr_is_controlled_on_simulated_batches(method):
    # Batches of m = 100 new samples, 30% outliers, scored against one
    # calibration set per repetition (the p-values are dependent).
    q, m, m1, reps = 0.1, 100, 30, 200
    fdp = np.empty(reps)
    found = np.empty(reps)
    for r in range(reps):
        rng = np.random.RandomState(r)
        det = ConformalDetector(MahalanobisDetector(), random_state=r)
        det.fit(_gaussian(rng, 200, d=4))
        X = np.r_[_gaussian(rng, m - m1, d=4), _gaussian(rng, m1, d=4) + 1.5]
        flagged = benjamini_hochberg(det.p_values(X), q, method=method)
        false = flagged[: m - m1].sum()
        fdp[r] = false / max(flagged.sum(), 1)
        found[r] = flagged[m - m1 :].mean()
    se = fdp.std(ddof=1) / np.sqrt(reps)
    # BH: FDR <= q m0 / m (Bates et al. 2023); Storey: <= q (simulation)
    bound = q * (m - m1) / m if method == "bh" else q
    assert fdp.mean() <= bound + 3 * se, (fdp.mean(), se)
    assert found.mean() > 0.2  # and it finds outliers


# --------------------------------------------------------- estimator checks
# As for every detector with ``contamination`` (tests/test_common.py): predict
# on the memorised training rows, and fit_predict from calibration scores.
