"""The reference against central finite differences, in float64."""
import numpy as np
import pytest

import fastwb
from fastwb.testing import (ACTIVATIONS, LOSS_CASES, flat_gradient, make_targets,
                            numerical_gradient, rel_error)






@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_finite_differences(activation, loss, target_kind):
    rng = np.random.default_rng(0)
    net = fastwb.Network([4, 5, 3, 3], activation=activation, loss=loss, dtype="float64",
                         seed=2, backend="reference")
    X = rng.normal(size=(6, 4))
    y = make_targets(target_kind, 6, 3, rng)
    assert rel_error(flat_gradient(net, X, y), numerical_gradient(net, X, y)) < 1e-6


@pytest.mark.parametrize("output_activation", ACTIVATIONS)
def test_mse_output_activations_match_finite_differences(output_activation):
    rng = np.random.default_rng(1)
    net = fastwb.Network([3, 4, 2], activation="tanh", output_activation=output_activation,
                         loss="mse", dtype="float64", seed=5, backend="reference")
    X = rng.normal(size=(5, 3))
    y = rng.normal(size=(5, 2))
    assert rel_error(flat_gradient(net, X, y), numerical_gradient(net, X, y)) < 1e-6


def test_soft_targets_match_finite_differences():
    """Softmax cross-entropy with class-probability rows that need not sum to 1."""
    rng = np.random.default_rng(2)
    net = fastwb.Network([3, 4, 3], activation="sigmoid", loss="softmax_cross_entropy",
                         dtype="float64", seed=1, backend="reference")
    X = rng.normal(size=(4, 3))
    y = rng.uniform(size=(4, 3))
    assert rel_error(flat_gradient(net, X, y), numerical_gradient(net, X, y)) < 1e-6


def test_finite_difference_check_can_fail():
    """The check detects a wrong gradient: perturb one entry and it must exceed the bound."""
    rng = np.random.default_rng(3)
    net = fastwb.Network([3, 4, 2], loss="mse", dtype="float64", seed=0, backend="reference")
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    wrong = flat_gradient(net, X, y)
    wrong[0] += 1e-3
    assert rel_error(wrong, numerical_gradient(net, X, y)) > 1e-6


def test_reference_losses_match_textbook_formulas():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(5, 3))
    t = rng.uniform(size=(5, 3))
    labels = rng.integers(0, 3, size=5)
    from fastwb import reference
    p = 1 / (1 + np.exp(-z))
    bce, _ = reference.loss_and_delta("binary_cross_entropy", "sigmoid", z, t)
    assert np.isclose(bce, np.mean(-t * np.log(p) - (1 - t) * np.log(1 - p)))
    sm = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ce, _ = reference.loss_and_delta("softmax_cross_entropy", "softmax", z, labels)
    assert np.isclose(ce, np.mean(-np.log(sm[np.arange(5), labels])))
    mse, _ = reference.loss_and_delta("mse", "identity", z, t)
    assert np.isclose(mse, np.mean((z - t) ** 2))
