"""The training loop, batched inference and network building shared by the detectors.

Every detector that trains a network calls :func:`train_module` with its own
``loss_fn(module, batch)``, so the batch logic (transformations, center loss, pair
sampling) lives in the detector while seeding, devices, shuffling, the optimiser, the
learning-rate schedule, progress output and the handling of a diverging loss live here.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn

from ._device import (
    TorchEstimatorMixin,  # re-exported: estimators import it from here
    cpu_state_dict,
    draw_seed,
    resolve_device,
    seeded_torch_rng,
)

__all__ = [
    "TorchEstimatorMixin",
    "TrainingHistory",
    "build_module",
    "predict_batches",
    "train_module",
]

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
_NONFINITE = ("raise", "warn")


class TrainingHistory(list):
    """Per-epoch mean training losses, as a list, with a few extra attributes.

    The one record of training in sklearn-ood: every detector that trains a
    network stores one as ``history_``. When a detector trains several modules
    one after the other (a network, then a head), their epochs follow each
    other in the list and ``stages`` says which module each epoch trained.

    Parameters
    ----------
    losses : iterable of float, default=()
        Initial losses.
    stage : str, default="network"
        Stage label of the initial losses.

    Attributes
    ----------
    lrs : list of float
        Learning rate (of the first parameter group) used in each epoch.
    stages : list of str
        Name of the module trained in each epoch (``"network"``, ``"head"``).
    stopped_early : bool
        Training stopped before ``epochs`` (non-finite loss with
        ``on_nonfinite="warn"``, or an ``epoch_end`` callback returning True).
    stop_reason : str or None
        Why training stopped early.

    Examples
    --------
    >>> from sklearn_ood.nn import TrainingHistory
    >>> history = TrainingHistory([0.9, 0.5])
    >>> history[-1], history.stopped_early, history.stages
    (0.5, False, ['network', 'network'])
    """

    def __init__(self, losses: Iterable[float] = (), stage: str = "network") -> None:
        super().__init__(losses)
        self.lrs: list[float] = []
        self.stages: list[str] = [stage] * len(self)
        self.stopped_early: bool = False
        self.stop_reason: str | None = None

    def stage(self, name: str) -> list[float]:
        """Return the losses of the epochs of one stage.

        Parameters
        ----------
        name : str
            A stage label, e.g. ``"head"``.

        Returns
        -------
        losses : list of float
            The per-epoch mean losses of that stage, in order.

        Examples
        --------
        >>> from sklearn_ood.nn import TrainingHistory
        >>> h = TrainingHistory.chain(
        ...     [TrainingHistory([2.0, 1.0]), TrainingHistory([0.7], stage="head")])
        >>> h.stage("head"), list(h)
        ([0.7], [2.0, 1.0, 0.7])
        """
        return [loss for loss, s in zip(self, self.stages) if s == name]

    @classmethod
    def chain(cls, histories: Iterable[TrainingHistory]) -> TrainingHistory:
        """Concatenate the histories of stages trained one after the other.

        Parameters
        ----------
        histories : iterable of TrainingHistory
            In training order.

        Returns
        -------
        history : TrainingHistory
            Losses, learning rates and stage labels concatenated; stopped early
            when any stage was (the first reason is kept).

        Examples
        --------
        >>> from sklearn_ood.nn import TrainingHistory
        >>> h = TrainingHistory.chain([TrainingHistory([1.0]), TrainingHistory([0.5])])
        >>> list(h), h.stages
        ([1.0, 0.5], ['network', 'network'])
        """
        out = cls()
        for h in histories:
            out.extend(h)
            out.lrs.extend(getattr(h, "lrs", []))
            out.stages.extend(getattr(h, "stages", ["network"] * len(h)))
            if getattr(h, "stopped_early", False) and not out.stopped_early:
                out.stopped_early, out.stop_reason = True, h.stop_reason
        return out


def _get_tqdm():
    """Return ``tqdm.tqdm`` or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _check_positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
    ):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"The '{name}' parameter must be a {kind} integer. Got {value!r} instead."
        )
    return int(value)


