"""Flush-to-zero and denormals-are-zero: scoped to fastwb's compiled calls.

Every public call that enters the kernels must leave its caller's
floating-point mode as it found it (flushing or not); with flushing on, a
subnormal result of the kernels, of the pool's helper threads and of OpenMP's
workers is 0, where the reference keeps it; with flushing off the compiled
core gives the reference's subnormal values.
"""
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastwb
from fastwb import _core
from fastwb.testing import TOLERANCE, rel_error

TINY = {np.dtype(np.float32): np.finfo(np.float32).tiny,
        np.dtype(np.float64): np.finfo(np.float64).tiny}


@pytest.fixture
def flushing():
    """Flushing on, and the calling thread's own mode back after the test."""
    if not _core.set_flush_denormals(True) and not _core.flush_denormals():
        pytest.skip("this CPU has no flush-to-zero mode")
    before = _core.thread_flushes_denormals()
    yield
    _core.set_thread_flushing(before)
    fastwb.set_flush_denormals(True)


def _small_problem(dtype="float32"):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 6)).astype(dtype)
    y = rng.integers(0, 3, 64)
    return X, y


def _calls():
    """(name, call) of every public entry into the kernels, each on fresh objects."""
    from fastwb.sklearn import MLPClassifier

    def network(n_threads=1):
        return fastwb.Network([6, 8, 3], loss="softmax_cross_entropy", dtype="float32",
                              seed=0, n_threads=n_threads)

    X, y = _small_problem()
    one_hot = np.eye(3, dtype=np.float32)[y]

    def fitted_classifier():
        return MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)

    def apply(net):
        opt = fastwb.Adam()
        opt.apply_gradients(net, np.ones(net.parameters.size, np.float32))

    def monitored_fit(net):
        net.fit(X, y, optimizer=fastwb.Adam(), epochs=2, batch_size=16, verbose=0,
                callbacks=[fastwb.Monitor()])

    return [
        ("predict", lambda: network().predict(X)),
        ("predict one row", lambda: network().predict(X[0])),
        ("loss", lambda: network().loss(X, y)),
        ("gradients", lambda: network().gradients(X, one_hot)),
        ("loss_and_gradients", lambda: network().loss_and_gradients(X, y)),
        ("train_step sgd", lambda: network().train_step(X, y, fastwb.SGD())),
        ("train_step adam chunked", lambda: network(2).train_step(
            np.repeat(X, 4, axis=0), np.repeat(y, 4), fastwb.Adam())),
        ("apply_gradients", lambda: apply(network())),
        ("fit", lambda: network(2).fit(X, y, optimizer=fastwb.Adam(), epochs=2,
                                       batch_size=16, verbose=0)),
        ("fit with monitor", lambda: monitored_fit(network())),
        ("summary", lambda: network().summary()),
        ("activation_statistics", lambda: network().activation_statistics(X)),
        ("estimator fit and predict_proba", lambda: fitted_classifier().predict_proba(X)),
    ]


CALLS = [name for name, _ in _calls()]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("caller_flushes", [False, True])
@pytest.mark.parametrize("fastwb_flushes", [True, False])
@pytest.mark.parametrize("name", CALLS)
def test_a_call_leaves_the_callers_mode_alone(name, fastwb_flushes, caller_flushes, flushing):
    call = dict(_calls())[name]
    fastwb.set_flush_denormals(fastwb_flushes)
    _core.set_thread_flushing(caller_flushes)
    call()
    assert _core.thread_flushes_denormals() == caller_flushes


def test_the_mode_comes_back_after_ctrl_c_in_fit(flushing, default_sigint):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200_000, 32)).astype(np.float32)
    y = rng.integers(0, 4, len(X))
    net = fastwb.Network([32, 64, 4], loss="softmax_cross_entropy", dtype="float32", seed=0)
    _core.set_thread_flushing(False)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, y, optimizer=fastwb.Adam(), epochs=1000, batch_size=32, verbose=0)
    finally:
        timer.cancel()
    assert not _core.thread_flushes_denormals()


