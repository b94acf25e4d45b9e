"""Data-parallel training over MPI (extra ``mpi``: ``pip install "fastwb[mpi]"``).

Every process of an MPI communicator holds a shard of the data and a copy of
the network. ``fit`` starts every copy from rank 0's parameters and optimizer
state; at each step every rank computes the gradient of its local batch in one
compiled call (``Network.step_gradient``), one Allreduce adds the flat
gradients weighted by the ranks' sample weights (row counts without weights),
and every rank applies the same update (``Optimizer.apply_gradients``). So
uneven shards and partial last batches give the exact global mean, every rank
ends with the same bits, and with ``shuffle=False`` the result is
``Network.fit``'s on the concatenation of the ranks' batches (rank 0's batch,
then rank 1's, ..., at every step) within rounding. Dropout masks follow each
row's place in that concatenated batch, so they do not depend on the rank
count either.

Local SGD (``average_every=k``) trades that equality for fewer messages: each
rank runs whole epochs of ``Network.fit`` on its own shard (one compiled call
per epoch, no communication inside it), and every ``k`` epochs, and after the
last, one Allreduce averages the parameters and the optimizer's moment buffers
over the ranks, weighted by the shards' sample weights (row counts without
weights). Use it when an Allreduce per step costs more than the step: small
networks, many ranks, slow links. ``k=1`` averages after every epoch; one rank
is ``Network.fit`` itself.

Run a script that calls ``fit`` with ``mpiexec -n 4 python script.py``. Give
each process one BLAS and fastwb thread (``OMP_NUM_THREADS=1``,
``Network(..., n_threads=1)``) when the ranks share a machine.

An exception on one rank (bad data, Ctrl-C during its step, a failing
callback) stops every rank: the failing one raises its own exception, the
others a ``RuntimeError`` naming the rank and its error, instead of waiting
forever in a collective. ``mpi4py`` is imported only when ``fit`` runs.
"""
from __future__ import annotations

import pickle
import signal
import time
from typing import Any, Callable

import numpy as np

from fastwb import _validation, training
from fastwb._optional import MPI_REQUIREMENT
from fastwb.callbacks import EarlyStopping, History
from fastwb.functions import CLASSIFICATION_LOSSES


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"fastwb.distributed needs {MPI_REQUIREMENT}") from error
    return MPI


def _raise_any(comm, error: BaseException | None) -> None:
    """Collective: raise on every rank when ``error`` is set on any of them (the
    rank that failed raises its own exception)."""
    messages = comm.allgather(_described(error))
    if error is not None:
        raise error
    for rank, message in enumerate(messages):
        if message is not None:
            raise _stopped(rank, message)


