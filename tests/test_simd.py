"""Run-time SIMD dispatch: every level this CPU runs gives the baseline's bits.

The elementwise kernels (bias + activation, activation derivative, optimizer
updates, finiteness scans, penalty sums) are compiled for baseline x86-64,
AVX2 and AVX-512 and chosen at import (src_c/fastwb_simd.h). Each level here
trains networks of every activation and loss, in float32 and float64, with
every optimizer rule, penalties, clipping and dropout, and must produce the
same bits as the baseline, and agree with the NumPy reference.
"""
import os
import subprocess
import platform
import sys

import numpy as np
import pytest

import fastwb
from fastwb.testing import ACTIVATION_LOSS_PAIRS, TOLERANCE, make_targets, rel_error
from fastwb import _core

COMPILED, SUPPORTED, DEFAULT = _core.simd_levels()
#: The levels compared with the baseline: all this CPU runs but the baseline itself.
WIDER = [level for level in SUPPORTED if level != "baseline"]
#: Widths that leave a remainder after 4-, 8- and 16-wide vector loops.
SIZES = [19, 37, 21, 5]
BATCH = 9

needs_wider = pytest.mark.skipif(not WIDER, reason="this CPU runs only the baseline kernels")


@pytest.fixture
def simd_level():
    """Set a level with set_simd_level(name) inside a test; restored afterwards."""
    previous = _core.simd_levels()[2]
    yield _core.set_simd_level
    _core.set_simd_level(previous)


def optimizers():
    """One optimizer of every update rule and option the fused kernels handle."""
    return [fastwb.Adam(lr=0.01), fastwb.AdamW(lr=0.01, weight_decay=0.1),
            fastwb.Adam(lr=0.01, clip_norm=0.05), fastwb.SGD(lr=0.05),
            fastwb.SGD(lr=0.05, momentum=0.9, nesterov=True),
            fastwb.SGD(lr=0.05, momentum=0.9, clip_value=0.01),
            fastwb.RMSprop(lr=0.01), fastwb.Adagrad(lr=0.05, clip_value=0.02)]


