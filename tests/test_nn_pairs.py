"""Tests for sklearn_ood.nn._pairs (Masana et al.'s epoch_batches)."""

import numpy as np
import pytest

from sklearn_ood.nn._pairs import PairSampler, sample_pairs


def make_labels():
    # Classes 0..3 of unequal sizes, class 7 with a single sample (labels need
    # not be contiguous), and 40 OOD samples (-1), shuffled.
    y = np.concatenate(
        [np.repeat([0, 1, 2, 3], [30, 10, 20, 12]), [7], np.full(40, -1)]
    )
    return np.random.default_rng(42).permutation(y)


@pytest.fixture
def y():
    return make_labels()


def in_dist(y):
    return np.flatnonzero(y >= 0)


def check_batch(y, left, right, same, n_sim, n_dis, n_ood):
    n = len(left)
    assert right.shape == same.shape == (n,) and right.dtype == np.int64
    assert n == n_sim + n_dis + n_ood
    # Left items are never OOD, so OOD-OOD pairs cannot exist.
    assert (y[left] >= 0).all()
    # Similar pairs first, with equal labels.
    assert same[:n_sim].all() and not same[n_sim:].any()
    np.testing.assert_array_equal(y[right[:n_sim]], y[left[:n_sim]])
    # In-in dissimilar pairs: in-distribution partners with another label.
    dis = slice(n_sim, n_sim + n_dis)
    assert (y[right[dis]] >= 0).all()
    assert (y[right[dis]] != y[left[dis]]).all()
    # OOD partners: exactly the last n_ood pairs, all dissimilar.
    assert (y[right[n - n_ood :]] == -1).all()
    assert int((y[right] == -1).sum()) == n_ood
    # The flags agree with the labels.
    np.testing.assert_array_equal(same, y[left] == y[right])


def test_counts_on_normal_and_ood_batches(y):
    sampler = PairSampler(y)
    left = in_dist(y)[:16]
    for b in range(6):
        right, same = sampler.sample(left, batch_index=b, random_state=b)
        if b % 2 == 1:
            # 25% of the 32 slots = 8 OOD partners; 4 similar; 4 in-in.
            assert sampler.counts(16, b) == (4, 4, 8)
            check_batch(y, left, right, same, 4, 4, 8)
        else:
            assert sampler.counts(16, b) == (4, 12, 0)
            check_batch(y, left, right, same, 4, 12, 0)


def test_paper_batch_of_512_pairs():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.integers(0, 10, 2000), np.full(600, -1)])
    sampler = PairSampler(y)
    left = rng.permutation(np.flatnonzero(y >= 0))[:512]
    right, same = sampler.sample(left, batch_index=1, random_state=0)
    # 1024 slots: 128 similar, 128 in-in dissimilar, last 256 slots OOD.
    check_batch(y, left, right, same, 128, 128, 256)
    # 256 <= 600 OOD samples: drawn without replacement.
    assert len(np.unique(right[256:])) == 256
    right, same = sampler.sample(left, batch_index=2, random_state=0)
    check_batch(y, left, right, same, 128, 384, 0)


def test_ood_every_three():
    y = make_labels()
    sampler = PairSampler(y, ood_every=3)
    ood_batches = [b for b in range(9) if sampler.is_ood_batch(b)]
    assert ood_batches == [2, 5, 8]
    every = PairSampler(y, ood_every=1)
    assert all(every.is_ood_batch(b) for b in range(5))


def test_no_ood_samples_means_no_injection():
    y = np.repeat([0, 1, 2], 10)
    sampler = PairSampler(y)
    assert not sampler.is_ood_batch(1)
    right, same = sampler.sample(np.arange(12), batch_index=1, random_state=0)
    check_batch(y, np.arange(12), right, same, 3, 9, 0)


def test_singleton_class_pairs_with_itself(y):
    idx7 = int(np.flatnonzero(y == 7)[0])
    left = np.full(5, idx7)
    right, same = PairSampler(y, similar_ratio=1.0).sample(left, random_state=0)
    np.testing.assert_array_equal(right, left)
    assert same.all()


def test_one_class_only():
    y = np.concatenate([np.zeros(6, dtype=int), np.full(3, -1)])
    with pytest.raises(ValueError, match="at least two in-distribution classes"):
        PairSampler(y).sample(np.arange(4), random_state=0)
    # All-similar batches need no other class.
    right, same = PairSampler(y, similar_ratio=1.0).sample(np.arange(4), random_state=0)
    assert same.all() and (y[right] == 0).all()


def test_similar_partners_uniform_over_whole_class(y):
    # Drawn from the whole training set's samples of the class, the item
    # itself included: every member of class 1 (10 samples) appears, with
    # frequencies close to 1/10.
    members = np.flatnonzero(y == 1)
    left = np.full(20000, members[0])
    right, _ = PairSampler(y, similar_ratio=1.0).sample(left, random_state=1)
    freq = np.bincount(right, minlength=len(y))[members] / len(left)
    np.testing.assert_allclose(freq, 0.1, atol=0.01)
    assert set(right) == set(members)


