"""Tests of CenterLossDetector against independent NumPy / torch computations."""

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ood import CenterLossDetector
from sklearn_ood.metrics import auroc, auroc_scorer
from sklearn_ood.nn import LeNet, torch_threads
from tests._calibration import conformal_threshold

SIZE = 12
# Linear 4-d features keep every class covariance full rank, so the reference
# below can invert it with np.linalg.inv (no eigenvalue floor involved).
SMALL_NET = {"feature_dim": 4, "feature_activation": False}


def _images(rng, labels, size=SIZE):
    """Grey images whose class shows as a bright band at a class-specific row."""
    X = 0.3 * rng.rand(len(labels), size, size)
    for k in np.unique(labels):
        rows = slice(3 * int(k), 3 * int(k) + 3)
        X[labels == k, rows, :] += 0.7
    return X.astype(np.float32)


def _anomalies(rng, n, size=SIZE):
    """Vertical bands: no in-distribution class looks like this."""
    X = 0.3 * rng.rand(n, size, size)
    X[:, :, 4:8] += 0.7
    return X.astype(np.float32)


def _detector(**params):
    base = {
        "epochs": 3,
        "batch_size": 16,
        "lr": 1e-2,
        "device": "cpu",
        "random_state": 0,
        "network_kwargs": SMALL_NET,
    }
    return CenterLossDetector(**{**base, **params})


def _to_unit(X):
    return X / 255.0


def _reference_features(module, X):
    with torch.no_grad():
        features, logits = module.eval()(torch.as_tensor(X)[:, None])
    return features.double().numpy(), logits.double().numpy()


def _reference_distances(F_train, y_train, F_query):
    """D_c = sqrt((f - mu_c)' S_c^-1 (f - mu_c)) with the MLE covariance."""
    D = np.empty((F_query.shape[0], len(np.unique(y_train))))
    for k, c in enumerate(np.unique(y_train)):
        Fc = F_train[y_train == c]
        mu = Fc.mean(axis=0)
        S = np.cov(Fc, rowvar=False, bias=True)
        R = F_query - mu
        D[:, k] = np.sqrt(np.einsum("ij,jk,ik->i", R, np.linalg.inv(S), R))
    return D


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny networks: one thread avoids oversubscribing a shared CPU; restored.
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], 30)
    X = _images(rng, y)
    y_test = np.repeat([0, 1, 2], 10)
    X_test = np.concatenate([_images(rng, y_test), _anomalies(rng, 30)])
    return X, y, X_test


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _ = data
    return _detector(decision="paper").fit(X, y)


def _fit_rows(det, y):
    """(fit, held-out) rows: the first draw from the detector's random state."""
    return det._holdout_split(len(y), y, check_random_state(det.random_state))


# Tolerances: the reference recomputes float32 LeNet features in torch (same
# module, another batch size: float32 rounding, ~1e-6 relative) and inverts
# full-rank 4x4 class covariances with np.linalg.inv, while the detector uses
# MahalanobisDetector's eigendecomposition: both are float64 with condition
# numbers below 1e4 here, so the distances agree to ~1e-6 relative; rtol=1e-4
# leaves room for the float32 features.


# ------------------------------------------------------------ the paper's rule
def test_thresholds_are_squared_per_class_percentiles(data, fitted):
    X, y, _ = data
    fit_idx, _ = _fit_rows(fitted, y)
    F_fit, _ = _reference_features(fitted.module_, X[fit_idx])
    y_fit = y[fit_idx]
    D = _reference_distances(F_fit, y_fit, F_fit)
    theta = [np.percentile(D[y_fit == c, k], 97.5) for k, c in enumerate([0, 1, 2])]
    # thresholds_ are theta_c**2, in the unit of class_distances (squared)
    assert_allclose(fitted.thresholds_, np.square(theta), rtol=1e-4)
    assert_array_equal(fitted.classes_, [0, 1, 2])
    # The statistics are MahalanobisDetector's, fitted on these features.
    assert_allclose(
        fitted.mahalanobis_.means_,
        [F_fit[y_fit == c].mean(axis=0) for c in (0, 1, 2)],
        rtol=1e-5,
        atol=1e-6,
    )


def test_quantile_parameter(data):
    X, y, _ = data
    det = _detector(quantile=0.5).fit(X, y)
    fit_idx, _ = _fit_rows(det, y)
    F_fit, _ = _reference_features(det.module_, X[fit_idx])
    y_fit = y[fit_idx]
    D = _reference_distances(F_fit, y_fit, F_fit)
    expected = [np.median(D[y_fit == c, k]) for k, c in enumerate([0, 1, 2])]
    assert_allclose(det.thresholds_, np.square(expected), rtol=1e-4)


