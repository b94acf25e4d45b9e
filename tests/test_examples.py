"""The example scripts run and show what they say."""
import pathlib
import runpy

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_balanced_class_weights_catch_more_fraud(capsys):
    results = runpy.run_path(str(EXAMPLES / "imbalanced_fraud.py"))["main"]()
    plain, balanced = results["plain loss"], results['class_weight="balanced"']
    assert balanced["recall"] > plain["recall"] + 0.1
    assert "caught" in capsys.readouterr().out
