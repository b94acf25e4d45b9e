"""What leaving ``fastwb.Monitor`` on costs: epochs of ``fit`` with and without it.

For each case (network, data set, batch size) the same network and optimizer
keep training, ``--epochs`` (20) epochs per ``fit`` call, in interleaved rounds:

* ``plain``: ``fit`` with no callback;
* ``monitor``: ``fit`` with ``Monitor()`` as shipped (statistics of the weights,
  biases, gradient, update and change since the start in one compiled pass; the
  activations on 256 sampled training rows; snapshots; health checks);
* ``parameters only``: ``Monitor(sample_size=0)``, without the activations.

The overhead is measured two ways in the same run: the best round's time per
epoch with the monitor over the plain one, minus 1 (what a user sees, but
epochs vary by several percent from round to round on a shared machine), and
the time spent inside the monitor's hooks during those fits, per epoch, over
the plain epoch (the monitor's own cost, measured where it runs: right after
an epoch, while BLAS's and fastwb's idle threads still spin). The target is at
most 5 %. Also shown: one call of the compiled statistics pass alone.

Usage::

    python benchmarks/monitor.py [--quick] [--repeats 7] [--epochs 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np

import fastwb
from fastwb.bench.options import add_json, add_timing, check_timing
from fastwb.bench.timing import clock, fmt_time, interleaved
from fastwb.inspection import parameter_statistics

#: name: (layer sizes, training rows, batch size). The first is scikit-learn's
#: MLPClassifier default on the digits (batch 200); the others an MNIST-sized
#: network with a typical batch, and a small network with many small batches.
CASES = {
    "digits 64-100-10 b200": ([64, 100, 10], 1347, 200),
    "784-256-128-10 b128": ([784, 256, 128, 10], 8192, 128),
    "16-32-4 b32": ([16, 32, 4], 4096, 32),
}
TARGET = 0.05


def _data(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    if sizes[0] == 64:                       # the digits themselves when the shape is theirs
        try:
            from sklearn.datasets import load_digits
            X, y = load_digits(return_X_y=True)
            X, y = (X[:n] / 16).astype(np.float32), y[:n]
        except ImportError:
            pass
    return X, y


class _Timed(fastwb.Monitor):
    """A Monitor that adds up the seconds its hooks take."""

    spent = 0.0
    epochs_seen = 0

    def on_epoch_begin(self, epoch, logs):
        start = time.perf_counter()
        super().on_epoch_begin(epoch, logs)
        self.spent += time.perf_counter() - start

    def on_epoch_end(self, epoch, logs):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.spent += time.perf_counter() - start
        self.epochs_seen += 1

    def on_train_end(self, logs):
        start = time.perf_counter()
        super().on_train_end(logs)
        self.spent += time.perf_counter() - start


def measure(case: str, epochs: int, repeats: int, min_time: float) -> dict:
    sizes, n, batch = CASES[case]
    X, y = _data(sizes, n)
    contenders = {}
    monitors = {"plain": None, "monitor": _Timed(), "parameters only": _Timed(sample_size=0)}
    for name, monitor in monitors.items():
        net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0)
        optimizer = fastwb.Adam(lr=1e-4)
        callbacks = [] if monitor is None else [monitor]
        contenders[name] = (lambda net=net, optimizer=optimizer, callbacks=callbacks:
                            net.fit(X, y, optimizer, epochs=epochs, batch_size=batch,
                                    callbacks=callbacks))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastwb.HealthWarning)   # random labels overfit
        times = interleaved(contenders, repeats, min_time)
    per_epoch = {name: t["min_s"] / epochs for name, t in times.items()}
    net = fastwb.Network(sizes, loss="softmax_cross_entropy", seed=0)
    copy = net.parameters.copy()
    gradient = np.zeros_like(copy)       # what training_gradient() gives after an epoch
    stats_pass = clock(lambda: parameter_statistics(net, gradient, copy, copy), 200)
    return {"case": case, "sizes": sizes, "rows": n, "batch": batch, "epochs_per_fit": epochs,
            "per_epoch_s": per_epoch, "statistics_pass_s": stats_pass,
            "overhead": {name: per_epoch[name] / per_epoch["plain"] - 1
                         for name in ("monitor", "parameters only")},
            "hooks_per_epoch_s": {name: monitors[name].spent / monitors[name].epochs_seen
                                  for name in ("monitor", "parameters only")}}


def markdown(results: list[dict]) -> str:
    lines = ["| case | epoch, plain | epoch, Monitor() | wall-clock overhead | Monitor's hooks "
             "per epoch | hooks / plain epoch | same, sample_size=0 | statistics pass |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        t, o, h = r["per_epoch_s"], r["overhead"], r["hooks_per_epoch_s"]
        lines.append(f"| {r['case']} | {fmt_time(t['plain'])} | {fmt_time(t['monitor'])} | "
                     f"{o['monitor']:+.1%} | {fmt_time(h['monitor'])} | "
                     f"{h['monitor'] / t['plain']:.1%} | "
                     f"{h['parameters only'] / t['plain']:.1%} | "
                     f"{fmt_time(r['statistics_pass_s'])} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=list(CASES), action="append",
                        help="measure only this case (repeatable)")
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs per fit call (the monitor measures activations at "
                             "the end of every fit)")
    add_timing(parser, repeats=7, min_time=0.2)
    parser.add_argument("--quick", action="store_true", help="one round each: a smoke run")
    add_json(parser)
    args = parser.parse_args(argv)
    check_timing(parser, args.repeats, args.min_time)
    if args.quick:
        args.repeats, args.min_time, args.epochs = 1, 0.001, 1
    print(f"fastwb {fastwb.__version__}, {platform.machine()}, "
          f"{args.repeats} interleaved rounds, best round per contender; target: "
          f"overhead <= {TARGET:.0%}\n")
    results = [measure(case, args.epochs, args.repeats, args.min_time)
               for case in (args.case or CASES)]
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
