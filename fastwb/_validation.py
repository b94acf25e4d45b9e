"""Input checks that run before any compiled code.

Every function here either returns an array a kernel can take as it is
(C-contiguous, native byte order, the network's dtype, finite) or raises a
``TypeError``/``ValueError`` that names the problem. The compiled engine runs
its own quick acceptance test first and calls these only for input it does not
accept, so the rules and messages live here alone.
"""
from __future__ import annotations

import math
import numbers
import operator
import os
from collections.abc import Mapping
from typing import Any, Literal, overload

import numpy as np

from fastwb import _sparse


def _as_real_array(value, name: str) -> np.ndarray:
    if _sparse.is_sparse(value):
        raise TypeError(f"{name} is a sparse matrix; fastwb takes {name} as a dense array "
                        "(call .toarray()): only X may be sparse")
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):
        raise ValueError(f"{name} has masked entries; fill or drop them first")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} could not be read as a rectangular numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {arr.dtype}; fastwb needs real numbers (bool, integer or float)")
    return arr


def _check_finite(arr: np.ndarray, name: str, cast_to=None) -> None:
    if arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = first[0] if len(first) == 1 else first
        hint = f" after conversion to {cast_to} (values beyond its range)" if cast_to else ""
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s){hint}; the first is at "
            f"index {where}")


def _convert(arr: np.ndarray, name: str, dtype) -> np.ndarray:
    """arr as a C-contiguous, aligned, native-order array of dtype, checked finite."""
    _check_finite(arr, name)
    with np.errstate(over="ignore"):
        out = np.require(arr, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])
    if out.dtype != arr.dtype:
        _check_finite(out, name, cast_to=out.dtype)
    return out


