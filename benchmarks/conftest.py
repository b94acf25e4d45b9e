"""pytest configuration of the benchmarks: profiles, parametrization and BLAS threads.

``--fastwb-profile quick`` (the default) runs the standard shapes at 1 and 2
threads with short timings; ``--fastwb-profile full`` adds the large shape and
1, 2, 4, ... up to ``os.cpu_count()`` threads, with longer timings.
``--fastwb-large`` adds the large shape to either. A profile's timing settings
give way to ``--benchmark-max-time`` and ``--benchmark-min-rounds`` on the
command line.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from threadpoolctl import threadpool_limits

from fastwb.bench.cases import BACKENDS
from fastwb.bench.machine import thread_counts
from fastwb.bench.shapes import DTYPES, SHAPES

#: pytest marker of the opt-in large shape.
LARGE_MARKER = "fastwb_large"


@dataclass(frozen=True)
class Profile:
    """What one ``--fastwb-profile`` measures, and for how long."""

    #: values of ``n_threads`` (fastwb's threads and the BLAS threads alike)
    threads: tuple[int, ...]
    #: whether the large shape runs without ``--fastwb-large``
    large: bool
    #: pytest-benchmark's ``max_time`` (seconds of rounds per case) and ``min_rounds``
    max_time: float
    min_rounds: int


PROFILES = {
    # a few minutes timed on two cores; what CI runs once per body with --benchmark-disable
    "quick": Profile(threads=(1, 2), large=False, max_time=0.2, min_rounds=3),
    "full": Profile(threads=thread_counts(), large=True, max_time=2.0, min_rounds=5),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fastwb-profile", choices=list(PROFILES), default="quick",
        help="quick (default): standard shapes, 1 and 2 threads, short timings; "
             "full: also the large shape, 1, 2, 4, ... up to the core count, longer timings")
    parser.addoption(
        "--fastwb-large", action="store_true", default=False,
        help="also run the large 1024-4096-4096-1024 batch-256 benchmarks "
             "(seconds per step on the reference backend, ~1 GiB of memory)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{LARGE_MARKER}: large-shape benchmark, runs only with --fastwb-large "
                   "or --fastwb-profile full")


def _profile(config: pytest.Config) -> Profile:
    """The ``--fastwb-profile`` chosen."""
    return PROFILES[config.getoption("--fastwb-profile")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every job runs per shape (where it takes one), dtype, thread count and backend."""
    if "shape" in metafunc.fixturenames:
        metafunc.parametrize("shape", [
            pytest.param(shape, id=shape.id,
                         marks=[getattr(pytest.mark, LARGE_MARKER)] if shape.large else [])
            for shape in SHAPES])
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES)
    if "n_threads" in metafunc.fixturenames:
        threads = _profile(metafunc.config).threads
        metafunc.parametrize("n_threads", threads, ids=[f"{n}t" for n in threads])
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS)


def _given(config: pytest.Config, option: str) -> bool:
    """Whether ``option`` is on the command line, as ``--opt V`` or ``--opt=V``."""
    return any(arg.split("=", 1)[0] == option for arg in config.invocation_params.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The profile's timing on every benchmark; the large shape skipped unless asked for."""
    profile = _profile(config)
    # a benchmark mark overrides pytest-benchmark's options, so set only what the user did not
    timing = {name: value for name, value in (("max_time", profile.max_time),
                                              ("min_rounds", profile.min_rounds))
              if not _given(config, f"--benchmark-{name.replace('_', '-')}")}
    mark = pytest.mark.benchmark(**timing)
    large = profile.large or config.getoption("--fastwb-large")
    skip = pytest.mark.skip(
        reason="large shape 1024-4096-4096-1024 batch 256 is opt-in: pass --fastwb-large "
               "or --fastwb-profile full")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(mark)
        if LARGE_MARKER in item.keywords and not large:
            item.add_marker(skip)


@pytest.fixture
def blas_threads(n_threads: int) -> Iterator[None]:
    """BLAS limited to the case's ``n_threads``: fastwb's products and the
    reference's then use as many threads as fastwb's own loops."""
    with threadpool_limits(n_threads, user_api="blas"):
        yield
