"""Weight and bias initializers: their distributions, their randomness, their names."""
import json
import math

import numpy as np
import pytest
from scipy import stats

import fastwb
import fastwb.layers
from fastwb import _random, initializers as init
from fastwb.reference import LEAKY_SLOPE

SEED = 20240611


def stream(layer=0, part=0, seed=SEED):
    return _random.key(seed, _random.STREAM_INIT, layer, part)


# (initializer, mean, variance, uniform limits or None) for a 1000 x 2000 layer
FAN_IN, FAN_OUT = 1000, 2000
STATISTICS = [
    (init.Uniform(-0.3, 0.7), 0.2, 1 / 12, (-0.3, 0.7)),
    (init.Normal(0.5, 2.0), 0.5, 4.0, None),
    (init.GlorotUniform(), 0.0, 2 / 3000, (-math.sqrt(6 / 3000), math.sqrt(6 / 3000))),
    (init.GlorotNormal(), 0.0, 2 / 3000, None),
    (init.HeUniform(0.2), 0.0, 2 / 1040, (-math.sqrt(6 / 1040), math.sqrt(6 / 1040))),
    (init.HeNormal(0.2), 0.0, 2 / 1040, None),
    (init.LecunUniform(), 0.0, 1 / 1000, (-math.sqrt(3 / 1000), math.sqrt(3 / 1000))),
    (init.LecunNormal(), 0.0, 1 / 1000, None),
]
EVERY_INITIALIZER = [init.Zeros(), init.Ones(), init.Constant(-1.5)] + [s[0] for s in STATISTICS]


@pytest.mark.parametrize("initializer, mean, variance, limits", STATISTICS, ids=repr)
def test_mean_variance_and_range(initializer, mean, variance, limits):
    values = initializer.sample(stream(), (FAN_IN, FAN_OUT), FAN_IN, FAN_OUT)
    assert values.shape == (FAN_IN, FAN_OUT) and values.dtype == np.float64
    n = values.size
    # the sample variance's standard error is sqrt((kurtosis - 1) / n) * variance
    kurtosis = 1.8 if limits else 3.0
    assert abs(values.mean() - mean) < 6 * math.sqrt(variance / n)
    assert abs(values.var() - variance) < 6 * math.sqrt((kurtosis - 1) / n) * variance
    if limits:
        low, high = limits
        assert low <= values.min() < low + 1e-4 * (high - low)
        assert high - 1e-4 * (high - low) < values.max() < high


def test_constants():
    shape = (3, 4)
    np.testing.assert_array_equal(init.Zeros().sample(stream(), shape, 3, 4), np.zeros(shape))
    np.testing.assert_array_equal(init.Ones().sample(stream(), shape, 3, 4), np.ones(shape))
    np.testing.assert_array_equal(init.Constant(-1.5).sample(stream(), shape, 3, 4),
                                  np.full(shape, -1.5))


def test_box_muller_is_standard_normal_and_uncorrelated():
    z = init.Normal(0.0, 1.0).sample(stream(), (200_000,), 1, 1)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 6 / math.sqrt(z.size)
    # value i comes from uniforms 2i and 2i+1 of the stream
    u = _random.uniform(stream(), 2 * 5)
    expected = np.sqrt(-2 * np.log(1 - u[0::2])) * np.cos(2 * np.pi * u[1::2])
    np.testing.assert_allclose(z[:5], expected, rtol=1e-12)


@pytest.mark.parametrize("initializer", [init.Uniform(), init.Normal(), init.HeNormal()],
                         ids=repr)
def test_value_depends_on_index_not_on_count(initializer):
    short = initializer.sample(stream(), (10,), 10, 10)
    long = initializer.sample(stream(), (4, 5), 10, 10)
    np.testing.assert_array_equal(short, long.ravel()[:10])
    assert not np.array_equal(short, initializer.sample(stream(seed=SEED + 1), (10,), 10, 10))


# --- initial_parameters: per-layer streams and defaults -----------------------------------


def layers_of(flat, sizes):
    return fastwb._layout.layer_views(flat, sizes)


def test_same_seed_same_values_other_seed_other_values():
    sizes, activations = [5, 7, 3], ["relu", "identity"]
    a = init.initial_parameters(sizes, activations, np.float64, 3)
    np.testing.assert_array_equal(a, init.initial_parameters(sizes, activations, np.float64, 3))
    assert not np.array_equal(a, init.initial_parameters(sizes, activations, np.float64, 4))


