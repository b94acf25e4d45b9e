"""Timing contenders side by side.

The contenders of one case are timed in interleaved rounds, their order
alternating, so machine noise hits all of them alike. Each reported time is
the best over rounds of the per-call mean within a round: noise only ever adds
time. The median and every round are kept for the JSON. A contender that
needs process-wide settings or surroundings (a dispatch threshold, other
processes busy on the cores) gets them entered around each of its rounds. The machine's GEMM
rate (a large square product through NumPy) is the yardstick the results are
put against.
"""
from __future__ import annotations

import gc
import itertools
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Mapping

import numpy as np

from fastwb.bench.flops import square_flops

#: Side of the square matrices whose product gives the machine's GEMM rate.
GEMM_SIZE = 2048


def clock(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of ``fn`` over ``number`` back-to-back calls."""
    loop = itertools.repeat(None, number)
    # as timeit does: a collection landing in one contender's round is noise
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in loop:
            fn()
        elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed / number


def clock_for(fn: Callable[[], object], number: int, min_time: float) -> float:
    """Seconds per call of ``fn`` over batches of ``number`` back-to-back calls,
    repeated until ``min_time`` has passed."""
    calls, elapsed = 0, 0.0
    while not calls or elapsed < min_time:
        elapsed += clock(fn, number) * number
        calls += number
    return elapsed / calls


def calibrate(fn: Callable[[], object], min_time: float) -> int:
    """Calls per round, doubled from 1 until a round lasts at least ``min_time``."""
    number = 1
    while clock(fn, number) * number < min_time:
        number *= 2
    return number


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int, min_time: float,
                settings: Mapping[str, Callable[[], AbstractContextManager]] | None = None,
                timed_rounds: bool = False, settle: float = 0.0) -> dict[str, dict]:
    """Per-call times of each contender over ``repeats`` interleaved rounds.

    ``settings[name]``, where given, makes the context a contender's calls run
    in; it is entered around its calibration and each of its rounds, so the
    calls themselves pay nothing for it. With ``timed_rounds`` a round repeats
    its calibrated count of calls until it has lasted ``min_time``: where the
    time of a call swings with the machine's load, a count calibrated in a slow
    moment would otherwise make rounds that sample an instant of a quiet one.
    ``settle`` seconds pass before each round: the idle workers of OpenBLAS,
    OpenMP and XLA spin for up to ~0.2 s after their library's last call, and
    would hold a core the next contender needs, as a user of one library alone
    never sees.

    Returns ``{name: {"min_s", "median_s", "number", "rounds_s"}}``.
    """
    settings = settings or {}

    def within(name: str) -> AbstractContextManager:
        return settings[name]() if name in settings else nullcontext()

    numbers = {}
    for name, fn in contenders.items():
        # calibrating also warms caches, thread pools, workspaces and JIT caches
        with within(name):
            numbers[name] = calibrate(fn, min_time)
    rounds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repeats):
        # alternate the order so no contender always runs first after a pause
        for name in (names if r % 2 == 0 else names[::-1]):
            if settle:
                time.sleep(settle)
            with within(name):
                rounds[name].append(clock_for(contenders[name], numbers[name], min_time)
                                    if timed_rounds else clock(contenders[name], numbers[name]))
    return {name: {"min_s": min(rounds[name]), "median_s": statistics.median(rounds[name]),
                   "number": numbers[name], "rounds_s": rounds[name]}
            for name in contenders}


def gemm_rate(dtype: str, size: int = GEMM_SIZE) -> Callable[[], np.ndarray]:
    """A large square product, ``2 size^3`` FLOP per call: the machine's GEMM rate."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, size, size)).astype(dtype)
    out = np.empty((size, size), dtype)
    return lambda: np.matmul(a, b, out=out)


def gemm_flop_rates(dtypes, repeats: int, min_time: float,
                    size: int = GEMM_SIZE) -> dict[str, float]:
    """FLOP/s of a ``size``-square product in each dtype, timed side by side."""
    times = interleaved({dtype: gemm_rate(dtype, size) for dtype in dtypes}, repeats, min_time)
    return {dtype: square_flops(size) / t["min_s"] for dtype, t in times.items()}


def fmt_time(seconds: float) -> str:
    """A time to 4 significant digits in s, ms, µs or ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds / 1e-9:.4g} ns"
