"""Helpers shared by the pytest-benchmark suite and ``compare.py``.

Both measure the same cases and hold the compiled backend to the same
correctness bar against the NumPy reference, so these live in one place.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import fastwb

DTYPES = ("float32", "float64")
BACKENDS = ("compiled", "reference")
OPS = ("predict", "train_step")

#: Norm-relative tolerance of the compiled result against the reference.
RTOL = {"float32": 1e-4, "float64": 1e-10}

#: Learning rate of the one checked step (the standard SGD setting).
CHECK_LR = 0.01
#: Learning rate of the timed steps: thousands of repeats on one batch must not diverge.
BENCH_LR = 1e-4

ACTIVATION = "relu"
LOSS = "softmax_cross_entropy"
SEED = 0

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
                     X: np.ndarray, y: np.ndarray) -> None:
    """From identical parameters, one SGD step leaves both networks with matching
    parameters and reports matching losses."""
    ref.parameters[...] = net.parameters
    what = f"train_step {list(net.sizes)}"
    loss = net.train_step(X, y, fastwb.SGD(lr=CHECK_LR))
    ref_loss = ref.train_step(X, y, fastwb.SGD(lr=CHECK_LR))
    assert np.isfinite(loss), f"{what}: loss {loss}"
    assert_close(loss, ref_loss, net.dtype.name, f"{what} loss")
    assert_close(net.parameters, ref.parameters, net.dtype.name, f"{what} parameters")
