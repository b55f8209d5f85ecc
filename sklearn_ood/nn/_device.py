"""Device, random-number, thread and pickling helpers shared by the torch estimators.

Nothing here changes global torch state permanently: random draws go through a local
:class:`torch.Generator` and :func:`torch_threads` restores the thread count it changes.
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Options
from torch import nn

__all__ = [
    "DEVICE_CONSTRAINT",
    "DeviceWarning",
    "TorchEstimatorMixin",
    "compute_device",
    "cpu_state_dict",
    "draw_seed",
    "resolve_device",
    "seeded_torch_rng",
    "torch_generator",
    "torch_threads",
]

_DEVICE_NAMES = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

# Seeds are drawn in [0, 2**31 - 1) so that they fit every torch and numpy seeding API.
_MAX_SEED = np.iinfo(np.int32).max


class DeviceWarning(UserWarning):
    """A device asked for is not available and the computation falls back.

    For example ``device="cuda"`` on a machine without CUDA runs on the CPU
    (so that an estimator configured on a GPU machine still runs, and a fitted
    one still loads, elsewhere). Filter it with
    ``warnings.filterwarnings("ignore", category=DeviceWarning)``.

    Examples
    --------
    >>> import warnings
    >>> from sklearn_ood.nn import DeviceWarning
    >>> with warnings.catch_warnings():
    ...     warnings.filterwarnings("ignore", category=DeviceWarning)
    """


class _DeviceOption(Options):
    """scikit-learn parameter constraint: 'auto', 'cpu', 'cuda', 'cuda:N' or a device.

    A subclass of scikit-learn's ``Options`` (the only way to plug a constraint
    into ``_parameter_constraints``) that also accepts ``cuda:N`` and devices.
    """

    def __init__(self):
        super().__init__(str, {"auto", "cpu", "cuda"})

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, torch.device):
            return True
        return isinstance(val, str) and bool(_DEVICE_NAMES.match(val.strip().lower()))

    def __str__(self) -> str:
        return "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"


#: The one ``_parameter_constraints`` entry of every ``device`` parameter.
DEVICE_CONSTRAINT = [_DeviceOption()]

#: What ``device`` means, for the docstrings of every estimator that has one.
DEVICE_DOC = """Where the computation runs: ``"auto"`` is the first GPU when CUDA
        is available and the CPU otherwise; ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"`` (or a :class:`torch.device`) name a device. A CUDA device
        asked for on a machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a ``device`` parameter into an available :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        ``"auto"`` selects the first CUDA device when one is available and the CPU
        otherwise. A CUDA device asked for on a machine without CUDA falls back to the
        CPU with a :class:`DeviceWarning`, so that an estimator configured on a GPU
        machine still runs (and a fitted one still loads) elsewhere.

    Returns
    -------
    device : torch.device
        The device to run on.

    Raises
    ------
    ValueError
        If ``device`` is not one of the accepted values, or names a CUDA index that
        does not exist.

    Examples
    --------
    >>> from sklearn_ood.nn import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if not _DeviceOption().is_satisfied_by(device):
        raise ValueError(
            "The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or a "
            f"torch.device. Got {device!r} instead."
        )
    if isinstance(device, torch.device):
        dev = device
    else:
        name = device.strip().lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(name)

    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        warnings.warn(
            f"The 'device' parameter asks for the GPU ({str(dev)!r}) but CUDA is not "
            "available on this machine; falling back to the CPU.",
            DeviceWarning,
            stacklevel=2,
        )
        return torch.device("cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"The 'device' parameter asks for {str(dev)!r} but only "
            f"{torch.cuda.device_count()} CUDA device(s) are available."
        )
    return dev


def compute_device(device, X=None) -> torch.device | None:
    """Where a feature detector computes on ``X``: a torch device, or None for NumPy.

    The input selects the library and ``device`` the place: NumPy input that
    is computed on the CPU stays in NumPy (None); a torch tensor is computed
    with torch, on its own device under ``"auto"`` when it already lies on a
    GPU; anything computed on a GPU uses torch there.
    """
    tensor = X is not None and torch.is_tensor(X)
    if isinstance(device, str) and device.strip().lower() == "auto" and tensor:
        if X.device.type == "cuda":
            return X.device
    dev = resolve_device(device)
    if dev.type == "cpu" and not tensor:
        return None
    return dev


def draw_seed(random_state: int | np.random.RandomState | None) -> int:
    """Draw an integer seed from anything ``check_random_state`` accepts.

    A ``RandomState`` instance is advanced by one draw (as scikit-learn estimators do).

    Parameters
    ----------
    random_state : int, RandomState instance or None
        Source of the seed.

    Returns
    -------
    seed : int
        A seed in ``[0, 2**31 - 1)``.
    """
    return int(check_random_state(random_state).randint(_MAX_SEED))


def torch_generator(
    random_state: int | np.random.RandomState | None,
    device: str | torch.device = "cpu",
) -> torch.Generator:
    """Create a local :class:`torch.Generator` seeded from ``random_state``.

    The global torch random state is neither read nor changed.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        Seed source, resolved with :func:`sklearn.utils.check_random_state`; an integer
        gives the same generator every time.
    device : str or torch.device, default="cpu"
        Device of the generator. Shuffling indices is done with a CPU generator so that
        results do not depend on the accelerator.

    Returns
    -------
    generator : torch.Generator
        A freshly seeded generator.
    """
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(draw_seed(random_state))
    return generator


