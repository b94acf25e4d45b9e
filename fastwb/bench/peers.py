"""fastwb against its peers on the standard shapes, side by side in one run.

For each shape and dtype, every contender (``contenders.NAMES``: fastwb, its
NumPy reference, PyTorch on the CPU, JAX with ``jit``, scikit-learn's
``partial_fit``) starts from the same weights and biases. One prediction and
one Adam step of each are first checked against the reference; then
``train_step`` and ``predict`` of one sample are timed in interleaved rounds.
The machine's own GEMM rate (a large square sgemm/dgemm through NumPy) is
measured in the same run, so each result is reported as time, GFLOP/s, percent
of that rate, and fastwb's speed-up over the fastest peer.

A peer whose library is missing is skipped with a note; ``pip install
"fastwb[peers]"`` installs them (PyTorch's CPU build). Run as
``fastwb bench --peers``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

import numpy as np

from fastwb.bench.checks import Outcome, check_outcome
from fastwb.bench.contenders import (MAKERS, NAMES, Contender, PeerUnavailable, Problem, Task,
                                     make_reference)
from fastwb.bench.flops import predict_flops, train_flops
from fastwb.bench.machine import limit_blas, machine
from fastwb.bench.options import add_dtypes, add_json, add_shapes, add_timing, chosen_dtypes
from fastwb.bench.shapes import SHAPES, select
from fastwb.bench.timing import GEMM_SIZE, fmt_time, gemm_flop_rates, interleaved

JOBS = ("train_step", "predict_one")
#: Seconds before each contender's round, for the last one's idle threads to stop spinning.
SETTLE = 0.25
#: The shapes ``--quick`` keeps: a smoke run of every contender in seconds.
QUICK_SHAPES = SHAPES[:2]


def contenders_for(problem: Problem, names) -> tuple[dict[str, Contender], dict[str, str]]:
    """The contenders that can run, each checked against the reference, and why
    the others were skipped."""
    ready, skipped = {}, {}
    expected: dict[float, Outcome] = {}
    for name in names:
        try:
            contender = MAKERS[name](problem)
        except PeerUnavailable as why:
            skipped[name] = str(why)
            continue
        eps = contender.check_eps
        if eps not in expected:     # a fresh reference for each variant of Adam checked
            expected[eps] = Outcome.of(make_reference(problem, eps), problem)
        with contender.settings():
            outcome = Outcome.of(contender, problem)
        check_outcome(outcome, expected[eps], name, problem.task.dtype)
        ready[name] = contender
    return ready, skipped


def measure_task(task: Task, names, repeats: int, min_time: float,
                 settle: float = SETTLE) -> dict:
    """Check, then time, both jobs of every available contender on one task, each
    round ``settle`` seconds after the last (see ``timing.interleaved``)."""
    problem = Problem.make(task)
    contenders, skipped = contenders_for(problem, names)
    result = {"shape": task.label, "sizes": list(task.sizes), "batch": task.batch,
              "dtype": task.dtype, "threads": task.threads, "skipped": skipped,
              "versions": {n: c.version for n, c in contenders.items()},
              "notes": {n: c.note for n, c in contenders.items() if c.note},
              "flop": {"train_step": train_flops(task.shape),
                       "predict_one": predict_flops(task.shape, rows=1)}}
    for job in JOBS:
        result[job] = interleaved({name: getattr(c, job) for name, c in contenders.items()},
                                  repeats, min_time,
                                  {name: c.settings for name, c in contenders.items()},
                                  settle=settle)
    del contenders, problem
    gc.collect()        # the large shape's peers hold gigabytes
    return result


def summarize(result: dict, job: str, gemm: dict[str, float]) -> dict:
    """Time, GFLOP/s, percent of the GEMM rate and speed-up over the best peer."""
    times = {name: t["min_s"] for name, t in result[job].items()}
    flop = result["flop"][job]
    rows = {name: {"time_s": t, "gflops": flop / t / 1e9,
                   "gemm_percent": 100 * flop / t / gemm[result["dtype"]]}
            for name, t in times.items()}
    peers = {name: t for name, t in times.items() if name != "fastwb"}
    best = min(peers, key=peers.__getitem__) if peers else None
    speedup = peers[best] / times["fastwb"] if best and "fastwb" in times else None
    return {"rows": rows, "best_peer": best, "speedup": speedup}


def markdown(report: dict) -> str:
    """One table per job: times of every contender, fastwb's GFLOP/s and share
    of the machine's GEMM rate, and its speed-up over the fastest peer."""
    names = [n for n in NAMES if any(n in r["train_step"] for r in report["results"])]
    out = []
    gemm = report["gemm_flops"]
    out.append("GEMM rate of this machine (NumPy, %d-square, %d threads): %s" % (
        GEMM_SIZE, report["threads"],
        ", ".join(f"{d} {r / 1e9:.1f} GFLOP/s" for d, r in gemm.items())))
    for job in JOBS:
        out += ["", f"**{job}**" + (" (one Adam step on one batch)" if job == "train_step"
                                     else " (class probabilities of one sample)"), ""]
        out.append("| shape | batch | dtype | " + " | ".join(names)
                   + " | fastwb GFLOP/s | fastwb % of GEMM | best peer | fastwb speed-up |")
        out.append("|---|---:|---|" + "---:|" * len(names) + "---:|---:|---|---:|")
        for r in report["results"]:
            s = summarize(r, job, gemm)
            cells = [fmt_time(s["rows"][n]["time_s"]) if n in s["rows"] else "–" for n in names]
            fast = s["rows"].get("fastwb")
            out.append(
                f"| {r['shape']} | {r['batch']} | {r['dtype']} | " + " | ".join(cells)
                + (f" | {fast['gflops']:.2f} | {fast['gemm_percent']:.1f}%" if fast else " | – | –")
                + f" | {s['best_peer'] or '–'} | "
                + (f"{s['speedup']:.1f}×" if s["speedup"] else "–") + " |")
    skipped = {n: why for r in report["results"] for n, why in r["skipped"].items()}
    versions = {n: v for r in report["results"] for n, v in r["versions"].items()}
    notes = {n: v for r in report["results"] for n, v in r["notes"].items()}
    out += ["", "Contenders: " + "; ".join(
        f"{n} {versions[n]}" + (f" ({notes[n]})" if n in notes else "") for n in versions)]
    if skipped:
        out += [""] + [f"Skipped {n}: {why}" for n, why in skipped.items()]
    return "\n".join(out)


