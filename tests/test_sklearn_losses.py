"""MLPRegressor's losses against scikit-learn's real estimator: "poisson" (both
sides start from the same weights; the losses, the steps and the predictions
match) and fastwb's extras "huber" and "absolute_error"."""
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.utils.estimator_checks import (check_sample_weight_equivalence_on_dense_data,
                                            parametrize_with_checks)

import fastwb
from fastwb.sklearn import InvalidParameterError, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Full-batch plain SGD: one step an epoch, the same on both sides.
FULL_BATCH_SGD = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=40, momentum=0.0,
                      learning_rate_init=0.1, shuffle=False, alpha=0.01, random_state=3)


def counts(n_outputs: int, n: int = 40, seed: int = 0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 3)
    rate = np.exp(0.5 * X[:, :1] - 0.3 * X[:, 1:2] + 0.2 * np.arange(n_outputs))
    y = rng.poisson(rate).astype(float)
    return X, (y[:, 0] if n_outputs == 1 else y), rng.uniform(0.5, 2.0, size=n)


def close(ours, theirs, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                               rtol=rtol, atol=1e-14)


# --- poisson against scikit-learn ------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_poisson_sgd_steps_are_sklearns(n_outputs, weighted):
    """From scikit-learn's initial weights, its loss before each full-batch step
    (loss_curve_, with the L2 penalty), the weights after them and the predictions."""
    X, y, w = counts(n_outputs)
    w = w if weighted else None
    theirs = sk.MLPRegressor(loss="poisson", max_iter=3, **FULL_BATCH_SGD).fit(X, y, w)
    ours = MLPRegressor(loss="poisson", max_iter=3, dtype="float64", **FULL_BATCH_SGD).fit(
        X, y, w)
    close(ours.loss_curve_, theirs.loss_curve_)
    close(ours.loss_, theirs.loss_)
    for mine, sklearns in zip(ours.coefs_ + ours.intercepts_,
                              theirs.coefs_ + theirs.intercepts_):
        close(mine, sklearns, rtol=1e-10)
    close(ours.predict(X), theirs.predict(X), rtol=1e-10)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_


def test_poisson_lbfgs_is_sklearns():
    X, y, _ = counts(2)
    settings = dict(loss="poisson", hidden_layer_sizes=(5,), solver="lbfgs", max_iter=5,
                    alpha=0.01, random_state=1)
    theirs = sk.MLPRegressor(**settings).fit(X, y)
    ours = MLPRegressor(dtype="float64", **settings).fit(X, y)
    close(ours.loss_, theirs.loss_, rtol=1e-9)
    close(ours.predict(X), theirs.predict(X), rtol=1e-8)
    assert ours.n_iter_ == theirs.n_iter_


def test_poisson_predictions_are_exp_of_the_last_layer():
    X, y, _ = counts(1, n=200)
    est = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=50,
                       random_state=0).fit(X, y)
    hidden = np.maximum(X @ est.coefs_[0] + est.intercepts_[0], 0)
    close(est.predict(X), np.exp(hidden @ est.coefs_[1] + est.intercepts_[1])[:, 0], rtol=1e-5)
    assert (est.predict(X) > 0).all()
    assert est.predict(X).shape == (200,)


def test_poisson_fits_all_zero_targets_as_sklearn_does():
    X, y, _ = counts(1)
    zeros = np.zeros_like(y)
    theirs = sk.MLPRegressor(loss="poisson", max_iter=2, **FULL_BATCH_SGD).fit(X, zeros)
    ours = MLPRegressor(loss="poisson", max_iter=2, dtype="float64", **FULL_BATCH_SGD).fit(
        X, zeros)
    close(ours.loss_curve_, theirs.loss_curve_)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_poisson_refuses_negative_targets(method):
    """A documented difference: scikit-learn trains on them and reports a NaN loss."""
    X, y, _ = counts(1)
    y[5] = -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(sk.MLPRegressor(loss="poisson", max_iter=2, **FULL_BATCH_SGD)
                        .fit(X, y).loss_)
    est = MLPRegressor(loss="poisson", **FULL_BATCH_SGD)
    with pytest.raises(ValueError, match=r"loss='poisson' requires non-negative y; the "
                                         r"minimum of y is -1\.0"):
        getattr(est, method)(X, y)
    assert not hasattr(est, "coefs_")


def test_unknown_losses_are_refused_in_sklearns_words():
    X, y, _ = counts(1)
    for Estimator in (sk.MLPRegressor, MLPRegressor):
        with pytest.raises(InvalidParameterError,
                           match=r"The 'loss' parameter of MLPRegressor must be a str among"):
            Estimator(loss="hinge").fit(X, y)


# --- fastwb's extras -----------------------------------------------------------------------

