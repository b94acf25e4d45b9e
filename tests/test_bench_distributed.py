"""benchmarks/distributed.py end to end: it launches itself under mpiexec -n 1
and -n 2 and prints the measured and modelled tables (skipped without mpi4py
and an mpiexec, or where the benchmarks are not shipped). No timing asserted."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastwb
from fastwb.bench.allreduce import LINKS, RANKS

pytest.importorskip("mpi4py", reason="the MPI benchmark needs mpi4py: pip install \"fastwb[mpi]\"")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed.py"
if not SCRIPT.exists():
    pytest.skip("benchmarks/distributed.py is not here", allow_module_level=True)
if shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                f"{os.environ.get('PATH', '')}") is None:
    pytest.skip("no mpiexec found (the mpich package brings one)", allow_module_level=True)


def test_the_quick_run_prints_every_table(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(fastwb.__file__).parents[1])}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--shape", "16-32-4",
                           "--json", "out.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for title in ("**Measured**", "**Cost model: ring allreduce**", "**Strong scaling**",
                  "**Weak scaling**", "**Local SGD**"):
        assert title in out
    for link in LINKS:
        assert link.name in out
    # the model covers every standard shape, the measurement the one asked for
    assert "| 1024-4096-4096-1024 | 25,175,040 |" in out
    assert "| 16-32-4 | 1 |" in out and "| 16-32-4 | 256 |" in out
    assert "| 64-128-10 | 32 |" not in out
    assert " | ".join(f"{n} ranks" for n in RANKS) in out

    result = json.loads((tmp_path / "out.json").read_text())
    assert [(c["sizes"], c["batch"]) for c in result["cases"]] == [([16, 32, 4], 1),
                                                                    ([16, 32, 4], 256)]
    for case in result["cases"]:
        assert case["samples"] == 512 and case["allreduce_s"] > 0
        assert {"fit", "rank1", "rank2", "local_sgd"} <= set(case["samples_per_second"])
        assert all(rate > 0 for rate in case["samples_per_second"].values())
    # a batch of 1 cannot be halved; 256 can
    assert "rank2_half" not in result["cases"][0]["times"]
    assert "rank2_half" in result["cases"][1]["times"]


def test_a_wrong_shape_is_a_usage_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(fastwb.__file__).parents[1])}
    done = subprocess.run([sys.executable, str(SCRIPT), "--shape", "3-3"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown shape 3-3" in done.stderr
