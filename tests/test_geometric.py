"""Tests of DirichletTransformDetector against hand computations with its network.

The transformations themselves (each one and their order) are tested in
tests/test_nn_transforms.py; here the hand computations use NumPy's fliplr /
rot90 on the flip x rot90 set, independently of GeometricTransformations.
"""

import copy
import math
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import check_random_state
from torch import nn

from sklearn_ood import DirichletTransformDetector
from sklearn_ood.base import CalibrationWarning
from sklearn_ood.metrics import get_ood_scorer
from sklearn_ood.nn import WideResNet, torch_threads
from sklearn_ood.nn._transforms import GeometricTransformations
from sklearn_ood.stats import dirichlet_mle
from tests._calibration import conformal_threshold

# Tolerances. The hand computations run the same float32 network in torch on
# other batches (another batch size changes the summation order of the
# convolutions: float32 rounding, relative ~1e-6 of the logits) and take the
# softmax and logs in float64, where the detector takes the softmax in float32
# (relative error a few eps32 ~ 1e-7 per probability). A Dirichlet score sums
# T * K terms (alpha - 1) log q with |log q| <= ~30: its error is bounded by
# ~1e-6 * sum |alpha - 1| |log q|, i.e. ~1e-5 of the score's scale, hence
# atol = 1e-5 * max|score| (rtol 1e-5 where values stay away from zero).
# Probabilities are compared at atol 1e-6 (float32 softmax vs float64).
N_TRAIN = 30
SMALL = dict(
    transformations="flip_rot8",
    network_kwargs={"widen_factor": 1},
    epochs=1,
    batch_size=32,
    device="cpu",
    random_state=0,
)


class Recorder(nn.Module):
    """A linear network that records its inputs in eval mode."""

    def __init__(self, in_features: int, n_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_features, n_out)
        self.seen: list = []

    def forward(self, x):
        if not self.training:
            self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


class Linear8(nn.Module):
    def __init__(self, n_out: int = 8, side: int = 8) -> None:
        super().__init__()
        self.lin = nn.Linear(side * side, n_out)

    def forward(self, x):
        return self.lin(x.flatten(1))


