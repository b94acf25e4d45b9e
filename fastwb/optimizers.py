"""Optimizers: how a gradient becomes a parameter update."""
from __future__ import annotations

import abc
import math
import numbers

import numpy as np


class Optimizer(abc.ABC):
    """Base class of the optimizers; it cannot be used by itself.

    ``Network.train_step`` hands the optimizer the network's engine, and the
    optimizer runs the whole step there in one compiled call.
    """

    @abc.abstractmethod
    def _train_step(self, engine, X, y) -> float:
        """Run one step of this optimizer on ``engine``; return the loss before it."""


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``p <- p - lr * grad``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, finite and nonnegative. It may be changed between steps.

    Examples
    --------
    >>> import numpy as np, fastwb
    >>> net = fastwb.Network([2, 1], loss="mse", dtype="float64", seed=0)
    >>> X, y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    >>> before = net.loss(X, y)
    >>> _ = net.train_step(X, y, fastwb.SGD(lr=0.05))
    >>> net.loss(X, y) < before
    True
    """

    def __init__(self, lr: float = 0.01):
        self.lr = lr

    @property
    def lr(self) -> float:
        """The learning rate."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"lr must be a real number, got {value!r}")
        lr = float(value)
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"lr must be finite and nonnegative, got {value!r}")
        self._lr = lr

    def _train_step(self, engine, X, y) -> float:
        return engine.train_step_sgd(X, y, self._lr)

    def __repr__(self) -> str:
        return f"SGD(lr={self._lr!r})"
