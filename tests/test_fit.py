"""``Network.fit``: the compiled epoch loop against the NumPy reference, and the
Python around it (history, validation, early stopping, callbacks, class
weights, partial_fit, divergence, Ctrl-C, argument checks, progress output).

The compiled and reference fits from one seed must agree to TOLERANCE in
parameters, history and optimizer state: the reference draws the same shuffles
and dropout masks through ``fastwb._random``.
"""
import math
import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fastwb
from fastwb import schedules
from fastwb.testing import TOLERANCE, make_targets, rel_error


def assert_close(actual, expected, dtype, what):
    err = rel_error(actual, expected)
    assert err <= TOLERANCE[np.dtype(dtype)], f"{what}: relative error {err:.3g}"


def flat_state(opt):
    """The optimizer's buffers by name (copies)."""
    return {k: np.array(v) for k, v in opt.state.items() if isinstance(v, np.ndarray)}


# --- compiled fit == reference fit ------------------------------------------------------

class Case:
    """One compiled-vs-reference comparison: a network, data, an optimizer, fit options."""

    def __init__(self, name, optimizer, *, loss="mse", target="float", dtype="float64",
                 sizes=(5, 7, 3), n=23, batch_size=5, net=None, fit=None, weights=False,
                 validation=True, skew=False):
        self.name, self.optimizer, self.loss, self.target = name, optimizer, loss, target
        self.dtype, self.sizes, self.n, self.batch_size = dtype, sizes, n, batch_size
        self.net, self.fit = net or {}, fit or {}
        self.weights, self.validation, self.skew = weights, validation, skew

    def __repr__(self):
        return self.name


LOSS_OF = {"mse": ("mse", "float"), "bce": ("binary_cross_entropy", "probability"),
           "labels": ("softmax_cross_entropy", "labels"),
           "one_hot": ("softmax_cross_entropy", "one_hot")}

OPTIMIZER_CASES = [
    ("sgd", lambda: fastwb.SGD(lr=0.1), "mse"),
    ("momentum", lambda: fastwb.SGD(lr=0.05, momentum=0.9), "bce"),
    ("nesterov", lambda: fastwb.SGD(lr=0.05, momentum=0.8, nesterov=True), "labels"),
    ("rmsprop", lambda: fastwb.RMSprop(lr=0.01), "one_hot"),
    ("adagrad", lambda: fastwb.Adagrad(lr=0.1), "mse"),
    ("adam", lambda: fastwb.Adam(lr=0.01), "labels"),
    ("adamw", lambda: fastwb.AdamW(lr=0.01, weight_decay=0.1), "bce"),
]


def _cases():
    cases = []
    for name, opt, kind in OPTIMIZER_CASES:
        loss, target = LOSS_OF[kind]
        for dtype in ("float64", "float32"):
            cases.append(Case(f"{name}-{kind}-{dtype}", opt, loss=loss, target=target,
                              dtype=dtype))
    sgd = lambda: fastwb.SGD(lr=0.1)
    adam = lambda: fastwb.Adam(lr=0.01)
    momentum = lambda: fastwb.SGD(lr=0.05, momentum=0.9)
    three = (6, 9, 8, 3)
    cases += [
        Case("dropout", sgd, sizes=three, net=dict(dropout=0.5)),
        Case("dropout-per-layer-f32", adam, sizes=three, dtype="float32",
             loss="softmax_cross_entropy", target="labels", net=dict(dropout=[0.2, 0.6])),
        Case("dropout-deep-leaky", momentum, sizes=(6, 9, 8, 7, 3),
             net=dict(dropout=0.25, activation="leaky_relu")),
        Case("dense-layers", adam, sizes=None, net=dict(layers=True)),
        Case("l1", sgd, net=dict(l1=0.01)),
        Case("l2", momentum, net=dict(l2=0.05)),
        Case("l1-l2-biases-adamw", lambda: fastwb.AdamW(lr=0.01), loss="binary_cross_entropy",
             target="probability", net=dict(l1=0.01, l2=0.02, regularize_biases=True)),
        Case("clip-norm", lambda: fastwb.SGD(lr=0.1, clip_norm=0.1)),
        Case("clip-value", lambda: fastwb.Adam(lr=0.01, clip_value=0.01)),
        Case("clip-both-f32", lambda: fastwb.RMSprop(lr=0.01, clip_norm=0.2, clip_value=0.05),
             dtype="float32", net=dict(l2=0.01)),
        Case("step-decay", lambda: fastwb.SGD(lr=0.1, schedule=schedules.StepDecay(1, 0.5))),
        Case("exponential-decay",
             lambda: fastwb.SGD(lr=0.05, momentum=0.9, schedule=schedules.ExponentialDecay(0.7))),
        Case("inverse-scaling", lambda: fastwb.SGD(lr=0.2, schedule=schedules.InverseScaling())),
        Case("cosine-warmup", lambda: fastwb.Adam(
            lr=0.02, schedule=schedules.CosineWarmup(total_steps=10, warmup_steps=3,
                                                     min_lr=1e-3))),
        Case("reduce-on-plateau", lambda: fastwb.SGD(
            lr=0.1, schedule=schedules.ReduceOnPlateau(factor=0.5, patience=0, min_delta=10.0))),
        Case("sample-weight", sgd, weights=True),
        Case("sample-weight-no-shuffle-f32", adam, weights=True, dtype="float32",
             fit=dict(shuffle=False)),
        Case("class-weight-balanced", adam, loss="softmax_cross_entropy", target="labels",
             skew=True, fit=dict(class_weight="balanced")),
        Case("class-weight-balanced-bce", sgd, loss="binary_cross_entropy", target="probability",
             sizes=(5, 7, 1), skew=True, fit=dict(class_weight="balanced")),
        Case("class-weight-dict-and-sample-weight", momentum, loss="softmax_cross_entropy",
             target="one_hot", weights=True, fit=dict(class_weight={0: 3.0, 2: 0.5})),
        Case("no-shuffle", sgd, fit=dict(shuffle=False)),
        Case("batch-divides-n", sgd, n=20, batch_size=5),
        Case("batch-larger-than-n", adam, n=13, batch_size=100),
        Case("batch-one", sgd, n=11, batch_size=1, net=dict(dropout=0.3), sizes=three),
        Case("mse-sigmoid-output-tanh", sgd, target="probability",
             net=dict(activation="tanh", output_activation="sigmoid")),
        Case("validation-split", adam, loss="softmax_cross_entropy", target="labels",
             validation=False, fit=dict(validation_split=0.3)),
        Case("validation-weights-f32", momentum, dtype="float32",
             fit=dict(validation_weights=True)),
    ]
    return cases


CASES = _cases()


def build(case, backend):
    kwargs = dict(case.net)
    sizes = case.sizes
    if kwargs.pop("layers", False):
        sizes = [fastwb.Dense(5, 8, "tanh", dropout=0.4),
                 fastwb.Dense(8, 6, "sigmoid", l2=0.02),
                 fastwb.Dense(6, 3)]
    return fastwb.Network(sizes, loss=case.loss, dtype=case.dtype, seed=11, backend=backend,
                          **kwargs)


