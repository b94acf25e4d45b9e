"""fastwb.sklearn beside scikit-learn's own MLPs: user-set parameters, partial_fit's
classes, single-class targets, stable log-probabilities, a table of settings and
calls whose observable results must agree, and skops persistence."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network as sk

from fastwb.sklearn import MLPClassifier, MLPRegressor
from fastwb.testing import estimator_data as data


def pair(kind: str, **params):
    """fastwb's (float64) and scikit-learn's estimator, with sgd without momentum
    over unshuffled data unless told otherwise: the settings where their steps
    are the same to rounding."""
    params = {"hidden_layer_sizes": (5,), "solver": "sgd", "momentum": 0.0, "shuffle": False,
              "random_state": 0, "max_iter": 5, **params}
    ours, theirs = (MLPRegressor, sk.MLPRegressor) if kind.startswith("reg") else \
        (MLPClassifier, sk.MLPClassifier)
    return ours(dtype="float64", **params), theirs(**params)


def record(call):
    """(result or exception, [(warning category, message)]) of call()."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as error:          # any error: compared with scikit-learn's
            result = error
    return result, [(w.category, str(w.message)) for w in caught
                    if not issubclass(w.category, DeprecationWarning)]


# --- coefs_ and intercepts_ set by the user ---------------------------------------------

@pytest.mark.parametrize("kind", ["multiclass", "reg1"])
def test_replaced_parameters_are_used_as_sklearn_uses_them(kind):
    X, y = data(kind)
    ours, theirs = pair(kind)
    rng = np.random.RandomState(1)
    for model in (ours, theirs):
        record(lambda: model.fit(X, y))
    # an array of the list replaced, another written into, then the whole list replaced
    new_first = rng.randn(*theirs.coefs_[0].shape)
    for model in (ours, theirs):
        model.coefs_[0] = new_first.copy()
        model.intercepts_[-1][...] = 0.5
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-12)
    coefs = [rng.randn(*c.shape) for c in theirs.coefs_]
    intercepts = [rng.randn(*b.shape) for b in theirs.intercepts_]
    for model in (ours, theirs):
        model.coefs_ = [c.copy() for c in coefs]
        model.intercepts_ = [b.copy() for b in intercepts]
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-12)
    assert ours.network.layers[0].weights[0, 0] == coefs[0][0, 0]
    # training goes on from them: partial_fit, then a warm-started fit
    for model in (ours, theirs):
        model.partial_fit(X, y)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)
    for model in (ours, theirs):
        model.coefs_[1] = coefs[1].copy()
        model.set_params(warm_start=True, max_iter=3)
        record(lambda: model.fit(X, y))
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for mine, its in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, its, rtol=1e-9, atol=1e-12)
    # views again: an in-place edit after the copy is seen too
    ours.coefs_[0] *= 0
    assert not ours.network.layers[0].weights.any()


def test_a_plain_refit_draws_new_weights_over_replaced_ones():
    X, y = data("binary")
    ours, theirs = pair("binary")
    for model in (ours, theirs):
        record(lambda: model.fit(X, y))
        model.coefs_[0] = np.zeros_like(model.coefs_[0])
        record(lambda: model.fit(X, y))
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9)


def test_bad_replaced_parameters_are_named_and_change_nothing():
    X, y = data("multiclass")
    clf = record(lambda: MLPClassifier(hidden_layer_sizes=(5,), max_iter=2).fit(X, y))[0]
    bias, before = clf.intercepts_[0], clf.intercepts_[0].copy()     # a view of the network's
    clf.intercepts_[0] = np.ones(5)         # good, but its sibling below is bad
    clf.coefs_[1] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(5, 3\), got \(4, 3\)"):
        clf.predict(X)
    np.testing.assert_array_equal(bias, before)
    clf.coefs_ = clf.coefs_[:1]
    with pytest.raises(ValueError, match="coefs_ must be a list of 2 arrays"):
        clf.predict(X)
    clf.coefs_ = [np.ones((4, 5)), np.full((5, 3), np.nan)]
    with pytest.raises(ValueError, match=r"coefs_\[1\].*NaN"):
        clf.partial_fit(X, y)
    clf.coefs_ = [np.ones((4, 5), np.float64), np.ones((5, 3), int)]   # cast to float32
    assert clf.predict_proba(X).dtype == np.float32
    np.testing.assert_array_equal(clf.network.layers[0].bias, 1)


