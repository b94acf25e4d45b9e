"""fastwb.distributed.fit under a real ``mpiexec -n 2`` (skipped without mpi4py
and an mpiexec): equal to single-process training on the ranks' batches
concatenated step by step, bit-identical ranks, and failures that stop all."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastwb

pytest.importorskip("mpi4py", reason="fastwb.distributed's tests need mpi4py: "
                                     "pip install \"fastwb[mpi]\"")
MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                       f"{os.environ.get('PATH', '')}")
if MPIEXEC is None:
    pytest.skip("no mpiexec found (the mpich package brings one)", allow_module_level=True)

N_ROWS = (20, 17)           # uneven shards
BATCH = 6                   # both shards end in a partial batch, rank 1 a step early

# Every rank builds the same data and takes its shard; the case picks what to vary.
SCRIPT = """
import json, signal, sys
import numpy as np
import fastwb, fastwb.distributed
from mpi4py import MPI

case, out = sys.argv[1], sys.argv[2]
rank = MPI.COMM_WORLD.Get_rank()
rng = np.random.default_rng(5)
X = rng.normal(size=(%(total)d, 4))
y = rng.integers(0, 3, size=%(total)d)
w = rng.uniform(0.2, 2.0, size=%(total)d)
lo, hi = (0, %(first)d) if rank == 0 else (%(first)d, %(total)d)
net = fastwb.Network([4, 12, 3], loss="softmax_cross_entropy", dtype="float64", seed=3,
                     dropout=0.25, l2=1e-3, n_threads=1)
if case == "unseeded":              # each rank's own random seed: fine without dropout
    net = fastwb.Network([4, 12, 3], loss="softmax_cross_entropy", dtype="float64")
if case == "mismatch" and rank == 1:
    net = fastwb.Network([4, 10, 3], loss="softmax_cross_entropy", dtype="float64", seed=3)
if rank == 1:
    net.parameters[...] = 0.5      # rank 0's are broadcast over these
optimizer = fastwb.Adam(lr=0.02, clip_norm=1.0)
seen = []
callbacks = [lambda epoch, logs: seen.append(epoch)]
if case == "stop":
    def stop(epoch, logs):
        if epoch == 2:
            net.stop_training = True
    callbacks.append(stop)
if case in ("fail", "interrupt") and rank == 1:
    real = net.step_gradient
    def failing(*args, **kwargs):
        if optimizer.step == 4:
            if case == "interrupt":         # Ctrl-C reaching this rank only, in its step
                signal.raise_signal(signal.SIGINT)
            else:
                raise ValueError("injected failure")
        return real(*args, **kwargs)
    net.step_gradient = failing
if case == "bad_shard" and rank == 1:
    X = X[:, :3]
options = {"class_weight": "balanced"} if case == "balanced" else {}
if case == "validate":      # early stopping after epoch 2, back to epoch 1's parameters
    Xv, yv = rng.normal(size=(11, 4)), rng.integers(0, 3, size=11)
    part = slice(0, 5) if rank == 0 else slice(5, 11)
    options = dict(validation_data=(Xv[part], yv[part]), early_stopping=True, patience=1,
                   min_delta=1e9)
history = fastwb.distributed.fit(net, X[lo:hi], y[lo:hi], optimizer, epochs=3,
                                 batch_size=%(batch)d, shuffle=case == "shuffle",
                                 sample_weight=w[lo:hi], callbacks=callbacks, **options)
np.save(f"{out}/params{rank}.npy", net.parameters)
with open(f"{out}/history{rank}.json", "w") as f:
    json.dump({"epoch": history.epoch, "seen": seen, **history.history,
               "stopped_early": getattr(history, "stopped_early", None),
               "best_epoch": getattr(history, "best_epoch", None)}, f)
