"""Initial weights and biases.

He-normal for the ReLU family, Glorot-uniform for everything else, zero biases
(the defaults of PyTorch's ``kaiming_normal_`` and Keras' ``Dense``). Values are
drawn in float64 from NumPy's counter-based Philox generator and then rounded
to the network's dtype, so the same seed gives the same starting network in
float32 and float64.
"""
from __future__ import annotations

import numpy as np

from fastwb._layout import layer_views, n_parameters
from fastwb._validation import as_int
from fastwb.reference import LEAKY_SLOPE


def _generator(seed) -> np.random.Generator:
    value = as_int(seed, "seed", allow_none=True)
    if value is None:
        return np.random.Generator(np.random.Philox())
    if value < 0:
        raise ValueError(f"seed must be nonnegative, got {value}")
    return np.random.Generator(np.random.Philox(value))


def he_normal(rng: np.random.Generator, n_in: int, n_out: int, negative_slope: float = 0.0):
    """N(0, 2 / ((1 + a^2) n_in)): keeps the activation variance through ReLU layers."""
    std = np.sqrt(2.0 / ((1.0 + negative_slope ** 2) * n_in))
    return rng.normal(0.0, std, size=(n_in, n_out))


def glorot_uniform(rng: np.random.Generator, n_in: int, n_out: int):
    """U(-l, l) with l = sqrt(6 / (n_in + n_out)): balances forward and backward variance."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def initial_parameters(sizes, activations, dtype, seed=None) -> np.ndarray:
    """A flat parameter buffer for layer widths ``sizes`` with the default initialisation."""
    rng = _generator(seed)
    flat = np.zeros(n_parameters(sizes), dtype=dtype)
    for (W, _), activation in zip(layer_views(flat, sizes), activations):
        n_in, n_out = W.shape
        if activation == "relu":
            W[...] = he_normal(rng, n_in, n_out)
        elif activation == "leaky_relu":
            W[...] = he_normal(rng, n_in, n_out, LEAKY_SLOPE)
        else:
            W[...] = glorot_uniform(rng, n_in, n_out)
    return flat
