"""``fastwb train``: train a scikit-learn drop-in on a CSV, Parquet or ``.npz``
file, behind the preprocessing of ``fastwb.cli.preprocessing``, and save it."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fastwb import saving
from fastwb.cli import preprocessing
from fastwb.cli.common import (RunMonitor, check_plots_directory, fit_with_progress,
                               monitor_callbacks,
                               sklearn_estimators, write_plots)
from fastwb.cli.errors import CommandError
from fastwb.cli.tables import check_writable, choose_task, read_table, shorten


def run(args: argparse.Namespace) -> None:
    """Train on ``args.data`` as the options say, report the scores, save ``args.out``."""
    check_writable(args.out, "model file")
    if args.plots is not None:
        check_plots_directory(args.plots)
    steps = preprocessing.Steps(scale=args.scale, impute=args.impute, encode=args.encode,
                                scale_target=args.scale_target)
    table = read_table(args.data, args.target, target_required=True, cells=steps.cells())
    estimators = sklearn_estimators("training")
    X, y, target_name = table.X, table.target, table.target_name
    assert y is not None and target_name is not None, "read_table read the required target"
    task = choose_task(args.task, y, target_name)
    if task == "regress":
        y = y.astype(np.float64)
    settings = dict(hidden_layer_sizes=args.hidden, activation=args.activation,
                    max_iter=args.epochs, batch_size=args.batch_size,
                    learning_rate_init=args.lr, alpha=args.alpha, dtype=args.dtype,
                    random_state=args.seed)
    if task == "classify":
        estimator = estimators.MLPClassifier(**settings)
        classes = np.unique(y, axis=0) if y.ndim == 1 else None
        if classes is not None and len(classes) < 2:
            raise CommandError(f"the target {table.target_name!r} has a single class, "
                               f"{classes[0]!r}: nothing to classify")
        what = (f"classification, {len(classes)} classes ({shorten(map(str, classes), 8)})"
                if classes is not None else f"multi-label classification, {y.shape[1]} labels")
    else:
        estimator = estimators.MLPRegressor(**settings)
        what = "regression" + (f", {y.shape[1]} targets" if y.ndim == 2 else "")
    model = preprocessing.build(estimator, steps, X.shape[1], table.text,
                                regression=task == "regress")
    X_val = y_val = None
    if args.val_fraction:
        X, X_val, y, y_val = _split(X, y, args.val_fraction, task, args.seed)
    text = f" ({len(table.text)} of them text)" if table.text else ""
    print(f"{table.path}: {X.shape[0] + (0 if X_val is None else X_val.shape[0])} samples, "
          f"{X.shape[1]} features{text}; target {table.target_name!r}: {what}")
    note = preprocessing.missing_note(model, table.X, table.text, table.feature_names,
                                        fitted=False)
    if note:
        print(note)
    if X_val is not None:
        print(f"training on {X.shape[0]}, validating on {X_val.shape[0]} "
              f"(--val-fraction {args.val_fraction})")
    hidden = ",".join(str(n) for n in args.hidden)
    print(f"training {type(estimator).__name__}: hidden layers {hidden}, {args.activation}, "
          f"Adam lr {args.lr:g}, at most {args.epochs} epochs, {args.dtype}", flush=True)

    monitor = RunMonitor() if args.plots is not None else None
    start = time.perf_counter()
    try:
        fit_with_progress(model, X, y, callbacks=monitor_callbacks(monitor, model, X_val, y_val))
    except ValueError as error:     # the estimator's checks, worded for users
        raise CommandError(f"cannot train on {table.path}: {error}") from None
    seconds = time.perf_counter() - start

    estimator = preprocessing.estimator_of(model)
    note = preprocessing.identifier_note(model, X.shape[0], table.feature_names)
    if note:
        print(f"fastwb: warning: {note}", file=sys.stderr)
    for line in preprocessing.describe(model, table.feature_names):
        print(f"preprocessing: {line}")
    metric = "accuracy" if task == "classify" else "R^2"
    curve = estimator.loss_curve_
    print(f"{estimator.n_iter_} epochs in {seconds:.2f} s; loss {curve[0]:.4g} at the first, "
          f"{curve[-1]:.4g} at the last")
    print(f"training {metric}: {model.score(X, y):.4f}")
    if X_val is not None:
        print(f"validation {metric}: {model.score(X_val, y_val):.4f} "
              f"({X_val.shape[0]} samples)")
    if table.feature_names is not None:
        # kept with the model, so that predict can match the data's columns by name
        preprocessing.set_feature_names(model, table.feature_names)
    saving.save(model, args.out)
    layers = "-".join(str(n) for n in estimator.network.sizes)
    kind = type(estimator).__name__ + (" with its preprocessing" if model is not estimator
                                       else "")
    print(f"saved {args.out} ({kind}, layers {layers}, "
          f"{estimator.network.n_parameters:,} parameters)")
    if monitor is not None:
        write_plots(monitor, args.plots, *preprocessing.network_data(model, X, y))


def _split(X, y, fraction: float, task: str, seed: int):
    """scikit-learn's train_test_split, stratified for classes when every class
    can be on both sides."""
    from sklearn.model_selection import train_test_split
    n_val = round(fraction * X.shape[0])
    if n_val < 1 or n_val >= X.shape[0]:
        raise CommandError(f"--val-fraction {fraction} of {X.shape[0]} samples leaves "
                           f"{'no' if n_val < 1 else 'all'} samples for validation")
    stratify = None
    if task == "classify" and y.ndim == 1:
        _, counts = np.unique(y, return_counts=True)
        if np.min(counts) >= 2 and len(counts) <= min(n_val, X.shape[0] - n_val):
            stratify = y
    return train_test_split(X, y, test_size=n_val, random_state=seed, stratify=stratify)
