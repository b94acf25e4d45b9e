"""fastwb's ``MLPClassifier`` against scikit-learn's on the digits data set.

The issue's target: on scikit-learn's digits (a fixed stratified 75/25
train/test split, the inputs divided by 16), with the same hyperparameters
(scikit-learn's defaults: one hidden layer of 100 ReLU units, Adam at 1e-3,
alpha 1e-4, batches of 200, at most 200 epochs, tol 1e-4) and the same seeds,
fastwb's test accuracy is within 1 point of scikit-learn's on average and its
``fit`` is at least 8 times faster, measured in the same run.

Every seed fits each contender once, in alternating order so that machine
noise hits both alike, after one untimed warm-up fit each, and each fit
starts after a 0.3 s pause, so that no BLAS worker of the previous one is
still spinning on a core. The contenders are
scikit-learn as it runs by default on this float64 data, scikit-learn given
float32 data (it then trains in float32), and fastwb in float32 (its default)
and float64. The table reports each fit's seconds, epochs and test accuracy,
and fastwb's speed-up over each scikit-learn variant in the whole fit and per
epoch (the two can stop at different epochs). The last lines put the fit's
arithmetic (the products of a training step, ``fastwb.bench.flops.train_flops``,
over the training samples of each epoch) against the machine's GEMM rate on
large square matrices, measured in the same run.

Usage::

    python benchmarks/digits.py [--seeds 5] [--max-iter 200] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP

import fastwb
from fastwb.bench.flops import train_flops
from fastwb.bench.options import add_json
from fastwb.bench.shapes import Shape
from fastwb.bench.timing import GEMM_SIZE, gemm_flop_rates
from fastwb.sklearn import MLPClassifier

#: scikit-learn's default network on the digits: 64 pixels, 100 hidden units,
#: 10 classes, batches of 200.
DIGITS_SHAPE = Shape((64, 100, 10), 200)


def digits_split(dtype=np.float64):
    """The fixed split: digits / 16, stratified, 25% test, random_state 0."""
    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16.0).astype(dtype), y, test_size=0.25, stratify=y,
                            random_state=0)


def contenders(seed: int, max_iter: int) -> dict:
    """name -> (estimator, dtype of the data it gets); every one with scikit-learn's defaults."""
    return {
        "scikit-learn": (SklearnMLP(random_state=seed, max_iter=max_iter), np.float64),
        "scikit-learn f32": (SklearnMLP(random_state=seed, max_iter=max_iter), np.float32),
        "fastwb": (MLPClassifier(random_state=seed, max_iter=max_iter), np.float64),
        "fastwb f64": (MLPClassifier(random_state=seed, max_iter=max_iter, dtype="float64"),
                       np.float64),
    }


def fit_once(estimator, X, y) -> float:
    # OpenBLAS's idle workers spin for up to ~0.1 s after a multithreaded product
    # (scikit-learn's fit just before): each contender starts on an idle machine
    time.sleep(0.3)
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start


def run(seeds: int, max_iter: int) -> dict:
    Xtr, Xte, ytr, yte = digits_split()
    results: dict[str, list] = {}
    for name, (estimator, dtype) in contenders(0, 5).items():     # warm-up: caches, BLAS threads
        fit_once(estimator, Xtr.astype(dtype), ytr)
    for seed in range(seeds):
        items = list(contenders(seed, max_iter).items())
        if seed % 2:
            items.reverse()
        for name, (estimator, dtype) in items:
            seconds = fit_once(estimator, Xtr.astype(dtype), ytr)
            results.setdefault(name, []).append({
                "seed": seed, "seconds": seconds, "epochs": int(estimator.n_iter_),
                "accuracy": float(estimator.score(Xte.astype(dtype), yte))})
    rates = gemm_flop_rates(("float32", "float64"), repeats=5, min_time=0.2)
    flop_per_epoch = train_flops(DIGITS_SHAPE, rows=len(ytr))
    return {"results": results, "gemm_rate": rates, "flop_per_epoch": flop_per_epoch,
            "fastwb": fastwb.__version__, "n_train": len(ytr), "n_test": len(yte)}


def report(run_result: dict) -> str:
    results = run_result["results"]
    names = list(results)
    lines = ["| seed | " + " | ".join(f"{n} s (epochs, acc)" for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    for i, seed_rows in enumerate(zip(*(results[n] for n in names))):
        cells = [f"{r['seconds']:.3f} ({r['epochs']}, {r['accuracy']:.1%})" for r in seed_rows]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")

    def total(name, key):
        return sum(r[key] for r in results[name])

    means = [f"{total(n, 'seconds') / len(results[n]):.3f} "
             f"({total(n, 'epochs') / len(results[n]):.0f}, "
             f"{total(n, 'accuracy') / len(results[n]):.2%})" for n in names]
    lines.append("| mean | " + " | ".join(means) + " |")
    lines.append("")
    for mine, dtype in (("fastwb", "float32"), ("fastwb f64", "float64")):
        for theirs in ("scikit-learn", "scikit-learn f32"):
            fit = total(theirs, "seconds") / total(mine, "seconds")
            epoch = ((total(theirs, "seconds") / total(theirs, "epochs"))
                     / (total(mine, "seconds") / total(mine, "epochs")))
            accuracy = (total(mine, "accuracy") - total(theirs, "accuracy")) / len(results[mine])
            lines.append(f"- {mine} vs {theirs}: fit {fit:.1f}x faster, per epoch {epoch:.1f}x, "
                         f"test accuracy {100 * accuracy:+.2f} points")
        rate = run_result["gemm_rate"][dtype]
        achieved = run_result["flop_per_epoch"] * total(mine, "epochs") / total(mine, "seconds")
        lines.append(f"- {mine}: {achieved / 1e9:.1f} GFLOP/s, "
                     f"{achieved / rate:.0%} of this machine's {dtype} GEMM rate "
                     f"({rate / 1e9:.0f} GFLOP/s on {GEMM_SIZE}x{GEMM_SIZE} products)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=200)
    add_json(parser)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = run(args.seeds, args.max_iter)
    print(f"digits: {result['n_train']} training and {result['n_test']} test samples, "
          f"fastwb {result['fastwb']}\n")
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
