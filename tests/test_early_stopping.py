"""Early stopping and callbacks: EarlyStopping's direction, the built-in stopper's
place after the user's callbacks, divergence under early stopping (Network.fit and
the estimators, against scikit-learn's own behaviour), the estimators' scoring and
validation set (as scikit-learn's HistGradientBoosting estimators take them), and
scikit-learn's callback protocol."""
import warnings

import numpy as np
import pytest

import fastwb
from fastwb.callbacks import higher_is_better

sk_nn = pytest.importorskip("sklearn.neural_network")
from sklearn.base import clone  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import f1_score, get_scorer, mean_absolute_error  # noqa: E402

from fastwb.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

try:
    import sklearn.callback as sk_callback
except ImportError:         # scikit-learn before 1.9
    sk_callback = None
needs_protocol = pytest.mark.skipif(sk_callback is None,
                                    reason="scikit-learn < 1.9 has no sklearn.callback")


def _blobs(n=240, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(classes, 4))
    y = rng.integers(0, classes, size=n)
    return centers[y] + rng.normal(size=(n, 4)), y


def _regression(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, X @ rng.normal(size=5) + 0.1 * rng.normal(size=n)


class F1(fastwb.Callback):
    """Adds the validation set's macro F1 to the logs, as a user's callback would."""

    def on_epoch_end(self, epoch, logs):
        X_val, y_val = self.validation_data
        predicted = np.argmax(self.network.predict(X_val), axis=1)
        logs["val_f1"] = f1_score(y_val, predicted, average="macro")


# --- EarlyStopping's direction ----------------------------------------------------------

@pytest.mark.parametrize("name, higher", [
    ("val_loss", False), ("loss", False), ("val_mse", False), ("mae", False),
    ("val_error_rate", False), ("val_accuracy", True), ("acc", True), ("val_f1", True),
    ("f1_macro", True), ("val_AUC", True), ("roc_auc", True), ("precision", True),
    ("val_recall", True), ("r2", True), ("val_score", True), ("neg_mean_squared_error", True),
    ("val_neg_log_loss", True), ("balanced_accuracy", True), ("average_precision", True),
    ("jaccard", True), ("matthews_corrcoef", True), ("ndcg", True), ("val_iou", True),
    ("explained_variance", True), ("brier_score_loss", False), ("val_dice_loss", False),
    ("mean_poisson_deviance", False), ("neg_brier_score_loss", True)])
def test_auto_mode_decides_by_the_documented_rule(name, higher):
    assert higher_is_better(name) is higher
    assert fastwb.EarlyStopping(name).mode_ == ("max" if higher else "min")


def test_explicit_modes_override_the_name_and_bad_modes_are_refused():
    assert fastwb.EarlyStopping("val_score", mode="min").mode_ == "min"
    assert fastwb.EarlyStopping("val_loss", mode="max").mode_ == "max"
    with pytest.raises(ValueError, match="mode must be"):
        fastwb.EarlyStopping("val_loss", mode="maximum")
    with pytest.raises(TypeError, match="monitor"):
        fastwb.EarlyStopping(3)


@pytest.mark.parametrize("mode", ["auto", "max"])
def test_a_rising_f1_keeps_training(mode):
    # the bug: "val_f1" was taken as lower-is-better and training stopped after
    # patience epochs with best epoch 1
    X, y = _blobs()
    net = fastwb.Network([4, 16, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    stopper = fastwb.EarlyStopping("val_f1", patience=3, min_delta=0.0, mode=mode)
    history = net.fit(X, y, fastwb.SGD(0.002), epochs=20, validation_split=0.25,
                      callbacks=[F1(), stopper])
    f1 = history["val_f1"]
    assert f1[-1] > f1[0]                        # it rises, so training goes on
    assert stopper.best_epoch == int(np.argmax(f1)) + 1 and stopper.best_epoch > 1
    assert stopper.best_value == max(f1)


def test_min_mode_on_a_rising_metric_stops_at_patience():
    X, y = _blobs()
    net = fastwb.Network([4, 16, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    stopper = fastwb.EarlyStopping("val_f1", patience=3, min_delta=0.0, mode="min")
    history = net.fit(X, y, fastwb.SGD(0.002), epochs=20, validation_split=0.25,
                      callbacks=[F1(), stopper])
    f1 = history["val_f1"]
    assert stopper.stopped and stopper.best_epoch == int(np.argmin(f1)) + 1
    assert len(history) == stopper.best_epoch + 3


# --- the built-in stopper runs after the user's callbacks (Network.fit) -----------------

def test_the_built_in_stopper_sees_a_metric_a_callback_adds():
    X, y = _blobs()
    net = fastwb.Network([4, 16, 3], loss="softmax_cross_entropy", dtype="float64", seed=0)
    parameters = []
    record = fastwb.callbacks.LambdaCallback(
        lambda epoch, logs: parameters.append(net.parameters.copy()))
    # a learning rate that overshoots: F1 peaks, then falls
    history = net.fit(X, y, fastwb.SGD(0.5, momentum=0.9), epochs=60, validation_split=0.25,
                      early_stopping=True, monitor="val_f1", patience=4, min_delta=0.0,
                      callbacks=[F1(), record])
    f1 = history["val_f1"]
    best = int(np.argmax(f1))
    assert history.stopped_early and history.best_epoch == best + 1 > 1
    assert len(history) == best + 5
    np.testing.assert_array_equal(net.parameters, parameters[best])


def test_the_built_in_stopper_decides_after_the_callbacks_see_the_epoch():
    X, y = _regression()
    seen = []
    net = fastwb.Network([5, 1], seed=0)
    history = net.fit(X, y, fastwb.SGD(0.0), epochs=10, early_stopping=True, patience=2,
                      callbacks=lambda epoch, logs: seen.append(net.stop_training))
    assert history.stopped_early and len(history) == 3
    assert seen == [False, False, False]     # the stop comes after them


def test_monitor_needs_early_stopping():
    X, y = _regression()
    with pytest.raises(ValueError, match="early_stopping=True"):
        fastwb.Network([5, 1], seed=0).fit(X, y, epochs=1, monitor="val_loss")


# --- a diverging loss under Network.fit's early stopping --------------------------------

def _blow_up_after(epoch, optimizer):
    def callback(e, logs):
        if e == epoch:
            optimizer.lr = 1e30
    return callback


def test_network_fit_divergence_ends_early_stopping_with_the_best_weights():
    X, y = _regression()
    net = fastwb.Network([5, 8, 1], dtype="float64", seed=0)
    optimizer = fastwb.SGD(0.01)
    kept = []
    callbacks = [lambda e, logs: kept.append(net.parameters.copy()),
                 _blow_up_after(3, optimizer)]
    with pytest.warns(RuntimeWarning, match="training diverged.*best epoch was 3"):
        history = net.fit(X, y, optimizer, epochs=10, early_stopping=True, patience=5,
                          validation_split=0.2, callbacks=callbacks)
    assert len(history) == 3 and history.stopped_early and history.best_epoch == 3
    np.testing.assert_array_equal(net.parameters, kept[2])


def test_network_fit_divergence_without_restoring_keeps_the_last_finite_state():
    X, y = _regression()
    net = fastwb.Network([5, 8, 1], dtype="float64", seed=0)
    optimizer = fastwb.SGD(0.01)
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = net.fit(X, y, optimizer, epochs=10, early_stopping=True,
                          restore_best_weights=False, callbacks=[_blow_up_after(2, optimizer)])
    assert len(history) == 2 and history.stopped_early
    assert np.isfinite(net.parameters).all()


def test_network_fit_divergence_raises_without_early_stopping_or_a_finished_epoch():
    X, y = _regression()
    net = fastwb.Network([5, 8, 1], dtype="float64", seed=0)
    optimizer = fastwb.SGD(0.01)
    with pytest.raises(FloatingPointError):
        net.fit(X, y, optimizer, epochs=5, callbacks=[_blow_up_after(2, optimizer)])
    with pytest.raises(FloatingPointError):         # no best epoch to go back to
        fastwb.Network([5, 8, 1], dtype="float64", seed=0).fit(
            X * 1e6, y * 1e6, fastwb.SGD(1e10), epochs=5, early_stopping=True)


# --- a diverging loss under the estimators' early stopping, as scikit-learn -------------

def _fit_recording(est, X, y, **fit_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y, **fit_params)
    return {w.category for w in caught}


def test_regressor_divergence_records_nan_and_keeps_the_best_weights_as_sklearn():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5) * 10
    y = X @ rng.randn(5) * 100
    params = dict(solver="sgd", learning_rate_init=1.0, early_stopping=True, max_iter=30,
                  random_state=0)
    ours = MLPRegressor(dtype="float64", **params)
    parameters = []
    ours.set_params(callbacks=lambda e, logs: parameters.append(ours.network.parameters.copy()))
    ours_warned = _fit_recording(ours, X, y)
    theirs = sk_nn.MLPRegressor(**params)
    theirs_warned = _fit_recording(theirs, X, y)
    # scikit-learn: NaN comparisons reset the no-improvement count, so it runs to max_iter
    assert ours.n_iter_ == theirs.n_iter_ == 30
    assert ours.t_ == theirs.t_
    for model in (ours, theirs):
        scores, losses = np.array(model.validation_scores_), np.array(model.loss_curve_)
        assert len(scores) == len(losses) == 30
        assert np.isnan(scores[-10:]).all() and np.isnan(losses[-10:]).all()
        assert model.best_validation_score_ == np.nanmax(scores[np.isfinite(scores)])
        assert np.isfinite(model.predict(X)).all()
        assert {ConvergenceWarning, RuntimeWarning} <= (ours_warned if model is ours
                                                        else theirs_warned)
    best = int(np.nanargmax(ours.validation_scores_))
    np.testing.assert_array_equal(ours.network.parameters, parameters[best])
    assert len(parameters) < 30         # the epochs after the divergence are not trained


def test_regressor_divergence_without_early_stopping_raises_as_sklearn():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5) * 10
    y = X @ rng.randn(5) * 100
    for est in (MLPRegressor(solver="sgd", learning_rate_init=1.0, max_iter=30, random_state=0),
                sk_nn.MLPRegressor(solver="sgd", learning_rate_init=1.0, max_iter=30,
                                   random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="Solver produced non-finite parameter"):
                est.fit(X, y)


def test_classifier_divergence_stops_on_the_scores_of_nan_outputs():
    # NaN outputs predict classes_[0], a finite accuracy: as in scikit-learn the count
    # of epochs without improvement then grows and stops training
    rng = np.random.RandomState(0)
    X = rng.randn(300, 4) * 1e3
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    clf = MLPClassifier(solver="sgd", learning_rate_init=1e6, momentum=0.99,
                        early_stopping=True, max_iter=100, n_iter_no_change=5,
                        random_state=0)
    warned = _fit_recording(clf, X, y)
    assert RuntimeWarning in warned and ConvergenceWarning not in warned
    assert np.isnan(clf.loss_curve_[-1])
    scores = clf.validation_scores_
    assert np.isfinite(scores).all() and clf.n_iter_ < 100
    assert clf.best_validation_score_ == max(scores[:scores.index(clf.best_validation_score_) + 1])
    assert np.isfinite(clf.network.parameters).all()


# --- the estimators: stop decision after the user's callbacks ---------------------------

def test_estimator_callbacks_see_the_epoch_before_the_stop_decision():
    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=200,
                        n_iter_no_change=2, tol=0.5, random_state=0, dtype="float64")
    seen = []

    def look(epoch, logs):
        seen.append((len(clf.validation_scores_), logs["val_score"],
                     clf.validation_scores_[-1], clf.network.stop_training))

    clf.set_params(callbacks=look).fit(X, y)
    assert clf.n_iter_ == 4 == len(seen)       # tol=0.5: no epoch after the first improves
    for i, (n_scores, logged, last, stopping) in enumerate(seen):
        assert n_scores == i + 1 and logged == last and stopping is False


def test_estimator_user_stopper_on_a_metric_a_callback_adds():
    X, y = _blobs()
    stopper = fastwb.EarlyStopping("val_f1", patience=2, min_delta=0.0)

    class ValF1(fastwb.Callback):
        def __init__(self, clf):
            self.clf = clf

        def on_epoch_end(self, epoch, logs):
            logs["val_f1"] = logs["val_score"]      # the estimator's validation accuracy

    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=200,
                        n_iter_no_change=1000, random_state=0, learning_rate_init=0.05)
    clf.set_params(callbacks=[ValF1(clf), stopper])
    clf.fit(X, y)
    assert stopper.stopped and stopper.mode_ == "max"
    assert stopper.best_value == clf.best_validation_score_
    assert clf.n_iter_ == stopper.best_epoch + 2


# --- scoring ------------------------------------------------------------------------------

def test_scoring_by_name_scores_the_validation_set():
    X, y = _blobs(seed=1)
    X_val, y_val = _blobs(seed=2)
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, scoring="f1_macro",
                        max_iter=30, random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, X_val=X_val, y_val=y_val)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    expected = f1_score(y_val, clf.predict(X_val), average="macro")
    assert clf.best_validation_score_ == pytest.approx(expected, abs=1e-12)
    # not accuracy (the default), which differs here
    assert clf.best_validation_score_ != pytest.approx(clf.score(X_val, y_val), abs=1e-12)


def test_scoring_callable_with_weights_and_a_regressor_loss_name():
    X, y = _regression(seed=1)
    X_val, y_val = _regression(seed=2)
    weights = np.random.default_rng(0).uniform(0.1, 2.0, len(y_val))
    calls = []

    def scorer(estimator, X_, y_, sample_weight=None):
        calls.append(sample_weight is weights or np.array_equal(sample_weight, weights))
        return -mean_absolute_error(y_, estimator.predict(X_), sample_weight=sample_weight)

    reg = MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, scoring=scorer,
                       max_iter=15, random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=weights)
    assert len(calls) == reg.n_iter_ and all(calls)
    assert reg.best_validation_score_ == pytest.approx(
        -mean_absolute_error(y_val, reg.predict(X_val), sample_weight=weights), abs=1e-12)
    named = clone(reg).set_params(scoring="neg_mean_absolute_error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        named.fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=weights)
    np.testing.assert_allclose(named.validation_scores_, reg.validation_scores_, rtol=1e-12)


def test_the_default_score_is_unchanged():
    X, y = _blobs()
    a = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=10,
                      random_state=0, dtype="float64")
    b = clone(a).set_params(scoring="accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, y)
        b.fit(X, y)
    assert a.validation_scores_ == pytest.approx(b.validation_scores_, abs=1e-15)


def test_scoring_with_feature_names_gives_no_feature_name_warning():
    pd = pytest.importorskip("pandas")
    X, y = _blobs()
    frame = pd.DataFrame(X, columns=list("abcd"))
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=5,
                        scoring="neg_log_loss", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(frame[:180], y[:180], X_val=frame[180:], y_val=y[180:])
    assert len(clf.validation_scores_) == 5 and all(s < 0 for s in clf.validation_scores_)


def test_bad_scoring_is_refused():
    X, y = _blobs()
    with pytest.raises(ValueError, match="scoring"):
        MLPClassifier(scoring=3, early_stopping=True, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="'scoring' parameter"):
        MLPClassifier(scoring="no_such_score", early_stopping=True, max_iter=2).fit(X, y)


def test_scorer_names_save_and_functions_do_not(tmp_path):
    X, y = _blobs()
    for scoring, saved in (("f1_macro", "f1_macro"), (get_scorer("accuracy"), None)):
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, scoring=scoring,
                            early_stopping=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        fastwb.save(clf, tmp_path / "clf.fwb")
        assert fastwb.load(tmp_path / "clf.fwb").scoring == saved


# --- a validation set given to fit, as HistGradientBoosting takes it ----------------------

def test_a_given_validation_set_replaces_the_held_out_fraction():
    X, y = _blobs()
    X_val, y_val = _blobs(seed=5)
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=8,
                        validation_fraction=0.5, random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, X_val=X_val, y_val=y_val)
    assert clf.t_ == clf.n_iter_ * len(X)           # all of X trains
    assert clf.best_validation_score_ == pytest.approx(clf.score(X_val, y_val), abs=1e-12)
    # warm_start goes on with another validation set
    clf.set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, X_val=X_val[:40], y_val=y_val[:40])
    assert len(clf.validation_scores_) == 16


