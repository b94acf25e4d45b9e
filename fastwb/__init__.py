"""fastwb: fast weights and biases.

Dense neural networks on the CPU: a compiled core (Cython, OpenMP, BLAS) under
a small Python API, with a pure-NumPy reference as its correctness oracle.
"""
from fastwb._core import openmp_enabled
from fastwb.layers import Dense
from fastwb.network import Network
from fastwb.optimizers import SGD, Optimizer

__version__ = "0.1.0"

__all__ = ["Dense", "Network", "Optimizer", "SGD", "openmp_enabled", "__version__"]
