"""scikit-learn as an optional dependency of fastwb (its drop-ins and the command line),
and what to install for ONNX export, Optuna and Dask.

A missing (or too old) scikit-learn is the user's to fix with one ``pip``
command; any other ImportError met while importing it is a real fault and
keeps its traceback, instead of being reported as "not installed".

This module imports no part of fastwb: ``fastwb.sklearn`` checks the version
with it, and the command line words its errors with it.
"""
from __future__ import annotations

import re

#: What to install, as every message about a missing scikit-learn says it.
SKLEARN_REQUIREMENT = 'scikit-learn >= 1.7: pip install "fastwb[sklearn]"'
#: The oldest scikit-learn whose API the drop-ins mirror (MLPRegressor's ``loss``).
SKLEARN_OLDEST = (1, 7)
#: What to install for ``fastwb.onnx``, as its messages say it.
ONNX_REQUIREMENT = 'onnx, onnxruntime and skl2onnx: pip install "fastwb[onnx]"'
#: What to install for ``fastwb.distributed``, as its messages say it.
MPI_REQUIREMENT = 'mpi4py and an MPI: pip install "fastwb[mpi]"'
#: What to install for ``fastwb.integrations.optuna``.
OPTUNA_REQUIREMENT = 'optuna: pip install "fastwb[optuna]"'
#: What to install for ``fastwb.integrations.dask``.
DASK_REQUIREMENT = 'dask[distributed,dataframe]: pip install "fastwb[dask]"'


def check_sklearn_version() -> None:
    """Raise ImportError when the installed scikit-learn is older than SKLEARN_OLDEST."""
    import sklearn
    found = tuple(int(part) for part in re.findall(r"\d+", sklearn.__version__)[:2])
    if found < SKLEARN_OLDEST:
        raise ImportError(f"fastwb.sklearn needs {SKLEARN_REQUIREMENT} (found "
                          f"{sklearn.__version__})", name="sklearn")


def sklearn_missing(error: ImportError) -> bool:
    """True when ``error`` says scikit-learn itself is absent or too old."""
    return (error.name or "").split(".")[0] == "sklearn"