def _check_nonneg_float(value, name: str, *, strict: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value > 0 if strict else value >= 0)
    if not ok:
        kind = "positive" if strict else "non-negative"
        raise ValueError(
            f"The '{name}' parameter must be a {kind} finite float. Got {value!r} "
            "instead."
        )
    return value


def _move(obj, device: torch.device, channels_last: bool = False):
    """Move a batch (a tensor, or a tuple/list/dict of tensors) to ``device``."""
    if isinstance(obj, torch.Tensor):
        obj = obj.to(device, non_blocking=True)
        if channels_last and obj.ndim == 4:
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_move(o, device, channels_last) for o in obj)
    if isinstance(obj, list):
        return [_move(o, device, channels_last) for o in obj]
    if isinstance(obj, dict):
        return {k: _move(v, device, channels_last) for k, v in obj.items()}
    return obj


def _batch_len(batch) -> int:
    """Number of samples in a batch: the length of its first tensor (1 if unknown)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, (tuple, list)) and batch:
        return _batch_len(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_len(next(iter(batch.values())))
    return 1


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _concat_batches(a, b):
    """``a`` and ``b`` concatenated along the samples, or None if not possible.

    Possible for a tensor, or a tuple/list/dict of tensors that all have the
    batch length as first dimension.
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.ndim and b.ndim and a.shape[1:] == b.shape[1:]:
            return torch.cat([a, b])
        return None
    n_a, n_b = _batch_len(a), _batch_len(b)
    if isinstance(a, (tuple, list)) and type(a) is type(b) and len(a) == len(b):
        if not all(
            isinstance(x, torch.Tensor)
            and isinstance(y, torch.Tensor)
            and x.ndim
            and y.ndim
            and x.shape[0] == n_a
            and y.shape[0] == n_b
            and x.shape[1:] == y.shape[1:]
            for x, y in zip(a, b)
        ):
            return None
        return type(a)(torch.cat([x, y]) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        merged = {k: _concat_batches(a[k], b[k]) for k in a}
        return None if any(v is None for v in merged.values()) else merged
    return None


def _no_single_last_batch(batches):
    """Yield ``batches``; a last batch of one sample joins the batch before.

    BatchNorm in training mode needs more than one value per channel, which a
    batch of one sample does not give after global pooling or in a dense
    layer ("Expected more than 1 value per channel when training"). The last
    batch of an epoch holds one sample whenever the sample count is one more
    than a multiple of the batch size; it is concatenated to the previous
    batch, or dropped when the batch structure cannot be concatenated.
    """
    end = object()
    a = b = end
    for cur in batches:
        if a is not end:
            yield a
        a, b = b, cur
    if b is end:
        return
    if a is end:  # a single batch in the epoch
        yield b
        return
    if _batch_len(b) != 1:
        yield a
        yield b
        return
    merged = _concat_batches(a, b)
    yield a if merged is None else merged


def _batchnorm_message(exc: Exception) -> str | None:
    text = str(exc)
    if "Expected more than 1 value per channel when training" not in text:
        return None
    return (
        "A training batch holds a single sample, but the network's BatchNorm "
        "layers need more than one value per channel in training mode: use a "
        "batch size of at least 2 (torch said: " + text + ")."
    )


def _make_optimizer(optimizer, params, lr, weight_decay, optimizer_kwargs):
    if isinstance(optimizer, str):
        if optimizer.lower() not in _OPTIMIZERS:
            raise ValueError(
                "The 'optimizer' parameter must be one of "
                f"{sorted(_OPTIMIZERS)} or a torch.optim.Optimizer subclass. "
                f"Got {optimizer!r} instead."
            )
        cls = _OPTIMIZERS[optimizer.lower()]
    elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        cls = optimizer
    else:
        raise ValueError(
            f"The 'optimizer' parameter must be one of {sorted(_OPTIMIZERS)} or a "
            f"torch.optim.Optimizer subclass. Got {optimizer!r} instead."
        )
    return cls(params, lr=lr, weight_decay=weight_decay, **(optimizer_kwargs or {}))


def _make_scheduler(lr_schedule, optimizer):
    if lr_schedule is None:
        return None
    if isinstance(lr_schedule, Mapping):
        milestones = lr_schedule.get("milestones")
        gamma = lr_schedule.get("gamma", 0.1)
    elif isinstance(lr_schedule, Sequence) and len(lr_schedule) == 2:
        milestones, gamma = lr_schedule
    else:
        milestones, gamma = None, None
    if (
        not isinstance(milestones, Sequence)
        or not all(
            isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 1
            for m in milestones
        )
        or not isinstance(gamma, (int, float, np.floating))
        or not 0 < float(gamma)
    ):
        raise ValueError(
            "The 'lr_schedule' parameter must be None or a pair (milestones, gamma) "
            "with milestones a sequence of positive epoch numbers and gamma > 0. "
            f"Got {lr_schedule!r} instead."
        )
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[int(m) for m in milestones], gamma=float(gamma)
    )


