"""Tests for MetricLearningDetector (Masana et al. 2018, ML / ODM).

Reference computations embed the images with the fitted ``module_`` directly in
torch and use scipy's ``cdist`` for the nearest class centre; the pairs seen
during training are recorded by an instrumented network and loss.
"""

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import check_random_state

import sklearn_ood._metric_learning as ml_module
from sklearn_ood import MahalanobisDetector, MetricLearningDetector
from sklearn_ood.metrics import auroc, auroc_scorer
from sklearn_ood.nn import ContrastiveLoss, LeNet, VGGEmbedding
from tests._calibration import conformal_threshold

# Tolerances. The reference embeds with the same float32 LeNet in torch, in
# other batches (summation order: relative ~1e-6 of the embedding), and
# computes squared distances in float64 from those embeddings: the scores
# agree to ~1e-6 relative, so rtol=1e-5 (atol 1e-6 for values near zero, and
# 1e-5 of the score scale where a difference cancels).
SIZE = 12  # the smallest image LeNet accepts
N_CLASSES = 3
OOD_MARK = -5.0


def make_data(n_per_class=12, n_ood=12, seed=0, uint8=False):
    """Three classes of 12x12 images with distinct bright squares, plus OOD.

    Pixel (0, 0) of each image encodes its label (``class + 1`` for
    in-distribution images, ``OOD_MARK`` for OOD images) so an instrumented
    network can tell which images a training batch holds.
    """
    rng = np.random.RandomState(seed)
    X, y = [], []
    for k in range(N_CLASSES):
        imgs = rng.rand(n_per_class, SIZE, SIZE) * 0.3
        imgs[:, 4 * k : 4 * k + 4, 2:10] += 0.7
        imgs[:, 0, 0] = k + 1
        X.append(imgs)
        y.append(np.full(n_per_class, k))
    if n_ood:
        ood = rng.rand(n_ood, SIZE, SIZE)
        ood[:, 0, 0] = OOD_MARK
        X.append(ood)
        y.append(np.full(n_ood, -1))
    X, y = np.concatenate(X), np.concatenate(y)
    perm = rng.permutation(len(y))
    X, y = X[perm].astype(np.float32), y[perm]
    if uint8:
        X = np.rint(np.clip(X, 0, 1) * 255).astype(np.uint8)
    return X, y


def fast(**params):
    base = dict(epochs=2, batch_size=16, lr=1e-3, random_state=0, device="cpu")
    base.update(params)
    return MetricLearningDetector(**base)


def embed_by_hand(det, X):
    x = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if np.asarray(X).dtype == np.uint8:
        x = x / 255.0
    if x.ndim == 3:
        x = x[:, None]
    with torch.no_grad():
        return det.module_.eval().forward_features(x).double().numpy()


def fit_part(det, X, y):
    """Row indices (into the in-distribution rows of X) that trained ``det``.

    Reproduces the detector's first draw from its random_state: the holdout
    split of the network detectors (sklearn_ood._network_base).
    """
    y_in = y[y != -1]
    rng = check_random_state(det.random_state)
    fit_idx, hold_idx = det._holdout_split(len(y_in), y_in, rng)
    return fit_idx, hold_idx


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return fast().fit(X, y)


# --------------------------------------------------------------------------
# scores, centres, classification, embedding
# --------------------------------------------------------------------------
def test_scores_equal_nearest_centre_by_hand(data, fitted):
    X, y = data
    det = fitted
    X_in, y_in = X[y != -1], y[y != -1]
    fit_idx, hold_idx = fit_part(det, X, y)
    E_fit = embed_by_hand(det, X_in[fit_idx])
    centres = np.stack([E_fit[y_in[fit_idx] == k].mean(0) for k in range(N_CLASSES)])
    assert_allclose(det.centers_, centres, rtol=1e-5, atol=1e-6)
    assert_array_equal(det.classes_, np.arange(N_CLASSES))

    E = embed_by_hand(det, X)
    expected = -cdist(E, centres, "sqeuclidean").min(axis=1)
    scores = det.score_samples(X)
    assert scores.dtype == np.float64 and scores.shape == (len(X),)
    assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    # float32 embeddings: relative error ~1e-5 of the score scale, also where
    # the difference cancels to ~0 (a row scoring exactly offset_).
    scale = np.abs(expected).max()
    assert_allclose(
        det.decision_function(X), expected - det.offset_, rtol=1e-5, atol=1e-5 * scale
    )

    # offset_: contamination percentile of the held-out images' scores.
    D_hold = cdist(embed_by_hand(det, X_in[hold_idx]), centres, "sqeuclidean")
    assert_allclose(
        det.offset_, conformal_threshold(-D_hold.min(axis=1), 0.025), rtol=1e-5
    )
    # Rows within the score's float32 error of offset_ (a held-out row scores
    # offset_ itself) may fall on either side; compare the others.
    clear = np.abs(expected - det.offset_) > 1e-5 * scale
    pred = det.predict(X)
    assert_array_equal(pred[clear], np.where(expected - det.offset_ < 0, -1, 1)[clear])
    assert pred.dtype.kind == "i"


