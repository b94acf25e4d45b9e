"""What was built and what runs: ``fastwb.show_config`` (after ``numpy.show_config``),
and the one run-time switch of the kernels' arithmetic, ``set_flush_denormals``.

Build facts come from ``fastwb/_build_info.py``, which setup.py writes next to
the compiled extensions; runtime facts are read when asked.
"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import warnings
from typing import Any, Iterator

import numpy as np

from fastwb import _blas, _core
from fastwb._version import __version__

try:
    from fastwb._build_info import BUILD
except ImportError:     # compiled by something other than setup.py's build_ext
    BUILD = {}


def cpu_name() -> str:
    """The processor's model name, or ``platform.processor()`` where it cannot be read."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith(("model name", "Model", "cpu model")):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
    elif sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _blas_facts() -> dict[str, Any]:
    """The BLAS the kernels call and, with threadpoolctl, its library and threads."""
    source = _core.blas_source()
    info: dict[str, Any] = {"source": source}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["threadpoolctl"] = "not installed: thread counts unknown"
        return info
    # NumPy's bundled OpenBLAS when fastwb attached it, otherwise SciPy's
    path = _blas.numpy_openblas() if source == "numpy" else None
    for pool in threadpool_info():
        if pool.get("user_api") != "blas":
            continue
        if path is not None and os.path.realpath(pool["filepath"]) != os.path.realpath(path):
            continue
        if path is None and not any(part in pool["filepath"]
                                    for part in ("scipy.libs", f"scipy{os.sep}")):
            continue
        info.update({key: pool.get(key) for key in
                     ("internal_api", "version", "num_threads", "threading_layer",
                      "architecture", "filepath")})
        break
    return info


def _openmp_text(build: dict[str, Any]) -> str:
    state = build.get("openmp", "unknown")
    if state == "enabled":
        return "enabled"
    if state == "disabled":
        return "disabled on request (FASTWB_NO_OPENMP=1)"
    if state == "unavailable":
        return f"unavailable: {build.get('openmp_reason', '')}"
    return "unknown (no build record)"


def config() -> dict[str, Any]:
    """show_config's facts as nested dicts."""
    compiled, supported, selected = _core.simd_levels()
    return {
        "fastwb": {"version": __version__, "path": os.path.dirname(os.path.abspath(__file__))},
        "Python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "Machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpu": cpu_name(), "cores": os.cpu_count()},
        "Build": {
            "compiler": BUILD.get("compiler", "unknown"),
            "compiler version": BUILD.get("compiler_version", "unknown"),
            "compile args": BUILD.get("compile_args", []),
            "link args": BUILD.get("link_args", []),
            "cython": BUILD.get("cython_version", "unknown"),
            "numpy (built against)": BUILD.get("numpy_version", "unknown"),
            "python (built with)": BUILD.get("python_version", "unknown"),
            "openmp": _openmp_text(BUILD),
            "switches": BUILD.get("switches", {}),
            "cython directives": BUILD.get("cython_directives", {}),
        },
        "Runtime": {
            "numpy": np.__version__,
            "openmp compiled": _core.openmp_enabled(),
            "openmp max threads": _core.openmp_max_threads(),
            "blas": _blas_facts(),
            "simd": {"compiled": list(compiled), "supported": list(supported),
                     "selected": selected,
                     "FASTWB_SIMD": os.environ.get("FASTWB_SIMD", "")},
            "flush denormals": {"enabled": get_flush_denormals(),
                                "FASTWB_FLUSH_DENORMALS":
                                    os.environ.get("FASTWB_FLUSH_DENORMALS", "")},
        },
    }


def _format(value: Any, indent: int) -> list[str]:
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(" " * indent + f"{key}:")
            lines += _format(item, indent + 2)
        else:
            if isinstance(item, (list, tuple)):
                item = " ".join(map(str, item)) or "(none)"
            elif isinstance(item, dict):
                item = "(none)"
            lines.append(" " * indent + f"{key}: {item}")
    return lines