def test_parameters_set_before_any_fit_start_partial_fit():
    """scikit-learn fails there (AttributeError: no n_layers_); fastwb starts from them."""
    X, y = data("reg1")
    coefs = [np.full((4, 5), 0.1), np.full((5, 1), 0.2)]
    intercepts = [np.zeros(5), np.zeros(1)]
    for Estimator in (sk.MLPRegressor, MLPRegressor):
        reg = Estimator(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=1e-9)
        reg.coefs_, reg.intercepts_ = coefs, intercepts
        if Estimator is sk.MLPRegressor:
            with pytest.raises(AttributeError, match="n_layers_"):
                reg.partial_fit(X, y)
        else:
            reg.partial_fit(X, y)
            np.testing.assert_allclose(reg.coefs_[1], 0.2, rtol=1e-6)
            assert reg.n_iter_ == 1


# --- partial_fit's classes ----------------------------------------------------------------

def test_partial_fit_multilabel_takes_classes_as_sklearn():
    X, Y = data("multilabel")
    Y = np.hstack([Y, Y[:, :2]])            # five labels
    ours, theirs = pair("multilabel")
    for model in (ours, theirs):
        model.partial_fit(X, Y, classes=[0, 1, 2, 3, 4])
        model.partial_fit(X, Y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for classes in (None, [0, 1, 2], ["a", "b", "c", "d", "e"], [0, 1, 2, 3, 4, 5]):
        ours, theirs = pair("multilabel")
        results = [record(lambda: model.partial_fit(X, Y, classes=classes))[0]
                   for model in (ours, theirs)]
        if isinstance(results[1], Exception):
            assert type(results[0]) is type(results[1]) and str(results[0]) == str(results[1])
        else:
            np.testing.assert_array_equal(ours.classes_, theirs.classes_)
            np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


# --- one class ---------------------------------------------------------------------------

@pytest.mark.parametrize("label", [1, "only"])
@pytest.mark.parametrize("how", ["fit", "partial_fit", "lbfgs"])
def test_a_single_class_fits_as_in_sklearn(label, how):
    X, _ = data("binary")
    y = np.array([label] * len(X), dtype=object if isinstance(label, str) else int)
    ours, theirs = pair("binary", solver="lbfgs" if how == "lbfgs" else "sgd")
    for model in (ours, theirs):
        if how == "partial_fit":
            model.partial_fit(X, y, classes=[label])
        else:
            record(lambda: model.fit(X, y))
    for name in ("classes_", "n_outputs_", "out_activation_", "n_iter_"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    assert ours.score(X, y) == theirs.score(X, y) == 1.0


# --- log-probabilities --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_float32_log_proba_is_finite_and_silent_where_probabilities_round_to_0(kind):
    X, y = data(kind)
    models = {}
    for dtype in ("float32", "float64"):
        clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0, dtype=dtype)
        record(lambda: clf.fit(X, y))
        clf.coefs_ = [c * 60 for c in clf.coefs_]      # saturated outputs
        models[dtype] = clf
    X32 = X.astype(np.float32)
    probabilities = models["float32"].predict_proba(X32)
    assert (probabilities == 0).any() and (probabilities == 1).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log32 = models["float32"].predict_log_proba(X32)
    log64 = models["float64"].predict_log_proba(X)
    assert log32.dtype == np.float32 and np.isfinite(log32).all()
    np.testing.assert_allclose(log32, log64, rtol=1e-4, atol=1e-4)
    # and agrees with log(predict_proba) where that is finite
    with np.errstate(divide="ignore"):
        reference = np.log(models["float64"].predict_proba(X))
    finite = np.isfinite(reference)
    assert finite.mean() > 0.5
    np.testing.assert_allclose(log64[finite], reference[finite], rtol=1e-9, atol=1e-12)


# --- skops ---------------------------------------------------------------------------------

#: What ``skops.io.get_untrusted_types`` lists for fastwb's estimators (documented in
#: fastwb/sklearn.py and the README): the estimator classes alone.
SKOPS_TRUSTED = {MLPClassifier: ["fastwb.sklearn.MLPClassifier"],
                 MLPRegressor: ["fastwb.sklearn.MLPRegressor"]}


@pytest.mark.parametrize("kind, params", [("strings", {"early_stopping": True}),
                                          ("multilabel", {"dtype": "float64"}),
                                          ("reg3", {"solver": "lbfgs"})])
def test_skops_round_trip_of_a_fitted_estimator(kind, params, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y = data(kind)
    Estimator = MLPRegressor if kind.startswith("reg") else MLPClassifier
    est = record(lambda: Estimator(hidden_layer_sizes=(6,), max_iter=5, random_state=0,
                                   **params).fit(X, y))[0]
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    assert sio.get_untrusted_types(file=path) == SKOPS_TRUSTED[Estimator]
    loaded = sio.load(path, trusted=SKOPS_TRUSTED[Estimator])
    assert type(loaded) is Estimator and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    for name in ("n_iter_", "loss_", "loss_curve_", "validation_scores_", "classes_",
                 "n_features_in_", "out_activation_"):
        if hasattr(est, name):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(est, name))
    # the parameters are the loaded network's again, and training goes on alike
    assert loaded.coefs_[0] is loaded.network.layers[0].weights
    if params.get("solver") != "lbfgs" and not params.get("early_stopping"):
        for model in (est, loaded):
            model.partial_fit(X, y)
        np.testing.assert_array_equal(loaded.network.parameters, est.network.parameters)


def test_skops_round_trip_of_a_pipeline_and_of_an_unfitted_estimator(tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = data("multiclass")
    pipeline = record(lambda: make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(6,), max_iter=5, random_state=0)).fit(X, y))[0]
    data_bytes = sio.dumps(pipeline)
    assert sio.get_untrusted_types(data=data_bytes) == SKOPS_TRUSTED[MLPClassifier]
    loaded = sio.loads(data_bytes, trusted=SKOPS_TRUSTED[MLPClassifier])
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    unfitted = sio.loads(sio.dumps(MLPRegressor(alpha=0.5)),
                         trusted=SKOPS_TRUSTED[MLPRegressor])
    assert unfitted.alpha == 0.5 and not hasattr(unfitted, "coefs_")
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.loads(data_bytes)


