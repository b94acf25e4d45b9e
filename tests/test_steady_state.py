"""A training step allocates no NumPy memory once its workspace exists."""
import tracemalloc

import numpy as np
import pytest

import fastwb

NUMPY_DOMAIN = np.lib.tracemalloc_domain


def numpy_bytes(snapshot) -> int:
    traces = snapshot.filter_traces([tracemalloc.DomainFilter(True, NUMPY_DOMAIN)])
    return sum(stat.size for stat in traces.statistics("filename"))


OPTIMIZERS = {
    "sgd": lambda: fastwb.SGD(lr=0.01),
    "adam": lambda: fastwb.Adam(lr=0.01),
    "momentum, clipped": lambda: fastwb.SGD(lr=0.01, momentum=0.9, clip_norm=0.5,
                                            clip_value=0.1),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("sizes,batch", [([16, 32, 4], 1), ([64, 128, 10], 32)])
def test_train_step_allocates_nothing_in_steady_state(sizes, batch, optimizer):
    rng = np.random.default_rng(0)
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0, l2=1e-4,
                         dropout=0.0 if optimizer == "sgd" else 0.2)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    opt = OPTIMIZERS[optimizer]()
    net.train_step(X, y, opt)                      # sizes the workspace, creates the state
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
