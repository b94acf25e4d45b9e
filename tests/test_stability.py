"""No overflow for logits of +-1000: finite losses, gradients and probabilities."""
import numpy as np
import pytest

import fastwb


def extreme_network(loss, n_out, dtype, backend):
    net = fastwb.Network([2, n_out], loss=loss, dtype=dtype, backend=backend)
    W = np.zeros((2, n_out))
    W[0, 0], W[1, -1] = 1000.0, -1000.0          # z = +-1000 for inputs (1, 0), (0, 1)
    net.layers[0].weights = W
    return net


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_extreme_logits(backend, dtype):
    net = extreme_network("softmax_cross_entropy", 3, dtype, backend)
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    # z = (1000, 0, 0) and (0, 0, -1000)
    assert net.loss(X, np.array([1, 2])) == pytest.approx(1000 + np.log(2) / 2, rel=1e-6)
    assert net.loss(X, np.array([0, 0])) == pytest.approx(np.log(2) / 2, rel=1e-6)
    p = net.predict(X)
    np.testing.assert_allclose(p[0], [1, 0, 0], atol=1e-6)
    (dW, db), = net.gradients(X, np.array([2, 0]))
    assert np.isfinite(dW).all() and np.isfinite(db).all()


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_extreme_logits(backend, dtype):
    net = extreme_network("binary_cross_entropy", 1, dtype, backend)
    X = np.array([[1.0, 0.0], [0.0, 1.0]])              # z = +1000, -1000
    assert net.loss(X, np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-6)
    assert net.loss(X, np.array([0.0, 1.0])) == pytest.approx(1000.0, rel=1e-6)
    np.testing.assert_allclose(net.predict(X).ravel(), [1.0, 0.0], atol=1e-6)
    (dW, db), = net.gradients(X, np.array([0.0, 1.0]))
    assert np.isfinite(dW).all() and np.isfinite(db).all()


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_hidden_sigmoid_and_tanh_saturate_without_nan(backend):
    net = fastwb.Network([2, 3, 2], activation="sigmoid", loss="mse", dtype="float32",
                         seed=0, backend=backend)
    net.layers[0].weights = np.full((2, 3), 1000.0) * np.array([1, -1, 1])
    X = np.array([[1.0, 1.0], [-1.0, 1.0]])
    assert np.isfinite(net.predict(X)).all()
    assert all(np.isfinite(g).all() for pair in net.gradients(X, np.zeros((2, 2)))
               for g in pair)
