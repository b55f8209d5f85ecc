"""Tests for sklearn_ood.stats (Dirichlet MLE and the GEOM normality score)."""

import numpy as np
import pytest
from scipy.optimize import brentq, minimize
from scipy.special import gammaln, psi
from scipy.stats import dirichlet as scipy_dirichlet

from sklearn_ood.stats import (
    dirichlet_log_likelihood,
    dirichlet_mle,
    dirichlet_normality_score,
    inverse_digamma,
)

EULER_GAMMA = 0.5772156649015329


def _mean_loglik(alpha, P):
    """Mean Dirichlet log density, written out independently of the package."""
    return gammaln(alpha.sum()) - gammaln(alpha).sum() + np.log(P).mean(0) @ (alpha - 1)


# ------------------------------------------------------------------ inverse digamma


def test_inverse_digamma_inverts_psi_on_wide_range():
    x = np.logspace(-3, 4, 2001)
    np.testing.assert_allclose(inverse_digamma(psi(x)), x, rtol=1e-10, atol=0)
    # far beyond the asked range too
    x = np.logspace(-250, 250, 501)
    np.testing.assert_allclose(inverse_digamma(psi(x)), x, rtol=1e-12, atol=0)


def test_inverse_digamma_matches_root_finding_and_shapes():
    y = np.array([[-50.0, -2.3, -2.22], [-1.0, 0.0, 3.0]])
    expected = np.array(
        [
            [brentq(lambda x, v=v: psi(x) - v, 1e-6, 1e3, xtol=1e-15) for v in r]
            for r in y
        ]
    )
    out = inverse_digamma(y)
    assert out.shape == y.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # a scalar gives a Python float, and lists are accepted
    assert isinstance(inverse_digamma(0.0), float)
    np.testing.assert_allclose(inverse_digamma([0.0]), [expected[1, 1]], rtol=1e-12)


def test_inverse_digamma_initial_guess_and_special_values():
    y = np.array([-2.22, 1.0, -2.23, -10.0])
    guess = np.array(
        [
            np.exp(-2.22) + 0.5,
            np.exp(1.0) + 0.5,
            -1 / (-2.23 + EULER_GAMMA),
            1 / 9.422784,
        ]
    )
    np.testing.assert_allclose(inverse_digamma(y, n_newton=0), guess, rtol=1e-6)
    out = inverse_digamma(np.array([np.inf, -np.inf, np.nan, 800.0]))
    assert out[0] == np.inf and out[1] == 0.0 and np.isnan(out[2]) and out[3] == np.inf
    # always strictly positive for finite input
    y = np.concatenate([-np.logspace(-8, 300, 400), np.logspace(-8, 2.8, 400)])
    assert (inverse_digamma(y) > 0).all()


# ------------------------------------------------------------------------------ MLE


@pytest.mark.parametrize("kind", ["uniform", "peaked"])
def test_mle_recovers_known_alpha(kind):
    rng = np.random.default_rng(0)
    if kind == "uniform":
        alpha = rng.uniform(0.5, 5.0, size=72)
    else:
        alpha = np.r_[50.0, np.full(71, 0.3)]
    P = rng.dirichlet(alpha, size=20_000)
    est, n_iter = dirichlet_mle(P, return_n_iter=True)
    assert est.shape == (72,) and est.dtype == np.float64
    assert isinstance(n_iter, int) and 1 <= n_iter < 1000
    # observed max relative error ~1-2% over seeds 0..9
    assert np.max(np.abs(est - alpha) / alpha) < 0.04


