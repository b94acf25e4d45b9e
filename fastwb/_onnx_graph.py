"""The ONNX graph of a fastwb network and of its estimators' outputs.

One code path writes every graph: ``fastwb.onnx.to_onnx`` hands these
functions a ``StandaloneGraph``, and the converters fastwb registers with
skl2onnx (``fastwb._onnx_skl2onnx``) hand them skl2onnx's container through
the same small interface (``Graph``), so a network inside a user's Pipeline
becomes the same nodes as the network alone.

Which ONNX operators, and why:

* relu, sigmoid, tanh, exp and softmax are ONNX's own operators in both
  dtypes.
* leaky_relu, elu, selu and softplus are ONNX's ``LeakyRelu``, ``Elu``,
  ``Selu`` and ``Softplus`` in float32. onnxruntime implements those for
  float only, and their constants are float attributes, so in float64 they are
  written with elementwise operators and float64 constants
  (``relu(z) - 0.01 relu(-z)``, ``scale (relu(z) + alpha (exp(min(z, 0)) - 1))``,
  ``relu(z) + log(1 + exp(-|z|))``).
* gelu (the exact erf form) is ONNX's ``Gelu`` from opset 20, else
  ``z * (1 + erf(z / sqrt 2)) / 2`` (``Erf``, opset 9). onnxruntime has
  neither ``Gelu`` nor ``Erf`` for float64, so in float64 Phi(z) is written
  through ``erfc`` = ``exp(-t^2) erfcx(t)``, with erfcx a Chebyshev series
  fitted at export time (full float64 accuracy in about 100 elementwise
  nodes; ``Where``, opset 9).
* swish is ``z / (1 + exp(-z))``.
"""
from __future__ import annotations

import functools
import math
from typing import Protocol, Sequence

import numpy as np
from numpy.polynomial import chebyshev
from scipy import special

from fastwb.functions import ELU_ALPHA, LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE

#: The oldest opset fastwb writes: onnxruntime runs nothing older, and ``Add``
#: broadcasts from it on.
OLDEST_OPSET = 7

#: The first opset of each operator that needs one newer than OLDEST_OPSET.
_OPERATOR_SINCE = {"Erf": 9, "Where": 9, "Gelu": 20}

_INVERSE_SQRT2 = 1 / math.sqrt(2)


class Graph(Protocol):
    """Where the nodes go: names, constants and nodes, at one opset."""

    opset: int

    def name(self, hint: str) -> str:
        """A name no other value of the graph has."""

    def constant(self, hint: str, value: np.ndarray) -> str:
        """The name of an initializer holding ``value`` (its dtype kept)."""

    def node(self, op: str, inputs: Sequence[str], output: str | None = None,
             **attributes) -> str:
        """Add one node of the default domain; returns its output's name."""


def check_opset(op: str, opset: int, purpose: str) -> None:
    """Refuse ``op`` at an opset older than the one that introduced it."""
    since = _OPERATOR_SINCE.get(op, OLDEST_OPSET)
    if opset < since:
        raise ValueError(f"{purpose} needs ONNX opset {since} or later (operator {op}); "
                         f"opset {opset} was asked for")


def dense_layers(graph: Graph, x: str, layers: Sequence[tuple[np.ndarray, np.ndarray]],
                 activations: Sequence[str], dtype: np.dtype) -> str:
    """``a = f(a W + b)`` for each layer from the input ``x``; returns the output's name."""
    a = x
    for i, ((W, b), activation) in enumerate(zip(layers, activations)):
        weights = graph.constant(f"W{i}", np.asarray(W, dtype=dtype))
        bias = graph.constant(f"b{i}", np.asarray(b, dtype=dtype).reshape(1, -1))
        z = graph.node("Add", [graph.node("MatMul", [a, weights]), bias])
        a = activate(graph, activation, z, dtype, f"layer {i + 1}'s {activation} activation")
    return a


