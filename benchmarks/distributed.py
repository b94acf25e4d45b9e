"""Data-parallel training over MPI: 1 rank against 2 on this machine, and a
ring-allreduce cost model of larger clusters.

The script launches itself under ``mpiexec -n 1`` and ``mpiexec -n 2`` (the
``mpiexec`` next to the running Python first, then the one on PATH), every
process with one BLAS and one fastwb thread (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` = 1, ``n_threads=1``). Each case
is a standard shape at two batch sizes (its own and a larger one) training
Adam on ``--samples`` samples; one call is one epoch over all of them, and
each time is the best of ``--rounds`` interleaved rounds (on 2 ranks the
slower rank's time, each round starting at a barrier):

- ``Network.fit``: one process, the compiled epoch loop;
- ``distributed.fit`` on 1 rank: the same, one Allreduce per step;
- ``distributed.fit`` on 2 ranks, each on half the samples. ``batch_size`` is
  per rank, so a step trains twice as many samples; also at the same global
  batch (half the batch per rank);
- local SGD on 2 ranks (``average_every=1``: each rank trains a whole epoch on
  its half, then one Allreduce averages parameters and optimizer moments).

Beside them: one Allreduce of the step's message (``n_parameters + 3``
float64) timed alone in a loop on 2 ranks, and its share of a 2-rank epoch.
After every distributed call the ranks' parameters are checked bit-identical.

The cost model (``fastwb.bench.allreduce``) takes the compute time per sample
of ``Network.fit`` on one thread and prints, for a 10 Gb/s Ethernet and a
100 Gb/s InfiniBand-class link: the allreduce time of the standard shapes'
flat gradients (float64, as ``distributed.fit`` sends them, and float32); the
rank count from which a step of a fixed global batch spends as long
communicating as computing; the efficiency of a fixed batch per rank at 2 to 64
ranks; and how many local steps local SGD needs between averages to keep them
under 5 % of the time.

Usage::

    python benchmarks/distributed.py [--shape 64-128-10] [--dtype float32] [--rounds 5]
                                     [--samples 4096] [--large] [--quick] [--json out.json]

Needs mpi4py and an MPI (``pip install "fastwb[mpi]"``).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fastwb._layout import n_parameters
from fastwb._optional import MPI_REQUIREMENT
from fastwb.bench.allreduce import (LINKS, RANKS, best_speedup, communication_bound_ranks,
                                    fit_message_bytes, local_sgd_message_bytes,
                                    local_steps_for_share, ring_allreduce_time,
                                    weak_scaling_efficiency)
from fastwb.bench.cases import make_network, make_optimizer, training_data
from fastwb.bench.machine import machine
from fastwb.bench.options import add_json, add_shapes, chosen_shapes, check_timing
from fastwb.bench.shapes import DTYPES, FIT_SAMPLES, SHAPES, Shape
from fastwb.bench.timing import fmt_time
from fastwb.testing import mpiexec

#: One BLAS and one OpenMP thread per rank: the ranks share the machine's cores.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: ``--quick``: one round on a few samples (a smoke run).
QUICK_ROUNDS, QUICK_SAMPLES = 1, 512
#: The local-SGD bound: averages take at most this share of the time.
SHARE = 0.05
#: Adam's moment buffers, which local SGD averages with the parameters.
ADAM_MOMENTS = 2
#: Rank count of the local-SGD table.
LOCAL_RANKS = 16
#: A whole run of mpiexec may take this long before it is stopped.
RUN_TIMEOUT = 1800


def batches(shape: Shape) -> tuple[int, int]:
    """The batch sizes a shape is measured at: its own and a larger one."""
    return shape.batch, max(256, 4 * shape.batch)


# ---------------------------------------------------------------------------
# under mpiexec


def _synchronised_rounds(comm, MPI, calls: dict, rounds: int) -> dict[str, dict]:
    """Each call once to warm up, then ``rounds`` interleaved rounds (the order
    alternating), each starting at a barrier and lasting as long as the slowest
    rank; ``{name: {"min_s", "median_s"}}``."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            comm.Barrier()
            start = time.perf_counter()
            calls[name]()
            times[name].append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
    return {name: {"min_s": min(t), "median_s": float(np.median(t))} for name, t in times.items()}


