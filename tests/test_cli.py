"""The ``fastwb`` command: demo, train, predict and info, and its one-line errors."""
import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import fastwb
from fastwb import _estimator_params, saving
from fastwb.cli import demo, main, tables
from fastwb.cli.preprocessing import estimator_of

pytest.importorskip("sklearn")

SPECIES = np.array(["setosa", "versicolor", "virginica"])


def _flowers(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = SPECIES[(X[:, 0] > 0.4).astype(int) + (X[:, 1] > 0).astype(int)]
    return X, labels


def _write_csv(path, names, columns):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*columns))


def _run(capsys, *argv):
    """main(argv) in this process: (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_line_error(status, err, expected):
    assert status in (1, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastwb: error: "), err
    assert expected in lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A classification CSV (text labels, the target in the middle), a regression
    .npz, and the models trained on them (a few epochs each)."""
    folder = tmp_path_factory.mktemp("cli")
    X, labels = _flowers()
    flowers = folder / "flowers.csv"
    _write_csv(flowers, ["petal", "sepal", "species", "stem"],
               [X[:, 0].round(4), X[:, 1].round(4), labels, X[:, 2].round(4)])
    rng = np.random.default_rng(1)
    Xr = rng.normal(size=(80, 4))
    heights = folder / "heights.npz"
    np.savez(heights, X=Xr, y=Xr[:, 0] - 0.5 * Xr[:, 1])
    assert main(["train", str(flowers), "--target", "species", "--hidden", "8",
                 "--epochs", "5", "--out", str(folder / "flowers.fwb")]) == 0
    assert main(["train", str(heights), "--hidden", "8,4", "--epochs", "5", "--dtype",
                 "float64", "--out", str(folder / "heights.fwb")]) == 0
    return folder


def _read_predictions(path_or_text):
    text = path_or_text if isinstance(path_or_text, str) else path_or_text.read_text()
    return list(csv.DictReader(io.StringIO(text)))


# --- demo --------------------------------------------------------------------------------

