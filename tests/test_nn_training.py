"""Tests of sklearn_ood.nn._device and sklearn_ood.nn._training."""

import io
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from torch import nn

import sklearn_ood.nn
from sklearn_ood.nn import (
    DeviceWarning,
    TrainingHistory,
    _training,
    build_module,
    predict_batches,
    resolve_device,
    torch_threads,
    train_module,
)
from sklearn_ood.nn._device import (
    TorchEstimatorMixin,
    cpu_state_dict,
    draw_seed,
    seeded_torch_rng,
    torch_generator,
)

HAS_CUDA = torch.cuda.is_available()


# ----------------------------------------------------------------------------- device


def test_resolve_device_auto_and_cpu():
    expected = "cuda" if HAS_CUDA else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="tests the fallback on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3", torch.device("cuda")])
def test_resolve_device_cuda_falls_back_with_warning(device):
    with pytest.warns(UserWarning, match="CUDA is not available.*falling back"):
        assert resolve_device(device) == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_resolve_device_cuda_on_gpu():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("cuda").type == "cuda"
    with pytest.raises(ValueError, match="only"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", "tpu", 0, None, 1.5])
def test_resolve_device_rejects_bad_values(device):
    with pytest.raises(ValueError, match="The 'device' parameter"):
        resolve_device(device)


def test_torch_generator_is_seeded_and_local():
    before = torch.get_rng_state()
    a = torch.rand(5, generator=torch_generator(3))
    b = torch.rand(5, generator=torch_generator(3))
    c = torch.rand(5, generator=torch_generator(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)
    # the seed comes from check_random_state(...).randint, so a RandomState advances
    rs = np.random.RandomState(0)
    seeds = [draw_seed(rs), draw_seed(rs)]
    expected = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=2)
    assert seeds == [int(s) for s in expected]
    g = torch_generator(np.random.RandomState(0))
    assert g.initial_seed() == expected[0]


def test_seeded_torch_rng_restores_global_state():
    before = torch.get_rng_state()
    with seeded_torch_rng(7):
        a = torch.rand(3)
    with seeded_torch_rng(7):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)


def test_torch_threads_restores_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="'n_threads'"):
        with torch_threads(0):
            pass


def test_cpu_state_dict_is_a_detached_copy():
    lin = nn.Linear(3, 2)
    sd = cpu_state_dict(lin)
    with torch.no_grad():
        lin.weight.add_(1.0)
    assert not torch.equal(sd["weight"], lin.weight)
    assert not sd["weight"].requires_grad
    assert set(sd) == {"weight", "bias"}


# ------------------------------------------------------------------------ train_module


def _regression_data(n=20, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 3).astype(np.float32)
    y = (X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.01 * rng.randn(n)).astype(np.float32)
    return torch.from_numpy(X), torch.from_numpy(y)[:, None]


def _mse(module, batch):
    xb, yb = batch
    return torch.mean((module(xb) - yb) ** 2)


def _linear(seed=0):
    return build_module(
        nn.Linear,
        {"in_features": 3, "out_features": 1},
        default=nn.Linear,
        random_state=seed,
    )


def test_training_is_deterministic_and_ignores_global_seed():
    X, y = _regression_data()
    kw = {"epochs": 2, "batch_size": 6, "lr": 0.05, "random_state": 0}
    with torch.random.fork_rng():
        torch.manual_seed(1)
        a = _linear()
        train_module(a, _mse, (X, y), **kw)
        torch.manual_seed(12345)
        torch.rand(100)
        b = _linear()
        train_module(b, _mse, (X, y), **kw)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    # another shuffling seed gives other weights (the batches differ)
    c = _linear()
    train_module(c, _mse, (X, y), **{**kw, "random_state": 1})
    assert not torch.equal(a.weight, c.weight)