def test_dissimilar_partners_uniform_over_other_samples(y):
    # Uniform over the *samples* of the other classes (not over classes), as
    # random.sample(indx_no_cls[m], 1) in the authors' code.
    left = np.full(30000, np.flatnonzero(y == 0)[0])
    right, _ = PairSampler(y, similar_ratio=0.0).sample(left, random_state=2)
    others = np.flatnonzero((y >= 0) & (y != 0))  # 10 + 20 + 12 + 1 = 43
    assert set(right) == set(others)
    freq = np.bincount(right, minlength=len(y))[others] / len(left)
    np.testing.assert_allclose(freq, 1 / 43, atol=0.004)
    by_class = {c: np.mean(y[right] == c) for c in (1, 2, 3, 7)}
    np.testing.assert_allclose(
        [by_class[c] for c in (1, 2, 3, 7)], np.array([10, 20, 12, 1]) / 43, atol=0.01
    )


def test_determinism_and_generator_types(y):
    sampler = PairSampler(y)
    left = in_dist(y)[:20]
    r1, s1 = sampler.sample(left, batch_index=1, random_state=3)
    r2, s2 = sampler.sample(left, batch_index=1, random_state=3)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(s1, s2)
    r3, _ = sampler.sample(left, batch_index=1, random_state=4)
    assert not np.array_equal(r1, r3)
    for rs in (np.random.RandomState(0), np.random.default_rng(0)):
        right, same = sampler.sample(left, batch_index=1, random_state=rs)
        check_batch(y, left, right, same, 5, 5, 10)
    rf, sf = sample_pairs(y, left, batch_index=1, random_state=3)
    np.testing.assert_array_equal(rf, r1)
    np.testing.assert_array_equal(sf, s1)


def test_inputs_not_mutated(y):
    y_copy = y.copy()
    left = in_dist(y)[:8]
    left_copy = left.copy()
    sampler = PairSampler(y)
    sampler.sample(left, batch_index=1, random_state=0)
    list(sampler.epoch(8, random_state=0))
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(left, left_copy)


def test_ood_drawn_with_replacement_when_few():
    y = np.concatenate([np.repeat([0, 1], 20), [-1, -1]])
    right, same = PairSampler(y).sample(np.arange(16), batch_index=1, random_state=0)
    check_batch(y, np.arange(16), right, same, 4, 4, 8)
    assert set(right[8:]) <= {40, 41}


def test_epoch(y):
    sampler = PairSampler(y)
    batches = list(sampler.epoch(16, random_state=0))
    n_in = int((y >= 0).sum())  # 73
    assert len(batches) == n_in // 16 == 4
    lefts = np.concatenate([b[0] for b in batches])
    # A permutation of the in-distribution set, the remainder dropped.
    assert len(np.unique(lefts)) == len(lefts) == 64
    assert (y[lefts] >= 0).all()
    for b, (left, right, same) in enumerate(batches):
        n_ood = 8 if b % 2 == 1 else 0
        check_batch(y, left, right, same, 4, 12 - n_ood, n_ood)
    again = list(sampler.epoch(16, random_state=0))
    for a, b in zip(batches, again):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    full = list(sampler.epoch(16, random_state=0, drop_last=False))
    assert len(full) == 5 and len(full[-1][0]) == 73 - 64
    assert len(np.unique(np.concatenate([b[0] for b in full]))) == 73
    with pytest.raises(ValueError, match="fewer than batch_size"):
        list(sampler.epoch(100, random_state=0))
    with pytest.raises(ValueError, match="batch_size"):
        list(sampler.epoch(0))


def test_empty_left(y):
    right, same = PairSampler(y).sample(np.array([], dtype=int), random_state=0)
    assert right.shape == same.shape == (0,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"similar_ratio": 1.5}, "similar_ratio"),
        ({"ood_ratio": 0.6}, "ood_ratio"),
        ({"ood_ratio": -0.1}, "ood_ratio"),
        ({"ood_every": 0}, "ood_every"),
        ({"ood_every": 2.0}, "ood_every"),
    ],
)
def test_bad_parameters(y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PairSampler(y, **kwargs)


def test_bad_inputs(y):
    with pytest.raises(ValueError, match="integer labels"):
        PairSampler(y.astype(float))
    with pytest.raises(ValueError, match="-1 for OOD"):
        PairSampler(np.array([0, 1, -2]))
    sampler = PairSampler(y)
    ood = np.flatnonzero(y == -1)[:1]
    with pytest.raises(ValueError, match="in-distribution samples only"):
        sampler.sample(np.concatenate([in_dist(y)[:3], ood]), random_state=0)
    with pytest.raises(ValueError, match=r"indices in \[0, 113\)"):
        sampler.sample(np.array([0, 113]), random_state=0)
    with pytest.raises(ValueError, match="1-d array of integer"):
        sampler.sample(np.array([0.0, 1.0]), random_state=0)
    # 0.5 similar + 2 * 0.3 OOD > 1: the batch cannot hold both.
    bad = PairSampler(y, similar_ratio=0.5, ood_ratio=0.3)
    with pytest.raises(ValueError, match="similar_ratio \\+ 2 \\* ood_ratio"):
        bad.sample(in_dist(y)[:10], batch_index=1, random_state=0)
