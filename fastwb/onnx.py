"""Export to ONNX: ``to_onnx`` writes a fastwb model as an ``onnx.ModelProto``.

It takes a ``fastwb.Network``, a fitted ``fastwb.sklearn.MLPClassifier`` or
``MLPRegressor``, and a scikit-learn ``Pipeline`` (or
``TransformedTargetRegressor``) ending in one of them. The network's graph is
written by ``fastwb._onnx_graph``; pipelines go through skl2onnx, with which
``register_skl2onnx`` registers fastwb's estimators (and a converter for
``TransformedTargetRegressor``, which skl2onnx lacks) so that the same code
writes the network inside them. After ``register_skl2onnx()`` a user's own
pipeline converts with ``skl2onnx.to_onnx`` too.

Inputs and outputs, as skl2onnx names them:

* a Network: input ``X`` (N, n_features), output ``Y`` (N, n_outputs), the
  output layer's activations (``Network.predict``);
* a classifier: input ``X``, outputs ``label`` (N) (N, n_labels int64 0/1 for
  multi-label) and ``probabilities`` (N, n_classes), a plain tensor: ZipMap,
  skl2onnx's default, turns the probabilities into a list of dictionaries
  that most runtimes handle slowly or not at all, so it is off unless
  ``zipmap=True`` asks for it;
* a regressor: input ``X``, output ``variable`` (N, n_outputs), (N, 1) for one
  target as every skl2onnx regressor;
* a pipeline: input ``X`` of the dtype asked for, or behind a ColumnTransformer
  on named columns or on text one input (N, 1) per column, named as the
  columns (else ``column_0``...), string tensors for text columns.

Optional dependencies: onnx for every export, skl2onnx for pipelines (and
``zipmap``), onnxruntime for ``quantize``: ``pip install "fastwb[onnx]"``.
"""
from __future__ import annotations

import copy
import os
import sys
import tempfile
from typing import Any

import numpy as np

from fastwb import _onnx_graph
from fastwb._columns import column_positions
from fastwb._onnx_graph import OLDEST_OPSET
from fastwb._optional import ONNX_REQUIREMENT
from fastwb._version import __version__
from fastwb.network import Network, _resolve_dtype

#: The opset written unless another is asked for: Gelu is an operator of its
#: own from opset 20; onnx 1.16 and onnxruntime 1.18 know opset 21.
DEFAULT_OPSET = 21

#: The ``quantize`` choices: the type of the quantized weights.
QUANTIZE = ("int8", "uint8")

#: Quantization rewrites MatMul as MatMulInteger with DynamicQuantizeLinear (opset 11).
_QUANTIZE_OPSET = 11

__all__ = ["DEFAULT_OPSET", "QUANTIZE", "register_skl2onnx", "to_onnx"]