def test_training_leaves_global_rng_untouched_and_dropout_is_reproducible():
    X, y = _regression_data()
    net_kwargs = {"random_state": 0}

    def make():
        return build_module(
            lambda: nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5), nn.Linear(16, 1)),
            default=nn.Linear,
            **net_kwargs,
        )

    before = torch.get_rng_state()
    a, b = make(), make()
    train_module(a, _mse, (X, y), epochs=2, batch_size=5, random_state=3)
    train_module(b, _mse, (X, y), epochs=2, batch_size=5, random_state=3)
    assert torch.equal(torch.get_rng_state(), before)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not a.training  # eval() after training


def test_one_full_batch_sgd_step_matches_closed_form():
    X, y = _regression_data(n=10)
    net = _linear()
    w0 = net.weight.detach().numpy().astype(np.float64).ravel()
    b0 = net.bias.detach().item()
    lr, wd = 0.1, 0.01
    train_module(
        net,
        _mse,
        (X, y),
        epochs=1,
        batch_size=10,
        optimizer="sgd",
        lr=lr,
        weight_decay=wd,
        shuffle=False,
        random_state=0,
    )
    Xn, yn = X.numpy().astype(np.float64), y.numpy().ravel().astype(np.float64)
    r = Xn @ w0 + b0 - yn
    grad_w = 2 * Xn.T @ r / len(yn) + wd * w0  # coupled L2 as in torch SGD/Adam
    grad_b = 2 * r.mean() + wd * b0
    np.testing.assert_allclose(
        net.weight.detach().numpy().ravel(), w0 - lr * grad_w, rtol=1e-5
    )
    np.testing.assert_allclose(net.bias.detach().item(), b0 - lr * grad_b, rtol=1e-5)


def test_epoch_loss_is_batch_size_weighted_mean():
    # with a negligible learning rate the weights stay put, so the epoch mean of the
    # batch losses (batches of 8, 8, 4) must equal the full-data MSE
    X, y = _regression_data(n=20)
    net = _linear()
    full = float(
        np.mean(
            (
                X.numpy() @ net.weight.detach().numpy().T
                + net.bias.detach().numpy()
                - y.numpy()
            )
            ** 2
        )
    )
    history = train_module(
        net,
        _mse,
        (X, y),
        epochs=1,
        batch_size=8,
        optimizer="sgd",
        lr=1e-12,
        random_state=0,
    )
    assert history[0] == pytest.approx(full, rel=1e-5)


def test_loss_decreases_to_least_squares_solution():
    X, y = _regression_data(n=40)
    net = _linear()
    history = train_module(
        net, _mse, (X, y), epochs=60, batch_size=10, lr=0.05, random_state=0
    )
    assert len(history) == 60 and history[-1] < 0.01 * history[0]
    A = np.hstack([X.numpy(), np.ones((40, 1), np.float32)])
    coef = np.linalg.lstsq(A, y.numpy().ravel(), rcond=None)[0]
    np.testing.assert_allclose(net.weight.detach().numpy().ravel(), coef[:3], atol=0.02)
    np.testing.assert_allclose(net.bias.detach().item(), coef[3], atol=0.02)


def test_lr_schedule_multiplies_after_milestones():
    X, y = _regression_data()
    history = train_module(
        _linear(),
        _mse,
        (X, y),
        epochs=5,
        batch_size=10,
        lr=0.01,
        lr_schedule=([2, 4], 0.1),
        random_state=0,
    )
    np.testing.assert_allclose(history.lrs, [1e-2, 1e-2, 1e-3, 1e-3, 1e-4])


def _nan_after(n_ok):
    calls = {"n": 0}

    def loss_fn(module, batch):
        calls["n"] += 1
        loss = _mse(module, batch)
        return loss * float("nan") if calls["n"] > n_ok else loss

    return loss_fn


