"""Independent references and error bounds for the k-nearest-neighbour tests.

References are computed by brute force in float64 from the differences of
the rows (``sum((x - y) ** 2)``), not the expanded form the library ranks
with, so they share no code and no cancellation with it.

Error bounds (in the comments of the tests, the derivation is here):

- **Recomputed distances.** The library recomputes the distances of the
  neighbours it chose in float64 from the exact rows, as the reference does;
  the two differ by the rounding of a float64 sum of ``d`` squares, at most
  ``d * eps64`` relative (``REL64``).
- **Choice of neighbours.** Neighbours are ranked by ``q' . r' = (q - s) . r
  - |r - s|^2 / 2`` computed in the search dtype with ``K = d + 1`` products
  (``s``: the training mean). By the dot-product bound ``|fl(x.y) - x.y| <=
  gamma_K sum |x_j y_j|``, Cauchy-Schwarz, and the rounding of ``q - s``, of
  ``r`` (when float64 rows are searched in float32) and of the stored
  ``|r - s|^2 / 2``, each ranking value is off by at most ``E = (K + 3) eps
  (|q - s| |r| + |r - s|^2)``, i.e. a distance ``2 (c(q) - q'.r')``
  by ``2 E``. Choosing the ``k`` smallest of values each off by at most ``2
  E`` moves each sorted chosen distance by at most ``4 E`` from the true
  ``k`` smallest. :func:`selection_bound` returns that ``4 E`` (halved for
  cosine, whose distance is half the squared distance of unit vectors).
  The leave-one-out pass ranks with the symmetric form ``(r_i - s) . (r_j -
  s) - |r_i - s|^2 / 2 - |r_j - s|^2 / 2`` (``K = d + 2`` products, both
  norms stored rounded), off by at most ``(K + 3) eps (|r_i - s| |r_j - s| +
  |r_i - s|^2 / 2 + |r_j - s|^2 / 2)``; with ``R = max |r - s|`` over the
  rows both forms are covered by ``E = (d + 5) eps (|q - s| max(|r|, R) +
  R^2)``, which :func:`selection_bound` uses.
"""

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def search_space(X, metric):
    """float64 rows in which the metric's distance is Euclidean, zero mask."""
    X = np.asarray(X, dtype=np.float64)
    if metric != "cosine":
        return X, np.zeros(len(X), dtype=bool)
    norms = np.sqrt(np.sum(X * X, axis=1))
    zero = norms == 0
    return X / np.where(zero, 1.0, norms)[:, None], zero


def pairwise(X, Q, metric):
    """Search-unit distances (squared Euclidean, or 1 - cos) by brute force."""
    S, zs = search_space(X, metric)
    T, zt = search_space(Q, metric)
    D = np.sum((T[:, None, :] - S[None, :, :]) ** 2, axis=2)
    if metric == "cosine":
        D = np.minimum(0.5 * D, 2.0)
        D[:, zs] = 1.0
        D[zt, :] = 1.0
    return D


def to_metric(D, metric):
    return np.sqrt(D) if metric == "euclidean" else D


AGGREGATIONS = {
    "mean": lambda d: d.mean(axis=1),
    "sum": lambda d: d.sum(axis=1),
    "max": lambda d: d.max(axis=1),
    "kth": lambda d: d[:, -1],  # sorted distances: the k-th is the last
}


def knn_scores(X, Q, k, metric, aggregation):
    """Scores of the queries Q: minus the aggregate of their k nearest."""
    D = np.sort(pairwise(X, Q, metric), axis=1)[:, :k]
    return -AGGREGATIONS[aggregation](to_metric(D, metric))


def loo_distances(X, k, metric):
    """Leave-one-out k nearest search-unit distances, duplicates left out.

    Row ``i``'s neighbours are the rows not equal to it; only when fewer than
    ``k`` of those exist do its own duplicates (at distance 0, or 1 for a
    zero row under cosine) fill the remaining places.
    """
    X = np.asarray(X, dtype=np.float64)
    D = pairwise(X, X, metric)
    same = np.all(X[:, None, :] == X[None, :, :], axis=2)
    out = np.empty((len(X), k))
    for i in range(len(X)):
        others = np.sort(D[i, ~same[i]])
        if len(others) < k:  # own duplicates fill in, at D[i, i]
            fill = np.full(np.sum(same[i]) - 1, D[i, i])
            others = np.sort(np.concatenate([others, fill]))
        out[i] = others[:k]
    return out


def selection_bound(X, Q, dtype, metric):
    """Per-query bound on how far the chosen neighbours' distances can be from
    the true k nearest (search units): ``4 E``, see the module docstring."""
    eps = float(np.finfo(dtype).eps)
    S, _ = search_space(np.asarray(X, dtype=dtype), metric)
    T, _ = search_space(np.asarray(Q, dtype=dtype), metric)
    s = S.mean(axis=0)
    r_norm = np.sqrt(np.sum(S * S, axis=1)).max()
    rc_sq = np.sum((S - s) ** 2, axis=1).max()
    qc_norm = np.sqrt(np.sum((T - s) ** 2, axis=1))
    E = (S.shape[1] + 5) * eps * (qc_norm * max(r_norm, np.sqrt(rc_sq)) + rc_sq)
    return (2.0 if metric == "cosine" else 4.0) * E


def score_tolerance(X, Q, dtype, metric, aggregation, k):
    """Absolute bound on |score - reference| for each query.

    Each chosen distance is within ``selection_bound`` of the true one; the sum
    adds k of them; a square root turns an error e of a squared distance into
    at most sqrt(e).
    """
    bound = selection_bound(X, Q, dtype, metric)
    if metric == "cosine" and dtype == np.float32:
        # Unit rows are stored rounded to float32 (|du| <= eps32): a cosine
        # distance |u - v|^2 / 2 moves by at most |u - v| eps32 + eps32^2.
        bound = bound + 2.0 * EPS32 + EPS32**2
    if metric == "euclidean":
        bound = np.sqrt(bound)
    return bound * (k if aggregation == "sum" else 1)
