"""fastwb.save / fastwb.load: round trips of every layer setting, activation, loss,
dtype, backend, optimizer and schedule; training that resumes bit for bit; the
file format as documented; every way a file can be bad; atomic writes; pickle."""
from __future__ import annotations

import copy
import doctest
import hashlib
import json
import math
import os
import pickle
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import fastwb
from fastwb import initializers, optimizers, saving, schedules
from fastwb.functions import ACTIVATIONS, LOSSES, OUTPUT_ONLY_ACTIVATIONS
from fastwb.saving import ModelFileError

HIDDEN_ACTIVATIONS = [a for a in ACTIVATIONS if a not in OUTPUT_ONLY_ACTIVATIONS]


# --- helpers ---------------------------------------------------------------------------

def dataset(loss: str, n_out: int, n: int = 48, n_in: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "softmax_cross_entropy":
        return X, rng.integers(0, n_out, size=n)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, size=(n, n_out)).astype(float)
    if loss == "poisson":
        return X, rng.poisson(2.0, size=(n, n_out)).astype(float)
    return X, rng.normal(size=(n, n_out))


def round_trip(obj, tmp_path, name: str = "model.fwb"):
    path = tmp_path / name
    fastwb.save(obj, path)
    return fastwb.load(path)


def assert_same_network(loaded, net) -> None:
    assert type(loaded) is fastwb.Network
    assert loaded.get_config() == net.get_config()
    assert loaded.parameters.dtype == net.parameters.dtype
    np.testing.assert_array_equal(loaded.parameters, net.parameters)


def assert_same_optimizer(loaded, opt) -> None:
    assert type(loaded) is type(opt)
    assert loaded.get_config() == opt.get_config()
    assert loaded.schedule.get_state() == opt.schedule.get_state()
    state, expected = loaded.state, opt.state
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(state[key], value)


def unpack(blob: bytes) -> tuple[dict, bytes]:
    """A file's header (parsed as plain JSON) and data section, read by hand
    from the layout the module docstring documents."""
    n = int.from_bytes(blob[8:16], "little")
    return json.loads(blob[16:16 + n]), blob[16 + n:-32]


def pack(header, data: bytes, compact: bool = False) -> bytes:
    """A file of this header (a dict, or raw JSON bytes) and data, with a valid checksum."""
    if isinstance(header, bytes):
        text = header
    else:
        text = json.dumps(header, separators=(",", ":") if compact else None).encode()
    text += b" " * (-(16 + len(text)) % 64)
    body = saving.MAGIC + len(text).to_bytes(8, "little") + text + data
    return body + hashlib.sha256(body).digest()


class Estimator:
    """Stands in for the fastwb.sklearn estimators: the save/load protocol only."""

    def __init__(self, kind: str, config: dict, arrays: dict):
        self.kind, self.config, self.arrays = kind, config, arrays

    def _fastwb_state(self):
        return self.kind, self.config, self.arrays

    @classmethod
    def _from_fastwb_state(cls, config, arrays):
        if config.get("refuse"):
            raise ValueError("this estimator refuses the config")
        return cls("loaded", config, arrays)


@pytest.fixture
def estimators(monkeypatch):
    """fastwb.sklearn replaced by the stand-in (load imports it by name)."""
    module = types.ModuleType("fastwb.sklearn")
    module.MLPClassifier = module.MLPRegressor = Estimator
    monkeypatch.setitem(sys.modules, "fastwb.sklearn", module)
    return module


@pytest.fixture
def trained():
    """A small network with dropout and a penalty, trained by Adam with a schedule."""
    net = fastwb.Network([4, 8, 3], loss="softmax_cross_entropy", seed=3, dropout=0.2, l2=1e-3)
    X, y = dataset("softmax_cross_entropy", 3)
    net.fit(X, y, fastwb.Adam(lr=0.01, schedule=schedules.ReduceOnPlateau(patience=0)),
            epochs=2, batch_size=16)
    return net


@pytest.fixture
def blob(trained, tmp_path) -> bytes:
    fastwb.save(trained, tmp_path / "good.fwb")
    return (tmp_path / "good.fwb").read_bytes()


# --- configs -------------------------------------------------------------------------

def test_network_config_is_json_and_rebuilds_the_initial_network():
    net = fastwb.Network(
        [fastwb.Dense(3, 5, "tanh", weight_init=initializers.Uniform(-0.3, 0.2),
                      bias_init=initializers.Constant(0.1), dropout=0.2, l1=0.01),
         fastwb.Dense(5, 4, "leaky_relu", weight_init="lecun_normal", l2=0.1),
         fastwb.Dense(4, 2)],
        loss="binary_cross_entropy", dtype="float64", seed=7, n_threads=1, l1=1e-3,
        regularize_biases=True, dropout=0.1, weight_init="glorot_normal", bias_init="ones")
    config = json.loads(json.dumps(net.get_config()))
    rebuilt = fastwb.Network.from_config(config)
    assert_same_network(rebuilt, net)
    assert rebuilt.dropout == net.dropout == (0.2, 0.1, 0.0)
    assert rebuilt.l1 == net.l1 == (0.01, 1e-3, 1e-3)
    assert rebuilt.l2 == net.l2 == (0.0, 0.1, 0.0)
    assert rebuilt.activations == ("tanh", "leaky_relu", "sigmoid")
    assert [layer["weight_init"]["name"] for layer in config["layers"]] == [
        "uniform", "lecun_normal", "glorot_normal"]
    assert config["layers"][1]["bias_init"] == {"name": "ones"}
    assert (rebuilt.regularize_biases, rebuilt.n_threads, rebuilt.seed) == (True, 1, 7)


