"""The ``fastwb`` command (also ``python -m fastwb``): its options, and which
subcommand runs.

::

    fastwb demo [--epochs N] [--seed S] [--hidden 100] [--no-compare] [--plots DIR]
    fastwb train DATA --target COL [--hidden 128,64] [--epochs N] [--out model.fwb]
                 [--plots DIR] [--no-scale] [--no-impute] [--no-encode]
                 [--no-scale-target] ...
    fastwb predict MODEL DATA [--out predictions.csv] [--proba] [--target COL]
    fastwb info MODEL
    fastwb export MODEL --onnx model.onnx [--opset N] [--quantize int8]
    fastwb --version [--verbose]

DATA is a CSV file (a header row; feature columns of numbers or text, values
may be missing; the target may hold text labels), a Parquet file with such
columns, or a ``.npz`` archive (arrays ``X`` and ``y``, optionally
``feature_names``); see ``fastwb.cli.tables``. ``train`` puts the
preprocessing of ``fastwb.cli.preprocessing`` before the network. Expected
failures (a missing file, an unknown column, a bad option) print one line
``fastwb: error: ...`` on stderr and exit with status 1 (2 for a bad command
line); anything else shows its traceback. Ctrl-C exits with status 130
(``train`` then saves nothing). A reader of stdout that leaves early
(``fastwb predict ... | head``) ends the command quietly, with status 0 as
though it had read everything; ``train``, whose output is a log, goes on to
save its model.

Each subcommand but bench (``fastwb.bench.peers``) is a module of this package
with a ``run``; they share ``common`` (progress, plots), ``tables`` (reading
data), ``preprocessing`` (the Pipeline train builds) and ``errors``.
"""
from __future__ import annotations

import argparse
import errno
import sys

from fastwb import __version__, show_config
from fastwb.bench import peers
from fastwb.bench.contenders import NAMES
from fastwb.cli import demo, export, info, predict, streams, train
from fastwb.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from fastwb.saving import ModelFileError


