"""The examples in the public docstrings run and print what they say."""
import doctest

import pytest

import fastwb.network
import fastwb.optimizers


@pytest.mark.parametrize("module", [fastwb.network, fastwb.optimizers])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
