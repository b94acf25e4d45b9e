"""fastwb.integrations.optuna.PruningCallback with a real Optuna study (in-memory
storage, MedianPruner): reports every epoch, prunes bad trials, for Network.fit
and the estimators' callbacks."""
import sys
import warnings

import numpy as np
import pytest

import fastwb as fw
from fastwb.callbacks import Callback

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install "
                                              "\"fastwb[optuna]\")")
from fastwb.integrations.optuna import PruningCallback  # noqa: E402

EPOCHS = 8


@pytest.fixture(autouse=True)
def quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


def blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 6)) + 2.0 * np.eye(3, 6)[y]
    return X.astype(np.float32), y


class Ended(Callback):
    """Records that on_train_end ran (after a pruning callback raised there)."""

    def __init__(self):
        self.ended = False

    def on_train_end(self, logs):
        self.ended = True


def study_of(objective, lrs, direction="minimize"):
    study = optuna.create_study(direction=direction, storage=optuna.storages.InMemoryStorage(),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2,
                                                                   n_warmup_steps=1))
    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    study.optimize(objective, n_trials=len(lrs))
    return study


def test_network_fit_reports_every_epoch_and_prunes_a_bad_trial():
    X, y = blobs()
    X_val, y_val = blobs(90, seed=1)
    histories, enders = {}, {}

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-8, 1.0, log=True)
        net = fw.Network([6, 16, 3], loss="softmax_cross_entropy", seed=0)
        enders[trial.number] = Ended()
        history = net.fit(X, y, optimizer=fw.Adam(lr), epochs=EPOCHS, batch_size=32,
                          validation_data=(X_val, y_val), shuffle=False,
                          callbacks=[PruningCallback(trial), enders[trial.number]])
        histories[trial.number] = history
        return history["val_loss"][-1]

    study = study_of(objective, [0.02, 0.03, 1e-8])
    good, bad = study.trials[:2], study.trials[2]
    for trial in good:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        history = histories[trial.number]
        assert trial.intermediate_values == dict(zip(range(1, EPOCHS + 1), history["val_loss"]))
    assert bad.state == optuna.trial.TrialState.PRUNED
    assert bad.number not in histories          # fit raised TrialPruned
    steps = sorted(bad.intermediate_values)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < EPOCHS
    # the callbacks after the pruning one still ended their training
    assert all(ender.ended for ender in enders.values())


def test_pruned_fit_stops_after_the_pruned_epoch():
    X, y = blobs()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-8, 1.0, log=True)
        net = fw.Network([6, 8, 3], loss="softmax_cross_entropy", seed=0)
        optimizer = fw.Adam(lr)
        try:
            net.fit(X, y, optimizer=optimizer, epochs=EPOCHS, validation_split=0.25,
                    callbacks=PruningCallback(trial))
        finally:
            trial.set_user_attr("optimizer_epochs", optimizer.epoch)
        return 0.0

    study = study_of(objective, [0.02, 0.02, 1e-8])
    bad = study.trials[2]
    assert bad.state == optuna.trial.TrialState.PRUNED
    assert bad.user_attrs["optimizer_epochs"] == max(bad.intermediate_values) < EPOCHS


def test_mlp_classifier_callbacks_report_val_score_and_prune():
    from sklearn.exceptions import ConvergenceWarning

    from fastwb.sklearn import MLPClassifier
    X, y = blobs()
    fitted = {}

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-8, 1.0, log=True)
        clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=lr, max_iter=EPOCHS,
                            early_stopping=True, n_iter_no_change=EPOCHS, random_state=0,
                            callbacks=[PruningCallback(trial, monitor="val_score")])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)    # the short fits
            clf.fit(X, y)
        fitted[trial.number] = clf
        return clf.validation_scores_[-1]

    study = study_of(objective, [0.02, 0.03, 1e-8], direction="maximize")
    for trial in study.trials[:2]:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        clf = fitted[trial.number]
        assert list(trial.intermediate_values.values()) == clf.validation_scores_
        assert sorted(trial.intermediate_values) == list(range(1, clf.n_iter_ + 1))
    assert study.trials[2].state == optuna.trial.TrialState.PRUNED
    assert len(study.trials[2].intermediate_values) < EPOCHS