def _images(n, side=8, seed=0):
    return (
        check_random_state(seed).randint(0, 256, size=(n, side, side)).astype(np.uint8)
    )


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The CI machine is shared: one thread avoids oversubscription (restored after).
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    return _images(N_TRAIN, seed=0), _images(10, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    return DirichletTransformDetector(**SMALL).fit(data[0])


def _hand_flip_rot8(x_nchw):
    """The 8 transformations (flip, k) in index 4*flip + k, with NumPy."""
    out = []
    for flip in (False, True):
        base = x_nchw[..., ::-1] if flip else x_nchw
        for k in range(4):
            out.append(np.ascontiguousarray(np.rot90(base, k, axes=(2, 3))))
    return out


def _hand_proba(det, X_uint8, head=0):
    """Softmax (float64) of the fitted network on every transformed copy."""
    x = (2.0 * (X_uint8.astype(np.float32) / 255.0) - 1.0)[:, None]
    probs = []
    with torch.no_grad():
        for xt in _hand_flip_rot8(x):
            out = det.module_(torch.from_numpy(xt))
            out = out[head] if isinstance(out, tuple) else out
            probs.append(softmax(out.numpy().astype(np.float64), axis=1))
    return np.stack(probs)


def _hand_dirichlet_score(alpha, P):
    logs = np.log(np.clip(P, 1e-12, 1.0))
    return np.mean([logs[t] @ (alpha[t] - 1.0) for t in range(len(alpha))], axis=0)


def _split(n, seed=0):
    return DirichletTransformDetector(validation_fraction=0.1)._holdout_split(
        n, None, check_random_state(seed)
    )


# ----------------------------------------------------------------- preprocessing
@pytest.mark.parametrize(
    "pad_to, pads", [("auto", (2, 2)), (None, (0, 0)), (31, (1, 2)), (28, (0, 0))]
)
def test_scaling_and_padding_by_hand(pad_to, pads):
    X = _images(5, side=28, seed=3)
    side = 28 + sum(pads)
    net = Recorder(side * side, 2)
    det = DirichletTransformDetector(
        transformations="intuition_flip",
        pad_to=pad_to,
        network=net,
        epochs=1,
        batch_size=64,
        device="cpu",
        random_state=0,
    ).fit(X)
    assert det.input_shape_ == (1, side, side)
    padded = np.pad(X, ((0, 0), pads, pads)).astype(np.float32)  # raw zeros
    expected = (2.0 * (padded / 255.0) - 1.0)[:, None]
    for X_in in (X, X.astype(np.float64) / 255.0):  # uint8, and floats in [0, 1]
        det_in = det if X_in is X else clone(det).fit(X_in)
        det_in.module_.seen.clear()
        det_in.score_samples(X_in)
        identity, flipped = (s.numpy() for s in det_in.module_.seen)
        np.testing.assert_allclose(identity, expected, atol=1e-6)
        np.testing.assert_allclose(flipped, expected[..., ::-1], atol=1e-6)
    assert net.seen == []  # the user's instance was copied, never used


def test_float_outside_unit_interval_warns():
    X = _images(6).astype(np.float32)  # 0..255 as floats
    det = DirichletTransformDetector(**{**SMALL, "transformations": "intuition_flip"})
    with pytest.warns(UserWarning, match=r"assumed to lie in \[0, 1\]"):
        det.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 6 images leave too few calibration scores for 2.5%: that warning is
        # expected here, the range warning is not.
        warnings.simplefilter("ignore", CalibrationWarning)
        clone(det).fit(X / 255.0)


def test_channels_last_and_first_give_same_scores():
    rng = check_random_state(0)
    X = rng.randint(0, 256, size=(12, 8, 8, 3)).astype(np.uint8)
    det = DirichletTransformDetector(**SMALL)
    s_hwc = clone(det).fit(X).score_samples(X)
    s_chw = (
        clone(det).fit(X.transpose(0, 3, 1, 2)).score_samples(X.transpose(0, 3, 1, 2))
    )
    np.testing.assert_array_equal(s_hwc, s_chw)


# ------------------------------------------------------------ Dirichlet and scores
def test_alpha_is_dirichlet_mle_of_training_softmax(data, fitted):
    X, _ = data
    fit_idx, _ = _split(N_TRAIN)
    P = _hand_proba(fitted, X[fit_idx])
    assert fitted.alpha_.shape == (8, 8)
    np.testing.assert_allclose(fitted.alpha_, dirichlet_mle(P), rtol=1e-4)


def test_dirichlet_scores_by_hand(data, fitted):
    _, X_test = data
    expected = _hand_dirichlet_score(fitted.alpha_, _hand_proba(fitted, X_test))
    # float32 softmax in the detector, float64 here: compare at 1e-5 of the scale.
    tol = 1e-5 * np.abs(expected).max()
    np.testing.assert_allclose(fitted.score_samples(X_test), expected, atol=tol)
    np.testing.assert_allclose(
        fitted.decision_function(X_test), expected - fitted.offset_, atol=tol
    )
    proba = fitted.transformation_proba(X_test)
    assert proba.shape == (8, 10, 8) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, _hand_proba(fitted, X_test), atol=1e-6)


def test_offset_is_held_out_percentile(data, fitted):
    X, _ = data
    _, hold_idx = _split(N_TRAIN)
    held = _hand_dirichlet_score(fitted.alpha_, _hand_proba(fitted, X[hold_idx]))
    assert len(hold_idx) == 3
    np.testing.assert_allclose(
        fitted.offset_, conformal_threshold(held, 0.025), rtol=1e-5
    )


def test_simplified_score_by_hand(data, fitted):
    X, X_test = data
    det = DirichletTransformDetector(**{**SMALL, "score": "simplified"}).fit(X)
    # The score does not change the training nor the Dirichlet fit.
    np.testing.assert_array_equal(det.alpha_, fitted.alpha_)
    P = _hand_proba(det, X_test)
    expected = np.mean([P[t, :, t] for t in range(8)], axis=0)
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-5)
    # The score chosen at fit is used until the next fit (offset_ depends on it).
    changed = copy.deepcopy(det).set_params(score="dirichlet")
    np.testing.assert_array_equal(
        changed.score_samples(X_test), det.score_samples(X_test)
    )


