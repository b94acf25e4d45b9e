"""The ``fastwb`` command (also ``python -m fastwb``).

::

    fastwb demo [--epochs N] [--seed S] [--hidden 100] [--no-compare] [--plots DIR]
    fastwb train DATA --target COL [--hidden 128,64] [--epochs N] [--out model.fwb]
                 [--plots DIR] ...
    fastwb predict MODEL DATA [--out predictions.csv] [--proba] [--target COL]
    fastwb info MODEL
    fastwb --version [--verbose]

DATA is a CSV file (a header row; numeric feature columns; the target may
hold text labels) or a ``.npz`` archive (arrays ``X`` and ``y``, optionally
``feature_names``); see ``fastwb._data``. Expected failures (a missing file,
an unknown column, a bad option) print one line ``fastwb: error: ...`` on
stderr and exit with status 1 (2 for a bad command line); anything else shows
its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
import warnings

from fastwb._data import CommandError
from fastwb._optional import SKLEARN_REQUIREMENT, sklearn_dropins, sklearn_missing

EXIT_FAILURE = 1
EXIT_USAGE = 2


# --- the command line ------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (and the usage a --help away)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"fastwb: error: {message} (see '{self.prog} --help')\n")


def _number(convert, accept, expected: str):
    """An argparse type: ``convert(text)``, refused unless ``accept(value)``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_nonnegative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
_fraction = _number(float, lambda v: 0 < v < 1, "a fraction between 0 and 1")


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected layer widths such as 100 or 128,64, "
                                         f"got {text!r}")
    return sizes


