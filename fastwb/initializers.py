"""Initial weights and biases, chosen per layer.

Each layer's weights and biases come from an ``Initializer``: by default
He-normal for the ReLU family (``RELU_FAMILY``), LeCun-normal for selu,
Glorot-uniform for everything else, and zero biases (PyTorch's
``kaiming_normal_``, Keras' SELU recommendation and its ``Dense`` defaults). Values
are drawn in float64 from fastwb's counter-based generator (``fastwb._random``,
stream ``STREAM_INIT``, a = layer index, b = 0 for weights and 1 for biases),
so each value depends only on (seed, layer, part, index): not on the thread
count, the dtype (float32 gets the float64 values rounded) or the other layers.
"""
from __future__ import annotations

import abc
import math
from typing import ClassVar, cast

import numpy as np

from fastwb import _random
from fastwb._layout import layer_views, n_parameters
from fastwb._validation import as_int, check_allocation, check_real, shown
from fastwb.functions import LEAKY_SLOPE


#: Bytes of float64 and uint64 temporaries per uniform value drawn (index, bits,
#: their mixing, the result).
DRAW_BYTES = 32


def _check_draw(shape: tuple, n_uniforms: int) -> None:
    check_allocation(n_uniforms * DRAW_BYTES, f"drawing initial values of shape {shape}")


def _uniform(stream_key: int, shape: tuple, low: float, high: float) -> np.ndarray:
    _check_draw(shape, math.prod(shape))
    u = _random.uniform(stream_key, math.prod(shape))
    return (low + (high - low) * u).reshape(shape)


def _normal(stream_key: int, shape: tuple, mean: float, std: float) -> np.ndarray:
    """Box-Muller: value i from uniforms 2i and 2i+1, so it does not depend on the count."""
    _check_draw(shape, 2 * math.prod(shape))
    u = _random.uniform(stream_key, 2 * math.prod(shape))
    # log(1 - u), with 1 - u in (0, 1], is never log(0)
    radius = np.sqrt(-2.0 * np.log1p(-u[0::2]))
    return (mean + std * radius * np.cos(2.0 * np.pi * u[1::2])).reshape(shape)


