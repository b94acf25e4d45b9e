"""The specification's names and constants: the activations, losses and update
rules fastwb knows, the rules that pair them, and the constants both
implementations share.

The math itself is in ``fastwb.reference`` (NumPy) and ``fastwb._core``
(compiled); both take their constants from here.
"""
from __future__ import annotations

import enum
import math
import numbers

import numpy as np

from fastwb._validation import shown

#: Slope of ``leaky_relu`` for negative inputs.
LEAKY_SLOPE = 0.01

#: ``elu``'s alpha: the negative saturation value is -ELU_ALPHA.
ELU_ALPHA = 1.0

#: ``selu``'s constants (Klambauer et al. 2017, "Self-Normalizing Neural
#: Networks"; PyTorch's and Keras's): selu(z) = SELU_SCALE * elu(z) with alpha SELU_ALPHA.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: Activations, by the name a layer takes. ``softmax`` and ``exp`` are for the
#: output layer only.
#: ``gelu`` is the exact form z * Phi(z) (PyTorch's default, not its tanh
#: approximation); ``swish`` is z * sigmoid(z), also called ``silu``.
ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu",
               "softplus", "swish", "softmax", "exp")

#: Activations only an output layer takes (each goes with the loss that fuses it).
OUTPUT_ONLY_ACTIVATIONS = ("softmax", "exp")

#: Losses, by the name a network takes.
LOSSES = ("mse", "binary_cross_entropy", "softmax_cross_entropy", "poisson", "huber", "mae")

#: The losses of classification: their outputs are probabilities.
CLASSIFICATION_LOSSES = ("binary_cross_entropy", "softmax_cross_entropy")

#: The output activation each loss implies when none is given.
OUTPUT_ACTIVATION = {
    "mse": "identity",
    "binary_cross_entropy": "sigmoid",
    "softmax_cross_entropy": "softmax",
    "poisson": "exp",
    "huber": "identity",
    "mae": "identity",
}

#: The losses computed from the output layer's z, with its activation fused in
#: (the others take the activation's output).
FUSED_LOSSES = {"binary_cross_entropy": "sigmoid", "softmax_cross_entropy": "softmax",
                "poisson": "exp"}

#: Huber's default delta, where its square turns linear (PyTorch's HuberLoss default).
HUBER_DELTA = 1.0

#: Optimizer update rules (AdamW is "adam" with a decoupled weight decay).
OPTIMIZERS = ("sgd", "rmsprop", "adagrad", "adam")

#: The settings an update rule may take, by name; a rule's record holds every
#: one of them (0 where the rule does not use it, and for clipping: off).
HYPERPARAMETERS = ("momentum", "nesterov", "rho", "beta1", "beta2", "eps", "weight_decay",
                   "clip_norm", "clip_value")

#: The state buffers of each rule, by name, each laid out like the parameters
#: (SGD has its velocity only with momentum).
STATE_BUFFERS = {"sgd": ("momentum_buffer",), "rmsprop": ("square_avg",),
                 "adagrad": ("sum_squares",), "adam": ("exp_avg", "exp_avg_sq")}

#: An optimizer's counters, in the order of its int64 counter array, which the
#: engines advance together with the parameters.
COUNTERS = ("step", "epoch", "samples_seen")


class FitStatus(enum.IntEnum):
    """How an engine's training call (``fit_epoch``, ``train_step``) ended."""

    DONE = 0
    DIVERGED = 1        # a batch's loss was not finite; that batch was not applied
    INTERRUPTED = 2     # SIGINT arrived; stopped early at a batch boundary
    OVERFLOW = 3        # the loss was finite, the update would leave a parameter
    #                     NaN or infinite; it was not applied


_ACTIVATION_ALIASES = {"linear": "identity", "none": "identity", "silu": "swish"}
_LOSS_ALIASES = {
    "mean_squared_error": "mse",
    "bce": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
    "cross_entropy": "softmax_cross_entropy",
    "categorical_crossentropy": "softmax_cross_entropy",
    "poisson_deviance": "poisson",
    "huber_loss": "huber",
    "l1": "mae",
    "mean_absolute_error": "mae",
    "absolute_error": "mae",
}


def resolve_activation(name: str, *, output: bool = False) -> str:
    """The canonical activation name; ``softmax`` only when ``output`` is true."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str), got {shown(name)}")
    canonical = _ACTIVATION_ALIASES.get(name.lower(), name.lower())
    if canonical not in ACTIVATIONS:
        raise ValueError(f"unknown activation {shown(name)}; choose one of "
                         f"{', '.join(ACTIVATIONS)}")
    if canonical in OUTPUT_ONLY_ACTIVATIONS and not output:
        raise ValueError(f"{canonical} is an output activation; hidden layers take "
                         + ", ".join(a for a in ACTIVATIONS if a not in OUTPUT_ONLY_ACTIVATIONS))
    return canonical


def resolve_loss(name: str) -> str:
    """The canonical loss name."""
    if not isinstance(name, str):
        raise TypeError(f"loss must be a name (str), got {shown(name)}")
    canonical = _LOSS_ALIASES.get(name.lower(), name.lower())
    if canonical not in LOSSES:
        raise ValueError(f"unknown loss {shown(name)}; choose one of {', '.join(LOSSES)}")
    return canonical


def check_huber_delta(loss: str, huber_delta) -> float | None:
    """Huber's delta for ``loss``: ``HUBER_DELTA`` when None, a finite number
    > 0 when given; None for the other losses, which refuse one."""
    if loss != "huber":
        if huber_delta is not None:
            raise ValueError(f"huber_delta is a setting of the huber loss, not of {loss}")
        return None
    if huber_delta is None:
        return HUBER_DELTA
    if isinstance(huber_delta, (bool, np.bool_)) or not isinstance(huber_delta, numbers.Real):
        raise TypeError(f"huber_delta must be a number, got {huber_delta!r}")
    delta = float(huber_delta)
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"huber_delta must be finite and > 0, got {huber_delta!r}")
    return delta


def check_output_activation(loss: str, activation: str, n_out: int) -> None:
    """Refuse pairings the fused loss kernels do not compute.

    Binary cross-entropy is computed on logits with the sigmoid fused in,
    softmax cross-entropy with the softmax fused in and the Poisson loss on
    the log of its mean with the exp fused in, so each needs its own output
    activation; MSE, Huber and MAE take any activation but those.
    """
    needed = FUSED_LOSSES.get(loss)
    if needed is not None and activation != needed:
        raise ValueError(f"{loss} needs a{'n' if needed == 'exp' else ''} {needed} output "
                         f"layer, got {shown(activation)}")
    owner = {fused: name for name, fused in FUSED_LOSSES.items()}.get(activation)
    if needed is None and activation in OUTPUT_ONLY_ACTIVATIONS:
        raise ValueError(f"a{'n' if activation == 'exp' else ''} {activation} output layer "
                         f"goes with {owner}, not {loss}")
    if loss == "softmax_cross_entropy" and n_out < 2:
        raise ValueError("softmax_cross_entropy needs at least 2 outputs; for one output "
                         "use binary_cross_entropy")
