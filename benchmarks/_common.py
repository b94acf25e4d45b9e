"""Helpers shared by the pytest-benchmark suite, ``compare.py`` and ``scaling.py``.

They measure the same cases and hold the compiled backend to the same
correctness bar against the NumPy reference, so these live in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

import fastwb
from fastwb.bench.timing import gemm_rate  # noqa: F401  (digits.py imports it from here)

DTYPES = ("float32", "float64")
BACKENDS = ("compiled", "reference")
#: ``train_step`` is one SGD step; ``adam_step`` one Adam step.
OPS = ("predict", "train_step", "adam_step")
OPTIMIZER_OF = {"train_step": "sgd", "adam_step": "adam"}
#: The optimizers of the measured steps.
OPTIMIZERS = tuple(OPTIMIZER_OF.values())

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


def thread_counts(cores: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, ... below ``cores`` (default: ``os.cpu_count()``), then ``cores``."""
    cores = cores or os.cpu_count() or 1
    return tuple(1 << i for i in range(cores.bit_length()) if 1 << i < cores) + (cores,)


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