# --- a table of settings and calls ----------------------------------------------------------

#: Settings beside the defaults of ``pair`` (sgd without momentum, unshuffled: the same
#: steps to rounding).
SETTINGS = [{}, {"momentum": 0.9}, {"nesterovs_momentum": False, "momentum": 0.5},
            {"early_stopping": True, "max_iter": 15}, {"batch_size": 100},
            {"tol": 10.0, "n_iter_no_change": 2, "max_iter": 20},
            {"learning_rate": "adaptive", "tol": 10.0, "n_iter_no_change": 1, "max_iter": 30},
            {"solver": "adam"}, {"solver": "lbfgs"}, {"alpha": 0.5, "activation": "tanh"},
            {"activation": "logistic", "hidden_layer_sizes": (3, 4)},
            {"activation": "identity", "hidden_layer_sizes": ()}, {"max_iter": 1}]
#: Sequences of calls: fit, partial_fit, or a set_params between them.
CALLS = [("fit",), ("fit", "fit"), ("partial_fit", "partial_fit"), ("fit", "partial_fit"),
         ("fit", {"warm_start": True, "max_iter": 3}, "fit")]


def documented_difference(kind: str, params: dict, calls: tuple) -> str | None:
    """Why fastwb's results may differ here (fastwb/sklearn.py's list), or None."""
    multioutput_lbfgs = kind == "reg3" and params.get("solver") == "lbfgs"
    if multioutput_lbfgs and calls.count("fit") + calls.count("partial_fit") > 1:
        return "lbfgs minimises the summed squared error of several targets"
    if params.get("early_stopping") and len(calls) > 2:
        return "a warm-started refit that never beats the best score keeps the best weights"
    return None


