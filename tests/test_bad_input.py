"""Bad input gets a clear TypeError/ValueError before any kernel runs;
awkward but valid input (read-only, non-contiguous, other dtypes) is handled."""
import numpy as np
import pytest

import fastwb

BACKENDS = ["compiled", "reference"]


@pytest.fixture(params=BACKENDS)
def classifier(request):
    return fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", seed=0, backend=request.param)


@pytest.fixture(params=BACKENDS)
def regressor(request):
    return fastwb.Network([4, 6, 2], loss="mse", seed=0, backend=request.param)


X_OK = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
LABELS_OK = np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize("X,error,match", [
    (np.zeros((5, 3), np.float32), ValueError, "3 features"),
    (np.zeros(3, np.float32), ValueError, "one sample and needs 4"),
    (np.zeros((2, 5, 4), np.float32), ValueError, "3-D"),
    (np.zeros((), np.float32), ValueError, "0-D"),
    (np.zeros((0, 4), np.float32), ValueError, "empty"),
    (np.full((5, 4), np.nan, np.float32), ValueError, "NaN or infinite"),
    (np.array([[0, 0, np.inf, 0]], np.float32), ValueError, r"index \(0, 2\)"),
    (np.full((1, 4), 1e300), ValueError, "after conversion to float32"),
    (np.zeros((5, 4), np.complex64), TypeError, "complex64"),
    (np.array([["a", "b", "c", "d"]]), TypeError, "dtype <U1"),
    (np.array([[object()] * 4]), TypeError, "object"),
    ([[1, 2, 3, 4], [1, 2]], ValueError, "rectangular"),
])
@pytest.mark.parametrize("call", ["predict", "loss", "gradients", "train_step"])
def test_bad_X(classifier, X, error, match, call):
    before = classifier.parameters.copy()
    with pytest.raises(error, match=match):
        if call == "predict":
            classifier.predict(X)
        elif call == "loss":
            classifier.loss(X, LABELS_OK)
        elif call == "gradients":
            classifier.gradients(X, LABELS_OK)
        else:
            classifier.train_step(X, LABELS_OK, fastwb.SGD(0.1))
    np.testing.assert_array_equal(classifier.parameters, before)


@pytest.mark.parametrize("y,match", [
    (np.array([0, 1, 3, 1, 0]), r"\[0, 3\); y\[2\] is 3"),
    (np.array([0, -1, 2, 1, 0]), r"y\[1\] is -1"),
    (np.array([0, 1, 2, 1]), r"shape \(4,\)"),
    (np.array([0.0, 1.5, 2, 1, 0]), "whole numbers"),
    (np.array([0.0, np.nan, 2, 1, 0]), "NaN"),
    (np.array([[0, 1, 2, 1, 0]]), r"expected \(5, 3\)"),
    (-np.eye(3)[LABELS_OK], "nonnegative"),
    (np.where(np.eye(3)[LABELS_OK] > 0, np.inf, 0.0), "NaN or infinite"),
])
def test_bad_labels(classifier, y, match):
    with pytest.raises(ValueError, match=match):
        classifier.train_step(X_OK, y, fastwb.SGD(0.1))


BAD_LABELS = [(3, r"\[0, 3\); y\[2\] is 3"), (100, r"\[0, 3\); y\[2\] is 100"),
              (-1, r"y\[2\] is -1"), (1.5, "whole numbers"), (np.nan, "NaN or infinite"),
              (np.inf, "NaN or infinite")]


@pytest.mark.parametrize("dtype,value,match", [
    (dtype, value, match)
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                  np.uint64, np.float32, np.float64)
    for value, match in BAD_LABELS
    if np.dtype(dtype).kind == "f" or (float(value).is_integer()
                                       and (value >= 0 or np.dtype(dtype).kind == "i"))])
