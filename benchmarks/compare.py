"""Side-by-side speed of fastwb's compiled core, its NumPy reference, and a GEMM floor.

Prints markdown tables:

1. for each shape, dtype and operation (``predict``, an SGD ``train_step``, an
   Adam step ``adam_step``) the time of the compiled backend, of the reference
   backend, and their ratio. Training steps add the "GEMM floor": the time
   NumPy alone needs for the matrix products of one step (forward
   ``A[l-1] @ W[l]`` per layer; backward ``A[l-1].T @ D[l]`` per layer and
   ``D[l] @ W[l].T`` for every layer but the first), and fastwb's ratio to it.
   On tiny shapes that floor is mostly NumPy's per-call overhead;
2. ``predict`` of one 1-D sample on 16-32-4 in microseconds;
3. ``fit``: samples per second of one Adam epoch on 64-128-10 in batches of
   32, for fastwb and the reference, with the rate of the epoch's products
   (GFLOP/s) against the GEMM floor of the same products and against the
   machine's GEMM rate on large square matrices, measured in the same run.

The contenders of one case are timed in interleaved rounds (their order
alternating), so machine noise hits all of them alike; each time is the best
over rounds of the per-call mean within a round (noise only ever adds time; the
JSON also keeps the median and every round). Every case first checks the
compiled result against the reference, as ``test_core.py`` does.

On small virtual machines multithreaded BLAS calls can intermittently take
10-50 times longer (seen on a 2-vCPU VM); ``OPENBLAS_NUM_THREADS=1
OMP_NUM_THREADS=1`` gives steady single-thread numbers there.

Usage::

    python benchmarks/compare.py [--large] [--dtype float32] [--op adam_step]
                                 [--shape 784-256-128-10] [--no-extras] [--repeats 7]
                                 [--threads 2] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import platform
from typing import Callable

import numpy as np

import fastwb
from fastwb.bench.cases import (OPS, OPTIMIZER_OF, make_data, make_fit_data, make_optimizer,
                                make_pair)
from fastwb.bench.checks import assert_close, check_fit, check_predict, check_train_step
from fastwb.bench.flops import square_flops, train_flops
from fastwb.bench.machine import thread_pools
from fastwb.bench.options import (add_dtypes, add_json, add_shapes, add_timing, check_timing,
                                  chosen_dtypes, chosen_shapes)
from fastwb.bench.shapes import FIT_SAMPLES, FIT_SHAPE, SINGLE_SAMPLE, Shape
from fastwb.bench.timing import GEMM_SIZE, fmt_time, gemm_rate, interleaved


def gemm_floor(shape: Shape, dtype: str) -> Callable[[], None]:
    """One SGD step's matrix products in NumPy, into preallocated outputs."""
    rng = np.random.default_rng(0)
    n = shape.batch

    def rand(*dims: int) -> np.ndarray:
        return rng.standard_normal(dims).astype(dtype)

    products = []
    for l, (k, m) in enumerate(shape.layers):
        a_prev, W, D = rand(n, k), rand(k, m), rand(n, m)
        products.append((a_prev, W, np.empty((n, m), dtype)))          # Z = A_prev @ W
        products.append((a_prev.T, D, np.empty((k, m), dtype)))        # dW = A_prev.T @ D
        if l > 0:
            products.append((D, W.T, np.empty((n, k), dtype)))         # D_prev = D @ W.T

    def step() -> None:
        for a, b, out in products:
            np.matmul(a, b, out=out)
    return step


def measure_case(shape: Shape, dtype: str, op: str, args: argparse.Namespace) -> dict:
    """Check, then time, one shape/dtype/op on both backends (and the floor)."""
    net, ref = make_pair(shape, dtype, n_threads=args.threads)
    X, y = make_data(shape, dtype)
    if op == "predict":
        check_predict(net, ref, X)
        contenders = {"fastwb": lambda: net.predict(X), "reference": lambda: ref.predict(X)}
    else:
        optimizer = OPTIMIZER_OF[op]
        check_train_step(net, ref, X, y, optimizer)
        mine, theirs = make_optimizer(optimizer), make_optimizer(optimizer)
        contenders = {"fastwb": lambda: net.train_step(X, y, mine),
                      "reference": lambda: ref.train_step(X, y, theirs),
                      "gemm_floor": gemm_floor(shape, dtype)}
    times = interleaved(contenders, args.repeats, args.min_time)
    return {"shape": shape.label, "sizes": list(shape.sizes), "batch": shape.batch,
            "dtype": dtype, "op": op, "times": times}


def measure_single_sample(dtype: str, args: argparse.Namespace) -> dict:
    """Check, then time, ``predict`` of one 1-D sample: the per-call overhead."""
    net, ref = make_pair(SINGLE_SAMPLE, dtype, n_threads=args.threads)
    x = make_data(SINGLE_SAMPLE, dtype)[0][0]
    assert_close(net.predict(x), ref.predict(x), dtype, "predict of one sample")
    times = interleaved({"fastwb": lambda: net.predict(x), "reference": lambda: ref.predict(x)},
                        args.repeats, args.min_time)
    return {"shape": SINGLE_SAMPLE.label, "sizes": list(SINGLE_SAMPLE.sizes), "batch": None,
            "dtype": dtype, "op": "predict_one_sample", "times": times}


