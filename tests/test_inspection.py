"""The statistics of weights, biases and activations (fastwb._stats, fastwb.inspection,
Network.summary) against plain NumPy computations of the same quantities."""
import numpy as np
import pytest

import fastwb
from fastwb import _stats, reference
from fastwb._layout import layer_views
from fastwb.inspection import STATISTICS

SIZES = [(5, 7, 3), (4, 1), (3, 9, 6, 2), (40, 130, 2)]


def numpy_statistics(params, sizes, grads=None, previous=None, initial=None):
    """Each statistic written out on its own, as a user would compute it."""
    stats = np.full((len(sizes) - 1, 2, len(STATISTICS)), np.nan)
    correlation = np.full(len(sizes) - 1, np.nan)
    others = [None if a is None else layer_views(a.astype(np.float64), sizes)
              for a in (grads, previous, initial)]
    for l, (W, b) in enumerate(layer_views(params.astype(np.float64), sizes)):
        for i, v in enumerate((W, b)):
            stats[l, i, :5] = [np.mean(v), np.std(v), np.min(v), np.max(v),
                               np.sqrt(np.sum(v * v))]
            g, prev, init = (None if o is None else o[l][i] for o in others)
            if g is not None:
                stats[l, i, 5] = np.sqrt(np.sum(g ** 2))
            if prev is not None:
                stats[l, i, 6] = np.sqrt(np.sum((v - prev) ** 2))
            if init is not None:
                stats[l, i, 7] = np.sqrt(np.sum((v - init) ** 2))
        unit = W.mean(axis=0)
        if len(b) > 1 and unit.std() > 0 and b.std() > 0:
            correlation[l] = np.mean((unit - unit.mean()) * (b - b.mean())) / (unit.std() * b.std())
    return stats, correlation