def test_training_is_adam_with_coupled_l2_over_all_pairs():
    # 4 images (3 fitted) x 8 transformations = 24 pairs: one batch per epoch,
    # so two epochs are two Adam steps on the mean cross-entropy of all pairs.
    X = _images(4)
    net = Linear8()
    det = DirichletTransformDetector(
        **{
            **SMALL,
            "network": net,
            "network_kwargs": None,
            "batch_size": 24,
            "epochs": 2,
            "lr": 1e-2,
            "weight_decay": 0.5,
        }
    ).fit(X)
    fit_idx, _ = _split(4)
    x = (2.0 * (X[fit_idx].astype(np.float32) / 255.0) - 1.0)[:, None]
    xs = torch.from_numpy(np.concatenate(_hand_flip_rot8(x)))
    targets = torch.from_numpy(np.repeat(np.arange(8), len(fit_idx)))

    def hand_training(opt_cls):
        model = copy.deepcopy(net)
        opt = opt_cls(model.parameters(), lr=1e-2, weight_decay=0.5, eps=1e-7)
        losses = []
        for _ in range(2):
            loss = nn.functional.cross_entropy(model(xs), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return model, losses

    adam, losses = hand_training(torch.optim.Adam)
    np.testing.assert_allclose(det.history_, losses, rtol=1e-5)
    for ours, hand in zip(det.module_.parameters(), adam.parameters()):
        np.testing.assert_allclose(ours.detach(), hand.detach(), rtol=1e-4, atol=1e-6)
    adamw, _ = hand_training(torch.optim.AdamW)  # decoupled decay differs
    assert not np.allclose(det.module_.lin.weight.detach(), adamw.lin.weight.detach())


@pytest.mark.parametrize(
    "transformations, n_t", [("flip_rot8", 8), ("intuition_flip", 2)]
)
def test_default_epochs_follow_the_paper(transformations, n_t):
    det = DirichletTransformDetector(
        **{
            **SMALL,
            "transformations": transformations,
            "epochs": None,
            "network": Linear8,
            "network_kwargs": {"n_out": n_t},
        }
    ).fit(_images(4))
    assert det.n_transforms_ == n_t
    assert det.epochs_ == math.ceil(200 / n_t) == len(det.history_)


def test_shift_reaches_the_transformations():
    # geometric72 is checked against the image size before any training.
    for shift, side, tx in ((9, 8, "ty=-9"), (None, 6, "ty=-8")):
        det = DirichletTransformDetector(**{**SMALL, "shift": shift})
        with pytest.raises(ValueError, match=tx):
            det.set_params(transformations="geometric72").fit(_images(4, side=side))
    det = DirichletTransformDetector(
        **{**SMALL, "transformations": "intuition_shift", "shift": 3}
    ).fit(_images(4))
    assert det.transformations_.params == [(False, 0, 0, 0), (False, 0, 3, 0)]


def test_default_network_is_wrn_10_4():
    X = _images(3)
    det = DirichletTransformDetector(
        transformations="intuition_flip", epochs=1, device="cpu", random_state=0
    ).fit(X)
    net = det.module_
    assert isinstance(net, WideResNet)
    assert (net.depth, net.widen_factor, net.fc.out_features) == (10, 4, 2)
    assert net.conv1.in_channels == 1 and net.fc_aux is None
    assert not net.training and next(net.parameters()).device.type == "cpu"


# ----------------------------------------------------------- estimator behaviour
def test_determinism_and_global_torch_state(data, fitted):
    X, X_test = data
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    det = DirichletTransformDetector(**SMALL).fit(X)
    assert torch.equal(torch.random.get_rng_state(), before)
    np.testing.assert_array_equal(det.alpha_, fitted.alpha_)
    np.testing.assert_array_equal(
        det.score_samples(X_test), fitted.score_samples(X_test)
    )
    other = DirichletTransformDetector(**{**SMALL, "random_state": 1}).fit(X)
    assert not np.allclose(other.score_samples(X_test), fitted.score_samples(X_test))


def test_scores_do_not_depend_on_batch_size(data, fitted):
    _, X_test = data
    ref = fitted.score_samples(X_test)
    for bs in (1, 7, 1000):
        det = copy.deepcopy(fitted).set_params(batch_size=bs)
        np.testing.assert_allclose(det.score_samples(X_test), ref, rtol=1e-5)


def test_pickle_round_trip(tmp_path, data, fitted):
    _, X_test = data
    joblib.dump(fitted, tmp_path / "det.joblib")
    loaded = joblib.load(tmp_path / "det.joblib")
    np.testing.assert_array_equal(
        loaded.score_samples(X_test), fitted.score_samples(X_test)
    )
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(again.predict(X_test), fitted.predict(X_test))
    assert next(again.module_.parameters()).device.type == "cpu"


def test_predict_contract(data, fitted):
    _, X_test = data
    pred = fitted.predict(X_test)
    assert pred.dtype.kind == "i" and set(pred) <= {-1, 1}
    np.testing.assert_array_equal(
        pred, np.where(fitted.decision_function(X_test) < 0, -1, 1)
    )


def test_known_outliers_are_left_out(data, fitted):
    X, X_test = data
    X_all = np.concatenate([X, _images(5, seed=9)])
    y = np.r_[np.zeros(N_TRAIN, int), -np.ones(5, int)]
    det = DirichletTransformDetector(**SMALL).fit(X_all, y)
    assert not hasattr(det, "classes_")
    np.testing.assert_array_equal(
        det.score_samples(X_test), fitted.score_samples(X_test)
    )


def test_transform_is_penultimate_features(data, fitted):
    _, X_test = data
    feats = fitted.transform(X_test)
    x = torch.from_numpy((2.0 * (X_test.astype(np.float32) / 255.0) - 1.0)[:, None])
    with torch.no_grad():
        expected = fitted.module_.forward_features(x).numpy()
    assert feats.shape == (10, 64)
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    no_features = DirichletTransformDetector(network=Linear8)
    assert not hasattr(no_features, "transform")


def test_pipeline_and_grid_search(data):
    X, X_test = data
    det = DirichletTransformDetector(
        **{**SMALL, "network": Linear8, "network_kwargs": None}
    )
    pipe = Pipeline([("identity", FunctionTransformer()), ("det", det)])
    np.testing.assert_array_equal(
        pipe.fit(X).score_samples(X_test), clone(det).fit(X).score_samples(X_test)
    )
    X_all = np.concatenate([X, X_test])
    y = np.r_[np.zeros(N_TRAIN, int), -np.ones(10, int)]
    cv = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X_all, y == -1))
    search = GridSearchCV(
        det,
        {"score": ["dirichlet", "simplified"]},
        scoring=get_ood_scorer("auroc"),
        cv=cv,
    ).fit(X_all, y)
    assert search.best_params_["score"] in ("dirichlet", "simplified")
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = clone(det).set_params(**search.best_params_).fit(X)
    np.testing.assert_array_equal(
        search.best_estimator_.score_samples(X_test), best.score_samples(X_test)
    )


