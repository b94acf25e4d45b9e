"""The command-line options the benchmark scripts share, worded once.

``add_*`` put an option on an ``argparse`` parser; ``chosen_*`` read the choice
back with its default, and ``check_timing`` refuses impossible timings.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fastwb.bench.shapes import DTYPES, SHAPES, Shape, select


def add_dtypes(parser: argparse.ArgumentParser) -> None:
    """``--dtype``, repeatable; ``chosen_dtypes`` gives both when none is named."""
    parser.add_argument("--dtype", choices=DTYPES, action="append",
                        help="dtype to measure (repeatable; default: both)")


def add_shapes(parser: argparse.ArgumentParser, large: bool = True) -> None:
    """``--shape WIDTHS`` (repeatable) and, with ``large``, ``--large``."""
    labels = ", ".join(shape.label for shape in SHAPES)
    parser.add_argument("--shape", action="append", metavar="WIDTHS",
                        help=f"a standard shape to measure, one of {labels} (repeatable; "
                             "default: all" + (" but the large one)" if large else ")"))
    if large:
        parser.add_argument("--large", action="store_true",
                            help="include the 1024-4096-4096-1024 batch-256 shape")


def add_timing(parser: argparse.ArgumentParser, repeats: int, min_time: float,
               repeats_flag: str = "--repeats") -> None:
    """``--repeats`` (or ``repeats_flag``) interleaved rounds and ``--min-time``
    seconds per round, with these defaults."""
    parser.add_argument(repeats_flag, type=int, default=repeats,
                        help=f"interleaved rounds per contender (default: {repeats})")
    parser.add_argument("--min-time", type=float, default=min_time,
                        help=f"least seconds of one round of a contender (default: {min_time:g})")


def add_json(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: also write the raw results there."""
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the raw results as JSON to PATH")


def check_timing(parser: argparse.ArgumentParser, repeats: int, min_time: float) -> None:
    """Exit with a usage error unless ``repeats >= 1`` and ``min_time >= 0``."""
    if repeats < 1 or min_time < 0:
        parser.error("the rounds must be at least 1 and --min-time nonnegative")


def chosen_dtypes(args: argparse.Namespace) -> list[str]:
    """The dtypes ``--dtype`` named, or all."""
    return args.dtype or list(DTYPES)


def chosen_shapes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Shape]:
    """The standard shapes ``--shape`` named (default: all, the large one with
    ``--large``); a usage error for a shape that is not standard."""
    try:
        return select(args.shape, getattr(args, "large", False))
    except ValueError as why:
        parser.error(str(why))
