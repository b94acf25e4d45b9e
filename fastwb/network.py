"""``Network``: a stack of dense layers, its parameters, and the public calls."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from fastwb import _validation
from fastwb._core import Engine
from fastwb._layout import layer_views, n_parameters
from fastwb.functions import (OUTPUT_ACTIVATION, check_output_activation, resolve_activation,
                              resolve_loss)
from fastwb.initializers import initial_parameters
from fastwb.layers import Dense
from fastwb.optimizers import Optimizer
from fastwb.reference import ReferenceEngine

BACKENDS = ("compiled", "reference")


def _resolve_dtype(dtype) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {resolved}")
    return resolved


class Network:
    """A dense neural network: weights, biases, a loss, and compiled training.

    Parameters
    ----------
    sizes : sequence of int, or sequence of Dense
        Layer widths ``[n_in, h1, ..., n_out]``, or the layers themselves to
        give each its own activation.
    activation : str, default "relu"
        Activation of the hidden layers (and of any ``Dense`` whose activation is None).
    output_activation : str or None
        Activation of the output layer; by default the one the loss implies:
        softmax for softmax cross-entropy, sigmoid for binary cross-entropy,
        identity for MSE.
    loss : {"mse", "binary_cross_entropy", "softmax_cross_entropy"}
        Minimised by ``train_step``; ``loss(X, y)`` reports its batch mean.
    dtype : {"float32", "float64"}
        Dtype of parameters, computation and outputs. Input of other real
        dtypes is converted.
    seed : int or None
        Seed of the initial weights (He-normal for the ReLU family,
        Glorot-uniform otherwise; zero biases).
    n_threads : int or None
        Threads of the compiled elementwise kernels. None follows
        ``OMP_NUM_THREADS`` (and threadpoolctl) at each call; -1 is every core.
        Matrix products run in the BLAS library, whose own thread pool is set
        with its own controls (threadpoolctl, ``OPENBLAS_NUM_THREADS``).
    backend : {"compiled", "reference"}
        "reference" runs the same network on the pure-NumPy oracle.

    Examples
    --------
    >>> import numpy as np, fastwb
    >>> net = fastwb.Network([4, 8, 3], loss="softmax_cross_entropy", seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    >>> net.predict(X).shape
    (5, 3)
    >>> loss = net.train_step(X, np.array([0, 1, 2, 1, 0]), fastwb.SGD(lr=0.1))
    >>> net.layers[0].weights.shape, net.layers[0].bias.shape
    ((4, 8), (8,))
    """

    def __init__(self, sizes: Sequence, activation: str = "relu",
                 output_activation: str | None = None, loss: str = "mse",
                 dtype="float32", seed: int | None = None, n_threads: int | None = None,
                 backend: str = "compiled"):
        self.loss_name = resolve_loss(loss)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        activation = resolve_activation(activation)     # checked even with no hidden layer
        if output_activation is not None:
            output_activation = resolve_activation(output_activation, output=True)
        layers = self._layers_from(sizes)
        widths = [layers[0].n_in] + [layer.n_out for layer in layers]
        widths = _validation.check_sizes(widths)
        activations = []
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            name = layer.activation
            if name is None and last:
                name = output_activation or OUTPUT_ACTIVATION[self.loss_name]
            elif name is None:
                name = activation
            activations.append(resolve_activation(name, output=last))
        check_output_activation(self.loss_name, activations[-1], widths[-1])

        self.dtype = _resolve_dtype(dtype)
        # parameters, gradients and a copy the user may take
        _validation.check_allocation(3 * n_parameters(widths) * self.dtype.itemsize,
                                     "the parameters and gradients of this network")
        self._n_threads = _validation.check_n_threads(n_threads)
        self._parameters = initial_parameters(widths, activations, self.dtype, seed)
        for layer, (W, b), name in zip(layers, layer_views(self._parameters, widths), activations):
            layer._bind(W, b, name)
        self.sizes = tuple(widths)
        self.activations = tuple(activations)
        self.backend = backend
        self._layers = tuple(layers)
        if backend == "compiled":
            self._engine = Engine(widths, activations, self.loss_name, self._parameters,
                                  self._n_threads)
        else:
            self._engine = ReferenceEngine(widths, activations, self.loss_name, self._parameters)

    @staticmethod
    def _layers_from(sizes) -> list:
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of ints or of Dense layers, got {sizes!r}")
        items = list(sizes)
        if items and all(isinstance(item, Dense) for item in items):
            for before, after in zip(items[:-1], items[1:]):
                if before.n_out != after.n_in:
                    raise ValueError(f"{before!r} outputs {before.n_out} values but the next "
                                     f"layer {after!r} takes {after.n_in}")
            return items
        if any(isinstance(item, Dense) for item in items):
            raise TypeError("sizes must be all ints or all Dense layers, not a mix")
        widths = _validation.check_sizes(items)
        return [Dense(k, m) for k, m in zip(widths[:-1], widths[1:])]

    # --- parameters ---------------------------------------------------------------

    @property
    def layers(self) -> tuple:
        """The ``Dense`` layers, input side first."""
        return self._layers

    @property
    def parameters(self) -> np.ndarray:
        """All weights and biases in one flat, writable array (layer by layer, W then b)."""
        return self._parameters

    @parameters.setter
    def parameters(self, value) -> None:
        self._parameters[...] = _validation.check_assignment(
            value, self._parameters.shape, self.dtype, "parameters")

    @property
    def n_parameters(self) -> int:
        """Number of weights plus biases."""
        return self._parameters.size

    @property
    def n_threads(self) -> int | None:
        """Threads of the compiled kernels (None: follow OpenMP's setting)."""
        return self._n_threads or None

    # --- the calls ----------------------------------------------------------------

    def predict(self, X) -> np.ndarray:
        """Output-layer activations for a batch ``(n, n_in)`` or one sample ``(n_in,)``.

        Returns shape ``(n, n_out)``, or ``(n_out,)`` for one sample: class
        probabilities for softmax cross-entropy, sigmoid probabilities for binary
        cross-entropy, the regression outputs for MSE.
        """
        return self._engine.predict(X)

    def loss(self, X, y) -> float:
        """Mean loss over the batch.

        ``y`` is a float array ``(n, n_out)`` (``(n,)`` when ``n_out`` is 1); for
        softmax cross-entropy also integer class labels ``(n,)``. MSE averages
        over samples and outputs, as PyTorch and Keras do.
        """
        return self._engine.loss(X, y)

    def gradients(self, X, y) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(dW, db)`` of the mean loss for every layer, shaped like ``(weights, bias)``."""
        return layer_views(self._engine.gradients(X, y), self.sizes)

    def train_step(self, X, y, optimizer: Optimizer) -> float:
        """One optimisation step on the batch (X, y); returns the loss before the update.

        Forward pass, loss, backpropagation and update run in one compiled call.
        A non-finite loss raises ``FloatingPointError`` and leaves the parameters
        as they were.
        """
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastwb optimizer such as fastwb.SGD, "
                            f"got {optimizer!r}")
        loss = optimizer._train_step(self._engine, X, y)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the loss is {loss}, so the step was not applied: the parameters hold "
                "NaN or infinity, or training diverged (try a smaller learning rate)")
        return loss

    def __repr__(self) -> str:
        return (f"Network({list(self.sizes)}, activations={list(self.activations)}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r}, backend={self.backend!r})")
