"""The ``fit`` loop: whole epochs in one engine call, Python only between them.

Each epoch is one ``engine.fit_epoch`` call (compiled and without the GIL, or
the NumPy reference's loop): shuffle, slice minibatches, forward, backward,
update, record each batch's loss. Between epochs this module computes the
validation metrics, tells the schedule the monitored loss, runs the callbacks
and decides whether to stop.
"""
from __future__ import annotations

import signal
import threading
import time
import warnings

import numpy as np

from fastwb import _validation
from fastwb.callbacks import Callback, EarlyStopping, History, LambdaCallback, ProgressBar
from fastwb.functions import CLASSIFICATION_LOSSES, FitStatus


def class_weights(class_weight, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class weights from "balanced" (n / (n_classes * count), as scikit-learn)
    or a dict {class: weight} (missing classes weigh 1)."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be 'balanced', a dict or None, "
                             f"got {class_weight!r}")
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        present = counts > 0
        weights = np.ones(n_classes)
        weights[present] = len(labels) / (present.sum() * counts[present])
        return weights
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be 'balanced', a dict or None, got {class_weight!r}")
    weights = np.ones(n_classes)
    for cls, weight in class_weight.items():
        index = _validation.as_int(cls, "a class_weight key")
        if not 0 <= index < n_classes:
            raise ValueError(f"class_weight has class {cls!r}; classes are 0..{n_classes - 1}")
        weights[index] = _validation.check_real(weight, f"class_weight[{cls!r}]", 0.0)
    return weights


