"""The Poisson, Huber and MAE losses: their formulas, their kinks, Poisson's range
of z, Huber's delta, sample weights, and the compiled core against the reference.

(Every loss also runs through the shared parametrisations over ``LOSS_CASES``:
compiled against reference, finite differences, SIMD levels, save and load.)
"""
import numpy as np
import pytest
from scipy.special import xlogy

import fastwb
from fastwb import reference
from fastwb.functions import resolve_loss
from fastwb.testing import TOLERANCE, flat_gradient, make_targets, numerical_gradient, rel_error

NEW_LOSSES = (("poisson", "count"), ("huber", "float"), ("mae", "float"))






# --- the formulas --------------------------------------------------------------------

def test_poisson_is_half_the_deviance_of_exp_z():
    """scikit-learn's poisson_loss per element: xlogy(y, y / mu) - y + mu, mu = e^z."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3))
    y = rng.poisson(2.0, size=(6, 3)).astype(float)
    y[0] = 0
    value, delta = reference.loss_and_delta("poisson", "exp", z, y)
    mu = np.exp(z)
    assert value == pytest.approx(np.mean(xlogy(y, y / mu) - y + mu), rel=1e-13)
    np.testing.assert_allclose(delta, (mu - y) / y.size, rtol=1e-13)
    # zero, with no gradient, at the perfect prediction; positive elsewhere
    positive = y + 1.0
    perfect, grad = reference.loss_and_delta("poisson", "exp", np.log(positive), positive)
    assert perfect == pytest.approx(0, abs=1e-13)
    np.testing.assert_allclose(grad, 0, atol=1e-15)
    assert value > 0


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_is_pytorchs_huber_loss(delta):
    rng = np.random.default_rng(1)
    a = rng.normal(scale=2, size=(7, 2))
    y = rng.normal(size=(7, 2))
    x = a - y
    expected = np.where(np.abs(x) <= delta, 0.5 * x * x, delta * (np.abs(x) - 0.5 * delta))
    value, grad = reference.loss_and_delta("huber", "identity", a, y, huber_delta=delta)
    assert value == pytest.approx(expected.mean(), rel=1e-13)
    np.testing.assert_allclose(grad, np.clip(x, -delta, delta) / x.size, rtol=1e-13)


def test_mae_is_the_mean_absolute_error():
    rng = np.random.default_rng(2)
    a, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    value, grad = reference.loss_and_delta("mae", "identity", a, y)
    assert value == pytest.approx(np.mean(np.abs(a - y)), rel=1e-13)
    np.testing.assert_array_equal(grad, np.sign(a - y) / a.size)


@pytest.mark.parametrize("alias,name", [("l1", "mae"), ("mean_absolute_error", "mae"),
                                        ("absolute_error", "mae"), ("huber_loss", "huber"),
                                        ("poisson_deviance", "poisson"), ("MAE", "mae")])
def test_loss_aliases(alias, name):
    assert resolve_loss(alias) == name
    assert fastwb.Network([2, 1], loss=alias).loss_name == name


# --- the kinks -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mae_gradient_is_zero_where_the_prediction_is_exact(backend, dtype):
    """The subgradient 0 at a = y (PyTorch's L1Loss): an exact fit stays put."""
    net = fastwb.Network([3, 2], loss="mae", dtype=dtype, seed=0, backend=backend)
    X = np.random.default_rng(3).normal(size=(4, 3)).astype(dtype)
    y = net.predict(X).copy()
    y[0, 0] += 1.0          # one residual of +1 (a < y), the rest exactly 0
    assert net.loss(X, y) == pytest.approx(1.0 / y.size)
    (dW, db), = net.gradients(X, y)
    np.testing.assert_allclose(db, [-1.0 / y.size, 0.0], rtol=1e-6)
    np.testing.assert_allclose(dW[:, 1], 0.0)
    np.testing.assert_allclose(dW[:, 0], -X[0] / y.size, rtol=1e-6)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_huber_is_continuous_at_its_delta(backend):
    """At |x| = delta both pieces give delta^2 / 2 and the gradient delta sign(x)."""
    net = fastwb.Network([1, 1], loss="huber", huber_delta=0.5, dtype="float64", seed=0,
                         backend=backend)
    net.layers[0].weights[...] = 0
    net.layers[0].bias[...] = 0
    X = np.zeros((2, 1))
    for residual in (0.5, -0.5):
        y = np.full((2, 1), -residual)
        assert net.loss(X, y) == 0.125
        (_, db), = net.gradients(X, y)
        assert db[0] == residual
        for step in (1e-9, -1e-9):      # and the same value either side
            assert net.loss(X, y + step) == pytest.approx(0.125, abs=1e-8)


@pytest.mark.parametrize("delta", [0.05, 3.0])
def test_huber_delta_changes_the_loss_as_the_formula_says(delta):
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(9, 3)), rng.normal(scale=2, size=(9, 2))
    compiled = fastwb.Network([3, 4, 2], loss="huber", huber_delta=delta, dtype="float64",
                              seed=1)
    a = compiled.predict(X)
    x = np.abs(a - y)
    expected = np.where(x <= delta, 0.5 * x * x, delta * (x - 0.5 * delta)).mean()
    assert compiled.loss(X, y) == pytest.approx(expected, rel=1e-12)


