"""Peak memory of ``Network.fit`` against what training needs in theory.

Theory, for a network of P parameters in a dtype of s bytes, trained with Adam
on batches of B rows: the parameters, their gradients and Adam's two moment
buffers (P s bytes each), and one batch's activations, B x (sum of the layer
widths) x s, plus the two B x (largest width) x s buffers the backward pass
sends gradients back through. The training set (BATCHES batches, inputs and
integer labels) is the user's, not fit's need: it is reported apart.

For each standard shape, dtype and backend, on a fresh network and a fresh
Adam, it measures:

1. the traced peak of one validation-free epoch of ``fit`` (tracemalloc: NumPy
   reports its data allocations to it, and fastwb allocates every buffer as a
   NumPy array), counted from before the network was built, so parameters and
   gradients included; and "fit's extra", the part above what existed when
   fit began (Adam's state, the workspace and fit's own buffers);
2. the growth of the peak RSS over the same fit in a fresh subprocess (Linux:
   glibc's free pages handed back with malloc_trim, then VmHWM reset to the
   current RSS through /proc/self/clear_refs), beside fit's extra: memory
   outside tracemalloc's view (C malloc, OpenBLAS buffers, thread stacks)
   shows as the difference; and how much LATER_EPOCHS more epochs raise that
   peak further (nothing, unless memory leaks outside tracemalloc's view);
3. what ``train_step`` allocates once warm, over runs of STEPS and 2 x STEPS
   steps: "allocated per step" is the traced peak above the level before
   them (the returned float and the call's Python objects for the compiled
   core; the NumPy temporaries for the reference), "kept per step" the
   difference of the two runs' growths divided by STEPS, i.e. the growth per
   step (for the reference NumPy's cache of small freed buffers can show as
   a few bytes either way).

A second table accounts for the compiled backend's traced peak, byte for byte
(functions ``workspace``, ``fit_overhead`` and ``modeled_peak``): fastwb's
workspace (``Workspace`` in _core.pyx) and fit's allocations (training.py and
``Engine.fit_epoch``).

Usage::

    python benchmarks/memory.py [--large] [--dtype float32] [--shape 784-256-128-10]
                                [--backend compiled] [--batches 8] [--steps 32]
                                [--no-rss] [--json memory.json]

Importable: ``measure(shapes, dtypes)`` returns the results, ``markdown(results)``
their tables.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

import fastwb
from fastwb.bench.cases import BACKENDS, make_network, make_optimizer, training_data
from fastwb.bench.options import (add_dtypes, add_json, add_shapes, chosen_dtypes,
                                  chosen_shapes)
from fastwb.bench.shapes import Shape

#: Batches of the training set of every case.
BATCHES = 8
#: Warm train_step calls of the first measured run (the second makes twice as many).
STEPS = 32
#: Epochs after the first whose peak-RSS growth is measured.
LATER_EPOCHS = 3
#: Adam's state buffers: first and second moments.
ADAM_SLOTS = 2

# _core.pyx's constants (cdef there, so copied here) that size the workspace.
#: Elements per block of the parameter passes' partial sums.
BLOCK = 8192
#: A chunked step cuts its batch into chunks of at least this many rows...
CHUNK_MIN_ROWS = 64
#: ... for networks of at most this many parameters...
CHUNK_MAX_PARAMS = 1 << 16
#: ... into at most this many chunks.
MAX_CHUNKS = 8
#: Bytes per batch of fit's per-epoch records (training._run_epoch): step number,
#: learning rate, loss and row count, 8 bytes each.
RECORD_BYTES = 32


def n_parameters(sizes: tuple[int, ...]) -> int:
    """Weights plus biases of a network with these widths."""
    return sum(k * m + m for k, m in zip(sizes[:-1], sizes[1:]))


def chunk_count(rows: int, n_params: int) -> int:
    """Chunks of a training step on ``rows`` rows (``chunk_count`` in _core.pyx)."""
    chunks = 1
    if n_params > CHUNK_MAX_PARAMS:
        return 1
    while chunks < MAX_CHUNKS and rows >= 2 * chunks * CHUNK_MIN_ROWS:
        chunks *= 2
    return chunks


def theory(shape: Shape, dtype: str) -> dict[str, int]:
    """Bytes training with Adam needs in theory: parameters, gradients, the two
    moment buffers, and one batch's activations with the backward pass's two
    gradient buffers."""
    s, p, widths = np.dtype(dtype).itemsize, n_parameters(shape.sizes), shape.sizes[1:]
    return {"params": p * s, "grads": p * s, "opt_state": ADAM_SLOTS * p * s,
            "activations": shape.batch * (sum(widths) + 2 * max(widths)) * s}


def workspace(shape: Shape, dtype: str, dropout: bool = False) -> dict[str, int]:
    """fastwb's workspace for one batch, by buffer, as ``Workspace`` allocates it:
    every layer's activations, the two ping-pong gradient buffers, per-row
    losses (float64), per-block sums of the parameter passes (float64), dropout
    masks (one byte per activation, with dropout only), and the gradients of
    chunks 1.. of a chunked step (chunk 0 uses the engine's gradient)."""
    s, p, widths = np.dtype(dtype).itemsize, n_parameters(shape.sizes), shape.sizes[1:]
    b = shape.batch
    n_blocks = max(-(-k * m // BLOCK) for k, m in zip(shape.sizes[:-1], widths))
    return {"activations": b * sum(widths) * s, "deltas": 2 * b * max(widths) * s,
            "row_loss": 8 * b, "partials": 2 * 8 * n_blocks,
            "dropout_masks": b * sum(widths) if dropout else 0,
            "chunk_gradients": (chunk_count(b, p) - 1) * p * s}


def fit_overhead(shape: Shape, dtype: str, samples: int,
                 slots: int = ADAM_SLOTS) -> dict[str, int]:
    """What ``fit`` allocates besides the optimizer state and the workspace, with
    integer labels and no sample weights, from training.py and ``Engine.fit_epoch``.

    Per epoch, freed at its end: ``snapshot``, the parameters and ``slots``
    state buffers copied at the epoch's start to undo a divergence;
    ``shuffle_order`` (8 bytes per sample); ``gathered_batch``, the shuffled
    batch's inputs and labels; ``batch_records`` (RECORD_BYTES per batch);
    ``finite_check``, ``np.isfinite`` of the parameters after the epoch (one
    byte each, once the epoch's other buffers are gone). Per fit, before any
    epoch: ``input_checks``, ``np.isfinite`` of X and its negation (two bytes
    per input value) and the label range checks (three per label).
    """
    s, p = np.dtype(dtype).itemsize, n_parameters(shape.sizes)
    n_in, b = shape.sizes[0], min(shape.batch, samples)
    return {"snapshot": (1 + slots) * p * s, "shuffle_order": 8 * samples,
            "gathered_batch": b * (n_in * s + 8), "batch_records": RECORD_BYTES * -(-samples // b),
            "finite_check": p, "input_checks": samples * (2 * n_in + 3)}


def modeled_peak(shape: Shape, dtype: str, samples: int) -> int:
    """The compiled backend's traced peak over a first Adam epoch of ``fit`` from
    a fresh network, by ``theory``, ``workspace`` and ``fit_overhead``: the
    parameters and gradients, then the larger of the input checks and the
    epoch (Adam's state, the workspace, the snapshot, and the larger of the
    epoch's buffers and the finite check), Python objects left out."""
    t, f = theory(shape, dtype), fit_overhead(shape, dtype, samples)
    buffers = f["shuffle_order"] + f["gathered_batch"] + f["batch_records"]
    epoch = (t["opt_state"] + sum(workspace(shape, dtype).values()) + f["snapshot"]
             + max(buffers, f["finite_check"]))
    return t["params"] + t["grads"] + max(f["input_checks"], epoch)


def _warm_up(dtype: str, backend: str) -> None:
    """A fit and a step on a tiny network, so lazy imports and caches of the code
    paths measured are in place before measuring."""
    tiny = Shape((4, 3, 2), 2)
    X, y = training_data(tiny, dtype, 2 * tiny.batch)
    net, optimizer = make_network(tiny.sizes, dtype, backend), make_optimizer("adam")
    net.fit(X, y, optimizer, epochs=1, batch_size=tiny.batch)
    net.train_step(X, y, optimizer)


def _traced(shape: Shape, dtype: str, backend: str, batches: int, steps: int) -> dict:
    """Traced bytes: network, fit's peak and extra, and the warm steps' allocations."""
    X, y = training_data(shape, dtype, batches * shape.batch)
    _warm_up(dtype, backend)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        net, optimizer = make_network(shape.sizes, dtype, backend), make_optimizer("adam")
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        net.fit(X, y, optimizer, epochs=1, batch_size=shape.batch)
        peak = tracemalloc.get_traced_memory()[1]

        xb, yb = X[:shape.batch], y[:shape.batch]
        net.train_step(xb, yb, optimizer)
        # runs of steps and 2 * steps steps: the growth per step is the difference of
        # their growths, free of the ints that reading the levels leaves behind
        tracemalloc.reset_peak()
        level0 = tracemalloc.get_traced_memory()[0]
        _repeat(net.train_step, steps, xb, yb, optimizer)
        level1 = tracemalloc.get_traced_memory()[0]
        _repeat(net.train_step, 2 * steps, xb, yb, optimizer)
        level2, step_peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return {"network": start - base, "peak": peak - base, "fit_extra": peak - start,
            "steps": 3 * steps, "allocated_per_step": step_peak - level0,
            "kept_per_step": ((level2 - level1) - (level1 - level0)) / steps}


def _repeat(call, times: int, *args) -> None:
    """``call(*args)`` ``times`` times."""
    for _ in range(times):
        call(*args)


def _reset_peak_rss() -> tuple[str, int]:
    """Reset the peak RSS to the current RSS where Linux allows; returns the
    method and the baseline in bytes. First glibc hands its free heap pages
    back, or fit would reuse them (left by the data's float64 draws) unseen."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):          # not glibc: nothing to hand back
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM", _proc_status("VmRSS")
    except OSError:              # elsewhere the peak since the process began
        return "ru_maxrss", _peak_rss("ru_maxrss")


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _peak_rss(method: str) -> int:
    if method == "VmHWM":
        return _proc_status("VmHWM")
    import resource                  # Unix only, and Linux does not get here
    scale = 1 if sys.platform == "darwin" else 1024        # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def rss_probe(shape: Shape, dtype: str, backend: str, batches: int) -> dict:
    """How much the first fit epoch of a fresh network and Adam raises this
    process's peak RSS, and how much LATER_EPOCHS more raise it further (not
    at all unless something leaks); meant for a fresh process (see ``_rss``)."""
    X, y = training_data(shape, dtype, batches * shape.batch)
    _warm_up(dtype, backend)
    net, optimizer = make_network(shape.sizes, dtype, backend), make_optimizer("adam")
    method, before = _reset_peak_rss()
    net.fit(X, y, optimizer, epochs=1, batch_size=shape.batch)
    first = _peak_rss(method)
    net.fit(X, y, optimizer, epochs=LATER_EPOCHS, batch_size=shape.batch)
    return {"rss_growth": first - before, "rss_later_growth": _peak_rss(method) - first,
            "rss_method": method}


def _rss(shape: Shape, dtype: str, backend: str, batches: int) -> dict:
    """``rss_probe`` in a fresh Python process."""
    spec = json.dumps({"sizes": shape.sizes, "batch": shape.batch, "dtype": dtype,
                       "backend": backend, "batches": batches})
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rss-probe", spec],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def measure(shapes: list[Shape], dtypes: list[str], backends: tuple[str, ...] = BACKENDS,
            batches: int = BATCHES, steps: int = STEPS, rss: bool = True) -> list[dict]:
    """Measure every shape, dtype and backend; one dict per case (see the module
    docstring): sizes, theory, traced bytes, RSS growth (None without ``rss``),
    and for the compiled backend the workspace, fit's overhead and the modeled peak."""
    results = []
    for shape in shapes:
        for dtype in dtypes:
            samples = batches * shape.batch
            data_bytes = samples * (shape.sizes[0] * np.dtype(dtype).itemsize + 8)  # X, labels
            for backend in backends:
                result = {"shape": shape.label, "sizes": list(shape.sizes), "batch": shape.batch,
                          "dtype": dtype, "backend": backend, "samples": samples,
                          "data_bytes": data_bytes, "theory": theory(shape, dtype),
                          **_traced(shape, dtype, backend, batches, steps),
                          **(_rss(shape, dtype, backend, batches) if rss
                             else {"rss_growth": None, "rss_later_growth": None,
                                   "rss_method": None})}
                if backend == "compiled":
                    result["workspace"] = workspace(shape, dtype)
                    result["fit_overhead"] = fit_overhead(shape, dtype, samples)
                    result["modeled_peak"] = modeled_peak(shape, dtype, samples)
                results.append(result)
    return results


def fmt_bytes(n: float | None) -> str:
    """Bytes in B, KiB, MiB or GiB to 3 significant digits (whole units from
    1000 up); – for None."""
    if n is None:
        return "–"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if abs(value) < 999.5 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def markdown(results: list[dict]) -> str:
    """The results as two markdown tables: traced peak against theory for every
    case, then the compiled backend's peak accounted for."""
    lines = ["Peak memory of one Adam epoch of fit against theory (traced peak: from "
             "before the network was built; fit's extra: above what existed when fit "
             "began; RSS growth: the same fit in a fresh process):", "",
             "| shape | batch | dtype | backend | params | grads | Adam state | activations "
             "| theory | traced peak | peak/theory | fit's extra | RSS growth "
             f"| RSS growth, epochs 2-{1 + LATER_EPOCHS} "
             "| allocated per step (bytes) | kept per step (bytes) |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        t = r["theory"]
        total = sum(t.values())
        lines.append(
            f"| {r['shape']} | {r['batch']} | {r['dtype']} | {r['backend']} "
            f"| {fmt_bytes(t['params'])} | {fmt_bytes(t['grads'])} | {fmt_bytes(t['opt_state'])} "
            f"| {fmt_bytes(t['activations'])} | {fmt_bytes(total)} | {fmt_bytes(r['peak'])} "
            f"| {r['peak'] / total:.2f} | {fmt_bytes(r['fit_extra'])} "
            f"| {fmt_bytes(r['rss_growth'])} | {fmt_bytes(r['rss_later_growth'])} "
            f"| {r['allocated_per_step']:,} "
            f"| {r['kept_per_step']:.1f} |")
    compiled = [r for r in results if r["backend"] == "compiled"]
    if compiled:
        lines += ["", "The compiled backend's traced peak accounted for (data: the training "
                  "set, not counted; workspace: fastwb's buffers for one batch; snapshot: "
                  "parameters and Adam state copied each epoch; epoch buffers: shuffle "
                  "order, gathered batch, per-batch records; input checks: per fit):", "",
                  "| shape | batch | dtype | data | workspace | snapshot | epoch buffers "
                  "| input checks | modeled peak | traced peak | traced/modeled |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in compiled:
            f = r["fit_overhead"]
            buffers = f["shuffle_order"] + f["gathered_batch"] + f["batch_records"]
            lines.append(
                f"| {r['shape']} | {r['batch']} | {r['dtype']} | {fmt_bytes(r['data_bytes'])} "
                f"| {fmt_bytes(sum(r['workspace'].values()))} | {fmt_bytes(f['snapshot'])} "
                f"| {fmt_bytes(buffers)} | {fmt_bytes(f['input_checks'])} "
                f"| {fmt_bytes(r['modeled_peak'])} | {fmt_bytes(r['peak'])} "
                f"| {r['peak'] / r['modeled_peak']:.3f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[Shape]]:
    """The options, and the shapes they choose."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shapes(parser)
    add_dtypes(parser)
    parser.add_argument("--backend", choices=BACKENDS, action="append",
                        help="backend to measure (repeatable; default: all)")
    parser.add_argument("--batches", type=int, default=BATCHES,
                        help=f"batches in the training set (default: {BATCHES})")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"warm train_step calls of the first of two measured runs, the second "
                        f"making twice as many (default: {STEPS})")
    parser.add_argument("--no-rss", action="store_true",
                        help="skip the peak-RSS subprocesses")
    add_json(parser)
    parser.add_argument("--rss-probe", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batches < 1 or args.steps < 1:
        parser.error("--batches and --steps must be at least 1")
    return args, chosen_shapes(parser, args)


def main(argv: list[str] | None = None) -> None:
    args, shapes = parse_args(argv)
    if args.rss_probe:
        spec = json.loads(args.rss_probe)
        shape = Shape(tuple(spec["sizes"]), spec["batch"])
        print(json.dumps(rss_probe(shape, spec["dtype"], spec["backend"], spec["batches"])))
        return
    dtypes = chosen_dtypes(args)
    backends = tuple(args.backend or BACKENDS)
    print(f"fastwb {fastwb.__version__}, NumPy {np.__version__}, "
          f"Python {platform.python_version()}; training set: {args.batches} batches; "
          f"{args.steps} warm steps")
    print()
    results = measure(shapes, dtypes, backends, args.batches, args.steps, not args.no_rss)
    print(markdown(results))
    if args.json is not None:
        report = {"fastwb": fastwb.__version__, "numpy": np.__version__,
                  "python": platform.python_version(), "batches": args.batches,
                  "steps": args.steps, "results": results}
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nraw results written to {args.json}")


if __name__ == "__main__":
    main()
