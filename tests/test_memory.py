"""Steady-state training allocates nothing per step.

tracemalloc sees every Python object and every NumPy array (NumPy reports its
data allocations to it; fastwb allocates all its buffers as arrays). Once the
workspace and the optimizer state exist, the traced memory must not grow with
the number of ``train_step``, ``predict`` or ``loss`` calls, and its peak over
many calls must stay below a constant (the call's Python objects and its
result), never reach an array the size of a batch or of the parameters. An
epoch of ``fit`` may allocate its own buffers, byte for byte the ones
``epoch_allowance`` lists, whatever the number of batches beyond 8 bytes per
sample and 32 per batch. The reference backend, which allocates NumPy
temporaries every step, fails the same bounds: the measurement sees them.
"""
import os
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest

import fastwb

# the bounds-checked sanitizer build of .ci/run makes small transient allocations
# of its own (a few hundred bytes to 2 KB per run seen); the bounds are the release build's
pytestmark = pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                                reason="allocation bounds hold for the release build, "
                                       "not under AddressSanitizer")

#: 9,610 parameters: steps on 128 rows or more are chunked (up to 65,536).
SIZES = [64, 128, 10]
N_PARAMS = sum(k * m + m for k, m in zip(SIZES[:-1], SIZES[1:]))
#: One row, and a batch run as 4 chunks of 64 rows.
BATCHES = (1, 256)
#: Calls per measured run; a second run makes ten times as many.
CALLS = 30
#: Most bytes a warm call may hold at once beyond its result: the returned
#: float and the call's own Python objects (about 150 measured; 2.4 KiB seen in
#: the serial build), far below a per-step gradient array (38 KiB).
CALL_BYTES = 4096
#: Most bytes a run of calls may leave allocated: the int holding the level
#: before it, the optimizer's step count (28 each) and what the interpreter
#: caches at random moments (216 bytes seen under the sanitizer build); a leak of
#: 4 bytes per call over the longer run (300 calls) is more.
KEPT_BYTES = 1024
#: Bytes per batch of fit's records: step number, learning rate, loss, rows.
RECORD_BYTES = 32
#: Python objects of an epoch (snapshot, logs, records' headers): about 2.5 KiB measured.
EPOCH_OBJECT_BYTES = 4096
#: What one epoch may leave behind: its History record and this test's own.
EPOCH_KEPT_BYTES = 512
#: ``loss`` on more than 1,024 rows goes block by block through views of X, y
#: and the weights: about 600 bytes more, whatever the number of blocks.
BLOCK_VIEW_BYTES = 1024
OPTIMIZERS = {"sgd": lambda: fastwb.SGD(lr=0.01), "adam": lambda: fastwb.Adam(lr=1e-3)}


@contextmanager
def traced():
    """tracemalloc on for the block (left on if it already was)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def kept_and_peak(call, times: int) -> tuple[int, int]:
    """Traced bytes left allocated after ``times`` calls, and the peak above
    the level before them."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(times):
        call()
    after, peak = tracemalloc.get_traced_memory()
    return after - before, peak - before


def make_case(dtype: str, rows: int, regularized: bool, backend: str = "compiled"):
    """A network, inputs, integer labels and (when regularized) sample weights;
    regularized also means dropout and an L2 penalty."""
    rng = np.random.default_rng(0)
    net = fastwb.Network(SIZES, loss="softmax_cross_entropy", dtype=dtype, seed=0,
                         dropout=0.2 if regularized else 0.0, l2=1e-4 if regularized else 0.0,
                         backend=backend)
    X = rng.standard_normal((rows, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], size=rows).astype(np.intp)
    w = rng.uniform(0.5, 2.0, size=rows).astype(dtype) if regularized else None
    return net, X, y, w


def assert_steady(call, what: str, result_bytes: int = 0) -> None:
    """After one warm-up call, runs of CALLS and 10 * CALLS calls keep at most
    KEPT_BYTES and peak at most ``result_bytes`` + CALL_BYTES."""
    call()
    with traced():
        runs = [kept_and_peak(call, times) for times in (CALLS, 10 * CALLS)]
    for times, (kept, peak) in zip((CALLS, 10 * CALLS), runs):
        assert kept <= KEPT_BYTES, f"{what}: {times} calls kept {kept} bytes"
        assert peak <= result_bytes + CALL_BYTES, (
            f"{what}: {times} calls peaked {peak} bytes above the start "
            f"(allowed: result {result_bytes} + {CALL_BYTES})")


