"""What each activation costs: one Adam train_step per activation, fastwb beside PyTorch.

For each shape (by default 64-128-10 batch 32 and 784-256-128-10 batch 128)
and dtype (by default float32), a network of each activation in
``fastwb.functions``' hidden-layer vocabulary (relu, leaky_relu, sigmoid, tanh,
elu, selu, gelu, softplus, swish) and a softmax output is trained by Adam on
one batch with softmax cross-entropy, in fastwb and in PyTorch's CPU build
(``torch.nn.GELU()`` is the same exact erf form, ``SiLU`` is swish), on every
core, all from the same weights and biases. Every contender is checked before
it is timed: fastwb's step against its NumPy reference (``checks.RTOL``), and
PyTorch's first prediction, loss and Adam update against the reference's
(``checks.PEER_RTOL``). Then all of a case's contenders, every activation of
both libraries, are timed in the same interleaved rounds
(``timing.interleaved``), and the table gives each time, its ratio to the same
library's relu step (the activation's cost), and fastwb's speed-up over PyTorch.

PyTorch is skipped with a note where it is not installed. ``--quick`` is a
smoke run in seconds (the small shape, one round of 1 ms).

Usage::

    python benchmarks/activations.py [--shape WIDTHS] [--dtype float32] [--repeats 5]
                                     [--min-time 0.05] [--json out.json] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

import fastwb
from fastwb.bench.checks import Outcome, assert_close, check_outcome
from fastwb.bench.contenders import (BETA1, BETA2, EPS, LR, Contender, PeerUnavailable, Problem,
                                     Task, make_pytorch)
from fastwb.bench.machine import limit_blas, machine
from fastwb.bench.options import add_json, add_timing, check_timing
from fastwb.bench.shapes import DTYPES, SHAPES, select
from fastwb.bench.timing import fmt_time, interleaved

#: The hidden-layer activations, relu first (the others' yardstick).
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu", "softplus",
               "swish")
#: The same activation in torch.nn, by fastwb's name.
TORCH_MODULES = {"relu": ("ReLU", {}), "leaky_relu": ("LeakyReLU", {"negative_slope": 0.01}),
                 "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "elu": ("ELU", {}),
                 "selu": ("SELU", {}), "gelu": ("GELU", {}), "softplus": ("Softplus", {}),
                 "swish": ("SiLU", {})}
#: The default shapes: a small network and an MNIST-sized one.
DEFAULT_SHAPES = (SHAPES[1], SHAPES[2])
LIBRARIES = ("fastwb", "pytorch")


def _network(problem: Problem, activation: str, backend: str) -> fastwb.Network:
    task = problem.task
    net = fastwb.Network(list(task.sizes), activation=activation,
                         loss="softmax_cross_entropy", dtype=task.dtype, backend=backend,
                         n_threads=task.threads if backend == "compiled" else None)
    for layer, (W, b) in zip(net.layers, problem.params):
        layer.weights[...], layer.bias[...] = W, b
    return net


def fastwb_contender(problem: Problem, activation: str, backend: str = "compiled") -> Contender:
    """fastwb's (or, with ``backend="reference"``, its NumPy reference's) Adam
    step on the problem's batch, with ``activation`` in the hidden layers."""
    net = _network(problem, activation, backend)
    optimizer = fastwb.Adam(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)
    X, y, x1 = problem.X, problem.y, problem.x1
    return Contender(name=f"fastwb {activation}", version=fastwb.__version__,
                     train_step=lambda: net.train_step(X, y, optimizer),
                     predict_one=lambda: net.predict(x1),
                     parameters=lambda: [(layer.weights, layer.bias) for layer in net.layers])


def pytorch_contender(problem: Problem, activation: str) -> Contender:
    """PyTorch's CPU step (fused Adam) with ``activation``'s module in the hidden layers."""
    contender = make_pytorch(problem, *TORCH_MODULES[activation])
    return dataclasses.replace(contender, name=f"pytorch {activation}")


def check_fastwb(problem: Problem, activation: str) -> None:
    """One Adam step of the compiled network from the problem's parameters matches
    the reference's: loss and parameters within ``checks.RTOL`` (float32 judged
    against the float64 result where the reference's own float32 sums are off)."""
    dtype = problem.task.dtype
    results = []
    for backend, precision in (("compiled", dtype), ("reference", dtype),
                               ("reference", "float64")):
        task = Task(problem.task.shape, precision, problem.task.threads)
        twin = Problem(task, [(W.astype(precision), b.astype(precision))
                              for W, b in problem.params],
                       problem.X.astype(precision), problem.y, problem.x1.astype(precision))
        net = _network(twin, activation, backend)
        loss = net.train_step(twin.X, twin.y, fastwb.Adam(lr=LR, beta1=BETA1, beta2=BETA2,
                                                          eps=EPS))
        results.append((loss, net.parameters.astype(np.float64)))
    (loss, params), (ref_loss, ref_params), (true_loss, true_params) = results
    what = f"{activation} Adam step {problem.task.label} {dtype}"
    truth = None if dtype == "float64" else true_loss
    assert_close(loss, ref_loss, dtype, f"{what} loss", truth)
    assert_close(params, ref_params, dtype, f"{what} parameters",
                 None if dtype == "float64" else true_params)


