"""scikit-learn drop-ins: ``MLPClassifier`` and ``MLPRegressor`` on the compiled core.

They take the constructor parameters of ``sklearn.neural_network``'s estimators,
with the same defaults and meanings, set the same fitted attributes, and train
a ``fastwb.Network``: each epoch of "adam" or "sgd" is one compiled call, and
"lbfgs" runs ``scipy.optimize`` on the compiled loss and gradient.

Where the two differ, and why:

* ``dtype`` (a fastwb extra) defaults to float32, fastwb's precision, which
  trains about twice as fast; ``dtype=None`` follows the input as scikit-learn
  does (float32 input stays float32, anything else becomes float64). In
  float32 a sample weight of 2 and a repeated sample agree only to float32's
  rounding (~1e-7), beyond the tolerance of scikit-learn's two sample-weight
  equivalence checks: the estimators pass all of its estimator checks in
  float64, and all but those two in float32.
* fastwb's losses average over outputs where scikit-learn's sum (logistic and
  squared error); the estimators rescale the learning rate, ``epsilon`` and
  ``alpha`` so the updates are scikit-learn's, and report scikit-learn's loss.
* For several regression targets scikit-learn's gradient is that of the
  squared error summed over outputs, but its ``loss_`` averages it over them
  (scikit-learn issue 8349). fastwb follows the gradient and reports
  scikit-learn's ``loss_``; its "lbfgs" minimises the summed loss, the one the
  gradient belongs to, where scikit-learn's line search uses the averaged one.
* scikit-learn divides ``alpha`` by each batch's sum of sample weights (its
  size, unweighted); fastwb divides it by ``batch_size`` times the mean sample
  weight of the training data: the same for full unweighted batches and for
  one batch an epoch, and a slightly weaker penalty on a smaller last batch.
* The ``momentum`` update is PyTorch's form, which equals scikit-learn's at a
  constant rate; Adam adds ``epsilon`` to the bias-corrected root, scikit-learn
  to the raw one (a difference of order ``epsilon``). "sgd" takes a momentum
  below 1 (scikit-learn also accepts 1).
* Samples are shuffled by fastwb's counter-based generator, seeded from
  ``random_state``, so the order of samples differs from scikit-learn's. The
  initial weights and the early-stopping hold-out are scikit-learn's: the same
  ``random_state`` gives the same ones.
* ``learning_rate="invscaling"`` counts the samples of the current ``fit``; in
  a ``warm_start`` refit scikit-learn counts those of the earlier fits too.
* ``MLPClassifier.partial_fit`` is absent for "lbfgs" as in scikit-learn;
  ``MLPRegressor.partial_fit`` with "lbfgs" runs a whole lbfgs fit from the
  current weights, as scikit-learn's does.
* ``sample_weight`` must be nonnegative and not all zero.
* ``coefs_`` and ``intercepts_`` are views into the network's one parameter
  buffer, which stays their owner: writing into them changes the network, and
  a list, or an array in it, that the user replaced is checked (shape, finite
  values) and copied into the buffer at the next use (``predict``, ``fit``
  with ``warm_start``, ``partial_fit``, pickling, ``network``), as scikit-learn
  uses its lists afresh. So a replaced array is rounded to the network's
  ``dtype`` (scikit-learn computes in the array's), and NaN or a wrong shape is
  refused with a ``ValueError`` naming ``coefs_[i]``, where scikit-learn
  predicts NaN or fails inside NumPy. Set on an estimator never fitted, they
  are the starting point of ``partial_fit`` and of a ``warm_start`` fit, where
  scikit-learn fails (AttributeError) for want of its other records.
* ``predict_log_proba`` is computed from the output layer's logits
  (log-softmax, log-sigmoid), finite where a probability rounds to 0; it
  equals ``log(predict_proba)`` wherever that is finite and exact.
* A ``warm_start`` refit with ``early_stopping`` that never beats the best
  validation score of the earlier fit ends with that fit's best weights; in
  scikit-learn those arrays are the ones the refit trains in place, so it ends
  with the last weights. Switching ``early_stopping`` on or off between
  ``warm_start`` fits works in fastwb (scikit-learn fails: it lacks the records).
* ``warm_start`` and ``partial_fit`` refuse (``ValueError``) parameters that
  would need another network: other ``hidden_layer_sizes`` or ``activation``
  (and the extras ``dtype``, ``dropout``, ``n_threads``). scikit-learn accepts
  them silently: it keeps the earlier layer sizes, and applies a new
  activation to weights trained for the old one.
* ``MLPRegressor(loss="poisson")`` refuses negative targets with a ValueError;
  scikit-learn trains on them and reports a NaN loss.

* With ``early_stopping=True`` a diverging loss ends training as in
  scikit-learn (NaN losses and validation scores recorded up to
  ``n_iter_no_change`` or ``max_iter``, then the best weights kept), but the
  epochs after the divergence are recorded without being trained (they could
  change nothing) and with one ``RuntimeWarning`` in place of NumPy's overflow
  warnings; fastwb callbacks and scikit-learn's epoch tasks do not see them.

Extras beyond scikit-learn: ``activation`` also takes "leaky_relu", "elu",
"selu", "gelu", "softplus" and "swish" (or "silu"), and a list or tuple of one
name per hidden layer. Every choice starts from scikit-learn's initial
weights (a list takes "logistic"'s narrower bound only when every entry is
"logistic"); for "selu" their variance 2 / (fan_in + fan_out) is LeCun's
1 / fan_in where the fans are equal. ``dtype``, ``dropout`` (a rate for all hidden
layers, or one per hidden layer), ``class_weight`` (classifier), ``optimizer``
("adamw" with its decoupled weight decay of 0.01 on top of ``alpha``,
"rmsprop", "adagrad", or "adam"/"sgd" regardless of ``solver``),
``n_threads``, and:

* ``MLPRegressor`` also takes ``loss="huber"`` (PyTorch's ``HuberLoss``:
  ``0.5 x**2`` for ``|x| <= huber_delta``, ``huber_delta * (|x| - huber_delta / 2)``
  beyond, with ``huber_delta``, default 1.0) and ``loss="absolute_error"``
  (``|x|``, its gradient 0 at ``x = 0``), both on an identity output, summed over
  outputs and averaged over samples in ``loss_`` as scikit-learn's Poisson loss is.

* ``scoring``: the validation score of early stopping, as the ``scoring`` of
  scikit-learn's HistGradientBoosting estimators: a scorer name
  ("f1_macro", "neg_log_loss", ...) or a callable ``scorer(estimator, X, y)``;
  None (the default) keeps the MLP's own (accuracy, or R² for the regressor).
  ``validation_scores_`` and ``best_validation_score_`` hold its values. A
  callable is not saved by ``fastwb.save`` (a loaded estimator has None).
* a validation set: ``fit(X, y, sample_weight=None, *, X_val=None,
  y_val=None, sample_weight_val=None)``, as HistGradientBoosting's ``fit``
  takes it (with its checks and errors; it needs ``early_stopping=True``):
  early stopping scores it instead of holding out ``validation_fraction``
  of X, which then all trains. Not for "lbfgs" (which does not stop early).
* ``callbacks``: fastwb callbacks (``fastwb.Callback``, or functions
  ``f(epoch, logs)``), called after every epoch of the stochastic solvers,
  after the estimator's records of the epoch (``loss_curve_``,
  ``validation_scores_``, with the validation score in the logs as
  "val_score") and before its decision to stop, which so sees what they did
  (a metric they add to the logs, ``network.stop_training``).
* With scikit-learn 1.9 or later, scikit-learn's callback protocol
  (``sklearn.callback``): ``set_callbacks(ProgressBar(), ScoringMonitor(...))``
  makes each ``fit`` or ``partial_fit`` a task whose subtasks are its epochs
  ("epoch"; "lbfgs-iter" for lbfgs, as scikit-learn's LogisticRegression),
  passed the training part of the data; a callback returning True from
  ``on_fit_task_end`` stops training after that epoch (or iteration).

Sparse ``X`` (as scikit-learn, CSR or CSC, and the other scipy.sparse formats,
which scikit-learn's checks convert to CSR) is never made dense: it is checked
once per ``fit`` into CSR rows with 64-bit indices (``fastwb._sparse``), and the
first layer multiplies those rows.

Sizes are checked before anything is allocated: a ``hidden_layer_sizes`` whose
network would not fit in the memory this process may use (the machine's, or a
lower ``ulimit -v`` or container limit) raises ``MemoryError`` naming it, at once.

``fastwb.load`` checks an estimator's file for consistency: its classes must be
those its network's outputs stand for, its fitted attributes those its network
implies, and it may hold no array it does not use; a file that disagrees
raises ``fastwb.saving.ModelFileError``.

skops: ``skops.io.dump`` and ``skops.io.load`` work on the estimators, fitted or
not, alone or in a ``Pipeline``. The network travels as its state, a JSON-able
config and plain arrays (as pickle and ``fastwb.save`` have it too), so the
one type that ``skops.io.get_untrusted_types`` lists is the estimator's class,
``"fastwb.sklearn.MLPClassifier"`` or ``"fastwb.sklearn.MLPRegressor"``; pass
it as ``trusted`` after checking the file's origin. ``callbacks``, which are
code, add their own types (a callback is saved without the network and data
that ``fit`` lent it)::

    skops.io.load("model.skops", trusted=["fastwb.sklearn.MLPClassifier"])
"""
from __future__ import annotations

import copy
import math
import numbers
import operator
import typing
import warnings
import zlib
from itertools import pairwise