def activate(graph: Graph, activation: str, z: str, dtype: np.dtype, purpose: str) -> str:
    """The nodes of fastwb's activation ``activation`` (``fastwb.functions``) on ``z``."""
    single = dtype == np.float32
    scalar = _Scalars(graph, dtype)
    if activation == "identity":
        return z
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp"}
    if activation in simple:
        return graph.node(simple[activation], [z])
    if activation == "softmax":
        return graph.node("Softmax", [z], axis=1)
    if activation == "swish":
        # z / (1 + e^-z): onnxruntime's float32 Sigmoid is accurate to ~1e-7 absolute,
        # which z then scales; Exp keeps its relative accuracy (inf gives -0)
        return graph.node("Div", [z, graph.node("Add", [
            scalar(1.0), graph.node("Exp", [graph.node("Neg", [z])])])])
    if activation == "leaky_relu":
        if single:
            return graph.node("LeakyRelu", [z], alpha=LEAKY_SLOPE)
        # relu(z) - slope relu(-z), not max(z, slope z): onnxruntime has no float64 Max
        # before opset 8, and this is exact (one product) as the max is
        negative = graph.node("Relu", [graph.node("Neg", [z])])
        return graph.node("Sub", [graph.node("Relu", [z]),
                                  graph.node("Mul", [negative, scalar(LEAKY_SLOPE)])])
    if activation in ("elu", "selu"):
        alpha, scale = (ELU_ALPHA, 1.0) if activation == "elu" else (SELU_ALPHA, SELU_SCALE)
        if single:
            return (graph.node("Elu", [z], alpha=alpha) if activation == "elu"
                    else graph.node("Selu", [z], alpha=alpha, gamma=scale))
        negative_part = graph.node("Neg", [graph.node("Relu", [graph.node("Neg", [z])])])
        saturating = graph.node("Mul", [graph.node("Sub", [graph.node("Exp", [negative_part]),
                                                           scalar(1.0)]), scalar(alpha)])
        elu = graph.node("Add", [graph.node("Relu", [z]), saturating])
        return elu if scale == 1.0 else graph.node("Mul", [elu, scalar(scale)])
    if activation == "softplus":
        if single:
            return graph.node("Softplus", [z])
        # max(z, 0) + log(1 + e^-|z|): exp never overflows
        tail = graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [z])])])
        return graph.node("Add", [graph.node("Relu", [z]),
                                  graph.node("Log", [graph.node("Add", [tail, scalar(1.0)])])])
    if activation == "gelu":
        return _gelu(graph, z, dtype, purpose)
    raise ValueError(f"fastwb has no activation {activation!r} to write as ONNX")


def _gelu(graph: Graph, z: str, dtype: np.dtype, purpose: str) -> str:
    """z Phi(z), the exact (erf) form."""
    scalar = _Scalars(graph, dtype)
    if dtype == np.float32:
        if graph.opset >= _OPERATOR_SINCE["Gelu"]:
            return graph.node("Gelu", [z], approximate="none")
        check_opset("Erf", graph.opset, purpose)
        erf = graph.node("Erf", [graph.node("Mul", [z, scalar(_INVERSE_SQRT2)])])
        half_z = graph.node("Mul", [z, scalar(0.5)])
        return graph.node("Mul", [half_z, graph.node("Add", [erf, scalar(1.0)])])
    check_opset("Where", graph.opset, purpose)
    # onnxruntime has neither Gelu nor Erf in float64: Phi(z) = erfc(t) / 2 for z < 0 and
    # 1 - erfc(t) / 2 beyond, t = |z| / sqrt 2, with erfc(t) = exp(-t^2) erfcx(t) and
    # erfcx a Chebyshev series in s = (t - k) / (t + k) (Clenshaw's recurrence)
    t = graph.node("Mul", [graph.node("Abs", [z]), scalar(_INVERSE_SQRT2)])
    k = scalar(_ERFCX_SCALE)
    s = graph.node("Div", [graph.node("Sub", [t, k]), graph.node("Add", [t, k])])
    two_s = graph.node("Mul", [s, scalar(2.0)])
    coefficients = _erfcx_chebyshev()
    after, later = scalar(coefficients[-1]), scalar(0.0)
    for c in coefficients[-2:0:-1]:
        after, later = graph.node("Add", [graph.node("Sub", [graph.node(
            "Mul", [two_s, after]), later]), scalar(c)]), after
    erfcx = graph.node("Add", [graph.node("Sub", [graph.node("Mul", [s, after]), later]),
                               scalar(coefficients[0])])
    gaussian = graph.node("Exp", [graph.node("Neg", [graph.node("Mul", [t, t])])])
    half_erfc = graph.node("Mul", [graph.node("Mul", [gaussian, erfcx]), scalar(0.5)])
    phi = graph.node("Where", [graph.node("Less", [z, scalar(0.0)]), half_erfc,
                               graph.node("Sub", [scalar(1.0), half_erfc])])
    return graph.node("Mul", [z, phi])


