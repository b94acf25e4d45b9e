"""Optimizers: how a gradient becomes a parameter update.

Every optimizer is one fused pass over the network's flat parameter buffer
(the compiled ``parameter_pass``, mirrored in ``fastwb.reference``). An
optimizer owns its state: the moment buffers laid out like the parameters
(made on the first step, for the network it trains), its step, epoch and
sample counters, and its schedule. ``get_state()`` and ``set_state()`` read
and restore all of it; the engines receive it as one record of the rule
(``rule_for``) and advance the buffers and counters together with the
parameters, in the same compiled call.

Before the update the optimizer sees the *effective* gradient: the loss
gradient plus the penalty gradient, clipped to ``[-clip_value, clip_value]``
elementwise, then scaled so its global L2 norm is at most ``clip_norm``.
"""
from __future__ import annotations

import abc
import inspect
import weakref
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from fastwb import schedules as _schedules
from fastwb._core import Rule
from fastwb._validation import MAX_COUNT, check_count, check_keys, check_real
from fastwb.functions import COUNTERS, STATE_BUFFERS

if TYPE_CHECKING:      # annotations only: networks import this module
    from fastwb.network import Network

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adam", "AdamW", "from_config",
           "rebuildable", "resolve"]

_STATE_KEYS = ("step", "epoch", "samples_seen", "buffers", "schedule")
#: Buffers that hold sums or averages of squares: never negative.
_SQUARES = ("square_avg", "sum_squares", "exp_avg_sq")


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
        self._counters = np.zeros(len(COUNTERS), dtype=np.int64)
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
        """Forget the counters, the moment buffers and the schedule's state."""
        self._clear()
        self._schedule.reset()

    def _clear(self) -> None:
        self._counters[...] = 0
        self._buffers: dict[str, np.ndarray] = {}
        self._network: weakref.ref | None = None
        self._rule: Rule | None = None

    @property
    def step(self) -> int:
        """Updates applied so far."""
        return int(self._counters[0])

    @property
    def epoch(self) -> int:
        """Epochs of ``fit`` completed with this optimizer."""
        return int(self._counters[1])

    @property
    def samples_seen(self) -> int:
        """Training samples of the updates ``fit`` has applied with this optimizer."""
        return int(self._counters[2])

    @property
    def buffer_names(self) -> tuple[str, ...]:
        """Names of the moment buffers this optimizer keeps, each laid out like
        the parameters (Adam: "exp_avg", "exp_avg_sq"; plain SGD: none)."""
        return tuple(self._slots)

    @property
    def bound(self) -> bool:
        """Whether this optimizer has made its state for a network (its first step)."""
        return self._network is not None

    @property
    def network(self) -> Network | None:
        """The network this optimizer's state belongs to; None before its first
        step, or when that network no longer exists."""
        return None if self._network is None else self._network()

    @property
    def state(self) -> dict:
        """Counters and moment buffers (the arrays themselves: writing them
        changes the optimizer); ``get_state`` gives a copy of everything."""
        return {"step": self.step, "epoch": self.epoch, "samples_seen": self.samples_seen,
                **self._buffers}

    def get_state(self) -> dict[str, Any]:
        """Everything this optimizer has learned, as copies: ``set_state`` restores it.

        Returns
        -------
        dict
            ``step``, ``epoch`` and ``samples_seen`` (ints); ``buffers``, the
            moment buffers by name (empty before the first step), such as
            Adam's "exp_avg" and "exp_avg_sq"; ``schedule``, the schedule's
            ``get_state()``.

        Examples
        --------
        >>> import numpy as np, fastwb
        >>> net = fastwb.Network([2, 1], loss="mse", dtype="float64", seed=0)
        >>> opt = fastwb.Adam(lr=0.1)
        >>> X, y = np.ones((4, 2)), np.zeros((4, 1))
        >>> _ = net.train_step(X, y, opt)
        >>> state = opt.get_state()
        >>> state["step"], sorted(state["buffers"])
        (1, ['exp_avg', 'exp_avg_sq'])
        >>> before = net.parameters.copy()
        >>> _ = net.train_step(X, y, opt)
        >>> net.parameters = before
        >>> opt.set_state(state)      # back to the state after one step
        >>> opt.step
        1
        """
        return {"step": self.step, "epoch": self.epoch, "samples_seen": self.samples_seen,
                "buffers": {name: values.copy() for name, values in self._buffers.items()},
                "schedule": self._schedule.get_state()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``get_state`` returned (this optimizer's, or an equal one's).

        Everything is checked before anything changes. Buffers must be this
        optimizer's (by name), 1-D float arrays of one dtype and length; an
        optimizer that already trains a network takes only buffers of that
        network's size and dtype, one that does not yet keeps them for the first
        network it steps (which must match them). Empty buffers mean no state:
        the optimizer then starts afresh on the next network it steps (plain
        SGD, which keeps no buffers, stays with its network).

        Raises
        ------
        TypeError, ValueError
            If ``state`` is not such a dict: wrong keys, negative, non-integer
            or larger than ``MAX_COUNT`` (2**53) counters, buffers of other
            names, shapes or dtypes.
        """
        check_keys(state, _STATE_KEYS, "an optimizer state")
        counters = [check_count(state[name], f"the optimizer's {name}", 0) for name in COUNTERS]
        for name, count in zip(COUNTERS, counters):
            if count > MAX_COUNT:
                raise ValueError(f"the optimizer's {name} must be at most 2**53, got {count}")
        buffers = self._checked_buffers(state["buffers"])
        previous = self._schedule.get_state()
        self._schedule.set_state(state["schedule"])     # checks its own; the last to fail
        try:
            if buffers and self._rule is not None and self.network is not None:
                for name, values in buffers.items():     # in place: the rule keeps its arrays
                    self._buffers[name][...] = values    # (of its network's shape and dtype)
            elif buffers:
                self._buffers = {name: np.array(values) for name, values in buffers.items()}
                self._network = self._rule = None        # bound on the next step
            elif self._slots:
                self._buffers, self._network, self._rule = {}, None, None
        except BaseException:
            self._schedule.set_state(previous)
            raise
        self._counters[...] = counters

    def _checked_buffers(self, buffers) -> dict[str, np.ndarray]:
        if not isinstance(buffers, Mapping):
            raise TypeError(f"the optimizer state's buffers must be a dict of arrays, got "
                            f"{type(buffers).__name__}")
        if not buffers:
            return {}
        if set(buffers) != set(self._slots):
            raise ValueError(f"{type(self).__name__} keeps the buffers {list(self._slots)}, "
                             f"got {sorted(map(str, buffers))}")
        arrays = {}
        for name in self._slots:
            values = buffers[name]
            if not isinstance(values, np.ndarray) or values.ndim != 1 \
                    or values.dtype not in (np.float32, np.float64):
                raise ValueError(f"the optimizer state's buffer {name!r} must be a 1-D float32 "
                                 f"or float64 array, got {values!r:.80}")
            arrays[name] = values
        first = arrays[self._slots[0]]
        for name, values in arrays.items():
            if values.dtype != first.dtype or values.shape != first.shape:
                raise ValueError(f"the optimizer state's buffers must share one dtype and "
                                 f"length; {name!r} is {values.dtype} {values.shape}, "
                                 f"{self._slots[0]!r} {first.dtype} {first.shape}")
            if not np.isfinite(values).all():
                raise ValueError(f"the optimizer state's buffer {name!r} holds NaN or "
                                 "infinite values")
            if name in _SQUARES and (values < 0).any():
                raise ValueError(f"the optimizer state's buffer {name!r} holds negative "
                                 "values; it accumulates squares")
        current = next(iter(self._buffers.values()), None)
        if current is not None and self.network is not None and (
                current.dtype != first.dtype or current.shape != first.shape):
            raise ValueError(f"this {type(self).__name__} trains a network of {current.size} "
                             f"{current.dtype} parameters; the state's buffers hold "
                             f"{first.size} {first.dtype} values")
        return arrays

    # --- what the network and its engine take ------------------------------------

    def rule_for(self, network: Network) -> Rule:
        """The update rule as the engines take it, with this optimizer's state for
        ``network``, made on its first step (zeros, or the buffers ``set_state``
        gave). ``Network`` calls this; an optimizer trains one network only.

        Raises
        ------
        ValueError
            If this optimizer's state belongs to another network, or buffers
            from ``set_state`` do not fit ``network``.
        """
        if self._rule is not None and self.network is network:
            return self._rule
        if self._network is not None:
            raise ValueError(
                f"this {type(self).__name__} is training another network (its state, step "
                f"count and schedule belong to that one); give each network its own optimizer, "
                f"or call reset() first")
        parameters = network.parameters
        n, dtype = parameters.shape[0], parameters.dtype
        eps = self._values.get("eps")
        if eps is not None and dtype.type(eps) == 0:
            raise ValueError(f"eps={eps!r} is 0 in the network's {dtype}: a zero gradient "
                             f"would divide 0 by 0; use eps >= {np.finfo(dtype).tiny}")
        buffers = self._buffers or {name: np.zeros(n, dtype=dtype) for name in self._slots}
        for name, values in buffers.items():
            if values.shape != (n,) or values.dtype != dtype:
                raise ValueError(f"the optimizer's buffer {name!r} holds {values.size} "
                                 f"{values.dtype} values; the network has {n} {dtype} parameters")
        settings = {**self._settings(), "clip_norm": self._clip_norm,
                    "clip_value": self._clip_value}
        settings["nesterov"] = float(settings.get("nesterov", False))
        self._rule = Rule(self._kind, settings, buffers, self._counters)
        self._buffers = buffers
        self._network = weakref.ref(network)
        return self._rule

    def learning_rates(self, count: int) -> np.ndarray:
        """The learning rates of the next ``count`` steps of the current epoch."""
        if self._constant:
            return np.full(count, self._lr)
        steps = np.arange(self.step, self.step + count, dtype=np.int64)
        return _schedules.check_rates(
            self._schedule.rates(self._lr, steps, self.epoch, self.samples_seen), count)

    @property
    def current_lr(self) -> float:
        """The learning rate of the next step (the base rate through the schedule)."""
        if self._constant:
            return self._lr
        return float(self.learning_rates(1)[0])

    # --- the step -----------------------------------------------------------------

    def apply_gradients(self, network: Network, gradients) -> None:
        """One step of this optimizer on ``network`` from gradients you computed.

        ``gradients`` is a flat array laid out like ``network.parameters``, or
        one ``(dW, db)`` per layer as ``Network.gradients`` gives; it is used
        as given (``Network.gradients`` already holds the penalties' part).
        Clipping, AdamW's decay and the schedule's rate apply as in
        ``Network.train_step``, and the step counts as one: without dropout,
        ``apply_gradients(net, net.gradients(X, y))`` is
        ``net.train_step(X, y, optimizer)``. Keras calls this
        ``apply_gradients``, PyTorch ``step()``.

        Raises
        ------
        FloatingPointError
            If the update would leave a parameter NaN or infinite; nothing changes.
        """
        try:
            apply = network.apply_gradients
        except AttributeError:
            raise TypeError(f"network must be a fastwb.Network, got {network!r}") from None
        apply(gradients, self)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in ("clip_norm", "clip_value")
                        if getattr(self, name) is not None)
        schedule = "" if self._constant else f", schedule={self._schedule!r}"
        return (f"{type(self).__name__}(lr={self._lr!r}"
                + (f", {settings}" if settings else "") + schedule + extra + ")")


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum, as PyTorch's.

    ``v <- momentum v + g``; ``p <- p - lr v`` (Nesterov: ``p <- p - lr (g + momentum v)``).

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
        self._slots = STATE_BUFFERS["sgd"] if momentum > 0 else ()
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
    _slots = STATE_BUFFERS["rmsprop"]
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
    _slots = STATE_BUFFERS["adagrad"]
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
    _slots = STATE_BUFFERS["adam"]
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


def rebuildable(optimizer: Optimizer) -> bool:
    """Whether ``from_config(optimizer.get_config())`` rebuilds an optimizer of the
    same class with the same kind of schedule: fastwb's own, not a user's subclass."""
    try:
        rebuilt = from_config(optimizer.get_config())
    except (TypeError, ValueError):
        return False
    return type(rebuilt) is type(optimizer) and type(rebuilt.schedule) is type(optimizer.schedule)


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