def test_bad_labels_of_every_dtype(classifier, dtype, value, match):
    y = np.array([0, 1, value, 1, 0], dtype=dtype)
    before = classifier.parameters.copy()
    for call in (lambda: classifier.train_step(X_OK, y, fastwb.SGD(0.1)),
                 lambda: classifier.loss(X_OK, y), lambda: classifier.gradients(X_OK, y),
                 lambda: classifier.fit(X_OK, y, epochs=1)):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(classifier.parameters, before)


@pytest.mark.parametrize("y", [np.array([0, 1, 2, 1, 0], ">i4"),
                               np.array([0, 1, 2, 1, 0], np.float16),
                               (np.arange(10, dtype=np.int32) % 3)[::2]])
def test_labels_the_fast_path_leaves_to_python_are_right(classifier, y):
    # byte-swapped, half-precision and strided labels: the same as int64
    expected = classifier.loss(X_OK, np.asarray(y).astype(np.int64))
    assert classifier.loss(X_OK, y) == expected


@pytest.mark.parametrize("y,error,match", [
    (np.zeros((5, 3)), ValueError, r"expected \(5, 2\)"),
    (np.zeros(5), ValueError, r"expected \(5, 2\)"),
    (np.full((5, 2), np.nan), ValueError, "NaN"),
    (np.zeros((5, 2), np.complex128), TypeError, "complex"),
])
def test_bad_regression_targets(regressor, y, error, match):
    with pytest.raises(error, match=match):
        regressor.loss(X_OK, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bce_targets_must_be_probabilities(backend):
    net = fastwb.Network([4, 2], loss="binary_cross_entropy", backend=backend)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net.loss(X_OK, np.full((5, 2), 1.5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_targets_must_be_nonnegative(backend):
    net = fastwb.Network([4, 2], loss="poisson", backend=backend, seed=0)
    y = np.ones((5, 2))
    y[3, 1] = -0.5
    calls = [lambda: net.loss(X_OK, y), lambda: net.gradients(X_OK, y),
             lambda: net.train_step(X_OK, y, fastwb.SGD(0.1)),
             lambda: net.fit(X_OK, y, epochs=1, batch_size=2)]
    before = net.parameters.copy()
    for call in calls:
        with pytest.raises(ValueError, match="poisson targets must be nonnegative.*-0.5"):
            call()
    np.testing.assert_array_equal(net.parameters, before)
    y[3, 1] = 0.0            # zeros are counts too
    assert np.isfinite(net.loss(X_OK, y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_awkward_but_valid_input_is_handled(backend):
    net = fastwb.Network([4, 6, 3], loss="softmax_cross_entropy", seed=0, backend=backend)
    wide = np.random.default_rng(1).normal(size=(5, 8))
    expected = net.predict(np.ascontiguousarray(wide[:, ::2], dtype=np.float32))
    readonly = np.ascontiguousarray(wide[:, ::2], dtype=np.float32)
    readonly.flags.writeable = False
    variants = [wide[:, ::2], np.asfortranarray(wide[:, ::2]), readonly,
                wide[:, ::2].astype(">f4"), wide[:, ::2].tolist()]
    for X in variants:
        np.testing.assert_allclose(net.predict(X), expected, rtol=1e-6)
    labels = np.array([0, 1, 2, 1, 0], dtype=np.int32)
    assert np.isfinite(net.train_step(readonly, labels[::1], fastwb.SGD(0.1)))
    assert np.isfinite(net.loss(X_OK, labels.astype(np.float64)))
    assert np.isfinite(net.loss(X_OK.astype(np.int64), np.eye(3)[labels]))
    assert np.isfinite(net.loss(X_OK[0], 2))           # one sample, scalar label


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(sizes=[4]), ValueError, "input and an output"),
    (dict(sizes=[]), ValueError, "input and an output"),
    (dict(sizes=[4, 0, 2]), ValueError, "at least 1"),
    (dict(sizes=[4, -3]), ValueError, "at least 1"),
    (dict(sizes=[4, 2.5]), TypeError, "must be an int"),
    (dict(sizes=[4, True]), TypeError, "bool"),
    (dict(sizes="42"), TypeError, "list of ints"),
    (dict(sizes=[4, 2**31]), ValueError, "2\\*\\*31"),
    (dict(sizes=[10**6, 10**6, 10**6]), MemoryError, "GiB"),
    (dict(sizes=[4, 2], activation="mish"), ValueError, "unknown activation"),
    (dict(sizes=[4, 3, 2], activation="softmax"), ValueError, "output activation"),
    (dict(sizes=[4, 2], loss="hinge"), ValueError, "unknown loss"),
    (dict(sizes=[4, 2], loss="binary_cross_entropy", output_activation="tanh"),
     ValueError, "sigmoid output"),
    (dict(sizes=[4, 2], loss="mse", output_activation="softmax"), ValueError, "softmax"),
    (dict(sizes=[4, 1], loss="softmax_cross_entropy"), ValueError, "at least 2 outputs"),
    (dict(sizes=[4, 2], loss="poisson", output_activation="identity"), ValueError,
     "poisson needs an exp output"),
    (dict(sizes=[4, 2], loss="mse", output_activation="exp"), ValueError,
     "exp output layer goes with poisson"),
    (dict(sizes=[4, 3, 2], activation="exp", loss="poisson"), ValueError, "output activation"),
    (dict(sizes=[4, 2], loss="huber", huber_delta=0), ValueError, "huber_delta"),
    (dict(sizes=[4, 2], loss="huber", huber_delta=-1.0), ValueError, "huber_delta"),
    (dict(sizes=[4, 2], loss="huber", huber_delta=float("inf")), ValueError, "huber_delta"),
    (dict(sizes=[4, 2], loss="huber", huber_delta=float("nan")), ValueError, "huber_delta"),
    (dict(sizes=[4, 2], loss="huber", huber_delta="1"), TypeError, "huber_delta"),
    (dict(sizes=[4, 2], loss="huber", huber_delta=True), TypeError, "huber_delta"),
    (dict(sizes=[4, 2], loss="mse", huber_delta=1.0), ValueError, "huber_delta"),
    (dict(sizes=[4, 2], dtype="int32"), ValueError, "float32 or float64"),
    (dict(sizes=[4, 2], dtype="float16"), ValueError, "float32 or float64"),
    (dict(sizes=[4, 2], n_threads=0), ValueError, "n_threads=0"),
    (dict(sizes=[4, 2], n_threads="2"), TypeError, "n_threads"),
    (dict(sizes=[4, 2], seed=-1), ValueError, "nonnegative"),
    (dict(sizes=[4, 2], seed=1.5), TypeError, "seed"),
    (dict(sizes=[4, 2], backend="gpu"), ValueError, "backend"),
])
def test_bad_network_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastwb.Network(**kwargs)


def test_bad_optimizer_and_learning_rate():
    net = fastwb.Network([4, 2])
    with pytest.raises(TypeError, match="fastwb optimizer"):
        net.train_step(X_OK, np.zeros((5, 2)), "sgd")
    with pytest.raises(TypeError, match="abstract"):
        fastwb.Optimizer()
    for lr in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr"):
            fastwb.SGD(lr=lr)
    with pytest.raises(TypeError, match="lr"):
        fastwb.SGD(lr="fast")


def test_bad_parameter_assignment():
    net = fastwb.Network([4, 3, 2])
    layer = net.layers[0]
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        layer.weights = np.zeros((3, 4))
    with pytest.raises(ValueError, match="finite"):
        layer.bias = [0, np.nan, 0]
    with pytest.raises(TypeError, match="real numbers"):
        layer.bias = ["a", "b", "c"]
    with pytest.raises(ValueError, match="parameters must have shape"):
        net.parameters = np.zeros(3)


def test_bad_dense_layers():
    with pytest.raises(ValueError, match="outputs 3 values"):
        fastwb.Network([fastwb.Dense(4, 3), fastwb.Dense(2, 1)])
    with pytest.raises(TypeError, match="not a mix"):
        fastwb.Network([fastwb.Dense(4, 3), 2])
    with pytest.raises(ValueError, match="at least 1"):
        fastwb.Dense(0, 3)
    layer = fastwb.Dense(4, 2)
    with pytest.raises(RuntimeError, match="until a Network holds it"):
        layer.weights
    fastwb.Network([layer])
    with pytest.raises(ValueError, match="already belongs"):
        fastwb.Network([layer])


def test_sparse_targets_and_weights_are_refused_by_name():
    """Sparse X is taken (tests/test_sparse.py); sparse y and weights are not."""
    scipy_sparse = pytest.importorskip("scipy.sparse")
    net = fastwb.Network([4, 2])
    X = scipy_sparse.csr_matrix(X_OK)
    np.testing.assert_allclose(net.predict(X), net.predict(X_OK), rtol=1e-6)
    y = np.zeros((X.shape[0], 2))
    with pytest.raises(TypeError, match="y is a sparse matrix"):
        net.loss(X, scipy_sparse.csr_matrix(y))
    with pytest.raises(TypeError, match="sample_weight is a sparse matrix"):
        net.loss(X, y, scipy_sparse.csr_matrix(np.ones((1, X.shape[0]))))


def test_values_beyond_float32_are_refused():
    net = fastwb.Network([2, 1], dtype="float32")
    with pytest.raises(ValueError, match="float32"):
        net.parameters = np.full(3, 1e39)
    with pytest.raises(ValueError, match="float32"):
        net.layers[0].weights = np.full((2, 1), 1e39)
    with pytest.raises(ValueError, match="overflows"):
        net.train_step(np.ones((1, 2)), np.ones(1), fastwb.SGD(lr=1e39))
    for lr in (True, "0.1", None):
        with pytest.raises(TypeError, match="lr"):
            fastwb.SGD(lr=lr)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")   # NumPy's, in the reference
@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_loss_stops_the_step(backend):
    net = fastwb.Network([3, 4, 2], backend=backend, seed=0)
    net.parameters[0] = np.nan                       # written through the view: not checked
    before = net.parameters.copy()
    with pytest.raises(FloatingPointError, match="not applied"):
        net.train_step(np.ones((2, 3)), np.zeros((2, 2)), fastwb.SGD(0.1))
    np.testing.assert_array_equal(net.parameters, before)
    huge = fastwb.Network([1, 1], backend=backend, dtype="float32")
    huge.layers[0].weights = [[3e38]]                # z = 3e39 overflows float32
    with pytest.raises(FloatingPointError, match="diverged"):
        huge.train_step(np.full((1, 1), 10.0), np.zeros(1), fastwb.SGD(0.1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_that_is_a_view_of_the_parameters(backend):
    """The fused update writes W while reading X: X aliasing W must not change the result."""
    nets = [fastwb.Network([3, 3], dtype="float64", backend=b, seed=1)
            for b in (backend, "reference")]
    for net in nets:
        net.layers[0].weights = np.eye(3) + 0.1
        net.train_step(net.layers[0].weights, np.zeros((3, 3)), fastwb.SGD(0.5))
    np.testing.assert_allclose(nets[0].parameters, nets[1].parameters, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_misaligned_and_masked_input(backend):
    net = fastwb.Network([4, 3], seed=0, backend=backend)
    raw = np.zeros(4 * 5 * 4 + 1, np.uint8)
    misaligned = np.ndarray((5, 4), np.float32, buffer=raw, offset=1)
    misaligned[...] = X_OK
    assert not misaligned.flags.aligned
    np.testing.assert_allclose(net.predict(misaligned), net.predict(X_OK), rtol=1e-6)
    masked = np.ma.masked_array(X_OK, mask=np.zeros_like(X_OK, dtype=bool))
    np.testing.assert_allclose(net.predict(masked), net.predict(X_OK), rtol=1e-6)
    masked[0, 0] = np.ma.masked
    with pytest.raises(ValueError, match="masked"):
        net.predict(masked)


def test_label_column_gets_a_hint(classifier):
    with pytest.raises(ValueError, match=r"class labels of shape \(5,\)"):
        classifier.loss(X_OK, LABELS_OK[:, None])
