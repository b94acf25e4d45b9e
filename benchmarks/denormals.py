"""What subnormal numbers cost a training step, with flushing on and off.

Adam's first moment of a weight whose gradient is exactly zero decays by
``beta1`` every step; after some hundreds of steps it is subnormal, and on
Intel CPUs each operation on a subnormal float costs about a hundred cycles.
This trains a network on sparse data, each input feature nonzero in a share
of the samples between 1 in 10,000 and all (as the pixels near the border of
handwritten digits are rarely inked), so that the moments of rarely active
features' weights spend long runs decaying, then times ``train_step`` with
``fastwb.set_flush_denormals`` on and off (two copies of the network, one
trained in each mode all along, for a flushed moment stays 0), side by side in
interleaved rounds, and reports the share of the unflushed copy's first
moments that are subnormal.

Usage::

    python benchmarks/denormals.py [--steps 3000] [--repeats 7] [--min-time 0.2]
"""
from __future__ import annotations

import argparse

import numpy as np

import fastwb
from fastwb.bench.machine import machine
from fastwb.bench.options import add_timing, check_timing
from fastwb.bench.timing import fmt_time, interleaved

#: (sizes, batch) of the networks measured: the tiny standard shape, and the
#: digits demo's (scikit-learn's default MLP on 8x8 digits).
CASES = (([16, 32, 4], 1), ([64, 100, 10], 200))


class Trainer:
    """A network and its Adam stepping through sparse data (feature j nonzero with
    a probability log-uniform in [1e-4, 1]) one batch per call, always with
    flushing on or always off."""

    def __init__(self, sizes: list[int], batch: int, dtype: str, flush: bool, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rows = max(batch, 20_000)
        active = 10.0 ** rng.uniform(-4, 0, sizes[0])
        X = rng.standard_normal((self.rows, sizes[0])) * (rng.random((self.rows, sizes[0]))
                                                          < active)
        self.X, self.y = X.astype(dtype), rng.integers(0, sizes[-1], self.rows)
        self.net = fastwb.Network(sizes, loss="softmax_cross_entropy", dtype=dtype, seed=seed)
        self.optimizer = fastwb.Adam()
        self.batch, self.flush, self.first = batch, flush, 0

    def step(self) -> None:
        """One train_step on the next batch, in this trainer's mode."""
        stop = self.first + self.batch
        with fastwb.flush_denormals(self.flush):
            self.net.train_step(self.X[self.first:stop], self.y[self.first:stop],
                                self.optimizer)
        self.first = stop if stop + self.batch <= self.rows else 0

    def subnormal_share(self) -> float:
        """The share of the first moments that are subnormal (nonzero, below the
        smallest normal number)."""
        m = self.optimizer.get_state()["buffers"]["exp_avg"]
        return float(np.mean((m != 0) & (np.abs(m) < np.finfo(m.dtype).tiny)))


def measure(sizes, batch, dtype, steps, repeats, min_time) -> dict:
    """Two trainers of one network from one start, flushing and not, ``steps``
    steps each, then timed side by side as they go on."""
    trainers = {flush: Trainer(sizes, batch, dtype, flush) for flush in (True, False)}
    for trainer in trainers.values():
        for _ in range(steps):
            trainer.step()
    times = interleaved({"flush": trainers[True].step, "keep": trainers[False].step},
                        repeats, min_time)
    return {"shape": "-".join(map(str, sizes)), "batch": batch, "dtype": dtype,
            "subnormal_share": trainers[False].subnormal_share(),
            "flush_s": times["flush"]["min_s"], "keep_s": times["keep"]["min_s"]}


def markdown(rows: list[dict]) -> str:
    lines = ["| shape | batch | dtype | subnormal first moments | flushing off | flushing on "
             "| speed-up |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['batch']} | {r['dtype']} | "
                     f"{100 * r['subnormal_share']:.1f}% | {fmt_time(r['keep_s'])} | "
                     f"{fmt_time(r['flush_s'])} | {r['keep_s'] / r['flush_s']:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000,
                        help="Adam steps of each trainer before timing (default: 3000)")
    add_timing(parser, repeats=7, min_time=0.2)
    args = parser.parse_args(argv)
    check_timing(parser, args.repeats, args.min_time)
    if args.steps < 0:
        parser.error("--steps must be nonnegative")
    m = machine()
    print(f"{m['cpu']}, {m['usable_cores']} usable cores, fastwb {m['fastwb']}; "
          f"{args.steps} Adam steps before timing\n")
    rows = [measure(sizes, batch, dtype, args.steps, args.repeats, args.min_time)
            for sizes, batch in CASES for dtype in ("float32", "float64")]
    print(markdown(rows))


if __name__ == "__main__":
    main()