# --- Poisson's range -------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poisson_is_finite_far_from_the_data(backend, dtype):
    """A large z (mu = e^60) and a very negative one (mu = e^-120, below float32's
    smallest normal) give finite losses and gradients: the loss is written
    without log(mu) or y / mu, which would be -inf or inf there."""
    net = fastwb.Network([1, 2], loss="poisson", dtype=dtype, seed=0, backend=backend)
    net.layers[0].weights[...] = 0
    net.layers[0].bias[...] = [60.0, -120.0]
    X = np.zeros((3, 1))
    y = np.array([[0.0, 5.0], [3.0, 0.0], [1e3, 2.0]])
    value = net.loss(X, y)
    z = np.array([60.0, -120.0])
    log_y = np.log(y, out=np.zeros_like(y), where=y > 0)
    expected = np.mean(np.exp(z) - y + y * (log_y - z))
    assert np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-6)
    (dW, db), = net.gradients(X, y)
    assert np.isfinite(db).all() and np.isfinite(dW).all()
    np.testing.assert_allclose(db, (np.exp(z) - y).sum(axis=0) / y.size, rtol=1e-5)
    # (e^-120 is 0 in float32)
    np.testing.assert_allclose(net.predict(X), np.exp(z)[None].repeat(3, axis=0), rtol=1e-5,
                               atol=1e-37)