def test_predict_class_is_nearest_centre_with_string_labels(data):
    X, y = data
    names = np.array(["two", "six", "seven"], dtype=object)
    y_str = np.where(y == -1, -1, names[np.maximum(y, 0)]).astype(object)
    det = fast().fit(X, y_str)
    assert_array_equal(det.classes_, np.sort(names.astype(str)))
    E = embed_by_hand(det, X)
    D = cdist(E, det.centers_, "sqeuclidean")
    assert_allclose(det.class_distances(X), D, rtol=1e-5, atol=1e-6)
    assert_array_equal(det.predict_class(X), det.classes_[D.argmin(axis=1)])


def test_transform_is_the_embedding_and_feeds_mahalanobis(data, fitted):
    X, y = data
    det = fitted
    Z = det.transform(X)
    assert Z.dtype == np.float32 and Z.shape == (len(X), 5)
    assert det.embedding_dim_ == 5
    assert_allclose(Z, embed_by_hand(det, X), rtol=1e-5, atol=1e-6)
    # The Euclidean "tied" Mahalanobis detector on the fit-part embeddings is
    # the same nearest-centre rule.
    X_in, y_in = X[y != -1], y[y != -1]
    fit_idx, _ = fit_part(det, X, y)
    maha = MahalanobisDetector(mode="tied", covariance="identity")
    maha.fit(det.transform(X_in[fit_idx]), y_in[fit_idx])
    assert_allclose(maha.score_samples(Z), det.score_samples(X), rtol=1e-5)


def test_scores_do_not_depend_on_batch_size(data, fitted):
    X, _ = data
    det = clone(fitted).set_params(batch_size=16).fit(*data)
    ref = det.score_samples(X)
    det.set_params(batch_size=5)
    assert_allclose(det.score_samples(X), ref, rtol=1e-5, atol=1e-6)


