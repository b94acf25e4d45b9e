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


def flat_from_layers(gradients, sizes) -> np.ndarray:
    """One ``(dW, db)`` per layer, checked against ``sizes``, as one flat array."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    if len(gradients) != len(layers):
        raise ValueError(f"gradients has {len(gradients)} entries; the network has "
                         f"{len(layers)} layers, each needing (dW, db)")
    parts = []
    for l, (pair, (k, m)) in enumerate(zip(gradients, layers)):
        if len(pair) != 2:
            raise ValueError(f"gradients[{l}] must be a (dW, db) pair")
        dW, db = (np.asarray(a) for a in pair)
        if dW.shape != (k, m) or db.shape != (m,):
            raise ValueError(f"gradients[{l}] must have shapes ({k}, {m}) and ({m},), got "
                             f"{dW.shape} and {db.shape}")
        parts += [dW.ravel(), db]
    return np.concatenate(parts)