def class_labels(loss: str, y: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The class of each sample for class weights and accuracy, and the class count
    (None for softmax, whose count is the output width)."""
    if loss == "softmax_cross_entropy":
        return (y if y.ndim == 1 else np.argmax(y, axis=1)), None
    if loss == "binary_cross_entropy" and y.shape[1] == 1:
        return (y[:, 0] >= 0.5).astype(np.intp), 2
    raise ValueError("class_weight needs a classification loss: softmax_cross_entropy, or "
                     "binary_cross_entropy with one output")


def accuracy(loss: str, predictions: np.ndarray, y: np.ndarray) -> float:
    """Fraction of correct classes (softmax) or of correct 0/1 outputs (sigmoid)."""
    if loss == "softmax_cross_entropy":
        truth = y if y.ndim == 1 else np.argmax(y, axis=1)
        return float(np.mean(np.argmax(predictions, axis=1) == truth))
    return float(np.mean((predictions >= 0.5) == (y >= 0.5)))


class _Data:
    """Training or validation data, checked and converted once for the whole fit."""

    def __init__(self, net, X, y, sample_weight=None, *, what="sample_weight"):
        self.X, single = _validation.check_X(X, net.sizes[0], net.dtype)
        n = self.X.shape[0]
        self.y = _validation.check_y(y, n, net.sizes[-1], net.loss_name, net.dtype, single)
        self.sample_weight: np.ndarray | None = None
        if sample_weight is not None:
            self.sample_weight = _validation.check_sample_weight(sample_weight, n, net.dtype)
            self._check_some_weight(what)

    def __len__(self) -> int:
        return self.X.shape[0]

    def take(self, rows: np.ndarray) -> "_Data":
        part = object.__new__(_Data)
        part.X, part.y = self.X[rows], self.y[rows]
        part.sample_weight = None if self.sample_weight is None else self.sample_weight[rows]
        return part

    def weigh_classes(self, net, class_weight) -> None:
        """Multiply the sample weights by each sample's class weight."""
        labels, n_classes = class_labels(net.loss_name, self.y)
        weights = class_weights(class_weight, labels, n_classes or net.sizes[-1])[labels]
        weights = weights.astype(net.dtype)
        self.sample_weight = weights if self.sample_weight is None else self.sample_weight * weights
        self._check_some_weight("sample_weight times class_weight")

    def _check_some_weight(self, what: str) -> None:
        assert self.sample_weight is not None, "called once the weights are set"
        if not np.any(self.sample_weight > 0):
            purpose = "validate on" if what.startswith("validation") else "train on"
            raise ValueError(f"every sample has weight 0 ({what}): nothing to {purpose}")


def validation_set(net, validation_data) -> _Data:
    """``validation_data`` as ``fit`` takes it, checked."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, "
                         "sample_weight_val)")
    return _Data(net, *validation_data, what="validation_data's sample_weight")


def _split(net, data: _Data, validation_split: float) -> tuple[_Data, _Data]:
    """A seeded random split; the last ``validation_split`` of a permutation validates."""
    n = len(data)
    n_val = int(round(n * validation_split))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"validation_split={validation_split} leaves no samples for "
                         f"{'validation' if n_val < 1 else 'training'} out of {n}")
    order = np.random.default_rng(net.seed).permutation(n)
    return data.take(np.sort(order[:n - n_val])), data.take(np.sort(order[n - n_val:]))


class _Snapshot:
    """What an epoch's engine call changes, as it was at the epoch's start, to undo
    a divergence: the parameters, and the update rule's state buffers and counters
    (the optimizer's, which the engine advances in place; its schedule changes only
    between epochs). Made once per fit and refreshed in place: copies of fresh
    arrays and of the optimizer's whole state cost more than a small epoch's batches."""

    def __init__(self, net, rule):
        self._copy(net, rule)

    def _copy(self, net, rule) -> None:
        self.rule = rule
        self.parameters = net.parameters.copy()
        self.state = {name: values.copy() for name, values in rule.state.items()}
        self.counters = rule.counters.copy()

    def take(self, net, rule) -> None:
        """Refresh the copies at the start of an epoch of ``rule``."""
        if rule is not self.rule:       # a callback reset the optimizer: new buffers
            self._copy(net, rule)
            return
        np.copyto(self.parameters, net.parameters)
        for name, values in rule.state.items():
            np.copyto(self.state[name], values)
        np.copyto(self.counters, rule.counters)

    def restore(self, net) -> None:
        net.parameters[...] = self.parameters
        for name, values in self.rule.state.items():
            values[...] = self.state[name]
        self.rule.counters[...] = self.counters


class _Batches:
    """The minibatches of every epoch of one fit: their count and rows, and the
    buffer their losses go to (made once: small fits run hundreds of short epochs)."""

    def __init__(self, n: int, batch_size: int):
        self.n = n
        self.size = min(batch_size, n)
        self.count = -(-n // self.size)
        self.rows = np.full(self.count, self.size, dtype=np.float64)
        self.rows[-1] = n - self.size * (self.count - 1)
        self.loss = np.zeros(self.count)    # each epoch writes a batch's loss before reading it


def _run_epoch(engine, net, optimizer, data: _Data, batches: _Batches, start: _Snapshot,
               shuffle: bool) -> tuple:
    """One epoch; returns (mean loss, last learning rate). Raises
    FloatingPointError after going back to the last finite state, and raises
    KeyboardInterrupt (through Python's SIGINT handler) at the first batch
    boundary after a Ctrl-C, the parameters and the optimizer's state and
    counters then being those of the updates applied."""
    rule = optimizer.rule_for(net)          # again: a callback may have reset it
    n, batch_size, n_batches, batch_loss = batches.n, batches.size, batches.count, batches.loss
    lrs = optimizer.learning_rates(n_batches)
    start.take(net, rule)
    epoch = _Epoch(engine, net, optimizer, data, batch_size, shuffle, lrs, start)
    applied = 0
    while True:
        status, done, arrived = epoch.run(rule, batch_loss, applied, n_batches, _catch_sigint())
        applied += done
        diverged = status == FitStatus.DIVERGED or not _finite(net.parameters)
        if diverged:
            kept = epoch.last_finite_state(rule, applied)
        if status == FitStatus.INTERRUPTED or arrived:
            # Ctrl-C arrived while compiled code held the signal: hand it to Python's
            # handler now, at a batch boundary and after any divergence was undone
            # (KeyboardInterrupt, by default); if that handler returns, the epoch
            # goes on from where it stopped
            signal.raise_signal(signal.SIGINT)
        if diverged or status != FitStatus.INTERRUPTED:
            break
    if diverged:
        cause = (f"the loss was {batch_loss[applied]} on batch {applied}"
                 if status == FitStatus.DIVERGED else
                 f"the update of batch {kept} left parameters NaN or infinite")
        raise FloatingPointError(
            f"training diverged: {cause} of epoch {epoch.epoch}. The parameters and "
            f"optimizer state are those after the last update that left every parameter "
            f"finite ({kept} updates into the epoch). Try a smaller learning rate, clip_norm, "
            "or scaling the inputs.")
    return float(np.dot(batch_loss, batches.rows) / n), float(lrs[-1])


def _finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).all())


class _Epoch:
    """One epoch's batches, from the parameters and optimizer state at its start,
    which ``start`` holds to undo a divergence."""

    def __init__(self, engine, net, optimizer, data, batch_size, shuffle, lrs, start):
        self.engine, self.net, self.data = engine, net, data
        self.batch_size, self.shuffle, self.lrs = batch_size, shuffle, lrs
        self.epoch = optimizer.epoch + 1        # its number, counted from 1
        self.start = start

    def run(self, rule, batch_loss, first: int, last: int, catch_interrupt: bool = False) -> tuple:
        """Batches first..last-1 in one engine call, which advances the optimizer's
        state and counters with the parameters."""
        data = self.data
        return self.engine.fit_epoch(data.X, data.y, data.sample_weight, self.batch_size,
                                     self.shuffle, rule, self.lrs, batch_loss, first, last,
                                     catch_interrupt=catch_interrupt)

    def last_finite_state(self, rule, applied: int) -> int:
        """Go back to the last state of this epoch with every parameter finite;
        returns how many of its updates that state includes.

        Updates are deterministic (the order, the masks and the rates depend only
        on the seed, the epoch and the step), so replaying k batches from the
        epoch's start gives the state after k updates exactly. Once a parameter
        is NaN or infinite it stays so, and the state the epoch started from is
        finite (fit checks), so a bisection finds the last finite state; the
        update that broke them is nearly always the last one, which is tried first.
        """
        if _finite(self.net.parameters):
            return applied
        scratch = np.zeros(len(self.lrs))

        def finite_after(k: int) -> bool:
            self.start.restore(self.net)
            if k:
                self.run(rule, scratch, 0, k)
            return _finite(self.net.parameters)

        low, high = 0, applied            # finite after `low` updates, not after `high`
        if applied and finite_after(applied - 1):
            return applied - 1
        high = max(applied - 1, 0)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if finite_after(middle) else (low, middle)
        finite_after(low)
        return low


def _catch_sigint() -> bool:
    """Whether compiled code should hold SIGINT: only in the main thread (where
    Python delivers it) and when Python handles it (not ignored or default)."""
    return (threading.current_thread() is threading.main_thread()
            and callable(signal.getsignal(signal.SIGINT)))


def _validation_logs(engine, net, val: _Data) -> dict:
    logs = {"val_loss": engine.loss(val.X, val.y, val.sample_weight)}
    if net.loss_name in CLASSIFICATION_LOSSES:
        logs["val_accuracy"] = accuracy(net.loss_name, engine.predict(val.X), val.y)
    return logs


def _callbacks(callbacks, verbose, epochs, stopper: EarlyStopping | None) -> list:
    """The user's callbacks, then the built-in early stopping (which so sees the
    metrics they add to the logs), then the progress bar."""
    if callbacks is None:
        callbacks = ()
    elif isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    result = [c if isinstance(c, Callback) else LambdaCallback(c) for c in callbacks]
    verbose = _validation.as_int(verbose, "verbose")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (a line per "
                         f"epoch), got {verbose}")
    if stopper is not None:
        result.append(stopper)
    if verbose:
        result.append(ProgressBar(epochs, per_epoch=verbose == 2))
    return result


def warn_diverged_after_best(error: FloatingPointError, epoch: int, best: int,
                             restore_best_weights: bool, stacklevel: int) -> None:
    """Early stopping's answer to an epoch that diverged after a best one: the fit
    ends as if patience ran out, keeping the best epoch's weights; a warning
    ``stacklevel`` frames above the caller's."""
    warnings.warn(f"{error} Early stopping ends the fit here, at epoch {epoch}; "
                  f"the best epoch was {best}"
                  + (", whose weights are restored." if restore_best_weights else "."),
                  RuntimeWarning, stacklevel=stacklevel + 1)


def _end_training(callbacks: list, failing: BaseException | None = None) -> None:
    """Every callback's ``on_train_end``, even after one raised (an Optuna pruning
    callback raises TrialPruned there; the callbacks after it, and early stopping,
    still end), Ctrl-C included: each is cleanup, as a ``finally`` is. The first
    error is raised once all have run, unless training itself is ``failing``: its
    error then stays the one raised and theirs are warned about."""
    error: BaseException | None = None
    for callback in callbacks:
        try:
            callback.on_train_end({})
        except BaseException as raised:     # KeyboardInterrupt too: the others still end
            if failing is not None:
                warnings.warn(f"{type(callback).__name__}.on_train_end raised {raised!r} "
                              f"while training was ending on {failing!r}", RuntimeWarning,
                              stacklevel=3)
            error = error or raised
    if error is not None and failing is None:
        raise error


def fit(net, engine, X, y, optimizer, epochs: int = 10, batch_size: int = 32, shuffle: bool = True,
        validation_data=None, validation_split: float = 0.0, early_stopping: bool = False,
        patience: int = 10, min_delta: float = 1e-4, restore_best_weights: bool = True,
        sample_weight=None, class_weight=None, callbacks=(), verbose: int = 0,
        monitor: str | None = None, mode: str = "auto") -> History:
    """The body of ``Network.fit``; see there. ``engine`` is the network's."""
    epochs = _validation.check_count(epochs, "epochs")
    batch_size = _validation.check_count(batch_size, "batch_size")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
    validation_split = _validation.check_real(validation_split, "validation_split", 0.0, 1.0,
                                              high_open=True)
    patience = _validation.check_count(patience, "patience", 0)
    min_delta = _validation.check_real(min_delta, "min_delta", 0.0)
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise TypeError(f"early_stopping must be a bool, got {early_stopping!r}")
    if monitor is not None and not early_stopping:
        raise ValueError(f"monitor={monitor!r} is the metric of early stopping; it needs "
                         "early_stopping=True")

    data = _Data(net, X, y, sample_weight)
    val = None
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        val = validation_set(net, validation_data)
    elif validation_split:
        data, val = _split(net, data, validation_split)
    if class_weight is not None:        # training only: val_loss stays the plain loss
        data.weigh_classes(net, class_weight)
    snapshot = _Snapshot(net, optimizer.rule_for(net))
    if not _finite(net.parameters):
        raise ValueError("the network's parameters hold NaN or infinity (after a diverged "
                         "train_step, or assigned so); set finite ones before fit")

    loss_key = "val_loss" if val is not None else "loss"
    stopper = EarlyStopping(monitor or loss_key, patience, min_delta, restore_best_weights,
                            mode) if early_stopping else None
    callbacks = _callbacks(callbacks, verbose, epochs, stopper)
    history = History()
    batches = _Batches(len(data), batch_size)
    net.stop_training = False
    for callback in callbacks:
        callback.network = net
        callback.training_data = (data.X, data.y)
        callback.validation_data = None if val is None else (val.X, val.y)
        callback.on_train_begin({})
    try:
        for _ in range(epochs):
            # numbered from 1 over the optimizer's life: the epoch that ends with
            # n_iter_ == 1 is epoch 1, and a further fit goes on from the last number
            epoch = optimizer.epoch + 1
            for callback in callbacks:
                callback.on_epoch_begin(epoch, {})
            start = time.perf_counter()
            try:
                loss, lr = _run_epoch(engine, net, optimizer, data, batches, snapshot, shuffle)
            except FloatingPointError as error:
                if stopper is None or stopper.best_epoch is None:
                    raise
                warn_diverged_after_best(error, epoch, stopper.best_epoch,
                                         restore_best_weights, stacklevel=3)
                stopper.stop()
                break
            elapsed = time.perf_counter() - start
            logs = {"loss": loss, "lr": lr, "time": elapsed,
                    "samples_per_second": len(data) / max(elapsed, 1e-12)}
            if val is not None:
                logs.update(_validation_logs(engine, net, val))
            optimizer.schedule.on_epoch_end(epoch, logs[loss_key])
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
            history.append(epoch, logs)         # with the metrics callbacks added
            if net.stop_training:
                break
    except BaseException as failing:
        _end_training(callbacks, failing)
        raise
    _end_training(callbacks)
    if stopper is not None:
        history.stopped_early = stopper.stopped
        history.best_epoch = stopper.best_epoch
    return history
