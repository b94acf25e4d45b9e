"""fastwb's converters for skl2onnx (``fastwb.onnx.register_skl2onnx`` registers them).

The estimators' converters hand skl2onnx's container to ``fastwb._onnx_graph``
(``ContainerGraph``), the code that writes ``fastwb.onnx.to_onnx``'s own
graphs. ``TransformedTargetRegressor``, which skl2onnx does not convert, gets
a parser that converts its regressor as skl2onnx converts any model, then the
inverse of its target scaler, with the scaler's own operations in its order.
Imported only where skl2onnx and scikit-learn are installed.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import (BooleanTensorType, DoubleTensorType, FloatTensorType,
                                        Int64TensorType, StringTensorType)
from sklearn.compose import TransformedTargetRegressor
from sklearn.preprocessing import (FunctionTransformer, MaxAbsScaler, MinMaxScaler,
                                   RobustScaler, StandardScaler)

from fastwb import _onnx_graph
from fastwb.sklearn import MLPClassifier, MLPRegressor

_LABEL_TYPES = {"int64": Int64TensorType, "bool": BooleanTensorType,
                "float32": FloatTensorType, "float64": DoubleTensorType,
                "string": StringTensorType}


class ContainerGraph:
    """``_onnx_graph.Graph`` writing into skl2onnx's scope and container."""

    def __init__(self, scope, container):
        self._scope, self._container = scope, container
        self.opset = container.target_opset

    def name(self, hint: str) -> str:
        return self._scope.get_unique_variable_name(hint)

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        if value.dtype == object:
            self._container.add_initializer(name, TensorProto.STRING, list(value.shape),
                                            [str(v).encode("utf-8") for v in value.ravel()])
        else:
            tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
            self._container.add_initializer(name, tensor.data_type, list(value.shape), tensor)
        return name

    def node(self, op: str, inputs, output: str | None = None, **attributes) -> str:
        _onnx_graph.check_opset(op, self.opset, f"operator {op}")
        output = output or self.name(op.lower())
        self._container.add_node(op, list(inputs), [output],
                                 name=self._scope.get_unique_operator_name(op), **attributes)
        return output


def register() -> None:
    """Register the converters (idempotent: a later call replaces them with the same)."""
    update_registered_converter(MLPClassifier, "FastwbMLPClassifier", _classifier_shapes,
                                _convert_estimator, options={"zipmap": [True, False, "columns"],
                                         "nocl": [False]})
    update_registered_converter(MLPRegressor, "FastwbMLPRegressor", _regressor_shapes,
                                _convert_estimator)
    update_registered_converter(TransformedTargetRegressor, "FastwbTransformedTargetRegressor",
                                _same_shape, _convert_target_inverse, parser=_parse_target)


def _float_type(operator):
    """The type the operator computes in: double for double input, else float."""
    return DoubleTensorType if isinstance(operator.inputs[0].type, DoubleTensorType) \
        else FloatTensorType


def _classifier_shapes(operator) -> None:
    estimator = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    kind = _onnx_graph.classifier_kind(estimator)
    if kind == "multilabel":
        operator.outputs[0].type = Int64TensorType([n, estimator.n_outputs_])
    else:
        kind_of_label = _onnx_graph.label_kind(estimator.classes_)
        zipmap = operator.scope_inst.get_options(estimator, dict(zipmap=True))["zipmap"]
        if zipmap and kind_of_label not in ("int64", "string"):
            raise ValueError(f"ZipMap takes integer or text classes; this classifier's are "
                             f"{kind_of_label}: convert with zipmap off")
        if zipmap and len(estimator.classes_) == 1:
            raise ValueError("ZipMap needs a class per probability column; this classifier "
                             "was fitted on one class: convert with zipmap off")
        operator.outputs[0].type = _LABEL_TYPES[kind_of_label]([n])
    columns = 2 if kind == "binary" else estimator.n_outputs_
    operator.outputs[1].type = _float_type(operator)([n, columns])


def _regressor_shapes(operator) -> None:
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _float_type(operator)([n, operator.raw_operator.n_outputs_])


def _same_shape(operator) -> None:
    operator.outputs[0].type = operator.inputs[0].type.__class__(
        operator.inputs[0].type.shape)


def _convert_estimator(scope, operator, container) -> None:
    graph = ContainerGraph(scope, container)
    float_type = _float_type(operator)
    dtype = np.dtype(np.float64 if float_type is DoubleTensorType else np.float32)
    x = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, float_type):     # integers, booleans
        x = graph.node("Cast", [x], to=TensorProto.DOUBLE if dtype == np.float64
                       else TensorProto.FLOAT)
    _onnx_graph.estimator_outputs(graph, operator.raw_operator, x,
                                  [output.full_name for output in operator.outputs], dtype)


# --- TransformedTargetRegressor ----------------------------------------------------------

def inverse_steps(transformer) -> list[tuple[str, np.ndarray]]:
    """The target transformer's ``inverse_transform`` as (ONNX operator, constant)
    steps, in its own order; TypeError for a transformer that is not affine."""
    # the flags, not the fitted attributes, say what inverse_transform applies: a
    # StandardScaler fits mean_ even with with_mean=False
    if isinstance(transformer, StandardScaler):
        return ([("Mul", transformer.scale_)] if transformer.with_std else []) + \
            ([("Add", transformer.mean_)] if transformer.with_mean else [])
    if isinstance(transformer, MinMaxScaler):
        return [("Sub", transformer.min_), ("Div", transformer.scale_)]
    if isinstance(transformer, MaxAbsScaler):
        return [("Mul", transformer.scale_)]
    if isinstance(transformer, RobustScaler):
        return ([("Mul", transformer.scale_)] if transformer.with_scaling else []) + \
            ([("Add", transformer.center_)] if transformer.with_centering else [])
    if (type(transformer) is FunctionTransformer and transformer.func is None
            and transformer.inverse_func is None):
        return []
    raise TypeError(f"a TransformedTargetRegressor converts to ONNX with a StandardScaler, "
                    f"MinMaxScaler, MaxAbsScaler or RobustScaler (or no transformer); this "
                    f"one has {type(transformer).__name__}"
                    + (" with a func" if isinstance(transformer, FunctionTransformer) else ""))


def _parse_target(scope, model, inputs, custom_parsers=None):
    """The regressor as skl2onnx parses any model, then the target's inverse scaling."""
    from skl2onnx._parse import _parse_sklearn
    inverse_steps(model.transformer_)            # refused here, before any conversion
    predictions = _parse_sklearn(scope, model.regressor_, inputs, custom_parsers=custom_parsers)
    operator = scope.declare_local_operator("FastwbTransformedTargetRegressor", model)
    operator.inputs = [predictions[0]]
    variable = scope.declare_local_variable("variable", predictions[0].type.__class__())
    operator.outputs.append(variable)
    return operator.outputs


def _convert_target_inverse(scope, operator, container) -> None:
    graph = ContainerGraph(scope, container)
    dtype = np.dtype(np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType)
                     else np.float32)
    value = operator.inputs[0].full_name
    for op, constant in inverse_steps(operator.raw_operator.transformer_):
        value = graph.node(op, [value, graph.constant(
            op.lower(), np.asarray(constant, dtype=dtype).reshape(1, -1))])
    graph.node("Identity", [value], operator.outputs[0].full_name)
