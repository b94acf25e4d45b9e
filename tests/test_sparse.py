"""Sparse X: trained and predicted without ever becoming dense.

The compiled core's first-layer kernels (X W and X^T D with X in CSR, batches
picked by row index) against the reference's scipy products and against the
same values given dense; the checks of malformed matrices; the memory bound.
"""
import tracemalloc

import numpy as np
import pytest
import scipy.sparse

import fastwb as fw
from fastwb._sparse import SparseRows
from fastwb.testing import PATHS

TOL = {"float64": 1e-10, "float32": 1e-4}


def sparse_data(n=150, k=40, density=0.1, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    X = scipy.sparse.random(n, k, density=density, format="csr", random_state=seed,
                            data_rvs=rng.standard_normal)
    y = rng.integers(0, classes, n)
    return X, y


def net(backend="compiled", dtype="float64", sizes=(40, 12, 3), **kw):
    return fw.Network(list(sizes), activation="tanh", loss="softmax_cross_entropy", dtype=dtype,
                      seed=3, backend=backend, **kw)


def close(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype])


FORMATS = [scipy.sparse.csr_matrix, scipy.sparse.csc_matrix, scipy.sparse.coo_matrix,
           scipy.sparse.lil_matrix, scipy.sparse.dok_matrix, scipy.sparse.bsr_matrix,
           scipy.sparse.csr_array, scipy.sparse.csc_array, scipy.sparse.coo_array]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.__name__)
