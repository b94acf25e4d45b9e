"""Which columns of its input a fitted scikit-learn ColumnTransformer takes,
as positions: what the command line (reading a model's text columns) and the
ONNX export (routing inputs) both need. Needs nothing but NumPy."""
from __future__ import annotations

import numpy as np


def column_positions(columns, n_features: int, names: list | None) -> list[int]:
    """The positions of a fitted ColumnTransformer's columns: indices, a boolean mask,
    names, or a slice of indices or (both ends included, as pandas) of names."""
    where = {str(name): j for j, name in enumerate(names or [])}

    def position(name) -> int:
        if str(name) not in where:
            raise ValueError(f"the pipeline's ColumnTransformer takes a column "
                             f"{str(name)!r} that its input has not (its columns: {names})")
        return where[str(name)]

    if isinstance(columns, slice):
        if isinstance(columns.start, str) or isinstance(columns.stop, str):
            start = position(columns.start) if columns.start is not None else None
            stop = position(columns.stop) + 1 if columns.stop is not None else None
            columns = slice(start, stop, columns.step)
        return list(range(n_features))[columns]
    chosen = np.atleast_1d(np.asarray(columns))
    if chosen.dtype.kind == "b":
        return np.flatnonzero(chosen).tolist()
    if chosen.dtype.kind in "iu":
        return (chosen % n_features).tolist()
    return [position(name) for name in chosen]