def run_case(case, backend):
    rng = np.random.default_rng(len(case.name))
    net = build(case, backend)
    n_in, n_out = net.sizes[0], net.sizes[-1]
    X = rng.normal(size=(case.n, n_in))
    if case.skew:           # imbalanced classes for class weights
        labels = np.minimum(rng.geometric(0.5, size=case.n) - 1, max(n_out, 2) - 1)
        y = labels if case.target == "labels" else (
            labels[:, None].astype(float) if n_out == 1 else np.eye(n_out)[labels])
        y = np.clip(y, 0, 1) if case.loss == "binary_cross_entropy" else y
    else:
        y = make_targets(case.target, case.n, n_out, rng)
    fit = dict(case.fit)
    if case.weights:
        fit["sample_weight"] = rng.uniform(0, 2, size=case.n)
    if fit.pop("validation_weights", False):
        Xv, yv = rng.normal(size=(9, n_in)), make_targets(case.target, 9, n_out, rng)
        fit["validation_data"] = (Xv, yv, rng.uniform(0.5, 1.5, size=9))
    elif case.validation:
        fit["validation_data"] = (rng.normal(size=(9, n_in)),
                                  make_targets(case.target, 9, n_out, rng))
    opt = case.optimizer()
    history = net.fit(X, y, opt, epochs=3, batch_size=case.batch_size, **fit)
    return net, opt, history


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_compiled_fit_matches_reference(case):
    compiled, opt_c, hist_c = run_case(case, "compiled")
    reference, opt_r, hist_r = run_case(case, "reference")
    dtype = case.dtype
    assert_close(compiled.parameters, reference.parameters, dtype, "parameters")
    assert hist_c.epoch == hist_r.epoch == [1, 2, 3]
    assert set(hist_c.history) == set(hist_r.history)
    for key in ("loss", "val_loss", "val_accuracy"):
        if key in hist_r.history:
            assert_close(hist_c[key], hist_r[key], dtype, key)
    assert hist_c["lr"] == hist_r["lr"]
    assert (opt_c.step, opt_c.epoch, opt_c.samples_seen) == (opt_r.step, opt_r.epoch,
                                                             opt_r.samples_seen)
    state_c, state_r = flat_state(opt_c), flat_state(opt_r)
    assert state_c.keys() == state_r.keys()
    for name in state_r:
        assert_close(state_c[name], state_r[name], dtype, f"optimizer state {name}")
    assert np.all(np.isfinite(compiled.parameters))
    # training did something (guards against a case that silently trains nothing)
    assert not np.array_equal(compiled.parameters, build(case, "compiled").parameters)


def test_case_list_covers_what_it_claims():
    names = {c.name for c in CASES}
    assert len(CASES) >= 35
    assert {c.dtype for c in CASES} == {"float64", "float32"}
    assert {c.loss for c in CASES} == {"mse", "binary_cross_entropy", "softmax_cross_entropy"}
    assert {"step-decay", "exponential-decay", "inverse-scaling", "cosine-warmup",
            "reduce-on-plateau"} <= names


# --- determinism ----------------------------------------------------------------------