def test_mle_matches_lbfgs_solution():
    rng = np.random.default_rng(1)
    alpha_true = rng.uniform(0.3, 4.0, size=8)
    P = rng.dirichlet(alpha_true, size=3000)
    mean_log = np.log(P).mean(0)

    def nll(theta):
        a = np.exp(theta)
        s = a.sum()
        value = -(gammaln(s) - gammaln(a).sum() + mean_log @ (a - 1))
        grad = -a * (psi(s) - psi(a) + mean_log)
        return value, grad

    res = minimize(
        nll,
        np.zeros(8),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000},
    )
    ref = np.exp(res.x)
    est = dirichlet_mle(P)
    assert _mean_loglik(est, P) >= _mean_loglik(ref, P) - 1e-10
    np.testing.assert_allclose(est, ref, rtol=1e-4)
    # and the fixed point is a stationary point of the likelihood
    np.testing.assert_allclose(psi(est.sum()) - psi(est) + mean_log, 0, atol=1e-8)


def test_mle_initialisation_and_one_step_by_hand():
    """max_iter=1 gives exactly one Minka update from Wicker's alpha0."""
    rng = np.random.default_rng(2)
    P = rng.dirichlet([1.0, 2.0, 0.5, 3.0], size=50)
    N, K = P.shape
    f = P.mean(0)
    s0 = (
        N
        * (K - 1)
        * EULER_GAMMA
        / (N * np.sum(f * np.log(f)) - np.sum(f * np.log(P).sum(0)))
    )
    alpha0 = f * s0
    y = psi(alpha0.sum()) + np.log(P).mean(0)
    expected = np.array([brentq(lambda x, v=v: psi(x) - v, 1e-8, 1e4) for v in y])
    est, n_iter = dirichlet_mle(P, max_iter=1, return_n_iter=True)
    assert n_iter == 1
    np.testing.assert_allclose(est, expected, rtol=1e-9)
    # a loose tolerance stops early, a tight one needs more updates
    _, n_loose = dirichlet_mle(P, tol=1e-2, return_n_iter=True)
    _, n_tight = dirichlet_mle(P, tol=1e-12, return_n_iter=True)
    assert 1 <= n_loose < n_tight


def test_vectorised_fit_equals_separate_fits():
    rng = np.random.default_rng(3)
    alphas = [
        rng.uniform(0.5, 5, 6),
        np.r_[30.0, np.full(5, 0.4)],
        np.full(6, 1.0),
        rng.uniform(0.1, 1, 6),
    ]
    P = np.stack([rng.dirichlet(a, size=500) for a in alphas]).astype(np.float32)
    est, n_iter = dirichlet_mle(P, return_n_iter=True)
    assert est.shape == (4, 6) and n_iter.shape == (4,)
    for t in range(4):
        est_t, n_t = dirichlet_mle(P[t], return_n_iter=True)
        np.testing.assert_allclose(est[t], est_t, rtol=1e-13, atol=0)
        assert n_iter[t] == n_t
    # the fits converge after different numbers of updates (freezing matters)
    assert len(set(n_iter.tolist())) > 1
    # also with a cap on the iterations
    est_cap = dirichlet_mle(P, max_iter=3)
    for t in range(4):
        np.testing.assert_allclose(
            est_cap[t], dirichlet_mle(P[t], max_iter=3), rtol=1e-13, atol=0
        )


