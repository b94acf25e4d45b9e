"""What several ``fastwb`` commands share: scikit-learn's drop-ins as a command
needs them, a fit with a progress bar (and a Monitor for its plots), and the
``--plots`` directory."""
from __future__ import annotations

import os
import sys
import warnings
from types import ModuleType

from fastwb._optional import SKLEARN_REQUIREMENT, sklearn_missing
from fastwb.callbacks import ProgressBar
from fastwb.cli.errors import CommandError
from fastwb.cli.preprocessing import estimator_of
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
    messages (and, unless ``quiet``, are printed as ``fastwb: warning: ...`` lines)."""
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


# --- plots -------------------------------------------------------------------------------

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