def test_poisson_predicts_exp_of_the_last_layer():
    rng = np.random.default_rng(5)
    net = fastwb.Network([3, 5, 2], loss="poisson", dtype="float64", seed=2)
    assert net.activations[-1] == "exp"
    X = rng.normal(size=(4, 3))
    (W1, b1), (W2, b2) = [(layer.weights, layer.bias) for layer in net.layers]
    np.testing.assert_allclose(net.predict(X), np.exp(np.maximum(X @ W1 + b1, 0) @ W2 + b2),
                               rtol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poisson_regression_learns_the_rate(dtype):
    """A Poisson network fitted on counts with rate e^(x0 - x1 / 2) recovers it."""
    rng = np.random.default_rng(6)
    X = rng.uniform(-1, 1, size=(4000, 2))
    rate = np.exp(X[:, 0] - 0.5 * X[:, 1])
    y = rng.poisson(rate).astype(float)
    net = fastwb.Network([2, 1], loss="poisson", dtype=dtype, seed=0)
    net.fit(X, y, fastwb.Adam(lr=0.05), epochs=30, batch_size=200, verbose=0)
    np.testing.assert_allclose(net.layers[0].weights[:, 0], [1.0, -0.5], atol=0.1)
    assert abs(net.layers[0].bias[0]) < 0.1


# --- weights, gradients and the compiled core ----------------------------------------------

@pytest.mark.parametrize("loss,kind,output_activation", [
    ("poisson", "count", None), ("huber", "float", None), ("huber", "float", "tanh"),
    ("huber", "float", "sigmoid"), ("mae", "float", None), ("mae", "float", "tanh"),
    ("mae", "float", "sigmoid")])
def test_weighted_gradients_match_finite_differences(loss, kind, output_activation):
    rng = np.random.default_rng(7)
    net = fastwb.Network([4, 5, 3], activation="tanh", loss=loss, dtype="float64", seed=3,
                         output_activation=output_activation, backend="reference",
                         **({"huber_delta": 0.4} if loss == "huber" else {}))
    X = rng.normal(size=(6, 4))
    y = make_targets(kind, 6, 3, rng)
    w = rng.uniform(0, 2, size=6)
    w[2] = 0
    assert rel_error(flat_gradient(net, X, y, w), numerical_gradient(net, X, y, w)) < 1e-6


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss,kind", NEW_LOSSES)
def test_weighted_training_matches_the_reference(loss, kind, dtype, n_threads):
    """Sample weights (zeros among them), a batch big enough for the parallel and
    chunked paths, SGD with momentum: compiled and reference agree step by step."""
    rng = np.random.default_rng(8)
    kwargs = dict(activation="relu", loss=loss, dtype=dtype, seed=4,
                  **({"huber_delta": 0.7} if loss == "huber" else {}))
    sizes = [6, 16, 4]
    compiled = fastwb.Network(sizes, n_threads=n_threads, **kwargs)
    ref = fastwb.Network(sizes, backend="reference", **kwargs)
    X = rng.normal(size=(300, 6)).astype(dtype)
    y = make_targets(kind, 300, 4, rng)
    w = rng.uniform(0, 3, size=300)
    w[::7] = 0
    tolerance = TOLERANCE[np.dtype(dtype)]
    assert rel_error(compiled.loss(X, y, w), ref.loss(X, y, w)) <= tolerance
    for (dW, db), (rW, rb) in zip(compiled.gradients(X, y, w), ref.gradients(X, y, w)):
        assert rel_error(dW, rW) <= tolerance and rel_error(db, rb) <= tolerance
    mine, theirs = fastwb.SGD(lr=0.05, momentum=0.9), fastwb.SGD(lr=0.05, momentum=0.9)
    for step in range(3):
        loss_c = compiled.train_step(X, y, mine, sample_weight=w)
        loss_r = ref.train_step(X, y, theirs, sample_weight=w)
        assert rel_error(loss_c, loss_r) <= tolerance, f"loss of step {step}"
        assert rel_error(compiled.parameters, ref.parameters) <= tolerance, f"step {step}"


@pytest.mark.parametrize("loss,kind", NEW_LOSSES)
def test_integer_weights_equal_repeated_rows(loss, kind):
    rng = np.random.default_rng(9)
    net = fastwb.Network([3, 4, 2], loss=loss, dtype="float64", seed=5)
    X = rng.normal(size=(5, 3))
    y = make_targets(kind, 5, 2, rng)
    w = np.array([1, 3, 0, 2, 1])
    repeated = np.repeat(np.arange(5), w)
    assert net.loss(X, y, w) == pytest.approx(net.loss(X[repeated], y[repeated]), rel=1e-13)


@pytest.mark.parametrize("loss,kind", NEW_LOSSES)
def test_thread_count_gives_the_same_bits(loss, kind):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(512, 8)).astype(np.float32)
    y = make_targets(kind, 512, 16, rng)
    results = []
    for n_threads in (1, 2):
        net = fastwb.Network([8, 32, 16], loss=loss, seed=6, n_threads=n_threads)
        history = net.fit(X, y, fastwb.Adam(lr=0.01), epochs=2, batch_size=256, shuffle=True,
                          verbose=0)
        results.append((history["loss"], net.parameters.copy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_regression_losses_report_no_accuracy():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    net = fastwb.Network([3, 4, 1], loss="huber", seed=0)
    history = net.fit(X, y, fastwb.SGD(0.01), epochs=1, validation_split=0.25, verbose=0)
    assert "val_loss" in history.history and "val_accuracy" not in history.history


@pytest.mark.parametrize("loss", ["poisson", "huber", "mae"])
def test_reference_losses_match_pytorch(loss):
    """PyTorch's HuberLoss(delta), L1Loss (with its subgradient 0 at an exact fit)
    and PoissonNLLLoss(log_input=True) plus the deviance's constant y log y - y."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    out = rng.normal(scale=2, size=(8, 3))
    y = rng.poisson(2.0, size=(8, 3)).astype(float) if loss == "poisson" else \
        rng.normal(size=(8, 3))
    out[0, 0] = y[0, 0]
    w = rng.uniform(0, 2, size=8)
    z, target = torch.tensor(out, requires_grad=True), torch.tensor(y)
    if loss == "poisson":
        per = torch.nn.PoissonNLLLoss(log_input=True, reduction="none")(z, target) \
            + torch.special.xlogy(target, target) - target
    elif loss == "huber":
        per = torch.nn.HuberLoss(delta=0.7, reduction="none")(z, target)
    else:
        per = torch.nn.L1Loss(reduction="none")(z, target)
    total = (torch.tensor(w) * per.sum(dim=1)).sum() / (w.sum() * 3)
    total.backward()
    value, delta = reference.loss_and_delta(
        loss, "exp" if loss == "poisson" else "identity", out, y, w,
        **({"huber_delta": 0.7} if loss == "huber" else {}))
    assert value == pytest.approx(total.item(), rel=1e-13)
    np.testing.assert_allclose(delta, z.grad.numpy(), rtol=1e-12, atol=1e-17)


def test_the_engine_refuses_what_network_would():
    """The compiled engine's own checks (Network refuses these first)."""
    from fastwb import _core
    params = np.zeros(3 * 2 + 2 + 2 * 1 + 1, dtype=np.float32)
    with pytest.raises(ValueError, match="only supported on the output layer"):
        _core.Engine([3, 2, 1], ["exp", "exp"], "poisson", params)
    for delta in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="huber_delta"):
            _core.Engine([3, 2, 1], ["relu", "identity"], "huber", params, huber_delta=delta)
