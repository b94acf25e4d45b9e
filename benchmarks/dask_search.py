"""When a cluster pays: a grid search and a big prediction, in one process, on
loky and on Dask.

Search: scikit-learn's ``GridSearchCV`` of fastwb's ``MLPClassifier`` (a grid
of 4 settings x 3 folds = 12 fits, each a fixed number of epochs) for a small
network on few rows, the same on ten times as many, and a large network,
timed

* sequentially in this process (``n_jobs=1``; fastwb and BLAS with their
  default threads, every core);
* on joblib's loky backend with ``n_jobs=2`` (each worker ``cores // 2``
  threads), the workers started before the clock;
* on a ``LocalCluster`` of 2 worker processes x 1 thread through
  ``joblib.parallel_backend("dask")``; the cluster's start (and the workers'
  first import of fastwb) is timed on its own, once.

Prediction: a ``Network`` predicting a dask array of many rows, held in the
workers' memory, with ``fastwb.integrations.dask.predict`` on the same
cluster (one thread per block), against ``Network.predict`` of the same rows
as one NumPy array in this process: rows per second.

Each timing is the best of ``--repeats`` runs. The run checks itself: every
backend's search must find the sequential search's scores and best
parameters, and the dask prediction must match the in-process one.

Usage::

    python benchmarks/dask_search.py [--repeats 2] [--rows 20000] [--epochs 10]
                                     [--predict-rows 1000000] [--json results.json]
    python benchmarks/dask_search.py --quick        # a few seconds: the CI smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

# benchmarks/sparse.py would shadow pydata's sparse, which dask.array imports
# (here and in the workers, which inherit sys.path)
sys.path = [entry for entry in sys.path
            if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import joblib  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import fastwb  # noqa: E402
from fastwb.bench.machine import machine  # noqa: E402
from fastwb.bench.options import add_json  # noqa: E402
from fastwb.bench.timing import fmt_time  # noqa: E402
from fastwb.integrations.dask import predict  # noqa: E402
from fastwb.sklearn import MLPClassifier  # noqa: E402

#: The searches: name -> (fraction of --rows, hidden layers). A small network
#: on little data, the same on more, and a large network.
CASES = {"small, few rows": (0.1, (32,)), "small": (1.0, (32,)), "large": (1.0, (512,))}
#: The grid: 4 settings, each fitted on 3 folds.
GRID = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}
FOLDS = 3
FEATURES = 20
#: Width of the prediction benchmark's network: FEATURES-256-10.
PREDICT_HIDDEN = 256
#: Rows per block of the dask array predicted.
BLOCK_ROWS = 50_000


def blobs(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of Gaussian blobs in FEATURES dimensions, float32."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, rows)
    X = rng.normal(size=(rows, FEATURES)) + 1.5 * np.eye(3, FEATURES)[y]
    return X.astype(np.float32), y


def search(hidden: tuple[int, ...], epochs: int, n_jobs: int) -> GridSearchCV:
    """The grid search of one network, not yet fitted."""
    return GridSearchCV(MLPClassifier(hidden_layer_sizes=hidden, max_iter=epochs,
                                      batch_size=200, random_state=0),
                        GRID, cv=FOLDS, n_jobs=n_jobs)


def warm() -> None:
    """Import what a fit needs, in a worker, before any clock starts."""
    import fastwb.sklearn  # noqa: F401


def best_time(run, repeats: int) -> tuple[float, object]:
    """The shortest of ``repeats`` runs of ``run()`` and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def fit_search(hidden, epochs, n_jobs, X, y, backend=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)     # the short fits
        if backend is None:
            return search(hidden, epochs, n_jobs).fit(X, y)
        with joblib.parallel_backend(backend):
            return search(hidden, epochs, n_jobs).fit(X, y)


def check_same(reference: GridSearchCV, other: GridSearchCV, name: str) -> None:
    """A backend's search must score as the sequential one did."""
    if (other.best_params_ != reference.best_params_
            or list(other.cv_results_["mean_test_score"])
            != list(reference.cv_results_["mean_test_score"])):
        raise AssertionError(f"the search on {name} differs from the sequential one")


