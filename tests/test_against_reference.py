"""The compiled engine against the NumPy reference, step by step.

Every hidden activation and every loss (``ACTIVATION_LOSS_PAIRS``) x dtype x thread count x
batch size x depth, each down every kernel path (plain loops, threaded loops,
BLAS): predictions, loss, gradients, and the parameters after SGD steps must
agree to 1e-10 (float64) or 1e-4 (float32) in norm-relative error.
"""
import numpy as np
import pytest

import fastwb
from fastwb.testing import (ACTIVATION_LOSS_PAIRS, ACTIVATIONS, LOSS_CASES, PATHS, TOLERANCE,
                            make_targets, rel_error)

WIDTHS = (5, 7, 4, 6)   # input and hidden widths; the output width comes from the case


def pair(depth, n_out, activation, loss, dtype, n_threads, output_activation=None):
    sizes = list(WIDTHS[:depth]) + [n_out]
    kwargs = dict(activation=activation, output_activation=output_activation, loss=loss,
                  dtype=dtype, seed=depth)
    return (fastwb.Network(sizes, n_threads=n_threads, **kwargs),
            fastwb.Network(sizes, backend="reference", **kwargs))


def assert_close(actual, expected, dtype, what):
    err = rel_error(actual, expected)
    assert err <= TOLERANCE[np.dtype(dtype)], f"{what}: relative error {err:.3g}"


def check_pair(compiled, reference, X, y, dtype, steps=2):
    assert_close(compiled.predict(X), reference.predict(X), dtype, "predict")
    assert_close(compiled.loss(X, y), reference.loss(X, y), dtype, "loss")
    for l, ((dW, db), (rW, rb)) in enumerate(zip(compiled.gradients(X, y),
                                                 reference.gradients(X, y))):
        assert_close(dW, rW, dtype, f"layer {l} weight gradient")
        assert_close(db, rb, dtype, f"layer {l} bias gradient")
    mine, theirs = fastwb.SGD(lr=0.1), fastwb.SGD(lr=0.1)
    for step in range(steps):
        loss_c = compiled.train_step(X, y, mine)
        loss_r = reference.train_step(X, y, theirs)
        assert_close(loss_c, loss_r, dtype, f"loss of step {step}")
        assert_close(compiled.parameters, reference.parameters, dtype,
                     f"parameters after step {step}")


@pytest.mark.parametrize("kernel_path", list(PATHS), indirect=True)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation,loss,target_kind", ACTIVATION_LOSS_PAIRS)
def test_matches_reference(activation, loss, target_kind, dtype, n_threads, batch, depth,
                           kernel_path):
    rng = np.random.default_rng(batch * 10 + depth)
    n_out = 3
    compiled, reference = pair(depth, n_out, activation, loss, dtype, n_threads)
    X = rng.normal(size=(batch, WIDTHS[0])).astype(dtype)
    y = make_targets(target_kind, batch, n_out, rng)
    check_pair(compiled, reference, X, y, dtype)


@pytest.mark.parametrize("kernel_path", list(PATHS), indirect=True)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation,loss,target_kind", ACTIVATION_LOSS_PAIRS)
def test_matches_reference_without_flushing_denormals(activation, loss, target_kind, dtype,
                                                      n_threads, kernel_path):
    """The same agreement with the reference's own arithmetic (subnormals kept)."""
    rng = np.random.default_rng(5)
    compiled, reference = pair(3, 3, activation, loss, dtype, n_threads)
    X = rng.normal(size=(7, WIDTHS[0])).astype(dtype)
    y = make_targets(target_kind, 7, 3, rng)
    with fastwb.flush_denormals(False):
        check_pair(compiled, reference, X, y, dtype)


@pytest.mark.parametrize("output_activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", ["mse", "huber", "mae"])
def test_every_output_activation(loss, output_activation, dtype):
    """The losses on an output activation (a gelu or swish one keeps its z)."""
    rng = np.random.default_rng(3)
    compiled, reference = pair(3, 2, "tanh", loss, dtype, None, output_activation)
    X = rng.normal(size=(9, WIDTHS[0]))
    y = rng.uniform(size=(9, 2))
    check_pair(compiled, reference, X, y, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_logits_are_the_output_layers_z(loss, target_kind, dtype):
    """predict(logits=True): the output layer before its activation, dense and
    sparse, a batch and one row; without it the activation of those logits."""
    import scipy.sparse
    rng = np.random.default_rng(6)
    compiled, reference = pair(3, 3, "gelu", loss, dtype, None)
    X = rng.normal(size=(9, WIDTHS[0])) * (rng.uniform(size=(9, WIDTHS[0])) < 0.5)
    z = reference.predict(X, logits=True)
    assert_close(compiled.predict(X, logits=True), z, dtype, "logits")
    assert_close(compiled.predict(scipy.sparse.csr_matrix(X), logits=True), z, dtype,
                 "sparse logits")
    assert_close(compiled.predict(X[0], logits=True), z[0], dtype, "one row's logits")
    activation = compiled.activations[-1]
    expected = {"identity": z, "exp": np.exp(z), "sigmoid": 1 / (1 + np.exp(-z)),
                "softmax": np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)}[activation]
    assert_close(compiled.predict(X), expected, dtype, f"{activation} of the logits")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_larger_network_odd_batch(dtype):
    """Shapes where the default dispatch uses gemm, gemv and loops in one network."""
    rng = np.random.default_rng(4)
    sizes = [37, 61, 29, 5]
    compiled = fastwb.Network(sizes, activation="leaky_relu", loss="softmax_cross_entropy",
                              dtype=dtype, seed=1)
    reference = fastwb.Network(sizes, activation="leaky_relu", loss="softmax_cross_entropy",
                               dtype=dtype, seed=1, backend="reference")
    for batch in (1, 3, 45, 131):
        X = rng.normal(size=(batch, sizes[0]))
        y = rng.integers(0, sizes[-1], size=batch)
        check_pair(compiled, reference, X, y, dtype, steps=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_predict_in_blocks(dtype):
    """Batches larger than the predict block run block by block into one output."""
    from fastwb import _core
    rng = np.random.default_rng(5)
    compiled, reference = pair(3, 4, "sigmoid", "softmax_cross_entropy", dtype, None)
    X = rng.normal(size=(23, WIDTHS[0]))
    previous = _core.tuning(predict_block_rows=5)
    try:
        fresh = fastwb.Network(list(compiled.sizes), activation="sigmoid",
                               loss="softmax_cross_entropy", dtype=dtype, seed=3)
        assert_close(fresh.predict(X), reference.predict(X), dtype, "blocked predict")
    finally:
        _core.tuning(**previous)


def test_batch_size_changes_reuse_the_workspace():
    rng = np.random.default_rng(6)
    compiled, reference = pair(3, 3, "relu", "mse", "float64", None)
    for batch in (40, 3, 1, 40, 77, 2):
        X = rng.normal(size=(batch, WIDTHS[0]))
        y = rng.normal(size=(batch, 3))
        check_pair(compiled, reference, X, y, "float64", steps=1)
