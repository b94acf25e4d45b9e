"""The same network and the same work in fastwb, its reference and its peers.

The work: a network of ReLU hidden layers and a softmax output, trained with
softmax cross-entropy (mean over the batch) by Adam (lr 1e-3, betas 0.9 and
0.999, eps 1e-8). ``train_step`` is one step on one batch and gives the loss
back; ``predict_one`` gives the class probabilities of one sample. Every
contender starts from the same weights and biases, so one step from them can
be checked against the NumPy reference (``checks.check_outcome``).

Each peer gets the setup that suits it: inputs already in its own array type,
JAX's step compiled with ``jit`` and its parameters donated, PyTorch's Adam
``fused`` on the CPU (its fastest CPU implementation) and predictions under
``torch.inference_mode``, scikit-learn's ``partial_fit`` on a batch of
``batch_size`` rows (exactly one Adam step). A peer library that is not
installed raises ``PeerUnavailable``.

``fastwb-openblas`` is fastwb as it was before issue 15, its large products
and parameter passes left to OpenBLAS's own threads (``openblas_threads``):
not a peer, the yardstick of what cutting them into panels on fastwb's own
pool changed.
"""
from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

import fastwb
from fastwb import _core
from fastwb.bench.cases import make_data, make_network
from fastwb.bench.shapes import Shape

LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8

#: Every contender, in table order; the first is fastwb, the rest its peers.
NAMES = ("fastwb", "reference", "pytorch", "jax", "sklearn")


class PeerUnavailable(RuntimeError):
    """The peer's library is not installed or cannot do the task; the message says why."""


@dataclass(frozen=True)
class Task:
    """One benchmark case: a standard shape, a dtype and a thread count."""

    shape: Shape
    dtype: str
    threads: int

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.shape.sizes

    @property
    def batch(self) -> int:
        return self.shape.batch

    @property
    def label(self) -> str:
        return self.shape.label


@dataclass
class Contender:
    """One library set up for a task: ``train_step()`` returns the loss,
    ``predict_one()`` the probabilities of the task's one sample, and
    ``parameters()`` the current ``[(W (n_in, n_out), b), ...]`` as NumPy arrays."""

    name: str
    version: str
    train_step: Callable[[], float]
    predict_one: Callable[[], np.ndarray]
    parameters: Callable[[], list[tuple[np.ndarray, np.ndarray]]]
    note: str = ""
    #: The eps of the PyTorch-style Adam whose first step this contender's equals.
    check_eps: float = EPS
    #: The process-wide settings its calls need, entered around its check and
    #: each timed round (``timing.interleaved``'s ``settings``).
    settings: Callable[[], AbstractContextManager] = nullcontext


@dataclass
class Problem:
    """The shared starting point: initial parameters, one batch, one sample."""

    task: Task
    params: list[tuple[np.ndarray, np.ndarray]]
    X: np.ndarray
    y: np.ndarray
    x1: np.ndarray

    @classmethod
    def make(cls, task: Task) -> Problem:
        net = make_network(task.sizes, task.dtype)
        X, y = make_data(task.shape, task.dtype)
        params = [(layer.weights.copy(), layer.bias.copy()) for layer in net.layers]
        return cls(task, params, X, y, X[0].copy())


def _fastwb_network(problem: Problem, backend: str, eps: float = EPS) -> Contender:
    task = problem.task
    threads = task.threads if backend == "compiled" else None
    net = make_network(task.sizes, task.dtype, backend, threads)
    for layer, (W, b) in zip(net.layers, problem.params):
        layer.weights[...], layer.bias[...] = W, b
    optimizer = fastwb.Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=eps)
    X, y, x1 = problem.X, problem.y, problem.x1
    return Contender(
        name="fastwb" if backend == "compiled" else "reference", version=fastwb.__version__,
        train_step=lambda: net.train_step(X, y, optimizer),
        predict_one=lambda: net.predict(x1),
        parameters=lambda: [(layer.weights, layer.bias) for layer in net.layers],
        note="" if backend == "compiled" else "fastwb's NumPy oracle")


def make_fastwb(problem: Problem) -> Contender:
    return _fastwb_network(problem, "compiled")


#: A threshold no product or parameter segment reaches.
_NEVER = 1 << 60


@contextmanager
def openblas_threads() -> Iterator[None]:
    """fastwb's route before issue 15 for the calls made inside: every product
    one BLAS call on OpenBLAS's own threads (none cut into panels) and every
    parameter pass on the calling thread (none on fastwb's pool)."""
    previous = _core.tuning(panel_product_min=_NEVER, pass_min_elements=_NEVER)
    try:
        yield
    finally:
        _core.tuning(panel_product_min=previous["panel_product_min"],
                     pass_min_elements=previous["pass_min_elements"])


def make_fastwb_openblas(problem: Problem) -> Contender:
    """fastwb, its products and parameter passes on OpenBLAS's threads
    (``openblas_threads``) whenever it is called under its ``settings``."""
    contender = _fastwb_network(problem, "compiled")
    contender.name, contender.settings = "fastwb-openblas", openblas_threads
    contender.note = "products and parameter passes on OpenBLAS's threads, as before issue 15"
    return contender


