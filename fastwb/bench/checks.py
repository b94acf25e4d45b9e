"""Correctness checks against the NumPy reference (``fastwb/reference.py``).

A benchmark times nothing it has not checked first: the compiled backend
against the reference backend from identical parameters (``check_*``, within
``RTOL``), and a peer library's first prediction, loss and Adam update against
the reference's (``check_outcome``, within ``PEER_RTOL``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import fastwb
from fastwb.bench.cases import make_network, make_optimizer
from fastwb.bench.contenders import Contender, Problem
from fastwb.bench.shapes import FIT_SHAPE
from fastwb.testing import rel_error

#: Norm-relative tolerance of the compiled result against the reference.
RTOL = {"float32": 1e-4, "float64": 1e-10}

#: Norm-relative agreement of a peer with the reference on the first prediction,
#: the loss and the first update: other summation orders pass, different work (a
#: missing bias, another loss or update rule) is off by far more.
PEER_RTOL = {"float32": 1e-3, "float64": 1e-9}

#: Learning rate of the one checked step (the standard SGD setting).
CHECK_LR = 0.01


def assert_close(actual, expected, dtype: str, what: str, truth=None) -> None:
    """Fail unless ``actual`` is within ``RTOL[dtype]`` of ``expected`` in norm.

    ``truth``, the same result computed in float64, settles the float32 cases
    where the reference's own float32 arithmetic is far off (sums that cancel,
    as the weight gradients of a wide ReLU layer at initialisation do: NumPy's
    float32 result was 5e-3 from the float64 one there, fastwb's 5e-7):
    ``actual`` then passes when it is within ``RTOL`` of the truth, or no
    further from it than twice the reference is.
    """
    error = rel_error(actual, expected)
    if error <= RTOL[dtype]:
        return
    if truth is not None:
        own, reference = rel_error(actual, truth), rel_error(expected, truth)
        assert own <= max(RTOL[dtype], 2 * reference), (
            f"{what}: relative error {own:.3g} from the float64 result, the reference's "
            f"{reference:.3g} ({dtype})")
        return
    raise AssertionError(f"{what}: relative error {error:.3g} exceeds {RTOL[dtype]:g} ({dtype})")


def float64_twin(ref: fastwb.Network) -> fastwb.Network | None:
    """For a float32 reference network of ``cases.make_network``, the same
    network in float64 with the same parameters (the truth ``assert_close``
    falls back on); None for float64."""
    if ref.dtype != np.float32:
        return None
    twin = make_network(ref.sizes, "float64", backend="reference")
    twin.parameters[...] = ref.parameters
    return twin


def check_predict(net: fastwb.Network, ref: fastwb.Network, X: np.ndarray) -> None:
    """The compiled network's outputs on X match the reference's."""
    ref.parameters[...] = net.parameters
    twin = float64_twin(ref)
    assert_close(net.predict(X), ref.predict(X), net.dtype.name, f"predict {list(net.sizes)}",
                 None if twin is None else twin.predict(X.astype(np.float64)))


def check_train_step(net: fastwb.Network, ref: fastwb.Network,
                     X: np.ndarray, y: np.ndarray, optimizer: str = "sgd") -> None:
    """From identical parameters, one step of the optimizer leaves both networks
    with matching parameters and reports matching losses."""
    ref.parameters[...] = net.parameters
    twin = float64_twin(ref)
    what = f"{optimizer} step {list(net.sizes)}"
    loss = net.train_step(X, y, make_optimizer(optimizer, CHECK_LR))
    ref_loss = ref.train_step(X, y, make_optimizer(optimizer, CHECK_LR))
    if twin is not None:
        twin_loss = twin.train_step(X.astype(np.float64), y, make_optimizer(optimizer, CHECK_LR))
    assert np.isfinite(loss), f"{what}: loss {loss}"
    assert_close(loss, ref_loss, net.dtype.name, f"{what} loss",
                 None if twin is None else twin_loss)
    assert_close(net.parameters, ref.parameters, net.dtype.name, f"{what} parameters",
                 None if twin is None else twin.parameters)


def flat_gradients(gradients: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``Network.gradients``' ``(dW, db)`` pairs as one array laid out like ``parameters``."""
    return np.concatenate([part.ravel() for pair in gradients for part in pair])


