"""fastwb.sklearn: scikit-learn's estimator checks, and the behaviour of a drop-in
for sklearn.neural_network's MLPClassifier and MLPRegressor, compared with them."""
import doctest
import inspect
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import scipy.sparse
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastwb
import fastwb.sklearn
from fastwb.sklearn import MLPClassifier, MLPRegressor
from fastwb.testing import estimator_data as data

EXTRAS = {MLPClassifier: {"dtype", "dropout", "class_weight", "optimizer", "n_threads",
                          "callbacks", "scoring"},
          MLPRegressor: {"dtype", "dropout", "optimizer", "n_threads", "callbacks", "scoring",
                         "huber_delta"}}
SKLEARN = {MLPClassifier: sk.MLPClassifier, MLPRegressor: sk.MLPRegressor}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --- scikit-learn's own checks ------------------------------------------------------------

def expected_failed_checks(estimator):
    if estimator.dtype == "float32":
        reason = ("float32 (fastwb's default dtype) rounds weighted sums differently from "
                  "repeated samples by ~1e-7, the check's rtol; the float64 estimators pass it "
                  "(the same checks in float64)")
        return {"check_sample_weight_equivalence_on_dense_data": reason,
                "check_sample_weight_equivalence_on_sparse_data": reason}
    return {}


# The settings scikit-learn's own test suite gives its MLPs for these checks, in
# fastwb's default float32 and in scikit-learn's float64.
@parametrize_with_checks([Estimator(max_iter=100, dtype=dtype)
                          for dtype in ("float32", "float64")
                          for Estimator in (MLPClassifier, MLPRegressor)],
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- data ----------------------------------------------------------------------------

def estimators(kind: str, **params):
    """fastwb's (float64) and scikit-learn's estimator for the kind of data."""
    ours, theirs = (MLPRegressor, sk.MLPRegressor) if kind.startswith("reg") else \
        (MLPClassifier, sk.MLPClassifier)
    return ours(dtype="float64", **params), theirs(**params)


def sklearn_packed(est) -> np.ndarray:
    """A fastwb estimator's parameters in scikit-learn's packing (coefs, then intercepts)."""
    return np.hstack([c.ravel() for c in est.coefs_] + [b.ravel() for b in est.intercepts_])


def fastwb_packed(coefs, intercepts) -> np.ndarray:
    """Parameters in fastwb's layout (W then b, layer by layer)."""
    return np.hstack([part.ravel() for W, b in zip(coefs, intercepts) for part in (W, b)])


def quietly(fit, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(*args, **kwargs)


KINDS = ["binary", "multiclass", "multilabel", "reg1", "reg3"]


# --- parameters ------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_parameters_are_sklearns_plus_documented_extras(Estimator):
    ours = inspect.signature(Estimator).parameters
    theirs = inspect.signature(SKLEARN[Estimator]).parameters
    assert list(ours)[:len(theirs)] == list(theirs)
    for name, parameter in theirs.items():
        assert ours[name].default == parameter.default, name
        assert ours[name].kind == parameter.kind, name
    assert set(ours) - set(theirs) == EXTRAS[Estimator]
    params = Estimator().get_params()
    assert set(params) == set(ours)
    assert {k: v for k, v in params.items() if k in theirs} == SKLEARN[Estimator]().get_params()
    assert all(f"``{extra}``" in fastwb.sklearn.__doc__ for extra in EXTRAS[Estimator])


# --- fitted attributes -------------------------------------------------------------------

def public_fitted(est) -> set:
    return {name for name in vars(est) if name.endswith("_") and not name.startswith("_")}


@pytest.mark.parametrize("kind", ["multiclass", "reg3"])
@pytest.mark.parametrize("solver, early_stopping", [("adam", False), ("sgd", False),
                                                    ("adam", True), ("lbfgs", False)])
def test_fitted_attributes_as_sklearns(kind, solver, early_stopping):
    X, y = data(kind)
    ours, theirs = estimators(kind, hidden_layer_sizes=(5, 4), solver=solver, max_iter=4,
                              early_stopping=early_stopping, random_state=0)
    quietly(ours.fit, X, y)
    quietly(theirs.fit, X, y)
    assert public_fitted(ours) == public_fitted(theirs)
    for name in public_fitted(theirs):
        a, b = getattr(ours, name), getattr(theirs, name)
        if isinstance(b, list) and b and isinstance(b[0], np.ndarray):
            assert [x.shape for x in a] == [x.shape for x in b], name
            assert all(isinstance(x, np.ndarray) for x in a)
        elif isinstance(b, np.ndarray):
            assert a.shape == b.shape and a.dtype == b.dtype, name
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b), name
        elif isinstance(b, (int, np.integer)) and not isinstance(b, bool):
            assert isinstance(a, (int, np.integer)) and a == b, name
        elif b is None:
            assert a is None, name
        elif isinstance(b, str):
            assert a == b, name
        else:
            assert isinstance(a, float), name
    if solver == "lbfgs":
        for name in ("loss_curve_", "best_loss_", "validation_scores_",
                     "best_validation_score_"):
            assert not hasattr(ours, name)
    # the layers' weights and biases are views into the network's parameters
    for array in ours.coefs_ + ours.intercepts_:
        assert np.shares_memory(array, ours.network.parameters)


def test_same_random_state_same_initial_weights_as_sklearn():
    X, y = data("multiclass")
    for activation in ("relu", "logistic"):
        ours, theirs = estimators("multiclass", hidden_layer_sizes=(6, 5), solver="sgd",
                                  learning_rate_init=1e-300, max_iter=1, random_state=3,
                                  activation=activation)
        quietly(ours.fit, X, y)
        quietly(theirs.fit, X, y)
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_array_equal(a, b)


# --- training as scikit-learn trains -----------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_size", ["auto", 20])
def test_sgd_follows_sklearn(kind, batch_size):
    """Same initial weights, samples in order: the same updates, loss_ and loss_curve_."""
    X, y = data(kind)
    params = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=0.05, alpha=1e-3,
                  max_iter=6, shuffle=False, random_state=0, batch_size=batch_size)
    ours, theirs = estimators(kind, **params)
    quietly(ours.fit, X, y)
    quietly(theirs.fit, X, y)
    # the penalty of a multi-output regressor's loss_ is interpolated within an epoch
    rtol = 1e-5 if kind == "reg3" and batch_size != "auto" else 1e-10
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.loss_ == ours.loss_curve_[-1]
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_)


