"""fastwb.distributed.fit keeps the ranks agreeing (under a real ``mpiexec -n 2``):
a failure anywhere on one rank (its update, its validation, a real SIGINT) stops
every rank instead of leaving the others in a collective; ranks given different
fit arguments are refused before training; what rank 0's callbacks change
reaches every rank; and a step whose samples all weigh 0 counts as in
``Network.fit``."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastwb
import fastwb.testing

pytest.importorskip("mpi4py", reason="fastwb.distributed's tests need mpi4py: "
                                     "pip install \"fastwb[mpi]\"")
MPIEXEC = fastwb.testing.mpiexec()
if MPIEXEC is None:
    pytest.skip("no mpiexec found (the mpich package brings one)", allow_module_level=True)

N, BATCH = 12, 4        # rows per rank: three steps an epoch

SCRIPT = """
import json, os, signal, sys, threading
import numpy as np
import fastwb, fastwb.distributed
from fastwb.callbacks import Callback, EarlyStopping
from fastwb.schedules import Schedule
from mpi4py import MPI


class Decay(Schedule):          # holds a function: does not pickle
    def __init__(self, factor):
        self.factor = factor
    def get_config(self):
        return {"name": "decay"}
    def rates(self, base_lr, steps, epoch, samples_seen):
        return np.array([base_lr * self.factor(int(s)) for s in steps])


class Unpicklable(Callback):    # puts a function into the epoch's logs
    def on_epoch_end(self, epoch, logs):
        logs["function"] = lambda: None


class StopAtBegin(Callback):
    def on_epoch_begin(self, epoch, logs):
        if epoch == 2:
            self.network.stop_training = True

case, out = sys.argv[1], sys.argv[2]
rank = MPI.COMM_WORLD.Get_rank()
rng = np.random.default_rng(7)
X, y = rng.normal(size=(2 * %(n)d, 3)), rng.integers(0, 2, size=2 * %(n)d)
w = rng.uniform(0.5, 2.0, size=2 * %(n)d)
w[%(batch)d:2 * %(batch)d] = w[%(n)d + %(batch)d:%(n)d + 2 * %(batch)d] = 0  # step 2 weighs 0
mine = slice(0, %(n)d) if rank == 0 else slice(%(n)d, 2 * %(n)d)
net = fastwb.Network([3, 5, 2], loss="softmax_cross_entropy", dtype="float64", seed=1,
                     l2=0.05, n_threads=1)
optimizer = fastwb.Adam(lr=0.05)
options = dict(epochs=3, batch_size=%(batch)d, shuffle=False, sample_weight=w[mine])
if case == "apply_fails" and rank == 1:     # after this rank's part of the reduction
    real = net._apply_flat_gradient
    def failing(*args):
        if optimizer.step == 4:
            raise MemoryError("injected in the update")
        return real(*args)
    net._apply_flat_gradient = failing
if case == "validation_fails":
    options["validation_data"] = (X[mine], y[mine])
    if rank == 1:
        def failing(*args, **kwargs):
            raise MemoryError("injected in validation")
        net.loss = failing
if case == "sigint":         # a real signal, at any moment, to rank 1 only
    options.update(epochs=100000, batch_size=1)
if case == "sigint" and rank == 1:
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
if case == "epochs" and rank == 1:
    options["epochs"] = 4
if case == "halve_lr":           # a callback that runs on rank 0 only
    def halve(epoch, logs):
        optimizer.lr = optimizer.lr / 2
    options["callbacks"] = [halve]
if case == "warm_schedule":      # rank 0's plateau schedule has already cut its rate
    plateau = fastwb.schedules.ReduceOnPlateau(factor=0.5, patience=0)
    optimizer = fastwb.Adam(lr=0.05, schedule=plateau)
    if rank == 0:
        for epoch in range(1, 4):
            optimizer.schedule.on_epoch_end(epoch, 1.0)
if case == "unpicklable_logs":
    options["callbacks"] = [Unpicklable()]
if case == "function_schedule":
    optimizer = fastwb.Adam(lr=0.05, schedule=Decay(lambda step: 0.9 ** step))
if case.startswith("local"):    # local SGD: each rank its own seed
    net = fastwb.Network([3, 5, 2], loss="softmax_cross_entropy", dtype="float64",
                         seed=1 + rank, l2=0.05, n_threads=1, dropout=0.1)
    options.update(average_every=2, epochs=4)
if case == "local_validate":    # metric callbacks skip the epochs between averages
    options.update(validation_data=(X[mine], y[mine]),
                   callbacks=[EarlyStopping("val_loss", patience=5)])
if case == "local_stop_at_begin":
    options["callbacks"] = [StopAtBegin()]
if case == "local_fails" and rank == 1:     # in epoch 3, between averages
    real = net.fit
    def failing(*args, **kwargs):
        if optimizer.epoch == 2:
            raise MemoryError("injected in a local epoch")
        return real(*args, **kwargs)
    net.fit = failing
try:
    history = fastwb.distributed.fit(net, X[mine], y[mine], optimizer, **options)
except BaseException:
    np.save(f"{out}/failed{rank}.npy", net.parameters)
    raise
