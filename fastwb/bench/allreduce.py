"""A cost model of data-parallel training over a ring allreduce.

A ring allreduce of ``B`` bytes over ``N`` ranks sends ``2(N-1)`` messages of
``B/N`` bytes one after the other (a reduce-scatter, then an allgather), so it
takes ``2(N-1)/N * B / bandwidth + 2(N-1) * alpha``, with ``alpha`` the latency
of one message. ``fastwb.distributed.fit`` sends one such message per step: the
flat gradient, its loss, weight and failure flag, ``n_parameters + 3`` float64
values whatever the network's dtype (``fit_message_bytes``). A step computes
on every rank at once, then communicates (nothing overlaps), so with a compute
time ``c`` per step its efficiency is ``c / (c + allreduce time)``.

Three questions follow, all pure functions of the measured compute time:

- strong scaling (a fixed global batch split over more ranks): the rank count
  from which a step spends at least as long communicating as computing;
- weak scaling (a fixed batch per rank): the efficiency at a rank count, and
  the best speed-up over one rank (``N`` times the efficiency);
- local SGD (ranks train alone and average parameters and optimizer moments
  now and then, ``local_sgd_message_bytes``): how many local steps between two
  averages make the average's share of the time small.

The model assumes the per-sample compute time does not grow when a batch is
split (optimistic for small batches, whose per-sample cost is higher) and that
the ranks run at the same speed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """A network between the ranks: bandwidth in bit/s and latency per message in s."""

    name: str
    bandwidth: float
    latency: float

    def __post_init__(self):
        if not (self.bandwidth > 0 and self.latency >= 0):
            raise ValueError(f"a link needs a positive bandwidth and a nonnegative latency, "
                             f"got {self.bandwidth!r} bit/s and {self.latency!r} s")


#: The links the benchmark prints: MPI over TCP on 10 Gb/s Ethernet has a
#: small-message latency of tens of µs; InfiniBand-class links (EDR, 100 Gb/s,
#: RDMA) about 1-2 µs.
LINKS = (Link("10 Gb/s Ethernet (TCP)", 10e9, 25e-6),
         Link("100 Gb/s InfiniBand-class", 100e9, 1.5e-6))

#: The rank counts of the weak-scaling table.
RANKS = (2, 4, 8, 16, 64)

#: Itemsize of the values ``distributed.fit`` sends, and how many it adds to the
#: gradient (loss, weight, failure flag).
FIT_ITEMSIZE, FIT_EXTRA_VALUES = 8, 3


def _check_ranks(ranks: int) -> None:
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"the rank count must be an integer of at least 1, got {ranks!r}")


def fit_message_bytes(n_parameters: int) -> int:
    """Bytes of the one Allreduce of a ``distributed.fit`` step."""
    return (n_parameters + FIT_EXTRA_VALUES) * FIT_ITEMSIZE


def local_sgd_message_bytes(n_parameters: int, moments: int) -> int:
    """Bytes of local SGD's average: the parameters, the optimizer's ``moments``
    buffers of as many values, and the samples seen, in float64."""
    return ((1 + moments) * n_parameters + 1) * FIT_ITEMSIZE


def ring_allreduce_time(nbytes: float, ranks: int, link: Link) -> float:
    """Seconds of a ring allreduce of ``nbytes`` over ``ranks``:
    ``2(N-1)/N * nbytes / bandwidth + 2(N-1) * latency`` (0 on one rank)."""
    _check_ranks(ranks)
    if nbytes < 0:
        raise ValueError(f"nbytes must be nonnegative, got {nbytes!r}")
    hops = 2 * (ranks - 1)
    return hops / ranks * nbytes * 8 / link.bandwidth + hops * link.latency


def efficiency(compute: float, communicate: float) -> float:
    """Share of a step's time spent computing, when communicating follows computing."""
    if compute < 0 or communicate < 0 or compute + communicate <= 0:
        raise ValueError(f"times must be nonnegative and not both 0, got {compute!r} and "
                         f"{communicate!r}")
    return compute / (compute + communicate)


def weak_scaling_efficiency(step_compute: float, nbytes: float, ranks: int,
                            link: Link) -> float:
    """Efficiency of a step at ``ranks`` with a fixed batch per rank, whose
    compute takes ``step_compute`` seconds."""
    return efficiency(step_compute, ring_allreduce_time(nbytes, ranks, link))


def best_speedup(step_compute: float, nbytes: float, link: Link,
                 ranks: tuple[int, ...] = RANKS) -> tuple[float, int]:
    """The largest speed-up over one rank with a fixed batch per rank,
    ``N * efficiency``, among ``ranks``, and the N that gives it."""
    return max((n * weak_scaling_efficiency(step_compute, nbytes, n, link), n) for n in ranks)


def communication_bound_ranks(global_batch: int, time_per_sample: float, nbytes: float,
                              link: Link) -> int | None:
    """The smallest rank count at which a step of ``global_batch`` samples, split
    over the ranks (the largest share ``ceil(batch / N)`` sets the compute time),
    spends at least as long in the allreduce as in computing; None when even one
    sample per rank computes longer.

    The allreduce time grows with N and the compute time shrinks, so the first
    crossing is found by bisection over 2..global_batch.
    """
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise ValueError(f"global_batch must be an integer of at least 1, got {global_batch!r}")
    if time_per_sample <= 0:
        raise ValueError(f"time_per_sample must be positive, got {time_per_sample!r}")

    def bound(ranks: int) -> bool:
        compute = math.ceil(global_batch / ranks) * time_per_sample
        return ring_allreduce_time(nbytes, ranks, link) >= compute

    if global_batch < 2 or not bound(global_batch):
        return None
    low, high = 1, global_batch            # bound(low) is False (no communication), bound(high)
    while high - low > 1:
        middle = (low + high) // 2
        if bound(middle):
            high = middle
        else:
            low = middle
    return high


def local_steps_for_share(step_compute: float, nbytes: float, ranks: int, link: Link,
                          share: float) -> int:
    """The fewest local steps (of ``step_compute`` seconds each) between two
    averages of ``nbytes`` that keep the average's share of the time at most
    ``share``: ``H >= T (1 - share) / (share * step_compute)``."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    if step_compute <= 0:
        raise ValueError(f"step_compute must be positive, got {step_compute!r}")
    average = ring_allreduce_time(nbytes, ranks, link)
    return max(1, math.ceil(average * (1 - share) / (share * step_compute)))