# --------------------------------------------------------------------- class head
def test_class_head_trained_jointly_and_predicts_classes():
    rng = check_random_state(0)
    dark = rng.randint(0, 60, size=(16, 8, 8))
    bright = rng.randint(190, 256, size=(16, 8, 8))
    X = np.concatenate([dark, bright]).astype(np.uint8)
    y = np.repeat(["dark", "bright"], 16)
    det = DirichletTransformDetector(
        **{**SMALL, "transformations": "intuition_flip", "epochs": 4, "lr": 1e-2}
    ).fit(X, y)
    np.testing.assert_array_equal(det.classes_, ["bright", "dark"])
    assert det.module_.fc_aux.out_features == 2
    pred = det.predict_class(X)
    x = torch.from_numpy((2.0 * (X.astype(np.float32) / 255.0) - 1.0)[:, None])
    with torch.no_grad():
        aux = det.module_(x)[1].numpy()
    np.testing.assert_array_equal(pred, det.classes_[aux.argmax(axis=1)])
    assert np.mean(pred == y) >= 0.9  # the class head learned the labels
    # Scoring uses the transformation head only (the first output).
    with torch.no_grad():
        logits = [det.module_(xt)[0] for xt in (x, x.flip(-1))]
    P = np.stack([softmax(lg.numpy().astype(np.float64), axis=1) for lg in logits])
    np.testing.assert_allclose(
        det.score_samples(X), _hand_dirichlet_score(det.alpha_, P), rtol=1e-5
    )


def test_class_head_switches(data):
    X, _ = data
    y = np.repeat([0, 1, 2], 10)
    off = DirichletTransformDetector(**{**SMALL, "class_head": False}).fit(X, y)
    assert not hasattr(off, "classes_") and off.module_.fc_aux is None
    assert not hasattr(off, "predict_class")
    with pytest.raises(AttributeError, match="predict_class") as excinfo:
        off.predict_class(X)
    assert "class head" in str(excinfo.value.__cause__)
    one_class = DirichletTransformDetector(**SMALL).fit(X, np.zeros(N_TRAIN, int))
    assert not hasattr(one_class, "predict_class")
    with pytest.raises(ValueError, match="class_head=True needs class labels"):
        DirichletTransformDetector(**{**SMALL, "class_head": True}).fit(X)


