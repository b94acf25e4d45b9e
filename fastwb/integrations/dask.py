"""Prediction over Dask collections: ``predict``, ``predict_proba`` and
``predict_log_proba`` of a fastwb model on a dask array or dask dataframe,
block by block on the workers (as dask-ml's ``ParallelPostFit``), for data
larger than one machine's memory.

The model is a ``Network``, a fitted ``MLPClassifier`` or ``MLPRegressor``, or
a fitted scikit-learn ``Pipeline`` ending in one (such as ``fastwb.load``
returns): anything with the method that pickles. It travels to the workers
once, as one task of the graph, not once per block, and every block is
predicted with one fastwb thread and one BLAS thread (threadpoolctl limits
OpenMP and BLAS around the call; a ``Network`` built with ``n_threads`` is
copied with ``n_threads=1``), so that a worker process per core does not start
a team of threads per core. A block's prediction is the model's own
in-process ``predict`` of that block.

    import dask.array as da
    from fastwb.integrations.dask import predict_proba
    X = da.from_zarr("features.zarr")           # (n, n_in), rows in chunks
    proba = predict_proba(fw.load("model.fwb"), X).compute()   # or .to_zarr(...)

A dask array is split into blocks of whole rows (its column chunks are joined
first); a dask dataframe is predicted partition by partition, as pandas frames,
so a Pipeline that selects columns by name sees them. Both give a dask array
of rows in the same chunks (of unknown sizes for a dataframe, as
``map_partitions`` gives, whatever its divisions: call
``compute_chunk_sizes()`` before ``to_zarr``). The shape and dtype of the output
come from predicting the first row in this process (of the first block or
partition that has rows: a filtered collection may start with empty ones),
which also reports an unfitted model or a wrong width here, before any work
is sent.

Estimators fitted with an explicit ``n_threads`` keep it on the workers; leave
it None (OpenMP's setting, which the worker's limit makes 1).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fastwb._optional import DASK_REQUIREMENT
from fastwb.network import Network


def _import_dask() -> tuple[Any, Any, Any]:
    """``dask``, ``dask.array`` and ``dask.dataframe``, or an ImportError that
    says what to install."""
    try:
        import dask
        import dask.array as da
        import dask.dataframe as dd
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("dask", "pandas", "pyarrow"):
            raise       # a fault inside an installed dask keeps its traceback
        raise ImportError(f"fastwb.integrations.dask needs {DASK_REQUIREMENT}",
                          name="dask") from error
    return dask, da, dd


def predict(model: Any, X: Any) -> Any:
    """``model.predict`` of every block of ``X``, computed on the workers.

    Parameters
    ----------
    model : Network, MLPClassifier, MLPRegressor or fitted Pipeline
        The fitted model; any object with ``predict`` that pickles.
    X : dask.array.Array (n, n_in) or dask.dataframe.DataFrame
        The samples, in blocks (or partitions) of rows.

    Returns
    -------
    dask.array.Array
        Lazy predictions, ``(n,)`` or ``(n, n_out)`` as ``model.predict`` gives
        them, chunked by rows as ``X`` is; ``.compute()`` gathers them.

    Raises
    ------
    ImportError
        If dask (with its array and dataframe parts) is not installed.
    TypeError
        If ``X`` is not a dask array or dataframe, or ``model`` has no ``predict``.
    ValueError
        If ``X`` is not 2-D or has no rows; what the model's own ``predict``
        raises on the first row (an unfitted model, a wrong width).
    """
    return _map_rows(model, X, "predict")


def predict_proba(model: Any, X: Any) -> Any:
    """``model.predict_proba`` of every block of ``X``, computed on the workers:
    ``(n, n_classes)`` class probabilities, for a classifier or a Pipeline
    ending in one (a ``Network``'s own ``predict`` already gives its softmax or
    sigmoid outputs). Parameters, result and errors as for ``predict``."""
    return _map_rows(model, X, "predict_proba")


def predict_log_proba(model: Any, X: Any) -> Any:
    """``model.predict_log_proba`` of every block of ``X``, computed on the
    workers: ``(n, n_classes)`` log-probabilities, for a classifier or a Pipeline
    ending in one. Parameters, result and errors as for ``predict``."""
    return _map_rows(model, X, "predict_log_proba")


def _map_rows(model: Any, X: Any, method: str) -> Any:
    """``getattr(model, method)`` over the row blocks of ``X``, lazily."""
    dask, da, dd = _import_dask()
    if not callable(getattr(model, method, None)):
        hint = (": its predict gives the output layer's probabilities"
                if isinstance(model, Network) and method != "predict" else "")
        raise TypeError(f"{type(model).__name__} has no {method}{hint}")
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D dask array (n_samples, n_features), got "
                             f"{X.ndim} dimension(s)")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})      # a block holds whole rows
    elif not isinstance(X, dd.DataFrame):
        raise TypeError(f"X must be a dask array or dask dataframe, got {type(X).__name__}; "
                        f"for data in memory call the model's own {method}")
    first = _first_row(X, da)
    probe = np.asarray(getattr(model, method)(first))
    meta = np.empty((0, *probe.shape[1:]), dtype=probe.dtype)
    # one task holds the model: each worker fetches it once, not once per block
    shipped = dask.delayed(_for_workers, pure=True)(model)
    if isinstance(X, dd.DataFrame):
        return X.map_partitions(_predict_block, shipped, method, meta, meta=meta)
    if probe.ndim == 1:
        return da.map_blocks(_predict_block, X, shipped, method, meta, drop_axis=1,
                             chunks=(X.chunks[0],), meta=meta)
    return da.map_blocks(_predict_block, X, shipped, method, meta,
                         chunks=(X.chunks[0], *((width,) for width in probe.shape[1:])),
                         meta=meta)


def _first_row(X: Any, da: Any) -> Any:
    """The first row of ``X`` (an array of one row, or a frame), computed here:
    from the first rows when the row chunks are known, else from the first block
    (or partition) that has rows, computing them one by one (a filtered
    collection often has empty ones)."""
    if isinstance(X, da.Array) and not np.isnan(X.shape[0]):
        if X.shape[0] == 0:
            raise ValueError("X has no rows")
        return X[:1].compute()
    if isinstance(X, da.Array):
        blocks = (X.blocks[i].compute() for i in range(X.numblocks[0]))
    else:       # head reads no more of a partition than it needs
        blocks = (X.partitions[i].head(1, npartitions=1) for i in range(X.npartitions))
    with warnings.catch_warnings():     # dask < 2025 warns of each empty partition
        warnings.filterwarnings("ignore", "Insufficient elements for `head`")
        for block in blocks:
            if block.shape[0]:        # sparse blocks have no len
                return block[:1]
    raise ValueError("X has no rows")


def _for_workers(model: Any) -> Any:
    """The model as the workers run it: a Network that asked for threads
    rebuilt with ``n_threads=1`` (the rest follow OpenMP's limit)."""
    if isinstance(model, Network) and model.n_threads not in (None, 1):
        config, arrays = model.get_state()
        config["network"] = {**config["network"], "n_threads": 1}
        return Network.from_state(config, arrays)
    return model


def _predict_block(block: Any, model: Any, method: str, empty: np.ndarray) -> np.ndarray:
    """One block's prediction on a worker, with one OpenMP and one BLAS thread;
    ``empty`` (no rows, the output's dtype) for a block without rows, which
    scikit-learn's estimators refuse."""
    if block.shape[0] == 0:
        return empty
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        return getattr(model, method)(block)