def test_demo_trains_on_the_digits_and_compares_with_scikit_learn(capsys):
    results = demo.run(epochs=3, seed=1, hidden=(16,))
    out = capsys.readouterr().out
    assert results["epochs"] == results["sklearn_epochs"] == 3
    assert len(results["loss_curve"]) == 3
    assert results["loss_curve"][-1] < results["loss_curve"][0]
    assert 0 <= results["accuracy"] <= 1 and 0 <= results["sklearn_accuracy"] <= 1
    assert f"test accuracy: {results['accuracy']:.1%}" in out
    assert results["speedup"] > 0
    # network.summary(X_test): per layer, W and b, and the activations on the test digits
    layers = results["layers"]
    assert [(row["layer"], row["shape"], row["activation"]) for row in layers] == [
        (1, (64, 16), "relu"), (2, (16, 10), "softmax")]
    assert all(row["weight_norm"] > 0 and row["mean_activation"] is not None for row in layers)
    assert "plots" not in results
    for needed in ("loss per epoch", "test accuracy", "weights and biases", "L2 norm",
                   "Network [64, 16, 10]", "fastwb fit", "scikit-learn"):
        assert needed in out
    # the demo's own lines fit 80 columns (the summary's table, up to a blank line, is wider)
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Network [")))
    end = lines.index("", start)
    assert max(len(line) for line in lines[:start] + lines[end:]) <= 80


def test_demo_command_without_the_comparison_writes_plots(capsys, tmp_path):
    folder = tmp_path / "plots"
    status, out, err = _run(capsys, "demo", "--epochs", "2", "--hidden", "8", "--no-compare",
                            "--plots", folder)
    assert status == 0, err
    assert "test accuracy" in out and "fastwb fit" not in out
    assert "Traceback" not in err
    # 64 inputs: no decision boundary
    names = ["loss.png", "weights.png", "training.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {folder / name}" in out
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_table_samples_long_runs():
    curve = list(np.geomspace(2.0, 0.01, 200))
    lines = demo.loss_table(curve)
    epochs = [int(line.split()[0]) for line in lines[1:]]
    assert epochs[0] == 1 and epochs[-1] == 200 and len(epochs) == 10
    assert len(demo.loss_table(curve[:5])) == 6          # every epoch of a short run


# --- train, predict, info ------------------------------------------------------------------

# the tests predict with the loaded model on bare arrays, as the command does
IGNORE_NAMES = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


@IGNORE_NAMES
def test_classifier_round_trip_on_csv_with_text_labels(files, capsys, tmp_path):
    model = saving.load(files / "flowers.fwb")
    assert list(model.classes_) == list(SPECIES)
    assert list(model.feature_names_in_) == ["petal", "sepal", "stem"]

    out_file = tmp_path / "predictions.csv"
    status, out, err = _run(capsys, "predict", files / "flowers.fwb", files / "flowers.csv",
                            "--proba", "--out", out_file)
    assert status == 0 and out == ""
    assert "ignoring the column(s) species" in err
    rows = _read_predictions(out_file)
    X, labels = _flowers()
    assert len(rows) == len(labels)
    assert list(rows[0]) == ["prediction"] + [f"proba_{s}" for s in SPECIES]
    expected = model.predict(X.round(4))
    assert [row["prediction"] for row in rows] == list(expected)
    totals = [sum(float(row[f"proba_{s}"]) for s in SPECIES) for row in rows]
    np.testing.assert_allclose(totals, 1.0, atol=1e-5)

    # with --target the score goes to stderr, the CSV to stdout
    status, out, err = _run(capsys, "predict", files / "flowers.fwb", files / "flowers.csv",
                            "--target", "species")
    assert status == 0
    assert [row["prediction"] for row in _read_predictions(out)] == list(expected)
    accuracy = float(np.mean(expected == labels))
    assert f"accuracy on {len(labels)} samples" in err and f"{accuracy:.4f}" in err


@IGNORE_NAMES
def test_predict_matches_columns_by_name(files, capsys, tmp_path):
    X, _ = _flowers()
    shuffled = tmp_path / "shuffled.csv"
    _write_csv(shuffled, ["stem", "petal", "sepal"],
               [X[:, 2].round(4), X[:, 0].round(4), X[:, 1].round(4)])
    status, out, _ = _run(capsys, "predict", files / "flowers.fwb", shuffled)
    assert status == 0
    expected = saving.load(files / "flowers.fwb").predict(X.round(4))
    assert [row["prediction"] for row in _read_predictions(out)] == list(expected)


def test_regressor_round_trip_on_npz(files, capsys):
    status, out, err = _run(capsys, "predict", files / "heights.fwb", files / "heights.npz",
                            "--target", "y")
    assert status == 0 and "R^2 on 80 samples" in err
    predicted = np.array([float(row["prediction"]) for row in _read_predictions(out)])
    with np.load(files / "heights.npz") as data:
        expected = saving.load(files / "heights.fwb").predict(data["X"])
    np.testing.assert_array_equal(predicted, expected)     # shortest repr reads back exactly


def test_train_prints_scores_and_npz_options(capsys, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 2))
    data = tmp_path / "digits.npz"
    np.savez(data, X=X, label=(X[:, 0] > 0).astype(np.int64),
             feature_names=np.array(["left", "right"]))
    model = tmp_path / "m.fwb"
    status, out, err = _run(capsys, "train", data, "--target", "label", "--epochs", "3",
                            "--hidden", "4", "--val-fraction", "0.25", "--out", model)
    assert status == 0, err
    assert "classification, 2 classes (0, 1)" in out
    assert "training on 45, validating on 15" in out
    assert "training accuracy" in out and "validation accuracy" in out
    assert f"saved {model}" in out
    assert "fastwb: warning: the loss was still improving" in err
    assert "3/3" in err                       # the progress bar, over the epochs
    loaded = saving.load(model)
    assert estimator_of(loaded).callbacks is None     # the bar was this run's only
    assert list(loaded.classes_) == [0, 1] and list(loaded.feature_names_in_) == ["left",
                                                                                 "right"]


def test_train_takes_the_newer_activations(capsys, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    data = tmp_path / "d.npz"
    np.savez(data, X=X, y=X[:, 0] - X[:, 1])
    model = tmp_path / "m.fwb"
    status, _, err = _run(capsys, "train", data, "--epochs", "2", "--hidden", "4",
                          "--activation", "silu", "--out", model)
    assert status == 0, err
    assert estimator_of(saving.load(model)).network.activations == ("swish", "identity")


def test_train_writes_plots_and_the_decision_boundary_of_two_features(capsys, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2))
    data = tmp_path / "two.csv"
    _write_csv(data, ["x1", "x2", "side"], [X[:, 0].round(4), X[:, 1].round(4),
                                            np.where(X[:, 0] + X[:, 1] > 0, "up", "down")])
    folder = tmp_path / "out" / "plots"
    status, out, err = _run(capsys, "train", data, "--target", "side", "--epochs", "3",
                            "--hidden", "4", "--plots", folder, "--out", tmp_path / "m.fwb")
    assert status == 0, err
    names = ["loss.png", "weights.png", "training.png", "decision_boundary.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {folder / name}" in out
        assert (folder / name).stat().st_size > 0
    # the monitor was this run's
    assert estimator_of(saving.load(tmp_path / "m.fwb")).callbacks is None


def test_plots_without_matplotlib_fail_before_training(files, capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = _run(capsys, "train", files / "flowers.csv", "--target", "species",
                            "--plots", tmp_path, "--out", tmp_path / "m.fwb")
    _assert_one_line_error(status, err, 'pip install "fastwb[plots]"')
    assert "training" not in out and not (tmp_path / "m.fwb").exists()


def test_info_describes_a_model_without_training(files, capsys):
    status, out, _ = _run(capsys, "info", files / "flowers.fwb")
    assert status == 0
    assert out.startswith(f"{files / 'flowers.fwb'}: Pipeline, file format 1, "
                          f"written by fastwb {fastwb.__version__}")
    assert "mlp: MLPClassifier (fastwb)" in out
    assert "preprocessing: 3 numeric columns: imputed (training medians), standardized" in out
    assert "hidden_layer_sizes=(8,)" in out
    assert "classes: 3: setosa, versicolor, virginica" in out
    assert "features: 3: petal, sepal, stem" in out
    assert "5 epochs" in out
    assert " 59\n" in out                  # 3*8+8 + 8*3+3 parameters in all
    status, out, _ = _run(capsys, "info", files / "heights.fwb")
    assert status == 0 and "MLPRegressor" in out and "float64" in out and "identity" in out
    assert max(len(line) for line in out.splitlines()[1:]) <= 80    # after the file's name



def test_info_and_load_read_estimator_parameters_with_one_decoder():
    """fastwb info reads the header with the decoder fastwb.load uses (no copy)."""
    from fastwb import sklearn
    from fastwb.cli import info
    assert info.decode is sklearn._decode is _estimator_params.decode
    assert sklearn._encode is _estimator_params.encode
    value = {"hidden_layer_sizes": (8, 4), "class_weight": {0: 1.0, "b": 2.5}, "list": [1, (2,)]}
    assert _estimator_params.decode(_estimator_params.encode(value)) == value
    with pytest.raises(ValueError, match="unexpected value"):
        _estimator_params.decode({"float": "nan"})

def test_a_saved_network_predicts_and_describes_itself(capsys, tmp_path):
    net = fastwb.Network([3, 5, 2], loss="softmax_cross_entropy", seed=0)
    fastwb.save(net, tmp_path / "net.fwb")
    X = np.random.default_rng(0).normal(size=(4, 3))
    np.savez(tmp_path / "x.npz", X=X)
    status, out, _ = _run(capsys, "predict", tmp_path / "net.fwb", tmp_path / "x.npz")
    assert status == 0
    rows = _read_predictions(out)
    outputs = net.predict(X.astype(np.float32))
    written = np.array([[r["output_0"], r["output_1"]] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(written, outputs)     # float32's shortest repr reads back
    status, out, _ = _run(capsys, "info", tmp_path / "net.fwb")
    assert status == 0 and "fastwb network" in out and "softmax" in out


@pytest.mark.parametrize("task, values, expected", [
    ("auto", np.array(["a", "b", "a"]), "classify"),
    ("auto", np.array([True, False, True]), "classify"),
    ("auto", np.arange(40) % 3, "classify"),
    ("auto", np.arange(40), "regress"),                 # 40 distinct integers
    ("auto", np.linspace(0, 1, 40), "regress"),
    ("auto", np.tile([0.0, 1.0, 2.0], 10), "classify"),    # whole floats
    ("auto", np.array([0, 1, 2, 3]), "regress"),        # as many values as samples
    ("regress", np.arange(40) % 3, "regress"),
    ("classify", np.arange(40), "classify"),
])
def test_the_task_follows_the_target(task, values, expected):
    assert tables.choose_task(task, values, "y") == expected


# --- errors: one line, no traceback --------------------------------------------------------

def _corrupt(files, tmp_path):
    data = bytearray((files / "flowers.fwb").read_bytes())
    data[-40] ^= 0xFF                   # in the data: only the checksum tells
    (tmp_path / "bad.fwb").write_bytes(bytes(data))
    return tmp_path / "bad.fwb"


def _truncate(files, tmp_path):
    data = (files / "flowers.fwb").read_bytes()
    (tmp_path / "short.fwb").write_bytes(data[:100])
    return tmp_path / "short.fwb"


def _csv(name, text):
    def make(files, tmp_path):
        (tmp_path / name).write_text(text)
        return tmp_path / name
    return make


def _npz(**arrays):
    def make(files, tmp_path):
        np.savez(tmp_path / "data.npz", **arrays)
        return tmp_path / "data.npz"
    return make


def _flowers_csv(files, tmp_path):
    return files / "flowers.csv"


ERRORS = {
    "missing data file": (["train", "{tmp}/nope.csv", "--target", "y"],
                          "data file not found"),
    "missing model file": (["predict", "{tmp}/nope.fwb", "{flowers}"], "model file not found"),
    "missing model for info": (["info", "{tmp}/nope.fwb"], "model file not found"),
    "no target named": (["train", "{flowers}"], "name the column to predict with --target"),
    "unknown column": (["train", "{flowers}", "--target", "petals"],
                       "unknown column 'petals'"),
    "unknown column at predict": (["predict", "{model}", "{flowers}", "--target", "nope"],
                                  "unknown column 'nope'"),
    "non-numeric feature": (["train", "{flowers}", "--target", "petal", "--no-encode"],
                            "column 'species' is not numeric"),
    "empty value": (["train", _csv("gap.csv", "a,b,y\n1,2,x\n3,,y\n"), "--target", "y",
                     "--no-impute"],
                    "line 3: column 'b' is empty"),
    "ragged row": (["train", _csv("ragged.csv", "a,b,y\n1,2,x\n3,4\n"), "--target", "y"],
                   "line 3: 2 values, but the header has 3 columns"),
    "empty csv": (["train", _csv("empty.csv", ""), "--target", "y"], "is empty"),
    "header only": (["train", _csv("header.csv", "a,y\n"), "--target", "y"], "no rows"),
    "duplicate column": (["train", _csv("dup.csv", "a,a,y\n1,2,3\n"), "--target", "y"],
                         "names the column 'a' twice"),
    "not utf-8": (["train", "{model}", "--target", "y"], "not a text (CSV) file"),
    "one class": (["train", _csv("one.csv", "a,y\n1,x\n2,x\n"), "--target", "y"],
                  "single class"),
    "fractional labels": (["train", _csv("frac.csv", "a,y\n1,0.5\n2,1.5\n"), "--target", "y",
                           "--task", "classify"], "not class labels"),
    "text to regress": (["train", "{flowers}", "--target", "species", "--task", "regress"],
                        "regression needs numbers"),
    "npz without X": (["train", _npz(features=np.ones((3, 2)), y=np.ones(3)), "--target", "y"],
                      "has no array 'X'"),
    "npz without y": (["train", _npz(X=np.ones((3, 2)))], "no array 'y'"),
    "npz with objects": (["train", _npz(X=np.array([[1, "a"]], dtype=object), y=np.ones(1))],
                         "holds Python objects"),
    "npz 1-D X": (["train", _npz(X=np.ones(3), y=np.ones(3))], "must be 2-D"),
    "npz y length": (["train", _npz(X=np.ones((3, 2)), y=np.ones(4))], "one value"),
    "corrupted model": (["predict", _corrupt, "{flowers}"], "corrupted or was modified"),
    "truncated model": (["info", _truncate], "truncated"),
    "not a model": (["info", "{flowers}"], "not a fastwb model file"),
    "wrong number of features": (["predict", "{regressor}", _npz(X=np.ones((3, 2)))],
                                 "takes 4 features"),
    "missing feature column": (["predict", "{model}", _csv("few.csv", "petal,stem\n1,2\n")],
                               "lacks the column(s) sepal"),
    "proba of a regressor": (["predict", "{regressor}", "{heights}", "--proba"],
                             "--proba needs a classifier"),
    "output directory": (["train", "{flowers}", "--target", "species", "--out",
                          "{tmp}/no/such/dir/m.fwb"], "does not exist"),
    "bad hidden": (["train", "{flowers}", "--target", "species", "--hidden", "64,x"],
                   "argument --hidden"),
    "zero epochs": (["train", "{flowers}", "--target", "species", "--epochs", "0"],
                    "argument --epochs: expected a positive integer"),
    "bad fraction": (["train", "{flowers}", "--target", "species", "--val-fraction", "1"],
                     "argument --val-fraction"),
    "negative rate": (["train", "{flowers}", "--target", "species", "--lr", "-1"],
                      "argument --lr"),
    "bad task": (["train", "{flowers}", "--target", "species", "--task", "cluster"],
                 "invalid choice: 'cluster'"),
    "plots into a file": (["train", "{flowers}", "--target", "species", "--plots",
                           "{flowers}"], "exists and is not a directory"),
    "demo plots into a file": (["demo", "--plots", "{flowers}"],
                               "exists and is not a directory"),
    "unknown option": (["demo", "--fast"], "unrecognized arguments: --fast"),
    "unknown command": (["fly"], "invalid choice: 'fly'"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_expected_failures_are_one_line(case, files, capsys, tmp_path):
    argv, expected = ERRORS[case]
    names = {"tmp": tmp_path, "flowers": files / "flowers.csv", "heights": files / "heights.npz",
             "model": files / "flowers.fwb", "regressor": files / "heights.fwb"}
    argv = [arg(files, tmp_path) if callable(arg) else arg.format(**names) for arg in argv]
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit_:          # argparse's errors exit
        status = exit_.code
    err = capsys.readouterr().err
    _assert_one_line_error(status, err, expected)
    assert status == (2 if "argument" in err or "invalid choice" in err else 1)


def test_no_command_shows_the_help(capsys):
    status, _, err = _run(capsys)
    assert status == 2 and "demo" in err and "train" in err and "predict" in err


# --- the real command ----------------------------------------------------------------------

def _command(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "fastwb", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          # the fastwb this test imported, wherever it is installed
                          env={**os.environ, "PYTHONPATH": os.path.dirname(
                              os.path.dirname(fastwb.__file__))})


def test_python_dash_m_fastwb_runs_a_command(files, tmp_path):
    result = _command("info", files / "heights.fwb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MLPRegressor" in result.stdout


def test_python_dash_m_fastwb_fails_in_one_line(tmp_path):
    result = _command("predict", "missing.fwb", "data.csv", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "fastwb: error: model file not found: missing.fwb\n"



@pytest.mark.parametrize("first", ["fastwb.sklearn", "fastwb._optional", "fastwb.cli.errors",
                                   "fastwb.cli.tables", "fastwb.cli.common", "fastwb.cli.demo",
                                   "fastwb.cli.info", "fastwb.cli"])
def test_the_command_line_imports_in_any_order_and_without_scikit_learn(first, tmp_path):
    """No import circle, whichever module comes first; and the version and info
    of a network need neither scikit-learn nor matplotlib."""
    fastwb.save(fastwb.Network([2, 3, 1], seed=0), tmp_path / "net.fwb")
    code = (f"import sys, {first}\n"
            "from fastwb.cli import main\n"
            "assert main(['--version']) == main(['info', 'net.fwb']) == 0\n"
            "loaded = {'sklearn', 'matplotlib'} & set(sys.modules)\n"
            f"assert not loaded or {first!r} == 'fastwb.sklearn', loaded\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False,
                            env={**os.environ, "PYTHONPATH": os.path.dirname(
                                os.path.dirname(fastwb.__file__))})
    assert result.returncode == 0, result.stderr

def _hide_from_import(monkeypatch, module):
    """Make ``import`` of the module fail as an uninstalled one would, and
    forget fastwb.sklearn so it is imported again."""
    for name in [m for m in sys.modules if m.startswith(module + ".")] + [module]:
        monkeypatch.setitem(sys.modules, name, None)   # its submodules too: they are cached
    monkeypatch.delitem(sys.modules, "fastwb.sklearn", raising=False)
    monkeypatch.delattr(fastwb, "sklearn", raising=False)


@pytest.mark.parametrize("argv", [["demo", "--epochs", "1", "--no-compare"],
                                  ["train", "flowers.csv", "--target", "species", "--out", "m.fwb"]])
def test_a_missing_scikit_learn_is_named_with_the_command_that_installs_it(
        argv, files, capsys, monkeypatch):
    _hide_from_import(monkeypatch, "sklearn")
    monkeypatch.chdir(files)
    status, _, err = _run(capsys, *argv)
    _assert_one_line_error(status, err, 'scikit-learn >= 1.7: pip install "fastwb[sklearn]"')


def test_a_model_file_of_an_estimator_names_the_missing_scikit_learn(files, capsys, monkeypatch):
    _hide_from_import(monkeypatch, "sklearn")
    status, _, err = _run(capsys, "predict", files / "flowers.fwb", files / "flowers.csv")
    _assert_one_line_error(status, err, "holds a scikit-learn estimator")


def test_another_import_failure_is_not_blamed_on_scikit_learn(files, capsys, monkeypatch):
    """scikit-learn installed, something else missing (as itertools.pairwise was
    on Python 3.9): the real ImportError comes through, not "install scikit-learn"."""
    _hide_from_import(monkeypatch, "scipy.optimize")
    with pytest.raises(ImportError) as info:
        main(["demo", "--epochs", "1", "--no-compare"])
    assert info.value.name == "scipy.optimize"
    assert "pip install" not in str(info.value)


def test_a_too_old_scikit_learn_is_named_with_its_version(files, capsys, monkeypatch):
    import sklearn
    monkeypatch.setattr(sklearn, "__version__", "1.6.1")
    monkeypatch.delitem(sys.modules, "fastwb.sklearn", raising=False)
    monkeypatch.delattr(fastwb, "sklearn", raising=False)
    status, _, err = _run(capsys, "demo", "--epochs", "1", "--no-compare")
    _assert_one_line_error(status, err, "scikit-learn >= 1.7")
    assert "found 1.6.1" in err
