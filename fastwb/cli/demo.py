"""``fastwb demo``: fastwb's scikit-learn drop-in on the digits data set.

Trains ``fastwb.sklearn.MLPClassifier`` with scikit-learn's default
hyperparameters on the 8x8 images of handwritten digits that ship with
scikit-learn, then shows the loss per epoch, the test accuracy, every layer's
weights and biases (``Network.summary``), and the time of the same fit with
scikit-learn's own ``MLPClassifier``; optionally writes the plots of
``fastwb.plots`` of the training, followed by a ``fastwb.Monitor``.
"""
from __future__ import annotations

import math
import threading
import time
import warnings

import fastwb
from fastwb.callbacks import ProgressBar
from fastwb.cli.common import (check_plots_directory, fit_with_progress, raise_if_interrupted,
                               sklearn_estimators, write_plots)

#: Share of the digits held out for testing, and the split's seed.
TEST_SIZE = 0.25
SPLIT_SEED = 0


def _digits():
    """Digits scaled to [0, 1] and a fixed stratified train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return (X, y, *train_test_split(X, y, test_size=TEST_SIZE, random_state=SPLIT_SEED,
                                    stratify=y))


def _sampled_epochs(n: int, shown: int = 10) -> list[int]:
    """Every epoch when there are few, else about ``shown`` of them, the first and the last."""
    if n <= shown + 2:
        return list(range(n))
    return sorted({round(i * (n - 1) / (shown - 1)) for i in range(shown)})


def loss_table(curve) -> list[str]:
    """The loss per epoch, each with a bar on a log scale."""
    picked = _sampled_epochs(len(curve))
    logs = [math.log(max(curve[i], 1e-12)) for i in picked]
    low, high = min(logs), max(logs)
    lines = [f"{'epoch':>7}  {'loss':>9}"]
    for i, log in zip(picked, logs):
        filled = 1 + round(39 * (log - low) / (high - low)) if high > low else 40
        lines.append(f"{i + 1:7d}  {curve[i]:9.4f}  {'#' * filled}")
    return lines


def timed_fit_with_progress(estimator, X, y, interval: float = 0.1) -> float:
    """Seconds of ``estimator.fit(X, y)`` (scikit-learn's MLP), with the progress
    bar of fastwb's fits on stderr.

    scikit-learn's MLP calls nothing back between epochs (before 1.9), but it
    appends each epoch's loss to its ``loss_curve_``: a thread reads that every
    ``interval`` seconds and moves the bar. Its few microseconds a wake-up
    leave the timed fit as it was. Ctrl-C, which scikit-learn turns into a
    warning and an early return, raises KeyboardInterrupt here.
    """
    bar = ProgressBar(estimator.max_iter)
    done = threading.Event()

    def follow() -> None:
        shown = 0
        while not done.wait(interval):
            shown = _advance(bar, estimator, shown)
        _advance(bar, estimator, shown)

    bar.on_train_begin({})
    follower = threading.Thread(target=follow, name="fastwb-demo-progress", daemon=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")         # "not converged" at small --epochs: expected
        follower.start()
        try:
            start = time.perf_counter()
            estimator.fit(X, y)
            seconds = time.perf_counter() - start
        finally:
            done.set()
            follower.join()
            bar.on_train_end({})
    raise_if_interrupted(caught, estimator, "scikit-learn's fit")
    return seconds


def _advance(bar: ProgressBar, estimator, shown: int) -> int:
    """Move ``bar`` over the epochs that ``estimator.loss_curve_`` gained since
    ``shown``; returns how many it has now."""
    curve = getattr(estimator, "loss_curve_", None) or []
    count = len(curve)          # read once: the fit appends to it meanwhile
    for epoch in range(shown + 1, count + 1):
        bar.on_epoch_end(epoch, {"loss": curve[epoch - 1]})
    return max(count, shown)


def run(epochs: int = 200, seed: int = 0, hidden=(100,), compare: bool = True,
        plots=None) -> dict:
    """Train on the digits, print what happened, and return the numbers shown.

    Parameters
    ----------
    epochs : int
        ``max_iter``: the most epochs to train (scikit-learn stops earlier when
        the loss stops improving by ``tol``).
    seed : int
        ``random_state`` of both estimators (initial weights, sample order).
    hidden : sequence of int
        ``hidden_layer_sizes``.
    compare : bool
        Also fit scikit-learn's ``MLPClassifier`` and compare the times.
    plots : str or path-like, optional
        A directory: follow the training with a ``fastwb.Monitor`` and write
        its plots there (``fastwb.plots.save_plots``; needs matplotlib).

    Returns
    -------
    dict
        ``accuracy``, ``epochs`` (run), ``loss_curve``, ``seconds``, ``layers``
        (``Network.summary(X_test).records``: one dict per layer), with
        ``plots`` ``plots`` (the files written), and with ``compare``
        ``sklearn_accuracy``, ``sklearn_epochs``, ``sklearn_seconds`` and
        ``speedup``.
    """
    if plots is not None:
        check_plots_directory(str(plots))
    MLPClassifier = sklearn_estimators("the demo").MLPClassifier
    from sklearn.neural_network import MLPClassifier as SklearnMLP
    X, _, X_train, X_test, y_train, y_test = _digits()
    hidden = tuple(hidden)
    settings = dict(hidden_layer_sizes=hidden, max_iter=epochs, random_state=seed)
    classifier = MLPClassifier(**settings)
    print(f"fastwb {fastwb.__version__} demo: scikit-learn's digits, {X.shape[0]} images of "
          f"8x8 pixels")
    print(f"  train on {len(y_train)}, test on {len(y_test)} (stratified split, "
          f"random_state={SPLIT_SEED})")
    print(f"  fastwb.sklearn.MLPClassifier(hidden_layer_sizes={hidden}, max_iter={epochs})")
    print("  scikit-learn's defaults otherwise: adam, lr 0.001, alpha 0.0001, batch 200\n",
          flush=True)

    monitor = None if plots is None else fastwb.Monitor()
    start = time.perf_counter()
    fit_with_progress(classifier, X_train, y_train, quiet=True,
                      callbacks=[] if monitor is None else [monitor])
    seconds = time.perf_counter() - start
    accuracy = float(classifier.score(X_test, y_test))
    curve = list(classifier.loss_curve_)

    print("\nloss per epoch (log scale)")
    print("\n".join(loss_table(curve)))
    stopped = "" if classifier.n_iter_ == epochs else " (the loss stopped improving)"
    print(f"\n{classifier.n_iter_} epochs in {seconds:.2f} s{stopped}")
    correct = round(accuracy * len(y_test))
    print(f"test accuracy: {accuracy:.1%} ({correct} of {len(y_test)} digits)")

    summary = classifier.network.summary(X_test)
    print("\nweights and biases (z = x @ W + b); activations on the test digits")
    print(summary)
    results = {"accuracy": accuracy, "epochs": classifier.n_iter_, "loss_curve": curve,
               "seconds": seconds, "layers": summary.records}
    if monitor is not None:
        print()
        results["plots"] = write_plots(monitor, plots)
    if not compare:
        return results

    print("\nthe same fit with scikit-learn's MLPClassifier (same data, split, settings)...",
          flush=True)
    reference = SklearnMLP(**settings)
    sklearn_seconds = timed_fit_with_progress(reference, X_train, y_train)
    sklearn_accuracy = float(reference.score(X_test, y_test))
    per_epoch = (sklearn_seconds / reference.n_iter_) / (seconds / classifier.n_iter_)
    print(f"  {'':14}{'fit':>8}{'epochs':>8}{'test accuracy':>15}")
    print(f"  {'fastwb':14}{seconds:7.2f}s{classifier.n_iter_:8d}{accuracy:15.1%}")
    print(f"  {'scikit-learn':14}{sklearn_seconds:7.2f}s{reference.n_iter_:8d}"
          f"{sklearn_accuracy:15.1%}")
    same = reference.n_iter_ == classifier.n_iter_
    speedup = sklearn_seconds / seconds if same else per_epoch
    ratio = f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
    print(f"fastwb fit {seconds:.2f} s, scikit-learn {sklearn_seconds:.2f} s: {ratio}"
          f"{'' if same else ' per epoch'}")
    print("(fastwb trains in float32, its default; scikit-learn in float64)")
    results.update(sklearn_accuracy=sklearn_accuracy, sklearn_epochs=reference.n_iter_,
                   sklearn_seconds=sklearn_seconds, speedup=speedup)
    return results
