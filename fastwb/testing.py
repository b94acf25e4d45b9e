"""What fastwb's tests share: the tolerances of the compiled core against the
NumPy reference, the cases they run, targets of each kind, the relative error.

A module of the package (as ``numpy.testing`` is NumPy's), so that test
modules import it the same way under any pytest import mode, from a
checkout, an sdist or a copy of ``tests/`` alone, with nothing put on
``sys.path``; code that extends fastwb can hold itself to the same bar.
"""
import os
import shutil
import sys
from pathlib import Path

import numpy as np

#: Largest norm-relative error allowed between the compiled and reference paths.
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}

#: Every elementwise activation (softmax goes with its loss).
ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu",
               "softplus", "swish")

#: (loss, target kind): softmax cross-entropy takes labels and one-hot rows.
LOSS_CASES = (("mse", "float"), ("binary_cross_entropy", "probability"),
              ("softmax_cross_entropy", "labels"), ("softmax_cross_entropy", "one_hot"),
              ("poisson", "count"), ("huber", "float"), ("mae", "float"))

#: (hidden activation, loss, target kind): each activation with the losses in
#: turn and each loss with the activations in turn. A hidden activation and the
#: loss meet only through the delta passed between them, so this covers both
#: lists in every setting a test varies, without their full product.
ACTIVATION_LOSS_PAIRS = (
    tuple((activation, *LOSS_CASES[i % len(LOSS_CASES)])
          for i, activation in enumerate(ACTIVATIONS))
    + tuple((ACTIVATIONS[(3 * i + 1) % len(ACTIVATIONS)], *case)
            for i, case in enumerate(LOSS_CASES)))

#: Dispatch settings that send every product of a small test network down one path.
PATHS = {
    "default": {},
    "blas": dict(small_product=0),
    "parallel_loops": dict(small_product=1 << 40, parallel_min_elements=0, pass_min_elements=0),
}


def rel_error(actual, expected) -> float:
    """||actual - expected|| / ||expected|| (absolute when expected is all zeros)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.linalg.norm(expected)
    diff = np.linalg.norm(actual - expected)
    return float(diff / scale) if scale > 0 else float(diff)


def make_targets(kind: str, n: int, n_out: int, rng: np.random.Generator):
    """Targets of the given kind for a batch of n samples."""
    if kind == "float":
        return rng.normal(size=(n, n_out))
    if kind == "probability":
        return rng.uniform(size=(n, n_out))
    if kind == "count":         # Poisson counts, zeros among them
        return rng.poisson(1.5, size=(n, n_out)).astype(np.float64)
    labels = rng.integers(0, n_out, size=n)
    if kind == "labels":
        return labels
    return np.eye(n_out)[labels]


def estimator_data(kind: str, n: int = 60, n_features: int = 4, seed: int = 0):
    """(X, y) for an estimator: "binary", "multiclass", "multilabel", "strings"
    (three class names), "reg1" (one target) or "reg3" (three)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    score = X @ rng.randn(n_features, 3)
    if kind == "binary":
        return X, (score[:, 0] > 0).astype(int)
    if kind == "multiclass":
        return X, np.argmax(score, axis=1)
    if kind == "multilabel":
        return X, (score > 0).astype(int)
    if kind == "strings":
        return X, np.array(["cat", "dog", "emu"])[np.argmax(score, axis=1)]
    if kind == "reg1":
        return X, score[:, 0] + 0.1 * rng.randn(n)
    return X, score + 0.1 * rng.randn(n, 3)


def numerical_gradient(net, X, y, sample_weight=None, h: float = 1e-6) -> np.ndarray:
    """The gradient of ``net.loss`` by central finite differences, flat like
    ``net.parameters`` (which it perturbs in place, one at a time, and restores)."""
    params = net.parameters
    grad = np.empty_like(params)
    for i in range(params.size):
        saved = params[i]
        params[i] = saved + h
        up = net.loss(X, y, sample_weight)
        params[i] = saved - h
        down = net.loss(X, y, sample_weight)
        params[i] = saved
        grad[i] = (up - down) / (2 * h)
    return grad


def flat_gradient(net, X, y, sample_weight=None) -> np.ndarray:
    """``net.gradients`` flattened in the order of ``net.parameters``."""
    return np.concatenate([np.concatenate([dW.ravel(), db])
                           for dW, db in net.gradients(X, y, sample_weight)])


def mpiexec() -> str | None:
    """The ``mpiexec`` beside this Python (a virtual environment's, where the
    mpich wheel puts it), else the one on PATH; None without one."""
    return shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                        f"{os.environ.get('PATH', '')}")


def address_space_limits_work() -> bool:
    """Whether a test may hold a child process to a few GB of address space
    (``RLIMIT_AS``): Linux only, and not under AddressSanitizer, which reserves
    terabytes of it."""
    return sys.platform.startswith("linux") and "libasan" not in os.environ.get("LD_PRELOAD", "")
