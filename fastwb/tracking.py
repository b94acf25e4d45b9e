"""Experiment tracking: ``WandbCallback`` logs a ``fit`` to Weights & Biases.

``wandb`` is an optional dependency (``pip install "fastwb[wandb]"``); it is
imported when a ``WandbCallback`` is made, not with this module.
"""
from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fastwb._validation import check_count
from fastwb.callbacks import Callback

if TYPE_CHECKING:
    import wandb

    from fastwb.network import Network

__all__ = ["MetricSource", "WandbCallback", "describe"]


class MetricSource(Protocol):
    """What ``WandbCallback(monitor=...)`` takes: anything with ``metrics()``."""

    def metrics(self) -> dict[str, float]:
        """The latest epoch's statistics by name, e.g. ``"layer1/W/mean"``."""


def _import_wandb() -> ModuleType:
    try:
        import wandb
    except ImportError as exc:
        raise ImportError('WandbCallback needs the wandb client: pip install "fastwb[wandb]"'
                          ) from exc
    return wandb


def describe(network: Network) -> dict[str, Any]:
    """A network and its optimizer as a flat, JSON-able run config.

    ``sizes``, ``activations``, ``n_parameters`` and the network's settings
    (``loss``, ``dtype``, ``seed``, ...) at the top level, each per-layer
    setting of ``get_config()["layers"]`` (``dropout``, ``l1``, ``l2``,
    initializers) as one list over the layers, and with an optimizer set its
    ``get_config()`` under ``"optimizer"`` (``name``, ``lr``, ...).
    """
    config = network.get_config()
    layers = config.pop("layers")
    described = {"sizes": list(network.sizes), "activations": list(network.activations),
                 "n_parameters": network.n_parameters, **config}
    for key in layers[0]:
        if key not in ("n_in", "n_out", "activation"):      # already in sizes and activations
            described[key] = [layer[key] for layer in layers]
    if network.optimizer is not None:
        described["optimizer"] = network.optimizer.get_config()
    return described


