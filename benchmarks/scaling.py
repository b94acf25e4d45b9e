"""How fastwb's time scales with batch size, width, depth and threads.

Every point times an Adam ``train_step`` and a batch ``predict`` of fastwb and
of its NumPy reference, side by side in interleaved rounds
(``fastwb.bench.timing.interleaved``: best of the rounds), after checking one
prediction and one Adam step of that configuration against the reference. Each
time comes with its FLOP count (the matrix products, ``fastwb.bench.flops``:
``train_flops`` for a step, ``predict_flops`` for ``predict``) and GFLOP/s.

1. **Sweeps**, at the largest thread count asked for: batch size 1..1024 on
   784-256-128-10; hidden width W = 32..2048 on 784-W-W-10, batch 128; depth
   1..8 hidden layers of 256 on 784-...-10, batch 128. Where products dominate,
   time grows in proportion to FLOP and GFLOP/s levels off near the machine's
   GEMM rate (a large square product, measured in the same run).
2. **Threads**: the standard shapes and each sweep's middle point at 1, 2, 4, ...
   threads — fastwb's ``n_threads`` and the BLAS threads (threadpoolctl) set
   together, the reference with the same BLAS threads — as speed-up over the
   fewest threads, next to the GEMM's own speed-up.
3. **OpenMP loops**: a small network on a large batch, forced down fastwb's
   plain-loop kernels (``fastwb._core.tuning``) at 1, 2, 4, ... OpenMP threads,
   against the same SGD step through BLAS at the same thread count. This tells
   whether fastwb's ``prange`` loops should ever be preferred to BLAS on a
   machine, and from what size they go parallel.

``--plots DIR`` writes scaling_batch.png, scaling_width.png, scaling_depth.png
(time against FLOP, log-log, with a line proportional to FLOP; GFLOP/s against
the swept variable) and scaling_threads.png (speed-up against threads).

Usage::

    python benchmarks/scaling.py [--threads 1 2 4] [--dtype float32] [--plots DIR]
                                 [--json out.json] [--min-time 0.05] [--rounds 5]
                                 [--large] [--quick]

Needs threadpoolctl, and matplotlib for ``--plots`` (``pip install "fastwb[bench]"``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from threadpoolctl import threadpool_limits

import fastwb
from fastwb import _core
from fastwb.bench.cases import make_data, make_optimizer, make_pair
from fastwb.bench.checks import check_predict, check_train_step
from fastwb.bench.flops import predict_flops, square_flops, train_flops
from fastwb.bench.machine import thread_counts
from fastwb.bench.options import add_json, add_timing, check_timing
from fastwb.bench.shapes import DTYPES, Shape, select
from fastwb.bench.timing import GEMM_SIZE, fmt_time, gemm_rate, interleaved

CONTENDERS = ("fastwb", "reference")
OPS = ("train_step", "predict")
#: ``--quick``: one round of at least a millisecond per contender (a smoke run).
QUICK_MIN_TIME, QUICK_ROUNDS = 0.001, 1

LOOP_SHAPE = Shape((16, 32, 4), 65536)
#: fastwb's dispatch settings per route: every product and pass down the OpenMP
#: loops, or the defaults (BLAS products).
LOOP_ROUTES = {"loops": {"small_product": 1 << 62, "parallel_min_elements": 0}, "blas": {}}


@dataclass(frozen=True)
class Sweep:
    """One swept variable: its values and the network and batch of each."""

    name: str
    axis: str
    values: tuple[int, ...]
    #: extra values with ``large``
    large: tuple[int, ...]
    #: the value also measured at every thread count
    middle: int
    shape: Callable[[int], Shape]


SWEEPS = (
    Sweep("batch", "batch size (784-256-128-10)", tuple(2 ** i for i in range(11)), (4096,), 32,
          lambda n: Shape((784, 256, 128, 10), n)),
    Sweep("width", "hidden width W (784-W-W-10, batch 128)", tuple(2 ** i for i in range(5, 12)),
          (4096,), 256, lambda w: Shape((784, w, w, 10), 128)),
    Sweep("depth", "hidden layers of 256 (784-256-...-10, batch 128)", tuple(range(1, 9)), (),
          4, lambda d: Shape((784, *(256,) * d, 10), 128)),
)


def measure(shape: Shape, dtype: str, threads: int, min_time: float, rounds: int) -> dict:
    """Check, then time, fastwb and the reference on one shape at one thread count."""
    net, ref = make_pair(shape, dtype, n_threads=threads)
    X, y = make_data(shape, dtype)
    with threadpool_limits(limits=threads, user_api="blas"):
        check_predict(net, ref, X)
        check_train_step(net, ref, X, y, "adam")
        mine, theirs = make_optimizer("adam"), make_optimizer("adam")   # one per network
        times = {"train_step": interleaved({"fastwb": lambda: net.train_step(X, y, mine),
                                            "reference": lambda: ref.train_step(X, y, theirs)},
                                           rounds, min_time),
                 "predict": interleaved({"fastwb": lambda: net.predict(X),
                                         "reference": lambda: ref.predict(X)}, rounds, min_time)}
    flop = {"train_step": train_flops(shape), "predict": predict_flops(shape)}
    point = {"shape": shape.id, "sizes": list(shape.sizes), "batch": shape.batch,
             "threads": threads,
             "ops": {op: {"flop": flop[op],
                          **{name: {**t, "gflops": flop[op] / t["min_s"] / 1e9}
                             for name, t in times[op].items()}}
                     for op in OPS}}
    ops = point["ops"]
    print(f"  {shape.id} at {_threads(threads)}: train_step "
          f"{fmt_time(ops['train_step']['fastwb']['min_s'])} "
          f"(reference {fmt_time(ops['train_step']['reference']['min_s'])}), predict "
          f"{fmt_time(ops['predict']['fastwb']['min_s'])} "
          f"(reference {fmt_time(ops['predict']['reference']['min_s'])})", file=sys.stderr)
    return point


def measure_gemm(threads: list[int], dtype: str, min_time: float, rounds: int) -> list[dict]:
    """The machine's GEMM rate at each thread count, with its speed-up."""
    rows = []
    for t in threads:
        with threadpool_limits(limits=t, user_api="blas"):
            best = interleaved({"gemm": gemm_rate(dtype)}, rounds, min_time)["gemm"]["min_s"]
        rows.append({"threads": t, "min_s": best, "gflops": square_flops(GEMM_SIZE) / best / 1e9})
    for row in rows:
        row["speedup"] = rows[0]["min_s"] / row["min_s"]
    return rows