def check_assignment(value, shape: tuple, dtype, name: str) -> np.ndarray:
    """A value to write into parameters of ``shape``: real, that shape, finite in ``dtype``."""
    arr = _as_real_array(value, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return _convert(arr, name, dtype)


def check_X(X, n_in: int, dtype) -> tuple[Any, bool]:
    """Return X as an (n, n_in) array of ``dtype`` and whether it was one sample.

    A 1-D X of length ``n_in`` is one sample. Integer, bool and other float
    dtypes are converted; non-contiguous and read-only arrays are accepted
    (copied only when the layout requires it). A scipy.sparse X (or checked
    ``SparseRows``) comes back as ``fastwb._sparse.SparseRows``, never dense.
    """
    if isinstance(X, _sparse.SparseRows) or _sparse.is_sparse(X):
        return _sparse.check(X, n_in, dtype)
    arr = _as_real_array(X, "X")
    single = arr.ndim == 1
    if arr.ndim == 1:
        if arr.shape[0] != n_in:
            raise ValueError(
                f"X has shape {arr.shape}: a 1-D X is one sample and needs {n_in} values "
                f"(pass shape (n_samples, {n_in}) for a batch)")
        arr = arr.reshape(1, n_in)
    elif arr.ndim == 2:
        if arr.shape[1] != n_in:
            raise ValueError(
                f"X has {arr.shape[1]} features (shape {arr.shape}); the network takes {n_in}")
    else:
        raise ValueError(
            f"X must be 1-D (one sample) or 2-D (n_samples, {n_in}); got {arr.ndim}-D "
            f"shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("X is empty: it has 0 samples")
    return _convert(arr, "X", dtype), single


def check_y(y, n: int, n_out: int, loss: str, dtype, single: bool = False) -> np.ndarray:
    """Return y for ``loss`` on a batch of n samples.

    Float targets come back as an (n, n_out) array of ``dtype``; softmax
    cross-entropy also takes integer class labels of shape (n,) (or a scalar for
    one sample), which come back as ``np.intp`` in [0, n_out).
    """
    arr = _as_real_array(y, "y")
    if loss == "softmax_cross_entropy" and not (
            arr.ndim == 2 or (single and arr.ndim == 1 and arr.shape[0] == n_out)):
        return _check_labels(arr, n, n_out, single)
    if arr.shape == (n, n_out):
        pass
    elif arr.ndim == 1 and n_out == 1 and arr.shape[0] == n:
        arr = arr.reshape(n, 1)
    elif single and arr.ndim <= 1 and arr.size == n_out:
        arr = arr.reshape(1, n_out)
    else:
        labels = f" or class labels of shape ({n},)" if loss == "softmax_cross_entropy" else ""
        raise ValueError(f"y has shape {arr.shape}; expected ({n}, {n_out}) for {n} sample(s) "
                         f"and {n_out} output(s){labels}")
    targets = _convert(arr, "y", dtype)
    if loss == "binary_cross_entropy" and ((targets < 0) | (targets > 1)).any():
        raise ValueError(
            f"binary cross-entropy targets must lie in [0, 1]; y ranges from {targets.min()} "
            f"to {targets.max()}")
    if loss == "poisson" and not (targets >= 0).all():
        raise ValueError(f"poisson targets must be nonnegative counts or rates; y has minimum "
                         f"{targets.min()}")
    if loss == "softmax_cross_entropy" and (targets < 0).any():
        raise ValueError("softmax cross-entropy targets must be nonnegative (one-hot rows or "
                         f"class probabilities); y has minimum {targets.min()}")
    return targets


def _check_labels(arr: np.ndarray, n: int, n_out: int, single: bool) -> np.ndarray:
    if arr.ndim == 0 and single:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"y has shape {arr.shape}; softmax cross-entropy takes one class label per sample, "
            f"shape ({n},), or one-hot targets of shape ({n}, {n_out})")
    if arr.dtype.kind == "f":
        _check_finite(arr, "y")
        if (arr != np.floor(arr)).any():
            raise ValueError("y holds class labels, which must be whole numbers; got fractions")
    out_of_range = (arr < 0) | (arr >= n_out)
    if out_of_range.any():
        first = int(np.argmax(out_of_range))
        raise ValueError(f"class labels must be in [0, {n_out}); y[{first}] is {arr[first]}")
    return np.require(arr, dtype=np.intp, requirements=["C_CONTIGUOUS", "ALIGNED"])


#: The largest count of steps, epochs or samples a saved state may hold: beyond
#: 2**53 a count no longer converts exactly to the float that bias corrections
#: and schedules compute with (and no training comes near it).
MAX_COUNT = 1 << 53
#: How many characters of a value an error message shows: values may come from
#: a crafted file, whose header can hold a string of millions of characters.
SHOWN_CHARS = 80


def shown(value, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (ending "..."), for messages.

    A large container is cut before it is rendered in full.

    >>> shown("x" * 1000, 12)
    "'xxxxxxxx..."
    """
    if isinstance(value, (list, tuple, dict, set)) and len(value) > limit:
        text = repr(type(value)(list(value)[:limit]) if not isinstance(value, dict)
                    else dict(list(value.items())[:limit]))
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@overload
def as_int(value: Any, name: str, allow_none: Literal[False] = False) -> int: ...
@overload
def as_int(value: Any, name: str, allow_none: bool) -> int | None: ...


def as_int(value, name: str, allow_none: bool = False) -> int | None:
    """``value`` as a Python int (NumPy integers too); bools and floats are refused."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, not a bool")
    try:
        return operator.index(value)
    except TypeError:
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{name} must be {kind}, got {shown(value)}") from None


def as_real(value, name: str) -> float:
    """``value`` as a Python float (NumPy floats too); bools and non-numbers are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {shown(value)}")
    return float(value)


def check_real(value, name: str, low: float = -math.inf, high: float = math.inf, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high``
    (open at either end on request), or an error naming ``name``."""
    x = as_real(value, name)
    too_low = x <= low if low_open else x < low
    too_high = x >= high if high_open else x > high
    if not math.isfinite(x) or too_low or too_high:
        if math.isfinite(low) and math.isfinite(high):
            rule = (f"be in {'(' if low_open else '['}{low:g}, {high:g}"
                    f"{')' if high_open else ']'}")
        elif math.isfinite(low):
            rule = f"be finite and {'above' if low_open else 'at least'} {low:g}"
        else:
            rule = "be finite"
        raise ValueError(f"{name} must {rule}, got {shown(value)}")
    return x


def check_count(value, name: str, low: int = 1) -> int:
    """``value`` as an int of at least ``low``, or an error naming ``name``."""
    n = as_int(value, name)
    if n < low:
        raise ValueError(f"{name} must be at least {low}, got {n}")
    return n


def check_learning_rate(lr: float, dtype) -> None:
    """Refuse a learning rate that rounds to infinity in the network's dtype."""
    if lr > float(np.finfo(dtype).max):
        raise ValueError(f"lr={lr} overflows the network's {np.dtype(dtype).name}")


def check_sizes(sizes) -> list[int]:
    """Layer widths as a list of at least two positive ints."""
    widths = [as_int(s, "each of sizes") for s in sizes]
    if len(widths) < 2:
        raise ValueError(f"sizes needs an input and an output width, got {widths}")
    if min(widths) < 1:
        raise ValueError(f"every layer width must be at least 1, got {widths}")
    if max(widths) > np.iinfo(np.int32).max:
        raise ValueError(
            f"layer widths must be below 2**31 (BLAS takes 32-bit sizes), got {widths}")
    return widths


#: More threads than any machine has cores; the bound keeps a count read from a
#: file (or a typo) from asking OpenMP for millions of threads or overflowing a C int.
MAX_THREADS = 1 << 16


def check_n_threads(n_threads) -> int:
    """0 for "follow OpenMP's setting" (None), else a positive thread count.

    Negative values count back from the number of cores, as in scikit-learn:
    -1 is all cores, -2 all but one.
    """
    n = as_int(n_threads, "n_threads", allow_none=True)
    if n is None:
        return 0
    if n == 0:
        raise ValueError("n_threads=0 is not a thread count; use None to follow OMP_NUM_THREADS")
    if n > MAX_THREADS:
        raise ValueError(f"n_threads={n} is more threads than fastwb starts; at most "
                         f"{MAX_THREADS}")
    if n < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n)
    return n