def to_onnx(model, path: str | os.PathLike | None = None, *, opset: int | None = None,
            dtype=None, quantize: str | None = None, X=None, zipmap: bool = False,
            name: str | None = None):
    """The ONNX graph of ``model``, checked by ``onnx.checker``; written to ``path`` if given.

    Parameters
    ----------
    model : Network, fitted fastwb estimator, Pipeline or TransformedTargetRegressor
        A pipeline's steps must be among those skl2onnx converts (scalers,
        SimpleImputer, OneHotEncoder, ColumnTransformer, ...) and its last
        step a fastwb estimator (or a TransformedTargetRegressor around one,
        with a StandardScaler, MinMaxScaler, MaxAbsScaler or RobustScaler).
    path : str or path-like, optional
        Where to write the model (its folder must exist).
    opset : int, optional
        The ONNX opset, from 7 (gelu needs 9, quantization 11) to the newest
        the installed onnx knows (for pipelines: skl2onnx's newest), default
        ``DEFAULT_OPSET``. skl2onnx stamps a pipeline with the oldest opset
        its operators need, up to this one.
    dtype : {"float32", "float64"}, optional
        Precision of the graph's input, weights and outputs; default the
        network's (float32 with ``quantize``).
    quantize : {"int8", "uint8"}, optional
        Quantize the weights of every matrix product to 8 bits with
        onnxruntime's ``quantize_dynamic`` (activations are quantized to uint8
        at run time, per batch). "int8" (QInt8, signed weights: the default of
        onnxruntime and the one its documentation recommends on x86-64 CPUs);
        "uint8" (QUInt8) is the fallback it suggests where the U8S8
        instructions of CPUs without VNNI saturate and cost accuracy. The
        model is float32 and needs opset 11 or later.
    X : array-like or DataFrame, optional
        A sample of a pipeline's input, which tells its columns' types (text
        columns become string inputs). Without it the types are those of the
        fitted pipeline: ``n_features_in_`` numeric features, or per-column
        inputs behind a ColumnTransformer fitted on named columns or on text,
        text where a OneHotEncoder was fitted on text.
    zipmap : bool or "columns", default False
        Classifiers: skl2onnx's ZipMap on the probabilities (one dictionary
        per sample, or with "columns" one output per class).
    name : str, optional
        The graph's name (default the model's class name).

    Returns
    -------
    onnx.ModelProto

    Examples
    --------
    >>> import numpy as np, fastwb, fastwb.onnx
    >>> net = fastwb.Network([4, 8, 3], loss="softmax_cross_entropy", seed=0)
    >>> model = fastwb.onnx.to_onnx(net)
    >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    (['X'], ['Y'])
    """
    onnx = _require("onnx")
    path = _checked_path(path)
    opset = _checked_opset(opset, onnx)
    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"quantize must be None or one of {', '.join(QUANTIZE)}, got "
                         f"{quantize!r}")
    dtype = _checked_dtype(dtype, quantize)
    if quantize is not None and opset < _QUANTIZE_OPSET:
        raise ValueError(f"quantize needs ONNX opset {_QUANTIZE_OPSET} or later "
                         f"(DynamicQuantizeLinear); opset {opset} was asked for")
    if zipmap not in (False, True, "columns"):
        raise ValueError(f"zipmap must be False, True or 'columns', got {zipmap!r}")
    name = name or type(model).__name__
    if isinstance(model, Network):
        proto = _standalone(onnx, model, opset, dtype or model.dtype, name)
    elif _is_estimator(model) and not zipmap:
        _check_fitted(model)
        proto = _standalone(onnx, model, opset, dtype or model.network.dtype, name)
    elif _is_estimator(model) or _is_pipeline(model):
        proto = _through_skl2onnx(model, opset, dtype, X, zipmap, name)
    else:
        raise TypeError(f"to_onnx converts a fastwb Network, a fastwb MLPClassifier or "
                        f"MLPRegressor, or a scikit-learn Pipeline or "
                        f"TransformedTargetRegressor ending in one; got "
                        f"{type(model).__module__}.{type(model).__qualname__} (skl2onnx "
                        f"converts scikit-learn's own models)")
    onnx.checker.check_model(proto)
    if quantize is not None:
        proto = _quantized(onnx, proto, quantize)
    if path is not None:
        onnx.save(proto, path)
    return proto


def register_skl2onnx() -> None:
    """Register fastwb's estimators, and a converter for scikit-learn's
    ``TransformedTargetRegressor``, with skl2onnx (once per process is enough).

    Afterwards ``skl2onnx.to_onnx`` and ``convert_sklearn`` convert pipelines
    that hold them, with the graph ``to_onnx`` writes.
    """
    _require("skl2onnx")
    from fastwb import _onnx_skl2onnx
    _onnx_skl2onnx.register()


# --- the checks --------------------------------------------------------------------------

