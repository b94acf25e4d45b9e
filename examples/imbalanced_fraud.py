"""Training on imbalanced data: a synthetic fraud problem, with and without class weights.

Two percent of the "transactions" are fraud. A network trained on the plain
loss learns that saying "not fraud" is nearly always right and catches few
frauds; ``class_weight="balanced"`` weighs each fraud as much as fifty normal
transactions and catches far more, at the price of more false alarms. Both
runs use ``fit`` with a validation split, early stopping, AdamW with a
cosine schedule, dropout and an L2 penalty.
"""
import numpy as np

import fastwb


def transactions(n: int, fraud_rate: float, rng: np.random.Generator):
    """Features of normal transactions and of frauds, which sit off to one side."""
    y = (rng.uniform(size=n) < fraud_rate).astype(np.intp)
    X = rng.normal(size=(n, 12))
    X[y == 1, :4] += rng.normal(1.5, 0.8, size=(int(y.sum()), 4))
    return X.astype(np.float32), y


def train(X, y, class_weight, seed: int = 0) -> fastwb.Network:
    net = fastwb.Network([12, 32, 16, 2], loss="softmax_cross_entropy", seed=seed,
                         dropout=0.1, l2=1e-5)
    steps = 40 * -(-int(0.8 * len(X)) // 64)
    optimizer = fastwb.AdamW(lr=3e-3, weight_decay=1e-4,
                             schedule=fastwb.schedules.CosineWarmup(steps, warmup_steps=50))
    history = net.fit(X, y, optimizer, epochs=40, batch_size=64, validation_split=0.2,
                      early_stopping=True, patience=8, class_weight=class_weight)
    print(f"  {len(history)} epochs, last loss {history['loss'][-1]:.4f}, "
          f"validation loss {history['val_loss'][-1]:.4f}")
    return net


def report(name: str, net: fastwb.Network, X, y) -> dict:
    predicted = net.predict(X).argmax(axis=1)
    caught = int(np.sum((predicted == 1) & (y == 1)))
    alarms = int(np.sum(predicted == 1))
    recall = caught / max(int(y.sum()), 1)
    precision = caught / max(alarms, 1)
    print(f"  {name}: caught {caught} of {int(y.sum())} frauds (recall {recall:.0%}), "
          f"{alarms - caught} false alarms (precision {precision:.0%})")
    return {"recall": recall, "precision": precision}


def main() -> dict:
    rng = np.random.default_rng(0)
    X_train, y_train = transactions(20000, 0.02, rng)
    X_test, y_test = transactions(10000, 0.02, rng)
    results = {}
    for name, class_weight in (("plain loss", None), ('class_weight="balanced"', "balanced")):
        print(name)
        net = train(X_train, y_train, class_weight)
        results[name] = report("test set", net, X_test, y_test)
    return results


if __name__ == "__main__":
    main()