def _deterministic_fit(dtype, n_threads, backend="compiled"):
    """A small fit touching every random and reduction path: shuffles, dropout,
    penalty, clipping (a global norm), Adam, a validation split; few batches, as
    each costs several thread barriers on the forced parallel path."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 12))
    y = rng.integers(0, 4, size=120)
    net = fastwb.Network([12, 33, 17, 4], loss="softmax_cross_entropy", dtype=dtype, seed=3,
                         n_threads=n_threads, dropout=0.3, l2=1e-3, backend=backend)
    history = net.fit(X, y, fastwb.Adam(0.01, clip_norm=1.0), epochs=2, batch_size=40,
                      validation_split=0.25)
    return net.parameters.copy(), history["loss"], history["val_loss"]


@pytest.mark.parametrize("kernel_path", ["default", "parallel_loops", "blas"], indirect=True)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_is_bit_identical_across_runs_and_thread_counts(dtype, kernel_path):
    runs = {n_threads: _deterministic_fit(dtype, n_threads) for n_threads in (1, 2, None)}
    again = _deterministic_fit(dtype, 2)
    for n_threads, (params, loss, val_loss) in list(runs.items()) + [("again", again)]:
        np.testing.assert_array_equal(params, runs[1][0], err_msg=f"n_threads={n_threads}")
        assert loss == runs[1][1], n_threads
        assert val_loss == runs[1][2], n_threads


def test_reference_fit_is_deterministic():
    first = _deterministic_fit("float64", None, "reference")
    second = _deterministic_fit("float64", None, "reference")
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


# --- History ----------------------------------------------------------------------------

def _regression(n=30, n_in=4, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out))


def test_history_lengths_epochs_time_and_throughput():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0)
    opt = fastwb.SGD(0.05)
    history = net.fit(X, y, opt, epochs=4, batch_size=7, validation_data=_regression(10))
    assert len(history) == 4 and history.epoch == [1, 2, 3, 4]
    assert set(history.history) == {"loss", "lr", "time", "samples_per_second", "val_loss"}
    assert all(len(v) == 4 for v in history.history.values())
    assert all(t > 0 for t in history["time"])
    for t, rate in zip(history["time"], history["samples_per_second"]):
        assert rate == pytest.approx(30 / t)
    assert history.stopped_early is False and history.best_epoch is None
    assert "4 epochs" in repr(history)
    # a second fit continues the optimizer's epoch numbers
    more = net.fit(X, y, epochs=2)
    assert more.epoch == [5, 6] and net.optimizer is opt and opt.epoch == 6
    assert opt.samples_seen == 6 * 30 and opt.step == 4 * 5 + 2 * 1


@pytest.mark.parametrize("make_schedule,expected", [
    (lambda: None, [0.1] * 5),
    (lambda: schedules.StepDecay(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
    (lambda: schedules.ExponentialDecay(gamma=0.5), [0.1 * 0.5 ** e for e in range(5)]),
    (lambda: schedules.InverseScaling(power_t=0.5),
     [0.1 / math.sqrt(30 * e + 1) for e in range(5)]),
    (lambda: schedules.CosineWarmup(total_steps=12, warmup_steps=4, min_lr=0.01),
     "cosine"),
])
def test_history_lr_follows_the_schedule(make_schedule, expected):
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    schedule = make_schedule()
    history = net.fit(X, y, fastwb.SGD(0.1, schedule=schedule), epochs=5, batch_size=8)
    if expected == "cosine":         # the rate of each epoch's last step (4 steps an epoch)
        expected = [float(schedule.rates(0.1, np.array([4 * e + 3]), e, 0)[0])
                    for e in range(5)]
        assert expected[-1] == 0.01
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-15)


def test_history_lr_with_reduce_on_plateau():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    # lr = 0: the loss never improves after epoch 0, so each later epoch cuts the rate
    schedule = schedules.ReduceOnPlateau(factor=0.5, patience=1, min_delta=0.0)
    opt = fastwb.SGD(0.0, schedule=schedule)
    history = net.fit(X, y, opt, epochs=6)
    assert schedule.n_reductions == 2
    opt.lr = 0.4
    history = net.fit(X, y, opt, epochs=1)
    assert history["lr"] == [0.1]


def test_epoch_loss_is_the_row_weighted_mean_of_batch_losses():
    X, y = _regression(n=30)
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    replay = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    history = net.fit(X, y, fastwb.SGD(0.05, momentum=0.5), epochs=2, batch_size=7,
                      shuffle=False)
    opt = fastwb.SGD(0.05, momentum=0.5)
    for epoch in range(2):
        losses = [replay.train_step(X[i:i + 7], y[i:i + 7], opt) for i in range(0, 30, 7)]
        rows = [7, 7, 7, 7, 2]
        assert history["loss"][epoch] == pytest.approx(np.dot(losses, rows) / 30, rel=1e-13)
    np.testing.assert_array_equal(net.parameters, replay.parameters)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("batch_size", [5, 7, 30, 64])
def test_with_lr_zero_the_epoch_loss_is_the_full_data_loss(backend, batch_size):
    X, y = _regression(n=30)
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0, l2=0.1, backend=backend)
    before = net.parameters.copy()
    history = net.fit(X, y, fastwb.Adam(0.0), epochs=2, batch_size=batch_size)
    np.testing.assert_array_equal(net.parameters, before)
    for value in history["loss"]:
        assert value == pytest.approx(net.loss(X, y), rel=1e-12)


@pytest.mark.parametrize("loss,target", [("softmax_cross_entropy", "labels"),
                                         ("softmax_cross_entropy", "one_hot"),
                                         ("binary_cross_entropy", "probability")])
def test_val_accuracy_matches_predictions(loss, target):
    rng = np.random.default_rng(2)
    n_out = 3
    X, Xv = rng.normal(size=(60, 4)), rng.normal(size=(25, 4))
    y, yv = make_targets(target, 60, n_out, rng), make_targets(target, 25, n_out, rng)
    net = fastwb.Network([4, 10, n_out], loss=loss, seed=0)
    seen = []

    def check(epoch, logs):
        out = net.predict(Xv)
        if loss == "softmax_cross_entropy":
            truth = yv if yv.ndim == 1 else yv.argmax(axis=1)
            expected = np.mean(out.argmax(axis=1) == truth)
        else:
            expected = np.mean((out >= 0.5) == (yv >= 0.5))
        assert logs["val_accuracy"] == pytest.approx(expected, abs=1e-12)
        assert logs["val_loss"] == pytest.approx(net.loss(Xv, yv), rel=1e-6)
        seen.append(epoch)

    history = net.fit(X, y, fastwb.Adam(0.05), epochs=4, validation_data=(Xv, yv),
                      callbacks=check)
    assert seen == [1, 2, 3, 4]
    assert all(0 <= a <= 1 for a in history["val_accuracy"])


def test_mse_history_has_no_accuracy():
    X, y = _regression()
    history = fastwb.Network([4, 2], seed=0).fit(X, y, epochs=1,
                                                 validation_data=_regression(5))
    assert "val_accuracy" not in history.history and "val_loss" in history.history


# --- validation -----------------------------------------------------------------------

@pytest.mark.parametrize("n,split,n_val", [(40, 0.25, 10), (23, 0.3, 7), (10, 0.06, 1)])
def test_validation_split_sizes_and_reproducibility(n, split, n_val):
    X, y = _regression(n=n)
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=5)
    opt = fastwb.SGD(0.05)
    history = net.fit(X, y, opt, epochs=2, batch_size=4, validation_split=split)
    assert opt.samples_seen == 2 * (n - n_val)
    order = np.random.default_rng(5).permutation(n)
    val = np.sort(order[n - n_val:])
    assert history["val_loss"][-1] == pytest.approx(net.loss(X[val], y[val]), rel=1e-12)
    # the same seed splits and trains the same way
    again = fastwb.Network([4, 6, 2], dtype="float64", seed=5)
    repeat = again.fit(X, y, fastwb.SGD(0.05), epochs=2, batch_size=4, validation_split=split)
    assert repeat["loss"] == history["loss"] and repeat["val_loss"] == history["val_loss"]
    np.testing.assert_array_equal(again.parameters, net.parameters)


def test_validation_split_depends_on_the_seed():
    X, y = _regression(n=40)
    val_sets = []
    for seed in (1, 2):
        net = fastwb.Network([4, 2], dtype="float64", seed=seed)
        history = net.fit(X, y, fastwb.SGD(0.0), epochs=1, validation_split=0.25)
        val = np.sort(np.random.default_rng(seed).permutation(40)[30:])
        assert history["val_loss"][0] == pytest.approx(net.loss(X[val], y[val]), rel=1e-12)
        val_sets.append(val)
    assert not np.array_equal(*val_sets)


@pytest.mark.parametrize("split", [0.01, 0.99])
def test_validation_split_that_leaves_a_side_empty(split):
    X, y = _regression(n=10)
    with pytest.raises(ValueError, match="validation_split"):
        fastwb.Network([4, 2], seed=0).fit(X, y, epochs=1, validation_split=split)


def test_validation_data_with_and_without_weights():
    X, y = _regression()
    Xv, yv = _regression(n=12, seed=3)
    wv = np.linspace(0.1, 2.0, 12)
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    history = net.fit(X, y, fastwb.SGD(0.05), epochs=2, validation_data=(Xv, yv, wv))
    assert history["val_loss"][-1] == pytest.approx(net.loss(Xv, yv, sample_weight=wv),
                                                    rel=1e-12)
    assert history["val_loss"][-1] != pytest.approx(net.loss(Xv, yv), rel=1e-6)
    history = net.fit(X, y, epochs=1, validation_data=[Xv, yv])
    assert history["val_loss"][-1] == pytest.approx(net.loss(Xv, yv), rel=1e-12)


def test_validation_data_is_not_class_weighted():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(40, 3)), (rng.uniform(size=40) < 0.2).astype(int)
    Xv, yv = rng.normal(size=(15, 3)), (rng.uniform(size=15) < 0.3).astype(int)
    net = fastwb.Network([3, 5, 2], loss="softmax_cross_entropy", dtype="float64", seed=0)
    history = net.fit(X, y, fastwb.Adam(0.01), epochs=2, validation_data=(Xv, yv),
                      class_weight="balanced")
    assert history["val_loss"][-1] == pytest.approx(net.loss(Xv, yv), rel=1e-12)


@pytest.mark.parametrize("validation_data", [
    (np.zeros((3, 4)),), (np.zeros((3, 4)), np.zeros((3, 2)), np.ones(3), None),
    np.zeros((3, 4)), "data"])
def test_bad_validation_data(validation_data):
    X, y = _regression()
    with pytest.raises(ValueError, match="validation_data"):
        fastwb.Network([4, 2], seed=0).fit(X, y, epochs=1, validation_data=validation_data)


def test_validation_data_and_split_together_are_refused():
    X, y = _regression()
    with pytest.raises(ValueError, match="not both"):
        fastwb.Network([4, 2], seed=0).fit(X, y, epochs=1, validation_data=_regression(5),
                                           validation_split=0.2)


def test_bad_validation_arrays_are_refused_before_training():
    X, y = _regression()
    net = fastwb.Network([4, 2], seed=0)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match="features"):
        net.fit(X, y, epochs=1, validation_data=(np.zeros((5, 3)), np.zeros((5, 2))))
    np.testing.assert_array_equal(net.parameters, before)


# --- early stopping ------------------------------------------------------------------------

class Recorder(fastwb.Callback):
    """Records every hook call and the parameters after every epoch."""

    def __init__(self):
        self.calls = []
        self.parameters = {}

    def on_train_begin(self, logs):
        self.calls.append(("train_begin", None, dict(logs)))

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(("epoch_begin", epoch, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch, dict(logs)))
        self.parameters[epoch] = self.network.parameters.copy()

    def on_train_end(self, logs):
        self.calls.append(("train_end", None, dict(logs)))


@pytest.mark.parametrize("patience", [0, 1, 3])
def test_early_stopping_on_a_plateau(patience):
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0)
    history = net.fit(X, y, fastwb.SGD(0.0), epochs=20, early_stopping=True,
                      patience=patience)
    # epoch 1 sets the best; the loss never improves after it
    assert len(history) == max(patience, 1) + 1
    assert history.stopped_early is True and history.best_epoch == 1


def test_early_stopping_does_not_stop_while_improving():
    X, y = _regression()
    history = fastwb.Network([4, 6, 2], seed=0).fit(X, y, fastwb.Adam(0.01), epochs=8,
                                                    early_stopping=True, patience=2,
                                                    min_delta=0.0)
    assert len(history) == 8 and history.stopped_early is False
    assert history.best_epoch == 8


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_monitors_val_loss_and_restores_the_best_weights(restore):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(int)
    Xv = rng.normal(size=(32, 3))
    yv = (Xv[:, 0] <= 0).astype(int)          # the opposite rule: validation gets worse
    net = fastwb.Network([3, 8, 2], loss="softmax_cross_entropy", dtype="float64", seed=0)
    recorder = Recorder()
    history = net.fit(X, y, fastwb.Adam(0.05), epochs=50, validation_data=(Xv, yv),
                      early_stopping=True, patience=3, restore_best_weights=restore,
                      callbacks=[recorder])
    assert history.stopped_early and len(history) < 50
    assert history["loss"][-1] < history["loss"][0]           # training still improved
    best = history.best_epoch
    assert history["val_loss"][best - 1] <= min(history["val_loss"]) + 1e-4
    assert len(history) == best + 3
    last = history.epoch[-1]
    assert not np.array_equal(recorder.parameters[best], recorder.parameters[last])
    expected = recorder.parameters[best if restore else last]
    np.testing.assert_array_equal(net.parameters, expected)


def test_early_stopping_monitors_the_training_loss_without_validation():
    X, y = _regression()
    # the training loss decreases steadily: no stop although no validation set exists
    history = fastwb.Network([4, 6, 2], seed=0).fit(X, y, fastwb.SGD(0.05), epochs=5,
                                                    early_stopping=True, patience=1)
    assert len(history) == 5


def test_early_stopping_callback_with_an_unrecorded_metric():
    X, y = _regression()
    with pytest.raises(ValueError, match="val_loss"):
        fastwb.Network([4, 2], seed=0).fit(X, y, epochs=2,
                                           callbacks=[fastwb.EarlyStopping("val_loss")])


# --- callbacks ------------------------------------------------------------------------------

def test_callback_hooks_run_in_order_with_epochs_and_logs():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0)
    recorder = Recorder()
    history = net.fit(X, y, fastwb.SGD(0.05), epochs=3, callbacks=recorder,
                      validation_data=_regression(6))
    assert recorder.network is net
    kinds = [(kind, epoch) for kind, epoch, _ in recorder.calls]
    assert kinds == [("train_begin", None), ("epoch_begin", 1), ("epoch_end", 1),
                     ("epoch_begin", 2), ("epoch_end", 2), ("epoch_begin", 3),
                     ("epoch_end", 3), ("train_end", None)]
    ends = [logs for kind, _, logs in recorder.calls if kind == "epoch_end"]
    for i, logs in enumerate(ends):
        assert logs == {key: values[i] for key, values in history.history.items()}
    recorder.calls.clear()
    net.fit(X, y, epochs=2, callbacks=[recorder])
    assert [e for k, e, _ in recorder.calls if k == "epoch_end"] == [4, 5]


def test_plain_functions_and_mixed_callbacks():
    X, y = _regression()
    seen = []
    recorder = Recorder()
    net = fastwb.Network([4, 6, 2], seed=0)
    net.fit(X, y, epochs=3, callbacks=[lambda epoch, logs: seen.append((epoch, logs["loss"])),
                                       recorder])
    assert [e for e, _ in seen] == [1, 2, 3]
    assert all(isinstance(loss, float) for _, loss in seen)
    assert len(recorder.parameters) == 3
    net.fit(X, y, epochs=1, callbacks=lambda epoch, logs: seen.append(epoch))
    assert seen[-1] == 4


def test_a_callback_can_stop_training_and_the_flag_resets():
    X, y = _regression()

    class StopAfterTwo(fastwb.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.network.stop_training = True

    net = fastwb.Network([4, 6, 2], seed=0)
    recorder = Recorder()
    history = net.fit(X, y, epochs=10, callbacks=[StopAfterTwo(), recorder])
    assert len(history) == 2 and recorder.calls[-1][0] == "train_end"
    assert history.stopped_early is False      # not early stopping's doing
    history = net.fit(X, y, epochs=3)
    assert len(history) == 3


def test_train_end_runs_when_an_epoch_fails():
    X, y = _regression()
    recorder = Recorder()

    def boom(epoch, logs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fastwb.Network([4, 2], seed=0).fit(X, y, epochs=3, callbacks=[recorder, boom])
    assert recorder.calls[-1][0] == "train_end"


def test_a_callback_that_is_not_callable_is_refused():
    X, y = _regression()
    with pytest.raises(TypeError, match="callback"):
        fastwb.Network([4, 2], seed=0).fit(X, y, epochs=1, callbacks=[42])


# --- class weights ---------------------------------------------------------------------------

def _imbalanced_labels(n, counts, rng):
    labels = np.repeat(np.arange(len(counts)), counts)
    return rng.permutation(labels)


def test_balanced_class_weights():
    rng = np.random.default_rng(0)
    y = _imbalanced_labels(17, [10, 5, 2], rng)
    X = rng.normal(size=(17, 4))
    net = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    expected = (17 / (3 * np.array([10.0, 5.0, 2.0])))[y]
    history = net.fit(X, y, fastwb.SGD(0.0), epochs=1, batch_size=32,
                      class_weight="balanced")
    assert history["loss"][0] == pytest.approx(net.loss(X, y, sample_weight=expected),
                                               rel=1e-12)
    assert history["loss"][0] != pytest.approx(net.loss(X, y), rel=1e-6)
    # one-hot targets give the same classes
    history = net.fit(X, np.eye(3)[y], fastwb.SGD(0.0), epochs=1, batch_size=32,
                      class_weight="balanced")
    assert history["loss"][0] == pytest.approx(net.loss(X, y, sample_weight=expected),
                                               rel=1e-12)


def test_class_weight_weighs_training_but_not_validation():
    rng = np.random.default_rng(5)
    y = _imbalanced_labels(40, [30, 8, 2], rng)
    X = rng.normal(size=(40, 4))
    net = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    history = net.fit(X, y, fastwb.SGD(0.0), epochs=1, batch_size=64, validation_split=0.25,
                      class_weight="balanced")
    order = np.random.default_rng(net.seed).permutation(40)
    train, val = np.sort(order[:30]), np.sort(order[30:])
    counts = np.bincount(y[train], minlength=3).astype(float)
    present = counts > 0
    weights = np.ones(3)
    weights[present] = 30 / (present.sum() * counts[present])
    assert history["loss"][0] == pytest.approx(
        net.loss(X[train], y[train], sample_weight=weights[y[train]]), rel=1e-12)
    assert history["val_loss"][0] == pytest.approx(net.loss(X[val], y[val]), rel=1e-12)


def test_class_weight_multiplies_sample_weight_and_dict_weights():
    rng = np.random.default_rng(1)
    y = _imbalanced_labels(12, [6, 4, 2], rng)
    X = rng.normal(size=(12, 4))
    sw = rng.uniform(0.5, 2.0, size=12)
    net = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    history = net.fit(X, y, fastwb.SGD(0.0), epochs=1, batch_size=12, sample_weight=sw,
                      class_weight={2: 4.0, np.int64(0): 0.5})
    expected = sw * np.array([0.5, 1.0, 4.0])[y]
    assert history["loss"][0] == pytest.approx(net.loss(X, y, sample_weight=expected),
                                               rel=1e-12)


def test_balanced_class_weight_for_binary_cross_entropy():
    rng = np.random.default_rng(2)
    y = rng.uniform(size=20) ** 3           # soft targets; class = target >= 0.5
    X = rng.normal(size=(20, 3))
    classes = (y >= 0.5).astype(int)
    counts = np.bincount(classes, minlength=2)
    net = fastwb.Network([3, 4, 1], loss="binary_cross_entropy", dtype="float64", seed=0)
    history = net.fit(X, y, fastwb.SGD(0.0), epochs=1, batch_size=20,
                      class_weight="balanced")
    expected = (20 / (2 * counts))[classes]
    assert history["loss"][0] == pytest.approx(net.loss(X, y, sample_weight=expected),
                                               rel=1e-12)


@pytest.mark.parametrize("class_weight,error,match", [
    ({3: 1.0}, ValueError, "class"),
    ({-1: 1.0}, ValueError, "class"),
    ({0: -1.0}, ValueError, "class_weight"),
    ({0: float("nan")}, ValueError, "class_weight"),
    ({0.5: 1.0}, TypeError, "class_weight"),
    ("balance", ValueError, "class_weight"),
    (["balanced"], TypeError, "class_weight"),
    ({0: 0.0, 1: 0.0, 2: 0.0}, ValueError, "weight 0"),
])
def test_bad_class_weight(class_weight, error, match):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, size=10)
    net = fastwb.Network([4, 3], loss="softmax_cross_entropy", seed=0)
    with pytest.raises(error, match=match):
        net.fit(X, y, epochs=1, class_weight=class_weight)


@pytest.mark.parametrize("loss,n_out", [("mse", 1), ("binary_cross_entropy", 2)])
def test_class_weight_needs_a_classification_loss(loss, n_out):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 4)), rng.uniform(size=(10, n_out))
    with pytest.raises(ValueError, match="class_weight"):
        fastwb.Network([4, n_out], loss=loss, seed=0).fit(X, y, epochs=1,
                                                          class_weight="balanced")


def test_balanced_weights_raise_minority_recall():
    def data(seed, n=2000):
        rng = np.random.default_rng(seed)
        y = (rng.uniform(size=n) < 0.05).astype(int)
        return rng.normal(size=(n, 2)) + 1.5 * y[:, None], y

    X, y = data(0)
    X_test, y_test = data(1)
    recall = {}
    for class_weight in (None, "balanced"):
        net = fastwb.Network([2, 8, 2], loss="softmax_cross_entropy", seed=0)
        net.fit(X, y, fastwb.Adam(0.01), epochs=20, batch_size=64, class_weight=class_weight)
        predicted = net.predict(X_test).argmax(axis=1)
        recall[class_weight] = np.mean(predicted[y_test == 1] == 1)
    assert recall["balanced"] > 0.65
    assert recall["balanced"] > recall[None] + 0.25


# --- partial_fit ------------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("make_optimizer", [
    lambda: fastwb.Adam(0.01),
    lambda: fastwb.SGD(0.05, momentum=0.9, schedule=schedules.StepDecay(1, 0.5)),
], ids=["adam", "momentum-step-decay"])
def test_partial_fit_calls_equal_one_fit(shuffle, make_optimizer):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(26, 4)), rng.integers(0, 3, size=26)
    kwargs = dict(loss="softmax_cross_entropy", dtype="float64", seed=2, dropout=0.2)
    whole = fastwb.Network([4, 7, 3], **kwargs)
    opt = make_optimizer()
    history = whole.fit(X, y, opt, epochs=3, batch_size=6, shuffle=shuffle)

    parts = fastwb.Network([4, 7, 3], **kwargs)
    part_opt = make_optimizer()
    losses = [parts.partial_fit(X, y, part_opt, batch_size=6, shuffle=shuffle)]
    losses += [parts.partial_fit(X, y, batch_size=6, shuffle=shuffle) for _ in range(2)]
    assert parts.optimizer is part_opt
    np.testing.assert_array_equal(parts.parameters, whole.parameters)
    assert losses == history["loss"]
    assert (part_opt.step, part_opt.epoch, part_opt.samples_seen) == (15, 3, 78)
    assert (opt.step, opt.epoch) == (15, 3)
    for name, value in flat_state(opt).items():
        np.testing.assert_array_equal(flat_state(part_opt)[name], value)

    reference = fastwb.Network([4, 7, 3], backend="reference", **kwargs)
    ref_opt = make_optimizer()
    ref_losses = [reference.partial_fit(X, y, ref_opt, batch_size=6, shuffle=shuffle)
                  for _ in range(3)]
    assert_close(reference.parameters, parts.parameters, "float64", "parameters")
    assert_close(ref_losses, losses, "float64", "losses")


def test_partial_fit_on_chunks_sees_every_chunk():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    net = fastwb.Network([4, 5, 2], dtype="float64", seed=0)
    opt = fastwb.SGD(0.05)
    for chunk in np.array_split(np.arange(30), 3):
        net.partial_fit(X[chunk], y[chunk], opt, batch_size=4, shuffle=False)
    replay = fastwb.Network([4, 5, 2], dtype="float64", seed=0)
    replay_opt = fastwb.SGD(0.05)
    for chunk in np.array_split(np.arange(30), 3):
        for start in range(0, 10, 4):
            rows = chunk[start:start + 4]
            replay.train_step(X[rows], y[rows], replay_opt)
    np.testing.assert_array_equal(net.parameters, replay.parameters)
    assert opt.step == replay_opt.step == 9 and opt.epoch == 3


# --- divergence -----------------------------------------------------------------------------

def _replay(net_kwargs, make_optimizer, X, y, batch_size, steps):
    """A fresh network trained with train_step on the first ``steps`` unshuffled batches."""
    net = fastwb.Network(**net_kwargs)
    opt = make_optimizer()
    n_batches = -(-len(X) // batch_size)
    for s in range(steps):
        b = s % n_batches
        net.train_step(X[b * batch_size:(b + 1) * batch_size],
                       y[b * batch_size:(b + 1) * batch_size], opt)
    return net, opt


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("make_optimizer,scale", [
    (lambda: fastwb.SGD(lr=1e6), 1e6),
    (lambda: fastwb.SGD(lr=30.0, momentum=0.9), 1e3),
    (lambda: fastwb.Adam(lr=1e200), 1.0),
], ids=["sgd", "momentum", "adam"])
def test_divergence_keeps_the_last_finite_update(backend, make_optimizer, scale):
    X, y = _regression(n=40, n_in=5)
    y = y * scale
    kwargs = dict(sizes=[5, 8, 2], dtype="float64", seed=1, backend=backend)
    net = fastwb.Network(**kwargs)
    opt = make_optimizer()
    with pytest.raises(FloatingPointError) as info:
        net.fit(X, y, opt, epochs=20, batch_size=8, shuffle=False)
    match = re.search(r"batch (\d+) of epoch (\d+)", str(info.value))
    assert match, str(info.value)
    batch, epoch = int(match.group(1)), int(match.group(2))
    assert epoch == opt.epoch + 1 and 0 <= batch < 5     # epochs are numbered from 1
    assert np.all(np.isfinite(net.parameters))
    assert opt.step <= (epoch - 1) * 5 + batch
    for value in flat_state(opt).values():
        assert np.all(np.isfinite(value))
    replay, replay_opt = _replay(kwargs, make_optimizer, X, y, 8, opt.step)
    np.testing.assert_array_equal(net.parameters, replay.parameters)
    for name, value in flat_state(replay_opt).items():
        np.testing.assert_array_equal(flat_state(opt)[name], value)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_an_update_that_overflows_is_undone(backend):
    """lr = 1e308 makes the first update infinite: it is rolled back with the
    optimizer state, though its own loss was finite."""
    X, y = _regression(n=40, n_in=5)
    net = fastwb.Network([5, 8, 2], dtype="float64", seed=1, backend=backend)
    before = net.parameters.copy()
    opt = fastwb.SGD(lr=1e308, momentum=0.5)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        net.fit(X, y, opt, epochs=2, batch_size=8, shuffle=False)
    assert np.all(np.isfinite(net.parameters))
    if opt.step == 0:
        np.testing.assert_array_equal(net.parameters, before)
        assert not np.any(opt.state["momentum_buffer"])
    replay, _ = _replay(dict(sizes=[5, 8, 2], dtype="float64", seed=1, backend=backend),
                        lambda: fastwb.SGD(lr=1e308, momentum=0.5), X, y, 8, opt.step)
    np.testing.assert_array_equal(net.parameters, replay.parameters)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("x_scale,y_scale", [(1e20, 1.0), (1e10, 1.0), (1.0, 1e20)])
def test_float32_overflow_raises_and_leaves_finite_parameters(backend, x_scale, y_scale):
    X, y = _regression(n=40, n_in=5)
    net = fastwb.Network([5, 8, 2], dtype="float32", seed=1, backend=backend)
    opt = fastwb.SGD(0.1)
    with pytest.raises(FloatingPointError, match="diverged"):
        net.fit(X * x_scale, y * y_scale, opt, epochs=3, batch_size=8, shuffle=False)
    assert np.all(np.isfinite(net.parameters))
    assert opt.epoch == 0 and opt.step < 5
    assert np.all(np.isfinite(net.predict(X)))


def test_divergence_with_shuffle_and_dropout_is_consistent():
    X, y = _regression(n=40, n_in=5)
    net = fastwb.Network([5, 8, 2], dtype="float64", seed=1, dropout=0.3)
    opt = fastwb.SGD(lr=1e308)
    with pytest.raises(FloatingPointError):
        net.fit(X, y, opt, epochs=3, batch_size=8)
    assert np.all(np.isfinite(net.parameters)) and opt.epoch == 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_in_a_later_shuffled_epoch_matches_the_reference():
    X, y = _regression(n=40, n_in=5)
    results = []
    for backend in ("compiled", "reference"):
        net = fastwb.Network([5, 8, 2], dtype="float64", seed=1, dropout=0.2, backend=backend)
        opt = fastwb.SGD(0.3, momentum=0.9)
        with pytest.raises(FloatingPointError) as info:
            net.fit(X, y, opt, epochs=30, batch_size=8)
        match = re.search(r"batch (\d+) of epoch (\d+)", str(info.value))
        results.append((int(match.group(1)), int(match.group(2)), opt.step, opt.epoch,
                        net.parameters.copy()))
    (batch, epoch, step, opt_epoch, params), reference = results
    assert (batch, epoch, step, opt_epoch) == reference[:4]
    assert epoch >= 2 and opt_epoch == epoch - 1 and step <= 5 * (epoch - 1) + batch
    assert np.all(np.isfinite(params))
    assert_close(params, reference[4], "float64", "parameters after divergence")


# --- Ctrl-C -----------------------------------------------------------------------------------

class _InterruptSoon(fastwb.Callback):
    """Sends SIGINT to this process ``delay`` seconds after the first epoch starts;
    with ``stop_after`` it ends training at the first epoch end after the signal."""

    def __init__(self, delay=0.3, stop_after=False):
        self.delay = delay
        self.stop_after = stop_after
        self.timer = None

    def on_epoch_begin(self, epoch, logs):
        if self.timer is None:
            self.timer = threading.Timer(self.delay, os.kill, (os.getpid(), signal.SIGINT))
            self.timer.start()

    def on_epoch_end(self, epoch, logs):
        if self.stop_after and self.timer.finished.is_set():
            self.network.stop_training = True


def _big_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 200)).astype(np.float32)
    y = rng.integers(0, 10, size=4000)
    return X, y


def _fit_interrupted(net, opt, X, y, epochs=30, stop_after=False, **kwargs):
    """Fit with a SIGINT 0.3 s in; returns whether KeyboardInterrupt came out.

    A SIGINT that lands after fit would abort pytest itself, so the timer is
    joined and any late KeyboardInterrupt is absorbed (and reported) here."""
    arm = _InterruptSoon(stop_after=stop_after)
    interrupted = False
    try:
        try:
            net.fit(X, y, opt, epochs=epochs, batch_size=32, callbacks=[arm], **kwargs)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if arm.timer is not None:
                arm.timer.join()
    except KeyboardInterrupt:       # pragma: no cover - only when the timing went wrong
        pytest.fail("SIGINT arrived after fit returned")
    return interrupted


main_thread_only = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                      reason="signals go to the main thread")


@pytest.fixture
def clear_interrupt():
    """After a Ctrl-C test, a small fit on the main thread, which starts by
    clearing the compiled core's interrupt flag, so no later test sees it."""
    yield
    X, y = _regression(n=4)
    fastwb.Network([4, 2], seed=0).fit(X, y, epochs=1)


