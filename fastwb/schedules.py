"""Learning-rate schedules: the rate of every optimizer step of an epoch.

The training loops (compiled and reference) ask a schedule, before each epoch,
for the rates of all that epoch's steps in one vectorised call::

    rates = schedule.rates(base_lr, steps, epoch, samples_seen)

and tell it, after each epoch, the monitored loss::

    schedule.on_epoch_end(epoch, value)

``rates`` returns a C-contiguous float64 array with one finite, nonnegative
rate per entry of ``steps``, ready to hand to compiled code.

A schedule is saved as ``get_config()`` (what it is) plus ``get_state()`` (what
it has learned so far, only for :class:`ReduceOnPlateau`), both JSON-able;
``from_config(config)`` followed by ``set_state(state)`` restores it exactly.
"""
from __future__ import annotations

import abc
import inspect
import math
from typing import Any, ClassVar, Mapping

import numpy as np

from fastwb._validation import as_real, check_count, check_keys, check_real

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "InverseScaling",
           "CosineWarmup", "ReduceOnPlateau", "check_rates", "from_config", "resolve"]


def _check_min_lr(base_lr: float, min_lr: float) -> None:
    if base_lr < min_lr:
        raise ValueError(f"base_lr={base_lr!r} is below the schedule's min_lr={min_lr!r}")


def _power(base: float, exponent: float) -> float:
    """``base ** exponent`` with overflow giving inf (Python floats raise instead)."""
    with np.errstate(over="ignore"):
        return float(np.power(np.float64(base), np.float64(exponent)))


def _decayed(base_lr: float, gamma: float, n_decays: int, epoch: int) -> float:
    """``base_lr * gamma ** n_decays``, refusing a result beyond float64."""
    if base_lr == 0.0:
        return 0.0  # rather than 0 * inf = NaN when gamma > 1 overflows
    rate = base_lr * _power(gamma, n_decays)
    if not math.isfinite(rate):
        raise ValueError(f"the learning rate overflows float64 at epoch {epoch} "
                         f"(gamma={gamma!r} > 1)")
    return rate


def check_rates(values, n_steps: int) -> np.ndarray:
    """Check what a schedule's ``rates`` returned before compiled code reads it.

    The built-in schedules always pass; this guards the training loop against a
    user-written :class:`Schedule` subclass.

    Returns
    -------
    numpy.ndarray
        ``values`` as a C-contiguous float64 array of shape ``(n_steps,)``.

    Raises
    ------
    ValueError
        If the shape is wrong or a rate is negative, NaN or infinite.
    """
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.shape != (n_steps,):
        raise ValueError(f"a schedule returned rates of shape {arr.shape}; expected ({n_steps},)")
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"a schedule returned an invalid learning rate {float(arr[first])!r} at "
                         f"index {first}; rates must be finite and nonnegative")
    return arr


class Schedule(abc.ABC):
    """Base class of the learning-rate schedules.

    A subclass sets the class attribute ``name`` and implements :meth:`rates`;
    stateful ones also override :meth:`on_epoch_end`, :meth:`reset`,
    :meth:`get_state` and :meth:`set_state`. Only the built-in schedules can
    be rebuilt by :func:`from_config`.
    """

    #: The ``"name"`` of this schedule in :meth:`get_config`.
    name: ClassVar[str]

    @abc.abstractmethod
    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        """The learning rate of each coming optimizer step.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate, finite and nonnegative.
        steps : numpy.ndarray of int64, shape (n_batches,)
            0-based global step numbers of this epoch's batches: the number of
            updates made before each one.
        epoch : int
            0-based number of the coming epoch.
        samples_seen : int
            Training samples processed before this epoch.

        Returns
        -------
        numpy.ndarray of float64, shape (n_batches,)
            C-contiguous, every value finite and nonnegative.
        """

    def on_epoch_end(self, epoch: int, value: float) -> None:
        """Take note of the monitored loss ``value`` after epoch ``epoch``."""

    def reset(self) -> None:
        """Forget everything learned from :meth:`on_epoch_end`."""

    def get_config(self) -> dict[str, Any]:
        """``{"name": ..., **constructor arguments}``, JSON-able."""
        return {"name": self.name, **self._params()}

    def get_state(self) -> dict[str, Any]:
        """What :meth:`on_epoch_end` has learned, JSON-able (empty if stateless)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        check_keys(state, (), "state")

    def _params(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def _check_args(base_lr, steps, epoch, samples_seen) -> tuple[float, np.ndarray, int, int]:
        base_lr = check_real(base_lr, "base_lr", 0.0)
        arr = np.asarray(steps)
        if arr.ndim != 1:
            raise ValueError(f"steps must be 1-D, got shape {arr.shape}")
        # np.asarray([]) is float64; an empty epoch has no steps to be wrong.
        if arr.dtype.kind not in "iu" and arr.size > 0:
            raise TypeError(f"steps must hold integers, got dtype {arr.dtype}")
        if arr.size and arr.min() < 0:
            raise ValueError(f"steps must be nonnegative, got {arr.min()}")
        return (base_lr, arr, check_count(epoch, "epoch", 0),
                check_count(samples_seen, "samples_seen", 0))

    @staticmethod
    def _fill(rate: float, steps: np.ndarray) -> np.ndarray:
        return np.full(len(steps), rate, dtype=np.float64)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The same rate for every step: ``lr = base_lr``.

    Examples
    --------
    >>> import numpy as np
    >>> Constant().rates(0.1, np.arange(3), epoch=5, samples_seen=500)
    array([0.1, 0.1, 0.1])
    """

    name = "constant"

    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        base_lr, steps, _, _ = self._check_args(base_lr, steps, epoch, samples_seen)
        return self._fill(base_lr, steps)