def _allreduce_time(comm, MPI, n_values: int, min_time: float, rounds: int) -> float:
    """Seconds per in-place Allreduce (sum) of ``n_values`` float64, best round."""
    buffer = np.zeros(n_values)

    def loop(number: int) -> float:
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(number):
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return comm.allreduce(time.perf_counter() - start, op=MPI.MAX) / number

    trial = loop(10)
    number = comm.bcast(max(10, math.ceil(min_time / max(trial, 1e-9))), root=0)
    return min(loop(number) for _ in range(rounds))


def _same_on_every_rank(comm, network) -> None:
    digests = comm.allgather(hashlib.sha256(network.parameters.tobytes()).digest())
    if any(d != digests[0] for d in digests):
        raise AssertionError("the ranks' parameters differ after distributed.fit")


def _distributed(comm, sizes, dtype, X, y, batch, **options):
    """A distributed.fit epoch of a fresh network and optimizer, checked after."""
    import fastwb.distributed
    net, opt = make_network(sizes, dtype, n_threads=1), make_optimizer("adam")

    def call():
        fastwb.distributed.fit(net, X, y, opt, epochs=1, batch_size=batch, comm=comm, **options)
        _same_on_every_rank(comm, net)
    return call


def worker(config: dict) -> dict | None:
    """Measure every case on this communicator; the results on rank 0, None elsewhere."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    dtype, samples, rounds = config["dtype"], config["samples"], config["rounds"]
    cases = []
    for sizes, batch in config["cases"]:
        X, y = training_data(Shape(tuple(sizes), batch), dtype, samples)
        calls = {}
        if size == 1:
            net, opt = make_network(sizes, dtype, n_threads=1), make_optimizer("adam")
            calls["fit"] = lambda: net.fit(X, y, opt, epochs=1, batch_size=batch)
            calls["rank1"] = _distributed(comm, sizes, dtype, X, y, batch)
        else:
            part = slice(rank * samples // size, (rank + 1) * samples // size)
            X, y = X[part], y[part]
            calls["rank2"] = _distributed(comm, sizes, dtype, X, y, batch)
            if batch >= size:
                calls["rank2_half"] = _distributed(comm, sizes, dtype, X, y, batch // size)
            calls["local_sgd"] = _distributed(comm, sizes, dtype, X, y, batch, average_every=1)
        case = {"sizes": sizes, "batch": batch, "samples": samples,
                "times": _synchronised_rounds(comm, MPI, calls, rounds)}
        if size > 1:
            case["allreduce_s"] = _allreduce_time(comm, MPI, n_parameters(sizes) + 3,
                                                  config["min_time"], rounds)
        cases.append(case)
    return {"ranks": size, "cases": cases} if rank == 0 else None


# ---------------------------------------------------------------------------
# the launcher


def missing() -> str | None:
    """Why this benchmark cannot run here (no mpi4py or no mpiexec), or None."""
    if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
        return f"this benchmark needs {MPI_REQUIREMENT}"
    return None


def launch(ranks: int, config: dict, workdir: Path) -> dict:
    """Run the worker under ``mpiexec -n ranks``, one thread per rank; its results."""
    config_path, out = workdir / f"config{ranks}.json", workdir / f"result{ranks}.json"
    config_path.write_text(json.dumps(config))
    command = [str(mpiexec()), "-n", str(ranks), sys.executable,
               str(Path(__file__).resolve()), "--worker", str(config_path),
               "--worker-out", str(out)]
    try:
        done = subprocess.run(command, env={**os.environ, **ONE_THREAD}, cwd=workdir,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"mpiexec -n {ranks} ran past {RUN_TIMEOUT} s and was stopped") from None
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"mpiexec -n {ranks} failed (exit status {done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")
    return json.loads(out.read_text())


def run(shapes: list[Shape], dtype: str = "float32", samples: int = FIT_SAMPLES,
        rounds: int = 5, min_time: float = 0.05) -> dict:
    """Measure on 1 and 2 ranks; a JSON-serialisable dict with the merged cases."""
    config = {"dtype": dtype, "samples": samples, "rounds": rounds, "min_time": min_time,
              "cases": [[list(shape.sizes), batch] for shape in shapes for batch in batches(shape)]}
    with tempfile.TemporaryDirectory(prefix="fastwb-distributed-") as tmp:
        one, two = (launch(n, config, Path(tmp)) for n in (1, 2))
    cases = []
    for a, b in zip(one["cases"], two["cases"]):
        case = {**a, "times": {**a["times"], **b["times"]}, "allreduce_s": b["allreduce_s"]}
        case["samples_per_second"] = {name: samples / t["min_s"]
                                      for name, t in case["times"].items()}
        cases.append(case)
    return {"machine": machine(), "dtype": dtype, "samples": samples, "rounds": rounds,
            "ranks": 2, "cases": cases}


# ---------------------------------------------------------------------------
# the tables


def _label(sizes) -> str:
    return "-".join(map(str, sizes))


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value / 1e3:.1f}k"


def _ratio(over: float | None, under: float | None) -> str:
    return "—" if over is None or under is None else f"{over / under:.2f}×"


def _link(link) -> str:
    return f"{link.name}, α = {fmt_time(link.latency)}"


def _bytes(n: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def measured_table(result: dict) -> str:
    """Samples per second of every contender, speed-ups, the Allreduce and its share."""
    out = ["| shape | batch per rank | Network.fit | distributed, 1 rank | 2 ranks | 2 ranks "
           "÷ 1 rank | 2 ranks ÷ Network.fit | 2 ranks, half batch each | ÷ 1 rank "
           "| local SGD, 2 ranks, k=1 | ÷ Network.fit | Allreduce (P+3 float64) "
           "| Allreduce share of a 2-rank step |",
           "|---|" + "---:|" * 12]
    for case in result["cases"]:
        rate = case["samples_per_second"]
        get = rate.get
        steps = math.ceil(case["samples"] / 2 / case["batch"])
        share = steps * case["allreduce_s"] / case["times"]["rank2"]["min_s"]
        out.append(
            f"| {_label(case['sizes'])} | {case['batch']} | {_rate(get('fit'))} "
            f"| {_rate(get('rank1'))} | {_rate(get('rank2'))} "
            f"| {_ratio(get('rank2'), get('rank1'))} | {_ratio(get('rank2'), get('fit'))} "
            f"| {_rate(get('rank2_half'))} | {_ratio(get('rank2_half'), get('rank1'))} "
            f"| {_rate(get('local_sgd'))} | {_ratio(get('local_sgd'), get('fit'))} "
            f"| {fmt_time(case['allreduce_s'])} | {share:.0%} |")
    return "\n".join(out)


def allreduce_table(shapes) -> str:
    """Modelled allreduce time of every standard shape's flat gradient."""
    out = ["| shape | parameters | message | link | 2 ranks | 8 ranks | 64 ranks |",
           "|---|---:|---|---|---:|---:|---:|"]
    for shape in shapes:
        p = n_parameters(shape.sizes)
        for name, nbytes in (("float64, as fit sends it", fit_message_bytes(p)),
                             ("float32", 4 * p)):
            for link in LINKS:
                out.append(f"| {shape.label} | {p:,} | {_bytes(nbytes)} {name} | {_link(link)} | "
                           + " | ".join(fmt_time(ring_allreduce_time(nbytes, n, link))
                                        for n in (2, 8, 64)) + " |")
    return "\n".join(out)