#: erfcx(t) = exp(t^2) erfc(t), t >= 0, as a Chebyshev series of this degree in
#: s = (t - k) / (t + k): within 2e-14 relative for t up to 30 (beyond, Phi(-t sqrt 2)
#: underflows), checked against scipy's erfcx
_ERFCX_SCALE, _ERFCX_DEGREE = 4.0, 32


@functools.cache
def _erfcx_chebyshev() -> np.ndarray:
    k = _ERFCX_SCALE
    return chebyshev.chebinterpolate(lambda s: special.erfcx(k * (1 + s) / (1 - s)),
                                     _ERFCX_DEGREE)


class _Scalars:
    """Scalar constants of one dtype, each written once per graph."""

    def __init__(self, graph: Graph, dtype: np.dtype):
        self._graph, self._dtype = graph, dtype

    def __call__(self, value: float) -> str:
        return self._graph.constant("c", np.array(value, dtype=self._dtype))


def classifier_outputs(graph: Graph, probabilities: str, kind: str, classes: np.ndarray,
                       dtype: np.dtype, label: str, proba: str) -> None:
    """``label`` and ``proba`` from the output layer's activations, as fastwb's
    ``predict`` and ``predict_proba`` compute them.

    ``kind`` is "binary" (one sigmoid output: the probability of ``classes[1]``),
    "multiclass" (softmax) or "multilabel" (one sigmoid per label; the labels
    are 0/1 int64, as ``predict`` returns them). A class wins on ``p > 0.5``, a
    tie between classes goes to the first, as in ``numpy.argmax``.
    """
    if kind == "multilabel":
        graph.node("Identity", [probabilities], proba)
        positive = graph.node("Greater", [probabilities, graph.constant(
            "half", np.array(0.5, dtype=dtype))])
        graph.node("Cast", [positive], label, to=7)     # INT64
        return
    if kind == "binary":
        one = graph.constant("one", np.array(1.0, dtype=dtype))
        graph.node("Concat", [graph.node("Sub", [one, probabilities]), probabilities], proba,
                   axis=1)
        winner = graph.node("Cast", [graph.node("Greater", [probabilities, graph.constant(
            "half", np.array(0.5, dtype=dtype))])], to=7)
        # a binary estimator fitted on one class predicts it everywhere
        if len(classes) == 1:
            classes = np.concatenate([classes, classes])
        index = graph.node("Reshape", [winner, graph.constant("flat", np.array([-1]))])
    else:
        graph.node("Identity", [probabilities], proba)
        index = graph.node("ArgMax", [probabilities], axis=1, keepdims=0)
    graph.node("Gather", [graph.constant("classes", label_array(classes)), index], label,
               axis=0)


def label_array(classes: np.ndarray) -> np.ndarray:
    """The classes as an ONNX tensor can hold them: integers as int64, text as
    UTF-8 strings (object array), booleans and floats as they are."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "iu":
        return classes.astype(np.int64)
    if classes.dtype.kind in "bf":
        return classes
    return np.array([str(c) for c in classes], dtype=object)


def label_kind(classes: np.ndarray) -> str:
    """ "int64", "bool", "float32"/"float64" or "string": the type of the label output."""
    array = label_array(classes)
    return "string" if array.dtype == object else array.dtype.name


def network_outputs(graph: Graph, network, x: str, dtype: np.dtype) -> str:
    """The output layer's activations of a ``fastwb.Network`` for the input ``x``."""
    layers = [(layer.weights, layer.bias) for layer in network.layers]
    return dense_layers(graph, x, layers, network.activations, dtype)


def classifier_kind(estimator) -> str:
    """ "binary", "multiclass" or "multilabel", from a fitted classifier's public attributes."""
    if estimator.out_activation_ == "softmax":
        return "multiclass"
    return "multilabel" if estimator.n_outputs_ > 1 else "binary"


def estimator_outputs(graph: Graph, estimator, x: str, outputs: Sequence[str],
                      dtype: np.dtype) -> None:
    """A fitted fastwb estimator's graph: ``outputs`` are (label, probabilities)
    for a classifier, (predictions,) of shape (N, n_outputs) for a regressor."""
    activations = network_outputs(graph, estimator.network, x, dtype)
    if hasattr(estimator, "classes_"):
        label, proba = outputs
        classifier_outputs(graph, activations, classifier_kind(estimator), estimator.classes_,
                           dtype, label, proba)
    else:
        graph.node("Identity", [activations], outputs[0])
