"""The README's usage examples run as written."""
import pathlib
import re
import shlex
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
    if "fastwb.distributed" in BLOCKS[index]:
        pytest.importorskip("mpi4py")
    if "fastwb.onnx" in BLOCKS[index]:
        pytest.importorskip("onnxruntime")
        pytest.importorskip("skl2onnx")
    if "WandbCallback" in BLOCKS[index]:
        pytest.importorskip("matplotlib")
        wandb = pytest.importorskip("wandb")
        monkeypatch.setenv("WANDB_MODE", "unset")   # recorded, so the example's own
        monkeypatch.delenv("WANDB_MODE")            # setting is undone after the test
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
        for name, value in (("WANDB_SILENT", "true"),
                            ("WANDB_DIR", str(tmp_path)), ("WANDB_CONSOLE", "off"),
                            ("WANDB_CONFIG_DIR", str(tmp_path)),
                            ("WANDB_CACHE_DIR", str(tmp_path)),
                            ("WANDB_DATA_DIR", str(tmp_path))):
            monkeypatch.setenv(name, value)     # quiet, and every file under tmp_path
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


SHELL_BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
SHELL_LINES = [line.split("#")[0].strip() for block in SHELL_BLOCKS
               for line in block.splitlines() if line.split("#")[0].strip()]


def test_readme_shell_commands_name_real_commands_files_and_options():
    """Every runnable shell line names a fastwb command line the parser accepts,
    or a script, a pip install or a test command that exists; synopses are
    ```text blocks and not checked here."""
    from fastwb.cli import build_parser
    root = pathlib.Path(__file__).resolve().parents[1]
    for line in SHELL_LINES:
        for command in line.split("&&"):
            words = shlex.split(command)
            if words[0] == "fastwb":
                build_parser().parse_args(words[1:])    # exits (SystemExit) when it does not
            elif words[0] == "python":
                assert (root / words[1]).is_file(), line
            elif words[0] in ("tools/build_wheels.sh", "tools/check_sdist.sh"):
                assert (root / words[0]).is_file(), line
            else:
                assert words[:2] == ["pip", "install"] or words[0] == "pytest", line
