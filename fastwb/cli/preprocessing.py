"""The preprocessing ``fastwb train`` puts before the network, as real
scikit-learn objects that ``fastwb.save`` keeps in the model file with it::

    Pipeline([("preprocess", ColumnTransformer([
                  ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                                        ("scale", StandardScaler())]), numeric_columns),
                  ("text", OneHotEncoder(handle_unknown="ignore"), text_columns)])),
              ("mlp", MLPClassifier(...))])

and for regression that Pipeline (ending in an MLPRegressor) as the
``regressor`` of ``TransformedTargetRegressor(transformer=StandardScaler())``,
which trains on the standardized target and scales predictions back.

* Missing numbers are imputed with the column's median rather than its mean:
  one outlier or a long tail (incomes, prices) does not drag a median, and a
  column of whole numbers or of 0/1 flags gets a value it could hold.
* Text columns are one-hot encoded; a category not seen in training is encoded
  as all zeros (``handle_unknown="ignore"``) and counted in a note. A missing
  text value is a category of its own, "".

``Steps`` turns each step off; a model left with no step is the bare estimator,
as files from before these steps were. The rest of the module reads such a
model back: the estimator inside, how its data is read, and notes and
descriptions for ``train``, ``predict`` and ``info``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastwb._columns import column_positions
from fastwb.cli.tables import Cells, shorten


#: A text column with more categories than this and than half the rows gets a warning.
MANY_CATEGORIES = 20


@dataclass(frozen=True)
class Steps:
    """Which preprocessing steps ``fastwb train`` builds (all by default)."""

    scale: bool = True
    impute: bool = True
    encode: bool = True
    scale_target: bool = True

    def cells(self) -> Cells:
        """What the training table may hold: missing numbers when imputed,
        text columns when encoded."""
        return Cells(missing=self.impute, text=self.encode)


def build(estimator, steps: Steps, n_features: int, text: Sequence[int], regression: bool):
    """The model to train: ``estimator`` behind the ``steps`` for a table of
    ``n_features`` columns whose columns ``text`` hold text."""
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [j for j in range(n_features) if j not in text]
    # a column with no value at all is kept (as zeros), not dropped: the network's
    # inputs stay the table's columns, and no warning follows the model around
    stages = ([("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
              if steps.impute else []) + \
        ([("scale", StandardScaler())] if steps.scale else [])
    transformers = []
    if numeric and (stages or text):
        numeric_step = (Pipeline(stages) if len(stages) > 1 else
                        stages[0][1] if stages else "passthrough")
        transformers.append(("numeric", numeric_step, numeric))
    if text:
        transformers.append(("text", OneHotEncoder(handle_unknown="ignore"), list(text)))
    model = estimator
    if transformers:
        model = Pipeline([("preprocess", ColumnTransformer(transformers)), ("mlp", estimator)])
    if regression and steps.scale_target:
        model = TransformedTargetRegressor(regressor=model, transformer=StandardScaler())
    return model


# --- reading a model back --------------------------------------------------------------

def _features_model(model):
    """The model without a TransformedTargetRegressor around it (the fitted
    regressor once there is one: it is a copy of the template)."""
    if type(model).__name__ == "TransformedTargetRegressor":
        return getattr(model, "regressor_", model.regressor)
    return model


def estimator_of(model):
    """The fastwb estimator that ``model`` trains or holds (itself, when bare)."""
    model = _features_model(model)
    return model.steps[-1][1] if type(model).__name__ == "Pipeline" else model


def _column_transformer(model):
    model = _features_model(model)
    if type(model).__name__ != "Pipeline":
        return None
    first = model.steps[0][1]
    return first if type(first).__name__ == "ColumnTransformer" else None


def _step(model, name: str):
    """The transformer ``name`` ("numeric", "text") of the model's
    ColumnTransformer (fitted once the model is) and the columns it takes,
    or (None, [])."""
    transformer = _column_transformer(model)
    if transformer is None:
        return None, []
    entries = getattr(transformer, "transformers_", transformer.transformers)
    for step_name, step, columns in entries:
        if step_name == name and not isinstance(step, str):
            return step, list(columns)
    return None, []


def _stages(model) -> dict:
    """The numeric columns' steps, by class name."""
    numeric, _ = _step(model, "numeric")
    if numeric is None:
        return {}
    steps = [step for _, step in numeric.steps] if type(numeric).__name__ == "Pipeline" \
        else [numeric]
    return {type(step).__name__: step for step in steps}


