"""fastwb's counter-based random numbers (``fastwb._random``, mirrored by
``src_c/fastwb_random.h``): statistical sanity of the NumPy mirror, and the
compiled core's shuffles and dropout masks decoded from training and compared
with it value for value.
"""
import math

import numpy as np
import pytest

import fastwb
from fastwb import _random

MASK64 = (1 << 64) - 1


# --- the compiled shuffle is _random.permutation ------------------------------------------

def _compiled_order(seed, epoch, n, backend="compiled"):
    """The order in which fit visits n samples in the given epoch, read back from
    the weights of a network built so that each weight records when its sample came.

    Network [n, 1], identity output, MSE, X = I, y = 0, all weights 0, bias 1,
    batch size 1, SGD: sample i at position t meets the bias b_t = (1 - 2 lr)^t
    and only sample i moves weight i, to -2 lr b_t. Larger weights came later.
    """
    net = fastwb.Network([n, 1], loss="mse", dtype="float64", seed=seed, backend=backend)
    opt = fastwb.SGD(lr=0.005)
    X, y = np.eye(n), np.zeros(n)
    for _ in range(epoch + 1):          # each fit is the optimizer's next epoch
        net.parameters = np.zeros(net.n_parameters)
        net.layers[0].bias = [1.0]
        net.fit(X, y, opt, epochs=1, batch_size=1, shuffle=True)
    assert opt.epoch == epoch + 1
    weights = net.layers[0].weights[:, 0]
    assert len(np.unique(weights)) == n
    return np.argsort(weights)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("seed,epoch,n", [(0, 0, 50), (0, 1, 50), (7, 4, 37),
                                          (2**64 - 1, 2, 64), (123456789, 0, 2)])
def test_fit_visits_samples_in_the_permutation_order(backend, seed, epoch, n):
    np.testing.assert_array_equal(_compiled_order(seed, epoch, n, backend),
                                  _random.permutation(seed, epoch, n))


def test_fit_without_shuffle_keeps_the_order():
    n = 20
    net = fastwb.Network([n, 1], loss="mse", dtype="float64", seed=3)
    net.parameters = np.zeros(net.n_parameters)
    net.layers[0].bias = [1.0]
    net.fit(np.eye(n), np.zeros(n), fastwb.SGD(lr=0.005), epochs=1, batch_size=1,
            shuffle=False)
    np.testing.assert_array_equal(np.argsort(net.layers[0].weights[:, 0]), np.arange(n))


def test_compiled_and_reference_fits_with_shuffle_agree_and_depend_on_the_order():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))

    def fit(backend, seed=4, epochs=2):
        net = fastwb.Network([4, 5, 2], dtype="float64", seed=4, backend=backend)
        if seed != 4:       # another shuffle seed, same initial weights
            other = fastwb.Network([4, 5, 2], dtype="float64", seed=seed, backend=backend)
            other.parameters = net.parameters
            net = other
        net.fit(X, y, fastwb.SGD(0.1), epochs=epochs, batch_size=1)
        return net.parameters.copy()

    compiled, reference = fit("compiled"), fit("reference")
    scale = np.linalg.norm(reference)
    assert np.linalg.norm(compiled - reference) <= 1e-12 * scale
    assert np.linalg.norm(fit("compiled", seed=5) - compiled) > 1e-3 * scale
    assert np.linalg.norm(fit("compiled", epochs=1) - compiled) > 1e-3 * scale


# --- the compiled dropout masks are _random.dropout_keep ----------------------------------