def _tuned(fn: Callable[[], object], settings: dict) -> Callable[[], object]:
    """``fn`` run under fastwb's dispatch ``settings``, restoring the previous ones."""
    def call():
        saved = _core.tuning(**settings)
        try:
            return fn()
        finally:
            _core.tuning(**saved)
    return call


def _route(settings: dict, dtype: str, threads: int) -> dict[str, Callable[[], object]]:
    """A checked network whose predict and SGD step run under ``settings``."""
    net, ref = make_pair(LOOP_SHAPE, dtype, n_threads=threads)
    X, y = make_data(LOOP_SHAPE, dtype)
    _tuned(lambda: check_predict(net, ref, X), settings)()
    _tuned(lambda: check_train_step(net, ref, X, y), settings)()
    opt = make_optimizer("sgd")
    return {"predict": _tuned(lambda: net.predict(X), settings),
            "train_step": _tuned(lambda: net.train_step(X, y, opt), settings)}


def loop_table(threads: list[int], dtype: str, min_time: float, rounds: int) -> list[dict]:
    """LOOP_SHAPE forced down the OpenMP loops against BLAS, at each thread count."""
    rows = []
    for t in threads:
        with threadpool_limits(limits=t, user_api="blas"):
            routes = {name: _route(settings, dtype, t) for name, settings in LOOP_ROUTES.items()}
            rows.append({"threads": t, **{
                op: interleaved({name: calls[op] for name, calls in routes.items()},
                                rounds, min_time) for op in OPS}})
        print(f"  loops/BLAS at {_threads(t)}: predict "
              f"{fmt_time(rows[-1]['predict']['loops']['min_s'])} / "
              f"{fmt_time(rows[-1]['predict']['blas']['min_s'])}", file=sys.stderr)
    return rows


def run(threads: list[int], dtype: str = "float32", min_time: float = 0.05, rounds: int = 5,
        large: bool = False) -> dict:
    """Measure everything: the GEMM rate, the three sweeps at ``max(threads)``
    threads, the thread sweep and the OpenMP loops table. Returns a
    JSON-serialisable dict (times in seconds, as ``interleaved`` gives them,
    with ``gflops`` and, for threads, ``speedup`` over the fewest threads)."""
    threads = sorted(set(threads))
    top = threads[-1]
    result = {"fastwb": fastwb.__version__, "blas": fastwb.blas_source(),
              "openmp": fastwb.openmp_enabled(), "cores": os.cpu_count(), "dtype": dtype,
              "min_time": min_time, "rounds": rounds, "threads": threads, "sweep_threads": top,
              "gemm": measure_gemm(threads, dtype, min_time, rounds)}
    result["sweeps"] = []
    for sweep in SWEEPS:
        values = sweep.values + (sweep.large if large else ())
        result["sweeps"].append({
            "name": sweep.name, "axis": sweep.axis,
            "points": [{"value": v, **measure(sweep.shape(v), dtype, top, min_time, rounds)}
                       for v in values]})
    shapes = select(large=large)
    shapes += [sweep.shape(sweep.middle) for sweep in SWEEPS]
    result["scaling"] = []
    for shape in dict.fromkeys(shapes):         # in order, without repeats
        points = [measure(shape, dtype, t, min_time, rounds) for t in threads]
        for point in points:
            for op in OPS:
                for name in CONTENDERS:
                    point["ops"][op][name]["speedup"] = (points[0]["ops"][op][name]["min_s"]
                                                         / point["ops"][op][name]["min_s"])
        result["scaling"].append({"shape": shape.id, "points": points})
    result["loops"] = loop_table(threads, dtype, min_time, rounds)
    return result