def _parts(obj):
    """``obj`` and every step, transformer and regressor inside it (the fitted
    ones once fitted)."""
    yield obj
    kind = type(obj).__name__
    if kind == "Pipeline":
        inner = [step for _, step in obj.steps]
    elif kind == "ColumnTransformer":
        inner = [step for _, step, _ in getattr(obj, "transformers_", obj.transformers)]
    elif kind == "TransformedTargetRegressor":
        inner = [_features_model(obj)]
    else:
        inner = []
    for part in inner:
        if part is not None and not isinstance(part, str):
            yield from _parts(part)


def _text_encoders(model) -> list:
    """``(encoder, columns)`` for each fitted OneHotEncoder of text categories
    that takes columns of the data as they come (the first step of the model,
    or of a transformer of its ColumnTransformer): models built by ``build``
    and Pipelines a user saved alike."""
    features = _features_model(model)
    if type(features).__name__ != "Pipeline" or not hasattr(features, "n_features_in_"):
        return []
    first = features.steps[0][1]
    everything = list(range(features.n_features_in_))
    entries = ([(step, columns) for _, step, columns in first.transformers_]
               if type(first).__name__ == "ColumnTransformer" else [(first, everything)])
    found = []
    for step, columns in entries:
        if type(step).__name__ == "Pipeline":
            step = step.steps[0][1]
        if type(step).__name__ != "OneHotEncoder" or \
                not all(c.dtype.kind in "OUS" for c in step.categories_):
            continue
        try:
            names = getattr(first, "feature_names_in_", None)
            chosen = column_positions(columns, len(everything),
                                      None if names is None else list(names))
        except ValueError:          # a column the model's input has not
            continue
        found.append((step, chosen))
    return found


def _target_scaler(model):
    return getattr(model, "transformer_", None) \
        if type(model).__name__ == "TransformedTargetRegressor" else None


def reading_cells(model) -> Cells:
    """How to read data for ``model``: missing numbers where it imputes them
    (a SimpleImputer anywhere in it), its text columns as text."""
    names = getattr(model, "feature_names_in_", None)
    text = frozenset(str(names[j]) for _, columns in _text_encoders(model) for j in columns) \
        if names is not None else frozenset()
    imputes = any(type(part).__name__ == "SimpleImputer" for part in _parts(model))
    return Cells(missing=imputes, text_columns=text)


def set_feature_names(model, names: list[str]) -> None:
    """Keep the table's column names with the model, so that ``predict`` can
    match a file's columns by name (set after fitting on a bare array: the
    first step, and a TransformedTargetRegressor, report them)."""
    array = np.array(names, dtype=object)
    transformer = _column_transformer(model)
    (transformer if transformer is not None else estimator_of(model)).feature_names_in_ = array
    if type(model).__name__ == "TransformedTargetRegressor":
        model.feature_names_in_ = array


def network_data(model, X, y):
    """``(X, y)`` as the network inside ``model`` sees them (for the plots)."""
    features = _features_model(model)
    if features is not estimator_of(model):
        X = features[:-1].transform(X)
        if hasattr(X, "toarray"):
            X = X.toarray()
    scaler = _target_scaler(model)
    if scaler is not None:
        y = scaler.transform(np.reshape(y, (len(y), -1))).reshape(np.shape(y))
    return X, y


# --- what users read ---------------------------------------------------------------------

def describe(model, names: Sequence[str] | None = None) -> list[str]:
    """What a fitted model does to its data before and after the network, a
    line each for the numeric columns, the text columns and the target ([]
    for a bare estimator); ``names``: the columns' (default: the model's)."""
    names = _names(model, names)
    lines = []
    _, numeric = _step(model, "numeric")
    stages = _stages(model)
    if numeric:
        done = (["imputed (training medians)"] * ("SimpleImputer" in stages)
                + ["standardized"] * ("StandardScaler" in stages))
        lines.append(f"{_count(len(numeric), 'numeric column')}: "
                     f"{', '.join(done) if done else 'as they are'}")
    for encoder, text in _text_encoders(model):
        counts = [f"{names[j]}: {len(categories)}"
                  for j, categories in zip(text, encoder.categories_)]
        lines.append(f"{_count(len(text), 'text column')} one-hot encoded (categories: "
                     f"{shorten(counts, 6)})")
    scaler = _target_scaler(model)
    mean, scale = getattr(scaler, "mean_", None), getattr(scaler, "scale_", None)
    if type(scaler).__name__ == "StandardScaler" and mean is not None and scale is not None:
        shown = ", ".join(f"mean {m:.4g}, sd {s:.4g}" for m, s in zip(mean, scale))
        lines.append(f"target standardized ({shown if mean.size <= 2 else 'per column'})"
                     f", predictions scaled back")
    elif scaler is not None:                # a TransformedTargetRegressor a user saved
        lines.append(f"target scaled ({type(scaler).__name__}), predictions scaled back")
    return lines


