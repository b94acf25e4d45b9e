"""fastwb: fast weights and biases.

Dense neural networks on the CPU: a compiled core (Cython, OpenMP, BLAS) under
a small Python API, with a pure-NumPy reference as its correctness oracle.
"""
from fastwb import _blas, _config, initializers, schedules
from fastwb._config import show_config
from fastwb._core import blas_source, openmp_enabled
from fastwb.callbacks import Callback, EarlyStopping, History
from fastwb.layers import Dense
from fastwb.monitor import HealthWarning, Monitor
from fastwb.network import Network
from fastwb.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from fastwb.saving import load, save
from fastwb.tracking import WandbCallback

__version__ = "0.1.0"

_blas.select("auto")
_config.warn_if_serial()

__all__ = ["Adagrad", "Adam", "AdamW", "Callback", "Dense", "EarlyStopping", "HealthWarning",
           "History", "Monitor", "Network", "Optimizer", "RMSprop", "SGD", "WandbCallback",
           "blas_source", "initializers", "load", "openmp_enabled", "save", "schedules",
           "show_config", "__version__"]