""" % {"total": sum(N_ROWS), "first": N_ROWS[0], "batch": BATCH}


def _launch(tmp_path, case, timeout=120):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(fastwb.__file__).parents[1])}
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), case, str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def _data():
    total = sum(N_ROWS)
    rng = np.random.default_rng(5)
    return (rng.normal(size=(total, 4)), rng.integers(0, 3, size=total),
            rng.uniform(0.2, 2.0, size=total))


def _single_process(epochs, balanced=False):
    """Network.train_step on rank 0's batch then rank 1's, concatenated, at each step."""
    X, y, w = _data()
    if balanced:        # scikit-learn's "balanced" over all the samples
        counts = np.bincount(y, minlength=3)
        w = w * (len(y) / (3 * counts))[y]
    net = fastwb.Network([4, 12, 3], loss="softmax_cross_entropy", dtype="float64", seed=3,
                         dropout=0.25, l2=1e-3, n_threads=1)
    optimizer = fastwb.Adam(lr=0.02, clip_norm=1.0)
    starts = (0, N_ROWS[0])
    steps = max(-(-n // BATCH) for n in N_ROWS)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for step in range(steps):
            rows = np.concatenate([np.arange(s + step * BATCH, s + min(n, (step + 1) * BATCH))
                                   for s, n in zip(starts, N_ROWS)])
            total += net.train_step(X[rows], y[rows], optimizer, sample_weight=w[rows]) \
                * len(rows)
        losses.append(total / sum(N_ROWS))
    return net.parameters, losses


def _results(tmp_path):
    params = [np.load(tmp_path / f"params{r}.npy") for r in range(2)]
    histories = [json.loads((tmp_path / f"history{r}.json").read_text()) for r in range(2)]
    return params, histories


def test_two_ranks_equal_single_process_on_concatenated_batches(tmp_path):
    result = _launch(tmp_path, "plain")
    assert result.returncode == 0, result.stderr
    params, histories = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])        # ranks bit-identical
    expected, losses = _single_process(3)
    np.testing.assert_allclose(params[0], expected, rtol=1e-10, atol=1e-13)
    assert not np.allclose(expected, fastwb.Network([4, 12, 3], seed=3, dtype="float64",
                                                    loss="softmax_cross_entropy").parameters)
    for history in histories:
        np.testing.assert_allclose(history["loss"], losses, rtol=1e-10)
        assert history["epoch"] == [1, 2, 3]
    assert histories[0]["seen"] == [1, 2, 3] and histories[1]["seen"] == []   # rank 0 only


def test_validation_over_both_shards_and_early_stopping_on_every_rank(tmp_path):
    result = _launch(tmp_path, "validate")
    assert result.returncode == 0, result.stderr
    params, histories = _results(tmp_path)
    assert histories[1]["seen"] == [] and histories[0]["seen"] == [1, 2]
    assert {**histories[1], "seen": None} == {**histories[0], "seen": None}
    history = histories[0]
    assert history["epoch"] == [1, 2]
    assert history["stopped_early"] is True and history["best_epoch"] == 1
    np.testing.assert_array_equal(params[0], params[1])
    expected, _ = _single_process(1)            # epoch 1's, restored
    np.testing.assert_allclose(params[0], expected, rtol=1e-10, atol=1e-13)
    rng = np.random.default_rng(5)
    rng.normal(size=(sum(N_ROWS), 4)), rng.integers(0, 3, size=sum(N_ROWS))
    rng.uniform(0.2, 2.0, size=sum(N_ROWS))
    Xv, yv = rng.normal(size=(11, 4)), rng.integers(0, 3, size=11)
    net = fastwb.Network([4, 12, 3], loss="softmax_cross_entropy", dtype="float64", seed=3,
                         dropout=0.25, l2=1e-3)
    net.parameters = expected
    assert history["val_loss"][0] == pytest.approx(net.loss(Xv, yv), rel=1e-10)
    accuracy = np.mean(net.predict(Xv).argmax(axis=1) == yv)
    assert history["val_accuracy"][0] == pytest.approx(accuracy, rel=1e-12)


def test_balanced_class_weights_count_every_shard(tmp_path):
    result = _launch(tmp_path, "balanced")
    assert result.returncode == 0, result.stderr
    params, _ = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])
    expected, _ = _single_process(3, balanced=True)
    np.testing.assert_allclose(params[0], expected, rtol=1e-10, atol=1e-13)
    unbalanced, _ = _single_process(3)
    assert not np.allclose(params[0], unbalanced, rtol=1e-6)


def test_shuffled_ranks_stay_identical(tmp_path):
    result = _launch(tmp_path, "shuffle")
    assert result.returncode == 0, result.stderr
    params, histories = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])
    assert histories[0]["loss"] == histories[1]["loss"]
    expected, _ = _single_process(3)
    assert not np.allclose(params[0], expected)       # another order, another result


def test_ranks_without_a_common_seed_start_from_rank_0s_parameters(tmp_path):
    result = _launch(tmp_path, "unseeded")
    assert result.returncode == 0, result.stderr
    params, _ = _results(tmp_path)
    np.testing.assert_array_equal(params[0], params[1])


def test_different_networks_are_refused_on_every_rank(tmp_path):
    result = _launch(tmp_path, "mismatch", timeout=60)
    assert result.returncode != 0
    assert "the ranks' networks differ from rank 0's (rank 1: layers=" in result.stderr
    assert not (tmp_path / "params0.npy").exists()


def test_a_callback_on_rank_0_stops_every_rank(tmp_path):
    result = _launch(tmp_path, "stop")
    assert result.returncode == 0, result.stderr
    _, histories = _results(tmp_path)
    assert [h["epoch"] for h in histories] == [[1, 2], [1, 2]]


@pytest.mark.parametrize("case, message", [
    ("fail", "ValueError: injected failure"),
    ("interrupt", "KeyboardInterrupt"),
    ("bad_shard", "ValueError"),
])
def test_an_error_on_one_rank_stops_both(tmp_path, case, message):
    result = _launch(tmp_path, case, timeout=60)
    assert result.returncode != 0
    assert "fastwb.distributed.fit stopped: rank 1 failed with " + message in result.stderr
    assert not (tmp_path / "params0.npy").exists()


def test_without_mpi4py_the_error_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import fastwb, fastwb.distributed\n"
            "net = fastwb.Network([2, 1])\n"
            "fastwb.distributed.fit(net, [[0.0, 1.0]], [1.0])\n")
    env = {**os.environ, "PYTHONPATH": str(Path(fastwb.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'pip install "fastwb[mpi]"' in result.stderr