class Initializer(abc.ABC):
    """How to fill one layer's weights or biases.

    Subclasses set ``name`` (the string ``resolve`` and ``from_config`` know
    them by) and ``_params`` (the constructor arguments ``get_config``
    reports), and implement ``sample``.
    """

    name: ClassVar[str]
    _params: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def sample(self, stream_key: int, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
        """Values for an array of ``shape`` (float64).

        Parameters
        ----------
        stream_key : int
            Key of the random stream (``fastwb._random.key``); value i of the
            result (in C order) is a function of the key and i alone.
        shape : tuple of int
            Shape of the result.
        fan_in, fan_out : int
            Input and output widths of the layer, which set the scale of the
            variance-scaling initializers.
        """

    def get_config(self) -> dict:
        """A JSON-able description: ``{"name": ..., **parameters}`` (see ``from_config``)."""
        return {"name": self.name, **{p: getattr(self, p) for p in self._params}}

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._params)
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    """Every value equal to ``value``.

    Examples
    --------
    >>> Constant(0.5).sample(0, (2,), fan_in=3, fan_out=2)
    array([0.5, 0.5])
    """

    name = "constant"
    _params: ClassVar[tuple[str, ...]] = ("value",)

    def __init__(self, value: float = 0.0):
        self.value = check_real(value, "value")

    def sample(self, stream_key: int, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
        check_allocation(8 * math.prod(shape), f"initial values of shape {shape}")
        return np.full(shape, self.value, dtype=np.float64)


class Zeros(Constant):
    """Every value 0 (the default for biases)."""

    name = "zeros"
    _params = ()

    def __init__(self):
        super().__init__(0.0)


class Ones(Constant):
    """Every value 1."""

    name = "ones"
    _params = ()

    def __init__(self):
        super().__init__(1.0)


class Uniform(Initializer):
    """Uniform on ``[low, high)``.

    Examples
    --------
    >>> values = Uniform(-1.0, 1.0).sample(0, (1000,), fan_in=1, fan_out=1000)
    >>> bool(values.min() >= -1.0 and values.max() < 1.0)
    True
    """

    name = "uniform"
    _params = ("low", "high")

    def __init__(self, low: float = -0.05, high: float = 0.05):
        self.low = check_real(low, "low")
        self.high = check_real(high, "high")
        if self.low > self.high:
            raise ValueError(f"low must not exceed high, got low={low!r}, high={high!r}")

    def sample(self, stream_key: int, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
        return _uniform(stream_key, shape, self.low, self.high)


class Normal(Initializer):
    """Normal with mean ``mean`` and standard deviation ``std``.

    Examples
    --------
    >>> Normal(mean=1.0, std=0.0).sample(0, (3,), fan_in=1, fan_out=3)
    array([1., 1., 1.])
    """

    name = "normal"
    _params = ("mean", "std")

    def __init__(self, mean: float = 0.0, std: float = 0.05):
        self.mean = check_real(mean, "mean")
        self.std = check_real(std, "std")
        if self.std < 0:
            raise ValueError(f"std must be nonnegative, got {std!r}")

    def sample(self, stream_key: int, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
        return _normal(stream_key, shape, self.mean, self.std)


class _VarianceScaling(Initializer):
    """Zero-mean values whose variance depends on the layer's fans.

    Normal subclasses draw N(0, variance); uniform ones U(-l, l) with
    l = sqrt(3 variance), which has the same variance.
    """

    normal: ClassVar[bool]

    @abc.abstractmethod
    def variance(self, fan_in: int, fan_out: int) -> float:
        """The variance of the values for a layer with these fans."""

    def sample(self, stream_key: int, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
        variance = self.variance(fan_in, fan_out)
        if self.normal:
            return _normal(stream_key, shape, 0.0, math.sqrt(variance))
        limit = math.sqrt(3.0 * variance)
        return _uniform(stream_key, shape, -limit, limit)


class _Glorot(_VarianceScaling):
    def variance(self, fan_in: int, fan_out: int) -> float:
        return 2.0 / (fan_in + fan_out)


class GlorotUniform(_Glorot):
    """Glorot (Xavier) uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).

    Balances the variance of activations forward and of gradients backward; the
    default for layers not in the ReLU family.

    Examples
    --------
    >>> values = GlorotUniform().sample(0, (100, 50), fan_in=100, fan_out=50)
    >>> bool(abs(values).max() <= (6 / 150) ** 0.5)
    True
    """

    name = "glorot_uniform"
    normal = False


class GlorotNormal(_Glorot):
    """Glorot (Xavier) normal: N(0, 2 / (fan_in + fan_out)), not truncated."""

    name = "glorot_normal"
    normal = True


class _He(_VarianceScaling):
    _params = ("negative_slope",)

    def __init__(self, negative_slope: float = 0.0):
        self.negative_slope = check_real(negative_slope, "negative_slope")

    def variance(self, fan_in: int, fan_out: int) -> float:
        return 2.0 / ((1.0 + self.negative_slope ** 2) * fan_in)


class HeNormal(_He):
    """He (Kaiming) normal: N(0, 2 / ((1 + a^2) fan_in)), a = ``negative_slope``.

    Keeps the activation variance through (leaky) ReLU layers; the default for
    them, with the leaky slope for ``"leaky_relu"``.

    Examples
    --------
    >>> HeNormal()
    HeNormal(negative_slope=0.0)
    >>> values = HeNormal(0.01).sample(0, (400, 300), fan_in=400, fan_out=300)
    >>> round(float(values.std()), 3)
    0.071
    """

    name = "he_normal"
    normal = True


class HeUniform(_He):
    """He (Kaiming) uniform: U(-l, l), l = sqrt(6 / ((1 + a^2) fan_in)), a = ``negative_slope``."""

    name = "he_uniform"
    normal = False


class _Lecun(_VarianceScaling):
    def variance(self, fan_in: int, fan_out: int) -> float:
        return 1.0 / fan_in


class LecunNormal(_Lecun):
    """LeCun normal: N(0, 1 / fan_in), not truncated (suits SELU-like activations)."""

    name = "lecun_normal"
    normal = True


class LecunUniform(_Lecun):
    """LeCun uniform: U(-l, l), l = sqrt(3 / fan_in)."""

    name = "lecun_uniform"
    normal = False


_CLASSES = {cls.name: cls for cls in (Zeros, Ones, Constant, Uniform, Normal, GlorotUniform,
                                      GlorotNormal, HeUniform, HeNormal, LecunUniform,
                                      LecunNormal)}
_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
            "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}
NAMES = tuple(sorted([*_CLASSES, *_ALIASES]))


def resolve(value, name: str = "weight_init") -> Initializer | None:
    """An ``Initializer`` from None, an ``Initializer`` or a name.

    Names are case-insensitive: one of ``NAMES``, which includes the PyTorch
    spellings ``xavier_*`` and ``kaiming_*``. A name gives the initializer
    with default parameters (``"constant"`` is 0).

    Parameters
    ----------
    value : None, Initializer or str
    name : str
        The parameter being resolved, for error messages.

    Examples
    --------
    >>> resolve("Kaiming_Normal")
    HeNormal(negative_slope=0.0)
    >>> resolve(None) is None
    True
    """
    if value is None or isinstance(value, Initializer):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an Initializer, a name (str) or None, got "
                        f"{shown(value)}")
    key = value.lower()
    cls = _CLASSES.get(_ALIASES.get(key, key))
    if cls is None:
        raise ValueError(f"{name}={shown(value)} is not an initializer; use one of "
                         f"{', '.join(NAMES)}")
    return cls()


def from_config(config: dict) -> Initializer:
    """The initializer that ``Initializer.get_config`` described.

    Examples
    --------
    >>> from_config(Uniform(-0.1, 0.1).get_config())
    Uniform(low=-0.1, high=0.1)
    """
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise TypeError(f"an initializer config is a dict with a 'name' string, got "
                        f"{shown(config)}")
    params = {k: v for k, v in config.items() if k != "name"}
    cls = _CLASSES.get(config["name"])
    if cls is None:
        raise ValueError(f"unknown initializer {shown(config['name'])}; use one of "
                         f"{', '.join(_CLASSES)}")
    return cls(**params)


#: The ReLU family: He-normal by default. Besides relu and leaky_relu the
#: smooth ReLU-likes, which are near z for large z and near 0 (elu: near -1)
#: for very negative z; selu's self-normalisation wants LeCun-normal instead.
RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "softplus", "swish")


def default_weight_init(activation: str) -> Initializer:
    """He-normal for the ReLU family (``RELU_FAMILY``; with the leaky slope for
    leaky_relu), LeCun-normal for selu (as Keras recommends), Glorot-uniform
    otherwise."""
    if activation == "leaky_relu":
        return HeNormal(negative_slope=LEAKY_SLOPE)
    if activation in RELU_FAMILY:
        return HeNormal()
    if activation == "selu":
        return LecunNormal()
    return GlorotUniform()


def resolve_seed(seed) -> int:
    """The seed as an int in [0, 2**64); None draws a fresh 63-bit one from the OS."""
    if seed is None:
        # drawn from the OS, the entropy is one int (the stub allows the given kinds too)
        return cast(int, np.random.SeedSequence().entropy) & ((1 << 63) - 1)
    value = as_int(seed, "seed")
    if not 0 <= value < 1 << 64:
        raise ValueError(f"seed must be nonnegative and below 2**64, got {value}")
    return value


def _per_layer(inits, n_layers: int, name: str) -> list:
    if inits is None:
        return [None] * n_layers
    inits = list(inits)
    if len(inits) != n_layers:
        raise ValueError(f"{name} needs one entry per layer ({n_layers}), got {len(inits)}")
    return [resolve(init, f"{name}[{i}]") for i, init in enumerate(inits)]


def initial_parameters(sizes, activations, dtype, seed, weight_inits=None,
                       bias_inits=None) -> np.ndarray:
    """A flat parameter buffer (``fastwb._layout``) for a network of layer widths ``sizes``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_in, h1, ..., n_out]``.
    activations : sequence of str
        Each layer's activation, which picks its default weight initializer.
    dtype : numpy dtype
        Dtype of the buffer; values are drawn in float64 and rounded to it.
    seed : int or None
        Passed through ``resolve_seed``.
    weight_inits, bias_inits : list of (Initializer or None), or None
        One entry per layer; None (the list or an entry) means the default:
        ``default_weight_init(activation)`` for weights, ``Zeros`` for biases.
    """
    seed = resolve_seed(seed)
    n_layers = len(sizes) - 1
    check_allocation(n_parameters(sizes) * np.dtype(dtype).itemsize,
                     f"the parameters of layer sizes {list(sizes)}")
    flat = np.empty(n_parameters(sizes), dtype=dtype)
    layers = zip(layer_views(flat, sizes), activations,
                 _per_layer(weight_inits, n_layers, "weight_inits"),
                 _per_layer(bias_inits, n_layers, "bias_inits"))
    for layer, ((W, b), activation, weight_init, bias_init) in enumerate(layers):
        n_in, n_out = W.shape
        if weight_init is None:
            weight_init = default_weight_init(activation)
        if bias_init is None:
            bias_init = Zeros()
        # filled one layer at a time so the float64 temporaries stay one layer's size
        W[...] = weight_init.sample(_random.key(seed, _random.STREAM_INIT, layer, 0),
                                    W.shape, n_in, n_out)
        b[...] = bias_init.sample(_random.key(seed, _random.STREAM_INIT, layer, 1),
                                  b.shape, n_in, n_out)
    return flat