import numpy as np
import scipy.optimize

from fastwb._estimator_params import check_fitted_scalars
from fastwb._estimator_params import decode as _decode
from fastwb._estimator_params import encode as _encode
from fastwb._estimator_params import text_array
from fastwb._optional import SKLEARN_REQUIREMENT, check_sklearn_version

try:
    from sklearn import get_config
    from sklearn import neural_network as _sklearn_mlp
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, check_scoring, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_array, check_random_state, column_or_1d
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                          check_classification_targets, type_of_target,
                                          unique_labels)
    from sklearn.utils.validation import (_check_sample_weight, check_consistent_length,
                                          check_is_fitted, validate_data)
except ImportError as error:        # pragma: no cover - depends on the installation
    if (error.name or "").split(".")[0] != "sklearn":
        raise                       # scikit-learn is there, but broken: its own error says how
    raise ImportError(f"fastwb.sklearn needs {SKLEARN_REQUIREMENT}", name="sklearn") from error
check_sklearn_version()
try:        # scikit-learn's verdict on an lbfgs result, shared by its estimators
    from sklearn.utils.optimize import _check_optimize_result
except ImportError:         # pragma: no cover - a private module that may move
    def _check_optimize_result(solver, result, max_iter=None, extra_warning_msg=None):
        n_iter = min(result.nit, max_iter)
        if result.status != 0:
            warnings.warn(f"{solver} failed to converge after {n_iter} iteration(s) "
                          f"(status={result.status}):\n{result.message}\n", ConvergenceWarning)
        return n_iter
try:        # scikit-learn's error for a bad parameter: a ValueError and a TypeError
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:         # pragma: no cover - a private module that may move
    class _InvalidParameterError(ValueError, TypeError):
        """A constructor parameter of the wrong type or value."""
    InvalidParameterError = _InvalidParameterError

try:        # scikit-learn's callback protocol (1.9 and later)
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:         # scikit-learn 1.7 and 1.8: fastwb's own callbacks only
    class CallbackSupportMixin:         # type: ignore[no-redef]
        """No ``set_callbacks``: this scikit-learn has no callback protocol."""

    def with_callbacks(method):
        return method

from fastwb import _sparse, _validation, initializers, optimizers
from fastwb._layout import n_parameters
from fastwb._validation import shown
from fastwb.callbacks import Callback
from fastwb.layers import Dense
from fastwb.network import Network
from fastwb.schedules import InverseScaling

__all__ = ["MLPClassifier", "MLPRegressor"]

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               # fastwb extras
               "leaky_relu": "leaky_relu", "elu": "elu", "selu": "selu", "gelu": "gelu",
               "softplus": "softplus", "swish": "swish", "silu": "swish"}
SOLVERS = ("lbfgs", "sgd", "adam")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
EXTRA_OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop", "adagrad")
#: MLPRegressor's losses (scikit-learn's, then fastwb's extras) by fastwb's names
REGRESSION_LOSSES = {"squared_error": "mse", "poisson": "poisson", "huber": "huber",
                     "absolute_error": "mae"}
_NO_CHANGE_LR = 1e-6          # scikit-learn's adaptive rate stops below this
_NETWORK_OPTIMIZER = "network.optimizer"    # a pickled estimator's optimizer: its network's
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))   # what prediction takes as it is
# targets that check_classification_targets accepts (~150 µs a call, as type_of_target,
# which it calls: it runs only for other targets, to raise its error)
_CLASSIFICATION_TARGETS = ("binary", "multiclass", "multilabel-indicator")


# --- parameters -----------------------------------------------------------------------

def _invalid(estimator, name: str, must: str, value) -> ValueError:
    # in scikit-learn's words
    return InvalidParameterError(f"The {name!r} parameter of {type(estimator).__name__} "
                                 f"must be {must}. Got {value!r} instead.")


def _real(est, name: str, low: float, high: float = math.inf, low_open=False,
          high_open=False) -> float:
    value = getattr(est, name)
    # the ignore below: numbers.Real declares only < and <= (as the ABC does), though
    # every real type (int, float, NumPy's) compares both ways
    inside = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
              and math.isfinite(value)
              and (value > low if low_open else value >= low)  # type: ignore[operator]
              and (value < high if high_open else value <= high))
    if not inside:
        interval = (("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]"))
        raise _invalid(est, name, f"a float in the range {interval}", value)
    return float(value)


def _integer(est, name: str, low: int = 1) -> int:
    value = getattr(est, name)
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) \
            or value < low:
        raise _invalid(est, name, f"an int in the range [{low}, inf)", value)
    return int(value)


def _flag(est, name: str) -> bool:
    value = getattr(est, name)
    if not isinstance(value, (bool, np.bool_)):
        raise _invalid(est, name, "an instance of 'bool'", value)
    return bool(value)


def _activations(est, n_hidden: int) -> list[str]:
    """The ``activation`` parameter as one scikit-learn name per hidden layer: a
    name for all, or (a fastwb extra) a list or tuple of one per hidden layer."""
    value = est.activation
    if isinstance(value, (list, tuple)):
        if len(value) != n_hidden or not all(isinstance(v, str) and v in ACTIVATIONS
                                             for v in value):
            raise _invalid(est, "activation", f"a str among {set(ACTIVATIONS)} or a list of "
                           f"{n_hidden} of them, one per hidden layer", value)
        return list(value)
    return [_option(est, "activation", ACTIVATIONS)] * n_hidden


def _option(est, name: str, options) -> str:
    value = getattr(est, name)
    if not isinstance(value, str) or value not in options:
        raise _invalid(est, name, f"a str among {set(options)}", value)
    return value


class _Settings:
    """The estimator's parameters, checked once per fit."""

    def __init__(self, est):
        hidden = est.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, numbers.Integral) else hidden
        if isinstance(hidden, str) or not hasattr(hidden, "__iter__") or not all(
                isinstance(h, numbers.Integral) and not isinstance(h, (bool, np.bool_))
                for h in hidden):
            raise _invalid(est, "hidden_layer_sizes", "an int or a sequence of ints",
                           est.hidden_layer_sizes)
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {list(hidden)}.")
        self.hidden = [int(h) for h in hidden]
        self.activation = _activations(est, len(self.hidden))
        self.solver = _option(est, "solver", SOLVERS)
        self.alpha = _real(est, "alpha", 0.0)
        if est.batch_size == "auto":
            self.batch_size = None
        else:
            self.batch_size = _integer(est, "batch_size")
        self.learning_rate = _option(est, "learning_rate", LEARNING_RATES)
        self.learning_rate_init = _real(est, "learning_rate_init", 0.0, low_open=True)
        self.power_t = _real(est, "power_t", 0.0)
        self.max_iter = _integer(est, "max_iter")
        self.shuffle = _flag(est, "shuffle")
        self.tol = _real(est, "tol", 0.0)
        self.warm_start = _flag(est, "warm_start")
        self.momentum = _real(est, "momentum", 0.0, 1.0)
        self.nesterovs_momentum = _flag(est, "nesterovs_momentum")
        self.early_stopping = _flag(est, "early_stopping")
        self.validation_fraction = _real(est, "validation_fraction", 0.0, 1.0, high_open=True)
        self.beta_1 = _real(est, "beta_1", 0.0, 1.0, high_open=True)
        self.beta_2 = _real(est, "beta_2", 0.0, 1.0, high_open=True)
        self.epsilon = _real(est, "epsilon", 0.0, low_open=True)
        if est.n_iter_no_change == np.inf:
            self.n_iter_no_change = math.inf
        else:
            self.n_iter_no_change = _integer(est, "n_iter_no_change")
        self.max_fun = _integer(est, "max_fun")
        seed = est.random_state
        if not (seed is None or isinstance(seed, np.random.RandomState)
                or (isinstance(seed, numbers.Integral) and 0 <= operator.index(seed) < 2 ** 32)):
            raise _invalid(est, "random_state", "an int in the range [0, 4294967295], an "
                           "instance of 'numpy.random.RandomState' or None", seed)
        if not isinstance(est.verbose, (bool, np.bool_)):
            _integer(est, "verbose", 0)
        if est.dtype is None:
            self.dtype = None
        else:
            try:
                self.dtype = np.dtype(est.dtype)
            except TypeError:
                self.dtype = None
            if self.dtype not in (np.float32, np.float64):
                raise _invalid(est, "dtype", "'float32', 'float64' or None", est.dtype)
        if est.optimizer is not None and est.optimizer not in EXTRA_OPTIMIZERS:
            raise _invalid(est, "optimizer", f"None or a str among {set(EXTRA_OPTIMIZERS)}",
                           est.optimizer)
        self.rule = est.optimizer or self.solver
        if self.rule == "sgd" and self.momentum == 1.0:
            raise _invalid(est, "momentum", "a float in the range [0.0, 1.0) for fastwb's sgd "
                           "(a momentum of 1 never forgets a gradient)", est.momentum)
        rates = est.dropout if isinstance(est.dropout, (list, tuple, np.ndarray)) else \
            [est.dropout]
        if not all(isinstance(rate, numbers.Real) and not isinstance(rate, (bool, np.bool_))
                   # numbers.Real declares only < and <=; real types compare both ways
                   and 0 <= rate < 1 for rate in rates):  # type: ignore[operator]
            raise _invalid(est, "dropout", "a float in the range [0.0, 1.0) or a sequence "
                           "of them, one per hidden layer", est.dropout)
        if self.rule == "lbfgs" and any(rates):
            raise ValueError("dropout needs a stochastic solver ('adam' or 'sgd'): "
                             "lbfgs takes exact full-batch gradients")
        self.dropout = est.dropout
        self.n_threads = est.n_threads
        callbacks = est.callbacks
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback) or callable(callbacks):
            callbacks = [callbacks]
        elif not isinstance(callbacks, (list, tuple)) or not all(
                isinstance(c, Callback) or callable(c) for c in callbacks):
            raise _invalid(est, "callbacks", "None, a fastwb Callback, a function "
                           "f(epoch, logs), or a list of them", est.callbacks)
        self.callbacks = list(callbacks)
        if not (est.scoring is None or isinstance(est.scoring, str) or callable(est.scoring)):
            raise _invalid(est, "scoring", "an instance of 'str', a callable or None",
                           est.scoring)
        self.scoring = est.scoring


