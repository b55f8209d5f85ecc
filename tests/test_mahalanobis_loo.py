"""Closed-form leave-one-out calibration of shrunk Mahalanobis detectors.

The calibration scores of ``MahalanobisDetector(covariance=...)`` with
Ledoit-Wolf, OAS or a fixed shrinkage are checked against brute-force refits
written here with scikit-learn only: for each row ``i``, a
:class:`~sklearn.covariance.ShrunkCovariance` with the full-data shrinkage
coefficient (scikit-learn's own ``LedoitWolf`` / ``OAS`` estimate, or the
fixed value) is fitted without row ``i`` and the row's score is minus its
squared Mahalanobis distance (``-mahalanobis``). Then the point of it: at ``n``
close to ``d`` the share of new normal samples that ``predict`` flags is
within binomial error of ``contamination``, where the out-of-fold calibration
used before flagged measurably fewer.
"""

import numpy as np
import pytest
from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf, ShrunkCovariance

from sklearn_ood import MahalanobisDetector
from tests._calibration import conformal_threshold

EPS = {np.float64: np.finfo(np.float64).eps, np.float32: np.finfo(np.float32).eps}


# --------------------------------------------------------------------------
# independent reference: refits with the full-data shrinkage coefficient
# --------------------------------------------------------------------------
def _coefficient(covariance, R):
    """scikit-learn's shrinkage coefficient of the centred rows ``R``."""
    if covariance == "ledoit_wolf":
        return LedoitWolf(assume_centered=True).fit(R).shrinkage_
    if covariance == "oas":
        return OAS(assume_centered=True).fit(R).shrinkage_
    return float(covariance)


def _groups(X, y, mode):
    """Row indices of each Gaussian's rows: one per class (per_class) or all."""
    if mode == "per_class":
        return [np.flatnonzero(y == c) for c in np.unique(y)]
    return [np.arange(len(X))]


def _class_centred(X, y):
    means = {c: X[y == c].mean(axis=0) for c in np.unique(y)}
    return X - np.array([means[c] for c in y]), means


def _shrunk(X, y, s):
    """ShrunkCovariance of the rows (class-centred when ``y`` has several classes)."""
    R, means = _class_centred(X, y)
    return ShrunkCovariance(shrinkage=s, assume_centered=True).fit(R), means


def _distance(est, diff, floor):
    """Squared distance under ``est``: scikit-learn's, or with eigenvalues floored."""
    if floor is None:
        return est.mahalanobis(diff)
    lam, U = np.linalg.eigh(est.covariance_)
    return np.sum((diff @ U) ** 2 / np.maximum(lam, floor), axis=1)


def _coefficient_condition(covariance, R):
    """Relative condition number of the shrinkage coefficient of the centred rows
    ``R`` with respect to the sums it is a ratio of (0 for a fixed value).

    Ledoit-Wolf: ``beta / delta`` with ``beta ~ s4 / n - |S|_F^2`` and ``delta
    ~ |S|_F^2 - d mu^2``; OAS: ``(alpha + mu^2) / ((n + 1) (alpha - mu^2 /
    d))``. A relative error ``r`` of the sums moves the coefficient by at most
    this factor times ``r`` (relative), from the cancellations.
    """
    n, d = R.shape
    S = R.T @ R / n
    mu, fro = np.trace(S) / d, np.sum(S**2)
    if covariance == "ledoit_wolf":
        s4 = np.sum(np.sum(R**2, axis=1) ** 2) / n
        return s4 / (s4 - fro) + fro / (fro - d * mu**2)
    if covariance == "oas":
        alpha = fro / d**2
        return 1.0 + alpha / (alpha - mu**2 / d)
    return 0.0


