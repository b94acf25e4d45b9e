"""``Network``: a stack of dense layers, its parameters, its state, and the public calls."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fastwb import _validation, initializers, inspection, optimizers, training
from fastwb._core import Engine
from fastwb._layout import flat_from_layers, layer_views, n_parameters
from fastwb.callbacks import History
from fastwb.functions import (OUTPUT_ACTIVATION, FitStatus, check_huber_delta,
                              check_output_activation, resolve_activation, resolve_loss)
from fastwb.inspection import Summary
from fastwb.layers import Dense, _dropout, _init_config, _penalty
from fastwb.optimizers import Adam, Optimizer
from fastwb.reference import ReferenceEngine

BACKENDS = ("compiled", "reference")
_CONFIG_KEYS = ("layers", "loss", "dtype", "seed", "n_threads", "backend", "regularize_biases",
                "huber_delta")
_STATE_KEYS = ("network", "optimizer")
_OPTIMIZER_KEYS = ("config", "bound", "step", "epoch", "samples_seen", "schedule_state")


def _resolve_dtype(dtype) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {resolved}")
    return resolved


class Network:
    """A dense neural network: weights, biases, a loss, and compiled training.

    Parameters
    ----------
    sizes : sequence of int, or sequence of Dense
        Layer widths ``[n_in, h1, ..., n_out]``, or the layers themselves to
        give each its own activation.
    activation : str, default "relu"
        Activation of the hidden layers (and of any ``Dense`` whose activation
        is None): one of ``fastwb.functions.ACTIVATIONS`` but softmax, that is
        identity, relu, leaky_relu, sigmoid, tanh, elu, selu, gelu (exact erf
        form), softplus or swish (alias silu).
    output_activation : str or None
        Activation of the output layer; by default the one the loss implies:
        softmax for softmax cross-entropy, sigmoid for binary cross-entropy,
        exp for Poisson, identity for MSE, Huber and MAE.
    loss : {"mse", "binary_cross_entropy", "softmax_cross_entropy", "poisson", "huber", "mae"}
        Minimised by ``train_step``; ``loss(X, y)`` reports its batch mean (over
        samples, weighted by ``sample_weight``, and outputs; softmax
        cross-entropy sums over its outputs). "poisson" is half the Poisson
        deviance ``y log(y / mu) - y + mu`` of the mean ``mu = exp(z)`` (log
        link; targets must be nonnegative), "huber" is PyTorch's ``HuberLoss``
        (``0.5 x**2`` for ``|x| <= huber_delta``, ``huber_delta * (|x| -
        huber_delta / 2)`` beyond, ``x = a - y``), "mae" the absolute error
        ``|a - y|`` (its gradient is 0 where ``a == y``, as PyTorch's).
        Aliases: "l1", "absolute_error" and "mean_absolute_error" for "mae".
    dtype : {"float32", "float64"}
        Dtype of parameters, computation and outputs. Input of other real
        dtypes is converted.
    seed : int or None
        Seed of everything random: initial weights, dropout masks, the order
        of samples in each epoch and ``validation_split``. None draws one;
        ``seed`` then tells which.
    n_threads : int or None
        Threads of the compiled kernels, and of the chunks of a training step
        on a batch of 128+ rows of a small network (up to 65,536 parameters),
        which run side by side with BLAS serial. None follows
        ``OMP_NUM_THREADS`` (and threadpoolctl) at each call; -1 is every core;
        at most 65,536.
        Other matrix products run in the BLAS library, whose own thread pool is
        set with its own controls (threadpoolctl, ``OPENBLAS_NUM_THREADS``).
    backend : {"compiled", "reference"}
        "reference" runs the same network on the pure-NumPy oracle.
    l1, l2 : float, default 0
        Penalty ``l1 * sum|W| + l2 * sum W**2`` over every layer's weights,
        added to the loss and its gradient (a ``Dense`` may set its own).
    regularize_biases : bool, default False
        Apply the penalties (and AdamW's decoupled decay) to biases too.
    dropout : float or sequence of float, default 0
        Inverted-dropout rate of the hidden layers' outputs during training,
        one value for all or one per hidden layer (a ``Dense`` with its own
        nonzero rate keeps it).
    weight_init, bias_init : Initializer, str or None
        Initializers of layers that do not set their own
        (``fastwb.initializers``); None: He-normal for the ReLU family
        (relu, leaky_relu, elu, gelu, softplus, swish), LeCun-normal for
        selu, Glorot-uniform otherwise, and zero biases.
    huber_delta : float or None
        Where the huber loss turns from square to linear: finite and > 0, 1.0
        when None. Only the huber loss takes one.

    Examples
    --------
    >>> import numpy as np, fastwb
    >>> net = fastwb.Network([4, 8, 3], loss="softmax_cross_entropy", seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    >>> net.predict(X).shape
    (5, 3)
    >>> loss = net.train_step(X, np.array([0, 1, 2, 1, 0]), fastwb.SGD(lr=0.1))
    >>> net.layers[0].weights.shape, net.layers[0].bias.shape
    ((4, 8), (8,))
    """

    def __init__(self, sizes: Sequence, activation: str = "relu",
                 output_activation: str | None = None, loss: str = "mse",
                 dtype="float32", seed: int | None = None, n_threads: int | None = None,
                 backend: str = "compiled", l1: float = 0.0, l2: float = 0.0,
                 regularize_biases: bool = False, dropout=0.0, weight_init=None,
                 bias_init=None, huber_delta: float | None = None):
        self.loss_name = resolve_loss(loss)
        #: Huber's delta (None for the other losses)
        self.huber_delta = check_huber_delta(self.loss_name, huber_delta)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        activation = resolve_activation(activation)     # checked even with no hidden layer
        if output_activation is not None:
            output_activation = resolve_activation(output_activation, output=True)
        layers = self._layers_from(sizes)
        widths = [layers[0].n_in] + [layer.n_out for layer in layers]
        widths = _validation.check_sizes(widths)
        activations = []
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            name = layer.activation
            if name is None and last:
                name = output_activation or OUTPUT_ACTIVATION[self.loss_name]
            elif name is None:
                name = activation
            activations.append(resolve_activation(name, output=last))
        check_output_activation(self.loss_name, activations[-1], widths[-1])

        self.dtype = _resolve_dtype(dtype)
        # parameters, gradients and a copy the user may take
        _validation.check_allocation(
            3 * n_parameters(widths) * self.dtype.itemsize,
            f"the parameters and gradients of a network of layer sizes {widths} "
            f"({n_parameters(widths):,} {self.dtype.name} parameters)")
        self._n_threads = _validation.check_n_threads(n_threads)
        # saved as asked, not as resolved: -1 means every core of the machine that loads it
        self._n_threads_asked = None if n_threads is None else int(n_threads)
        self.seed = initializers.resolve_seed(seed)
        weight_init = initializers.resolve(weight_init, "weight_init")
        bias_init = initializers.resolve(bias_init, "bias_init")
        self._inits = tuple((layer.weight_init or weight_init, layer.bias_init or bias_init)
                            for layer in layers)
        self._parameters = initializers.initial_parameters(
            widths, activations, self.dtype, self.seed, [w for w, _ in self._inits],
            [b for _, b in self._inits])
        l1, l2 = _penalty(l1, "l1"), _penalty(l2, "l2")
        self.l1 = tuple(l1 if layer.l1 is None else layer.l1 for layer in layers)
        self.l2 = tuple(l2 if layer.l2 is None else layer.l2 for layer in layers)
        if not isinstance(regularize_biases, (bool, np.bool_)):
            raise TypeError(f"regularize_biases must be a bool, got {regularize_biases!r}")
        self.regularize_biases = bool(regularize_biases)
        self.dropout = self._dropout_rates(dropout, layers)
        for layer, (W, b), name in zip(layers, layer_views(self._parameters, widths), activations):
            layer._bind(W, b, name)
        self.sizes = tuple(widths)
        self.activations = tuple(activations)
        self.backend = backend
        self._layers = tuple(layers)
        options = dict(l1=self.l1, l2=self.l2, regularize_biases=self.regularize_biases,
                       dropout=self.dropout, seed=self.seed)
        if self.huber_delta is not None:
            options["huber_delta"] = self.huber_delta
        if backend == "compiled":
            self._engine = Engine(widths, activations, self.loss_name, self._parameters,
                                  self._n_threads, **options)
        else:
            self._engine = ReferenceEngine(widths, activations, self.loss_name, self._parameters,
                                           **options)
        self.optimizer: Optimizer | None = None
        self.stop_training = False

    @staticmethod
    def _dropout_rates(dropout, layers) -> tuple:
        """Each layer's dropout rate: its own when nonzero, else the network's."""
        n_hidden = len(layers) - 1
        if isinstance(dropout, (list, tuple, np.ndarray)):
            if len(dropout) != n_hidden:
                raise ValueError(f"dropout needs one rate per hidden layer ({n_hidden}), got "
                                 f"{len(dropout)}")
            rates = [_dropout(rate) for rate in dropout]
        else:
            rates = [_dropout(dropout)] * n_hidden
        if layers[-1].dropout:
            raise ValueError("dropout on the output layer would drop predictions; put it on "
                             "hidden layers")
        return tuple([layer.dropout or rate for layer, rate in zip(layers, rates)] + [0.0])

    @staticmethod
    def _layers_from(sizes) -> list:
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of ints or of Dense layers, got {sizes!r}")
        items = list(sizes)
        if items and all(isinstance(item, Dense) for item in items):
            for before, after in zip(items[:-1], items[1:]):
                if before.n_out != after.n_in:
                    raise ValueError(f"{before!r} outputs {before.n_out} values but the next "
                                     f"layer {after!r} takes {after.n_in}")
            return items
        if any(isinstance(item, Dense) for item in items):
            raise TypeError("sizes must be all ints or all Dense layers, not a mix")
        widths = _validation.check_sizes(items)
        return [Dense(k, m) for k, m in zip(widths[:-1], widths[1:])]

    # --- parameters ---------------------------------------------------------------

    @property
    def layers(self) -> tuple:
        """The ``Dense`` layers, input side first."""
        return self._layers

    @property
    def parameters(self) -> np.ndarray:
        """All weights and biases in one flat, writable array (layer by layer, W then b)."""
        return self._parameters

    @parameters.setter
    def parameters(self, value) -> None:
        self._parameters[...] = _validation.check_assignment(
            value, self._parameters.shape, self.dtype, "parameters")

    @property
    def n_parameters(self) -> int:
        """Number of weights plus biases."""
        return self._parameters.size

    @property
    def n_threads(self) -> int | None:
        """Threads of the compiled kernels (None: follow OpenMP's setting)."""
        return self._n_threads or None

    # --- the calls ----------------------------------------------------------------

    def predict(self, X, *, logits: bool = False) -> np.ndarray:
        """Output-layer activations for a batch ``(n, n_in)`` or one sample ``(n_in,)``.

        Every call that takes ``X`` also takes a scipy.sparse matrix or array,
        which is never made dense (see README, "Sparse input").

        Returns shape ``(n, n_out)``, or ``(n_out,)`` for one sample: class
        probabilities for softmax cross-entropy, sigmoid probabilities for binary
        cross-entropy, the regression outputs for MSE. With ``logits=True`` the
        output layer's pre-activations z instead (before its softmax, sigmoid or
        other activation), from which log-probabilities stay finite where a
        probability rounds to 0.
        """
        return self._engine.predict(X, logits)

    def loss(self, X, y, sample_weight=None) -> float:
        """Mean loss over the batch, plus the weight penalty (``l1``, ``l2``).

        ``y`` is a float array ``(n, n_out)`` (``(n,)`` when ``n_out`` is 1); for
        softmax cross-entropy also integer class labels ``(n,)``. MSE averages
        over samples and outputs, as PyTorch and Keras do. With
        ``sample_weight`` (n,) the mean over samples is weighted:
        ``sum w_i l_i / sum w_i``. Dropout is off.
        """
        return self._engine.loss(X, y, sample_weight)

    def gradients(self, X, y, sample_weight=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(dW, db)`` of ``loss`` for every layer, shaped like ``(weights, bias)``."""
        return layer_views(self._engine.gradients(X, y, sample_weight), self.sizes)

    def loss_and_gradients(self, X, y, sample_weight=None) -> tuple[float, np.ndarray]:
        """``(loss, gradient)`` from one forward and backward pass: ``loss`` and
        the flat gradient laid out like ``parameters`` (what ``gradients`` gives,
        flat), for optimizers such as L-BFGS that want both."""
        return self._engine.loss_and_gradients(X, y, sample_weight)

    def train_step(self, X, y, optimizer: Optimizer, sample_weight=None) -> float:
        """One optimisation step on the batch (X, y); returns ``loss`` before the update.

        Forward pass (with dropout), loss, backpropagation and update run in one
        compiled call. A non-finite loss, or an update that would leave a
        parameter NaN or infinite, raises ``FloatingPointError`` and leaves the
        parameters and the optimizer as they were.
        """
        rule = self._update_rule(optimizer)
        loss, status = self._engine.train_step(X, y, sample_weight, rule, optimizer.current_lr)
        if status:                  # not DONE; one test of an int on the way of every step
            raise _step_error(status, loss)
        return loss

    def _update_rule(self, optimizer: Optimizer):
        """``optimizer``'s update rule for this network; a TypeError for anything
        that is not a fastwb optimizer."""
        try:        # cheaper than isinstance against an abstract base class
            return optimizer.rule_for(self)
        except AttributeError:
            raise TypeError(f"optimizer must be a fastwb optimizer such as fastwb.Adam, "
                            f"got {optimizer!r}") from None

    def step_gradient(self, X, y, optimizer: Optimizer, sample_weight=None, *,
                      mask_row0: int = 0) -> tuple[float, np.ndarray]:
        """``(loss, gradient)`` of the batch in training mode, changing nothing:
        what ``train_step(X, y, optimizer)`` would compute before its update.

        Dropout is on, with the masks of ``optimizer``'s next step (they depend
        on the network's seed, the step count and each row's place in the
        step's batch); the gradient is flat, laid out like ``parameters``, the
        mean over the batch (weighted by ``sample_weight``) plus the penalties'
        part, as ``loss_and_gradients`` gives it. So
        ``optimizer.apply_gradients(net, net.step_gradient(X, y, optimizer)[1])``
        is ``net.train_step(X, y, optimizer)``, bit for bit: for loops that
        combine gradients themselves, e.g. with an allreduce
        (``fastwb.distributed`` does).

        Parameters
        ----------
        mask_row0 : int
            Where these rows start in the step's whole batch when they are a
            part of it (another process holding the other rows): row ``i``
            gets the dropout masks of row ``mask_row0 + i``, so the parts'
            gradients, weighted by their sample weights' totals (their row
            counts without weights), average to the whole batch's.
        """
        rule = self._update_rule(optimizer)
        mask_row0 = _validation.as_int(mask_row0, "mask_row0")
        # the masks' counter is (mask_row0 + row) * width in 64 bits
        if mask_row0 > 2**62 // max(self.sizes):
            raise ValueError(f"mask_row0 must be at most 2**62 // {max(self.sizes)} (the widest "
                             f"layer), got {mask_row0}")
        return self._engine.step_gradient(X, y, sample_weight, rule, mask_row0)

    def apply_gradients(self, gradients, optimizer: Optimizer) -> None:
        """One step of ``optimizer`` from gradients you computed (see
        ``Optimizer.apply_gradients``, which calls this).

        Raises
        ------
        FloatingPointError
            If the update would leave a parameter NaN or infinite; nothing changes.
        """
        rule = optimizer.rule_for(self)
        if isinstance(gradients, (list, tuple)) and gradients \
                and isinstance(gradients[0], (list, tuple)):
            gradients = flat_from_layers(gradients, self.sizes)
        flat = _validation.check_assignment(gradients, self._parameters.shape, self.dtype,
                                            "gradients")
        self._apply_flat_gradient(np.ascontiguousarray(flat), optimizer, rule)

    def _apply_flat_gradient(self, flat: np.ndarray, optimizer: Optimizer, rule) -> None:
        """``apply_gradients`` of a gradient already checked: contiguous, of the
        parameters' size and dtype (fastwb.distributed's, every step)."""
        status = self._engine.apply_gradients(flat, rule, optimizer.current_lr)
        if status == FitStatus.OVERFLOW:
            raise FloatingPointError("the update would have left parameters NaN or infinite, "
                                     "so it was not applied (try a smaller learning rate or "
                                     "clip_norm)")

    def training_gradient(self) -> np.ndarray | None:
        """The loss gradient (without the penalties' part) of the last minibatch
        that ``train_step`` or ``fit`` trained on, laid out like ``parameters``
        (a copy), or None when it was not computed: before training, after a
        step whose loss was not finite, or when another call (``gradients``,
        ``apply_gradients``) has run since. A step refused because its update
        would overflow did compute it: it is that step's gradient. After each ``fit`` epoch it is the epoch's last
        minibatch's, with its dropout masks, at the parameters before its update."""
        return self._engine.training_gradient()

    def activation_statistics(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Per layer, on the rows of ``X``: the fraction of dead units (ReLU layers:
        output 0 for every row; NaN for other activations) and the mean
        activation. X is checked as ``predict`` checks it."""
        return self._engine.activation_statistics(X)

    def fit(self, X, y, optimizer: Optimizer | str | None = None, epochs: int = 10,
            batch_size: int = 32, shuffle: bool = True, validation_data=None,
            validation_split: float = 0.0, early_stopping: bool = False, patience: int = 10,
            min_delta: float = 1e-4, restore_best_weights: bool = True, sample_weight=None,
            class_weight=None, callbacks=(), verbose: int = 0, monitor: str | None = None,
            mode: str = "auto") -> History:
        """Train for ``epochs`` passes over (X, y) in minibatches; returns a ``History``.

        Each epoch runs in one compiled call without the GIL: shuffle (by the
        network's seed and the epoch number), slice minibatches (the last one
        may be smaller), forward, backward, update, accumulate the loss.
        Python runs only between epochs: validation, schedule, callbacks,
        progress, early stopping. Training continues from the current weights
        and optimizer state (a warm start).

        Parameters
        ----------
        X, y : array-like
            As for ``loss``. X may be a scipy.sparse matrix or array: it stays
            sparse, each minibatch's rows picked from it by index.
        optimizer : Optimizer, str or None
            An optimizer, or the name of one with its defaults ("sgd",
            "rmsprop", "adagrad", "adam", "adamw"). None continues with the
            optimizer of the previous ``fit`` or ``partial_fit``, or starts
            ``Adam()``. It is kept as ``self.optimizer``.
        epochs, batch_size : int
        shuffle : bool
            Reshuffle the samples every epoch.
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val)
            Scored after every epoch: ``val_loss``, and ``val_accuracy`` for
            classification losses.
        validation_split : float in [0, 1)
            Hold out this fraction of (X, y), chosen at random by the seed.
        early_stopping : bool
            Stop when ``monitor`` has not improved by more than ``min_delta``
            for ``patience`` epochs, then with ``restore_best_weights`` go back
            to the best epoch's parameters (``fastwb.EarlyStopping``, run after
            ``callbacks``). An epoch that diverges also ends the fit there,
            with a ``RuntimeWarning``, once an epoch has completed.
        monitor : str or None
            The metric early stopping watches: ``val_loss`` (``loss`` without
            validation) by default, or any key of the logs, including one that
            a callback adds (such as "val_f1").
        mode : {"auto", "min", "max"}
            Its direction; "auto" as ``fastwb.EarlyStopping`` decides it from
            the name.
        sample_weight : array (n,)
            Weight of each sample in the loss.
        class_weight : "balanced", dict or None
            Weight of each class in training (multiplies ``sample_weight``);
            "balanced" is ``n / (n_classes * count)``, for imbalanced data such
            as fraud. Validation losses are not class-weighted.
        callbacks : Callback, callable ``f(epoch, logs)`` or a sequence of them
            ``epoch`` is the epoch's number, counted from 1 over the
            optimizer's life (``History.epoch`` lists the same numbers).
        verbose : {0, 1, 2}
            1: a progress bar with the loss and throughput; 2: a line per epoch.

        Raises
        ------
        FloatingPointError
            When a loss is NaN or infinite (without early stopping, or in its
            first epoch); the parameters and optimizer state are then those of
            the last update that left every parameter finite.
        KeyboardInterrupt
            On Ctrl-C, after the batch that was running: the network is consistent.

        Examples
        --------
        >>> import numpy as np, fastwb
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(256, 2))
        >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)
        >>> net = fastwb.Network([2, 16, 2], loss="softmax_cross_entropy", seed=0)
        >>> history = net.fit(X, y, fastwb.Adam(lr=0.01), epochs=30, validation_split=0.25)
        >>> history["loss"][-1] < history["loss"][0], len(history)
        (True, 30)
        """
        optimizer = self._optimizer(optimizer)
        return training.fit(self, self._engine, X, y, optimizer, epochs, batch_size, shuffle, validation_data,
                            validation_split, early_stopping, patience, min_delta,
                            restore_best_weights, sample_weight, class_weight, callbacks,
                            verbose, monitor, mode)

    def partial_fit(self, X, y, optimizer: Optimizer | str | None = None, batch_size: int = 32,
                    shuffle: bool = True, sample_weight=None, class_weight=None) -> float:
        """One epoch over (X, y), continuing the previous training; returns its mean loss.

        For data that arrives in parts or does not fit in memory at once. The
        optimizer (moments, step count, schedule) carries over between calls.
        """
        history = self.fit(X, y, optimizer, epochs=1, batch_size=batch_size, shuffle=shuffle,
                           sample_weight=sample_weight, class_weight=class_weight)
        return history["loss"][-1]

    def summary(self, X=None) -> Summary:
        """A per-layer table of the weights and biases; with ``X``, of the activations too.

        Per layer: shape, parameter count, activation, the mean, std, min, max
        and L2 norm of the weights and of the bias, and the correlation across
        the layer's units of each unit's mean incoming weight with its bias.
        Given data ``X`` (n, n_in), also the fraction of dead ReLU units (0 on
        every row of X) and each layer's mean activation. ``print`` it for the
        table; ``.records`` is a list of dicts, ``.to_frame()`` a pandas DataFrame.

        Examples
        --------
        >>> import fastwb
        >>> net = fastwb.Network([2, 3, 1], seed=0)
        >>> net.summary().records[0]["shape"], net.summary().records[0]["bias_norm"]
        ((2, 3), 0.0)
        """
        return inspection.summary(self, X)

    def set_penalties(self, l1: Sequence[float], l2: Sequence[float]) -> None:
        """Per-layer penalties ``l1 * sum|W| + l2 * sum W**2`` from now on, one
        value per layer each (the scikit-learn estimators scale ``alpha`` by
        each fit's batch size)."""
        l1 = tuple(_penalty(value, "l1") for value in l1)
        l2 = tuple(_penalty(value, "l2") for value in l2)
        self._engine.set_penalties(l1, l2)
        self.l1, self.l2 = l1, l2

    def _optimizer(self, optimizer: Optimizer | str | None) -> Optimizer:
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else Adam()
        self.optimizer = optimizers.resolve(optimizer)
        return self.optimizer

    # --- configuration and copies -----------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """What this network is, JSON-able: ``Network.from_config`` rebuilds it.

        Each layer's config holds its effective settings (activation,
        initializers, dropout, penalties), whether they came from the layer or
        from the network. The parameters are not part of it (see
        ``fastwb.save`` for those).

        Examples
        --------
        >>> import fastwb
        >>> net = fastwb.Network([3, 4, 2], loss="softmax_cross_entropy", seed=1, l2=0.01)
        >>> copy = fastwb.Network.from_config(net.get_config())
        >>> bool((copy.parameters == net.parameters).all()), copy.layers[0].l2
        (True, 0.01)
        """
        layers = []
        for i, (layer, (weight_init, bias_init)) in enumerate(zip(self._layers, self._inits)):
            config = layer.get_config()
            config.update(weight_init=_init_config(weight_init), bias_init=_init_config(bias_init),
                          dropout=self.dropout[i], l1=self.l1[i], l2=self.l2[i])
            layers.append(config)
        config = {"layers": layers, "loss": self.loss_name, "dtype": self.dtype.name,
                  "seed": self.seed, "n_threads": self._n_threads_asked, "backend": self.backend,
                  "regularize_biases": self.regularize_biases}
        if self.huber_delta is not None:        # only huber has one; older files lack it
            config["huber_delta"] = self.huber_delta
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Network:
        """A new network from what ``get_config`` returned: the same layers,
        settings and seed, so the same initial parameters."""
        layers = cls._config_layers(config)
        return cls(layers, **{k: v for k, v in config.items() if k != "layers"})

    @staticmethod
    def _config_layers(config: Mapping[str, Any]) -> list:
        """The ``Dense`` layers of a network config, after checking its keys."""
        config = _validation.check_config(config, _CONFIG_KEYS, "a Network")
        layers = config.get("layers")
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError(f"a Network config needs 'layers', a nonempty list of Dense "
                             f"configs, got {_validation.shown(layers)}")
        return [Dense.from_config(layer) for layer in layers]

    # --- state ------------------------------------------------------------------

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """This network as a JSON-able config and named arrays (copies): what
        ``fastwb.save``, pickle and ``copy.deepcopy`` store; ``from_state``
        rebuilds it.

        The config is ``{"network": self.get_config(), "optimizer": ...}``; the
        optimizer part (None without ``self.optimizer``) holds its config,
        whether it has made its state for this network ("bound"), its
        ``step``, ``epoch`` and ``samples_seen``, and its schedule's state. The
        arrays are "parameters" and the optimizer's buffers as "optimizer/<name>".

        Raises
        ------
        ValueError
            If a parameter is NaN or infinite, or the optimizer or its schedule is
            not one fastwb can rebuild (a user-written class), or belongs to
            another network.
        """
        if not np.isfinite(self._parameters).all():
            raise ValueError("the network's parameters hold NaN or infinity (training diverged, "
                             "or they were set so); fastwb saves finite parameters only")
        config = {"network": self.get_config(), "optimizer": None}
        arrays = {"parameters": self._parameters.copy()}
        opt = self.optimizer
        if opt is not None:
            if not optimizers.rebuildable(opt):
                raise ValueError(f"the network's optimizer {opt!r} cannot be saved: only "
                                 "fastwb's own optimizers and schedules can be rebuilt")
            bound = opt.bound
            if bound and opt.network is not self:
                raise ValueError(f"the network's optimizer ({type(opt).__name__}) holds the "
                                 "state of another network; give each network its own "
                                 "optimizer, or reset() it")
            state = opt.get_state()
            config["optimizer"] = {"config": opt.get_config(), "bound": bound,
                                   "step": state["step"], "epoch": state["epoch"],
                                   "samples_seen": state["samples_seen"],
                                   "schedule_state": state["schedule"]}
            arrays.update((f"optimizer/{name}", values)
                          for name, values in state["buffers"].items())
        return config, arrays

    @classmethod
    def from_state(cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Network:
        """The network (and its optimizer, as ``optimizer``) that ``get_state``
        described; training it continues exactly as the original would have.

        Raises
        ------
        ValueError, TypeError
            If the config or arrays do not describe a valid network: wrong keys,
            settings the constructors refuse, arrays missing, extra, or of the
            wrong shape or dtype.
        """
        _validation.check_keys(config, _STATE_KEYS, "the network state")
        if not isinstance(arrays, Mapping):
            raise TypeError(f"arrays must be a dict of NumPy arrays, got "
                            f"{type(arrays).__name__}")
        layers = cls._config_layers(config["network"])
        count = n_parameters([layers[0].n_in] + [layer.n_out for layer in layers])
        parameters = _state_array(arrays, "parameters", (count,))  # before allocating the network
        net = cls.from_config(config["network"])
        net.parameters = _same_dtype(parameters, net.dtype, "parameters")
        used = {"parameters"}
        if config["optimizer"] is not None:
            used |= net._restore_optimizer(config["optimizer"], arrays)
        unexpected = set(arrays) - used
        if unexpected:
            raise ValueError(f"the state has array(s) {sorted(unexpected)} that this network "
                             "and optimizer do not use")
        return net

    def _restore_optimizer(self, state: Mapping[str, Any], arrays: Mapping) -> set[str]:
        """Rebuild the optimizer ``get_state`` described into ``self.optimizer``;
        returns the names of the arrays it used."""
        _validation.check_keys(state, _OPTIMIZER_KEYS, "the optimizer state")
        opt = optimizers.from_config(state["config"])
        if not isinstance(state["bound"], bool):
            raise TypeError(f"the optimizer state's 'bound' must be a bool, got "
                            f"{state['bound']!r}")
        buffers = {}
        if state["bound"]:
            for name in opt.buffer_names:
                key = f"optimizer/{name}"
                buffers[name] = _same_dtype(_state_array(arrays, key, self._parameters.shape),
                                            self.dtype, key)
        opt.set_state({"step": state["step"], "epoch": state["epoch"],
                       "samples_seen": state["samples_seen"], "buffers": buffers,
                       "schedule": state["schedule_state"]})
        if state["bound"]:
            opt.rule_for(self)
        self.optimizer = opt
        return {f"optimizer/{name}" for name in buffers}

    def __reduce__(self):
        # pickle and copy.deepcopy go through the same state as fastwb.save, so
        # a copy (joblib, GridSearchCV(n_jobs>1)) carries its optimizer along
        return _from_state, self.get_state()

    def __repr__(self) -> str:
        return (f"Network({list(self.sizes)}, activations={list(self.activations)}, "
                f"loss={self.loss_name!r}, "
                + (f"huber_delta={self.huber_delta!r}, " if self.huber_delta is not None else "")
                + f"dtype={self.dtype.name!r}, backend={self.backend!r})")


def _step_error(status: int, loss: float) -> FloatingPointError:
    """Why train_step applied no update."""
    if status == FitStatus.OVERFLOW:
        return FloatingPointError(
            f"the loss was {loss}, but the update would have left parameters NaN or "
            "infinite, so it was not applied: training diverged (try a smaller learning "
            "rate, clip_norm, or scaling the inputs)")
    return FloatingPointError(
        f"the loss is {loss}, so the step was not applied: the parameters hold NaN or "
        "infinity, or training diverged (try a smaller learning rate)")


def _from_state(config, arrays) -> Network:
    """``Network.from_state``, for pickle."""
    return Network.from_state(config, arrays)


def _state_array(arrays: Mapping, name: str, shape: tuple) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"the state has no array {name!r}")
    value = arrays[name]
    if not isinstance(value, np.ndarray):
        raise TypeError(f"the state's {name!r} must be a NumPy array, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(f"the state's {name!r} has shape {value.shape}; this network needs "
                         f"{shape}")
    return value


def _same_dtype(value: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    # converting would round float64 values into a float32 network: not the saved state
    if value.dtype != dtype:
        raise ValueError(f"the state's {name!r} has dtype {value.dtype}; this network needs "
                         f"{dtype}")
    return value