def _subnormal_network(dtype, n_threads=1, backend="compiled"):
    """A linear network whose every output is a product of two numbers near
    sqrt(tiny): subnormal unless flushed."""
    net = fastwb.Network([4, 3], activation="identity", loss="mse", dtype=dtype,
                         n_threads=n_threads, backend=backend, seed=0)
    scale = np.sqrt(TINY[np.dtype(dtype)])
    net.parameters[:] = scale / 16
    net.layers[0].bias[:] = 0
    return net, np.full((5, 4), scale, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subnormal_results_are_zero_when_flushing_and_the_references_when_not(dtype, flushing):
    net, X = _subnormal_network(dtype)
    reference, _ = _subnormal_network(dtype, backend="reference")
    expected = reference.predict(X)
    assert np.all((expected != 0) & (np.abs(expected) < TINY[np.dtype(dtype)]))
    assert np.all(net.predict(X) == 0)
    with fastwb.flush_denormals(False):
        np.testing.assert_array_equal(net.predict(X), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_pools_helpers_flush_as_their_caller_does(dtype, flushing):
    """A chunked gradient: each chunk's product Xᵀ·D is subnormal, and chunks
    run on helper threads too."""
    scale = np.sqrt(TINY[np.dtype(dtype)])
    net = fastwb.Network([4, 3], activation="identity", loss="mse", dtype=dtype, n_threads=2,
                         seed=0)
    net.parameters[:] = 0
    X = np.full((512, 4), scale, dtype=dtype)
    y = np.full((512, 3), -scale * 512, dtype=dtype)   # D = (0 - y) * 2/(n*m): near scale
    for _ in range(20):     # the helper claims a chunk in most of them
        (dW, db), = net.gradients(X, y)
        assert np.all(dW == 0), "a helper thread computed a subnormal product"
        assert np.all(db != 0)
    with fastwb.flush_denormals(False):
        (dW, _), = net.gradients(X, y)
        assert np.all(dW != 0)


def test_openmp_workers_flush_as_their_caller_does(flushing):
    if not _core.openmp_enabled():
        pytest.skip("a serial build")
    previous = _core.tuning(small_product=1 << 40, parallel_min_elements=0)
    try:
        net, X = _subnormal_network("float32", n_threads=2)
        X = np.repeat(X, 64, axis=0)
        assert np.all(net.predict(X) == 0)
        with fastwb.flush_denormals(False):
            assert np.all(net.predict(X) != 0)
    finally:
        _core.tuning(**previous)


@pytest.mark.parametrize("dtype,beta1,steps", [("float32", 0.5, 130), ("float64", 0.01, 155)])
def test_without_flushing_training_matches_the_reference_through_subnormal_moments(
        dtype, beta1, steps):
    """Adam after two inputs fall silent: their weights' first moments decay
    through the subnormal range, where flushing would differ."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((32, 5)).astype(dtype)
    y = rng.integers(0, 3, 32)
    kwargs = dict(loss="softmax_cross_entropy", dtype=dtype, seed=3)
    compiled = fastwb.Network([5, 4, 3], **kwargs)
    reference = fastwb.Network([5, 4, 3], backend="reference", **kwargs)
    mine, theirs = fastwb.Adam(beta1=beta1), fastwb.Adam(beta1=beta1)
    with fastwb.flush_denormals(False):
        compiled.train_step(X, y, mine)
        reference.train_step(X, y, theirs)
        X[:, :2] = 0
        for _ in range(steps):
            compiled.train_step(X, y, mine)
            reference.train_step(X, y, theirs)
    m = mine.get_state()["buffers"]["exp_avg"]
    expected = theirs.get_state()["buffers"]["exp_avg"]
    assert np.any((expected != 0) & (np.abs(expected) < TINY[np.dtype(dtype)]))
    np.testing.assert_array_equal(m == 0, expected == 0)
    assert rel_error(m, expected) <= TOLERANCE[np.dtype(dtype)]
    assert rel_error(compiled.parameters, reference.parameters) <= TOLERANCE[np.dtype(dtype)]


def test_the_switch():
    assert fastwb.get_flush_denormals() is True
    with fastwb.flush_denormals(False):
        assert fastwb.get_flush_denormals() is False
        assert fastwb.set_flush_denormals(True) is False
        assert fastwb.set_flush_denormals(False) is True
    assert fastwb.get_flush_denormals() is True
    with pytest.raises(TypeError, match="True or False"):
        fastwb.set_flush_denormals("no")
    assert fastwb.show_config("dicts")["Runtime"]["flush denormals"]["enabled"] is True


@pytest.mark.parametrize("value,expected,warns", [("0", False, False), ("off", False, False),
                                                  ("1", True, False), ("maybe", True, True)])
def test_the_environment_variable(value, expected, warns, tmp_path):
    code = ("import warnings; warnings.simplefilter('always'); import fastwb; "
            "print(fastwb.get_flush_denormals())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "FASTWB_FLUSH_DENORMALS": value,
                               "PYTHONPATH": os.path.dirname(os.path.dirname(fastwb.__file__))},
                          timeout=120,
                          cwd=tmp_path)     # the checkout's fastwb folder hides the installed one
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(expected)
    assert ("FASTWB_FLUSH_DENORMALS='maybe'" in done.stderr) == warns
