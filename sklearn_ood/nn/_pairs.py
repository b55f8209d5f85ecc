"""Pair construction for metric learning with OOD mining (Masana et al., 2018).

Follows ``epoch_batches`` of the authors' code (``mmasana/OoD_Mining``,
``src/utils/utils_main.py``). A batch of ``n_left`` in-distribution "left"
items gets one "right" partner each, so it holds ``2 * n_left`` images
(1024 = 512 + 512 in the paper):

* the first ``floor(similar_ratio * n_left)`` left items get a partner of the
  same class, drawn uniformly from all training samples of that class (it can
  be the item itself);
* the other left items get a partner drawn uniformly from all in-distribution
  training samples of a different class;
* on OOD batches (batch indices ``ood_every - 1, 2 * ood_every - 1, ...``:
  1, 3, 5, ... by default, as in the code), the right partners of the last
  ``floor(ood_ratio * 2 * n_left)`` left items are replaced by known OOD
  samples (label ``-1``), drawn without replacement when there are enough.

``ood_ratio`` is thus a share of all ``2 * n_left`` images of the batch, as in
the paper ("25% in-out pairs every two batches": the last quarter of the 1024
slots, i.e. the right halves of the last 256 of the 512 pairs). With the
defaults an OOD batch holds 25% similar, 25% in-in dissimilar and 50% in-OOD
pairs. OOD samples only ever appear as right partners of in-distribution left
items, always in dissimilar pairs: never OOD-OOD, never OOD-similar.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["PairSampler", "sample_pairs"]


def _check_rng(random_state):
    """Accept a NumPy Generator as well as what ``check_random_state`` does."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return check_random_state(random_state)


def _n_of(ratio: float, n: int) -> int:
    # floor, as ``int(...)`` in the original, tolerant to 0.29 * 100 = 28.99...
    return int(np.floor(ratio * n + 1e-9))


