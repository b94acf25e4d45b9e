"""fastwb.integrations.dask: a Network, both estimators and a saved Pipeline
predict over dask arrays and dataframes on a real LocalCluster (two worker
processes), with the results of in-process prediction."""
import pickle
import warnings

import numpy as np
import pytest

import fastwb as fw

distributed = pytest.importorskip(
    "distributed", reason='dask.distributed is not installed (pip install "fastwb[dask]")')
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from fastwb.integrations.dask import (  # noqa: E402
    _for_workers, predict, predict_log_proba, predict_proba)
from fastwb.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROWS = 23           # rows per block: blocks of unequal sizes, the last one short


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 5)) + np.eye(3, 5)[y]
    return X, y


def fitted(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def blockwise(method, X, keep=None):
    """The model's own in-process prediction of the same row blocks (of the rows
    ``keep`` selects in each), joined."""
    keep = np.ones(len(X), dtype=bool) if keep is None else keep
    return np.concatenate([method(X[i:i + ROWS][keep[i:i + ROWS]])
                           for i in range(0, len(X), ROWS) if keep[i:i + ROWS].any()])


@pytest.mark.parametrize("n_threads", [None, 2])
def test_network_predicts_a_dask_array_as_in_process(client, n_threads):
    X, _ = data()
    net = fw.Network([5, 16, 3], loss="softmax_cross_entropy", seed=0, n_threads=n_threads)
    lazy = predict(net, da.from_array(X, chunks=(ROWS, 2)))    # columns in chunks too
    assert isinstance(lazy, da.Array) and lazy.shape == (100, 3) and lazy.dtype == np.float32
    result = lazy.compute()
    np.testing.assert_array_equal(result, blockwise(net.predict, X))
    np.testing.assert_allclose(result, net.predict(X), rtol=1e-5, atol=1e-7)


def thread_probes():
    """``(ThreadProbe, threads_in_fit)``, made here so that they travel to the
    workers by value: the workers cannot import this module (pytest imports it
    by path), and what pickles by name would not load there."""

    class ThreadProbe:
        """A model whose prediction of a row is the threads its block ran with,
        and whether it ran on a dask worker."""

        def predict(self, X):
            import distributed
            from threadpoolctl import threadpool_info

            from fastwb import _core
            try:
                distributed.get_worker()
                on_worker = 1
            except ValueError:
                on_worker = 0
            blas = max(pool["num_threads"] for pool in threadpool_info()
                       if pool["user_api"] == "blas")
            return np.tile([on_worker, blas, _core.openmp_max_threads()], (len(X), 1))

    def threads_in_fit(estimator, X, y):
        """A scorer that reports the threads a fit in the same process had:
        100 x fastwb's OpenMP threads (``n_threads=None``) + BLAS's threads."""
        probe = ThreadProbe().predict(X[:1])[0]
        return float(100 * probe[2] + probe[1])

    return ThreadProbe, threads_in_fit


def test_blocks_run_on_the_workers_with_one_thread(client):
    X, _ = data()
    ThreadProbe, _ = thread_probes()
    result = predict(ThreadProbe(), da.from_array(X, chunks=(ROWS, 5))).compute()
    np.testing.assert_array_equal(result, np.ones((100, 3)))


def test_rows_of_unknown_count_are_predicted(client):
    X, _ = data()
    net = fw.Network([5, 6, 2], seed=3)
    X_dask = da.from_array(X, chunks=(ROWS, 5))
    kept = X_dask[X_dask[:, 0] > 0]                 # chunks of unknown sizes
    assert np.isnan(kept.chunks[0][0])
    np.testing.assert_array_equal(
        predict(net, kept).compute(),
        np.concatenate([net.predict(block[block[:, 0] > 0])
                        for block in np.array_split(X, range(ROWS, len(X), ROWS))]))


def test_collections_that_start_with_empty_blocks_are_predicted(client):
    """A filtered array or frame whose first blocks are empty: the output's shape
    comes from the first block with rows."""
    X, y = data()
    clf = fitted(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0), X, y)
    keep = np.arange(100) >= 50                     # the first two blocks lose every row
    X_dask = da.from_array(X, chunks=(ROWS, 5))
    kept = X_dask[da.from_array(keep, chunks=ROWS)]
    assert np.isnan(kept.chunks[0][0])
    np.testing.assert_array_equal(predict_proba(clf, kept).compute(),
                                  blockwise(clf.predict_proba, X, keep))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    named = fitted(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
                   frame, y)
    parts = dd.from_pandas(frame, chunksize=ROWS)
    filtered = parts.map_partitions(lambda part: part[part.index >= 50])
    assert len(filtered.partitions[0].compute()) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)     # none for the empty partitions
        lazy = predict(named, filtered)
    np.testing.assert_array_equal(lazy.compute(), blockwise(named.predict, frame, keep))


