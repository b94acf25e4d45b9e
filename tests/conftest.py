"""Fixtures the tests share; plain helpers (tolerances, cases, targets) are in fastwb.testing."""
import pytest

from fastwb import _core
from fastwb.testing import PATHS


@pytest.fixture
def kernel_path(request):
    """Apply one of PATHS for the duration of a test (parametrize indirectly)."""
    previous = _core.tuning(**PATHS[request.param])
    yield request.param
    _core.tuning(**previous)