def _mflop(flop: int) -> str:
    mflop = flop / 1e6
    return f"{mflop:.3g}" if mflop < 100 else f"{mflop:.0f}"


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n > 1 else ''}"


def markdown(result: dict) -> str:
    """The tables of a ``run`` result, in markdown."""
    dtype, top = result["dtype"], result["sweep_threads"]
    gemm = {g["threads"]: g for g in result["gemm"]}
    out = [f"fastwb {result['fastwb']} ({result['blas']} BLAS, OpenMP {result['openmp']}), "
           f"{result['cores']} cores, {dtype}; best of {result['rounds']} interleaved rounds "
           f"of at least {result['min_time']:g} s. GEMM ({GEMM_SIZE}² {dtype} product): "
           + ", ".join(f"{g['gflops']:.1f} GFLOP/s at {_threads(t)}" for t, g in gemm.items())
           + "."]
    for sweep in result["sweeps"]:
        out += ["", (f"**{sweep['axis']}**, {_threads(top)}: Adam train_step and batch predict; "
                    "×ref = reference time / fastwb time"), "",
                (f"| {sweep['name']} | train_step MFLOP | fastwb | GFLOP/s | reference | ×ref "
                "| predict MFLOP | fastwb | GFLOP/s | reference | ×ref |"),
                "|---:" * 11 + "|"]
        for p in sweep["points"]:
            cells = [str(p["value"])]
            for op in OPS:
                o = p["ops"][op]
                cells += [_mflop(o["flop"]), fmt_time(o["fastwb"]["min_s"]),
                          f"{o['fastwb']['gflops']:.1f}", fmt_time(o["reference"]["min_s"]),
                          f"{o['reference']['min_s'] / o['fastwb']['min_s']:.2f}"]
            out.append("| " + " | ".join(cells) + " |")
    base = result["threads"][0]
    out += ["", f"**Threads** (fastwb n_threads = BLAS threads; speed-up over "
                f"{_threads(base)}; the GEMM's: "
            + ", ".join(f"{g['speedup']:.2f}× at {t}" for t, g in gemm.items()) + ")", "",
            ("| shape | threads | train_step: fastwb | speed-up | GFLOP/s | reference | speed-up "
            "| predict: fastwb | speed-up | GFLOP/s | reference | speed-up |"),
            "|---|" + "---:|" * 11]
    for shape in result["scaling"]:
        for p in shape["points"]:
            cells = [shape["shape"], str(p["threads"])]
            for op in OPS:
                f, r = p["ops"][op]["fastwb"], p["ops"][op]["reference"]
                cells += [fmt_time(f["min_s"]), f"{f['speedup']:.2f}", f"{f['gflops']:.1f}",
                          fmt_time(r["min_s"]), f"{r['speedup']:.2f}"]
            out.append("| " + " | ".join(cells) + " |")
    out += ["", (f"**OpenMP loops**: {LOOP_SHAPE.id} {dtype}, SGD, plain loops with OpenMP vs "
                "BLAS at the same thread count"), "",
            "| threads | predict: loops | BLAS | train_step: loops | BLAS |",
            "|---:|---:|---:|---:|---:|"]
    for r in result["loops"]:
        out.append(f"| {r['threads']} | " + " | ".join(
            fmt_time(r[op][route]["min_s"]) for op in ("predict", "train_step")
            for route in LOOP_ROUTES) + " |")
    return "\n".join(out)