def missing_note(model, X, text: Sequence[int], names: Sequence[str] | None,
                 fitted: bool) -> str | None:
    """"imputed N missing values in M columns (...) with the ... medians" for
    the numeric columns of X (those not in ``text``) when ``model`` imputes;
    None when it does not, or nothing is missing."""
    if not any(type(part).__name__ == "SimpleImputer" for part in _parts(model)):
        return None
    numeric = [j for j in range(X.shape[1]) if j not in text]
    counts = np.isnan(np.asarray(X[:, numeric], dtype=np.float64)).sum(axis=0)
    if not counts.any():
        return None
    names = _names(model, names, X.shape[1])
    found = [f"{names[j]}: {count:,}" for j, count in zip(numeric, counts) if count]
    whose = "the training medians" if fitted else "the column medians"
    strategies = {part.strategy for part in _parts(model)
                  if type(part).__name__ == "SimpleImputer"}
    if strategies != {"median"}:        # a Pipeline a user saved
        whose = "the training " + "/".join(sorted(strategies)) + " values"
    empty = [names[j] for j, count in zip(numeric, counts) if count == X.shape[0]]
    zeros = f"; {shorten(empty, 6)}, without any value, with 0" if empty and not fitted else ""
    return (f"imputed {_count(int(counts.sum()), 'missing value')} in "
            f"{_count(len(found), 'column')} ({shorten(found, 6)}) with {whose}{zeros}")


def unknown_note(model, X, names: Sequence[str] | None) -> str | None:
    """How many values of each text column of X are categories that ``model``
    did not see in training (and encodes as all zeros); None when none is."""
    names = _names(model, names, X.shape[1])
    found = []
    total = 0
    for encoder, text in _text_encoders(model):
        for j, categories in zip(text, encoder.categories_):
            known = set(categories.tolist())
            count = sum(value not in known for value in X[:, j])
            if count:
                total += count
                found.append(f"{names[j]}: {count:,}")
    if not total:
        return None
    return (f"{_count(total, 'value')} in {_count(len(found), 'text column')} "
            f"({shorten(found, 6)}) {'is a category' if total == 1 else 'are categories'} "
            f"not seen in training, encoded as all zeros")


def identifier_note(model, n_rows: int, names: Sequence[str] | None) -> str | None:
    """A warning for text columns with more categories than half the rows
    (and than MANY_CATEGORIES): identifiers or free text, which one-hot
    encoding turns into an input per row for the network to memorize."""
    names = _names(model, names)
    found = [f"{names[j]}: {len(categories):,}"
             for encoder, text in _text_encoders(model)
             for j, categories in zip(text, encoder.categories_)
             if len(categories) > max(MANY_CATEGORIES, n_rows / 2)]
    if not found:
        return None
    return (f"{_count(len(found), 'text column')} ({shorten(found, 6)} categories) "
            f"{'has' if len(found) == 1 else 'have'} a category for most of the {n_rows:,} "
            f"rows: an identifier or free text? One-hot encoded, it only lets the network "
            f"memorize rows; leave such columns out of the file")


def _names(model, names: Sequence[str] | None, n_columns: int | None = None) -> list[str]:
    """The column names to show: ``names``, the model's, or "column 0", ...
    (``n_columns`` of them; default: as many as the fitted model takes)."""
    if names is None:
        names = getattr(model, "feature_names_in_", None)
    if names is None:
        count = model.n_features_in_ if n_columns is None else n_columns
        return [f"column {j}" for j in range(count)]
    return [str(name) for name in names]


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}{'' if n == 1 else 's'}"