def measure(args: argparse.Namespace) -> dict:
    from distributed import Client, LocalCluster, wait
    fits = FOLDS * len(GRID["alpha"]) * len(GRID["learning_rate_init"])
    result: dict = {"machine": machine(), "features": FEATURES,
                    "epochs": args.epochs, "fits": fits, "search": {}}
    # loky's workers start here, not inside the first timing
    joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(warm)() for _ in range(2))
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(warm)
        result["cluster_start_s"] = time.perf_counter() - start
        for name, (fraction, hidden) in CASES.items():
            X, y = blobs(max(int(args.rows * fraction), 2 * FOLDS))
            times = {}
            times["one process"], sequential = best_time(
                lambda: fit_search(hidden, args.epochs, 1, X, y), args.repeats)
            times["loky, n_jobs=2"], on_loky = best_time(
                lambda: fit_search(hidden, args.epochs, 2, X, y, "loky"), args.repeats)
            times["Dask, 2 workers x 1 thread"], on_dask = best_time(
                lambda: fit_search(hidden, args.epochs, -1, X, y, "dask"), args.repeats)
            check_same(sequential, on_loky, "loky")
            check_same(sequential, on_dask, "Dask")
            result["search"][name] = {"rows": len(X), "hidden": list(hidden), "seconds": times}

        import dask.array as da
        net = fastwb.Network([FEATURES, PREDICT_HIDDEN, 3], loss="softmax_cross_entropy",
                             seed=0)
        X_dask = da.random.default_rng(1).normal(
            size=(args.predict_rows, FEATURES), chunks=(BLOCK_ROWS, FEATURES)).astype(np.float32)
        X_dask = X_dask.persist()           # the rows live on the workers
        wait(X_dask)
        X_local = X_dask.compute()
        in_process, expected = best_time(lambda: net.predict(X_local), args.repeats)
        on_dask, got = best_time(lambda: predict(net, X_dask).compute(), args.repeats)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        result["predict"] = {"rows": args.predict_rows, "block_rows": BLOCK_ROWS,
                             "network": [FEATURES, PREDICT_HIDDEN, 3],
                             "rows_per_second": {
                                 "one process (Network.predict)": args.predict_rows / in_process,
                                 "Dask, 2 workers x 1 thread": args.predict_rows / on_dask}}
    return result


def report(result: dict) -> str:
    """The two markdown tables."""
    backends = list(next(iter(result["search"].values()))["seconds"])
    lines = [f"Grid search: {result['fits']} fits of {result['epochs']} epochs, "
             f"{result['features']} features (cluster start: "
             f"{fmt_time(result['cluster_start_s'])}, not included)", "",
             "| rows, hidden layers | " + " | ".join(backends) + " |",
             "| --- |" + " --- |" * len(backends)]
    for entry in result["search"].values():
        lines.append(f"| {entry['rows']:,}, {tuple(entry['hidden'])} | "
                     + " | ".join(fmt_time(entry["seconds"][b]) for b in backends) + " |")
    pred = result["predict"]
    lines += ["", f"Prediction of {pred['rows']:,} rows, network "
              f"{'-'.join(map(str, pred['network']))}, float32, blocks of "
              f"{pred['block_rows']:,} rows", "", "| where | rows per second |",
              "| --- | --- |"]
    lines += [f"| {where} | {rate:,.0f} |" for where, rate in pred["rows_per_second"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000,
                        help="rows of the search's data (a tenth for the first search)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each fit")
    parser.add_argument("--predict-rows", type=int, default=1_000_000,
                        help="rows of the dask array predicted")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each timing; the best")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one run: checks that the script works")
    add_json(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.predict_rows, args.repeats = 600, 2, 120_000, 1
    if min(args.epochs, args.predict_rows, args.repeats) < 1 or args.rows < 300:
        parser.error("--epochs, --predict-rows and --repeats must be at least 1, --rows at "
                     "least 300 (a tenth of it is split in 3 folds of 3 classes)")
    result = measure(args)
    cpu = result["machine"]
    print(f"{cpu['cpu']}, {cpu['usable_cores']} usable cores, load {cpu['load_average']}\n")
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