@pytest.mark.parametrize("kind", KINDS)
def test_adam_follows_sklearn(kind):
    """Adam differs by where epsilon goes: losses agree closely."""
    X, y = data(kind)
    ours, theirs = estimators(kind, hidden_layer_sizes=(5,), learning_rate_init=0.01,
                              alpha=1e-3, max_iter=8, shuffle=False, random_state=0,
                              batch_size=20)
    quietly(ours.fit, X, y)
    quietly(theirs.fit, X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=2e-4)
    np.testing.assert_allclose(ours.predict(X) if kind.startswith("reg") else
                               ours.predict_proba(X),
                               theirs.predict(X) if kind.startswith("reg") else
                               theirs.predict_proba(X), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("learning_rate", ["invscaling", "adaptive"])
def test_sgd_learning_rate_schedules_follow_sklearn(learning_rate):
    X, y = data("multiclass")
    # tol=10: every epoch counts as no improvement, so "adaptive" divides the rate
    # by 5 every 3 epochs until it is below 1e-6, then stops
    params = dict(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, shuffle=False,
                  learning_rate=learning_rate, learning_rate_init=0.2, power_t=0.3,
                  tol=10.0 if learning_rate == "adaptive" else 1e-4, n_iter_no_change=2,
                  max_iter=40, random_state=0, batch_size=20)
    ours, theirs = estimators("multiclass", **params)
    quietly(ours.fit, X, y)
    quietly(theirs.fit, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    if learning_rate == "adaptive":
        assert ours.n_iter_ < 40
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def lbfgs_pair(kind, alpha, sample_weight):
    X, y = data(kind, n=30)
    ours, theirs = estimators(kind, hidden_layer_sizes=(4, 3), solver="lbfgs", max_iter=1,
                              alpha=alpha, random_state=1, activation="tanh")
    quietly(ours.fit, X, y, sample_weight=sample_weight)
    quietly(theirs.fit, X, y, sample_weight=sample_weight)
    return X, y, ours, theirs


@pytest.mark.parametrize("kind", KINDS)
def test_lbfgs_loss_and_gradient_are_sklearns(kind):
    """fastwb's lbfgs objective at the same parameters: scikit-learn's loss and gradient
    (for several regression targets, the loss that gradient belongs to: summed over
    the outputs, where scikit-learn averages)."""
    alpha = 0.05
    sample_weight = np.random.RandomState(5).randint(0, 4, size=30).astype(float)
    X, y, ours, theirs = lbfgs_pair(kind, alpha, sample_weight)
    packed = np.random.RandomState(2).uniform(-1, 1, size=ours.network.n_parameters)
    coefs, intercepts, start = [], [], 0
    for W in theirs.coefs_:
        coefs.append(packed[start:start + W.size].reshape(W.shape))
        start += W.size
    for b in theirs.intercepts_:
        intercepts.append(packed[start:start + b.size])
        start += b.size

    if kind.startswith("reg"):
        targets = y.reshape(len(y), -1)
    else:
        targets = theirs._label_binarizer.transform(y).astype(float)
    n_layers = theirs.n_layers_
    their_loss, their_gradient = theirs._loss_grad_lbfgs(
        packed, X, targets, sample_weight, [X] + [None] * (n_layers - 1),
        [None] * (n_layers - 1), [np.empty_like(W) for W in coefs],
        [np.empty_like(b) for b in intercepts])

    X_checked, our_targets, _ = ours._validate_input(X, y, incremental=False, reset=False)
    objective = ours._lbfgs_objective(alpha, X_checked, our_targets, sample_weight)
    our_loss, our_gradient = objective(fastwb_packed(coefs, intercepts))
    gradient_coefs, gradient_intercepts, start = [], [], 0
    for W, b in zip(coefs, intercepts):
        gradient_coefs.append(our_gradient[start:start + W.size])
        gradient_intercepts.append(our_gradient[start + W.size:start + W.size + b.size])
        start += W.size + b.size
    np.testing.assert_allclose(np.hstack(gradient_coefs + gradient_intercepts),
                               their_gradient, rtol=1e-10, atol=1e-13)
    if kind == "reg3":
        penalty = 0.5 * alpha * sum(np.sum(W ** 2) for W in coefs) / sample_weight.sum()
        their_loss = 3 * (their_loss - penalty) + penalty
    np.testing.assert_allclose(our_loss, their_loss, rtol=1e-9)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "reg1"])
