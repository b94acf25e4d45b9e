"""Optuna pruning for fastwb training: ``PruningCallback``.

An Optuna objective passes ``PruningCallback(trial)`` to ``Network.fit`` (with
validation data) or to an estimator's ``callbacks``. After every epoch the
callback reports the monitored metric to the trial (``trial.report(value,
step=epoch)``, the epoch counted from 1) and asks the trial's pruner whether
to go on. When the pruner says stop, training stops after that epoch (as
early stopping does: every callback's ``on_train_end`` runs) and ``fit``
raises ``optuna.TrialPruned``, which ``study.optimize`` records as a pruned
trial; the model is left as it was at that epoch.

    def objective(trial):
        net = fw.Network([20, trial.suggest_int("hidden", 4, 64), 3], seed=0)
        history = net.fit(X, y, optimizer=fw.Adam(trial.suggest_float("lr", 1e-4, 1e-1, log=True)),
                          epochs=30, validation_data=(X_val, y_val),
                          callbacks=[PruningCallback(trial, monitor="val_loss")])
        return history["val_loss"][-1]

The metrics ``Network.fit`` logs are "loss", and with validation data
"val_loss" and (classification) "val_accuracy"; the estimators'
(``MLPClassifier``, ``MLPRegressor``) are "loss" and, with
``early_stopping=True``, "val_score" (accuracy, R² or the ``scoring``: higher
is better, so the study's direction is "maximize"). A metric another callback
adds to the logs works when that callback comes first.
"""
from __future__ import annotations

from typing import Any

from fastwb._optional import OPTUNA_REQUIREMENT
from fastwb.callbacks import Callback


def _import_optuna() -> Any:
    """The ``optuna`` module, or an ImportError that says what to install."""
    try:
        import optuna
    except ImportError as error:
        if (error.name or "").split(".")[0] != "optuna":
            raise       # a fault inside an installed optuna keeps its traceback
        raise ImportError(f"fastwb.integrations.optuna needs {OPTUNA_REQUIREMENT}",
                          name="optuna") from error
    return optuna


class PruningCallback(Callback):
    """Report a metric to an Optuna trial after every epoch, and stop a trial
    its pruner prunes.

    Parameters
    ----------
    trial : optuna.trial.Trial
        The trial the objective was given.
    monitor : str
        The key of the epoch's logs to report: "val_loss" (``Network.fit``
        with validation data), "val_accuracy", "loss", or the estimators'
        "val_score".

    Epochs whose logs have ``averaged`` False (local SGD's epochs between
    averages, ``fastwb.distributed.fit``) are not reported.

    Raises
    ------
    ImportError
        If Optuna is not installed.
    TypeError
        If ``trial`` is not an Optuna trial, or ``monitor`` not a string.
    ValueError
        From ``fit``, after the first epoch, if the logs have no ``monitor``
        (the message lists the keys they have).
    optuna.TrialPruned
        From ``fit``, after training stopped because the pruner pruned the trial.
    """

    def __init__(self, trial: Any, monitor: str = "val_loss"):
        optuna = _import_optuna()
        if not isinstance(trial, optuna.trial.BaseTrial):
            raise TypeError(f"trial must be an optuna trial (the objective's argument), "
                            f"got {trial!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a metric such as 'val_loss', "
                            f"got {monitor!r}")
        self.trial = trial
        self.monitor = monitor
        self.pruned_epoch: int | None = None

    def __deepcopy__(self, memo: dict) -> "PruningCallback":
        # scikit-learn's clone (in every search and cross_val_score) deep-copies an
        # estimator's callbacks: the copy must still report to the same trial
        return PruningCallback(self.trial, self.monitor)

    def on_train_begin(self, logs: dict) -> None:
        self.pruned_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if logs.get("averaged") is False:   # local SGD between averages: no one model
            return
        if self.monitor not in logs:
            hint = (" ('val_' metrics need validation data: Network.fit's validation_data "
                    "or validation_split, an estimator's early_stopping=True)"
                    if self.monitor.startswith("val_") else "")
            raise ValueError(f"PruningCallback monitors {self.monitor!r}, which the epoch's "
                             f"logs do not have; they have {sorted(logs)}{hint}")
        self.trial.report(float(logs[self.monitor]), step=epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch
            self._require_network().stop_training = True

    def on_train_end(self, logs: dict) -> None:
        if self.pruned_epoch is not None:
            optuna = _import_optuna()
            raise optuna.TrialPruned(f"Trial was pruned at epoch {self.pruned_epoch}.")