def test_worker_copy_of_a_network_has_one_thread():
    X, _ = data(10)
    net = fw.Network([5, 4, 2], seed=1, n_threads=2)
    copy = _for_workers(net)
    assert copy.n_threads == 1 and net.n_threads == 2
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))


def test_classifier_predicts_arrays_and_dataframes(client):
    X, y = data()
    clf = fitted(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0), X, y)
    X_dask = da.from_array(X, chunks=(ROWS, 5))
    labels = predict(clf, X_dask)
    assert labels.shape == (100,)
    np.testing.assert_array_equal(labels.compute(), blockwise(clf.predict, X))
    np.testing.assert_array_equal(predict_proba(clf, X_dask).compute(),
                                  blockwise(clf.predict_proba, X))
    np.testing.assert_array_equal(predict_log_proba(clf, X_dask).compute(),
                                  blockwise(clf.predict_log_proba, X))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    named = fitted(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
                   frame, y)
    parts = dd.from_pandas(frame, chunksize=ROWS)
    np.testing.assert_array_equal(predict(named, parts).compute(), blockwise(named.predict, frame))
    np.testing.assert_array_equal(predict_proba(named, parts).compute(),
                                  blockwise(named.predict_proba, frame))


def test_regressor_predicts_one_and_two_outputs(client):
    X, y = data()
    X_dask = da.from_array(X, chunks=(ROWS, 5))
    one = fitted(MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0), X, y * 1.5)
    result = predict(one, X_dask)
    assert result.shape == (100,)
    np.testing.assert_array_equal(result.compute(), blockwise(one.predict, X))
    two = fitted(MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0), X,
                 np.column_stack([y, -y]).astype(float))
    np.testing.assert_array_equal(predict(two, X_dask).compute(), blockwise(two.predict, X))


def test_saved_pipeline_predicts_a_dask_dataframe(client, tmp_path):
    X, y = data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["colour"] = np.array(["red", "green", "blue"])[np.arange(100) % 3]
    prep = ColumnTransformer([("num", StandardScaler(), [f"f{i}" for i in range(5)]),
                              ("cat", OneHotEncoder(), ["colour"])])
    pipe = fitted(Pipeline([("prep", prep), ("mlp", MLPClassifier(hidden_layer_sizes=(8,),
                                                                   max_iter=20, random_state=0))]),
                  frame, y)
    fw.save(pipe, tmp_path / "pipe.fwb")
    loaded = fw.load(tmp_path / "pipe.fwb")
    parts = dd.from_pandas(frame, chunksize=ROWS)
    np.testing.assert_array_equal(predict(loaded, parts).compute(), blockwise(pipe.predict, frame))
    np.testing.assert_array_equal(predict_proba(loaded, parts).compute(),
                                  blockwise(pipe.predict_proba, frame))


def test_models_pickle_with_their_predictions():
    X, y = data()
    net = fw.Network([5, 6, 3], loss="softmax_cross_entropy", seed=2, n_threads=2)
    clf = fitted(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y)
    pipe = fitted(Pipeline([("s", StandardScaler()),
                            ("m", MLPRegressor(hidden_layer_sizes=(4,), max_iter=5))]), X, y)
    for model in (net, clf, pipe):
        copy = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(copy.predict(X), model.predict(X))