def _unclipped_mle(P):
    """The MLE of the data as given, by L-BFGS on the exact mean log-likelihood.

    Independent of the package: no clipping, scipy's optimiser, log-alpha
    parametrisation. ``log P`` must be finite (no zeros).
    """
    mean_log = np.log(P).mean(0)
    k = P.shape[1]

    def nll(theta):
        a = np.exp(theta)
        s = a.sum()
        value = -(gammaln(s) - gammaln(a).sum() + mean_log @ (a - 1))
        grad = -a * (psi(s) - psi(a) + mean_log)
        return value, grad

    res = minimize(
        nll,
        np.zeros(k),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    return np.exp(res.x)


def test_default_clip_keeps_the_mle_of_tiny_probabilities():
    # Many probabilities below 1e-12 (11% of the entries) but no zeros: the
    # default clip (smallest normal float64) must not move alpha, while the
    # former 1e-12 clip moved its smallest entry by about 37%.
    rng = np.random.default_rng(0)
    P = rng.dirichlet([0.05, 0.1, 2.0], size=2000)
    assert not (P == 0).any() and (P < 1e-12).mean() > 0.1
    ref = _unclipped_mle(P)
    est = dirichlet_mle(P)
    # Both are the maximiser of a smooth strictly concave function (in log
    # alpha); the fixed point stops at ||step|| < 1e-9 and L-BFGS at a gradient
    # of 1e-12, so they agree to ~1e-8 relative: 1e-6 leaves room.
    np.testing.assert_allclose(est, ref, rtol=1e-6)
    # a stationary point of the exact (unclipped) likelihood
    mean_log = np.log(P).mean(0)
    np.testing.assert_allclose(psi(est.sum()) - psi(est) + mean_log, 0, atol=1e-8)
    old = dirichlet_mle(P, eps=1e-12)
    assert np.max(np.abs(old - ref) / ref) > 0.3


def test_exact_zeros_are_clipped_and_input_not_mutated():
    rng = np.random.default_rng(4)
    # tiny values underflow to exactly 0 in float32, as a float32 softmax does
    P = rng.dirichlet([5.0, 0.05, 2.0], size=1000).astype(np.float32)
    assert (P == 0).any()
    P_copy = P.copy()
    est = dirichlet_mle(P)
    assert np.isfinite(est).all() and (est > 0).all()
    np.testing.assert_array_equal(P, P_copy)
    # identical to fitting the float64 data with only the zeros replaced by the
    # smallest normal float64 (every nonzero float32 value is kept)
    tiny = np.finfo(np.float64).tiny
    replaced = np.where(P == 0, tiny, P.astype(np.float64))
    np.testing.assert_allclose(est, dirichlet_mle(replaced), rtol=1e-12)
    # the unclipped original recipe breaks on this input
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(P.astype(np.float64)).mean(0)).any()
    # a bigger eps changes the result
    assert not np.allclose(est, dirichlet_mle(P, eps=1e-3))


def test_identical_rows_refused_whatever_the_rounding():
    # N identical float32 softmax rows: the float64 column means carry rounding,
    # which used to leave a denominator of ~1e-17 and alpha ~ 1e15.
    row = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32) / np.float32(1.0000001)
    for n in (2, 1000, 4097):
        with pytest.raises(ValueError, match=r"'P'.*no spread"):
            dirichlet_mle(np.tile(row, (n, 1)))
    # rows one float64 ulp apart: within the rounding of the column means, at
    # every size (a sequential column sum of 20,000 rows used to leave a
    # rounding error above the bound and alpha.sum() ~ 1e13)
    for n in (1000, 20_000, 200_000):
        P = np.tile(row.astype(np.float64), (n, 1))
        P[::2, 0] = np.nextafter(P[::2, 0], 1.0)
        P[::2, 3] = np.nextafter(P[::2, 3], 0.0)
        with pytest.raises(ValueError, match=r"'P'.*no spread"):
            dirichlet_mle(P)
    # a real spread of 1e-6 in the probabilities is fitted (alpha ~ 1e12)
    P[::2, 0] += 1e-6
    P[::2, 3] -= 1e-6
    assert np.isfinite(dirichlet_mle(P)).all()


def test_mle_matches_scipy_log_likelihood_optimum():
    # scipy.stats.dirichlet has no fit(); its logpdf summed over the data is
    # maximal at our estimate: no small step in any direction increases it.
    rng = np.random.default_rng(11)
    P = rng.dirichlet([0.3, 1.5, 4.0, 0.8], size=500)
    est = dirichlet_mle(P)
    best = scipy_dirichlet.logpdf(P.T, est).sum()
    for k in range(4):
        for step in (1e-3, -1e-3):
            a = est.copy()
            a[k] *= 1 + step
            assert scipy_dirichlet.logpdf(P.T, a).sum() < best