@main_thread_only
def test_ctrl_c_stops_at_a_batch_boundary(clear_interrupt, default_sigint):
    X, y = _big_problem()
    sizes = [200, 512, 512, 10]
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0)
    opt = fastwb.SGD(0.01)
    assert _fit_interrupted(net, opt, X, y, shuffle=False), "fit finished before the signal"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert np.all(np.isfinite(net.parameters))
    n_batches = 125
    steps = opt.step
    assert steps > 0 and opt.epoch == steps // n_batches
    # exactly opt.step updates were applied: replaying them gives the same parameters
    replay = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0)
    replay_opt = fastwb.SGD(0.01)
    for s in range(steps):
        b = s % n_batches
        replay.train_step(X[32 * b:32 * (b + 1)], y[32 * b:32 * (b + 1)], replay_opt)
    np.testing.assert_array_equal(net.parameters, replay.parameters)
    # Python's handler is really back at the C level: a new SIGINT raises here
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            time.sleep(0.01)
    # training continues from where it stopped, without a stale interrupt
    history = net.fit(X[:320], y[:320], opt, epochs=1, batch_size=32, shuffle=False)
    assert len(history) == 1 and opt.step == steps + 10


@main_thread_only
def test_ctrl_c_with_a_custom_handler_runs_that_handler(clear_interrupt):
    X, y = _big_problem()
    net = fastwb.Network([200, 512, 512, 10], loss="softmax_cross_entropy", seed=0)
    opt = fastwb.Adam(0.001)
    calls = []

    class Stop(Exception):
        pass

    def handler(signum, frame):
        calls.append(signum)
        raise Stop

    previous = signal.signal(signal.SIGINT, handler)
    arm = _InterruptSoon()
    try:
        with pytest.raises(Stop):
            net.fit(X, y, opt, epochs=30, batch_size=32, callbacks=[arm])
        arm.timer.join()
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == [signal.SIGINT]
    assert np.all(np.isfinite(net.parameters)) and opt.step > 0
    for value in flat_state(opt).values():
        assert np.all(np.isfinite(value))