@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rate", [0.4, 0.9])
def test_first_layer_masks_decoded_from_updates(backend, dtype, rate):
    """X = I: the first layer's weight gradient is its delta, which is zero exactly
    where a unit was dropped, so the entries one SGD step moves are the kept ones."""
    n, m, seed = 9, 13, 5
    net = fastwb.Network([n, m, 1], activation="identity", loss="mse", dtype=dtype, seed=seed,
                         dropout=rate, backend=backend)
    opt = fastwb.SGD(lr=0.1)
    X, y = np.eye(n), np.full(n, 10.0)
    for step in range(4):
        before = net.layers[0].weights.copy()
        net.train_step(X, y, opt)
        kept = net.layers[0].weights != before
        np.testing.assert_array_equal(kept, _random.dropout_keep(seed, 0, step, (n, m), rate),
                                      err_msg=f"step {step}")


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_second_layer_masks_decoded_from_updates(backend):
    """With the first layer the identity, the second layer's weight gradient is
    its delta: the entries that move are the second layer's kept units."""
    n, m, seed = 8, 11, 2**63 + 9
    net = fastwb.Network([n, n, m, 1], activation="identity", loss="mse", dtype="float64",
                         seed=seed, dropout=[0.0, 0.5], backend=backend)
    opt = fastwb.SGD(lr=1e-4)
    X, y = np.eye(n), np.full(n, 10.0)
    for step in range(3):
        net.layers[0].weights = np.eye(n)
        net.layers[0].bias = np.zeros(n)
        before = net.layers[1].weights.copy()
        net.train_step(X, y, opt)
        kept = net.layers[1].weights != before
        np.testing.assert_array_equal(kept, _random.dropout_keep(seed, 1, step, (n, m), 0.5),
                                      err_msg=f"step {step}")


# --- permutation ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 257])
def test_permutation_is_a_deterministic_permutation(n):
    order = _random.permutation(11, 3, n)
    assert order.shape == (n,)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(order, _random.permutation(11, 3, n))


def test_permutation_differs_across_epochs_and_seeds():
    n = 100
    orders = {(seed, epoch): tuple(_random.permutation(seed, epoch, n))
              for seed in (0, 1, 2**64 - 1) for epoch in range(5)}
    assert len(set(orders.values())) == len(orders)
    assert orders[(0, 0)] != tuple(range(n))


def test_permutation_positions_are_uniform():
    """Over many epochs each sample lands at each position about equally often
    (Fisher-Yates with an unbiased draw)."""
    n, epochs = 6, 3000
    counts = np.zeros((n, n))
    for epoch in range(epochs):
        counts[np.arange(n), _random.permutation(9, epoch, n)] += 1
    expected = epochs / n
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    # 25 degrees of freedom: mean 25, P(chi2 > 60) ~ 1e-4
    assert chi2 < 60, chi2
    all_orders = {tuple(_random.permutation(1, e, 3)) for e in range(200)}
    assert len(all_orders) == 6


def test_below_is_in_range_and_matches_bits():
    k = _random.key(3, _random.STREAM_SHUFFLE, 1, 0)
    for n in (1, 2, 7, 1000, 2**32):
        values = [_random.below(k, i, n) for i in range(200)]
        assert all(0 <= v < n for v in values)
        bits = _random.bits(k, np.arange(200, dtype=np.uint64))
        expected = ((bits >> np.uint64(32)).astype(object) * n) >> 32
        assert values == list(expected)


# --- dropout_keep --------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_drops_about_rate(rate):
    shape = (200, 300)
    keep = _random.dropout_keep(42, 0, 7, shape, rate)
    assert keep.shape == shape and keep.dtype == bool
    size = keep.size
    dropped = size - int(keep.sum())
    sigma = math.sqrt(size * rate * (1 - rate))
    assert abs(dropped - rate * size) < 6 * sigma
    # rows and columns are not structured: every row keeps about the same share
    per_row = keep.mean(axis=1)
    row_sigma = math.sqrt(rate * (1 - rate) / shape[1])
    assert np.all(np.abs(per_row - (1 - rate)) < 6 * row_sigma)


def test_dropout_rate_zero_keeps_everything():
    assert _random.dropout_keep(0, 0, 0, (50, 50), 0.0).all()
    assert _random.dropout_threshold(0.0) == 0
    assert _random.dropout_threshold(0.5) == 2 ** 52


@pytest.mark.parametrize("other", [dict(layer=1), dict(step=8), dict(seed=43)])
def test_dropout_masks_are_independent_between_layers_steps_and_seeds(other):
    rate, shape = 0.5, (100, 200)
    base = dict(seed=42, layer=0, step=7)
    a = _random.dropout_keep(base["seed"], base["layer"], base["step"], shape, rate)
    changed = {**base, **other}
    b = _random.dropout_keep(changed["seed"], changed["layer"], changed["step"], shape, rate)
    agreement = float(np.mean(a == b))
    expected = rate ** 2 + (1 - rate) ** 2
    sigma = math.sqrt(expected * (1 - expected) / a.size)
    assert abs(agreement - expected) < 6 * sigma
    # and the same key gives the same mask
    np.testing.assert_array_equal(a, _random.dropout_keep(42, 0, 7, shape, rate))


