"""Benchmarks of the compiled core against the NumPy reference (pytest-benchmark).

Cases: ``predict``, one SGD step, one Adam step, and an Adam epoch of ``fit``.
Every case is timed on both backends and the two runs share one benchmark group,
so pytest-benchmark prints them side by side. Each case also checks the compiled
result against the reference (norm-relative error within 1e-4 for float32,
1e-10 for float64), so a fast but wrong core fails here.

Run from the repository root::

    pytest benchmarks/ --benchmark-only                  # time the standard shapes
    pytest benchmarks/ --benchmark-only --fastwb-large   # also 1024-4096-4096-1024
    pytest benchmarks/ --benchmark-disable               # correctness only, each body once

pytest-benchmark's defaults (about 1 s of rounds per case) keep the standard
shapes to about a minute on two cores; ``--benchmark-max-time 0.2`` shortens it.
For one table of speed ratios, with a NumPy GEMM floor, run
``python benchmarks/compare.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from _common import (BACKENDS, DTYPES, FIT_SHAPE, LARGE_MARKER, OPTIMIZER_OF, SHAPES, Shape,
                     assert_close, check_fit, check_train_step, make_data, make_fit_data,
                     make_optimizer, make_pair)

parametrize_case = pytest.mark.parametrize("shape, dtype, backend", [
    pytest.param(shape, dtype, backend, id=f"{shape.id}-{dtype}-{backend}",
                 marks=[getattr(pytest.mark, LARGE_MARKER)] if shape.large else [])
    for shape in SHAPES for dtype in DTYPES for backend in BACKENDS
])


def _group(op: str, shape: Shape, dtype: str) -> str:
    # one group per shape/dtype/op puts both backends in one comparison table
    return f"{op} {shape.id} {dtype}"


@parametrize_case
def test_predict(benchmark, shape: Shape, dtype: str, backend: str) -> None:
    """Time ``predict`` on a batch; the timed output must match the other backend's."""
    net, ref = make_pair(shape, dtype)
    X, _ = make_data(shape, dtype)
    benchmark.group = _group("predict", shape, dtype)
    if backend == "compiled":
        compiled_out = benchmark(net.predict, X)
        reference_out = ref.predict(X)
    else:
        reference_out = benchmark(ref.predict, X)
        compiled_out = net.predict(X)
    assert_close(compiled_out, reference_out, dtype, f"predict {shape.id}")


@parametrize_case
@pytest.mark.parametrize("op", list(OPTIMIZER_OF))
def test_train_step(benchmark, shape: Shape, dtype: str, backend: str, op: str) -> None:
    """Check one SGD (``train_step``) or Adam (``adam_step``) step against the
    reference, then time repeated steps."""
    net, ref = make_pair(shape, dtype)
    X, y = make_data(shape, dtype)
    check_train_step(net, ref, X, y, OPTIMIZER_OF[op])
    timed = net if backend == "compiled" else ref
    benchmark.group = _group(op, shape, dtype)
    loss = benchmark(timed.train_step, X, y, make_optimizer(OPTIMIZER_OF[op]))
    assert np.isfinite(loss) and np.isfinite(timed.parameters).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_epoch(benchmark, dtype: str, backend: str) -> None:
    """Check an Adam epoch of ``fit`` against the reference, then time epochs."""
    net, ref = make_pair(FIT_SHAPE, dtype)
    X, y = make_fit_data(dtype)
    check_fit(net, ref, X, y)
    timed = net if backend == "compiled" else ref
    benchmark.group = _group("fit epoch", FIT_SHAPE, dtype)
    history = benchmark(timed.fit, X, y, make_optimizer("adam"), epochs=1,
                        batch_size=FIT_SHAPE.batch)
    assert np.isfinite(history["loss"][-1])