def test_every_format_is_its_dense_values(dtype, fmt):
    X, y = sparse_data()
    dense = X.toarray()
    a, b = net(dtype=dtype), net(dtype=dtype)
    Xs = fmt(X)
    close(a.predict(Xs), b.predict(dense), dtype)
    close(a.loss(Xs, y), b.loss(dense, y), dtype)
    for (gW, gb), (hW, hb) in zip(a.gradients(Xs, y), b.gradients(dense, y)):
        close(gW, hW, dtype)
        close(gb, hb, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_follows_reference_through_fit(dtype):
    """Shuffled epochs (batches picked from CSR rows), dropout, L1/L2 on every layer
    and sample weights: the compiled and reference engines train alike on sparse X."""
    X, y = sparse_data(n=200)
    w = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    nets = [net(b, dtype, sizes=(40, 16, 8, 3), dropout=0.2, l1=1e-3, l2=1e-2)
            for b in ("compiled", "reference")]
    for n in nets:
        n.fit(X, y, optimizer=fw.Adam(lr=1e-2), epochs=3, batch_size=32, sample_weight=w)
    close(nets[0].parameters, nets[1].parameters, dtype)
    close(nets[0].predict(X), nets[1].predict(X), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sparse_trains_as_dense(dtype):
    X, y = sparse_data(n=200)
    w = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    a, b = (net(dtype=dtype, dropout=0.1, l1=1e-3, l2=1e-2) for _ in range(2))
    ha = a.fit(X, y, optimizer=fw.SGD(lr=0.1, momentum=0.9), epochs=4, batch_size=25,
               sample_weight=w, validation_split=0.2)
    hb = b.fit(X.toarray(), y, optimizer=fw.SGD(lr=0.1, momentum=0.9), epochs=4,
               batch_size=25, sample_weight=w, validation_split=0.2)
    close(a.parameters, b.parameters, dtype)
    close(ha.history["val_loss"], hb.history["val_loss"], dtype)


def test_float64_sparse_forward_is_bitwise_the_reference():
    """The forward kernel adds W's rows in stored order, as scipy's product does, so
    a first layer's output is the reference's bits (no FMA contraction either way)."""
    X, _ = sparse_data()
    y = np.random.default_rng(2).standard_normal((X.shape[0], 12))
    a, b = (fw.Network([40, 12], activation="identity", loss="mse", dtype="float64", seed=3,
                       backend=backend) for backend in ("compiled", "reference"))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    close(a.gradients(X, y)[0][0], b.gradients(X, y)[0][0], "float64")


def test_early_stopping_with_sparse_validation_data():
    X, y = sparse_data(n=240)
    Xv, yv = sparse_data(n=60, seed=5)
    a, b = net(), net()
    ha = a.fit(X, y, optimizer=fw.Adam(lr=0.05), epochs=30, batch_size=16,
               validation_data=(scipy.sparse.csc_matrix(Xv), yv), early_stopping=True,
               patience=2)
    hb = b.fit(X.toarray(), y, optimizer=fw.Adam(lr=0.05), epochs=30, batch_size=16,
               validation_data=(Xv.toarray(), yv), early_stopping=True, patience=2)
    assert len(ha.history["val_loss"]) == len(hb.history["val_loss"]) < 30
    close(a.parameters, b.parameters, "float64")


def test_train_step_and_loss_and_gradients():
    X, y = sparse_data()
    a, b = net(), net("reference")
    for n in (a, b):
        n.train_step(X, y, fw.Adam(lr=0.01))
    close(a.parameters, b.parameters, "float64")
    la, ga = a.loss_and_gradients(X, y)
    lb, gb = b.loss_and_gradients(X, y)
    close(la, lb, "float64")
    close(ga, gb, "float64")


@pytest.mark.parametrize("n_threads", [1, 2])
def test_chunked_steps_and_threads(n_threads):
    """Batches of 512 rows of a small network are cut into chunks run by the
    pool; each chunk takes its rows of the CSR batch. Same bits for any thread count."""
    X, y = sparse_data(n=1024, k=30, density=0.2)
    runs = []
    for threads in (1, n_threads):
        n = net(sizes=(30, 16, 3), n_threads=threads)
        n.fit(X, y, optimizer=fw.Adam(lr=1e-2), epochs=2, batch_size=512)
        runs.append(n.parameters.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    ref = net("reference", sizes=(30, 16, 3))
    ref.fit(X, y, optimizer=fw.Adam(lr=1e-2), epochs=2, batch_size=512)
    close(runs[0], ref.parameters, "float64")


def test_unshuffled_epochs_and_large_predictions():
    """Batches in order (views of the row pointers) and predictions in blocks of
    the workspace (1024 rows) on sparse rows."""
    X, y = sparse_data(n=2500, k=40, density=0.05)
    a, b = net(), net("reference")
    for n in (a, b):
        n.fit(X, y, optimizer=fw.SGD(lr=0.05), epochs=1, batch_size=300, shuffle=False)
    close(a.parameters, b.parameters, "float64")
    close(a.predict(X), b.predict(X), "float64")
    close(a.loss(X, y), b.loss(X, y), "float64")


def test_duplicates_unsorted_indices_and_index_dtypes():
    rng = np.random.default_rng(0)
    indptr = np.array([0, 3, 3, 6])
    indices = np.array([5, 1, 5, 0, 39, 0])            # duplicates in rows 0 and 2, unsorted
    data = rng.standard_normal(6)
    y = np.array([0, 1, 2])
    for index_dtype in (np.int32, np.int64, np.uint16):
        X = scipy.sparse.csr_matrix((data, indices.astype(index_dtype),
                                     indptr.astype(index_dtype)), shape=(3, 40))
        assert not X.has_canonical_format
        dense = X.toarray()                            # sums the duplicates
        a, b = net(), net()
        close(a.predict(X), b.predict(dense), "float64")
        close(a.gradients(X, y)[0][0], b.gradients(dense, y)[0][0], "float64")
        close(net("reference").predict(X), b.predict(dense), "float64")


def test_rows_without_entries_and_one_sample():
    X = scipy.sparse.csr_matrix((4, 40))
    a = net()
    np.testing.assert_allclose(a.predict(X), np.tile(a.predict(np.zeros(40)), (4, 1)))
    a.fit(X, [0, 1, 2, 0], epochs=1, batch_size=2)
    one = scipy.sparse.coo_array(np.eye(40)[3])       # 1-D: one sample, as a 1-D array
    assert a.predict(one).shape == (3,)
    np.testing.assert_allclose(a.predict(one), a.predict(np.eye(40)[3]))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_malformed_matrices_are_refused(backend):
    n = net(backend)
    X, y = sparse_data(n=5)
    cases = []

    def hostile(**parts):
        M = X.copy()
        for name, value in parts.items():
            setattr(M, name, value)
        return M

    cases.append((hostile(indices=np.where(X.indices == X.indices[0], 10**6, X.indices)),
                  ValueError, "outside"))
    cases.append((hostile(indices=np.full_like(X.indices, -1)), ValueError, "outside"))
    decreasing = X.indptr.copy()
    decreasing[2], decreasing[3] = decreasing[3], decreasing[2] - 1
    cases.append((hostile(indptr=decreasing), ValueError, "never decrease"))
    shifted = X.indptr + 1
    cases.append((hostile(indptr=shifted), ValueError, "start at 0"))
    beyond = X.indptr.copy()
    beyond[-1] += 1000
    cases.append((hostile(indptr=beyond), ValueError, "beyond"))
    nan = X.copy()
    nan.data[1] = np.nan
    cases.append((nan, ValueError, "NaN or infinite"))
    inf = X.copy()
    inf.data[0] = -np.inf
    cases.append((inf, ValueError, "NaN or infinite"))
    cases.append((scipy.sparse.csr_matrix((5, 41)), ValueError, "41 features"))
    cases.append((scipy.sparse.csr_matrix((0, 40)), ValueError, "empty"))
    cases.append((X.astype(np.complex128), TypeError, "real numbers"))
    # other formats, whose conversion to CSR would scatter by an index unchecked
    csc = X.tocsc()
    far = csc.copy()
    far.indices = np.where(csc.indices == csc.indices[0], 10**6, csc.indices)
    cases.append((far, ValueError, "row indices from .* outside"))
    backwards = csc.copy()
    backwards.indptr = csc.indptr[::-1].copy()
    cases.append((backwards, ValueError, "column pointers"))
    coo = X.tocoo()
    for axis in ("row", "col"):
        bad = coo.copy()
        getattr(bad, axis)[0] = 10**6
        cases.append((bad, ValueError, "coordinates from .* outside"))
    bsr = X.tobsr(blocksize=(1, 2))
    bsr.indices = np.where(bsr.indices == bsr.indices[0], 10**6, bsr.indices)
    cases.append((bsr, ValueError, "block column indices from .* outside"))
    for M, error, message in cases:
        with pytest.raises(error, match=message):
            n.predict(M)
        with pytest.raises(error, match=message):
            n.fit(M, y, epochs=1)


def test_values_beyond_float32_are_refused():
    X = scipy.sparse.csr_matrix(np.array([[0.0] * 39 + [1e300]]))
    with pytest.raises(ValueError, match="after conversion to float32"):
        net(dtype="float32").predict(X)


def test_checked_rows_are_read_only_copies_of_the_indices():
    X, _ = sparse_data(n=5)
    rows, single = fw._validation.check_X(X, 40, np.float64)
    assert isinstance(rows, SparseRows) and not single
    assert not np.shares_memory(rows.indices, X.indices)
    assert not rows.indices.flags.writeable and not rows.indptr.flags.writeable
    taken = rows[np.array([4, 0, 0])]
    np.testing.assert_array_equal(taken.matrix.toarray(), X.toarray()[[4, 0, 0]])
    np.testing.assert_array_equal(rows[1:3].matrix.toarray(), X.toarray()[1:3])


def test_monitor_samples_sparse_training_rows():
    X, y = sparse_data(n=600)
    monitor = fw.Monitor(sample_size=64)
    network = net(backend="compiled")
    network.fit(X, y, epochs=2, batch_size=50, callbacks=[monitor])
    rows = X[np.sort(np.random.default_rng(network.seed).choice(600, 64, replace=False))]
    np.testing.assert_allclose(monitor.initial["mean_activation"],
                               net("reference").activation_statistics(rows)[1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_peak_memory_stays_sparse():
    """A 2000 x 5000 CSR matrix of 10,000 entries (80 MB dense in float64; fitting it
    dense peaked at 121 MB) trains and predicts in a few MB."""
    pytest.importorskip("sklearn")
    from fastwb.sklearn import MLPClassifier
    X = scipy.sparse.random(2000, 5000, density=0.001, format="csr", random_state=0)
    y = np.random.default_rng(0).integers(0, 2, 2000)
    est = MLPClassifier(hidden_layer_sizes=(20,), max_iter=2, random_state=0)
    tracemalloc.start()
    try:
        est.fit(X, y)
        est.predict_proba(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("kernel_path", list(PATHS), indirect=True)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernel_paths_and_thread_counts(kernel_path, dtype):
    """The threaded row loop of X W (forced on by "parallel_loops"), BLAS or plain
    loops for the other layers: the reference's values, and the same bits on
    one thread and two."""
    X, y = sparse_data(n=300)
    runs = []
    for threads in (1, 2):
        n = net(dtype=dtype, sizes=(40, 24, 12, 3), n_threads=threads, dropout=0.1)
        n.fit(X, y, optimizer=fw.Adam(lr=1e-2), epochs=2, batch_size=100)
        runs.append((n.parameters.copy(), n.predict(X)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    ref = net("reference", dtype, sizes=(40, 24, 12, 3), dropout=0.1)
    ref.fit(X, y, optimizer=fw.Adam(lr=1e-2), epochs=2, batch_size=100)
    close(runs[0][0], ref.parameters, dtype)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
def test_estimators_early_stopping_and_partial_fit(estimator):
    """The hold-out split, validation scores and partial_fit of sparse X follow
    the same values dense (float64: to rounding)."""
    from fastwb import sklearn as fsk
    X, y = sparse_data(n=300)
    if estimator == "MLPRegressor":
        y = np.asarray(X.sum(axis=1)).ravel()
    Estimator = getattr(fsk, estimator)
    params = dict(hidden_layer_sizes=(8,), max_iter=15, random_state=0, dtype="float64",
                  early_stopping=True, n_iter_no_change=3)
    a = Estimator(**params).fit(X, y)
    b = Estimator(**params).fit(X.toarray(), y)
    assert a.n_iter_ == b.n_iter_
    close(a.validation_scores_, b.validation_scores_, "float64")
    close(a.score(X, y), b.score(X.toarray(), y), "float64")
    params["early_stopping"] = False
    c, d = Estimator(**params), Estimator(**params)
    extra = {"classes": np.arange(3)} if estimator == "MLPClassifier" else {}
    for _ in range(3):
        c.partial_fit(scipy.sparse.csc_matrix(X), y, **extra)
        d.partial_fit(X.toarray(), y, **extra)
    close(c.network.parameters, d.network.parameters, "float64")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
def test_estimators_take_a_sparse_validation_set(estimator):
    """fit(X, y, X_val=..., y_val=...) with sparse X and X_val scores as dense."""
    from fastwb import sklearn as fsk
    X, y = sparse_data(n=300)
    if estimator == "MLPRegressor":
        y = np.asarray(X.sum(axis=1)).ravel()
    Estimator = getattr(fsk, estimator)
    params = dict(hidden_layer_sizes=(8,), max_iter=12, random_state=0, dtype="float64",
                  early_stopping=True, n_iter_no_change=4, scoring="neg_mean_squared_error"
                  if estimator == "MLPRegressor" else "f1_macro")
    a = Estimator(**params).fit(X[:200], y[:200], X_val=scipy.sparse.csc_matrix(X[200:]),
                                y_val=y[200:])
    b = Estimator(**params).fit(X[:200].toarray(), y[:200], X_val=X[200:].toarray(),
                                y_val=y[200:])
    assert a.n_iter_ == b.n_iter_
    close(a.validation_scores_, b.validation_scores_, "float64")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_user_code_sees_sparse_x_as_scipy_matrices(solver):
    """A callable scorer and scikit-learn's callbacks get scipy CSR matrices, not
    fastwb's checked rows, and score them as the dense values."""
    from fastwb import sklearn as fsk
    X, y = sparse_data(n=200)
    seen = []

    def scorer(estimator, X, y):
        seen.append(scipy.sparse.issparse(X))
        return float(estimator.predict_log_proba(X).max(axis=1).mean())

    params = dict(hidden_layer_sizes=(6,), max_iter=4, random_state=0, solver=solver,
                  dtype="float64")
    if solver == "adam":
        params.update(early_stopping=True, scoring=scorer)
    logs = []
    for data in (X, X.toarray()):
        clf = fsk.MLPClassifier(**params)
        try:
            from sklearn.callback import ScoringMonitor
        except ImportError:     # scikit-learn before 1.9: no callback protocol
            clf.fit(data, y)
            continue
        monitor = ScoringMonitor(scoring="accuracy")
        clf.set_callbacks(monitor)
        clf.fit(data, y)
        logs.append([(row["task_name"], row["task_id"], row["accuracy"])
                     for row in monitor.get_logs().data])
    if solver == "adam":
        assert seen and all(seen[:len(seen) // 2]) and not any(seen[len(seen) // 2:])
    if logs:
        assert len(logs[0]) > 1
        assert [row[:2] for row in logs[0]] == [row[:2] for row in logs[1]]
        np.testing.assert_allclose([row[2] for row in logs[0]], [row[2] for row in logs[1]])
