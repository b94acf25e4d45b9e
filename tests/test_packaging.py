"""What a user installs: honest metadata, and a clear error from an unbuilt source tree."""
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import fastwb

PACKAGE = pathlib.Path(fastwb.__file__).parent
#: The CPython versions fastwb supports, oldest first (pyproject.toml, CI, build_wheels.sh).
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


@pytest.fixture(scope="module")
def metadata():
    return importlib.metadata.metadata("fastwb")


def test_license_is_an_spdx_expression_with_its_file(metadata):
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata.get_all("License-File") == ["LICENSE"]
    files = importlib.metadata.files("fastwb")
    license_text = next(f for f in files if f.name == "LICENSE").read_text()
    assert "Redistribution and use in source and binary forms" in license_text


def test_supported_pythons_agree_and_include_this_one(metadata):
    assert metadata["Requires-Python"] == f">={SUPPORTED[0]}"
    listed = [c.rsplit(" :: ", 1)[1] for c in metadata.get_all("Classifier")
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed == SUPPORTED
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in SUPPORTED


def test_version_has_one_source(metadata):
    assert metadata["Version"] == fastwb.__version__


def test_no_extra_pulls_a_cuda_build(metadata):
    """PyPI's torch on Linux is a CUDA build of several GB (and jax[cuda] pulls
    NVIDIA's libraries): no extra may ask for them."""
    requirements = metadata.get_all("Requires-Dist")
    assert not [r for r in requirements
                if re.match(r"(torch|nvidia|cupy)\b", r) or re.search(r"\[.*cuda.*\]", r)]


def _copy_source_tree(destination: pathlib.Path) -> pathlib.Path:
    """The installed package's Python files in ``destination/fastwb``: a checkout
    whose extension was never built."""
    tree = destination / "fastwb"
    shutil.copytree(PACKAGE, tree, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return tree


def _import_in(folder: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import fastwb"], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def test_an_unbuilt_source_tree_says_so_and_how_to_build(tmp_path):
    _copy_source_tree(tmp_path)
    result = _import_in(tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastwb's compiled extension fastwb._core is not built")
    assert str(tmp_path / "fastwb") in last
    assert "pip install -e ." in last and "another folder" in last
    assert "circular import" not in result.stderr


def test_an_extension_built_for_another_python_is_named(tmp_path):
    tree = _copy_source_tree(tmp_path)
    (tree / "_core.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    result = _import_in(tmp_path)
    assert "_core.cpython-39-x86_64-linux-gnu.so, built for another Python" in result.stderr


def test_a_built_extension_that_fails_keeps_its_own_error(tmp_path):
    """An extension for this Python that cannot load (here: not a shared object)
    reports the loader's error, not "not built"."""
    import importlib.machinery
    tree = _copy_source_tree(tmp_path)
    (tree / f"_core{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"not an ELF file")
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "not built" not in result.stderr
    assert "ImportError" in result.stderr


def test_release_configuration_builds_exactly_the_supported_pythons():
    """cibuildwheel's build list and tools/build_wheels.sh name the versions the
    metadata promises (read as text: tomllib is 3.11+)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    build = re.search(r"^\[tool\.cibuildwheel\]\n(?:.*\n)*?build = \[(.*)\]", pyproject, re.M)
    assert re.findall(r'"cp3(\d+)-\*"', build.group(1)) == [v.split(".")[1] for v in SUPPORTED]
    script = (root / "tools" / "build_wheels.sh").read_text()
    assert re.search(r"^readonly SUPPORTED=\((.*)\)", script, re.M).group(1).split() == SUPPORTED
