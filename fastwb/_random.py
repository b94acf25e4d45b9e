"""fastwb's counter-based random numbers in NumPy.

The same functions as ``src_c/fastwb_random.h``, vectorised: every value is a
pure function of (seed, stream, a, b, index), so initial weights, dropout masks
and shuffles do not depend on the thread count, and the reference reproduces
the compiled core's masks and batch orders exactly.
"""
from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
STREAM_INIT, STREAM_DROPOUT, STREAM_SHUFFLE = 1, 2, 3
_MASK = (1 << 64) - 1


def _mix(z):
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def mix64(z: int) -> int:
    """SplitMix64's finaliser on one Python int."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def key(seed: int, stream: int, a: int = 0, b: int = 0) -> int:
    """The key of one stream of values, e.g. (seed, STREAM_DROPOUT, layer, step)."""
    k = mix64((seed ^ (stream * 0xD1B54A32D192ED03)) & _MASK)
    k = mix64(k ^ ((a * 0xAEF17502108EF2D9) & _MASK))
    return mix64(k ^ ((b * 0xF1357AEA2E62A9C5) & _MASK))


def bits(stream_key: int, index) -> np.ndarray:
    """64 random bits for each index (a uint64 array) of the stream with this key."""
    i = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix(np.uint64(stream_key) + (i + np.uint64(1)) * np.uint64(GOLDEN))


def uniform(stream_key: int, n: int) -> np.ndarray:
    """n float64 values uniform in [0, 1), 53 random bits each."""
    return (bits(stream_key, np.arange(n, dtype=np.uint64)) >> np.uint64(11)) * 2.0 ** -53


def below(stream_key: int, i: int, n: int) -> int:
    """A uniform integer in [0, n), n <= 2^32: value i of the stream (as fwb_below)."""
    b = mix64((stream_key + (i + 1) * GOLDEN) & _MASK)
    return ((b >> 32) * n) >> 32


def dropout_threshold(rate: float) -> int:
    """Units whose 53-bit draw is below this integer are dropped (probability ~ rate)."""
    return int(rate * 2.0 ** 53)


def dropout_keep(seed: int, layer: int, step: int, shape: tuple, rate: float,
                 first_row: int = 0) -> np.ndarray:
    """The keep mask (bool, ``shape`` = (rows, units)) of one layer at one training step,
    for rows ``first_row``.. of the step's batch."""
    k = key(seed, STREAM_DROPOUT, layer, step)
    first = first_row * int(shape[1])
    draws = bits(k, np.arange(first, first + int(np.prod(shape)), dtype=np.uint64)) \
        >> np.uint64(11)
    return (draws >= np.uint64(dropout_threshold(rate))).reshape(shape)


def permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the n samples in one epoch: a Fisher-Yates shuffle of range(n)."""
    k = key(seed, STREAM_SHUFFLE, epoch, 0)
    order = np.arange(n, dtype=np.intp)
    for i in range(n - 1, 0, -1):
        j = below(k, i, i + 1)
        order[i], order[j] = order[j], order[i]
    return order