np.save(f"{out}/params{rank}.npy", net.parameters)
with open(f"{out}/result{rank}.json", "w") as f:
    json.dump({"epoch": history.epoch, "averaged": history.history.get("averaged"),
               "val_loss": history.history.get("val_loss"),
               "loss": history.history["loss"], "lr": optimizer.lr,
               "current_lr": optimizer.current_lr, "step": optimizer.step}, f)
""" % {"n": N, "batch": BATCH}


def _launch(tmp_path, case):
    (tmp_path / "train.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(fastwb.__file__).parents[1])}
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, "train.py", case, str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _results(tmp_path):
    return ([np.load(tmp_path / f"params{r}.npy") for r in range(2)],
            [json.loads((tmp_path / f"result{r}.json").read_text()) for r in range(2)])


def _single_process(epochs=3, halve_lr=False):
    """train_step on rank 0's batch then rank 1's, concatenated, at each step."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(2 * N, 3)), rng.integers(0, 2, size=2 * N)
    w = rng.uniform(0.5, 2.0, size=2 * N)
    w[BATCH:2 * BATCH] = w[N + BATCH:N + 2 * BATCH] = 0
    net = fastwb.Network([3, 5, 2], loss="softmax_cross_entropy", dtype="float64", seed=1,
                         l2=0.05, n_threads=1)
    optimizer = fastwb.Adam(lr=0.05)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for step in range(N // BATCH):
            rows = np.r_[step * BATCH:(step + 1) * BATCH, N + step * BATCH:N + (step + 1) * BATCH]
            total += net.train_step(X[rows], y[rows], optimizer, sample_weight=w[rows]) * len(rows)
        losses.append(total / (2 * N))
        if halve_lr:
            optimizer.lr = optimizer.lr / 2
    return net.parameters, losses, optimizer


@pytest.mark.parametrize("halve_lr", [False, True])
def test_a_step_of_zero_weight_counts_and_rank_0s_callbacks_reach_every_rank(tmp_path, halve_lr):
    result = _launch(tmp_path, "halve_lr" if halve_lr else "plain")
    assert result.returncode == 0, result.stderr
    params, results = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])
    assert results[0] == results[1]
    expected, losses, optimizer = _single_process(halve_lr=halve_lr)
    np.testing.assert_allclose(params[0], expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(results[0]["loss"], losses, rtol=1e-10)
    assert results[0]["step"] == optimizer.step == 9          # the zero-weight steps count
    assert results[0]["lr"] == optimizer.lr == (0.05 / 8 if halve_lr else 0.05)


def test_rank_0s_schedule_state_is_every_ranks(tmp_path):
    result = _launch(tmp_path, "warm_schedule")
    assert result.returncode == 0, result.stderr
    params, results = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])
    assert results[0]["current_lr"] == results[1]["current_lr"] <= 0.05 / 4     # not fresh


def test_a_schedule_that_does_not_pickle_trains_as_in_network_fit(tmp_path):
    result = _launch(tmp_path, "function_schedule")
    assert result.returncode == 0, result.stderr
    params, results = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])
    assert results[0]["current_lr"] == results[1]["current_lr"] < 0.05 * 0.9 ** 8


def test_local_sgd_metric_callbacks_judge_averaged_epochs_only(tmp_path):
    result = _launch(tmp_path, "local_validate")
    assert result.returncode == 0, result.stderr
    params, results = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])
    assert results[0]["epoch"] == [1, 2, 3, 4]
    assert results[0]["averaged"] == [False, True, False, True]
    assert len(results[0]["val_loss"]) == 2


def test_local_sgd_stops_when_a_callback_asks_in_on_epoch_begin(tmp_path):
    result = _launch(tmp_path, "local_stop_at_begin")
    assert result.returncode == 0, result.stderr
    params, results = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])     # averaged before stopping
    assert results[0]["epoch"] == results[1]["epoch"] == [1, 2]


def test_a_local_sgd_failure_between_averages_leaves_every_rank_at_the_last_average(tmp_path):
    result = _launch(tmp_path, "local_fails")
    assert result.returncode != 0
    assert "rank 1 failed with MemoryError: injected in a local epoch" in result.stderr
    failed = [np.load(tmp_path / f"failed{r}.npy") for r in range(2)]
    np.testing.assert_array_equal(failed[0], failed[1])


@pytest.mark.parametrize("case, message", [
    ("apply_fails", "rank 1 failed with MemoryError: injected in the update"),
    ("validation_fails", "rank 1 failed with MemoryError: injected in validation"),
    ("sigint", "rank 1 failed with KeyboardInterrupt"),
    ("epochs", "the ranks' fit arguments differ from rank 0's (rank 1: epochs=4)"),
    ("unpicklable_logs", "local object 'Unpicklable.on_epoch_end.<locals>.<lambda>'"),
])
def test_one_rank_failing_anywhere_stops_every_rank(tmp_path, case, message):
    result = _launch(tmp_path, case)        # a hang would be the timeout's error
    assert result.returncode != 0
    assert message in result.stderr
    if case not in ("epochs", "unpicklable_logs"):  # the other rank's error names the failing one
        assert f"fastwb.distributed.fit stopped: {message}" in result.stderr
    if case == "unpicklable_logs":
        assert "fastwb.distributed.fit stopped: rank 0 failed with AttributeError" \
            in result.stderr
    assert not (tmp_path / "params0.npy").exists()
    assert not (tmp_path / "params1.npy").exists()