def test_lbfgs_follows_sklearn(kind):
    X, y = data(kind, n=40)
    sample_weight = np.random.RandomState(1).uniform(0.5, 2, size=40)
    ours, theirs = estimators(kind, hidden_layer_sizes=(5,), solver="lbfgs", max_iter=15,
                              alpha=1e-2, random_state=0)
    quietly(ours.fit, X, y, sample_weight=sample_weight)
    quietly(theirs.fit, X, y, sample_weight=sample_weight)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    np.testing.assert_allclose(sklearn_packed(ours),
                               np.hstack([c.ravel() for c in theirs.coefs_ + theirs.intercepts_]),
                               rtol=1e-4, atol=1e-6)


def test_lbfgs_multioutput_reports_sklearns_loss():
    X, y = data("reg3", n=40)
    ours, theirs = estimators("reg3", hidden_layer_sizes=(5,), solver="lbfgs", max_iter=20,
                              alpha=1e-2, random_state=0)
    quietly(ours.fit, X, y)
    quietly(theirs.fit, X[:2], y[:2])             # for the attributes _loss_grad_lbfgs needs
    packed = sklearn_packed(ours)
    loss, _ = theirs._loss_grad_lbfgs(packed, X, y, None, [X, None, None], [None, None],
                                      [np.empty_like(W) for W in ours.coefs_],
                                      [np.empty_like(b) for b in ours.intercepts_])
    np.testing.assert_allclose(ours.loss_, loss, rtol=1e-9)
    assert r2_score(y, ours.predict(X)) > 0.9


# --- convergence and early stopping ------------------------------------------------------

@pytest.mark.parametrize("kind", ["multiclass", "binary", "reg1"])
def test_early_stopping_follows_sklearn_and_restores_best_weights(kind):
    """The same hold-out (stratified for binary targets only, as scikit-learn's), the
    same validation scores, the best weights restored."""
    X, y = data(kind, n=120)
    sample_weight = np.random.RandomState(3).uniform(0.5, 2.0, size=120)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.3,
                  early_stopping=True, validation_fraction=0.25, n_iter_no_change=3,
                  shuffle=False, max_iter=60, random_state=0)
    ours, theirs = estimators(kind, **params)
    quietly(ours.fit, X, y, sample_weight=sample_weight)
    quietly(theirs.fit, X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=1e-9)
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.best_loss_ is None
    assert ours.n_iter_ == theirs.n_iter_ == len(ours.validation_scores_)
    if kind == "multiclass":
        assert ours.n_iter_ < 60 and np.argmax(ours.validation_scores_) < ours.n_iter_ - 1
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_early_stopping_regressor_scores_r2():
    X, y = data("reg1", n=100)
    reg = quietly(MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=30,
                               learning_rate_init=0.01, random_state=0).fit, X, y)
    assert len(reg.validation_scores_) == reg.n_iter_
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    assert -1 < reg.best_validation_score_ <= 1


