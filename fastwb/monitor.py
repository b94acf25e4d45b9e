"""``Monitor``: what the weights and biases do while a network learns.

A ``fit`` callback that records, per epoch and per layer, statistics of the
weights and biases, of the last minibatch's gradient, of the epoch's update and
of the change since the start; the activations on a fixed sample of the
training data; and the time per update. It warns once each about exploding or
vanishing gradients, dead ReLU units and overfitting. The statistics of the
parameters come from one compiled pass over the flat buffer
(``fastwb.inspection.parameter_statistics``), so the monitor is cheap enough to
leave on (``benchmarks/monitor.py`` measures what it costs).
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastwb import _validation
from fastwb._sparse import SparseRows
from fastwb.callbacks import Callback
from fastwb.inspection import STATISTICS, checked_rows, parameter_statistics

if TYPE_CHECKING:      # annotations only: the network module imports callbacks
    from fastwb.network import Network

PARTS = ("W", "b")
#: Per-(layer, W or b) columns of ``Monitor.records``, after ``STATISTICS``.
DERIVED = ("update_ratio", "relative_change")
#: Per-layer columns of ``Monitor.records``.
LAYER_COLUMNS = ("correlation", "dead_fraction", "mean_activation")


class HealthWarning(UserWarning):
    """Training looks unhealthy: exploding or vanishing gradients, dead ReLU
    units, or overfitting. ``Monitor`` issues each kind once."""


class Monitor(Callback):
    """Record the weights, biases, gradients and activations of every epoch of ``fit``.

    Parameters
    ----------
    sample_size : int, default 256
        Rows of the training data (a fixed random choice, by the network's
        seed) on which the activations are measured: each layer's mean output
        and, for ReLU layers, the fraction of dead units (0 on every sampled
        row). 0 turns activations off.
    sample : array-like (n, n_in), optional
        The rows to measure activations on, instead of a sample of the
        training data.
    activations_every : int or None
        Measure the activations every this many records, and always at the
        end of a fit (None for other records). None chooses the smallest
        interval at which the sample costs at most 1/32 of a forward pass over
        the training data, about 1 % of an epoch: every record from 8,192
        training rows on (for 256 sampled rows), every 7th on the 1,347 digits.
    snapshots : int, default 16
        Most copies of the parameters kept for the histograms and decision
        boundaries across epochs (``snapshots()``): the initial ones, then
        every k-th epoch, k doubling whenever the copies would exceed this.
        0 keeps none.
    every : int, default 1
        Record every ``every``-th epoch (and always the last one of a fit).
    warn : bool, default True
        Issue a ``HealthWarning`` (once per kind) when training looks unhealthy.
    explode : float, default 100
        Warn of exploding gradients when a layer's gradient norm grows to more
        than this many times its first recorded value.
    vanish : float, default 1e-3
        Warn of vanishing gradients when the first layer's relative gradient,
        ``||grad W|| / ||W||``, falls below this fraction of the last layer's.
    dead : float, default 0.5
        Warn when more than this fraction of the ReLU units are dead.
    overfit_patience : int, default 3
        Warn of overfitting when the validation loss has stayed above its best
        for this many epochs while the training loss kept falling below its
        value at that best epoch.

    Attributes
    ----------
    epochs : list of dict
        One per recorded epoch: ``epoch``, the fit logs (``loss``, ``lr``,
        ``time``, ``val_loss``, ...), ``updates`` (optimizer steps since the
        last record) and ``time_per_update`` (seconds).
    stats : list of ndarray (n_layers, 2, len(STATISTICS))
        Per recorded epoch, for each layer's W (row 0) and b (row 1):
        ``STATISTICS`` = mean, std, min, max, L2 norm, the L2 norm of the
        epoch's last minibatch gradient (of the loss, before penalties and
        clipping), ``update_norm`` (distance from the parameters of the
        previous record) and ``change_norm`` (distance from the initial ones).
    initial : dict
        The same statistics of the parameters before training.
    warnings : list of (epoch, kind, message)
        The health warnings issued.

    Notes
    -----
    One monitor follows one network: further ``fit`` and ``partial_fit`` calls
    on it add epochs to the same record, and "initial" stays the state the
    monitor first saw. ``reset()`` starts over; a different network resets it.

    Examples
    --------
    >>> import numpy as np, fastwb
    >>> X = np.random.default_rng(0).normal(size=(64, 4))
    >>> net = fastwb.Network([4, 8, 2], loss="softmax_cross_entropy", seed=0)
    >>> monitor = fastwb.Monitor()
    >>> history = net.fit(X, (X[:, 0] > 0).astype(int), epochs=3, callbacks=[monitor])
    >>> len(monitor.epochs), monitor.records()[0]["param"]
    (3, 'W')
    """

    def __init__(self, sample_size: int = 256, sample=None,
                 activations_every: int | None = None, snapshots: int = 16,
                 every: int = 1, warn: bool = True, explode: float = 100.0,
                 vanish: float = 1e-3, dead: float = 0.5, overfit_patience: int = 3):
        self.sample_size = _validation.check_count(sample_size, "sample_size", 0)
        self.sample = sample
        self.activations_every = None if activations_every is None else \
            _validation.check_count(activations_every, "activations_every")
        self.max_snapshots = _validation.check_count(snapshots, "snapshots", 0)
        self.every = _validation.check_count(every, "every")
        if not isinstance(warn, (bool, np.bool_)):
            raise TypeError(f"warn must be a bool, got {warn!r}")
        self.warn = bool(warn)
        self.explode = _validation.check_real(explode, "explode", 1.0)
        self.vanish = _validation.check_real(vanish, "vanish", 0.0, 1.0)
        self.dead = _validation.check_real(dead, "dead", 0.0, 1.0)
        self.overfit_patience = _validation.check_count(overfit_patience, "overfit_patience")
        self.reset()

    def reset(self) -> None:
        """Forget every record; the next ``fit`` starts from its network's state."""
        self.epochs: list[dict] = []
        self.stats: list[np.ndarray] = []
        self.correlation: list[np.ndarray] = []
        self.dead_fraction: list[np.ndarray] = []
        self.mean_activation: list[np.ndarray] = []
        self.initial: dict = {}
        self.warnings: list[tuple] = []
        self._network: Network | None = None
        self._rows: np.ndarray | SparseRows | None = None
        self._activation_stride = 1
        # (index, val_loss, loss) of the best val_loss
        self._best: tuple[int, float, float] | None = None
        self._first_gradients: list[float] | None = None       # per layer, of the first record
        self._initial: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._snapshots: dict = {}
        self._stride = 1
        self._seen = 0
        self._pending: dict[str, Any] | None = None

    # --- the fit hooks ------------------------------------------------------------

    def on_train_begin(self, logs: dict) -> None:
        net = self.network
        if self._network is not net:
            self.reset()
            self._start(net)
        self._pending = None

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        if self._pending is None:
            self._pending = {"step": _optimizer_step(self._require_network()), "time": 0.0}

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pending = self._pending
        assert pending is not None, "fit calls on_epoch_begin before on_epoch_end"
        pending["time"] += logs.get("time", 0.0)
        pending["logs"] = dict(logs, epoch=epoch)
        self._seen += 1
        if self._seen % self.every == 0:
            self._record()

    def on_train_end(self, logs: dict) -> None:
        if self._pending is not None and "logs" in self._pending:
            self._record()
        self._pending = None
        if self.epochs and self._rows is not None and \
                self.mean_activation[-1] is self._unmeasured:
            self.dead_fraction[-1], self.mean_activation[-1] = self._activations()
            if self.warn:
                self._check_health(self.epochs[-1])

    # --- recording ----------------------------------------------------------------

    def _start(self, net) -> None:
        self._network = net
        self._unmeasured = np.full(len(net.sizes) - 1, np.nan)     # shared, never written
        self._unmeasured.flags.writeable = False
        if self.sample is not None:
            self._rows = checked_rows(net, self.sample)
        elif self.sample_size and self.training_data is not None:
            X = self.training_data[0]
            n = X.shape[0]
            if n > self.sample_size:
                chosen = np.random.default_rng(net.seed).choice(n, self.sample_size,
                                                                replace=False)
                X = X[np.sort(chosen)]
            self._rows = checked_rows(net, X) if isinstance(X, SparseRows) else \
                np.ascontiguousarray(X, dtype=net.dtype)
        if self.activations_every is not None:
            self._activation_stride = self.activations_every
        elif self._rows is not None and self.training_data is not None:
            n = len(self.training_data[0])
            self._activation_stride = max(1, math.ceil(32 * len(self._rows) / n))
        self._initial = net.parameters.copy()
        self._previous = net.parameters.copy()
        stats, correlation = parameter_statistics(net)
        dead, mean = self._activations()
        self.initial = {"stats": stats, "correlation": correlation, "dead_fraction": dead,
                        "mean_activation": mean}
        if self.max_snapshots:
            self._snapshots = {"initial": self._initial}

    def _activations(self) -> tuple[np.ndarray, np.ndarray]:
        if self._rows is None:
            return self._unmeasured, self._unmeasured
        assert self._network is not None, "_start sets the network before the rows"
        return self._network.activation_statistics(self._rows)

    def _record(self) -> None:
        net, previous = self._network, self._previous
        assert net is not None and previous is not None, "_start runs before any record"
        pending, self._pending = self._pending, None
        assert pending is not None, "a record follows an epoch's on_epoch_end"
        # the true gradient of the epoch's last minibatch; NaN norms where not measured
        stats, correlation = parameter_statistics(net, net.training_gradient(), self._previous,
                                                  self._initial)
        np.copyto(previous, net.parameters)
        if (len(self.epochs) + 1) % self._activation_stride == 0:
            dead, mean = self._activations()
        else:
            dead = mean = self._unmeasured
        updates = _optimizer_step(net) - pending["step"]
        entry = pending["logs"]
        entry.update(updates=updates, time_per_update=pending["time"] / updates
                     if updates else math.nan)
        self.epochs.append(entry)
        self.stats.append(stats)
        self.correlation.append(correlation)
        self.dead_fraction.append(dead)
        self.mean_activation.append(mean)
        val = entry.get("val_loss")
        if val is not None and (self._best is None or val < self._best[1]):
            self._best = (len(self.epochs) - 1, val, entry["loss"])
        self._keep_snapshot(entry["epoch"], net.parameters)
        if self.warn:
            self._check_health(entry)

    def _keep_snapshot(self, epoch: int, parameters: np.ndarray) -> None:
        if not self.max_snapshots or len(self.epochs) % self._stride:
            return
        self._snapshots[epoch] = parameters.copy()
        while len(self._snapshots) > self.max_snapshots:
            self._stride *= 2
            kept = {e for i, e in enumerate(r["epoch"] for r in self.epochs)
                    if (i + 1) % self._stride == 0}
            self._snapshots = {k: v for k, v in self._snapshots.items()
                               if k == "initial" or k in kept}

    # --- health -------------------------------------------------------------------

    def _check_health(self, entry: dict) -> None:
        if len(self.warnings) == 4:
            return
        done = {kind for _, kind, _ in self.warnings}
        grads, weights = self._layer_norms(-1)
        if self._first_gradients is None:
            self._first_gradients = grads
        for kind, check, args in (("exploding", self._exploding, (grads,)),
                                  ("vanishing", self._vanishing, (grads, weights)),
                                  ("dead_relu", self._dead_relu, ()),
                                  ("overfitting", self._overfitting, ())):
            if kind in done:
                continue
            message = check(*args)
            if message:
                self.warnings.append((entry["epoch"], kind, message))
                warnings.warn(f"epoch {entry['epoch']}: {message}", HealthWarning,
                              stacklevel=_outside_fastwb())

    def _layer_norms(self, i: int) -> tuple[list, list]:
        """Per layer, the gradient norm of W and b together and the norm of W, of
        record i, as Python floats: the checks run every epoch on a few numbers,
        where NumPy's per-call cost would be most of their time."""
        stats = self.stats[i].tolist()
        g, w = STATISTICS.index("grad_norm"), STATISTICS.index("norm")
        return ([math.hypot(weights[g], bias[g]) for weights, bias in stats],
                [weights[w] for weights, _ in stats])

    def _exploding(self, now: list) -> str | None:
        first = self._first_gradients
        assert first is not None, "_check_health keeps the first gradients before the checks"
        growth = [b / a if a > 0 else 0.0 for a, b in zip(first, now)]
        l = max(range(len(growth)), key=growth.__getitem__)
        if growth[l] <= self.explode:
            return None
        return (f"exploding gradients: layer {l + 1}'s gradient norm grew from {first[l]:.3g} "
                f"to {now[l]:.3g} (more than {self.explode:g}x). Try a smaller learning rate, "
                "clip_norm, or scaling the inputs.")

    def _vanishing(self, grads: list, weights: list) -> str | None:
        if len(grads) < 2:
            return None
        relative = [g / w if w > 0 else g for g, w in zip(grads, weights)]
        if relative[-1] <= 0 or relative[0] >= self.vanish * relative[-1]:
            return None
        shown = ", ".join(f"{r:.2g}" for r in relative)
        return (f"vanishing gradients: the first layer's gradient relative to its weights is "
                f"{relative[0] / relative[-1]:.2g} of the last layer's (per layer, input "
                f"first: {shown}). Try ReLU activations, He initialisation or fewer layers.")

    def _dead_relu(self) -> str | None:
        net = self._network
        assert net is not None, "health checks follow a record"
        if self.dead_fraction[-1] is self._unmeasured:
            return None
        relu = [l for l, name in enumerate(net.activations) if name == "relu"]
        dead = self.dead_fraction[-1].tolist()
        if not relu:
            return None
        units = sum(net.sizes[l + 1] for l in relu)
        fraction = sum(dead[l] * net.sizes[l + 1] for l in relu) / units
        if fraction <= self.dead:
            return None
        per_layer = ", ".join(f"layer {l + 1}: {dead[l]:.0%}" for l in relu)
        return (f"{fraction:.0%} of the ReLU units are dead (0 on every sampled row; "
                f"{per_layer}). Try a smaller learning rate, leaky_relu, or He initialisation.")

    def _overfitting(self) -> str | None:
        latest = self.epochs[-1]
        if self._best is None or latest.get("val_loss") is None:
            return None
        best, best_val, best_loss = self._best
        since = len(self.epochs) - 1 - best
        val, loss = latest["val_loss"], latest["loss"]
        if since < self.overfit_patience or val <= best_val or loss >= best_loss:
            return None
        return (f"overfitting: the validation loss rose from {best_val:.4g} to {val:.4g} "
                f"over {since} epochs while the training loss fell from {best_loss:.4g} to "
                f"{loss:.4g}. Try early_stopping=True, l2, dropout or more data.")

    # --- reading the record --------------------------------------------------------

    def records(self) -> list[dict]:
        """One flat dict per recorded state and layer and W or b: ``stage``
        ("initial" or "epoch"), ``epoch`` (0 for the initial state, then the
        epoch's number, counted from 1 as ``fit`` numbers them), the
        epoch's logs, ``layer``, ``param``, the ``STATISTICS``, ``update_ratio``
        (``update_norm`` over the norm before the update), ``relative_change``
        (``change_norm`` over the initial norm), and the layer's ``correlation``,
        ``dead_fraction``, ``mean_activation`` (None where not measured)."""
        if not self.initial:
            return []
        return [row for i in range(-1, len(self.epochs)) for row in self._state_rows(i)]

    def _state_rows(self, i: int) -> list[dict]:
        """The rows of record i (-1: the initial state)."""
        norm = STATISTICS.index("norm")
        if i < 0:
            head: dict[str, Any] = {"stage": "initial", "epoch": 0}
            state = self.initial
            before = None
        else:
            head = {"stage": "epoch", **self.epochs[i]}
            state = {"stats": self.stats[i], "correlation": self.correlation[i],
                     "dead_fraction": self.dead_fraction[i],
                     "mean_activation": self.mean_activation[i]}
            before = (self.stats[i - 1] if i else self.initial["stats"])[:, :, norm]
        initial_norm = self.initial["stats"][:, :, norm]
        stats = state["stats"]
        rows = []
        for l in range(stats.shape[0]):
            for p, part in enumerate(PARTS):
                row = dict(head, layer=l + 1, param=part)
                row.update((name, _value(v)) for name, v in zip(STATISTICS, stats[l, p]))
                row["update_ratio"] = _ratio(row["update_norm"],
                                             None if before is None else before[l, p])
                row["relative_change"] = _ratio(row["change_norm"], initial_norm[l, p])
                row.update((name, _value(state[name][l])) for name in LAYER_COLUMNS)
                rows.append(row)
        return rows

    def metrics(self) -> dict[str, float]:
        """The latest record as one flat dict, keys such as ``"layer1/W/mean"``,
        ``"layer1/W/update_ratio"``, ``"layer2/correlation"``, ``"time_per_update"``
        (what ``WandbCallback`` logs); empty before the first record."""
        if not self.epochs:
            return {}
        out = {"time_per_update": self.epochs[-1]["time_per_update"]}
        for r in self._state_rows(len(self.epochs) - 1):
            prefix = f"layer{r['layer']}"
            for name in STATISTICS + DERIVED:
                if r[name] is not None:
                    out[f"{prefix}/{r['param']}/{name}"] = r[name]
            for name in LAYER_COLUMNS:
                if r[name] is not None:
                    out[f"{prefix}/{name}"] = r[name]
        return out

    def change_table(self) -> list[dict]:
        """The initial against the latest weights and biases: per layer and W or
        b, the initial and final mean, std and L2 norm, the distance between
        them (``change_norm``) and that over the initial norm
        (``relative_change``), and the weight-bias correlation before and after."""
        if not self.epochs:
            return []
        table = []
        for a, b in zip(self._state_rows(-1), self._state_rows(len(self.epochs) - 1)):
            row = {"layer": a["layer"], "param": a["param"]}
            for name in ("mean", "std", "norm"):
                row[f"initial_{name}"], row[f"final_{name}"] = a[name], b[name]
            row.update(change_norm=b["change_norm"], relative_change=b["relative_change"],
                       initial_correlation=a["correlation"], final_correlation=b["correlation"])
            table.append(row)
        return table

    def format_change_table(self) -> str:
        """``change_table()`` as text."""
        rows = self.change_table()
        if not rows:
            return "no epochs recorded"
        lines = [f"weights and biases: initial -> after epoch {self.epochs[-1]['epoch']}",
                 f"{'layer':<7}{'':3}{'mean':>19}{'std':>19}{'L2 norm':>19}{'|change|':>10}"
                 f"{'relative':>10}{'r(w,b)':>16}"]
        for r in rows:
            cells = "".join(f"{r[f'initial_{n}']:{sign}9.4f} -> {r[f'final_{n}']:<{sign}8.4f}"
                            for n, sign in (("mean", "+"), ("std", ""), ("norm", "")))
            corr = ""
            if r["param"] == "W":
                corr = f"{_fmt(r['initial_correlation'])}->{_fmt(r['final_correlation'])}"
            lines.append(f"{r['layer'] if r['param'] == 'W' else '':<7}{r['param']:<3}{cells}"
                         f"{r['change_norm']:10.4f}{_fmt(r['relative_change'], '.1%'):>10}"
                         f"{corr:>16}")
        return "\n".join(lines)

    def snapshots(self) -> list[tuple]:
        """The kept copies of the parameters, ``[("initial", flat), (epoch, flat), ...]``,
        oldest first, plus the current parameters as the last epoch's."""
        kept = list(self._snapshots.items())
        if self.epochs and self._network is not None:
            last = self.epochs[-1]["epoch"]
            kept = [(k, v) for k, v in kept if k != last]
            kept.append((last, self._network.parameters.copy()))
        return kept

    def to_csv(self, path) -> Path:
        """Write ``records()`` as CSV (one row per state, layer and W or b); returns the path."""
        rows = self.records()
        path = Path(path)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
        return path

    def to_jsonl(self, path) -> Path:
        """Write ``records()`` as JSON Lines (NaN as null); returns the path."""
        path = Path(path)
        with open(path, "w") as f:
            for row in self.records():
                f.write(json.dumps(row) + "\n")
        return path

    def to_frame(self):
        """``records()`` as a pandas DataFrame (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Monitor.to_frame needs pandas: pip install pandas; "
                              "Monitor.records() holds the same rows as dicts") from None
        return pandas.DataFrame(self.records())


def _optimizer_step(net: Network) -> int:
    optimizer = net.optimizer
    assert optimizer is not None, "fit gives the network its optimizer before the hooks"
    return optimizer.step


def _outside_fastwb() -> int:
    """The stacklevel of the first caller outside the fastwb package (the line
    that called ``fit``), for warnings issued from deep inside it."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    package = os.path.dirname(os.path.abspath(__file__))
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _value(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def _ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 or math.isnan(b) else a / b


def _fmt(value, spec: str = "+.2f") -> str:
    return "n/a" if value is None else format(value, spec)
