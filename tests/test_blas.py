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


@pytest.fixture
def panels():
    """Every product with a side of at least 128 cut into panels on the pool."""
    previous = _core.tuning(panel_product_min=0)
    yield
    _core.tuning(**previous)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_in_panels_match_the_reference_and_any_team(dtype, panels):
    """Panels of rows and of columns, in every product of a step, run by one or
    two threads or with BLAS limited to one thread: the reference's answers, and
    the same bits each way."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if fastwb.blas_source() != "numpy" or not _core.openmp_enabled():
        pytest.skip("panels need NumPy's OpenBLAS, whose threads fastwb can set")
    rng = np.random.default_rng(0)
    sizes = [150, 300, 140, 130]        # products wider than tall and taller than wide
    X = rng.normal(size=(200, 150)).astype(dtype)
    y = rng.integers(0, 130, size=200)
    ref = fastwb.Network(sizes, loss="softmax_cross_entropy", dtype=dtype, seed=1,
                         backend="reference")
    ref_opt = fastwb.Adam()
    for _ in range(2):
        ref.train_step(X, y, ref_opt)
    results = []
    for n_threads, blas_limit in ((1, None), (2, None), (2, 1)):
        net = fastwb.Network(sizes, loss="softmax_cross_entropy", dtype=dtype, seed=1,
                             n_threads=n_threads)
        opt = fastwb.Adam()
        with threadpoolctl.threadpool_limits(blas_limit, user_api="blas"):
            for _ in range(2):
                net.train_step(X, y, opt)
            results.append((net.parameters.copy(), net.predict(X)))
        assert rel_error(net.parameters, ref.parameters) <= TOLERANCE[np.dtype(dtype)]
    for parameters, predictions in results[1:]:
        np.testing.assert_array_equal(parameters, results[0][0])
        np.testing.assert_array_equal(predictions, results[0][1])


def test_panels_give_blas_its_thread_count_back(panels):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if fastwb.blas_source() != "numpy":
        pytest.skip("panels need NumPy's OpenBLAS, whose threads fastwb can set")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        net = fastwb.Network([200, 300, 10], dtype="float32", seed=0, n_threads=2)
        net.predict(np.ones((256, 200), np.float32))
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert all(p["num_threads"] == 2 for p in blas)
