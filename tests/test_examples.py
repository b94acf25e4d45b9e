"""The example scripts run and show what they say."""
import pathlib
import runpy
import warnings

import pytest

import fastwb

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_balanced_class_weights_catch_more_fraud(capsys):
    results = runpy.run_path(str(EXAMPLES / "imbalanced_fraud.py"))["main"]()
    plain, balanced = results["plain loss"], results['class_weight="balanced"']
    assert balanced["recall"] > plain["recall"] + 0.1
    assert "caught" in capsys.readouterr().out


def test_inspect_digits_writes_records_and_plots(capsys, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastwb.HealthWarning)   # the monitor may see overfitting
        results = runpy.run_path(str(EXAMPLES / "inspect_digits.py"))["main"](
            ["--out", str(out), "--epochs", "10"])
    printed = capsys.readouterr().out
    names = ["digits_monitor.csv", "digits_monitor.jsonl", "digits_loss.png",
             "digits_weights.png", "digits_training.png", "moons_decision_boundary.png"]
    assert [path.name for path in results["files"]] == names
    for path in results["files"]:
        assert path.parent == out and path.stat().st_size > 0
        assert f"wrote {path}" in printed
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one CSV row per state (initial + 10 epochs), layer (3) and W or b
    with open(out / "digits_monitor.csv") as f:
        assert sum(1 for _ in f) == 1 + 11 * 3 * 2
    assert results["digits_accuracy"] > 0.85 and results["moons_accuracy"] > 0.8
    for needed in ("Network [64, 64, 32, 10]", "weights and biases: initial -> after epoch 10",
                   "test accuracy"):
        assert needed in printed
