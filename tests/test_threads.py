"""Thread counts change nothing; concurrent callers get correct answers."""
import threading

import numpy as np
import pytest

import fastwb
from fastwb import _core

from fastwb.testing import PATHS, TOLERANCE, rel_error


def run_in_threads(worker, count: int) -> None:
    """worker(0), ..., worker(count - 1), each in its own thread, all joined."""
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("kernel_path", ["parallel_loops", "default", "blas"], indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_thread_count(dtype, kernel_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(301, 12))
    y = rng.integers(0, 5, size=301)
    results = []
    for n_threads in (1, 2, 3):
        net = fastwb.Network([12, 40, 24, 5], activation="tanh", loss="softmax_cross_entropy",
                             dtype=dtype, seed=4, n_threads=n_threads)
        opt = fastwb.SGD(lr=0.05)
        losses = [net.train_step(X, y, opt) for _ in range(5)]
        results.append((net.parameters.copy(), losses, net.predict(X)))
    for params, losses, pred in results[1:]:
        np.testing.assert_array_equal(params, results[0][0])
        assert losses == results[0][1]
        np.testing.assert_array_equal(pred, results[0][2])


def test_concurrent_predict_from_many_threads():
    """A service may call predict from several threads: each gets its own answer."""
    rng = np.random.default_rng(1)
    net = fastwb.Network([64, 256, 10], loss="softmax_cross_entropy", seed=0)
    batches = [rng.normal(size=(200, 64)).astype(np.float32) for _ in range(8)]
    expected = [net.predict(X) for X in batches]
    failures = []

    def worker(i):
        for _ in range(20):
            if not np.array_equal(net.predict(batches[i]), expected[i]):
                failures.append(i)

    run_in_threads(worker, 8)
    assert not failures


def test_tuning_rejects_negative_thresholds_and_restores():
    with pytest.raises(ValueError):
        _core.tuning(small_product=-1)
    with pytest.raises(ValueError):
        _core.tuning(predict_block_rows=0)
    previous = _core.tuning()
    assert _core.tuning(**previous) == previous
    assert set(previous) == {"parallel_min_elements", "small_product", "predict_block_rows",
                             "pass_min_elements", "panel_product_min"}
    assert PATHS["blas"]["small_product"] == 0


def test_a_call_that_finds_the_workspace_claimed_never_shares_it(monkeypatch):
    """While one thread holds the engine's workspace (here: stalled allocating it),
    another thread's loss gets a private workspace and training is refused."""
    import time
    from fastwb import _validation

    rng = np.random.default_rng(2)
    sizes = [64, 256, 10]
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0)
    ref = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0, backend="reference")
    X_big, y_big = rng.normal(size=(3000, 64)), rng.integers(0, 10, 3000)
    X, y = rng.normal(size=(500, 64)), rng.integers(0, 10, 500)
    real_check = _validation.check_allocation
    monkeypatch.setattr(_validation, "check_allocation",
                        lambda *a: (time.sleep(0.3), real_check(*a)))
    results = {}
    worker = threading.Thread(target=lambda: results.update(big=net.loss(X_big, y_big)))
    worker.start()
    time.sleep(0.1)                                  # the worker now holds the claim
    with pytest.raises(RuntimeError, match="another thread"):
        net.train_step(X, y, fastwb.SGD(0.1))
    small = net.loss(X, y)                           # a private workspace
    worker.join()
    assert small == pytest.approx(ref.loss(X, y), rel=1e-4)
    assert results["big"] == pytest.approx(ref.loss(X_big, y_big), rel=1e-4)


def test_concurrent_gradients_are_each_right_or_refused():
    rng = np.random.default_rng(3)
    sizes = [128, 256, 10]
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", dtype="float64", seed=0)
    data = [(rng.normal(size=(256, 128)), rng.integers(0, 10, 256)) for _ in range(2)]
    expected = [np.concatenate([np.concatenate([w.ravel(), b]) for w, b in net.gradients(*d)])
                for d in data]
    wrong = []

    def worker(i):
        for _ in range(100):
            try:
                got = np.concatenate([np.concatenate([w.ravel(), b])
                                      for w, b in net.gradients(*data[i])])
            except RuntimeError:
                continue
            if not np.array_equal(got, expected[i]):
                wrong.append(i)

    run_in_threads(worker, 2)
    assert not wrong


def test_blas_thread_count_changes_results_only_within_rounding():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 300)).astype(np.float32)
    y = rng.integers(0, 10, size=256)
    results = []
    for blas_threads in (1, 2):
        with threadpoolctl.threadpool_limits(limits=blas_threads, user_api="blas"):
            net = fastwb.Network([300, 256, 128, 10], loss="softmax_cross_entropy", seed=0,
                                 dropout=0.1)
            net.fit(X, y, fastwb.Adam(1e-3), epochs=2, batch_size=128)
            results.append(net.parameters.copy())
    assert rel_error(results[1], results[0]) <= TOLERANCE[np.dtype(np.float32)]