def memory_limit() -> float:
    """Bytes this process may allocate at most: the machine's memory, lowered by
    an address-space limit (``ulimit -v``) or a cgroup's memory limit (a
    container's) where either is set; infinity where none can be read."""
    limits = [math.inf]
    try:
        limits.append(float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(float(soft))
    except (ImportError, OSError, ValueError):     # pragma: no cover - not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(float(text))
    return min(limits)


def check_allocation(nbytes: int, what: str) -> None:
    """Refuse an allocation larger than the memory this process may have, before
    the OS overcommits it and kills the process on first touch.

    The one guard of every size that comes from a user (layer widths, batch
    sizes, initializer shapes): call it before allocating; ``what`` names the
    thing and its size, as in "the initial weights of layer sizes [3, 10**9, 3]".
    """
    limit = memory_limit()
    if nbytes > limit:
        raise MemoryError(f"{what} would take {nbytes / 2**30:.1f} GiB, more than the "
                          f"{limit / 2**30:.1f} GiB of memory this process may use")


def check_sample_weight(sample_weight, n: int, dtype) -> np.ndarray:
    """Per-sample weights as an (n,) array of ``dtype``: finite, nonnegative."""
    arr = _as_real_array(sample_weight, "sample_weight")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"sample_weight has shape {arr.shape}; expected one weight per "
                         f"sample, shape ({n},)")
    weights = _convert(arr, "sample_weight", dtype)
    if (weights < 0).any():
        raise ValueError(f"sample_weight must be nonnegative; its minimum is {weights.min()}")
    return weights


def check_keys(mapping, keys, what: str) -> None:
    """Refuse anything but a dict with exactly ``keys`` (a saved or restored state)."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(mapping).__name__}")
    if set(mapping) != set(keys):
        raise ValueError(f"{what} must have exactly the keys {sorted(keys)}, got "
                         f"{shown(sorted(map(str, mapping)), 200)}")


def check_config(config, keys, what: str) -> dict:
    """A copy of a config dict (as ``get_config`` returns) whose keys are all among
    ``keys``; a clear error for anything else."""
    if not isinstance(config, Mapping):
        raise TypeError(f"{what} config must be a dict, got {type(config).__name__}")
    unknown = set(config) - set(keys)
    if unknown:
        raise ValueError(f"{what} config has unknown key(s) {shown(sorted(unknown), 200)}; "
                         f"it takes {', '.join(keys)}")
    return dict(config)