def test_a_cloned_estimators_callback_reports_to_the_same_trial():
    """scikit-learn's clone (searches, cross_val_score) deep-copies the callbacks."""
    from sklearn.base import clone

    from fastwb.sklearn import MLPClassifier
    X, y = blobs()

    def objective(trial):
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                            callbacks=[PruningCallback(trial, monitor="loss")])
        copy = clone(clf)
        assert copy.callbacks[0] is not clf.callbacks[0]
        assert copy.callbacks[0].trial is trial and copy.callbacks[0].monitor == "loss"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy.fit(X, y)
        return copy.loss_

    study = study_of(objective, [0.01])
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3]


def test_a_missing_metric_is_named_with_the_logs_keys():
    X, y = blobs(60)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    net = fw.Network([6, 4, 3], loss="softmax_cross_entropy", seed=0)
    with pytest.raises(ValueError, match=r"'val_loss'.*'loss'.*validation_data"):
        net.fit(X, y, epochs=2, callbacks=[PruningCallback(trial)])
    with pytest.raises(ValueError, match=r"'accuracy'"):
        net.fit(X, y, epochs=2, callbacks=[PruningCallback(trial, monitor="accuracy")])


def test_bad_arguments_are_refused():
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    with pytest.raises(TypeError, match="optuna trial"):
        PruningCallback(study)
    with pytest.raises(TypeError, match="monitor"):
        PruningCallback(study.ask(), monitor=None)


def test_without_optuna_the_error_says_what_to_install(monkeypatch):
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r'fastwb\[optuna\]'):
        PruningCallback(trial)


def test_a_study_in_dask_storage_runs_and_prunes_trials_on_the_workers():
    """The documented recipe: optuna-integration's DaskStorage keeps the study on
    the scheduler, and each worker runs study.optimize."""
    distributed = pytest.importorskip("distributed")
    dask_storage = pytest.importorskip(
        "optuna_integration.dask", reason='optuna-integration is not installed '
                                          '(pip install "fastwb[optuna-dask]")')
    data, validation = blobs(), blobs(90, seed=1)

    def objective_on_a_worker(trial):
        """Pruned through PruningCallback; records the worker it ran on. Nested and
        free of this module's globals, it travels by value (the workers cannot
        import this test module)."""
        import distributed
        import fastwb
        from fastwb.integrations.optuna import PruningCallback
        trial.set_user_attr("worker", distributed.get_worker().address)
        net = fastwb.Network([6, 16, 3], loss="softmax_cross_entropy", seed=0)
        lr = trial.suggest_float("lr", 1e-8, 1.0, log=True)
        history = net.fit(*data, optimizer=fastwb.Adam(lr), epochs=8, batch_size=32,
                          validation_data=validation, shuffle=False,
                          callbacks=[PruningCallback(trial)])
        return history["val_loss"][-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            study = optuna.create_study(
                storage=dask_storage.DaskStorage(client=client),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
            workers = sorted(client.scheduler_info()["workers"])

            def optimize(lrs):
                for lr in lrs:
                    study.enqueue_trial({"lr": lr})
                futures = [client.submit(study.optimize, objective_on_a_worker, n_trials=1,
                                         workers=[worker], pure=False)
                           for worker, _ in zip(workers, lrs)]
                client.gather(futures)      # raises what a worker raised

            optimize([0.02, 0.03])          # two complete trials for the median
            optimize([1e-8, 1e-8])          # then two bad ones, at once on both workers
            trials = study.get_trials()
            best = study.best_trial         # the storage lives on the scheduler
    states = [trial.state for trial in trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED] * 2
    assert sorted(trial.user_attrs["worker"] for trial in trials[2:]) == workers
    for trial in trials:
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))
        assert (len(steps) == EPOCHS) == (trial.state == optuna.trial.TrialState.COMPLETE)
    assert best.value == min(trials[0].value, trials[1].value)
