"""``fastwb predict``: predict a CSV, Parquet or ``.npz`` file with a saved model
(through its preprocessing, with a note on the missing values it filled in and
the categories it had not seen); CSV out."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

import numpy as np

from fastwb import saving
from fastwb._optional import SKLEARN_REQUIREMENT, sklearn_missing
from fastwb.cli import preprocessing
from fastwb.cli.errors import CommandError
from fastwb.cli.tables import check_readable, check_writable, read_table, shorten, write_csv
from fastwb.network import Network


def run(args: argparse.Namespace) -> None:
    """Predict ``args.data`` with ``args.model``; write the CSV to ``args.out`` or stdout."""
    if args.out is not None:
        check_writable(args.out)
    model = _load_model(args.model)
    n_features, names = _model_features(model)
    table = read_table(args.data, args.target, target_required=args.target is not None,
                       features=names, cells=preprocessing.reading_cells(model))
    _check_features(args.model, table, n_features)
    for note in (preprocessing.missing_note(model, table.X, table.text, names, fitted=True),
                 preprocessing.unknown_note(model, table.X, names)):
        if note:
            print(f"fastwb: {note}", file=sys.stderr)
    X = _as_input(table, model)
    is_classifier = hasattr(model, "predict_proba")
    if args.proba and not is_classifier:
        kind = "a network" if isinstance(model, Network) else f"a {type(model).__name__}"
        raise CommandError(f"--proba needs a classifier; {args.model} holds {kind}")

    with warnings.catch_warnings():
        # columns were matched by name above; the estimator need not see them
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        warnings.filterwarnings("ignore", message="X has feature names, but")
        # counted in unknown_note's line above
        warnings.filterwarnings("ignore", message="Found unknown categories")
        try:
            if isinstance(model, Network):
                outputs = model.predict(X.astype(model.dtype))
                header = [f"output_{i}" for i in range(outputs.shape[1])]
                columns = list(outputs.T)
            else:
                predictions = model.predict(X)
                if predictions.ndim == 1:
                    header, columns = ["prediction"], [predictions]
                else:
                    header = [f"prediction_{i}" for i in range(predictions.shape[1])]
                    columns = list(predictions.T)
                if args.proba:
                    probabilities = model.predict_proba(X)
                    header += [f"proba_{label}" for label in model.classes_]
                    columns += list(probabilities.T)
                if table.target is not None:
                    score = model.score(X, _truth(table.target, model))
        except ValueError as error:
            raise CommandError(f"cannot predict {table.path}: {error}") from None

    if args.out is None:
        write_csv(sys.stdout, header, columns)
    else:
        try:
            with open(args.out, "w", newline="", encoding="utf-8") as f:
                write_csv(f, header, columns)
        except OSError:
            if os.path.isfile(args.out):     # no half-written predictions (never a device)
                with contextlib.suppress(OSError):
                    os.remove(args.out)
            raise
        print(f"wrote {len(X)} predictions to {args.out}", file=sys.stderr)
    if table.target is not None and not isinstance(model, Network):
        metric = "accuracy" if is_classifier else "R^2"
        print(f"{metric} on {len(X)} samples of {table.path}: {score:.4f}", file=sys.stderr)
    elif table.target is not None:
        print("fastwb: a plain network has no score; --target ignored", file=sys.stderr)


def _load_model(path: str):
    check_readable(path, "model file")
    try:
        model = saving.load(path)
    except ImportError as error:
        if not sklearn_missing(error):
            raise
        raise CommandError(f"{path} holds a scikit-learn estimator: loading it needs "
                           f"{SKLEARN_REQUIREMENT}") from None
    if not hasattr(model, "predict"):       # a ColumnTransformer or scaler saved alone
        raise CommandError(f"{path} holds a {type(model).__name__}, which transforms data "
                           "but does not predict")
    return model


def _model_features(model):
    """(number of inputs, their names or None) of a loaded model."""
    if isinstance(model, Network):
        return model.sizes[0], None
    names = getattr(model, "feature_names_in_", None)
    return model.n_features_in_, None if names is None else [str(name) for name in names]


def _as_input(table, model):
    """The features as the model takes them: a DataFrame of the named columns for a
    scikit-learn Pipeline fitted on one (its ColumnTransformer may choose columns
    by name), else the array."""
    if (type(model).__module__.split(".")[0] != "sklearn" or table.feature_names is None
            or getattr(model, "feature_names_in_", None) is None):
        return table.X
    try:
        import pandas
    except ImportError:
        return table.X
    return pandas.DataFrame(table.X, columns=table.feature_names)


def _check_features(model_path: str, table, n_features: int) -> None:
    """The table's columns are as many as the model takes."""
    if table.ignored:
        print(f"fastwb: ignoring the column(s) {shorten(table.ignored)}, which the model "
              f"does not use", file=sys.stderr)
    if table.X.shape[1] != n_features:
        columns = "columns" if table.feature_names is not None else "features"
        besides = f" besides the target {table.target_name!r}" if table.target_name else ""
        raise CommandError(f"{model_path} takes {n_features} features; {table.path} has "
                           f"{table.X.shape[1]} {columns}{besides}")


def _truth(target, model):
    """True values in the estimator's terms: integer labels read from text stay
    as they were saved (text or numbers)."""
    classes = getattr(model, "classes_", None)
    if classes is not None and classes.dtype.kind in "US" and target.dtype.kind != "U":
        return target.astype(str)
    if classes is None and target.dtype.kind in "US":
        raise CommandError("the target holds text, but the model is a regressor")
    return target if classes is not None else np.asarray(target, dtype=np.float64)
