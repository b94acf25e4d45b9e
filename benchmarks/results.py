"""Regenerate ``benchmarks/RESULTS.md``: peers, memory, scaling, the Monitor's
cost and data-parallel training over MPI.

Runs ``fastwb.bench.peers`` on the four standard shapes (both dtypes), the
memory benchmark (``memory.py``) and the scaling sweeps with their plots
(``scaling.py``), what leaving ``fastwb.Monitor`` on costs (``monitor.py``),
1 MPI rank against 2 with the ring-allreduce cost model (``distributed.py``,
the three smaller shapes), and writes the tables, the plots
(``benchmarks/results/``), the raw JSON and the machine they ran on. It takes
several minutes; install the peers first (``pip install ".[peers]"``) and
mpi4py with an MPI (``pip install ".[mpi]"``), or they are skipped with a note.

Usage::

    python benchmarks/results.py [--no-large] [--out benchmarks]
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import memory  # noqa: E402  (the sibling scripts: their measurements and tables)
import monitor  # noqa: E402
import scaling  # noqa: E402

from fastwb.bench import peers  # noqa: E402
from fastwb.bench.machine import thread_counts  # noqa: E402
from fastwb.bench.shapes import select  # noqa: E402


def _load_distributed():
    """benchmarks/distributed.py under another name: as ``distributed`` it would
    stand in for Dask's package in this process."""
    spec = importlib.util.spec_from_file_location("mpi_benchmark", HERE / "distributed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-large", action="store_true",
                        help="leave out 1024-4096-4096-1024 batch 256 (minutes, gigabytes)")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="where RESULTS.md goes (default: benchmarks/)")
    args = parser.parse_args(argv)
    figures = args.out / "results"
    figures.mkdir(parents=True, exist_ok=True)

    shapes = select(large=not args.no_large)
    peer_args = peers.parse_args([f"--shape={shape.label}" for shape in shapes])
    peer_args.plot = figures / "peers_train_step.png"
    report = peers.run(peer_args)
    mem = memory.measure(shapes, ["float32", "float64"])
    scale = scaling.run(list(thread_counts()), large=not args.no_large)
    plots = [peer_args.plot] + scaling.plot(scale, figures)
    monitored = [monitor.measure(case, 20, 7, 0.2) for case in monitor.CASES]
    mpi = _load_distributed()
    parallel = None if mpi.missing() else mpi.run(select())
    (figures / "results.json").write_text(json.dumps(
        {"peers": report, "memory": mem, "scaling": scale, "monitor": monitored,
         "distributed": parallel}, indent=1, default=str))

    m = report["machine"]
    text = "\n".join([
        "# fastwb benchmark results",
        "",
        f"Generated {datetime.date.today()} by `python benchmarks/results.py` on: {m['cpu']}, "
        f"{m['usable_cores']} usable cores, {m['system']}, Python {m['python']}, NumPy "
        f"{m['numpy']}, fastwb {m['fastwb']} (BLAS: {m['blas']}, OpenMP: {m['openmp']}). "
        "All ratios come from contenders timed side by side in interleaved rounds of one "
        "run; each time is the best round's mean per call.",
        "",
        "## fastwb against its peers", "",
        peers.markdown(report), "",
        f"![train_step times](results/{peer_args.plot.name})", "",
        "## Memory", "",
        memory.markdown(mem), "",
        "## Scaling", "",
        scaling.markdown(scale), "",
        *[f"![{p.stem}](results/{p.name})" for p in plots[1:]], "",
        "## What fastwb.Monitor costs", "",
        monitor.markdown(monitored), "",
        "## Data-parallel training over MPI", "",
        "Rerun alone with `python benchmarks/distributed.py` (it starts `mpiexec -n 1` and "
        "`-n 2` itself).", "",
        f"Skipped: {mpi.missing()}." if parallel is None else mpi.markdown(parallel), "",
        "Raw numbers: [results/results.json](results/results.json).", ""])
    (args.out / "RESULTS.md").write_text(text)
    print(f"wrote {args.out / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