def per_sample(case: dict) -> float:
    """Compute seconds per sample: ``Network.fit`` on one thread at the case's batch."""
    return case["times"]["fit"]["min_s"] / case["samples"]


def _crossing(batch: int, ranks: int | None) -> str:
    if batch < 2:
        return "— (one sample)"
    return "never" if ranks is None else f"{ranks} ranks"


def strong_table(result: dict) -> str:
    """The rank count from which a fixed global batch's step is communication-bound."""
    out = ["| shape | global batch | compute per step, 1 rank | link "
           "| communication-bound from (float64 message) | (float32 message) |",
           "|---|---:|---:|---|---:|---:|"]
    for case in result["cases"]:
        p, t = n_parameters(case["sizes"]), per_sample(case)
        for link in LINKS:
            cells = [communication_bound_ranks(case["batch"], t, nbytes, link)
                     for nbytes in (fit_message_bytes(p), 4 * p)]
            out.append(f"| {_label(case['sizes'])} | {case['batch']} "
                       f"| {fmt_time(case['batch'] * t)} | {_link(link)} | "
                       + " | ".join(_crossing(case["batch"], n) for n in cells) + " |")
    return "\n".join(out)


def weak_table(result: dict) -> str:
    """Modelled efficiency with a fixed batch per rank (float64 message)."""
    out = ["| shape | batch per rank | compute per step | link | "
           + " | ".join(f"{n} ranks" for n in RANKS) + " |",
           "|---|---:|---:|---|" + "---:|" * len(RANKS)]
    for case in result["cases"]:
        step = case["batch"] * per_sample(case)
        nbytes = fit_message_bytes(n_parameters(case["sizes"]))
        for link in LINKS:
            out.append(f"| {_label(case['sizes'])} | {case['batch']} | {fmt_time(step)} "
                       f"| {_link(link)} | "
                       + " | ".join(f"{weak_scaling_efficiency(step, nbytes, n, link):.0%}"
                                    for n in RANKS) + " |")
    return "\n".join(out)