@main_thread_only
def test_ctrl_c_with_a_handler_that_returns_lets_training_go_on(clear_interrupt):
    """A Python handler that does not raise is run at a batch boundary, and the
    epoch then continues where it stopped: the result is that of an undisturbed fit."""
    X, y = _big_problem()
    X, y = X[:1600], y[:1600]
    sizes = [200, 512, 512, 10]
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0, dropout=0.1)
    opt = fastwb.SGD(0.01, momentum=0.5)
    try:
        interrupted = _fit_interrupted(net, opt, X, y, epochs=1000, stop_after=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not interrupted and calls == [signal.SIGINT]
    epochs = opt.epoch
    assert 0 < epochs < 1000 and opt.step == 50 * epochs
    quiet = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0, dropout=0.1)
    quiet.fit(X, y, fastwb.SGD(0.01, momentum=0.5), epochs=epochs, batch_size=32)
    np.testing.assert_array_equal(net.parameters, quiet.parameters)


@main_thread_only
def test_ctrl_c_is_ignored_when_sigint_is_ignored(clear_interrupt):
    """With SIGINT ignored (SIG_IGN, as under nohup) fit does not take it over."""
    X, y = _big_problem()
    X, y = X[:1600], y[:1600]
    net = fastwb.Network([200, 512, 512, 10], loss="softmax_cross_entropy", seed=0)
    opt = fastwb.SGD(0.01)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupted = _fit_interrupted(net, opt, X, y, epochs=1000, stop_after=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not interrupted
    assert 0 < opt.epoch < 1000 and opt.step == 50 * opt.epoch


@main_thread_only
def test_an_old_ctrl_c_does_not_stop_a_later_fit_in_another_thread(clear_interrupt,
                                                                   default_sigint):
    """The compiled interrupt flag is forgotten once fit has handed the signal on."""
    X, y = _big_problem()
    net = fastwb.Network([200, 512, 512, 10], loss="softmax_cross_entropy", seed=0)
    assert _fit_interrupted(net, fastwb.SGD(0.01), X, y)
    outcome = []

    def train():
        try:
            small = fastwb.Network([4, 2], seed=0)
            small.fit(*_regression(), epochs=2)
            outcome.append("done")
        except BaseException as exc:        # noqa: BLE001 - reported below
            outcome.append(type(exc).__name__)

    spurious = False
    try:
        try:
            worker = threading.Thread(target=train)
            worker.start()
            worker.join()
            for _ in range(20):
                time.sleep(0.01)
        except KeyboardInterrupt:
            spurious = True
            worker.join()
    except KeyboardInterrupt:               # pragma: no cover
        spurious = True
    assert outcome == ["done"] and not spurious, (outcome, spurious)


def test_fit_in_a_worker_thread_matches_the_main_thread():
    """Off the main thread fit cannot catch Ctrl-C, and trains the same way."""
    X, y = _regression()
    results = {}

    def train(where):
        net = fastwb.Network([4, 6, 2], dtype="float64", seed=0, dropout=0.2)
        net.fit(X, y, fastwb.Adam(0.01), epochs=3, batch_size=7)
        results[where] = net.parameters.copy()

    worker = threading.Thread(target=train, args=("worker",))
    worker.start()
    worker.join()
    train("main")
    np.testing.assert_array_equal(results["worker"], results["main"])


@pytest.mark.skipif(not hasattr(os, "pipe") or os.name != "posix", reason="POSIX signals")
@main_thread_only
def test_ctrl_c_still_interrupts_blocking_calls_after_fit(default_sigint):
    """fit gives SIGINT back exactly as it was: Python's handler without
    SA_RESTART, so a blocking read still ends with KeyboardInterrupt."""
    X, y = _regression()
    fastwb.Network([4, 6, 2], seed=0).fit(X, y, epochs=1)
    read_end, write_end = os.pipe()
    interrupt = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    unblock = threading.Timer(1.0, os.write, (write_end, b"x"))
    start = time.perf_counter()
    elapsed = None
    try:
        try:
            interrupt.start()
            unblock.start()
            os.read(read_end, 1)           # blocks until SIGINT (or the write at 1 s)
            for _ in range(200):
                time.sleep(0.01)
        except KeyboardInterrupt:
            elapsed = time.perf_counter() - start
        finally:
            interrupt.join()
            unblock.cancel()
            unblock.join()
            os.close(read_end)
            os.close(write_end)
    except KeyboardInterrupt:       # pragma: no cover
        pytest.fail("SIGINT arrived late")
    assert elapsed is not None and elapsed < 0.8, elapsed


# --- argument checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,error,match", [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=-3), ValueError, "epochs"),
    (dict(epochs=2.0), TypeError, "epochs"),
    (dict(epochs=True), TypeError, "epochs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=1.5), TypeError, "batch_size"),
    (dict(batch_size="32"), TypeError, "batch_size"),
    (dict(shuffle=1), TypeError, "shuffle"),
    (dict(patience=-1), ValueError, "patience"),
    (dict(patience=2.5), TypeError, "patience"),
    (dict(min_delta=-1e-3), ValueError, "min_delta"),
    (dict(min_delta=float("nan")), ValueError, "min_delta"),
    (dict(validation_split=1.0), ValueError, "validation_split"),
    (dict(validation_split=-0.1), ValueError, "validation_split"),
    (dict(validation_split="0.2"), TypeError, "validation_split"),
    (dict(sample_weight=np.ones(29)), ValueError, "sample_weight"),
    (dict(sample_weight=np.ones((30, 1))), ValueError, "sample_weight"),
    (dict(sample_weight=-np.ones(30)), ValueError, "sample_weight"),
    (dict(sample_weight=np.r_[np.ones(29), np.nan]), ValueError, "sample_weight"),
    (dict(sample_weight=np.r_[np.ones(29), np.inf]), ValueError, "sample_weight"),
    (dict(verbose=3), ValueError, "verbose"),
    (dict(verbose=-1), ValueError, "verbose"),
    (dict(verbose="yes"), TypeError, "verbose"),
    (dict(optimizer="adamax"), ValueError, "unknown optimizer 'adamax'"),
    (dict(optimizer=fastwb.SGD), TypeError, "optimizer"),
])
def test_bad_fit_arguments(kwargs, error, match):
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0)
    before = net.parameters.copy()
    with pytest.raises(error, match=match):
        net.fit(X, y, **{"epochs": 1, **kwargs})
    np.testing.assert_array_equal(net.parameters, before)
    assert net.optimizer is None or net.optimizer.step == 0


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_all_zero_sample_weights_are_refused(backend):
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0, backend=backend)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match="weight 0"):
        net.fit(X, y, epochs=1, sample_weight=np.zeros(30))
    with pytest.raises(ValueError, match="weight 0"):
        net.partial_fit(X, y, sample_weight=np.zeros(30))
    np.testing.assert_array_equal(net.parameters, before)


