"""Layers. fastwb has one kind: ``Dense``, z = x @ W + b followed by an activation."""
from __future__ import annotations

from typing import Any, Mapping, overload

import numpy as np

from fastwb import initializers
from fastwb._validation import as_int, check_assignment, check_config, check_real, shown


def _width(value, name: str) -> int:
    width = as_int(value, name)
    if width < 1:
        raise ValueError(f"{name} must be at least 1, got {width}")
    return width


def _dropout(value) -> float:
    return check_real(value, "dropout", 0.0, 1.0, high_open=True)


@overload
def _penalty(value: None, name: str) -> None: ...
@overload
def _penalty(value: float, name: str) -> float: ...


def _penalty(value, name: str) -> float | None:
    return None if value is None else check_real(value, name, 0.0)


def _init_config(init: initializers.Initializer | None) -> dict | None:
    return None if init is None else init.get_config()


_CONFIG_KEYS = ("n_in", "n_out", "activation", "weight_init", "bias_init", "dropout", "l1", "l2")


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
    weight_init, bias_init : Initializer, str or None
        How the network initialises this layer's weights and bias: an
        ``fastwb.initializers.Initializer`` or its name (see
        ``fastwb.initializers.resolve``). ``None`` is the default: He-normal
        for the ReLU family (relu, leaky_relu, elu, gelu, softplus, swish),
        LeCun-normal for selu, Glorot-uniform otherwise; zero biases.
    dropout : float, default 0.0
        Fraction of this layer's outputs zeroed during training only (inverted
        dropout: the kept ones are scaled by ``1 / (1 - dropout)``, so
        prediction needs no rescaling). Not allowed on the output layer: the
        ``Network`` checks that.
    l1, l2 : float or None
        Weight penalty ``l1 * sum|W| + l2 * sum W**2`` of this layer, added to
        the loss; overrides the network's values for this layer. ``None``
        uses the network's.

    Once a ``Network`` holds the layer, ``weights`` and ``bias`` are writable
    views into the network's flat parameter buffer: assigning to them (or
    writing into them) changes the network.

    Examples
    --------
    >>> from fastwb import Dense
    >>> Dense(4, 8, "relu", weight_init="kaiming_uniform", dropout=0.2)
    Dense(4, 8, activation='relu', weight_init=HeUniform(negative_slope=0.0), dropout=0.2)
    """

    def __init__(self, n_in: int, n_out: int, activation: str | None = None,
                 weight_init: initializers.Initializer | str | None = None,
                 bias_init: initializers.Initializer | str | None = None,
                 dropout: float = 0.0, l1: float | None = None, l2: float | None = None):
        self.n_in = _width(n_in, "n_in")
        self.n_out = _width(n_out, "n_out")
        if activation is not None and not isinstance(activation, str):
            raise TypeError(f"activation must be a name (str) or None, got {shown(activation)}")
        self.activation = activation
        self.weight_init = initializers.resolve(weight_init, "weight_init")
        self.bias_init = initializers.resolve(bias_init, "bias_init")
        self.dropout = _dropout(dropout)
        self.l1 = _penalty(l1, "l1")
        self.l2 = _penalty(l2, "l2")
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (initializers as their configs).

        Examples
        --------
        >>> Dense.from_config(Dense(4, 2, "tanh", bias_init="ones").get_config())
        Dense(4, 2, activation='tanh', bias_init=Ones())
        """
        return {"n_in": self.n_in, "n_out": self.n_out, "activation": self.activation,
                "weight_init": _init_config(self.weight_init),
                "bias_init": _init_config(self.bias_init), "dropout": self.dropout,
                "l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Dense:
        """A new, unbound layer from what ``get_config`` returned."""
        params = check_config(config, _CONFIG_KEYS, "a Dense")
        for key in ("weight_init", "bias_init"):
            if params.get(key) is not None:
                params[key] = initializers.from_config(params[key])
        return cls(**params)

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
        options = {"activation": self.activation, "weight_init": self.weight_init,
                   "bias_init": self.bias_init, "dropout": self.dropout or None,
                   "l1": self.l1, "l2": self.l2}
        shown = "".join(f", {k}={v!r}" for k, v in options.items() if v is not None)
        return f"Dense({self.n_in}, {self.n_out}{shown})"
