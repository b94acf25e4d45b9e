"""The SIMD levels of fastwb's elementwise kernels, side by side in one run.

fastwb compiles its hot elementwise kernels (bias + activation, activation
derivative x upstream gradient, the fused optimizer updates, finiteness scans,
penalty sums) for baseline x86-64, AVX2 and AVX-512 and picks one at import
(``fastwb.show_config()`` shows which). This script times, for every level the
CPU runs, cases where those kernels are most of the work and whole training
steps, and prints a markdown table with each level's time and its speed-up
over the baseline, naming the CPU.

Cases:

* ``bias+<act>``: ``loss`` (MSE) of a 1-4096-1 network on 1024 rows: the
  hidden layer's bias + activation pass over 4M values, next to a rank-1 GEMM
  and a GEMV (the workspace is reused, nothing is allocated);
* ``finite scan``: ``predict`` of a 4096-1 network on 1024 rows, whose cost is
  the scan of X for NaN/Inf (4M values) and one GEMV;
* ``adam update``: ``Adam.apply_gradients`` on a 1M-parameter network
  (includes NumPy's finiteness check of the gradient and one copy);
* ``adam_step``: a whole Adam ``train_step`` on the benchmark shapes.

Each case is checked first: every level's result, from a fresh instance of the
case, must be bit-identical to the baseline's. The levels then take turns on
one instance in interleaved rounds (``fastwb.bench.timing.interleaved``); each
time is the best round's mean.
Run it on a quiet machine; ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` gives
steady single-thread numbers on small virtual machines.

Usage::

    python benchmarks/simd.py [--dtype float32] [--repeats 7] [--min-time 0.2]
                              [--json simd.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import numpy as np

import fastwb
from fastwb import _core
from fastwb._config import cpu_name
from fastwb.bench.cases import make_data, make_optimizer
from fastwb.bench.options import add_dtypes, add_json, add_timing, check_timing, chosen_dtypes
from fastwb.bench.shapes import select
from fastwb.bench.timing import fmt_time, interleaved

#: Calls per timed call: switching the level costs a Python call, spread over these.
INNER = 20


Case = tuple[Callable[[], object], Callable[[], None]]


def _at(level: str, case: Case) -> Callable[[], None]:
    """The case's reset, then its call INNER times, at ``level``."""
    fn, reset = case

    def run() -> None:
        _core.set_simd_level(level)
        reset()
        for _ in range(INNER):
            fn()
    return run


def _nothing() -> None:
    pass


def _bits(level: str, make: Callable[[], Case]) -> bytes:
    """The bytes of a fresh case's result after three calls at ``level``."""
    _core.set_simd_level(level)
    fn = make()[0]
    for _ in range(3):
        out = fn()
    return np.asarray(out).tobytes()


def cases(dtype: str) -> dict[str, Callable[[], Case]]:
    """Case name -> a maker of a fresh (call, reset) pair. A training step's
    network and optimizer go back to their start every INNER steps, so that each
    level times the same steps (thousands of Adam steps on one batch would drive
    moments into the slow subnormal range after a number of steps that would
    differ with each level's speed)."""
    rng = np.random.default_rng(0)
    found: dict[str, Callable[[], Case]] = {}
    x_wide = rng.standard_normal((1024, 1)).astype(dtype)
    y_wide = np.zeros((1024, 1), dtype=dtype)
    for act in ("relu", "sigmoid", "tanh"):
        def make(act=act):
            net = fastwb.Network([1, 4096, 1], activation=act, dtype=dtype, seed=0,
                                 n_threads=1)
            return (lambda: net.loss(x_wide, y_wide)), _nothing
        found[f"bias+{act} 1024x4096"] = make
    x_scan = rng.standard_normal((1024, 4096)).astype(dtype)

    def make_scan():
        net = fastwb.Network([4096, 1], dtype=dtype, seed=0, n_threads=1)
        return (lambda: net.predict(x_scan)), _nothing
    found["finite scan 1024x4096"] = make_scan

    grads = rng.standard_normal(1024 * 1023 + 1023).astype(dtype)

    def make_update():
        net = fastwb.Network([1024, 1023], dtype=dtype, seed=0, n_threads=1)
        opt = fastwb.Adam(lr=1e-4)
        return (lambda: (opt.apply_gradients(net, grads), net.parameters)[1]), _nothing
    found["adam update 1M params"] = make_update

    for shape in select():
        for act in ("relu", "tanh"):
            def make_step(shape=shape, act=act):
                net = fastwb.Network(list(shape.sizes), activation=act,
                                     loss="softmax_cross_entropy", dtype=dtype, seed=0,
                                     n_threads=1)
                X, y = make_data(shape, dtype)
                opt = make_optimizer("adam")
                start = net.parameters.copy()

                def reset() -> None:
                    net.parameters = start
                    opt.reset()
                return (lambda: (net.train_step(X, y, opt), net.parameters)[1]), reset
            found[f"adam_step {shape.label} b{shape.batch} {act}"] = make_step
    return found


