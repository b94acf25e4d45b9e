"""fastwb: fast weights and biases.

Dense neural networks on the CPU: a compiled core (Cython, OpenMP, BLAS) under
a small Python API, with a pure-NumPy reference as its correctness oracle.
"""
from __future__ import annotations

import importlib.machinery
import os


def _unbuilt_error() -> ImportError | None:
    """The ImportError to raise when ``fastwb._core`` cannot be imported because
    it was never built here; None when it was, and its own error says why.

    The usual cause is running Python in a checkout of fastwb: its ``fastwb``
    folder, which holds no compiled extension, hides the installed package.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    names = os.listdir(here)
    loadable = {"_core" + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES}
    if loadable.intersection(names):
        return None
    built = [name for name in names if name.startswith("_core.") and name.endswith((".so", ".pyd"))]
    other = f" (it holds {', '.join(sorted(built))}, built for another Python)" if built else ""
    return ImportError(
        f"fastwb's compiled extension fastwb._core is not built in {here}{other}. This looks "
        f"like a fastwb source tree: Python imports it instead of an installed fastwb when "
        f"it runs in the folder above it. Run Python from another folder to use the "
        f"installed fastwb (`pip install .` in the source tree installs it), or build the "
        f"extension here with `pip install -e .`.", name="fastwb._core", path=here)


try:
    from fastwb import _core
except ImportError:
    _unbuilt = _unbuilt_error()
    if _unbuilt is None:
        raise
    raise _unbuilt from None    # the loader's own message misleads here

from fastwb import _blas, _config, initializers, schedules
from fastwb._config import flush_denormals, get_flush_denormals, set_flush_denormals, show_config
from fastwb._core import blas_source, openmp_enabled
from fastwb.callbacks import Callback, EarlyStopping, History
from fastwb.layers import Dense
from fastwb.monitor import HealthWarning, Monitor
from fastwb.network import Network
from fastwb.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from fastwb.saving import load, save
from fastwb.tracking import WandbCallback
from fastwb._version import __version__

_blas.select("auto")
_config.warn_if_serial()
_config.flush_denormals_from_environment()

__all__ = ["Adagrad", "Adam", "AdamW", "Callback", "Dense", "EarlyStopping", "HealthWarning",
           "History", "Monitor", "Network", "Optimizer", "RMSprop", "SGD", "WandbCallback",
           "blas_source", "flush_denormals", "get_flush_denormals", "initializers", "load",
           "openmp_enabled", "save", "schedules", "set_flush_denormals", "show_config",
           "__version__"]
