"""The README's usage examples run as written."""
import pathlib
import re
import warnings

import pytest

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    if "sklearn" in BLOCKS[index]:
        pytest.importorskip("sklearn")
    if "WandbCallback" in BLOCKS[index]:
        pytest.importorskip("matplotlib")
        wandb = pytest.importorskip("wandb")
        for name, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"),
                            ("WANDB_DIR", str(tmp_path)), ("WANDB_CONSOLE", "off"),
                            ("WANDB_CONFIG_DIR", str(tmp_path)),
                            ("WANDB_CACHE_DIR", str(tmp_path)),
                            ("WANDB_DATA_DIR", str(tmp_path))):
            monkeypatch.setenv(name, value)     # no network: the run is written to tmp_path
        wandb.teardown()                        # settings are read at the first setup
    monkeypatch.chdir(tmp_path)          # the save example writes a file
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short examples stop before converging
        exec(compile(BLOCKS[index], "README.md", "exec"), namespace)
    if "probabilities" in namespace:     # the Network example
        assert namespace["probabilities"].shape == (256, 3)
    if "clf" in namespace:
        assert hasattr(namespace["clf"], "coefs_")
    if "monitor" in namespace:           # the Monitor example
        assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
            "loss.png", "training.png", "weights.png"]
        assert (tmp_path / "monitor.csv").stat().st_size > 0
        __import__("wandb").teardown()