def test_each_layer_and_part_has_its_own_stream():
    sizes = [4, 4, 4]
    uniform = [init.Uniform(), init.Uniform()]
    flat = init.initial_parameters(sizes, ["tanh", "tanh"], np.float64, SEED,
                                   weight_inits=uniform, bias_inits=uniform)
    (W0, b0), (W1, b1) = layers_of(flat, sizes)
    for layer, (W, b) in enumerate([(W0, b0), (W1, b1)]):
        np.testing.assert_array_equal(W, init.Uniform().sample(stream(layer, 0), (4, 4), 4, 4))
        np.testing.assert_array_equal(b, init.Uniform().sample(stream(layer, 1), (4,), 4, 4))
    assert not np.isin(W0, W1).any()
    assert not np.isin(b0, W0).any() and not np.isin(b1, W1).any()


def test_other_layers_sizes_do_not_change_a_layer():
    activations = ["relu", "relu", "identity"]
    a = init.initial_parameters([4, 6, 3, 2], activations, np.float64, SEED)
    b = init.initial_parameters([4, 6, 5, 2], activations, np.float64, SEED)
    np.testing.assert_array_equal(layers_of(a, [4, 6, 3, 2])[0][0],
                                  layers_of(b, [4, 6, 5, 2])[0][0])


def test_float32_is_float64_rounded():
    sizes, activations = [30, 20, 10], ["leaky_relu", "sigmoid"]
    single = init.initial_parameters(sizes, activations, np.float32, SEED)
    double = init.initial_parameters(sizes, activations, np.float64, SEED)
    assert single.dtype == np.float32 and double.dtype == np.float64
    np.testing.assert_array_equal(single, double.astype(np.float32))


@pytest.mark.parametrize("activation, expected", [
    ("relu", init.HeNormal()), ("leaky_relu", init.HeNormal(LEAKY_SLOPE)),
    ("identity", init.GlorotUniform()), ("sigmoid", init.GlorotUniform()),
    ("tanh", init.GlorotUniform()), ("softmax", init.GlorotUniform()),
])
def test_default_per_activation(activation, expected):
    assert init.default_weight_init(activation).get_config() == expected.get_config()
    sizes = [6, 5, 4]
    flat = init.initial_parameters(sizes, ["tanh", activation], np.float64, SEED)
    W, b = layers_of(flat, sizes)[1]
    np.testing.assert_array_equal(W, expected.sample(stream(1, 0), (5, 4), 5, 4))
    assert not b.any()


def test_per_layer_initializers_override_the_defaults():
    sizes = [3, 4, 2]
    flat = init.initial_parameters(sizes, ["relu", "identity"], np.float64, SEED,
                                   weight_inits=[init.Ones(), None],
                                   bias_inits=[None, init.Constant(0.25)])
    (W0, b0), (W1, b1) = layers_of(flat, sizes)
    assert (W0 == 1).all() and not b0.any() and (b1 == 0.25).all()
    np.testing.assert_array_equal(W1, init.GlorotUniform().sample(stream(1, 0), (4, 2), 4, 2))
    with pytest.raises(ValueError, match="weight_inits needs one entry per layer"):
        init.initial_parameters(sizes, ["relu", "identity"], np.float64, 0, [None])
    with pytest.raises(TypeError, match=r"bias_inits\[1\]"):
        init.initial_parameters(sizes, ["relu", "identity"], np.float64, 0, None, [None, 1.0])


def test_seeds():
    assert init.resolve_seed(7) == 7 and init.resolve_seed(np.uint64(2**64 - 1)) == 2**64 - 1
    fresh = [init.resolve_seed(None) for _ in range(2)]
    assert fresh[0] != fresh[1] and all(0 <= s < 2**63 for s in fresh)
    for bad, error in [(True, TypeError), (1.5, TypeError), ("1", TypeError),
                       (-1, ValueError), (2**64, ValueError)]:
        with pytest.raises(error, match="seed"):
            init.resolve_seed(bad)
    unseeded = [init.initial_parameters([3, 3], ["relu"], np.float64, None) for _ in range(2)]
    assert not np.array_equal(*unseeded)


# --- names, parameters and configs ---------------------------------------------------------


