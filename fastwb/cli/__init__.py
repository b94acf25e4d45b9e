"""The ``fastwb`` command line (also ``python -m fastwb``).

The modules, each depending only on those listed after it:

``dispatch``
    the options, and which subcommand runs; failures as exit statuses
``demo``, ``train``, ``predict``, ``info``, ``export``
    the subcommands (``fastwb bench`` is ``fastwb.bench.peers``; ``export``
    loads a model file as ``predict`` does)
``common``
    what several subcommands share: scikit-learn's drop-ins, a fit with a
    progress bar, the ``--plots`` directory
``tables``
    CSV, Parquet and ``.npz`` files in, predictions out
``fastread``
    pyarrow's or pandas's readers for ``tables``, when installed
``errors``
    ``CommandError`` and the exit statuses
``streams``
    stdout and stderr whose readers may leave early (``| head``)
"""
from fastwb.cli.dispatch import build_parser, main

__all__ = ["build_parser", "main"]