def test_partial_fit_checks_its_arguments():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        net.partial_fit(X, y, batch_size=0)
    with pytest.raises(TypeError, match="optimizer"):
        net.partial_fit(X, y, optimizer=42)


@pytest.mark.parametrize("make,error,match", [
    (lambda: fastwb.Network([4, 6, 2], dropout=1.0), ValueError, "dropout"),
    (lambda: fastwb.Network([4, 6, 2], dropout=-0.1), ValueError, "dropout"),
    (lambda: fastwb.Network([4, 6, 2], dropout="0.5"), TypeError, "dropout"),
    (lambda: fastwb.Network([4, 6, 5, 2], dropout=[0.1]), ValueError, "dropout"),
    (lambda: fastwb.Network([fastwb.Dense(4, 6), fastwb.Dense(6, 2, dropout=0.5)]),
     ValueError, "output layer"),
    (lambda: fastwb.Dense(4, 6, dropout=1.5), ValueError, "dropout"),
    (lambda: fastwb.Network([4, 6, 2], l1=-0.1), ValueError, "l1"),
    (lambda: fastwb.Network([4, 6, 2], l2=float("inf")), ValueError, "l2"),
    (lambda: fastwb.SGD(0.1, schedule="cosine"), ValueError, "schedule"),
    (lambda: fastwb.Adam(schedule=3), TypeError, "schedule"),
    (lambda: fastwb.SGD(lr=-0.1), ValueError, "lr"),
    (lambda: fastwb.SGD(0.1, clip_norm=0.0), ValueError, "clip_norm"),
])
def test_bad_training_hyperparameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_optimizer_bound_to_another_network_is_refused():
    X, y = _regression()
    opt = fastwb.Adam()
    fastwb.Network([4, 6, 2], seed=0).fit(X, y, opt, epochs=1)
    with pytest.raises(ValueError, match="state"):
        fastwb.Network([4, 3, 2], seed=0).fit(X, y, opt, epochs=1)