def cpu_state_dict(module: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    """Return a copy of ``module.state_dict()`` with every tensor detached on the CPU.

    The copy shares no memory with the module, so later training does not change it;
    it pickles and loads on a machine without a GPU.

    Parameters
    ----------
    module : torch.nn.Module
        The module to snapshot.

    Returns
    -------
    state_dict : OrderedDict of str to torch.Tensor
        CPU copies of the parameters and buffers.
    """
    return OrderedDict(
        (key, value.detach().to("cpu", copy=True))
        for key, value in module.state_dict().items()
    )


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Context manager that sets torch's intra-op thread count and restores it on exit.

    Parameters
    ----------
    n_threads : int or None
        Number of threads inside the context; ``None`` leaves the setting unchanged.

    Yields
    ------
    None

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n_threads is None:
        yield
        return
    if (
        isinstance(n_threads, bool)
        or not isinstance(n_threads, (int, np.integer))
        or n_threads < 1
    ):
        raise ValueError(
            "The 'n_threads' parameter must be a positive integer or None. "
            f"Got {n_threads!r} instead."
        )
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def seeded_torch_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's *global* generators inside the context and restore them afterwards.

    Used where torch draws from its global generator with no way to pass a local one
    (parameter initialisation in module constructors, :class:`torch.nn.Dropout`): the
    draws become reproducible and the caller's global random state is left as it was.

    Parameters
    ----------
    seed : int
        Seed for the CPU generator and, when ``device`` is a CUDA device, its generator.
    device : torch.device, optional
        The accelerator whose generator is also forked and seeded.

    Yields
    ------
    None
    """
    cuda_devices = []
    if device is not None and device.type == "cuda":
        index = (
            device.index if device.index is not None else torch.cuda.current_device()
        )
        cuda_devices = [index]
    with torch.random.fork_rng(devices=cuda_devices):
        torch.default_generator.manual_seed(int(seed))
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(int(seed))
        yield


def _same_device(a: torch.device, b: torch.device) -> bool:
    def norm(d):
        if d.type == "cuda" and d.index is None:
            return ("cuda", torch.cuda.current_device())
        return (d.type, d.index)

    return norm(a) == norm(b)


def _module_device(module: nn.Module) -> torch.device | None:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return None


def _to_cpu_obj(obj):
    """CPU version of a module/tensor (or of a list, tuple or dict holding them)."""
    if isinstance(obj, nn.Module):
        dev = _module_device(obj)
        if dev is None or dev.type == "cpu":
            return obj
        return copy.deepcopy(obj).to("cpu")
    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else obj.detach().to("cpu")
    if type(obj) in (list, tuple):
        return type(obj)(_to_cpu_obj(o) for o in obj)
    if type(obj) in (dict, OrderedDict):
        return type(obj)((k, _to_cpu_obj(v)) for k, v in obj.items())
    return obj


class TorchEstimatorMixin:
    """Pickling and device caching for estimators that hold fitted torch modules.

    Fitted modules are stored on the CPU (e.g. ``module_``); copies on an accelerator
    are made on demand by :meth:`_module_on_device` and cached in attributes whose
    names start with ``_cache``. On pickling, those caches are dropped and any module
    or tensor that is not on the CPU is replaced by a CPU copy, so a fitted estimator
    loads on a machine without a GPU. Put the mixin first among the bases.
    """

    def __getstate__(self):
        parent = getattr(super(), "__getstate__", None)
        state = parent() if parent is not None else self.__dict__
        if state is None:
            state = {}
        return {
            key: _to_cpu_obj(value)
            for key, value in dict(state).items()
            if not key.startswith("_cache")
        }

    def __setstate__(self, state):
        state = {k: v for k, v in state.items() if not k.startswith("_cache")}
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)

    def _module_on_device(
        self, attr: str, device: torch.device, *, channels_last: bool = False
    ) -> nn.Module:
        """``getattr(self, attr)`` on ``device``, in evaluation mode.

        The one way a fitted module reaches a device: the CPU module itself when
        it is usable as it is, otherwise a copy (moved, and in the channels-last
        memory format when asked) made once and cached until the module changes.
        """
        module = getattr(self, attr)
        current = _module_device(module)
        if not channels_last and (current is None or _same_device(current, device)):
            return module
        cache_name = f"_cache_{attr}"
        key = (module, str(device), channels_last)
        cached = self.__dict__.get(cache_name)
        if cached is not None and cached[0] is module and cached[1:3] == key[1:]:
            return cached[3]
        moved = copy.deepcopy(module).to(device).eval()
        if channels_last:
            moved = moved.to(memory_format=torch.channels_last)
        setattr(self, cache_name, (*key, moved))
        return moved

    def _clear_torch_cache(self) -> None:
        """Drop the device copies cached by :meth:`_module_on_device`."""
        for key in [k for k in self.__dict__ if k.startswith("_cache")]:
            del self.__dict__[key]
