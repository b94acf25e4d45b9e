"""Looking inside a network: statistics of its weights, biases and activations.

``Network.summary`` builds a ``Summary`` from here, and ``fastwb.Monitor``
reads the same statistics every epoch. The statistics of the parameters come
from one compiled pass over the flat buffer (``fastwb._stats``; the reference
backend uses ``fastwb.reference.layer_statistics``, its specification).
"""
from __future__ import annotations

import numpy as np

from fastwb import _validation, reference
from fastwb._sparse import SparseRows
from fastwb._stats import STATISTICS, layer_statistics

__all__ = ["STATISTICS", "Summary", "activation_statistics", "parameter_statistics", "summary"]


def parameter_statistics(network, grads=None, previous=None, initial=None):
    """``(stats, correlation)`` of the network's parameters, as
    ``fastwb._stats.layer_statistics`` describes: ``stats[l, 0]`` for layer l's
    weights, ``stats[l, 1]`` for its bias, one column per name in ``STATISTICS``."""
    statistics = layer_statistics if network.backend == "compiled" else reference.layer_statistics
    return statistics(network.parameters, network.sizes, grads, previous, initial)


def activation_statistics(network, X) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, on the rows of ``X``: the fraction of dead units (ReLU layers:
    output 0 for every row; NaN for other activations) and the mean activation.
    The engine checks X as ``predict`` does."""
    return network.activation_statistics(X)


def checked_rows(network, X) -> np.ndarray | SparseRows:
    """X as rows ``(n, n_in)`` of the network's dtype, checked (one sample becomes one
    row; sparse X stays sparse, as ``SparseRows``)."""
    rows = _validation.check_X(X, network.sizes[0], network.dtype)[0]
    return rows if isinstance(rows, SparseRows) else np.atleast_2d(rows)


def layer_records(network, stats: np.ndarray, correlation: np.ndarray, dead=None,
                  mean_activation=None) -> list[dict]:
    """One dict per layer: its shape, parameter count, activation, the weight and
    bias statistics, the weight-bias correlation and, given, the activation statistics."""
    records = []
    for l, (k, m) in enumerate(zip(network.sizes[:-1], network.sizes[1:])):
        record = {"layer": l + 1, "shape": (k, m), "n_parameters": k * m + m,
                  "activation": network.activations[l]}
        for part, values in (("weight", stats[l, 0]), ("bias", stats[l, 1])):
            for name in ("mean", "std", "min", "max", "norm"):
                record[f"{part}_{name}"] = float(values[STATISTICS.index(name)])
        record["correlation"] = _number(correlation[l])
        record["dead_fraction"] = None if dead is None else _number(dead[l])
        record["mean_activation"] = None if mean_activation is None else float(mean_activation[l])
        records.append(record)
    return records


def _number(value) -> float | None:
    """A float, or None for NaN (not applicable)."""
    return None if np.isnan(value) else float(value)


class Summary:
    """A per-layer table of a network's weights and biases (``Network.summary``).

    ``print(summary)`` shows it as text; ``records`` holds one dict per layer
    (keys ``layer``, ``shape``, ``n_parameters``, ``activation``,
    ``weight_{mean,std,min,max,norm}``, ``bias_{mean,std,min,max,norm}``,
    ``correlation`` — of each unit's mean incoming weight and its bias, across
    the layer's units —, and ``dead_fraction``, ``mean_activation`` when data
    was given, else None); ``to_frame()`` makes a pandas DataFrame of them.
    """

    def __init__(self, network, records: list[dict], n_rows: int | None = None):
        self.records = records
        self.n_rows = n_rows
        self._title = (f"{type(network).__name__} {list(network.sizes)}, loss "
                       f"{network.loss_name}, {network.dtype.name}, "
                       f"{network.n_parameters:,} parameters "
                       f"({network.n_parameters * network.dtype.itemsize / 1024:,.1f} KiB)")

    def to_frame(self):
        """The records as a pandas DataFrame, one row per layer (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Summary.to_frame needs pandas: pip install pandas; "
                              "Summary.records holds the same rows as dicts") from None
        return pandas.DataFrame(self.records).set_index("layer")

    def __str__(self) -> str:
        with_data = self.n_rows is not None
        header = (f"{'layer':<7}{'activation':<12}{'shape':<13}{'params':>9}  {'':2}"
                  f"{'mean':>9}{'std':>9}{'min':>9}{'max':>9}{'L2 norm':>10}{'r(w,b)':>8}")
        if with_data:
            header += f"{'dead':>8}{'mean act':>10}"
        lines = [self._title, header]
        for r in self.records:
            shape = f"{r['shape'][0]} x {r['shape'][1]}"
            for part in ("weight", "bias"):
                first = part == "weight"
                line = (f"{r['layer'] if first else '':<7}{r['activation'] if first else '':<12}"
                        f"{shape if first else '':<13}"
                        f"{format(r['n_parameters'], ',') if first else '':>9}  {'W' if first else 'b':<2}"
                        + "".join(f"{r[f'{part}_{name}']:+9.4f}" if name != "std"
                                  else f"{r[f'{part}_std']:9.4f}"
                                  for name in ("mean", "std", "min", "max"))
                        + f"{r[f'{part}_norm']:10.4f}")
                if first:
                    r_wb = r["correlation"]
                    line += f"{'' if r_wb is None else f'{r_wb:+.2f}':>8}"
                    if with_data:
                        dead = r["dead_fraction"]
                        line += (f"{'' if dead is None else f'{dead:.0%}':>8}"
                                 f"{r['mean_activation']:10.4f}")
                lines.append(line)
        lines.append("r(w,b): correlation across the layer's units of a unit's mean incoming "
                     "weight and its bias")
        if with_data:
            lines.append(f"dead: ReLU units that output 0 on all {self.n_rows} rows given; "
                         "mean act: the layer's mean output on them")
        return "\n".join(lines)

    __repr__ = __str__


def summary(network, X=None) -> Summary:
    """The body of ``Network.summary``; see there."""
    stats, correlation = parameter_statistics(network)
    dead = mean = n_rows = None
    if X is not None:
        dead, mean = activation_statistics(network, X)       # checks X
        n_rows = np.atleast_2d(np.asarray(X)).shape[0]
    return Summary(network, layer_records(network, stats, correlation, dead, mean), n_rows)
