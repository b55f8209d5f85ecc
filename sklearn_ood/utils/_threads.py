"""Thread budgets that leave room for other busy processes, without environment tweaks.

Why this exists
---------------
torch runs its CPU kernels on an OpenMP team (GNU libgomp in the PyPI wheels). When
a parallel region ends, libgomp's idle threads spin-wait for the next one: with
``OMP_WAIT_POLICY`` unset, for about 300,000 pause instructions (a few ms)
before they sleep. On a machine where another process keeps a core busy, the
spinning threads and the busy process compete for the cores, the operating
system preempts the thread that holds the next piece of work, and every parallel
region waits for a scheduler time slice: torch inference ran 5-10 times slower
on the 2-core development machines (20 instead of 110-200 images/s, measured
side by side). ``OMP_WAIT_POLICY=PASSIVE`` avoids it, but libgomp reads the
variable once, when torch is imported, and a library must not change the
process environment for its user.

What a library can do instead is use no more threads than there are idle
cores: a thread that never waits for a preempted partner never spins. A
region run by one thread is not parallel at all, and with ``k`` free cores the
``k`` threads of the team each have a core. :class:`ThreadBudget` estimates the
free cores from the number of threads of *other* processes that are runnable
right now (``/proc/loadavg`` minus this process's running threads, Linux only;
elsewhere, or for a process pinned to some of the CPUs, nothing changes). A
process that spins is runnable whether or not it gets a core, so the count does
not drop when our own threads crowd it out. The median of the recent samples
decides, and the callers set the thread count inside a context that restores it
(the torch estimators set ``torch.set_num_threads`` per batch and restore it).
OpenBLAS itself is kept to one thread where its synchronisation dominates:
:func:`single_blas_thread`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = [
    "ThreadBudget",
    "adaptive_threads",
    "available_cpus",
    "blas_controller",
    "blas_threads",
    "online_cpus",
    "runnable_elsewhere",
    "single_blas_thread",
    "threaded_map",
]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def online_cpus() -> int:
    """CPUs of the machine (those the system counts as online), at least 1."""
    return max(1, os.cpu_count() or 1)


def _own_running_threads() -> int:
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        # The state letter follows the command name, which is in parentheses.
        if stat[stat.rindex(")") + 2 : stat.rindex(")") + 3] == "R":
            count += 1
    return max(count, 1)  # the thread reading this is running


def runnable_elsewhere() -> int | None:
    """Threads of other processes that are runnable now, or None when unknown.

    The fourth field of ``/proc/loadavg`` counts the runnable threads of the
    whole system at the moment of reading, this process's own included; those
    (threads in state ``R`` in ``/proc/self/task``) are subtracted.

    Returns
    -------
    count : int or None
        None where ``/proc`` is not available (not Linux).
    """
    try:
        with open("/proc/loadavg") as f:
            total = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, total - _own_running_threads())


class ThreadBudget:
    """How many threads to use now: at most ``max_threads``, at most the free CPUs.

    The free CPUs are those of this process's affinity mask minus the median
    number of runnable threads of other processes over the recent samples.
    A process whose affinity mask is a strict subset of the machine's CPUs is
    not adapted (``max_threads`` always): the machine-wide count cannot say
    which CPUs the other threads run on.

    Parameters
    ----------
    max_threads : int
        Upper bound (e.g. the user's ``torch.get_num_threads()``).
    window : int, default=5
        Number of recent samples whose median is used, so that a process that
        runs for an instant does not change the decision.

    Examples
    --------
    >>> from sklearn_ood.utils._threads import ThreadBudget
    >>> budget = ThreadBudget(max_threads=2)
    >>> 1 <= budget.threads() <= 2
    True
    """

    def __init__(self, max_threads: int, window: int = 5) -> None:
        self.max_threads = max(1, int(max_threads))
        self._samples: deque[int] = deque(maxlen=window)
        self._cpus = available_cpus()
        # The runnable count is machine-wide: it says how busy *our* CPUs are
        # only when this process may run on all of them. A process pinned to
        # some CPUs (a cpuset container, taskset) is taken to own them.
        self._adaptive = self._cpus >= online_cpus()

    def sample(self) -> None:
        """Record how many threads of other processes are runnable now."""
        if not self._adaptive:
            return
        busy = runnable_elsewhere()
        if busy is not None:
            self._samples.append(busy)

    def threads(self) -> int:
        """Sample once, then ``clip(cpus - median busy, 1, max_threads)``."""
        self.sample()
        if not self._samples:
            return self.max_threads
        ordered = sorted(self._samples)
        busy = ordered[(len(ordered) - 1) // 2]  # lower median
        return int(min(self.max_threads, max(1, self._cpus - busy)))


_CONTROLLER_LOCK = threading.Lock()
_CONTROLLER: list = []  # one ThreadpoolController, created on first use


def blas_controller() -> ThreadpoolController:
    """The process's one cached :class:`threadpoolctl.ThreadpoolController`."""
    with _CONTROLLER_LOCK:
        if not _CONTROLLER:
            _CONTROLLER.append(ThreadpoolController())  # ~1 ms: created once
        return _CONTROLLER[0]


def blas_threads() -> int:
    """BLAS's own thread count (the largest of the loaded libraries'), at most the CPUs
    (``joblib.cpu_count``).

    ``threadpoolctl`` limits a caller sets apply, so a caller that runs its own
    threads with single-threaded BLAS inside uses no more than this.
    """
    import joblib  # its count honours cgroup CPU quotas (containers)

    libs = blas_controller().select(user_api="blas").info()
    count = max((lib["num_threads"] for lib in libs), default=1)
    return max(1, min(count, joblib.cpu_count()))


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the enclosed BLAS/LAPACK calls on one BLAS thread; restore the limit after.

    Used around the ``d x d`` factorisations of the Gaussian fit (eigen-
    decomposition, Cholesky, triangular inverse) and around the kNN search's
    own worker threads (each runs single-threaded BLAS on its tile). A
    symmetric eigen-decomposition is thousands of small, memory-bound BLAS calls
    (the tridiagonal reduction), and OpenBLAS (pthreads) synchronises its threads
    in each by spinning; when other processes occupy the cores, every
    synchronisation waits for a scheduler time slice. Measured on 2 cores under
    load: a 1280 x 1280 ``eigh`` took 7.3 s on 2 threads and 0.76 s on 1; a
    Ledoit-Wolf fit of 400 x 1280 features (six decompositions) took 37-52 s
    instead of 2.3 s before this.

    OpenBLAS's thread count is process-wide, and threadpoolctl ignores limits
    set from a thread other than the one that first took control, so only the
    main thread limits it (restored on exit); in other threads (concurrent
    fits) this is a no-op, so that no thread restores a limit another one set.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.utils._threads import single_blas_thread
    >>> with single_blas_thread():
    ...     w = np.linalg.eigvalsh(np.eye(3))
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with blas_controller().limit(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def adaptive_threads(mode, get_threads, set_threads) -> Iterator:
    """Set a library's thread count per step of a loop; restore it on exit.

    Parameters
    ----------
    mode : "auto", int or None
        ``"auto"``: before each step, ``ThreadBudget(get_threads()).threads()``;
        an int: that many threads; None: leave the setting alone.
    get_threads, set_threads : callable
        The library's getter and setter (e.g. ``torch.get_num_threads`` and
        ``torch.set_num_threads``).

    Yields
    ------
    adjust : callable
        Call it before each step; it changes the setting only when the
        decision changes.

    Examples
    --------
    >>> from sklearn_ood.utils._threads import adaptive_threads
    >>> setting = {"n": 4}
    >>> with adaptive_threads(1, lambda: setting["n"], lambda n: setting.update(n=n)) as adjust:
    ...     adjust()
    ...     inside = setting["n"]
    >>> inside, setting["n"]
    (1, 4)
    """  # noqa: E501
    previous = get_threads()
    current = [previous]
    budget = ThreadBudget(previous) if mode == "auto" else None

    def adjust() -> None:
        if mode is None:
            return
        n = budget.threads() if budget is not None else int(mode)
        if n != current[0]:
            set_threads(n)
            current[0] = n

    try:
        yield adjust
    finally:
        if current[0] != previous:
            set_threads(previous)


@contextlib.contextmanager
def threaded_map(n_threads: int):
    """A ``map`` over up to ``n_threads`` threads, each with single-threaded BLAS.

    For work that NumPy runs without the GIL (products, ufuncs, reductions):
    the kNN search's tiles, the Gaussian fit's row blocks. Inside the block,
    BLAS is limited to one thread (:func:`single_blas_thread`) and the
    caller's ``np.errstate`` (modes and callback) applies in the workers. With
    one thread, or outside the main thread (a caller's own thread pool, where
    the BLAS limit cannot be set), it is the builtin ``map``, in order, with
    BLAS's own threads.

    Examples
    --------
    >>> from sklearn_ood.utils._threads import threaded_map
    >>> with threaded_map(2) as run:
    ...     list(run(abs, [-1, 2, -3]))
    [1, 2, 3]
    """
    if n_threads < 2 or threading.current_thread() is not threading.main_thread():
        yield map
        return
    errors, callback = np.geterr(), np.geterrcall()

    def run(fn, *iterables):
        def in_caller_errstate(*args):
            with np.errstate(call=callback, **errors):
                return fn(*args)

        return pool.map(in_caller_errstate, *iterables)

    with single_blas_thread(), ThreadPoolExecutor(n_threads) as pool:
        yield run
