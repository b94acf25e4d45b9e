"""The ``fastwb`` command's manners: a reader that leaves early, Ctrl-C during
training, the validation curve of ``--plots``, and progress while the demo's
scikit-learn fit runs. The pipes and signals are real, between real processes."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastwb
from fastwb import plots
from fastwb.cli import common, demo, main, preprocessing, train

pytest.importorskip("sklearn")

#: The source tree (or installation) this process imported fastwb from, for the children.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastwb.__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
FASTWB = [sys.executable, "-m", "fastwb"]


def _classes(n, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A model, and data to predict whose CSV output is a few lines or megabytes."""
    path = tmp_path_factory.mktemp("details")
    X, y = _classes(200_000)
    np.savez(path / "large.npz", X=X, y=y)
    np.savez(path / "small.npz", X=X[:5], y=y[:5])
    np.savez(path / "train.npz", X=X[:300], y=y[:300])
    assert main(["train", str(path / "train.npz"), "--epochs", "2", "--hidden", "4",
                 "--out", str(path / "model.fwb")]) == 0
    return path


def _quiet(stderr: str) -> None:
    for noise in ("Traceback", "Exception ignored", "BrokenPipeError", "Errno 32"):
        assert noise not in stderr, stderr


# --- a reader that leaves early -------------------------------------------------------------

