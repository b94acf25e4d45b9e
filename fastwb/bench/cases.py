"""The networks, data and optimizers of a benchmark case.

Every benchmark builds its networks and batches here, from the same seeds, so
a case is the same work whichever script measures it.
"""
from __future__ import annotations

import numpy as np

import fastwb
from fastwb.bench.shapes import FIT_SAMPLES, FIT_SHAPE, Shape

BACKENDS = ("compiled", "reference")
#: ``train_step`` is one SGD step; ``adam_step`` one Adam step.
OPS = ("predict", "train_step", "adam_step")
OPTIMIZER_OF = {"train_step": "sgd", "adam_step": "adam"}
#: The optimizers of the measured steps.
OPTIMIZERS = tuple(OPTIMIZER_OF.values())

#: Learning rate of the timed steps: thousands of repeats on one batch must not diverge.
BENCH_LR = 1e-4

ACTIVATION = "relu"
LOSS = "softmax_cross_entropy"
SEED = 0


def make_optimizer(name: str, lr: float = BENCH_LR) -> fastwb.Optimizer:
    """A fresh optimizer: ``sgd`` or ``adam``."""
    return fastwb.SGD(lr=lr) if name == "sgd" else fastwb.Adam(lr=lr)


def make_network(sizes, dtype: str, backend: str = "compiled",
                 n_threads: int | None = None) -> fastwb.Network:
    """The benchmarks' network of these widths: ReLU hidden layers, softmax
    cross-entropy, seed SEED."""
    return fastwb.Network(sizes, activation=ACTIVATION, loss=LOSS, dtype=dtype, seed=SEED,
                          backend=backend, n_threads=n_threads)


def make_pair(shape: Shape, dtype: str,
              n_threads: int | None = None) -> tuple[fastwb.Network, fastwb.Network]:
    """A compiled network and a reference network with identical parameters."""
    return (make_network(shape.sizes, dtype, n_threads=n_threads),
            make_network(shape.sizes, dtype, backend="reference"))


def make_data(shape: Shape, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal inputs ``(batch, n_in)`` and integer class labels ``(batch,)``."""
    return training_data(shape, dtype, shape.batch, seed=0)


def make_fit_data(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """FIT_SAMPLES standard-normal inputs of FIT_SHAPE and integer labels."""
    return training_data(FIT_SHAPE, dtype, FIT_SAMPLES)


def training_data(shape: Shape, dtype: str, samples: int,
                  seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` standard-normal inputs of ``shape`` and integer class labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, shape.sizes[0])).astype(dtype)
    return X, rng.integers(0, shape.sizes[-1], size=samples)