def measure_fit(dtype: str, args: argparse.Namespace) -> dict:
    """Check, then time, one Adam epoch of ``fit`` on both backends, beside the
    GEMM floor of the epoch's products and a large square GEMM."""
    net, ref = make_pair(FIT_SHAPE, dtype, n_threads=args.threads)
    X, y = make_fit_data(dtype)
    check_fit(net, ref, X, y)
    mine, theirs = make_optimizer("adam"), make_optimizer("adam")
    n_batches = FIT_SAMPLES // FIT_SHAPE.batch
    floor = gemm_floor(FIT_SHAPE, dtype)
    batch = FIT_SHAPE.batch

    def floor_epoch() -> None:
        for _ in range(n_batches):
            floor()
    times = interleaved({"fastwb": lambda: net.fit(X, y, mine, epochs=1, batch_size=batch),
                         "reference": lambda: ref.fit(X, y, theirs, epochs=1, batch_size=batch),
                         "gemm_floor": floor_epoch, "gemm_square": gemm_rate(dtype)},
                        args.repeats, args.min_time)
    return {"shape": FIT_SHAPE.label, "sizes": list(FIT_SHAPE.sizes), "batch": batch,
            "samples": FIT_SAMPLES, "dtype": dtype, "op": "fit_epoch",
            "flop": train_flops(FIT_SHAPE) * n_batches, "square_flop": square_flops(GEMM_SIZE),
            "times": times}


def fit_table(results: list[dict]) -> str:
    """The fit results: samples/s, and GFLOP/s against the GEMM floor and square GEMM."""
    lines = ["| shape | batch | dtype | fastwb samples/s | reference samples/s "
             "| fastwb/reference | fastwb GFLOP/s | of GEMM floor rate | of square GEMM rate |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        t = {name: v["min_s"] for name, v in r["times"].items()}
        rate = r["flop"] / t["fastwb"]
        floor_rate = r["flop"] / t["gemm_floor"]
        square_rate = r["square_flop"] / t["gemm_square"]
        lines.append(f"| {r['shape']} | {r['batch']} | {r['dtype']} "
                     f"| {r['samples'] / t['fastwb']:,.0f} | {r['samples'] / t['reference']:,.0f} "
                     f"| {t['reference'] / t['fastwb']:.2f} | {rate / 1e9:.2f} "
                     f"| {100 * rate / floor_rate:.0f}% | {100 * rate / square_rate:.0f}% |")
    return "\n".join(lines)


def markdown_table(results: list[dict]) -> str:
    """The batch results as a markdown table of times and ratios."""
    lines = ["| shape | batch | dtype | op | fastwb | reference | reference/fastwb "
             "| GEMM floor | fastwb/floor |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        t = {name: v["min_s"] for name, v in r["times"].items()}
        floor = t.get("gemm_floor")
        floor_cells = (f"{fmt_time(floor)} | {t['fastwb'] / floor:.2f}" if floor is not None
                       else "– | –")
        lines.append(f"| {r['shape']} | {r['batch']} | {r['dtype']} | {r['op']} "
                     f"| {fmt_time(t['fastwb'])} | {fmt_time(t['reference'])} "
                     f"| {t['reference'] / t['fastwb']:.2f} | {floor_cells} |")
    return "\n".join(lines)


def single_sample_table(results: list[dict]) -> str:
    """The one-sample predict results as a markdown table in microseconds."""
    lines = ["| shape | dtype | fastwb (µs) | reference (µs) | reference/fastwb |",
             "|---|---|---:|---:|---:|"]
    for r in results:
        fast, reference = r["times"]["fastwb"]["min_s"], r["times"]["reference"]["min_s"]
        lines.append(f"| {r['shape']} | {r['dtype']} | {fast * 1e6:.2f} | {reference * 1e6:.2f} "
                     f"| {reference / fast:.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[Shape]]:
    """The options, and the shapes they choose."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shapes(parser)
    add_dtypes(parser)
    parser.add_argument("--op", choices=OPS, action="append",
                        help="operation to measure (repeatable; default: all)")
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the one-sample predict and fit tables")
    add_timing(parser, repeats=5, min_time=0.05)
    parser.add_argument("--threads", type=int, default=None,
                        help="n_threads of the compiled networks (default: OpenMP's setting)")
    add_json(parser)
    args = parser.parse_args(argv)
    check_timing(parser, args.repeats, args.min_time)
    return args, chosen_shapes(parser, args)


def main(argv: list[str] | None = None) -> None:
    args, shapes = parse_args(argv)
    dtypes = chosen_dtypes(args)
    ops = args.op or list(OPS)

    print(f"fastwb {fastwb.__version__} (OpenMP: {fastwb.openmp_enabled()}), "
          f"NumPy {np.__version__}, Python {platform.python_version()}, "
          f"n_threads={args.threads}, repeats={args.repeats}")
    pools = thread_pools()
    if pools is None:
        print("threadpoolctl not installed: loaded BLAS libraries unknown")
    else:
        for pool in pools:
            print(f"  {pool['user_api']}: {pool.get('internal_api')} {pool.get('version')} "
                  f"threads={pool.get('num_threads')} {pool.get('filepath')}")
    print()

    results = [measure_case(shape, dtype, op, args)
               for shape in shapes for dtype in dtypes for op in ops]
    single = [] if args.no_extras else [measure_single_sample(dtype, args) for dtype in dtypes]
    fits = [] if args.no_extras else [measure_fit(dtype, args) for dtype in dtypes]

    print(markdown_table(results))
    if not args.no_extras:
        print()
        print(f"predict of one sample (x of shape ({SINGLE_SAMPLE.sizes[0]},)):")
        print()
        print(single_sample_table(single))
        print()
        print(f"fit: one Adam epoch of {FIT_SAMPLES} samples:")
        print()
        print(fit_table(fits))

    if args.json is not None:
        report = {"fastwb": fastwb.__version__, "numpy": np.__version__,
                  "python": platform.python_version(), "openmp": fastwb.openmp_enabled(),
                  "n_threads": args.threads, "repeats": args.repeats,
                  "min_time_s": args.min_time, "threadpools": pools,
                  "results": results + single + fits}
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nraw results written to {args.json}")


if __name__ == "__main__":
    main()
