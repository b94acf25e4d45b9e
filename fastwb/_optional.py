"""scikit-learn as an optional dependency of the command line.

A missing (or too old) scikit-learn is the user's to fix with one ``pip``
command; any other ImportError met while importing it is a real fault and
keeps its traceback, instead of being reported as "not installed".
"""
from __future__ import annotations

from types import ModuleType

from fastwb._data import CommandError

#: What to install, as every message about a missing scikit-learn says it.
SKLEARN_REQUIREMENT = 'scikit-learn >= 1.6: pip install "fastwb[sklearn]"'


def sklearn_missing(error: ImportError) -> bool:
    """True when ``error`` says scikit-learn itself is absent or too old."""
    return (error.name or "").split(".")[0] == "sklearn"


def sklearn_dropins(purpose: str) -> ModuleType:
    """``fastwb.sklearn``, or a CommandError telling how to install scikit-learn."""
    try:
        from fastwb import sklearn
    except ImportError as error:
        if not sklearn_missing(error):
            raise
        raise CommandError(f"{purpose} needs {SKLEARN_REQUIREMENT}") from None
    return sklearn
