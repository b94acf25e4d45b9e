"""The pure-NumPy reference: fastwb's math, written to be read.

This module is the specification the compiled core is tested against, and the
engine behind ``Network(..., backend="reference")``. It favours the plainest
NumPy over speed. Notation: layer l maps ``A[l-1]`` (n x k) to
``A[l] = f(Z[l])`` with ``Z[l] = A[l-1] @ W[l] + b[l]``; ``D[l] = dL/dZ[l]``.
A sparse input ``X`` stays a scipy.sparse CSR matrix: ``X @ W`` and
``X.T @ D`` are scipy's sparse-times-dense products.

Subnormal numbers: the reference keeps them, as NumPy does. The compiled core
by default flushes them to zero (``fastwb.set_flush_denormals``), so the two
differ wherever a subnormal value occurs (a product or an Adam moment below
1.2e-38 in float32, 2.2e-308 in float64), and agree to the usual tolerances
elsewhere; with flushing off they follow the same arithmetic.
"""
from __future__ import annotations

import signal
from collections.abc import Sequence

import numpy as np
from scipy import special

from fastwb import _random, _validation
from fastwb._layout import layer_views, n_parameters, offsets
from fastwb._sparse import SparseRows
from fastwb.functions import (ELU_ALPHA, FUSED_LOSSES, HUBER_DELTA, LEAKY_SLOPE, SELU_ALPHA,
                              SELU_SCALE, FitStatus)

#: The activations whose derivative needs z, not only a = f(z).
NEEDS_Z = ("gelu", "swish")


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


def gaussian_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z) = erfc(-z / sqrt 2) / 2; erfc keeps the left tail's relative accuracy."""
    return (0.5 * special.erfc(-z / np.sqrt(2))).astype(z.dtype, copy=False)


def gaussian_pdf(z: np.ndarray) -> np.ndarray:
    """phi(z) = exp(-z^2 / 2) / sqrt(2 pi)."""
    return (np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)).astype(z.dtype, copy=False)


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
    if name in ("elu", "selu"):      # alpha (e^z - 1) for z <= 0, through expm1
        alpha, scale = (ELU_ALPHA, 1.0) if name == "elu" else (SELU_ALPHA, SELU_SCALE)
        negative = alpha * np.expm1(np.minimum(z, 0))
        return (scale * np.where(z > 0, z, negative)).astype(z.dtype, copy=False)
    if name == "softplus":
        return np.logaddexp(0, z)    # log(1 + e^z) without overflow
    if name == "gelu":
        return z * gaussian_cdf(z)
    if name == "swish":
        return z * sigmoid(z)
    if name == "softmax":
        return softmax(z)
    if name == "exp":
        with np.errstate(over="ignore"):    # inf beyond the dtype's range, as compiled
            return np.exp(z)
    raise ValueError(f"unknown activation {name!r}")


