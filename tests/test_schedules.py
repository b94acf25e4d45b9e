"""Learning-rate schedules: formulas against hand-computed values, the output
contract the compiled training loop relies on, state and config round trips,
and every validation error."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fastwb import schedules
from fastwb.schedules import (Constant, CosineWarmup, ExponentialDecay, InverseScaling,
                              ReduceOnPlateau, Schedule, StepDecay, check_rates, from_config,
                              resolve)


def epoch_rate(schedule: Schedule, base_lr: float, epoch: int, samples_seen: int = 0) -> float:
    """The rate of a per-epoch schedule, checking it is the same for every step."""
    rates = schedule.rates(base_lr, np.arange(7, dtype=np.int64) + 40, epoch, samples_seen)
    assert np.all(rates == rates[0])
    return float(rates[0])


def feed(schedule: Schedule, values) -> None:
    for epoch, value in enumerate(values):
        schedule.on_epoch_end(epoch, value)


#: One of each schedule, with non-default arguments where there are any.
EXAMPLES = [
    Constant(),
    StepDecay(step_size=3, gamma=0.5),
    ExponentialDecay(gamma=0.9),
    InverseScaling(power_t=0.25),
    CosineWarmup(total_steps=12, warmup_steps=4, min_lr=0.01),
    ReduceOnPlateau(factor=0.5, patience=2, min_delta=0.1, min_lr=0.001),
]


# --- output contract -----------------------------------------------------------------------

@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
@pytest.mark.parametrize("steps", [
    np.arange(5, dtype=np.int64),
    np.arange(100, 140, dtype=np.int64)[::3],  # non-contiguous input
    np.array([10**12], dtype=np.int64),
    np.array([], dtype=np.int64),
], ids=["first", "strided", "huge", "empty"])
def test_rates_contract(schedule, steps):
    rates = schedule.rates(0.1, steps, epoch=50, samples_seen=10**6)
    assert rates.dtype == np.float64
    assert rates.flags.c_contiguous
    assert rates.shape == steps.shape
    assert np.all(np.isfinite(rates)) and np.all(rates >= 0)
    np.testing.assert_array_equal(check_rates(rates, len(steps)), rates)


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_rates_accept_other_integer_types(schedule):
    expected = schedule.rates(0.25, np.arange(3, dtype=np.int64), 2, 30)
    np.testing.assert_array_equal(
        schedule.rates(np.float32(0.25), [0, 1, 2], np.int32(2), np.uint64(30)), expected)


# --- formulas ------------------------------------------------------------------------------

def test_constant():
    np.testing.assert_array_equal(Constant().rates(0.3, np.arange(4), 9, 900), [0.3] * 4)


def test_step_decay():
    decay = StepDecay(step_size=3, gamma=0.5)
    assert [epoch_rate(decay, 0.1, e) for e in range(8)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], rel=1e-15)
    assert epoch_rate(StepDecay(step_size=1), 2.0, 2) == pytest.approx(0.02, rel=1e-15)


def test_exponential_decay():
    decay = ExponentialDecay(gamma=0.9)
    assert [epoch_rate(decay, 1.0, e) for e in (0, 1, 2, 10)] == pytest.approx(
        [1.0, 0.9, 0.81, 0.3486784401], rel=1e-14)


@pytest.mark.parametrize("schedule", [StepDecay(step_size=1, gamma=10.0),
                                      ExponentialDecay(gamma=10.0)], ids=repr)
def test_growing_rate_that_overflows_is_refused(schedule):
    assert epoch_rate(schedule, 1.0, 300) == pytest.approx(1e300)
    with pytest.raises(ValueError, match="overflows float64 at epoch 400"):
        schedule.rates(1.0, np.arange(2), epoch=400, samples_seen=0)
    # 0 * inf would be NaN; a zero base rate stays zero.
    assert epoch_rate(schedule, 0.0, 400) == 0.0


def test_inverse_scaling():
    assert epoch_rate(InverseScaling(), 0.1, 0, samples_seen=0) == 0.1
    assert epoch_rate(InverseScaling(), 0.1, 1, samples_seen=3) == pytest.approx(0.05)
    assert epoch_rate(InverseScaling(), 0.1, 2, samples_seen=99) == pytest.approx(0.01)
    assert epoch_rate(InverseScaling(power_t=0.25), 1.0, 1, samples_seen=15) == pytest.approx(0.5)
    assert epoch_rate(InverseScaling(power_t=0.0), 0.1, 7, samples_seen=10**9) == 0.1
    # (n + 1) ** power_t overflows; the rate underflows to 0 instead of failing.
    assert epoch_rate(InverseScaling(power_t=1e6), 0.1, 1, samples_seen=10) == 0.0


def test_inverse_scaling_matches_scikit_learn():
    sgd = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    n_samples, lr_init, power_t = 37, 0.05, 0.3
    sk = sgd.SGDOptimizer([np.zeros(2)], learning_rate_init=lr_init, lr_schedule="invscaling",
                          power_t=power_t)
    ours = InverseScaling(power_t=power_t)
    seen = 0
    for epoch in range(6):
        assert epoch_rate(ours, lr_init, epoch, seen) == pytest.approx(sk.learning_rate,
                                                                       rel=1e-15)
        seen += n_samples
        # What MLP._fit_stochastic does after each epoch, with t_ the samples seen.
        sk.iteration_ends(seen)


def test_inverse_scaling_matches_scikit_learn_mlp():
    neural_network = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(23, 3)), rng.normal(size=23)
    mlp = neural_network.MLPRegressor(hidden_layer_sizes=(4,), solver="sgd",
                                      learning_rate="invscaling", learning_rate_init=0.01,
                                      power_t=0.4, batch_size=5, random_state=0)
    for epoch in range(1, 5):
        mlp.partial_fit(X, y)
        # After `epoch` epochs, the optimizer holds the rate of the next one.
        assert mlp._optimizer.learning_rate == pytest.approx(
            epoch_rate(InverseScaling(power_t=0.4), 0.01, epoch, samples_seen=epoch * len(X)),
            rel=1e-15)


def test_cosine_warmup_phases():
    cosine = CosineWarmup(total_steps=12, warmup_steps=4)
    rates = cosine.rates(1.0, np.array([0, 1, 2, 3, 4, 6, 8, 10, 12, 13, 10**9]), 0, 0)
    # Warmup counts step + 1, so step 0 already trains; then the cosine starts at base_lr.
    expected = [0.25, 0.5, 0.75, 1.0, 1.0,
                (2 + math.sqrt(2)) / 4,  # a quarter of the way: (1 + cos(pi/4)) / 2
                0.5,                     # midpoint
                (2 - math.sqrt(2)) / 4,
                0.0, 0.0, 0.0]           # total_steps and beyond
    np.testing.assert_allclose(rates, expected, rtol=1e-14, atol=1e-16)


def test_cosine_min_lr_floors_decay_not_warmup():
    cosine = CosineWarmup(total_steps=12, warmup_steps=4, min_lr=0.1)
    rates = cosine.rates(1.0, np.array([0, 4, 8, 12, 50]), 0, 0)
    np.testing.assert_allclose(rates, [0.25, 1.0, 0.55, 0.1, 0.1], rtol=1e-14)


def test_cosine_without_warmup_starts_at_base_lr():
    rates = CosineWarmup(total_steps=4).rates(2.0, np.arange(6), 0, 0)
    np.testing.assert_allclose(rates, [2.0, 1 + math.sqrt(0.5), 1.0, 1 - math.sqrt(0.5), 0, 0],
                               atol=1e-15)


def test_cosine_all_warmup():
    rates = CosineWarmup(total_steps=2, warmup_steps=2, min_lr=0.05).rates(1.0, np.arange(4), 0, 0)
    np.testing.assert_allclose(rates, [0.5, 1.0, 0.05, 0.05])


def test_cosine_ignores_epoch_and_samples():
    cosine = CosineWarmup(total_steps=10, warmup_steps=3)
    np.testing.assert_array_equal(cosine.rates(0.1, np.arange(5), 0, 0),
                                  cosine.rates(0.1, np.arange(5), 8, 800))


# --- ReduceOnPlateau -----------------------------------------------------------------------

def test_plateau_reductions_happen_at_the_right_epochs():
    plateau = ReduceOnPlateau(factor=0.5, patience=2, min_delta=0.1)
    values = [1.0, 0.95, 0.92, 0.91,  # three epochs not 0.1 below 1.0: reduce after the third
              0.8,                    # improvement resets the count
              math.nan, math.inf, -math.inf,  # non-finite never improves: reduce
              0.79, 0.75, 0.72]               # 0.72 < 0.8 - 0.1 is not met either: reduce
    multipliers, waits = [], []
    for epoch, value in enumerate(values):
        plateau.on_epoch_end(epoch, value)
        multipliers.append(plateau.multiplier)
        waits.append(plateau.wait)
    assert multipliers == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert waits == [0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0]
    assert plateau.n_reductions == 3
    assert plateau.best == 0.8
    assert epoch_rate(plateau, 0.4, len(values)) == 0.05


def test_plateau_best_moves_only_on_a_significant_improvement():
    # scikit-learn would track 0.95 as the best; here a slow decline adds up to an improvement.
    plateau = ReduceOnPlateau(patience=5, min_delta=0.1)
    feed(plateau, [1.0, 0.95, 0.89])
    assert (plateau.best, plateau.wait) == (0.89, 0)


def test_plateau_patience_zero_reduces_on_every_miss():
    plateau = ReduceOnPlateau(factor=0.5, patience=0, min_delta=0.0)
    feed(plateau, [1.0, 1.0, 1.0, 0.5, 0.5])
    assert plateau.n_reductions == 3
    assert plateau.multiplier == 0.125


def test_plateau_min_lr_floor():
    plateau = ReduceOnPlateau(factor=0.1, patience=0, min_lr=0.01)
    rates = [epoch_rate(plateau, 1.0, 0)]
    for epoch, loss in enumerate([5.0, 6.0, 6.0, 6.0]):  # improves once, then never
        plateau.on_epoch_end(epoch, loss)
        rates.append(epoch_rate(plateau, 1.0, epoch + 1))
    assert rates == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01], rel=1e-15)
    assert plateau.multiplier == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="below the schedule's min_lr"):
        plateau.rates(0.001, np.arange(2), 5, 0)


def test_plateau_reset():
    plateau = ReduceOnPlateau(patience=0)
    feed(plateau, [1.0, 2.0, 3.0])
    plateau.reset()
    assert (plateau.multiplier, plateau.best, plateau.wait, plateau.n_reductions) == (
        1.0, math.inf, 0, 0)


def test_plateau_properties_are_read_only():
    with pytest.raises(AttributeError):
        ReduceOnPlateau().multiplier = 0.5


# --- state and config ----------------------------------------------------------------------

def json_round_trip(obj: dict) -> dict:
    return json.loads(json.dumps(obj, allow_nan=False))


@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_config_round_trip(schedule):
    config = json_round_trip(schedule.get_config())
    rebuilt = from_config(config)
    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert repr(rebuilt) == repr(schedule)
    steps = np.arange(20)
    np.testing.assert_array_equal(rebuilt.rates(0.1, steps, 4, 400),
                                  schedule.rates(0.1, steps, 4, 400))


def test_plateau_state_round_trip_continues_identically():
    losses = [1.0, 0.9, 0.95, 0.96, math.nan, 0.97, 0.5, 0.6, 0.6, 0.6, 0.6]
    original = ReduceOnPlateau(factor=0.3, patience=1, min_delta=0.01, min_lr=1e-3)
    feed(original, losses[:6])
    assert original.n_reductions > 0  # the saved state is not the initial one
    restored = from_config(json_round_trip(original.get_config()))
    restored.set_state(json_round_trip(original.get_state()))
    for epoch, value in enumerate(losses[6:], start=6):
        for schedule in (original, restored):
            schedule.on_epoch_end(epoch, value)
        assert restored.get_state() == original.get_state()
        assert epoch_rate(restored, 0.1, epoch + 1) == epoch_rate(original, 0.1, epoch + 1)


def test_plateau_state_before_any_loss_is_strict_json():
    state = json_round_trip(ReduceOnPlateau().get_state())
    assert state == {"multiplier": 1.0, "best": None, "wait": 0, "n_reductions": 0}
    plateau = ReduceOnPlateau()
    plateau.set_state(state)
    assert plateau.best == math.inf


@pytest.mark.parametrize("state,error,match", [
    ([], TypeError, "state must be a dict"),
    ({"multiplier": 1.0, "best": None, "wait": 0}, ValueError, "exactly the keys"),
    ({"multiplier": 2.0, "best": None, "wait": 0, "n_reductions": 0}, ValueError, "at most 1"),
    ({"multiplier": -0.5, "best": None, "wait": 0, "n_reductions": 0}, ValueError, "multiplier"),
    ({"multiplier": 1.0, "best": math.nan, "wait": 0, "n_reductions": 0}, ValueError, "best"),
    ({"multiplier": 1.0, "best": None, "wait": -1, "n_reductions": 0}, ValueError, "wait"),
    ({"multiplier": 1.0, "best": None, "wait": 0.5, "n_reductions": 0}, TypeError, "wait"),
    ({"multiplier": "1", "best": None, "wait": 0, "n_reductions": 0}, TypeError, "multiplier"),
])
def test_plateau_bad_state(state, error, match):
    plateau = ReduceOnPlateau()
    feed(plateau, [1.0, 2.0])
    before = plateau.get_state()
    with pytest.raises(error, match=match):
        plateau.set_state(state)
    assert plateau.get_state() == before  # a refused state changes nothing


@pytest.mark.parametrize("schedule", EXAMPLES[:5], ids=repr)
def test_stateless_schedules(schedule):
    before = schedule.rates(0.1, np.arange(3), 5, 50)
    schedule.on_epoch_end(0, 1.0)
    schedule.reset()
    assert schedule.get_state() == {}
    schedule.set_state({})
    np.testing.assert_array_equal(schedule.rates(0.1, np.arange(3), 5, 50), before)
    with pytest.raises(ValueError, match="exactly the keys"):
        schedule.set_state({"multiplier": 0.5})


@pytest.mark.parametrize("config,error,match", [
    ("constant", TypeError, "config must be a dict"),
    ({}, ValueError, r"config\['name'\] must be one of"),
    ({"name": "cosine"}, ValueError, "cosine_warmup"),
    ({"name": ["constant"]}, ValueError, "must be one of"),
    ({"name": "step_decay", "step_size": 2, "decay": 0.5}, ValueError, r"\['decay'\]"),
    ({"name": "step_decay"}, TypeError, "step_size"),
    ({"name": "step_decay", "step_size": 0}, ValueError, "step_size"),
])
def test_from_config_errors(config, error, match):
    with pytest.raises(error, match=match):
        from_config(config)


# --- resolve -------------------------------------------------------------------------------

def test_resolve():
    assert type(resolve(None)) is Constant
    schedule = StepDecay(step_size=2)
    assert resolve(schedule) is schedule
    assert type(resolve("constant")) is Constant
    assert resolve("invscaling").get_config() == InverseScaling().get_config()
    assert resolve("adaptive").get_config() == ReduceOnPlateau().get_config()
    # A stateful schedule named twice must not be shared between two trainings.
    assert resolve("adaptive") is not resolve("adaptive")


@pytest.mark.parametrize("value,error,match", [
    ("step", ValueError, r"schedule must be .*\['adaptive', 'constant', 'invscaling'\]"),
    ("Constant", ValueError, "schedule"),
    (0.1, TypeError, "schedule must be a Schedule, a name or None, got float"),
    (StepDecay, TypeError, "schedule"),
])
def test_resolve_errors(value, error, match):
    with pytest.raises(error, match=match):
        resolve(value)


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,match", [
    (lambda: StepDecay(step_size=0), ValueError, "step_size must be at least 1"),
    (lambda: StepDecay(step_size=2.0), TypeError, "step_size must be an int"),
    (lambda: StepDecay(step_size=True), TypeError, "step_size"),
    (lambda: StepDecay(step_size=2, gamma=0.0), ValueError, "gamma must be finite and above 0"),
    (lambda: StepDecay(step_size=2, gamma=-0.1), ValueError, "gamma"),
    (lambda: StepDecay(step_size=2, gamma=math.inf), ValueError, "gamma must be finite"),
    (lambda: StepDecay(step_size=2, gamma="0.1"), TypeError, "gamma must be a real number"),
    (lambda: ExponentialDecay(gamma=math.nan), ValueError, "gamma must be finite"),
    (lambda: ExponentialDecay(gamma=0), ValueError, "gamma must be finite and above 0"),
    (lambda: ExponentialDecay(gamma=None), TypeError, "gamma"),
    (lambda: InverseScaling(power_t=-0.5), ValueError, "power_t"),
    (lambda: InverseScaling(power_t=math.inf), ValueError, "power_t"),
    (lambda: InverseScaling(power_t=[0.5]), TypeError, "power_t"),
    (lambda: CosineWarmup(total_steps=0), ValueError, "total_steps must be at least 1"),
    (lambda: CosineWarmup(total_steps=10.0), TypeError, "total_steps"),
    (lambda: CosineWarmup(total_steps=10, warmup_steps=-1), ValueError, "warmup_steps"),
    (lambda: CosineWarmup(total_steps=10, warmup_steps=11), ValueError,
     "warmup_steps=11 exceeds total_steps=10"),
    (lambda: CosineWarmup(total_steps=10, warmup_steps=None), TypeError, "warmup_steps"),
    (lambda: CosineWarmup(total_steps=10, min_lr=-1e-3), ValueError, "min_lr"),
    (lambda: CosineWarmup(total_steps=10, min_lr=math.nan), ValueError, "min_lr"),
    (lambda: ReduceOnPlateau(factor=1.0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: ReduceOnPlateau(factor=0.0), ValueError, "factor"),
    (lambda: ReduceOnPlateau(factor=math.nan), ValueError, "factor"),
    (lambda: ReduceOnPlateau(factor="0.5"), TypeError, "factor"),
    (lambda: ReduceOnPlateau(patience=-1), ValueError, "patience must be at least 0"),
    (lambda: ReduceOnPlateau(patience=1.5), TypeError, "patience"),
    (lambda: ReduceOnPlateau(min_delta=-1e-4), ValueError, "min_delta"),
    (lambda: ReduceOnPlateau(min_delta=math.inf), ValueError, "min_delta"),
    (lambda: ReduceOnPlateau(min_lr=-1.0), ValueError, "min_lr"),
    (lambda: ReduceOnPlateau(min_lr=math.inf), ValueError, "min_lr"),
])
def test_constructor_validation(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("args,error,match", [
    ((-0.1, np.arange(3), 0, 0), ValueError, "base_lr must be finite and at least 0"),
    ((math.nan, np.arange(3), 0, 0), ValueError, "base_lr"),
    ((math.inf, np.arange(3), 0, 0), ValueError, "base_lr"),
    (("0.1", np.arange(3), 0, 0), TypeError, "base_lr must be a real number"),
    ((True, np.arange(3), 0, 0), TypeError, "base_lr"),
    ((0.1, np.arange(4).reshape(2, 2), 0, 0), ValueError, "steps must be 1-D"),
    ((0.1, np.int64(3), 0, 0), ValueError, "steps must be 1-D"),
    ((0.1, np.arange(3.0), 0, 0), TypeError, "steps must hold integers"),
    ((0.1, np.array([0, -1]), 0, 0), ValueError, "steps must be nonnegative"),
    ((0.1, np.arange(3), -1, 0), ValueError, "epoch must be at least 0"),
    ((0.1, np.arange(3), 1.0, 0), TypeError, "epoch must be an int"),
    ((0.1, np.arange(3), 0, -5), ValueError, "samples_seen must be at least 0"),
    ((0.1, np.arange(3), 0, None), TypeError, "samples_seen"),
])
@pytest.mark.parametrize("schedule", EXAMPLES, ids=repr)
def test_rates_validation(schedule, args, error, match):
    with pytest.raises(error, match=match):
        schedule.rates(*args)


@pytest.mark.parametrize("schedule", [EXAMPLES[4], EXAMPLES[5]], ids=repr)
def test_base_lr_below_min_lr_is_refused(schedule):
    with pytest.raises(ValueError, match=r"base_lr=0\.0005 is below the schedule's min_lr"):
        schedule.rates(0.0005, np.arange(3), 0, 0)


@pytest.mark.parametrize("epoch,value,error,match", [
    (-1, 1.0, ValueError, "epoch"),
    (0.0, 1.0, TypeError, "epoch"),
    (0, "1.0", TypeError, "value must be a real number"),
    (0, None, TypeError, "value"),
])
def test_on_epoch_end_validation(epoch, value, error, match):
    plateau = ReduceOnPlateau()
    with pytest.raises(error, match=match):
        plateau.on_epoch_end(epoch, value)
    assert plateau.get_state()["wait"] == 0


@pytest.mark.parametrize("values,n,match", [
    (np.zeros(3), 4, r"shape \(3,\); expected \(4,\)"),
    (np.zeros((2, 2)), 4, "shape"),
    (np.array([0.1, -0.1]), 2, "invalid learning rate -0.1 at index 1"),
    (np.array([0.1, 0.2, math.nan]), 3, "index 2"),
    (np.array([math.inf]), 1, "index 0"),
])
def test_check_rates_refuses_bad_output(values, n, match):
    with pytest.raises(ValueError, match=match):
        check_rates(values, n)


def test_check_rates_converts_to_contiguous_float64():
    out = check_rates(np.arange(10, dtype=np.float32)[::2], 5)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [0, 2, 4, 6, 8])


def test_base_class_is_abstract_and_has_stateless_defaults():
    with pytest.raises(TypeError):
        Schedule()

    class Halving(Schedule):
        name = "halving"

        def rates(self, base_lr, steps, epoch, samples_seen):
            return np.full(len(steps), base_lr / 2 ** epoch)

    halving = Halving()
    halving.on_epoch_end(0, 1.0)
    assert halving.get_config() == {"name": "halving"}
    assert halving.get_state() == {}
    assert repr(halving) == "Halving()"
    np.testing.assert_array_equal(check_rates(halving.rates(1.0, np.arange(2), 1, 0), 2),
                                  [0.5, 0.5])
    with pytest.raises(ValueError, match="must be one of"):
        from_config(halving.get_config())


def test_public_names():
    assert set(schedules.__all__) == {
        "Schedule", "Constant", "StepDecay", "ExponentialDecay", "InverseScaling",
        "CosineWarmup", "ReduceOnPlateau", "check_rates", "from_config", "resolve"}