def test_config_keeps_n_threads_as_asked():
    config = fastwb.Network([2, 1], n_threads=-1).get_config()
    assert config["n_threads"] == -1      # every core of the loading machine, not this one's count


def test_dense_config_round_trip():
    layer = fastwb.Dense(4, 8, "relu", weight_init="kaiming_uniform", dropout=0.2, l2=0.5)
    rebuilt = fastwb.Dense.from_config(json.loads(json.dumps(layer.get_config())))
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.get_config() == layer.get_config()


@pytest.mark.parametrize("config, error, match", [
    ([], TypeError, "must be a dict"),
    ({"layers": [], "loss": "mse"}, ValueError, "nonempty list"),
    ({"layers": [{"n_in": 2, "n_out": 1}], "sizes": [2, 1]}, ValueError, "unknown key"),
    ({"layers": [{"n_in": 2, "n_out": 1, "units": 3}]}, ValueError, "unknown key"),
    ({"layers": [{"n_in": 2, "n_out": 1, "activation": "bogus"}]}, ValueError, "bogus"),
    ({"layers": [{"n_in": 2, "n_out": 1, "weight_init": {"name": "bogus"}}]}, ValueError,
     "bogus"),
    ({"layers": [{"n_in": 2, "n_out": 1}], "dtype": "float16"}, ValueError, "float16"),
])
def test_network_from_config_errors(config, error, match):
    with pytest.raises(error, match=match):
        fastwb.Network.from_config(config)


@pytest.mark.parametrize("opt", [
    fastwb.SGD(lr=0.1), fastwb.SGD(momentum=0.9, nesterov=True, clip_norm=2.0),
    fastwb.RMSprop(rho=0.9, eps=1e-6, clip_value=0.5), fastwb.Adagrad(eps=1e-7),
    fastwb.Adam(beta1=0.8, schedule=schedules.CosineWarmup(10, 2)),
    fastwb.AdamW(weight_decay=0.1, schedule="adaptive")], ids=repr)
def test_optimizer_config_round_trip(opt):
    rebuilt = optimizers.from_config(json.loads(json.dumps(opt.get_config())))
    assert type(rebuilt) is type(opt)
    assert rebuilt.get_config() == opt.get_config()
    assert rebuilt.state == {"step": 0, "epoch": 0, "samples_seen": 0}


@pytest.mark.parametrize("config, error, match", [
    ("adam", TypeError, "must be a dict"),
    ({"lr": 0.1}, ValueError, "config\\['name'\\]"),
    ({"name": "Optimizer"}, ValueError, "config\\['name'\\]"),
    ({"name": "Adam", "momentum": 0.9}, ValueError, "unknown parameter"),
    ({"name": "SGD", "schedule": {"name": "halving"}}, ValueError, "halving"),
    ({"name": "Adam", "lr": -1.0}, ValueError, "lr"),
])
def test_optimizer_from_config_errors(config, error, match):
    with pytest.raises(error, match=match):
        optimizers.from_config(config)


# --- round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_round_trip_every_activation_loss_dtype_backend(activation, loss, dtype, backend,
                                                        tmp_path):
    net = fastwb.Network([4, 5, 3], activation=activation, loss=loss, dtype=dtype, seed=1,
                         backend=backend, l1=1e-3)
    X, y = dataset(loss, 3, n=8)
    net.train_step(X, y, fastwb.SGD(lr=0.1))     # parameters unlike any initial ones
    loaded = round_trip(net, tmp_path)
    assert_same_network(loaded, net)
    assert loaded.backend == backend and loaded.optimizer is None
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.loss(X, y) == net.loss(X, y)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_round_trip_keeps_huber_delta(backend, tmp_path):
    net = fastwb.Network([4, 5, 3], loss="huber", huber_delta=0.25, seed=1, backend=backend)
    X, y = dataset("huber", 3, n=8)
    net.train_step(X, y, fastwb.SGD(lr=0.1))
    loaded = round_trip(net, tmp_path)
    assert loaded.huber_delta == 0.25 and loaded.get_config()["huber_delta"] == 0.25
    assert loaded.loss(X, y) == net.loss(X, y)
    # the delta is part of the loss: another one gives another value
    assert fastwb.Network.from_config({**net.get_config(), "huber_delta": 1.0}).loss(X, y) != \
        fastwb.Network.from_config(net.get_config()).loss(X, y)


def test_configs_without_huber_delta_still_load():
    """Files written before the huber loss have no huber_delta in their config."""
    net = fastwb.Network([3, 2], seed=2)
    assert "huber_delta" not in net.get_config()
    assert fastwb.Network.from_config(net.get_config()).huber_delta is None
    huber = fastwb.Network.from_config({**net.get_config(), "loss": "huber"})
    assert huber.huber_delta == 1.0


@pytest.mark.parametrize("output_activation", HIDDEN_ACTIVATIONS)
def test_round_trip_every_output_activation(output_activation, tmp_path):
    net = fastwb.Network([3, 2], output_activation=output_activation, seed=2)
    loaded = round_trip(net, tmp_path)
    assert loaded.activations == (output_activation,)
    assert_same_network(loaded, net)