def _described(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _stopped(rank: int, message: str) -> RuntimeError:
    """What the ranks where nothing failed raise when ``rank`` failed."""
    return RuntimeError(f"fastwb.distributed.fit stopped: rank {rank} failed with {message}")


class _HeldInterrupt:
    """Ctrl-C held for the whole fit (in the main thread, where Python handles it):
    the handler only notes it, and the rank's next collective check carries the
    note to every rank, so all stop at the same point; raised at once, it could
    leave the others waiting in a collective this rank never joins. A second
    Ctrl-C raises at once (for a rank stuck in a long callback)."""

    def __enter__(self) -> "_HeldInterrupt":
        self.arrived = False
        self._previous = None
        if training._catch_sigint():
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.arrived:
            raise KeyboardInterrupt("interrupted twice (Ctrl-C)")
        self.arrived = True

    def __exit__(self, kind, value, traceback) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            if self.arrived and kind is None:   # after the last check: handled as usual
                signal.raise_signal(signal.SIGINT)

    def error(self) -> KeyboardInterrupt | None:
        return KeyboardInterrupt("interrupted (Ctrl-C)") if self.arrived else None


def _agree(comm, action: Callable[[], Any], held: _HeldInterrupt | None = None) -> Any:
    """Collective: ``action()`` on every rank, raising on all when it raises on any
    (or Ctrl-C arrived on any)."""
    error: BaseException | None = None
    result = None
    try:
        result = action()
    except BaseException as caught:     # Ctrl-C too: the other ranks must not wait for it
        error = caught
    if error is None and held is not None:
        error = held.error()
    _raise_any(comm, error)
    return result


def _from_rank0(comm, make: Callable[[], Any], held: _HeldInterrupt) -> Any:
    """Collective: rank 0's ``make()`` on every rank. Made and pickled on rank 0
    and unpickled elsewhere inside ``_agree``, so that a failure there (an
    object that does not pickle) stops every rank instead of leaving the others
    in the broadcast."""
    rank = comm.Get_rank()
    payload = _agree(comm, lambda: pickle.dumps(make()) if rank == 0 else None, held)
    payload = comm.bcast(payload, root=0)
    return _agree(comm, lambda: pickle.loads(payload), held)


class _Shards:
    """The ranks' row counts and, per step, each rank's batch: rows
    ``step * batch_size``.. of its shard, fewer at the end, none past it."""

    def __init__(self, counts: list[int], batch_size: int, rank: int):
        self.counts, self.batch_size, self.rank = counts, batch_size, rank
        self.total = sum(counts)
        self.steps = max(-(-n // batch_size) for n in counts)

    def rows(self, rank: int, step: int) -> int:
        return min(self.batch_size, max(0, self.counts[rank] - step * self.batch_size))

    def mask_row0(self, step: int) -> int:
        """Where this rank's rows start in the step's concatenated batch."""
        return sum(self.rows(r, step) for r in range(self.rank))

    def global_rows(self, step: int) -> int:
        return sum(self.rows(r, step) for r in range(len(self.counts)))


def _setup(network, X, y, optimizer, epochs, batch_size, shuffle, sample_weight,
           validation_data, early_stopping, monitor, average_every):
    epochs = _validation.check_count(epochs, "epochs")
    if average_every is not None:
        average_every = _validation.check_count(average_every, "average_every")
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise TypeError(f"early_stopping must be a bool, got {early_stopping!r}")
    if monitor is not None and not early_stopping:
        raise ValueError(f"monitor={monitor!r} is the metric of early stopping; it needs "
                         "early_stopping=True")
    batch_size = _validation.check_count(batch_size, "batch_size")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
    rule = network._update_rule(optimizer)
    data = training._Data(network, X, y, sample_weight)
    val = None if validation_data is None else training.validation_set(network, validation_data)
    return epochs, batch_size, rule, data, val, average_every


def _check_same_setup(comm, network, optimizer, settings: dict, local: bool) -> None:
    """Every rank must train the same architecture with the same optimizer and the
    same fit settings (a rank with more epochs or steps would wait forever for
    the others); with dropout also the same seed (the masks' key), or in local
    SGD each rank its own (the same seed would give every rank the same masks).
    Thread counts may differ."""
    config = {k: v for k, v in network.get_config().items() if k not in ("seed", "n_threads")}
    for what, mine in (("networks", config), ("optimizers", optimizer.get_config()),
                       ("fit arguments", settings)):
        differ = _differences(comm.allgather(mine))
        if differ:
            raise ValueError(f"the ranks' {what} differ from rank 0's ({differ}); give every "
                             f"rank the same {what}")
    seeds = comm.allgather(network.seed)
    if any(network.dropout) and local and len(set(seeds)) < len(seeds):
        raise ValueError(f"the ranks' networks share seeds ({seeds}); with dropout, local SGD "
                         "needs each rank's own seed, which keys its masks and its shuffles: "
                         "Network(..., seed=seed + rank)")
    if any(network.dropout) and not local and len(set(seeds)) > 1:
        raise ValueError(f"the ranks' networks have different seeds ({seeds}); with dropout "
                         "every rank needs the same one, which keys the masks: "
                         "Network(..., seed=...)")


def _differences(everyone: list[dict]) -> str:
    """How the ranks' settings differ from rank 0's ("" when they do not)."""
    first = everyone[0]
    return "; ".join(
        f"rank {rank}: " + ", ".join(f"{key}={_validation.shown(theirs.get(key))}"
                                     for key in sorted(set(theirs) | set(first))
                                     if theirs.get(key) != first.get(key))
        for rank, theirs in enumerate(everyone) if theirs != first)


def fit(network, X, y, optimizer=None, epochs: int = 10, batch_size: int = 32,
        shuffle: bool = True, *, sample_weight=None, class_weight=None, validation_data=None,
        early_stopping: bool = False, patience: int = 10, min_delta: float = 1e-4,
        restore_best_weights: bool = True, monitor: str | None = None, mode: str = "auto",
        callbacks=(), verbose: int = 0, comm=None, average_every: int | None = None) -> History:
    """Train ``network`` data-parallel on the ranks of ``comm``; returns a
    ``History`` on every rank (the same on all).

    Call it on every rank with the same network configuration and optimizer
    settings (seeds may differ without dropout); rank 0's parameters and
    optimizer state are broadcast first (warm starts continue from rank 0's).
    With ``average_every`` it trains by local SGD instead (see there).

    Parameters
    ----------
    network : fastwb.Network
    X, y : array-like
        This rank's shard, as ``Network.fit`` takes them. Shards may differ in
        size; each rank needs at least one sample.
    optimizer : Optimizer, str or None
        As for ``Network.fit`` (kept as ``network.optimizer``).
    epochs : int
    batch_size : int
        Rows per rank per step: a step trains on up to ``batch_size`` times the
        rank count samples. An epoch has as many steps as the largest shard
        needs; ranks whose shard is used up sit the remaining steps out.
        In local SGD, ``Network.fit``'s batch size on each shard.
    shuffle : bool
        Reshuffle each shard every epoch (by the network's seed, the epoch and
        the rank; in local SGD as ``Network.fit`` does, by the rank's seed and
        the epoch). With ``False`` the result equals ``Network.fit`` on the
        ranks' batches concatenated step by step.
    sample_weight : array (n,) or None
        Weights of this shard's samples; each step's gradient is then the mean
        weighted over the whole step's batch.
    class_weight : "balanced", dict or None
        As for ``Network.fit``; "balanced" counts the classes over every shard.
    validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val)
        This rank's validation shard (every rank gives one, or none does):
        each scores its own after every epoch and one reduction gives
        ``val_loss`` (and ``val_accuracy``) over all of them.
    early_stopping, patience, min_delta, restore_best_weights, monitor, mode
        As for ``Network.fit``; rank 0 decides and every rank stops after the
        same epoch with the same (restored) parameters.
    callbacks, verbose
        As for ``Network.fit``; run on rank 0 only. A callback that sets
        ``network.stop_training`` stops every rank after that epoch.
    comm : mpi4py communicator or None
        ``MPI.COMM_WORLD`` by default.
    average_every : int >= 1 or None
        None: one Allreduce of the gradient per step, as above. ``k``: local
        SGD, for networks whose step costs less than an Allreduce of their
        parameters: every rank runs ``Network.fit``'s epochs on its shard alone
        and after every ``k``-th epoch of this call and after its last (also
        when a callback stops it early) the ranks' parameters and optimizer
        moment buffers are replaced by their mean weighted by the shards'
        sample weights (row counts without weights): ``k`` epochs of
        ``Network.fit`` on each shard, then that mean, is what every rank
        holds. The step counter becomes the largest rank's (the steps the
        synchronous mode would count, so a schedule by step goes on alike on
        every rank; Adam's bias correction then takes the ranks' moments as
        that many steps old, which matters only in the first
        ``1 / (1 - beta2)`` steps and only when shards differ in batches),
        ``samples_seen`` the sum over the ranks. Validation, early stopping
        and a schedule reading ``val_loss`` see only averaged models, after
        those averaging epochs: other epochs' logs have no ``val_*`` entries
        (as with Keras' ``validation_freq``), and ``patience`` counts
        averaging epochs. ``loss`` (the ranks' local losses, reduced) is
        logged every epoch, with ``averaged`` (False between averages:
        ``fastwb.callbacks.EarlyStopping`` and Optuna's ``PruningCallback``
        skip those epochs; a callback of yours can too). With dropout each
        rank needs its own seed (``Network(..., seed=seed + rank)``): it keys
        the rank's masks and shuffles. An epoch that diverges, or an error or
        Ctrl-C on any rank, takes every rank back to the last average.
        Besides the average, each epoch makes a few small collectives (the
        ranks' losses and failures, rank 0's callbacks' decisions).

    Returns
    -------
    History
        Per epoch: ``loss`` (the mean over all ranks' samples of the steps'
        losses, penalties included, as ``Network.fit`` reports it), ``lr``
        (in local SGD rank 0's),
        ``time``, ``samples_per_second`` (all ranks' samples), the validation
        metrics, and what rank 0's callbacks add.

    Raises
    ------
    FloatingPointError
        On every rank, when a step's loss is not finite or its update would
        leave a parameter NaN or infinite (that step is not applied; in local
        SGD every rank goes back to the last average); with early stopping
        after its first epoch, a warning and the end of the fit instead, as in
        ``Network.fit``.
    RuntimeError
        On every rank but the one where an exception occurred (which raises
        that exception).
    """
    MPI = _mpi()
    comm = MPI.COMM_WORLD if comm is None else comm
    rank = comm.Get_rank()
    with _HeldInterrupt() as held:   # from the first collective to the last
        optimizer = _agree(comm, lambda: network._optimizer(optimizer), held)
        epochs, batch_size, rule, data, val, average_every = _agree(comm, lambda: _setup(
            network, X, y, optimizer, epochs, batch_size, shuffle, sample_weight,
            validation_data, early_stopping, monitor, average_every), held)
        settings = {"epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle),
                    "validation_data": val is not None, "early_stopping": bool(early_stopping),
                    "patience": patience, "min_delta": min_delta, "monitor": monitor,
                    "mode": mode,
                    "restore_best_weights": restore_best_weights,
                    "class_weight": None if class_weight is None else repr(class_weight),
                    "average_every": average_every}
        local = average_every is not None
        _agree(comm, lambda: _check_same_setup(comm, network, optimizer, settings, local),
               held)
        if class_weight is not None:
            _weigh_classes(comm, MPI, network, data, class_weight, held)
        for name in sorted(rule.state):
            comm.Bcast(rule.state[name], root=0)
        comm.Bcast(rule.counters, root=0)
        _follow_rank0(comm, network, optimizer, True, held)
        if not np.isfinite(network.parameters).all():
            raise ValueError("the network's parameters hold NaN or infinity (after a diverged "
                             "train_step, or assigned so); set finite ones before fit")
        shards = _Shards(comm.allgather(len(data)), batch_size, rank)
        local_sgd = _LocalSGD(comm, MPI, network, optimizer, data) if local else None
        loss_key = "val_loss" if val is not None else "loss"
        stopper, hooks = _agree(comm, lambda: _hooks(
            rank, callbacks, verbose, epochs, early_stopping and (monitor or loss_key), patience,
            min_delta, restore_best_weights, mode), held)
        network.stop_training = False
        history = History()
        _agree(comm, lambda: _begin(hooks, network, data, val), held)
        _train(comm, MPI, network, optimizer, rule, data, val, shards, shuffle, epochs, hooks,
               stopper, loss_key, restore_best_weights, history, held, local_sgd,
               average_every)
        comm.Bcast(network.parameters, root=0)      # early stopping restored rank 0's best
        if early_stopping:
            history.stopped_early, history.best_epoch = comm.bcast(
                None if stopper is None else (stopper.stopped, stopper.best_epoch), root=0)
        return history


def _train(comm, MPI, network, optimizer, rule, data, val, shards, shuffle, epochs, hooks,
           stopper, loss_key, restore_best_weights, history, held, local, average_every) -> None:
    """The epochs, then every callback's end; every failure raised on all ranks."""
    try:
        for done in range(1, epochs + 1):
            epoch = optimizer.epoch + 1
            # local SGD's ranks agree (average) after every k-th epoch and the last
            averaged = local is None or done % average_every == 0 or done == epochs
            _agree(comm, lambda: [hook.on_epoch_begin(epoch, {}) for hook in hooks], held)
            start = time.perf_counter()
            try:
                if local is None:
                    loss, lr = _epoch(comm, MPI, network, optimizer, rule, data, shards,
                                      shuffle, epoch, held)
                else:
                    loss, lr = local.epoch(shards.batch_size, shuffle, averaged)
            except FloatingPointError as error:     # raised alike on every rank
                best = comm.bcast(None if stopper is None else stopper.best_epoch, root=0)
                if best is None:
                    raise
                training.warn_diverged_after_best(error, epoch, best, restore_best_weights,
                                                  stacklevel=3)
                if stopper is not None:
                    stopper.stop()
                break
            elapsed = time.perf_counter() - start
            logs = {"loss": loss, "lr": lr, "time": elapsed,
                    "samples_per_second": shards.total / max(elapsed, 1e-12)}
            if val is not None and averaged:
                logs.update(_validation_logs(comm, MPI, network, val, held))
            if loss_key in logs:
                _agree(comm, lambda: optimizer.schedule.on_epoch_end(epoch, logs[loss_key]),
                       held)
            if local is not None:       # metric callbacks judge averaged models only
                logs["averaged"] = averaged
            logs, stop = _from_rank0(comm, lambda: _end(hooks, network, epoch, logs), held)
            if stop and not averaged:
                local.average()
            # between averages local SGD's ranks hold their own parameters
            _follow_rank0(comm, network, optimizer, averaged or stop, held)
            history.append(epoch, logs)
            if stop:
                break
    except BaseException as failing:     # raised on every rank
        if local is not None:   # between averages the ranks' models differ: back to one
            local.last_average.restore(network)
        training._end_training(hooks, failing)
        raise
    _agree(comm, lambda: training._end_training(hooks), held)


def _follow_rank0(comm, network, optimizer, parameters: bool, held: _HeldInterrupt) -> None:
    """Rank 0's learning rate, schedule (with its state) and ``parameters`` on
    every rank: its callbacks may have changed them (they run on rank 0 only).
    The schedule travels as its config and state, which are JSON-able, and as
    an object only when a callback replaced it (a schedule holding a function
    need not pickle until then)."""
    if parameters:
        comm.Bcast(network.parameters, root=0)
    schedule = optimizer.schedule
    lr, config, state = _from_rank0(
        comm, lambda: (optimizer.lr, schedule.get_config(), schedule.get_state()), held)
    replaced = not all(comm.allgather(config == schedule.get_config()))
    if replaced:
        schedule = _from_rank0(comm, lambda: optimizer.schedule, held)

    def follow() -> None:
        if comm.Get_rank():
            optimizer.lr = lr
            if replaced:
                optimizer.schedule = schedule
            else:
                schedule.set_state(state)
    _agree(comm, follow, held)


def _weigh_classes(comm, MPI, network, data, class_weight, held: _HeldInterrupt) -> None:
    """Class weights on this shard's samples; "balanced" from the classes of all shards."""
    if isinstance(class_weight, str) and class_weight == "balanced":
        labels, n_classes = _agree(
            comm, lambda: training.class_labels(network.loss_name, data.y), held)
        counts = np.bincount(labels, minlength=n_classes or network.sizes[-1]).astype(np.float64)
        comm.Allreduce(MPI.IN_PLACE, counts, op=MPI.SUM)
        present = np.flatnonzero(counts)
        class_weight = {int(c): counts.sum() / (len(present) * counts[c]) for c in present}
    _agree(comm, lambda: data.weigh_classes(network, class_weight), held)


def _hooks(rank, callbacks, verbose, epochs, monitor, patience, min_delta,
           restore_best_weights, mode) -> tuple[EarlyStopping | None, list]:
    """Rank 0's early stopping and callbacks (checked on every rank); none elsewhere."""
    patience = _validation.check_count(patience, "patience", 0)
    min_delta = _validation.check_real(min_delta, "min_delta", 0.0)
    stopper = EarlyStopping(monitor, patience, min_delta, restore_best_weights,
                            mode) if monitor else None
    hooks = training._callbacks(callbacks, verbose, epochs, stopper)
    return (stopper, hooks) if rank == 0 else (None, [])


def _validation_logs(comm, MPI, network, val, held: _HeldInterrupt) -> dict:
    """val_loss (weighted by the shards' weights) and val_accuracy over every rank's
    shard; the reduction carries a failure flag, so a failing rank stops all."""
    n = len(val)
    weight = float(n if val.sample_weight is None else val.sample_weight.sum())
    parts = np.zeros(5)
    classify = network.loss_name in CLASSIFICATION_LOSSES
    error: BaseException | None = None
    try:
        parts[0:2] = network.loss(val.X, val.y, val.sample_weight) * weight, weight
        if classify:
            parts[2:4] = (training.accuracy(network.loss_name, network.predict(val.X), val.y)
                          * n, n)
    except BaseException as caught:     # Ctrl-C too: see _agree
        error = caught
    error = error or held.error()
    parts[4] = error is not None
    comm.Allreduce(MPI.IN_PLACE, parts, op=MPI.SUM)
    if parts[4]:
        _raise_any(comm, error)
    logs = {"val_loss": parts[0] / parts[1]}
    if classify:
        logs["val_accuracy"] = parts[2] / parts[3]
    return logs


def _begin(hooks, network, data, val) -> None:
    for hook in hooks:
        hook.network = network
        hook.training_data = (data.X, data.y)
        hook.validation_data = None if val is None else (val.X, val.y)
        hook.on_train_begin({})


def _end(hooks, network, epoch: int, logs: dict) -> tuple[dict, bool]:
    """Rank 0's callbacks at the end of an epoch: the logs they complete, and
    whether one asked to stop."""
    for hook in hooks:
        hook.on_epoch_end(epoch, logs)
    return logs, bool(network.stop_training)


def _epoch(comm, MPI, network, optimizer, rule, data, shards: _Shards, shuffle: bool,
           epoch: int, held: _HeldInterrupt) -> tuple[float, float]:
    """One epoch's steps; returns (mean loss over all ranks' samples, last learning rate)."""
    n, size = len(data), shards.batch_size
    order = np.random.default_rng([network.seed, epoch, shards.rank]).permutation(n) \
        if shuffle else None
    P = network.n_parameters
    # the weighted gradient, then the weighted loss, the weight, and a failure flag:
    # the step's only message, in float64 whatever the network's dtype
    buffer = np.empty(P + 3)
    gradient = np.empty(P, dtype=network.dtype)
    total_loss, lr = 0.0, optimizer.current_lr
    # a failure after this rank's part of the reduction (in its update) travels
    # with the next reduction, or the check after the last step
    error: BaseException | None = None
    for step in range(shards.steps):
        buffer[:] = 0.0
        rows = shards.rows(shards.rank, step)
        if rows and error is None:
            first = step * size
            try:
                part = data.take(slice(first, first + rows) if order is None
                                 else order[first:first + rows])
                _local_gradient(network, optimizer, part, shards.mask_row0(step), buffer)
            except BaseException as caught:     # Ctrl-C too: see _agree
                error = caught
        error = error or held.error()
        buffer[P + 2] = error is not None
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        if buffer[P + 2]:
            _raise_any(comm, error)
        lr = optimizer.current_lr
        weight = buffer[P + 1]
        try:
            if weight == 0:     # as in Network.fit, the step still counts: the penalties'
                loss, step_gradient = network.step_gradient(       # gradient, the moments
                    data.X[:1], data.y[:1], optimizer, np.zeros(1, network.dtype))
                gradient[...] = step_gradient
            else:
                loss = buffer[P] / weight
                np.divide(buffer[:P], weight, out=gradient, casting="unsafe")
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged: the loss was {loss} on step {step} of epoch {epoch}; "
                    "the parameters and optimizer state are those before it. Try a smaller "
                    "learning rate, clip_norm, or scaling the inputs.")
            network._apply_flat_gradient(gradient, optimizer, rule)
        except FloatingPointError:      # the same update on every rank: raised by all
            raise
        except BaseException as caught:
            error = caught
            continue
        total_loss += loss * shards.global_rows(step)
    _raise_any(comm, error or held.error())
    rule.counters[1] += 1
    rule.counters[2] += shards.total
    return total_loss / shards.total, lr


def _local_gradient(network, optimizer, part, mask_row0: int, buffer: np.ndarray) -> None:
    """This rank's batch's gradient and loss times its weight, and the weight, into buffer."""
    P = network.n_parameters
    weight = len(part) if part.sample_weight is None else float(part.sample_weight.sum())
    if weight == 0:
        return
    loss, gradient = network.step_gradient(part.X, part.y, optimizer, part.sample_weight,
                                           mask_row0=mask_row0)
    np.multiply(gradient, weight, out=buffer[:P])
    buffer[P] = loss * weight
    buffer[P + 1] = weight


class _LocalSGD:
    """Local SGD on this rank: whole epochs of ``Network.fit`` on its shard, and
    the weighted average of every rank's parameters and optimizer state."""

    def __init__(self, comm, MPI, network, optimizer, data):
        self.comm, self.MPI, self.network, self.optimizer, self.data = (
            comm, MPI, network, optimizer, data)
        weight = len(data) if data.sample_weight is None else np.sum(data.sample_weight,
                                                                      dtype=np.float64)
        self.weight = float(weight)
        self.total_weight = sum(comm.allgather(self.weight))     # rank order: the same bits
        self.counts = comm.allgather(len(data))
        # the state every rank shared last: what a divergence goes back to
        self.last_average = training._Snapshot(network, optimizer.rule_for(network))

    def epoch(self, batch_size: int, shuffle: bool, average: bool) -> tuple[float, float]:
        """One epoch of ``Network.fit`` on this rank's shard, then the ranks' mean
        state when ``average``; returns (mean loss over all ranks' samples, rank
        0's last learning rate)."""
        network, optimizer, data = self.network, self.optimizer, self.data
        # the schedule hears the reduced loss from distributed.fit, not this shard's
        schedule = optimizer.schedule.get_state()
        error: BaseException | None = None
        loss = lr = float("nan")
        asked = network.stop_training       # by a callback's on_epoch_begin; fit resets it
        try:
            history = network.fit(data.X, data.y, optimizer, epochs=1, batch_size=batch_size,
                                  shuffle=shuffle, sample_weight=data.sample_weight)
            loss, lr = history["loss"][0], history["lr"][0]
        except BaseException as caught:     # Ctrl-C too: see _agree
            error = caught
        finally:
            optimizer.schedule.set_state(schedule)
            network.stop_training = network.stop_training or asked
        reports = self.comm.allgather(
            (loss, lr, _described(error), isinstance(error, FloatingPointError)))
        failed = [(rank, message, diverged)
                  for rank, (_, _, message, diverged) in enumerate(reports) if message]
        crashed = [(rank, message) for rank, message, diverged in failed if not diverged]
        if crashed:     # the rank that crashed raises its error, every other rank this
            if error is not None and not isinstance(error, FloatingPointError):
                raise error
            raise _stopped(*crashed[0])
        if failed:      # raised alike on every rank, as a divergence in the synchronous mode
            self.last_average.restore(network)
            raise FloatingPointError(
                f"on rank {failed[0][0]}, {failed[0][1]} Every rank is back at the parameters "
                "and optimizer state of the last average.")
        if average:
            self.average()
        # shares of the samples, not a sum divided: one rank's loss stays Network.fit's bits
        shares = np.divide(self.counts, sum(self.counts))
        return float(np.dot([report[0] for report in reports], shares)), reports[0][1]

    def average(self) -> None:
        """Replace every rank's parameters and optimizer state by their mean
        weighted by the shards' weights; the step counter by the largest, the
        samples seen by the sum (one Allreduce of float64 whatever the dtype, one
        of the step counts)."""
        network, comm, MPI = self.network, self.comm, self.MPI
        rule = self.optimizer.rule_for(network)
        if comm.Get_size() > 1:     # one rank: nothing to average, and x * w / w may round
            arrays = [network.parameters] + [rule.state[name] for name in sorted(rule.state)]
            P = network.n_parameters
            buffer = np.empty(len(arrays) * P + 1)
            for i, values in enumerate(arrays):
                np.multiply(values, self.weight, out=buffer[i * P:(i + 1) * P])
            buffer[-1] = rule.counters[2] - self.last_average.counters[2]
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            for i, values in enumerate(arrays):
                values[...] = buffer[i * P:(i + 1) * P] / self.total_weight
            steps = comm.allreduce(int(rule.counters[0]), op=MPI.MAX)
            rule.counters[0] = steps
            rule.counters[2] = self.last_average.counters[2] + int(buffer[-1])
        self.last_average.take(network, rule)