def test_dropout_mask_of_a_bigger_batch_extends_the_smaller():
    """The mask is a function of the flat index: a batch's first rows keep the same units."""
    small = _random.dropout_keep(1, 0, 0, (3, 5), 0.5)
    big = _random.dropout_keep(1, 0, 0, (6, 5), 0.5)
    np.testing.assert_array_equal(big[:3], small)


# --- uniform, bits, key, mix64 --------------------------------------------------------------

def test_uniform_moments_and_range():
    u = _random.uniform(_random.key(1, 9, 2, 3), 200_000)
    assert u.dtype == np.float64 and u.min() >= 0 and u.max() < 1
    n = u.size
    assert abs(u.mean() - 0.5) < 6 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 6 * math.sqrt(1 / 180 / n)
    # neighbours are uncorrelated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 6 / math.sqrt(n)


def test_uniform_chi_square_64_bins():
    n, bins = 64_000, 64
    u = _random.uniform(_random.key(2024, _random.STREAM_INIT, 0, 0), n)
    counts = np.bincount((u * bins).astype(int), minlength=bins)
    expected = n / bins
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    # 63 degrees of freedom: P(chi2 > 114) ~ 1e-4 and P(chi2 < 30) ~ 1e-4
    assert 30 < chi2 < 114, chi2


def test_uniform_is_the_top_53_bits():
    k = _random.key(5, 1, 0, 0)
    u = _random.uniform(k, 100)
    bits = _random.bits(k, np.arange(100, dtype=np.uint64))
    np.testing.assert_array_equal(u, (bits >> np.uint64(11)).astype(np.float64) / 2.0 ** 53)
    np.testing.assert_array_equal(_random.uniform(k, 10), u[:10])


def test_bits_matches_scalar_mix64():
    k = _random.key(77, 2, 5, 6)
    index = np.array([0, 1, 2, 1000, 2**40, 2**64 - 2], dtype=np.uint64)
    got = _random.bits(k, index)
    expected = [_random.mix64((k + (int(i) + 1) * _random.GOLDEN) & MASK64) for i in index]
    assert [int(v) for v in got] == expected


def test_key_differs_for_every_argument():
    base = (12345, 2, 3, 4)
    keys = {base: _random.key(*base)}
    for position in range(4):
        for delta in (1, 2, 1 << 40):
            args = list(base)
            args[position] += delta
            keys[tuple(args)] = _random.key(*args)
    assert len(set(keys.values())) == len(keys)
    # streams never share keys for the same (seed, a, b)
    streams = {_random.key(0, s, 0, 0) for s in (_random.STREAM_INIT, _random.STREAM_DROPOUT,
                                                 _random.STREAM_SHUFFLE)}
    assert len(streams) == 3
    # (a, b) and (b, a) are different streams
    assert _random.key(1, 2, 3, 4) != _random.key(1, 2, 4, 3)


def test_key_is_a_64_bit_value_and_deterministic():
    for args in [(0, 0, 0, 0), (2**64 - 1, 3, 2**63, 2**64 - 1), (1, 2, 3, 4)]:
        k = _random.key(*args)
        assert 0 <= k <= MASK64 and k == _random.key(*args)


def test_mix64_matches_the_vectorised_mix():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**64, size=1000, dtype=np.uint64, endpoint=False)
    values = np.concatenate([values, np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)])
    with np.errstate(over="ignore"):
        mixed = _random._mix(values)
    assert [int(v) for v in mixed] == [_random.mix64(int(v)) for v in values]


def test_mix64_known_values():
    """SplitMix64: the first outputs of a generator seeded with 0 (the published
    reference values) are mix64(k * golden) for k = 1, 2, 3."""
    outputs = [_random.mix64((k * _random.GOLDEN) & MASK64) for k in (1, 2, 3)]
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert [int(v) for v in _random.bits(0, np.arange(3, dtype=np.uint64))] == outputs
    assert _random.mix64(0) == 0
