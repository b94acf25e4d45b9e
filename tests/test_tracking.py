"""``fastwb.tracking.WandbCallback`` against the real wandb client in offline mode.

Nothing leaves the machine: each run is written to its offline transaction log
(``<WANDB_DIR>/wandb/offline-run-*-<id>/run-<id>.wandb``), which these tests
read back record by record to check what the client was given.
"""
import json
import re
import struct
import sys
import time
import zlib

import numpy as np
import pytest

import fastwb
from fastwb.tracking import WandbCallback, describe

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

SIZES = [4, 8, 3]
EPOCHS = 3
#: History keys wandb adds to rows itself.
WANDB_KEYS = {"_step", "_runtime", "_timestamp"}


# --- reading an offline run back ----------------------------------------------------------

# A LevelDB-style log: a 7-byte file header (":W&B", magic 0xBEE1, version 0),
# then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32 of the chunk
# type and data, length, type). A protobuf ``Record`` is one FULL chunk or
# FIRST, MIDDLE..., LAST chunks; a block's tail too short for a header is padding.
BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path) -> tuple[list, bool]:
    """The records of a transaction log, and whether it ends after a whole record."""
    data = path.read_bytes()
    if len(data) < HEADER:
        return [], False
    assert struct.unpack("<4sHB", data[:HEADER]) == (b":W&B", 0xBEE1, 0)
    records, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if left < HEADER or (crc, length, kind) == (0, 0, 0):
            pos += left
            continue
        if pos + HEADER + length > len(data):
            break                     # written in part so far
        chunk = data[pos + HEADER:pos + HEADER + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"bad checksum at {pos}"
        assert kind in (FULL, FIRST, MIDDLE, LAST), f"chunk type {kind} at {pos}"
        pending += chunk
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records, pending == b"" and pos == len(data)


def finished_records(root, run, timeout: float = 30.0) -> list:
    """The records of a finished offline run.

    wandb-core buffers the log and flushes it when the run's stream closes,
    which may be a little after ``run.finish()`` has returned: wait for a whole
    log that holds the exit record.
    """
    deadline = time.monotonic() + timeout
    while True:
        files = list((root / "wandb").glob(f"offline-run-*-{run.id}/run-{run.id}.wandb"))
        assert len(files) <= 1, files
        if files:
            records, whole = read_records(files[0])
            if whole and any(record.HasField("exit") for record in records):
                return records
        assert time.monotonic() < deadline, f"run {run.id}'s log was not written in {timeout} s"
        time.sleep(0.01)


def as_dict(items) -> dict:
    """History or config items (a key or a nested_key path, and value_json) as a dict."""
    out = {}
    for item in items:
        *parents, last = list(item.nested_key) or [item.key]
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = json.loads(item.value_json)
    return out


class Logged:
    """What an offline run's log holds: its config, history rows and exit records."""

    def __init__(self, root, run):
        records = finished_records(root, run)
        self.config = {}
        for record in records:
            if record.HasField("run"):
                self.config.update(as_dict(record.run.config.update))
            elif record.HasField("config"):
                self.config.update(as_dict(record.config.update))
        self.rows = [as_dict(r.history.item) for r in records if r.HasField("history")]
        self.exit_codes = [r.exit.exit_code for r in records if r.HasField("exit")]

    @property
    def steps(self) -> list:
        return [row["_step"] for row in self.rows]

    def column(self, key: str) -> list:
        return [row.get(key) for row in self.rows]


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wandb_root(tmp_path_factory):
    """Offline, silent wandb writing under a temporary directory."""
    root = tmp_path_factory.mktemp("wandb")
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(root), "WANDB_SILENT": "true",
           "WANDB_CONSOLE": "off", "WANDB__DISABLE_STATS": "true",
           "WANDB__DISABLE_META": "true", "WANDB__SAVE_REQUIREMENTS": "false",
           "WANDB_CONFIG_DIR": str(root / "config"), "WANDB_CACHE_DIR": str(root / "cache"),
           "WANDB_DATA_DIR": str(root / "data")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        # wandb reads the environment once per process, into a singleton: start
        # from a fresh one, and drop it (stopping its wandb-core service) after
        wandb.teardown()
        yield root
        wandb.teardown()


def make_data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, SIZES[0])).astype(np.float32), rng.integers(0, SIZES[-1], n)


def make_network():
    return fastwb.Network(SIZES, loss="softmax_cross_entropy", seed=0)


