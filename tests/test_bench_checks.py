"""The benchmarks' correctness checks (fastwb.bench.checks)."""
import numpy as np
import pytest

from fastwb.bench.checks import assert_close


def test_a_float32_check_settles_on_the_float64_result():
    """Where the reference's own float32 sum is off, the float64 truth decides."""
    truth = np.array([1.0, 1e-3])
    numpy32 = np.array([1.0, 2e-3])             # off by ~1e-3 relative: cancellation
    close = np.array([1.0, 1.00001e-3])
    assert_close(close, numpy32, "float32", "within the truth", truth)
    with pytest.raises(AssertionError, match="exceeds"):
        assert_close(close, numpy32, "float32", "no truth")
    with pytest.raises(AssertionError, match="from the float64 result"):
        assert_close(np.array([1.0, 5e-3]), numpy32, "float32", "worse than NumPy", truth)