@pytest.mark.parametrize("name, cls", [
    ("zeros", init.Zeros), ("ones", init.Ones), ("constant", init.Constant),
    ("uniform", init.Uniform), ("normal", init.Normal),
    ("glorot_uniform", init.GlorotUniform), ("xavier_uniform", init.GlorotUniform),
    ("glorot_normal", init.GlorotNormal), ("xavier_normal", init.GlorotNormal),
    ("he_uniform", init.HeUniform), ("kaiming_uniform", init.HeUniform),
    ("he_normal", init.HeNormal), ("kaiming_normal", init.HeNormal),
    ("lecun_uniform", init.LecunUniform), ("lecun_normal", init.LecunNormal),
])
def test_resolve_names(name, cls):
    assert type(init.resolve(name)) is cls
    assert type(init.resolve(name.upper())) is cls
    assert name in init.NAMES


def test_resolve_passes_instances_and_none():
    he = init.HeNormal(0.3)
    assert init.resolve(he) is he and init.resolve(None) is None
    assert init.resolve("Constant").value == 0.0


@pytest.mark.parametrize("value, error", [
    ("he", ValueError), ("glorot", ValueError), ("", ValueError),
    (3, TypeError), (init.HeNormal, TypeError), (b"zeros", TypeError),
])
def test_resolve_errors_name_the_parameter(value, error):
    with pytest.raises(error, match="bias_init") as info:
        init.resolve(value, "bias_init")
    if error is ValueError:
        assert all(name in str(info.value) for name in init.NAMES)


@pytest.mark.parametrize("make, error, parameter", [
    (lambda: init.Normal(std=-0.1), ValueError, "std"),
    (lambda: init.Normal(mean=float("nan")), ValueError, "mean"),
    (lambda: init.Normal(std=True), TypeError, "std"),
    (lambda: init.Uniform(1.0, 0.0), ValueError, "low"),
    (lambda: init.Uniform(high=float("inf")), ValueError, "high"),
    (lambda: init.Uniform("a"), TypeError, "low"),
    (lambda: init.Constant(float("nan")), ValueError, "value"),
    (lambda: init.HeNormal(float("nan")), ValueError, "negative_slope"),
    (lambda: init.HeUniform(None), TypeError, "negative_slope"),
])
def test_bad_parameters(make, error, parameter):
    with pytest.raises(error, match=parameter):
        make()


@pytest.mark.parametrize("initializer", EVERY_INITIALIZER + [init.HeUniform(), init.Normal()],
                         ids=repr)
def test_config_round_trip(initializer):
    config = json.loads(json.dumps(initializer.get_config()))
    assert config == initializer.get_config()
    copy = init.from_config(config)
    assert type(copy) is type(initializer) and repr(copy) == repr(initializer)
    np.testing.assert_array_equal(copy.sample(stream(), (20, 3), 20, 3),
                                  initializer.sample(stream(), (20, 3), 20, 3))


def test_from_config_errors():
    with pytest.raises(ValueError, match="unknown initializer 'bogus'"):
        init.from_config({"name": "bogus"})
    with pytest.raises(TypeError, match="config"):
        init.from_config("he_normal")
    with pytest.raises(TypeError):
        init.from_config({"name": "normal", "sigma": 1.0})


# --- Dense's options -----------------------------------------------------------------------


def test_dense_options():
    layer = fastwb.Dense(3, 4, weight_init="Xavier_Normal", bias_init=init.Constant(0.1),
                         dropout=0.5, l1=0, l2=np.float32(0.25))
    assert isinstance(layer.weight_init, init.GlorotNormal)
    assert layer.bias_init.value == 0.1
    assert (layer.dropout, layer.l1, layer.l2) == (0.5, 0.0, 0.25)
    plain = fastwb.Dense(3, 4)
    assert (plain.weight_init, plain.bias_init, plain.dropout, plain.l1, plain.l2) == \
        (None, None, 0.0, None, None)
    assert repr(plain) == "Dense(3, 4)"
    assert repr(fastwb.Dense(3, 4, "tanh", l2=0.5)) == "Dense(3, 4, activation='tanh', l2=0.5)"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(dropout=-0.1), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(dropout=float("nan")), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(dropout="0.5"), TypeError, "dropout"),
    (dict(dropout=True), TypeError, "dropout"),
    (dict(l1=-1.0), ValueError, "l1"),
    (dict(l2=float("inf")), ValueError, "l2"),
    (dict(l1="0.1"), TypeError, "l1"),
    (dict(l2=False), TypeError, "l2"),
    (dict(weight_init="bogus"), ValueError, "weight_init"),
    (dict(weight_init=0.1), TypeError, "weight_init"),
    (dict(bias_init="glorot"), ValueError, "bias_init"),
])
def test_dense_rejects_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        fastwb.Dense(3, 4, **kwargs)
