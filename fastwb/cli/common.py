"""What several ``fastwb`` commands share: scikit-learn's drop-ins as a command
needs them, a fit with a progress bar (and a Monitor for its plots), and the
``--plots`` directory."""
from __future__ import annotations

import os
import sys
import warnings
from types import ModuleType

import numpy as np

from fastwb._optional import SKLEARN_REQUIREMENT, sklearn_missing
from fastwb.callbacks import Callback, ProgressBar
from fastwb.cli.errors import CommandError
from fastwb.cli.preprocessing import estimator_of, network_data
from fastwb.monitor import Monitor
from fastwb.plots import _matplotlib, save_plots


def sklearn_estimators(purpose: str) -> ModuleType:
    """``fastwb.sklearn``, or a CommandError saying that ``purpose`` needs
    scikit-learn and how to install it; any other ImportError comes through."""
    try:
        # on first use: fastwb.sklearn imports scikit-learn, an optional dependency
        # that ``fastwb --version`` and ``fastwb info`` do without
        from fastwb import sklearn
    except ImportError as error:
        if not sklearn_missing(error):
            raise
        installed = getattr(sys.modules.get("sklearn"), "__version__", None)
        found = f" (found {installed})" if installed else ""
        raise CommandError(f"{purpose} needs {SKLEARN_REQUIREMENT}{found}") from None
    return sklearn


# --- training with a progress bar --------------------------------------------------------

class _Shared:
    """A callback of this run that copies of the estimator share: a
    TransformedTargetRegressor trains a clone of its regressor, callbacks and
    all, and the bar and the plots must follow the copy that trains."""

    def __deepcopy__(self, memo: dict):
        return self


class _EstimatorProgress(_Shared, ProgressBar):
    """The bar, with the estimator's loss (scikit-learn's, as ``loss_curve_``)."""

    def __init__(self, model, epochs: int):
        super().__init__(epochs)
        self._model = model

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        curve = getattr(estimator_of(self._model), "loss_curve_", None)
        if curve:
            logs = {**logs, "loss": curve[-1]}
        super().on_epoch_end(epoch, logs)


class RunMonitor(_Shared, Monitor):
    """``fastwb.Monitor`` for the plots of ``fit_with_progress``'s run."""


def fit_with_progress(model, X, y, quiet: bool = False, callbacks=()) -> list[str]:
    """``model.fit(X, y)`` with a progress bar on stderr and ``callbacks``
    besides (``model``: a fastwb estimator, or a Pipeline or
    TransformedTargetRegressor around one); the warnings it raised come back as
    messages (and, unless ``quiet``, are printed as ``fastwb: warning: ...`` lines).

    Ctrl-C, which the estimator (as scikit-learn's) turns into a warning and an
    early return, raises KeyboardInterrupt here: the command stops rather than
    go on with (and save) a model trained part of the way.
    """
    template = estimator_of(model)
    bar = _EstimatorProgress(model, template.max_iter)
    template.set_params(callbacks=[bar, *callbacks])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(X, y)
    finally:
        # the callbacks are this run's, not the model's
        for estimator in (template, estimator_of(model)):     # the same one but for a TTR
            estimator.set_params(callbacks=None)
    estimator = estimator_of(model)
    raise_if_interrupted(caught, estimator, "training")
    messages = []
    for warning in caught:
        if not issubclass(warning.category, UserWarning):
            continue            # deprecations and the like: for developers, not users
        message = str(warning.message)
        if "Maximum iterations" in message:
            message = (f"the loss was still improving at the last epoch, "
                       f"{estimator.max_iter}; more epochs (--epochs) may train a better model")
        if message not in messages:
            messages.append(message)
    if not quiet:
        for message in messages:
            print(f"fastwb: warning: {message}", file=sys.stderr)
    return messages


def raise_if_interrupted(caught, estimator, what: str) -> None:
    """KeyboardInterrupt if ``caught`` (recorded warnings of ``estimator.fit``)
    says that Ctrl-C ended the fit, which both scikit-learn's MLPs and
    fastwb's drop-ins turn into this warning and a normal return."""
    if any(str(warning.message) == "Training interrupted by user." for warning in caught):
        raise KeyboardInterrupt(f"{what} stopped after {estimator.n_iter_} epochs")


# --- plots -------------------------------------------------------------------------------

class ValidationLoss(_Shared, Callback):
    """Adds ``val_loss`` to each epoch's logs: the network's loss on held-out
    rows, with its weight penalty as the training loss has it, so that a
    ``Monitor`` listed after it records the validation curve that the loss
    plot draws.

    The estimator's fit holds rows out itself only for early stopping, which
    the command does not ask for; these are the rows ``--val-fraction`` kept
    from it. At the start of training, when the model's preprocessing is
    fitted, they go through it (features and a scaled target) and their
    labels are encoded as the estimator encodes its targets; rows of a class
    that training has not seen have no loss and are left out.
    """

    def __init__(self, model, X_val, y_val):
        self.model = model
        self.X_val, self.y_val = X_val, np.asarray(y_val)
        self._X: np.ndarray | None = None
        self._targets: np.ndarray | None = None

    def on_train_begin(self, logs: dict) -> None:
        network = self._require_network()
        X, y = network_data(self.model, self.X_val, self.y_val)
        y = np.asarray(y)
        classes = getattr(estimator_of(self.model), "classes_", None)
        if classes is not None and y.ndim == 1:         # labels: their indices in classes_
            index = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
            known = classes[index] == y
            X, index = X[known], index[known]
            # one logistic output for two classes, a softmax for more
            targets = index.astype(np.intp) if network.sizes[-1] > 1 else \
                index.astype(np.float64).reshape(-1, 1)
        else:                                           # values, or multi-label 0/1 columns
            targets = y.astype(np.float64).reshape(len(y), -1)
        self._X = np.ascontiguousarray(X, dtype=network.dtype)
        self._targets = targets

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        assert self._X is not None and self._targets is not None, "after on_train_begin"
        if len(self._X):
            logs["val_loss"] = self._require_network().loss(self._X, self._targets)


def monitor_callbacks(monitor, model, X_val=None, y_val=None) -> list:
    """The callbacks of a fit followed for ``--plots``: none without a monitor;
    with held-out rows, first a ``ValidationLoss``, whose ``val_loss`` the
    monitor then records."""
    if monitor is None:
        return []
    if X_val is None:
        return [monitor]
    return [ValidationLoss(model, X_val, y_val), monitor]


def check_plots_directory(directory: str) -> None:
    """Fail before training, not after, when the plots cannot be written there."""
    try:
        _matplotlib()
    except ImportError as error:
        raise CommandError(f"--plots: {error}") from None
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"--plots {directory}: exists and is not a directory")


def write_plots(monitor, directory: str, X=None, y=None) -> list:
    """``fastwb.plots.save_plots``, then one line per file written."""
    paths = save_plots(monitor, directory, X, y)
    for path in paths:
        print(f"wrote {path}")
    return paths
