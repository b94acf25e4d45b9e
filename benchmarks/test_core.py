"""Benchmarks of fastwb's compiled core against its NumPy reference, one test per job.

Jobs:

- ``predict_batch``: ``net.predict(X)`` on a batch;
- ``predict_one``: ``net.predict(x)`` of one 1-D sample on 16-32-4 (per-call overhead);
- ``backward``: ``net.gradients(X, y)``, forward and backward pass without update;
- ``update``: one Adam ``optimizer.apply_gradients(net, g)`` from a given flat gradient;
- ``train_step``: one SGD or one Adam ``net.train_step`` (forward, backward, update);
- ``fit_epoch``: one Adam epoch of ``net.fit``, 4096 samples of 64-128-10 in batches of 32.

Each job runs per shape (the batch jobs), dtype (float32, float64), thread count
and backend. ``n_threads`` is fastwb's ``Network(n_threads=...)`` and also the
BLAS thread limit (threadpoolctl) for both backends, so the reference gets the
same threads. fastwb and the reference of one job/shape/dtype/threads share a
benchmark group, so pytest-benchmark prints them side by side. Every case first
checks fastwb against the reference from identical parameters (norm-relative
error within 1e-4 for float32, 1e-10 for float64), so a fast but wrong core fails.

Profiles (``--fastwb-profile``, see conftest.py):

- ``quick`` (default): 16-32-4 b1, 64-128-10 b32 and 784-256-128-10 b128 at 1 and
  2 threads, at most 0.2 s of rounds per case (at least 3 rounds);
- ``full``: also 1024-4096-4096-1024 b256, at 1, 2, 4, ... up to the core count,
  up to 2 s of rounds per case (at least 5).

Run from the repository root::

    pytest benchmarks/ --benchmark-only                             # quick, timed
    pytest benchmarks/ --benchmark-only --fastwb-profile full       # full, timed
    pytest benchmarks/ --benchmark-only --fastwb-large              # quick and the large shape
    pytest benchmarks/ --benchmark-disable -q -p no:cacheprovider   # CI: checks, each body once

``-k update`` (or ``-k "train_step and adam"``, ``-k 784``) picks jobs and shapes;
``--benchmark-max-time``/``--benchmark-min-rounds`` override the profile's timing.
For one table of speed ratios with a NumPy GEMM floor, run ``python benchmarks/compare.py``.
"""
from __future__ import annotations

import pytest

import fastwb
from fastwb.bench.cases import OPTIMIZERS, make_data, make_fit_data, make_optimizer, make_pair
from fastwb.bench.checks import (check_fit, check_gradients, check_predict, check_train_step,
                                 check_update, flat_gradients)
from fastwb.bench.shapes import FIT_SHAPE, SINGLE_SAMPLE, Shape

pytestmark = pytest.mark.usefixtures("blas_threads")


def _case(benchmark, job: str, shape: Shape, dtype: str, n_threads: int,
          backend: str) -> tuple[fastwb.Network, fastwb.Network, fastwb.Network]:
    """fastwb's and the reference's networks of one case, and the one ``backend`` times."""
    net, ref = make_pair(shape, dtype, n_threads)
    # one group per job/shape/dtype/threads puts both backends in one comparison table
    benchmark.group = f"{job} {shape.id} {dtype} {n_threads}t"
    return net, ref, net if backend == "compiled" else ref


def test_predict_batch(benchmark, shape: Shape, dtype: str, n_threads: int,
                       backend: str) -> None:
    """``predict`` on a batch."""
    net, ref, timed = _case(benchmark, "predict_batch", shape, dtype, n_threads, backend)
    X, _ = make_data(shape, dtype)
    check_predict(net, ref, X)
    benchmark(timed.predict, X)


def test_predict_one(benchmark, dtype: str, n_threads: int, backend: str) -> None:
    """``predict`` of one 1-D sample: the per-call overhead."""
    net, ref, timed = _case(benchmark, "predict_one", SINGLE_SAMPLE, dtype, n_threads, backend)
    x = make_data(SINGLE_SAMPLE, dtype)[0][0]
    check_predict(net, ref, x)
    benchmark(timed.predict, x)


def test_backward(benchmark, shape: Shape, dtype: str, n_threads: int, backend: str) -> None:
    """``gradients``: forward and backward pass, no update."""
    net, ref, timed = _case(benchmark, "backward", shape, dtype, n_threads, backend)
    X, y = make_data(shape, dtype)
    check_gradients(net, ref, X, y)
    benchmark(timed.gradients, X, y)


def test_update(benchmark, shape: Shape, dtype: str, n_threads: int, backend: str) -> None:
    """One Adam ``apply_gradients`` step from a given flat gradient: the update alone."""
    net, ref, timed = _case(benchmark, "update", shape, dtype, n_threads, backend)
    X, y = make_data(shape, dtype)
    gradients = flat_gradients(net.gradients(X, y))
    check_update(net, ref, gradients)
    benchmark(make_optimizer("adam").apply_gradients, timed, gradients)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_train_step(benchmark, shape: Shape, dtype: str, n_threads: int, backend: str,
                    optimizer: str) -> None:
    """One ``train_step``: forward, loss, backward and update in one call."""
    net, ref, timed = _case(benchmark, f"train_step {optimizer}", shape, dtype, n_threads,
                            backend)
    X, y = make_data(shape, dtype)
    check_train_step(net, ref, X, y, optimizer)
    benchmark(timed.train_step, X, y, make_optimizer(optimizer))


def test_fit_epoch(benchmark, dtype: str, n_threads: int, backend: str) -> None:
    """One Adam epoch of ``fit`` in minibatches of ``FIT_SHAPE.batch``."""
    net, ref, timed = _case(benchmark, "fit_epoch", FIT_SHAPE, dtype, n_threads, backend)
    X, y = make_fit_data(dtype)
    check_fit(net, ref, X, y)
    benchmark(timed.fit, X, y, make_optimizer("adam"), epochs=1, batch_size=FIT_SHAPE.batch)