def measure(task: Task, repeats: int, min_time: float) -> dict:
    """Check, then time, the train_step of every activation in every library that
    can run, all in the same interleaved rounds."""
    problem = Problem.make(task)
    contenders, skipped = {}, {}
    for activation in ACTIVATIONS:
        check_fastwb(problem, activation)
        expected = Outcome.of(fastwb_contender(problem, activation, "reference"), problem)
        contenders[("fastwb", activation)] = fastwb_contender(problem, activation)
        try:
            torch_contender = pytorch_contender(problem, activation)
        except PeerUnavailable as why:
            skipped["pytorch"] = str(why)
            continue
        check_outcome(Outcome.of(torch_contender, problem), expected, torch_contender.name,
                      task.dtype)
        contenders[("pytorch", activation)] = torch_contender
    times = interleaved({c.name: c.train_step for c in contenders.values()}, repeats, min_time)
    versions = {library: c.version for (library, _), c in contenders.items()}
    return {"shape": task.label, "sizes": list(task.sizes), "batch": task.batch,
            "dtype": task.dtype, "threads": task.threads, "skipped": skipped,
            "versions": versions,
            "times": {library: {activation: times[c.name]
                                for (lib, activation), c in contenders.items() if lib == library}
                      for library in LIBRARIES if library not in skipped}}


def markdown(report: dict) -> str:
    """Per case, each activation's step in both libraries, its cost relative to
    the library's relu step, and fastwb's speed-up over PyTorch."""
    m = report["machine"]
    out = [f"{m['cpu']}, {report['threads']} threads; best of {report['repeats']} interleaved "
           "rounds; one Adam train_step (softmax cross-entropy) per call."]
    for r in report["results"]:
        fast, torch = r["times"]["fastwb"], r["times"].get("pytorch")
        out += ["", f"**{r['shape']}, batch {r['batch']}, {r['dtype']}**", "",
                "| activation | fastwb | vs relu | PyTorch | vs relu | fastwb speed-up |",
                "|---|---:|---:|---:|---:|---:|"]
        for activation in ACTIVATIONS:
            t = fast[activation]["min_s"]
            cells = [fmt_time(t), f"{t / fast['relu']['min_s']:.2f}×"]
            if torch:
                p = torch[activation]["min_s"]
                cells += [fmt_time(p), f"{p / torch['relu']['min_s']:.2f}×", f"{p / t:.2f}×"]
            else:
                cells += ["–"] * 3
            out.append(f"| {activation} | " + " | ".join(cells) + " |")
    versions = {lib: v for r in report["results"] for lib, v in r["versions"].items()}
    out += ["", "Versions: " + ", ".join(f"{lib} {v}" for lib, v in versions.items())
            + f"; NumPy {m['numpy']}, BLAS {m['blas']}, Python {m['python']}."]
    skipped = {lib: why for r in report["results"] for lib, why in r["skipped"].items()}
    out += [f"Skipped {lib}: {why}" for lib, why in skipped.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    labels = ", ".join(shape.label for shape in SHAPES)
    parser.add_argument("--shape", action="append", metavar="WIDTHS",
                        help=f"a standard shape, one of {labels} (repeatable; default: "
                             + " and ".join(s.label for s in DEFAULT_SHAPES) + ")")
    parser.add_argument("--dtype", choices=DTYPES, action="append",
                        help="dtype to measure (repeatable; default: float32)")
    add_timing(parser, repeats=5, min_time=0.05)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: the small shape, 1 round of 1 ms")
    add_json(parser)
    args = parser.parse_args(argv)
    check_timing(parser, args.repeats, args.min_time)
    try:
        shapes = select(args.shape) if args.shape else list(DEFAULT_SHAPES)
    except ValueError as why:
        parser.error(str(why))
    if args.quick:
        shapes = shapes[:1]
        args.repeats, args.min_time = 1, 0.001
    threads = os.cpu_count() or 1
    report = {"machine": machine(), "threads": threads, "repeats": args.repeats,
              "min_time_s": args.min_time, "results": []}
    limiter = limit_blas(threads)
    try:
        for dtype in args.dtype or ["float32"]:
            for shape in shapes:
                print(f"  {shape.label} batch {shape.batch} {dtype} ...", file=sys.stderr,
                      flush=True)
                report["results"].append(
                    measure(Task(shape, dtype, threads), args.repeats, args.min_time))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
