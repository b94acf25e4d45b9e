"""The reference's penalties and sample weights against finite differences and by hand, in float64.

``loss`` is the weighted data loss sum_i w_i l_i / sum_i w_i plus
l1 sum|W| + l2 sum W^2 (biases too with ``regularize_biases``), and
``gradients`` is its derivative: checked against central finite differences
with the parameters kept away from 0, where |p| has no derivative, and the
loss against the data loss and the penalty written out here.
"""
import numpy as np
import pytest

import fastwb
from fastwb.testing import LOSS_CASES, flat_gradient, make_targets, numerical_gradient, rel_error

SIZES = [4, 5, 3, 3]

#: Network keyword arguments of each regularization case (sample weights aside).
PENALTIES = {
    "l1": dict(l1=0.05),
    "l2": dict(l2=0.1),
    "l1_l2": dict(l1=0.03, l2=0.07),
    "regularize_biases": dict(l1=0.04, l2=0.06, regularize_biases=True),
    "none": {},
}






def away_from_zero(net, rng, low=0.1):
    """Parameters of random sign with |p| in [low, 1]: |p| is smooth around each."""
    n = net.n_parameters
    net.parameters = rng.choice([-1.0, 1.0], size=n) * rng.uniform(low, 1.0, size=n)


def reference_net(loss, activation="tanh", seed=3, **kwargs):
    return fastwb.Network(SIZES, activation=activation, loss=loss, dtype="float64", seed=seed,
                          backend="reference", **kwargs)


def penalty_by_hand(net, l1, l2, regularize_biases):
    total = 0.0
    for layer in net.layers:
        parts = [layer.weights.ravel()] + ([layer.bias] if regularize_biases else [])
        for p in parts:
            total += l1 * np.sum(np.abs(p)) + l2 * np.sum(p ** 2)
    return total


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("penalty", list(PENALTIES))
@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_penalised_gradients_match_finite_differences(loss, target_kind, penalty, weighted):
    rng = np.random.default_rng(list(PENALTIES).index(penalty))
    net = reference_net(loss, **PENALTIES[penalty])
    away_from_zero(net, rng)
    X = rng.normal(size=(6, SIZES[0]))
    y = make_targets(target_kind, 6, SIZES[-1], rng)
    w = rng.uniform(0.1, 3.0, size=6) if weighted else None
    analytic = flat_gradient(net, X, y, w)
    numerical = numerical_gradient(net, X, y, w)
    assert rel_error(analytic, numerical) < 1e-6
    assert np.all(np.abs(analytic - numerical) < 1e-6)


