"""The activations elu, selu, gelu, softplus and swish: values and derivatives
element by element (far tails included), the compiled core against the
reference on the paths that keep pre-activations (dropout, chunks, threads),
their names, default initializers, statistics, and the estimators' parameter.

Every activation is also in ``fastwb.testing.ACTIVATIONS``, so the suites that
run over activations (against the reference, finite differences, SIMD levels,
save/load) cover these too."""
import math
import tracemalloc

import numpy as np
import pytest

import fastwb
from fastwb import _core, initializers, reference
from fastwb.functions import ELU_ALPHA, SELU_ALPHA, SELU_SCALE, resolve_activation
from fastwb.testing import TOLERANCE, make_targets, rel_error

NEW = ("elu", "selu", "gelu", "softplus", "swish")

# z from the far left tail to the far right, with 0 and values either side of
# the float32 kernels' switches between formulas (|z| / sqrt 2 = 1 and 2 for gelu)
GRID = np.concatenate([[-1000.0, -80.0, -30.0, -12.0, -9.0, -5.0, -2.83, -2.82, -1.42, -1.41,
                        -0.5, -1e-3, -1e-8, 0.0, 1e-8, 1e-3, 0.5, 1.41, 1.42, 2.82, 2.83, 5.0,
                        12.0, 30.0, 80.0, 1000.0],
                       np.linspace(-6, 6, 97)])


def exact(name: str, z: float) -> tuple[float, float, float]:
    """f(z), f'(z) and the size of the terms f'(z) is a sum of (the scale of
    its rounding error), from math's double-precision functions, independently
    of fastwb.reference."""
    if name in ("elu", "selu"):
        alpha, scale = (ELU_ALPHA, 1.0) if name == "elu" else (SELU_ALPHA, SELU_SCALE)
        if z > 0:
            return scale * z, scale, scale
        # f' = f + scale alpha, from the output a (as PyTorch's backward from the result)
        return scale * alpha * math.expm1(z), scale * alpha * math.exp(z), scale * alpha
    s = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
    if name == "softplus":
        return max(z, 0.0) + math.log1p(math.exp(-abs(z))), s, s
    if name == "gelu":
        cdf = 0.5 * math.erfc(-z / math.sqrt(2))
        pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        return z * cdf, cdf + z * pdf, cdf + abs(z) * pdf
    return z * s, s * (1 + z * (1 - s)), s * (1 + abs(z) * (1 - s))     # swish


def one_layer(name: str, z: np.ndarray, dtype, backend="compiled") -> fastwb.Network:
    """A network of one input and len(z) outputs whose output j is f(z[j]) for x = 1."""
    net = fastwb.Network([1, len(z)], output_activation=name, loss="mse", dtype=dtype,
                         backend=backend)
    net.layers[0].weights[...] = z
    net.layers[0].bias[...] = 0
    return net


def values_and_derivatives(net: fastwb.Network) -> tuple[np.ndarray, np.ndarray]:
    """f(z) and f'(z) of ``one_layer``'s network: with y = f(z) - 1 the MSE
    gradient of bias j is 2 / m * f'(z_j)."""
    x = np.ones((1, 1), dtype=net.dtype)
    a = net.predict(x)
    m = a.shape[1]
    (_, db), = net.gradients(x, a - 1)
    return a[0].astype(np.float64), db.astype(np.float64) * m / 2


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NEW)
def test_values_and_derivatives_element_by_element(name, dtype, backend):
    """Every element to a few units in the last place of its own size (float64
    1e-12, float32 2e-5), not just in norm; finite from -1000 to 1000."""
    z = GRID.astype(dtype)
    a, d = values_and_derivatives(one_layer(name, z, dtype, backend))
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(d))
    expected = np.array([exact(name, float(v)) for v in z])
    # f relative to itself where it is a normal number in the dtype, f' relative
    # to the terms it sums (near a root of f', as gelu's at -0.75, they cancel)
    tiny = 1e-300 if dtype == "float64" else 1e-30
    tol = 1e-12 if dtype == "float64" else 2e-5
    for what, got, want, scale in (("f", a, expected[:, 0], np.abs(expected[:, 0])),
                                   ("f'", d, expected[:, 1], expected[:, 2])):
        err = np.abs(got - want) / np.maximum(scale, tiny)
        worst = int(np.argmax(err))
        assert err[worst] <= tol, (f"{name} {what}({z[worst]}) = {got[worst]!r}, "
                                   f"want {want[worst]!r}")


