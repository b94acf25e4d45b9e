"""fastwb's ``MLPClassifier`` against scikit-learn's on sparse, text-like data.

The data imitate a TF-IDF matrix of documents (generated here, nothing is
downloaded): 20,000 features at about 0.5% density, word frequencies
following Zipf's law, each document's class shown by the words of its topic,
term counts weighted by ``log1p(tf) * idf`` and rows L2-normalised, as
scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` makes them. Both
estimators get the same CSR float64 matrix of 20 classes; fastwb keeps it sparse
(``fastwb._sparse``) in float32 (its default) and float64.

Every contender trains the same network (one hidden layer of 100 ReLU units,
Adam at 1e-3, batches of 200) for the same number of epochs (early stopping
off, ``tol`` 0), once per seed, in alternating order after an untimed
warm-up, each fit after a 0.3 s pause for BLAS workers to stop spinning. The
table gives seconds per epoch and test accuracy; the ratio is scikit-learn's
time per epoch over fastwb's. The run checks the result too: every fastwb
model must score within a few points of scikit-learn's on the test rows.

Usage::

    python benchmarks/sparse.py [--seeds 3] [--epochs 5] [--json results.json]
    python benchmarks/sparse.py --quick          # a few seconds: the CI smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import scipy.sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLP

import fastwb
from fastwb.bench.options import add_json
from fastwb.sklearn import MLPClassifier

#: how far (in accuracy points) a fastwb model may fall short of scikit-learn's
ACCURACY_MARGIN = 3.0

#: the share of a document's words drawn from its class's topic
TOPICAL = 0.03


def text_like(n: int, n_features: int = 20_000, density: float = 0.005, n_classes: int = 20,
              seed: int = 0) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """A TF-IDF-like CSR matrix (n x n_features) and its class labels.

    Each document draws about ``density * n_features`` words: most from a
    Zipf-like vocabulary shared by all classes, ``TOPICAL`` of them from its
    class's topic (a random set of 200 words, themselves Zipf-distributed):
    few enough that the classes overlap (about 85% test accuracy after five
    epochs on 5,000 documents).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    zipf = 1.0 / np.arange(1, n_features + 1) ** 1.1
    common = rng.permutation(n_features)            # which column each frequency rank is
    # about a third of the draws repeat a word of the row, merging into its count
    words_per_row = int(density * n_features * 1.5)
    lengths = rng.poisson(words_per_row, n).clip(1)
    rows = np.repeat(np.arange(n), lengths)
    columns = common[rng.choice(n_features, lengths.sum(), p=zipf / zipf.sum())]
    topics = np.array([rng.choice(n_features, 200, replace=False) for _ in range(n_classes)])
    topical = rng.random(len(rows)) < TOPICAL
    topic_zipf = zipf[:200] / zipf[:200].sum()
    columns[topical] = topics[labels[rows[topical]],
                              rng.choice(200, int(topical.sum()), p=topic_zipf)]
    counts = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, columns)),
                                     shape=(n, n_features)).tocsr()      # sums repeats: tf
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=n_features)
    idf = np.log((1 + n) / (1 + df)) + 1
    X = counts.copy()
    X.data = np.log1p(X.data) * idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = scipy.sparse.csr_matrix(scipy.sparse.diags(1 / np.maximum(norms, 1e-12)) @ X)
    return X, labels


def contenders(seed: int, epochs: int) -> dict:
    """name -> estimator; all train the same network for ``epochs`` epochs."""
    common = dict(hidden_layer_sizes=(100,), batch_size=200, max_iter=epochs, tol=0.0,
                  n_iter_no_change=epochs + 1, random_state=seed)
    return {"scikit-learn": SklearnMLP(**common),
            "fastwb": MLPClassifier(**common),
            "fastwb f64": MLPClassifier(dtype="float64", **common)}


def fit_once(estimator, X, y) -> float:
    time.sleep(0.3)     # OpenBLAS's idle workers of the previous fit stop spinning
    start = time.perf_counter()
    estimator.fit(X, y)
    return time.perf_counter() - start


def run(n_train: int, n_test: int, seeds: int, epochs: int) -> dict:
    X, y = text_like(n_train + n_test)
    Xtr, Xte, ytr, yte = X[:n_train], X[n_train:], y[:n_train], y[n_train:]
    for estimator in contenders(0, 1).values():     # warm-up: caches, BLAS threads
        fit_once(estimator, Xtr, ytr)
    results: dict[str, list] = {}
    for seed in range(seeds):
        items = list(contenders(seed, epochs).items())
        if seed % 2:
            items.reverse()
        for name, estimator in items:
            seconds = fit_once(estimator, Xtr, ytr)
            results.setdefault(name, []).append({
                "seed": seed, "seconds": seconds, "epochs": int(estimator.n_iter_),
                "accuracy": float(estimator.score(Xte, yte))})
    return {"results": results, "fastwb": fastwb.__version__, "n_train": n_train,
            "n_test": n_test, "n_features": X.shape[1], "density": X.nnz / np.prod(X.shape)}


def per_epoch(rows: list) -> float:
    return sum(r["seconds"] for r in rows) / sum(r["epochs"] for r in rows)


def accuracy(rows: list) -> float:
    return 100 * sum(r["accuracy"] for r in rows) / len(rows)


def report(result: dict) -> str:
    results = result["results"]
    base = per_epoch(results["scikit-learn"])
    lines = ["| contender | s per epoch | speed-up | test accuracy |", "|---|---:|---:|---:|"]
    for name, rows in results.items():
        lines.append(f"| {name} | {per_epoch(rows):.4f} | {base / per_epoch(rows):.1f}x | "
                     f"{accuracy(rows):.2f}% |")
    return "\n".join(lines)


def check(result: dict) -> list[str]:
    """Problems with the results: fastwb's accuracy well below scikit-learn's."""
    results = result["results"]
    theirs = accuracy(results["scikit-learn"])
    return [f"{name}: test accuracy {accuracy(rows):.2f}% against scikit-learn's {theirs:.2f}%"
            for name, rows in results.items()
            if name != "scikit-learn" and accuracy(rows) < theirs - ACCURACY_MARGIN]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=10_000, help="training rows")
    parser.add_argument("--test", type=int, default=2_000, help="test rows")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1,000 rows, one seed, two epochs")
    add_json(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.train, args.test = 1, 2, 1_000, 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = run(args.train, args.test, args.seeds, args.epochs)
    print(f"text-like data: {result['n_train']} training and {result['n_test']} test rows, "
          f"{result['n_features']} features, density {result['density']:.2%}; "
          f"fastwb {result['fastwb']}\n")
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    problems = [] if args.quick else check(result)     # two epochs on 1,000 rows decide nothing
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
