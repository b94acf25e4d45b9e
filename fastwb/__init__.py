"""fastwb: fast weights and biases.

Dense neural networks on the CPU: a compiled core (Cython, OpenMP, BLAS) under
a small Python API, with a pure-NumPy reference as its correctness oracle.
"""
from fastwb import _blas
from fastwb._core import blas_source, openmp_enabled
from fastwb.layers import Dense
from fastwb.network import Network
from fastwb.optimizers import SGD, Optimizer

__version__ = "0.1.0"

_blas.select("auto")

__all__ = ["Dense", "Network", "Optimizer", "SGD", "blas_source", "openmp_enabled",
           "__version__"]
