"""Progress bars that obey one ``verbose`` convention (tqdm is optional)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

__all__ = ["interactive_stderr", "progress"]


def interactive_stderr() -> bool:
    """Whether stderr is a terminal or a notebook's output stream."""
    stream = sys.stderr
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


@contextlib.contextmanager
def progress(
    total: int, verbose, *, desc: str, unit: str = "img", delay: float = 2.0
) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr, as ``verbose`` says; yields ``update(n)``.

    Parameters
    ----------
    total : int
        Number of items.
    verbose : "auto", bool or int
        ``"auto"``: a bar when stderr is a terminal (or a notebook), shown only
        once the work has lasted ``delay`` seconds; True or a positive int: a bar
        from the start (a one-line summary at the end when tqdm is missing);
        False or 0: nothing.
    desc, unit : str
        Label and unit of the bar.
    delay : float, default=2.0
        Seconds before an ``"auto"`` bar appears.

    Yields
    ------
    update : callable
        ``update(n)`` after ``n`` more items.

    Examples
    --------
    >>> from sklearn_ood.utils._progress import progress
    >>> with progress(3, False, desc="demo") as update:
    ...     update(3)
    """
    if verbose == "auto" and not interactive_stderr():
        verbose = False
    if not verbose:
        yield lambda n: None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None:
        done, tic = [0], time.perf_counter()
        yield lambda n: done.__setitem__(0, done[0] + n)
        if verbose != "auto":
            elapsed = time.perf_counter() - tic
            print(
                f"{desc}: {done[0]} {unit}s in {elapsed:.1f}s "
                f"({done[0] / max(elapsed, 1e-9):.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
        return
    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        delay=delay if verbose == "auto" else 0.0,
    )
    try:
        yield bar.update
    finally:
        bar.close()
