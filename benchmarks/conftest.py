"""pytest configuration of the benchmarks: the opt-in ``--fastwb-large`` shape."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# ``_common`` is a sibling module, not part of the package; make it importable
# under every --import-mode, not only the default "prepend".
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LARGE_MARKER  # noqa: E402  (needs the path above)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fastwb-large", action="store_true", default=False,
        help="also run the large 1024-4096-4096-1024 batch-256 benchmarks "
             "(seconds per step on the reference backend, ~1 GiB of memory)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{LARGE_MARKER}: large-shape benchmark, runs only with --fastwb-large")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--fastwb-large"):
        return
    skip = pytest.mark.skip(
        reason="large shape 1024-4096-4096-1024 batch 256 is opt-in: pass --fastwb-large")
    for item in items:
        if LARGE_MARKER in item.keywords:
            item.add_marker(skip)
