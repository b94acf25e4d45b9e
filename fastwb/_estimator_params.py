"""Estimator parameters and fitted scalars as JSON, and back.

``fastwb.sklearn`` saves an estimator's constructor parameters and its fitted
scalars in the JSON header of a model file. JSON has no tuples and only
string keys, so tuples and dicts are tagged: ``(100, 50)`` is written as
``{"tuple": [100, 50]}`` and ``{0: 2.0}`` as ``{"dict": [[0, 2.0]]}``; NumPy
scalars and arrays become plain numbers and lists. ``decode`` turns a header's
values back into Python for ``fastwb.load`` and for ``fastwb info``, which
reads them without scikit-learn: this module needs nothing but NumPy.
"""
from __future__ import annotations

import numpy as np


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
    """The Python value that ``encode`` wrote; a ValueError for a dict it did not write."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"tuple"}:
            return tuple(decode(v) for v in value["tuple"])
        if set(value) == {"dict"}:
            return {decode(k): decode(v) for k, v in value["dict"]}
        raise ValueError(f"unexpected value {value!r}")
    return value
