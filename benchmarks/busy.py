"""What a busy machine costs: fastwb, NumPy and PyTorch beside CPU-bound processes (issue 15).

For each standard shape and dtype, one Adam ``train_step`` of each contender
is timed on the idle machine and beside ``--hogs`` other processes, each
spinning on a core in a pure-Python loop (``fastwb.bench.hogs``), and the table
gives both times and the slowdown, busy over idle. The contenders
(``fastwb.bench.contenders``), all on every core, start from the same weights
and are first checked against the reference:

* fastwb as it is: large products cut into panels of serial BLAS calls, and
  large parameter passes, on fastwb's own helper pool;
* fastwb (OpenBLAS threads): the same network with its products and passes on
  OpenBLAS's own threads, as before issue 15 (``contenders.openblas_threads``);
* NumPy: fastwb's pure-NumPy reference implementation (NumPy's OpenBLAS);
* PyTorch, its CPU build with ``torch.set_num_threads(cores)`` (skipped with a
  note where it is not installed).

**Idle and busy alternate within every round.** The hogs start once, paused
(``SIGSTOP``); each contender has an idle and a busy entry in the interleaved
rounds of ``timing.interleaved``, and its busy entry lets the hogs run for that
round only (``SIGCONT``). A round of all idle entries and one of all busy
entries follow each other within a second or two, their order alternating,
so other users' jobs and frequency changes fall on both phases alike; idle
and busy phases minutes apart, or per case, would let a change in the host's
load pass for the hogs' effect. Each entry is calibrated in its own phase
(a busy call may take 50 times as long), and every round lasts at least
``--min-time`` (``timed_rounds``), so rounds of every contender span alike
however its calls' time swings. The contenders whose OpenBLAS workers keep
spinning about 0.1 s after their last product (NumPy, fastwb (OpenBLAS
threads)) sleep ``SETTLE`` seconds after each round, so they do not act as
one more hog in the next contender's round.

Times are the **median** of the rounds, not the best: a hog's interference
varies from round to round, and the best busy round would show the luckiest
schedule rather than what a user gets (idle times use the median too, for a
like-for-like ratio). Every round is in the JSON.

Usage::

    python benchmarks/busy.py [--hogs 1] [--shape WIDTHS] [--dtype float32] [--large]
                              [--repeats 5] [--min-time 0.1] [--json out.json] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator

from fastwb.bench.contenders import Problem, Task
from fastwb.bench.hogs import Hogs
from fastwb.bench.machine import limit_blas, machine
from fastwb.bench.options import (add_dtypes, add_json, add_shapes, add_timing, check_timing,
                                  chosen_dtypes, chosen_shapes)
from fastwb.bench.peers import contenders_for
from fastwb.bench.shapes import SHAPES
from fastwb.bench.timing import fmt_time, interleaved

#: Contender (``contenders.MAKERS``) and its column in the table, in table order.
LABELS = {"fastwb": "fastwb (panels)", "fastwb-openblas": "fastwb (OpenBLAS threads)",
          "reference": "NumPy", "pytorch": "PyTorch"}
#: Contenders whose OpenBLAS workers spin after their last product, and how long
#: they then leave the cores alone before the next round (OpenBLAS's timeout is
#: 2^28 cycles, about 0.1 s).
SPINNING = ("fastwb-openblas", "reference")
SETTLE = 0.15
PHASES = ("idle", "busy")
#: The shapes ``--quick`` keeps: a smoke run in seconds.
QUICK_SHAPES = SHAPES[:2]


@contextmanager
def _within(settings: Callable[[], AbstractContextManager], busy: bool, hogs: Hogs,
            settle: bool) -> Iterator[None]:
    """A contender's own settings, the hogs running when ``busy``, and a pause after."""
    with settings():
        if busy:
            with hogs.busy():
                yield
        else:
            yield
    if settle:
        time.sleep(SETTLE)