def test_default_optimizer_is_adam_and_is_kept():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], seed=0)
    net.fit(X, y, epochs=1)
    assert isinstance(net.optimizer, fastwb.Adam) and net.optimizer.epoch == 1


# --- progress output -----------------------------------------------------------------------------

@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_writes_progress_to_stderr(capsys, verbose):
    X, y = _regression()
    fastwb.Network([4, 6, 2], seed=0).fit(X, y, epochs=3, verbose=verbose,
                                          validation_data=_regression(5))
    out, err = capsys.readouterr()
    assert out == ""
    assert "loss=" in err and "val_loss=" in err and "samples/s" in err
    if verbose == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 3 and lines[0].startswith("epoch 1") and "3/3" in lines[-1]


@pytest.mark.parametrize("verbose", [1, 2])
def test_progress_without_tqdm_is_a_plain_bar(capsys, monkeypatch, verbose):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)       # as if tqdm were not installed
    X, y = _regression()
    fastwb.Network([4, 6, 2], seed=0).fit(X, y, epochs=3, verbose=verbose)
    err = capsys.readouterr().err
    assert "loss=" in err and "samples/s" in err and "3/3" in err
    if verbose == 1:
        assert err.endswith("\n") and "[" + "#" * 30 + "]" in err


def test_verbose_zero_is_silent(capsys):
    X, y = _regression()
    fastwb.Network([4, 6, 2], seed=0).fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")