# --- the command line ------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (and the usage a --help away)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"fastwb: error: {message} (see '{self.prog} --help')\n")

    def _print_message(self, message: str, file=None) -> None:
        # the one place argparse writes: a reader that has gone does not change
        # the status (Python 3.13's argparse ignores the error itself; 3.10 raises)
        stream = file or sys.stderr
        try:
            super()._print_message(message, stream)
        except BrokenPipeError:
            streams.silence(stream)


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
    """The parser of the ``fastwb`` command line."""
    parser = _Parser(prog="fastwb", description="fastwb: fast weights and biases. Train "
                     "dense neural networks on the CPU from the command line.")
    parser.add_argument("--version", action="store_true",
                        help=f"print the version (fastwb {__version__}) and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="with --version: also how fastwb was built and what it runs on "
                             "(fastwb.show_config())")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo_parser = commands.add_parser(
        "demo", help="train on scikit-learn's digits and time it against scikit-learn",
        description="Train fastwb's MLPClassifier (scikit-learn's default hyperparameters) "
                    "on scikit-learn's digits data set; show the loss per epoch, the test "
                    "accuracy, the weights and biases, and the time of the same fit with "
                    "scikit-learn's MLPClassifier.")
    demo_parser.add_argument("--epochs", type=_positive_int, default=200,
                             help="most epochs to train (max_iter; default 200)")
    demo_parser.add_argument("--seed", type=_seed, default=0, help="random_state (default 0)")
    demo_parser.add_argument("--hidden", type=_hidden, default=(100,), metavar="N[,N...]",
                             help="hidden layer widths (default 100)")
    demo_parser.add_argument("--no-compare", dest="compare", action="store_false",
                             help="skip the scikit-learn fit")
    demo_parser.add_argument("--plots", metavar="DIR",
                             help="also follow the training with fastwb.Monitor and write its "
                                  "plots (loss, weight histograms, update ratios and gradient "
                                  "norms) as PNG files into DIR (needs matplotlib)")

    train_parser = commands.add_parser(
        "train", help="train a network on a CSV or .npz file and save it",
        description="Train fastwb's MLPClassifier or MLPRegressor on DATA and save it. DATA "
                    "is a CSV file with a header row (feature columns of numbers or text, "
                    "values may be missing; the target may hold text labels), a Parquet file "
                    "with such columns, or a .npz file with arrays X and y (and optionally "
                    "feature_names).")
    train_parser.add_argument("data", metavar="DATA",
                              help="a .csv (or .tsv, .csv.gz), .parquet or .npz file")
    train_parser.add_argument("--target", metavar="COL",
                              help="the column to predict (CSV: required; .npz: the target array, "
                                   "default y)")
    train_parser.add_argument("--task", choices=("auto", "classify", "regress"), default="auto",
                              help="auto (default): classify text labels and integers with at "
                                   "most 20 values, regress the rest")
    train_parser.add_argument("--hidden", type=_hidden, default=(100,), metavar="N[,N...]",
                              help="hidden layer widths, e.g. 128,64 (default 100)")
    train_parser.add_argument("--activation", default="relu",
                              choices=("relu", "tanh", "logistic", "identity", "leaky_relu",
                                       "elu", "selu", "gelu", "softplus", "swish", "silu"),
                              help="of the hidden layers (default relu)")
    train_parser.add_argument("--epochs", type=_positive_int, default=200,
                              help="most epochs (max_iter; default 200; training stops earlier "
                                   "when the loss stops improving)")
    train_parser.add_argument("--batch-size", type=_batch_size, default="auto",
                              help="samples per step (default auto: min(200, samples))")
    train_parser.add_argument("--lr", type=_positive_float, default=1e-3,
                              help="Adam's learning rate (default 0.001)")
    train_parser.add_argument("--alpha", type=_nonnegative_float, default=1e-4,
                              help="L2 penalty (default 0.0001)")
    train_parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                              help="precision of the network (default float32)")
    train_parser.add_argument("--seed", type=_seed, default=0,
                              help="random_state: initial weights, sample order, validation split "
                                   "(default 0)")
    train_parser.add_argument("--val-fraction", type=_fraction, metavar="F",
                              help="hold out this fraction of the samples and report the score "
                                   "on it")
    steps = train_parser.add_argument_group(
        "preprocessing", "By default numeric columns are standardized, their missing values "
        "(empty cells, NA, NaN, null, None, #N/A, ?) filled in with the column's median (robust "
        "to outliers and long tails), text columns one-hot encoded, and a regression target "
        "standardized; the steps are saved with the model, and predict applies them.")
    steps.add_argument("--no-scale", dest="scale", action="store_false",
                       help="do not standardize the numeric columns")
    steps.add_argument("--no-impute", dest="impute", action="store_false",
                       help="do not fill in missing values: a missing value is an error")
    steps.add_argument("--no-encode", dest="encode", action="store_false",
                       help="do not one-hot encode text columns: a text column is an error")
    steps.add_argument("--no-scale-target", dest="scale_target", action="store_false",
                       help="train on the regression target as it is")
    train_parser.add_argument("--out", default="model.fwb", metavar="FILE",
                              help="where to save the model (default model.fwb)")
    train_parser.add_argument("--plots", metavar="DIR",
                              help="also follow the training with fastwb.Monitor and write its "
                                   "plots as PNG files into DIR: loss (with --val-fraction also "
                                   "the validation loss), weight histograms, update ratios and "
                                   "gradient norms, and with 2 features the decision boundary "
                                   "(needs matplotlib)")

    predict_parser = commands.add_parser(
        "predict", help="predict with a saved model; writes CSV",
        description="Predict DATA (CSV or .npz, as for train) with a saved model and write "
                    "the predictions as CSV. Columns are matched by name when both the "
                    "model and the data have names; others (such as the target) are "
                    "ignored.")
    predict_parser.add_argument("model", metavar="MODEL",
                                help="a model file from fastwb train or fastwb.save")
    predict_parser.add_argument("data", metavar="DATA",
                                help="a .csv (or .tsv, .csv.gz), .parquet or .npz file")
    predict_parser.add_argument("--out", metavar="FILE",
                                help="write the CSV here (default: stdout)")
    predict_parser.add_argument("--proba", action="store_true",
                                help="also write each class's probability (classifiers)")
    predict_parser.add_argument("--target", metavar="COL",
                                help="a column (or .npz array) of true values: report the score "
                                     "on stderr")

    bench_parser = commands.add_parser(
        "bench", help="time fastwb against its NumPy reference and, with --peers, "
                      "PyTorch, JAX and scikit-learn",
        description="Time one Adam train_step and predict of one sample on the standard "
                    "shapes, side by side in one run, each first checked against fastwb's "
                    "NumPy reference; report time, GFLOP/s, percent of this machine's GEMM "
                    "rate and the speed-up over the fastest peer.")
    bench_parser.add_argument("--peers", action="store_true",
                              help="also PyTorch (CPU), JAX (jit) and scikit-learn, where "
                                   'installed (pip install "fastwb[peers]")')
    peers.add_arguments(bench_parser)

    info_parser = commands.add_parser(
        "info", help="describe a saved model without loading its data",
        description="Describe a saved model: kind, versions, layers, parameter count and "
                    "training summary.")
    info_parser.add_argument("model", metavar="MODEL", help="a model file")

    export.add_arguments(commands.add_parser(
        "export", help="write a saved model as ONNX",
        description="Write a saved model (a network, an estimator or a pipeline) as an ONNX "
                    "file, checked by onnx's checker (needs pip install \"fastwb[onnx]\")."))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``fastwb`` command; returns the exit status.

    Output goes to readers that may leave early (``fastwb predict ... | head``):
    once stdout's reader has gone the command ends quietly with status 0, as it
    would have had the reader taken everything, so that the status does not
    depend on how much was written before the reader left.
    """
    try:
        try:
            return _dispatch(argv)
        finally:
            # now, not at exit, where a reader that has gone would make Python
            # print "Exception ignored ... BrokenPipeError" and exit with 120
            # (after argparse's --help too, which raises SystemExit)
            if sys.stdout is not None:      # None when run with stdout closed
                sys.stdout.flush()
    except BrokenPipeError:             # fastwb predict ... | head: the reader has gone
        streams.silence(sys.stdout)
        return 0
    except OSError as error:            # stdout on a full disk (> /dev/full), a failed device
        if error.errno not in _OUTPUT_ERRORS:
            raise
        if sys.stdout is not None:
            streams.silence(sys.stdout)     # what it still holds cannot be written either
        streams.tell(f"fastwb: error: cannot write the output: {error.strerror}")
        return EXIT_FAILURE


#: What writing to stdout can meet that is the machine's, not fastwb's, to fix.
_OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and not args.version:
        parser.error("--verbose goes with --version")
    if args.command is None and not args.version:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    run = {"demo": _demo, "train": _train, "predict": predict.run, "info": info.run,
           "bench": _bench, "export": export.run}[args.command] if not args.version else _version
    try:
        run(args)
    except (CommandError, ModelFileError) as error:
        return _fail(error)
    except MemoryError as error:      # sizes refused before allocating (--hidden 10**9)
        return _fail(f"out of memory: {error}" if str(error) else "out of memory")
    except KeyboardInterrupt as interruption:
        detail = f": {interruption}" if str(interruption) else ""
        streams.tell(f"\nfastwb: interrupted{detail}")
        return EXIT_INTERRUPTED
    except OSError as error:          # a file vanished, a disk filled up: the user's to fix
        if error.filename is None:      # a broken pipe among them: main's to handle
            raise
        return _fail(f"{error.strerror or error}: {error.filename}")
    return 0


def _version(args: argparse.Namespace) -> None:
    print(f"fastwb {__version__}")
    if args.verbose:
        show_config()


def _demo(args: argparse.Namespace) -> None:
    demo.run(epochs=args.epochs, seed=args.seed, hidden=args.hidden, compare=args.compare,
             plots=args.plots)


def _train(args: argparse.Namespace) -> None:
    # the model file is what train makes, its output only a log: a reader of the
    # log that leaves (fastwb train ... | head) must not stop it before the save
    with streams.outliving_readers():
        train.run(args)


def _bench(args: argparse.Namespace) -> None:
    peers.run(args, NAMES if args.peers else NAMES[:2])


def _fail(error) -> int:
    message = " ".join(str(error).split())          # one line, whatever the message was
    streams.tell(f"fastwb: error: {message}")
    return EXIT_FAILURE