def test_activation_unknown_to_this_fastwb_is_refused_by_name(tmp_path):
    """A file from a newer fastwb naming an activation this one lacks (the format
    is the same) fails as a file that describes a model that cannot be built."""
    fastwb.save(fastwb.Network([2, 3, 1], activation="gelu", seed=0), tmp_path / "n.fwb")
    header, data = unpack((tmp_path / "n.fwb").read_bytes())
    header["config"]["network"]["layers"][0]["activation"] = "mish"
    (tmp_path / "newer.fwb").write_bytes(pack(header, data))
    with pytest.raises(saving.ModelFileError, match="mish"):
        fastwb.load(tmp_path / "newer.fwb")


@pytest.mark.parametrize("init", sorted(initializers._CLASSES))
def test_round_trip_every_initializer(init, tmp_path):
    net = fastwb.Network([fastwb.Dense(3, 4, weight_init=init, bias_init=init),
                          fastwb.Dense(4, 1)], seed=5)
    loaded = round_trip(net, tmp_path)
    assert_same_network(loaded, net)
    assert fastwb.Network.from_config(loaded.get_config()).parameters.tobytes() == \
        net.parameters.tobytes()


def test_round_trip_accepts_str_pathlib_and_pathlike(tmp_path):
    net = fastwb.Network([2, 3, 1], seed=0)

    class Where:
        def __fspath__(self):
            return str(tmp_path / "custom.fwb")

    for path in (str(tmp_path / "text.fwb"), tmp_path / "path.fwb", Where()):
        fastwb.save(net, path)
        assert_same_network(fastwb.load(path), net)
        assert saving.read_header(path)["kind"] == "network"


def test_save_replaces_an_existing_file(tmp_path):
    first, second = fastwb.Network([2, 1], seed=0), fastwb.Network([3, 2], seed=1)
    fastwb.save(first, tmp_path / "m.fwb")
    fastwb.save(second, tmp_path / "m.fwb")
    assert_same_network(fastwb.load(tmp_path / "m.fwb"), second)
    assert os.listdir(tmp_path) == ["m.fwb"]


def test_save_writes_through_a_symbolic_link(tmp_path):
    net = fastwb.Network([2, 1], seed=0)
    (tmp_path / "real.fwb").write_bytes(b"old")
    (tmp_path / "link.fwb").symlink_to(tmp_path / "real.fwb")
    fastwb.save(net, tmp_path / "link.fwb")
    assert (tmp_path / "link.fwb").is_symlink()
    assert_same_network(fastwb.load(tmp_path / "real.fwb"), net)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_saved_file_gets_the_permissions_of_a_new_file(umask, mode, tmp_path):
    previous = os.umask(umask)
    try:
        fastwb.save(fastwb.Network([2, 1], seed=0), tmp_path / "m.fwb")
    finally:
        os.umask(previous)
    assert (tmp_path / "m.fwb").stat().st_mode & 0o777 == mode


# --- resuming training exactly -------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda: fastwb.SGD(lr=0.05),
    "momentum": lambda: fastwb.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: fastwb.SGD(lr=0.05, momentum=0.9, nesterov=True, clip_norm=0.5),
    "rmsprop": lambda: fastwb.RMSprop(lr=0.01, clip_value=0.1),
    "adagrad": lambda: fastwb.Adagrad(lr=0.05),
    "adam": lambda: fastwb.Adam(lr=0.01, clip_norm=1.0),
    "adamw": lambda: fastwb.AdamW(lr=0.01, weight_decay=0.1),
    "step_decay": lambda: fastwb.SGD(lr=0.05, momentum=0.5,
                                     schedule=schedules.StepDecay(step_size=2, gamma=0.5)),
    "exponential": lambda: fastwb.Adam(lr=0.01, schedule=schedules.ExponentialDecay(0.7)),
    "invscaling": lambda: fastwb.SGD(lr=0.5, schedule=schedules.InverseScaling(0.5)),
    "cosine": lambda: fastwb.Adam(lr=0.01, schedule=schedules.CosineWarmup(12, 4, 0.001)),
    # min_delta so large that every epoch counts as a plateau: the state changes each epoch
    "plateau": lambda: fastwb.RMSprop(lr=0.01, schedule=schedules.ReduceOnPlateau(
        factor=0.5, patience=1, min_delta=10.0)),
}


def resume_case(make_optimizer, tmp_path, backend="compiled", dtype="float32", **fit):
    """(network trained 5 epochs, network trained 3, saved, loaded, trained 2 more)."""
    X, y = dataset("softmax_cross_entropy", 3)
    options = dict(loss="softmax_cross_entropy", seed=11, dropout=0.25, l1=1e-3, l2=1e-2,
                   backend=backend, dtype=dtype)
    fit = dict(batch_size=20, **fit)     # a partial last batch
    straight = fastwb.Network([4, 6, 5, 3], **options)
    straight.fit(X, y, make_optimizer(), epochs=5, **fit)
    first = fastwb.Network([4, 6, 5, 3], **options)
    first.fit(X, y, make_optimizer(), epochs=3, **fit)
    resumed = round_trip(first, tmp_path)
    history = resumed.fit(X, y, optimizer=None, epochs=2, **fit)
    return straight, resumed, history


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_resumes_exactly_after_load(name, tmp_path):
    straight, resumed, history = resume_case(OPTIMIZERS[name], tmp_path)
    np.testing.assert_array_equal(resumed.parameters, straight.parameters)
    assert_same_optimizer(resumed.optimizer, straight.optimizer)
    assert resumed.optimizer.state["step"] == 15 and resumed.optimizer.epoch == 5
    assert history.epoch == [4, 5]          # numbered on from the 3 epochs before the save
    if name == "plateau":
        assert straight.optimizer.schedule.n_reductions == 2


