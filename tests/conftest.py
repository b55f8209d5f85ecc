"""Suite-wide settings.

The extractor's default ``n_threads="auto"`` follows the machine's load (it
uses no more threads than other processes leave free), and some convolutions
round differently with 1 and 2 threads. So that tests comparing two feature
computations bit for bit do not depend on what else the machine runs, the
load probe ``runnable_elsewhere`` reports an idle machine for the whole
session. The tests of the thread budget itself set it per test, and the test
of the probe gets the real function from this fixture.
"""

import pytest

from sklearn_ood.utils import _threads


@pytest.fixture(autouse=True, scope="session")
def real_runnable_elsewhere():
    real = _threads.runnable_elsewhere
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_threads, "runnable_elsewhere", lambda: 0)
        yield real