# --- the per-epoch bookkeeping of scikit-learn ------------------------------------------

class _Epochs(Callback):
    """After each epoch, before the user's callbacks: scikit-learn's records (loss
    curve, ``n_iter_``, ``t_``, validation score and best weights, the count of
    epochs without improvement). The validation score also goes into the logs
    as "val_score". The decision to stop is ``stopper``'s, which runs after the
    user's callbacks (so that it follows what they see and do)."""

    def __init__(self, est, settings: _Settings, n_train: int, n_batches: int, validation,
                 scorer=None):
        self.est, self.settings = est, settings
        self.n_train, self.n_batches, self.validation = n_train, n_batches, validation
        self.scorer = scorer
        self.diverged = False       # the weights are NaN from here on (after_divergence)
        self.diverged_best = -math.inf      # the best score of NaN weights
        self.converged = False
        self.start_penalty = 0.0
        # fixed for the fit, and read after every one of its epochs
        self.scale, self.mean_over_outputs = est._scale, est._mean_over_outputs
        self.stopper = _Stopper(self)

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        if self.mean_over_outputs:
            self.start_penalty = self.est._penalty()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        est = self.est
        est.n_iter_ += 1
        est.loss_ = logs["loss"] / self.scale
        if self.mean_over_outputs and math.isfinite(est.loss_):
            # the epoch's loss is the mean of its batches' losses, each with the
            # penalty at that batch's weights: interpolated between the epoch's
            # ends (exact for one batch an epoch)
            end, start, n = est._penalty(), self.start_penalty, self.n_batches
            est.loss_ = est._mean_loss(est.loss_, start + (end - start) * (n - 1) / (2 * n))
        est.t_ += self.n_train
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        self._count_no_improvement()
        if self.validation:
            logs["val_score"] = est.validation_scores_[-1]

    def should_stop(self) -> bool:
        """scikit-learn's test after each epoch: stop, or (adaptive sgd) go on at a
        fifth of the rate, once ``n_iter_no_change`` epochs have not improved."""
        est, settings = self.est, self.settings
        if est._no_improvement_count <= settings.n_iter_no_change:
            return False
        what = "Validation score" if self.validation else "Training loss"
        message = (f"{what} did not improve more than tol={settings.tol:f} for "
                   f"{settings.n_iter_no_change} consecutive epochs.")
        if self._stop(message):
            self.converged = True
            return True
        est._no_improvement_count = 0
        return False

    def after_divergence(self, error: FloatingPointError) -> None:
        """What scikit-learn does when early stopping meets a diverging loss: its
        weights turn NaN and it goes on, recording NaN losses and the scores of NaN
        outputs (NaN, or for a classifier those of predicting ``classes_[0]``),
        until ``n_iter_no_change`` or ``max_iter`` ends it; fit then keeps the
        best finite weights. Those epochs change nothing, so they are recorded
        without being trained."""
        est, network = self.est, self.est._network
        warnings.warn(f"Training diverged in iteration {est.n_iter_ + 1}: the loss or the "
                      f"weights became NaN or infinite. As scikit-learn does with "
                      f"early_stopping=True, the remaining iterations record a NaN loss "
                      f"and fit keeps the weights of the best validation score. A smaller "
                      f"learning_rate_init or scaled inputs may help.", RuntimeWarning,
                      stacklevel=5)
        self.diverged = True
        finite = network.parameters.copy()
        network.parameters[...] = np.nan
        try:
            while est.n_iter_ < self.settings.max_iter:
                self.on_epoch_end(est.n_iter_, {"loss": math.nan})
                if self.should_stop():
                    break
        finally:
            network.parameters[...] = finite

    def _count_no_improvement(self) -> None:
        est, tol = self.est, self.settings.tol
        if self.validation:
            X_val, y_val, sw_val = self.validation
            score = est._score(X_val, y_val, sw_val, self.scorer)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            best = max(est.best_validation_score_, self.diverged_best)
            if score < best + tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > best:
                if self.diverged:
                    # NaN weights count as scikit-learn counts them, but never become
                    # the kept ones (scikit-learn would keep them, then fail on them)
                    self.diverged_best = score
                else:
                    est.best_validation_score_ = score
                    est._best_parameters = est._network.parameters.copy()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, est.loss_curve_[-1])

    def _stop(self, message: str) -> bool:
        """Whether to stop now, or (adaptive sgd) to go on at a fifth of the rate."""
        est, optimizer = self.est, self.est._optimizer
        adaptive = self.settings.learning_rate == "adaptive" and self.settings.rule == "sgd"
        if not adaptive or optimizer.lr * est._scale <= _NO_CHANGE_LR:
            if est.verbose:
                print(message + (" Learning rate too small." if adaptive else "") + " Stopping.")
            return True
        optimizer.lr = optimizer.lr / 5.0
        if est.verbose:
            print(f"{message} Setting learning rate to {optimizer.lr * est._scale:f}")
        return False


class _Stopper(Callback):
    """scikit-learn's stopping rule, run after the user's callbacks."""

    def __init__(self, epochs: _Epochs):
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.epochs.should_stop():
            self._require_network().stop_training = True


# --- scikit-learn's callback protocol ----------------------------------------------

class _Tasks:
    """A fit or partial_fit as a task of scikit-learn's callback protocol
    (``sklearn.callback``, scikit-learn 1.9 and later), each epoch or lbfgs
    iteration one subtask. Inert without the protocol or without callbacks set
    by ``set_callbacks`` (or propagated by a meta-estimator)."""

    def __init__(self, est, name: str, max_subtasks: int, X, y, sample_weight):
        X = _public(X)
        self.est, self.X, self.y = est, X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.context: typing.Any = None       # sklearn.callback.CallbackContext
        if hasattr(est, "_skl_callbacks") or hasattr(est, "_parent_callback_ctx"):
            self.context = est._init_callback_context(task_name=name,
                                                      max_subtasks=max_subtasks)
            self.context.call_on_fit_task_begin(estimator=est, X=X, y=y,
                                                metadata=self.metadata)

    def epochs(self, X, targets, sample_weight) -> list:
        """The fastwb callback that makes each epoch a subtask (none if inert)."""
        if self.context is None:
            return []
        return [_EpochTasks(self, _public(X), self.est._truth(targets), sample_weight)]

    def lbfgs(self, X, targets, sample_weight, parameters: np.ndarray):
        """scipy's lbfgs callback that makes each iteration a subtask (None if inert)."""
        if self.context is None:
            return None
        return _LbfgsTasks(self, _public(X), self.est._truth(targets), sample_weight,
                           parameters)

    def end(self) -> None:
        """The end of the fit's task, the estimator fitted."""
        if self.context is not None:
            self.context.call_on_fit_task_end(estimator=self.est, X=self.X, y=self.y,
                                              metadata=self.metadata,
                                              reconstruction_attributes={})


class _EpochTasks(Callback):
    """Each epoch of the stochastic solvers one task; a callback's request to stop
    ends training after that epoch."""

    def __init__(self, tasks: _Tasks, X, y, sample_weight):
        self.tasks, self.X, self.y = tasks, X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.task: typing.Any = None        # the running epoch's CallbackContext

    def _call(self, hook) -> bool:
        est = self.tasks.est
        return hook(estimator=est, X=self.X, y=self.y, metadata=self.metadata,
                    reconstruction_attributes=est._fitted_attributes)

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        assert self.tasks.context is not None, "made only with a context"
        self.task = self.tasks.context.subcontext(task_name="epoch")
        self._call(self.task.call_on_fit_task_begin)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        assert self.task is not None, "after on_epoch_begin"
        task, self.task = self.task, None
        if self._call(task.call_on_fit_task_end):
            self._require_network().stop_training = True

    def on_train_end(self, logs: dict) -> None:
        if self.task is not None:       # an epoch that diverged or was interrupted
            self.task.call_on_fit_task_end(estimator=self.tasks.est)
            self.task = None


class _LbfgsTasks:
    """Each lbfgs iteration one task (scikit-learn's LogisticRegression does the
    same); a callback's request to stop ends the minimisation."""

    def __init__(self, tasks: _Tasks, X, y, sample_weight, parameters: np.ndarray):
        self.tasks, self.X, self.y = tasks, X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.stopped = False
        self.task = self._begin(parameters)

    def _attributes(self, parameters: np.ndarray):
        return lambda: self.tasks.est._fitted_attributes(parameters)

    def _begin(self, parameters: np.ndarray):
        assert self.tasks.context is not None, "made only with a context"
        task = self.tasks.context.subcontext(task_name="lbfgs-iter")
        task.call_on_fit_task_begin(estimator=self.tasks.est, X=self.X, y=self.y,
                                    metadata=self.metadata,
                                    reconstruction_attributes=self._attributes(parameters))
        return task

    def __call__(self, xk: np.ndarray) -> None:
        xk = xk.copy()
        stop = self.task.call_on_fit_task_end(
            estimator=self.tasks.est, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._attributes(xk))
        self.task = self._begin(xk)
        if stop:
            self.stopped = True
            raise StopIteration

    def close(self) -> None:
        """End the task begun for an iteration that did not run."""
        self.task.call_on_fit_task_end(estimator=self.tasks.est)


