"""Other processes busy on the cores: what a benchmark runs beside to measure a busy machine.

A hog is a separate Python process spinning in a pure-Python loop, as a
user's other job would: it holds a core and never sleeps. ``Hogs(n)`` starts
``n`` of them paused; ``busy()`` lets them run for the calls made inside it
(``SIGCONT``, then ``SIGSTOP`` again), so one benchmark can alternate idle
and busy rounds every fraction of a second without starting a process per
round. Leaving the ``with`` block kills them (``SIGKILL``, by process id).

No hog outlives its benchmark: besides the ``with`` block, an ``atexit``
hook kills them, ``SIGTERM`` and ``SIGHUP`` become ``SystemExit`` while they
live (so the cleanup runs), and each hog asks Linux to kill it when its
parent dies (``PR_SET_PDEATHSIG``, which also reaches a paused hog) and
leaves its loop once it finds itself orphaned elsewhere. Each hog runs in a
session of its own, so a Ctrl-C at the terminal reaches the benchmark, which
cleans up, and not the hogs. POSIX only (``SIGSTOP``).
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Iterator

# argv[1]: the parent's pid. Ready once the death signal is set: a parent that
# died before that is caught by the getppid test.
_HOG = """\
import os, sys
parent = int(sys.argv[1])
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)    # PR_SET_PDEATHSIG, SIGKILL
except (OSError, AttributeError):
    pass                             # not Linux: the loop's getppid test alone
if os.getppid() == parent:
    print("ready", flush=True)
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""

#: Signals that end the benchmark through ``SystemExit`` while hogs live.
_FATAL = (signal.SIGTERM, signal.SIGHUP)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Hogs:
    """``count`` CPU-bound processes, paused except inside ``busy()``.

    >>> with Hogs(1) as hogs:
    ...     with hogs.busy():
    ...         pass                # here another process spins on a core
    """

    def __init__(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"the hog count must be nonnegative, not {count}")
        self.count = count
        self._procs: list[subprocess.Popen] = []
        self._handlers: dict[int, object] = {}

    def __enter__(self) -> Hogs:
        atexit.register(self.kill)
        if threading.current_thread() is threading.main_thread():
            self._handlers = {sig: signal.signal(sig, _exit_on_signal) for sig in _FATAL}
        try:
            for _ in range(self.count):
                self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _HOG, str(os.getpid())],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                start_new_session=True, text=True)
        self._procs.append(proc)
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a hog process did not start (exit status {proc.poll()})")
        os.kill(proc.pid, signal.SIGSTOP)

    @property
    def pids(self) -> list[int]:
        """The hogs' process ids."""
        return [proc.pid for proc in self._procs]

    @contextmanager
    def busy(self) -> Iterator[None]:
        """The hogs run (each spinning on a core) until the block ends."""
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT)
        try:
            yield
        finally:
            for pid in self.pids:
                os.kill(pid, signal.SIGSTOP)

    def kill(self) -> None:
        """Kill every hog and reap it; safe to call twice."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()         # SIGKILL ends a stopped process too
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            self.kill()
        finally:
            atexit.unregister(self.kill)
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)      # type: ignore[arg-type]
            self._handlers = {}
