"""Network.step_gradient + Optimizer.apply_gradients, the pieces of a training
loop that combines gradients itself (fastwb.distributed), against train_step."""
import numpy as np
import pytest

import fastwb

CONFIGS = {
    "plain": ({}, lambda: fastwb.Adam(lr=0.01)),
    "dropout": ({"dropout": 0.3}, lambda: fastwb.Adam(lr=0.01)),
    "penalties": ({"l1": 1e-3, "l2": 1e-2}, lambda: fastwb.SGD(lr=0.05, momentum=0.9)),
    "clipping": ({"dropout": 0.2}, lambda: fastwb.SGD(lr=0.5, clip_norm=0.1)),
    "adamw+all": ({"dropout": 0.25, "l2": 1e-3},
                  lambda: fastwb.AdamW(lr=0.01, weight_decay=0.01, clip_norm=1.0)),
}


def _data(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(dtype)
    y = rng.integers(0, 3, size=n)
    return X, y


def _net(backend, dtype, **options):
    return fastwb.Network([5, 16, 12, 3], loss="softmax_cross_entropy", dtype=dtype, seed=7,
                          backend=backend, **options)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("n", [20, 300])     # 300 rows: the compiled step runs in chunks
def test_step_gradient_then_apply_is_train_step(backend, dtype, config, n):
    options, make = CONFIGS[config]
    X, y = _data(n, dtype)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=n)
    a, b = _net(backend, dtype, **options), _net(backend, dtype, **options)
    opt_a, opt_b = make(), make()
    for step in range(3):
        rows = slice(step, n - step)
        expected = a.train_step(X[rows], y[rows], opt_a, sample_weight=w[rows])
        before = b.parameters.copy()
        loss, gradient = b.step_gradient(X[rows], y[rows], opt_b, sample_weight=w[rows])
        np.testing.assert_array_equal(b.parameters, before)     # it changes nothing
        assert opt_b.step == step
        opt_b.apply_gradients(b, gradient)
        assert loss == expected
        np.testing.assert_array_equal(b.parameters, a.parameters)
    for name, values in opt_a.state.items():
        np.testing.assert_array_equal(opt_b.state[name], values)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("weighted", [False, True])
def test_parts_of_a_batch_average_to_the_whole(backend, weighted):
    """Rows split between two holders, each with its mask_row0, give the whole
    batch's gradient once weighted by their weight totals (the dropout masks
    follow each row's place in the whole batch)."""
    X, y = _data(200, "float64")
    w = np.random.default_rng(2).uniform(0.1, 3.0, size=200) if weighted else None
    net = _net(backend, "float64", dropout=0.4, l2=1e-3)
    optimizer = fastwb.Adam()
    net.train_step(X[:10], y[:10], optimizer)          # a later step: other masks
    whole_loss, whole = net.step_gradient(X, y, optimizer, sample_weight=w)
    total, gradient, loss = 0.0, np.zeros_like(whole), 0.0
    for start, stop in [(0, 70), (70, 200)]:
        part_w = None if w is None else w[start:stop]
        part_loss, part = net.step_gradient(X[start:stop], y[start:stop], optimizer,
                                            sample_weight=part_w, mask_row0=start)
        weight = stop - start if w is None else part_w.sum()
        total += weight
        gradient += weight * part
        loss += weight * part_loss
    np.testing.assert_allclose(gradient / total, whole, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(loss / total, whole_loss, rtol=1e-10)
    # without the offset the masks differ, and so does the gradient
    _, unshifted = net.step_gradient(X[70:], y[70:], optimizer)
    _, shifted = net.step_gradient(X[70:], y[70:], optimizer, mask_row0=70)
    assert not np.allclose(unshifted, shifted)


def test_compiled_and_reference_agree_on_shifted_masks():
    X, y = _data(150, "float64")
    nets = [_net(backend, "float64", dropout=0.3) for backend in ("compiled", "reference")]
    gradients = [net.step_gradient(X, y, fastwb.SGD(), mask_row0=33)[1] for net in nets]
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_step_gradient_refuses_bad_arguments(backend):
    X, y = _data(10, "float32")
    net = _net(backend, "float32")
    with pytest.raises(ValueError, match="mask_row0"):
        net.step_gradient(X, y, fastwb.Adam(), mask_row0=-1)
    with pytest.raises(TypeError, match="mask_row0"):
        net.step_gradient(X, y, fastwb.Adam(), mask_row0=1.5)
    with pytest.raises(TypeError, match="optimizer"):
        net.step_gradient(X, y, "adam")
