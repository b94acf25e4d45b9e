"""A training step allocates no NumPy memory once its workspace exists."""
import tracemalloc

import numpy as np
import pytest

import fastwb

NUMPY_DOMAIN = np.lib.tracemalloc_domain


def numpy_bytes(snapshot) -> int:
    traces = snapshot.filter_traces([tracemalloc.DomainFilter(True, NUMPY_DOMAIN)])
    return sum(stat.size for stat in traces.statistics("filename"))


@pytest.mark.parametrize("sizes,batch", [([16, 32, 4], 1), ([64, 128, 10], 32)])
def test_train_step_allocates_nothing_in_steady_state(sizes, batch):
    rng = np.random.default_rng(0)
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    opt = fastwb.SGD(lr=0.01)
    net.train_step(X, y, opt)                      # sizes the workspace
    tracemalloc.start()
    try:
        before = numpy_bytes(tracemalloc.take_snapshot())
        for _ in range(50):
            net.train_step(X, y, opt)
        after = numpy_bytes(tracemalloc.take_snapshot())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert after == before
    assert peak < 64 * 1024          # no hidden per-step buffers either


def test_allocation_is_detected():
    """The measurement sees NumPy allocations (so the test above can fail)."""
    tracemalloc.start()
    try:
        before = numpy_bytes(tracemalloc.take_snapshot())
        kept = np.ones(10_000)
        after = numpy_bytes(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    assert after - before >= kept.nbytes