def observe(model, X, y, calls):
    """Per call: (error type and message, warnings), then the fitted attributes."""
    seen = []
    for call in calls:
        if isinstance(call, dict):
            model.set_params(**call)
            continue
        kwargs = {}
        if call == "partial_fit" and hasattr(model, "predict_proba"):
            kwargs["classes"] = np.unique(y) if y.ndim == 1 else np.arange(y.shape[1])
        result, caught = record(lambda: getattr(model, call)(X, y, **kwargs))
        seen.append(((type(result).__name__, str(result)) if isinstance(result, Exception)
                     else None, caught))
    return seen


def public_attributes(model) -> dict:
    return {name: value for name, value in vars(model).items()
            if name.endswith("_") and not name.startswith("_")}


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "reg1", "reg3"])
@pytest.mark.parametrize("params", SETTINGS, ids=lambda p: ",".join(f"{k}={v}" for k, v in
                                                                     p.items()) or "defaults")
def test_table_of_settings_and_calls_against_sklearn(kind, params):
    X, y = data(kind)
    for calls in CALLS:
        ours, theirs = pair(kind, **params)
        what = f"{kind} {params} {calls}"
        assert observe(ours, X, y, calls) == observe(theirs, X, y, calls), what
        if not hasattr(theirs, "coefs_"):
            continue
        mine, its = public_attributes(ours), public_attributes(theirs)
        assert sorted(mine) == sorted(its), what
        if documented_difference(kind, params, calls):
            continue
        # Adam adds epsilon to the bias-corrected root (documented): steps of order
        # epsilon apart
        tolerance = {"rtol": 1e-3, "atol": 1e-5} if params.get("solver") == "adam" else \
            {"rtol": 1e-6, "atol": 1e-9}
        for name, value in its.items():
            if name in ("coefs_", "intercepts_"):
                for a, b in zip(mine[name], value, strict=True):
                    np.testing.assert_allclose(a, b, **tolerance, err_msg=what)
            elif isinstance(value, (float, list)) or (isinstance(value, np.ndarray)
                                                      and value.dtype.kind == "f"):
                np.testing.assert_allclose(mine[name], value, **tolerance,
                                           err_msg=f"{what}: {name}")
            elif value is None:
                assert mine[name] is None, f"{what}: {name}"
            else:
                np.testing.assert_array_equal(mine[name], value, err_msg=f"{what}: {name}")
        predicted, expected = ours.predict(X), theirs.predict(X)
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(predicted, expected, **tolerance, err_msg=what)
        else:
            np.testing.assert_array_equal(predicted, expected, err_msg=what)


@pytest.mark.parametrize("change", [{"activation": "tanh"}, {"hidden_layer_sizes": (6,)}])
def test_a_warm_start_that_needs_another_network_is_refused(change):
    """Documented: scikit-learn goes on silently (old sizes kept, new activation
    applied to the old weights); fastwb refuses."""
    X, y = data("multiclass")
    ours, theirs = pair("multiclass")
    for model in (ours, theirs):
        record(lambda: model.fit(X, y))
        model.set_params(warm_start=True, **change)
    record(lambda: theirs.fit(X, y))
    assert [c.shape for c in theirs.coefs_] == [(4, 5), (5, 3)]
    before = ours.network.parameters.copy()
    with pytest.raises(ValueError, match="continue the network of the first fit"):
        ours.fit(X, y)
    np.testing.assert_array_equal(ours.network.parameters, before)