def show_config(mode: str = "stdout") -> dict[str, Any] | None:
    """Print how fastwb was built and what it runs on, like ``numpy.show_config``.

    Parameters
    ----------
    mode : {"stdout", "dicts"}
        ``"stdout"`` prints the report; ``"dicts"`` returns it as nested dicts
        instead (sections ``fastwb``, ``Python``, ``Machine``, ``Build``, ``Runtime``).

    Returns
    -------
    dict or None
        The report with ``mode="dicts"``, otherwise None.

    Examples
    --------
    >>> import fastwb
    >>> info = fastwb.show_config(mode="dicts")
    >>> info["Runtime"]["simd"]["selected"] in info["Runtime"]["simd"]["supported"]
    True
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    facts = config()
    if mode == "dicts":
        return facts
    print("\n".join(_format(facts, 0)))
    return None


def warn_if_serial() -> None:
    """One RuntimeWarning when OpenMP was wanted but unavailable at build time:
    pip hides the build's own output, so this is where a user learns of it."""
    if BUILD.get("openmp") != "unavailable":
        return
    warnings.warn(
        f"fastwb was built without OpenMP, so its kernels run on one core: "
        f"{BUILD.get('openmp_reason', 'reason unknown')}. Rebuild it from source with a "
        f"compiler that supports OpenMP (on macOS: brew install libomp), or build with "
        f"FASTWB_NO_OPENMP=1 to choose a serial build and silence this warning.",
        RuntimeWarning, stacklevel=3)


def set_flush_denormals(enabled: bool) -> bool:
    """Run fastwb's compiled calls with (the default) or without flush-to-zero
    and denormals-are-zero; returns the previous setting.

    With flushing on, every compiled call (``predict``, ``train_step``, ``fit``,
    ``loss``, gradients, updates) sets FTZ and DAZ in the calling thread and in
    fastwb's helper threads for its duration, and gives the caller its own
    floating-point mode back when it returns, also after an error or Ctrl-C.
    Subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) then read
    and compute as 0: on Intel CPUs each operation on one costs about a hundred
    cycles, and Adam's moments of parameters that never get a gradient decay
    into that range. Results then differ from ``fastwb.reference`` (which keeps
    subnormals) only where a subnormal value occurs; ``set_flush_denormals(False)``
    gives the reference's arithmetic back. The setting is process-wide; the
    environment variable ``FASTWB_FLUSH_DENORMALS=0`` turns it off at import.
    BLAS's own worker threads keep their own mode. Where the CPU has no such
    mode (neither x86-64 nor AArch64) the setting stays False.

    Parameters
    ----------
    enabled : bool
        Whether to flush.

    Returns
    -------
    bool
        The setting before this call.

    Examples
    --------
    >>> import fastwb
    >>> previous = fastwb.set_flush_denormals(False)
    >>> fastwb.get_flush_denormals()
    False
    >>> _ = fastwb.set_flush_denormals(previous)
    """
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    return _core.set_flush_denormals(bool(enabled))


def get_flush_denormals() -> bool:
    """Whether compiled calls flush subnormal floats to zero (see ``set_flush_denormals``)."""
    return _core.flush_denormals()


@contextlib.contextmanager
def flush_denormals(enabled: bool) -> Iterator[None]:
    """``set_flush_denormals(enabled)`` for the duration of a ``with`` block.

    Examples
    --------
    >>> import fastwb
    >>> with fastwb.flush_denormals(False):
    ...     fastwb.get_flush_denormals()
    False
    """
    previous = set_flush_denormals(enabled)
    try:
        yield
    finally:
        set_flush_denormals(previous)


def flush_denormals_from_environment() -> None:
    """Apply ``FASTWB_FLUSH_DENORMALS`` (0/false/off/no or 1/true/on/yes) at import."""
    raw = os.environ.get("FASTWB_FLUSH_DENORMALS", "").strip().lower()
    if not raw:
        return
    if raw in ("0", "false", "off", "no"):
        set_flush_denormals(False)
    elif raw in ("1", "true", "on", "yes"):
        set_flush_denormals(True)
    else:
        warnings.warn(f"FASTWB_FLUSH_DENORMALS={raw!r} is not one of 0, 1, false, true, off, "
                      f"on, no, yes: ignored (flushing denormals: {get_flush_denormals()})",
                      RuntimeWarning, stacklevel=3)
