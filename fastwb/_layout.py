"""Where each layer's weights and biases sit in the flat parameter buffer.

Layer l occupies ``W`` (sizes[l] x sizes[l+1], row-major) followed by ``b``
(sizes[l+1]); layers follow each other. Gradients use the same layout.
"""
from __future__ import annotations

import numpy as np


def n_parameters(sizes) -> int:
    """Weights plus biases of a network with these layer widths."""
    return sum(k * m + m for k, m in zip(sizes[:-1], sizes[1:]))


def layer_views(flat: np.ndarray, sizes) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, b) views into ``flat`` for every layer; writing them writes ``flat``."""
    views, offset = [], 0
    for k, m in zip(sizes[:-1], sizes[1:]):
        W = flat[offset:offset + k * m].reshape(k, m)
        offset += k * m
        b = flat[offset:offset + m]
        offset += m
        views.append((W, b))
    return views