@pytest.mark.parametrize("name", NEW)
def test_element_check_can_fail(name):
    """A derivative off by one unit in 1e-4 (a constant mistyped) fails the check."""
    z = GRID.astype("float64")
    _, d = values_and_derivatives(one_layer(name, z, "float64"))
    expected = np.array([exact(name, float(v)) for v in z])
    scale = np.maximum(expected[:, 2], 1e-300)
    assert np.max(np.abs(d * (1 + 1e-4) - expected[:, 1]) / scale) > 1e-12


def test_selu_and_elu_constants():
    assert SELU_ALPHA == pytest.approx(1.6732632423543772, rel=1e-16)
    assert SELU_SCALE == pytest.approx(1.0507009873554805, rel=1e-16)
    z = np.array([-1.0, 2.0])
    a, _ = values_and_derivatives(one_layer("selu", z, "float64"))
    np.testing.assert_allclose(a, [SELU_SCALE * SELU_ALPHA * math.expm1(-1), SELU_SCALE * 2],
                               rtol=1e-15)
    a, _ = values_and_derivatives(one_layer("elu", z, "float64"))
    np.testing.assert_allclose(a, [math.expm1(-1), 2], rtol=1e-15)


@pytest.mark.parametrize("name", NEW)
def test_nan_propagates(name):
    z = np.array([np.nan, 1.0])
    for dtype in ("float32", "float64"):
        net = one_layer(name, z.astype(dtype), dtype)
        out = net.predict(np.ones((1, 1), dtype=dtype))[0]
        assert np.isnan(out[0]) and np.isfinite(out[1])


# --- the compiled core against the reference where z is kept --------------------------

def _pair(name, dtype, n_threads, dropout, sizes=(6, 9, 7, 3), loss="softmax_cross_entropy",
          output_activation=None):
    kwargs = dict(activation=name, loss=loss, dtype=dtype, seed=4, dropout=dropout,
                  output_activation=output_activation)
    return (fastwb.Network(list(sizes), n_threads=n_threads, **kwargs),
            fastwb.Network(list(sizes), backend="reference", **kwargs))


def _check(compiled, ref, X, y, dtype, steps=3):
    tol = TOLERANCE[np.dtype(dtype)]
    assert rel_error(compiled.predict(X), ref.predict(X)) <= tol
    for (dW, db), (rW, rb) in zip(compiled.gradients(X, y), ref.gradients(X, y)):
        assert rel_error(dW, rW) <= tol and rel_error(db, rb) <= tol
    mine, theirs = fastwb.Adam(lr=0.01), fastwb.Adam(lr=0.01)
    for step in range(steps):
        assert rel_error(compiled.train_step(X, y, mine), ref.train_step(X, y, theirs)) <= tol
        assert rel_error(compiled.parameters, ref.parameters) <= tol, f"step {step}"


