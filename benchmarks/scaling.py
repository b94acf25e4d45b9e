"""How fastwb scales with threads: BLAS threads for the products, OpenMP for its loops.

Two tables, each measured in one process with the contenders interleaved:

1. **BLAS-bound steps.** The standard shapes' ``predict`` and ``train_step`` at
   1, 2, 4, ... BLAS threads (set with threadpoolctl), fastwb against the
   NumPy reference at the same thread count.
2. **OpenMP loops.** A small network on a large batch, forced down fastwb's
   plain-loop kernels (``fastwb._core.tuning``) at 1, 2, 4, ... OpenMP threads,
   next to the same step through BLAS at the same thread count.
   This is what tells whether fastwb's ``prange`` loops should ever be
   preferred to BLAS on a machine, and from what size they go parallel.

Every timed configuration is first checked against the reference.

Usage::

    python benchmarks/scaling.py [--threads 1 2 4 8 16] [--large] [--json out.json]

Needs threadpoolctl (``pip install ".[bench]"``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import fastwb
from fastwb import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SHAPES, Shape, check_predict, check_train_step, make_optimizer,  # noqa: E402
                     make_data, make_pair)

LOOP_SHAPE = Shape((16, 32, 4), 65536)


def best_time(fn, min_time: float, rounds: int) -> float:
    """Best per-call time over ``rounds`` rounds of at least ``min_time`` seconds each."""
    fn()
    number, start = 1, time.perf_counter()
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_time:
            break
        number *= 2
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def blas_table(threads: list[int], large: bool, min_time: float, rounds: int) -> list[dict]:
    rows = []
    for shape in SHAPES:
        if shape.large and not large:
            continue
        net, ref = make_pair(shape, "float32")
        X, y = make_data(shape, "float32")
        check_predict(net, ref, X)
        check_train_step(net, ref, X, y)
        mine, theirs = make_optimizer("sgd"), make_optimizer("sgd")   # one per network
        for t in threads:
            with threadpool_limits(limits=t, user_api="blas"):
                row = {"shape": shape.id, "blas_threads": t}
                for op, fast, slow in (
                        ("predict", lambda: net.predict(X), lambda: ref.predict(X)),
                        ("train_step", lambda: net.train_step(X, y, mine),
                         lambda: ref.train_step(X, y, theirs))):
                    row[f"{op}_fastwb"] = best_time(fast, min_time, rounds)
                    row[f"{op}_reference"] = best_time(slow, min_time, rounds)
                rows.append(row)
                predict = row["predict_reference"] / row["predict_fastwb"]
                step = row["train_step_reference"] / row["train_step_fastwb"]
                print(f"  {shape.id} blas={t}: predict {predict:.2f}x, train_step {step:.2f}x",
                      file=sys.stderr)
    return rows


def loop_table(threads: list[int], min_time: float, rounds: int) -> list[dict]:
    net, ref = make_pair(LOOP_SHAPE, "float32")
    X, y = make_data(LOOP_SHAPE, "float32")
    rows = []
    saved = _core.tuning()
    try:
        for t in threads:
            row = {"threads": t}
            compiled = fastwb.Network(LOOP_SHAPE.sizes, activation="relu",
                                      loss="softmax_cross_entropy", seed=0, n_threads=t)
            opt = make_optimizer("sgd")
            _core.tuning(small_product=1 << 62, parallel_min_elements=0)
            check_predict(compiled, ref, X)
            row["loops_predict"] = best_time(lambda: compiled.predict(X), min_time, rounds)
            row["loops_train_step"] = best_time(lambda: compiled.train_step(X, y, opt),
                                                min_time, rounds)
            _core.tuning(**saved)
            compiled.parameters[...] = ref.parameters     # undo the timed steps
            with threadpool_limits(limits=t, user_api="blas"):
                check_predict(compiled, ref, X)
                row["blas_predict"] = best_time(lambda: compiled.predict(X), min_time, rounds)
                row["blas_train_step"] = best_time(lambda: compiled.train_step(X, y, opt),
                                                   min_time, rounds)
            rows.append(row)
            print(f"  loops/BLAS at {t} threads: predict {row['loops_predict'] * 1e3:.2f} / "
                  f"{row['blas_predict'] * 1e3:.2f} ms", file=sys.stderr)
    finally:
        _core.tuning(**saved)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    parser.add_argument("--threads", type=int, nargs="+",
                        default=[t for t in (1, 2, 4, 8, 16, 32) if t <= cores])
    parser.add_argument("--large", action="store_true", help="include 1024-4096-4096-1024 b256")
    parser.add_argument("--min-time", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    print(f"fastwb {fastwb.__version__}, OpenMP {fastwb.openmp_enabled()}, {cores} cores")
    blas = blas_table(args.threads, args.large, args.min_time, args.rounds)
    print("\n| shape | BLAS threads | predict: fastwb | reference | ratio "
          "| train_step: fastwb | reference | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in blas:
        print(f"| {r['shape']} | {r['blas_threads']} | {r['predict_fastwb'] * 1e6:.1f} µs "
              f"| {r['predict_reference'] * 1e6:.1f} µs "
              f"| {r['predict_reference'] / r['predict_fastwb']:.2f} "
              f"| {r['train_step_fastwb'] * 1e6:.1f} µs | {r['train_step_reference'] * 1e6:.1f} µs "
              f"| {r['train_step_reference'] / r['train_step_fastwb']:.2f} |")
    loops = loop_table(args.threads, args.min_time, args.rounds)
    print(f"\n{LOOP_SHAPE.id} float32, plain loops with OpenMP vs BLAS at the same thread count")
    print("| threads | predict: loops | BLAS | train_step: loops | BLAS |")
    print("|---:|---:|---:|---:|---:|")
    for r in loops:
        print(f"| {r['threads']} | {r['loops_predict'] * 1e3:.2f} ms "
              f"| {r['blas_predict'] * 1e3:.2f} ms | {r['loops_train_step'] * 1e3:.2f} ms "
              f"| {r['blas_train_step'] * 1e3:.2f} ms |")
    if args.json:
        args.json.write_text(json.dumps({"blas": blas, "loops": loops}, indent=1))


if __name__ == "__main__":
    main()