def test_nonfinite_loss_raises():
    X, y = _regression_data(n=20)
    net = _linear()
    # 2 batches per epoch: the 4th batch (epoch 2, batch 2) is NaN
    with pytest.raises(FloatingPointError, match="epoch 2, batch 2"):
        train_module(
            net, _nan_after(3), (X, y), epochs=3, batch_size=10, random_state=0
        )
    assert not net.training
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_nonfinite_loss_warn_restores_last_complete_epoch():
    X, y = _regression_data(n=20)
    kw = {"batch_size": 10, "lr": 0.05, "random_state": 0}
    reference = _linear()
    train_module(reference, _mse, (X, y), epochs=1, **kw)
    net = _linear()
    with pytest.warns(UserWarning, match="epoch 2, batch 2.*Training stopped"):
        history = train_module(
            net, _nan_after(3), (X, y), epochs=3, on_nonfinite="warn", **kw
        )
    assert history.stopped_early and history.stop_reason == "non-finite loss"
    assert len(history) == 1
    assert torch.equal(net.weight, reference.weight)
    assert torch.equal(net.bias, reference.bias)


def test_verbose_with_tqdm_writes_progress_bar(capsys):
    X, y = _regression_data()
    train_module(
        _linear(),
        _mse,
        (X, y),
        epochs=2,
        batch_size=10,
        verbose=1,
        desc="fitting-net",
        random_state=0,
    )
    captured = capsys.readouterr()
    assert "fitting-net" in captured.err and "2/2" in captured.err
    assert captured.out == ""


def test_verbose_without_tqdm_prints_one_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setattr(_training, "_get_tqdm", lambda: None)
    X, y = _regression_data()
    history = train_module(
        _linear(), _mse, (X, y), epochs=3, batch_size=10, verbose=1, random_state=0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert f"epoch {i + 1}/3" in line
        assert f"loss {history[i]:.6g}" in line


def test_silent_by_default(capsys):
    X, y = _regression_data()
    train_module(_linear(), _mse, (X, y), epochs=2, batch_size=10, random_state=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_epoch_end_can_stop_and_factory_data():
    X, y = _regression_data(n=12)
    seen = []

    def factory(epoch, generator):
        seen.append(epoch)
        idx = torch.randperm(12, generator=generator)
        return [(X[idx[:6]], y[idx[:6]]), (X[idx[6:]], y[idx[6:]])]

    history = train_module(
        _linear(),
        _mse,
        factory,
        epochs=10,
        random_state=0,
        epoch_end=lambda epoch, loss, module: epoch == 2,
    )
    assert seen == [0, 1, 2]
    assert len(history) == 3 and history.stopped_early
    assert history.stop_reason == "epoch_end"


def test_drop_last_and_extra_params():
    X, y = _regression_data(n=10)
    sizes = []
    offset = nn.Parameter(torch.zeros(1))

    def loss_fn(module, batch):
        sizes.append(len(batch[0]))
        return torch.mean((module(batch[0]) + offset - batch[1]) ** 2)

    net = _linear()
    train_module(
        net,
        loss_fn,
        (X, y),
        epochs=1,
        batch_size=4,
        drop_last=True,
        params=[*net.parameters(), offset],
        random_state=0,
    )
    assert sizes == [4, 4]
    assert offset.detach().item() != 0.0


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"epochs": -1}, ValueError, "'epochs'"),
        ({"batch_size": 0}, ValueError, "'batch_size'"),
        ({"batch_size": None}, ValueError, "'batch_size'"),
        ({"lr": 0.0}, ValueError, "'lr'"),
        ({"weight_decay": -1.0}, ValueError, "'weight_decay'"),
        ({"optimizer": "rmsprop"}, ValueError, "'optimizer'"),
        ({"lr_schedule": ([0], 0.1)}, ValueError, "'lr_schedule'"),
        ({"on_nonfinite": "ignore"}, ValueError, "'on_nonfinite'"),
        ({"device": "gpu"}, ValueError, "'device'"),
        ({"drop_last": True, "batch_size": 50}, ValueError, "drop_last"),
    ],
)
def test_train_module_parameter_errors(kwargs, err, match):
    X, y = _regression_data()
    kw = {"epochs": 1, "batch_size": 5, **kwargs}
    with pytest.raises(err, match=match):
        train_module(_linear(), _mse, (X, y), **kw)