def plot(report: dict, path: Path) -> Path:
    """A bar chart of train_step times (log scale) per shape and dtype."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit('plotting needs matplotlib: pip install "fastwb[bench]"') from None
    results = report["results"]
    names = [n for n in NAMES if any(n in r["train_step"] for r in results)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(results)), 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [r["train_step"][name]["min_s"] * 1e6 if name in r["train_step"] else np.nan
                  for r in results]
        ax.bar(np.arange(len(results)) + (i - (len(names) - 1) / 2) * width, values, width,
               label=name)
    ax.set_yscale("log")
    ax.set_ylabel("train_step time (µs, log scale)")
    ax.set_xticks(np.arange(len(results)))
    ax.set_xticklabels([f"{r['shape']}\nb{r['batch']} {r['dtype']}" for r in results],
                       fontsize=7)
    ax.set_title(f"One Adam step, {report['threads']} threads (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv=None, prog: str | None = "fastwb bench --peers") -> argparse.Namespace:
    """The options of a peer run, as ``fastwb bench --peers`` reads them."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser.parse_args(argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a peer run (shared with ``fastwb bench``)."""
    add_shapes(parser, large=False)
    add_dtypes(parser)
    parser.add_argument("--only", action="append", choices=NAMES[1:], metavar="PEER",
                        help=f"peer to run (repeatable; default: all of {', '.join(NAMES[1:])})")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of every contender and of BLAS (default: all cores)")
    add_timing(parser, repeats=5, min_time=0.1)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: the two small shapes, 1 round of 1 ms")
    add_json(parser)
    parser.add_argument("--markdown", type=Path, metavar="PATH",
                        help="write the tables as Markdown")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="write a bar chart of the train_step times (needs matplotlib)")


def run(args: argparse.Namespace, names=NAMES) -> dict:
    """Measure, print the tables, and write what ``args`` asks for; returns the report."""
    if args.threads < 1 or args.repeats < 1 or args.min_time < 0:
        raise SystemExit("--threads and --repeats must be at least 1, --min-time nonnegative")
    try:
        shapes = select(args.shape, large=True)
    except ValueError as why:
        raise SystemExit(str(why)) from None
    if args.quick:
        shapes = [shape for shape in shapes if shape in QUICK_SHAPES]
    repeats, min_time = (1, 0.001) if args.quick else (args.repeats, args.min_time)
    dtypes = chosen_dtypes(args)
    if args.only:
        names = ["fastwb"] + [n for n in names if n in args.only]
    limiter = limit_blas(args.threads)
    try:
        report = {"machine": machine(), "threads": args.threads, "repeats": repeats,
                  "min_time_s": min_time,
                  "gemm_flops": gemm_flop_rates(dtypes, repeats, max(min_time, 0.2)),
                  "results": []}
        # dtype-major: JAX switches to 64-bit once, for the float64 tasks
        for dtype in dtypes:
            for shape in shapes:
                task = Task(shape, dtype, args.threads)
                print(f"  {task.label} batch {task.batch} {dtype} ...", file=sys.stderr,
                      flush=True)
                report["results"].append(measure_task(task, names, repeats, min_time,
                                                      0 if args.quick else SETTLE))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    text = markdown(report)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)
    return report