def training_run(level, dtype, activation, loss, target_kind, n_threads=1):
    """Everything a network computes while training at ``level``, as a list of arrays."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4 * BATCH, SIZES[0])).astype(dtype)
    y = make_targets(target_kind, 4 * BATCH, SIZES[-1], rng)
    previous = _core.set_simd_level(level)
    try:
        results = []
        for options in ({}, {"l1": 1e-3, "l2": 1e-2, "regularize_biases": True,
                             "dropout": 0.25}):
            net = fastwb.Network(SIZES, activation=activation, loss=loss, dtype=dtype, seed=3,
                                 n_threads=n_threads, **options)
            for opt in optimizers():
                for _ in range(2):
                    results.append(np.float64(net.train_step(X[:BATCH], y[:BATCH], opt)))
                results += [buffer for name, buffer in opt.state.items()
                            if isinstance(buffer, np.ndarray)]
            history = net.fit(X, y, optimizer=fastwb.Adam(lr=0.01), epochs=2, batch_size=BATCH)
            results += [np.asarray(history.history["loss"]), net.parameters.copy(),
                        net.predict(X), np.float64(net.loss(X, y))]
            results += [g for pair in net.gradients(X, y) for g in pair]
        return results
    finally:
        _core.set_simd_level(previous)


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@needs_wider
@pytest.mark.parametrize("kernel_path", ["default", "parallel_loops"], indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation,loss,target_kind", ACTIVATION_LOSS_PAIRS)
@pytest.mark.parametrize("level", WIDER)
def test_every_level_gives_the_baseline_bits(level, activation, loss, target_kind, dtype,
                                             kernel_path):
    n_threads = 2 if kernel_path == "parallel_loops" else 1
    baseline = training_run("baseline", dtype, activation, loss, target_kind, n_threads)
    wider = training_run(level, dtype, activation, loss, target_kind, n_threads)
    assert len(baseline) == len(wider)
    for i, (a, b) in enumerate(zip(baseline, wider)):
        assert same_bits(a, b), f"result {i} differs between baseline and {level}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation,loss,target_kind", ACTIVATION_LOSS_PAIRS)
@pytest.mark.parametrize("level", SUPPORTED)
def test_every_level_matches_the_reference(level, activation, loss, target_kind, dtype,
                                           simd_level):
    simd_level(level)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(BATCH, SIZES[0])).astype(dtype)
    y = make_targets(target_kind, BATCH, SIZES[-1], rng)
    kwargs = dict(activation=activation, loss=loss, dtype=dtype, seed=5, l1=1e-3, l2=1e-2)
    compiled = fastwb.Network(SIZES, **kwargs)
    reference = fastwb.Network(SIZES, backend="reference", **kwargs)
    tolerance = TOLERANCE[np.dtype(dtype)]

    def close(actual, expected, what):
        err = rel_error(actual, expected)
        assert err <= tolerance, f"{what} at {level}: relative error {err:.3g}"

    close(compiled.predict(X), reference.predict(X), "predict")
    close(compiled.loss(X, y), reference.loss(X, y), "loss")
    for (dW, db), (rW, rb) in zip(compiled.gradients(X, y), reference.gradients(X, y)):
        close(dW, rW, "weight gradient")
        close(db, rb, "bias gradient")
    # the exp output of the Poisson loss turns RMSprop's first step (about 10 lr on every
    # parameter of this linear-enough network) into an overflow: smaller steps there
    lr = 0.001 if loss == "poisson" else 0.01
    for make in (lambda: fastwb.Adam(lr=lr, clip_value=0.5), lambda: fastwb.RMSprop(lr=lr),
                 lambda: fastwb.SGD(lr=5 * lr, momentum=0.9)):
        mine, theirs = make(), make()
        for step in range(2):
            close(compiled.train_step(X, y, mine), reference.train_step(X, y, theirs),
                  f"loss of step {step}")
            close(compiled.parameters, reference.parameters, f"parameters after step {step}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("level", SUPPORTED)
def test_finiteness_scan_finds_every_position(level, bad, dtype, simd_level):
    # 67 values: a bad one in the vector body, in the remainder and at either end
    simd_level(level)
    net = fastwb.Network([67, 2], dtype=dtype, seed=0)
    for position in range(67):
        X = np.ones((1, 67), dtype=dtype)
        X[0, position] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            net.predict(X)
    assert np.all(np.isfinite(net.predict(np.ones((3, 67), dtype=dtype))))


def test_levels_are_reported_in_order():
    assert COMPILED[0] == SUPPORTED[0] == "baseline"
    assert set(SUPPORTED) <= set(COMPILED) <= set(_core.SIMD_LEVELS)
    assert list(COMPILED) == [level for level in _core.SIMD_LEVELS if level in COMPILED]
    if not os.environ.get("FASTWB_SIMD"):
        assert DEFAULT == SUPPORTED[-1], "without FASTWB_SIMD the best level runs"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or sys.platform == "win32",
                    reason="the x86-64 levels are compiled by GCC and clang on x86-64")
def test_x86_builds_compile_every_level():
    assert COMPILED == _core.SIMD_LEVELS


def test_set_simd_level_refuses_unknown_levels(simd_level):
    before = _core.simd_levels()[2]
    with pytest.raises(ValueError, match="unknown SIMD level 'sse9'"):
        simd_level("sse9")
    assert _core.simd_levels()[2] == before


@pytest.mark.skipif(set(SUPPORTED) == set(_core.SIMD_LEVELS),
                    reason="this CPU runs every level")
def test_set_simd_level_refuses_levels_this_cpu_lacks(simd_level):
    before = _core.simd_levels()[2]
    for level in _core.SIMD_LEVELS:
        if level not in SUPPORTED:
            with pytest.raises(ValueError, match="cannot run|has no"):
                simd_level(level)
    assert _core.simd_levels()[2] == before


@pytest.mark.parametrize("level", SUPPORTED)
def test_set_simd_level_switches_and_returns_the_previous(level, simd_level):
    before = _core.simd_levels()[2]
    assert simd_level(level) == before
    assert _core.simd_levels()[2] == level
    assert fastwb.show_config(mode="dicts")["Runtime"]["simd"]["selected"] == level


def _import_with(value):
    """(selected level, warnings text) of a fresh interpreter with FASTWB_SIMD=value."""
    env = dict(os.environ, FASTWB_SIMD=value)
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import fastwb._core as c; print(c.simd_levels()[2])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=os.path.dirname(os.path.abspath(__file__)), check=True)
    return result.stdout.strip(), result.stderr


@pytest.mark.parametrize("level", SUPPORTED)
def test_environment_selects_a_supported_level(level):
    selected, errors = _import_with(level)
    assert selected == level
    assert "FASTWB_SIMD" not in errors


def test_environment_with_an_unknown_level_warns_and_uses_the_best():
    selected, errors = _import_with("avx9000")
    assert selected == SUPPORTED[-1]
    assert "RuntimeWarning" in errors and "FASTWB_SIMD='avx9000' is not one of" in errors


def test_environment_with_a_level_the_cpu_lacks_warns_and_uses_the_best(monkeypatch):
    # _select_simd_level asks simd_levels() what the CPU supports: pretend it lacks avx512
    monkeypatch.setenv("FASTWB_SIMD", "avx512")
    monkeypatch.setattr(_core, "simd_levels", lambda: (COMPILED, ("baseline",), "baseline"))
    try:
        with pytest.warns(RuntimeWarning, match="FASTWB_SIMD='avx512' is not supported by "
                                                "this CPU or this build.*uses baseline"):
            _core._select_simd_level()
        monkeypatch.undo()
        assert _core.simd_levels()[2] == "baseline"
    finally:
        _core.set_simd_level(DEFAULT)


def test_default_import_does_not_warn():
    env = {k: v for k, v in os.environ.items() if k != "FASTWB_SIMD"}
    result = subprocess.run([sys.executable, "-W", "error", "-c", "import fastwb"],
                            capture_output=True, text=True, env=env,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    assert result.returncode == 0, result.stderr
