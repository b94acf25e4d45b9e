"""Both BLAS routes give the reference's answers; the route is chosen as documented."""
import numpy as np
import pytest

import fastwb
from fastwb import _blas, _core
from fastwb.testing import TOLERANCE, rel_error


@pytest.fixture
def restore_blas():
    yield
    _blas.select("auto")


def routes():
    return ["scipy"] + (["numpy"] if _blas.numpy_openblas() else [])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("source", routes())
def test_each_blas_route_matches_reference(source, dtype, restore_blas):
    assert _blas.select(source) == source == fastwb.blas_source()
    rng = np.random.default_rng(0)
    sizes = [50, 70, 30, 4]
    for batch in (1, 64):             # gemv, then gemm
        X = rng.normal(size=(batch, 50))
        y = rng.integers(0, 4, size=batch)
        net = fastwb.Network(sizes, loss="softmax_cross_entropy", dtype=dtype, seed=1)
        ref = fastwb.Network(sizes, loss="softmax_cross_entropy", dtype=dtype, seed=1,
                             backend="reference")
        tol = TOLERANCE[np.dtype(dtype)]
        assert rel_error(net.predict(X), ref.predict(X)) <= tol
        net.train_step(X, y, fastwb.SGD(lr=0.1))
        ref.train_step(X, y, fastwb.SGD(lr=0.1))
        assert rel_error(net.parameters, ref.parameters) <= tol


def test_auto_prefers_numpys_openblas_when_present(restore_blas):
    expected = "numpy" if _blas.numpy_openblas() else "scipy"
    assert _blas.select("auto") == expected


def test_bad_choices(restore_blas):
    with pytest.raises(ValueError, match="source"):
        _blas.select("mkl")
    assert not _core.attach_blas(b"/nonexistent/libblas.so", b"", b"_")
    if _blas.numpy_openblas():
        assert not _core.attach_blas(_blas.numpy_openblas().encode(), b"no_such_", b"_64_")
        assert fastwb.blas_source() == "numpy"      # a failed attach changes nothing