def make_reference(problem: Problem, eps: float = EPS) -> Contender:
    """The NumPy reference; ``eps`` other than Adam's 1e-8 only to check a peer
    whose first step differs in it alone (``Contender.check_eps``)."""
    return _fastwb_network(problem, "reference", eps)


def make_pytorch(problem: Problem, module: str = "ReLU", options: dict | None = None) -> Contender:
    """PyTorch's CPU step (fused Adam), ``torch.nn.<module>(**options)`` after each
    hidden layer."""
    try:
        import torch
    except ImportError as error:
        raise PeerUnavailable(f"PyTorch is not installed ({error}); "
                              'pip install "fastwb[peers]"') from None
    torch.set_num_threads(problem.task.threads)
    dtype = getattr(torch, problem.task.dtype)
    layers: list = []
    for W, b in problem.params:
        linear = torch.nn.Linear(*W.shape, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, getattr(torch.nn, module)(**(options or {}))]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                                 fused=True)
    criterion = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(problem.X), torch.from_numpy(problem.y)
    x1 = torch.from_numpy(problem.x1)

    def train_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(X), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def predict_one():
        with torch.inference_mode():
            return torch.softmax(model(x1), dim=-1)

    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    return Contender(
        name="pytorch", version=torch.__version__, train_step=train_step,
        predict_one=lambda: predict_one().numpy(),
        parameters=lambda: [(l.weight.detach().numpy().T, l.bias.detach().numpy())
                            for l in linears],
        note=f"CPU, {torch.get_num_threads()} threads, fused Adam")


def make_jax(problem: Problem) -> Contender:
    if "jax" not in sys.modules and problem.task.threads == 1:
        # XLA reads its thread settings once, when JAX starts
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                                   "=false intra_op_parallelism_threads=1").strip()
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as error:
        raise PeerUnavailable(f"JAX or optax is not installed ({error}); "
                              'pip install "fastwb[peers]"') from None
    if problem.task.dtype == "float64":
        jax.config.update("jax_enable_x64", True)     # JAX makes float32 otherwise
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in problem.params]

    def logits(params, x):
        for W, b in params[:-1]:
            x = jax.nn.relu(x @ W + b)
        W, b = params[-1]
        return x @ W + b

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()

    adam = optax.adam(LR, b1=BETA1, b2=BETA2, eps=EPS)

    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = adam.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    predict = jax.jit(lambda params, x: jax.nn.softmax(logits(params, x)))
    X, y, x1 = jnp.asarray(problem.X), jnp.asarray(problem.y), jnp.asarray(problem.x1)
    held = {"params": params, "state": adam.init(params)}

    def train_step():
        held["params"], held["state"], loss = step(held["params"], held["state"], X, y)
        return loss.block_until_ready()

    return Contender(
        name="jax", version=jax.__version__, train_step=train_step,
        predict_one=lambda: np.asarray(predict(held["params"], x1).block_until_ready()),
        parameters=lambda: [(np.asarray(W), np.asarray(b)) for W, b in held["params"]],
        note=f"jit, donated buffers, optax {optax.__version__}")


def make_sklearn(problem: Problem) -> Contender:
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier
    except ImportError as error:
        raise PeerUnavailable(f"scikit-learn is not installed ({error}); "
                              'pip install "fastwb[peers]"') from None
    task = problem.task
    if task.sizes[-1] < 3:
        raise PeerUnavailable("scikit-learn's MLPClassifier uses a logistic output, "
                              "not softmax, for fewer than 3 classes")
    clf = MLPClassifier(hidden_layer_sizes=task.sizes[1:-1], activation="relu", solver="adam",
                        alpha=0.0, batch_size=task.batch, learning_rate_init=LR, beta_1=BETA1,
                        beta_2=BETA2, epsilon=EPS, shuffle=False)
    X, y, x1 = problem.X, problem.y, problem.x1[None]
    classes = np.arange(task.sizes[-1])
    clf.partial_fit(X, y, classes=classes)       # the only way to make its parameters
    for W, b, (W0, b0) in zip(clf.coefs_, clf.intercepts_, problem.params):
        W[...], b[...] = W0, b0
    del clf._optimizer        # so the next partial_fit starts a fresh Adam, as the others do

    def train_step() -> float:
        clf.partial_fit(X, y)
        return clf.loss_

    return Contender(
        name="sklearn", version=sklearn.__version__, train_step=train_step,
        predict_one=lambda: clf.predict_proba(x1)[0],
        parameters=lambda: list(zip(clf.coefs_, clf.intercepts_)),
        note="MLPClassifier.partial_fit, one batch",
        # its eps sits inside the bias correction: eps / sqrt(1 - beta2^t) in PyTorch's terms
        check_eps=EPS / np.sqrt(1 - BETA2))


MAKERS: dict[str, Callable[[Problem], Contender]] = {
    "fastwb": make_fastwb, "fastwb-openblas": make_fastwb_openblas,
    "reference": make_reference, "pytorch": make_pytorch, "jax": make_jax,
    "sklearn": make_sklearn}