def test_n_iter_no_change_and_tol_stop_training():
    X, y = data("binary")
    params = dict(hidden_layer_sizes=(4,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier(tol=1.0, n_iter_no_change=3, **params).fit(X, y)
        theirs = sk.MLPClassifier(tol=1.0, n_iter_no_change=3, **params).fit(X, y)
    # the first epoch improves on inf; the next 4 do not improve by tol: 4 > 3 stops
    assert clf.n_iter_ == theirs.n_iter_ == 5
    assert clf.best_loss_ == min(clf.loss_curve_)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf = MLPClassifier(tol=1.0, n_iter_no_change=np.inf, **params).fit(X, y)
    assert clf.n_iter_ == 50 == len(clf.loss_curve_)
    assert clf.t_ == 50 * len(X)


# --- continuing training -------------------------------------------------------------------

def test_warm_start_continues_as_sklearns():
    X, y = data("multiclass")
    params = dict(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, shuffle=False,
                  max_iter=3, warm_start=True, random_state=0, learning_rate_init=0.1)
    ours, theirs = estimators("multiclass", **params)
    for _ in range(2):
        quietly(ours.fit, X, y)
        quietly(theirs.fit, X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert len(ours.loss_curve_) == 6 and ours.t_ == 6 * len(X) and ours.n_iter_ == 3

    cold = quietly(clone(ours).set_params(warm_start=False, max_iter=3).fit, X, y)
    np.testing.assert_allclose(cold.loss_curve_, ours.loss_curve_[:3])
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        ours.fit(X, np.where(y == 2, 1, y))
    with pytest.raises(ValueError, match="layer sizes"):
        ours.set_params(hidden_layer_sizes=(6,)).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        ours.set_params(hidden_layer_sizes=(5,), dropout=0.5).fit(X, y)


def test_warm_start_after_lbfgs_and_with_early_stopping_switched():
    X, y = data("binary")
    clf = quietly(MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=5,
                                warm_start=True, random_state=0).fit, X, y)
    quietly(clf.set_params(solver="adam").fit, X, y)
    assert len(clf.loss_curve_) == clf.n_iter_
    quietly(clf.set_params(early_stopping=True).fit, X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    quietly(clf.set_params(early_stopping=False).fit, X, y)


def test_partial_fit_classifier():
    X, y = data("strings")
    clf = MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, shuffle=False,
                        random_state=0, dtype="float64")
    theirs = sk.MLPClassifier(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0,
                              shuffle=False, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    classes = np.array(["cat", "dog", "emu"])
    for model in (clf, theirs):
        model.partial_fit(X[:30], y[:30], classes=classes)
        model.partial_fit(X[30:], y[30:])
        model.partial_fit(X, y)
    np.testing.assert_array_equal(clf.classes_, classes)
    assert clf.n_iter_ == theirs.n_iter_ == 1 and clf.t_ == theirs.t_ == 2 * len(X)
    np.testing.assert_allclose(clf.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(clf.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X[:3], ["cat", "dog", "fox"])
    with pytest.raises(ValueError, match="is not the same as on last call"):
        clf.partial_fit(X, y, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="early_stopping"):
        clf.set_params(early_stopping=True).partial_fit(X, y)


def test_partial_fit_regressor_and_one_class_per_call():
    X, y = data("reg1")
    reg = MLPRegressor(hidden_layer_sizes=(5,), random_state=0)
    losses = [reg.partial_fit(X, y).loss_ for _ in range(5)]
    assert losses[-1] < losses[0] and reg.n_iter_ == 1 and reg.t_ == 5 * len(X)
    clf = MLPClassifier(hidden_layer_sizes=(5,), random_state=0)
    clf.partial_fit(X[:5], np.zeros(5, int), classes=[0, 1])        # y may hold one class
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_no_partial_fit_for_lbfgs_in_the_classifier():
    # scikit-learn's regressor has one, a whole lbfgs fit (test_sklearn_parity's table)
    assert hasattr(sk.MLPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert not hasattr(sk.MLPClassifier(solver="lbfgs"), "partial_fit")
    est = MLPClassifier(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
        getattr(est, "partial_fit")
    assert "partial_fit is only available for stochastic" in str(error.value.__cause__)
    assert hasattr(est.set_params(solver="sgd"), "partial_fit")


# --- targets -------------------------------------------------------------------------

def test_multilabel_as_sklearn():
    X, y = data("multilabel")
    ours, theirs = estimators("multilabel", hidden_layer_sizes=(6,), max_iter=30,
                              random_state=0)
    quietly(ours.fit, X, y)
    quietly(theirs.fit, X, y)
    np.testing.assert_array_equal(ours.classes_, [0, 1, 2])
    assert ours.out_activation_ == "logistic" and ours.n_outputs_ == 3
    predicted, expected = ours.predict(X), theirs.predict(X)
    assert predicted.shape == expected.shape == y.shape and predicted.dtype == expected.dtype
    probabilities = ours.predict_proba(X)
    assert probabilities.shape == y.shape and ((0 < probabilities) & (probabilities < 1)).all()
    np.testing.assert_array_equal(predicted, probabilities > 0.5)
    assert ours.score(X, y) == accuracy_score(y, predicted)


def test_multioutput_regression():
    X, y = data("reg3")
    reg = quietly(MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=200,
                               random_state=0).fit, X, y)
    assert reg.predict(X).shape == y.shape and reg.n_outputs_ == 3
    assert reg.out_activation_ == "identity"
    assert reg.score(X, y) == pytest.approx(r2_score(y, reg.predict(X)))
    assert reg.score(X, y) > 0.9
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        one = quietly(MLPRegressor(hidden_layer_sizes=(4,), max_iter=2).fit, X, y[:, :1])
    assert one.predict(X).shape == (len(X),)           # (n, 1) targets predict (n,)


@pytest.mark.parametrize("kind", ["binary", "strings"])
def test_class_labels_of_any_kind(kind):
    X, y = data(kind)
    y = np.where(y == y[0], "yes", "no") if kind == "binary" else y
    clf = quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, learning_rate_init=0.05,
                                random_state=0).fit, X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    assert set(clf.predict(X)) <= set(y)
    assert clf.out_activation_ == ("logistic" if kind == "binary" else "softmax")
    assert clf.n_outputs_ == (1 if kind == "binary" else 3)
    probabilities = clf.predict_proba(X)
    assert probabilities.shape == (len(X), len(clf.classes_))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[probabilities.argmax(axis=1)])
    # from the logits: finite where a float32 probability rounds to 0
    log_probabilities = clf.predict_log_proba(X)
    assert np.isfinite(log_probabilities).all()
    np.testing.assert_allclose(np.exp(log_probabilities), probabilities, rtol=0, atol=1e-6)
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X)) > 0.7


# --- weights -------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator, kind", [(MLPClassifier, "multiclass"),
                                             (MLPRegressor, "reg1")])