# ------------------------------------------------------------------------ networks
def test_network_class_gets_network_kwargs_only(data):
    X, X_test = data
    det = DirichletTransformDetector(
        **{**SMALL, "network": Linear8, "network_kwargs": {"n_out": 8}}
    ).fit(X)
    assert isinstance(det.module_, Linear8)
    expected = _hand_dirichlet_score(det.alpha_, _hand_proba(det, X_test))
    np.testing.assert_allclose(det.score_samples(X_test), expected, rtol=1e-5)


def test_inputs_and_network_instance_not_modified(data):
    X, _ = data
    X_copy = X.copy()
    net = Linear8()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    gt = GeometricTransformations.flip_rot8()
    det = DirichletTransformDetector(
        **{**SMALL, "network": net, "network_kwargs": None, "transformations": gt}
    ).fit(X)
    np.testing.assert_array_equal(X, X_copy)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert det.module_ is not net and det.transformations_ is not gt
    assert det.get_params()["transformations"] is gt


def test_wrong_number_of_logits_raises(data):
    X, _ = data
    det = DirichletTransformDetector(
        **{**SMALL, "network": Linear8(n_out=5), "network_kwargs": None}
    )
    with pytest.raises(ValueError, match="one logit per transformation"):
        det.fit(X)


# --------------------------------------------------------------------------- errors
def test_wrong_image_size_or_dtype_at_score_time(data, fitted):
    with pytest.raises(ValueError, match="shape"):
        fitted.score_samples(_images(3, side=9))
    with pytest.raises(ValueError, match="uint8"):
        fitted.score_samples(data[1].astype(np.float32) / 255)


def test_non_square_images():
    X = check_random_state(0).randint(0, 256, size=(6, 8, 10)).astype(np.uint8)
    with pytest.raises(ValueError, match="square images"):
        DirichletTransformDetector(**SMALL).fit(X)
    det = DirichletTransformDetector(**{**SMALL, "transformations": "intuition_flip"})
    assert det.fit(X).score_samples(X).shape == (6,)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"score": "full"}, "'score' parameter"),
        ({"epochs": 0}, "'epochs' parameter"),
        ({"lr": 0.0}, "'lr' parameter"),
        ({"weight_decay": -1.0}, "'weight_decay' parameter"),
        ({"transformations": "rot4"}, "'transformations' parameter"),
        ({"transformations": [(False, 0, 0)]}, "'transformations' parameter"),
        ({"transformations": [(False, 0, 0, 5)]}, "'transformations' parameter"),
        ({"transformations": "flip_rot8", "shift": 4}, "'shift' parameter"),
        ({"transformations": [(False, 0, 0, 0), (True, 0, 0, 0)], "shift": 4}, "shift"),
        ({"shift": 0}, "'shift' parameter"),
        ({"pad_to": 6}, "'pad_to' parameter"),
        ({"pad_to": "same"}, "'pad_to' parameter"),
        ({"class_head": "yes"}, "'class_head' parameter"),
        ({"network": 3}, "'network' parameter"),
        ({"network": Linear8(), "network_kwargs": {"n_out": 8}}, "network_kwargs"),
        ({"network_kwargs": {"depth": 11}}, "depth"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
        ({"contamination": 0.7}, "'contamination' parameter"),
        ({"device": "tpu"}, "'device' parameter"),
    ],
)
def test_invalid_parameters(data, params, match):
    det = DirichletTransformDetector(**{**SMALL, **params})
    with pytest.raises(ValueError, match=match):
        det.fit(data[0])


def test_bad_input(data):
    with pytest.raises(ValueError, match="at least 3"):
        DirichletTransformDetector(**SMALL).fit(_images(2))
    with pytest.raises(ValueError, match="2-D matrix"):
        DirichletTransformDetector(**SMALL).fit(np.zeros((5, 64)))
    X = data[0].astype(np.float64) / 255
    X[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DirichletTransformDetector(**SMALL).fit(X)


def test_fit_does_not_change_parameters(data):
    det = DirichletTransformDetector(**SMALL)
    params = copy.deepcopy(det.get_params())
    det.fit(data[0])
    assert det.get_params() == params


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data, fitted):  # pragma: no cover - no GPU in CI
    X, X_test = data
    det = DirichletTransformDetector(**{**SMALL, "device": "cuda"}).fit(X)
    assert next(det.module_.parameters()).device.type == "cpu"
    moved = copy.deepcopy(fitted).set_params(device="cuda")
    np.testing.assert_allclose(
        moved.score_samples(X_test), fitted.score_samples(X_test), rtol=1e-3
    )
    assert np.all(np.isfinite(det.score_samples(X_test)))
