"""scikit-learn preprocessing in a fastwb model file: the state of a ``Pipeline``,
``ColumnTransformer``, ``TransformedTargetRegressor`` and six transformers as
JSON and arrays, and the real scikit-learn objects rebuilt from it.

``fastwb.save`` writes through ``state_of`` and ``fastwb.load`` reads through
``from_state``; ``saving.py`` knows the file format, this module the objects.
What is saved:

* ``Pipeline``: its steps, each a supported transformer, ``"passthrough"`` or
  None, ending in a fitted fastwb ``MLPClassifier`` or ``MLPRegressor`` (or a
  ``TransformedTargetRegressor``); a Pipeline of transformers only, inside a
  ``ColumnTransformer`` or another Pipeline.
* ``ColumnTransformer``: transformers among the supported ones, Pipelines of
  them, ``"passthrough"`` and ``"drop"``, over columns chosen by integer index,
  boolean mask or name (for DataFrame input); ``remainder`` "drop" or
  "passthrough". Columns chosen by a callable (``make_column_selector``) are
  saved as the columns it chose when fitted.
* ``TransformedTargetRegressor`` whose ``regressor`` is a fastwb
  ``MLPRegressor`` (or a Pipeline ending in one) and whose ``transformer`` is
  one of the four scalers.
* ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``, ``RobustScaler``,
  ``SimpleImputer`` (with ``add_indicator`` too) and ``OneHotEncoder`` (numeric
  or text categories, ``drop``, infrequent categories), fitted, alone or in
  the above. A bare fitted ``ColumnTransformer`` or transformer saves too.

Each object is saved as its class name, its constructor parameters (JSON-able
ones only: a custom function is refused; a Pipeline's ``memory`` and a
ColumnTransformer's ``n_jobs``, settings of the machine that fitted, are left
out and come back as None) and the fitted attributes that
scikit-learn's ``transform`` and ``predict`` read, under array names that say
where it sits ("steps/0/scale_", "steps/1/transformers/2/categories_/0"). A
fastwb estimator inside is saved as its own ``_fastwb_state`` and rebuilt by
its own ``_from_fastwb_state``, with the same checks as a top-level one. Text
(categories, feature names) is stored as fixed-width unicode, missing values
in text categories as index lists: nothing is pickled.

Loading constructs only the classes of a fixed table (never a name the file
gives), with the file's parameters checked by scikit-learn's own parameter
validation, then sets the fitted attributes after checking their shapes and
types, and checks the pieces against each other: each step takes as many
columns as the step before gives, a ColumnTransformer's column choices exist.
Anything else is a ValueError or TypeError, which ``fastwb.load`` reports as a
``ModelFileError``.

Files are portable between scikit-learn 1.7 and 1.9: a parameter that exists
in only one of them is written only when it is set to something else than the
value that behaves as the other version does. Predictions are bit-identical
under the scikit-learn (and pandas) that saved; another version transforms the
same fitted state its own way (with pandas 3, scikit-learn 1.9's SimpleImputer
takes None in a text column of a DataFrame as missing, 1.7's with pandas 2
does not).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from fastwb._estimator_params import decode, encode, text_array

#: The kinds of model file this module writes, by the class of the saved object.
KINDS = ("Pipeline", "ColumnTransformer", "TransformedTargetRegressor", "StandardScaler",
         "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "SimpleImputer", "OneHotEncoder")
_SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
_TRANSFORMERS = (*_SCALERS, "SimpleImputer", "OneHotEncoder")
_ESTIMATORS = ("MLPClassifier", "MLPRegressor")
_SUPPORTED = (f"{', '.join(_TRANSFORMERS)} and ColumnTransformer (or Pipelines of them), "
              "ending in a fastwb MLPClassifier or MLPRegressor")
#: What may stand in each place of the tree: "model" ends a Pipeline (the top
#: one), "regressor" is a TransformedTargetRegressor's, "scaler" its transformer.
_ROLES = {"model": (*_ESTIMATORS, "Pipeline", "TransformedTargetRegressor"),
          "regressor": ("MLPRegressor", "Pipeline"),
          "transformer": (*_TRANSFORMERS, "ColumnTransformer", "Pipeline"),
          "scaler": _SCALERS}

#: The fitted vectors (one value per input column) each scaler's transform reads,
#: and which of them its parameters require.
_VECTORS: dict[str, tuple[str, ...]] = {
    "StandardScaler": ("mean_", "var_", "scale_"),
    "MinMaxScaler": ("min_", "scale_", "data_min_", "data_max_", "data_range_"),
    "MaxAbsScaler": ("max_abs_", "scale_"),
    "RobustScaler": ("center_", "scale_"),
}
_REQUIRED_VECTORS: dict[str, Callable[[dict], tuple[str, ...]]] = {
    "StandardScaler": lambda p: ("mean_",) * bool(p["with_mean"]) + ("scale_",) * bool(
        p["with_std"]),
    "MinMaxScaler": lambda p: ("min_", "scale_"),
    "MaxAbsScaler": lambda p: ("scale_",),
    "RobustScaler": lambda p: ("center_",) * bool(p["with_centering"]) + ("scale_",) * bool(
        p["with_scaling"]),
}
#: Parameters that exist in one supported scikit-learn version only, with the
#: value that behaves as the versions without them: not written when so set,
#: so that such a file loads in either version.
_NEUTRAL = {("MaxAbsScaler", "clip"): False,
            ("ColumnTransformer", "force_int_remainder_cols"): "deprecated"}
#: Settings of the machine that fitted, not of the model: not saved, so that a
#: file cannot set them (a ColumnTransformer's n_jobs starts that many processes).
_MACHINE = {"Pipeline": ("memory",), "ColumnTransformer": ("n_jobs",)}
#: Parameters that hold the nested objects, saved as nodes of their own.
_NESTED = {"Pipeline": ("steps",), "ColumnTransformer": ("transformers",),
           "TransformedTargetRegressor": ("regressor", "transformer")}
#: The dtypes an imputer may have been fitted on, and a OneHotEncoder may output.
_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint64",
           "uint32", "uint16", "uint8", "bool", "object")
_OUTPUTS = ("default", "pandas", "polars")
#: Without arrays to bound it, a ColumnTransformer's column count must stay
#: below this (scikit-learn builds lists of its columns).
_MAX_BARE_COLUMNS = 1 << 16


def _classes() -> dict[str, Any]:
    """The only classes a file may make, imported when first needed."""
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (MaxAbsScaler, MinMaxScaler, OneHotEncoder, RobustScaler,
                                       StandardScaler)

    from fastwb.sklearn import MLPClassifier, MLPRegressor
    return {cls.__name__: cls for cls in (
        Pipeline, ColumnTransformer, TransformedTargetRegressor, StandardScaler, MinMaxScaler,
        MaxAbsScaler, RobustScaler, SimpleImputer, OneHotEncoder, MLPClassifier, MLPRegressor)}


# --- save ------------------------------------------------------------------------------

def state_of(obj) -> tuple[str, dict, dict[str, np.ndarray]]:
    """``(kind, config, arrays)`` of a supported scikit-learn object, for ``fastwb.save``.

    Raises TypeError naming the step (name and class) that is not supported,
    ValueError for one that is not fitted or has a parameter a file cannot hold.
    """
    import sklearn
    kind = type(obj).__name__
    writer = _Writer()
    node = writer.node(obj, f"the {kind}", "", _top_role(kind))
    problem = _text_problem(node)
    if problem is not None:
        raise ValueError(f"fastwb.save cannot save the {kind}: {problem}")
    return kind, {"sklearn_version": sklearn.__version__, "model": node}, writer.arrays


class _Writer:
    """Walks the object tree, collecting the arrays under their names."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def node(self, obj, where: str, prefix: str, role: str) -> dict:
        """The JSON of ``obj`` at ``where`` (words for errors), its arrays under
        ``prefix``; ``role`` says what may stand there: "model" (a fastwb
        estimator, a TransformedTargetRegressor, a Pipeline ending in either),
        "regressor" (the same for regression), "transformer", "scaler"."""
        name = type(obj).__name__
        cls = _classes().get(name)
        if cls is None or type(obj) is not cls:
            raise TypeError(f"fastwb.save cannot save {where}: {_what(obj)} is not supported; "
                            f"fastwb saves {_SUPPORTED}")
        allowed = _ROLES[role]
        if name not in allowed:
            raise TypeError(f"fastwb.save cannot save {where}: a {name} cannot stand there "
                            f"(only {', '.join(allowed)})")
        _check_fitted(obj, where)
        if name == "ColumnTransformer" and not (isinstance(obj.remainder, str)
                                                and obj.remainder in ("drop", "passthrough")):
            raise TypeError(f"fastwb.save cannot save {where}: its remainder is "
                            f"{_what(obj.remainder)}; fastwb saves remainder 'drop' or "
                            "'passthrough'")
        if name in _ESTIMATORS:
            _, config, arrays = obj._fastwb_state()
            self.arrays.update({prefix + key: value for key, value in arrays.items()})
            return {"class": name, "state": config}
        node: dict[str, Any] = {"class": name, "params": _params(obj, where)}
        output = (getattr(obj, "_sklearn_output_config", None) or {}).get("transform")
        if output is not None:
            node["output"] = output
        if name == "Pipeline":
            node["steps"] = self._steps(obj, where, prefix, role)
        elif name == "ColumnTransformer":
            node.update(self._column_transformer(obj, where, prefix))
        elif name == "TransformedTargetRegressor":
            node.update(self._target_regressor(obj, where, prefix))
        else:
            node["attributes"] = self._transformer(obj, where, prefix)
        return node

    def add(self, name: str, value: np.ndarray) -> None:
        self.arrays[name] = value

    def _steps(self, pipeline, where: str, prefix: str, role: str) -> list:
        steps = []
        last = len(pipeline.steps) - 1
        for i, (name, step) in enumerate(pipeline.steps):
            inner = f"step {name!r} ({_class_name(step)}) of {where}"
            if step is None or (isinstance(step, str) and step == "passthrough"):
                if i == last and role != "transformer":
                    raise TypeError(f"fastwb.save cannot save {where}: its last step {name!r} "
                                    "is 'passthrough'; it must be a fastwb MLPClassifier or "
                                    "MLPRegressor")
                steps.append({"name": name, "step": step})
                continue
            step_role = role if i == last else "transformer"
            steps.append({"name": name, "step": self.node(step, inner, f"{prefix}steps/{i}/",
                                                          step_role)})
        return steps

    def _column_transformer(self, ct, where: str, prefix: str) -> dict:
        fitted = {name: trans for name, trans, _ in ct.transformers_}
        entries = []
        # the columns as fit chose them: a callable (make_column_selector) is saved
        # as the columns it chose
        for i, ((name, trans, _), columns) in enumerate(zip(ct.transformers, ct._columns)):
            inner = f"transformer {name!r} ({_class_name(trans)}) of {where}"
            spec = _columns(columns, inner)
            if isinstance(trans, str) and trans in ("drop", "passthrough"):
                entries.append({"name": name, "transformer": trans, "columns": spec})
                continue
            if ct._transformer_to_input_indices[name]:
                node = self.node(fitted[name], inner, f"{prefix}transformers/{i}/",
                                 "transformer")
            else:       # selects no column: scikit-learn keeps it unfitted
                node = _unfitted(trans, inner)
            entries.append({"name": name, "transformer": node, "columns": spec})
        attributes = {"n_features_in_": ct.n_features_in_, "sparse_output_": ct.sparse_output_}
        self._feature_names(ct, prefix)
        return {"transformers": entries, "attributes": attributes}

    def _target_regressor(self, ttr, where: str, prefix: str) -> dict:
        if ttr.func is not None or ttr.inverse_func is not None or ttr.transformer is None:
            raise TypeError(f"fastwb.save cannot save {where}: its target is transformed by "
                            "functions; fastwb saves a TransformedTargetRegressor whose "
                            f"transformer is one of {', '.join(_SCALERS)}")
        regressor = self.node(ttr.regressor_, f"the regressor ({_class_name(ttr.regressor_)}) "
                              f"of {where}", f"{prefix}regressor/", "regressor")
        transformer = self.node(ttr.transformer_, f"the transformer "
                                f"({_class_name(ttr.transformer_)}) of {where}",
                                f"{prefix}transformer/", "scaler")
        return {"regressor": regressor, "transformer": transformer,
                "attributes": {"_training_dim": ttr._training_dim}}

    def _transformer(self, est, where: str, prefix: str) -> dict:
        """The fitted attributes of one of the six transformers, JSON-able ones
        returned, arrays collected."""
        name = type(est).__name__
        attributes: dict[str, Any] = {"n_features_in_": est.n_features_in_}
        self._feature_names(est, prefix)
        if name in _VECTORS:
            for attribute in _VECTORS[name]:
                value = getattr(est, attribute, None)
                if value is not None:
                    self.add(prefix + attribute, np.asarray(value))
            if getattr(est, "n_samples_seen_", None) is not None:
                self.add(prefix + "n_samples_seen_", np.asarray(est.n_samples_seen_))
        elif name == "SimpleImputer":
            attributes["_fit_dtype"] = _dtype_name(est._fit_dtype, where)
            attributes["statistics_"] = self._values(est.statistics_, prefix + "statistics_",
                                                     where)
            if est.indicator_ is not None:
                self.add(prefix + "indicator_/features_", np.asarray(est.indicator_.features_,
                                                                     dtype=np.int64))
        else:       # OneHotEncoder
            attributes["categories_"] = [
                self._values(values, f"{prefix}categories_/{i}", where)
                for i, values in enumerate(est.categories_)]
            for attribute in ("drop_idx_", "_drop_idx_after_grouping"):
                value = getattr(est, attribute)
                if value is not None:
                    self.add(prefix + attribute, np.array([-1 if i is None else i for i in value],
                                                          dtype=np.int64))
            attributes["_infrequent_enabled"] = bool(est._infrequent_enabled)
            if est._infrequent_enabled:
                for attribute in ("_infrequent_indices", "_default_to_infrequent_mappings"):
                    for i, value in enumerate(getattr(est, attribute)):
                        if value is not None:
                            self.add(f"{prefix}{attribute}/{i}", np.asarray(value,
                                                                            dtype=np.int64))
        return attributes

    def _values(self, values: np.ndarray, name: str, where: str) -> dict:
        """Categories or statistics stored at ``name``: arrays of numbers or text as
        they are; object arrays (of text, or of numbers) as unicode or numbers,
        with the places of missing values (NaN, None) listed."""
        values = np.asarray(values)
        if values.dtype.kind in "iufbU":
            self.add(name, values)
            return {"object": False}
        if values.dtype.kind != "O" or values.ndim != 1:
            raise ValueError(f"fastwb.save cannot save {where}: its fitted values have dtype "
                             f"{values.dtype} and shape {values.shape}")
        nan = [i for i, v in enumerate(values) if isinstance(v, float) and v != v]
        none = [i for i, v in enumerate(values) if v is None]
        missing = set(nan) | set(none)
        present = [v for i, v in enumerate(values) if i not in missing]
        fill: str | int
        dtype: Any
        if all(isinstance(v, str) for v in present):
            kind, fill, dtype = "text", "", str if present else "<U1"
        elif all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                 for v in present):
            integral = all(isinstance(v, numbers.Integral) for v in present)
            kind, fill, dtype = "numbers", 0, np.int64 if integral else np.float64
        else:
            odd = [type(v).__name__ for v in present if not isinstance(v, str)]
            raise ValueError(f"fastwb.save cannot save {where}: its fitted values mix text "
                             f"with {odd[0]}; a fastwb file holds columns of text or of "
                             "numbers, with missing values (NaN, None)")
        filled = [fill if i in missing else v for i, v in enumerate(values)]
        if kind == "text":
            self.add(name, text_array(filled, where))
        elif dtype is np.int64 and not all(-2**63 <= int(v) < 2**63 for v in filled):
            raise ValueError(f"fastwb.save cannot save {where}: it holds integers beyond "
                             f"64 bits")
        else:
            self.add(name, np.array(filled, dtype=dtype))
        return {"object": kind, "nan": nan, "none": none}

    def _feature_names(self, est, prefix: str) -> None:
        names = getattr(est, "feature_names_in_", None)
        if names is not None:
            self.add(prefix + "feature_names_in_", text_array(names, f"the feature names of "
                                                                      f"{prefix or 'the model'}"))


