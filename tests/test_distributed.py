"""fastwb.distributed.fit under a real ``mpiexec -n 2`` (and 1 and 3; skipped
without mpi4py and an mpiexec): equal to single-process training on the ranks'
batches concatenated step by step, bit-identical ranks, failures that stop all,
and local SGD equal to ``Network.fit`` per shard with the states averaged."""
import inspect
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


def _launch(tmp_path, case, timeout=120, script_text=SCRIPT, n_ranks=2):
    script = tmp_path / "train.py"
    script.write_text(script_text)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(fastwb.__file__).parents[1])}
    return subprocess.run([MPIEXEC, "-n", str(n_ranks), sys.executable, str(script), case,
                           str(tmp_path)],
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


# --- several cases per launch: local SGD, and the synchronous mode on float32,
# schedules, penalties and 3 ranks ---------------------------------------------

def _case_data(rows, dtype):
    """Every rank's data (it takes rows sum(rows[:rank]).. as its shard) and a
    validation set of 11 rows that the ranks split."""
    rng = np.random.default_rng(5)
    n = sum(rows)
    X, y = rng.normal(size=(n, 4)).astype(dtype), rng.integers(0, 3, size=n)
    w = rng.uniform(0.2, 2.0, size=n).astype(dtype)
    return X, y, w, rng.normal(size=(11, 4)).astype(dtype), rng.integers(0, 3, size=11)


def _case_network(case, rank):
    seed = case["network"]["seed"] + rank * case.get("seed_step", 0)
    return fastwb.Network(**{**case["network"], "seed": seed}, n_threads=1)


CASES_SCRIPT = inspect.getsource(_case_data) + inspect.getsource(_case_network) + """
import json, signal, sys
import numpy as np
import fastwb, fastwb.distributed, fastwb.optimizers
from mpi4py import MPI


def failing(net, optimizer, kind):      # net.fit failing in the second epoch as kind says
    real = net.fit
    def fit(*args, **kwargs):
        if optimizer.epoch == 1:
            if kind == "interrupt":         # Ctrl-C reaching this rank only, in its epoch
                signal.raise_signal(signal.SIGINT)
            else:
                raise (FloatingPointError if kind == "diverge" else ValueError)(
                    "injected " + kind)
        return real(*args, **kwargs)
    return fit

cases, out = json.loads(open(sys.argv[1]).read()), sys.argv[2]
rank = MPI.COMM_WORLD.Get_rank()
for name, case in cases.items():
    rows = case["rows"]
    X, y, w, Xv, yv = _case_data(rows, case["network"]["dtype"])
    lo, hi = sum(rows[:rank]), sum(rows[:rank + 1])
    net = _case_network(case, rank)
    optimizer = fastwb.optimizers.from_config(case["optimizer"])
    options = dict(case["fit"])
    if case.get("validate"):
        part = np.array_split(np.arange(11), len(rows))[rank]
        options["validation_data"] = (Xv[part], yv[part])
    if case.get("fail") and rank == len(rows) - 1:
        net.fit = failing(net, optimizer, case["fail"])
    seen = []
    def record(epoch, logs):
        seen.append(epoch)
        net.stop_training = epoch == case.get("stop_at")
    try:
        history = fastwb.distributed.fit(
            net, X[lo:hi], y[lo:hi], optimizer, callbacks=[record],
            sample_weight=w[lo:hi] if case.get("weights") else None, **options)
    except BaseException as error:      # KeyboardInterrupt too
        result = {"error": f"{type(error).__name__}: {error}"}
    else:
        result = {"epoch": history.epoch, "seen": seen, **history.history,
                  "stopped_early": history.stopped_early, "best_epoch": history.best_epoch}
    result["counters"] = [optimizer.step, optimizer.epoch, optimizer.samples_seen]
    np.savez(f"{out}/{name}{rank}.npz", parameters=net.parameters,
             **optimizer.get_state()["buffers"])
    with open(f"{out}/{name}{rank}.json", "w") as f:
        json.dump(result, f)
"""


def _run_cases(tmp_path, n_ranks, cases):
    """Every case in one ``mpiexec -n n_ranks``; per case, each rank's
    (result, arrays): the History, or the error the rank raised, and the
    parameters and optimizer buffers it ended with."""
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    result = _launch(tmp_path, str(tmp_path / "cases.json"), timeout=240,
                     script_text=CASES_SCRIPT, n_ranks=n_ranks)
    assert result.returncode == 0, result.stderr
    outcome = {}
    for name in cases:
        outcome[name] = []
        for rank in range(n_ranks):
            record = json.loads((tmp_path / f"{name}{rank}.json").read_text())
            outcome[name].append((record, dict(np.load(tmp_path / f"{name}{rank}.npz"))))
    return outcome


def _adam(**settings):
    return fastwb.Adam(**{"lr": 0.02, "clip_norm": 1.0, **settings})


def _case(rows, fit, *, optimizer=None, dtype="float64", dropout=0.25, l1=0.0, l2=1e-3,
          **extra):
    return {"rows": list(rows), "fit": fit,
            "optimizer": (optimizer or _adam()).get_config(),
            "network": {"sizes": [4, 12, 3], "loss": "softmax_cross_entropy", "dtype": dtype,
                        "seed": 3, "dropout": dropout, "l1": l1, "l2": l2}, **extra}


def _shards(case):
    X, y, w, _, _ = _case_data(case["rows"], case["network"]["dtype"])
    if not case.get("weights"):
        w = None
    if case["fit"].get("class_weight") == "balanced":    # scikit-learn's, over every shard
        counts = np.bincount(y, minlength=3)
        w = (1.0 if w is None else w) * (len(y) / (3 * counts))[y]
    bounds = np.cumsum([0] + case["rows"])
    return [(X[lo:hi], y[lo:hi], None if w is None else w[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def _expected_local_sgd(case, epochs):
    """Network.fit on each shard for average_every epochs (fewer at the end), then
    the parameters and Adam's moments averaged, weighted by the shards' weights;
    the step count the largest, samples seen the sum. Returns (parameters,
    buffers, counters, per-epoch losses over all samples)."""
    shards = _shards(case)
    fit = case["fit"]
    nets = [_case_network(case, rank) for rank in range(len(shards))]
    for net in nets[1:]:
        net.parameters = nets[0].parameters
    optimizers = [fastwb.optimizers.from_config(case["optimizer"]) for _ in shards]
    weights = [len(X) if w is None else w.sum() for X, _, w in shards]
    counts = [len(X) for X, _, _ in shards]
    losses, done = [], 0
    while done < epochs:
        span = min(fit["average_every"], epochs - done)
        seen = optimizers[0].samples_seen
        histories = [net.fit(X, y, opt, epochs=span, batch_size=fit["batch_size"],
                             shuffle=fit["shuffle"], sample_weight=w)
                     for net, opt, (X, y, w) in zip(nets, optimizers, shards)]
        losses += list(np.dot(np.array([h["loss"] for h in histories]).T, counts) / sum(counts))
        parameters = sum(w * net.parameters for w, net in zip(weights, nets)) / sum(weights)
        buffers = {name: sum(w * opt.state[name] for w, opt in zip(weights, optimizers))
                   / sum(weights) for name in optimizers[0].buffer_names}
        state = {"step": max(opt.step for opt in optimizers), "epoch": optimizers[0].epoch,
                 "samples_seen": seen + sum(opt.samples_seen - seen for opt in optimizers),
                 "buffers": buffers, "schedule": optimizers[0].schedule.get_state()}
        for net, opt in zip(nets, optimizers):
            net.parameters = parameters
            opt.set_state(state)
        done += span
    return nets[0].parameters, buffers, [state[k] for k in ("step", "epoch", "samples_seen")], \
        losses


def _expected_sync(case):
    """Network.fit in one process on the ranks' batches concatenated step by step
    (every step but the last a full batch on every rank); its History and the
    network."""
    shards, fit = _shards(case), case["fit"]
    size = fit["batch_size"]
    steps = -(-max(case["rows"]) // size)
    order = [(rank, slice(step * size, (step + 1) * size))
             for step in range(steps) for rank in range(len(shards))]
    X = np.concatenate([shards[r][0][part] for r, part in order])
    y = np.concatenate([shards[r][1][part] for r, part in order])
    w = (np.concatenate([shards[r][2][part] for r, part in order])
         if shards[0][2] is not None else None)
    net = _case_network(case, 0)
    optimizer = fastwb.optimizers.from_config(case["optimizer"])
    history = net.fit(X, y, optimizer, epochs=fit["epochs"], batch_size=size * len(shards),
                      shuffle=False, sample_weight=w)
    return net, optimizer, history


def _assert_ranks_identical(results):
    first_record, first_arrays = results[0]
    for record, arrays in results[1:]:
        assert record == {**first_record, "seen": record["seen"]}
        assert record["seen"] == []                 # callbacks on rank 0 only
        for name, values in first_arrays.items():
            np.testing.assert_array_equal(arrays[name], values)


LOCAL = {"average_every": 2, "epochs": 3, "batch_size": 6, "shuffle": True}


def test_local_sgd_on_one_rank_is_network_fit_bit_for_bit(tmp_path):
    cases = {"local": _case([37], LOCAL, weights=True),
             "local_every_epoch": _case([37], {**LOCAL, "average_every": 1}),
             "zero": _case([37], {**LOCAL, "average_every": 0}),
             "float": _case([37], {**LOCAL, "average_every": 1.5}),
             "bool": _case([37], {**LOCAL, "average_every": True})}
    outcome = _run_cases(tmp_path, 1, cases)
    for name in ("local", "local_every_epoch"):
        (record, arrays), = outcome[name]
        (X, y, w), = _shards(cases[name])
        net = _case_network(cases[name], 0)
        optimizer = _adam()
        history = net.fit(X, y, optimizer, epochs=3, batch_size=6, shuffle=True,
                          sample_weight=w)
        np.testing.assert_array_equal(arrays["parameters"], net.parameters)
        for buffer in optimizer.buffer_names:
            np.testing.assert_array_equal(arrays[buffer], optimizer.state[buffer])
        assert record["counters"] == [optimizer.step, optimizer.epoch, optimizer.samples_seen]
        assert record["loss"] == history["loss"]
        assert record["epoch"] == record["seen"] == [1, 2, 3]
    assert outcome["zero"][0][0]["error"] == "ValueError: average_every must be at least 1, got 0"
    assert outcome["float"][0][0]["error"].startswith("TypeError: average_every must be an int")
    assert outcome["bool"][0][0]["error"] == "TypeError: average_every must be an int, not a bool"


def test_local_sgd_and_the_synchronous_mode_on_two_ranks(tmp_path):
    plateau = fastwb.schedules.ReduceOnPlateau(factor=0.5, patience=0, min_delta=0.15)
    cases = {
        # uneven shards (4 and 3 batches an epoch): the step counts differ between averages
        "local": _case([20, 17], LOCAL, weights=True, seed_step=1),
        "local_validate": _case([20, 17], {**LOCAL, "epochs": 6, "early_stopping": True,
                                           "patience": 1, "min_delta": 1e9},
                                validate=True, seed_step=1),
        "local_same_seed": _case([20, 17], LOCAL),
        "local_plateau": _case([20, 17], {**LOCAL, "epochs": 6}, seed_step=1,
                               optimizer=_adam(schedule=plateau)),
        "local_stop": _case([20, 17], LOCAL, seed_step=1, stop_at=1),
        "local_fail": _case([20, 17], LOCAL, seed_step=1, fail="error"),
        "local_interrupt": _case([20, 17], LOCAL, seed_step=1, fail="interrupt"),
        "local_diverge": _case([20, 17], {**LOCAL, "average_every": 1}, seed_step=1,
                               fail="diverge"),
        "float32": _case([10, 10], {"epochs": 3, "batch_size": 4, "shuffle": False},
                         dtype="float32", weights=True),
        "plateau": _case([10, 10], {"epochs": 6, "batch_size": 4, "shuffle": False},
                         optimizer=_adam(lr=0.05, schedule=plateau), dropout=0.0),
        "penalties": _case([10, 10], {"epochs": 3, "batch_size": 4, "shuffle": False},
                           optimizer=fastwb.SGD(lr=0.2, momentum=0.9, nesterov=True,
                                                clip_norm=0.5, clip_value=0.05),
                           l1=1e-3, l2=1e-2, weights=True),
    }
    outcome = _run_cases(tmp_path, 2, cases)
    for results in outcome.values():
        if "error" not in results[0][0]:
            _assert_ranks_identical(results)

    (record, arrays), _ = outcome["local"]
    parameters, buffers, counters, losses = _expected_local_sgd(cases["local"], 3)
    np.testing.assert_allclose(arrays["parameters"], parameters, rtol=1e-12, atol=1e-15)
    for name, values in buffers.items():
        np.testing.assert_allclose(arrays[name], values, rtol=1e-12, atol=1e-15)
    assert counters[0] == 3 * 4 and record["counters"] == counters
    np.testing.assert_allclose(record["loss"], losses, rtol=1e-12)
    assert record["seen"] == [1, 2, 3] and "val_loss" not in record

    (record, arrays), _ = outcome["local_validate"]
    # validation after the averaging epochs 2 and 4 only; epoch 4 did not improve
    assert record["epoch"] == record["seen"] == [1, 2, 3, 4]
    assert record["stopped_early"] is True and record["best_epoch"] == 2
    assert len(record["val_loss"]) == len(record["val_accuracy"]) == 2
    parameters, _, _, _ = _expected_local_sgd(cases["local_validate"], 2)
    np.testing.assert_allclose(arrays["parameters"], parameters, rtol=1e-12, atol=1e-15)
    _, _, _, Xv, yv = _case_data([20, 17], "float64")
    net = _case_network(cases["local_validate"], 0)
    net.parameters = parameters
    assert record["val_loss"][0] == pytest.approx(net.loss(Xv, yv), rel=1e-10)

    # the schedule hears the loss over both shards, on every rank alike
    record, _ = outcome["local_plateau"][0]
    replay = fastwb.schedules.ReduceOnPlateau(factor=0.5, patience=0, min_delta=0.15)
    rates = []
    for epoch, loss in enumerate(record["loss"], 1):
        rates.append(0.02 * replay.multiplier)
        replay.on_epoch_end(epoch, loss)
    assert record["lr"] == rates and 1 < len(set(rates)) < len(rates)

    (record, arrays), _ = outcome["local_stop"]       # a callback stops before epoch 2's average
    assert record["epoch"] == [1]
    parameters, _, counters, _ = _expected_local_sgd(cases["local_stop"], 1)
    np.testing.assert_allclose(arrays["parameters"], parameters, rtol=1e-12, atol=1e-15)
    assert record["counters"] == counters

    assert outcome["local_same_seed"][0][0]["error"].startswith(
        "ValueError: the ranks' networks share seeds ([3, 3]); with dropout, local SGD")

    stopped = "RuntimeError: fastwb.distributed.fit stopped: rank 1 failed with "
    assert [r["error"] for r, _ in outcome["local_fail"]] == [
        stopped + "ValueError: injected error", "ValueError: injected error"]
    assert [r["error"] for r, _ in outcome["local_interrupt"]] == [
        stopped + "KeyboardInterrupt: interrupted (Ctrl-C)",
        "KeyboardInterrupt: interrupted (Ctrl-C)"]
    # a divergence on one rank takes both back to the last average, epoch 1's
    message = ("FloatingPointError: on rank 1, FloatingPointError: injected diverge Every "
               "rank is back at the parameters and optimizer state of the last average.")
    parameters, buffers, counters, _ = _expected_local_sgd(cases["local_diverge"], 1)
    for record, arrays in outcome["local_diverge"]:
        assert record["error"] == message and record["counters"] == counters
        np.testing.assert_allclose(arrays["parameters"], parameters, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(arrays["exp_avg_sq"], buffers["exp_avg_sq"], rtol=1e-12,
                                   atol=1e-15)

    (record, arrays), _ = outcome["float32"]
    net, _, history = _expected_sync(cases["float32"])
    assert arrays["parameters"].dtype == np.float32
    np.testing.assert_allclose(arrays["parameters"], net.parameters, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(record["loss"], history["loss"], rtol=1e-5)

    for name in ("plateau", "penalties"):
        (record, arrays), _ = outcome[name]
        net, optimizer, history = _expected_sync(cases[name])
        np.testing.assert_allclose(arrays["parameters"], net.parameters, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(record["loss"], history["loss"], rtol=1e-10)
        assert record["lr"] == pytest.approx(history["lr"], rel=1e-12)
    assert len(set(outcome["plateau"][0][0]["lr"])) > 1        # the loss cut the rate


def test_three_ranks_with_uneven_shards_and_a_partial_last_batch(tmp_path):
    sync = {"epochs": 3, "batch_size": 4, "shuffle": False}
    cases = {"sync": _case([12, 12, 9], sync, weights=True),
             "local": _case([12, 12, 9], {**LOCAL, "class_weight": "balanced"}, weights=True,
                            seed_step=1)}
    outcome = _run_cases(tmp_path, 3, cases)
    for results in outcome.values():
        _assert_ranks_identical(results)
    (record, arrays) = outcome["sync"][0]
    net, optimizer, history = _expected_sync(cases["sync"])
    np.testing.assert_allclose(arrays["parameters"], net.parameters, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(record["loss"], history["loss"], rtol=1e-10)
    assert record["counters"] == [optimizer.step, optimizer.epoch, optimizer.samples_seen]
    (record, arrays) = outcome["local"][0]
    parameters, _, counters, losses = _expected_local_sgd(cases["local"], 3)
    np.testing.assert_allclose(arrays["parameters"], parameters, rtol=1e-12, atol=1e-15)
    assert record["counters"] == counters
    np.testing.assert_allclose(record["loss"], losses, rtol=1e-12)