def _batch_size(text: str):
    return "auto" if text == "auto" else _positive_int(text)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, "
                                         f"got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from fastwb import __version__
    parser = _Parser(prog="fastwb", description="fastwb: fast weights and biases. Train "
                     "dense neural networks on the CPU from the command line.")
    parser.add_argument("--version", action="store_true",
                        help=f"print the version (fastwb {__version__}) and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="with --version: also how fastwb was built and what it runs on "
                             "(fastwb.show_config())")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train on scikit-learn's digits and time it against scikit-learn",
        description="Train fastwb's MLPClassifier (scikit-learn's default hyperparameters) "
                    "on scikit-learn's digits data set; show the loss per epoch, the test "
                    "accuracy, the weights and biases, and the time of the same fit with "
                    "scikit-learn's MLPClassifier.")
    demo.add_argument("--epochs", type=_positive_int, default=200,
                      help="most epochs to train (max_iter; default 200)")
    demo.add_argument("--seed", type=_seed, default=0, help="random_state (default 0)")
    demo.add_argument("--hidden", type=_hidden, default=(100,), metavar="N[,N...]",
                      help="hidden layer widths (default 100)")
    demo.add_argument("--no-compare", dest="compare", action="store_false",
                      help="skip the scikit-learn fit")
    demo.add_argument("--plots", metavar="DIR",
                      help="also follow the training with fastwb.Monitor and write its plots "
                           "(loss, weight histograms, update ratios and gradient norms) "
                           "as PNG files into DIR (needs matplotlib)")

    train = commands.add_parser(
        "train", help="train a network on a CSV or .npz file and save it",
        description="Train fastwb's MLPClassifier or MLPRegressor on DATA and save it. DATA "
                    "is a CSV file with a header row (numeric feature columns; the target "
                    "may hold text labels) or a .npz file with arrays X and y (and "
                    "optionally feature_names).")
    train.add_argument("data", metavar="DATA", help="a .csv (or .tsv, .csv.gz) or .npz file")
    train.add_argument("--target", metavar="COL",
                       help="the column to predict (CSV: required; .npz: the target array, "
                            "default y)")
    train.add_argument("--task", choices=("auto", "classify", "regress"), default="auto",
                       help="auto (default): classify text labels and integers with at most "
                            "20 values, regress the rest")
    train.add_argument("--hidden", type=_hidden, default=(100,), metavar="N[,N...]",
                       help="hidden layer widths, e.g. 128,64 (default 100)")
    train.add_argument("--activation", choices=("relu", "tanh", "logistic", "identity"),
                       default="relu", help="of the hidden layers (default relu)")
    train.add_argument("--epochs", type=_positive_int, default=200,
                       help="most epochs (max_iter; default 200; training stops earlier "
                            "when the loss stops improving)")
    train.add_argument("--batch-size", type=_batch_size, default="auto",
                       help="samples per step (default auto: min(200, samples))")
    train.add_argument("--lr", type=_positive_float, default=1e-3,
                       help="Adam's learning rate (default 0.001)")
    train.add_argument("--alpha", type=_nonnegative_float, default=1e-4,
                       help="L2 penalty (default 0.0001)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="precision of the network (default float32)")
    train.add_argument("--seed", type=_seed, default=0,
                       help="random_state: initial weights, sample order, validation split "
                            "(default 0)")
    train.add_argument("--val-fraction", type=_fraction, metavar="F",
                       help="hold out this fraction of the samples and report the score on it")
    train.add_argument("--out", default="model.fwb", metavar="FILE",
                       help="where to save the model (default model.fwb)")
    train.add_argument("--plots", metavar="DIR",
                       help="also follow the training with fastwb.Monitor and write its "
                            "plots as PNG files into DIR: loss, weight histograms, update "
                            "ratios and gradient norms, and with 2 features the decision "
                            "boundary (needs matplotlib)")

    predict = commands.add_parser(
        "predict", help="predict with a saved model; writes CSV",
        description="Predict DATA (CSV or .npz, as for train) with a saved model and write "
                    "the predictions as CSV. Columns are matched by name when both the "
                    "model and the data have names; others (such as the target) are "
                    "ignored.")
    predict.add_argument("model", metavar="MODEL", help="a model file from fastwb train or "
                                                        "fastwb.save")
    predict.add_argument("data", metavar="DATA", help="a .csv (or .tsv, .csv.gz) or .npz file")
    predict.add_argument("--out", metavar="FILE", help="write the CSV here (default: stdout)")
    predict.add_argument("--proba", action="store_true",
                         help="also write each class's probability (classifiers)")
    predict.add_argument("--target", metavar="COL",
                         help="a column (or .npz array) of true values: report the score on "
                              "stderr")

    bench = commands.add_parser(
        "bench", help="time fastwb against its NumPy reference and, with --peers, "
                      "PyTorch, JAX and scikit-learn",
        description="Time one Adam train_step and predict of one sample on the standard "
                    "shapes, side by side in one run, each first checked against fastwb's "
                    "NumPy reference; report time, GFLOP/s, percent of this machine's GEMM "
                    "rate and the speed-up over the fastest peer.")
    bench.add_argument("--peers", action="store_true",
                       help="also PyTorch (CPU), JAX (jit) and scikit-learn, where installed "
                            '(pip install "fastwb[peers]")')
    from fastwb.bench.peers import add_arguments
    add_arguments(bench)

    info = commands.add_parser("info", help="describe a saved model without loading its data",
                               description="Describe a saved model: kind, versions, layers, "
                                           "parameter count and training summary.")
    info.add_argument("model", metavar="MODEL", help="a model file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``fastwb`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and not args.version:
        parser.error("--verbose goes with --version")
    if args.command is None and not args.version:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from fastwb.saving import ModelFileError
    run = {"demo": _demo, "train": _train, "predict": _predict, "info": _info,
           "bench": _bench}[args.command] if not args.version else _version
    try:
        run(args)
    except (CommandError, ModelFileError) as error:
        return _fail(error)
    except KeyboardInterrupt:
        print("\nfastwb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:           # fastwb predict ... | head: the reader has gone
        _silence_stdout()
        return EXIT_FAILURE
    except OSError as error:          # a file vanished, a disk filled up: the user's to fix
        if error.filename is None:
            raise
        return _fail(f"{error.strerror or error}: {error.filename}")
    return 0


def _version(args: argparse.Namespace) -> None:
    from fastwb import __version__, show_config
    print(f"fastwb {__version__}")
    if args.verbose:
        show_config()


def _bench(args: argparse.Namespace) -> None:
    from fastwb.bench.contenders import NAMES
    from fastwb.bench.peers import run
    run(args, NAMES if args.peers else NAMES[:2])


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # not a real file (captured in a test)
        pass


def _fail(error) -> int:
    message = " ".join(str(error).split())          # one line, whatever the message was
    print(f"fastwb: error: {message}", file=sys.stderr)
    return EXIT_FAILURE


# --- training with a progress bar --------------------------------------------------------

def _progress_bar(estimator, epochs: int):
    from fastwb.callbacks import ProgressBar

    class EstimatorProgress(ProgressBar):
        """The bar, with the estimator's loss (scikit-learn's, as ``loss_curve_``)."""

        def on_epoch_end(self, epoch: int, logs: dict) -> None:
            curve = getattr(estimator, "loss_curve_", None)
            if curve:
                logs = {**logs, "loss": curve[-1]}
            super().on_epoch_end(epoch, logs)

    return EstimatorProgress(epochs)


def fit_with_progress(estimator, X, y, quiet: bool = False, callbacks=()) -> list[str]:
    """``estimator.fit(X, y)`` with a progress bar on stderr and ``callbacks``
    besides; the warnings it raised come back as messages (and, unless
    ``quiet``, are printed as ``fastwb: warning: ...`` lines)."""
    bar = _progress_bar(estimator, estimator.max_iter)
    estimator.set_params(callbacks=[bar, *callbacks])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimator.fit(X, y)
    finally:
        estimator.set_params(callbacks=None)    # the callbacks are this run's, not the model's
    messages = []
    for warning in caught:
        if not issubclass(warning.category, UserWarning):
            continue            # deprecations and the like: for developers, not users
        message = str(warning.message)
        if "Maximum iterations" in message:
            message = (f"the loss was still improving at the last epoch, "
                       f"{estimator.max_iter}; more epochs (--epochs) may train a better model")
        elif "interrupted" in message:
            message = f"training interrupted (Ctrl-C) after {estimator.n_iter_} epochs"
        if message not in messages:
            messages.append(message)
    if not quiet:
        for message in messages:
            print(f"fastwb: warning: {message}", file=sys.stderr)
    return messages


# --- the commands ----------------------------------------------------------------------

def check_plots_directory(directory: str) -> None:
    """Fail before training, not after, when the plots cannot be written there."""
    try:
        from fastwb.plots import _matplotlib
        _matplotlib()
    except ImportError as error:
        raise CommandError(f"--plots: {error}") from None
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"--plots {directory}: exists and is not a directory")


def write_plots(monitor, directory: str, X=None, y=None) -> list:
    """``fastwb.plots.save_plots``, then one line per file written."""
    from fastwb.plots import save_plots
    paths = save_plots(monitor, directory, X, y)
    for path in paths:
        print(f"wrote {path}")
    return paths


def _demo(args) -> None:
    from fastwb import demo
    demo.run(epochs=args.epochs, seed=args.seed, hidden=args.hidden, compare=args.compare,
             plots=args.plots)


def _train(args) -> None:
    import numpy as np

    from fastwb import _data, saving
    from fastwb.monitor import Monitor
    _data.check_writable(args.out, "model file")
    if args.plots is not None:
        check_plots_directory(args.plots)
    table = _data.read_table(args.data, args.target, target_required=True)
    estimators = sklearn_dropins("training")
    task = _data.choose_task(args.task, table.target, table.target_name)
    X, y = table.X, table.target
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
        what = (f"classification, {len(classes)} classes ({_data._shorten(map(str, classes), 8)})"
                if classes is not None else f"multi-label classification, {y.shape[1]} labels")
    else:
        estimator = estimators.MLPRegressor(**settings)
        what = "regression" + (f", {y.shape[1]} targets" if y.ndim == 2 else "")
    X_val = y_val = None
    if args.val_fraction:
        X, X_val, y, y_val = _split(X, y, args.val_fraction, task, args.seed)
    print(f"{table.path}: {X.shape[0] + (0 if X_val is None else X_val.shape[0])} samples, "
          f"{X.shape[1]} features; target {table.target_name!r}: {what}")
    if X_val is not None:
        print(f"training on {X.shape[0]}, validating on {X_val.shape[0]} "
              f"(--val-fraction {args.val_fraction})")
    hidden = ",".join(str(n) for n in args.hidden)
    print(f"training {type(estimator).__name__}: hidden layers {hidden}, {args.activation}, "
          f"Adam lr {args.lr:g}, at most {args.epochs} epochs, {args.dtype}", flush=True)

    monitor = Monitor() if args.plots is not None else None
    start = time.perf_counter()
    try:
        fit_with_progress(estimator, X, y, callbacks=[] if monitor is None else [monitor])
    except ValueError as error:     # the estimator's checks, worded for users
        raise CommandError(f"cannot train on {table.path}: {error}") from None
    seconds = time.perf_counter() - start

    metric = "accuracy" if task == "classify" else "R^2"
    curve = estimator.loss_curve_
    print(f"{estimator.n_iter_} epochs in {seconds:.2f} s; loss {curve[0]:.4g} at the first, "
          f"{curve[-1]:.4g} at the last")
    print(f"training {metric}: {estimator.score(X, y):.4f}")
    if X_val is not None:
        print(f"validation {metric}: {estimator.score(X_val, y_val):.4f} "
              f"({X_val.shape[0]} samples)")
    if table.feature_names is not None:
        # kept with the model, so that predict can match the data's columns by name
        estimator.feature_names_in_ = np.array(table.feature_names, dtype=object)
    saving.save(estimator, args.out)
    layers = "-".join(str(n) for n in estimator.network.sizes)
    print(f"saved {args.out} ({type(estimator).__name__}, layers {layers}, "
          f"{estimator.network.n_parameters:,} parameters)")
    if monitor is not None:
        write_plots(monitor, args.plots, X, y)


def _split(X, y, fraction: float, task: str, seed: int):
    from sklearn.model_selection import train_test_split
    n_val = round(fraction * X.shape[0])
    if n_val < 1 or n_val >= X.shape[0]:
        raise CommandError(f"--val-fraction {fraction} of {X.shape[0]} samples leaves "
                           f"{'no' if n_val < 1 else 'all'} samples for validation")
    stratify = None
    if task == "classify" and y.ndim == 1:
        import numpy as np
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and len(counts) <= min(n_val, X.shape[0] - n_val):
            stratify = y
    return train_test_split(X, y, test_size=n_val, random_state=seed, stratify=stratify)


def _load_model(path: str):
    from fastwb import _data, saving
    _data.check_readable(path, "model file")
    try:
        return saving.load(path)
    except ImportError as error:
        if not sklearn_missing(error):
            raise
        raise CommandError(f"{path} holds a scikit-learn estimator: loading it needs "
                           f"{SKLEARN_REQUIREMENT}") from None


def _model_features(model):
    """(number of inputs, their names or None) of a loaded model."""
    from fastwb.network import Network
    if isinstance(model, Network):
        return model.sizes[0], None
    names = getattr(model, "feature_names_in_", None)
    return model.n_features_in_, None if names is None else [str(name) for name in names]


def _check_features(model_path: str, table, n_features: int) -> None:
    """The table's columns are as many as the model takes."""
    from fastwb._data import _shorten
    if table.ignored:
        print(f"fastwb: ignoring the column(s) {_shorten(table.ignored)}, which the model "
              f"does not use", file=sys.stderr)
    if table.X.shape[1] != n_features:
        columns = "columns" if table.feature_names is not None else "features"
        besides = f" besides the target {table.target_name!r}" if table.target_name else ""
        raise CommandError(f"{model_path} takes {n_features} features; {table.path} has "
                           f"{table.X.shape[1]} {columns}{besides}")


def _predict(args) -> None:
    from fastwb import _data
    from fastwb.network import Network
    if args.out is not None:
        _data.check_writable(args.out)
    model = _load_model(args.model)
    n_features, names = _model_features(model)
    table = _data.read_table(args.data, args.target, target_required=args.target is not None,
                             features=names)
    _check_features(args.model, table, n_features)
    X = table.X
    is_classifier = hasattr(model, "predict_proba")
    if args.proba and not is_classifier:
        kind = "a network" if isinstance(model, Network) else f"an {type(model).__name__}"
        raise CommandError(f"--proba needs a classifier; {args.model} holds {kind}")

    with warnings.catch_warnings():
        # columns were matched by name above; the estimator need not see them
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
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
        _data.write_csv(sys.stdout, header, columns)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            _data.write_csv(f, header, columns)
        print(f"wrote {len(X)} predictions to {args.out}", file=sys.stderr)
    if table.target is not None and not isinstance(model, Network):
        metric = "accuracy" if is_classifier else "R^2"
        print(f"{metric} on {len(X)} samples of {table.path}: {score:.4f}", file=sys.stderr)
    elif table.target is not None:
        print("fastwb: a plain network has no score; --target ignored", file=sys.stderr)


def _truth(target, model):
    """True values in the estimator's terms: integer labels read from text stay
    as they were saved (text or numbers)."""
    import numpy as np
    classes = getattr(model, "classes_", None)
    if classes is not None and classes.dtype.kind in "US" and target.dtype.kind != "U":
        return target.astype(str)
    if classes is None and target.dtype.kind in "US":
        raise CommandError("the target holds text, but the model is a regressor")
    return target if classes is not None else np.asarray(target, dtype=np.float64)


# --- info --------------------------------------------------------------------------------

def _decoded(value):
    """A parameter as fastwb.sklearn saved it (tuples and dicts tagged), as Python."""
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"tuple"}:
            return tuple(_decoded(v) for v in value["tuple"])
        if set(value) == {"dict"}:
            return {_decoded(k): _decoded(v) for k, v in value["dict"]}
        if set(value) == {"float"}:
            return float(value["float"])
    return value


_SHOWN_PARAMETERS = ("hidden_layer_sizes", "activation", "solver", "optimizer", "alpha",
                     "batch_size", "learning_rate", "learning_rate_init", "max_iter",
                     "early_stopping", "dropout", "class_weight", "dtype", "random_state")


def _info(args) -> None:
    from fastwb import _data, saving
    _data.check_readable(args.model, "model file")
    header = saving.read_header(args.model)
    kind, config = header["kind"], header["config"]
    print(f"{args.model}: {'fastwb network' if kind == 'network' else kind}, file format "
          f"{header['format_version']}, written by fastwb {header['fastwb_version']}")
    if kind == "network":
        network = config.get("network") or {}
        optimizer = config.get("optimizer")
        attributes = {}
    else:
        params = _decoded(config.get("params", {}))
        shown = [f"{name}={params[name]!r}" for name in _SHOWN_PARAMETERS
                 if name in params and not (name == "optimizer" and params[name] is None)]
        print(textwrap.fill("parameters: " + ", ".join(shown), width=79,
                            subsequent_indent="  ", break_long_words=False))
        if not config.get("fitted"):
            print("not fitted")
            return
        network = (config.get("network") or {}).get("network") or {}
        optimizer = None
        attributes = {name: _decoded(value)
                      for name, value in (config.get("attributes") or {}).items()}
    layers = network.get("layers") or []
    total = 0
    print(f"network: {network.get('dtype', '?')}, loss {network.get('loss', '?')}")
    print(f"  {'layer':<7}{'inputs':>8}{'outputs':>9}  {'activation':<12}{'dropout':>8}"
          f"{'parameters':>12}")
    for i, layer in enumerate(layers):
        n_in, n_out = layer.get("n_in", 0), layer.get("n_out", 0)
        count = n_in * n_out + n_out
        total += count
        print(f"  {i + 1:<7}{n_in:>8}{n_out:>9}  {layer.get('activation')!s:<12}"
              f"{layer.get('dropout') or 0:>8g}{count:>12,}")
    print(f"  {'total':<7}{'':>8}{'':>9}  {'':<12}{'':>8}{total:>12,}")
    if optimizer:
        name = (optimizer.get("config") or {}).get("name", "?")
        print(f"optimizer: {name}, {optimizer.get('step', 0)} steps, "
              f"{optimizer.get('epoch', 0)} epochs")
    if attributes:
        summary = [f"{attributes.get('n_iter_', '?')} epochs"]
        if isinstance(attributes.get("loss_"), float):
            summary.append(f"final loss {attributes['loss_']:.6g}")
        if isinstance(attributes.get("best_validation_score_"), float):
            summary.append(f"best validation score {attributes['best_validation_score_']:.4f}")
        print("trained: " + ", ".join(summary))
    arrays = header["arrays"]
    model = None
    if "classes_" in arrays or "feature_names_in_" in arrays:
        try:
            model = saving.load(args.model)     # the labels and names are arrays, not header
        except ImportError:
            model = None
    if "classes_" in arrays:
        count = arrays["classes_"]["shape"][0] if arrays["classes_"]["shape"] else 0
        labels = (f": {_data._shorten(map(str, model.classes_), 10)}"
                  if model is not None else "")
        print(f"classes: {count}{labels}")
    n_features = attributes.get("n_features_in_") or (layers[0].get("n_in") if layers else "?")
    if "feature_names_in_" in arrays and model is not None:
        print(f"features: {n_features}: {_data._shorten(map(str, model.feature_names_in_), 10)}")
    else:
        print(f"features: {n_features}")