def _figure_class():
    """matplotlib's Figure (drawn with Agg, no display), or a clear error."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "fastwb[bench]"') from None
    return Figure


def plot(result: dict, outdir: Path) -> list[Path]:
    """Write scaling_<sweep>.png for each sweep and scaling_threads.png into
    ``outdir``; returns their paths."""
    Figure = _figure_class()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    colors = {"fastwb": "tab:blue", "reference": "tab:orange"}
    markers = {"train_step": "o", "predict": "s"}
    lines = {"train_step": "-", "predict": "-."}
    top = result["sweep_threads"]
    gemm = {g["threads"]: g for g in result["gemm"]}
    paths = []
    for sweep in result["sweeps"]:
        # a Figure of its own, not pyplot: no global backend or state in the caller's process
        fig = Figure(figsize=(12, 4.8), layout="constrained")
        timeax, rateax = fig.subplots(1, 2)
        points = sweep["points"]
        values = [p["value"] for p in points]
        for op in OPS:
            flop = [p["ops"][op]["flop"] for p in points]
            for name in CONTENDERS:
                label = f"{name} {op}"
                style = {"marker": markers[op], "linestyle": lines[op], "color": colors[name],
                         "label": label}
                timeax.plot(flop, [p["ops"][op][name]["min_s"] for p in points], **style)
                rateax.plot(values, [p["ops"][op][name]["gflops"] for p in points], **style)
            last = points[-1]["ops"][op]["fastwb"]["min_s"]   # the sweep's largest point
            timeax.plot([flop[0], flop[-1]], [last * flop[0] / flop[-1], last], "--",
                        color="gray", label="∝ FLOP" if op == OPS[0] else None)
        timeax.set(xscale="log", yscale="log", xlabel="FLOP of the products",
                   ylabel="time per call (s)", title=f"time against FLOP: {sweep['name']}")
        rateax.axhline(gemm[top]["gflops"], color="black", linestyle=":",
                       label=f"GEMM {GEMM_SIZE}²")
        if sweep["name"] != "depth":
            rateax.set_xscale("log", base=2)
        rateax.set_xticks(values, [str(v) for v in values])
        rateax.set(ylim=(0, None), xlabel=sweep["axis"], ylabel="GFLOP/s",
                   title=f"GFLOP/s against {sweep['name']}")
        for ax in (timeax, rateax):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle(f"fastwb vs NumPy reference, {result['dtype']}, {_threads(top)}, "
                     "Adam train_step and batch predict")
        paths.append(outdir / f"scaling_{sweep['name']}.png")
        fig.savefig(paths[-1], dpi=110)

    fig = Figure(figsize=(12, 5), layout="constrained")
    threads = result["threads"]
    for ax, op in zip(fig.subplots(1, 2), OPS):
        ax.plot(threads, [t / threads[0] for t in threads], ":", color="black", label="ideal")
        ax.plot(threads, [gemm[t]["speedup"] for t in threads], color="gray", linewidth=3,
                alpha=0.5, label=f"GEMM {GEMM_SIZE}²")
        for i, shape in enumerate(result["scaling"]):
            color = f"C{i}"
            for name, style in zip(CONTENDERS, ("-", "--")):
                ax.plot(threads, [p["ops"][op][name]["speedup"] for p in shape["points"]],
                        style, marker=markers[op], color=color,
                        label=f"{shape['shape']}" if name == "fastwb" else None)
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads, [str(t) for t in threads])
        ax.set(xlabel="threads (fastwb n_threads = BLAS threads)",
               ylabel=f"speed-up over {_threads(threads[0])}",
               title=f"{op}: fastwb solid, reference dashed")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"Thread scaling, {result['dtype']}, Adam train_step and batch predict")
    paths.append(outdir / "scaling_threads.png")
    fig.savefig(paths[-1], dpi=110)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=list(thread_counts()),
                        help="thread counts (default: 1, 2, 4, ... up to the core count)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--plots", type=Path, metavar="DIR",
                        help="write the PNG plots into DIR (needs matplotlib)")
    add_json(parser)
    add_timing(parser, repeats=5, min_time=0.05, repeats_flag="--rounds")
    parser.add_argument("--large", action="store_true",
                        help="add 1024-4096-4096-1024 b256 and batch and width 4096")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_ROUNDS} round of {QUICK_MIN_TIME:g} s")
    args = parser.parse_args()
    if args.quick:
        args.min_time, args.rounds = QUICK_MIN_TIME, QUICK_ROUNDS
    if min(args.threads) < 1:
        parser.error("--threads must be at least 1")
    check_timing(parser, args.rounds, args.min_time)
    if args.plots:
        try:
            _figure_class()     # before measuring for minutes, not after
        except ImportError as why:
            raise SystemExit(str(why)) from None
    start = time.perf_counter()
    result = run(args.threads, args.dtype, args.min_time, args.rounds, args.large)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    for path in plot(result, args.plots) if args.plots else ():
        print(f"wrote {path}", file=sys.stderr)
    print(f"measured in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