def _tensor_batches(tensors, batch_size, shuffle, drop_last, generator):
    n = tensors[0].shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield tuple(t[idx.to(t.device)] for t in tensors)


def train_module(
    module: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    data: torch.Tensor
    | Sequence[torch.Tensor]
    | Callable[[int, torch.Generator], Iterable[Any]],
    *,
    epochs: int,
    batch_size: int | None = None,
    optimizer: str | type[torch.optim.Optimizer] = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    params: Iterable[Any] | None = None,
    lr_schedule: tuple[Sequence[int], float] | None = None,
    device: str | torch.device = "cpu",
    random_state: int | np.random.RandomState | None = None,
    verbose: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    on_nonfinite: str = "raise",
    epoch_end: Callable[[int, float, nn.Module], bool | None] | None = None,
    channels_last: bool = False,
    desc: str = "training",
    stage: str = "network",
) -> TrainingHistory:
    """Train ``module`` by mini-batch gradient descent on ``loss_fn``.

    Parameters
    ----------
    module : torch.nn.Module
        The network, trained in place. It is moved to ``device``, put in ``train()``
        mode for the epochs and left in ``eval()`` mode on ``device`` on return.
    loss_fn : callable
        ``loss_fn(module, batch) -> torch.Tensor`` returning the scalar loss of a
        batch whose tensors are already on ``device``.
    data : torch.Tensor, sequence of torch.Tensor, or callable
        Either tensors with the same first dimension, cut into batches of
        ``batch_size`` rows (the batch is then the tuple of row slices, in the order
        given), or a factory ``data(epoch, generator)`` returning an iterable of
        batches for that epoch (``batch_size``, ``shuffle`` and ``drop_last`` are then
        unused; use the CPU ``generator`` for any random draw so that results follow
        ``random_state``). Batches may be tensors or tuples/lists/dicts of tensors.
    epochs : int
        Number of passes. ``0`` trains nothing.
    batch_size : int, optional
        Rows per batch; required when ``data`` holds tensors.
    optimizer : {"adam", "adamw", "sgd"} or torch.optim.Optimizer subclass, \
default="adam"
        Built as ``optimizer(params, lr=lr, weight_decay=weight_decay,
        **optimizer_kwargs)``. With ``"adam"`` the weight decay is the *coupled* L2
        penalty (gradient ``+ weight_decay * w``), which is what a Keras/TensorFlow
        L2 regulariser ``c * sum(w**2)`` amounts to with ``weight_decay = 2 c``.
    lr : float, default=1e-3
        Initial learning rate.
    weight_decay : float, default=0.0
        Weight decay passed to the optimiser.
    optimizer_kwargs : dict, optional
        Further optimiser arguments, e.g. ``{"eps": 1e-7}`` for Keras' Adam.
    params : iterable, optional
        Parameters or parameter groups to optimise; default: the parameters of
        ``module`` that require gradients. Parameters outside ``module`` (e.g. learnt
        class centres) must already be on ``device``.
    lr_schedule : (milestones, gamma), optional
        Multiply the learning rate by ``gamma`` after each epoch listed in
        ``milestones`` (``torch.optim.lr_scheduler.MultiStepLR``, stepped per epoch).
    device : str or torch.device, default="cpu"
        See :func:`~sklearn_ood.nn.resolve_device`.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling (a local CPU ``torch.Generator``) and, inside a context
        that restores it afterwards, torch's global generators, which dropout and
        other in-module randomness use. With an integer, CPU training is
        deterministic and does not depend on, nor change, the global torch seed.
    verbose : int, default=0
        ``0``: silent. ``1``: a tqdm progress bar over epochs (on stderr) when tqdm is
        installed, else one line per epoch on stdout. ``2``: also a bar over batches.
    shuffle : bool, default=True
        Shuffle the rows of tensor ``data`` at every epoch.
    drop_last : bool, default=False
        Drop the last incomplete batch of tensor ``data``.
    on_nonfinite : {"raise", "warn"}, default="raise"
        What to do when a batch loss is NaN or infinite (no optimiser step is taken
        on it). ``"raise"``: raise :class:`FloatingPointError`. ``"warn"``: emit a
        :class:`UserWarning`, restore the weights saved at the end of the last
        complete epoch (the initial weights during the first epoch) and stop.
    epoch_end : callable, optional
        ``epoch_end(epoch, mean_loss, module)`` called after every epoch; returning
        ``True`` stops training.
    channels_last : bool, default=False
        Use the channels-last memory format for the module and 4-D inputs (faster
        CPU convolutions).
    desc : str, default="training"
        Label of the progress output.
    stage : str, default="network"
        Stage label of the epochs in the returned history (see
        :class:`TrainingHistory`).

    Returns
    -------
    history : TrainingHistory
        A list of the per-epoch mean batch losses (weighted by batch size).

    Raises
    ------
    FloatingPointError
        If the loss becomes NaN or infinite and ``on_nonfinite="raise"``.

    Notes
    -----
    When ``module`` has BatchNorm layers, a last batch of a single sample is
    merged into the batch before it (or dropped, for batches that cannot be
    concatenated): BatchNorm cannot normalise one value per channel in training
    mode, and the last batch holds one sample whenever the sample count is one
    more than a multiple of the batch size. Every sample is still seen once per
    epoch. A batch of one sample that cannot be merged (``batch_size=1``)
    raises a ``ValueError`` that says so.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import train_module
    >>> X = torch.linspace(-1, 1, 32).reshape(-1, 1)
    >>> y = 3 * X
    >>> net = torch.nn.Linear(1, 1)
    >>> def mse(module, batch):
    ...     xb, yb = batch
    ...     return torch.nn.functional.mse_loss(module(xb), yb)
    >>> history = train_module(net, mse, (X, y), epochs=100, batch_size=8, lr=0.05,
    ...                        random_state=0)
    >>> history[-1] < history[0]
    True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module; got {type(module).__name__}."
        )
    if not callable(loss_fn):
        raise TypeError("loss_fn must be a callable loss_fn(module, batch).")
    epochs = _check_positive_int(epochs, "epochs", allow_zero=True)
    lr = _check_nonneg_float(lr, "lr", strict=True)
    weight_decay = _check_nonneg_float(weight_decay, "weight_decay")
    if on_nonfinite not in _NONFINITE:
        raise ValueError(
            f"The 'on_nonfinite' parameter must be one of {_NONFINITE}. "
            f"Got {on_nonfinite!r} instead."
        )
    verbose = int(verbose)

    if isinstance(data, torch.Tensor):
        data = (data,)
    if callable(data):
        factory = data
    elif (
        isinstance(data, Sequence)
        and data
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        tensors = tuple(data)
        n_samples = tensors[0].shape[0]
        if any(t.ndim == 0 or t.shape[0] != n_samples for t in tensors):
            raise ValueError(
                "All tensors in data must have the same first dimension; got shapes "
                f"{[tuple(t.shape) for t in tensors]}."
            )
        if n_samples == 0:
            raise ValueError("data holds 0 samples; at least 1 is required.")
        batch_size = _check_positive_int(batch_size, "batch_size")
        if drop_last and n_samples < batch_size:
            raise ValueError(
                f"With drop_last=True, batch_size={batch_size} leaves no batch for "
                f"{n_samples} samples."
            )

        def factory(epoch, generator):
            return _tensor_batches(tensors, batch_size, shuffle, drop_last, generator)

    else:
        raise TypeError(
            "data must be a torch.Tensor, a non-empty sequence of torch.Tensor, or a "
            f"callable data(epoch, generator); got {type(data).__name__}."
        )

    dev = resolve_device(device)
    rng = check_random_state(random_state)
    generator = torch.Generator().manual_seed(draw_seed(rng))
    global_seed = draw_seed(rng)

    module.to(dev)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if params is None:
        params = [p for p in module.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, lr, weight_decay, optimizer_kwargs)
    scheduler = _make_scheduler(lr_schedule, opt)

    history = TrainingHistory(stage=stage)
    merge_single = _has_batchnorm(module)
    snapshot = cpu_state_dict(module) if on_nonfinite == "warn" else None
    tqdm = _get_tqdm() if verbose > 0 else None
    epoch_bar = (
        tqdm(total=epochs, desc=desc, unit="epoch", file=sys.stderr)
        if tqdm is not None
        else None
    )

    stop = False
    try:
        with seeded_torch_rng(global_seed, dev):
            module.train()
            for epoch in range(epochs):
                start_time = time.perf_counter()
                epoch_lr = float(opt.param_groups[0]["lr"])
                batches = factory(epoch, generator)
                if merge_single:
                    batches = _no_single_last_batch(batches)
                if tqdm is not None and verbose > 1:
                    batches = tqdm(
                        batches, desc=f"epoch {epoch + 1}", leave=False, file=sys.stderr
                    )
                total, count = 0.0, 0
                for i_batch, batch in enumerate(batches):
                    batch = _move(batch, dev, channels_last)
                    try:
                        loss = loss_fn(module, batch)
                    except ValueError as exc:
                        message = _batchnorm_message(exc)
                        if message is None:
                            raise
                        raise ValueError(message) from exc
                    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                        raise TypeError(
                            "loss_fn must return a scalar torch.Tensor; got "
                            f"{type(loss).__name__}"
                            + (
                                f" of shape {tuple(loss.shape)}."
                                if isinstance(loss, torch.Tensor)
                                else "."
                            )
                        )
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        message = (
                            f"The training loss became {value} at epoch {epoch + 1}, "
                            f"batch {i_batch + 1}. Try a lower learning rate, check "
                            "the input scaling, or look for NaN in the data."
                        )
                        if on_nonfinite == "raise":
                            raise FloatingPointError(message)
                        warnings.warn(
                            message + " Training stopped; the weights of the last "
                            "complete epoch are kept.",
                            UserWarning,
                            stacklevel=2,
                        )
                        module.load_state_dict(snapshot)
                        history.stopped_early = True
                        history.stop_reason = "non-finite loss"
                        stop = True
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    n = _batch_len(batch)
                    total += value * n
                    count += n
                if stop:
                    break
                if count == 0:
                    raise ValueError(f"Epoch {epoch + 1} produced no batch.")
                mean_loss = total / count
                history.append(mean_loss)
                history.lrs.append(epoch_lr)
                history.stages.append(stage)
                if scheduler is not None:
                    scheduler.step()
                if snapshot is not None:
                    snapshot = cpu_state_dict(module)
                if epoch_bar is not None:
                    epoch_bar.set_postfix(loss=f"{mean_loss:.4g}")
                    epoch_bar.update(1)
                elif verbose > 0:
                    print(
                        f"{desc}: epoch {epoch + 1}/{epochs}  loss {mean_loss:.6g}  "
                        f"lr {epoch_lr:.3g}  {time.perf_counter() - start_time:.1f}s",
                        flush=True,
                    )
                if epoch_end is not None and epoch_end(epoch, mean_loss, module):
                    history.stopped_early = epoch + 1 < epochs
                    history.stop_reason = "epoch_end" if history.stopped_early else None
                    break
    finally:
        module.eval()
        if epoch_bar is not None:
            epoch_bar.close()
    return history


def _find_module(module_fn) -> nn.Module | None:
    if isinstance(module_fn, nn.Module):
        return module_fn
    owner = getattr(module_fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def _to_cpu_parts(out):
    if out is None or isinstance(out, torch.Tensor):
        return out if out is None else out.to("cpu")
    if isinstance(out, (tuple, list)):
        return tuple(_to_cpu_parts(o) for o in out)
    if isinstance(out, dict):
        return {k: _to_cpu_parts(v) for k, v in out.items()}
    raise TypeError(
        "module_fn must return a tensor or a tuple/list/dict of tensors; got "
        f"{type(out).__name__}."
    )


def _concat(parts):
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0)
    if isinstance(first, tuple):
        return tuple(_concat([p[i] for p in parts]) for i in range(len(first)))
    return {k: _concat([p[k] for p in parts]) for k in first}


def predict_batches(
    module_fn: Callable[[torch.Tensor], Any],
    X: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    module: nn.Module | None = None,
    channels_last: bool = False,
) -> Any:
    """Apply ``module_fn`` to ``X`` in batches under ``eval()`` and inference mode.

    Parameters
    ----------
    module_fn : callable
        A module, a bound method of one (e.g. ``net.forward_features``) or any
        function of a batch. It may return a tensor or a tuple/list/dict of tensors.
        It must already live on ``device``.
    X : torch.Tensor
        Inputs, batched along the first dimension.
    batch_size : int, default=256
        Rows per forward pass. Results do not depend on it (up to float rounding).
    device : str or torch.device, optional
        Where batches are sent; default: the device of the module's first parameter,
        or the CPU.
    preprocess : callable, optional
        Applied to each batch on ``device`` before ``module_fn`` (e.g. resizing or
        scaling), so that the whole pre-processed data set is never held in memory.
    module : torch.nn.Module, optional
        The module to switch to ``eval()`` (its mode is restored afterwards); found
        from ``module_fn`` when that is a module or one of its bound methods.
    channels_last : bool, default=False
        Send 4-D batches in the channels-last memory format.

    Returns
    -------
    out : torch.Tensor or tuple/dict of torch.Tensor
        The concatenated outputs, on the CPU, as ordinary (non-inference) tensors.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import predict_batches
    >>> net = torch.nn.Linear(3, 2)
    >>> X = torch.randn(10, 3)
    >>> out = predict_batches(net, X, batch_size=4)
    >>> tuple(out.shape), torch.allclose(out, net(X))
    ((10, 2), True)
    """
    if not callable(module_fn):
        raise TypeError("module_fn must be callable.")
    if not isinstance(X, torch.Tensor) or X.ndim == 0:
        raise TypeError("X must be a torch.Tensor with a batch dimension.")
    batch_size = _check_positive_int(batch_size, "batch_size")
    mod = module if module is not None else _find_module(module_fn)
    if device is not None:
        dev = resolve_device(device)
    else:
        first = next(mod.parameters(), None) if mod is not None else None
        dev = first.device if first is not None else torch.device("cpu")

    was_training = mod.training if mod is not None else False
    if mod is not None:
        mod.eval()
    parts = []
    n = X.shape[0]
    try:
        with torch.inference_mode():
            for start in range(0, max(n, 1), batch_size):
                xb = _move(X[start : start + batch_size], dev, channels_last)
                if preprocess is not None:
                    xb = preprocess(xb)
                parts.append(_to_cpu_parts(module_fn(xb)))
    finally:
        if mod is not None and was_training:
            mod.train()
    # Concatenating outside inference mode gives ordinary tensors, which the caller
    # may modify in place.
    return _concat(parts)


def build_module(
    network: type[nn.Module] | nn.Module | Callable[..., nn.Module] | None,
    kwargs: Mapping[str, Any] | None = None,
    *,
    default: type[nn.Module] | Callable[..., nn.Module],
    default_kwargs: Mapping[str, Any] | None = None,
    random_state: int | np.random.RandomState | None = None,
    name: str = "network",
    kwargs_name: str | None = None,
) -> nn.Module:
    """Build the network of an estimator from its ``network`` parameter.

    Parameters
    ----------
    network : torch.nn.Module subclass, torch.nn.Module instance, callable or None
        A class (or factory function) is called with
        ``{**default_kwargs, **kwargs}``; an instance is deep-copied, so the user's
        module is never modified; ``None`` uses ``default``.
    kwargs : dict, optional
        User keyword arguments for the class (skorch's ``module__*``). Not allowed
        with an instance.
    default : torch.nn.Module subclass or callable
        Used when ``network`` is None.
    default_kwargs : dict, optional
        Arguments the estimator derives from the data (e.g. ``num_classes``),
        overridden by ``kwargs`` and ignored for an instance.
    random_state : int, RandomState instance or None, default=None
        Seeds the parameter initialisation (torch's global generator, inside a
        context that restores it).
    name : str, default="network"
        Name of the estimator parameter, for error messages.
    kwargs_name : str, optional
        Name of the keyword-argument parameter; default ``f"{name}_kwargs"``.

    Returns
    -------
    module : torch.nn.Module
        A new module.

    Raises
    ------
    TypeError
        If ``network`` is neither a module class, a callable returning a module nor
        a module instance, or the class rejects the arguments.
    ValueError
        If ``kwargs`` are given with an instance.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import build_module
    >>> net = build_module(None, {"out_features": 2}, default=torch.nn.Linear,
    ...                    default_kwargs={"in_features": 3}, random_state=0)
    >>> tuple(net.weight.shape)
    (2, 3)
    """
    kwargs_name = kwargs_name or f"{name}_kwargs"
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(
            f"The '{kwargs_name}' parameter must be a dict or None. Got "
            f"{type(kwargs).__name__} instead."
        )
    if network is None:
        network = default
    if isinstance(network, nn.Module):
        if kwargs:
            raise ValueError(
                f"The '{kwargs_name}' parameter can only be used when '{name}' is a "
                f"class; got an instance of {type(network).__name__} together with "
                f"{sorted(kwargs)}."
            )
        return copy.deepcopy(network)
    if not callable(network):
        raise TypeError(
            f"The '{name}' parameter must be a torch.nn.Module subclass, an instance "
            f"of one, or None. Got {network!r} instead."
        )
    merged = {**(default_kwargs or {}), **kwargs}
    with seeded_torch_rng(draw_seed(random_state)):
        try:
            module = network(**merged)
        except TypeError as exc:
            raise TypeError(
                f"Could not build the '{name}' {network!r} with arguments {merged}: "
                f"{exc}"
            ) from exc
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"The '{name}' parameter must be a torch.nn.Module subclass, an instance "
            f"of one, or None; calling {network!r} returned a "
            f"{type(module).__name__}."
        )
    return module
