"""Every callback's on_train_end runs even when an earlier one raises (as an
Optuna pruning callback does); fit then raises the first error."""
import numpy as np
import pytest

import fastwb as fw
from fastwb.callbacks import Callback


class Ends(Callback):
    def __init__(self, log, name, error=None):
        self.log, self.name, self.error = log, name, error

    def on_train_end(self, logs):
        self.log.append(self.name)
        if self.error is not None:
            raise self.error


def test_every_on_train_end_runs_and_the_first_error_is_raised():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    net = fw.Network([3, 4, 1], seed=0)
    log = []
    callbacks = [Ends(log, "a", RuntimeError("first")), Ends(log, "b"),
                 Ends(log, "c", ValueError("second"))]
    with pytest.raises(RuntimeError, match="first"):
        net.fit(X, y, epochs=2, callbacks=callbacks)
    assert log == ["a", "b", "c"]


class Fails(Callback):
    def __init__(self, error):
        self.error = error

    def on_epoch_end(self, epoch, logs):
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("in the epoch"), KeyboardInterrupt()])
def test_trainings_own_error_is_raised_and_a_cleanup_error_is_warned(error):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    net = fw.Network([3, 4, 1], seed=0)
    log = []
    callbacks = [Fails(error), Ends(log, "a", ValueError("cleanup")), Ends(log, "b")]
    with pytest.warns(RuntimeWarning, match=r"Ends.on_train_end raised ValueError\('cleanup'\)"), \
            pytest.raises(type(error)) as raised:
        net.fit(X, y, epochs=3, callbacks=callbacks)
    assert raised.value is error and log == ["a", "b"]
