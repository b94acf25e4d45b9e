"""Layers. fastwb has one kind: ``Dense``, z = x @ W + b followed by an activation."""
from __future__ import annotations

import numpy as np

from fastwb._validation import as_int, check_assignment


def _width(value, name: str) -> int:
    width = as_int(value, name)
    if width < 1:
        raise ValueError(f"{name} must be at least 1, got {width}")
    return width


class Dense:
    """A fully connected layer: ``a = activation(x @ weights + bias)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths: ``weights`` has shape ``(n_in, n_out)`` and
        ``bias`` shape ``(n_out,)``.
    activation : str or None
        One of ``fastwb.functions.ACTIVATIONS``. ``None`` lets the network
        choose: its ``activation`` for hidden layers, and for the output layer
        its ``output_activation`` or the one its loss implies.

    Once a ``Network`` holds the layer, ``weights`` and ``bias`` are writable
    views into the network's flat parameter buffer: assigning to them (or
    writing into them) changes the network.
    """

    def __init__(self, n_in: int, n_out: int, activation: str | None = None):
        self.n_in = _width(n_in, "n_in")
        self.n_out = _width(n_out, "n_out")
        if activation is not None and not isinstance(activation, str):
            raise TypeError(f"activation must be a name (str) or None, got {activation!r}")
        self.activation = activation
        self._weights = None
        self._bias = None

    def _bind(self, weights: np.ndarray, bias: np.ndarray, activation: str) -> None:
        if self._weights is not None:
            raise ValueError("this Dense layer already belongs to a Network; create a new one")
        self._weights, self._bias, self.activation = weights, bias, activation

    def _view(self, view):
        if view is None:
            raise RuntimeError("this Dense layer has no parameters until a Network holds it")
        return view

    @staticmethod
    def _assign(view: np.ndarray, value, name: str) -> None:
        view[...] = check_assignment(value, view.shape, view.dtype, name)

    @property
    def weights(self) -> np.ndarray:
        """The weight matrix, shape ``(n_in, n_out)``, a writable view."""
        return self._view(self._weights)

    @weights.setter
    def weights(self, value) -> None:
        self._assign(self._view(self._weights), value, "weights")

    @property
    def bias(self) -> np.ndarray:
        """The bias vector, shape ``(n_out,)``, a writable view."""
        return self._view(self._bias)

    @bias.setter
    def bias(self, value) -> None:
        self._assign(self._view(self._bias), value, "bias")

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation!r})"