def check_gradients(net: fastwb.Network, ref: fastwb.Network,
                    X: np.ndarray, y: np.ndarray) -> None:
    """From identical parameters, both networks give matching ``(dW, db)`` for every layer."""
    ref.parameters[...] = net.parameters
    dtype = net.dtype.name
    # part by part, so a wrong bias or small layer is not hidden by a large one's norm
    for l, (mine, theirs) in enumerate(zip(net.gradients(X, y), ref.gradients(X, y))):
        for name, actual, expected in zip(("dW", "db"), mine, theirs):
            assert_close(actual, expected, dtype, f"gradients {list(net.sizes)} layer {l} {name}")


def check_update(net: fastwb.Network, ref: fastwb.Network, gradients: np.ndarray,
                 optimizer: str = "adam") -> None:
    """From identical parameters, two ``apply_gradients`` steps, of ``gradients``
    and of ``gradients`` rescaled element by element, move both networks'
    parameters alike. (Adam's first step is ``lr sign(g)`` whatever its
    moments; the second one depends on them.)"""
    ref.parameters[...] = net.parameters
    before = net.parameters.copy()
    mine, theirs = make_optimizer(optimizer, CHECK_LR), make_optimizer(optimizer, CHECK_LR)
    rescaled = gradients * np.linspace(0.5, 2.0, gradients.size, dtype=gradients.dtype)
    for step in (gradients, rescaled):
        mine.apply_gradients(net, step)
        theirs.apply_gradients(ref, step)
    what = f"{optimizer} apply_gradients {list(net.sizes)}"
    moved = net.parameters - before
    assert np.any(moved != 0), f"{what}: parameters unchanged"
    # the steps themselves, not the parameters, whose norm would hide a small error
    assert_close(moved, ref.parameters - before, net.dtype.name, f"{what} step")


def check_fit(net: fastwb.Network, ref: fastwb.Network, X: np.ndarray, y: np.ndarray) -> None:
    """From identical parameters, one Adam epoch of ``fit`` ends at matching parameters."""
    ref.parameters[...] = net.parameters
    batch = FIT_SHAPE.batch
    history = net.fit(X, y, make_optimizer("adam", CHECK_LR), epochs=1, batch_size=batch)
    ref_history = ref.fit(X, y, make_optimizer("adam", CHECK_LR), epochs=1, batch_size=batch)
    dtype = net.dtype.name
    assert_close(history["loss"], ref_history["loss"], dtype, "fit loss")
    assert_close(net.parameters, ref.parameters, dtype, "fit parameters")


def _flat(arrays) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)


@dataclass
class Outcome:
    """What one prediction and one step of a contender from the shared start gave."""

    probabilities: np.ndarray
    loss: float
    update: np.ndarray          # parameters after the step minus before, flat, float64

    @classmethod
    def of(cls, contender: Contender, problem: Problem) -> Outcome:
        """Predict the sample, then take one step (this moves the contender on)."""
        probabilities = _flat([contender.predict_one()])
        loss = float(contender.train_step())
        after = _flat(a for pair in contender.parameters() for a in pair)
        return cls(probabilities, loss, after - _flat(a for pair in problem.params for a in pair))


def check_outcome(outcome: Outcome, expected: Outcome, name: str, dtype: str) -> None:
    """Raise ``AssertionError`` unless a contender's outcome agrees with the
    reference's within ``PEER_RTOL``."""
    rtol = PEER_RTOL[dtype]
    for what, error in (("predict of one sample", rel_error(outcome.probabilities,
                                                            expected.probabilities)),
                        ("loss", rel_error(outcome.loss, expected.loss)),
                        ("the first Adam update", rel_error(outcome.update, expected.update))):
        assert error <= rtol, (f"{name}: {what} differs from the reference's by {error:.3g} "
                               f"(relative, > {rtol:g})")