def test_sample_weight_zero_drops_and_integer_repeats(Estimator, kind):
    """With float32 (the default): equal within float32 rounding."""
    X, y = data(kind, n=40)
    weights = np.random.RandomState(0).randint(0, 4, size=40)
    params = dict(hidden_layer_sizes=(6,), max_iter=20, random_state=0)
    output = "predict_proba" if Estimator is MLPClassifier else "predict"
    weighted = quietly(Estimator(**params).fit, X, y, sample_weight=weights)
    repeated = quietly(Estimator(**params).fit, np.repeat(X, weights, axis=0),
                       np.repeat(y, weights))
    np.testing.assert_allclose(getattr(weighted, output)(X), getattr(repeated, output)(X),
                               rtol=1e-4, atol=1e-5)
    kept = weights > 0
    dropped = quietly(Estimator(**params).fit, X[kept], y[kept], sample_weight=weights[kept])
    np.testing.assert_allclose(getattr(weighted, output)(X), getattr(dropped, output)(X),
                               rtol=1e-4, atol=1e-5)
    unweighted = quietly(Estimator(**params).fit, X, y)
    assert not np.allclose(getattr(weighted, output)(X), getattr(unweighted, output)(X),
                           rtol=1e-3)


def test_bad_sample_weight():
    X, y = data("binary")
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(max_iter=1).fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="nonnegative"):
        MLPClassifier(max_iter=1).fit(X, y, sample_weight=-np.ones(len(y)))
    # scikit-learn >= 1.8 refuses all-zero weights itself ("non-zero"); before, fastwb does
    with pytest.raises(ValueError, match="non-zero|every sample has weight 0"):
        MLPClassifier(max_iter=1).fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="weight 0"):
        MLPClassifier(max_iter=1, class_weight={0: 0.0, 1: 0.0}).fit(X, y)


@pytest.mark.parametrize("class_weight", ["balanced", {"cat": 3.0, "emu": 0.5}])
def test_class_weight_is_sample_weight_per_class(class_weight):
    X, y = data("strings")
    params = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0, dtype="float64")
    weighted = quietly(MLPClassifier(class_weight=class_weight, **params).fit, X, y)
    by_sample = quietly(MLPClassifier(**params).fit, X, y,
                        sample_weight=compute_sample_weight(class_weight, y))
    plain = quietly(MLPClassifier(**params).fit, X, y)
    np.testing.assert_allclose(weighted.predict_proba(X), by_sample.predict_proba(X),
                               rtol=1e-12)
    assert not np.allclose(weighted.predict_proba(X), plain.predict_proba(X))
    # and it multiplies sample_weight
    both = quietly(MLPClassifier(class_weight=class_weight, **params).fit, X, y,
                   sample_weight=np.full(len(y), 2.0))
    np.testing.assert_allclose(both.predict_proba(X), weighted.predict_proba(X), rtol=1e-6)


def test_class_weight_errors():
    X, y = data("multilabel")
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="balanced", max_iter=1).fit(X, y)
    X, y = data("binary")
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="often", max_iter=1).fit(X, y)


# --- fastwb's extras -----------------------------------------------------------------

def test_dropout():
    X, y = data("multiclass")
    params = dict(hidden_layer_sizes=(16, 8), max_iter=20, random_state=0)
    plain = quietly(MLPClassifier(**params).fit, X, y)
    dropped = quietly(MLPClassifier(dropout=0.3, **params).fit, X, y)
    per_layer = quietly(MLPClassifier(dropout=[0.3, 0.0], **params).fit, X, y)
    assert dropped.network.dropout == (0.3, 0.3, 0.0)
    assert per_layer.network.dropout == (0.3, 0.0, 0.0)
    assert not np.allclose(plain.coefs_[0], dropped.coefs_[0])
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))
    again = quietly(MLPClassifier(dropout=0.3, **params).fit, X, y)
    np.testing.assert_array_equal(again.coefs_[0], dropped.coefs_[0])    # seeded masks
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        MLPClassifier(solver="lbfgs", dropout=0.2).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(dropout=1.5, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(dropout=[0.1, 0.2, 0.3], max_iter=1, **{
            k: v for k, v in params.items() if k != "max_iter"}).fit(X, y)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw", "rmsprop", "adagrad"])
def test_every_optimizer_trains(optimizer):
    X, y = data("multiclass")
    clf = quietly(MLPClassifier(hidden_layer_sizes=(8,), optimizer=optimizer, max_iter=15,
                                learning_rate_init=0.01, random_state=0).fit, X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert type(clf.network.optimizer).__name__.lower() == optimizer
    if optimizer != "adam":
        adam = quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=15,
                                     learning_rate_init=0.01, random_state=0).fit, X, y)
        assert not np.allclose(clf.loss_curve_, adam.loss_curve_)
    # an extra optimizer with solver="lbfgs" trains stochastically, with partial_fit
    reg = MLPRegressor(solver="lbfgs", optimizer=optimizer, hidden_layer_sizes=(4,))
    assert hasattr(reg, "partial_fit")