@pytest.mark.parametrize("kwargs", [{"X_val": "X"}, {"y_val": "y"}])
def test_half_a_validation_set_is_refused_as_by_hist_gradient_boosting(kwargs):
    X, y = _blobs()
    given = {k: (X if v == "X" else y) for k, v in kwargs.items()}
    with pytest.raises(ValueError) as theirs:
        HistGradientBoostingClassifier(early_stopping=True).fit(X, y, **given)
    with pytest.raises(ValueError) as ours:
        MLPClassifier(early_stopping=True).fit(X, y, **given)
    assert str(ours.value) == str(theirs.value)


def test_a_validation_set_without_early_stopping_is_refused_as_by_hist_gradient_boosting():
    X, y = _blobs()
    with pytest.raises(ValueError) as theirs:
        HistGradientBoostingClassifier(early_stopping=False).fit(X, y, X_val=X, y_val=y)
    with pytest.raises(ValueError) as ours:
        MLPClassifier().fit(X, y, X_val=X, y_val=y)
    assert str(ours.value).split(".")[0] == str(theirs.value).split(".")[0]


def test_bad_validation_sets_are_refused():
    X, y = _blobs()
    clf = MLPClassifier(early_stopping=True, max_iter=2)
    with pytest.raises(ValueError, match="unseen labels"):
        clf.fit(X, y, X_val=X[:10], y_val=np.full(10, 7))
    with pytest.raises(ValueError, match="features"):
        clf.fit(X, y, X_val=X[:10, :3], y_val=y[:10])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y, X_val=X[:10], y_val=y[:9])
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X, y, X_val=X[:10], y_val=y[:10], sample_weight_val=np.ones(3))
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs", early_stopping=True).fit(X, y, X_val=X, y_val=y)
    Xr, yr = _regression()
    with pytest.raises(ValueError, match="target"):
        MLPRegressor(early_stopping=True, max_iter=2).fit(
            Xr, yr, X_val=Xr[:10], y_val=np.ones((10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        MLPRegressor(early_stopping=True, max_iter=2).fit(
            Xr, yr, X_val=Xr[:10], y_val=np.full(10, np.nan))


def test_multilabel_and_multioutput_validation_sets():
    X, y = _blobs()
    Y = np.stack([y == 0, y == 1, y == 2, y > 0], axis=1).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=4,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[:200], Y[:200], X_val=X[200:], y_val=Y[200:])
        assert len(clf.validation_scores_) == 4
        with pytest.raises(ValueError, match="indicator matrix of 4 labels"):
            clf.fit(X[:200], Y[:200], X_val=X[200:], y_val=Y[200:, :3])
    Xr, yr = _regression()
    Yr = np.stack([yr, -yr], axis=1)
    reg = MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=4,
                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(Xr[:150], Yr[:150], X_val=Xr[150:], y_val=Yr[150:])
    assert reg.best_validation_score_ == pytest.approx(reg.score(Xr[150:], Yr[150:]),
                                                       abs=1e-6)


# --- scikit-learn's callback protocol -----------------------------------------------------

@needs_protocol
@pytest.mark.parametrize("solver, task", [("adam", "epoch"), ("lbfgs", "lbfgs-iter")])
def test_scoring_monitor_logs_one_entry_per_epoch(solver, task):
    X, y = _blobs()
    monitor = sk_callback.ScoringMonitor(scoring="accuracy")
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, max_iter=12, random_state=0,
                        learning_rate_init=0.01, dtype="float64")
    accuracy = []
    if solver == "adam":
        clf.set_params(callbacks=lambda e, logs: accuracy.append(clf.score(X, y)))
    clf.set_callbacks(monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    rows = monitor.get_logs().data
    steps = [row for row in rows if row["task_name"] == task]
    assert len(steps) == clf.n_iter_
    assert [row["task_id"] for row in steps] == list(range(clf.n_iter_))
    fits = [row for row in rows if row["task_name"] == "fit"]
    assert len(fits) == 1 and fits[0]["accuracy"] == clf.score(X, y)
    if solver == "adam":        # each entry scores the weights of its epoch
        assert [row["accuracy"] for row in steps] == accuracy
    assert not hasattr(clf, "_callback_fit_ctx")    # torn down


@needs_protocol
def test_a_protocol_callback_can_stop_training():
    class StopAfterThree:
        def setup(self, estimator, context):
            pass

        def teardown(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context):
            pass

        def on_fit_task_end(self, estimator, context):
            return context.task_name == "epoch" and context.task_id == 2

    X, y = _blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    clf.set_callbacks(StopAfterThree()).fit(X, y)
    assert clf.n_iter_ == 3
    copy = clone(clf)
    assert copy._skl_callbacks == clf._skl_callbacks       # clone keeps them
    copy.partial_fit(X, y, classes=np.unique(y))
    assert copy.n_iter_ == 1
    with pytest.raises(TypeError, match="FitCallback"):
        clf.set_callbacks(object())


@needs_protocol
def test_progress_bar_runs_with_fastwb_callbacks_and_partial_fit(capsys):
    pytest.importorskip("rich")
    X, y = _regression()
    seen = []
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                       callbacks=lambda e, logs: seen.append(e))
    reg.set_callbacks(sk_callback.ProgressBar())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
        reg.partial_fit(X, y)
    assert reg.n_iter_ == 1 and len(seen) == 6
    assert not hasattr(reg, "_callback_fit_ctx")


def test_without_the_protocol_the_estimators_have_no_set_callbacks():
    X, y = _regression()
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2)
    assert hasattr(reg, "set_callbacks") is (sk_callback is not None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert not hasattr(reg, "_callback_fit_ctx")