def test_train_module_data_and_loss_errors():
    X, y = _regression_data()
    with pytest.raises(ValueError, match="same first dimension"):
        train_module(_linear(), _mse, (X, y[:5]), epochs=1, batch_size=5)
    with pytest.raises(TypeError, match="data must be"):
        train_module(_linear(), _mse, [X.numpy()], epochs=1, batch_size=5)
    with pytest.raises(TypeError, match="scalar"):
        train_module(_linear(), lambda m, b: m(b[0]), (X, y), epochs=1, batch_size=5)


def test_sgd_class_and_optimizer_kwargs():
    X, y = _regression_data(n=10)
    a, b = _linear(), _linear()
    train_module(
        a,
        _mse,
        (X, y),
        epochs=2,
        batch_size=10,
        optimizer=torch.optim.SGD,
        lr=0.1,
        optimizer_kwargs={"momentum": 0.9},
        random_state=0,
    )
    train_module(
        b,
        _mse,
        (X, y),
        epochs=2,
        batch_size=10,
        optimizer="sgd",
        lr=0.1,
        random_state=0,
    )
    assert not torch.equal(a.weight, b.weight)  # momentum changed the second step


# ---------------------------------------------------------------------- predict_batches


class _ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return h, self.fc(h)


def test_predict_batches_is_batch_size_invariant_and_uses_eval():
    net = build_module(_ConvBN, default=_ConvBN, random_state=0)
    with torch.no_grad():  # non-trivial running statistics
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    X = torch.randn(11, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    # reference: per-sample forward with running statistics, written out by hand
    with torch.no_grad():
        z = net.conv(X)
        z = (z - net.bn.running_mean[:, None, None]) / torch.sqrt(
            net.bn.running_var[:, None, None] + net.bn.eps
        ) * net.bn.weight[:, None, None] + net.bn.bias[:, None, None]
        h_ref = torch.relu(z).mean(dim=(2, 3))
    net.train()
    outs = [predict_batches(net, X, batch_size=bs) for bs in (1, 4, 11, 64)]
    assert net.training  # the mode is restored
    for h, logits in outs:
        torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logits, net.fc(h_ref).detach(), rtol=1e-5, atol=1e-6)
        assert h.device.type == "cpu"
    # results are ordinary tensors: in-place edits are allowed
    outs[0][0].sub_(1.0)


def test_predict_batches_bound_method_and_preprocess():
    net = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.9))
    X = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    out = predict_batches(net.forward, X, batch_size=3, preprocess=lambda b: 2 * b)
    expected = (2 * X) @ net[0].weight.T + net[0].bias  # dropout off in eval
    torch.testing.assert_close(out, expected.detach())
    assert net.training


# ------------------------------------------------------------------------- build_module


def test_build_module_from_class_instance_and_errors():
    before = torch.get_rng_state()
    a = build_module(
        None,
        {"out_features": 2},
        default=nn.Linear,
        default_kwargs={"in_features": 3, "out_features": 5},
        random_state=0,
    )
    b = build_module(
        nn.Linear,
        {"in_features": 3, "out_features": 2},
        default=nn.Linear,
        random_state=0,
    )
    assert torch.equal(torch.get_rng_state(), before)
    assert tuple(a.weight.shape) == (2, 3)
    assert torch.equal(a.weight, b.weight)  # same seed, same initialisation

    user = nn.Linear(3, 1)
    snapshot = cpu_state_dict(user)
    copy_ = build_module(user, None, default=nn.Linear)
    assert copy_ is not user
    X, y = _regression_data()
    train_module(copy_, _mse, (X, y), epochs=1, batch_size=5, random_state=0)
    for key, value in user.state_dict().items():
        assert torch.equal(value, snapshot[key])

    with pytest.raises(ValueError, match="'network_kwargs' parameter can only"):
        build_module(user, {"bias": False}, default=nn.Linear)
    with pytest.raises(TypeError, match="'network' parameter must be"):
        build_module("resnet", None, default=nn.Linear)
    with pytest.raises(TypeError, match="returned a dict"):
        build_module(dict, None, default=nn.Linear)
    with pytest.raises(TypeError, match="Could not build"):
        build_module(nn.Linear, {"bogus": 1}, default=nn.Linear)
    with pytest.raises(TypeError, match="'head_kwargs' parameter must be a dict"):
        build_module(nn.Linear, [1], default=nn.Linear, name="head")