def test_shrinkage_covariance_is_forwarded(data, fitted):
    X, y, X_test = data
    det = _detector(covariance="ledoit_wolf", decision="paper").fit(X, y)
    # The network does not depend on the covariance estimate.
    for a, b in zip(det.module_.parameters(), fitted.module_.parameters()):
        assert torch.equal(a, b)
    fit_idx, _ = _fit_rows(det, y)
    F_fit, _ = _reference_features(det.module_, X[fit_idx])
    y_fit = y[fit_idx]
    F_test, _ = _reference_features(det.module_, X_test)
    D, D_test = [], []
    for c in (0, 1, 2):
        lw = LedoitWolf().fit(F_fit[y_fit == c])
        D.append(np.sqrt(lw.mahalanobis(F_fit[y_fit == c])))
        D_test.append(lw.mahalanobis(F_test))  # squared, as class_distances
    theta = [np.percentile(d, 97.5) for d in D]
    assert_allclose(det.thresholds_, np.square(theta), rtol=1e-4)
    assert_allclose(det.class_distances(X_test), np.stack(D_test, 1), rtol=1e-4)


def test_decision_paper_is_the_or_rule(data, fitted):
    X, y, X_test = data
    fit_idx, _ = _fit_rows(fitted, y)
    F_fit, _ = _reference_features(fitted.module_, X[fit_idx])
    y_fit = y[fit_idx]
    F_test, _ = _reference_features(fitted.module_, X_test)
    D_fit = _reference_distances(F_fit, y_fit, F_fit)
    theta = np.array([np.percentile(D_fit[y_fit == c, c], 97.5) for c in (0, 1, 2)])
    D = _reference_distances(F_fit, y_fit, F_test)
    inlier = (D <= theta).any(axis=1)
    assert 0 < inlier.sum() < len(inlier)  # both outcomes occur
    assert fitted.offset_ == 0.0
    assert_array_equal(fitted.predict(X_test), np.where(inlier, 1, -1))
    assert_allclose(fitted.class_distances(X_test), D**2, rtol=1e-4)
    # fit_predict applies the same rule to the training images
    assert_array_equal(clone(fitted).fit_predict(X, y), fitted.predict(X))


def test_score_is_normalised_distance_with_or_sign(data, fitted):
    _, _, X_test = data
    D2 = fitted.class_distances(X_test)
    scores = fitted.score_samples(X_test)
    assert scores.dtype == np.float64
    assert_allclose(scores, np.max(1.0 - np.sqrt(D2 / fitted.thresholds_), axis=1))
    assert_array_equal(scores >= 0, (D2 <= fitted.thresholds_).any(axis=1))
    assert_array_equal(fitted.decision_function(X_test), scores)
    # Anomalies (the last 30 rows) score lower than new in-distribution images.
    y_true = np.r_[np.ones(30), -np.ones(30)]
    assert auroc(y_true, scores) > 0.9


@pytest.mark.parametrize("contamination", ["auto", 0.2])
def test_contamination_uses_held_out_scores(data, contamination):
    X, y, _ = data
    det = _detector(contamination=contamination, validation_fraction=0.2).fit(X, y)
    # The holdout split is the first draw from the detector's random state.
    fit_idx, hold_idx = det._holdout_split(len(X), y, check_random_state(0))
    assert len(hold_idx) == 18
    held = det.score_samples(X[hold_idx])
    assert_allclose(np.sort(det.calibration_scores_), np.sort(held))
    assert_allclose(det.offset_, conformal_threshold(held, contamination))
    F_fit, _ = _reference_features(det.module_, X[fit_idx])
    D = _reference_distances(F_fit, y[fit_idx], F_fit)
    y_fit = y[fit_idx]
    expected = [np.percentile(D[y_fit == c, c], 97.5) for c in (0, 1, 2)]
    assert_allclose(det.thresholds_, np.square(expected), rtol=1e-4)
    scores = det.score_samples(X)
    assert_array_equal(det.predict(X), np.where(scores >= det.offset_, 1, -1))


def test_default_lenet_on_uint8(data):
    X, y, _ = data
    X8 = np.round(X / X.max() * 255).astype(np.uint8)
    det = _detector(network_kwargs=None, epochs=1).fit(X8, y)
    assert isinstance(det.module_, LeNet)
    assert det.module_.feature_dim == 84
    F_ref, _ = _reference_features(det.module_, X8.astype(np.float32) / 255.0)
    assert_allclose(det.transform(X8), F_ref, rtol=1e-5, atol=1e-6)
    assert det.centers_.shape == (3, 84)
    assert np.all(np.isfinite(det.score_samples(X8[:5])))
    with pytest.raises(ValueError, match="uint8"):
        det.score_samples(X8[:5].astype(np.float32))