@pytest.mark.parametrize("backend, dtype", [("reference", "float64"), ("compiled", "float64")])
def test_training_resumes_exactly_on_each_backend_and_dtype(backend, dtype, tmp_path):
    straight, resumed, _ = resume_case(OPTIMIZERS["adamw"], tmp_path, backend, dtype,
                                       validation_split=0.25)
    np.testing.assert_array_equal(resumed.parameters, straight.parameters)
    assert_same_optimizer(resumed.optimizer, straight.optimizer)


def test_train_step_resumes_exactly_after_load(tmp_path):
    X, y = dataset("mse", 2, n=10)
    nets = [fastwb.Network([4, 5, 2], seed=4, dropout=0.3) for _ in range(2)]
    optimizer = fastwb.Adam(lr=0.01)
    for _ in range(3):
        nets[0].train_step(X, y, optimizer)
    nets[0].optimizer = optimizer
    loaded = round_trip(nets[0], tmp_path)
    reference = fastwb.Adam(lr=0.01)
    for _ in range(5):
        nets[1].train_step(X, y, reference)
    for _ in range(2):
        loaded.train_step(X, y, loaded.optimizer)
    np.testing.assert_array_equal(loaded.parameters, nets[1].parameters)


def test_optimizer_without_state_yet_stays_so(tmp_path):
    net = fastwb.Network([2, 3, 1], seed=0)
    net.optimizer = fastwb.Adam(lr=0.02)         # made no step: no buffers, bound to nothing
    loaded = round_trip(net, tmp_path)
    assert loaded.optimizer.state == {"step": 0, "epoch": 0, "samples_seen": 0}
    assert saving.read_header(tmp_path / "model.fwb")["arrays"].keys() == {"parameters"}
    X, y = dataset("mse", 1, n=8, n_in=2)
    loaded.fit(X, y, epochs=2)
    net.fit(X, y, epochs=2)
    np.testing.assert_array_equal(loaded.parameters, net.parameters)


# --- estimators and the header --------------------------------------------------------

def estimator_arrays() -> dict:
    return {
        "network/parameters": np.arange(6, dtype=np.float32),
        "classes": np.array(["cat", "dog", "émeu"]),
        "counts": np.array([[1, 2], [3, 4]], dtype=np.int64),
        "small": np.array([1, 2], dtype=np.int32),
        "mask": np.array([True, False, True]),
        "bytes": np.arange(5, dtype=np.uint8),
        "big_endian": np.array([[1.5, -2.0, 3.25]], dtype=">f8"),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3)),
        "strided": np.arange(10.0)[::3],
    }


def test_estimator_round_trip_with_every_dtype_and_non_finite_config(estimators, tmp_path):
    config = {"best_loss": math.inf, "low": -math.inf, "score": math.nan, "n": np.int64(3),
              "rate": np.float32(0.5), "flag": np.bool_(True), "sizes": (4, 8),
              "nested": {"curve": [1.0, math.inf]}, "none": None, "text": "ü"}
    fastwb.save(Estimator("MLPClassifier", config, estimator_arrays()), tmp_path / "e.fwb")
    loaded = fastwb.load(tmp_path / "e.fwb")
    assert isinstance(loaded, Estimator) and loaded.kind == "loaded"
    got = loaded.config
    assert got["best_loss"] == math.inf and got["low"] == -math.inf and math.isnan(got["score"])
    assert got["nested"] == {"curve": [1.0, math.inf]}
    assert (got["n"], got["rate"], got["flag"], got["sizes"]) == (3, 0.5, True, [4, 8])
    assert (got["none"], got["text"]) == (None, "ü")
    for name, expected in estimator_arrays().items():
        array = loaded.arrays[name]
        assert array.dtype == expected.dtype.newbyteorder("=") and array.shape == expected.shape
        np.testing.assert_array_equal(array, expected)
        assert array.flags.c_contiguous and array.flags.writeable and array.flags.owndata


def test_estimator_refusing_its_config_gives_model_file_error(estimators, tmp_path):
    fastwb.save(Estimator("MLPRegressor", {"refuse": True}, {}), tmp_path / "e.fwb")
    with pytest.raises(ModelFileError, match="e.fwb.*refuses the config") as info:
        fastwb.load(tmp_path / "e.fwb")
    assert isinstance(info.value.__cause__, ValueError)


def test_read_header(trained, tmp_path):
    fastwb.save(trained, tmp_path / "m.fwb")
    header = saving.read_header(tmp_path / "m.fwb")
    config, arrays = trained.get_state()
    assert header["kind"] == "network"
    assert header["format_version"] == saving.FORMAT_VERSION == 1
    assert header["fastwb_version"] == fastwb.__version__
    assert header["config"] == config
    assert header["arrays"] == {name: {"dtype": "float32", "shape": (67,), "nbytes": 268}
                                for name in arrays}


def test_file_layout_is_the_documented_one(blob):
    header, data = unpack(blob)
    assert blob[:8] == b"\x89FWB\r\n\x1a\n"
    assert (16 + int.from_bytes(blob[8:16], "little")) % 64 == 0
    assert pack(header, data, compact=True) == blob       # nothing but what the docs say
    assert list(header) == ["format_version", "fastwb_version", "kind", "config", "arrays"]
    for entry in header["arrays"].values():
        assert entry["offset"] % 64 == 0 and entry["dtype"] == "<f4"
    parameters = header["arrays"]["parameters"]
    values = np.frombuffer(data, "<f4", parameters["shape"][0], parameters["offset"])
    assert values.size == 67 and np.isfinite(values).all()


