"""Optimizers: how a gradient becomes a parameter update.

Every optimizer is one fused pass over the network's flat parameter buffer
(the compiled ``parameter_pass``, mirrored in ``fastwb.reference``). Its state
(moment buffers laid out like the parameters, and the step count) lives here,
is created on the first step, and can be read through ``state``.

Before the update the optimizer sees the *effective* gradient: the loss
gradient plus the penalty gradient, clipped to ``[-clip_value, clip_value]``
elementwise, then scaled so its global L2 norm is at most ``clip_norm``.
"""
from __future__ import annotations

import abc
import inspect
from typing import Any, Mapping

import numpy as np

from fastwb import schedules as _schedules
from fastwb._validation import check_assignment, check_real
from fastwb.functions import HYPERPARAMETERS, OPTIMIZERS

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adam", "AdamW", "from_config", "resolve"]


def _fixed(name: str, doc: str) -> property:
    """A read-only setting: fixed when the optimizer is made (lr alone can change)."""
    return property(lambda self: self._values[name], doc=doc)


def _optional_positive(value, name: str) -> float:
    """None (off) as 0.0, else a finite positive float."""
    if value is None:
        return 0.0
    return check_real(value, name, 0.0, low_open=True)


class Optimizer(abc.ABC):
    """Base class of the optimizers; it cannot be used by itself.

    Parameters shared by every optimizer
    ------------------------------------
    lr : float
        Base learning rate, finite and nonnegative; may be changed between steps.
    schedule : Schedule, str or None
        How the rate changes with the step and epoch (``fastwb.schedules``):
        None or "constant", "invscaling", "adaptive", or a ``Schedule``.
    clip_norm : float or None
        Scale the whole gradient down when its global L2 norm exceeds this.
    clip_value : float or None
        Clip every gradient element to ``[-clip_value, clip_value]``.

    One optimizer trains one network: its state is created for the first
    network it steps, and ``reset()`` forgets it.
    """

    _slots: tuple = ()

    @property
    @abc.abstractmethod
    def _kind(self) -> str:
        """The update rule: a name in ``functions.OPTIMIZERS``."""

    def __init__(self, lr: float, settings: dict, schedule=None,
                 clip_norm: float | None = None, clip_value: float | None = None):
        self._values = settings
        self.lr = lr
        self.schedule = schedule
        self._clip_norm = _optional_positive(clip_norm, "clip_norm")
        self._clip_value = _optional_positive(clip_value, "clip_value")
        values = dict.fromkeys(HYPERPARAMETERS, 0.0)
        values.update(self._settings(), clip_norm=self._clip_norm, clip_value=self._clip_value)
        # what the engines take, built once: the settings are fixed from here on
        self._hyper = tuple(float(values[name]) for name in HYPERPARAMETERS)
        self._code = OPTIMIZERS.index(self._kind)
        self._clear()

    # --- settings -----------------------------------------------------------------

    @property
    def lr(self) -> float:
        """The base learning rate (before the schedule)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check_real(value, "lr", 0.0)

    @property
    def schedule(self) -> _schedules.Schedule:
        """The learning-rate schedule."""
        return self._schedule

    @schedule.setter
    def schedule(self, value) -> None:
        self._schedule = _schedules.resolve(value)
        self._constant = type(self._schedule) is _schedules.Constant

    @property
    def clip_norm(self) -> float | None:
        """Largest global L2 norm of the gradient, or None."""
        return self._clip_norm or None

    @property
    def clip_value(self) -> float | None:
        """Largest absolute value of a gradient element, or None."""
        return self._clip_value or None

    def _settings(self) -> dict:
        """This optimizer's own hyperparameters by name (see functions.HYPERPARAMETERS)."""
        return dict(self._values)

    def get_config(self) -> dict:
        """The constructor arguments, JSON-able (the schedule as its config)."""
        return {"name": type(self).__name__, "lr": self._lr, **self._settings(),
                "schedule": self._schedule.get_config(), "clip_norm": self.clip_norm,
                "clip_value": self.clip_value}

    # --- state --------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the step count, the moment buffers and the schedule's state."""
        self._clear()
        self._schedule.reset()

    def _clear(self) -> None:
        self._step = 0
        self._epoch = 0
        self._samples_seen = 0
        self._buffers = {}
        self._engine = None
        self._s1 = self._s2 = None

    @property
    def step(self) -> int:
        """Updates applied so far."""
        return self._step

    @property
    def epoch(self) -> int:
        """Epochs of ``fit`` completed with this optimizer."""
        return self._epoch

    @property
    def samples_seen(self) -> int:
        """Training samples ``fit`` has processed with this optimizer."""
        return self._samples_seen

    @property
    def state(self) -> dict:
        """Step count and moment buffers (the arrays themselves: writing them
        changes the optimizer)."""
        return {"step": self._step, "epoch": self._epoch, "samples_seen": self._samples_seen,
                **self._buffers}

    def _bind(self, engine) -> None:
        """Create the state for a network's engine on its first step; refuse another."""
        if self._engine is None:
            n, dtype = engine.params.shape[0], engine.params.dtype
            eps = self._values.get("eps")
            if eps is not None and dtype.type(eps) == 0:
                raise ValueError(f"eps={eps!r} is 0 in the network's {dtype}: a zero gradient "
                                 f"would divide 0 by 0; use eps >= {np.finfo(dtype).tiny}")
            self._buffers = {name: np.zeros(n, dtype=dtype) for name in self._slots}
            buffers = [self._buffers[name] for name in self._slots] + [None, None]
            self._s1, self._s2 = buffers[:2]
            self._engine = engine
        elif engine is not self._engine:
            raise ValueError(
                f"this {type(self).__name__} is training another network (its state, step "
                f"count and schedule belong to that one); give each network its own optimizer, "
                f"or call reset() first")

    def _rates(self, steps: np.ndarray) -> np.ndarray:
        """Learning rates of the given steps of the current epoch."""
        if self._constant:
            return np.full(len(steps), self._lr)
        return _schedules.check_rates(
            self._schedule.rates(self._lr, steps, self._epoch, self._samples_seen), len(steps))

    def _current_lr(self) -> float:
        if self._constant:
            return self._lr
        return float(self._rates(np.array([self._step], dtype=np.int64))[0])

    # --- the step -----------------------------------------------------------------

    def _train_step(self, engine, X, y, sample_weight=None) -> float:
        """One step of this optimizer on ``engine``; returns the loss before it."""
        if engine is not self._engine:        # checked once per network, not per step
            self._bind(engine)
        loss = engine.train_step(X, y, sample_weight, self._code, self._hyper, self._s1,
                                 self._s2, self._step,
                                 self._lr if self._constant else self._current_lr())
        if loss - loss == 0:                  # finite: the update was applied
            self._step += 1
        return loss

    def apply_gradients(self, network, gradients) -> None:
        """One step of this optimizer on ``network`` from gradients you computed.

        ``gradients`` is a flat array laid out like ``network.parameters``, or
        one ``(dW, db)`` per layer as ``Network.gradients`` gives; it is used
        as given (``Network.gradients`` already holds the penalties' part).
        Clipping, AdamW's decay and the schedule's rate apply as in
        ``Network.train_step``, and the step counts as one: without dropout,
        ``apply_gradients(net, net.gradients(X, y))`` is
        ``net.train_step(X, y, optimizer)``. Keras calls this
        ``apply_gradients``, PyTorch ``step()``.
        """
        try:
            engine = network._engine
        except AttributeError:
            raise TypeError(f"network must be a fastwb.Network, got {network!r}") from None
        if engine is not self._engine:
            self._bind(engine)
        if isinstance(gradients, (list, tuple)) and gradients \
                and isinstance(gradients[0], (list, tuple)):
            gradients = _flatten_layers(gradients, network.sizes)
        flat = check_assignment(gradients, network.parameters.shape, network.dtype, "gradients")
        engine.apply_gradients(np.ascontiguousarray(flat), self._code, self._hyper, self._s1,
                               self._s2, self._step, self._current_lr())
        self._step += 1

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in ("clip_norm", "clip_value")
                        if getattr(self, name) is not None)
        schedule = "" if self._constant else f", schedule={self._schedule!r}"
        return (f"{type(self).__name__}(lr={self._lr!r}"
                + (f", {settings}" if settings else "") + schedule + extra + ")")


