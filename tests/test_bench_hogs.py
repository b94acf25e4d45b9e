"""fastwb.bench.hogs: busy processes that run only when asked and never outlive
the benchmark that started them, however it ends."""
import os
import signal
import subprocess
import sys
import time

import pytest

import fastwb
from fastwb.bench.hogs import Hogs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads process states from /proc")

# a benchmark that starts one hog, tells its pid, and waits (busy or paused) to be ended
CHILD = """
import sys, time
from fastwb.bench.hogs import Hogs
with Hogs(1) as hogs:
    print(hogs.pids[0], flush=True)
    if sys.argv[1] == "busy":
        with hogs.busy():
            time.sleep(60)
    time.sleep(60)
"""


def state(pid: int) -> str | None:
    """The process's state letter (R running, T stopped, ...); None once it is
    gone or a zombie (killed, not yet reaped by whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            letter = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None
    return None if letter in "ZX" else letter


def wait_for(pid: int, wanted: str | None, seconds: float = 5.0) -> str | None:
    """The process's state once it is ``wanted``, or when ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while (now := state(pid)) != wanted and time.monotonic() < deadline:
        time.sleep(0.01)
    return now


def test_paused_except_inside_busy_and_killed_at_exit():
    with Hogs(2) as hogs:
        pids = hogs.pids
        assert len(pids) == 2
        assert [wait_for(pid, "T") for pid in pids] == ["T", "T"]
        with hogs.busy():
            assert [wait_for(pid, "R") for pid in pids] == ["R", "R"]
        assert [wait_for(pid, "T") for pid in pids] == ["T", "T"]
    assert [state(pid) for pid in pids] == [None, None]      # killed and reaped


def test_killed_when_the_block_raises():
    with pytest.raises(KeyError):
        with Hogs(1) as hogs:
            pids = hogs.pids
            with hogs.busy():
                raise KeyError
    assert state(pids[0]) is None


def test_no_hogs():
    with Hogs(0) as hogs:
        with hogs.busy():
            assert hogs.pids == []
    with pytest.raises(ValueError):
        Hogs(-1)


@pytest.mark.parametrize("how, phase", [(signal.SIGTERM, "busy"), (signal.SIGHUP, "paused"),
                                        (signal.SIGKILL, "paused"), (signal.SIGKILL, "busy")])
def test_no_hog_outlives_its_benchmark(how, phase, tmp_path):
    # SIGTERM and SIGHUP end the benchmark through its cleanup; SIGKILL leaves no
    # cleanup, and the hog's parent-death signal ends it, paused or not
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastwb.__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # not in the checkout, whose fastwb folder would hide the installed package
    child = subprocess.Popen([sys.executable, "-c", CHILD, phase], stdout=subprocess.PIPE,
                             text=True, env=env, cwd=tmp_path)
    try:
        hog = int(child.stdout.readline())
        running = "R" if phase == "busy" else "T"
        assert wait_for(hog, running) == running
        child.send_signal(how)
        assert child.wait(10) == (-how if how == signal.SIGKILL else 128 + how)
        assert wait_for(hog, None) is None
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