def refit_leave_one_out(X, y, mode, covariance, floor_rel=None, eps=EPS[np.float64]):
    """Brute-force leave-one-out scores, per-row error bounds, the floors used,
    and whether each row's score is its distance to another class.

    ``floor_rel``: eigenvalues of every refitted covariance are raised to
    ``floor_rel`` times the largest eigenvalue of the full-data covariance of
    the same Gaussian (the detector's floor, held fixed); None: no floor.

    Error bound (relative, per row) of the closed form, for data of unit
    roundoff ``eps``. (1) The closed form is exact for the model it is given,
    and that model is the exact model of a perturbed covariance: the scatter of
    ``n_g`` rows accumulated in the data's precision and its
    eigendecomposition reproduce ``Sigma`` to ``(n_g + d) eps |Sigma|``, and
    the shrinkage coefficient, a ratio of such sums, moves by ``cond_s (n_g +
    d) eps s`` (:func:`_coefficient_condition`), i.e. ``Sigma`` by that times
    ``|S - mu I|``. Under a perturbation ``P`` of the covariance (twice that:
    rescaled by ``n / (n - 1)``, and through ``mu_i``) a squared distance
    moves by at most ``|P| / sigma_min`` relative, ``sigma_min`` the smallest
    floored eigenvalue of the refitted covariance ``Sigma_i``. (2) Its own
    arithmetic (float64): ``a = |diag(h)^-1/2 V'e|^2`` loses ``2 d eps64
    sqrt(kappa_i)``, divided by the Sherman-Morrison denominator ``1 - c a =
    det(Sigma_i) / det(B_i) >= sigma_min(Sigma_i) / (sigma_max(Sigma_i) + c
    |e|^2)`` (interlacing of ``B_i = Sigma_i + c e e'``); ``c = (1 - s) b /
    (n_g - 1)``, ``b = n_c / (n_c - 1)``. The reference's own error (float64
    refits, ``d eps64 kappa_i``) is below both.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    yy = y if mode != "marginal" else np.zeros(n, dtype=int)
    classes = np.unique(yy)
    groups = _groups(X, yy, mode)
    pooled = mode != "per_class"
    coef, floors, full, perturbation = [], [], [], []
    for g in groups:
        R = _class_centred(X[g], yy[g])[0]
        s = _coefficient(covariance, R)
        est, means = _shrunk(X[g], yy[g], s)
        lam = np.linalg.eigvalsh(est.covariance_)
        S = R.T @ R / len(g)
        spread = np.linalg.norm(S - np.trace(S) / d * np.eye(d), 2)
        cond_s = _coefficient_condition(covariance, R)
        perturbation.append((len(g) + d) * eps * (lam.max() + cond_s * s * spread))
        coef.append(s)
        floors.append(None if floor_rel is None else floor_rel * lam.max())
        full.append((est, means))
    scores, bound = np.empty(n), np.empty(n)
    nearest = np.empty(n, dtype=int)
    for i in range(n):
        keep = np.arange(n) != i
        own = int(np.searchsorted(classes, yy[i]))
        gi = 0 if pooled else own
        rows = groups[gi][groups[gi] != i]
        est, means = _shrunk(X[rows], yy[rows], coef[gi])
        D = []
        for k, c in enumerate(classes):
            if pooled:
                D.append(_distance(est, X[i : i + 1] - means[c], floors[0])[0])
            elif k == own:
                D.append(_distance(est, X[i : i + 1] - means[c], floors[k])[0])
            else:  # another class: its own Gaussian, unchanged
                e_k, m_k = full[k]
                D.append(_distance(e_k, X[i : i + 1] - m_k[c], floors[k])[0])
        scores[i] = -min(D)
        nearest[i] = int(np.argmin(D)) != own
        lam = np.linalg.eigvalsh(est.covariance_)
        F = floors[gi]
        lam = lam if F is None else np.maximum(lam, F)
        n_g = len(groups[gi])
        n_c = np.sum(yy[keep] == yy[i]) + 1
        b = n_c / (n_c - 1.0)
        c = (1.0 - coef[gi]) * b / (n_g - 1.0)
        e = X[i] - X[groups[gi]][yy[groups[gi]] == yy[i]].mean(axis=0)
        inv_denom = (lam.max() + c * e @ e) / lam.min()
        kappa = lam.max() / lam.min()
        arithmetic = 2 * d * EPS[np.float64] * np.sqrt(kappa) * inv_denom
        bound[i] = 2 * perturbation[gi] / lam.min() + arithmetic
    return scores, bound, floors, nearest


def _assert_close(det, ref, bound):
    err = np.abs(det.calibration_scores_ - ref) / np.abs(ref)
    assert np.all(err <= bound), (err / bound).max()
    expected = conformal_threshold(ref, det.contamination)
    assert det.offset_ == pytest.approx(expected, rel=bound.max())


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def _wide(n=36, d=30, n_classes=3, seed=0):
    """n close to d: a power-law spectrum (eigenvalues 1 / j), random rotation,
    shifted classes (some rows nearer another class's mean, for tied mode)."""
    rng = np.random.RandomState(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    y = np.arange(n) % n_classes
    X = (rng.normal(size=(n, d)) / np.sqrt(np.arange(1, d + 1))) @ Q.T
    X += 0.05 * rng.normal(size=(n_classes, d))[y] + 2.0
    return X, y


def _rank_deficient(n=60, d=10, rank=2, n_classes=3, seed=1):
    """Rows in a rank-2 affine subspace of R^10 (randomly rotated): the shrunk
    covariance has 8 eigenvalues s mu (no variance), which the floor raises."""
    rng = np.random.RandomState(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    y = np.arange(n) % n_classes
    Z = rng.normal(size=(n, rank)) * np.linspace(1.0, 2.0, rank)
    Z += 0.7 * rng.normal(size=(n_classes, rank))[y]
    return Z @ Q[:, :rank].T + 3.0, y


MODES = ["marginal", "tied", "per_class"]
COVARIANCES = ["ledoit_wolf", "oas", 0.3]
DTYPES = [np.float64, np.float32]


def test_wide_data_exercises_the_cross_class_update():
    # n close to d (36 rows, 30 features; 12 per class), every coefficient in
    # (0, 1), and rows whose leave-one-out score is their distance to another
    # class (the cross-class terms of the tied and per-class updates).
    X, y = _wide()
    for cov in COVARIANCES:
        assert 0.0 < _coefficient(cov, _class_centred(X, y)[0]) < 1.0
    for mode in ("tied", "per_class"):
        assert refit_leave_one_out(X, y, mode, 0.3)[3].sum() >= 3


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize("mode", MODES)
def test_shrunk_leave_one_out_equals_refits(mode, covariance, dtype):
    X, y = _wide()
    X = X.astype(dtype)
    det = MahalanobisDetector(mode=mode, covariance=covariance, contamination=0.1)
    det.fit(X, y)
    ref, bound, _, _ = refit_leave_one_out(X, y, mode, covariance, eps=EPS[dtype])
    _assert_close(det, ref, bound)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("covariance", ["ledoit_wolf", "oas", 0.05])
@pytest.mark.parametrize("mode", MODES)
def test_shrunk_leave_one_out_with_an_active_floor_equals_refits(
    mode, covariance, dtype
):
    # The floor (held at the full-data value F) raises the directions without
    # variance, eigenvalue s mu < F, and none of the others: there the update
    # (floor first, then the rank-one downdate) equals the refit floored at F,
    # because a removed row has no component along the floored directions.
    X, y = _rank_deficient()
    X = X.astype(dtype)
    # The floor: between the refits' largest eigenvalue without variance and
    # their smallest eigenvalue with variance, relative to each Gaussian's
    # largest eigenvalue; the premise (a gap of 4, far above rounding) is asserted.
    X64 = X.astype(np.float64)
    yy = y if mode != "marginal" else np.zeros(len(y), dtype=int)
    low, high = 0.0, np.inf
    for g in _groups(X64, yy, mode):
        s = _coefficient(covariance, _class_centred(X64[g], yy[g])[0])
        top = np.linalg.eigvalsh(_shrunk(X64[g], yy[g], s)[0].covariance_).max()
        for i in g:
            rows = g[g != i]
            lam = np.linalg.eigvalsh(_shrunk(X64[rows], yy[rows], s)[0].covariance_)
            low, high = max(low, lam[7] / top), min(high, lam[8] / top)
    assert 4 * low < high
    floor_rel = np.sqrt(low * high)
    det = MahalanobisDetector(
        mode=mode,
        covariance=covariance,
        eigenvalue_floor=floor_rel,
        contamination=0.1,
    ).fit(X, y)
    ref, bound, floors, _ = refit_leave_one_out(
        X, y, mode, covariance, floor_rel, eps=EPS[dtype]
    )
    # The floor is active: 8 eigenvalues of every Gaussian sit on it.
    eig = np.atleast_2d(det.explained_variance_)
    for row, F in zip(eig, floors, strict=True):
        assert np.sum(np.isclose(row, F, rtol=1e-6)) == 8
    _assert_close(det, ref, bound)


# --------------------------------------------------------------------------
# the point: the share of new normal samples flagged, at n close to d
# --------------------------------------------------------------------------
def _flagged_share(calibration, scores, c):
    """Share of ``scores`` at or below the ``floor(c (n + 1))``-th smallest
    calibration score: ``predict``'s rule, written by counting."""
    k = int(np.floor(c * (len(calibration) + 1)))
    return np.mean(scores < np.sort(calibration)[k - 1])


def test_share_of_new_normal_samples_flagged_at_n_close_to_d():
    # Gaussian rows in d = 200 dimensions with a power-law spectrum (eigenvalues
    # 1 / j, as deep features have), n = 240 = 1.2 d training rows, Ledoit-Wolf.
    # For calibration scores exchangeable with new scores, the share of new
    # normal samples flagged is q ~ Beta(k, n + 1 - k), k = floor(c (n + 1)):
    # mean k / (n + 1), variance k (n + 1 - k) / ((n + 1)^2 (n + 2)), and a
    # share of m new samples adds the binomial q (1 - q) / m. The mean over R
    # repetitions is within 3 standard errors of k / (n + 1) with the
    # leave-one-out calibration; out-of-fold calibration (5 refits on 80% of
    # the rows, the calibration before) flags measurably fewer.
    rng = np.random.RandomState(0)
    d, n, m = 200, 240, 1000
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    L = Q / np.sqrt(np.arange(1, d + 1))

    def rows(k):
        return rng.normal(size=(k, d)) @ L.T

    shares = {"loo": {0.025: [], 0.05: []}, "oof": {0.025: [], 0.05: []}}
    for r in range(100):
        X, T = rows(n), rows(m)
        det = MahalanobisDetector(covariance="ledoit_wolf").fit(X)
        s = det.score_samples(T)
        cal = {"loo": det.calibration_scores_}
        if r < 20:  # fewer repetitions suffice to show the out-of-fold bias
            fold = np.arange(n) % 5
            oof = np.empty(n)
            for f in range(5):
                sub = MahalanobisDetector(covariance="ledoit_wolf")
                oof[fold == f] = sub.fit(X[fold != f]).score_samples(X[fold == f])
            cal["oof"] = oof
        for name, scores in cal.items():
            for c in (0.025, 0.05):
                shares[name][c].append(_flagged_share(scores, s, c))
    for c in (0.025, 0.05):
        k = np.floor(c * (n + 1))
        q = k / (n + 1)
        var = k * (n + 1 - k) / ((n + 1) ** 2 * (n + 2)) + q * (1 - q) / m
        loo, oof = np.array(shares["loo"][c]), np.array(shares["oof"][c])
        assert abs(loo.mean() - q) <= 3 * np.sqrt(var / len(loo))
        assert oof.mean() + 3 * np.sqrt(var / len(oof)) < q


def test_per_class_floor_active_in_one_class_only_equals_refits():
    # Class 0 has a constant feature (the pseudo-inverse drops that direction
    # for class 0 only); class 1 is full rank. Every class then carries an
    # eigenbasis for the update (padded to one width). Reference: scikit-learn
    # EmpiricalCovariance (pinvh) refitted on the own class without the row,
    # and fitted on all rows of the other class, minimum over the classes.
    rng = np.random.RandomState(3)
    d = 6
    X = rng.normal(size=(60, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)))
    y = np.repeat([0, 1], 30)
    X[y == 0, 2] = 1.5
    X[y == 1] += 2.0
    det = MahalanobisDetector(
        mode="per_class", eigenvalue_floor="pinv", contamination=0.1
    ).fit(X, y)
    full = [EmpiricalCovariance().fit(X[y == c]) for c in (0, 1)]
    ref = np.empty(len(X))
    for i in range(len(X)):
        D = []
        for c in (0, 1):
            if y[i] == c:
                keep = (y == c) & (np.arange(len(X)) != i)
                est = EmpiricalCovariance().fit(X[keep])
            else:
                est = full[c]
            D.append(est.mahalanobis(X[i : i + 1])[0])
        ref[i] = -min(D)
    # float64 on both sides; the distances are sums of d terms of size up to
    # max D, each through a d x d (pseudo-)inverse of condition ~1e2:
    # d * cond * eps64 * max|D| relative, far below 1e-8.
    np.testing.assert_allclose(det.calibration_scores_, ref, rtol=1e-8)
