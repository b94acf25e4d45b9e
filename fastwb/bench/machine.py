"""What the numbers were measured on, and its threads.

The CPU, the core count, the load, the libraries and their thread pools go
with every result (benchmarks name the CPU they ran on); ``thread_counts``
gives the thread counts a scaling run sweeps, ``limit_blas`` caps NumPy's BLAS
threads.
"""
from __future__ import annotations

import os
import platform
import sys

import numpy as np

import fastwb
from fastwb._config import cpu_name


def machine() -> dict:
    """The CPU, cores, system and library versions of this run, and the load
    average (1, 5, 15 minutes; None where unknown) when it was called."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "usable_cores": usable,
            "load_average": load,
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "numpy": np.__version__,
            "fastwb": fastwb.__version__, "blas": fastwb.blas_source(),
            "openmp": fastwb.openmp_enabled()}


def thread_counts(cores: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, ... below ``cores`` (default: ``os.cpu_count()``), then ``cores``."""
    cores = cores or os.cpu_count() or 1
    return tuple(1 << i for i in range(cores.bit_length()) if 1 << i < cores) + (cores,)


def thread_pools() -> list[dict] | None:
    """The thread pools (BLAS, OpenMP) loaded in this process, or None without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return threadpool_info()


def limit_blas(threads: int):
    """Limit NumPy's BLAS (used by fastwb, the reference and scikit-learn) to
    ``threads``; returns the limiter (call ``restore_original_limits()`` on it),
    or None, with a note on stderr, without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed: BLAS uses its default thread count",
              file=sys.stderr)
        return None
    return threadpool_limits(limits=threads, user_api="blas")
