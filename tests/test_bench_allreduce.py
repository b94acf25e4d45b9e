"""The ring-allreduce cost model of data-parallel training (fastwb.bench.allreduce):
known values of the formula, the crossing rank against a brute-force search,
and the local-SGD bound. No timing."""
import math

import pytest

from fastwb.bench.allreduce import (Link, best_speedup, communication_bound_ranks, efficiency,
                                    fit_message_bytes, local_sgd_message_bytes,
                                    local_steps_for_share,
                                    ring_allreduce_time, weak_scaling_efficiency)

GIGABIT = Link("1 Gb/s, 10 µs", 1e9, 10e-6)
NO_LATENCY = Link("8 bit/s", 8.0, 0.0)       # one byte per second


def test_the_formula_on_known_values():
    # 2(N-1)/N * bytes * 8 / bandwidth + 2(N-1) * alpha
    assert ring_allreduce_time(1_000_000, 2, GIGABIT) == pytest.approx(8e-3 + 20e-6)
    assert ring_allreduce_time(1_000_000, 4, GIGABIT) == pytest.approx(1.5 * 8e-3 + 60e-6)
    assert ring_allreduce_time(100, 5, NO_LATENCY) == pytest.approx(160.0)
    assert ring_allreduce_time(10**9, 1, GIGABIT) == 0.0        # nothing to exchange
    assert ring_allreduce_time(0, 3, GIGABIT) == pytest.approx(4 * 10e-6)


def test_the_bandwidth_term_tends_to_twice_the_message():
    many = ring_allreduce_time(1000, 10**6, NO_LATENCY)
    assert 1999 < many < 2000


def test_fit_sends_the_gradient_and_three_values_in_float64():
    assert fit_message_bytes(235146) == (235146 + 3) * 8


def test_local_sgd_averages_parameters_moments_and_the_sample_count():
    assert local_sgd_message_bytes(676, 2) == (3 * 676 + 1) * 8      # Adam
    assert local_sgd_message_bytes(676, 0) == (676 + 1) * 8          # plain SGD


def test_efficiency_and_weak_scaling():
    assert efficiency(3.0, 1.0) == 0.75
    assert weak_scaling_efficiency(1.0, 100, 1, NO_LATENCY) == 1.0
    # 2 ranks: 100 s of communication beside 100 s of compute
    assert weak_scaling_efficiency(100.0, 100, 2, NO_LATENCY) == pytest.approx(0.5)
    effs = [weak_scaling_efficiency(1e-3, 1e6, n, GIGABIT) for n in (2, 4, 8, 16, 64)]
    assert effs == sorted(effs, reverse=True)


def test_the_best_speedup_is_ranks_times_efficiency():
    # 100 s of compute, T(N) = 200 (N-1)/N s: N=2 gives 2 * 0.5 = 1.0; N=8 gives
    # 8 * 100 / 275 = 2.91; more ranks always help when latency is 0
    assert best_speedup(100.0, 100, NO_LATENCY, (2, 8)) == (pytest.approx(800 / 275), 8)
    # with latency, the speed-up peaks: 1 µs steps on a 10 µs link never beat 1 rank
    speedup, ranks = best_speedup(1e-6, 0, GIGABIT, (2, 4, 8))
    assert ranks == 2 and speedup == pytest.approx(2 * 1e-6 / (1e-6 + 20e-6))


def _brute_force(batch, per_sample, nbytes, link):
    for ranks in range(2, batch + 1):
        if ring_allreduce_time(nbytes, ranks, link) >= math.ceil(batch / ranks) * per_sample:
            return ranks
    return None


@pytest.mark.parametrize("batch", [2, 7, 32, 256, 1000])
@pytest.mark.parametrize("per_sample", [1e-7, 3e-6, 5e-5, 1e-3])
@pytest.mark.parametrize("nbytes", [0, 8 * 1000, 8 * 235149, 8 * 10**7])
def test_the_crossing_rank_is_the_first_one_communication_bound(batch, per_sample, nbytes):
    assert (communication_bound_ranks(batch, per_sample, nbytes, GIGABIT)
            == _brute_force(batch, per_sample, nbytes, GIGABIT))


def test_the_crossing_rank_on_a_worked_example():
    # 1 byte/s, no latency, 100 bytes: T(N) = 200 (N-1)/N s; 64 samples of 10 s
    # compute ceil(64/N) * 10 s: at N=4, 150 s < 160 s; at N=5, 160 s >= 130 s.
    assert communication_bound_ranks(64, 10.0, 100, NO_LATENCY) == 5
    # one sample cannot be split, and a long enough step never gets bound
    assert communication_bound_ranks(1, 1e-9, 100, NO_LATENCY) is None
    assert communication_bound_ranks(8, 1e6, 100, NO_LATENCY) is None


def test_local_steps_keep_the_average_share_under_the_bound():
    # T = 100 s of averaging, 1 s steps, 5 %: H >= 100 * 0.95 / 0.05 = 1900
    assert local_steps_for_share(1.0, 100, 2, NO_LATENCY, 0.05) == 1900
    for step in (1e-5, 3e-4, 2e-2):
        h = local_steps_for_share(step, 8e6, 16, GIGABIT, 0.01)
        average = ring_allreduce_time(8e6, 16, GIGABIT)
        assert average / (h * step + average) <= 0.01
        if h > 1:
            assert average / ((h - 1) * step + average) > 0.01
    assert local_steps_for_share(10.0, 1, 2, NO_LATENCY, 0.5) == 1


@pytest.mark.parametrize("call, match", [
    (lambda: ring_allreduce_time(10, 0, GIGABIT), "rank count"),
    (lambda: ring_allreduce_time(10, 2.5, GIGABIT), "rank count"),
    (lambda: ring_allreduce_time(-1, 2, GIGABIT), "nbytes"),
    (lambda: communication_bound_ranks(0, 1e-6, 10, GIGABIT), "global_batch"),
    (lambda: communication_bound_ranks(8, 0.0, 10, GIGABIT), "time_per_sample"),
    (lambda: local_steps_for_share(1.0, 10, 2, GIGABIT, 1.0), "share"),
    (lambda: local_steps_for_share(0.0, 10, 2, GIGABIT, 0.1), "step_compute"),
    (lambda: efficiency(0.0, 0.0), "not both 0"),
    (lambda: Link("broken", 0.0, 1e-6), "positive bandwidth"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