class PairSampler:
    """Draw right-hand partners for batches of in-distribution items.

    Parameters
    ----------
    y : array-like of int of shape (n_samples,)
        Labels of the whole training set: class labels (any non-negative
        integers) for in-distribution samples, ``-1`` for known OOD samples.
        Returned indices refer to positions in ``y``.
    similar_ratio : float, default=0.25
        Share of the left items that get a same-class partner
        (``siam_batch_ratio`` of the code), in ``[0, 1]``.
    ood_ratio : float, default=0.25
        Share of all ``2 * n_left`` images of an OOD batch that are OOD
        samples, in ``[0, 0.5]``; each is the right partner of one of the last
        ``floor(ood_ratio * 2 * n_left)`` left items. Ignored when ``y`` has
        no ``-1``.
    ood_every : int, default=2
        Batch ``b`` is an OOD batch when ``(b + 1) % ood_every == 0``
        (batches 1, 3, 5, ... for 2; every batch for 1).

    Attributes
    ----------
    classes_ : ndarray
        Sorted distinct in-distribution labels.
    n_in_ : int
        Number of in-distribution samples.
    n_ood_ : int
        Number of OOD samples (label ``-1``).
    """

    def __init__(
        self,
        y,
        *,
        similar_ratio: float = 0.25,
        ood_ratio: float = 0.25,
        ood_every: int = 2,
    ) -> None:
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                "y must be a 1-d array of integer labels (-1 for OOD samples). "
                f"Got an array of shape {y.shape} and dtype {y.dtype} instead."
            )
        if y.size and y.min() < -1:
            raise ValueError(
                "y must hold non-negative class labels or -1 for OOD samples. "
                f"Got the label {y.min()} instead."
            )
        for name, value, high in (
            ("similar_ratio", similar_ratio, 1.0),
            ("ood_ratio", ood_ratio, 0.5),
        ):
            if (
                not isinstance(value, Real)
                or isinstance(value, bool)
                or not 0.0 <= value <= high
            ):
                raise ValueError(
                    f"The '{name}' parameter of PairSampler must be a float in "
                    f"the range [0.0, {high}]. Got {value!r} instead."
                )
        if (
            not isinstance(ood_every, Integral)
            or isinstance(ood_every, bool)
            or ood_every < 1
        ):
            raise ValueError(
                "The 'ood_every' parameter of PairSampler must be an int in the "
                f"range [1, inf). Got {ood_every!r} instead."
            )
        self.similar_ratio = float(similar_ratio)
        self.ood_ratio = float(ood_ratio)
        self.ood_every = int(ood_every)
        self._y = y.astype(np.int64)  # a private copy

        in_idx = np.flatnonzero(self._y >= 0)
        # In-distribution indices sorted by class: class j occupies the block
        # order[start[j] : start[j] + count[j]].
        labels = self._y[in_idx]
        self._order = in_idx[np.argsort(labels, kind="stable")]
        self.classes_, counts = np.unique(labels, return_counts=True)
        self._count = counts.astype(np.int64)
        self._start = np.concatenate([[0], np.cumsum(self._count)[:-1]]).astype(
            np.int64
        )
        self._ood_idx = np.flatnonzero(self._y == -1)
        self.n_in_ = int(in_idx.size)
        self.n_ood_ = int(self._ood_idx.size)

    def is_ood_batch(self, batch_index: int) -> bool:
        """Whether batch ``batch_index`` receives OOD partners.

        Parameters
        ----------
        batch_index : int
            Position of the batch in the epoch, from 0.

        Returns
        -------
        bool
            True when ``(batch_index + 1) % ood_every == 0`` and there are OOD
            samples.
        """
        return self.n_ood_ > 0 and (int(batch_index) + 1) % self.ood_every == 0

    def counts(self, n_left: int, batch_index: int = 0) -> tuple[int, int, int]:
        """Count the similar, in-in dissimilar and in-OOD pairs of a batch.

        Parameters
        ----------
        n_left : int
            Number of left items.
        batch_index : int, default=0
            Position of the batch in the epoch.

        Returns
        -------
        n_similar : int
            Number of same-class pairs.
        n_dissimilar : int
            Number of different-class pairs of two in-distribution items.
        n_ood : int
            Number of pairs of an in-distribution item and a known OOD item.
        """
        n_sim = _n_of(self.similar_ratio, n_left)
        n_ood = (
            _n_of(self.ood_ratio, 2 * n_left) if self.is_ood_batch(batch_index) else 0
        )
        if n_sim + n_ood > n_left:
            raise ValueError(
                f"A batch of {n_left} left items cannot hold {n_sim} similar "
                f"pairs (similar_ratio={self.similar_ratio}) and {n_ood} OOD "
                f"pairs (ood_ratio={self.ood_ratio}): lower the ratios so that "
                "similar_ratio + 2 * ood_ratio <= 1."
            )
        return n_sim, n_left - n_sim - n_ood, n_ood

    def sample(
        self, left, *, batch_index: int = 0, random_state=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw the right partner of each left item.

        Parameters
        ----------
        left : array-like of int of shape (n_left,)
            Indices into ``y`` of in-distribution items.
        batch_index : int, default=0
            Position of the batch in the epoch; decides whether it is an OOD
            batch.
        random_state : int, RandomState, Generator or None, default=None
            Source of randomness; a RandomState or Generator is advanced.

        Returns
        -------
        right : ndarray of int64 of shape (n_left,)
            Indices into ``y`` of the partners.
        same : ndarray of bool of shape (n_left,)
            True for same-class pairs (the first ``n_similar`` pairs).
        """
        left = np.asarray(left)
        if left.ndim != 1 or not (
            np.issubdtype(left.dtype, np.integer) or left.size == 0
        ):
            raise ValueError(
                "left must be a 1-d array of integer indices into y. Got an "
                f"array of shape {left.shape} and dtype {left.dtype} instead."
            )
        left = left.astype(np.int64)
        if left.size and (left.min() < 0 or left.max() >= self._y.size):
            raise ValueError(
                f"left must hold indices in [0, {self._y.size}). Got values in "
                f"[{left.min()}, {left.max()}] instead."
            )
        left_y = self._y[left]
        if left.size and left_y.min() < 0:
            raise ValueError(
                "left must hold in-distribution samples only; OOD samples "
                "(label -1) are only ever right partners."
            )
        rng = _check_rng(random_state)
        n_left = left.size
        n_sim, n_dis, n_ood = self.counts(n_left, batch_index)
        cls = np.searchsorted(self.classes_, left_y)
        right = np.empty(n_left, dtype=np.int64)

        # Similar pairs: uniform over the samples of the same class.
        c = cls[:n_sim]
        offset = np.minimum(
            (rng.random(n_sim) * self._count[c]).astype(np.int64), self._count[c] - 1
        )
        right[:n_sim] = self._order[self._start[c] + offset]

        # Dissimilar pairs: uniform over the in-distribution samples of the
        # other classes, i.e. over the sorted order without class c's block.
        c = cls[n_sim : n_sim + n_dis]
        n_other = self.n_in_ - self._count[c]
        if n_dis and n_other.min() == 0:
            raise ValueError(
                "Dissimilar pairs need at least two in-distribution classes; y "
                f"has only the class {self.classes_.tolist()}. Set "
                "similar_ratio=1.0 or add samples of other classes."
            )
        pos = np.minimum((rng.random(n_dis) * n_other).astype(np.int64), n_other - 1)
        pos = np.where(pos >= self._start[c], pos + self._count[c], pos)
        right[n_sim : n_sim + n_dis] = self._order[pos]

        # OOD partners for the last n_ood left items.
        if n_ood:
            replace = n_ood > self.n_ood_
            pick = rng.choice(self.n_ood_, size=n_ood, replace=replace)
            right[n_left - n_ood :] = self._ood_idx[pick]

        same = np.zeros(n_left, dtype=bool)
        same[:n_sim] = True
        return right, same

    def epoch(
        self, batch_size: int = 512, *, random_state=None, drop_last: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Iterate over the pair batches of one epoch.

        A random permutation of the in-distribution samples is cut into
        batches of ``batch_size`` left items (the remainder is dropped, as in
        the code, unless ``drop_last=False``), and each batch gets partners
        from :meth:`sample` with its position as ``batch_index``.

        Parameters
        ----------
        batch_size : int, default=512
            Number of left items (pairs) per batch: half the number of images.
        random_state : int, RandomState, Generator or None, default=None
            Source of randomness for the permutation and the partners.
        drop_last : bool, default=True
            Drop the last incomplete batch.

        Yields
        ------
        left, right : ndarray of int64 of shape (n_left,)
            Indices into ``y`` of the two items of each pair.
        same : ndarray of bool of shape (n_left,)
            True for same-class pairs.
        """
        if (
            not isinstance(batch_size, Integral)
            or isinstance(batch_size, bool)
            or batch_size < 1
        ):
            raise ValueError(
                "The 'batch_size' parameter must be an int in the range [1, inf). "
                f"Got {batch_size!r} instead."
            )
        n_batches = self.n_in_ // batch_size
        if not drop_last and self.n_in_ % batch_size:
            n_batches += 1
        if n_batches == 0:
            raise ValueError(
                f"There are only {self.n_in_} in-distribution samples, fewer "
                f"than batch_size={batch_size}; lower batch_size or set "
                "drop_last=False."
            )
        rng = _check_rng(random_state)
        perm = self._order[rng.permutation(self.n_in_)]
        for b in range(n_batches):
            left = perm[b * batch_size : (b + 1) * batch_size]
            right, same = self.sample(left, batch_index=b, random_state=rng)
            yield left, right, same


def sample_pairs(
    y,
    left,
    *,
    similar_ratio: float = 0.25,
    ood_ratio: float = 0.25,
    ood_every: int = 2,
    batch_index: int = 0,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw right partners for one batch of left items (see :class:`PairSampler`).

    Parameters
    ----------
    y : array-like of int of shape (n_samples,)
        Training labels, ``-1`` for known OOD samples.
    left : array-like of int of shape (n_left,)
        Indices into ``y`` of in-distribution items.
    similar_ratio : float, default=0.25
        As in :class:`PairSampler`.
    ood_ratio : float, default=0.25
        As in :class:`PairSampler`.
    ood_every : int, default=2
        As in :class:`PairSampler`.
    batch_index : int, default=0
        Position of the batch in the epoch (OOD batches: 1, 3, 5, ... by
        default).
    random_state : int, RandomState, Generator or None, default=None
        Source of randomness.

    Returns
    -------
    right : ndarray of int64 of shape (n_left,)
        Indices into ``y`` of the partners.
    same : ndarray of bool of shape (n_left,)
        True for same-class pairs.
    """
    sampler = PairSampler(
        y, similar_ratio=similar_ratio, ood_ratio=ood_ratio, ood_every=ood_every
    )
    return sampler.sample(left, batch_index=batch_index, random_state=random_state)