def test_non_finite_floats_are_tagged_in_strict_json(estimators, tmp_path):
    fastwb.save(Estimator("MLPClassifier", {"a": [math.inf, math.nan]}, {}), tmp_path / "e.fwb")
    header, _ = unpack((tmp_path / "e.fwb").read_bytes())
    assert header["config"] == {"a": [{"__float__": "inf"}, {"__float__": "nan"}]}


# --- errors on save ------------------------------------------------------------------

def test_save_refuses_non_finite_parameters_and_writes_nothing(tmp_path):
    net = fastwb.Network([2, 3, 1], seed=0)
    net.parameters[4] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        fastwb.save(net, tmp_path / "m.fwb")
    assert os.listdir(tmp_path) == []


def test_save_path_errors(tmp_path):
    net = fastwb.Network([2, 1])
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fastwb.save(net, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fastwb.save(net, tmp_path / "missing" / "m.fwb")
    with pytest.raises(TypeError):
        fastwb.save(net, 3)


class Halving(schedules.Schedule):
    name = "halving"

    def rates(self, base_lr, steps, epoch, samples_seen):
        return np.full(len(steps), base_lr / 2)


class MyAdam(fastwb.Adam):
    pass


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match="saves a fastwb Network or estimator, got dict"):
        fastwb.save({"weights": [1.0]}, tmp_path / "m.fwb")


@pytest.mark.parametrize("kind, config, arrays, error, match", [
    ("Pipeline", {"a": 1}, {}, ValueError, "kind 'Pipeline'"),
    ("MLPClassifier", [], {}, TypeError, "config to save must be a dict"),
    ("MLPClassifier", {}, [], TypeError, "arrays to save must be a dict"),
    ("MLPClassifier", {"a": {1, 2}}, {}, TypeError, "config\\['a'\\] is a set"),
    ("MLPClassifier", {"a": {1: 2}}, {}, TypeError, "keys must be strings"),
    ("MLPClassifier", {"a": {"__float__": "inf"}}, {}, ValueError, "reserve"),
    ("MLPClassifier", {"a": np.zeros(2)}, {}, TypeError, "ndarray"),
    ("MLPClassifier", {}, {"x": [1.0]}, TypeError, "must be a NumPy array"),
    ("MLPClassifier", {}, {"x": np.array([{}])}, TypeError, "dtype object"),
    ("MLPClassifier", {}, {"x": np.zeros(2, np.float16)}, TypeError, "float16"),
    ("MLPClassifier", {}, {"x": np.zeros(2, "S3")}, TypeError, "S3"),
    ("MLPClassifier", {}, {"": np.zeros(2)}, ValueError, "array names"),
    ("MLPClassifier", {"big": "x" * (1 << 24)}, {}, ValueError, "put bulk data in arrays"),
])
def test_save_refuses_what_the_format_cannot_hold(kind, config, arrays, error, match, tmp_path):
    with pytest.raises(error, match=match):
        fastwb.save(Estimator(kind, config, arrays), tmp_path / "m.fwb")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("optimizer", [MyAdam(), fastwb.SGD(schedule=Halving())], ids=repr)
def test_save_refuses_optimizers_it_could_not_rebuild(optimizer, tmp_path):
    net = fastwb.Network([2, 1])
    net.optimizer = optimizer
    with pytest.raises(ValueError, match="only fastwb's own optimizers and schedules"):
        fastwb.save(net, tmp_path / "m.fwb")


def test_save_refuses_an_optimizer_of_another_network(tmp_path):
    X, y = dataset("mse", 1, n=4, n_in=2)
    optimizer = fastwb.SGD()
    fastwb.Network([2, 1], seed=0).train_step(X, y, optimizer)
    net = fastwb.Network([2, 1], seed=0)
    net.optimizer = optimizer
    with pytest.raises(ValueError, match="another network"):
        fastwb.save(net, tmp_path / "m.fwb")


# --- errors on load ------------------------------------------------------------------

def load_bytes(tmp_path, blob: bytes):
    (tmp_path / "bad.fwb").write_bytes(blob)
    return fastwb.load(tmp_path / "bad.fwb")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastwb.load(tmp_path / "nothing.fwb")
    with pytest.raises(FileNotFoundError):
        saving.read_header(tmp_path / "nothing.fwb")


@pytest.mark.parametrize("make, match", [
    (lambda b: b"", "is empty"),
    (lambda b: b"PK\x03\x04" + b"\0" * 100, "not a fastwb model file"),
    (lambda b: b"\x89FW", "truncated"),
    (lambda b: b.replace(b"\r\n", b"\n"), "text-mode transfer"),
    (lambda b: b[:12], "truncated"),
    (lambda b: b[:100], "truncated"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\0", "1 bytes too long"),
    (lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:], "checksum does not match"),
    (lambda b: b[:-300] + bytes([b[-300] ^ 0x40]) + b[-299:], "checksum does not match"),
    (lambda b: b[:8] + (1 << 40).to_bytes(8, "little") + b[16:], "header length"),
    (lambda b: b[:8] + (int.from_bytes(b[8:16], "little") + 1).to_bytes(8, "little") + b[16:],
     "header length"),
])
def test_broken_files(blob, make, match, tmp_path):
    with pytest.raises(ModelFileError, match=match) as info:
        load_bytes(tmp_path, make(blob))
    assert "bad.fwb" in str(info.value)
    with pytest.raises(ModelFileError, match=match):
        saving.read_header(tmp_path / "bad.fwb")