def _require(module: str):
    """Import one of the ONNX packages, or say how to install them."""
    try:
        return __import__(module)
    except ImportError as error:
        if (error.name or "").split(".")[0] != module:
            raise
        raise ImportError(f"fastwb.onnx needs {ONNX_REQUIREMENT} ({module} is missing)",
                          name=module) from error


def _checked_path(path) -> str | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or path-like), got {path!r}")
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "path is a folder, not a file name", path)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "no such folder to write the ONNX file in", folder)
    return path


def _checked_opset(opset, onnx) -> int:
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an integer, got {opset!r}")
    if not OLDEST_OPSET <= opset <= newest:
        raise ValueError(f"opset must be from {OLDEST_OPSET} (the oldest onnxruntime runs) to "
                         f"{newest} (the newest onnx {onnx.__version__} knows), got {opset}")
    return int(opset)


def _checked_dtype(dtype, quantize: str | None) -> np.dtype | None:
    if dtype is None:
        return np.dtype(np.float32) if quantize is not None else None
    resolved = _resolve_dtype(dtype)        # a network's dtype, checked as Network checks it
    if quantize is not None and resolved != np.float32:
        raise ValueError("quantize writes a float32 model with 8-bit weights; dtype must be "
                         "float32 (or None)")
    return resolved


def _is_estimator(model) -> bool:
    """A fastwb estimator (whose module is loaded if the model is one)."""
    module = sys.modules.get("fastwb.sklearn")
    return module is not None and isinstance(model, (module.MLPClassifier,
                                                     module.MLPRegressor))


def _is_pipeline(model) -> bool:
    names = {(cls.__module__.split(".")[0], cls.__name__) for cls in type(model).__mro__}
    return bool(names & {("sklearn", "Pipeline"), ("sklearn", "TransformedTargetRegressor")})


def _check_fitted(estimator) -> None:
    from sklearn.utils.validation import check_is_fitted
    check_is_fitted(estimator)


# --- a model of fastwb's own graph -------------------------------------------------------