def test_dtype():
    X, y = data("binary")
    for dtype, X_in, expected in [("float32", X, np.float32), ("float64", X, np.float64),
                                  (None, X, np.float64), (None, X.astype(np.float32),
                                                          np.float32),
                                  (None, (X * 10).astype(int), np.float64), (np.float64, X,
                                                                             np.float64)]:
        clf = quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, dtype=dtype).fit,
                      X_in, y)
        assert clf.network.dtype == expected
        assert all(c.dtype == expected for c in clf.coefs_ + clf.intercepts_)
        assert clf.predict_proba(X_in).dtype == expected
    # float32 is float64 within float32 rounding
    params = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    single = quietly(MLPClassifier(dtype="float32", **params).fit, X, y)
    double = quietly(MLPClassifier(dtype="float64", **params).fit, X, y)
    np.testing.assert_allclose(single.predict_proba(X), double.predict_proba(X), atol=1e-5)


def test_n_threads_give_identical_results():
    X, y = data("multiclass", n=200, n_features=20)
    fits = [quietly(MLPClassifier(hidden_layer_sizes=(64,), max_iter=3, random_state=0,
                                  n_threads=n).fit, X, y) for n in (1, 2)]
    assert fits[0].network.n_threads == 1 and fits[1].network.n_threads == 2
    np.testing.assert_array_equal(fits[0].network.parameters, fits[1].network.parameters)


# --- input ---------------------------------------------------------------------------

def test_dataframe_sets_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = data("binary")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit, frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(frame.rename(columns={"a": "z"}))
    assert not hasattr(quietly(clf.fit, X, y), "feature_names_in_")


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "reg1", "reg3"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_arrays_skip_validate_data_with_the_same_results(kind, dtype, monkeypatch):
    X, y = data(kind)
    Estimator = MLPRegressor if kind.startswith("reg") else MLPClassifier
    est = quietly(Estimator(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                            dtype=dtype).fit, X, y)
    methods = [est.predict] + ([est.predict_proba] if Estimator is MLPClassifier else [])
    inputs = [part for whole in (X, X.astype(np.float32), np.asfortranarray(X))
              for part in (whole, whole[1:2])]
    # the same values as lists, which go through validate_data
    expected = [[method(part.tolist()) for method in methods] for part in inputs]
    monkeypatch.setattr(fastwb.sklearn, "validate_data", None)
    for part, values in zip(inputs, expected):
        for method, value in zip(methods, values):
            np.testing.assert_array_equal(method(part), value)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_float_arrays_get_sklearns_errors_and_warnings(Estimator):
    X, y = data("binary")
    with pytest.raises(ValueError, match="not fitted"):
        Estimator().predict(X[:1])
    est = quietly(Estimator(hidden_layer_sizes=(3,), max_iter=1).fit, X, y)
    for value, match in ((np.nan, "Input X contains NaN"),
                         (np.inf, "Input X contains infinity")):
        row = X[:1].copy()
        row[0, 2] = value
        for bad in (row, row.astype(np.float32)):
            with pytest.raises(ValueError, match=match):
                est.predict(bad)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4"):
        est.predict(X[:1, :3])
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(X[:0])
    huge = X[:1] * 1e300            # finite, but not in the float32 network
    with pytest.raises(ValueError, match="NaN or infinite") as fast, \
            pytest.warns(RuntimeWarning, match="overflow"):
        est.predict(huge)
    with pytest.raises(ValueError, match="NaN or infinite") as checked, \
            pytest.warns(RuntimeWarning, match="overflow"):
        est.predict(huge.tolist())
    assert str(fast.value) == str(checked.value)
    pd = pytest.importorskip("pandas")
    named = quietly(Estimator(hidden_layer_sizes=(3,), max_iter=1).fit,
                    pd.DataFrame(X, columns=list("abcd")), y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        named.predict(X[:1])


@pytest.mark.parametrize("Estimator, kind", [(MLPClassifier, "multiclass"),
                                             (MLPRegressor, "reg1")])
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sparse_input_is_dense_input(Estimator, kind, dtype, rtol, solver):
    """Sparse X (kept sparse: its own first-layer kernels) trains as the same values
    dense, to rounding: the sums of the first layer run in another order than BLAS's."""
    X, y = data(kind)
    X[X < 0.5] = 0
    params = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0, dtype=dtype,
                  solver=solver)
    dense = quietly(Estimator(**params).fit, X, y)
    for sparse in (scipy.sparse.csr_matrix(X), scipy.sparse.csc_array(X),
                   scipy.sparse.coo_matrix(X)):
        fitted = quietly(Estimator(**params).fit, sparse, y)
        np.testing.assert_allclose(fitted.network.parameters, dense.network.parameters,
                                   rtol=rtol, atol=rtol)
        np.testing.assert_allclose(fitted.predict(sparse), dense.predict(X), rtol=rtol,
                                   atol=rtol)
        assert fitted.n_iter_ == dense.n_iter_
        np.testing.assert_allclose(fitted.loss_curve_ if solver != "lbfgs" else fitted.loss_,
                                   dense.loss_curve_ if solver != "lbfgs" else dense.loss_,
                                   rtol=rtol)