def random_buffers(sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(k * m + m for k, m in zip(sizes[:-1], sizes[1:]))
    return [(rng.normal(size=n) * scale + shift).astype(dtype)
            for scale, shift in ((0.5, 0.1), (2.0, 0.0), (0.5, 0.2), (0.3, -0.1))]


def assert_statistics(actual, expected, rtol):
    np.testing.assert_allclose(actual[0], expected[0], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(actual[1], expected[1], rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", ["all", "params only", "grads only", "previous only"])
def test_compiled_and_reference_match_numpy(sizes, dtype, which):
    params, grads, previous, initial = random_buffers(sizes, dtype)
    chosen = {"all": (grads, previous, initial), "params only": (None, None, None),
              "grads only": (grads, None, None), "previous only": (None, previous, None)}[which]
    expected = numpy_statistics(params, sizes, *chosen)
    assert_statistics(_stats.layer_statistics(params, sizes, *chosen), expected, 1e-10)
    assert_statistics(reference.layer_statistics(params, sizes, *chosen), expected, 1e-10)


def test_nan_columns_mark_what_was_not_given():
    params, grads, _, _ = random_buffers([3, 4, 2], np.float64)
    stats, _ = _stats.layer_statistics(params, [3, 4, 2], grads=grads)
    assert not np.isnan(stats[:, :, :6]).any()
    assert np.isnan(stats[:, :, 6:]).all()


def test_std_does_not_cancel_far_from_zero():
    # values 1e4 + small noise: sum-of-squares formulas lose every digit of the variance
    sizes = [50, 40, 1]
    params = 1e4 + np.random.default_rng(1).normal(size=50 * 40 + 40 + 40 + 1) * 1e-3
    stats, _ = _stats.layer_statistics(params, sizes)
    np.testing.assert_allclose(stats[0, 0, 1], np.std(params[:2000]), rtol=1e-6)


def test_correlation_is_nan_for_one_unit_or_a_constant_bias():
    sizes = [3, 4, 1]
    params = np.random.default_rng(2).normal(size=3 * 4 + 4 + 4 + 1)
    params[12:16] = 0.5                                   # layer 1's bias constant
    _, correlation = _stats.layer_statistics(params, sizes)
    assert np.isnan(correlation).all()                    # constant bias; one output unit


def test_correlation_sign_follows_the_weights_and_bias():
    net = fastwb.Network([3, 5, 2], seed=0, dtype="float64")
    W, b = net.layers[0].weights, net.layers[0].bias
    W[:] = np.arange(5.0)                                  # unit j's mean weight is j
    b[:] = -2 * np.arange(5.0) + 1
    assert net.summary().records[0]["correlation"] == pytest.approx(-1.0)
    b[:] = np.arange(5.0) ** 2
    expected = np.corrcoef(np.arange(5.0), np.arange(5.0) ** 2)[0, 1]
    assert net.summary().records[0]["correlation"] == pytest.approx(expected)


@pytest.mark.parametrize("bad, message", [
    (dict(params=np.zeros(5)), "need"),
    (dict(params=np.zeros(14, dtype=np.int64)), "float32 or float64"),
    (dict(params=np.zeros((2, 7))), "1-D"),
    (dict(grads=np.zeros(14, dtype=np.float32)), "grads must be"),
    (dict(previous=np.zeros(13)), "previous must be"),
    (dict(initial=np.zeros(28)[::2]), "initial must be"),
    (dict(sizes=[3]), "at least two"),
    (dict(sizes=[3, 0, 2]), "at least two positive"),
])
def test_bad_input_is_refused(bad, message):
    args = dict(params=np.zeros(14), sizes=[3, 2, 2])     # 3*2+2 + 2*2+2 = 14 parameters
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        _stats.layer_statistics(args.pop("params"), args.pop("sizes"), **args)


# --- Network.summary ----------------------------------------------------------------

@pytest.fixture(params=["compiled", "reference"])
def trained(request):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    net = fastwb.Network([6, 16, 8, 3], loss="softmax_cross_entropy", seed=1,
                         backend=request.param, dtype="float64")
    net.fit(X, y, "adam", epochs=5, batch_size=16)
    return net, X


def test_summary_records_match_numpy(trained):
    net, X = trained
    records = net.summary(X).records
    outputs = reference.forward(layer_views(net.parameters, net.sizes), net.activations, X)
    assert [r["layer"] for r in records] == [1, 2, 3]
    for r, layer, a, name in zip(records, net.layers, outputs, net.activations):
        W, b = layer.weights, layer.bias
        assert r["shape"] == W.shape and r["n_parameters"] == W.size + b.size
        assert r["activation"] == name
        for part, v in (("weight", W), ("bias", b)):
            assert r[f"{part}_mean"] == pytest.approx(v.mean(), abs=1e-12)
            assert r[f"{part}_std"] == pytest.approx(v.std(), rel=1e-10)
            assert r[f"{part}_min"] == v.min() and r[f"{part}_max"] == v.max()
            assert r[f"{part}_norm"] == pytest.approx(np.linalg.norm(v), rel=1e-12)
        assert r["correlation"] == pytest.approx(np.corrcoef(W.mean(axis=0), b)[0, 1], rel=1e-9)
        assert r["mean_activation"] == pytest.approx(a.mean(), rel=1e-12)
        if name == "relu":
            assert r["dead_fraction"] == pytest.approx(np.mean((a <= 0).all(axis=0)))
        else:
            assert r["dead_fraction"] is None


def test_dead_units_are_counted():
    net = fastwb.Network([2, 4, 1], seed=0, dtype="float64")
    net.layers[0].weights[:] = [[1, -1, 1, 0], [1, -1, 0, 0]]
    net.layers[0].bias[:] = [0.5, -5, 0.1, -1]              # units 2 and 4 never fire on X >= 0
    X = np.random.default_rng(0).uniform(0, 1, size=(50, 2))
    assert net.summary(X).records[0]["dead_fraction"] == 0.5


def test_summary_without_data_and_for_one_sample():
    net = fastwb.Network([4, 3, 2], seed=0)
    plain = net.summary()
    assert plain.records[0]["dead_fraction"] is None and plain.records[0]["mean_activation"] is None
    assert "dead" not in str(plain)
    one = net.summary(np.ones(4))
    assert one.n_rows == 1
    assert round(one.records[0]["dead_fraction"] * 3, 12) in (0, 1, 2, 3)


def test_summary_text_shows_every_layer(trained):
    net, X = trained
    text = str(net.summary(X))
    assert repr(net.summary(X)) == text
    lines = text.splitlines()
    assert f"{net.n_parameters:,} parameters" in lines[0]
    assert "dead" in lines[1] and "r(w,b)" in lines[1]
    rows = [line for line in lines if line[:1].isdigit()]
    assert [int(line.split()[0]) for line in rows] == [1, 2, 3]
    assert "6 x 16" in rows[0] and "softmax" in rows[2]
    first = net.summary(X).records[0]
    assert f"{first['weight_mean']:+.4f}" in rows[0] and f"{first['weight_norm']:.4f}" in rows[0]


def test_summary_to_frame(trained):
    pandas = pytest.importorskip("pandas")
    net, X = trained
    frame = net.summary(X).to_frame()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.index) == [1, 2, 3]
    assert frame.loc[2, "weight_norm"] == pytest.approx(np.linalg.norm(net.layers[1].weights))


def test_summary_to_frame_without_pandas(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        fastwb.Network([2, 2], seed=0).summary().to_frame()


@pytest.mark.parametrize("X, error", [
    (np.ones((3, 5)), ValueError), (np.full((3, 4), np.nan), ValueError),
    (np.ones((0, 4)), ValueError), ("text", (ValueError, TypeError)),
])
def test_summary_refuses_bad_data(X, error):
    with pytest.raises(error):
        fastwb.Network([4, 3, 2], seed=0).summary(X)