# --------------------------------------------------------------- classifier
def test_classifier_is_reachable(data, fitted):
    X, y, _ = data
    labels = np.array(["a", "b", "c"])[y]
    det = _detector().fit(X, labels)
    _, logits = _reference_features(det.module_, X)
    proba = det.predict_class_proba(X)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert_allclose(proba, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert_array_equal(det.predict_class(X), det.classes_[logits.argmax(axis=1)])
    assert (det.predict_class(X) == labels).mean() > 0.9
    F_ref, _ = _reference_features(det.module_, X)
    assert_allclose(det.transform(X), F_ref, rtol=1e-5, atol=1e-6)


def test_center_loss_weight_changes_training(data):
    X, y, _ = data
    plain = _detector(center_loss_weight=0.0).fit(X, y)
    center = _detector(center_loss_weight=1.0).fit(X, y)
    # Same seed: the first epoch loss differs only by lambda * L_C > 0.
    assert center.history_[0] > plain.history_[0]
    # The centers follow the features of their class (Wen et al.'s update).
    F_ref, _ = _reference_features(center.module_, X)
    means = np.stack([F_ref[y == c].mean(axis=0) for c in (0, 1, 2)])
    spread = np.linalg.norm(means[:, None] - means[None], axis=-1).max()
    assert np.abs(center.centers_ - means).max() < 0.5 * spread


# ------------------------------------------------------------------- labels
def test_y_none_and_single_class_raise(data):
    X, y, _ = data
    with pytest.raises(ValueError, match=r"at least 2 classes.*y=None"):
        _detector().fit(X)
    with pytest.raises(ValueError, match="at least 2 classes"):
        _detector().fit(X, np.zeros(len(X), dtype=int))
    y_small = y.copy()
    y_small[0] = 7
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        _detector().fit(X, y_small)


def test_outliers_are_ignored_by_mahalanobis_head(data, fitted):
    X, y, X_test = data
    rng = np.random.RandomState(1)
    X_out = _anomalies(rng, 10)
    det = _detector().fit(np.concatenate([X, X_out]), np.r_[y, -np.ones(10, int)])
    assert det.head_ is None
    assert_allclose(det.score_samples(X_test), fitted.score_samples(X_test))


def test_mlp_head_needs_outliers(data):
    X, y, _ = data
    with pytest.raises(ValueError, match=r"head='mlp'.*-1"):
        _detector(head="mlp").fit(X, y)


def test_mlp_head_ranks_in_above_out(data):
    X, y, X_test = data
    rng = np.random.RandomState(2)
    X_out = _anomalies(rng, 60)
    det = _detector(head="mlp", head_epochs=10, decision="paper").fit(
        np.concatenate([X, X_out]), np.r_[y, -np.ones(60, int)]
    )
    scores = det.score_samples(X_test)
    # The score is the head's logit on the deep features.
    with torch.no_grad():
        logits = det.head_(torch.as_tensor(det.transform(X_test))).double().numpy()
    assert_allclose(scores, logits, rtol=1e-5, atol=1e-6)
    assert det.offset_ == 0.0  # sigmoid >= 0.5
    assert_array_equal(det.predict(X_test), np.where(logits >= 0, 1, -1))
    y_true = np.r_[np.ones(30), -np.ones(30)]
    assert auroc(y_true, scores) > 0.95
    assert scores[:30].mean() > scores[30:].mean()
    head = det.history_.stage("head")
    assert len(head) == 10 and head[-1] < head[0]
    assert len(det.history_.stage("network")) == det.epochs_ == 3


# ---------------------------------------------------------- estimator rules
def test_pickle_round_trip(tmp_path, data, fitted):
    _, _, X_test = data
    path = tmp_path / "det.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    assert_array_equal(loaded.score_samples(X_test), fitted.score_samples(X_test))
    assert_array_equal(loaded.predict_class(X_test), fitted.predict_class(X_test))
    assert next(loaded.module_.parameters()).device.type == "cpu"


def test_determinism_and_global_torch_state(data, fitted):
    X, y, X_test = data
    reference = fitted.score_samples(X_test)
    with torch.random.fork_rng():
        torch.manual_seed(123)
        before = torch.get_rng_state()
        again = _detector().fit(X, y)
        assert torch.equal(before, torch.get_rng_state())
        torch.manual_seed(456)
        third = _detector().fit(X, y)
    assert_array_equal(again.score_samples(X_test), reference)
    assert_array_equal(third.score_samples(X_test), reference)
    other = _detector(random_state=1).fit(X, y)
    assert not np.allclose(other.score_samples(X_test), reference)


def test_scores_do_not_depend_on_batch_size(data, fitted):
    _, _, X_test = data
    det = clone(fitted).set_params(batch_size=7)
    det.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    det._input_info = fitted._input_info
    # Convolutions may sum in another order for another batch size: float
    # rounding only.
    assert_allclose(
        det.score_samples(X_test), fitted.score_samples(X_test), rtol=1e-4, atol=1e-4
    )


def test_pipeline_and_grid_search(data):
    X, y, X_test = data
    rng = np.random.RandomState(3)
    X_all = np.concatenate([X, 255 * _anomalies(rng, 20)]).astype(np.float32)
    X_all[: len(X)] *= 255
    y_all = np.r_[y, -np.ones(20, int)]
    pipe = Pipeline(
        [("scale", FunctionTransformer(_to_unit)), ("det", _detector(epochs=2))]
    )
    cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X_all, y_all))
    search = GridSearchCV(
        pipe, {"det__center_loss_weight": [0.0, 1.0]}, scoring=auroc_scorer, cv=cv
    ).fit(X_all, y_all)
    assert search.cv_results_["params"][1] == {"det__center_loss_weight": 1.0}
    train, test = cv[0]
    manual = clone(pipe).set_params(det__center_loss_weight=1.0)
    manual.fit(X_all[train], y_all[train])
    expected = auroc(
        np.where(y_all[test] == -1, -1, 1), manual.score_samples(X_all[test])
    )
    assert_allclose(search.cv_results_["split0_test_score"][1], expected)
    assert search.best_estimator_.predict(255 * X_test).shape == (len(X_test),)