@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_per_layer_penalties_match_finite_differences(loss, target_kind):
    """Dense layers with their own l1/l2 override the network's."""
    rng = np.random.default_rng(7)
    layers = [fastwb.Dense(4, 5, l1=0.1), fastwb.Dense(5, 3, l2=0.2),
              fastwb.Dense(3, 3, l1=0.0, l2=0.0)]
    net = fastwb.Network(layers, activation="sigmoid", loss=loss, dtype="float64", seed=1,
                         backend="reference", l1=0.02, l2=0.03, regularize_biases=True)
    assert net.l1 == (0.1, 0.02, 0.0) and net.l2 == (0.03, 0.2, 0.0)
    away_from_zero(net, rng)
    X = rng.normal(size=(5, 4))
    y = make_targets(target_kind, 5, 3, rng)
    w = rng.uniform(0.5, 2.0, size=5)
    assert rel_error(flat_gradient(net, X, y, w), numerical_gradient(net, X, y, w)) < 1e-6
    plain = fastwb.Network([4, 5, 3, 3], activation="sigmoid", loss=loss, dtype="float64",
                           seed=1, backend="reference")
    plain.parameters = net.parameters
    expected = plain.loss(X, y, w)
    for layer, l1, l2 in zip(net.layers, net.l1, net.l2):
        for p in (layer.weights, layer.bias):
            expected += l1 * np.abs(p).sum() + l2 * (p ** 2).sum()
    assert np.isclose(net.loss(X, y, w), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("penalty", ["l1", "l2", "l1_l2", "regularize_biases"])
@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_loss_is_data_loss_plus_penalty(loss, target_kind, penalty):
    rng = np.random.default_rng(10)
    kwargs = PENALTIES[penalty]
    net = reference_net(loss, **kwargs)
    plain = reference_net(loss)
    away_from_zero(net, rng)
    plain.parameters = net.parameters
    X = rng.normal(size=(7, SIZES[0]))
    y = make_targets(target_kind, 7, SIZES[-1], rng)
    by_hand = penalty_by_hand(net, kwargs.get("l1", 0.0), kwargs.get("l2", 0.0),
                              kwargs.get("regularize_biases", False))
    assert by_hand > 0.1
    assert np.isclose(net.loss(X, y), plain.loss(X, y) + by_hand, rtol=1e-13, atol=0)
    w = rng.uniform(0.1, 3.0, size=7)
    assert np.isclose(net.loss(X, y, w), plain.loss(X, y, w) + by_hand, rtol=1e-13, atol=0)


@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_gradient_is_data_gradient_plus_penalty_gradient(loss, target_kind):
    """d/dp of l1 |p| + l2 p^2 is l1 sign(p) + 2 l2 p, on weights and (here) biases."""
    rng = np.random.default_rng(11)
    l1, l2 = 0.05, 0.2
    net = reference_net(loss, l1=l1, l2=l2, regularize_biases=True)
    plain = reference_net(loss)
    away_from_zero(net, rng)
    plain.parameters = net.parameters
    X = rng.normal(size=(6, SIZES[0]))
    y = make_targets(target_kind, 6, SIZES[-1], rng)
    p = net.parameters
    expected = flat_gradient(plain, X, y) + l1 * np.sign(p) + 2 * l2 * p
    assert rel_error(flat_gradient(net, X, y), expected) < 1e-13


def test_biases_are_not_penalised_by_default():
    rng = np.random.default_rng(12)
    net = reference_net("mse", l1=0.5, l2=0.5)
    plain = reference_net("mse")
    away_from_zero(net, rng)
    plain.parameters = net.parameters
    X, y = rng.normal(size=(4, SIZES[0])), rng.normal(size=(4, SIZES[-1]))
    for (dW, db), (pW, pb) in zip(net.gradients(X, y), plain.gradients(X, y)):
        assert np.array_equal(db, pb)
        assert not np.allclose(dW, pW)
    assert np.isclose(net.loss(X, y), plain.loss(X, y) + penalty_by_hand(net, 0.5, 0.5, False),
                      rtol=1e-13, atol=0)


@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_weighted_loss_is_the_weighted_mean_of_sample_losses(loss, target_kind):
    """sum_i w_i l_i / sum_i w_i, with l_i the loss of sample i alone."""
    rng = np.random.default_rng(13)
    net = reference_net(loss, activation="relu")
    X = rng.normal(size=(7, SIZES[0]))
    y = make_targets(target_kind, 7, SIZES[-1], rng)
    w = rng.uniform(0.0, 3.0, size=7)
    w[2] = 0.0
    per_sample = np.array([net.loss(X[i:i + 1], y[i:i + 1]) for i in range(7)])
    assert np.isclose(net.loss(X, y, w), np.sum(w * per_sample) / np.sum(w), rtol=1e-13)
    assert np.isclose(net.loss(X, y), per_sample.mean(), rtol=1e-13)
    assert np.isclose(net.loss(X, y, 5.0 * w), net.loss(X, y, w), rtol=1e-13)


@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_zero_weights_drop_samples(loss, target_kind):
    """Loss and gradient with weights (w, 0) equal those of the weighted samples alone."""
    rng = np.random.default_rng(14)
    net = reference_net(loss, l2=0.1)
    X = rng.normal(size=(6, SIZES[0]))
    y = make_targets(target_kind, 6, SIZES[-1], rng)
    w = np.array([1.5, 0.0, 2.0, 0.0, 0.5, 0.0])
    kept = w > 0
    assert np.isclose(net.loss(X, y, w), net.loss(X[kept], y[kept], w[kept]), rtol=1e-13)
    assert rel_error(flat_gradient(net, X, y, w),
                     flat_gradient(net, X[kept], y[kept], w[kept])) < 1e-13


def test_all_zero_weights_leave_only_the_penalty():
    rng = np.random.default_rng(15)
    net = reference_net("mse", l1=0.1, l2=0.2)
    away_from_zero(net, rng)
    X, y = rng.normal(size=(3, SIZES[0])), rng.normal(size=(3, SIZES[-1]))
    w = np.zeros(3)
    assert np.isclose(net.loss(X, y, w), penalty_by_hand(net, 0.1, 0.2, False), rtol=1e-13)
    assert rel_error(flat_gradient(net, X, y, w), numerical_gradient(net, X, y, w)) < 1e-6


def test_finite_difference_check_catches_a_missing_penalty_gradient():
    """The check can fail: dropping the l1 term from the gradient exceeds the bound."""
    rng = np.random.default_rng(16)
    net = reference_net("mse", l1=0.05)
    plain = reference_net("mse")
    away_from_zero(net, rng)
    plain.parameters = net.parameters
    X, y = rng.normal(size=(5, SIZES[0])), rng.normal(size=(5, SIZES[-1]))
    assert rel_error(flat_gradient(plain, X, y), numerical_gradient(net, X, y)) > 1e-3