def test_uint8_images_are_divided_by_255():
    X8, y = make_data(uint8=True)
    Xf = (X8 / 255.0).astype(np.float32)
    a = fast().fit(X8, y)
    b = fast().fit(Xf, y)
    assert_allclose(a.score_samples(X8), b.score_samples(Xf), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        a.score_samples(Xf)


# --------------------------------------------------------------------------
# pair construction inside the real training batches
# --------------------------------------------------------------------------
class RecordingLeNet(LeNet):
    """LeNet that records the labels (pixel (0, 0)) of each training batch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batches = []

    def forward_features(self, x):
        if self.training:
            self.batches.append(x[:, 0, 0, 0].detach().round().long().numpy() - 1)
        return super().forward_features(x)


class RecordingLoss(ContrastiveLoss):
    calls = []

    def forward(self, e1, e2, same):
        RecordingLoss.calls.append((e1.shape[0], same.numpy().copy(), self))
        return super().forward(e1, e2, same)


@pytest.mark.parametrize(
    "batch_size, n_batches_per_epoch", [(1, 32), (16, 4), (24, 2), (64, 1)]
)
def test_ood_only_paired_with_in_distribution(
    data, monkeypatch, batch_size, n_batches_per_epoch
):
    X, y = data
    RecordingLoss.calls = []
    monkeypatch.setattr(ml_module, "ContrastiveLoss", RecordingLoss)
    det = fast(
        network=RecordingLeNet,
        batch_size=batch_size,
        epochs=4,
        margin=3.0,
        squared=True,
    ).fit(X, y)
    batches = det.module_.batches
    n_fit = len(fit_part(det, X, y)[0])
    n_left = max(1, min(batch_size // 2, n_fit))  # at least one pair
    assert len(batches) == 4 * (n_fit // n_left) == 4 * n_batches_per_epoch
    assert len(RecordingLoss.calls) == len(batches)
    ood_code = round(OOD_MARK) - 1
    for b, (labels, (n_pairs, same, crit)) in enumerate(
        zip(batches, RecordingLoss.calls)
    ):
        assert crit.margin == 3.0 and crit.squared is True
        assert n_pairs == n_left and labels.shape == (2 * n_left,)
        left, right = labels[:n_left], labels[n_left:]
        is_ood = right == ood_code
        # OOD images are never left items, so never paired with each other.
        assert np.all(left >= 0)
        assert_array_equal(same, left == right)
        assert not same[is_ood].any()
        assert same.sum() == int(0.25 * n_left)
        # Mining batches 1, 3, 5, ... counted across epochs; 25% of the images.
        expected_ood = int(0.25 * 2 * n_left) if b % 2 == 1 else 0
        assert is_ood.sum() == expected_ood
        assert np.all(is_ood[n_left - expected_ood :])
    # Without -1 labels: plain metric learning, no OOD image ever.
    keep = y != -1
    plain = fast(network=RecordingLeNet, batch_size=batch_size).fit(X[keep], y[keep])
    assert all(np.all(labels >= 0) for labels in plain.module_.batches)


# --------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------
def test_default_network_rule():
    X, y = make_data(n_per_class=4, n_ood=0)
    assert type(fast(epochs=1).fit(X, y).module_) is LeNet
    rng = np.random.RandomState(0)
    X_rgb = rng.rand(12, 32, 32, 3).astype(np.float32)
    y_rgb = np.repeat([0, 1, 2], 4)
    det = fast(epochs=1, network_kwargs={"width": 16}).fit(X_rgb, y_rgb)
    assert type(det.module_) is VGGEmbedding
    assert det.embedding_dim_ == 10 and det.transform(X_rgb).shape == (12, 10)
    det = fast(epochs=1, embedding_dim=3).fit(X, y)
    assert det.module_.feature_dim == 3 and det.centers_.shape == (N_CLASSES, 3)


def test_network_instance_not_modified(data):
    X, y = data
    X_before = X.copy()
    net = LeNet(in_channels=1, input_size=SIZE, feature_dim=4, feature_activation=False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    det = fast(network=net).fit(X, y)
    assert det.network is net and det.module_ is not net
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert det.embedding_dim_ == 4
    assert_array_equal(X, X_before)
    assert len(det.history_) == det.epochs_ == 2
    assert det.history_.stages == ["network", "network"]


# --------------------------------------------------------------------------
# reproducibility, pickling, scikit-learn integration
# --------------------------------------------------------------------------
def test_deterministic_and_independent_of_global_seed(data):
    X, y = data
    with torch.random.fork_rng():
        torch.manual_seed(1)
        state = torch.get_rng_state()
        a = fast().fit(X, y).score_samples(X)
        assert torch.equal(torch.get_rng_state(), state)
        torch.manual_seed(2)
        b = fast().fit(X, y).score_samples(X)
    assert_array_equal(a, b)
    c = fast(random_state=1).fit(X, y).score_samples(X)
    assert not np.allclose(a, c)


def test_joblib_round_trip(tmp_path, data, fitted):
    X, _ = data
    path = tmp_path / "det.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    assert loaded.module_.fc1.weight.device.type == "cpu"
    assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    assert_array_equal(loaded.predict_class(X), fitted.predict_class(X))


def test_pipeline(data, fitted):
    X, y = data
    pipe = Pipeline([("identity", FunctionTransformer()), ("ml", fast())]).fit(X, y)
    assert_array_equal(pipe.score_samples(X), fitted.score_samples(X))
    assert_array_equal(pipe.predict(X), fitted.predict(X))
    # As a transformer feeding another detector (OOD rows, y == -1, are left
    # out of the Mahalanobis fit).
    chain = Pipeline([("ml", fast()), ("maha", MahalanobisDetector(mode="tied"))]).fit(
        X, y
    )
    Z = fitted.transform(X)
    ref = MahalanobisDetector(mode="tied").fit(Z[y != -1], y[y != -1])
    assert_allclose(chain.score_samples(X), ref.score_samples(Z), rtol=1e-6)


def test_grid_search_over_margin(data):
    X, y = data
    cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, y == -1))
    grid = {"margin": [1.0, 10.0]}
    search = GridSearchCV(fast(), grid, scoring=auroc_scorer, cv=cv).fit(X, y)
    for i, margin in enumerate(grid["margin"]):
        expected = []
        for train, test in cv:
            det = fast(margin=margin).fit(X[train], y[train])
            expected.append(auroc(y[test] != -1, det.score_samples(X[test])))
        assert_allclose(search.cv_results_["mean_test_score"][i], np.mean(expected))
    assert search.best_estimator_.margin == search.best_params_["margin"]


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
def test_errors(data, fitted):
    X, y = data
    keep = y != -1
    with pytest.raises(ValueError, match="needs class labels"):
        fast().fit(X[keep])
    with pytest.raises(ValueError, match="at least 2 in-distribution classes"):
        fast().fit(X[keep][y[keep] == 0], y[keep][y[keep] == 0])
    with pytest.raises(ValueError, match="similar_ratio \\+ 2 \\* ood_ratio"):
        fast(similar_ratio=0.75, ood_ratio=0.25).fit(X, y)
    with pytest.raises(ValueError, match="'margin' parameter"):
        fast(margin=0.0).fit(X, y)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        fast(batch_size=0).fit(X, y)
    with pytest.raises(ValueError, match="'ood_ratio' parameter"):
        fast(ood_ratio=0.6).fit(X, y)
    with pytest.raises(ValueError, match="lr_schedule"):
        fast(lr_schedule=(5, 0.1)).fit(X, y)
    with pytest.raises(ValueError, match="embedding_dim"):
        fast(network=torch.nn.Flatten, embedding_dim=3).fit(X, y)
    with pytest.raises(ValueError, match="embedding size twice"):
        fast(embedding_dim=3, network_kwargs={"feature_dim": 4}).fit(X, y)
    with pytest.raises(ValueError, match="2-D embedding"):
        fast(network=torch.nn.Identity).fit(X, y)
    with pytest.raises(ValueError, match="2-D matrix"):
        fast().fit(X.reshape(len(X), -1), y)
    with pytest.raises(NotFittedError):
        fast().score_samples(X)
    with pytest.raises(NotFittedError):
        fast().predict_class(X)
    with pytest.raises(ValueError, match="shape"):
        fitted.score_samples(X[:, :10, :10])
    with pytest.raises(ValueError, match="same length"):
        fast().fit(X, y[:-1])
