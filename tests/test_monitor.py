"""fastwb.Monitor: per-epoch records of weights, biases, gradients and activations
against NumPy computations of the same quantities; the change tables; export; health
warnings (once each)."""
import csv
import json
import math
import warnings

import numpy as np
import pytest

import fastwb
from fastwb import Callback, HealthWarning, Monitor, reference
from fastwb._layout import layer_views
from fastwb.inspection import STATISTICS


class Recorder(Callback):
    """Copies of what a user could see: parameters before training and after each
    epoch, and the full-batch gradient at each epoch's start."""

    def __init__(self, X, y):
        self.X, self.y = X, y
        self.parameters, self.gradients = [], []

    def on_train_begin(self, logs):
        self.parameters.append(self.network.parameters.copy())

    def on_epoch_begin(self, epoch, logs):
        _, gradient = self.network.loss_and_gradients(self.X, self.y)
        self.gradients.append(gradient)

    def on_epoch_end(self, epoch, logs):
        self.parameters.append(self.network.parameters.copy())


def problem(n=48, n_in=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = (X[:, 0] - X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def fit_with(monitor, backend="compiled", dtype="float64", epochs=4, optimizer=None, **kwargs):
    X, y = problem()
    Xv, yv = problem(20, seed=1)
    net = fastwb.Network([5, 12, 6, 3], loss="softmax_cross_entropy", seed=2, backend=backend,
                         dtype=dtype)
    recorder = Recorder(X.astype(dtype), y)
    options = dict(epochs=epochs, batch_size=len(X), shuffle=False, validation_data=(Xv, yv))
    options.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HealthWarning)     # a few epochs at lr 0.05 overfit
        history = net.fit(X, y, optimizer or fastwb.Adam(lr=0.05), callbacks=[monitor, recorder],
                          **options)
    return net, X, recorder, history


def part_values(flat, sizes):
    return [(W.astype(np.float64), b.astype(np.float64)) for W, b in layer_views(flat, sizes)]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_gradient_norms_are_the_true_ones_under_plain_sgd(backend, momentum):
    """Plain SGD once updated inside the weight-gradient product and the Monitor
    read a gradient buffer that path never wrote: norms of 0.0."""
    X, y = problem()
    net = fastwb.Network([5, 12, 6, 3], loss="softmax_cross_entropy", seed=2, backend=backend,
                         dtype="float64")
    starts = []
    monitor = Monitor()

    class Starts(Callback):
        def on_epoch_begin(self, epoch, logs):
            starts.append(self.network.parameters.copy())

    record = Starts()
    net.fit(X, y, fastwb.SGD(lr=0.1, momentum=momentum), epochs=3, batch_size=len(X),
            shuffle=False, callbacks=[record, monitor])
    twin = fastwb.Network([5, 12, 6, 3], loss="softmax_cross_entropy", dtype="float64")
    g = STATISTICS.index("grad_norm")
    for stats, start in zip(monitor.stats, starts, strict=True):
        twin.parameters = start                                 # the epoch's only batch
        for l, (dW, db) in enumerate(twin.gradients(X, y)):
            assert stats[l, 0, g] == pytest.approx(np.linalg.norm(dW), rel=1e-9)
            assert stats[l, 1, g] == pytest.approx(np.linalg.norm(db), rel=1e-9)
            assert stats[l, 0, g] > 0


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_training_gradient_is_published_and_withdrawn(backend):
    X, y = problem()
    net = fastwb.Network([5, 4, 3], loss="softmax_cross_entropy", dtype="float64", seed=0,
                         backend=backend)
    assert net.training_gradient() is None
    expected = net.loss_and_gradients(X, y)[1]
    assert net.training_gradient() is None          # gradients() is not a training step
    net.train_step(X, y, fastwb.SGD(lr=0.1))
    np.testing.assert_array_equal(net.training_gradient(), expected)
    net.training_gradient()[...] = 0                 # a copy
    assert np.array_equal(net.training_gradient(), expected)
    net.gradients(X, y)
    assert net.training_gradient() is None


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_records_match_numpy(backend, dtype):
    X, _ = problem()
    monitor = Monitor(sample=X[:30], activations_every=1)
    net, X, recorder, history = fit_with(monitor, backend, dtype)
    rtol = 1e-9 if dtype == "float64" else 2e-4
    records = monitor.records()
    assert len(records) == (1 + 4) * 3 * 2
    initial = part_values(recorder.parameters[0], net.sizes)
    for e in range(-1, 4):
        rows = [r for r in records if r["epoch"] == e + 1]       # 0: the initial state
        assert [(r["layer"], r["param"]) for r in rows] == [(1, "W"), (1, "b"), (2, "W"),
                                                            (2, "b"), (3, "W"), (3, "b")]
        now = part_values(recorder.parameters[e + 1], net.sizes)
        before = part_values(recorder.parameters[max(e, 0)], net.sizes)
        grads = None if e < 0 else part_values(recorder.gradients[e], net.sizes)
        outputs = reference.forward(layer_views(recorder.parameters[e + 1], net.sizes),
                                    net.activations, X[:30].astype(dtype))
        for r in rows:
            l, p = r["layer"] - 1, ("W", "b").index(r["param"])
            v = now[l][p]
            expected = {"mean": v.mean(), "std": v.std(), "min": v.min(), "max": v.max(),
                        "norm": np.linalg.norm(v)}
            if e >= 0:
                expected.update(
                    grad_norm=np.linalg.norm(grads[l][p]),
                    update_norm=np.linalg.norm(v - before[l][p]),
                    change_norm=np.linalg.norm(v - initial[l][p]),
                    update_ratio=np.linalg.norm(v - before[l][p]) / np.linalg.norm(before[l][p])
                    if np.linalg.norm(before[l][p]) else None,
                    relative_change=np.linalg.norm(v - initial[l][p]) / np.linalg.norm(initial[l][p])
                    if np.linalg.norm(initial[l][p]) else None)
            else:
                assert r["grad_norm"] is None and r["update_norm"] is None
            for name, value in expected.items():
                if value is None:
                    assert r[name] is None, name
                else:
                    assert r[name] == pytest.approx(value, rel=rtol, abs=1e-7), (e, l, p, name)
            W, b = now[l]
            assert r["correlation"] == pytest.approx(np.corrcoef(W.mean(axis=0), b)[0, 1],
                                                     rel=1e-6, abs=1e-6) if b.std() > 0 \
                else r["correlation"] is None
            a = outputs[l].astype(np.float64)
            assert r["mean_activation"] == pytest.approx(a.mean(), rel=rtol)
            if net.activations[l] == "relu":
                assert r["dead_fraction"] == pytest.approx(np.mean((a <= 0).all(axis=0)))
            else:
                assert r["dead_fraction"] is None
        if e >= 0:
            assert rows[0]["loss"] == history["loss"][e]
            assert rows[0]["val_loss"] == history["val_loss"][e]
            assert rows[0]["updates"] == 1
            assert rows[0]["time_per_update"] == history["time"][e]


def test_change_table_matches_numpy():
    monitor = Monitor()
    net, _, recorder, _ = fit_with(monitor, epochs=6)
    first = part_values(recorder.parameters[0], net.sizes)
    last = part_values(recorder.parameters[-1], net.sizes)
    table = monitor.change_table()
    assert [(r["layer"], r["param"]) for r in table][:2] == [(1, "W"), (1, "b")]
    for r in table:
        l, p = r["layer"] - 1, ("W", "b").index(r["param"])
        a, b = first[l][p], last[l][p]
        assert r["initial_mean"] == pytest.approx(a.mean(), abs=1e-12)
        assert r["final_std"] == pytest.approx(b.std(), rel=1e-10)
        assert r["final_norm"] == pytest.approx(np.linalg.norm(b), rel=1e-10)
        assert r["change_norm"] == pytest.approx(np.linalg.norm(b - a), rel=1e-10)
        if np.linalg.norm(a):
            assert r["relative_change"] == pytest.approx(np.linalg.norm(b - a) / np.linalg.norm(a))
        else:
            assert r["relative_change"] is None          # zero-initialised biases
    text = monitor.format_change_table()
    assert "initial -> after epoch 6" in text
    assert f"{table[0]['change_norm']:10.4f}" in text


def test_every_records_every_kth_epoch_and_the_last():
    monitor = Monitor(every=3)
    net, _, recorder, history = fit_with(monitor, epochs=7)
    assert [e["epoch"] for e in monitor.epochs] == [3, 6, 7]
    assert [e["updates"] for e in monitor.epochs] == [3, 3, 1]
    assert monitor.epochs[0]["time_per_update"] == pytest.approx(sum(history["time"][:3]) / 3)
    rows = [r for r in monitor.records() if r["epoch"] == 6 and r["param"] == "W"]
    moved = part_values(recorder.parameters[6], net.sizes)[0][0] - \
        part_values(recorder.parameters[3], net.sizes)[0][0]
    assert rows[0]["update_norm"] == pytest.approx(np.linalg.norm(moved), rel=1e-10)


def test_one_monitor_follows_one_network_across_fits():
    monitor = Monitor()
    net, X, recorder, _ = fit_with(monitor, epochs=2)
    initial = monitor.initial["stats"].copy()
    y = problem()[1]
    net.fit(X, y, callbacks=[monitor], epochs=2)
    net.partial_fit(X, y)                                    # no callbacks: not recorded
    assert [e["epoch"] for e in monitor.epochs] == [1, 2, 3, 4]
    np.testing.assert_array_equal(monitor.initial["stats"], initial)
    other = fastwb.Network([5, 3], loss="softmax_cross_entropy", seed=0)
    other.fit(X, y, epochs=1, callbacks=[monitor])
    assert [e["epoch"] for e in monitor.epochs] == [1] and monitor.stats[0].shape == (1, 2, 8)
    monitor.reset()
    assert monitor.records() == [] and monitor.metrics() == {} and monitor.change_table() == []


def test_sklearn_partial_fit_keeps_adding_epochs():
    from fastwb.sklearn import MLPClassifier
    X, y = problem(60)
    monitor = Monitor()
    clf = MLPClassifier(hidden_layer_sizes=(8,), callbacks=[monitor], random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert len(monitor.epochs) == 3
    assert monitor.network is clf.network


def test_snapshots_are_thinned_to_the_limit():
    monitor = Monitor(snapshots=4)
    net, _, recorder, _ = fit_with(monitor, epochs=13)
    kept = monitor.snapshots()
    labels = [label for label, _ in kept]
    assert labels[0] == "initial" and labels[-1] == 13
    assert len(kept) <= 4 + 1
    assert labels[1:] == sorted(labels[1:])
    for label, flat in kept:
        index = 0 if label == "initial" else label         # parameters[n]: after epoch n
        np.testing.assert_array_equal(flat, recorder.parameters[index])
    assert Monitor(snapshots=0).snapshots() == []


def test_activation_sample_defaults_to_training_rows():
    X, y = problem(400)
    monitor = Monitor(sample_size=100)
    fastwb.Network([5, 4, 3], loss="softmax_cross_entropy", seed=0).fit(
        X, y, epochs=1, callbacks=[monitor])
    assert monitor._rows.shape == (100, 5)
    assert all(any(np.array_equal(row, x) for x in X.astype(np.float32)) for row in monitor._rows)
    off = Monitor(sample_size=0)
    fastwb.Network([5, 4, 3], loss="softmax_cross_entropy", seed=0).fit(
        X, y, epochs=1, callbacks=[off])
    assert all(r["dead_fraction"] is None and r["mean_activation"] is None
               for r in off.records())


def test_activations_are_measured_at_an_interval_and_at_the_end():
    X, y = problem(400)
    net = fastwb.Network([5, 4, 3], loss="softmax_cross_entropy", seed=0)
    auto = Monitor(sample_size=100)                      # 32 * 100 / 400: every 8th record
    net.fit(X, y, epochs=19, callbacks=[auto])
    measured = [e["epoch"] for e, m in zip(auto.epochs, auto.mean_activation)
                if not np.isnan(m).all()]
    assert measured == [8, 16, 19]                        # and the last epoch of the fit
    chosen = Monitor(sample_size=100, activations_every=5)
    fastwb.Network([5, 4, 3], loss="softmax_cross_entropy", seed=0).fit(
        X, y, epochs=11, callbacks=[chosen])
    assert [e["epoch"] for e, m in zip(chosen.epochs, chosen.mean_activation)
            if not np.isnan(m).all()] == [5, 10, 11]


def test_csv_and_jsonl_hold_the_records(tmp_path):
    monitor = Monitor()
    fit_with(monitor, epochs=3)
    records = monitor.records()
    with open(monitor.to_csv(tmp_path / "m.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        assert row["param"] == record["param"] and int(row["layer"]) == record["layer"]
        for name in ("norm", "grad_norm", "update_ratio", "loss", "correlation"):
            if record.get(name) is None:
                assert row[name] == ""
            else:
                assert float(row[name]) == pytest.approx(record[name], rel=1e-15)
    lines = (tmp_path / "m.jsonl").read_text() if monitor.to_jsonl(tmp_path / "m.jsonl") else ""
    assert [json.loads(line) for line in lines.splitlines()] == records


def test_to_frame():
    pandas = pytest.importorskip("pandas")
    monitor = Monitor()
    fit_with(monitor, epochs=2)
    frame = monitor.to_frame()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(monitor.records())
    assert set(STATISTICS) <= set(frame.columns)


def test_metrics_are_the_latest_record_flat():
    monitor = Monitor()
    fit_with(monitor, epochs=2)
    metrics = monitor.metrics()
    last = [r for r in monitor.records() if r["epoch"] == 2]
    assert metrics["layer2/W/grad_norm"] == last[2]["grad_norm"]
    assert metrics["layer1/b/update_ratio"] is not None
    assert metrics["layer1/dead_fraction"] == last[0]["dead_fraction"]
    assert "layer3/dead_fraction" not in metrics                   # softmax: not applicable
    assert metrics["time_per_update"] == monitor.epochs[-1]["time_per_update"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("kwargs, error", [
    (dict(every=0), ValueError), (dict(sample_size=-1), ValueError),
    (dict(activations_every=0), ValueError),
    (dict(snapshots=1.5), TypeError), (dict(warn="yes"), TypeError),
    (dict(explode=0.5), ValueError), (dict(vanish=2), ValueError), (dict(dead=-0.1), ValueError),
])
def test_bad_settings_are_refused(kwargs, error):
    with pytest.raises(error):
        Monitor(**kwargs)


def test_a_bad_sample_is_refused_before_training():
    X, y = problem()
    net = fastwb.Network([5, 3], loss="softmax_cross_entropy", seed=0)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match="5"):
        net.fit(X, y, epochs=1, callbacks=[Monitor(sample=np.ones((4, 6)))])
    np.testing.assert_array_equal(net.parameters, before)


# --- health warnings ----------------------------------------------------------------

def kinds(monitor):
    return [kind for _, kind, _ in monitor.warnings]


def test_a_healthy_run_warns_of_nothing():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    monitor = Monitor()
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)
        fastwb.Network([64, 32, 10], loss="softmax_cross_entropy", seed=0).fit(
            X / 16, y, epochs=10, batch_size=64, validation_split=0.2, callbacks=[monitor])
    assert monitor.warnings == []


class Scale(Callback):
    """Multiplies every weight by ``factor`` after epoch ``at``."""

    def __init__(self, at, factor):
        self.at, self.factor = at, factor

    def on_epoch_end(self, epoch, logs):
        if epoch == self.at:
            for layer in self.network.layers:
                layer.weights[:] *= self.factor


def test_exploding_gradients_warn_once():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    y = X @ rng.normal(size=(4, 2))
    net = fastwb.Network([4, 8, 8, 2], activation="identity", seed=0, dtype="float64")
    monitor = Monitor()
    with pytest.warns(HealthWarning, match="exploding gradients: layer"):
        net.fit(X, y, fastwb.SGD(lr=1e-12), epochs=4, batch_size=64,
                callbacks=[Scale(1, 30.0), monitor])
    assert kinds(monitor) == ["exploding"]
    assert monitor.warnings[0][0] == 2                    # the first epoch after the blow-up
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)     # once per monitor: not again
        net.fit(X, y, epochs=2, batch_size=64, callbacks=[monitor])


def test_vanishing_gradients_warn():
    X, y = problem(64)
    net = fastwb.Network([5] + [8] * 9 + [3], activation="sigmoid", loss="softmax_cross_entropy",
                         seed=0, weight_init=fastwb.initializers.Normal(0.0, 0.1))
    monitor = Monitor()
    with pytest.warns(HealthWarning, match="vanishing gradients") as caught:
        net.fit(X, y, epochs=3, callbacks=[monitor])
    assert kinds(monitor) == ["vanishing"] and len(caught) == 1
    assert caught[0].filename == __file__                 # points at the fit call


def test_dead_relu_units_warn():
    X, y = problem(64)
    net = fastwb.Network([5, 16, 16, 3], loss="softmax_cross_entropy", seed=0)
    net.layers[1].bias[:] = -100.0                        # layer 2 never fires: 50% of the units
    net.layers[0].bias[:8] = -100.0                       # and half of layer 1
    monitor = Monitor()
    with pytest.warns(HealthWarning) as caught:
        net.fit(X, y, fastwb.SGD(lr=1e-3), epochs=2, callbacks=[monitor])
    assert "dead_relu" in kinds(monitor)
    message = next(str(w.message) for w in caught if "dead" in str(w.message))
    assert "75% of the ReLU units are dead" in message and "layer 2: 100%" in message
    healthy = Monitor(dead=0.8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y, fastwb.SGD(lr=1e-3), epochs=1, callbacks=[healthy])
    assert "dead_relu" not in kinds(healthy)


def test_overfitting_warns_when_validation_loss_rises_as_training_loss_falls():
    rng = np.random.default_rng(0)
    X, Xv = rng.normal(size=(24, 10)), rng.normal(size=(24, 10))
    y, yv = rng.integers(0, 3, 24), rng.integers(0, 3, 24)     # labels are noise
    net = fastwb.Network([10, 64, 3], loss="softmax_cross_entropy", seed=0)
    monitor = Monitor()
    with pytest.warns(HealthWarning, match="overfitting: the validation loss rose"):
        net.fit(X, y, fastwb.Adam(lr=0.01), epochs=60, batch_size=24,
                validation_data=(Xv, yv), callbacks=[monitor])
    epoch = monitor.warnings[0][0]
    i = epoch - 1                                   # epochs are numbered from 1
    assert monitor.epochs[i]["epoch"] == epoch
    val = [e["val_loss"] for e in monitor.epochs[:i + 1]]
    best = int(np.argmin(val))
    assert i - best >= 3 and val[-1] > val[best]
    assert monitor.epochs[i]["loss"] < monitor.epochs[best]["loss"]
    assert kinds(monitor) == ["overfitting"]


def test_warn_false_keeps_quiet():
    X, y = problem(64)
    net = fastwb.Network([5, 16, 3], loss="softmax_cross_entropy", seed=0)
    net.layers[0].bias[:] = -100.0
    monitor = Monitor(warn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HealthWarning)
        net.fit(X, y, epochs=2, callbacks=[monitor])
    assert monitor.warnings == []
    assert [r["dead_fraction"] for r in monitor.records() if r["epoch"] == 2] == [1.0, 1.0,
                                                                                None, None]


def test_epochs_are_numbered_from_1_everywhere(tmp_path, capsys):
    """The callbacks' epoch, History, the records and their exports (0: the
    initial state), a health warning, the change table, the progress lines and
    the plots' x axes all give the first epoch trained the number 1."""
    X, y = problem(64)
    net = fastwb.Network([5, 16, 3], loss="softmax_cross_entropy", seed=0)
    net.layers[0].bias[:] = -100.0              # every ReLU dead: a warning at the end
    monitor = Monitor()
    seen = []
    with pytest.warns(HealthWarning) as caught:
        history = net.fit(X, y, epochs=3, verbose=2,
                          callbacks=[monitor, lambda epoch, logs: seen.append(epoch)])
    assert seen == history.epoch == [e["epoch"] for e in monitor.epochs] == [1, 2, 3]
    # the gradients vanish from the first epoch; the dead units are counted at the last
    assert [(epoch, kind) for epoch, kind, _ in monitor.warnings] == [(1, "vanishing"),
                                                                      (3, "dead_relu")]
    assert [str(w.message).split(":")[0] for w in caught] == ["epoch 1", "epoch 3"]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1 (1/3)", "epoch 2 (2/3)",
                                                      "epoch 3 (3/3)"]
    assert "initial -> after epoch 3" in monitor.format_change_table()
    records = [(r["stage"], r["epoch"]) for r in monitor.records() if r["param"] == "W"]
    assert sorted(set(records)) == [("epoch", 1), ("epoch", 2), ("epoch", 3), ("initial", 0)]
    with open(monitor.to_csv(tmp_path / "records.csv")) as f:
        assert {row["epoch"] for row in csv.DictReader(f)} == {"0", "1", "2", "3"}
    with open(monitor.to_jsonl(tmp_path / "records.jsonl")) as f:
        assert {json.loads(line)["epoch"] for line in f} == {0, 1, 2, 3}
    pytest.importorskip("matplotlib")
    from fastwb import plots
    for source in (monitor, history):
        np.testing.assert_array_equal(plots.loss_curves(source).axes[0].lines[0].get_xdata(),
                                      [1, 2, 3])
    ratios = plots.training_curves(monitor).axes[0].lines[0]
    np.testing.assert_array_equal(ratios.get_xdata(), [1, 2, 3])