def local_table(result: dict) -> str:
    """Local SGD: per-step communication against averaging every H local steps."""
    out = [f"| shape | batch per rank | link | Allreduce share per step, {LOCAL_RANKS} ranks "
           f"| local steps between averages for ≤ {SHARE:.0%} | steps per epoch of a "
           f"{FIT_SAMPLES}-sample shard | average_every (epochs) |",
           "|---|---:|---|---:|---:|---:|---:|"]
    for case in result["cases"]:
        step = case["batch"] * per_sample(case)
        p = n_parameters(case["sizes"])
        steps = math.ceil(FIT_SAMPLES / case["batch"])
        for link in LINKS:
            share = 1 - weak_scaling_efficiency(step, fit_message_bytes(p), LOCAL_RANKS, link)
            h = local_steps_for_share(step, local_sgd_message_bytes(p, ADAM_MOMENTS),
                                      LOCAL_RANKS, link, SHARE)
            out.append(f"| {_label(case['sizes'])} | {case['batch']} | {_link(link)} "
                       f"| {share:.0%} | {h:,} | {steps:,} | {math.ceil(h / steps):,} |")
    return "\n".join(out)


def reading(result: dict) -> str:
    """One paragraph on what the tables say, from their numbers."""
    cases = result["cases"]
    big = max(cases, key=lambda c: (n_parameters(c["sizes"]), c["batch"]))
    small = min(cases, key=lambda c: (n_parameters(c["sizes"]), c["batch"]))
    slow, fast = LINKS
    big_bytes, small_bytes = (fit_message_bytes(n_parameters(c["sizes"])) for c in (big, small))
    big_step, small_step = (c["batch"] * per_sample(c) for c in (big, small))
    speedup, speedup_ranks = best_speedup(small_step, small_bytes, fast)
    local_steps = local_steps_for_share(small_step,
                                        local_sgd_message_bytes(n_parameters(small["sizes"]),
                                                                ADAM_MOMENTS),
                                        LOCAL_RANKS, slow, SHARE)
    crossings = " and ".join(
        _crossing(big["batch"], communication_bound_ranks(big["batch"], per_sample(big),
                                                          big_bytes, link)) + f" on {link.name}"
        for link in LINKS)
    big_label, small_label = _label(big["sizes"]), _label(small["sizes"])
    overhead = ((small["times"]["rank1"]["min_s"] - small["times"]["fit"]["min_s"])
                / math.ceil(small["samples"] / small["batch"]))
    rate = big["samples_per_second"]
    return (
        f"On this machine 2 ranks of {big_label} at batch {big['batch']} per rank train "
        f"{_ratio(rate.get('rank2'), rate.get('rank1'))} the samples per second of one rank; an "
        f"Allreduce of its {_bytes(big_bytes)} message through shared memory takes "
        f"{fmt_time(big['allreduce_s'])}. Across machines two terms bound the model. Latency: "
        f"a small network's message is a few kilobytes, so its allreduce costs about 2(N−1)α, "
        f"{fmt_time(ring_allreduce_time(small_bytes, 8, slow))} on 8 ranks over {slow.name}, "
        f"against a {fmt_time(small_step)} step of {small_label} at batch {small['batch']}; "
        f"over {fast.name} the best speed-up over one rank with that batch per rank (N × "
        f"efficiency) is {speedup:.2f}× at {speedup_ranks} ranks. Local SGD suits it: over "
        f"{slow.name}, averaging once every {local_steps:,} local steps or more keeps the "
        f"averages under {SHARE:.0%} of the time on {LOCAL_RANKS} ranks. Bandwidth: "
        f"{big_label}'s step of {fmt_time(big_step)} at global batch {big['batch']} becomes "
        f"communication-bound from {crossings}; with {big['batch']} samples per rank its "
        f"efficiency at 64 ranks is {weak_scaling_efficiency(big_step, big_bytes, 64, slow):.0%} "
        f"over the slower link and "
        f"{weak_scaling_efficiency(big_step, big_bytes, 64, fast):.0%} over the faster. Sending "
        f"float32 would halve the bandwidth term only. The compute times are one thread's: a "
        f"rank with many cores computes faster and meets these limits at fewer ranks. Nor "
        f"does the model count distributed.fit's own cost per step beside the compiled epoch "
        f"loop of Network.fit (Python, slicing the batch, the gradient's copies), measured "
        f"here as {fmt_time(overhead)} per step of {small_label} at batch {small['batch']}.")