class WandbCallback(Callback):
    """Log a ``fit`` to Weights & Biases: metrics, weight histograms, the config.

    Without ``run``, each ``fit`` the callback is passed to starts a run
    (``wandb.init``) at its beginning and finishes it at its end, with exit
    code 1 when training raised (divergence, Ctrl-C, a failing callback), else 0.
    Its config is the network's description (see ``describe``: sizes,
    activations, loss, dtype, parameter count, optimizer and its
    hyperparameters) updated with ``config``. The run is created with
    ``reinit="create_new"`` unless ``init_kwargs`` says otherwise, so a run the
    process already has open is neither reused nor finished; the new run is
    then not ``wandb.run``: reach it as ``callback.run``.

    Every ``log_every`` epochs (epoch numbers log_every, 2 * log_every, ...; fit
    numbers epochs from 1)
    one row is logged: every numeric value of the epoch's logs (``loss``,
    ``lr``, ``time``, ``samples_per_second``, ``val_loss``,
    ``val_accuracy``), ``epoch``, with ``histograms`` a ``wandb.Histogram``
    (64 bins) of each layer's parameters as ``layer{i}/weights`` and
    ``layer{i}/bias`` (i from 1), and with ``monitor`` its ``metrics()``.

    The W&B step of a row is the epoch number, which continues over fits that
    continue one optimizer. W&B drops rows whose step goes back, so when the
    run is already past the epoch (a run reused for a fit with a fresh
    optimizer, whose epochs start at 1 again, or rows logged to it by others)
    the row goes to the run's next step instead; its ``epoch`` value stays the
    epoch number.

    Parameters
    ----------
    project, name : str or None
        Project and display name of the run the callback starts.
    config : dict or None
        Run config; its keys take precedence over the network's description.
    run : wandb Run or None
        An open run to log to instead of starting one: the callback neither
        starts nor finishes it, and adds the network's description to its
        config only under keys the config does not have yet. ``project``,
        ``name``, ``config`` and ``init_kwargs`` then do not apply.
    monitor : MetricSource or None
        An object whose ``metrics()`` returns a flat ``dict[str, float]`` of the
        latest epoch's statistics (keys such as ``"layer1/W/mean"``), merged
        into each row. If it is a callback of the same fit it must come before
        this one in ``callbacks``, so that its epoch is done when the row is
        logged.
    histograms : bool, default True
        Log histograms of every layer's weights and bias.
    log_every : int, default 1
        Log the epochs whose number is a multiple of this.
    **init_kwargs
        More arguments of ``wandb.init`` (``entity``, ``tags``, ``mode``,
        ``settings``, ...).

    Examples
    --------
    >>> from fastwb.tracking import WandbCallback
    >>> history = net.fit(X, y, "adam", epochs=20, validation_split=0.2,
    ...                   callbacks=[WandbCallback(project="fastwb")])  # doctest: +SKIP
    """

    def __init__(self, project: str | None = None, name: str | None = None,
                 config: Mapping[str, Any] | None = None, run: wandb.Run | None = None,
                 monitor: MetricSource | None = None, histograms: bool = True, log_every: int = 1,
                 **init_kwargs):
        self._wandb = _import_wandb()
        self.log_every = check_count(log_every, "log_every")
        if not isinstance(histograms, (bool, np.bool_)):
            raise TypeError(f"histograms must be a bool, got {histograms!r}")
        if monitor is not None and not callable(getattr(monitor, "metrics", None)):
            raise TypeError(f"monitor must have a metrics() method returning a dict, "
                            f"got {monitor!r}")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
        if run is not None:
            if not callable(getattr(run, "log", None)):
                raise TypeError(f"run must be a wandb run (what wandb.init returns), got "
                                f"{run!r}; to name the run the callback starts, use name=")
            given = [key for key, value in (("project", project), ("name", name),
                                            ("config", config)) if value is not None]
            if given or init_kwargs:
                raise ValueError(f"{', '.join(given + list(init_kwargs))} configure the run the "
                                 "callback starts; with run= set them in your wandb.init")
        self.project, self.name, self.config = project, name, dict(config or {})
        self.monitor = monitor
        self.histograms = bool(histograms)
        self.init_kwargs = {"reinit": "create_new", **init_kwargs}
        self._given_run = run
        #: The run logged to: the one given, or the one the latest fit started.
        self.run = run
        # the run this callback started and has yet to finish
        self._started: wandb.Run | None = None
        self._outer_error: BaseException | None = None

    def on_train_begin(self, logs: dict) -> None:
        # fit calls on_train_end from a `finally`: an exception it sees there that
        # was not already being handled when training began is training's own
        self._outer_error = sys.exc_info()[1]
        described = describe(self._require_network())
        if self._given_run is not None:
            self._given_run.config.setdefaults(described)
            return
        self.run = self._started = self._wandb.init(
            project=self.project, name=self.name, config={**described, **self.config},
            **self.init_kwargs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch % self.log_every:
            return
        row = {key: float(value) for key, value in logs.items()
               if isinstance(value, numbers.Real)}
        row["epoch"] = epoch
        if self.histograms:
            for i, layer in enumerate(self._require_network().layers, start=1):
                row[f"layer{i}/weights"] = self._wandb.Histogram(layer.weights)
                row[f"layer{i}/bias"] = self._wandb.Histogram(layer.bias)
        if self.monitor is not None:
            row.update(self.monitor.metrics())
        # run.step is the run's next free step; commit closes the row, so the
        # next call (ours or anyone's) starts after it
        run = self.run
        assert run is not None, "on_train_begin starts a run unless one was given"
        run.log(row, step=max(epoch, run.step), commit=True)

    def on_train_end(self, logs: dict) -> None:
        run, self._started = self._started, None
        if run is not None:
            error = sys.exc_info()[1]
            run.finish(exit_code=int(error is not None and error is not self._outer_error))