def test_all_zero_column_gives_finite_alpha():
    rng = np.random.default_rng(5)
    P = np.zeros((200, 4))
    P[:, :3] = rng.dirichlet([2.0, 3.0, 4.0], size=200)
    est = dirichlet_mle(P)
    assert np.isfinite(est).all() and (est > 0).all()
    assert est[3] < 0.1 * est[:3].min()


def test_mle_row_sum_warning_and_degenerate_input():
    rng = np.random.default_rng(6)
    P = rng.dirichlet([1.0, 2.0, 3.0], size=100)
    with pytest.warns(UserWarning, match="should sum to 1"):
        dirichlet_mle(0.5 * P)
    with pytest.raises(ValueError, match=r"'P'.*identical"):
        dirichlet_mle(np.tile([0.2, 0.3, 0.5], (10, 1)))
    with pytest.raises(ValueError, match=r"'P'.*identical"):
        dirichlet_mle(np.stack([np.tile([0.2, 0.3, 0.5], (10, 1))] * 2))


@pytest.mark.parametrize(
    ("P", "kwargs", "match"),
    [
        (np.full(3, 1 / 3), {}, "'P' parameter of dirichlet_mle must be a 2-D"),
        (np.full((2, 2, 2, 2), 0.5), {}, "'P' parameter.*shape"),
        (np.full((1, 3), 1 / 3), {}, "'P'.*at least 2 samples"),
        (np.ones((5, 1)), {}, "'P'.*at least 2 classes"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), {}, "'P'.*finite"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), {}, "'P'.*non-negative"),
        (np.array([["a", "b"], ["c", "d"]]), {}, "'P'.*real numbers"),
        (np.full((3, 2), 0.5), {"tol": -1.0}, "'tol' parameter"),
        (np.full((3, 2), 0.5), {"max_iter": 0}, "'max_iter' parameter"),
        (np.full((3, 2), 0.5), {"eps": 0.0}, "'eps' parameter"),
        (np.full((3, 2), 0.5), {"return_n_iter": "yes"}, "'return_n_iter' parameter"),
    ],
)
def test_mle_bad_input(P, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dirichlet_mle(P, **kwargs)


def test_inverse_digamma_bad_input():
    with pytest.raises(ValueError, match="'n_newton' parameter"):
        inverse_digamma(1.0, n_newton=-1)
    with pytest.raises(ValueError, match="'y' parameter"):
        inverse_digamma(np.array(["x"]))


# ------------------------------------------------------------ densities and scores


def test_log_likelihood_matches_scipy():
    rng = np.random.default_rng(7)
    alpha = rng.uniform(0.3, 6, size=5)
    P = rng.dirichlet(alpha, size=40)
    ref = scipy_dirichlet.logpdf(P.T, alpha)
    np.testing.assert_allclose(dirichlet_log_likelihood(alpha, P), ref, rtol=1e-12)
    const = gammaln(alpha.sum()) - gammaln(alpha).sum()
    np.testing.assert_allclose(
        dirichlet_log_likelihood(alpha, P, normalised=False), ref - const, rtol=1e-10
    )
    # batched version: (T, K) alpha with (T, N, K) points
    alphas = np.stack([alpha, alpha[::-1]])
    Ps = np.stack([P, rng.dirichlet(alpha[::-1], size=40)])
    out = dirichlet_log_likelihood(alphas, Ps)
    assert out.shape == (2, 40)
    for t in range(2):
        np.testing.assert_allclose(
            out[t], scipy_dirichlet.logpdf(Ps[t].T, alphas[t]), rtol=1e-12
        )


def test_log_likelihood_clips_zeros():
    alpha = np.array([2.0, 0.5, 3.0])
    P = np.array([[0.5, 0.0, 0.5]])
    out = dirichlet_log_likelihood(alpha, P, eps=1e-8)
    expected = (
        gammaln(5.5)
        - gammaln(alpha).sum()
        + np.log(0.5)
        + (-0.5) * np.log(1e-8)
        + 2 * np.log(0.5)
    )
    np.testing.assert_allclose(out, [expected], rtol=1e-12)


def test_normality_score_matches_python_loop():
    rng = np.random.default_rng(8)
    T, N, K = 5, 7, 4
    alpha = rng.uniform(0.2, 5, size=(T, K))
    Q = rng.dirichlet(np.ones(K), size=(T, N)).astype(np.float32)
    Q[0, 0, 1] = 0.0
    Q_copy = Q.copy()
    expected = np.zeros(N)
    for n in range(N):
        total = 0.0
        for t in range(T):
            for k in range(K):
                q = max(float(Q[t, n, k]), np.finfo(np.float64).tiny)
                total += (alpha[t, k] - 1.0) * np.log(q)
        expected[n] = total / T
    out = dirichlet_normality_score(alpha, Q)
    assert out.shape == (N,) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_array_equal(Q, Q_copy)
    # it is the mean over t of the unnormalised log-likelihood
    unnorm = dirichlet_log_likelihood(alpha, Q, normalised=False)
    np.testing.assert_allclose(out, unnorm.mean(0), rtol=1e-12)
    # a single transformation: 1-D alpha with 2-D Q
    np.testing.assert_allclose(
        dirichlet_normality_score(alpha[2], Q[2]), unnorm[2], rtol=1e-12
    )


def test_normality_score_ranks_in_distribution_higher():
    rng = np.random.default_rng(9)
    alpha_true = np.stack([np.r_[20.0, np.full(5, 0.5)], np.r_[np.full(5, 0.5), 20.0]])
    train = np.stack([rng.dirichlet(a, size=2000) for a in alpha_true])
    alpha = dirichlet_mle(train)
    normal = np.stack([rng.dirichlet(a, size=100) for a in alpha_true])
    odd = rng.dirichlet(np.ones(6), size=(2, 100))
    s_normal = dirichlet_normality_score(alpha, normal)
    s_odd = dirichlet_normality_score(alpha, odd)
    assert np.median(s_normal) > np.median(s_odd)


@pytest.mark.parametrize(
    ("func", "alpha", "X", "match"),
    [
        (dirichlet_normality_score, [[1.0, -1.0]], np.full((1, 2, 2), 0.5), "'alpha'"),
        (dirichlet_normality_score, [[1.0, 2.0]], np.full((2, 2), 0.5), "'Q'.*3-D"),
        (
            dirichlet_normality_score,
            [[1.0, 2.0]],
            np.full((2, 3, 2), 0.5),
            "'Q'.*shape",
        ),
        (
            dirichlet_normality_score,
            [[1.0, 2.0]],
            np.full((1, 3, 3), 0.3),
            "'Q'.*shape",
        ),
        (dirichlet_normality_score, [[1.0, 2.0]], -np.ones((1, 2, 2)), "'Q'.*negative"),
        (dirichlet_normality_score, np.ones((1, 1, 2)), np.ones((1, 1, 2)), "'alpha'"),
        (dirichlet_log_likelihood, [1.0, np.inf], np.full((2, 2), 0.5), "'alpha'"),
        (dirichlet_log_likelihood, [1.0, 2.0], np.full(2, 0.5), "'P'.*2-D"),
        (dirichlet_log_likelihood, [1.0, 2.0], np.full((2, 3), 0.3), "'P'.*shape"),
        (dirichlet_log_likelihood, [1.0, 2.0], [[np.nan, 1.0]], "'P'.*finite"),
    ],
)
def test_score_bad_input(func, alpha, X, match):
    with pytest.raises(ValueError, match=match):
        func(alpha, X)
    with pytest.raises(ValueError, match="'eps' parameter"):
        func([[1.0, 2.0]], np.full((1, 2, 2), 0.5), eps=2.0)