def edited(change):
    """A file edit as a function of (header, data) that changes the parsed header."""
    def edit(header, data):
        change(header)
        return header, data
    return edit


def entry(header, name="parameters"):
    return header["arrays"][name]


@pytest.mark.parametrize("edit, match", [
    (lambda h, d: ([1, 2], d), "not a JSON object"),
    (edited(lambda h: h.pop("fastwb_version")), "missing \\['fastwb_version'\\]"),
    (edited(lambda h: h.update(extra=1)), "unknown \\['extra'\\]"),
    (edited(lambda h: h.update(fastwb_version=1)), "fastwb_version is not a string"),
    (edited(lambda h: h.update(format_version=0)), "format_version is 0"),
    (edited(lambda h: h.update(format_version="1")), "format_version is '1'"),
    (edited(lambda h: h.update(format_version=True)), "format_version is True"),
    (edited(lambda h: h.pop("format_version")), "format_version is None"),
    (edited(lambda h: h.update(format_version=2, fastwb_version="9.1", arrays=None)),
     ("written by fastwb 9.1 in format version 2; this fastwb "
      + re.escape(f"({fastwb.__version__})") + " reads up to version 1: upgrade fastwb")),
    (edited(lambda h: h.update(kind="PolynomialFeatures")),
     "'PolynomialFeatures', which this fastwb does not know"),
    (edited(lambda h: h.update(kind=["network"])), "does not know"),
    (edited(lambda h: h.update(config=[])), "config and arrays must be objects"),
    (edited(lambda h: h.update(arrays=[])), "config and arrays must be objects"),
    (edited(lambda h: entry(h).update(dtype="|O")), "dtype '\\|O'"),
    (edited(lambda h: entry(h).update(dtype="<f2")), "dtype '<f2'"),
    (edited(lambda h: entry(h).update(dtype=">f4")), "dtype '>f4'"),
    (edited(lambda h: entry(h).update(dtype="<U0")), "dtype '<U0'"),
    (edited(lambda h: entry(h).update(dtype=4)), "dtype 4"),
    (edited(lambda h: entry(h).update(shape=[-67])), "shape \\[-67\\]"),
    (edited(lambda h: entry(h).update(shape=[True])), "shape"),
    (edited(lambda h: entry(h).update(shape=[67.0])), "shape"),
    (edited(lambda h: entry(h).update(shape=67)), "shape"),
    (edited(lambda h: entry(h).update(shape=[1] * 33)), "shape"),
    (edited(lambda h: entry(h).update(offset=4)), "offset 4"),
    (edited(lambda h: entry(h).update(offset=-64)), "offset -64"),
    (edited(lambda h: entry(h).update(offset=0.0)), "offset 0.0"),
    (edited(lambda h: entry(h).update(nbytes=272)), "nbytes 272; its dtype and shape take 268"),
    (edited(lambda h: entry(h).pop("nbytes")), "keys"),
    (edited(lambda h: h["arrays"].update(x=[])), "keys"),
    (edited(lambda h: h["arrays"].update({"": entry(h)})), "name of 0 characters"),
    (edited(lambda h: entry(h, "optimizer/exp_avg").update(offset=256)), "overlap"),
    (edited(lambda h: entry(h, "optimizer/exp_avg_sq").update(offset=1 << 50)), "truncated"),
    (edited(lambda h: entry(h, "optimizer/exp_avg_sq").update(shape=[1 << 60], nbytes=1 << 62)),
     "larger than the whole file"),
])
def test_invalid_headers_with_valid_checksums(blob, edit, match, tmp_path):
    with pytest.raises(ModelFileError, match=match):
        load_bytes(tmp_path, pack(*edit(*unpack(blob))))


def raw_header(blob: bytes) -> bytes:
    return blob[16:16 + int.from_bytes(blob[8:16], "little")].rstrip(b" ")


@pytest.mark.parametrize("change, match", [
    (lambda text: b"{not json", "not valid JSON"),
    (lambda text: text[:-1], "not valid JSON"),
    (lambda text: text + b"x", "not valid JSON"),
    (lambda text: b"\xff" + text, "not valid JSON"),
    (lambda text: b"[" * 100000 + b"]" * 100000, "nests deeper than 64 levels"),
    (lambda text: text.replace(b'"seed":3', b'"seed":NaN'), "NaN is not JSON"),
    (lambda text: text.replace(b'"seed":3', b'"seed":Infinity'), "Infinity is not JSON"),
    (lambda text: text.replace(b'"seed":3', b'"seed":1e999'), "overflows"),
    (lambda text: text.replace(b'"seed":3', b'"seed":3,"seed":4'), "duplicate keys"),
    (lambda text: text.replace(b'"seed":3', b'"seed":{"__float__":"big"}'), "__float__"),
    (lambda text: text.replace(b'"seed":3', b'"seed":{"__float__":[1]}'), "__float__"),
    (lambda text: text.replace(b'"seed":3', b'"seed":' + b"9" * 5000), "not valid JSON"),
])
def test_invalid_json(blob, change, match, tmp_path):
    _, data = unpack(blob)
    text = raw_header(blob)
    assert b'"seed":3' in text
    with pytest.raises(ModelFileError, match=match):
        load_bytes(tmp_path, pack(change(text), data))


def network_config(header):
    return header["config"]["network"]


def optimizer_state(header):
    return header["config"]["optimizer"]


