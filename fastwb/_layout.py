"""Where each layer's weights and biases sit in the flat parameter buffer.

Layer l occupies ``W`` (sizes[l] x sizes[l+1], row-major) followed by ``b``
(sizes[l+1]); layers follow each other. Gradients use the same layout.
"""
from __future__ import annotations

import numpy as np


def offsets(sizes) -> tuple[list[int], list[int]]:
    """Where each layer's W and b start in the flat buffer."""
    w_offset, b_offset, offset = [], [], 0
    for k, m in zip(sizes[:-1], sizes[1:]):
        w_offset.append(offset)
        b_offset.append(offset + k * m)
        offset += k * m + m
    return w_offset, b_offset


def n_parameters(sizes) -> int:
    """Weights plus biases of a network with these layer widths."""
    return sum(k * m + m for k, m in zip(sizes[:-1], sizes[1:]))


def layer_views(flat: np.ndarray, sizes) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, b) views into ``flat`` for every layer; writing them writes ``flat``."""
    return [(flat[w:w + k * m].reshape(k, m), flat[b:b + m])
            for k, m, w, b in zip(sizes[:-1], sizes[1:], *offsets(sizes))]
