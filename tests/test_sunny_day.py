"""The classic single neuron: weights [0.6, 0.3, -0.4], bias 0.2, input [1, 1, 1]."""
import pathlib
import runpy

import numpy as np
import pytest

import fastwb


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_single_neuron_scores_point_seven(backend, dtype):
    neuron = fastwb.Network([3, 1], loss="mse", dtype=dtype, backend=backend)
    neuron.layers[0].weights = [[0.6], [0.3], [-0.4]]
    neuron.layers[0].bias = [0.2]
    score = neuron.predict(np.array([1.0, 1.0, 1.0]))
    assert score.shape == (1,)
    assert score[0] == pytest.approx(0.7, rel=1e-6)
    assert score[0] > 0.5     # "Sunny Day"


def test_example_script_says_sunny_day(capsys):
    example = pathlib.Path(__file__).resolve().parents[1] / "examples" / "sunny_day.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "0.7" in out and "Sunny Day" in out
