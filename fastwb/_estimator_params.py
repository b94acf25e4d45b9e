"""Estimator parameters and fitted scalars as JSON, and back.

``fastwb.sklearn`` saves an estimator's constructor parameters and its fitted
scalars in the JSON header of a model file. JSON has no tuples and only
string keys, so tuples and dicts are tagged: ``(100, 50)`` is written as
``{"tuple": [100, 50]}`` and ``{0: 2.0}`` as ``{"dict": [[0, 2.0]]}``; NumPy
scalars and arrays become plain numbers and lists. ``decode`` turns a header's
values back into Python for ``fastwb.load`` and for ``fastwb info``, which
reads them without scikit-learn: this module needs nothing but NumPy. So
does ``check_fitted_scalars``, the checks of those scalars that both make,
and ``text_array``, the form of the labels, names and categories they save.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fastwb._validation import MAX_COUNT, shown


def encode(value):
    """A JSON-able form of a parameter value, tuples and dicts marked (the file's
    header writes non-finite floats itself)."""
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [encode(v) for v in value.tolist()]
    if isinstance(value, np.random.RandomState):
        return None             # its future draws cannot be saved; a loaded model refits anew
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a parameter value of type {type(value).__name__}: {value!r}")


def decode(value):
    """The Python value that ``encode`` wrote; a ValueError for what it did not write."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"tuple"} and isinstance(value["tuple"], list):
            return tuple(decode(v) for v in value["tuple"])
        if set(value) == {"dict"} and isinstance(value["dict"], list) and all(
                isinstance(pair, list) and len(pair) == 2 for pair in value["dict"]):
            pairs = [(decode(k), decode(v)) for k, v in value["dict"]]
            try:
                return dict(pairs)
            except TypeError:       # a key that is a list: encode writes none
                raise ValueError(f"unexpected dict keys in {shown(value)}") from None
        raise ValueError(f"unexpected value {shown(value)}")
    return value


def check_fitted_scalars(scalars: Mapping[str, Any], sizes: Sequence[int]) -> None:
    """Refuse fitted scalars of a wrong type, or that disagree with the network
    of layer ``sizes`` (those absent are not checked; a fit interrupted in its
    first epoch has no ``loss_``): the counts are
    nonnegative ints up to 2**53, the losses and scores floats (None where
    scikit-learn has None), the shape attributes those of the network.

    Raises
    ------
    ValueError
        Naming the attribute.
    """
    for name in ("n_iter_", "t_", "_no_improvement_count"):
        value = scalars.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not \
                0 <= value <= MAX_COUNT:
            raise ValueError(f"{name} must be a nonnegative int up to 2**53, got {shown(value)}")
    for name in ("loss_", "best_loss_", "best_validation_score_"):
        value = scalars.get(name)
        if name in scalars and not (isinstance(value, float)
                                    or (value is None and name != "loss_")):
            raise ValueError(f"{name} must be a float, got {shown(value)}")
    expected = {"n_features_in_": sizes[0], "n_outputs_": sizes[-1], "n_layers_": len(sizes)}
    for name, value in expected.items():
        if name in scalars and (scalars[name] != value or isinstance(scalars[name], bool)):
            raise ValueError(f"{name} is {shown(scalars[name])}, but the network and targets "
                             f"imply {value!r}")


def text_array(values, name: str) -> np.ndarray:
    """``values`` (strings) as the fixed-width unicode array a file holds. Such
    an array drops trailing NUL characters, so a string ending in one is
    refused rather than saved changed (a category or label that would load
    as another)."""
    values = list(values)
    for value in values:
        if isinstance(value, str) and value.endswith("\0"):
            raise ValueError(f"cannot save {name}: the text {shown(value)} ends in a NUL "
                             f"character, which a fastwb file cannot hold")
    return np.array(values, dtype=str) if values else np.array([], dtype="<U1")
