"""stdout and stderr of a ``fastwb`` command, whose readers may leave early.

``fastwb predict ... | head`` closes the pipe once head has its lines; a write
to it then raises BrokenPipeError (Python ignores SIGPIPE), and so does the
flush at exit, where Python would print "Exception ignored ... BrokenPipeError"
and exit with 120. The dispatcher ends such a command quietly with status 0 (as
if the reader had read everything, so that the status does not depend on how
much was written before it left) after pointing the stream at /dev/null
(``silence``); ``train``, whose output is a log and whose product is the model
file, runs with ``outliving_readers`` and saves its model all the same.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def silence(stream) -> None:
    """Point ``stream``'s file at /dev/null: what it still holds and what it is
    given go there, and flushing it (at exit too) raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):   # not a real file (captured in a test)
        pass
    finally:
        os.close(devnull)


def tell(message: str) -> None:
    """``message`` on stderr, or nowhere if its reader has gone."""
    try:
        print(message, file=sys.stderr)
    except BrokenPipeError:
        silence(sys.stderr)


class _Outliving:
    """A text stream whose writes, once its reader has gone, are discarded
    instead of raising BrokenPipeError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            silence(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            silence(self._stream)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def outliving_readers() -> Iterator[None]:
    """For the duration, stdout and stderr that discard what their readers,
    once gone, can no longer take, instead of raising BrokenPipeError."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (None if stream is None else _Outliving(stream)
                              for stream in streams)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams
