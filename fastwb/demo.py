"""The quick-start demonstration: train a small network, show its weights and
biases, and time the compiled core against the NumPy reference."""
from __future__ import annotations

import timeit

import numpy as np

import fastwb


def _spirals(n_per_class: int, rng: np.random.Generator):
    """Two interleaved spirals: a problem a linear model cannot solve."""
    t = np.sqrt(rng.uniform(size=n_per_class)) * 3 * np.pi
    arm = np.c_[t * np.cos(t), t * np.sin(t)] / (3 * np.pi)
    X = np.concatenate([arm, -arm]) + rng.normal(scale=0.02, size=(2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    return X.astype(np.float32), y


def _best_time(call, repeats: int = 5) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(repeats, number)) / number


def run(epochs: int = 200, seed: int = 0) -> dict:
    """Train on two spirals and print what happened; returns the numbers shown."""
    rng = np.random.default_rng(seed)
    X, y = _spirals(200, rng)
    net = fastwb.Network([2, 64, 64, 2], activation="relu", loss="softmax_cross_entropy",
                         seed=seed)
    print(f"fastwb {fastwb.__version__} (OpenMP {'on' if fastwb.openmp_enabled() else 'off'})")
    print(f"{net}\n")
    history = net.fit(X, y, fastwb.Adam(lr=0.003), epochs=epochs, batch_size=32,
                      validation_split=0.2, verbose=1)
    for i in sorted({0, (epochs - 1) // 4, (epochs - 1) // 2, epochs - 1}):
        print(f"epoch {history.epoch[i] + 1:4d}  loss {history['loss'][i]:.4f}  "
              f"validation loss {history['val_loss'][i]:.4f}  "
              f"accuracy {history['val_accuracy'][i]:.1%}")

    print("\nweights and biases")
    for i, layer in enumerate(net.layers):
        W, b = layer.weights, layer.bias
        print(f"  layer {i} {layer!r}: W {W.shape} mean {W.mean():+.3f} std {W.std():.3f} "
              f"|max| {np.abs(W).max():.3f}; b {b.shape} mean {b.mean():+.3f} "
              f"std {b.std():.3f}")
    print(f"  output layer W =\n{np.array2string(net.layers[-1].weights[:4], precision=3)}"
          f"\n  ... b = {np.array2string(net.layers[-1].bias, precision=3)}")

    reference = fastwb.Network(list(net.sizes), activation="relu",
                               loss="softmax_cross_entropy", backend="reference")
    reference.parameters = net.parameters
    batch_X, batch_y = X[:32], y[:32]
    mine, theirs = fastwb.Adam(0.0), fastwb.Adam(0.0)     # lr 0: timing, not training
    timings = {
        "Adam step, batch 32": (lambda: net.train_step(batch_X, batch_y, mine),
                                lambda: reference.train_step(batch_X, batch_y, theirs)),
        "fit epoch, 400 samples": (lambda: net.fit(X, y, mine, epochs=1),
                                   lambda: reference.fit(X, y, theirs, epochs=1)),
        "predict, one sample": (lambda: net.predict(X[0]), lambda: reference.predict(X[0])),
        "predict, 400 samples": (lambda: net.predict(X), lambda: reference.predict(X)),
    }
    print("\nspeed against the NumPy reference (same network, same machine, best of 5)")
    results = {}
    for name, (fast, slow) in timings.items():
        t_fast, t_slow = _best_time(fast), _best_time(slow)
        results[name] = t_slow / t_fast
        print(f"  {name:22s} fastwb {t_fast * 1e6:9.2f} us   reference {t_slow * 1e6:9.2f} us"
              f"   {t_slow / t_fast:6.1f}x faster")
    return {"accuracy": float((net.predict(X).argmax(axis=1) == y).mean()), "speedup": results}