BAD_PARAMETERS = [("hidden_layer_sizes", (0,)), ("hidden_layer_sizes", "a"),
                  ("hidden_layer_sizes", None), ("solver", 1),
                  ("alpha", -1), ("alpha", np.inf), ("batch_size", 0), ("batch_size", 1.5),
                  ("learning_rate", "x"), ("learning_rate_init", 0), ("power_t", -1),
                  ("max_iter", 0), ("shuffle", 1), ("random_state", -1),
                  ("random_state", 2**32), ("tol", -1), ("verbose", "x"), ("warm_start", 1),
                  ("momentum", 1.1), ("nesterovs_momentum", 1), ("early_stopping", "x"),
                  ("validation_fraction", 1), ("beta_1", 1), ("beta_2", -0.1),
                  ("epsilon", 0), ("n_iter_no_change", 0), ("n_iter_no_change", 1.5),
                  ("max_fun", 0)]


@pytest.mark.parametrize("name, value", BAD_PARAMETERS)
@pytest.mark.parametrize("kind", ["binary", "reg1"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_parameters_raise_sklearns_errors(name, value, kind, method):
    X, y = data(kind)
    errors = []
    for model in pair(kind, **{name: value}):
        kwargs = {"classes": [0, 1]} if method == "partial_fit" and kind == "binary" else {}
        with pytest.raises((ValueError, AttributeError)) as error:
            getattr(model, method)(X, y, **kwargs)
        errors.append((type(error.value), str(error.value)))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("kind", ["binary", "reg1"])
def test_a_bad_activation_raises_sklearns_error_naming_fastwbs_choices(kind):
    """The same error type and form; fastwb's message lists its extra names."""
    X, y = data(kind)
    errors = []
    for model in pair(kind, activation="x"):
        with pytest.raises(ValueError) as error:
            model.fit(X, y)
        errors.append(error.value)
    assert type(errors[0]) is type(errors[1])
    assert str(errors[0]).startswith("The 'activation' parameter of ")
    assert "'gelu'" in str(errors[0]) and "'logistic'" in str(errors[0])
    assert str(errors[0]).endswith("Got 'x' instead.")


def test_skops_and_pickle_keep_callbacks_without_what_fit_lent_them(tmp_path):
    import pickle
    sio = pytest.importorskip("skops.io")
    from fastwb.callbacks import EarlyStopping
    X, y = data("binary")
    clf = record(lambda: MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0,
                                       callbacks=[EarlyStopping(monitor="loss")]).fit(X, y))[0]
    assert clf.callbacks[0].network is clf.network
    data_bytes = sio.dumps(clf)
    trusted = ["fastwb.callbacks.EarlyStopping", "fastwb.sklearn.MLPClassifier"]
    assert sorted(sio.get_untrusted_types(data=data_bytes)) == trusted
    for loaded in (sio.loads(data_bytes, trusted=trusted), pickle.loads(pickle.dumps(clf))):
        callback = loaded.callbacks[0]
        assert type(callback) is EarlyStopping and callback.monitor == "loss"
        assert callback.network is None and callback.training_data is None
        np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
        record(lambda: loaded.fit(X, y))
        assert callback.network is loaded.network


@pytest.mark.parametrize("change", ["setitem", "slice", "append-pop", "sort", "iadd", "attribute"])
def test_every_change_of_the_lists_is_seen(change):
    X, y = data("reg1")
    reg = record(lambda: MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, y))[0]
    new = [np.full(c.shape, 0.5) for c in reg.coefs_]
    if change == "setitem":
        reg.coefs_[0], reg.coefs_[1] = new
    elif change == "slice":
        reg.coefs_[:] = new
    elif change == "append-pop":            # the same list of arrays in the end
        reg.coefs_.append(reg.coefs_.pop(0))
        reg.coefs_.append(reg.coefs_.pop(0))
        new = [c.copy() for c in reg.coefs_]
    elif change == "sort":
        reg.coefs_.sort(key=lambda c: c.shape[0])      # (3, 1) first: the wrong shapes
        with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(4, 3\)"):
            reg.predict(X)
        return
    elif change == "iadd":
        reg.coefs_ += []
        reg.coefs_[0] = new[0]
        reg.coefs_[1] = new[1]
    else:
        reg.coefs_ = list(new)
    reg.predict(X)
    for layer, values in zip(reg.network.layers, new):
        np.testing.assert_array_equal(layer.weights, values)
    assert reg.coefs_[0] is reg.network.layers[0].weights