def test_inputs_and_network_instance_not_modified(data):
    X, y, _ = data
    X_copy, y_copy = X.copy(), y.copy()
    net = LeNet(num_classes=3, input_size=SIZE, **SMALL_NET)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    det = _detector(network=net, network_kwargs=None, epochs=1).fit(X, y)
    assert det.module_ is not net
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])
    assert_array_equal(X, X_copy)
    assert_array_equal(y, y_copy)


class _TwoOutputs(torch.nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = torch.nn.Linear(SIZE * SIZE, 4)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        f = self.features(x.flatten(1))
        return f, self.fc(f)


def test_network_class_arguments(data):
    X, y, _ = data
    # A LeNet class gets the arguments derived from the data, then
    # network_kwargs.
    det = _detector(network=LeNet, network_kwargs={"feature_dim": 5}, epochs=1)
    det.fit(X, y)
    assert det.centers_.shape == (3, 5) and det.module_.fc3.out_features == 3
    # Another class gets network_kwargs only.
    det = _detector(network=_TwoOutputs, network_kwargs={"num_classes": 3}, epochs=1)
    assert det.fit(X, y).centers_.shape == (3, 4)
    with pytest.raises(ValueError, match=r"logits for 10 classes.*3 classes"):
        _detector(network=_TwoOutputs, network_kwargs=None).fit(X, y)


class _LogitsOnly(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(SIZE * SIZE, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_network_must_return_features_and_logits(data):
    X, y, _ = data
    with pytest.raises(TypeError, match=r"tuple \(features, logits\)"):
        _detector(network=_LogitsOnly, network_kwargs=None).fit(X, y)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"center_loss_weight": -1.0}, "center_loss_weight"),
        ({"center_lr": 1.5}, "center_lr"),
        ({"quantile": 0.0}, "quantile"),
        ({"covariance": "identity"}, "covariance"),
        ({"head": "svm"}, "head"),
        ({"epochs": 0}, "epochs"),
        ({"contamination": 0.7}, "contamination"),
        ({"center_loss_reduction": "max"}, "center_loss_reduction"),
        ({"network": "lenet"}, "network"),
    ],
)
def test_invalid_parameters(data, params, name):
    X, y, _ = data
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        _detector(**params).fit(X, y)


def test_bad_input(data, fitted):
    X, y, _ = data
    with pytest.raises(ValueError, match="shape"):
        fitted.score_samples(np.zeros((2, SIZE + 4, SIZE + 4), np.float32))
    with pytest.raises(ValueError, match="Images are expected"):
        fitted.score_samples(X.reshape(len(X), -1))
    with pytest.raises(ValueError, match="NaN"):
        bad = X.copy()
        bad[0, 0, 0] = np.nan
        _detector().fit(bad, y)
    with pytest.raises(ValueError, match="network_kwargs"):
        _detector(network=LeNet(num_classes=3, input_size=SIZE)).fit(X, y)


def test_fit_does_not_change_parameters(data):
    X, y, _ = data
    est = _detector(network_kwargs=dict(SMALL_NET))
    params = dict(est.get_params())
    est.fit(X, y)
    assert est.get_params() == params
    assert est.network_kwargs == SMALL_NET