PIPED = {
    "predict small": ["predict", "model.fwb", "small.npz"],
    "predict large": ["predict", "model.fwb", "large.npz"],
    "info": ["info", "model.fwb"],
    "help": ["--help"],
    "predict --help": ["predict", "--help"],
}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
@pytest.mark.parametrize("argv", PIPED.values(), ids=PIPED.keys())
@pytest.mark.parametrize("reads", [0, 1], ids=["reads nothing", "reads a line"])
def test_a_reader_that_leaves_early_ends_the_command_quietly_with_status_0(
        argv, reads, folder):
    """Status 0 whatever was written before the reader left: a large output (MBs,
    far more than a pipe holds) breaks the pipe while writing, a small one only
    at the end, or not at all, and the three look the same."""
    child = subprocess.Popen(FASTWB + argv, cwd=folder, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    lines = [child.stdout.readline() for _ in range(reads)]
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, stderr
    _quiet(stderr)
    assert all(lines), "the command wrote its first line before the reader left"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
@pytest.mark.parametrize("argv, status", [(["nope"], 2), (["predict", "gone.fwb", "small.npz"], 1)],
                         ids=["bad command line", "missing model"])
def test_a_failure_keeps_its_status_when_the_reader_of_stderr_has_gone(argv, status, folder):
    child = subprocess.Popen(FASTWB + argv, cwd=folder, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    child.stderr.close()
    assert child.wait(timeout=120) == status


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell")
@pytest.mark.parametrize("data", ["small.npz", "large.npz"])
def test_predict_piped_to_head_under_pipefail(data, folder):
    """What a shell script with ``set -o pipefail`` sees: success, whatever the size."""
    command = (f"set -o pipefail; {' '.join(FASTWB)} predict model.fwb {data} | head -n 2")
    result = subprocess.run(["bash", "-c", command], cwd=folder, env=ENV, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "prediction"
    assert len(result.stdout.splitlines()) == 2
    _quiet(result.stderr)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell")
@pytest.mark.parametrize("pipeline", ["| true", "2>&1 | head -n 1"])
def test_train_outlives_a_reader_of_its_log_that_leaves(pipeline, folder, tmp_path):
    """train's output is a log, its product the model file: a reader that leaves
    (before anything was written, or during the progress bar) does not stop it
    before the save."""
    command = (f"set -o pipefail; {' '.join(FASTWB)} train {folder / 'train.npz'} "
               f"--epochs 300 --hidden 64 --out model.fwb {pipeline}")
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=ENV, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    _quiet(result.stderr)
    assert preprocessing.estimator_of(fastwb.load(tmp_path / "model.fwb")).n_iter_ > 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
def test_the_demo_piped_to_a_reader_that_leaves(tmp_path):
    child = subprocess.Popen(FASTWB + ["demo", "--epochs", "2", "--hidden", "8", "--no-compare"],
                             cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdout.readline().startswith(b"fastwb ")
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, stderr
    _quiet(stderr)


# --- Ctrl-C during training ------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT from another process is POSIX")
@pytest.mark.parametrize("existing", [None, b"an earlier model, to be kept as it is"],
                         ids=["no model before", "a model before"])
def test_ctrl_c_during_train_exits_130_and_writes_no_model(existing, tmp_path, default_sigint):
    """The child starts with SIGINT at its default (the fixture), so Python turns
    it into KeyboardInterrupt as in a terminal; the epochs are slow (wide layers),
    so the signal lands during training."""
    X, y = _classes(4_000, n_features=20)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    if existing is not None:
        (tmp_path / "model.fwb").write_bytes(existing)
    before = sorted(os.listdir(tmp_path))
    child = subprocess.Popen(FASTWB + ["train", "data.npz", "--hidden", "512,512",
                                       "--epochs", "500", "--out", "model.fwb"],
                             cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        for line in child.stdout:                 # the last line before training starts
            if line.startswith("training MLPClassifier"):
                break
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr
    assert "fastwb: interrupted: training stopped after" in stderr
    assert "Traceback" not in stderr and "saved" not in stdout
    assert sorted(os.listdir(tmp_path)) == before          # no model, no temporary file
    if existing is not None:
        assert (tmp_path / "model.fwb").read_bytes() == existing


def test_an_interrupted_fit_raises_keyboard_interrupt_with_the_epochs_run(default_sigint):
    """scikit-learn's MLP ends fit quietly on Ctrl-C (a warning); the demo's timed
    fit turns that back into KeyboardInterrupt, so the command stops with 130."""
    from sklearn.neural_network import MLPClassifier
    X, y = _classes(3_000, n_features=20)
    estimator = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=10_000, tol=0.0,
                              n_iter_no_change=10_000, random_state=0)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match=r"scikit-learn's fit stopped after \d+ "
                                                    r"epochs"):
            demo.timed_fit_with_progress(estimator, X, y)
    finally:
        timer.cancel()
    assert estimator.n_iter_ < 10_000                  # stopped by the signal


# --- the validation curve of --plots -------------------------------------------------------

@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_plots_with_a_validation_fraction_draw_the_validation_loss(kind, tmp_path, monkeypatch,
                                                                    capsys):
    pytest.importorskip("matplotlib")
    X, y = _classes(400)
    task = "classify"
    if kind == "binary":
        y = np.where(y > 0, "yes", "no")
    elif kind == "regression":
        y, task = X @ [1.0, -2.0, 0.5] + 0.1, "regress"
    np.savez(tmp_path / "data.npz", X=X, y=y)
    followed = []

    def spy(monitor, directory, X=None, y=None):
        followed.append(monitor)
        return plots.save_plots(monitor, directory, X, y)

    monkeypatch.setattr(common, "save_plots", spy)
    assert main(["train", str(tmp_path / "data.npz"), "--epochs", "12", "--hidden", "8",
                 "--dtype", "float64", "--val-fraction", "0.25", "--out",
                 str(tmp_path / "model.fwb"), "--plots", str(tmp_path / "plots")]) == 0
    capsys.readouterr()
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 0
    monitor, = followed
    recorded = [e["val_loss"] for e in monitor.epochs]
    assert len(recorded) == 12 and all(np.isfinite(recorded))
    figure = plots.loss_curves(monitor)
    training, validation = figure.axes[0].lines[:2]
    assert validation.get_label() == "validation loss"
    np.testing.assert_array_equal(validation.get_xdata(), range(1, 13))
    np.testing.assert_array_equal(validation.get_ydata(), recorded)
    # the last point is the trained network's loss on the rows train held out, as
    # the network sees them (standardized features, a standardized target)
    saved = fastwb.load(tmp_path / "model.fwb")
    model = preprocessing.estimator_of(saved)
    X_train, X_val, y_train, y_val = train._split(X, y, 0.25, task, 0)
    X_val, y_val = preprocessing.network_data(saved, X_val, y_val)
    X_train, y_train = preprocessing.network_data(saved, X_train, y_train)
    assert recorded[-1] == pytest.approx(model.network.loss(X_val, _targets(model, y_val)),
                                         rel=1e-12)
    # not the training rows' loss under another name
    assert recorded[-1] != pytest.approx(model.network.loss(X_train, _targets(model, y_train)))


def _targets(model, y):
    """``y`` as the estimator's network is trained on it."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return y.reshape(-1, 1)
    index = np.searchsorted(classes, y)
    return index if len(classes) > 2 else index.astype(float).reshape(-1, 1)


def test_without_plots_no_validation_loss_is_computed(tmp_path):
    """The per-epoch validation pass costs a forward pass: only for the plots."""
    assert common.monitor_callbacks(None, object(), np.zeros((2, 2)), np.zeros(2)) == []
    monitor = fastwb.Monitor()
    assert common.monitor_callbacks(monitor, object()) == [monitor]


# --- progress while the demo's scikit-learn fit runs -----------------------------------------

def test_the_scikit_learn_fit_shows_the_progress_bar_of_fastwb_fits(capsys):
    from sklearn.neural_network import MLPClassifier
    X, y = _classes(300)
    estimator = MLPClassifier(hidden_layer_sizes=(8,), max_iter=6, random_state=0)
    seconds = demo.timed_fit_with_progress(estimator, X, y, interval=0.001)
    err = capsys.readouterr().err
    assert seconds > 0 and estimator.n_iter_ == 6
    assert "6/6" in err                                          # the bar reached the end
    assert f"loss={estimator.loss_curve_[-1]:.4g}" in err        # with the last epoch's loss


def test_the_demo_comparison_shows_progress_for_both_fits(capsys):
    results = demo.run(epochs=3, seed=1, hidden=(16,))
    err = capsys.readouterr().err
    assert results["sklearn_epochs"] == 3
    assert err.count("3/3") >= 2, err          # fastwb's bar, then scikit-learn's


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="Linux's /dev/full")
@pytest.mark.parametrize("command", ["predict", "info", "predict --out"])
def test_a_full_disk_is_one_line_and_status_1(command, folder, tmp_path):
    model = folder / "model.fwb"
    argv = {"predict": ["predict", model, folder / "train.npz"], "info": ["info", model],
            "predict --out": ["predict", model, folder / "train.npz", "--out", "/dev/full"]}
    stdout = open("/dev/full", "w") if command != "predict --out" else subprocess.DEVNULL
    try:
        result = subprocess.run([*FASTWB, *map(str, argv[command])], cwd=tmp_path, env=ENV,
                                stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120,
                                check=False)
    finally:
        if stdout is not subprocess.DEVNULL:
            stdout.close()
    assert result.returncode == 1, result.stderr
    assert result.stderr == "fastwb: error: cannot write the output: No space left on device\n"
    assert os.path.exists("/dev/full")
