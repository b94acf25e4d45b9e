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
    monkeypatch.chdir(tmp_path)          # the save example writes a file
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short examples stop before converging
        exec(compile(BLOCKS[index], "README.md", "exec"), namespace)
    if "net" in namespace:               # the Network example
        assert namespace["probabilities"].shape == (256, 3)
    if "clf" in namespace:
        assert hasattr(namespace["clf"], "coefs_")