# -------------------------------------------------------------------------------- mixin


class TinyRegressor(TorchEstimatorMixin, BaseEstimator):
    def __init__(self, *, epochs=3, random_state=None):
        self.epochs = epochs
        self.random_state = random_state

    def fit(self, X, y):
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = torch.as_tensor(np.asarray(y, dtype=np.float32))[:, None]
        self._clear_torch_cache()
        net = build_module(
            None,
            default=nn.Linear,
            default_kwargs={"in_features": X.shape[1], "out_features": 1},
            random_state=self.random_state,
        )
        self.history_ = list(
            train_module(
                net,
                _mse,
                (X, y),
                epochs=self.epochs,
                batch_size=4,
                random_state=self.random_state,
            )
        )
        self.module_ = net.cpu()
        return self

    def predict(self, X):
        module = self._module_on_device("module_", torch.device("cpu"))
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        return predict_batches(module, X, batch_size=3).numpy().ravel()


def test_mixin_joblib_round_trip(tmp_path):
    X, y = _regression_data()
    est = TinyRegressor(random_state=0).fit(X.numpy(), y.numpy().ravel())
    est._cache_module_ = ("stale", "device", "copy")  # caches never pickle
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path)
    assert not any(k.startswith("_cache") for k in vars(loaded))
    np.testing.assert_array_equal(loaded.predict(X.numpy()), est.predict(X.numpy()))
    assert loaded.history_ == est.history_
    assert loaded.get_params() == est.get_params()
    assert clone(est).get_params() == est.get_params()
    # the same random_state refits to the same weights
    again = clone(est).fit(X.numpy(), y.numpy().ravel())
    np.testing.assert_array_equal(again.predict(X.numpy()), est.predict(X.numpy()))


def test_mixin_module_on_cpu_is_not_copied():
    X, y = _regression_data()
    est = TinyRegressor(random_state=0).fit(X.numpy(), y.numpy().ravel())
    assert est._module_on_device("module_", torch.device("cpu")) is est.module_
    assert not any(k.startswith("_cache") for k in vars(est))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_mixin_gpu_modules_pickle_to_cpu(tmp_path):
    X, y = _regression_data()
    est = TinyRegressor(random_state=0).fit(X.numpy(), y.numpy().ravel())
    gpu = est._module_on_device("module_", torch.device("cuda"))
    assert next(gpu.parameters()).is_cuda
    assert est._module_on_device("module_", torch.device("cuda")) is gpu  # cached
    est.extra_ = nn.Linear(2, 2).cuda()
    joblib.dump(est, tmp_path / "est.joblib")
    loaded = joblib.load(tmp_path / "est.joblib")
    assert next(loaded.extra_.parameters()).device.type == "cpu"
    assert next(est.extra_.parameters()).is_cuda  # the live estimator is untouched


def test_channels_last_gives_the_same_training_and_predictions():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 2, 6, 6, generator=g)
    y = torch.randn(12, 3, generator=g)

    def make():
        return build_module(
            lambda: nn.Sequential(
                nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
            ),
            default=nn.Linear,
            random_state=0,
        )

    nets = []
    for channels_last in (False, True):
        net = make()
        history = train_module(
            net,
            _mse,
            (X, y),
            epochs=2,
            batch_size=4,
            channels_last=channels_last,
            random_state=0,
        )
        nets.append((net, history))
    (a, ha), (b, hb) = nets
    np.testing.assert_allclose(ha, hb, rtol=1e-5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        predict_batches(b, X, batch_size=5, channels_last=True),
        predict_batches(a, X, batch_size=5),
        rtol=1e-4,
        atol=1e-6,
    )


def test_training_history_pickles():
    X, y = _regression_data()
    history = train_module(
        _linear(),
        _mse,
        (X, y),
        epochs=2,
        batch_size=10,
        lr_schedule=([1], 0.5),
        random_state=0,
    )
    loaded = joblib.load(_dump(history))
    assert list(loaded) == list(history) and loaded.lrs == history.lrs
    assert loaded.stopped_early is False


