"""Optimizers, penalties, clipping, dropout and sample weights, compiled against reference.

Every optimizer (SGD plain, with momentum and with Nesterov momentum, RMSprop,
Adagrad, Adam, AdamW) x dtype x extra (penalties, penalised biases, clipping by
norm and by value, dropout, sample weights, all at once) trains a small network
for many steps on both backends from the same seed: the loss of every step, the
parameters after every step and the optimizer state at the end must agree to
1e-10 (float64) or 1e-4 (float32) in norm-relative error. The full combination
also runs down every kernel path with one and two threads. Then the update
rules against formulas written here, the optimizer's state and its lifetime,
hyperparameter checks, non-finite losses, AdamW's decoupled decay and schedules.
"""
import math

import numpy as np
import pytest

import fastwb
from fastwb import _core
from fastwb.testing import LOSS_CASES, PATHS, TOLERANCE, flat_gradient, make_targets, rel_error

SIZES = [5, 7, 6, 3]
BATCH = 8
STEPS = 20

#: Each optimizer with settings that move the parameters visibly in STEPS steps.
OPTIMIZERS = {
    "sgd": lambda **kw: fastwb.SGD(lr=0.05, **kw),
    "momentum": lambda **kw: fastwb.SGD(lr=0.05, momentum=0.9, **kw),
    "nesterov": lambda **kw: fastwb.SGD(lr=0.05, momentum=0.8, nesterov=True, **kw),
    "rmsprop": lambda **kw: fastwb.RMSprop(lr=0.01, rho=0.9, **kw),
    "adagrad": lambda **kw: fastwb.Adagrad(lr=0.05, **kw),
    "adam": lambda **kw: fastwb.Adam(lr=0.01, beta1=0.8, beta2=0.99, **kw),
    "adamw": lambda **kw: fastwb.AdamW(lr=0.01, weight_decay=0.2, **kw),
}

#: The state buffers each optimizer keeps.
SLOTS = {
    "sgd": (),
    "momentum": ("momentum_buffer",),
    "nesterov": ("momentum_buffer",),
    "rmsprop": ("square_avg",),
    "adagrad": ("sum_squares",),
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
}

CLIP_NORM = 0.05     # below the gradient norm of every case (checked)
CLIP_VALUE = 0.02    # below the largest gradient element of every case (checked)

#: Extras: keyword arguments of the Network ("net") and of the optimizer ("opt"),
#: and whether train_step gets sample weights.
EXTRAS = {
    "plain": {},
    "penalties": dict(net=dict(l1=1e-3, l2=2e-2)),
    "regularize_biases": dict(net=dict(l1=2e-3, l2=1e-2, regularize_biases=True)),
    "clip_norm": dict(opt=dict(clip_norm=CLIP_NORM)),
    "clip_value": dict(opt=dict(clip_value=CLIP_VALUE)),
    "dropout": dict(net=dict(dropout=[0.3, 0.5])),
    "sample_weight": dict(weighted=True),
    "all": dict(net=dict(l1=1e-3, l2=1e-2, regularize_biases=True, dropout=[0.25, 0.4]),
                opt=dict(clip_norm=CLIP_NORM, clip_value=0.05), weighted=True),
}

#: (activation, loss, target kind) cycled over the cases, so every loss and
#: several activations meet every optimizer.
SETUPS = (("tanh", "mse", "float"), ("relu", "binary_cross_entropy", "probability"),
          ("sigmoid", "softmax_cross_entropy", "labels"),
          ("leaky_relu", "softmax_cross_entropy", "one_hot"), ("relu", "mse", "float"))


def setup_of(optimizer, extra):
    return SETUPS[(list(OPTIMIZERS).index(optimizer) + list(EXTRAS).index(extra)) % len(SETUPS)]


def make_data(target_kind, rng, batch=BATCH, weighted=False):
    X = rng.normal(size=(batch, SIZES[0]))
    y = make_targets(target_kind, batch, SIZES[-1], rng)
    w = rng.uniform(0.1, 3.0, size=batch) if weighted else None
    return X, y, w


def make_pair(activation, loss, dtype, n_threads=None, seed=7, sizes=SIZES, **net_kwargs):
    kwargs = dict(activation=activation, loss=loss, dtype=dtype, seed=seed, **net_kwargs)
    return (fastwb.Network(sizes, n_threads=n_threads, **kwargs),
            fastwb.Network(sizes, backend="reference", **kwargs))




def assert_close(actual, expected, dtype, what):
    err = rel_error(actual, expected)
    assert err <= TOLERANCE[np.dtype(dtype)], f"{what}: relative error {err:.3g}"


def train_both(compiled, reference, make_optimizer, X, y, w, dtype, steps=STEPS,
               batches=None):
    """``steps`` train_steps on both networks with one optimizer each, checking
    the loss and the parameters after every step and the state at the end."""
    opt_c, opt_r = make_optimizer(), make_optimizer()
    for step in range(steps):
        if batches is not None:
            X, y, w = batches[step % len(batches)]
        loss_c = compiled.train_step(X, y, opt_c, sample_weight=w)
        loss_r = reference.train_step(X, y, opt_r, sample_weight=w)
        assert_close(loss_c, loss_r, dtype, f"loss of step {step}")
        assert_close(compiled.parameters, reference.parameters, dtype,
                     f"parameters after step {step}")
    check_states(opt_c, opt_r, dtype)
    return opt_c, opt_r


def check_states(opt_c, opt_r, dtype):
    state_c, state_r = opt_c.state, opt_r.state
    assert state_c.keys() == state_r.keys()
    for key, value in state_c.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.dtype(dtype)
            assert_close(value, state_r[key], dtype, f"optimizer state {key!r}")
        else:
            assert value == state_r[key], key


def check_extra_is_active(extra_name, extra, compiled, X, y, w):
    """The extra really acts: clipping thresholds lie below the gradient, dropout
    changes the training loss, sample weights change the loss."""
    g = flat_gradient(compiled, X, y, w)
    if w is not None:
        assert abs(compiled.loss(X, y, w) - compiled.loss(X, y)) > 1e-3
    opt_kwargs = extra.get("opt", {})
    if "clip_norm" in opt_kwargs:
        assert np.linalg.norm(g) > opt_kwargs["clip_norm"]
    if "clip_value" in opt_kwargs:
        assert np.abs(g).max() > opt_kwargs["clip_value"]
    if extra_name == "dropout":
        loss = compiled.loss(X, y, w)
        trial = fastwb.Network(list(compiled.sizes), activation=compiled.activations[0],
                               loss=compiled.loss_name, dtype=compiled.dtype, seed=compiled.seed,
                               dropout=extra["net"]["dropout"])
        assert trial.train_step(X, y, fastwb.SGD(lr=0.0), sample_weight=w) != loss