# --- found in review ------------------------------------------------------------------------

def test_resetting_the_optimizer_between_epochs_restarts_its_state():
    X, y = _regression(n=64)
    net = fastwb.Network([4, 8, 2], dtype="float64", seed=0)
    opt = fastwb.Adam(1e-2)
    history = net.fit(X, y, opt, epochs=3, batch_size=16,
                      callbacks=[lambda epoch, logs: opt.reset()])
    assert len(history) == 3 and opt.step == 0 and "exp_avg" not in opt.state
    net.fit(X, y, opt, epochs=1, batch_size=16)
    assert opt.step == 4 and opt.state["exp_avg"].shape == net.parameters.shape
    assert np.all(np.isfinite(net.parameters))


def test_an_update_that_overflows_on_the_last_batch_is_undone():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = (1000 + rng.normal(size=(64, 1))).astype(np.float32)
    net = fastwb.Network([3, 4, 1], dtype="float32", seed=0)
    start = net.parameters.copy()
    opt = fastwb.SGD(lr=3e38)
    with pytest.raises(FloatingPointError, match="left parameters NaN or infinite"):
        net.fit(X, y, opt, epochs=2, batch_size=64, shuffle=False)
    assert np.array_equal(net.parameters, start) and opt.step == 0 and opt.epoch == 0


def test_fit_refuses_parameters_that_are_not_finite():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    net.layers[0].weights[0, 0] = np.inf          # the views skip the assignment check
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.fit(X, y, epochs=1)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_one_sample_and_no_callbacks(backend):
    net = fastwb.Network([3, 4, 2], loss="softmax_cross_entropy", dtype="float64", seed=0,
                         backend=backend)
    history = net.fit(np.array([0.5, -1.0, 2.0]), 1, fastwb.SGD(0.1), epochs=2, callbacks=None)
    assert len(history) == 2 and np.isfinite(history["loss"]).all()


def test_all_zero_validation_weights_are_named():
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    with pytest.raises(ValueError, match="validation_data's sample_weight"):
        net.fit(X, y, epochs=1, validation_data=(X, y, np.zeros(len(X))))


def test_reference_fit_epoch_stops_at_a_batch_boundary_on_ctrl_c(default_sigint):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40000, 30)), rng.normal(size=(40000, 5))
    net = fastwb.Network([30, 64, 5], dtype="float64", seed=0, backend="reference")
    opt = fastwb.SGD(1e-3)
    rule = opt.rule_for(net)
    n_batches = 40000 // 8
    batch_loss = np.zeros(n_batches)
    finished = threading.Event()

    def interrupt_after_the_first_batch():
        # by then fit_epoch's handler is in place, and thousands of batches remain
        while batch_loss[0] == 0:
            if finished.wait(0.001):
                return
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_after_the_first_batch)
    sender.start()
    try:
        status, done, arrived = net._engine.fit_epoch(
            X, y, None, 8, True, rule, np.full(n_batches, 1e-3), batch_loss,
            catch_interrupt=True)
    finally:
        finished.set()
        sender.join()
    assert status == fastwb.functions.FitStatus.INTERRUPTED and arrived
    assert 0 < done < n_batches and opt.step == done and opt.samples_seen == 8 * done
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_a_schedule_returning_bad_rates_is_refused(backend):
    class Broken(schedules.Schedule):
        name = "broken"

        def rates(self, base_lr, steps, epoch, samples_seen):
            return np.full(len(steps), np.nan)

    X, y = _regression()
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0, backend=backend)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match="invalid learning rate"):
        net.train_step(X, y, fastwb.SGD(0.1, schedule=Broken()))
    with pytest.raises(ValueError, match="invalid learning rate"):
        net.fit(X, y, fastwb.SGD(0.1, schedule=Broken()), epochs=1)
    assert np.array_equal(net.parameters, before)


@pytest.mark.parametrize("name,kind", [("adam", fastwb.Adam), ("SGD", fastwb.SGD),
                                       ("adamw", fastwb.AdamW), ("rmsprop", fastwb.RMSprop),
                                       ("adagrad", fastwb.Adagrad)])
def test_fit_takes_an_optimizer_by_name(name, kind):
    X, y = _regression()
    net = fastwb.Network([4, 6, 2], dtype="float64", seed=0)
    net.fit(X, y, name, epochs=1)
    assert type(net.optimizer) is kind and net.optimizer.step > 0


@pytest.mark.parametrize("lrs", [[0.1, np.nan], [0.1, np.inf], [0.1, -0.1], [0.1],
                                 np.full((2, 1), 0.1)])
def test_compiled_fit_epoch_refuses_bad_rates_before_any_batch(lrs):
    net = fastwb.Network([3, 2], loss="mse", dtype="float64", seed=0)
    opt = fastwb.SGD(0.1)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match="lrs needs 2 finite, nonnegative learning rates"):
        net._engine.fit_epoch(np.ones((4, 3)), np.zeros((4, 2)), None, 2, True,
                              opt.rule_for(net), lrs, np.zeros(2))
    np.testing.assert_array_equal(net.parameters, before)
    assert opt.step == 0


def test_compiled_fit_epoch_takes_rates_of_any_real_dtype():
    nets = [fastwb.Network([3, 2], loss="mse", dtype="float64", seed=0) for _ in range(2)]
    for net, lrs in zip(nets, ([0.5, 0.25], np.array([0.5, 0.25], np.float32))):
        net._engine.fit_epoch(np.ones((4, 3)), np.zeros((4, 2)), None, 2, True,
                              fastwb.SGD(0.1).rule_for(net), lrs, np.zeros(2))
    np.testing.assert_array_equal(nets[0].parameters, nets[1].parameters)
    assert np.all(nets[0].parameters != fastwb.Network([3, 2], dtype="float64", seed=0).parameters)
