"""The pure-NumPy reference: fastwb's math, written to be read.

This module is the specification the compiled core is tested against, and the
engine behind ``Network(..., backend="reference")``. It favours the plainest
NumPy over speed. Notation: layer l maps ``A[l-1]`` (n x k) to
``A[l] = f(Z[l])`` with ``Z[l] = A[l-1] @ W[l] + b[l]``; ``D[l] = dL/dZ[l]``.
"""
from __future__ import annotations

import numpy as np

from fastwb import _validation
from fastwb._layout import layer_views

#: Slope of leaky_relu for negative inputs (PyTorch's and Keras' default).
LEAKY_SLOPE = 0.01


# --- activations ------------------------------------------------------------

def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), taking exp only of -|z| so it never overflows."""
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1 / (1 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1 + e)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax; subtracting the row maximum keeps exp finite."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logsumexp(z: np.ndarray) -> np.ndarray:
    """Row-wise log(sum(exp(z))) without overflow."""
    top = z.max(axis=1)
    return top + np.log(np.exp(z - top[:, None]).sum(axis=1))


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """f(z) for the activation called ``name``."""
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z < 0, LEAKY_SLOPE * z, z)
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        return softmax(z)
    raise ValueError(f"unknown activation {name!r}")


def derivative(name: str, a: np.ndarray) -> np.ndarray:
    """f'(z) written through the activation a = f(z) (softmax is handled by its loss)."""
    if name == "identity":
        return np.ones_like(a)
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "leaky_relu":
        return np.where(a > 0, 1, LEAKY_SLOPE).astype(a.dtype)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    raise ValueError(f"no elementwise derivative for activation {name!r}")


# --- losses -------------------------------------------------------------------

def loss_and_delta(loss: str, output_activation: str, out: np.ndarray, y: np.ndarray):
    """Mean loss over the batch and D = dL/dZ of the output layer.

    ``out`` holds the logits Z for the two cross-entropies and the activations
    A = f(Z) for MSE. ``y`` holds float targets (n x m), or integer class labels
    (n,) for softmax cross-entropy.

    * mse: mean over samples and outputs of (a - y)^2;
    * binary_cross_entropy: mean of log(1 + e^z) - z y, the logit form of
      -y log(sigmoid z) - (1 - y) log(1 - sigmoid z);
    * softmax_cross_entropy: mean over samples of sum_j y_j (logsumexp(z) - z_j).
    """
    n, m = out.shape
    if loss == "mse":
        diff = out - y
        value = np.mean(np.square(diff, dtype=np.float64))
        delta = (2 / (n * m)) * diff * derivative(output_activation, out)
    elif loss == "binary_cross_entropy":
        value = np.mean(np.logaddexp(0, out) - out * y, dtype=np.float64)
        delta = (sigmoid(out) - y) / (n * m)
    elif loss == "softmax_cross_entropy":
        if y.ndim == 1:
            y = np.eye(m, dtype=out.dtype)[y]        # labels to one-hot rows
        lse = logsumexp(out)
        value = np.mean(np.sum(y * (lse[:, None] - out), axis=1), dtype=np.float64)
        delta = (softmax(out) * y.sum(axis=1, keepdims=True) - y) / n
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return float(value), delta.astype(out.dtype, copy=False)


# --- the network ----------------------------------------------------------------

def forward(layers, activations, X, logits_out=False):
    """Every layer's output A[1..L] for the input X.

    With ``logits_out`` the last entry is the output layer's Z instead of its
    activation (the cross-entropy losses take logits).
    """
    outputs, a = [], X
    for l, ((W, b), name) in enumerate(zip(layers, activations)):
        z = a @ W + b
        last = l == len(layers) - 1
        a = z if (last and logits_out) else activate(name, z)
        outputs.append(a)
    return outputs


def backward(layers, activations, X, outputs, delta):
    """(dW, db) for every layer, given D of the output layer."""
    grads = [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        a_prev = X if l == 0 else outputs[l - 1]
        W, _ = layers[l]
        grads[l] = (a_prev.T @ delta, delta.sum(axis=0))      # dW = A^T D, db = 1^T D
        if l > 0:
            delta = (delta @ W.T) * derivative(activations[l - 1], a_prev)
    return grads


class ReferenceEngine:
    """Runs a network on NumPy; the same calls as ``fastwb._core.Engine``."""

    def __init__(self, sizes, activations, loss, params):
        self.sizes = list(sizes)
        self.activations = list(activations)
        self.loss_name = loss
        self.params = params
        self.grads = np.zeros_like(params)
        self.dtype = params.dtype
        self._layers = layer_views(params, self.sizes)
        self._grad_layers = layer_views(self.grads, self.sizes)

    def predict(self, X):
        """Output-layer activations; 1-D for a single 1-D sample."""
        x, single = _validation.check_X(X, self.sizes[0], self.dtype)
        out = forward(self._layers, self.activations, x)[-1]
        return out[0] if single else out

    def _loss_and_gradients(self, X, y, want_gradients):
        x, single = _validation.check_X(X, self.sizes[0], self.dtype)
        y = _validation.check_y(y, x.shape[0], self.sizes[-1], self.loss_name, self.dtype, single)
        logits = self.loss_name != "mse"
        outputs = forward(self._layers, self.activations, x, logits_out=logits)
        value, delta = loss_and_delta(self.loss_name, self.activations[-1], outputs[-1], y)
        if want_gradients:
            grads = backward(self._layers, self.activations, x, outputs, delta)
            for (gW, gb), (dW, db) in zip(self._grad_layers, grads):
                gW[...] = dW
                gb[...] = db
        return value

    def loss(self, X, y):
        """Mean loss on (X, y)."""
        return self._loss_and_gradients(X, y, want_gradients=False)

    def gradients(self, X, y):
        """Flat gradient of the mean loss, laid out like the parameters."""
        self._loss_and_gradients(X, y, want_gradients=True)
        return self.grads.copy()

    def train_step_sgd(self, X, y, lr):
        """One SGD step; returns the loss before the update (skipped if it is not finite)."""
        _validation.check_learning_rate(lr, self.dtype)
        value = self._loss_and_gradients(X, y, want_gradients=True)
        if np.isfinite(value):
            self.params -= self.dtype.type(lr) * self.grads
        return value