# --- compiled against reference ------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("extra_name", list(EXTRAS))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_training_matches_reference(optimizer, extra_name, dtype):
    extra = EXTRAS[extra_name]
    activation, loss, target_kind = setup_of(optimizer, extra_name)
    rng = np.random.default_rng(list(OPTIMIZERS).index(optimizer))
    X, y, w = make_data(target_kind, rng, weighted=extra.get("weighted", False))
    compiled, reference = make_pair(activation, loss, dtype, **extra.get("net", {}))
    assert_close(compiled.loss(X, y, w), reference.loss(X, y, w), dtype, "loss before training")
    assert_close(flat_gradient(compiled, X, y, w), flat_gradient(reference, X, y, w), dtype,
                 "gradient before training")
    check_extra_is_active(extra_name, extra, compiled, X, y, w)
    start = compiled.parameters.copy()
    opt_c, _ = train_both(compiled, reference,
                          lambda: OPTIMIZERS[optimizer](**extra.get("opt", {})), X, y, w, dtype)
    assert opt_c.step == STEPS
    assert set(opt_c.state) == {"step", "epoch", "samples_seen", *SLOTS[optimizer]}
    assert rel_error(compiled.parameters, start) > 1e-3, "training barely moved the parameters"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_changing_batches_match_reference(optimizer, dtype):
    """A different batch (and batch size) at every step, with everything switched on."""
    extra = EXTRAS["all"]
    rng = np.random.default_rng(11)
    batches = [make_data("labels", rng, batch=b, weighted=True) for b in (8, 3, 1, 12, 5)]
    compiled, reference = make_pair("tanh", "softmax_cross_entropy", dtype, **extra["net"])
    train_both(compiled, reference, lambda: OPTIMIZERS[optimizer](**extra["opt"]),
               None, None, None, dtype, steps=25, batches=batches)


#: Two threads on the parallel path make every elementwise loop an OpenMP region,
#: which costs milliseconds when other processes keep the cores busy: few steps there.
THREADED_STEPS = 3


def steps_on(kernel_path, n_threads):
    return THREADED_STEPS if (kernel_path == "parallel_loops" and n_threads > 1) else STEPS