def derivative(name: str, a: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
    """f'(z) written through the activation a = f(z), or for ``NEEDS_Z`` through
    z itself (softmax and exp are handled by their losses)."""
    if name in NEEDS_Z and z is None:
        raise ValueError(f"the derivative of {name} needs the pre-activation z")
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
    if name == "elu":               # e^z = a + 1 for z <= 0
        return np.where(a > 0, 1, a + ELU_ALPHA).astype(a.dtype)
    if name == "selu":              # scale alpha e^z = a + scale alpha for z <= 0
        return np.where(a > 0, SELU_SCALE, a + SELU_SCALE * SELU_ALPHA).astype(a.dtype)
    if name == "softplus":          # sigmoid(z) = 1 - e^-a
        return -np.expm1(-a)
    if name == "gelu":              # Phi(z) + z phi(z)
        assert z is not None
        return gaussian_cdf(z) + z * gaussian_pdf(z)
    if name == "swish":             # s + z s (1 - s), s = sigmoid(z)
        assert z is not None
        s = sigmoid(z)
        return s * (1 + z * (1 - s))
    raise ValueError(f"no elementwise derivative for activation {name!r}")


# --- losses -------------------------------------------------------------------

def loss_and_delta(loss: str, output_activation: str, out: np.ndarray, y: np.ndarray,
                   sample_weight: np.ndarray | None = None, huber_delta: float = HUBER_DELTA,
                   z: np.ndarray | None = None):
    """Mean loss over the batch and D = dL/dZ of the output layer.

    ``out`` holds Z for the fused losses (the two cross-entropies and Poisson)
    and the activations A = f(Z) for MSE, Huber and MAE (``z``, the output
    layer's Z, is needed then for the activations in ``NEEDS_Z``). ``y`` holds
    float targets (n x m), or integer class labels (n,) for softmax cross-entropy.

    * mse: mean over samples and outputs of (a - y)^2;
    * binary_cross_entropy: mean of log(1 + e^z) - z y, the logit form of
      -y log(sigmoid z) - (1 - y) log(1 - sigmoid z);
    * softmax_cross_entropy: mean over samples of sum_j y_j (logsumexp(z) - z_j);
    * poisson: mean of half the Poisson deviance of the mean mu = e^z (log link),
      y log(y / mu) - y + mu (0 at mu = y), as y (log y - z) + (e^z - y);
    * huber: mean of 0.5 x^2 for |x| <= huber_delta and
      huber_delta (|x| - huber_delta / 2) beyond, x = a - y (PyTorch's HuberLoss);
    * mae: mean of |a - y|, with the subgradient 0 at a = y.

    With ``sample_weight`` w the mean over samples is sum_i w_i l_i / sum_i w_i
    (0, with no gradient, when every weight is 0).
    """
    n, m = out.shape
    per_row = 1 if loss == "softmax_cross_entropy" else m
    w = None if sample_weight is None else sample_weight.astype(np.float64)
    if w is not None and w.sum() == 0:
        return 0.0, np.zeros_like(out)
    denominator = (n if w is None else w.sum()) * per_row
    if loss == "mse":
        diff = out - y
        rows = np.sum(np.square(diff, dtype=np.float64), axis=1)
        grad = 2 * diff * derivative(output_activation, out, z)
    elif loss == "binary_cross_entropy":
        rows = np.sum(np.logaddexp(0, out) - out * y, axis=1, dtype=np.float64)
        grad = sigmoid(out) - y
    elif loss == "softmax_cross_entropy":
        if y.ndim == 1:
            y = np.eye(m, dtype=out.dtype)[y]        # labels to one-hot rows
        lse = logsumexp(out)
        rows = np.sum(y * (lse[:, None] - out), axis=1, dtype=np.float64)
        grad = softmax(out) * y.sum(axis=1, keepdims=True) - y
    elif loss == "poisson":
        log_mu, t = out.astype(np.float64), y.astype(np.float64)
        log_t = np.log(t, out=np.zeros_like(t), where=t > 0)      # y log y = 0 at y = 0
        with np.errstate(over="ignore"):    # inf beyond the dtype's range: divergence
            rows = np.sum(np.exp(log_mu) - t + t * (log_t - log_mu), axis=1)
            grad = np.exp(out) - y
    elif loss == "huber":
        diff = out - y
        r = np.abs(diff.astype(np.float64))
        inside = r <= huber_delta
        rows = np.sum(np.where(inside, 0.5 * r * r, huber_delta * (r - 0.5 * huber_delta)),
                      axis=1)
        linear = out.dtype.type(huber_delta) * np.sign(diff)
        grad = np.where(inside, diff, linear) * derivative(output_activation, out, z)
    elif loss == "mae":
        diff = out - y
        rows = np.sum(np.abs(diff), axis=1, dtype=np.float64)
        grad = np.sign(diff) * derivative(output_activation, out, z)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    if w is None:
        return float(np.sum(rows) / denominator), (grad / denominator).astype(out.dtype)
    delta = grad * (w / denominator).astype(out.dtype)[:, None]
    return float(np.sum(w * rows) / denominator), delta.astype(out.dtype, copy=False)


# --- the network ----------------------------------------------------------------

def forward(layers, activations, X, logits_out=False, dropout=(), pre=None):
    """Every layer's output A[1..L] for the input X; each layer's Z is appended
    to the list ``pre`` when one is given.

    With ``logits_out`` the last entry is the output layer's Z instead of its
    activation (the fused losses take Z). ``dropout`` pairs each
    layer with (rate, keep mask) or None: kept units are scaled by 1 / (1 - rate)
    (inverted dropout), dropped ones are 0.
    """
    outputs, a = [], X
    for l, ((W, b), name) in enumerate(zip(layers, activations)):
        z = a @ W + b
        if pre is not None:
            pre.append(z)
        last = l == len(layers) - 1
        a = z if (last and logits_out) else activate(name, z)
        if l < len(dropout) and dropout[l] is not None:
            rate, keep = dropout[l]
            a = np.where(keep, a * a.dtype.type(1 / (1 - rate)), 0).astype(a.dtype)
        outputs.append(a)
    return outputs


def backward(layers, activations, X, outputs, delta, dropout=(), pre=None):
    """(dW, db) for every layer, given D of the output layer (and forward's
    dropout, and its ``pre``: each layer's Z, needed for ``NEEDS_Z``)."""
    grads: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        a_prev = X if l == 0 else outputs[l - 1]
        W, _ = layers[l]
        grads[l] = (a_prev.T @ delta, delta.sum(axis=0))      # dW = A^T D, db = 1^T D
        if l > 0:
            z = None if pre is None else pre[l - 1]
            upstream = delta @ W.T
            dropped = dropout[l - 1] if l - 1 < len(dropout) else None
            if dropped is None:
                delta = upstream * derivative(activations[l - 1], a_prev, z)
            else:           # through the mask, then f' of the activation before dropout
                rate, keep = dropped
                scale = a_prev.dtype.type(1 / (1 - rate))
                before = a_prev * a_prev.dtype.type(1 - rate)
                delta = (np.where(keep, upstream * scale, 0)
                         * derivative(activations[l - 1], before, z))
    return grads


# --- penalties and optimizers ---------------------------------------------------------

def penalty_coefficients(sizes, l1, l2, regularize_biases):
    """Per-parameter (l1, l2, regularized) arrays laid out like the flat buffer:
    each layer's weights take its coefficients, its biases only when
    ``regularize_biases``."""
    n = n_parameters(sizes)
    c1, c2, regularized = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for l, (w, b, m) in enumerate(zip(*offsets(sizes), sizes[1:])):
        stop = b + m if regularize_biases else b
        c1[w:stop], c2[w:stop], regularized[w:stop] = l1[l], l2[l], True
    return c1, c2, regularized


def penalty(params, c1, c2):
    """l1 sum|p| + l2 sum p^2, coefficient by coefficient."""
    p = params.astype(np.float64)
    return float(np.sum(c1 * np.abs(p)) + np.sum(c2 * p * p))


def penalty_gradient(params, c1, c2):
    """d penalty / d p = l1 sign(p) + 2 l2 p."""
    dtype = params.dtype
    return (2 * c2).astype(dtype) * params + c1.astype(dtype) * np.sign(params)


def effective_gradient(params, grads, coefficients, clip_norm, clip_value):
    """What the optimizer sees: loss + penalty gradient (``coefficients`` are
    (c1, c2), or None without penalties), clipped by value, then by global norm
    with PyTorch's factor clip_norm / (norm + 1e-6)."""
    g = grads if coefficients is None else grads + penalty_gradient(params, *coefficients)
    if clip_value > 0:
        g = np.clip(g, -clip_value, clip_value).astype(params.dtype)
    if clip_norm > 0:
        norm = np.sqrt(np.sum(np.square(g, dtype=np.float64)))
        if norm > clip_norm:
            g = g * params.dtype.type(clip_norm / (norm + 1e-6))
    return g


def optimizer_update(kind, settings, params, g, s1, s2, step, lr, decayed):
    """One update of ``params`` (and the state s1, s2) in place with the effective
    gradient g. ``settings`` maps HYPERPARAMETERS names to values; ``decayed``
    marks the parameters AdamW's decoupled decay shrinks."""
    t = params.dtype.type
    if settings["weight_decay"]:
        params *= np.where(decayed, 1 - lr * settings["weight_decay"], 1).astype(params.dtype)
    if kind == "sgd" and settings["momentum"] == 0:
        step_dir, step_size = g, lr
    elif kind == "sgd":
        mu = t(settings["momentum"])
        s1[...] = mu * s1 + g
        step_dir, step_size = (g + mu * s1 if settings["nesterov"] else s1), lr
    elif kind in ("rmsprop", "adagrad"):
        if kind == "rmsprop":
            s1[...] = t(settings["rho"]) * s1 + t(1 - settings["rho"]) * g * g
        else:
            s1[...] = s1 + g * g
        step_dir, step_size = g / (np.sqrt(s1) + t(settings["eps"])), lr
    elif kind == "adam":
        b1, b2 = settings["beta1"], settings["beta2"]
        s1[...] = t(b1) * s1 + t(1 - b1) * g
        s2[...] = t(b2) * s2 + t(1 - b2) * g * g
        bias2 = t(1 / np.sqrt(1 - b2 ** (step + 1)))
        step_dir = s1 / (np.sqrt(s2) * bias2 + t(settings["eps"]))
        step_size = lr / (1 - b1 ** (step + 1))
    else:
        raise ValueError(f"unknown optimizer {kind!r}")
    params -= t(step_size) * step_dir


# --- statistics of the weights and biases --------------------------------------------

def layer_statistics(params, sizes, grads=None, previous=None, initial=None):
    """What ``fastwb._stats.layer_statistics`` computes, in plain NumPy: per layer
    and for W (row 0) and b (row 1) the mean, std, min, max, L2 norm, the norm
    of ``grads`` and the distances to ``previous`` and ``initial`` (NaN where
    None); and the correlation across units of the mean incoming weight and the bias."""
    def norm(a):
        return np.nan if a is None else float(np.linalg.norm(a.astype(np.float64).ravel()))

    stats = np.empty((len(sizes) - 1, 2, 8))
    correlation = np.empty(len(sizes) - 1)
    views = [layer_views(a, sizes) if a is not None else [None] * (len(sizes) - 1)
             for a in (params, grads, previous, initial)]
    for l, ((W, b), g, prev, init) in enumerate(zip(*views)):
        for i, values in enumerate((W, b)):
            v = values.astype(np.float64)
            stats[l, i] = (v.mean(), v.std(), v.min(), v.max(), norm(v),
                           norm(None if g is None else g[i]),
                           norm(None if prev is None else v - prev[i]),
                           norm(None if init is None else v - init[i]))
        unit_weight, bias = W.astype(np.float64).mean(axis=0), b.astype(np.float64)
        constant = len(bias) < 2 or np.ptp(unit_weight) == 0 or np.ptp(bias) == 0
        correlation[l] = np.nan if constant else np.corrcoef(unit_weight, bias)[0, 1]
    return stats, correlation


def activation_statistics(layers, activations, X):
    """Per layer: the fraction of dead units (ReLU layers only: output 0 for
    every row of X; NaN for other activations) and the mean activation."""
    dead, mean = [], []
    for a, name in zip(forward(layers, activations, X), activations):
        dead.append(float(np.mean(np.all(a <= 0, axis=0))) if name == "relu" else np.nan)
        mean.append(float(np.mean(a, dtype=np.float64)))
    return np.array(dead), np.array(mean)


class ReferenceEngine:
    """Runs a network on NumPy; the same calls as ``fastwb._core.Engine``."""

    def __init__(self, sizes, activations, loss, params, l1=None, l2=None,
                 regularize_biases=False, dropout=None, seed=0, huber_delta=HUBER_DELTA):
        self.sizes = list(sizes)
        self.activations = list(activations)
        self.loss_name = loss
        self.huber_delta = huber_delta
        self.params = params
        self.grads = np.zeros_like(params)
        self._holds_training_gradient = False
        self.dtype = params.dtype
        n_layers = len(self.sizes) - 1
        self.dropout = [0.0] * n_layers if dropout is None else list(dropout)
        self.seed = seed
        self._regularize_biases = regularize_biases
        self.set_penalties([0.0] * n_layers if l1 is None else l1,
                           [0.0] * n_layers if l2 is None else l2)
        self._layers = layer_views(params, self.sizes)
        self._grad_layers = layer_views(self.grads, self.sizes)

    def set_penalties(self, l1, l2) -> None:
        """New per-layer penalty coefficients, as ``Engine.set_penalties``."""
        self._c1, self._c2, self._decayed = penalty_coefficients(
            self.sizes, l1, l2, self._regularize_biases)
        self._regularized = bool(self._c1.any() or self._c2.any())

    def _input(self, X):
        """X checked, as an array or (sparse X) a scipy.sparse CSR matrix, and
        whether it was one sample."""
        x, single = _validation.check_X(X, self.sizes[0], self.dtype)
        return (x.matrix if isinstance(x, SparseRows) else x), single

    def predict(self, X, logits=False):
        """Output-layer activations (with ``logits``: its z); 1-D for a single 1-D sample."""
        x, single = self._input(X)
        out = forward(self._layers, self.activations, x, logits_out=logits)[-1]
        return out[0] if single else out

    def _checked(self, X, y, sample_weight) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x, single = self._input(X)
        y = _validation.check_y(y, x.shape[0], self.sizes[-1], self.loss_name, self.dtype, single)
        if sample_weight is not None:
            sample_weight = _validation.check_sample_weight(sample_weight, x.shape[0], self.dtype)
        return x, y, sample_weight

    def _loss_and_gradients(self, x, y, sample_weight, want_gradients, step=None, mask_row0=0):
        """Loss plus penalty; with ``want_gradients`` the gradient in self.grads.
        ``step`` (training) turns dropout on with that step's masks, those of rows
        ``mask_row0``.. of its batch."""
        dropout: Sequence[tuple[float, np.ndarray] | None] = ()
        if step is not None:
            dropout = [None if rate == 0 else
                       (rate, _random.dropout_keep(self.seed, l, step, (x.shape[0], m), rate,
                                                   mask_row0))
                       for l, (rate, m) in enumerate(zip(self.dropout, self.sizes[1:]))]
        logits = self.loss_name in FUSED_LOSSES
        pre: list[np.ndarray] = []
        outputs = forward(self._layers, self.activations, x, logits, dropout, pre)
        value, delta = loss_and_delta(self.loss_name, self.activations[-1], outputs[-1], y,
                                      sample_weight, self.huber_delta, pre[-1])
        if self._regularized:
            value += penalty(self.params, self._c1, self._c2)
        if want_gradients:
            grads = backward(self._layers, self.activations, x, outputs, delta, dropout, pre)
            for (gW, gb), (dW, db) in zip(self._grad_layers, grads):
                gW[...] = dW
                gb[...] = db
        return value

    def penalty(self):
        """The penalty of the parameters."""
        return penalty(self.params, self._c1, self._c2) if self._regularized else 0.0

    def activation_statistics(self, X):
        """As ``Engine.activation_statistics``."""
        x, _ = self._input(X)
        return activation_statistics(self._layers, self.activations,
                                     x if x.ndim == 2 else x.reshape(1, -1))

    def loss(self, X, y, sample_weight=None):
        """Mean loss on (X, y) plus the penalty."""
        return self._loss_and_gradients(*self._checked(X, y, sample_weight), False)

    def gradients(self, X, y, sample_weight=None):
        """Flat gradient of ``loss``, laid out like the parameters."""
        self._holds_training_gradient = False
        self._loss_and_gradients(*self._checked(X, y, sample_weight), True)
        if self._regularized:
            return self.grads + penalty_gradient(self.params, self._c1, self._c2)
        return self.grads.copy()

    def loss_and_gradients(self, X, y, sample_weight=None):
        """``(loss, gradient)`` as ``Engine.loss_and_gradients``."""
        x, t, sw = self._checked(X, y, sample_weight)
        return self.loss(x, t, sw), self.gradients(x, t, sw)

    def step_gradient(self, X, y, sample_weight, rule, mask_row0=0):
        """``(loss, gradient)`` in training mode, as ``Engine.step_gradient``."""
        if mask_row0 < 0:
            raise ValueError(f"mask_row0 must be at least 0, got {mask_row0}")
        x, t, sw = self._checked(X, y, sample_weight)
        self._holds_training_gradient = False
        value = self._loss_and_gradients(x, t, sw, True, int(rule.counters[0]), mask_row0)
        grads = self.grads.copy()
        if self._regularized:
            grads += penalty_gradient(self.params, self._c1, self._c2)
        return value, grads

    def _step(self, x, y, sample_weight, rule, lr, verify=False):
        """One step of ``rule``; returns (loss before it, FitStatus). Nothing
        changes when the loss is not finite, or (``verify``) when the update
        would leave a parameter non-finite; else the step counter counts it."""
        step = int(rule.counters[0])
        self._holds_training_gradient = False
        value = self._loss_and_gradients(x, y, sample_weight, True, step)
        if not np.isfinite(value):
            return value, FitStatus.DIVERGED
        self._holds_training_gradient = True
        if not self._update(self.grads, self._regularized, rule, lr, verify):
            return value, FitStatus.OVERFLOW
        return value, FitStatus.DONE

    def _update(self, grads, penalize, rule, lr, verify=False) -> bool:
        """The update from ``grads``, adding the penalty's gradient when ``penalize``;
        with ``verify`` first on copies, making it only when every parameter
        stays finite. Returns whether it was made (and counted)."""
        settings, step = rule.settings, int(rule.counters[0])
        s1, s2 = (list(rule.state.values()) + [None, None])[:2]
        with np.errstate(over="ignore", invalid="ignore"):    # checked below, when verify
            g = effective_gradient(self.params, grads,
                                   (self._c1, self._c2) if penalize else None,
                                   settings["clip_norm"], settings["clip_value"])
        if verify:
            trial = self.params.copy()
            with np.errstate(over="ignore", invalid="ignore"):
                optimizer_update(rule.kind, settings, trial, g,
                                 None if s1 is None else s1.copy(),
                                 None if s2 is None else s2.copy(), step, lr, self._decayed)
            if not np.isfinite(trial).all():
                return False
        optimizer_update(rule.kind, settings, self.params, g, s1, s2, step, lr, self._decayed)
        rule.counters[0] += 1
        return True

    def training_gradient(self):
        """As ``Engine.training_gradient``."""
        return self.grads.copy() if self._holds_training_gradient else None

    def train_step(self, X, y, sample_weight, rule, lr):
        """One step of ``rule``; returns (loss before it, FitStatus code), as
        ``Engine.train_step``."""
        _validation.check_learning_rate(lr, self.dtype)
        return self._step(*self._checked(X, y, sample_weight), rule, lr, verify=True)

    def apply_gradients(self, grads, rule, lr):
        """One step of ``rule`` from a given gradient (penalties included), as
        ``Engine.apply_gradients``; returns a FitStatus code."""
        _validation.check_learning_rate(lr, self.dtype)
        self._holds_training_gradient = False
        applied = self._update(np.array(grads), False, rule, lr, verify=True)
        return FitStatus.DONE if applied else FitStatus.OVERFLOW

    def fit_epoch(self, X, y, sample_weight, batch_size, shuffle, rule, lrs, batch_loss,
                  first_batch=0, last_batch=-1, catch_interrupt=False):
        """One epoch as ``Engine.fit_epoch``: same batches, same order, same masks,
        the rule's counters advanced alike, and with ``catch_interrupt`` Ctrl-C
        taken at a batch boundary."""
        x, y, sample_weight = self._checked(X, y, sample_weight)
        n = x.shape[0]
        batch_size = min(batch_size, n)
        n_batches = -(-n // batch_size)
        last_batch = n_batches if last_batch < 0 else last_batch
        epoch = int(rule.counters[1])
        order = _random.permutation(self.seed, epoch, n) if shuffle else np.arange(n)
        self._holds_training_gradient = False
        arrived = []
        previous = signal.signal(signal.SIGINT, lambda *_: arrived.append(True)) \
            if catch_interrupt else None
        done, status = 0, FitStatus.DONE
        try:
            for b in range(first_batch, last_batch):
                if arrived:
                    status = FitStatus.INTERRUPTED
                    break
                rows = order[b * batch_size:(b + 1) * batch_size]
                weights = None if sample_weight is None else sample_weight[rows]
                value, status = self._step(x[rows], y[rows], weights, rule, float(lrs[b]))
                batch_loss[b] = value
                if status != FitStatus.DONE:
                    break
                done += 1
                rule.counters[2] += len(rows)
                if b == n_batches - 1:
                    rule.counters[1] += 1
        finally:
            if catch_interrupt:
                signal.signal(signal.SIGINT, previous)
        return status, done, bool(arrived)