# --- the estimators -----------------------------------------------------------------

class _BaseMLP(CallbackSupportMixin, BaseEstimator):
    """What the classifier and regressor share: parameters, training, saving."""

    @property
    def _out_activation(self) -> str:
        return "identity"

    def _huber_delta(self) -> float | None:
        """The network's huber_delta: None but for the huber loss."""
        return None

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float32", dropout=0.0, optimizer=None, n_threads=None,
                 callbacks=None, scoring=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.dropout = dropout
        self.optimizer = optimizer
        self.n_threads = n_threads
        self.callbacks = callbacks
        self.scoring = scoring

    # --- public API -------------------------------------------------------------

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The input data. A sparse matrix stays sparse (see ``fastwb._sparse``).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real targets (regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.
        X_val : array-like or sparse matrix of shape (n_val, n_features), default=None
            Validation data for early stopping (a fastwb extra, as in
            scikit-learn's ``HistGradientBoostingClassifier.fit``): scored after
            every epoch instead of a ``validation_fraction`` held out of X,
            which then all trains. Needs ``y_val`` and ``early_stopping=True``.
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Its targets (classes seen in y).
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation samples in the score.

        Returns
        -------
        self : object
            The trained estimator.
        """
        self._check_params()
        validation = None
        if X_val is not None or y_val is not None:
            if y_val is None:
                raise ValueError("X_val is provided, but y_val was not provided.")
            if X_val is None:
                raise ValueError("y_val is provided, but X_val was not provided.")
            validation = (X_val, y_val, sample_weight_val)
        return self._fit(X, y, sample_weight, incremental=False, validation=validation)

    @property
    def network(self) -> Network:
        """The trained ``fastwb.Network`` (its layers' weights and biases are
        ``coefs_`` and ``intercepts_``)."""
        check_is_fitted(self)
        self._take_parameters()
        return self._network

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_network")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # --- training ---------------------------------------------------------------

    def _check_params(self) -> None:
        """scikit-learn's checks of its parameters, in its words, unless its config
        skips them; ``_Settings`` then checks them all again with fastwb's extras."""
        if not get_config().get("skip_parameter_validation", False):
            self._validate_params()

    def _check_solver(self) -> bool:
        if (self.optimizer or self.solver) not in EXTRA_OPTIMIZERS:    # the stochastic ones
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def _fit(self, X, y, sample_weight, incremental: bool, validation=None):
        settings = _Settings(self)
        if validation is not None and not settings.early_stopping:
            raise ValueError("X_val and y_val are passed to fit while at the same time "
                             "early_stopping is False. When passing X_val and y_val to fit, "
                             "early_stopping should be set to True.")
        if validation is not None and settings.rule == "lbfgs":
            raise ValueError("X_val and y_val are for early stopping, which lbfgs does not "
                             "do: use solver='adam' or 'sgd'")
        first_pass = not hasattr(self, "_network") or (not settings.warm_start
                                                       and not incremental)
        X, targets, labels = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = settings.dtype if settings.dtype is not None else X.dtype
        if validation is not None:
            X_val, y_val, sample_weight_val = validation
            validation = self._validation_set(X_val, y_val, sample_weight_val,
                                              targets.shape[1] if targets.ndim == 2 else 1)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        sample_weight = self._weigh_classes(sample_weight, labels)
        if sample_weight is not None:
            if (sample_weight < 0).any():
                raise ValueError(f"sample_weight must be nonnegative; its minimum is "
                                 f"{sample_weight.min()}")
            if not (sample_weight > 0).any():
                raise ValueError("every sample has weight 0 (sample_weight, times "
                                 "class_weight if given): nothing to train on")
        random_state = check_random_state(self.random_state)
        sizes = [X.shape[1], *settings.hidden, targets.shape[1] if targets.ndim == 2
                 else len(self.classes_)]
        if first_pass:
            # coefs_ and intercepts_ set on an estimator never fitted: where scikit-learn
            # would continue from them (partial_fit, warm_start) it fails for want of
            # its other records; fastwb starts from them
            given = (self.__dict__.get("coefs_"), self.__dict__.get("intercepts_")) \
                if "_network" not in self.__dict__ and (incremental or settings.warm_start) \
                else (None, None)
            self._initialize(settings, sizes, dtype, random_state)
            if given != (None, None):
                self._take_parameters(*given)
        else:
            self._take_parameters()
            self._check_same_network(settings, sizes)
        X = _rows(X, self._network.dtype)
        tasks = _Tasks(self, "partial_fit" if incremental else "fit",
                       settings.max_iter + 1 if settings.rule == "lbfgs"
                       else 1 if incremental else settings.max_iter, X, y, sample_weight)
        try:
            if settings.rule == "lbfgs":
                self._fit_lbfgs(settings, X, targets, sample_weight, tasks)
            else:
                self._fit_stochastic(settings, X, targets, labels, sample_weight,
                                     incremental, random_state, validation, tasks)
        except FloatingPointError as error:
            raise ValueError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed.") from error
        if not np.isfinite(self._network.parameters).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed.")
        tasks.end()
        return self

    def _fitted_attributes(self, parameters: np.ndarray | None = None) -> dict:
        """The fitted attributes that make a copy of this estimator predict as it
        does now (or with ``parameters``), for scikit-learn's callbacks."""
        network = copy.deepcopy(self._network)
        if parameters is not None:
            network.parameters[...] = parameters
        return {"_network": network, "coefs_": [layer.weights for layer in network.layers],
                "intercepts_": [layer.bias for layer in network.layers], "n_iter_": self.n_iter_}

    def _validation_set(self, X_val, y_val, sample_weight_val, n_outputs: int) -> tuple:
        """The user's validation data, checked as scikit-learn's
        HistGradientBoosting estimators check it: (X, targets as the score takes
        them, weights)."""
        X_val = self._validate_X(X_val)
        y_val = self._validation_truth(y_val, n_outputs)
        check_consistent_length(X_val, y_val)
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val, dtype=np.float64)
        return X_val, y_val, sample_weight_val

    def _initialize(self, settings: _Settings, sizes: list, dtype, random_state) -> None:
        """A new network with scikit-learn's initial weights and biases: uniform in
        +-sqrt(6 / (fan_in + fan_out)) (2 instead of 6 for logistic), drawn from
        ``random_state`` in scikit-learn's order, so the same ``random_state``
        starts from the same ``coefs_`` and ``intercepts_``."""
        names = settings.activation
        logistic = [self.activation] if isinstance(self.activation, str) else names
        factor = 2.0 if logistic and all(name == "logistic" for name in logistic) else 6.0
        sizes = _validation.check_sizes(sizes)
        n = n_parameters(sizes)
        largest = max(fan_in * fan_out for fan_in, fan_out in pairwise(sizes))
        # the network's parameters, gradients and spare copy, its own initial draw
        # (float64 temporaries of one layer) and scikit-learn's (float64, one layer)
        _validation.check_allocation(
            3 * n * np.dtype(dtype).itemsize + (initializers.DRAW_BYTES + 8) * largest,
            f"{type(self).__name__}(hidden_layer_sizes={self.hidden_layer_sizes!r}) on "
            f"{sizes[0]} features (layer sizes {sizes}, {n:,} parameters)")
        hidden = [ACTIVATIONS[name] for name in names] + [None]     # the loss picks the output's
        layers = []
        for (fan_in, fan_out), activation in zip(pairwise(sizes), hidden):
            bound = math.sqrt(factor / (fan_in + fan_out))
            init = initializers.Uniform(-bound, bound)      # the distribution, for get_config
            layers.append(Dense(fan_in, fan_out, activation, weight_init=init, bias_init=init))
        dropout = settings.dropout
        if isinstance(dropout, (list, tuple, np.ndarray)):
            dropout = [float(rate) for rate in dropout]
        network = Network(layers, loss=self._loss_name(), dtype=dtype, seed=_seed(random_state),
                          n_threads=settings.n_threads, dropout=dropout,
                          huber_delta=self._huber_delta())
        for layer in network.layers:        # scikit-learn's draws, in its order
            bound = layer.weight_init.high
            layer.weights[...] = random_state.uniform(-bound, bound, layer.weights.shape)
            layer.bias[...] = random_state.uniform(-bound, bound, layer.bias.shape)
        self._set_network(network)
        self.__dict__.pop("_optimizer", None)       # it was the previous network's
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(sizes)
        self.n_outputs_ = sizes[-1]
        self.out_activation_ = self._out_activation
        self._best_parameters = network.parameters.copy()
        if settings.rule != "lbfgs":
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if settings.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _check_same_network(self, settings: _Settings, sizes: list) -> None:
        """warm_start and partial_fit go on with the network of the first fit: refuse
        parameters and data that would need another one."""
        changed = self._network_changes(settings, sizes)
        if changed:
            raise ValueError(f"warm_start and partial_fit continue the network of the first "
                             f"fit, but {'; '.join(changed)}. Call fit with "
                             f"warm_start=False to start a new one.")

    def _network_changes(self, settings: _Settings, sizes: list) -> list[str]:
        """How the network of these parameters (``settings``) and layer ``sizes``
        differs from the estimator's network, one "then -> now" phrase each."""
        network, changed = self._network, []
        if list(network.sizes) != sizes:
            changed.append(f"layer sizes {list(network.sizes)} -> {sizes}")
        if list(network.activations[:-1]) != [ACTIVATIONS[name] for name in settings.activation]:
            changed.append(f"activation -> {self.activation!r}")
        if settings.dtype is not None and settings.dtype != network.dtype:
            changed.append(f"dtype {network.dtype.name} -> {settings.dtype.name}")
        dropout = settings.dropout
        rates = ([float(rate) for rate in dropout]
                 if isinstance(dropout, (list, tuple, np.ndarray))
                 else [float(dropout)] * (len(sizes) - 2))
        if rates != list(network.dropout[:-1]):
            changed.append(f"dropout {list(network.dropout[:-1])} -> {rates}")
        if settings.n_threads != network._n_threads_asked:
            changed.append(f"n_threads {network._n_threads_asked} -> {settings.n_threads}")
        if network.loss_name != self._loss_name():
            changed.append(f"loss -> {getattr(self, 'loss', None)!r}")
        elif network.huber_delta != self._huber_delta():
            changed.append(f"huber_delta {network.huber_delta} -> {self._huber_delta()}")
        return changed

    def _parameter_changes(self, settings: _Settings) -> list[str]:
        """How the parameters disagree with the fitted network (set_params after
        fit, or a crafted file): what ``_network_changes`` finds for the
        network's own input and output widths."""
        sizes = list(self._network.sizes)
        return self._network_changes(settings, [sizes[0], *settings.hidden, sizes[-1]])

    def _stochastic_records(self, settings: _Settings) -> None:
        """The records of stochastic training, where a warm start after lbfgs or
        with early_stopping switched lacks them (scikit-learn fails there)."""
        if not hasattr(self, "loss_curve_"):
            self.loss_curve_ = []
            self._no_improvement_count = 0
        if settings.early_stopping and getattr(self, "validation_scores_", None) is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
        if not settings.early_stopping and getattr(self, "best_loss_", None) is None:
            self.best_loss_ = np.inf

    def _set_network(self, network: Network) -> None:
        self._network = network
        self._hand_out_parameters()

    def _hand_out_parameters(self) -> None:
        """``coefs_`` and ``intercepts_`` as new lists of views into the network's
        buffer (so that writing into them changes the network), remembered to
        see later what the user replaced."""
        layers = self._network.layers
        self.coefs_ = _Views(layer.weights for layer in layers)
        self.intercepts_ = _Views(layer.bias for layer in layers)
        self._handed_out = (self.coefs_, self.intercepts_)

    def _take_parameters(self, coefs=None, intercepts=None) -> None:
        """Copy into the network the ``coefs_`` and ``intercepts_`` (or the given
        ones) that are no longer the views handed out: a list, or an array in
        it, that the user replaced. The network stays the owner of the
        parameters; scikit-learn reads its lists afresh at every use."""
        state = self.__dict__
        if coefs is None and intercepts is None:
            coefs, intercepts = state.get("coefs_"), state.get("intercepts_")
            handed_coefs, handed_intercepts = state["_handed_out"]
            # a few hundred nanoseconds on every prediction
            if (coefs is handed_coefs and intercepts is handed_intercepts
                    and not coefs.changed and not intercepts.changed):
                return
        layers, checked = self._network.layers, []
        for name, values, attribute in (("coefs_", coefs, "weights"),
                                        ("intercepts_", intercepts, "bias")):
            if values is None:          # deleted (or never set): the network's stand
                continue
            if not isinstance(values, (list, tuple)) or len(values) != len(layers):
                raise ValueError(f"{name} must be a list of {len(layers)} arrays, one per "
                                 f"layer, got {type(values).__name__}"
                                 + (f" of {len(values)}" if hasattr(values, "__len__") else ""))
            for i, (layer, value) in enumerate(zip(layers, values)):
                view = getattr(layer, attribute)
                if value is not view:
                    checked.append((view, _validation.check_assignment(
                        value, view.shape, view.dtype, f"{name}[{i}]")))
        for view, value in checked:     # all checked first: a bad one changes nothing
            view[...] = value
        self._hand_out_parameters()

    @property
    def _scale(self) -> float:
        """fastwb's loss over scikit-learn's (for the same network and data)."""
        # fastwb averages over outputs what scikit-learn sums (softmax's sum is both),
        # and its squared error is not halved
        if self._loss_name() == "softmax_cross_entropy":
            return 1.0
        return (2.0 if self._loss_name() == "mse" else 1.0) / self._network.sizes[-1]

    @property
    def _mean_over_outputs(self) -> bool:
        """Whether scikit-learn's loss_ averages over outputs what its gradient sums."""
        return False

    def _penalty(self) -> float:
        """The L2 penalty in scikit-learn's loss at the current weights."""
        return sum(l2 * float(np.vdot(layer.weights, layer.weights))
                   for l2, layer in zip(self._network.l2, self._network.layers)) / self._scale

    def _mean_loss(self, loss: float, penalty: float) -> float:
        """scikit-learn's loss_ (squared error averaged over outputs, plus the
        penalty) from the loss summed over outputs that the gradient belongs to."""
        return (loss - penalty) / self.n_outputs_ + penalty

    def _set_alpha(self, alpha: float, per_sample_weight: float) -> None:
        """scikit-learn's penalty alpha / 2 * sum W^2 / (samples or their weight)."""
        n_layers = len(self._network.layers)
        l2 = self._scale * alpha / (2.0 * per_sample_weight)
        self._network.set_penalties([0.0] * n_layers, [l2] * n_layers)

    def _lbfgs_objective(self, alpha: float, X, targets, sample_weight):
        """The function lbfgs minimises: float64 parameters (``network.parameters``'
        layout) to (loss, gradient), both on scikit-learn's scale (the squared
        error summed over outputs). Sets the network's penalty."""
        network, scale = self._network, self._scale
        total_weight = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        self._set_alpha(alpha, total_weight)
        if sample_weight is not None:
            sample_weight = sample_weight.astype(network.dtype)
        parameters = network.parameters

        def loss_and_gradient(packed: np.ndarray):
            parameters[...] = packed
            loss, gradient = network.loss_and_gradients(X, targets, sample_weight)
            return loss / scale, gradient.astype(np.float64) / scale

        return loss_and_gradient

    def _fit_lbfgs(self, settings: _Settings, X, targets, sample_weight, tasks) -> None:
        parameters = self._network.parameters
        start = parameters.astype(np.float64)
        iterations = tasks.lbfgs(X, targets, sample_weight, start)
        result = scipy.optimize.minimize(
            self._lbfgs_objective(settings.alpha, X, targets, sample_weight),
            start, method="L-BFGS-B", jac=True, callback=iterations,
            options={"maxfun": settings.max_fun, "maxiter": settings.max_iter,
                     "gtol": settings.tol})
        if iterations is not None:
            iterations.close()
        if iterations is not None and iterations.stopped:
            self.n_iter_ = min(int(result.nit), settings.max_iter)
        else:       # scikit-learn's n_iter_ and warning (its words change between versions)
            self.n_iter_ = int(_check_optimize_result("lbfgs", result, settings.max_iter))
        parameters[...] = result.x
        self.loss_ = float(result.fun)
        if self._mean_over_outputs:
            self.loss_ = self._mean_loss(self.loss_, self._penalty())
        if self.verbose:
            print(f"lbfgs: {self.n_iter_} iterations, loss = {self.loss_:.8f}")

    def _new_optimizer(self, settings: _Settings) -> optimizers.Optimizer:
        """The update rule, with the rate and epsilon rescaled so that its steps on
        fastwb's loss are scikit-learn's steps on its own."""
        lr, eps, scale = settings.learning_rate_init, settings.epsilon * self._scale, self._scale
        if settings.rule == "sgd":
            schedule = InverseScaling(settings.power_t) \
                if settings.learning_rate == "invscaling" else None
            return optimizers.SGD(lr / scale, momentum=settings.momentum,
                                  nesterov=settings.nesterovs_momentum and settings.momentum > 0,
                                  schedule=schedule)
        if settings.rule == "adam":
            return optimizers.Adam(lr, beta1=settings.beta_1, beta2=settings.beta_2, eps=eps)
        if settings.rule == "adamw":
            return optimizers.AdamW(lr, beta1=settings.beta_1, beta2=settings.beta_2, eps=eps)
        if settings.rule == "rmsprop":
            return optimizers.RMSprop(lr, eps=eps)
        return optimizers.Adagrad(lr, eps=eps)

    def _fit_stochastic(self, settings: _Settings, X, targets, labels, sample_weight,
                        incremental: bool, random_state, validation, tasks) -> None:
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer(settings)
        if settings.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._stochastic_records(settings)
        if settings.early_stopping and validation is None:
            X, targets, labels, sample_weight, validation = self._split(
                settings, X, targets, labels, sample_weight, random_state)
        if validation is not None:
            X_val, y_val, sw_val = validation
            validation = (_rows(X_val, self._network.dtype), y_val, sw_val)
        n = X.shape[0]
        if settings.batch_size is None:
            batch_size = min(200, n)
        else:
            if settings.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = min(settings.batch_size, n)
        mean_weight = 1.0 if sample_weight is None else float(sample_weight.mean())
        self._set_alpha(settings.alpha, batch_size * mean_weight)
        scorer = None if settings.scoring is None or validation is None else \
            check_scoring(self, settings.scoring)
        epochs = _Epochs(self, settings, n, -(-n // batch_size), validation, scorer)
        self.n_iter_ = 0
        callbacks = [epochs, *settings.callbacks, *tasks.epochs(X, targets, sample_weight),
                     epochs.stopper]
        try:
            self._network.fit(X, targets, self._optimizer, epochs=1 if incremental
                              else settings.max_iter, batch_size=batch_size,
                              shuffle=settings.shuffle, sample_weight=sample_weight,
                              callbacks=callbacks)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        except FloatingPointError as error:
            if validation is None:
                raise
            epochs.after_divergence(error)
        if not incremental and not epochs.converged and self.n_iter_ == settings.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({settings.max_iter}) "
                          f"reached and the optimization hasn't converged yet.",
                          ConvergenceWarning)
        if settings.early_stopping:
            self._network.parameters = self._best_parameters

    def _split(self, settings, X, targets, labels, sample_weight, random_state):
        """scikit-learn's hold-out for early stopping (stratified for one-output,
        that is binary, classification, as there); returns the training part and
        (X, y, weight) to score."""
        stratify = labels if labels is not None and self.n_outputs_ == 1 else None
        train, val = train_test_split(np.arange(X.shape[0]), random_state=random_state,
                                      test_size=settings.validation_fraction,
                                      stratify=stratify)
        if val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        weight = None if sample_weight is None else sample_weight[train]
        val_weight = None if sample_weight is None else sample_weight[val]
        truth = self._truth(targets[val])
        return (X[train], targets[train], None if labels is None else labels[train], weight,
                (X[val], truth, val_weight))

    def _weigh_classes(self, sample_weight, labels):
        return sample_weight

    # --- prediction ---------------------------------------------------------------

    def _outputs(self, X, logits: bool = False) -> np.ndarray:
        """The network's output activations (with ``logits``: the output layer's
        pre-activations) for X, checked as scikit-learn checks it."""
        state = self.__dict__
        if "_network" in state:
            self._take_parameters()
        checked = state.get("_checked_input")
        if checked is not None and X is checked[0]:     # fit's validation data, for a scorer
            return state["_network"].predict(checked[1], logits=logits)
        if (type(X) is np.ndarray and X.ndim == 2 and X.dtype in _FLOAT_DTYPES
                and X.shape[0] > 0 and X.shape[1] == state.get("n_features_in_")
                and "feature_names_in_" not in state and "_network" in state):
            # input that validate_data would hand back unchanged (floats of the fitted
            # width, no feature names to compare) skips its 80-250 µs, most of a
            # one-row prediction; the engine's finiteness scan stands in for its own
            network = state["_network"]
            try:
                return network.predict(X.astype(network.dtype, copy=False), logits=logits)
            except ValueError:
                self._validate_X(X)        # NaN or infinity in X, in scikit-learn's words
                raise                      # else beyond float32's range, in fastwb's
        check_is_fitted(self)
        X = self._validate_X(X)
        return self._network.predict(_rows(X, self._network.dtype), logits=logits)

    def _validate_X(self, X):
        """scikit-learn's checks of X for prediction."""
        return validate_data(self, X, accept_sparse=["csr", "csc"],
                             dtype=(np.float64, np.float32), reset=False)

    def _score(self, X, y, sample_weight=None, scorer=None) -> float:
        """The validation score of early stopping on checked data: ``scoring``'s,
        or accuracy (classifier) or R^2 (regressor). A prediction that is NaN or
        infinite scores NaN (as in scikit-learn; a scorer is not called on it)."""
        outputs = self._network.predict(X)
        if scorer is not None:
            if not np.isfinite(outputs).all():
                return np.nan
            shown = _public(X)
            self._checked_input = (shown, X)     # what the scorer predicts on is checked
            try:
                kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
                return float(scorer(self, shown, y, **kwargs))
            finally:
                del self._checked_input
        predicted = self._from_outputs(outputs)
        if np.issubdtype(predicted.dtype, np.floating) and not np.isfinite(predicted).all():
            return np.nan
        return self._score_function(y, predicted, sample_weight=sample_weight)

    # --- pickling and saving --------------------------------------------------------

    def __getstate__(self) -> dict:
        if "_network" in self.__dict__:
            self._take_parameters()
        state = dict(super().__getstate__())
        # the views into the network's buffer are rebuilt, not copied apart from it
        state.pop("coefs_", None)
        state.pop("intercepts_", None)
        state.pop("_handed_out", None)
        # the optimizer is bound to the network's engine, which does not pickle:
        # it travels as the network's own optimizer (Network pickles with it)
        if "_optimizer" in state:
            ours = state["_optimizer"] is getattr(state.get("_network"), "optimizer", None)
            state["_optimizer"] = _NETWORK_OPTIMIZER if ours else None
        # the network as its state, a JSON-able config and a dict of arrays (which
        # skops can walk, where it cannot walk the compiled engine)
        if "_network" in state:
            state["_network"] = state["_network"].get_state()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if "_network" in state:
            config, arrays = state["_network"]
            state["_network"] = Network.from_state(config, arrays)
        super().__setstate__(state)
        if "_network" in state:
            self._set_network(state["_network"])
        if state.get("_optimizer") == _NETWORK_OPTIMIZER:
            optimizer = self._network.optimizer
            assert optimizer is not None, "pickled as the network's own optimizer"
            self._optimizer = optimizer
        elif "_optimizer" in state:
            del self._optimizer

    def _fastwb_state(self) -> tuple[str, dict, dict]:
        """What ``fastwb.save`` writes: (kind, JSON-able config, arrays)."""
        # callbacks and a scoring function are code, not model: a loaded estimator
        # has none (a scorer's name is kept)
        scoring = self.scoring if isinstance(self.scoring, str) else None
        # what load would refuse is refused here, so that every saved file loads
        self._check_params()
        settings = _Settings(self)
        if hasattr(self, "_network"):
            self._take_parameters()
            changed = self._parameter_changes(settings)
            if changed:
                raise ValueError(f"cannot save this {type(self).__name__}: its parameters were "
                                 f"changed after fit ({'; '.join(changed)}); restore them or "
                                 "fit again")
        params = _encode({**self.get_params(deep=False), "callbacks": None, "scoring": scoring})
        config = {"params": params, "fitted": hasattr(self, "_network")}
        arrays = {}
        if hasattr(self, "_network"):
            # the network's state holds its optimizer, which is the estimator's
            network_config, network_arrays = self._network.get_state()
            config["network"] = network_config
            arrays.update({f"network/{k}": v for k, v in network_arrays.items()})
            scalars = {}
            for name in _SCALARS:
                if hasattr(self, name):
                    scalars[name] = _encode(getattr(self, name))
            config["attributes"] = scalars
            for name in _ARRAYS:
                value = getattr(self, name, None)
                if value is not None:
                    arrays[name] = _storable(np.asarray(value), name)
        return type(self).__name__, config, arrays

    @classmethod
    def _from_fastwb_state(cls, config: dict, arrays: dict):
        """The estimator ``_fastwb_state`` described (used by ``fastwb.load``)."""
        params = _decode(config["params"])
        if not isinstance(params, dict):
            raise ValueError("the estimator's params must be an object")
        estimator = cls(**params)
        estimator._check_params()
        settings = _Settings(estimator)     # fastwb's own checks of them
        if not isinstance(config["fitted"], bool):
            raise ValueError(f"'fitted' must be true or false, got {shown(config['fitted'])}")
        if not config["fitted"]:
            if arrays or set(config) != {"params", "fitted"}:
                raise ValueError("an estimator saved unfitted has no network, attributes or "
                                 "arrays")
            return estimator
        if set(config) != {"params", "fitted", "network", "attributes"}:
            raise ValueError(f"a fitted estimator's config has the keys params, fitted, "
                             f"network and attributes, got {shown(sorted(config), 200)}")
        unknown = {name for name in arrays if not name.startswith("network/")} - set(_ARRAYS)
        if not issubclass(cls, ClassifierMixin):
            unknown |= {"classes_"} & set(arrays)
        if unknown:
            raise ValueError(f"unknown estimator array(s) {shown(sorted(unknown), 200)}")
        network = Network.from_state(
            config["network"], {k[len("network/"):]: v for k, v in arrays.items()
                                if k.startswith("network/")})
        estimator._set_network(network)
        if network.optimizer is not None:
            estimator._optimizer = network.optimizer
        if not isinstance(config["attributes"], dict):
            raise ValueError("the estimator's attributes must be an object")
        for name, value in config["attributes"].items():
            if name not in _SCALARS or (name == "_y_type"
                                        and not issubclass(cls, ClassifierMixin)):
                raise ValueError(f"unknown estimator attribute {shown(name)}")
            setattr(estimator, name, _decode(value))
        if "classes_" in arrays:
            estimator.classes_ = arrays["classes_"]
        if "feature_names_in_" in arrays:
            names = arrays["feature_names_in_"]
            if names.dtype.kind != "U":
                raise ValueError(f"feature_names_in_ must hold strings, got {names.dtype}")
            estimator.feature_names_in_ = names.astype(object)
        for name in ("loss_curve_", "validation_scores_"):
            values = arrays.get(name)
            if values is not None and (values.ndim != 1 or values.dtype.kind != "f"):
                raise ValueError(f"{name} must be a 1-D float array, got {values.dtype} of "
                                 f"shape {values.shape}")
        if "loss_curve_" in arrays:         # stochastic training's records (None is not saved)
            estimator.loss_curve_ = [float(v) for v in arrays["loss_curve_"]]
            estimator.validation_scores_ = [float(v) for v in arrays["validation_scores_"]] \
                if "validation_scores_" in arrays else None
        elif "validation_scores_" in arrays:
            raise ValueError("validation_scores_ without loss_curve_: stochastic training "
                             "records both")
        if "_best_parameters" in arrays:
            best = arrays["_best_parameters"]
            if best.dtype.kind != "f" or not np.isfinite(best).all():
                raise ValueError("_best_parameters must be finite floats")
            estimator._best_parameters = best.astype(network.dtype)
        estimator._check_loaded(network, settings)
        return estimator

    def _check_loaded(self, network: Network, settings: _Settings) -> None:
        """Refuse a loaded estimator whose parts disagree (a crafted or damaged
        file): its fitted attributes must be those its network and arrays imply,
        and its parameters (``settings``) those of its network."""
        missing = [name for name in _REQUIRED_SCALARS if not hasattr(self, name)]
        if missing:
            raise ValueError(f"a fitted {type(self).__name__} needs the attribute(s) {missing}")
        check_fitted_scalars({name: getattr(self, name) for name in _SCALARS
                              if hasattr(self, name)}, network.sizes)
        if self.out_activation_ != self._out_activation:
            raise ValueError(f"out_activation_ is {shown(self.out_activation_)}, but the network "
                             f"and targets imply {self._out_activation!r}")
        output = ACTIVATIONS.get(self._out_activation, self._out_activation)   # fastwb's name
        if network.activations[-1] != output:
            raise ValueError(f"the network's output activation is {network.activations[-1]!r}; "
                             f"this {type(self).__name__} needs {output!r}")
        if network.loss_name != self._loss_name():
            raise ValueError(f"the network's loss is {network.loss_name!r}; this "
                             f"{type(self).__name__} trains with {self._loss_name()!r}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and names.shape != (network.sizes[0],):
            raise ValueError(f"feature_names_in_ has shape {names.shape}; the network takes "
                             f"{network.sizes[0]} features")
        best = getattr(self, "_best_parameters", None)
        if best is not None and best.shape != network.parameters.shape:
            raise ValueError(f"_best_parameters has shape {best.shape}; the network has "
                             f"{network.parameters.shape}")
        changed = self._parameter_changes(settings)
        if changed:
            raise ValueError(f"the estimator's parameters describe another network than the "
                             f"file's (network -> parameters: {'; '.join(changed)})")


# the arrays saved with a fitted estimator, besides its network's ("network/...")
_ARRAYS = ("classes_", "feature_names_in_", "loss_curve_", "validation_scores_",
           "_best_parameters")
# the fitted scalars every fitted estimator has
_REQUIRED_SCALARS = ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_",
                     "n_features_in_")
# the fitted scalars saved with an estimator
_SCALARS = ("n_iter_", "t_", "loss_", "best_loss_", "best_validation_score_", "n_layers_",
            "n_outputs_", "out_activation_", "n_features_in_", "_no_improvement_count",
            "_y_type")


class _Views(list):
    """``coefs_`` or ``intercepts_``: the list of views into the network's buffer
    handed out, which notes any change of its items (``coefs_[0] = W``), so
    that a prediction learns from one flag whether to copy anything in."""

    changed = False


def _noting(method):
    def changing(self, *args, **kwargs):
        self.changed = True
        return method(self, *args, **kwargs)
    changing.__name__ = method.__name__
    return changing


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(_Views, _name, _noting(getattr(list, _name)))
del _name


def _seed(random_state: np.random.RandomState) -> int:
    """A seed for the network (its shuffles and dropout masks) read from the state
    of ``random_state`` without drawing from it, so that what scikit-learn draws
    next (the early-stopping split) is what it would draw."""
    _, keys, position, *_ = random_state.get_state()
    return zlib.crc32(position.to_bytes(4, "little"), zlib.crc32(keys.tobytes())) & 0x7fffffff


def _dense(y):
    return y.toarray() if _sparse.is_sparse(y) else y


def _rows(X, dtype):
    """Checked X in the network's dtype: an array, or for sparse X fastwb's checked
    CSR rows (made once, so that every epoch, lbfgs evaluation and hold-out split
    uses them without checking or converting again; never dense)."""
    if isinstance(X, _sparse.SparseRows):
        return X.with_dtype(dtype)
    if _sparse.is_sparse(X):
        return _validation.check_X(X, X.shape[1], dtype)[0]
    return X.astype(dtype, copy=False)


def _public(X):
    """X as user code (a scorer, scikit-learn's callbacks) receives it: checked
    sparse rows as a scipy CSR matrix sharing their (read-only) arrays."""
    return X.matrix if isinstance(X, _sparse.SparseRows) else X


def _storable(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype == object:
        try:
            return text_array(values.tolist(), name).reshape(values.shape)
        except TypeError:
            raise ValueError(f"cannot save {name} of objects that are not strings") from None
    return values


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier`` on fastwb.

    The parameters, their defaults and the fitted attributes are those of
    ``sklearn.neural_network.MLPClassifier`` (see its documentation); the
    differences are listed in this module's docstring. Binary and multiclass
    targets train a logistic or a softmax output with the log-loss; a 0/1
    indicator matrix trains one logistic output per label (multi-label).

    Extra parameters
    ----------------
    dtype : {"float32", "float64"} or None, default "float32"
        Precision of the network; None follows the input (as scikit-learn).
    dropout : float or sequence of float, default 0.0
        Inverted-dropout rate of the hidden layers during training.
    class_weight : "balanced", dict or None
        Weights of the classes in the loss (multiply ``sample_weight``), as in
        scikit-learn's linear models; "balanced" is ``n / (n_classes * count)``.
    optimizer : {"adam", "sgd", "adamw", "rmsprop", "adagrad"} or None
        An update rule other than ``solver``'s, with ``learning_rate_init`` and
        ``epsilon`` (and ``beta_1``/``beta_2`` for the Adam family).
    n_threads : int or None
        Threads of the compiled kernels (None: OpenMP's setting).
    callbacks : fastwb Callback, function ``f(epoch, logs)``, or a list of them
        Called after every epoch of the stochastic solvers (``epoch``
        counts from 1: ``n_iter_`` of a first fit), after the
        estimator has updated ``loss_curve_`` and its other records (with
        early stopping, the logs hold the epoch's "val_score") and before it
        decides whether to stop; a callback may stop training with
        ``self.network.stop_training = True``. Not saved by ``fastwb.save``.
    scoring : str, callable or None, default None
        The validation score of early stopping, as in scikit-learn's
        HistGradientBoosting estimators: a scorer name or a callable
        ``scorer(estimator, X, y)``; None is the estimator's ``score``
        (accuracy, or R² for the regressor). Used only with
        ``early_stopping=True``. ``fit`` also takes the validation set itself
        (``X_val``, ``y_val``, ``sample_weight_val``).

    With scikit-learn 1.9 or later, ``set_callbacks`` takes scikit-learn's
    callbacks (``sklearn.callback``): each epoch (or lbfgs iteration) is one
    task of the fit.

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_features_in_,
    feature_names_in_, n_layers_, n_outputs_, out_activation_
        As scikit-learn's. ``coefs_[i]`` and ``intercepts_[i]`` are writable
        views into ``network.parameters``.
    network : fastwb.Network
        The trained network.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastwb.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=500,
    ...                     random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float32", dropout=0.0, class_weight=None, optimizer=None,
                 n_threads=None, callbacks=None, scoring=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype,
            dropout=dropout, optimizer=optimizer, n_threads=n_threads, callbacks=callbacks,
            scoring=scoring)
        self.class_weight = class_weight

    _score_function = staticmethod(accuracy_score)
    # scikit-learn's constraints but for ``activation``, which fastwb checks (more
    # names, one per layer); the extras have none: _Settings checks them
    _parameter_constraints: dict = {**_sklearn_mlp.MLPClassifier._parameter_constraints,
                                    "activation": "no_validation"}

    def _loss_name(self) -> str:
        return "softmax_cross_entropy" if self._y_type == "multiclass" else \
            "binary_cross_entropy"

    @property
    def _out_activation(self) -> str:
        return "softmax" if self._y_type == "multiclass" else "logistic"

    def _check_loaded(self, network: Network, settings: _Settings) -> None:
        # the classes must be those the network's outputs stand for
        y_type = getattr(self, "_y_type", None)
        if y_type not in _CLASSIFICATION_TARGETS:
            raise ValueError(f"_y_type is {shown(y_type)}; a classifier's is one of "
                             f"{list(_CLASSIFICATION_TARGETS)}")
        super()._check_loaded(network, settings)
        classes = getattr(self, "classes_", None)
        if classes is None or classes.ndim != 1 or classes.dtype.kind not in "iufbU":
            raise ValueError("a fitted MLPClassifier needs classes_, a 1-D array of labels")
        if not np.array_equal(classes, np.unique(classes)):
            raise ValueError("classes_ must be sorted and distinct, as fit sets them")
        n_outputs = network.sizes[-1]
        if y_type == "multilabel-indicator":
            expected = classes.dtype.kind in "iu" and np.array_equal(classes,
                                                                     np.arange(n_outputs))
        else:
            expected = (len(classes) >= 1 and (len(classes) <= 2) == (y_type == "binary")
                        and n_outputs == (1 if y_type == "binary" else len(classes)))
        if not expected:
            raise ValueError(f"classes_ ({len(classes)} labels) disagree with the network's "
                             f"{n_outputs} output(s) for {y_type} targets")

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """Checked X (sparse stays sparse), the network's targets, and class indices (None for
        multi-label)."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        y = _dense(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y_type = type_of_target(y, input_name="y")
        if y_type not in _CLASSIFICATION_TARGETS:
            check_classification_targets(y)     # scikit-learn's error for other targets
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._set_classes(y, y_type)
        else:
            self._check_classes(y, y_type)
        if self._y_type == "multilabel-indicator":
            return X, np.asarray(y, dtype=np.float64), None
        labels = np.searchsorted(self.classes_, y)
        if self._y_type == "binary":
            return X, labels.astype(np.float64).reshape(-1, 1), labels
        return X, labels.astype(np.intp), labels

    def _set_classes(self, y, y_type: str) -> None:
        if y_type == "multilabel-indicator":
            self.classes_ = np.arange(y.shape[1])
            self._y_type = y_type
            return
        # one class trains one logistic output towards 0 and predicts that class,
        # as scikit-learn's LabelBinarizer has it
        self.classes_ = unique_labels(y)
        self._y_type = "binary" if len(self.classes_) <= 2 else "multiclass"

    def _check_classes(self, y, y_type: str) -> None:
        if (y_type == "multilabel-indicator") != (self._y_type == "multilabel-indicator"):
            raise ValueError(f"this classifier was fitted on {self._y_type} targets; "
                             f"y is {y_type}")
        classes = unique_labels(y)      # a multi-label y's: its column indices
        if self.warm_start:
            if set(classes) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {classes}")
        elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {classes}.")

    def _weigh_classes(self, sample_weight, labels):
        if self.class_weight is None:
            return sample_weight
        if labels is None:
            raise ValueError("class_weight is not supported for multi-label targets")
        weights = compute_sample_weight(self.class_weight, self.classes_[labels])
        return weights if sample_weight is None else sample_weight * weights

    def _validation_truth(self, y_val, n_outputs: int) -> np.ndarray:
        """``y_val`` checked against the classes of y, in the user's terms."""
        y = _dense(check_array(y_val, ensure_2d=False, dtype=None, accept_sparse=["csr", "csc"],
                               ensure_all_finite=False, input_name="y_val"))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self._y_type == "multilabel-indicator":
            if y.ndim != 2 or y.shape[1] != len(self.classes_) or \
                    type_of_target(y) != "multilabel-indicator":
                raise ValueError(f"y_val must be a label indicator matrix of "
                                 f"{len(self.classes_)} labels, as y was")
            return y.astype(int)
        if y.ndim != 1:
            raise ValueError(f"y_val must be one label per sample, as y was; it has shape "
                             f"{y.shape}")
        known = set(self.classes_.tolist())
        unseen = [label for label in unique_labels(y).tolist() if label not in known]
        if unseen:
            raise ValueError(f"y_val contains previously unseen labels: {unseen}")
        return y

    def _truth(self, targets: np.ndarray) -> np.ndarray:
        """Targets back in the user's terms (for the validation score)."""
        if self._y_type == "multilabel-indicator":
            return targets.astype(int)
        if self._y_type == "binary":
            return self.classes_[targets[:, 0].astype(np.intp)]
        return self.classes_[targets]

    def _from_outputs(self, probabilities: np.ndarray) -> np.ndarray:
        if self._y_type == "multilabel-indicator":
            return (probabilities > 0.5).astype(int)
        if self._y_type == "binary":
            if len(self.classes_) == 1:
                return np.repeat(self.classes_, probabilities.shape[0])
            return self.classes_[(probabilities[:, 0] > 0.5).astype(np.intp)]
        return self.classes_[np.argmax(probabilities, axis=1)]

    def predict(self, X) -> np.ndarray:
        """Predicted classes, shape (n_samples,) (or (n_samples, n_labels) 0/1 for
        multi-label)."""
        return self._from_outputs(self._outputs(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), in the order of ``classes_``."""
        probabilities = self._outputs(X)
        if self._y_type == "binary":
            return np.concatenate((1 - probabilities, probabilities), axis=1)
        return probabilities

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of ``predict_proba``, from the output layer's logits: finite
        where a probability rounds to 0 (or 1 - p to 0), without a warning."""
        logits = self._outputs(X, logits=True)
        if self._y_type == "multiclass":
            shifted = logits - logits.max(axis=1, keepdims=True)
            return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        # log sigmoid(z) = -log(1 + e^-z); the binary case's columns are classes 0 and 1
        if self._y_type == "binary":
            logits = np.concatenate((-logits, logits), axis=1)
        return -np.logaddexp(logits.dtype.type(0), -logits)

    @available_if(lambda est: est._check_solver())
    @with_callbacks
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing the previous training.

        ``classes`` (all the classes across calls; for a multi-label indicator
        matrix, its column indices) is required on the first call.
        """
        self._check_params()
        # scikit-learn's rules: classes_ from ``classes``, required on the first call
        # (also for multi-label targets, whose labels must be among them) and the same
        # if given again
        if _check_partial_fit_first_call(self, classes):
            if type_of_target(y).startswith("multilabel"):
                self._y_type = "multilabel-indicator"
            else:
                self._y_type = "binary" if len(self.classes_) <= 2 else "multiclass"
        return self._fit(X, y, sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor`` on fastwb.

    The parameters, their defaults and the fitted attributes are those of
    ``sklearn.neural_network.MLPRegressor``, minimising half the squared error
    (``loss="squared_error"``) or half the Poisson deviance with a log link
    (``loss="poisson"``: an exp output, nonnegative targets); the extra
    parameters are the classifier's except ``class_weight``, and two more
    losses: ``loss="huber"`` (with ``huber_delta``) and ``"absolute_error"``.
    Several targets, ``y`` of shape (n_samples, n_outputs), train one network
    with several outputs.

    Parameters
    ----------
    loss : {"squared_error", "poisson", "huber", "absolute_error"}
        The loss, of the residual ``x = prediction - y``: ``x**2 / 2``;
        ``y log(y / mu) - y + mu`` with the prediction ``mu = exp(z)``;
        ``x**2 / 2`` for ``|x| <= huber_delta`` and ``huber_delta * (|x| -
        huber_delta / 2)`` beyond; ``|x|``. ``loss_`` averages it over samples
        (weighted by ``sample_weight``) and sums it over outputs, but averages
        the squared error over outputs as scikit-learn does.
    huber_delta : float, default 1.0
        Where the huber loss turns from square to linear (a fastwb extra: a
        float > 0, checked whatever the loss, which the other losses ignore).

    The other parameters are scikit-learn's and the classifier's extras.

    Examples
    --------
    >>> import numpy as np
    >>> from fastwb.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0)
    >>> reg.fit(X, X[:, 0] ** 2).score(X, X[:, 0] ** 2) > 0.95
    True
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float32", dropout=0.0, optimizer=None, n_threads=None,
                 callbacks=None, scoring=None, huber_delta=1.0):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, dtype=dtype,
            dropout=dropout, optimizer=optimizer, n_threads=n_threads, callbacks=callbacks,
            scoring=scoring)
        self.loss = loss
        self.huber_delta = huber_delta

    _score_function = staticmethod(r2_score)
    # scikit-learn's constraints but for ``activation`` and ``loss``, which fastwb
    # checks (more names)
    _parameter_constraints: dict = {**_sklearn_mlp.MLPRegressor._parameter_constraints,
                                    "activation": "no_validation", "loss": "no_validation"}

    def _loss_name(self) -> str:
        return REGRESSION_LOSSES[self.loss]

    def _huber_delta(self) -> float | None:
        return float(self.huber_delta) if self.loss == "huber" else None

    @property
    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    @property
    def _mean_over_outputs(self) -> bool:
        return self.loss == "squared_error" and self.n_outputs_ > 1

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        if not isinstance(self.loss, str) or self.loss not in REGRESSION_LOSSES:
            names = ", ".join(repr(name) for name in sorted(REGRESSION_LOSSES))
            raise _invalid(self, "loss", f"a str among {{{names}}}", self.loss)
        _real(self, "huber_delta", 0.0, low_open=True)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        y = _dense(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        targets = np.asarray(y, dtype=np.float64)
        if self.loss == "poisson" and (targets < 0).any():
            raise ValueError(f"loss='poisson' requires non-negative y; the minimum of y is "
                             f"{targets.min()}.")
        return X, targets.reshape(-1, 1) if targets.ndim == 1 else targets, None

    def _validation_truth(self, y_val, n_outputs: int) -> np.ndarray:
        """``y_val`` checked: real targets, as many as y has."""
        y = _dense(check_array(y_val, ensure_2d=False, dtype=np.float64,
                               accept_sparse=["csr", "csc"], input_name="y_val"))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (y.shape[1] if y.ndim == 2 else 1) != n_outputs:
            raise ValueError(f"y_val has {y.shape[1] if y.ndim == 2 else 1} target(s) per "
                             f"sample; y has {n_outputs}")
        return y

    def _truth(self, targets: np.ndarray) -> np.ndarray:
        return targets[:, 0] if targets.shape[1] == 1 else targets

    def _from_outputs(self, outputs: np.ndarray) -> np.ndarray:
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs

    def predict(self, X) -> np.ndarray:
        """Predicted values, shape (n_samples,) or (n_samples, n_outputs)."""
        return self._from_outputs(self._outputs(X))

    # scikit-learn's regressor has partial_fit for every solver (its availability
    # test is never false); with "lbfgs" it runs a whole lbfgs fit, continued
    @with_callbacks
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the previous training ("lbfgs": a
        whole lbfgs fit from the current weights, as scikit-learn's)."""
        self._check_params()
        return self._fit(X, y, sample_weight, incremental=True)