class MonitorStandIn(fastwb.Callback):
    """Stands in for a per-layer statistics monitor: ``metrics()`` of its latest epoch."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, epoch, logs):
        self.seen.append({"layer1/W/mean": float(np.mean(self.network.layers[0].weights)),
                          "layer2/correlation": 0.25 + epoch})

    def metrics(self):
        return dict(self.seen[-1])


@pytest.fixture(scope="module")
def logged_fit(wandb_root):
    """One fit of three epochs with validation, histograms and a monitor, read back."""
    X, y = make_data()
    net = make_network()
    monitor = MonitorStandIn()
    callback = WandbCallback(project="fastwb-tests", name="fit",
                             config={"note": "three", "loss": "mine"}, monitor=monitor)
    history = net.fit(X, y, "adam", epochs=EPOCHS, batch_size=16, validation_split=0.25,
                      callbacks=[monitor, callback])
    return net, history, monitor, callback, Logged(wandb_root, callback.run)


# --- one fit, read back -------------------------------------------------------------------

def test_rows_hold_the_epoch_metrics_histograms_and_monitor(logged_fit):
    _, _, _, _, logged = logged_fit
    expected = {"loss", "lr", "time", "samples_per_second", "val_loss", "val_accuracy",
                "epoch", "layer1/weights", "layer1/bias", "layer2/weights", "layer2/bias",
                "layer1/W/mean", "layer2/correlation"}
    assert len(logged.rows) == EPOCHS
    for row in logged.rows:
        assert expected <= set(row) <= expected | WANDB_KEYS


def test_logged_values_are_the_history_at_steps_equal_to_epochs(logged_fit):
    _, history, _, _, logged = logged_fit
    assert logged.steps == [1, 2, 3]                   # epochs are numbered from 1
    assert logged.column("epoch") == [1, 2, 3]
    for key in ("loss", "val_loss", "val_accuracy", "lr", "time"):
        assert logged.column(key) == pytest.approx(history[key], rel=1e-12), key
    assert logged.column("lr") == [0.001] * EPOCHS


def test_histograms_count_every_parameter(logged_fit):
    net, _, _, _, logged = logged_fit
    for row in logged.rows:
        for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]), start=1):
            weights, bias = row[f"layer{i}/weights"], row[f"layer{i}/bias"]
            assert weights["_type"] == bias["_type"] == "histogram"
            assert sum(weights["values"]) == n_in * n_out
            assert sum(bias["values"]) == n_out
            assert len(weights["values"]) == 64 and len(weights["bins"]) == 65
    # the last row is of the trained network
    counts, edges = np.histogram(net.layers[1].weights, bins=64)
    assert logged.rows[-1]["layer2/weights"]["values"] == counts.tolist()
    assert logged.rows[-1]["layer2/weights"]["bins"] == pytest.approx(edges.tolist())


def test_monitor_metrics_are_merged(logged_fit):
    _, _, monitor, _, logged = logged_fit
    assert logged.column("layer2/correlation") == [1.25, 2.25, 3.25]
    assert logged.column("layer1/W/mean") == [m["layer1/W/mean"] for m in monitor.seen]


def test_config_describes_network_and_optimizer(logged_fit):
    net, _, _, _, logged = logged_fit
    config = logged.config
    assert config["sizes"] == SIZES
    assert config["activations"] == ["relu", "softmax"]
    assert config["loss"] == "mine"          # the user's config wins over the description
    assert config["dtype"] == "float32"
    assert config["n_parameters"] == net.n_parameters == 4 * 8 + 8 + 8 * 3 + 3
    assert config["seed"] == 0
    assert config["dropout"] == [0.0, 0.0]
    assert config["optimizer"]["name"] == "Adam"
    assert config["optimizer"]["lr"] == 0.001
    assert config["optimizer"]["beta2"] == 0.999
    assert config["note"] == "three"


def test_started_run_is_finished_once(logged_fit):
    _, _, _, callback, logged = logged_fit
    assert logged.exit_codes == [0]
    callback.on_train_end({})            # again: nothing left to finish
    with pytest.raises(wandb.Error):     # a finished run refuses rows
        callback.run.log({"late": 1.0})


def test_describe_without_an_optimizer_is_json():
    net = fastwb.Network([fastwb.Dense(3, 5, dropout=0.5, l2=0.01), fastwb.Dense(5, 1)],
                         seed=2)
    described = describe(net)
    assert json.loads(json.dumps(described)) == described
    assert "optimizer" not in described
    assert described["sizes"] == [3, 5, 1]
    assert described["activations"] == ["relu", "identity"]
    assert described["dropout"] == [0.5, 0.0]
    assert described["l2"] == [0.01, 0.0]
    assert described["n_parameters"] == 3 * 5 + 5 + 5 + 1


# --- options ------------------------------------------------------------------------------

def test_log_every_and_no_histograms(wandb_root):
    X, y = make_data()
    callback = WandbCallback(histograms=False, log_every=2)
    history = make_network().fit(X, y, "sgd", epochs=5, batch_size=16, callbacks=[callback])
    logged = Logged(wandb_root, callback.run)
    assert logged.steps == [2, 4]
    assert logged.column("loss") == pytest.approx(history["loss"][1::2], rel=1e-12)
    assert not any(key.startswith("layer") for row in logged.rows for key in row)
    assert set(logged.rows[0]) - WANDB_KEYS == {"loss", "lr", "time", "samples_per_second",
                                                "epoch"}
    assert logged.exit_codes == [0]


def test_given_run_is_logged_to_and_left_open(wandb_root):
    """Steps follow the epochs over fits that continue one optimizer; a fresh
    optimizer's epochs restart at 1 and go to the run's next steps instead."""
    X, y = make_data()
    net = make_network()
    run = wandb.init(project="fastwb-tests", name="mine", config={"sizes": "mine"},
                     reinit="create_new")
    callback = WandbCallback(run=run, histograms=False)
    first = net.fit(X, y, "adam", epochs=2, callbacks=[callback])
    second = net.fit(X, y, epochs=1, callbacks=[callback])         # same optimizer: epoch 3
    third = net.fit(X, y, "sgd", epochs=2, callbacks=[callback])   # fresh one: epochs 1, 2
    assert callback.run is run
    run.log({"after": 1.0})          # still open: a finished run would raise
    run.finish()
    logged = Logged(wandb_root, run)
    assert logged.steps == [1, 2, 3, 4, 5, 6]
    assert logged.column("epoch") == [1, 2, 3, 1, 2, None]
    losses = first["loss"] + second["loss"] + third["loss"]
    assert logged.column("loss")[:5] == pytest.approx(losses, rel=1e-12)
    assert logged.column("after") == [None] * 5 + [1.0]
    assert logged.exit_codes == [0]
    assert logged.config["sizes"] == "mine"               # the user's keys stay
    assert logged.config["loss"] == "softmax_cross_entropy"
    assert logged.config["optimizer"]["name"] == "Adam"   # added by the first fit only


def test_each_fit_starts_a_run_failed_when_training_raises(wandb_root):
    X, y = make_data()
    net = make_network()
    other = wandb.init(project="fastwb-tests", name="open elsewhere", reinit="create_new")
    callback = WandbCallback(histograms=False)
    try:
        raise KeyError("handled by the caller")
    except KeyError:
        net.fit(X, y, "adam", epochs=1, callbacks=[callback])   # succeeds: exit code 0
    succeeded = callback.run

    def fail(epoch, logs):
        if epoch == 3:
            raise RuntimeError("a later callback fails")

    with pytest.raises(RuntimeError, match="later callback"):
        net.fit(X, y, epochs=2, callbacks=[callback, fail])
    failed = callback.run
    assert len({other.id, succeeded.id, failed.id}) == 3
    other.log({"still open": 1.0})         # neither reused nor finished by the callback
    other.finish()
    assert Logged(wandb_root, succeeded).exit_codes == [0]
    logged = Logged(wandb_root, failed)
    assert logged.exit_codes == [1]
    assert logged.steps == [2, 3]          # the optimizer's epochs 2 and 3
    assert logged.column("epoch") == [2, 3]


# --- argument checks ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(log_every=0), ValueError, "log_every"),
    (dict(log_every=1.5), TypeError, "log_every"),
    (dict(log_every=True), TypeError, "log_every"),
    (dict(histograms="yes"), TypeError, "histograms"),
    (dict(monitor=object()), TypeError, "metrics()"),
    (dict(config=["a"]), TypeError, "config"),
    (dict(run="my-run"), TypeError, "name="),
    (dict(run=object.__new__(wandb.Run), project="p"), ValueError, "project"),
    (dict(run=object.__new__(wandb.Run), entity="e"), ValueError, "entity"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        WandbCallback(**kwargs)


def test_missing_wandb_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)      # import wandb now fails
    with pytest.raises(ImportError, match=r'pip install "fastwb\[wandb\]"'):
        WandbCallback()
