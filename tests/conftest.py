"""Fixtures the tests share; plain helpers (tolerances, cases, targets) are in fastwb.testing."""
import signal

import pytest

from fastwb import _core
from fastwb.testing import PATHS


@pytest.fixture
def kernel_path(request):
    """Apply one of PATHS for the duration of a test (parametrize indirectly)."""
    previous = _core.tuning(**PATHS[request.param])
    yield request.param
    _core.tuning(**previous)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler (KeyboardInterrupt) for a Ctrl-C test, whatever
    the process inherited: a job a shell starts in the background begins with
    SIGINT ignored, and a plugin may have set its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