class StandaloneGraph:
    """``_onnx_graph.Graph`` collecting nodes and initializers for ``onnx.helper``."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._counts: dict[str, int] = {}
        self._scalars: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        count = self._counts.get(hint, 0)
        self._counts[hint] = count + 1
        return f"{hint}_{count}" if count else hint

    def constant(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper
        key = (value.dtype.str, value.shape, value.tobytes()) if value.size == 1 else None
        if key in self._scalars:
            return self._scalars[key]
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        if key is not None:
            self._scalars[key] = name
        return name

    def node(self, op: str, inputs, output: str | None = None, **attributes) -> str:
        from onnx import helper
        _onnx_graph.check_opset(op, self.opset, f"operator {op}")
        output = output or self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [output],
                                           name=self.name(f"{op}_node"), **attributes))
        return output


def _standalone(onnx, model, opset: int, dtype: np.dtype, name: str):
    """The ModelProto of a Network or a fitted estimator, without skl2onnx."""
    from onnx import TensorProto, helper
    graph = StandaloneGraph(opset)
    tensor = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    network = model if isinstance(model, Network) else model.network
    inputs = [helper.make_tensor_value_info("X", tensor, ["N", network.sizes[0]])]
    n_out = network.sizes[-1]
    if isinstance(model, Network):
        graph.node("Identity", [_onnx_graph.network_outputs(graph, model, "X", dtype)], "Y")
        outputs = [helper.make_tensor_value_info("Y", tensor, ["N", n_out])]
    elif hasattr(model, "classes_"):
        _onnx_graph.estimator_outputs(graph, model, "X", ["label", "probabilities"], dtype)
        kind = _onnx_graph.classifier_kind(model)
        label_type = helper.np_dtype_to_tensor_dtype(
            np.dtype(np.int64) if kind == "multilabel"
            else _onnx_graph.label_array(model.classes_).dtype)
        n_columns = 2 if kind == "binary" else n_out
        outputs = [helper.make_tensor_value_info("label", label_type,
                                                 ["N", n_out] if kind == "multilabel" else ["N"]),
                   helper.make_tensor_value_info("probabilities", tensor, ["N", n_columns])]
    else:
        _onnx_graph.estimator_outputs(graph, model, "X", ["variable"], dtype)
        outputs = [helper.make_tensor_value_info("variable", tensor, ["N", n_out])]
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        helper.make_graph(graph.nodes, name, inputs, outputs, graph.initializers),
        opset_imports=opsets, producer_name="fastwb", producer_version=__version__,
        # IR 4 is the first whose initializers need not be graph inputs
        ir_version=max(4, helper.find_min_ir_version_for(opsets)))
    return proto


# --- pipelines, through skl2onnx ---------------------------------------------------------

def _through_skl2onnx(model, opset: int, dtype: np.dtype | None, X, zipmap, name: str):
    skl2onnx = _require("skl2onnx")
    newest = skl2onnx.get_latest_tested_opset_version()
    if opset > newest:
        raise ValueError(f"skl2onnx {skl2onnx.__version__}, which converts pipelines, writes "
                         f"opsets up to {newest}; opset {opset} was asked for")
    register_skl2onnx()
    final = _final_estimator(model)
    dtype = dtype or final.network.dtype
    options = {id(final): {"zipmap": zipmap}} if hasattr(final, "classes_") else None
    n_features, names = _input_columns(model, X)
    initial_types = _initial_types(model, X, dtype, n_features, names)
    return skl2onnx.convert_sklearn(_by_position(model, n_features, names),
                                    initial_types=initial_types, target_opset=opset,
                                    options=options, name=name)


def _final_estimator(model):
    """The fastwb estimator at the end of a (fitted) pipeline; TypeError if there is none."""
    from sklearn.utils.validation import check_is_fitted
    found = model
    while not _is_estimator(found):
        kind = type(found).__name__
        if kind == "Pipeline" and _is_pipeline(found):
            for _, step in found.steps[:-1]:
                if step not in (None, "passthrough"):
                    check_is_fitted(step)
            found = found.steps[-1][1]
        elif kind == "TransformedTargetRegressor" and _is_pipeline(found):
            check_is_fitted(found)
            found = found.regressor_
        else:
            raise TypeError(f"to_onnx converts pipelines that end in a fastwb estimator; this "
                            f"one ends in {type(found).__qualname__} (skl2onnx converts "
                            f"scikit-learn's own models)")
    check_is_fitted(found)
    return found


def _initial_types(model, X, dtype: np.dtype, n_features: int,
                   names: list | None) -> list[tuple[str, Any]]:
    """skl2onnx's input types: one tensor X, or one (N, 1) input per column where a
    ColumnTransformer routes them (named as the pipeline's columns, else column_0...)."""
    from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType,
                                            StringTensorType)
    number = FloatTensorType if dtype == np.float32 else DoubleTensorType
    text = _text_columns(model, X, n_features, names)
    if _column_transformers(model) and (names is not None or text):
        names = names if names is not None else [f"column_{j}" for j in range(n_features)]
        return [(str(column), StringTensorType([None, 1]) if j in text else number([None, 1]))
                for j, column in enumerate(names)]
    if text and len(text) < n_features:
        raise ValueError(f"this pipeline takes text and numbers in one table ({len(text)} of "
                         f"{n_features} columns are text) but has no ColumnTransformer to "
                         f"route them; ONNX tensors hold one type")
    return [("X", StringTensorType([None, n_features]) if text else number([None, n_features]))]