BAD_PARAMETERS = [
    ("hidden_layer_sizes", 0), ("hidden_layer_sizes", "ten"), ("hidden_layer_sizes", (4, 2.5)),
    ("activation", "sine"), ("activation", ["relu", "relu"]), ("activation", ["sigmoid"]),
    ("solver", "newton"), ("alpha", -1.0), ("batch_size", 0),
    ("batch_size", "all"), ("learning_rate", "fast"), ("learning_rate_init", 0.0),
    ("power_t", -0.5), ("max_iter", 0), ("shuffle", "yes"), ("random_state", "seed"),
    ("tol", -1.0), ("verbose", -1), ("warm_start", 1), ("momentum", 1.5),
    ("nesterovs_momentum", None), ("early_stopping", "no"), ("validation_fraction", 1.0),
    ("beta_1", 1.0), ("beta_2", -0.1), ("epsilon", 0.0), ("n_iter_no_change", 0),
    ("max_fun", 0), ("dtype", "int32"), ("dtype", "float16"), ("dropout", 1.0),
    ("dropout", "some"), ("optimizer", "lion"), ("n_threads", 0), ("n_threads", "many"),
    ("callbacks", 3), ("callbacks", [print, "later"])]


@pytest.mark.parametrize("name, value", BAD_PARAMETERS)
def test_bad_parameters_are_named(name, value):
    X, y = data("binary")
    with pytest.raises((ValueError, TypeError), match=name):
        MLPClassifier(max_iter=1, **{name: value}).fit(X, y)
    with pytest.raises((ValueError, TypeError), match=name):
        MLPRegressor(max_iter=1, **{name: value}).fit(X, y.astype(float))


def test_bad_loss_and_sgd_momentum_of_one():
    X, y = data("reg1")
    with pytest.raises(ValueError, match="'loss'"):
        MLPRegressor(loss="hinge").fit(X, y)
    with pytest.raises(ValueError, match="momentum"):
        MLPRegressor(solver="sgd", momentum=1.0).fit(X, y)
    quietly(MLPRegressor(solver="adam", momentum=1.0, max_iter=1).fit, X, y)


def test_nan_and_wrong_shapes_are_refused():
    X, y = data("binary")
    bad = X.copy()
    bad[3, 1] = np.nan
    for Estimator in (MLPClassifier, MLPRegressor):
        with pytest.raises(ValueError, match="NaN"):
            Estimator(max_iter=1).fit(bad, y)
        fitted = quietly(Estimator(hidden_layer_sizes=(3,), max_iter=1).fit, X, y)
        with pytest.raises(ValueError, match="NaN"):
            fitted.predict(bad)
        with pytest.raises(ValueError, match="features"):
            fitted.predict(X[:, :3])
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            Estimator(max_iter=1).fit(X, y[:-1])
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(max_iter=1).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="not fitted"):
        MLPClassifier().predict(X)


def test_no_hidden_layer_and_an_int_hidden_layer_size():
    X, y = data("binary")
    linear = quietly(MLPClassifier(hidden_layer_sizes=(), solver="lbfgs").fit, X, y)
    assert linear.n_layers_ == 2 and linear.coefs_[0].shape == (4, 1)
    one = quietly(MLPClassifier(hidden_layer_sizes=7, max_iter=2).fit, X, y)
    assert one.coefs_[0].shape == (4, 7)


def test_verbose_prints_sklearns_lines(capsys):
    X, y = data("binary")
    quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, verbose=True,
                          early_stopping=True).fit, X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out


# --- scikit-learn's machinery --------------------------------------------------------

def test_pipeline_and_cross_val_score():
    X, y = data("multiclass", n=90)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=60,
                                                         learning_rate_init=0.05,
                                                         random_state=0))
    quietly(pipe.fit, X, y)
    assert pipe.score(X, y) > 0.8
    scores = quietly(cross_val_score, pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6
    X, y = data("reg1", n=90)
    scores = quietly(cross_val_score, MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs",
                                                   random_state=0), X, y, cv=3)
    assert scores.mean() > 0.8


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search(n_jobs):
    X, y = data("binary", n=60)
    search = GridSearchCV(MLPClassifier(max_iter=20, random_state=0),
                          {"hidden_layer_sizes": [(3,), (6,)], "alpha": [1e-4, 1e-1]},
                          cv=2, n_jobs=n_jobs)
    quietly(search.fit, X, y)
    assert set(search.best_params_) == {"hidden_layer_sizes", "alpha"}
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.best_estimator_.predict(X).shape == y.shape