@pytest.mark.parametrize("kernel_path", ["default", "parallel_loops"], indirect=True)
@pytest.mark.parametrize("rows", [7, 300], ids=["plain", "chunked"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NEW)
def test_training_matches_reference_with_dropout_chunks_and_threads(name, dtype, n_threads,
                                                                    dropout, rows, kernel_path):
    """Dropout stores the output after its mask, so f' must come from a / (1 - rate)
    or from the kept z; 300 rows run as chunks, each with its own rows of z."""
    rng = np.random.default_rng(rows)
    compiled, ref = _pair(name, dtype, n_threads, dropout)
    X = (2 * rng.normal(size=(rows, 6))).astype(dtype)
    y = make_targets("labels", rows, 3, rng)
    _check(compiled, ref, X, y, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NEW)
def test_mse_output_layer_and_deep_mixed_network(name, dtype):
    """The output layer's own z (MSE), and a network mixing the activations that
    keep z with those that do not, layer by layer."""
    rng = np.random.default_rng(11)
    compiled, ref = _pair(name, dtype, None, 0.2, loss="mse", output_activation=name)
    X = rng.normal(size=(150, 6)).astype(dtype)
    _check(compiled, ref, X, rng.normal(size=(150, 3)), dtype)
    layers = [fastwb.Dense(5, 8, "gelu"), fastwb.Dense(8, 6, name),
              fastwb.Dense(6, 7, "swish", dropout=0.3), fastwb.Dense(7, 4, "relu"),
              fastwb.Dense(4, 2, name)]
    nets = [fastwb.Network([fastwb.Dense.from_config(layer.get_config()) for layer in layers],
                           loss="mse", dtype=dtype, seed=2, backend=backend)
            for backend in ("compiled", "reference")]
    X = rng.normal(size=(9, 5)).astype(dtype)
    _check(nets[0], nets[1], X, rng.normal(size=(9, 2)), dtype)


@pytest.mark.parametrize("name", NEW)
def test_fit_and_statistics_match_reference(name):
    """Whole epochs (the compiled epoch loop) and activation_statistics: a dead
    fraction only for ReLU layers, NaN for these."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 6))
    y = rng.integers(0, 3, size=200)
    compiled, ref = _pair(name, "float64", None, 0.25)
    for net in (compiled, ref):
        net.fit(X, y, epochs=2, batch_size=32, optimizer=fastwb.Adam(lr=0.01))
    assert rel_error(compiled.parameters, ref.parameters) <= 1e-10
    dead, mean = compiled.activation_statistics(X)
    ref_dead, ref_mean = ref.activation_statistics(X)
    assert np.all(np.isnan(dead)) and np.all(np.isnan(ref_dead))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_huge_inputs_give_finite_steps(name, dtype):
    net = fastwb.Network([3, 8, 2], activation=name, loss="mse", dtype=dtype, seed=0)
    X = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 3.0]], dtype=dtype)
    net.train_step(X, np.zeros((2, 2)), fastwb.SGD(lr=1e-9))
    assert np.all(np.isfinite(net.parameters)) and np.all(np.isfinite(net.predict(X)))


def test_only_gelu_and_swish_layers_keep_pre_activations():
    """A training workspace grows by the widths of the gelu and swish layers only."""
    def workspace_bytes(activations) -> int:
        layers = [fastwb.Dense(4, 10, activations[0]), fastwb.Dense(10, 20, activations[1]),
                  fastwb.Dense(20, 3)]
        net = fastwb.Network(layers, loss="mse", dtype="float64", seed=0)
        X, y, opt = np.zeros((50, 4)), np.zeros((50, 3)), fastwb.SGD(lr=0.1)
        net.train_step(X, y, opt)      # the optimizer's own first allocations
        net.predict(X[:1])
        tracemalloc.start()
        try:
            net.train_step(np.zeros((60, 4)), np.zeros((60, 3)), opt)   # a new workspace
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    base = workspace_bytes(("relu", "elu"))
    assert abs(workspace_bytes(("selu", "softplus")) - base) < 64
    assert abs(workspace_bytes(("gelu", "elu")) - base - 60 * 10 * 8) < 64
    assert abs(workspace_bytes(("swish", "gelu")) - base - 60 * 30 * 8) < 64


# --- names, defaults, the estimators --------------------------------------------------

def test_names_and_aliases():
    assert resolve_activation("SiLU") == "swish"
    assert fastwb.Network([2, 3, 1], activation="silu").activations == ("swish", "identity")
    for name in NEW:
        assert fastwb.Network([2, 3, 1], activation=name.upper()).activations[0] == name
    with pytest.raises(ValueError, match="gelu"):          # the message lists the choices
        resolve_activation("gelu_tanh")


@pytest.mark.parametrize("name,expected", [
    ("elu", initializers.HeNormal()), ("gelu", initializers.HeNormal()),
    ("softplus", initializers.HeNormal()), ("swish", initializers.HeNormal()),
    ("selu", initializers.LecunNormal()), ("tanh", initializers.GlorotUniform())])
def test_default_weight_initializers(name, expected):
    assert initializers.default_weight_init(name).get_config() == expected.get_config()
    net = fastwb.Network([400, 300, 2], activation=name, seed=1, dtype="float64")
    W = net.layers[0].weights
    if name == "selu":     # LeCun normal: variance 1 / fan_in, so selu self-normalises
        assert np.var(W) == pytest.approx(1 / 400, rel=0.02)
        a = fastwb.Network([400, 300, 300, 2], activation="selu", seed=2, dtype="float64")
        x = np.random.default_rng(0).normal(size=(500, 400))
        _, mean = a.activation_statistics(x)
        assert abs(mean[1]) < 0.1


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")    # 5 epochs do not converge
def test_estimators_take_the_new_names_and_one_per_layer():
    pytest.importorskip("sklearn")
    from fastwb.sklearn import MLPClassifier, MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(6, 5), activation=["gelu", "silu"], max_iter=5,
                        random_state=0).fit(X, y)
    assert clf.network.activations == ("gelu", "swish", "sigmoid")
    reg = MLPRegressor(hidden_layer_sizes=(6,), activation="selu", max_iter=5,
                       random_state=0).fit(X, X[:, 1])
    assert reg.network.activations == ("selu", "identity")
    clf.set_params(warm_start=True, activation=["gelu", "elu"])
    with pytest.raises(ValueError, match="activation"):
        clf.fit(X, y)
    clf.set_params(activation=("gelu", "swish"))
    clf.fit(X, y)


def test_saved_new_activations_round_trip(tmp_path):
    net = fastwb.Network([fastwb.Dense(3, 4, "silu"), fastwb.Dense(4, 4, "gelu"),
                          fastwb.Dense(4, 2, "selu")], loss="mse", seed=0)
    path = tmp_path / "n.fwb"
    fastwb.save(net, path)
    loaded = fastwb.load(path)
    assert loaded.activations == ("swish", "gelu", "selu")
    X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_compiled_codes_cover_every_activation():
    assert set(_core.ACTIVATIONS) == set(fastwb.functions.ACTIVATIONS)
    assert len(set(_core.ACTIVATIONS.values())) == len(_core.ACTIVATIONS)


# --- against PyTorch --------------------------------------------------------------------

TORCH_FUNCTIONS = {"elu": "elu", "selu": "selu", "gelu": "gelu", "softplus": "softplus",
                   "swish": "silu"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NEW)
def test_values_and_derivatives_match_pytorch(name, dtype):
    """torch.nn.functional's function and its autograd derivative on the grid,
    for the reference and the compiled core. PyTorch's softplus returns z above
    its threshold of 20 (a relative difference below 1e-8 there), and its gelu
    and elu lose the far left tail to cancellation (1 + erf) and to exp's
    underflow (hence the absolute tolerance)."""
    torch = pytest.importorskip("torch")
    function = getattr(torch.nn.functional, TORCH_FUNCTIONS[name])
    z = torch.tensor(GRID, dtype=getattr(torch, dtype), requires_grad=True)
    value = function(z)
    value.sum().backward()
    want_f = value.detach().numpy().astype(np.float64)
    want_d = z.grad.numpy().astype(np.float64)
    if dtype == "float64":
        rtol, atol = (1e-8 if name == "softplus" else 1e-12), 1e-14
    else:
        rtol, atol = 2e-5, 1e-6
    for backend in ("compiled", "reference"):
        a, d = values_and_derivatives(one_layer(name, GRID.astype(dtype), dtype, backend))
        np.testing.assert_allclose(a, want_f, rtol=rtol, atol=atol, err_msg=f"{backend} f")
        np.testing.assert_allclose(d, want_d, rtol=rtol, atol=atol, err_msg=f"{backend} f'")