@pytest.mark.parametrize("n_outputs", [1, 3])
def test_huber_with_a_wide_delta_is_the_squared_error(n_outputs):
    """Within its delta Huber is half the squared error: the steps are scikit-learn's
    squared-error steps (its gradient sums over outputs), and loss_ is its loss summed
    over outputs (scikit-learn averages the squared error over them)."""
    X, y, w = counts(n_outputs, seed=2)
    theirs = sk.MLPRegressor(max_iter=3, **FULL_BATCH_SGD).fit(X, y, w)
    ours = MLPRegressor(loss="huber", huber_delta=1e6, max_iter=3, dtype="float64",
                        **FULL_BATCH_SGD).fit(X, y, w)
    for mine, sklearns in zip(ours.coefs_ + ours.intercepts_,
                              theirs.coefs_ + theirs.intercepts_):
        close(mine, sklearns, rtol=1e-10)
    assert ours.out_activation_ == "identity"
    # loss_ at the start: the data part summed over outputs, the penalty once
    start = MLPRegressor(loss="huber", huber_delta=1e6, max_iter=1, dtype="float64",
                         **{**FULL_BATCH_SGD, "learning_rate_init": 1e-300}).fit(X, y, w)
    residual = (start.predict(X) - y).reshape(len(y), -1)
    data = np.sum(np.average(0.5 * residual ** 2, weights=w, axis=0))
    l2 = 0.5 * 0.01 * sum(float(np.vdot(c, c)) for c in start.coefs_) / w.sum()
    close(start.loss_, data + l2, rtol=1e-10)
    close(ours.loss_curve_[0], start.loss_, rtol=1e-10)


@pytest.mark.parametrize("loss", ["huber", "absolute_error"])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_extra_losses_report_the_formula(loss, n_outputs):
    X, y, w = counts(n_outputs, seed=4)
    y = y + np.random.RandomState(1).randn(*y.shape)
    start = MLPRegressor(loss=loss, huber_delta=0.3, max_iter=1, dtype="float64",
                         **{**FULL_BATCH_SGD, "learning_rate_init": 1e-300}).fit(X, y, w)
    x = np.abs(start.predict(X) - y).reshape(len(y), -1)
    per_element = (np.where(x <= 0.3, 0.5 * x * x, 0.3 * (x - 0.15)) if loss == "huber"
                   else x)
    l2 = 0.5 * 0.01 * sum(float(np.vdot(c, c)) for c in start.coefs_) / w.sum()
    close(start.loss_, np.sum(np.average(per_element, weights=w, axis=0)) + l2, rtol=1e-10)


@pytest.mark.parametrize("loss", ["huber", "absolute_error"])
def test_extra_losses_resist_outliers(loss):
    """The point of both: a few huge targets pull a squared-error fit, not these."""
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(400, 1))
    y = 2 * X[:, 0]
    noisy = y.copy()
    noisy[::20] += 200.0
    settings = dict(hidden_layer_sizes=(), solver="lbfgs", max_iter=500, alpha=0.0,
                    random_state=0, dtype="float64")
    robust = MLPRegressor(loss=loss, **settings).fit(X, noisy)
    squared = MLPRegressor(loss="squared_error", **settings).fit(X, noisy)
    assert np.abs(robust.predict(X) - y).max() < 0.5
    assert np.abs(squared.predict(X) - y).max() > 5


@pytest.mark.parametrize("value", [0, -1.0, np.inf, np.nan, "1", True])
def test_bad_huber_delta_is_named(value):
    X, y, _ = counts(1)
    with pytest.raises(InvalidParameterError, match="'huber_delta'"):
        MLPRegressor(loss="huber", huber_delta=value, max_iter=1).fit(X, y)


def test_warm_start_keeps_the_loss_of_the_first_fit():
    X, y, _ = counts(1)
    est = MLPRegressor(loss="poisson", max_iter=2, warm_start=True, random_state=0).fit(X, y)
    est.set_params(loss="squared_error")
    with pytest.raises(ValueError, match="loss -> 'squared_error'"):
        est.fit(X, y)
    est.set_params(loss="huber")
    with pytest.raises(ValueError, match="loss -> 'huber'"):
        est.fit(X, y)
    huber = MLPRegressor(loss="huber", max_iter=2, warm_start=True, random_state=0).fit(X, y)
    huber.set_params(huber_delta=2.0)
    with pytest.raises(ValueError, match="huber_delta 1.0 -> 2.0"):
        huber.fit(X, y)


@pytest.mark.parametrize("loss", ["poisson", "huber", "absolute_error"])
def test_save_and_load_keep_the_loss(loss, tmp_path):
    X, y, _ = counts(2)
    est = MLPRegressor(loss=loss, huber_delta=0.5, max_iter=5, random_state=0).fit(X, y)
    fastwb.save(est, tmp_path / "model.fwb")
    loaded = fastwb.load(tmp_path / "model.fwb")
    assert loaded.get_params() == {**est.get_params(), "callbacks": None}
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.network.loss_name == est.network.loss_name
    assert loaded.network.huber_delta == (0.5 if loss == "huber" else None)
    assert loaded.out_activation_ == est.out_activation_
    loaded.partial_fit(X, y)        # and training goes on with the same loss


# scikit-learn's own checks on the extra losses (Poisson's nonnegative targets are
# beyond what its checks feed a regressor)
@parametrize_with_checks([MLPRegressor(loss="huber", max_iter=100),
                          MLPRegressor(loss="absolute_error", max_iter=100)],
                         expected_failed_checks=lambda est: {
                             check: "float32 (fastwb's default dtype) rounds weighted sums "
                             "differently from repeated samples by ~1e-7, the check's rtol"
                             for check in ("check_sample_weight_equivalence_on_dense_data",
                                           "check_sample_weight_equivalence_on_sparse_data")})
def test_sklearn_checks_on_the_extra_losses(estimator, check):
    check(estimator)



@pytest.mark.parametrize("loss", ["huber", "absolute_error"])
def test_sample_weight_equivalence_float64(loss):
    check_sample_weight_equivalence_on_dense_data(
        "MLPRegressor", MLPRegressor(loss=loss, max_iter=100, dtype="float64"))