def _dump(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    return buffer


# ------------------------------------------------------- BatchNorm and the last batch
class _PooledBN(nn.Module):
    """Conv -> BatchNorm on a 1x1 map: one value per channel per sample."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 2)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 1)
        self.sizes = []

    def forward(self, x):
        if self.training:
            self.sizes.append(x.shape[0])
        return self.fc(self.bn(self.conv(x)).flatten(1))


def _bn_data(n):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 2, 2, generator=g), torch.randn(n, 1, generator=g)


def test_single_sample_last_batch_joins_the_previous_batch_with_batchnorm():
    # 9 samples in batches of 4: the last batch holds one sample, which torch's
    # BatchNorm refuses in training mode ("Expected more than 1 value per
    # channel"); it is trained with the batch before instead.
    X, y = _bn_data(9)
    net = _PooledBN()
    history = train_module(net, _mse, (X, y), epochs=2, batch_size=4, random_state=0)
    assert net.sizes == [4, 5, 4, 5] and len(history) == 2
    # A factory's batches (here 4, 4 and 1) are merged the same way.
    calls = []

    def factory(epoch, generator):
        order = torch.randperm(9, generator=generator)
        for start in range(0, 9, 4):
            idx = order[start : start + 4]
            calls.append(len(idx))
            yield X[idx], y[idx]

    net2 = _PooledBN()
    train_module(net2, _mse, factory, epochs=1, random_state=0)
    assert calls == [4, 4, 1] and net2.sizes == [4, 5]


def test_without_batchnorm_the_single_sample_batch_stays():
    X, y = _regression_data()
    sizes = []

    def loss_fn(module, batch):
        sizes.append(batch[0].shape[0])
        return _mse(module, batch)

    train_module(_linear(), loss_fn, (X[:9], y[:9]), epochs=1, batch_size=4)
    assert sizes == [4, 4, 1]


def test_unmergeable_single_batch_is_dropped_and_batch_size_one_explains():
    X, y = _bn_data(5)
    net = _PooledBN()

    def factory(epoch, generator):
        yield (X[:4], y[:4], torch.zeros(2))  # third tensor: other length
        yield (X[4:], y[4:], torch.zeros(2))

    def loss_fn(module, batch):
        return _mse(module, batch[:2])

    train_module(net, loss_fn, factory, epochs=1, random_state=0)
    assert net.sizes == [4]
    with pytest.raises(ValueError, match=r"single sample.*BatchNorm.*at least 2"):
        train_module(_PooledBN(), _mse, (X, y), epochs=1, batch_size=1)


def test_history_stages_chain_and_stage():
    X, y = _regression_data()
    first = train_module(_linear(), _mse, (X, y), epochs=2, batch_size=10)
    head = train_module(_linear(), _mse, (X, y), epochs=3, batch_size=10, stage="head")
    both = TrainingHistory.chain([first, head])
    assert list(both) == list(first) + list(head)
    assert both.stages == ["network"] * 2 + ["head"] * 3
    assert both.stage("head") == list(head) and both.lrs == first.lrs + head.lrs
    loaded = joblib.load(_dump(both))
    assert loaded.stages == both.stages


def test_public_names_are_the_user_facing_ones():
    # Weight remapping, seeding and pickling helpers are private; the
    # EfficientNet backbone is exported once, by sklearn_ood.backbones.
    assert set(sklearn_ood.nn.__all__) == {
        "PRESETS",
        "CenterLoss",
        "ContrastiveLoss",
        "DeviceWarning",
        "GeometricTransformations",
        "LeNet",
        "MLPHead",
        "TrainingHistory",
        "VGGEmbedding",
        "WideResNet",
        "build_module",
        "predict_batches",
        "resolve_device",
        "torch_threads",
        "train_module",
    }
    for name in ("EfficientNetLite0", "TorchEstimatorMixin", "draw_seed"):
        assert not hasattr(sklearn_ood.nn, name)
    assert issubclass(DeviceWarning, UserWarning)
