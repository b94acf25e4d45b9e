"""The helper pool (src_c/fastwb_pool.h) stressed from several threads: tests/c/pool_stress.c.

Compiled with gcc under ThreadSanitizer (-O1 -g; a data race fails it) and at
-O2 (a quick check of the results as wheels compile them), and run for a few
seconds. Skipped where there is no gcc, where gcc cannot build or run a
ThreadSanitizer program (the TSan case only), or where the C sources are not
next to the tests. CI (.ci/run) runs the same program longer, without skips.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "c" / "pool_stress.c"
HEADERS = HERE.parent / "src_c"
JOBS = "300"            # per caller thread: about 2 s under TSan on a 2-core machine
TIMEOUT = 120           # a pool that loses a task waits for it forever

BUILDS = {
    "tsan": ["-fsanitize=thread", "-O1", "-g"],
    "O2": ["-O2"],
}
#: a race ends the run at once with this status
TSAN_OPTIONS = "halt_on_error=1 exitcode=66"


def environment():
    """This environment without a preloaded sanitizer runtime (CI runs the suite under
    LD_PRELOAD=libasan.so: ThreadSanitizer refuses to run beside it)."""
    env = dict(os.environ, TSAN_OPTIONS=TSAN_OPTIONS)
    env.pop("LD_PRELOAD", None)
    return env


def compile_c(source, output, flags):
    return subprocess.run(["gcc", "-std=c11", "-Wall", "-pthread", f"-I{HEADERS}", *flags,
                           str(source), "-o", str(output)],
                          capture_output=True, text=True, env=environment(), timeout=TIMEOUT)


def skip_unless_tsan_works(tmp_path):
    """Skip when this gcc cannot build, or this machine cannot run, an empty TSan program."""
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = compile_c(probe, tmp_path / "probe", BUILDS["tsan"])
    if built.returncode != 0:
        pytest.skip(f"gcc cannot build with -fsanitize=thread here: {built.stderr.strip()[-300:]}")
    ran = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True,
                         env=environment(), timeout=TIMEOUT)
    if ran.returncode != 0:
        pytest.skip(f"ThreadSanitizer programs do not run here: {ran.stderr.strip()[-300:]}")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on PATH to compile tests/c/pool_stress.c")
@pytest.mark.skipif(not (SOURCE.is_file() and (HEADERS / "fastwb_pool.h").is_file()),
                    reason="tests/c/pool_stress.c or src_c/fastwb_pool.h is not here "
                           "(tests copied without the C sources)")
@pytest.mark.parametrize("build", list(BUILDS))
def test_pool_under_stress(build, tmp_path):
    if build == "tsan":
        skip_unless_tsan_works(tmp_path)
    program = tmp_path / f"pool_stress_{build}"
    built = compile_c(SOURCE, program, BUILDS[build])
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(program), JOBS], capture_output=True, text=True,
                         env=environment(), timeout=TIMEOUT)
    assert ran.returncode == 0, (f"pool_stress ({build}) exited with {ran.returncode}"
                                 f"{' (a data race)' if ran.returncode == 66 else ''}:\n"
                                 f"{ran.stdout}{ran.stderr[-20000:]}")
    assert ran.stdout.rstrip().endswith(": ok")
