"""What ``Network.fit`` reports and who it reports to: ``History`` and callbacks.

``fit`` runs each epoch in one compiled call and comes back to Python between
epochs only; callbacks run there, in the order given, then ``fit``'s own early
stopping (so it can monitor a metric a callback adds to the logs), then its
progress bar. A callback may stop training by setting
``network.stop_training = True``; ``EarlyStopping`` does so when its metric
stops improving, in the direction its ``mode`` gives.
"""
from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:      # annotations only: the network module imports this one
    from fastwb.network import Network


class History:
    """Per-epoch records of one ``fit``.

    ``history`` maps a metric name to its list of per-epoch values: ``loss``
    (each batch's loss plus penalty, averaged over the epoch's batches weighted
    by their rows; with sample weights a batch's loss is its weighted mean), ``lr`` (the
    learning rate of the epoch's last step), ``time`` (seconds),
    ``samples_per_second``, and with validation data ``val_loss`` and, for
    classification losses, ``val_accuracy``, and the metrics that callbacks add
    to the epoch's logs. ``epoch`` lists the epochs' numbers, counted from 1
    over the optimizer's life (a second ``fit`` goes on from the first's last).
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []
        self.stopped_early = False
        self.best_epoch: int | None = None

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.history.items()} if self.epoch else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float))
        return f"History({len(self)} epochs" + (f", last: {shown})" if shown else ")")


class Callback:
    """Base class of ``fit`` callbacks: override the hooks you need.

    Before ``on_train_begin``, ``fit`` sets ``network`` to the network being
    trained, ``training_data`` to ``(X, y)`` as it trains on them (converted
    to the network's dtype; without the validation split) and
    ``validation_data`` to ``(X_val, y_val)`` or None. ``logs`` is the dict of
    the epoch's metrics (see ``History``).

    ``epoch`` is the epoch's number, counted from 1 over the optimizer's life:
    the first epoch ever trained is 1 (not 0, as Keras passes), and a further
    ``fit`` with the same optimizer goes on from where the last one ended.
    ``on_epoch_begin`` and ``on_epoch_end`` of one epoch get the same number.
    """

    network: Network | None = None
    training_data: tuple[np.ndarray, np.ndarray] | None = None
    validation_data: tuple[np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        """The callback's own settings and records, without what ``fit`` lent it
        (the network and the data), which the next ``fit`` lends again: pickle,
        ``copy`` and skops save the callback, not a copy of the model and its data."""
        state = dict(self.__dict__)
        for name in ("network", "training_data", "validation_data"):
            state.pop(name, None)
        return state

    def on_train_begin(self, logs: dict) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        """Before each epoch."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """After each epoch, with its metrics."""

    def on_train_end(self, logs: dict) -> None:
        """After the last epoch (also after early stopping or an error). Every
        callback's runs even when an earlier one's raised; ``fit`` then raises
        the first error."""

    def _require_network(self) -> Network:
        """``network``, which ``fit`` sets before it calls any hook."""
        assert self.network is not None, "fit sets network before calling the hooks"
        return self.network


class LambdaCallback(Callback):
    """A callback from a plain function ``f(epoch, logs)`` called after every epoch."""

    def __init__(self, on_epoch_end):
        if not callable(on_epoch_end):
            raise TypeError(f"a callback must be a Callback or callable, got {on_epoch_end!r}")
        self._on_epoch_end = on_epoch_end

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._on_epoch_end(epoch, logs)


# Substrings of a metric's name (lower-cased, without a "val_" prefix) that mark it
# higher-is-better for EarlyStopping(mode="auto"); see higher_is_better.
HIGHER_IS_BETTER = ("acc", "auc", "f1", "fbeta", "precision", "recall", "r2", "score",
                    "jaccard", "iou", "dice", "ndcg", "kappa", "matthews", "mcc",
                    "explained_variance")
MODES = ("auto", "min", "max")


def higher_is_better(monitor: str) -> bool:
    """Whether ``EarlyStopping(mode="auto")`` maximises the metric ``monitor``.

    After lower-casing and removing a "val_" prefix, a name is maximised when it
    starts with "neg_" (scikit-learn's negated errors, such as
    "neg_mean_squared_error") or contains one of ``HIGHER_IS_BETTER``: acc
    (accuracy, balanced_accuracy), auc (roc_auc), f1, fbeta, precision
    (average_precision), recall, r2, score, jaccard, iou, dice, ndcg, kappa,
    matthews, mcc, explained_variance, unless it ends in "loss", "error" or
    "deviance" (as "brier_score_loss", "dice_loss"). Every other name (loss,
    mse, mae, ...) is minimised; give ``mode`` where a name misleads.
    """
    name = monitor.lower()
    name = name[4:] if name.startswith("val_") else name
    if name.startswith("neg_"):
        return True
    if name.endswith(("loss", "error", "deviance")):
        return False
    return any(marker in name for marker in HIGHER_IS_BETTER)


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. "val_loss", "loss", "val_accuracy", or a
        metric that a callback listed before this one adds to the logs.
    patience : int
        Epochs without an improvement of more than ``min_delta`` before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    restore_best_weights : bool
        Put back the parameters of the best epoch when training stops.
    mode : {"auto", "min", "max"}
        Whether lower ("min") or higher ("max") values are better. "auto"
        decides from the name, by ``higher_is_better``: accuracies, AUCs, F1,
        precision, recall, R², scores and "neg_" scorer names are maximised,
        losses and errors minimised.

    A NaN value never improves on the best (a diverged epoch counts as one
    without improvement). Epochs whose logs have ``averaged`` False (local
    SGD's epochs between averages, ``fastwb.distributed.fit``) are skipped.

    Examples
    --------
    >>> from fastwb import EarlyStopping
    >>> EarlyStopping("val_f1").mode_, EarlyStopping("val_loss").mode_
    ('max', 'min')
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 1e-4,
                 restore_best_weights: bool = True, mode: str = "auto"):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a metric, got {monitor!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.mode = mode
        #: the direction in use: "min" or "max" ("auto" resolved from the name)
        self.mode_ = mode if mode != "auto" else (
            "max" if higher_is_better(monitor) else "min")
        self._sign = -1.0 if self.mode_ == "max" else 1.0
        self.best = math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped = False
        self._best_parameters: np.ndarray | None = None

    def on_train_begin(self, logs: dict) -> None:
        self.best, self.best_epoch, self.wait, self.stopped = math.inf, None, 0, False
        self._best_parameters = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if logs.get("averaged") is False:   # local SGD between averages: no one model
            return
        if self.monitor not in logs:
            raise ValueError(f"early stopping monitors {self.monitor!r}, which this fit does not "
                             f"record; it records {', '.join(logs)} (a callback that adds "
                             f"a metric must come before the EarlyStopping that monitors it)")
        value = self._sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_parameters = self._require_network().parameters.copy()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stop()

    def stop(self) -> None:
        """Stop training now, as when patience runs out (``fit`` calls it when an
        epoch diverges): ``on_train_end`` then restores the best weights."""
        self.stopped = True
        self._require_network().stop_training = True

    @property
    def best_value(self) -> float | None:
        """The best value of the monitored metric so far (None before the first epoch)."""
        return None if self.best_epoch is None else self._sign * self.best

    def on_train_end(self, logs: dict) -> None:
        if self.stopped and self._best_parameters is not None:
            self._require_network().parameters = self._best_parameters
        self._best_parameters = None


class ProgressBar(Callback):
    """Training progress on stderr: a bar over the epochs with the loss and
    throughput (tqdm's when installed, else a plain one), or with
    ``per_epoch`` one line per epoch."""

    def __init__(self, epochs: int, per_epoch: bool = False, stream=None):
        self.epochs = epochs
        self.per_epoch = per_epoch
        self.stream = stream or sys.stderr
        self._bar = None
        self._done = 0
        self._shown = -math.inf

    def on_train_begin(self, logs: dict) -> None:
        self._done = 0
        self._shown = -math.inf
        if not self.per_epoch:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=self.epochs, unit="epoch", file=self.stream, leave=True)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._done += 1
        text = self._describe(logs)
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        elif self.per_epoch:
            print(f"epoch {epoch} ({self._done}/{self.epochs}): {text}", file=self.stream)
        elif self._done == self.epochs or time.perf_counter() - self._shown > 0.1:
            # redrawn at most ten times a second: fast epochs would flood a log
            self._shown = time.perf_counter()
            filled = int(30 * self._done / self.epochs)
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self._done}/{self.epochs} {text}",
                  end="", file=self.stream, flush=True)

    def on_train_end(self, logs: dict) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self.per_epoch and self._done:
            print(file=self.stream)

    @staticmethod
    def _describe(logs: dict) -> str:
        parts = [f"{key}={logs[key]:.4g}" for key in ("loss", "val_loss", "val_accuracy")
                 if key in logs and np.isfinite(logs[key])]
        if "samples_per_second" in logs:
            parts.append(f"{logs['samples_per_second']:,.0f} samples/s")
        return " ".join(parts)