def _text_problem(tree) -> str | None:
    """What in a config's text no encoding can write (lone surrogates, which JSON
    escapes allow), as printing a step's name would fail; None if nothing."""
    stack = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and not _encodable(value):
            return (f"the text {_printable(value)[:60]!r} holds lone surrogates, which are not "
                    "Unicode characters")
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _top_role(kind: str) -> str:
    return "model" if kind in ("Pipeline", "TransformedTargetRegressor") else "transformer"


def _check_fitted(obj, where: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted
    try:
        check_is_fitted(obj)
    except NotFittedError:
        raise ValueError(f"fastwb.save cannot save {where}: it is not fitted (fit it first)") \
            from None


def _unfitted(trans, where: str) -> dict:
    """A ColumnTransformer's transformer that selected no column: kept unfitted,
    as scikit-learn keeps it."""
    name = type(trans).__name__
    cls = _classes().get(name)
    if cls is None or type(trans) is not cls or name not in _TRANSFORMERS:
        raise TypeError(f"fastwb.save cannot save {where}: {_what(trans)} is not supported; "
                        f"fastwb saves {_SUPPORTED}")
    return {"class": name, "params": _params(trans, where), "fitted": False}


def _params(obj, where: str) -> dict:
    """The constructor parameters of ``obj`` but the nested objects, as JSON."""
    name = type(obj).__name__
    params = obj.get_params(deep=False)
    for key in (*_NESTED.get(name, ()), *_MACHINE.get(name, ())):
        params.pop(key)
    out = {}
    for key, value in params.items():
        if (name, key) in _NEUTRAL and _same(value, _NEUTRAL[name, key]):
            continue
        if key == "dtype" and name == "OneHotEncoder":
            out[key] = {"dtype": _dtype_name(value, where)}
            continue
        if name == "TransformedTargetRegressor" and key in ("func", "inverse_func"):
            continue        # refused above unless None
        try:
            out[key] = encode(value)
        except TypeError:
            raise ValueError(f"fastwb.save cannot save {where}: its parameter {key}="
                             f"{value!r} is not one a fastwb file can hold (numbers, text, "
                             "None and lists of them)") from None
    return out


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _dtype_name(dtype, where: str) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in _DTYPES:
        raise ValueError(f"fastwb.save cannot save {where}: its dtype {name} is not one of "
                         f"{', '.join(_DTYPES)}")
    return name


def _columns(columns, where: str):
    """A column selection as JSON: an int or name, or a list of ints, names or booleans."""
    if isinstance(columns, (str, numbers.Integral)) and not isinstance(columns, bool):
        return {"scalar": encode(columns)}
    values = columns.tolist() if isinstance(columns, np.ndarray) else columns
    if isinstance(values, (list, tuple)) and all(
            isinstance(v, (str, bool, numbers.Integral)) for v in values):
        kinds = {str if isinstance(v, str) else bool if isinstance(v, (bool, np.bool_))
                 else int for v in values}
        if len(kinds) <= 1:
            return [v if isinstance(v, (str, bool)) else int(v) for v in values]
    raise TypeError(f"fastwb.save cannot save {where}: its columns {columns!r} are not a "
                    "column index, a name, or a list of indices, names or booleans")


def _class_name(obj) -> str:
    return repr(obj) if isinstance(obj, str) or obj is None else type(obj).__name__


def _what(obj) -> str:
    if obj is None or isinstance(obj, str):
        return repr(obj)
    return f"a {type(obj).__name__}"


# --- load ------------------------------------------------------------------------------

def from_state(kind: str, config: dict, arrays: dict[str, np.ndarray]):
    """The object ``state_of`` described, rebuilt from the file's (checked) header
    config and arrays; ValueError or TypeError for what cannot be built."""
    if set(config) != {"sklearn_version", "model"} or not isinstance(config["sklearn_version"],
                                                                      str):
        raise ValueError(f"a {kind} file's config must hold 'model' and 'sklearn_version' "
                         "(text) only")
    problem = _text_problem(config)
    if problem is not None:
        raise ValueError(problem)
    reader = _Reader(arrays)
    node = _dict(config["model"], "the model")
    if node.get("class") != kind:
        raise ValueError(f"the file's kind is {kind} but its model is a {node.get('class')!r}")
    obj = reader.node(node, "", f"the {kind}", _top_role(kind))
    unused = sorted(set(arrays) - reader.used)
    if unused:
        raise ValueError(f"unknown array(s) {unused[:5]}")
    return obj


class _Reader:
    """Builds the objects of a node tree, noting which arrays they took."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.used: set[str] = set()
        self.data_nbytes = sum(array.nbytes for array in arrays.values())

    def array(self, name: str, required: bool = True) -> np.ndarray | None:
        if name not in self.arrays:
            if required:
                raise ValueError(f"array {name!r} is missing")
            return None
        self.used.add(name)
        return self.arrays[name]

    def node(self, node: dict, prefix: str, where: str, role: str):
        """The object of ``node`` (arrays under ``prefix``), of a class that may
        stand in its ``role`` (as ``_Writer.node``)."""
        name = node.get("class")
        classes = _classes()
        if not isinstance(name, str) or name not in classes:
            raise ValueError(f"{where} is of class {name!r}, which fastwb files do not hold "
                             f"(they hold {', '.join(classes)})")
        if name not in _ROLES[role]:
            raise ValueError(f"{where} is a {name}, which cannot stand there (only "
                             f"{', '.join(_ROLES[role])})")
        cls = classes[name]
        if name in _ESTIMATORS:
            _keys(node, ("class", "state"), where)
            own = {key[len(prefix):]: value for key, value in self.arrays.items()
                   if key.startswith(prefix)} if prefix else dict(self.arrays)
            own = {key: value for key, value in own.items() if "/" not in key
                   or key.startswith("network/")}
            self.used.update(prefix + key for key in own)
            return cls._from_fastwb_state(_dict(node["state"], f"the state of {where}"), own)
        extra = {"Pipeline": ("steps",), "ColumnTransformer": ("transformers", "attributes"),
                 "TransformedTargetRegressor": ("regressor", "transformer", "attributes")
                 }.get(name, ("attributes",))
        _keys(node, ("class", "params", *extra), where, optional=("output",))
        if name == "Pipeline":
            obj = self._pipeline(cls, node, prefix, where, role)
        elif name == "ColumnTransformer":
            obj = self._column_transformer(cls, node, prefix, where)
        elif name == "TransformedTargetRegressor":
            obj = self._target_regressor(cls, node, prefix, where)
        else:
            obj = _construct(cls, node, where)
            self._transformer(obj, _dict(node["attributes"], f"the attributes of {where}"),
                              prefix, where)
        if "output" in node:
            if node["output"] not in _OUTPUTS:
                raise ValueError(f"{where} has the output {node['output']!r}, not one of "
                                 f"{list(_OUTPUTS)}")
            obj.set_output(transform=node["output"])
        return obj

    def _pipeline(self, cls, node: dict, prefix: str, where: str, role: str):
        raw = node["steps"]
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"the steps of {where} must be a nonempty list")
        steps = []
        for i, entry in enumerate(raw):
            entry = _dict(entry, f"step {i} of {where}")
            _keys(entry, ("name", "step"), f"step {i} of {where}")
            name, step = entry["name"], entry["step"]
            if not isinstance(name, str):
                raise ValueError(f"step {i} of {where} has the name {name!r}, not a string")
            last = i == len(raw) - 1
            if step is None or step == "passthrough":
                if last and role != "transformer":
                    raise ValueError(f"the last step of {where} is {step!r}, not a fastwb "
                                     "estimator")
            else:
                inner = _at(f"step {name!r}", step, where)
                step = self.node(_dict(step, inner), f"{prefix}steps/{i}/", inner,
                                 role if last else "transformer")
            steps.append((name, step))
        pipeline = _construct(cls, node, where, steps=steps)
        pipeline._validate_steps()
        _check_chain([step for _, step in steps], [name for name, _ in steps], where)
        return pipeline

    def _column_transformer(self, cls, node: dict, prefix: str, where: str):
        from sklearn.base import clone
        attributes = _dict(node["attributes"], f"the attributes of {where}")
        _keys(attributes, ("n_features_in_", "sparse_output_"), f"the attributes of {where}")
        n_features, sparse = attributes["n_features_in_"], attributes["sparse_output_"]
        names = self._names(prefix, where)
        _check_count(n_features, "n_features_in_", where)
        if names is not None and len(names) != n_features:
            raise ValueError(f"{where} has {len(names)} feature names for n_features_in_ "
                             f"{n_features}")
        if names is None and n_features > max(_MAX_BARE_COLUMNS, self.data_nbytes):
            raise ValueError(f"{where} has n_features_in_ {n_features}, more than its file "
                             "holds data for")
        if not isinstance(sparse, bool):
            raise ValueError(f"sparse_output_ of {where} must be true or false")
        raw = node["transformers"]
        if not isinstance(raw, list):
            raise ValueError(f"the transformers of {where} must be a list")
        entries, fitted, indices = [], {}, {}
        for i, entry in enumerate(raw):
            entry = _dict(entry, f"transformer {i} of {where}")
            _keys(entry, ("name", "transformer", "columns"), f"transformer {i} of {where}")
            name, spec = entry["name"], entry["columns"]
            if not isinstance(name, str):
                raise ValueError(f"transformer {i} of {where} has the name {name!r}")
            inner = _at(f"transformer {name!r}", entry["transformer"], where)
            columns, chosen = _resolve(spec, n_features, names, inner)
            indices[name] = chosen
            trans = entry["transformer"]
            if trans in ("drop", "passthrough"):
                entries.append((name, trans, columns))
                continue
            trans = _dict(trans, inner)
            if not chosen:
                _keys(trans, ("class", "params", "fitted"), inner)
                if trans["fitted"] is not False or trans["class"] not in _TRANSFORMERS:
                    raise ValueError(f"{inner} selects no column; it must be an unfitted "
                                     "transformer")
                entries.append((name, _construct(_classes()[trans["class"]], trans, inner),
                                columns))
                continue
            done = self.node(trans, f"{prefix}transformers/{i}/", inner, "transformer")
            n_in = _n_in(done)
            if n_in is not None and n_in != len(chosen):
                raise ValueError(f"{inner} takes {n_in} columns; it is given {len(chosen)}")
            fitted[name] = done
            entries.append((name, clone(done), columns))
        ct = _construct(cls, node, where, transformers=entries)
        ct._validate_transformers()
        ct.n_features_in_ = n_features
        if names is not None:
            ct.feature_names_in_ = names
        ct._columns = [columns for _, _, columns in entries]
        ct._transformer_to_input_indices = indices
        ct._validate_remainder(None)
        self._fit_column_transformer(ct, fitted, sparse)
        return ct

    @staticmethod
    def _fit_column_transformer(ct, fitted: dict, sparse: bool) -> None:
        """Set what ``ColumnTransformer.fit`` sets, through scikit-learn's own steps."""
        from sklearn.preprocessing import FunctionTransformer
        from sklearn.utils._set_output import _get_output_config
        done: list = []
        widths: list[int] = []
        width: int | None
        for name, trans, columns, _ in ct._iter(fitted=False, column_as_labels=False,
                                                 skip_drop=True, skip_empty_columns=True):
            chosen = ct._transformer_to_input_indices[name]
            if isinstance(trans, str) and trans == "passthrough":
                # what fit puts in place of "passthrough"
                trans = FunctionTransformer(accept_sparse=True, check_inverse=False,
                                            feature_names_out="one-to-one").set_output(
                    transform=_get_output_config("transform", ct)["dense"])
                trans.n_features_in_ = len(chosen)
                if hasattr(ct, "feature_names_in_") and not isinstance(columns, int):
                    trans.feature_names_in_ = ct.feature_names_in_[chosen]
                width = len(chosen)
            else:
                trans = fitted[name]
                width = _n_out(trans)
            done.append(trans)
            widths.append(len(chosen) if width is None else width)
        ct._update_fitted_transformers(done)
        ct.sparse_output_ = sparse
        ct._record_output_indices([np.empty((0, width)) for width in widths])

    def _target_regressor(self, cls, node: dict, prefix: str, where: str):
        from sklearn.base import clone
        inner = _at("the regressor", node["regressor"], where)
        regressor = self.node(_dict(node["regressor"], inner), f"{prefix}regressor/", inner,
                              "regressor")
        inner = _at("the transformer", node["transformer"], where)
        transformer = self.node(_dict(node["transformer"], inner), f"{prefix}transformer/",
                                inner, "scaler")
        final = regressor
        while type(final).__name__ == "Pipeline":      # the roles make it an MLPRegressor
            final = final.steps[-1][1]
        attributes = _dict(node["attributes"], f"the attributes of {where}")
        _keys(attributes, ("_training_dim",), f"the attributes of {where}")
        dim = attributes["_training_dim"]
        if dim not in (1, 2) or isinstance(dim, bool):
            raise ValueError(f"_training_dim of {where} is {dim!r}, not 1 or 2")
        n_outputs = final.n_outputs_
        if transformer.n_features_in_ != n_outputs or (dim == 1 and n_outputs != 1):
            raise ValueError(f"the transformer of {where} takes {transformer.n_features_in_} "
                             f"target column(s); the regressor predicts {n_outputs} "
                             f"({dim}-D targets)")
        ttr = _construct(cls, node, where, regressor=clone(regressor),
                         transformer=clone(transformer))
        ttr.regressor_, ttr.transformer_, ttr._training_dim = regressor, transformer, dim
        if hasattr(regressor, "feature_names_in_"):
            ttr.feature_names_in_ = regressor.feature_names_in_
        return ttr

    def _transformer(self, est, attributes: dict, prefix: str, where: str) -> None:
        """Set and check the fitted attributes of one of the six transformers."""
        name = type(est).__name__
        expected = {"SimpleImputer": ("n_features_in_", "_fit_dtype", "statistics_"),
                    "OneHotEncoder": ("n_features_in_", "categories_", "_infrequent_enabled")
                    }.get(name, ("n_features_in_",))
        _keys(attributes, expected, f"the attributes of {where}")
        n = attributes["n_features_in_"]
        _check_count(n, "n_features_in_", where)
        est.n_features_in_ = n
        names = self._names(prefix, where)
        if names is not None:
            if len(names) != n:
                raise ValueError(f"{where} has {len(names)} feature names for "
                                 f"n_features_in_ {n}")
            est.feature_names_in_ = names
        if name in _VECTORS:
            params = est.get_params()
            for attribute in _VECTORS[name]:
                value = self.array(prefix + attribute,
                                   required=attribute in _REQUIRED_VECTORS[name](params))
                if value is not None:
                    _check_vector(value, n, f"{attribute} of {where}")
                setattr(est, attribute, value)
            seen = self.array(prefix + "n_samples_seen_", required=False)
            if seen is not None:
                if seen.dtype.kind not in "iuf" or seen.shape not in ((), (n,)):
                    raise ValueError(f"n_samples_seen_ of {where} has dtype {seen.dtype} and "
                                     f"shape {seen.shape}")
                est.n_samples_seen_ = seen[()] if seen.ndim == 0 else seen
        elif name == "SimpleImputer":
            self._imputer(est, attributes, n, prefix, where)
        else:
            self._encoder(est, attributes, n, prefix, where)

    def _imputer(self, est, attributes: dict, n: int, prefix: str, where: str) -> None:
        from sklearn.impute import MissingIndicator
        dtype = attributes["_fit_dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"_fit_dtype of {where} is {dtype!r}, not one of {list(_DTYPES)}")
        est._fit_dtype = est._fill_dtype = np.dtype(dtype)     # _fill_dtype: scikit-learn 1.8+
        statistics = self._values(attributes["statistics_"], prefix + "statistics_",
                                  f"statistics_ of {where}")
        if statistics.shape != (n,):
            raise ValueError(f"statistics_ of {where} has shape {statistics.shape}; "
                             f"n_features_in_ is {n}")
        est.statistics_ = statistics
        features = self.array(prefix + "indicator_/features_", required=False)
        if (features is not None) != bool(est.add_indicator):
            raise ValueError(f"{where} has add_indicator={est.add_indicator} but "
                             f"{'an' if features is not None else 'no'} indicator")
        est.indicator_ = None
        if features is not None:
            _check_indices(features, n, f"the indicator's features of {where}", distinct=True)
            indicator = MissingIndicator(missing_values=est.missing_values, error_on_new=False)
            # what SimpleImputer's fit sets: the indicator is fitted on the precomputed mask
            indicator._precomputed = True
            indicator.n_features_in_ = indicator._n_features = n
            indicator.features_ = features.astype(np.intp)
            est.indicator_ = indicator

    def _encoder(self, est, attributes: dict, n: int, prefix: str, where: str) -> None:
        raw = attributes["categories_"]
        if not isinstance(raw, list) or len(raw) != n:
            raise ValueError(f"categories_ of {where} must be a list of {n} (n_features_in_) "
                             "entries")
        est.categories_ = [self._values(entry, f"{prefix}categories_/{i}",
                                        f"categories_[{i}] of {where}")
                           for i, entry in enumerate(raw)]
        for i, values in enumerate(est.categories_):
            if values.ndim != 1:
                raise ValueError(f"categories_[{i}] of {where} must be 1-D")
            present = [v for v in values.tolist() if v is not None and v == v]
            if len(set(present)) != len(present):
                raise ValueError(f"categories_[{i}] of {where} names a category twice")
            # scikit-learn finds numbers by binary search: they must be in order
            if values.dtype.kind in "iuf" and (np.diff(values) <= 0).any():
                raise ValueError(f"categories_[{i}] of {where} must be in increasing order")
        sizes = [len(values) for values in est.categories_]
        for attribute in ("drop_idx_", "_drop_idx_after_grouping"):
            value = self.array(prefix + attribute, required=False)
            if value is not None:
                if value.shape != (n,) or value.dtype.kind != "i" or (value < -1).any():
                    raise ValueError(f"{attribute} of {where} must be {n} indices or -1")
                if any(k >= size for k, size in zip(value.tolist(), sizes)):
                    raise ValueError(f"{attribute} of {where} points past its categories")
                value = np.array([None if k == -1 else k for k in value.tolist()], dtype=object)
            setattr(est, attribute, value)
        enabled = attributes["_infrequent_enabled"]
        if not isinstance(enabled, bool):
            raise ValueError(f"_infrequent_enabled of {where} must be true or false")
        est._infrequent_enabled = enabled
        if enabled:
            est._infrequent_indices = [self.array(f"{prefix}_infrequent_indices/{i}",
                                                  required=False) for i in range(n)]
            est._default_to_infrequent_mappings = [
                self.array(f"{prefix}_default_to_infrequent_mappings/{i}", required=False)
                for i in range(n)]
            for i, (infrequent, mapping, size) in enumerate(zip(
                    est._infrequent_indices, est._default_to_infrequent_mappings, sizes)):
                if (infrequent is None) != (mapping is None):
                    raise ValueError(f"feature {i} of {where} has infrequent categories "
                                     "without their mapping, or the other way round")
                if infrequent is not None and mapping is not None:
                    _check_indices(infrequent, size, f"_infrequent_indices[{i}] of {where}",
                                   distinct=True)
                    if mapping.shape != (size,):
                        raise ValueError(f"_default_to_infrequent_mappings[{i}] of {where} "
                                         f"has shape {mapping.shape}, not ({size},)")
                    _check_indices(mapping, size, f"_default_to_infrequent_mappings[{i}] of "
                                   f"{where}", distinct=False)
                    est._infrequent_indices[i] = infrequent.astype(np.intp)
                    est._default_to_infrequent_mappings[i] = mapping.astype(np.intp)
        est._n_features_outs = est._compute_n_features_outs()
        if any(count < 0 for count in est._n_features_outs):
            raise ValueError(f"{where} drops more categories than it has")

    def _values(self, entry, name: str, where: str) -> np.ndarray:
        """The array ``_Writer._values`` stored at ``name``."""
        entry = _dict(entry, where)
        values = self.array(name)
        assert values is not None
        if entry.get("object") is False and set(entry) == {"object"}:
            if values.dtype.kind not in "iufbU":
                raise ValueError(f"{where} has dtype {values.dtype}")
            return values
        _keys(entry, ("object", "nan", "none"), where)
        kinds = {"text": "U", "numbers": "iuf"}.get(entry["object"]) \
            if isinstance(entry["object"], str) else None
        if kinds is None or values.dtype.kind not in kinds or values.ndim != 1:
            raise ValueError(f"{where} must be a 1-D array of text or numbers")
        result = values.astype(object)
        for key, missing in (("nan", float("nan")), ("none", None)):
            places = entry[key]
            if not isinstance(places, list) or not all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(values)
                    for i in places):
                raise ValueError(f"the places of missing values in {where} must be indices "
                                 "into it")
            for i in places:
                result[i] = missing
        return result

    def _names(self, prefix: str, where: str) -> np.ndarray | None:
        names = self.array(prefix + "feature_names_in_", required=False)
        if names is None:
            return None
        if names.dtype.kind != "U" or names.ndim != 1:
            raise ValueError(f"feature_names_in_ of {where} must be a 1-D array of text")
        return names.astype(object)


def _at(what: str, node, parent: str) -> str:
    """Where a node stands, in words for errors: "step 'scale' (StandardScaler) of ..."."""
    name = node.get("class") if isinstance(node, dict) else node
    shown = name if isinstance(name, str) and len(name) <= 64 else "?"
    return f"{what} ({shown}) of {parent}"


def _construct(cls, node: dict, where: str, **nested):
    """An instance of ``cls`` (from the fixed table) with the node's parameters,
    checked by scikit-learn's parameter validation."""
    params = dict(_dict(node["params"], f"the parameters of {where}"))
    dtype = params.pop("dtype", None) if cls.__name__ == "OneHotEncoder" else None
    params = {key: decode(value) for key, value in params.items()}
    known = set(cls(**nested).get_params(deep=False)) - set(_MACHINE.get(cls.__name__, ()))
    unknown = sorted(set(params) - known)
    if unknown:
        import sklearn
        raise ValueError(f"{where} has the parameter(s) {unknown}, which fastwb files do "
                         f"not hold or scikit-learn {sklearn.__version__} does not know (a "
                         "file written with another version)")
    clashing = sorted(set(params) & set(nested))
    if clashing:
        raise ValueError(f"{where} has the parameter(s) {clashing} twice")
    if dtype is not None:
        if not isinstance(dtype, dict) or set(dtype) != {"dtype"} or dtype["dtype"] not in \
                _DTYPES or dtype["dtype"] == "object":
            raise ValueError(f"the dtype of {where} is {dtype!r}")
        params["dtype"] = np.dtype(dtype["dtype"]).type
    obj = cls(**params, **nested)
    obj._validate_params()
    return obj


def _check_chain(steps: list, names: list[str], where: str) -> None:
    """Each step takes as many columns as the one before gives."""
    width, before = None, None
    for name, step in zip(names, steps):
        if step is None or isinstance(step, str):
            continue
        n_in = _n_in(step)
        if width is not None and n_in is not None and n_in != width:
            raise ValueError(f"step {name!r} ({type(step).__name__}) of {where} takes {n_in} "
                             f"columns, but step {before!r} gives {width}")
        if type(step).__name__ in (*_ESTIMATORS, "TransformedTargetRegressor"):
            width = None
        else:
            out = _n_out(step)
            width = width if out is None else out
        before = name


def _n_in(obj) -> int | None:
    """How many columns ``obj`` takes (None for a Pipeline of passthroughs)."""
    name = type(obj).__name__
    if name == "Pipeline":
        real = [step for _, step in obj.steps if step is not None and not isinstance(step, str)]
        return _n_in(real[0]) if real else None
    if name == "TransformedTargetRegressor":
        return _n_in(obj.regressor_)
    return obj.n_features_in_


def _n_out(obj) -> int | None:
    """How many columns the fitted transformer ``obj`` gives."""
    name = type(obj).__name__
    if name == "Pipeline":
        width = None
        for _, step in obj.steps:
            if step is not None and not isinstance(step, str):
                width = _n_out(step)
        return width
    if name == "ColumnTransformer":
        return sum(s.stop - s.start for s in obj.output_indices_.values())
    if name == "OneHotEncoder":
        return sum(obj._n_features_outs)
    if name == "SimpleImputer":
        kept = obj.n_features_in_
        if not obj.keep_empty_features:
            from sklearn.utils._mask import _get_mask
            kept -= int(_get_mask(obj.statistics_, np.nan).sum())
        indicator = 0 if obj.indicator_ is None else len(obj.indicator_.features_)
        return kept + indicator
    return obj.n_features_in_


def _resolve(spec, n_features: int, names: np.ndarray | None, where: str):
    """(the columns as scikit-learn is given them, the indices they select)."""
    if isinstance(spec, dict):
        _keys(spec, ("scalar",), where)
        column = spec["scalar"]
        if not isinstance(column, (int, str)) or isinstance(column, bool):
            raise ValueError(f"{where} selects the column {column!r}")
        return column, _indices([column], n_features, names, where)
    if not isinstance(spec, list):
        raise ValueError(f"{where} selects the columns {spec!r}")
    if spec and all(isinstance(v, bool) for v in spec):
        if len(spec) != n_features:
            raise ValueError(f"{where} selects columns by a mask of {len(spec)}, not "
                             f"{n_features}, booleans")
        return spec, [i for i, chosen in enumerate(spec) if chosen]
    if not (all(isinstance(v, str) for v in spec) or all(
            isinstance(v, int) and not isinstance(v, bool) for v in spec)):
        raise ValueError(f"{where} selects the columns {spec!r}")
    return spec, _indices(spec, n_features, names, where)


def _indices(columns: list, n_features: int, names: np.ndarray | None, where: str) -> list:
    indices = []
    for column in columns:
        if isinstance(column, str):
            if names is None:
                raise ValueError(f"{where} selects the column {column!r} by name, but was "
                                 "fitted without feature names")
            found = np.flatnonzero(names == column)
            if len(found) != 1:
                raise ValueError(f"{where} selects the column {column!r}, which is not one "
                                 "of its input's")
            indices.append(int(found[0]))
        elif not -n_features <= column < n_features:
            raise ValueError(f"{where} selects the column {column}, beyond its input's "
                             f"{n_features}")
        else:
            indices.append(column % n_features)
    return indices


def _check_vector(value: np.ndarray, n: int, where: str) -> None:
    if value.dtype.kind != "f" or value.shape != (n,):
        raise ValueError(f"{where} has dtype {value.dtype} and shape {value.shape}; it must be "
                         f"floats of shape ({n},) (n_features_in_)")


def _check_indices(values: np.ndarray, size: int, where: str, distinct: bool) -> None:
    if values.ndim != 1 or values.dtype.kind not in "iu" or (
            len(values) and (values.min() < 0 or values.max() >= size)):
        raise ValueError(f"{where} must be indices below {size}")
    if distinct and len(np.unique(values)) != len(values):
        raise ValueError(f"{where} must be distinct")


def _check_count(value, name: str, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} of {where} must be a nonnegative int, got {value!r}")


def _dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _keys(node: dict, required: tuple, where: str, optional: tuple = ()) -> None:
    missing = sorted(set(required) - set(node))
    unknown = sorted(set(node) - set(required) - set(optional))
    if missing or unknown:
        raise ValueError(f"{where} has missing {missing} and unknown {unknown} keys")


# --- description -----------------------------------------------------------------------

def describe(config) -> list[str]:
    """One line per step of a saved pipeline's config (as ``read_header`` gives it),
    for ``fastwb info``: name, class and key settings. Needs no scikit-learn and
    takes what a crafted config holds without failing."""
    node = config.get("model") if isinstance(config, dict) else None
    lines: list[str] = []
    _lines(node, lines)
    # a crafted name may hold lone surrogates, which no output can print
    return [_printable(line) for line in lines]


def _lines(node, lines: list[str]) -> None:
    if isinstance(node, dict) and node.get("class") == "Pipeline":     # its steps, unindented
        for step in _get(node, "steps", list, []):
            if isinstance(step, dict):
                _describe(step.get("step"), str(step.get("name")), lines, 0)
    else:
        _describe(node, "", lines, 0)


def _describe(node, name: str, lines: list[str], depth: int) -> None:
    indent = "  " * depth
    label = f"{name}: " if name else ""
    if not isinstance(node, dict):
        lines.append(f"{indent}{label}{node if isinstance(node, str) else '?'}")
        return
    cls = _get(node, "class", str, "?")
    params = _get(node, "params", dict, {})
    attributes = _get(node, "attributes", dict, {})
    if depth > 16:
        lines.append(f"{indent}{label}{cls} ...")
        return
    if cls == "Pipeline":
        lines.append(f"{indent}{label}Pipeline")
        for step in _get(node, "steps", list, []):
            if isinstance(step, dict):
                _describe(step.get("step"), str(step.get("name")), lines, depth + 1)
    elif cls == "ColumnTransformer":
        remainder = _get(params, "remainder", str, "?")
        lines.append(f"{indent}{label}ColumnTransformer ({_count(attributes)}, remainder "
                     f"{remainder})")
        for entry in _get(node, "transformers", list, []):
            if isinstance(entry, dict):
                _describe(entry.get("transformer"),
                          f"{entry.get('name')} on {_shown_columns(entry.get('columns'))}",
                          lines, depth + 1)
    elif cls == "TransformedTargetRegressor":
        lines.append(f"{indent}{label}TransformedTargetRegressor")
        _describe(node.get("regressor"), "regressor", lines, depth + 1)
        _describe(node.get("transformer"), "target", lines, depth + 1)
    elif cls in _ESTIMATORS:
        lines.append(f"{indent}{label}{cls} (fastwb)")
    else:
        settings = [_count(attributes)]
        for key, default in (("strategy", None), ("add_indicator", False),
                             ("handle_unknown", None), ("drop", None), ("with_mean", True),
                             ("with_std", True), ("with_centering", True),
                             ("with_scaling", True)):
            value = params.get(key, default)
            if value != default and isinstance(value, (str, bool)):
                settings.append(f"{key}={value}")
        lines.append(f"{indent}{label}{cls} ({', '.join(settings)})")


def _get(node: dict, key: str, kind: type, default):
    value = node.get(key)
    return value if isinstance(value, kind) else default


def _count(attributes: dict) -> str:
    n = attributes.get("n_features_in_")
    return f"{n} column{'' if n == 1 else 's'}" if isinstance(n, int) else "? columns"


def _shown_columns(spec) -> str:
    if isinstance(spec, dict):
        spec = spec.get("scalar")
        return str(spec)[:40]
    if isinstance(spec, list):
        if spec and all(isinstance(v, bool) for v in spec):
            spec = [i for i, v in enumerate(spec) if v]
        shown = ", ".join(str(v) for v in spec[:6])
        return f"[{shown}{', ...' if len(spec) > 6 else ''}]"
    return "?"