@pytest.mark.parametrize("regularized", [False, True], ids=["plain", "dropout-weights-l2"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("rows", BATCHES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_allocates_nothing_per_step(dtype, rows, optimizer, regularized):
    net, X, y, w = make_case(dtype, rows, regularized)
    opt = OPTIMIZERS[optimizer]()
    assert_steady(lambda: net.train_step(X, y, opt, sample_weight=w),
                  f"train_step {optimizer} {dtype} {rows} rows")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_large_batch_runs_chunked(dtype):
    """The first step on BATCHES[-1] rows sizes a workspace holding the
    gradients of chunks 1-3 as well as the activations and the two gradient
    buffers: the tests above cover chunked steps."""
    rows = BATCHES[-1]
    net, X, y, _ = make_case(dtype, rows, False)
    s = np.dtype(dtype).itemsize
    widths = SIZES[1:]
    unchunked = rows * (sum(widths) + 2 * max(widths)) * s
    with traced():
        kept, _ = kept_and_peak(lambda: net.train_step(X, y, fastwb.SGD(lr=0.01)), 1)
    assert kept >= unchunked + 3 * N_PARAMS * s, (
        f"{rows} rows no longer run as 4 chunks (workspace {kept} bytes): pick a batch that does")


@pytest.mark.parametrize("rows", [None, 1, 256, 2049], ids=["1-D", "1", "256", "2049-blocks"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_allocates_only_its_result(dtype, rows):
    """``predict`` allocates its output and nothing else; ``loss`` nothing but
    the views of its blocks."""
    net, X, y, w = make_case(dtype, rows or 1, True)
    x = X[0] if rows is None else X
    out_bytes = (rows or 1) * SIZES[-1] * np.dtype(dtype).itemsize
    assert_steady(lambda: net.predict(x), f"predict {dtype} {rows} rows", out_bytes)
    if rows is not None:
        assert_steady(lambda: net.loss(X, y, sample_weight=w), f"loss {dtype} {rows} rows",
                      BLOCK_VIEW_BYTES if rows > 1024 else 0)


def test_dropout_steps_between_larger_predicts_reuse_the_workspace():
    """Training with dropout between predictions on a larger batch (evaluating
    as one trains) reuses one workspace: a cycle allocates only predict's output."""
    net, X, y, _ = make_case("float32", 1000, True)
    opt = fastwb.Adam(lr=1e-3)

    def cycle():
        net.train_step(X[:32], y[:32], opt)
        net.predict(X)
    assert_steady(cycle, "train_step on 32 rows, then predict on 1000",
                  X.shape[0] * SIZES[-1] * X.itemsize)


class EpochMemory(fastwb.Callback):
    """Traced bytes at each epoch's start, and each epoch's peak above them."""

    def __init__(self, epochs: int):
        self.start, self.peak, self.count = [0] * epochs, [0] * epochs, 0

    def on_epoch_begin(self, epoch, logs):
        tracemalloc.reset_peak()
        self.start[self.count] = tracemalloc.get_traced_memory()[0]

    def on_epoch_end(self, epoch, logs):
        self.peak[self.count] = tracemalloc.get_traced_memory()[1] - self.start[self.count]
        self.count += 1


def epoch_allowance(dtype: str, samples: int, batch: int, weighted: bool) -> int:
    """What one epoch of ``fit`` may allocate (training.py and Engine.fit_epoch),
    all freed at its end: the shuffle order (8 bytes per sample), the gathered
    batch (its inputs, labels and sample weights) and RECORD_BYTES per batch;
    or, after those are freed, the finite check of the parameters (a byte each);
    and EPOCH_OBJECT_BYTES. The copy of the parameters and of the optimizer's
    state that undoes a divergence is made once per fit, before the first epoch,
    and refreshed in place."""
    s = np.dtype(dtype).itemsize
    buffers = (8 * samples + batch * (SIZES[0] * s + 8 + (s if weighted else 0))
               + RECORD_BYTES * -(-samples // batch))
    return max(buffers, N_PARAMS) + EPOCH_OBJECT_BYTES


def fit_epochs(net, opt, X, y, w, batch: int, epochs: int) -> EpochMemory:
    """Fit ``epochs`` epochs traced, recording each one's memory."""
    record = EpochMemory(epochs)
    with traced():
        net.fit(X, y, opt, epochs=epochs, batch_size=batch, sample_weight=w, callbacks=[record])
    return record


@pytest.mark.parametrize("batch", [32, BATCHES[-1]])
@pytest.mark.parametrize("optimizer,regularized", [("sgd", False), ("adam", True)],
                         ids=["sgd", "adam-dropout-weights-l2"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_epochs_allocate_only_their_buffers(dtype, optimizer, regularized, batch):
    """Per epoch, fit allocates epoch_allowance for 4 batches and for 32: not
    one byte more per batch than the shuffle order and the records; and the
    epochs leave nothing behind but their History records."""
    net, X, y, w = make_case(dtype, 32 * batch, regularized)
    opt = OPTIMIZERS[optimizer]()
    net.fit(X, y, opt, epochs=1, batch_size=batch, sample_weight=w)    # state, workspace
    for n_batches in (4, 32):
        samples = n_batches * batch
        part = None if w is None else w[:samples]
        record = fit_epochs(net, opt, X[:samples], y[:samples], part, batch, 4)
        allowed = epoch_allowance(dtype, samples, batch, w is not None)
        what = f"fit {optimizer} {dtype}, {n_batches} batches of {batch}"
        assert max(record.peak) <= allowed, f"{what}: epochs peaked {record.peak} > {allowed}"
        kept = [start - record.start[0] for start in record.start]
        # the first epoch may also leave what the interpreter caches once (Python
        # 3.10 keeps a frame per function after its first call: ~400 bytes);
        # every later epoch only its records
        steady = [k - kept[1] for k in kept[1:]]
        assert kept[1] <= KEPT_BYTES + EPOCH_KEPT_BYTES and all(
            k <= e * EPOCH_KEPT_BYTES for e, k in enumerate(steady)), (
            f"{what}: memory at the epochs' starts grew by {kept} bytes")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_does_not_copy_the_data(dtype):
    """A warm fit's traced peak is its epochs' allowance plus its copy of the
    parameters and of Adam's two state buffers, and the input checks
    (np.isfinite of X and its negation, two bytes per value; three per label
    for the label range): below one copy of X."""
    batch, samples = 32, 2048
    net, X, y, _ = make_case(dtype, samples, False)
    opt = fastwb.Adam(lr=1e-3)
    net.fit(X, y, opt, epochs=1, batch_size=batch)
    with traced():
        _, peak = kept_and_peak(lambda: net.fit(X, y, opt, epochs=2, batch_size=batch), 1)
    allowed = (epoch_allowance(dtype, samples, batch, False) + 3 * N_PARAMS * X.itemsize
               + samples * (2 * SIZES[0] + 3))
    assert peak <= allowed, f"fit peaked {peak} bytes (allowed {allowed})"
    assert peak + X.nbytes > allowed, "the allowance would not catch a copy of X"


def test_the_bounds_catch_allocations_per_step():
    """The reference backend allocates NumPy temporaries the size of the
    parameters every step (its gradient, Adam's intermediate terms): its
    steps and its fit epochs exceed the bounds above."""
    dtype, batch = "float32", 32
    net, X, y, _ = make_case(dtype, 4 * batch, False, backend="reference")
    opt = fastwb.Adam(lr=1e-3)
    net.train_step(X[:batch], y[:batch], opt)
    with traced():
        _, peak = kept_and_peak(lambda: net.train_step(X[:batch], y[:batch], opt), CALLS)
    assert peak > N_PARAMS * np.dtype(dtype).itemsize > CALL_BYTES
    record = fit_epochs(net, opt, X, y, None, batch, 2)
    assert max(record.peak) > epoch_allowance(dtype, len(X), batch, False)
