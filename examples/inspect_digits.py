"""Looking inside a network while it learns: ``fastwb.Monitor`` and ``fastwb.plots``.

Trains a 64-64-32-10 network on scikit-learn's 8x8 digits with a Monitor
following every epoch, prints the network's summary (weights, biases and
activations on the test digits), how far training moved each layer's weights
and biases, and the test accuracy; exports the monitor's records as CSV and
JSON Lines, and writes its plots. Then a 2-8-2 network on two interleaved
half moons shows, in 2 dimensions, how training rotates the first-layer units'
lines (their weights) and shifts them (their biases) into a decision boundary.

    python examples/inspect_digits.py [--out DIR] [--epochs N]

Needs scikit-learn and matplotlib (``pip install "fastwb[sklearn,plots]"``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split

import fastwb
from fastwb.plots import decision_boundary, save_plots


def digits(out: Path, epochs: int, seed: int) -> tuple[float, list[Path]]:
    """Train on the digits under a Monitor; returns the test accuracy and the files written."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25,
                                                        random_state=seed, stratify=y)
    net = fastwb.Network([64, 64, 32, 10], activation="relu", loss="softmax_cross_entropy",
                         seed=seed)
    monitor = fastwb.Monitor()
    history = net.fit(X_train, y_train, fastwb.Adam(lr=1e-3), epochs=epochs, batch_size=32,
                      validation_split=0.2, callbacks=[monitor])
    accuracy = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))

    print(f"digits: {len(history)} epochs, loss {history['loss'][0]:.4f} -> "
          f"{history['loss'][-1]:.4f}, validation loss {history['val_loss'][-1]:.4f}\n")
    print(net.summary(X_test), end="\n\n")
    print(monitor.format_change_table(), end="\n\n")
    print(f"test accuracy: {accuracy:.1%} ({len(y_test)} digits)\n")
    written = [monitor.to_csv(out / "digits_monitor.csv"),
               monitor.to_jsonl(out / "digits_monitor.jsonl")]
    return accuracy, written + save_plots(monitor, out, prefix="digits_")


def moons(out: Path, epochs: int, seed: int) -> tuple[float, list[Path]]:
    """A 2-8-2 network on two half moons; returns the training accuracy and the files written."""
    X, y = make_moons(300, noise=0.2, random_state=seed)
    net = fastwb.Network([2, 8, 2], activation="tanh", loss="softmax_cross_entropy", seed=seed)
    monitor = fastwb.Monitor()
    net.fit(X, y, fastwb.Adam(lr=0.03), epochs=epochs, batch_size=32, callbacks=[monitor])
    accuracy = float(np.mean(net.predict(X).argmax(axis=1) == y))
    print(f"moons: {epochs} epochs, training accuracy {accuracy:.1%}\n")
    print(monitor.format_change_table(), end="\n\n")
    # save_plots(monitor, out, X, y) would draw this too, with the plots above
    path = out / "moons_decision_boundary.png"
    decision_boundary(net, X, y, path, monitor=monitor)
    return accuracy, [path]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("inspect_digits_plots"),
                        help="where to write the records and plots "
                             "(default: inspect_digits_plots/)")
    parser.add_argument("--epochs", type=int, default=30, help="digits epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)     # to_csv and to_jsonl write into it

    digits_accuracy, digits_files = digits(args.out, args.epochs, args.seed)
    moons_accuracy, moons_files = moons(args.out, 60, args.seed)
    for path in digits_files + moons_files:
        print(f"wrote {path}")
    return {"digits_accuracy": digits_accuracy, "moons_accuracy": moons_accuracy,
            "files": digits_files + moons_files}


if __name__ == "__main__":
    main()