def markdown(result: dict) -> str:
    """Every table of a ``run`` result, with what they were measured on."""
    m = result["machine"]
    return "\n".join([
        f"{m['cpu']}, {m['usable_cores']} usable cores, load average "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}, fastwb {m['fastwb']} "
        f"({m['blas']} BLAS), {result['dtype']}, Adam; one BLAS and one fastwb thread per "
        f"process. One call is one epoch of {result['samples']} samples (on 2 ranks, half "
        f"each); best of {result['rounds']} interleaved rounds.", "",
        "**Measured**: samples per second; `batch_size` is per rank, so a 2-rank step trains "
        "twice the batch (the half-batch column has the same global batch as 1 rank)", "",
        measured_table(result), "",
        "**Cost model: ring allreduce** 2(N−1)/N × bytes / bandwidth + 2(N−1) α", "",
        allreduce_table(SHAPES), "",
        "**Strong scaling**: a fixed global batch split over N ranks (compute time = the "
        "largest share × Network.fit's time per sample on one thread); the first N whose "
        "allreduce lasts at least as long as the step's compute", "",
        strong_table(result), "",
        "**Weak scaling**: a fixed batch per rank, efficiency = compute / (compute + "
        "allreduce), float64 message", "",
        weak_table(result), "",
        f"**Local SGD**: averaging parameters and Adam's two moments (3P + 1 float64) "
        f"every H local steps instead of one gradient Allreduce per step, {LOCAL_RANKS} ranks; "
        f"average_every = the epochs of {FIT_SAMPLES}-sample shards that H steps make", "",
        local_table(result), "",
        reading(result)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shapes(parser)
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="the networks' dtype (default: float32)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds per contender (default: 5)")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="least seconds of one round of Allreduce calls (default: 0.05)")
    parser.add_argument("--samples", type=int, default=FIT_SAMPLES,
                        help=f"samples of one epoch, over all ranks (default: {FIT_SAMPLES})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_ROUNDS} round of {QUICK_SAMPLES} samples")
    add_json(parser)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(json.loads(args.worker.read_text()))
        if result is not None:
            args.worker_out.write_text(json.dumps(result))
        return
    if missing():
        raise SystemExit(missing())
    if args.quick:
        args.rounds, args.samples = QUICK_ROUNDS, QUICK_SAMPLES
    check_timing(parser, args.rounds, args.min_time)
    if args.samples < 2:
        parser.error("--samples must be at least 2 (one per rank)")
    shapes = chosen_shapes(parser, args)
    start = time.perf_counter()
    result = run(shapes, args.dtype, args.samples, args.rounds, args.min_time)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(f"measured in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