def test_clone_is_unfitted_with_equal_parameters():
    X, y = data("multiclass")
    clf = quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, dropout=0.1,
                                class_weight="balanced", optimizer="rmsprop", dtype=None,
                                n_threads=1).fit, X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "coefs_") and not hasattr(copy, "_network")
    with pytest.raises(Exception, match="not fitted"):
        getattr(copy, "network")


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_pickle_round_trip(solver):
    X, y = data("strings")
    clf = quietly(MLPClassifier(hidden_layer_sizes=(5,), solver=solver, max_iter=5,
                                random_state=0).fit, X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(copy.predict(X), clf.predict(X))
    assert copy.loss_ == clf.loss_ and copy.n_iter_ == clf.n_iter_
    for array in copy.coefs_ + copy.intercepts_:
        assert np.shares_memory(array, copy.network.parameters)
    copy.coefs_[0][0, 0] += 1.0
    assert copy.network.layers[0].weights[0, 0] == copy.coefs_[0][0, 0]
    if solver == "adam":           # the optimizer comes along: partial_fit continues alike
        copy = pickle.loads(pickle.dumps(clf))
        assert copy._optimizer is copy.network.optimizer
        clf.partial_fit(X, y)
        copy.partial_fit(X, y)
        np.testing.assert_array_equal(copy.network.parameters, clf.network.parameters)


def test_refit_with_lbfgs_after_adam_pickles():
    X, y = data("binary")
    clf = quietly(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit, X, y)
    quietly(clf.set_params(solver="lbfgs").fit, X, y)       # a new network, no optimizer
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    quietly(copy.set_params(solver="adam").partial_fit, X, y)


@pytest.mark.parametrize("estimator", [
    MLPClassifier(hidden_layer_sizes=(5, 3), max_iter=4, random_state=0, dropout=[0.1, 0.0],
                  class_weight={"cat": 2.0}, n_iter_no_change=np.inf, optimizer="adamw"),
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=4, early_stopping=True, random_state=0,
                  dtype=None),
    MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate="invscaling",
                 max_iter=3, random_state=0)], ids=["classifier", "early_stopping", "sgd"])
def test_fastwb_save_and_load(estimator, tmp_path):
    X, y = data("strings")
    y = y if isinstance(estimator, MLPClassifier) else X[:, 0]
    quietly(estimator.fit, X, y)
    fastwb.save(estimator, tmp_path / "model.fwb")
    loaded = fastwb.load(tmp_path / "model.fwb")
    assert type(loaded) is type(estimator) and loaded.get_params() == estimator.get_params()
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    for name in public_fitted(estimator) - {"coefs_", "intercepts_"}:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(estimator, name))
    if not estimator.early_stopping:        # the optimizer comes along
        estimator.partial_fit(X, y)
        loaded.partial_fit(X, y)
        np.testing.assert_array_equal(loaded.network.parameters, estimator.network.parameters)


def test_docstring_examples():
    result = doctest.testmod(fastwb.sklearn)
    assert result.attempted > 0 and result.failed == 0


# --- accuracy ------------------------------------------------------------------------

def test_digits_accuracy_as_sklearns():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3,
                                                        random_state=0)
    # default hyperparameters but max_iter, lowered for time alike
    ours = quietly(MLPClassifier(max_iter=30, random_state=0).fit, X_train, y_train)
    theirs = quietly(sk.MLPClassifier(max_iter=30, random_state=0).fit, X_train, y_train)
    ours_accuracy, their_accuracy = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    assert ours_accuracy > 0.93
    assert abs(ours_accuracy - their_accuracy) <= 0.015


# --- callbacks (a fastwb extra) ---------------------------------------------------

class _Recorder(fastwb.Callback):
    def __init__(self, stop_at=None):
        self.stop_at = stop_at
        self.seen = []

    def on_epoch_end(self, epoch, logs):
        self.seen.append((epoch, logs["loss"]))
        if self.stop_at is not None and len(self.seen) >= self.stop_at:
            self.network.stop_training = True


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_callbacks_see_every_epoch_and_can_stop_training(tmp_path):
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    every = _Recorder()
    calls = []
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=7, random_state=0,
                        callbacks=[every, lambda epoch, logs: calls.append(epoch)]).fit(X, y)
    assert [epoch for epoch, _ in every.seen] == list(range(1, 8)) == calls   # from 1
    assert clf.n_iter_ == 7 and len(clf.loss_curve_) == 7
    stopper = _Recorder(stop_at=3)
    stopped = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0,
                            callbacks=stopper).fit(X, y)
    assert stopped.n_iter_ == 3 and len(stopper.seen) == 3
    assert clone(stopped).get_params()["callbacks"] is not stopper    # cloned, not shared
    fastwb.save(stopped, tmp_path / "m.fwb")
    assert fastwb.load(tmp_path / "m.fwb").callbacks is None           # code is not saved