def per_call(t: dict) -> dict:
    """interleaved()'s times of INNER calls, per call."""
    return {"min_s": t["min_s"] / INNER, "median_s": t["median_s"] / INNER,
            "rounds_s": [r / INNER for r in t["rounds_s"]]}


def measure(dtype: str, levels: tuple[str, ...], args: argparse.Namespace) -> list[dict]:
    rows = []
    for name, make in cases(dtype).items():
        expected = _bits("baseline", make)
        for level in levels:
            if _bits(level, make) != expected:
                raise AssertionError(f"{name} {dtype}: {level} differs from the baseline")
        # one instance for every level: how the allocator placed a case's buffers (4K
        # aliasing between the streams of an update) moved separate instances' times by
        # up to 1.6x either way, more than the levels differ on memory-bound cases
        case = make()
        contenders = {level: _at(level, case) for level in levels}
        times = interleaved(contenders, args.repeats, args.min_time)
        rows.append({"case": name, "dtype": dtype,
                     "times": {level: per_call(t) for level, t in times.items()}})
        print(f"  {name} {dtype}: " + ", ".join(
            f"{level} {fmt_time(rows[-1]['times'][level]['min_s'])}" for level in levels),
            file=sys.stderr)
    return rows


def table(rows: list[dict], levels: tuple[str, ...]) -> str:
    wider = [level for level in levels if level != "baseline"]
    head = ("| case | dtype | " + " | ".join(levels) + " | "
            + " | ".join(f"{level} speed-up" for level in wider) + " |")
    lines = [head, "|" + "---|" * (2 + len(levels) + len(wider))]
    for row in rows:
        t = {level: row["times"][level]["min_s"] for level in levels}
        lines.append(f"| {row['case']} | {row['dtype']} | "
                     + " | ".join(fmt_time(t[level]) for level in levels) + " | "
                     + " | ".join(f"{t['baseline'] / t[level]:.2f}x" for level in wider) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dtypes(parser)
    add_timing(parser, repeats=7, min_time=0.2)
    add_json(parser)
    args = parser.parse_args(argv)
    check_timing(parser, args.repeats, args.min_time)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    levels = _core.simd_levels()[1]
    selected = _core.simd_levels()[2]
    config = fastwb.show_config(mode="dicts")
    try:
        rows = [row for dtype in chosen_dtypes(args) for row in measure(dtype, levels, args)]
    finally:
        _core.set_simd_level(selected)
    print(f"CPU: {cpu_name()}; fastwb {fastwb.__version__}, built by "
          f"{config['Build']['compiler version']}; levels {', '.join(levels)}; "
          f"OpenMP threads {config['Runtime']['openmp max threads']}, "
          f"BLAS threads {config['Runtime']['blas'].get('num_threads', '?')}\n")
    print(table(rows, levels))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "levels": list(levels),
                                         "config": config, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