def measure(task: Task, hogs: Hogs, repeats: int, min_time: float) -> dict:
    """Check every contender, then time its ``train_step`` idle and busy, side by side."""
    contenders, skipped = contenders_for(Problem.make(task), LABELS)
    calls, settings = {}, {}
    for phase in PHASES:
        for name, contender in contenders.items():
            key = f"{name} {phase}"
            calls[key] = contender.train_step
            settings[key] = (lambda c=contender, busy=phase == "busy", settle=name in SPINNING:
                             _within(c.settings, busy, hogs, settle))
    times = interleaved(calls, repeats, min_time, settings, timed_rounds=True)
    return {"shape": task.label, "sizes": list(task.sizes), "batch": task.batch,
            "dtype": task.dtype, "skipped": skipped,
            "versions": {name: c.version for name, c in contenders.items()},
            "times": {name: {phase: times[f"{name} {phase}"] for phase in PHASES}
                      for name in contenders}}


def markdown(report: dict) -> str:
    """The machine and load, then per case each contender's idle and busy
    median and its slowdown."""
    m = report["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average"]) if m["load_average"] else "unknown"
    names = [n for n in LABELS if any(n in r["times"] for r in report["results"])]
    out = [f"{m['cpu']}, {m['usable_cores']} usable cores, {report['hogs']} hog(s); "
           f"load average before the run (1, 5, 15 min): {load}. Every contender on "
           f"{report['threads']} threads; median of {report['repeats']} interleaved rounds "
           "per phase; one Adam train_step.", "",
           "| shape | batch | dtype | " + " | ".join(
               f"{LABELS[n]} idle | busy | slowdown" for n in names) + " |",
           "|---|---:|---|" + "---:|---:|---:|" * len(names)]
    for r in report["results"]:
        cells = []
        for n in names:
            if n not in r["times"]:
                cells += ["–"] * 3
                continue
            idle, busy = (r["times"][n][phase]["median_s"] for phase in PHASES)
            cells += [fmt_time(idle), fmt_time(busy), f"{busy / idle:.2f}×"]
        out.append(f"| {r['shape']} | {r['batch']} | {r['dtype']} | " + " | ".join(cells) + " |")
    torch = {r["versions"]["pytorch"] for r in report["results"] if "pytorch" in r["versions"]}
    out += ["", f"fastwb {m['fastwb']} (BLAS: {m['blas']}), NumPy {m['numpy']}"
            + "".join(f", PyTorch {v}" for v in torch) + f", Python {m['python']}."]
    skipped = {n: why for r in report["results"] for n, why in r["skipped"].items()}
    out += [f"Skipped {LABELS[n]}: {why}" for n, why in skipped.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hogs", type=int, default=1,
                        help="CPU-bound processes beside the busy rounds (default: 1)")
    add_shapes(parser)
    add_dtypes(parser)
    add_timing(parser, repeats=5, min_time=0.1)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: the two small shapes, 1 round of 1 ms per phase")
    add_json(parser)
    args = parser.parse_args(argv)
    check_timing(parser, args.repeats, args.min_time)
    if args.hogs < 0:
        parser.error("--hogs must be nonnegative")
    shapes = chosen_shapes(parser, args)
    if args.quick:
        shapes = [shape for shape in shapes if shape in QUICK_SHAPES]
        args.repeats, args.min_time = 1, 0.001
    threads = os.cpu_count() or 1
    report = {"machine": machine(), "hogs": args.hogs, "threads": threads,
              "repeats": args.repeats, "min_time_s": args.min_time, "results": []}
    limiter = limit_blas(threads)
    try:
        with Hogs(args.hogs) as hogs:
            for dtype in chosen_dtypes(args):
                for shape in shapes:
                    print(f"  {shape.label} batch {shape.batch} {dtype} ...", file=sys.stderr,
                          flush=True)
                    report["results"].append(
                        measure(Task(shape, dtype, threads), hogs, args.repeats, args.min_time))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