def test_bad_input_is_refused_before_any_work(client):
    X, y = data(30)
    net = fw.Network([5, 4, 3], seed=0)
    with pytest.raises(TypeError, match="dask array or dask dataframe"):
        predict(net, X)
    with pytest.raises(TypeError, match="Network has no predict_proba"):
        predict_proba(net, da.from_array(X))
    with pytest.raises(TypeError, match="Network has no predict_log_proba: its predict"):
        predict_log_proba(net, da.from_array(X))
    with pytest.raises(ValueError, match="2-D dask array"):
        predict(net, da.from_array(X[:, 0]))
    with pytest.raises(ValueError, match="X has no rows"):
        predict(net, da.from_array(X[:0]))
    nothing = da.from_array(X, chunks=(7, 5))
    with pytest.raises(ValueError, match="X has no rows"):
        predict(net, nothing[nothing[:, 0] > 1e9])             # unknown sizes, all empty
    with pytest.raises(ValueError, match="the network takes 5"):    # found here, not later
        predict(net, da.from_array(X[:, :4]))
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        predict(MLPClassifier(), da.from_array(X))


def searches():
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import (GridSearchCV, HalvingRandomSearchCV,
                                         RandomizedSearchCV)
    grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (12,)]}
    base = MLPClassifier(max_iter=15, random_state=0)
    return {
        "grid": lambda n_jobs: GridSearchCV(base, grid, cv=3, n_jobs=n_jobs),
        "randomized": lambda n_jobs: RandomizedSearchCV(
            base, {**grid, "learning_rate_init": [1e-3, 1e-2, 3e-2]}, n_iter=5, cv=3,
            random_state=0, n_jobs=n_jobs),
        "halving": lambda n_jobs: HalvingRandomSearchCV(
            base, {**grid, "learning_rate_init": [1e-3, 1e-2, 3e-2]}, resource="max_iter",
            min_resources=3, max_resources=15, factor=2, cv=3, random_state=0, n_jobs=n_jobs),
    }


@pytest.mark.parametrize("kind", ["grid", "randomized", "halving"])
def test_searches_on_joblibs_dask_backend_equal_the_sequential_search(client, kind):
    import joblib
    X, y = data(90)
    make = searches()[kind]
    sequential = fitted(make(1), X, y)
    with joblib.parallel_backend("dask"):
        on_dask = fitted(make(-1), X, y)
    assert on_dask.best_params_ == sequential.best_params_
    for key in ("params", "mean_test_score", "split0_test_score", "rank_test_score"):
        assert list(on_dask.cv_results_[key]) == list(sequential.cv_results_[key]), key
    np.testing.assert_array_equal(on_dask.predict(X), sequential.predict(X))



def thread_search(n_jobs):
    from sklearn.model_selection import GridSearchCV
    X, y = data(60)
    search = GridSearchCV(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0),
                          {"alpha": [1e-4, 1e-2]}, cv=2, scoring=thread_probes()[1],
                          n_jobs=n_jobs)
    return set(fitted(search, X, y).cv_results_["mean_test_score"])


def test_a_search_on_dask_workers_trains_with_one_thread_each(client):
    """Dask's nanny starts each worker with OMP_NUM_THREADS=1 (and the BLAS
    variables): fastwb follows it, so 2 workers x 1 thread use 2 cores."""
    import joblib
    with joblib.parallel_backend("dask"):
        assert thread_search(-1) == {101.0}


def test_a_search_on_loky_shares_the_cores_among_its_workers():
    """loky gives each of n_jobs workers cores // n_jobs threads; fastwb and
    its BLAS follow that limit instead of taking every core."""
    import joblib
    share = max(joblib.cpu_count() // 2, 1)
    with joblib.parallel_backend("loky"):
        assert thread_search(2) == {101.0 * share}


def test_empty_blocks_after_the_first_and_sparse_blocks_are_predicted(client):
    import scipy.sparse as sp
    X, y = data()
    net = fw.Network([5, 8, 3], loss="softmax_cross_entropy", seed=0)
    keep = (np.arange(100) < 20) | (np.arange(100) >= 50)     # the middle blocks lose every row
    kept = da.from_array(X, chunks=(ROWS, 5))[da.from_array(keep, chunks=ROWS)]
    np.testing.assert_array_equal(predict(net, kept).compute(), blockwise(net.predict, X, keep))
    sparse = da.from_array(X, chunks=(ROWS, 5)).map_blocks(
        sp.csr_matrix, meta=sp.csr_matrix((0, 5)))
    np.testing.assert_allclose(predict(net, sparse).compute(), net.predict(sp.csr_matrix(X)),
                               rtol=1e-6)