@pytest.mark.parametrize("edit, cause, match", [
    (edited(lambda h: network_config(h)["layers"][0].update(activation="bogus")), ValueError,
     "bogus"),
    (edited(lambda h: network_config(h).update(dtype="float16")), ValueError, "float16"),
    (edited(lambda h: network_config(h).update(sizes=[4, 3])), ValueError, "unknown key"),
    (edited(lambda h: [layer.update(n_in=layer["n_in"] + 1) if i else layer.update(n_out=9)
                       for i, layer in enumerate(network_config(h)["layers"])]), ValueError,
     "'parameters' has shape \\(67,\\); this network needs \\(75,\\)"),
    (edited(lambda h: network_config(h).update(dtype="float64")), ValueError,
     "'parameters' has dtype float32; this network needs float64"),
    (edited(lambda h: h["config"].pop("optimizer")), ValueError, "keys"),
    (edited(lambda h: h["config"].update(optimizer=None)), ValueError,
     "'optimizer/exp_avg', 'optimizer/exp_avg_sq'\\] that this network and optimizer do not"),
    (edited(lambda h: h["arrays"].pop("optimizer/exp_avg")), ValueError,
     "no array 'optimizer/exp_avg'"),
    (edited(lambda h: h["arrays"].pop("parameters")), ValueError, "no array 'parameters'"),
    (edited(lambda h: optimizer_state(h).update(step=-1)), ValueError, "step"),
    (edited(lambda h: optimizer_state(h).update(epoch=1.5)), TypeError, "epoch"),
    (edited(lambda h: optimizer_state(h).update(bound=1)), TypeError, "bound"),
    (edited(lambda h: optimizer_state(h)["config"].update(name="Lion")), ValueError, "Lion"),
    (edited(lambda h: optimizer_state(h)["schedule_state"].update(multiplier=2.0)), ValueError,
     "multiplier"),
    (edited(lambda h: optimizer_state(h).update(schedule_state={})), ValueError, "keys"),
    (edited(lambda h: optimizer_state(h)["config"].update(eps=1e-50)), ValueError, "eps"),
])
def test_configs_the_constructors_refuse(blob, edit, cause, match, tmp_path):
    with pytest.raises(ModelFileError, match="bad.fwb describes a network that cannot be built")\
            as info:
        load_bytes(tmp_path, pack(*edit(*unpack(blob))))
    assert isinstance(info.value.__cause__, cause)
    assert re.search(match, str(info.value)), str(info.value)


def test_non_finite_parameters_in_a_file(blob, tmp_path):
    header, data = unpack(blob)
    data = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8).tobytes() + data[4:]
    with pytest.raises(ModelFileError, match="NaN or infinite") as info:
        load_bytes(tmp_path, pack(header, data))
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("name, value, match", [
    ("mask", np.array([1, 2], np.uint8), "bytes other than 0 and 1"),
    ("labels", np.array([0x110000], np.uint32), "not Unicode characters"),
    ("labels", np.array([0xD800], np.uint32), "not Unicode characters"),
])
def test_invalid_array_values(estimators, name, value, match, tmp_path):
    like = {"mask": np.zeros(2, bool), "labels": np.array(["a"])}[name]
    fastwb.save(Estimator("MLPClassifier", {}, {name: like}), tmp_path / "e.fwb")
    header, data = unpack((tmp_path / "e.fwb").read_bytes())
    data = value.astype(value.dtype.newbyteorder("<")).tobytes()
    data += bytes(-len(data) % 64)
    with pytest.raises(ModelFileError, match=match):
        load_bytes(tmp_path, pack(header, data))


# --- fuzzing -------------------------------------------------------------------------

def test_damaged_files_raise_model_file_error_only(blob, tmp_path):
    """Every flipped byte, every truncation, random garbage: ModelFileError, nothing else."""
    rng = np.random.default_rng(0)
    damaged = []
    for position in rng.integers(0, len(blob), size=300):
        flipped = bytearray(blob)
        flipped[position] ^= int(rng.integers(1, 256))
        damaged.append(bytes(flipped))
    damaged += [blob[:n] for n in [*range(20), *range(20, len(blob), 7)]]
    for _ in range(50):
        garbage = rng.integers(0, 256, size=int(rng.integers(0, 2000)), dtype=np.uint8).tobytes()
        damaged += [garbage, saving.MAGIC + garbage, blob[:16] + garbage]
    for broken in damaged:
        with pytest.raises(ModelFileError):
            load_bytes(tmp_path, broken)


def test_resealed_damage_loads_or_raises_model_file_error(blob, tmp_path):
    """Damage under a valid checksum (a deliberate edit) gets past the checksum to every
    later check: the file loads (a digit changed) or raises ModelFileError."""
    rng = np.random.default_rng(1)
    outcomes = {"loaded": 0, "refused": 0}
    body = blob[:-32]
    for position in rng.integers(16, len(body), size=400):
        flipped = bytearray(body)
        flipped[position] ^= int(rng.integers(1, 256))
        try:
            load_bytes(tmp_path, bytes(flipped) + hashlib.sha256(flipped).digest())
            outcomes["loaded"] += 1
        except ModelFileError:
            outcomes["refused"] += 1
    assert outcomes["loaded"] and outcomes["refused"]


# --- atomic writes -------------------------------------------------------------------

@pytest.fixture
def previous(tmp_path) -> bytes:
    """A model already at tmp_path / "m.fwb"; returns its bytes."""
    fastwb.save(fastwb.Network([3, 2], seed=0), tmp_path / "m.fwb")
    return (tmp_path / "m.fwb").read_bytes()


