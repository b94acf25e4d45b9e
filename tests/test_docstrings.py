"""The examples in the public docstrings run and print what they say."""
import doctest

import pytest

import fastwb.initializers
import fastwb.layers
import fastwb.network
import fastwb.optimizers
import fastwb.schedules

MODULES = [fastwb.initializers, fastwb.layers, fastwb.network, fastwb.optimizers,
           fastwb.schedules]


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