class StepDecay(Schedule):
    """Decay by ``gamma`` every ``step_size`` epochs, as PyTorch's ``StepLR``.

    ``lr = base_lr * gamma ** (epoch // step_size)``, constant within an epoch.

    Parameters
    ----------
    step_size : int
        Epochs between decays, at least 1.
    gamma : float, default 0.1
        Factor applied at each decay, finite and positive (above 1 grows the
        rate; a rate that overflows float64 raises ``ValueError``).

    Examples
    --------
    >>> import numpy as np
    >>> decay = StepDecay(step_size=2, gamma=0.5)
    >>> [float(decay.rates(0.1, np.arange(1), epoch=e, samples_seen=0)[0]) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    name = "step_decay"

    def __init__(self, step_size: int, gamma: float = 0.1):
        self._step_size = check_count(step_size, "step_size", 1)
        self._gamma = check_real(gamma, "gamma", 0.0, low_open=True)

    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        base_lr, steps, epoch, _ = self._check_args(base_lr, steps, epoch, samples_seen)
        return self._fill(_decayed(base_lr, self._gamma, epoch // self._step_size, epoch), steps)

    def _params(self) -> dict[str, Any]:
        return {"step_size": self._step_size, "gamma": self._gamma}


class ExponentialDecay(Schedule):
    """Decay by ``gamma`` every epoch, as PyTorch's ``ExponentialLR``.

    ``lr = base_lr * gamma ** epoch``, constant within an epoch.

    Parameters
    ----------
    gamma : float
        Factor applied each epoch, finite and positive.

    Examples
    --------
    >>> import numpy as np
    >>> ExponentialDecay(gamma=0.5).rates(1.0, np.arange(2), epoch=3, samples_seen=0)
    array([0.125, 0.125])
    """

    name = "exponential_decay"

    def __init__(self, gamma: float):
        self._gamma = check_real(gamma, "gamma", 0.0, low_open=True)

    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        base_lr, steps, epoch, _ = self._check_args(base_lr, steps, epoch, samples_seen)
        return self._fill(_decayed(base_lr, self._gamma, epoch, epoch), steps)

    def _params(self) -> dict[str, Any]:
        return {"gamma": self._gamma}


class InverseScaling(Schedule):
    """scikit-learn's ``learning_rate="invscaling"`` (MLP, ``solver="sgd"``).

    ``lr = base_lr / (samples_seen + 1) ** power_t``, constant within an
    epoch, where ``samples_seen`` counts the samples processed before the
    epoch: scikit-learn updates the rate after each epoch with
    ``time_step = t_``, its running sample count, so epoch 1 runs at
    ``base_lr`` and epoch ``k`` of a data set of ``n`` samples at
    ``base_lr / ((k - 1) * n + 1) ** power_t``.

    Parameters
    ----------
    power_t : float, default 0.5
        Exponent, finite and nonnegative (0 gives a constant rate).

    Examples
    --------
    >>> import numpy as np
    >>> InverseScaling(power_t=0.5).rates(1.0, np.arange(2), epoch=1, samples_seen=3)
    array([0.5, 0.5])
    """

    name = "inverse_scaling"

    def __init__(self, power_t: float = 0.5):
        self._power_t = check_real(power_t, "power_t", 0.0)

    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        base_lr, steps, _, samples_seen = self._check_args(base_lr, steps, epoch, samples_seen)
        # An overflowing denominator means a rate that underflows to 0, which is fine.
        return self._fill(base_lr / _power(samples_seen + 1, self._power_t), steps)

    def _params(self) -> dict[str, Any]:
        return {"power_t": self._power_t}


class CosineWarmup(Schedule):
    """Linear warmup, then cosine decay to ``min_lr``, per optimizer step.

    Follows Hugging Face's ``get_cosine_schedule_with_warmup`` (one half cosine)
    with two differences: warmup counts from ``step + 1``, so the first step
    already trains, and a floor ``min_lr``::

        step < warmup_steps:  lr = base_lr * (step + 1) / warmup_steps
        otherwise:            lr = min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * p))
                              p  = clip((step - warmup_steps) / (total_steps - warmup_steps), 0, 1)

    Step ``total_steps`` and every later one run at ``min_lr`` (also when
    ``warmup_steps == total_steps``, where the cosine phase is empty). Warmup
    rates may lie below ``min_lr``: the floor bounds the decay only.

    Parameters
    ----------
    total_steps : int
        Optimizer steps until the rate reaches ``min_lr``, at least 1.
    warmup_steps : int, default 0
        Steps of linear warmup, from 0 to ``total_steps``.
    min_lr : float, default 0.0
        Final rate, finite and nonnegative; ``rates`` refuses a ``base_lr``
        below it.

    Examples
    --------
    >>> import numpy as np
    >>> CosineWarmup(total_steps=4, warmup_steps=2).rates(1.0, np.arange(6), 0, 0)
    array([0.5, 1. , 1. , 0.5, 0. , 0. ])
    """

    name = "cosine_warmup"

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0):
        self._total_steps = check_count(total_steps, "total_steps", 1)
        self._warmup_steps = check_count(warmup_steps, "warmup_steps", 0)
        if self._warmup_steps > self._total_steps:
            raise ValueError(f"warmup_steps={self._warmup_steps} exceeds "
                             f"total_steps={self._total_steps}")
        self._min_lr = check_real(min_lr, "min_lr", 0.0)

    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        base_lr, steps, _, _ = self._check_args(base_lr, steps, epoch, samples_seen)
        _check_min_lr(base_lr, self._min_lr)
        t = steps.astype(np.float64)
        warmup, total = self._warmup_steps, self._total_steps
        decay_steps = total - warmup
        if decay_steps > 0:
            progress = np.clip((t - warmup) / decay_steps, 0.0, 1.0)
        else:
            progress = np.ones_like(t)
        out = self._min_lr + (base_lr - self._min_lr) * 0.5 * (1.0 + np.cos(np.pi * progress))
        if warmup:
            in_warmup = t < warmup
            out[in_warmup] = base_lr * (t[in_warmup] + 1.0) / warmup
        return out

    def _params(self) -> dict[str, Any]:
        return {"total_steps": self._total_steps, "warmup_steps": self._warmup_steps,
                "min_lr": self._min_lr}


class ReduceOnPlateau(Schedule):
    """Cut the rate when the monitored loss stops improving.

    Like scikit-learn's ``learning_rate="adaptive"`` and Keras'
    ``ReduceLROnPlateau`` (without cooldown). A multiplier starts at 1; after
    each epoch, :meth:`on_epoch_end` compares the loss ``value`` with the best
    so far::

        value < best - min_delta:  best = value, wait = 0
        otherwise:                 wait += 1   (NaN and inf count here)
        wait > patience:           multiplier *= factor, wait = 0

    so, as in scikit-learn, a reduction comes after ``patience + 1``
    consecutive epochs without improvement. Unlike scikit-learn, and as in
    Keras, ``best`` only moves on an improvement of more than ``min_delta``,
    so a slow steady decline eventually counts as one. Every step of an epoch
    runs at ``lr = max(base_lr * multiplier, min_lr)``; ``rates`` refuses a
    ``base_lr`` below ``min_lr``. Cuts go on once the rate sits at the floor
    (the multiplier and ``n_reductions`` keep recording them). Stopping once
    the rate is tiny (scikit-learn stops at 1e-6) is the training loop's
    business.

    Parameters
    ----------
    factor : float, default 0.2
        Multiplier applied at each reduction, in (0, 1); scikit-learn divides
        by 5.
    patience : int, default 10
        Epochs without improvement tolerated; scikit-learn's
        ``n_iter_no_change``.
    min_delta : float, default 1e-4
        Smallest decrease that counts as an improvement, finite and
        nonnegative; scikit-learn's ``tol``.
    min_lr : float, default 0.0
        Floor of the reduced rate, finite and nonnegative.

    Examples
    --------
    >>> import numpy as np
    >>> plateau = ReduceOnPlateau(factor=0.5, patience=1)
    >>> for epoch, loss in enumerate([1.0, 0.5, 0.5, 0.6]):
    ...     plateau.on_epoch_end(epoch, loss)
    >>> plateau.multiplier, plateau.n_reductions
    (0.5, 1)
    >>> plateau.rates(0.1, np.arange(2), epoch=4, samples_seen=0)
    array([0.05, 0.05])
    """

    name = "reduce_on_plateau"
    _STATE_KEYS = ("multiplier", "best", "wait", "n_reductions")
    # the state, set by reset and set_state
    _multiplier: float
    _best: float
    _wait: int
    _n_reductions: int

    def __init__(self, factor: float = 0.2, patience: int = 10, min_delta: float = 1e-4,
                 min_lr: float = 0.0):
        self._factor = as_real(factor, "factor")
        if not 0.0 < self._factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self._patience = check_count(patience, "patience", 0)
        self._min_delta = check_real(min_delta, "min_delta", 0.0)
        self._min_lr = check_real(min_lr, "min_lr", 0.0)
        self.reset()

    @property
    def multiplier(self) -> float:
        """Product of the reductions so far (1.0 before the first)."""
        return self._multiplier

    @property
    def best(self) -> float:
        """Best loss so far (inf before the first finite one)."""
        return self._best

    @property
    def wait(self) -> int:
        """Epochs since the last improvement or reduction."""
        return self._wait

    @property
    def n_reductions(self) -> int:
        """How many times the rate has been reduced."""
        return self._n_reductions

    def rates(self, base_lr: float, steps: np.ndarray, epoch: int,
              samples_seen: int) -> np.ndarray:
        base_lr, steps, _, _ = self._check_args(base_lr, steps, epoch, samples_seen)
        _check_min_lr(base_lr, self._min_lr)
        return self._fill(max(base_lr * self._multiplier, self._min_lr), steps)

    def on_epoch_end(self, epoch: int, value: float) -> None:
        check_count(epoch, "epoch", 0)
        value = as_real(value, "value")
        if math.isfinite(value) and value < self._best - self._min_delta:
            self._best = value
            self._wait = 0
            return
        self._wait += 1
        if self._wait > self._patience:
            self._multiplier *= self._factor
            self._n_reductions += 1
            self._wait = 0

    def reset(self) -> None:
        self._multiplier = 1.0
        self._best = math.inf
        self._wait = 0
        self._n_reductions = 0

    def get_state(self) -> dict[str, Any]:
        # Strict JSON has no infinity, so "no best yet" is saved as None.
        best = self._best if math.isfinite(self._best) else None
        return {"multiplier": self._multiplier, "best": best, "wait": self._wait,
                "n_reductions": self._n_reductions}

    def set_state(self, state: Mapping[str, Any]) -> None:
        check_keys(state, self._STATE_KEYS, "state")
        multiplier = check_real(state["multiplier"], "state['multiplier']", 0.0)
        if multiplier > 1.0:
            raise ValueError(f"state['multiplier'] must be at most 1, got {multiplier!r}")
        best = (math.inf if state["best"] is None
                else check_real(state["best"], "state['best']"))
        wait = check_count(state["wait"], "state['wait']", 0)
        n_reductions = check_count(state["n_reductions"], "state['n_reductions']", 0)
        self._multiplier, self._best = multiplier, best
        self._wait, self._n_reductions = wait, n_reductions

    def _params(self) -> dict[str, Any]:
        return {"factor": self._factor, "patience": self._patience,
                "min_delta": self._min_delta, "min_lr": self._min_lr}


_BY_NAME: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, InverseScaling,
                              CosineWarmup, ReduceOnPlateau)}

#: The names :func:`resolve` takes: scikit-learn's ``learning_rate`` values.
_SHORTHANDS = {"constant": Constant, "invscaling": InverseScaling, "adaptive": ReduceOnPlateau}


def from_config(config: Mapping[str, Any]) -> Schedule:
    """Rebuild a built-in schedule from its :meth:`Schedule.get_config`.

    Examples
    --------
    >>> from_config(StepDecay(step_size=3).get_config())
    StepDecay(step_size=3, gamma=0.1)
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    params = dict(config)
    name = params.pop("name", None)
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(f"config['name'] must be one of {sorted(_BY_NAME)}, got {name!r}")
    cls = _BY_NAME[name]
    unknown = set(params) - set(inspect.signature(cls).parameters)
    if unknown:
        raise ValueError(f"config for {name!r} has unknown parameter(s) {sorted(unknown)}")
    return cls(**params)


def resolve(value: Schedule | str | None) -> Schedule:
    """The schedule meant by a ``schedule=`` argument.

    ``None`` is :class:`Constant`; a :class:`Schedule` is used as it is; the
    names are scikit-learn's: ``"constant"``, ``"invscaling"``
    (:class:`InverseScaling` with its defaults) and ``"adaptive"``
    (:class:`ReduceOnPlateau` with its defaults). Schedules with required
    arguments have no name here: pass an instance.
    """
    if value is None:
        return Constant()
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        if value not in _SHORTHANDS:
            raise ValueError(f"schedule must be a Schedule, None or one of "
                             f"{sorted(_SHORTHANDS)}, got {value!r}")
        return _SHORTHANDS[value]()
    raise TypeError(f"schedule must be a Schedule, a name or None, got {type(value).__name__}")
