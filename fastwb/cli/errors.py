"""How a ``fastwb`` command fails: ``CommandError`` and the exit statuses.

An expected failure (a missing file, an unknown column, a bad option) raises
``CommandError``; the dispatcher prints it as one line ``fastwb: error: ...``
on stderr and exits with ``EXIT_FAILURE``. Anything else shows its traceback.
"""
from __future__ import annotations

#: A command that failed for a reason the user can fix (its message says which).
EXIT_FAILURE = 1
#: A bad command line: an unknown option, a value of the wrong kind.
EXIT_USAGE = 2
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """An expected failure of a ``fastwb`` command: shown as one line, no traceback."""
