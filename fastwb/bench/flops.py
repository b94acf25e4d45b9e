"""FLOP counts of the matrix products of a dense network: one formula for
every benchmark.

A layer of ``k`` inputs and ``m`` outputs on ``n`` rows costs ``2nkm`` FLOP per
product. A forward pass makes one product per layer (``A[l-1] @ W[l]``); a
training step adds the weight gradient of every layer (``A[l-1].T @ D[l]``)
and the gradient sent back from every layer but the first (``D[l] @ W[l].T``).
The elementwise work (bias, activation, loss, update) is not counted: it is
linear in the activations and parameters, the products are not.
"""
from __future__ import annotations

from fastwb.bench.shapes import Shape


def predict_flops(shape: Shape, rows: int | None = None) -> int:
    """FLOP of the products of a forward pass on ``rows`` rows (default: the batch)."""
    n = shape.batch if rows is None else rows
    return sum(2 * n * k * m for k, m in shape.layers)


def train_flops(shape: Shape, rows: int | None = None) -> int:
    """FLOP of the products of one training step on ``rows`` rows (default: the
    batch): forward and weight gradient of every layer, and the gradient sent
    back from every layer but the first."""
    n = shape.batch if rows is None else rows
    return sum(2 * n * k * m * (2 if l == 0 else 3) for l, (k, m) in enumerate(shape.layers))


def square_flops(size: int) -> int:
    """FLOP of the product of two ``size``-square matrices: ``2 size^3``."""
    return 2 * size ** 3