def _input_columns(model, X) -> tuple[int, list | None]:
    """The number of the pipeline's input columns and their names (None if unnamed):
    X's, else those it was fitted on."""
    names = getattr(model, "feature_names_in_", None)
    if X is not None:
        if np.ndim(X) != 2:
            raise ValueError(f"X must be a 2-D sample of the pipeline's input (an array or a "
                             f"DataFrame), got {np.ndim(X)} dimensions")
        if hasattr(X, "columns"):
            names = X.columns
        elif names is not None and len(names) != np.shape(X)[1]:
            names = None
        return np.shape(X)[1], None if names is None else list(names)
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        raise ValueError("to_onnx needs a sample X (a 2-D array or a DataFrame) to tell this "
                         "pipeline's input: it has no n_features_in_")
    return int(n_features), None if names is None else list(names)


def _text_columns(model, X, n_features: int, names: list | None) -> set[int]:
    """The positions of the text columns: from X's dtypes (or, in an object array, the
    columns holding text), else from the categories fitted on them."""
    if X is not None:
        dtypes = getattr(X, "dtypes", None)
        if dtypes is not None:
            return {j for j, kind in enumerate(dtypes) if kind.kind not in "biuf"}
        array = np.asarray(X)
        if array.dtype.kind in "US":
            return set(range(n_features))
        if array.dtype.kind != "O":
            return set()
        return {j for j in range(n_features)
                if any(isinstance(value, (str, bytes)) for value in array[:, j])}
    text: set[int] = set()
    for transformer in _column_transformers(model):
        for _, step, columns in transformer.transformers_:
            if _fitted_on_text(step):
                text.update(column_positions(columns, n_features, names))
    if not text and _fitted_on_text(model):
        text.update(range(n_features))
    return text


def _by_position(model, n_features: int, names: list | None):
    """``model`` with its ColumnTransformer's columns as lists of positions, which
    skl2onnx finds in one input or in per-column inputs alike (it reads a boolean
    mask, numpy integers or negative indices wrongly). The ColumnTransformer, and the
    Pipeline and TransformedTargetRegressor around it, are shallow copies."""
    if hasattr(model, "steps") or hasattr(model, "regressor_"):
        copied = copy.copy(model)
        if hasattr(model, "steps"):
            first, step = model.steps[0]
            copied.steps = [(first, _by_position(step, n_features, names)), *model.steps[1:]]
        else:
            copied.regressor_ = _by_position(model.regressor_, n_features, names)
        return copied
    if type(model).__name__ == "ColumnTransformer" and hasattr(model, "transformers_"):
        copied = copy.copy(model)
        copied.transformers_ = [(name, step, column_positions(columns, n_features, names))
                                for name, step, columns in model.transformers_]
        return copied
    return model


def _fitted_on_text(step) -> bool:
    """Whether a step (or a Pipeline's first step) is an encoder fitted on text."""
    while hasattr(step, "steps"):
        step = step.steps[0][1]
    categories = getattr(step, "categories_", None)
    return categories is not None and any(np.asarray(c).dtype.kind in "OUS" for c in categories)


def _column_transformers(model) -> list:
    """The ColumnTransformers that select columns of the pipeline's own input."""
    while hasattr(model, "steps") or hasattr(model, "regressor_"):
        model = model.steps[0][1] if hasattr(model, "steps") else model.regressor_
    if type(model).__name__ == "ColumnTransformer" and hasattr(model, "transformers_"):
        return [model]
    return []


# --- quantization ------------------------------------------------------------------------

def _quantized(onnx, proto, weight_type: str):
    """``proto`` with 8-bit weights in every MatMul (onnxruntime's dynamic quantization)."""
    _require("onnxruntime")
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    kind = QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)       # its advice to pre-process fits conv nets, not MLPs
    try:
        with tempfile.TemporaryDirectory() as folder:
            source, target = os.path.join(folder, "float.onnx"), os.path.join(folder, "q.onnx")
            onnx.save(proto, source)
            quantize_dynamic(source, target, op_types_to_quantize=["MatMul"], weight_type=kind)
            quantized = onnx.load(target)
    finally:
        quiet.setLevel(level)
    onnx.checker.check_model(quantized)
    return quantized