def _flatten_layers(gradients, sizes) -> np.ndarray:
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


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum, as PyTorch's.

    ``v <- momentum v + g``; ``p <- p - lr v`` (Nesterov: ``p <- p - lr (g + momentum v)``).
    Without momentum, penalties or clipping, the update runs inside the
    weight-gradient product itself.

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        Needs a positive momentum.
    schedule, clip_norm, clip_value
        See ``Optimizer``.

    Examples
    --------
    >>> import numpy as np, fastwb
    >>> net = fastwb.Network([2, 1], loss="mse", dtype="float64", seed=0)
    >>> X, y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    >>> before = net.loss(X, y)
    >>> _ = net.train_step(X, y, fastwb.SGD(lr=0.05, momentum=0.9))
    >>> net.loss(X, y) < before
    True
    """

    _kind = "sgd"
    momentum = _fixed("momentum", "Momentum factor (0: none).")
    nesterov = _fixed("nesterov", "Whether the momentum is Nesterov's.")

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 schedule=None, clip_norm=None, clip_value=None):
        momentum = check_real(momentum, "momentum", 0.0, high=1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs a positive momentum")
        self._slots = ("momentum_buffer",) if momentum > 0 else ()
        super().__init__(lr, {"momentum": momentum, "nesterov": bool(nesterov)}, schedule,
                         clip_norm, clip_value)


class RMSprop(Optimizer):
    """RMSprop (PyTorch's defaults): ``s <- rho s + (1 - rho) g^2``; ``p <- p - lr g / (sqrt(s) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
    rho : float in [0, 1), default 0.99
    eps : float > 0, default 1e-8
    schedule, clip_norm, clip_value
        See ``Optimizer``.
    """

    _kind = "rmsprop"
    _slots = ("square_avg",)
    rho = _fixed("rho", "Decay of the running average of squared gradients.")
    eps = _fixed("eps", "Added to the root mean square before dividing.")

    def __init__(self, lr: float = 0.01, rho: float = 0.99, eps: float = 1e-8, schedule=None,
                 clip_norm=None, clip_value=None):
        super().__init__(lr, {"rho": check_real(rho, "rho", 0.0, high=1.0, high_open=True),
                              "eps": check_real(eps, "eps", 0.0, low_open=True)},
                         schedule, clip_norm, clip_value)


class Adagrad(Optimizer):
    """Adagrad: ``s <- s + g^2``; ``p <- p - lr g / (sqrt(s) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
    eps : float > 0, default 1e-10
    schedule, clip_norm, clip_value
        See ``Optimizer``.
    """

    _kind = "adagrad"
    _slots = ("sum_squares",)
    eps = _fixed("eps", "Added to the root of the summed squares before dividing.")

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, schedule=None, clip_norm=None,
                 clip_value=None):
        super().__init__(lr, {"eps": check_real(eps, "eps", 0.0, low_open=True)}, schedule,
                         clip_norm, clip_value)


class Adam(Optimizer):
    """Adam with bias correction (Kingma and Ba; PyTorch's form and defaults).

    ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g^2``, and at
    step t = 1, 2, ...: ``p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Parameters
    ----------
    lr : float, default 0.001
    beta1, beta2 : float in [0, 1), defaults 0.9 and 0.999
    eps : float > 0, default 1e-8
    schedule, clip_norm, clip_value
        See ``Optimizer``.

    Examples
    --------
    >>> import numpy as np, fastwb
    >>> net = fastwb.Network([2, 8, 1], loss="mse", dtype="float64", seed=0)
    >>> X, y = np.array([[1.0, 2.0], [0.5, -1.0]]), np.array([[3.0], [0.0]])
    >>> opt = fastwb.Adam(lr=0.01)
    >>> losses = [net.train_step(X, y, opt) for _ in range(50)]
    >>> losses[-1] < losses[0], opt.step
    (True, 50)
    """

    _kind = "adam"
    _slots = ("exp_avg", "exp_avg_sq")
    beta1 = _fixed("beta1", "Decay of the first moment (the mean gradient).")
    beta2 = _fixed("beta2", "Decay of the second moment (the mean squared gradient).")
    eps = _fixed("eps", "Added to the root of the second moment before dividing.")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, schedule=None, clip_norm=None, clip_value=None):
        super().__init__(lr, _adam_settings(beta1, beta2, eps), schedule, clip_norm, clip_value)


def _adam_settings(beta1, beta2, eps) -> dict:
    return {"beta1": check_real(beta1, "beta1", 0.0, high=1.0, high_open=True),
            "beta2": check_real(beta2, "beta2", 0.0, high=1.0, high_open=True),
            "eps": check_real(eps, "eps", 0.0, low_open=True)}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter; PyTorch's form).

    Each step first shrinks the decayed parameters, ``p <- p (1 - lr weight_decay)``,
    then takes the Adam step. Weights decay; biases only when the network
    regularizes biases (``Network(regularize_biases=True)``).

    Parameters
    ----------
    lr : float, default 0.001
    beta1, beta2, eps
        As ``Adam``.
    weight_decay : float >= 0, default 0.01
    schedule, clip_norm, clip_value
        See ``Optimizer``.
    """

    weight_decay = _fixed("weight_decay", "Rate of the decoupled weight decay.")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, schedule=None, clip_norm=None,
                 clip_value=None):
        settings = {**_adam_settings(beta1, beta2, eps),
                    "weight_decay": check_real(weight_decay, "weight_decay", 0.0)}
        Optimizer.__init__(self, lr, settings, schedule, clip_norm, clip_value)


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adam": Adam, "adamw": AdamW}


def resolve(value) -> Optimizer:
    """An optimizer from itself or its name ("adam" is ``Adam()`` with its defaults)."""
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, str):
        try:
            return _BY_NAME[value.lower()]()
        except KeyError:
            raise ValueError(f"unknown optimizer {value!r}; use one of "
                             f"{', '.join(_BY_NAME)} or an Optimizer") from None
    raise TypeError(f"optimizer must be a fastwb optimizer such as fastwb.Adam(), or its name, "
                    f"got {value!r}")


def from_config(config: Mapping[str, Any]) -> Optimizer:
    """A new optimizer (no state yet) from what ``Optimizer.get_config`` returned.

    Only the built-in optimizers and schedules can be rebuilt.

    Examples
    --------
    >>> from_config(SGD(lr=0.1, momentum=0.9).get_config())
    SGD(lr=0.1, momentum=0.9, nesterov=False)
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"an optimizer config must be a dict, got {type(config).__name__}")
    params = dict(config)
    name = params.pop("name", None)
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if not isinstance(name, str) or name not in classes:
        raise ValueError(f"config['name'] must be one of {', '.join(classes)}, got {name!r}")
    cls = classes[name]
    unknown = set(params) - set(inspect.signature(cls).parameters)
    if unknown:
        raise ValueError(f"config for {name} has unknown parameter(s) {sorted(unknown)}")
    if isinstance(params.get("schedule"), Mapping):
        params["schedule"] = _schedules.from_config(params["schedule"])
    return cls(**params)
