"""Helpers shared by the pytest-benchmark suite and ``compare.py``.

Both measure the same cases and hold the compiled backend to the same
correctness bar against the NumPy reference, so these live in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import fastwb

DTYPES = ("float32", "float64")
BACKENDS = ("compiled", "reference")
#: ``train_step`` is one SGD step; ``adam_step`` one Adam step.
OPS = ("predict", "train_step", "adam_step")
OPTIMIZER_OF = {"train_step": "sgd", "adam_step": "adam"}

#: Norm-relative tolerance of the compiled result against the reference.
RTOL = {"float32": 1e-4, "float64": 1e-10}

#: Learning rate of the one checked step (the standard SGD setting).
CHECK_LR = 0.01
#: Learning rate of the timed steps: thousands of repeats on one batch must not diverge.
BENCH_LR = 1e-4

ACTIVATION = "relu"
LOSS = "softmax_cross_entropy"
SEED = 0

#: The ``fit`` case: one epoch of FIT_SAMPLES samples in batches of FIT_SHAPE.batch.
FIT_SAMPLES = 4096

#: pytest marker of the opt-in large shape (see conftest.py).
LARGE_MARKER = "fastwb_large"


@dataclass(frozen=True)
class Shape:
    """Layer widths and batch size of one benchmark case."""

    sizes: tuple[int, ...]
    batch: int
    large: bool = False

    @property
    def label(self) -> str:
        """``16-32-4`` style name of the widths."""
        return "-".join(map(str, self.sizes))

    @property
    def id(self) -> str:
        """Test id: widths and batch."""
        return f"{self.label}-b{self.batch}"


SHAPES = (
    Shape((16, 32, 4), 1),
    Shape((64, 128, 10), 32),
    Shape((784, 256, 128, 10), 128),
    Shape((1024, 4096, 4096, 1024), 256, large=True),
)

#: The single-sample case: ``predict`` of a 1-D ``x`` measures per-call overhead.
SINGLE_SAMPLE = SHAPES[0]
#: The shape ``fit`` is measured on.
FIT_SHAPE = SHAPES[1]


def make_optimizer(name: str, lr: float = BENCH_LR) -> fastwb.Optimizer:
    """A fresh optimizer: ``sgd`` or ``adam``."""
    return fastwb.SGD(lr=lr) if name == "sgd" else fastwb.Adam(lr=lr)


def train_flops(shape: Shape, rows: int | None = None) -> int:
    """Floating-point operations of the matrix products of one training step:
    2nkm each for the forward product and the weight gradient of every layer,
    and for the gradient sent back from every layer but the first."""
    n = shape.batch if rows is None else rows
    layers = list(zip(shape.sizes[:-1], shape.sizes[1:]))
    return sum(2 * n * k * m * (2 if l == 0 else 3) for l, (k, m) in enumerate(layers))


def make_fit_data(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """FIT_SAMPLES standard-normal inputs of FIT_SHAPE and integer labels."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((FIT_SAMPLES, FIT_SHAPE.sizes[0])).astype(dtype)
    return X, rng.integers(0, FIT_SHAPE.sizes[-1], size=FIT_SAMPLES)


def make_data(shape: Shape, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal inputs ``(batch, n_in)`` and integer class labels ``(batch,)``."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((shape.batch, shape.sizes[0])).astype(dtype)
    y = rng.integers(0, shape.sizes[-1], size=shape.batch)
    return X, y


def make_pair(shape: Shape, dtype: str,
              n_threads: int | None = None) -> tuple[fastwb.Network, fastwb.Network]:
    """A compiled network and a reference network with identical parameters."""
    kwargs = dict(activation=ACTIVATION, loss=LOSS, dtype=dtype, seed=SEED)
    net = fastwb.Network(shape.sizes, n_threads=n_threads, **kwargs)
    ref = fastwb.Network(shape.sizes, backend="reference", **kwargs)
    return net, ref


def rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """``||actual - expected|| / ||expected||`` in float64 (absolute if expected is 0)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.linalg.norm(expected)
    error = np.linalg.norm(actual - expected)
    return float(error / scale) if scale > 0 else float(error)


def assert_close(actual, expected, dtype: str, what: str) -> None:
    """Fail unless ``actual`` is within ``RTOL[dtype]`` of ``expected`` in norm."""
    error = rel_error(actual, expected)
    assert error <= RTOL[dtype], (
        f"{what}: relative error {error:.3g} exceeds {RTOL[dtype]:g} ({dtype})")


def check_predict(net: fastwb.Network, ref: fastwb.Network, X: np.ndarray) -> None:
    """The compiled network's outputs on X match the reference's."""
    assert_close(net.predict(X), ref.predict(X), net.dtype.name, f"predict {list(net.sizes)}")


def check_train_step(net: fastwb.Network, ref: fastwb.Network,
                     X: np.ndarray, y: np.ndarray, optimizer: str = "sgd") -> None:
    """From identical parameters, one step of the optimizer leaves both networks
    with matching parameters and reports matching losses."""
    ref.parameters[...] = net.parameters
    what = f"{optimizer} step {list(net.sizes)}"
    loss = net.train_step(X, y, make_optimizer(optimizer, CHECK_LR))
    ref_loss = ref.train_step(X, y, make_optimizer(optimizer, CHECK_LR))
    assert np.isfinite(loss), f"{what}: loss {loss}"
    assert_close(loss, ref_loss, net.dtype.name, f"{what} loss")
    assert_close(net.parameters, ref.parameters, net.dtype.name, f"{what} parameters")


def check_fit(net: fastwb.Network, ref: fastwb.Network, X: np.ndarray, y: np.ndarray) -> None:
    """From identical parameters, one Adam epoch of ``fit`` ends at matching parameters."""
    ref.parameters[...] = net.parameters
    batch = FIT_SHAPE.batch
    history = net.fit(X, y, make_optimizer("adam", CHECK_LR), epochs=1, batch_size=batch)
    ref_history = ref.fit(X, y, make_optimizer("adam", CHECK_LR), epochs=1, batch_size=batch)
    dtype = net.dtype.name
    assert_close(history["loss"], ref_history["loss"], dtype, "fit loss")
    assert_close(net.parameters, ref.parameters, dtype, "fit parameters")


def gemm_rate(dtype: str, size: int = 2048) -> Callable[[], None]:
    """A large square product: the machine's best GEMM rate (2 size^3 FLOP per call)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, size, size)).astype(dtype)
    out = np.empty((size, size), dtype)
    return lambda: np.matmul(a, b, out=out)
