"""fastwb.show_config, fastwb --version --verbose, and the warning of a build without OpenMP."""
import warnings

import numpy as np
import pytest

import fastwb
from fastwb import _config, _core
from fastwb.cli import main

SECTIONS = ("fastwb", "Python", "Machine", "Build", "Runtime")


def test_dicts_hold_the_build_and_runtime_facts():
    info = fastwb.show_config(mode="dicts")
    assert tuple(info) == SECTIONS
    assert info["fastwb"]["version"] == fastwb.__version__
    assert info["Machine"]["cpu"] == _config.cpu_name() != ""
    build = info["Build"]
    assert build["compiler"] in ("gcc", "clang", "apple-clang", "msvc", "unknown")
    assert build["cython"] != "unknown" and build["numpy (built against)"] != "unknown"
    assert build["openmp"].startswith("enabled" if fastwb.openmp_enabled() else ("disabled",
                                                                                 "unavailable"))
    if build["compiler"] in ("gcc", "clang", "apple-clang"):
        # every SIMD level gives the same bits only without fused multiply-adds
        assert "-ffp-contract=off" in build["compile args"]
    assert set(build["switches"]) == {"FASTWB_NO_OPENMP", "FASTWB_DEBUG_CYTHON",
                                      "FASTWB_NATIVE", "FASTWB_SANITIZE"}
    runtime = info["Runtime"]
    assert runtime["numpy"] == np.__version__
    assert runtime["openmp compiled"] == fastwb.openmp_enabled()
    assert runtime["openmp max threads"] >= 1
    assert runtime["blas"]["source"] == fastwb.blas_source()
    compiled, supported, selected = _core.simd_levels()
    assert runtime["simd"] == {"compiled": list(compiled), "supported": list(supported),
                               "selected": selected,
                               "FASTWB_SIMD": runtime["simd"]["FASTWB_SIMD"]}


def test_blas_threads_come_from_threadpoolctl():
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    blas = fastwb.show_config(mode="dicts")["Runtime"]["blas"]
    assert blas["internal_api"] and blas["num_threads"] >= 1
    with threadpool_limits(limits=1, user_api="blas"):
        assert fastwb.show_config(mode="dicts")["Runtime"]["blas"]["num_threads"] == 1


def test_stdout_prints_every_section(capsys):
    assert fastwb.show_config() is None
    out = capsys.readouterr().out
    for section in SECTIONS:
        assert f"\n{section}:\n" in f"\n{out}"
    assert f"selected: {_core.simd_levels()[2]}" in out
    assert "compile args: " in out


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be 'stdout' or 'dicts'"):
        fastwb.show_config(mode="json")


def test_version_verbose_prints_the_config(capsys):
    assert main(["--version", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fastwb {fastwb.__version__}\nfastwb:\n")
    assert "Runtime:" in out and "simd:" in out


def test_version_alone_prints_one_line(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"fastwb {fastwb.__version__}\n"


def test_verbose_without_version_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--verbose"])
    assert exit_info.value.code == 2
    assert "--verbose goes with --version" in capsys.readouterr().err


def test_a_build_without_openmp_warns_at_import(monkeypatch):
    monkeypatch.setattr(_config, "BUILD", {"openmp": "unavailable",
                                           "openmp_reason": "the compiler rejected -fopenmp"})
    with pytest.warns(RuntimeWarning, match="built without OpenMP.*rejected -fopenmp.*"
                                            "FASTWB_NO_OPENMP=1"):
        _config.warn_if_serial()
    assert "unavailable: the compiler rejected" in _config.config()["Build"]["openmp"]


@pytest.mark.parametrize("state", ["enabled", "disabled"])
def test_enabled_or_requested_serial_builds_do_not_warn(monkeypatch, state):
    monkeypatch.setattr(_config, "BUILD", {"openmp": state, "openmp_reason": ""})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _config.warn_if_serial()


def test_the_installed_build_matches_its_record():
    assert _config.BUILD, "setup.py did not write fastwb/_build_info.py"
    assert (_config.BUILD["openmp"] == "enabled") == fastwb.openmp_enabled()
