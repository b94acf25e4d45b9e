"""The public contract: layers, views, initialisation, shapes, training."""
import numpy as np
import pytest

import fastwb
from fastwb.testing import rel_error

BACKENDS = ["compiled", "reference"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_and_biases_are_writable_views(backend):
    net = fastwb.Network([3, 5, 2], seed=0, backend=backend)
    assert [l.weights.shape for l in net.layers] == [(3, 5), (5, 2)]
    assert [l.bias.shape for l in net.layers] == [(5,), (2,)]
    for layer in net.layers:
        assert np.shares_memory(layer.weights, net.parameters)
        assert np.shares_memory(layer.bias, net.parameters)
    X = np.ones((1, 3), np.float32)
    before = net.predict(X)
    net.layers[1].bias += 1.0                     # in place through the view
    np.testing.assert_allclose(net.predict(X), before + 1.0, rtol=1e-6)
    net.layers[1].bias = [0.0, 0.0]               # assignment copies into the view
    np.testing.assert_allclose(net.predict(X), before, rtol=1e-6)
    assert net.parameters.size == net.n_parameters == 3 * 5 + 5 + 5 * 2 + 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_z_is_x_times_w_plus_b(backend):
    rng = np.random.default_rng(0)
    net = fastwb.Network([4, 3], loss="mse", dtype="float64", seed=1, backend=backend)
    X = rng.normal(size=(6, 4))
    layer = net.layers[0]
    np.testing.assert_allclose(net.predict(X), X @ layer.weights + layer.bias, rtol=1e-12)


def test_default_initialisation():
    he = fastwb.Network([400, 300, 2], activation="relu", dtype="float64", seed=0)
    W = he.layers[0].weights
    assert abs(W.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    assert abs(W.mean()) < 0.01 * W.std()
    glorot = he.layers[1].weights                  # identity output layer: Glorot-uniform
    limit = np.sqrt(6 / (300 + 2))
    assert glorot.max() <= limit and glorot.min() >= -limit
    assert abs(glorot.std() - limit / np.sqrt(3)) < 0.1 * limit
    tanh = fastwb.Network([400, 300, 2], activation="tanh", dtype="float64", seed=0)
    assert tanh.layers[0].weights.max() <= np.sqrt(6 / 700)
    assert not he.parameters[400 * 300:400 * 300 + 300].any()      # zero biases


def test_seed_reproducibility():
    a = fastwb.Network([5, 4, 3], seed=7)
    b = fastwb.Network([5, 4, 3], seed=7, backend="reference")
    c = fastwb.Network([5, 4, 3], seed=8)
    d = fastwb.Network([5, 4, 3], seed=7, dtype="float64")
    np.testing.assert_array_equal(a.parameters, b.parameters)
    assert not np.array_equal(a.parameters, c.parameters)
    np.testing.assert_array_equal(a.parameters, d.parameters.astype(np.float32))
    assert not np.array_equal(fastwb.Network([5, 3]).parameters, fastwb.Network([5, 3]).parameters)


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_activation_follows_the_loss(backend):
    X = np.random.default_rng(0).normal(size=(8, 4))
    softmax = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", backend=backend, seed=0)
    assert softmax.activations == ("relu", "softmax")
    np.testing.assert_allclose(softmax.predict(X).sum(axis=1), 1, rtol=1e-6)
    sigmoid = fastwb.Network([4, 6, 3], loss="binary_cross_entropy", backend=backend, seed=0)
    assert sigmoid.activations[-1] == "sigmoid"
    p = sigmoid.predict(X)
    assert ((p > 0) & (p < 1)).all()
    assert fastwb.Network([4, 2], loss="mse").activations == ("identity",)
    assert fastwb.Network([4, 2], output_activation="tanh").activations == ("tanh",)


def test_dense_layers_give_each_layer_its_activation():
    layers = [fastwb.Dense(4, 8, activation="tanh"), fastwb.Dense(8, 8), fastwb.Dense(8, 3)]
    net = fastwb.Network(layers, activation="leaky_relu", loss="softmax_cross_entropy", seed=3)
    assert net.activations == ("tanh", "leaky_relu", "softmax")
    assert net.sizes == (4, 8, 8, 3)
    assert net.layers[0] is layers[0]
    same = fastwb.Network([4, 8, 8, 3], activation="tanh", loss="softmax_cross_entropy", seed=3)
    same.layers[1].weights = net.layers[1].weights    # only layer 2's init differs (He vs Glorot)
    X = np.random.default_rng(0).normal(size=(5, 4))
    hidden_only = fastwb.Network([fastwb.Dense(4, 8, "tanh"), fastwb.Dense(8, 8, "tanh"),
                                  fastwb.Dense(8, 3)], loss="softmax_cross_entropy", seed=3)
    hidden_only.parameters = same.parameters
    np.testing.assert_allclose(hidden_only.predict(X), same.predict(X), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_sample_and_batch_agree(backend):
    net = fastwb.Network([4, 5, 3], loss="softmax_cross_entropy", seed=0, backend=backend)
    X = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    one = net.predict(X[1])
    assert one.shape == (3,)
    np.testing.assert_allclose(one, net.predict(X)[1], rtol=1e-6)
    assert net.loss(X[1], 2) == pytest.approx(net.loss(X[1:2], np.array([2])), rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_have_parameter_shapes(backend):
    net = fastwb.Network([4, 5, 3], seed=0, backend=backend)
    grads = net.gradients(np.ones((2, 4)), np.zeros((2, 3)))
    assert [(dW.shape, db.shape) for dW, db in grads] == [((4, 5), (5,)), ((5, 3), (3,))]
    assert not np.shares_memory(grads[0][0], net.parameters)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_is_the_mean_over_samples_and_outputs(backend):
    rng = np.random.default_rng(1)
    net = fastwb.Network([4, 3], loss="mse", dtype="float64", seed=0, backend=backend)
    X, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    assert net.loss(X, y) == pytest.approx(np.mean((net.predict(X) - y) ** 2), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_step_returns_loss_before_update_and_learns(backend):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 3))
    y = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).ravel()
    net = fastwb.Network([3, 1], loss="mse", dtype="float64", seed=0, backend=backend)
    opt = fastwb.SGD(lr=0.1)
    first = net.loss(X, y)
    assert net.train_step(X, y, opt) == pytest.approx(first, rel=1e-12)
    for _ in range(300):
        net.train_step(X, y, opt)
    assert net.loss(X, y) < 1e-6 * first
    np.testing.assert_allclose(net.layers[0].weights.ravel(), [1.0, -2.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(net.layers[0].bias, [0.3], atol=1e-3)


def test_classifier_learns_two_moons():
    rng = np.random.default_rng(3)
    t = rng.uniform(0, np.pi, 200)
    X = np.concatenate([np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)]])
    y = np.repeat([0, 1], 200)
    net = fastwb.Network([2, 32, 32, 2], activation="tanh", loss="softmax_cross_entropy",
                         seed=0)
    opt = fastwb.SGD(lr=0.5)
    for _ in range(300):
        net.train_step(X, y, opt)
    assert (net.predict(X).argmax(axis=1) == y).mean() > 0.95


def test_repr_and_properties():
    net = fastwb.Network([3, 2], n_threads=2, dtype="float64")
    assert "float64" in repr(net) and "compiled" in repr(net)
    assert net.n_threads == 2
    assert fastwb.Network([3, 2]).n_threads is None
    assert fastwb.Network([3, 2], n_threads=-1).n_threads >= 1
    assert isinstance(fastwb.openmp_enabled(), bool)
    assert repr(fastwb.SGD(0.5)) == "SGD(lr=0.5, momentum=0.0, nesterov=False)"
    assert repr(net.layers[0]) == "Dense(3, 2, activation='identity')"


def test_aliases():
    net = fastwb.Network([3, 4, 2], activation="linear", loss="categorical_crossentropy")
    assert net.activations == ("identity", "softmax")
    assert net.loss_name == "softmax_cross_entropy"
    assert rel_error([1.0], [1.0]) == 0


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_one_sample_given_as_a_list_takes_a_scalar_label(backend):
    net = fastwb.Network([3, 4, 2], loss="softmax_cross_entropy", dtype="float64", seed=0,
                         backend=backend)
    assert net.loss([0.5, 1, 2], 1) == net.loss(np.array([0.5, 1.0, 2.0]), 1)


LABEL_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.longlong, np.uint8, np.uint16,
                np.uint32, np.uint64, np.ulonglong, np.bool_, np.float32, np.float64]


@pytest.mark.parametrize("net_dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_labels_of_any_real_dtype_train_as_int64_labels(net_dtype, label_dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5)).astype(net_dtype)
    labels = rng.integers(0, 2 if label_dtype is np.bool_ else 3, 40)
    y = labels.astype(label_dtype)

    def trained(targets):
        net = fastwb.Network([5, 8, 3], loss="softmax_cross_entropy", dtype=net_dtype, seed=1)
        opt = fastwb.Adam(0.01)
        losses = [net.train_step(X, targets, opt), net.train_step(X[:1], targets[:1], opt),
                  net.loss(X, targets)]
        gradients = np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db
                                    in net.gradients(X, targets)])
        net.fit(X, targets, optimizer=opt, epochs=2, batch_size=16)
        return losses, gradients, net.parameters

    losses, gradients, parameters = trained(y)
    expected_losses, expected_gradients, expected_parameters = trained(labels)
    assert losses == expected_losses
    np.testing.assert_array_equal(gradients, expected_gradients)
    np.testing.assert_array_equal(parameters, expected_parameters)


def test_a_boolean_view_of_other_bytes_labels_as_its_truth():
    """NumPy reads any nonzero byte of a bool array as True: so does the engine."""
    net = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(3, 4))
    y = np.array([2, 0, 7], np.uint8).view(np.bool_)
    assert net.loss(X, y) == net.loss(X, np.array([1, 0, 1]))


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_label_arrays_are_checked_without_the_python_fallback(label_dtype, monkeypatch):
    # the compiled engine's own test accepts them; _validation.check_y is for what it refuses
    net = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", seed=0)
    X = np.ones((5, 4), np.float32)
    y = np.array([0, 1, 1, 0, 1 if label_dtype is np.bool_ else 2], dtype=label_dtype)

    def refuse(*args, **kwargs):
        raise AssertionError("check_y was called")

    monkeypatch.setattr(fastwb._validation, "check_y", refuse)
    assert np.isfinite(net.train_step(X, y, fastwb.Adam()))
    assert np.isfinite(net.loss(X, y))