@pytest.mark.parametrize("kernel_path,n_threads,dtype", [
    (path, n_threads, dtype) for path in PATHS for n_threads in (1, 2)
    for dtype in ("float64", "float32")
    if not (path == "parallel_loops" and n_threads == 2 and dtype == "float32")
], indirect=["kernel_path"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_full_combination_on_every_kernel_path(optimizer, kernel_path, n_threads, dtype):
    """Every optimizer with everything on (float32 with two threads on the parallel
    path: see the Adam test below)."""
    extra = EXTRAS["all"]
    activation, loss, target_kind = setup_of(optimizer, "all")
    rng = np.random.default_rng(3)
    X, y, w = make_data(target_kind, rng, weighted=True)
    compiled, reference = make_pair(activation, loss, dtype, n_threads=n_threads,
                                    **extra["net"])
    train_both(compiled, reference, lambda: OPTIMIZERS[optimizer](**extra["opt"]),
               X, y, w, dtype, steps=steps_on(kernel_path, n_threads))


@pytest.mark.parametrize("kernel_path", list(PATHS), indirect=True)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adam_with_dropout_and_clipping_on_every_kernel_path(dtype, n_threads, kernel_path):
    rng = np.random.default_rng(4)
    X, y, _ = make_data("float", rng, batch=13)
    compiled, reference = make_pair("relu", "mse", dtype, n_threads=n_threads, dropout=0.3)
    train_both(compiled, reference, lambda: fastwb.Adam(lr=0.02, clip_norm=0.1), X, y, None,
               dtype, steps=2 * steps_on(kernel_path, n_threads))


@pytest.fixture
def passes_on_the_pool():
    """Every segment of more than one block updates, checks and sums its
    penalty on fastwb's pool: they do in calls that cut products into panels."""
    if fastwb.blas_source() != "numpy" or not _core.openmp_enabled():
        pytest.skip("panels need NumPy's OpenBLAS, whose threads fastwb can set")
    previous = _core.tuning(pass_min_elements=0, panel_product_min=0)
    yield
    _core.tuning(**previous)


@pytest.mark.parametrize("extra_name", ["penalties", "clip_norm", "clip_value"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_passes_on_the_pool_match_the_reference_and_one_thread(optimizer, dtype, extra_name,
                                                               passes_on_the_pool):
    """A layer of 3 x 8192 + 5 weights: blocks run on the pool's threads, and the
    results are the reference's and the same bits as with one thread."""
    extra = EXTRAS[extra_name]
    rng = np.random.default_rng(9)
    sizes = [4, 6145, 3]        # 24,580 and 18,435 weights: 4 and 3 blocks
    X, y, _ = make_data("labels", rng, batch=5)
    X = X[:, :4]
    params, losses = [], []
    before = _core.pool_passes()
    for n_threads in (1, 2):
        compiled, reference = make_pair("tanh", "softmax_cross_entropy", dtype,
                                        n_threads=n_threads, sizes=sizes,
                                        **extra.get("net", {}))
        opt, _ = train_both(compiled, reference,
                            lambda: OPTIMIZERS[optimizer](**extra.get("opt", {})), X, y, None,
                            dtype, steps=4)
        params.append(compiled.parameters.copy())
        losses.append(compiled.loss(X, y))
    assert np.array_equal(params[0], params[1])
    assert losses[0] == losses[1]
    assert _core.pool_passes() > before, "no pass ran on the pool"


def test_an_overflowing_update_on_the_pool_leaves_every_parameter_alone(passes_on_the_pool):
    """The blocks that run on the pool's threads are checked before any is updated."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 4)) * 100, rng.normal(size=(16, 2)) * 100
    net = fastwb.Network([4, 6145, 2], dtype="float32", seed=0, n_threads=2)
    opt = fastwb.SGD(lr=1e36)
    parameters = net.parameters.copy()
    before = _core.pool_passes()
    with pytest.raises(FloatingPointError, match="update would have left parameters"):
        net.train_step(X, y, opt)
    assert _core.pool_passes() > before, "the check did not run on the pool"
    np.testing.assert_array_equal(net.parameters, parameters)
    assert opt.step == 0


@pytest.mark.parametrize("kernel_path", list(PATHS), indirect=True)
@pytest.mark.parametrize("optimizer,dtype", [("adam", "float64"), ("adam", "float32")])
def test_thread_count_gives_bit_identical_results(optimizer, dtype, kernel_path):
    """n_threads=1 and 2 give the same bits: losses, parameters and state."""
    rng = np.random.default_rng(5)
    X, y, w = make_data("labels", rng, batch=16, weighted=True)
    runs = []
    for n_threads in (1, 2):
        net = fastwb.Network([5, 9, 7, 3], activation="relu", loss="softmax_cross_entropy",
                             dtype=dtype, seed=3, n_threads=n_threads, dropout=[0.3, 0.2],
                             l2=1e-3)
        opt = OPTIMIZERS[optimizer](clip_norm=0.5)
        losses = [net.train_step(X, y, opt, sample_weight=w) for _ in range(6)]
        runs.append((losses, net.parameters.copy(), opt.state))
    (losses1, params1, state1), (losses2, params2, state2) = runs
    assert losses1 == losses2
    assert np.array_equal(params1, params2)
    for key in SLOTS[optimizer]:
        assert np.array_equal(state1[key], state2[key]), key


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss,target_kind", LOSS_CASES)
def test_plain_sgd_matches_reference_layer_by_layer_and_after_backpropagation(
        loss, target_kind, dtype):
    """fit updates each layer as soon as its gradient is complete; train_step,
    which tries each update first, makes it in one pass after backpropagation:
    the same bits, and the reference's values."""
    rng = np.random.default_rng(6)
    X, y, _ = make_data(target_kind, rng)
    compiled, reference = make_pair("tanh", loss, dtype)
    train_both(compiled, reference, lambda: fastwb.SGD(lr=0.1), X, y, None, dtype)
    fitted, _ = make_pair("tanh", loss, dtype)
    fitted.fit(X, y, fastwb.SGD(lr=0.1), epochs=STEPS, batch_size=len(X), shuffle=False)
    np.testing.assert_array_equal(fitted.parameters, compiled.parameters)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_integer_sample_weights_equal_repeated_rows(dtype, backend):
    """sum w_i l_i / sum w_i: weight 2 counts a sample twice, weight 0 drops it."""
    rng = np.random.default_rng(8)
    X, y, _ = make_data("labels", rng, batch=6)
    w = np.array([2, 0, 1, 3, 1, 0])
    rows = np.repeat(np.arange(6), w)
    weighted = fastwb.Network(SIZES, activation="tanh", loss="softmax_cross_entropy",
                              dtype=dtype, seed=1, backend=backend, l2=1e-2)
    repeated = fastwb.Network(SIZES, activation="tanh", loss="softmax_cross_entropy",
                              dtype=dtype, seed=1, backend=backend, l2=1e-2)
    opt_w, opt_r = fastwb.Adam(lr=0.01), fastwb.Adam(lr=0.01)
    for step in range(10):
        loss_w = weighted.train_step(X, y, opt_w, sample_weight=w)
        loss_r = repeated.train_step(X[rows], y[rows], opt_r)
        assert_close(loss_w, loss_r, dtype, f"loss of step {step}")
        assert_close(weighted.parameters, repeated.parameters, dtype, f"step {step}")


# --- update rules written out here --------------------------------------------------

def linear_mse_net(rng, backend="compiled", **kwargs):
    """A one-layer identity network with MSE: its gradient is easy to write down."""
    net = fastwb.Network([3, 2], loss="mse", dtype="float64", seed=0, backend=backend, **kwargs)
    W, b = rng.normal(size=(3, 2)), rng.normal(size=2)
    net.layers[0].weights = W
    net.layers[0].bias = b
    return net


def linear_mse_gradient(W, b, X, y):
    """dL/dW, dL/db of mean((X W + b - y)^2) over every sample and output."""
    D = 2 * (X @ W + b - y) / y.size
    return X.T @ D, D.sum(axis=0)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_adam_steps_against_the_formula(backend):
    rng = np.random.default_rng(20)
    net = linear_mse_net(rng, backend)
    X, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    lr, beta1, beta2, eps = 0.05, 0.7, 0.95, 1e-3
    opt = fastwb.Adam(lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    W, b = net.layers[0].weights.copy(), net.layers[0].bias.copy()
    p = np.concatenate([W.ravel(), b])
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in (1, 2, 3):
        dW, db = linear_mse_gradient(p[:6].reshape(3, 2), p[6:], X, y)
        g = np.concatenate([dW.ravel(), db])
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        net.train_step(X, y, opt)
        assert rel_error(net.parameters, p) < 1e-12, f"step {t}"
        assert rel_error(opt.state["exp_avg"], m) < 1e-12
        assert rel_error(opt.state["exp_avg_sq"], v) < 1e-12
        assert opt.state["step"] == t


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_sgd_momentum_steps_against_the_formula(backend, nesterov):
    rng = np.random.default_rng(21)
    net = linear_mse_net(rng, backend)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    lr, mu = 0.1, 0.9
    opt = fastwb.SGD(lr=lr, momentum=mu, nesterov=nesterov)
    p = net.parameters.copy()
    buf = np.zeros_like(p)
    for t in (1, 2, 3):
        dW, db = linear_mse_gradient(p[:6].reshape(3, 2), p[6:], X, y)
        g = np.concatenate([dW.ravel(), db])
        buf = mu * buf + g
        p = p - lr * (g + mu * buf if nesterov else buf)
        net.train_step(X, y, opt)
        assert rel_error(net.parameters, p) < 1e-12, f"step {t}"
        assert rel_error(opt.state["momentum_buffer"], buf) < 1e-12


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_rmsprop_adagrad_and_penalised_sgd_against_the_formula(backend):
    """One step each; the SGD step sees the loss gradient plus l1 sign(p) + 2 l2 p."""
    rng = np.random.default_rng(22)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    for make, rule in [
            (lambda: fastwb.RMSprop(lr=0.1, rho=0.8, eps=1e-3),
             lambda p, g: p - 0.1 * g / (np.sqrt(0.2 * g * g) + 1e-3)),
            (lambda: fastwb.Adagrad(lr=0.1, eps=1e-3),
             lambda p, g: p - 0.1 * g / (np.abs(g) + 1e-3))]:
        net = linear_mse_net(rng, backend)
        p = net.parameters.copy()
        g = np.concatenate([a.ravel() for a in linear_mse_gradient(p[:6].reshape(3, 2), p[6:],
                                                                   X, y)])
        net.train_step(X, y, make())
        assert rel_error(net.parameters, rule(p, g)) < 1e-12
    l1, l2 = 0.05, 0.3
    net = linear_mse_net(rng, backend, l1=l1, l2=l2)
    p = net.parameters.copy()
    g = np.concatenate([a.ravel() for a in linear_mse_gradient(p[:6].reshape(3, 2), p[6:], X, y)])
    g[:6] += l1 * np.sign(p[:6]) + 2 * l2 * p[:6]          # weights only
    net.train_step(X, y, fastwb.SGD(lr=0.1))
    assert rel_error(net.parameters, p - 0.1 * g) < 1e-12


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_clipping_against_the_formula(backend):
    """Clip by value first, then scale by clip_norm / (norm + 1e-6)."""
    rng = np.random.default_rng(23)
    X, y = rng.normal(size=(5, 3)), 5 * rng.normal(size=(5, 2))
    net = linear_mse_net(rng, backend)
    p = net.parameters.copy()
    g = np.concatenate([a.ravel() for a in linear_mse_gradient(p[:6].reshape(3, 2), p[6:], X, y)])
    clip_value, clip_norm = 0.5 * np.abs(g).max(), 0.3
    clipped = np.clip(g, -clip_value, clip_value)
    assert np.linalg.norm(clipped) > clip_norm and (np.abs(g) > clip_value).any()
    clipped *= clip_norm / (np.linalg.norm(clipped) + 1e-6)
    net.train_step(X, y, fastwb.SGD(lr=0.1, clip_norm=clip_norm, clip_value=clip_value))
    assert rel_error(net.parameters, p - 0.1 * clipped) < 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_first_adam_step_moves_every_parameter_by_about_lr(backend, dtype):
    """Bias correction: after one step m_hat = g and v_hat = g^2, so |dp| = lr |g| / (|g| + eps)."""
    rng = np.random.default_rng(24)
    net = fastwb.Network(SIZES, activation="tanh", loss="mse", dtype=dtype, seed=2,
                         backend=backend)
    X, y, _ = make_data("float", rng)
    g = flat_gradient(net, X, y)
    before = net.parameters.copy()
    lr, eps = 1e-3, 1e-8
    net.train_step(X, y, fastwb.Adam(lr=lr, beta1=0.9, beta2=0.999, eps=eps))
    moved = np.abs(net.parameters.astype(np.float64) - before)
    expected = lr * np.abs(g) / (np.abs(g) + eps)
    big = np.abs(g) > 1e-3
    assert big.mean() > 0.9
    tol = 1e-9 if dtype == "float64" else 2e-3      # float32 rounds p + dp at |p| ~ 1
    np.testing.assert_allclose(moved[big], lr, rtol=max(tol, 1e-5))
    np.testing.assert_allclose(moved, expected, rtol=tol, atol=tol * lr)
    assert np.all(moved[g == 0] == 0)


# --- state ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_state_is_created_at_the_first_step(optimizer, dtype):
    rng = np.random.default_rng(30)
    net = fastwb.Network(SIZES, loss="mse", dtype=dtype, seed=0)
    X, y, _ = make_data("float", rng)
    opt = OPTIMIZERS[optimizer]()
    assert opt.state == {"step": 0, "epoch": 0, "samples_seen": 0}
    assert opt.step == 0
    net.train_step(X, y, opt)
    state = opt.state
    assert set(state) == {"step", "epoch", "samples_seen", *SLOTS[optimizer]}
    assert (state["step"], state["epoch"], state["samples_seen"]) == (1, 0, 0)
    for key in SLOTS[optimizer]:
        assert state[key].shape == (net.n_parameters,)
        assert state[key].dtype == np.dtype(dtype)
        assert np.any(state[key] != 0), key
    net.train_step(X, y, opt)
    assert opt.step == 2


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_one_optimizer_refuses_a_second_network_until_reset(optimizer):
    rng = np.random.default_rng(31)
    X, y, _ = make_data("float", rng)
    first = fastwb.Network(SIZES, loss="mse", dtype="float64", seed=0)
    bigger = fastwb.Network([5, 9, 3], loss="mse", dtype="float64", seed=0)
    same_size_float32 = fastwb.Network(SIZES, loss="mse", dtype="float32", seed=0)
    opt = OPTIMIZERS[optimizer]()
    first.train_step(X, y, opt)
    saved = first.parameters.copy()
    for other in (bigger, same_size_float32):
        before = other.parameters.copy()
        with pytest.raises(ValueError, match="reset"):
            other.train_step(X, y, opt)
        assert np.array_equal(other.parameters, before)
    assert opt.step == 1
    assert np.array_equal(first.parameters, saved)
    opt.reset()
    assert opt.state == {"step": 0, "epoch": 0, "samples_seen": 0}
    bigger.train_step(X, y, opt)
    for key in SLOTS[optimizer]:
        assert opt.state[key].shape == (bigger.n_parameters,)
    assert opt.step == 1


def test_reset_restarts_training_exactly():
    """After reset() the optimizer behaves as a new one: same updates from the same weights."""
    rng = np.random.default_rng(32)
    X, y, _ = make_data("float", rng)
    opt = fastwb.Adam(lr=0.01)
    net = fastwb.Network(SIZES, loss="mse", dtype="float64", seed=0, dropout=0.2)
    start = net.parameters.copy()
    first = [net.train_step(X, y, opt) for _ in range(5)]
    after_first = net.parameters.copy()
    opt.reset()
    net.parameters = start
    second = [net.train_step(X, y, opt) for _ in range(5)]
    assert first == second
    assert np.array_equal(net.parameters, after_first)


# --- hyperparameters -----------------------------------------------------------------

@pytest.mark.parametrize("make,error,name", [
    (lambda: fastwb.SGD(lr=-0.1), ValueError, "lr"),
    (lambda: fastwb.SGD(lr=float("nan")), ValueError, "lr"),
    (lambda: fastwb.Adam(lr=float("inf")), ValueError, "lr"),
    (lambda: fastwb.SGD(lr=True), TypeError, "lr"),
    (lambda: fastwb.Adam(lr="0.1"), TypeError, "lr"),
    (lambda: fastwb.SGD(momentum=1), ValueError, "momentum"),
    (lambda: fastwb.SGD(momentum=-0.1), ValueError, "momentum"),
    (lambda: fastwb.SGD(nesterov=True), ValueError, "nesterov"),
    (lambda: fastwb.SGD(momentum=0.9, nesterov=1), TypeError, "nesterov"),
    (lambda: fastwb.Adam(beta1=1), ValueError, "beta1"),
    (lambda: fastwb.Adam(beta2=1.5), ValueError, "beta2"),
    (lambda: fastwb.AdamW(beta1=-0.5), ValueError, "beta1"),
    (lambda: fastwb.Adam(eps=0), ValueError, "eps"),
    (lambda: fastwb.RMSprop(eps=0), ValueError, "eps"),
    (lambda: fastwb.Adagrad(eps=-1e-8), ValueError, "eps"),
    (lambda: fastwb.RMSprop(rho=1.0), ValueError, "rho"),
    (lambda: fastwb.AdamW(weight_decay=-1), ValueError, "weight_decay"),
    (lambda: fastwb.AdamW(weight_decay=float("nan")), ValueError, "weight_decay"),
    (lambda: fastwb.SGD(clip_norm=0), ValueError, "clip_norm"),
    (lambda: fastwb.Adam(clip_norm=-1), ValueError, "clip_norm"),
    (lambda: fastwb.Adam(clip_value=float("nan")), ValueError, "clip_value"),
    (lambda: fastwb.RMSprop(clip_value=0), ValueError, "clip_value"),
    (lambda: fastwb.Adagrad(clip_value=True), TypeError, "clip_value"),
    (lambda: fastwb.Adam(schedule="warp_speed"), ValueError, "schedule"),
    (lambda: fastwb.SGD(schedule=3), TypeError, "schedule"),
])
def test_bad_hyperparameters_are_refused_by_name(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_setting_a_bad_lr_later_is_refused_and_keeps_the_old_one():
    opt = fastwb.Adam(lr=0.01)
    for bad, error in ((-1.0, ValueError), (float("nan"), ValueError), (False, TypeError)):
        with pytest.raises(error, match="lr"):
            opt.lr = bad
    assert opt.lr == 0.01


def test_good_edge_values_are_accepted():
    assert fastwb.SGD(lr=0).lr == 0
    assert fastwb.SGD(momentum=0.999, nesterov=True).nesterov
    assert fastwb.Adam(beta1=0, beta2=0).beta1 == 0
    assert fastwb.AdamW(weight_decay=0).weight_decay == 0
    assert fastwb.Adam(clip_norm=None, clip_value=None).clip_norm is None
    assert fastwb.SGD(lr=np.float32(0.5)).lr == 0.5


# --- non-finite losses ---------------------------------------------------------------

def huge_batch(net, rng):
    """Finite inputs that drive the first unit of the first layer past the dtype's
    range (or, in float64, the squared error past it): the loss is not finite."""
    big = 1e300 if net.dtype == np.float64 else 3e38
    X = np.tile(big * np.sign(net.layers[0].weights[:, 0]), (BATCH, 1))
    return X, rng.normal(size=(BATCH, net.sizes[-1]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # NumPy's overflow in the reference
@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_non_finite_loss_changes_nothing(optimizer, dtype, backend):
    rng = np.random.default_rng(40)
    X, y, _ = make_data("float", rng)
    kwargs = dict(activation="identity", loss="mse", dtype=dtype, seed=1, backend=backend,
                  l2=1e-3, dropout=0.2)
    net = fastwb.Network(SIZES, **kwargs)
    twin = fastwb.Network(SIZES, **kwargs)      # never sees the bad batch
    opt, opt_twin = OPTIMIZERS[optimizer](clip_norm=1.0), OPTIMIZERS[optimizer](clip_norm=1.0)
    for _ in range(3):
        net.train_step(X, y, opt)
        twin.train_step(X, y, opt_twin)
    X_bad, y_bad = huge_batch(net, rng)
    assert not math.isfinite(net.loss(X_bad, y_bad))
    params = net.parameters.copy()
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.state.items()}
    with pytest.raises(FloatingPointError):
        net.train_step(X_bad, y_bad, opt)
    assert np.array_equal(net.parameters, params)
    assert opt.step == 3
    for key, value in opt.state.items():
        assert np.array_equal(value, state[key]), key
    # the next good step is the step the twin takes: same update, same dropout masks
    assert net.train_step(X, y, opt) == twin.train_step(X, y, opt_twin)
    assert np.array_equal(net.parameters, twin.parameters)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_non_finite_loss_at_the_first_step_leaves_no_progress(backend):
    rng = np.random.default_rng(41)
    net = fastwb.Network(SIZES, activation="identity", loss="mse", dtype="float64", seed=1,
                         backend=backend)
    X_bad, y_bad = huge_batch(net, rng)
    params = net.parameters.copy()
    opt = fastwb.Adam()
    with pytest.raises(FloatingPointError):
        net.train_step(X_bad, y_bad, opt)
    assert np.array_equal(net.parameters, params)
    assert opt.step == 0
    for key in SLOTS["adam"]:
        assert not np.any(opt.state.get(key, 0))


# --- AdamW ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("regularize_biases", [False, True])
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_adamw_decays_weights_and_biases_only_when_asked(backend, regularize_biases, dtype):
    """With an exactly zero loss gradient (zero input, targets equal to the bias)
    Adam does not move, so AdamW's step is its decay alone: p <- p (1 - lr wd)."""
    rng = np.random.default_rng(50)
    net = fastwb.Network([3, 2], loss="mse", dtype=dtype, seed=0, backend=backend,
                         regularize_biases=regularize_biases)
    net.layers[0].bias = rng.normal(size=2)
    X = np.zeros((4, 3))
    y = np.tile(net.layers[0].bias, (4, 1))
    W0, b0 = net.layers[0].weights.copy(), net.layers[0].bias.copy()
    assert np.all(flat_gradient(net, X, y) == 0)
    lr, wd = 0.1, 0.5
    opt = fastwb.AdamW(lr=lr, weight_decay=wd)
    for step in range(1, 4):
        assert net.train_step(X, y, opt) == 0
        shrink = (1 - lr * wd) ** step
        np.testing.assert_allclose(net.layers[0].weights, W0 * shrink, rtol=1e-6)
        expected_b = b0 * shrink if regularize_biases else b0
        np.testing.assert_allclose(net.layers[0].bias, expected_b, rtol=1e-6)
        y = np.tile(net.layers[0].bias, (4, 1))      # keep the loss gradient zero


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adamw_without_decay_is_adam_bit_for_bit(dtype, backend):
    rng = np.random.default_rng(51)
    X, y, w = make_data("labels", rng, weighted=True)
    kwargs = dict(activation="relu", loss="softmax_cross_entropy", dtype=dtype, seed=5,
                  backend=backend, l2=1e-2, regularize_biases=True, dropout=0.2)
    nets = [fastwb.Network(SIZES, **kwargs) for _ in range(2)]
    opts = [fastwb.Adam(lr=0.01, clip_value=0.05), fastwb.AdamW(lr=0.01, weight_decay=0.0,
                                                                  clip_value=0.05)]
    for _ in range(STEPS):
        losses = [net.train_step(X, y, opt, sample_weight=w) for net, opt in zip(nets, opts)]
        assert losses[0] == losses[1]
        assert np.array_equal(nets[0].parameters, nets[1].parameters)
    for key in SLOTS["adam"]:
        assert np.array_equal(opts[0].state[key], opts[1].state[key])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adamw_decay_differs_from_an_l2_penalty(dtype):
    """Decoupled decay is not the same as an L2 penalty fed through Adam (the
    comparison with reference above would not notice if both engines mixed them up)."""
    rng = np.random.default_rng(52)
    X, y, _ = make_data("float", rng)
    decoupled = fastwb.Network(SIZES, loss="mse", dtype=dtype, seed=0)
    coupled = fastwb.Network(SIZES, loss="mse", dtype=dtype, seed=0, l2=0.05)
    opt_d, opt_c = fastwb.AdamW(lr=0.01, weight_decay=0.1), fastwb.Adam(lr=0.01)
    for _ in range(5):
        decoupled.train_step(X, y, opt_d)
        coupled.train_step(X, y, opt_c)
    assert rel_error(decoupled.parameters, coupled.parameters) > 1e-3


# --- schedules -----------------------------------------------------------------------

def cosine_warmup_rate(base, step, total=20, warmup=5):
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min((step - warmup) / (total - warmup), 1.0)
    return 0.5 * base * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["momentum", "adam", "rmsprop"])
def test_cosine_warmup_uses_the_rate_of_each_step(optimizer, dtype):
    rng = np.random.default_rng(60)
    X, y, w = make_data("labels", rng, weighted=True)
    base = {"momentum": 0.05, "adam": 0.01, "rmsprop": 0.01}[optimizer]

    def scheduled():
        opt = OPTIMIZERS[optimizer](clip_norm=1.0)
        opt.lr = base
        opt.schedule = fastwb.schedules.CosineWarmup(total_steps=20, warmup_steps=5)
        return opt

    kwargs = dict(activation="tanh", loss="softmax_cross_entropy", dtype=dtype, seed=3,
                  dropout=0.2)
    compiled, reference = make_pair(**kwargs)
    by_hand = fastwb.Network(SIZES, **kwargs)
    opt_c, opt_r, opt_h = scheduled(), scheduled(), OPTIMIZERS[optimizer](clip_norm=1.0)
    for step in range(25):
        opt_h.lr = cosine_warmup_rate(base, step)
        loss_c = compiled.train_step(X, y, opt_c, sample_weight=w)
        loss_r = reference.train_step(X, y, opt_r, sample_weight=w)
        loss_h = by_hand.train_step(X, y, opt_h, sample_weight=w)
        assert_close(loss_c, loss_r, dtype, f"loss of step {step}")
        assert_close(compiled.parameters, reference.parameters, dtype, f"step {step}")
        assert_close(loss_c, loss_h, dtype, f"loss by hand, step {step}")
        assert_close(compiled.parameters, by_hand.parameters, dtype, f"by hand, step {step}")
    assert opt_c.lr == base           # the schedule does not overwrite the base rate
    check_states(opt_c, opt_r, dtype)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_cosine_warmup_stops_training_after_total_steps(backend):
    """Past total_steps the rate is min_lr = 0: the parameters stop moving."""
    rng = np.random.default_rng(61)
    X, y, _ = make_data("float", rng)
    net = fastwb.Network(SIZES, activation="tanh", loss="mse", dtype="float64", seed=0,
                         backend=backend)
    opt = fastwb.Adam(lr=0.01, schedule=fastwb.schedules.CosineWarmup(total_steps=20,
                                                                      warmup_steps=5))
    for _ in range(20):
        net.train_step(X, y, opt)
    frozen = net.parameters.copy()
    for _ in range(3):
        net.train_step(X, y, opt)
    assert np.array_equal(net.parameters, frozen)
    assert opt.step == 23


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_first_warmup_step_uses_a_fifth_of_the_rate(backend):
    """Step 0 of a 5-step warmup runs at lr / 5: SGD moves by lr / 5 * g."""
    rng = np.random.default_rng(62)
    net = linear_mse_net(rng, backend)
    X, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    p = net.parameters.copy()
    g = np.concatenate([a.ravel() for a in linear_mse_gradient(p[:6].reshape(3, 2), p[6:], X, y)])
    opt = fastwb.SGD(lr=0.5, schedule=fastwb.schedules.CosineWarmup(total_steps=20,
                                                                    warmup_steps=5))
    net.train_step(X, y, opt)
    assert rel_error(net.parameters, p - 0.1 * g) < 1e-12


# --- found in review ------------------------------------------------------------------------

def test_engine_refuses_a_rule_without_its_state_or_for_another_network():
    net = fastwb.Network([3, 4, 2], dtype="float64", seed=0)
    X, y = np.ones((2, 3)), np.zeros((2, 2))
    counters = np.zeros(3, dtype=np.int64)
    for kind, settings in (("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
                           ("sgd", {"momentum": 0.9})):
        with pytest.raises(ValueError, match="keeps the state"):
            _core.Rule(kind, settings, {}, counters)
    with pytest.raises(ValueError, match="keeps the state"):
        _core.Rule("adam", {}, {"exp_avg": np.zeros(net.n_parameters)}, counters)
    small = {"momentum_buffer": np.zeros(net.n_parameters - 1)}
    rule = _core.Rule("sgd", {"momentum": 0.9}, small, counters)
    with pytest.raises(ValueError, match="another dtype or network"):
        net._engine.train_step(X, y, None, rule, 0.1)
    single = {"momentum_buffer": np.zeros(net.n_parameters, dtype=np.float32)}
    rule = _core.Rule("sgd", {"momentum": 0.9}, single, counters)
    with pytest.raises(ValueError, match="another dtype or network"):
        net._engine.train_step(X, y, None, rule, 0.1)
    with pytest.raises(ValueError, match="unknown setting"):
        _core.Rule("sgd", {"beta9": 1.0}, {}, counters)
    with pytest.raises(ValueError, match="counters"):
        _core.Rule("sgd", {}, {}, np.zeros(3))
    assert np.all(net.parameters == fastwb.Network([3, 4, 2], dtype="float64",
                                                   seed=0).parameters)


def test_eps_that_underflows_in_float32_is_refused():
    net = fastwb.Network([3, 4, 2], dtype="float32", seed=0)
    with pytest.raises(ValueError, match="eps=1e-50 is 0"):
        net.train_step(np.ones((2, 3)), np.zeros((2, 2)), fastwb.Adam(eps=1e-50))
    fastwb.Network([3, 4, 2], dtype="float64").train_step(
        np.ones((2, 3)), np.zeros((2, 2)), fastwb.Adam(eps=1e-50))


def test_making_an_optimizer_keeps_its_schedules_state():
    plateau = fastwb.schedules.ReduceOnPlateau()
    state = {"multiplier": 0.25, "best": 1.0, "wait": 3, "n_reductions": 2}
    plateau.set_state(state)
    opt = fastwb.Adam(schedule=plateau)
    assert opt.schedule.get_state() == state
    opt.reset()
    assert opt.schedule.get_state()["multiplier"] == 1.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_of_a_large_batch_is_taken_in_blocks(dtype):
    rng = np.random.default_rng(0)
    n = 2500                                   # three blocks of at most 1024 rows
    X = rng.normal(size=(n, 5))
    y = rng.integers(0, 3, size=n)
    weights = rng.uniform(size=n)
    weights[1024:2048] = 0                     # a block that weighs nothing
    kwargs = dict(loss="softmax_cross_entropy", dtype=dtype, seed=0, l2=0.01, l1=0.001)
    compiled = fastwb.Network([5, 8, 3], **kwargs)
    reference = fastwb.Network([5, 8, 3], backend="reference", **kwargs)
    for sw in (None, weights):
        assert rel_error(compiled.loss(X, y, sw), reference.loss(X, y, sw)) <= TOLERANCE[
            np.dtype(dtype)]
    assert compiled.loss(X, y, np.zeros(n)) == pytest.approx(compiled._engine.penalty())


def test_compiled_codes_match_the_python_names():
    from fastwb import _core, functions
    assert list(_core.OPTIMIZERS) == list(functions.OPTIMIZERS)
    assert list(_core.OPTIMIZERS.values()) == list(range(len(functions.OPTIMIZERS)))
    assert {name: functions.FitStatus[name.upper()] for name in _core.FIT_STATUS} \
        == _core.FIT_STATUS


# --- apply_gradients ----------------------------------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("extra_name", [name for name in EXTRAS if name != "dropout"
                                        and "dropout" not in EXTRAS[name].get("net", {})])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_apply_gradients_of_the_network_gradients_is_train_step(optimizer, extra_name, dtype,
                                                                  backend):
    """Without dropout, stepping on ``net.gradients`` (penalties included, so they
    must not be added again) is ``train_step``: bit for bit on each backend, but
    for plain SGD, which ``train_step`` fuses into the weight-gradient product."""
    extra = EXTRAS[extra_name]
    activation, loss, target_kind = setup_of(optimizer, extra_name)
    X, y, w = make_data(target_kind, np.random.default_rng(3), weighted=extra.get("weighted"))
    kwargs = dict(activation=activation, loss=loss, dtype=dtype, seed=7, backend=backend,
                  **extra.get("net", {}))
    stepped, applied = fastwb.Network(SIZES, **kwargs), fastwb.Network(SIZES, **kwargs)
    opt_s = OPTIMIZERS[optimizer](**extra.get("opt", {}))
    opt_a = OPTIMIZERS[optimizer](**extra.get("opt", {}))
    for step in range(5):
        stepped.train_step(X, y, opt_s, sample_weight=w)
        gradients = applied.gradients(X, y, w)
        if step % 2:
            gradients = flat_gradient(applied, X, y, w)      # both forms
        assert opt_a.apply_gradients(applied, gradients) is None
        if optimizer == "sgd" and extra_name in ("plain", "sample_weight"):
            assert_close(applied.parameters, stepped.parameters, dtype, f"step {step}")
        else:
            np.testing.assert_array_equal(applied.parameters, stepped.parameters)
    assert opt_a.step == opt_s.step == 5
    for key, value in opt_s.state.items():
        np.testing.assert_array_equal(opt_a.state[key], value)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_apply_gradients_matches_reference_with_clipping_and_a_schedule(optimizer, dtype):
    compiled, reference = make_pair("tanh", "mse", dtype, l2=1e-2)
    settings = dict(clip_norm=CLIP_NORM, schedule=fastwb.schedules.StepDecay(step_size=2))
    opt_c, opt_r = OPTIMIZERS[optimizer](**settings), OPTIMIZERS[optimizer](**settings)
    rng = np.random.default_rng(4)
    for step in range(6):
        g = rng.normal(size=compiled.n_parameters)
        opt_c.apply_gradients(compiled, g)
        opt_r.apply_gradients(reference, g)
        assert_close(compiled.parameters, reference.parameters, dtype, f"step {step}")
    check_states(opt_c, opt_r, dtype)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_apply_gradients_rejects_bad_gradients(backend):
    net = fastwb.Network(SIZES, seed=0, backend=backend)
    other = fastwb.Network(SIZES, seed=0, backend=backend)
    opt = fastwb.Adam()
    before = net.parameters.copy()
    good = flat_gradient(net, *make_data("float", np.random.default_rng(0))[:2])
    bad = {
        "shape": (good[:-1], "shape"),
        "nan": (np.where(np.arange(good.size) == 3, np.nan, good), "NaN"),
        "inf": (np.full_like(good, np.inf), "inf"),
        "layers": (net.gradients(*make_data("float", np.random.default_rng(0))[:2])[:-1],
                   "layers"),
        "pair shape": ([(dW.T, db) for dW, db in net.gradients(
            *make_data("float", np.random.default_rng(0))[:2])], "shapes"),
        "strings": (["a"] * good.size, "real"),
    }
    for name, (value, words) in bad.items():
        with pytest.raises((ValueError, TypeError), match=words):
            opt.apply_gradients(net, value)
    np.testing.assert_array_equal(net.parameters, before)
    with pytest.raises(TypeError, match="fastwb.Network"):
        opt.apply_gradients("net", good)
    opt.apply_gradients(net, good)
    with pytest.raises(ValueError, match="another network"):
        opt.apply_gradients(other, good)
    assert opt.step == 1


# --- the optimizer's state: get_state / set_state --------------------------------------

STATEFUL = {
    "sgd": lambda: fastwb.SGD(lr=0.05),
    "momentum": lambda: fastwb.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: fastwb.RMSprop(lr=0.01, schedule="invscaling"),
    "adagrad": lambda: fastwb.Adagrad(lr=0.05),
    "adamw": lambda: fastwb.AdamW(lr=0.01, clip_norm=1.0),
    "adaptive": lambda: fastwb.Adam(lr=0.01, schedule="adaptive"),
}


def _fitted(make, backend="compiled", epochs=3):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(20, 5)), rng.integers(0, 3, size=20)
    net = fastwb.Network([5, 7, 3], loss="softmax_cross_entropy", dtype="float64", seed=4,
                         backend=backend, dropout=0.2)
    opt = make()
    net.fit(X, y, opt, epochs=epochs, batch_size=6)
    return net, opt, X, y


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("name", list(STATEFUL))
def test_get_state_then_set_state_resumes_exactly(name, backend):
    """Training on from a restored state gives the bits training on would have."""
    net, opt, X, y = _fitted(STATEFUL[name], backend)
    state, parameters = opt.get_state(), net.parameters.copy()
    assert (state["step"], state["epoch"], state["samples_seen"]) == (12, 3, 60)
    assert sorted(state["buffers"]) == sorted(opt.buffer_names)
    net.fit(X, y, opt, epochs=2, batch_size=6)
    after = net.parameters.copy(), opt.get_state()
    net.parameters = parameters
    opt.set_state(state)
    net.fit(X, y, opt, epochs=2, batch_size=6)
    np.testing.assert_array_equal(net.parameters, after[0])
    again = opt.get_state()
    assert {k: v for k, v in again.items() if k != "buffers"} == \
        {k: v for k, v in after[1].items() if k != "buffers"}
    for key, values in after[1]["buffers"].items():
        np.testing.assert_array_equal(again["buffers"][key], values)


@pytest.mark.parametrize("name", list(STATEFUL))
def test_state_moves_to_a_fresh_optimizer_and_network(name):
    net, opt, X, y = _fitted(STATEFUL[name])
    twin = fastwb.Network.from_config(net.get_config())
    twin.parameters = net.parameters
    twin_opt = STATEFUL[name]()
    twin_opt.set_state(opt.get_state())            # kept until it first steps a network
    assert twin_opt.network is None and twin_opt.step == opt.step
    for network, optimizer in ((net, opt), (twin, twin_opt)):
        network.fit(X, y, optimizer, epochs=1, batch_size=6)
    np.testing.assert_array_equal(twin.parameters, net.parameters)
    assert twin_opt.network is twin


def test_get_state_is_a_copy_and_round_trips_before_the_first_step():
    opt = fastwb.Adam()
    empty = opt.get_state()
    assert empty == {"step": 0, "epoch": 0, "samples_seen": 0, "buffers": {},
                     "schedule": opt.schedule.get_state()}
    net, opt, X, y = _fitted(lambda: fastwb.Adam(lr=0.01))
    state = opt.get_state()
    state["buffers"]["exp_avg"][...] = 7
    assert not np.any(opt.state["exp_avg"] == 7)
    opt.set_state(empty)                           # no state: starts afresh on its next network
    assert opt.step == 0 and opt.network is None and opt.state == {
        "step": 0, "epoch": 0, "samples_seen": 0}
    other = fastwb.Network([5, 7, 3], loss="softmax_cross_entropy", dtype="float64", seed=5)
    other.train_step(X, y, opt)
    assert opt.network is other and opt.step == 1


def test_set_state_refuses_what_does_not_fit_and_changes_nothing():
    net, opt, X, y = _fitted(lambda: fastwb.Adam(lr=0.01))
    good = opt.get_state()
    n = net.n_parameters

    def variant(**changes):
        state = opt.get_state()
        state.update(changes)
        return state

    cases = [
        ("not a dict", TypeError, "must be a dict"),
        ({**good, "extra": 1}, ValueError, "exactly the keys"),
        (variant(step=-1), ValueError, "step"),
        (variant(epoch=1.5), TypeError, "epoch"),
        (variant(buffers={"exp_avg": np.zeros(n)}), ValueError, "keeps the buffers"),
        (variant(buffers={"exp_avg": np.zeros(n), "exp_avg_sq": np.zeros(n - 1)}), ValueError,
         "one dtype and length"),
        (variant(buffers={"exp_avg": np.zeros(n - 1), "exp_avg_sq": np.zeros(n - 1)}),
         ValueError, "trains a network of"),
        (variant(buffers={"exp_avg": np.zeros(n), "exp_avg_sq": -np.ones(n)}), ValueError,
         "negative"),
        (variant(buffers={"exp_avg": np.zeros((n, 1)), "exp_avg_sq": np.zeros(n)}), ValueError,
         "1-D"),
        (variant(schedule={"bogus": 1}), ValueError, "schedule|state"),
    ]
    for state, error, match in cases:
        with pytest.raises(error, match=match):
            opt.set_state(state)
        after = opt.get_state()
        assert after["step"] == good["step"] and after["schedule"] == good["schedule"]
        for key, values in good["buffers"].items():
            np.testing.assert_array_equal(after["buffers"][key], values)


# --- an update that would overflow is not made ----------------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("make", [lambda: fastwb.SGD(lr=1e36),
                                  lambda: fastwb.SGD(lr=1e36, momentum=0.5),
                                  lambda: fastwb.RMSprop(lr=1e38, eps=1e-30)],
                         ids=["sgd", "momentum", "rmsprop"])
def test_train_step_refuses_an_update_that_overflows(make, backend):
    """A finite loss whose update would leave parameters infinite (float32)
    raises and leaves everything as it was; train_step once returned normally."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 4)) * 100, rng.normal(size=(16, 2)) * 100
    net = fastwb.Network([4, 8, 2], dtype="float32", seed=0, backend=backend)
    opt = make()
    parameters, state = net.parameters.copy(), opt.get_state()
    with pytest.raises(FloatingPointError, match="update would have left parameters"):
        net.train_step(X, y, opt)
    np.testing.assert_array_equal(net.parameters, parameters)
    assert opt.step == 0 and np.isfinite(net.parameters).all()
    for values in opt.get_state()["buffers"].values():
        assert not values.any()                              # moments as before: zeros
    assert state["step"] == opt.step
    gradient = net.loss_and_gradients(X, y)[1]
    with pytest.raises(FloatingPointError, match="update would have left parameters"):
        opt.apply_gradients(net, gradient)
    np.testing.assert_array_equal(net.parameters, parameters)
    assert opt.step == 0
    small = fastwb.SGD(lr=1e-9)
    net.train_step(X, y, small)                              # a sane step still works
    assert small.step == 1 and not np.array_equal(net.parameters, parameters)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_train_step_makes_a_huge_update_that_stays_finite(backend):
    """Bounds from the largest magnitudes clear most updates at once; one they
    cannot clear (here within 4x of float32's largest value) is tried on copies
    and made when every value stays finite."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    net = fastwb.Network([4, 3, 2], dtype="float32", seed=0, backend=backend)
    gradient = net.loss_and_gradients(X, y)[1].astype(np.float64)
    lr = 0.25 * np.finfo(np.float32).max / np.abs(gradient).max()
    opt = fastwb.SGD(lr=float(lr))
    net.train_step(X, y, opt)
    assert opt.step == 1 and np.isfinite(net.parameters).all()
    assert np.abs(net.parameters).max() > 1e37


def _assert_refused(net, opt, step):
    """``step`` raises FloatingPointError and changes neither net nor opt."""
    parameters, state = net.parameters.copy(), opt.get_state()
    with pytest.raises(FloatingPointError):
        step()
    np.testing.assert_array_equal(net.parameters, parameters)
    after = opt.get_state()
    assert after["step"] == state["step"]
    for name, values in state["buffers"].items():
        np.testing.assert_array_equal(after["buffers"][name], values)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the reference's forward overflows
@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_no_update_that_would_write_nan_gets_through_the_check(backend):
    """Cases the bounds must not clear: a NaN gradient that clip_value would have
    hidden (min(NaN-as-inf, clip) is finite), a penalty gradient overflowing
    inside the norm (a norm of inf scales by 0: inf * 0), and factors that round
    to infinity in float32 while the values they multiply are 0."""
    nan_gradient = fastwb.Network([1, 1, 1], output_activation="sigmoid", loss="mse",
                                  dtype="float32", seed=0, backend=backend)
    nan_gradient.parameters = np.array([1e30, 0, -1, 0], dtype=np.float32)
    X, y = np.array([[1e10]]), np.array([[0.0]])
    assert np.isfinite(nan_gradient.loss(X, y))
    assert np.isnan(nan_gradient.loss_and_gradients(X, y)[1]).any()
    opt = fastwb.SGD(lr=0.1, clip_value=1.0)
    _assert_refused(nan_gradient, opt, lambda: nan_gradient.train_step(X, y, opt))

    norm = fastwb.Network([1, 1], loss="mse", dtype="float32", seed=0, l2=1e10,
                          backend=backend)
    norm.parameters = np.array([1e28, 0], dtype=np.float32)
    opt = fastwb.SGD(lr=0.1, clip_norm=1.0)
    _assert_refused(norm, opt, lambda: norm.train_step(np.array([[1e5]]), np.array([[0.0]]),
                                                       opt))

    zeros = np.zeros(4, dtype=np.float32)
    for opt in (fastwb.Adam(lr=1e38), fastwb.AdamW(lr=1e30, weight_decay=1e10)):
        net = fastwb.Network([1, 1, 1], dtype="float32", seed=0, backend=backend)
        net.parameters = zeros
        _assert_refused(net, opt, lambda: opt.apply_gradients(net, zeros))


def test_set_state_on_an_unbound_optimizer_takes_the_buffers_as_they_are():
    """Not copied into the buffers of an earlier set_state (or of a network
    that no longer exists): their dtype and length are the new state's."""
    single = {"step": 1, "epoch": 0, "samples_seen": 0,
              "buffers": {"exp_avg": np.ones(3, np.float32),
                          "exp_avg_sq": np.ones(3, np.float32)},
              "schedule": {}}
    opt = fastwb.Adam()
    opt.set_state(single)
    double = {**single, "buffers": {name: np.ones(5) for name in ("exp_avg", "exp_avg_sq")}}
    opt.set_state(double)
    assert all(v.dtype == np.float64 and v.shape == (5,) for v in opt.get_state()["buffers"].values())
    net = fastwb.Network([1, 2], loss="mse", dtype="float64", seed=0)     # 4 parameters
    with pytest.raises(ValueError, match="holds 5 float64 values"):
        net.train_step(np.ones((2, 1)), np.ones((2, 2)), opt)


def test_plain_sgd_stays_with_its_network_through_set_state():
    net = fastwb.Network([2, 1], loss="mse", dtype="float64", seed=0)
    opt = fastwb.SGD(lr=0.1)
    net.train_step(np.ones((2, 2)), np.ones((2, 1)), opt)
    opt.set_state(opt.get_state())
    assert opt.network is net and opt.bound
