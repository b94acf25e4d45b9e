"""Which BLAS library the compiled core calls.

NumPy's and SciPy's wheels each bundle their own OpenBLAS, each with its own
thread pool whose idle workers spin for a while after every call. When a
program alternates NumPy products with fastwb steps, the two pools fight over
the cores: on 16 cores a 784-256-128-10 training step took 36 ms next to NumPy
work against 0.65 ms alone. So fastwb calls NumPy's OpenBLAS when it can find
it (the 64-bit-integer ``scipy-openblas64`` that NumPy's wheels ship): one pool
then serves both, and threadpoolctl limits on NumPy's BLAS apply to fastwb too.
Anywhere else (conda's MKL, a system BLAS, other platforms) fastwb uses
``scipy.linalg.cython_blas``.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from fastwb import _core


def numpy_openblas() -> str | None:
    """Path of the ILP64 OpenBLAS bundled in NumPy's wheel, or None."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError, ValueError):
        return None
    if blas.get("name") != "scipy-openblas" or "USE64BITINT" not in str(
            blas.get("openblas configuration", "")):
        return None
    here = os.path.dirname(np.__file__)
    for folder in (os.path.join(os.path.dirname(here), "numpy.libs"),   # Linux wheels
                   os.path.join(here, ".dylibs")):                       # macOS wheels
        found = sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*")))
        if found:
            return found[0]
    return None


def select(source: str = "auto") -> str:
    """Route the core's products to ``"numpy"``'s or ``"scipy"``'s BLAS.

    ``"auto"`` takes NumPy's when it is found. Returns the source in use.
    """
    if source not in ("auto", "numpy", "scipy"):
        raise ValueError(f"source must be 'auto', 'numpy' or 'scipy', got {source!r}")
    if source == "scipy":
        _core.detach_blas()
        return _core.blas_source()
    path = numpy_openblas()
    if path is not None and _core.attach_blas(path.encode(), b"scipy_", b"_64_"):
        return _core.blas_source()
    if source == "numpy":
        raise RuntimeError("NumPy's bundled OpenBLAS was not found or lacks the BLAS "
                           "functions fastwb needs")
    _core.detach_blas()
    return _core.blas_source()