def failing_after(calls: int, error: BaseException):
    count = {"n": 0}
    real = saving._raw_bytes

    def raw_bytes(array):
        count["n"] += 1
        if count["n"] > calls:
            raise error
        return real(array)
    return raw_bytes


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=repr)
def test_failure_while_writing_leaves_the_previous_file(previous, error, monkeypatch,
                                                        tmp_path, trained):
    monkeypatch.setattr(saving, "_raw_bytes", failing_after(1, error))
    with pytest.raises(type(error)):
        fastwb.save(trained, tmp_path / "m.fwb")
    assert (tmp_path / "m.fwb").read_bytes() == previous
    assert os.listdir(tmp_path) == ["m.fwb"]          # the temporary file is gone


def test_failure_to_rename_leaves_the_previous_file(previous, monkeypatch, tmp_path, trained):
    def refuse(source, target):
        raise PermissionError("replace refused")
    monkeypatch.setattr(saving.os, "replace", refuse)
    with pytest.raises(PermissionError):
        fastwb.save(trained, tmp_path / "m.fwb")
    assert (tmp_path / "m.fwb").read_bytes() == previous
    assert os.listdir(tmp_path) == ["m.fwb"]


def test_crash_while_writing_leaves_the_previous_file(previous, tmp_path):
    """The process dies (os._exit: no cleanup at all) half-way through the data.
    Its temporary file names the process id of this test's process (a dead
    writer's id may be live again, or ours), and the next save removes it all
    the same."""
    script = textwrap.dedent("""
        import os, sys
        import fastwb
        from fastwb import saving
        saving.os.getpid = os.getppid
        real, calls = saving._raw_bytes, []
        def raw_bytes(array):
            calls.append(1)
            if len(calls) == 2:
                os._exit(17)
            return real(array)
        saving._raw_bytes = raw_bytes
        net = fastwb.Network([3, 5000, 2], seed=1)    # bigger than a write buffer
        net.optimizer = fastwb.Adam()
        net.optimizer.rule_for(net)
        fastwb.save(net, sys.argv[1])
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastwb.__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # run from tmp_path: "python -c" puts the working directory first on sys.path,
    # and a checkout's fastwb/ there has no compiled core when fastwb is installed
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.fwb")], env=env,
                            cwd=tmp_path,
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 17, result.stderr.decode()
    assert (tmp_path / "m.fwb").read_bytes() == previous
    assert_same_network(fastwb.load(tmp_path / "m.fwb"), fastwb.Network([3, 2], seed=0))
    leftovers = sorted(set(os.listdir(tmp_path)) - {"m.fwb"})
    # the half-written file, named with this process's id
    assert len(leftovers) == 1 and leftovers[0].startswith(f".m.fwb.{os.getpid()}.")
    assert (tmp_path / leftovers[0]).stat().st_size > 0
    fastwb.save(fastwb.Network([3, 2], seed=0), tmp_path / "m.fwb")   # the next save to m.fwb
    assert os.listdir(tmp_path) == ["m.fwb"]                            # removes it


# --- pickle and copies ---------------------------------------------------------------

@pytest.mark.parametrize("duplicate", [lambda net: pickle.loads(pickle.dumps(net)),
                                       copy.deepcopy, copy.copy],
                         ids=["pickle", "deepcopy", "copy"])
def test_copies_carry_the_optimizer_and_train_identically(trained, duplicate):
    twin = duplicate(trained)
    assert_same_network(twin, trained)
    assert_same_optimizer(twin.optimizer, trained.optimizer)
    assert twin.optimizer is not trained.optimizer
    X, y = dataset("softmax_cross_entropy", 3, seed=5)
    twin.fit(X, y, epochs=2, batch_size=16)
    assert not np.array_equal(twin.parameters, trained.parameters)   # independent
    trained.fit(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(twin.parameters, trained.parameters)
    assert_same_optimizer(twin.optimizer, trained.optimizer)


def test_pickle_without_optimizer_and_on_the_reference_backend():
    net = fastwb.Network([3, 4, 2], backend="reference", dtype="float64", seed=9, l2=0.1)
    twin = pickle.loads(pickle.dumps(net))
    assert_same_network(twin, net)
    assert twin.optimizer is None and twin.backend == "reference"


def test_network_state_round_trip_in_memory(trained):
    config, arrays = trained.get_state()
    assert set(arrays) == {"parameters", "optimizer/exp_avg", "optimizer/exp_avg_sq"}
    live = [trained.parameters, *trained.optimizer.state.values()]
    assert not any(np.shares_memory(a, b) for a in arrays.values()
                   for b in live if isinstance(b, np.ndarray))              # copies
    rebuilt = fastwb.Network.from_state(config, arrays)
    assert_same_network(rebuilt, trained)
    assert rebuilt.optimizer.network is rebuilt and rebuilt.optimizer.step == trained.optimizer.step
    with pytest.raises(TypeError, match="dict of NumPy arrays"):
        fastwb.Network.from_state(config, None)
    with pytest.raises(TypeError, match="must be a NumPy array"):
        fastwb.Network.from_state(config, {**arrays, "parameters": list(arrays["parameters"])})


# --- the public surface --------------------------------------------------------------

def test_exported():
    assert fastwb.save is saving.save and fastwb.load is saving.load
    assert {"save", "load"} <= set(fastwb.__all__)
    assert issubclass(ModelFileError, ValueError)


def test_docstring_examples():
    result = doctest.testmod(saving)
    assert result.attempted > 0 and result.failed == 0
