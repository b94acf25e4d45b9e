"""Tables for the ``fastwb`` command: CSV and ``.npz`` files in, predictions out.

A *table* is a feature matrix with, when known, its column names, and
optionally a target column. Every problem a user can cause (a missing file,
a column that is not there or not numeric, a ragged row) raises
``CommandError`` with a message that names the file, the column and the line;
the command prints it as one line.

CSV: a header row of column names, then one row per sample; every feature
column numeric, the target may hold text labels. ``fastwb train`` (and
``predict`` with a model that preprocesses its data) pass ``Cells`` that
allow more: missing values (an empty cell, NaN, or one of MISSING_MARKERS),
read as NaN, and text feature columns (a column with a value that is neither
a number nor missing), read as stripped strings in an object array.
``.tsv`` files are tab-separated, other files comma-separated unless their
first lines are consistently split by semicolons, tabs or ``|``; ``.gz``
files are decompressed. pyarrow or pandas reads a clean file when installed
(``fastwb.cli.fastread``); anything else is read again by the careful reader
here, which words the problem, so the result is the same whichever ran.

Parquet (``.parquet``, ``.pq``, or a file starting with ``PAR1``), through
pyarrow: the same columns and checks as CSV, problems named by row.

``.npz`` (``numpy.savez``): the features in an array ``X`` of shape
(n_samples, n_features), the target in ``y`` (or the array that ``--target``
names), and optionally the column names in ``feature_names``.
"""
from __future__ import annotations

import csv
import difflib
import gzip
import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from fastwb._validation import shown
from fastwb.cli.errors import CommandError
from fastwb.cli.fastread import (csv_reader, parquet_reader, progress_note, read_csv_columns,
                                 read_parquet_columns)
from fastwb.saving import file_type

#: The auto task calls an integer target with at most this many values classes.
MAX_AUTO_CLASSES = 20
#: Besides an empty cell and NaN, the spellings of a missing number: R's NA,
#: SQL's and JSON's null, Python's None, Excel's #N/A, the UCI repository's "?".
MISSING_MARKERS = frozenset({"NA", "N/A", "n/a", "null", "NULL", "None", "#N/A", "?"})


@dataclass(frozen=True)
class Cells:
    """What feature columns may hold besides finite numbers: with ``missing``,
    missing values (read as NaN); with ``text``, text (a column holding a value
    that is neither a number nor missing is read as text); and the columns
    named in ``text_columns`` are read as text whatever they hold (a model's
    text columns, at predict time). By default, finite numbers only."""

    missing: bool = False
    text: bool = False
    text_columns: frozenset[str] = frozenset()


@dataclass
class Table:
    """Features ((n_samples, n_features): float64, NaN where a value is missing;
    an object array when some columns hold text), their names (None when the
    file has none), the target column (None when not asked for or absent), the
    columns left out because ``features`` did not name them, and the indices
    of the columns of X that hold text (strings)."""

    path: str
    X: np.ndarray
    feature_names: list[str] | None
    target: np.ndarray | None = None
    target_name: str | None = None
    ignored: tuple[str, ...] = ()
    text: tuple[int, ...] = ()


def check_readable(path: str, what: str = "file") -> None:
    """Refuse a path that is not an existing, readable file, in plain words."""
    if not os.path.exists(path):
        raise CommandError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory, not a {what}")
    if not os.path.isfile(path):    # a FIFO would block, and a file is read more than once
        raise CommandError(f"{path} is {file_type(os.stat(path).st_mode)}, not a regular "
                           f"file: save the {what} to a file first")
    if not os.access(path, os.R_OK):
        raise CommandError(f"cannot read {path}: permission denied")


def check_writable(path: str, what: str = "output file") -> None:
    """Refuse, before any work, an output path that cannot be written."""
    if os.path.isdir(path):
        raise CommandError(f"the {what} {path} is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"cannot write {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise CommandError(f"cannot write {path}: permission denied")


def read_table(path: str, target: str | None = None, target_required: bool = False,
               features: list[str] | None = None, cells: Cells = Cells()) -> Table:
    """Read a CSV, Parquet or ``.npz`` file.

    ``target`` names the target column (CSV, Parquet) or array (``.npz``, where it
    defaults to "y" when ``target_required``); with ``target_required`` a
    missing target is an error, otherwise the table comes back without one.
    ``features`` (when the file names its columns) picks the feature columns,
    in that order; the others are ignored and listed in ``Table.ignored``.
    Without it, every column but the target is a feature. ``cells`` says what
    feature values may be besides finite numbers.
    """
    check_readable(path, "data file")
    if _is_npz(path):
        with progress_note(path, "NumPy"):
            table = _read_npz(path, target, target_required, cells)
    elif _is_parquet(path):
        with progress_note(path, parquet_reader()):
            table = _read_parquet(path, target, target_required, features, cells)
    else:
        reader = csv_reader(path)
        with progress_note(path, reader):
            table = _read_csv(path, reader, target, target_required, features, cells)
    if features is not None and table.feature_names is not None and \
            table.feature_names != list(features):
        table = _select(table, features)
    return table


def _select(table: Table, features: list[str]) -> Table:
    names = table.feature_names
    assert names is not None, "read_table selects from a table with feature names only"
    missing = [name for name in features if name not in names]
    if missing:
        raise CommandError(f"{table.path} lacks the column(s) {shorten(missing)} that the "
                           f"model was trained on")
    index = [names.index(name) for name in features]
    ignored = tuple(name for name in names if name not in features)
    text = tuple(j for j, i in enumerate(index) if i in table.text)
    return Table(table.path, table.X[:, index], list(features), table.target,
                 table.target_name, table.ignored + ignored, text)


def _is_npz(path: str) -> bool:
    if path.lower().endswith(".npz"):
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"       # a zip archive, which .npz files are


# --- CSV -------------------------------------------------------------------------------

def _open_text(path: str):
    opener = gzip.open if path.lower().endswith(".gz") else open
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first name
    return opener(path, "rt", newline="", encoding="utf-8-sig")


#: The delimiters a CSV file may use, as messages name them; the first is the default.
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "'|'"}
_SAMPLE_LINES = 50


@dataclass
class _Plan:
    """Which columns a table takes: the target's index (None: no target) and
    the feature columns' indices and names, in the order the table gives them."""

    target: int | None
    features: list[int]
    ignored: tuple[str, ...]


def _read_csv(path: str, reader: str, target: str | None, target_required: bool,
              features: list[str] | None, cells: Cells) -> Table:
    delimiter, names, header_lines = _read_header(path)
    plan = _plan(path, names, target, target_required, features)
    if reader != "python" and header_lines == 1:
        columns = read_csv_columns(
            reader, path, delimiter, len(names),
            lambda index: cells.text or index not in plan.features,       # text allowed
            lambda index: cells.missing and index in plan.features,       # missing allowed
            [i for i, name in enumerate(names) if name in cells.text_columns])
        if columns is not None:
            n_rows = len(columns[0])
            try:
                return _assemble(path, names, columns, range(2, n_rows + 2), plan, cells)
            except CommandError:
                pass            # the careful reader words it, with the right line
    columns, lines = _read_rows(path, delimiter, names)
    return _assemble(path, names, columns, lines, plan, cells)


def _read_header(path: str) -> tuple[str, list[str], int]:
    """The delimiter (the extension's, unless the first lines are consistently
    split by another of DELIMITERS), the checked column names, and how many
    lines the header row took."""
    name = path.lower().removesuffix(".gz")
    default = "\t" if name.endswith((".tsv", ".tab")) else ","
    try:
        with _open_text(path) as f:
            sample = [line for line, _ in zip(f, range(_SAMPLE_LINES))]
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not a text (CSV) file: it is not UTF-8") from None
    except (gzip.BadGzipFile, EOFError, OSError) as error:
        raise CommandError(f"{path} is not a readable CSV file: {error}") from None
    delimiter = _sniff(sample, default)
    reader = csv.reader(sample, delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise CommandError(f"{path} is not a readable CSV file: {error}") from None
    if header is None:
        raise CommandError(f"{path} is empty: a CSV file needs a header row of "
                           f"column names")
    if not header:
        raise CommandError(f"{path}: the first line is blank; a CSV file starts with a "
                           f"header row of column names")
    return delimiter, _column_names(header, path), reader.line_num


def _sniff(sample: list[str], default: str) -> str:
    """``default`` when it splits the sample's rows into a consistent number of
    columns, more than one; else the first other delimiter that does; else
    (ragged rows, which the careful reader reports) the one that splits the
    header into the most columns."""
    order = [default] + [d for d in DELIMITERS if d != default]
    widths = {}
    for delimiter in order:
        try:
            counts = [len(row) for row in csv.reader(sample, delimiter=delimiter)
                      if row and not (len(row) == 1 and not row[0].strip())]
        except csv.Error:
            continue
        if counts and len(set(counts)) == 1 and counts[0] > 1:
            return delimiter
        widths[delimiter] = counts[0] if counts else 0
    if widths.get(default, 0) > 1 or not widths:
        return default
    return max(widths, key=lambda d: widths[d])


def _delimiter_hint(row: list[str], delimiter: str, n_columns: int) -> str:
    """"; they seem separated by semicolons ..." when another delimiter splits
    ``row`` into ``n_columns`` values, else ""."""
    text = delimiter.join(row)
    for other, words in DELIMITERS.items():
        if other != delimiter and len(next(csv.reader([text], delimiter=other), [])) == \
                n_columns:
            return f"; they seem separated by {words}, the header's by {DELIMITERS[delimiter]}"
    return ""


def _read_rows(path: str, delimiter: str, names: list[str]) -> tuple[list, list[int]]:
    """The careful reader: the columns as text, and each row's line number."""
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader)                            # the header, read by _read_header
            rows, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue                    # blank line
                if len(row) != len(names):
                    hint = _delimiter_hint(row, delimiter, len(names))
                    raise CommandError(f"{path}, line {reader.line_num}: {len(row)} values, "
                                       f"but the header has {len(names)} columns{hint}")
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not a text (CSV) file: it is not UTF-8") from None
    except (csv.Error, gzip.BadGzipFile, EOFError) as error:
        raise CommandError(f"{path} is not a readable CSV file: {error}") from None
    return list(zip(*rows)) if rows else [() for _ in names], lines


def _plan(path: str, names: list[str], target: str | None, target_required: bool,
          features: list[str] | None) -> _Plan:
    """The columns to take, checked against the header before the rows are read."""
    if target is None and target_required:
        raise CommandError(f"name the column to predict with --target (the columns of "
                           f"{path}: {shorten(names)})")
    target_index = None
    if target is not None:
        if target in names:
            target_index = names.index(target)
        elif target_required:
            raise CommandError(f"unknown column {target!r}{closest(target, names)}: {path} "
                               f"has the columns {shorten(names)}")
    # positions by name, sets for membership: a file may have tens of thousands of columns
    position = {name: i for i, name in enumerate(names) if i != target_index}
    if not position:
        raise CommandError(f"{path} has no feature columns besides the target {target!r}")
    if features is None:
        return _Plan(target_index, list(position.values()), ())
    wanted = set(features)
    missing = [name for name in features if name not in position]
    if missing:
        suggestions = "".join(closest(name, [n for n in position if n not in wanted])
                              for name in missing[:3])
        raise CommandError(f"{path} lacks the column(s) {shorten(missing)} that the "
                           f"model was trained on{suggestions}")
    return _Plan(target_index, [position[name] for name in features],
                 tuple(name for name in position if name not in wanted))


def closest(name: str, names: list[str]) -> str:
    """" (did you mean 'x'?)" naming the names closest to ``name``, or ""."""
    by_case = [n for n in names if n.lower() == name.lower()]
    matches = by_case or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not matches:
        return ""
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)"


def _assemble(path: str, names: list[str], columns, lines, plan: _Plan, cells: Cells,
              unit: str = "line") -> Table:
    """The table of the planned columns, each checked as ``cells`` says;
    ``lines`` numbers the rows in messages, as ``unit`` ("line" of a CSV file,
    "row" of a Parquet one)."""
    if not len(lines):
        raise CommandError(f"{path} has a header but no rows of data" if unit == "line"
                           else f"{path} has no rows of data")
    target_values = None
    if plan.target is not None:
        target_values = _target_column(columns[plan.target], names[plan.target], path, lines,
                                       unit)
    features = [_feature_column(columns[index], names[index], path, lines, unit, cells)
                for index in plan.features]
    text = tuple(j for j, column in enumerate(features) if column.dtype == object)
    X = np.empty((len(lines), len(features)), dtype=object if text else np.float64)
    for j, column in enumerate(features):
        X[:, j] = column
    return Table(path, X, [names[index] for index in plan.features], target_values,
                 names[plan.target] if plan.target is not None else None, plan.ignored, text)


# --- Parquet ---------------------------------------------------------------------------

def _is_parquet(path: str) -> bool:
    if path.lower().endswith((".parquet", ".pq")):
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _read_parquet(path: str, target: str | None, target_required: bool,
                  features: list[str] | None, cells: Cells) -> Table:
    names, columns = read_parquet_columns(path)
    names = _column_names(names, path)
    plan = _plan(path, names, target, target_required, features)
    n_rows = len(columns[0]) if columns else 0
    return _assemble(path, names, columns, range(1, n_rows + 1), plan, cells, unit="row")


def _column_names(header: list[str], path: str) -> list[str]:
    names = [name.strip() for name in header]
    for i, name in enumerate(names):
        if not name:
            raise CommandError(f"{path}: column {i + 1} has no name in the header row "
                               f"(an index column? remove it, or name it)")
    seen = set()
    for name in names:
        if name in seen:
            raise CommandError(f"{path}: the header names the column {name!r} twice")
        seen.add(name)
    return names


def _feature_column(values, name: str, path: str, lines, unit: str,
                    cells: Cells) -> np.ndarray:
    """float64 numbers (NaN where missing, as ``cells`` allows), or for a text
    column the stripped strings as an object array; else a CommandError naming
    the first bad value's line."""
    if name in cells.text_columns:
        return _text_column(values)
    if isinstance(values, np.ndarray):          # a fast reader's numbers
        if _acceptable(values, cells):
            return values
        values = [str(value) for value in values]   # the checks below word the problem
    try:
        column = np.array(values, dtype=np.float64)
    except ValueError:
        column = None
    if column is not None and _acceptable(column, cells):
        return column
    stripped = [value.strip() for value in values]
    missing = np.array([not value or value in MISSING_MARKERS for value in stripped])
    numbers = np.full(len(stripped), np.nan)
    try:
        numbers[~missing] = np.array([v for v, m in zip(stripped, missing) if not m],
                                     dtype=np.float64)
    except ValueError:      # some value is neither a number nor missing
        if cells.text:
            return _text_column(stripped)
    else:
        if cells.missing and not np.isinf(numbers).any():
            return numbers
    for value, line in zip(values, lines):
        if cells.missing and (not value.strip() or value.strip() in MISSING_MARKERS):
            continue
        try:
            number = float(value)
        except ValueError:
            number = None
        if not value.strip():
            raise CommandError(f"{path}, {unit} {line}: column {name!r} is empty (missing "
                               f"values are filled in only by models trained without "
                               f"--no-impute)")
        if number is None:
            raise CommandError(f"{path}, {unit} {line}: column {name!r} is not numeric "
                               f"({_quote(value)}); feature columns must hold numbers")
        if not math.isfinite(number) and not (cells.missing and math.isnan(number)):
            raise CommandError(f"{path}, {unit} {line}: column {name!r} holds {_quote(value)}; "
                               f"features must be finite numbers")
    raise AssertionError("unreachable: some value failed to convert")   # pragma: no cover


def _acceptable(numbers: np.ndarray, cells: Cells) -> bool:
    """Finite, but for NaN (a missing value) where ``cells`` allows it."""
    return bool(np.isfinite(numbers).all() or (cells.missing and not np.isinf(numbers).any()))


def _text_column(values) -> np.ndarray:
    """Stripped strings in an object array (numbers, as a Parquet file may
    hold them, in their shortest form: 3 rather than 3.0)."""
    if isinstance(values, np.ndarray):
        return np.array([str(int(v)) if v == round(v) else repr(float(v)) for v in values],
                        dtype=object)
    return np.array([value.strip() for value in values], dtype=object)


def _target_column(values, name: str, path: str, lines, unit: str = "line") -> np.ndarray:
    """Numbers when every value is one (integers when every number is whole),
    else the labels as text."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        if np.isfinite(values).all():           # a fast reader's clean numbers
            return _integers_if_whole(values)
        values = [str(value) for value in values]
    stripped = [value.strip() for value in values]
    for value, line in zip(stripped, lines):
        if not value:
            raise CommandError(f"{path}, {unit} {line}: the target column {name!r} is empty")
    try:
        numbers = np.array(stripped, dtype=np.float64)
    except ValueError:
        return np.array(stripped, dtype=str)
    if not np.isfinite(numbers).all():
        line = lines[int(np.argmin(np.isfinite(numbers)))]
        raise CommandError(f"{path}, {unit} {line}: the target column {name!r} is not finite")
    return _integers_if_whole(numbers)


def _integers_if_whole(numbers: np.ndarray) -> np.ndarray:
    if numbers.size and (numbers == np.round(numbers)).all() and np.abs(numbers).max() < 2**53:
        return numbers.astype(np.int64)
    return numbers


# --- npz -------------------------------------------------------------------------------

def _read_npz(path: str, target: str | None, target_required: bool,
              cells: Cells) -> Table:
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise CommandError(f"{path} is not a readable .npz file: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):          # a plain .npy array
        raise CommandError(f"{path} is a single array, not a .npz archive of arrays X and y")
    with archive:
        keys = list(archive.keys())
        if "X" not in keys:
            raise CommandError(f"{path} has no array 'X' (the features); it has "
                               f"{shorten(keys) or 'no arrays'}")
        X = _npz_array(archive, "X", path)
        target_name = target if target is not None else "y"
        target_values = None
        wanted = target_required or target is not None
        if wanted and target_name in keys and target_name not in ("X", "feature_names"):
            target_values = _npz_array(archive, target_name, path)
        elif wanted:
            others = [key for key in keys if key not in ("X", "feature_names")]
            raise CommandError(f"{path} has no array {target_name!r} for the target; "
                               + (f"name one of {shorten(others)} with --target" if others
                                  else "it holds only the features"))
        names = _npz_array(archive, "feature_names", path) if "feature_names" in keys else None
    if X.ndim != 2:
        raise CommandError(f"{path}: X has shape {X.shape}; it must be 2-D "
                           f"(samples x features)")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CommandError(f"{path}: X has shape {X.shape}, no data")
    if X.dtype.kind not in "biuf":
        raise CommandError(f"{path}: X holds {X.dtype} values; features must be numbers")
    X = X.astype(np.float64)
    if not _acceptable(X, cells):
        row, column = np.argwhere(np.isinf(X) if cells.missing else ~np.isfinite(X))[0]
        raise CommandError(f"{path}: X[{row}, {column}] is {X[row, column]}; features must be "
                           f"finite numbers")
    feature_names = None
    if names is not None:
        if names.ndim != 1 or names.shape[0] != X.shape[1] or names.dtype.kind not in "US":
            raise CommandError(f"{path}: feature_names must be {X.shape[1]} strings, one per "
                               f"column of X")
        feature_names = [str(name) for name in names]
    if target_values is not None:
        target_values = _npz_target(target_values, target_name, X.shape[0], path)
    return Table(path, X, feature_names, target_values,
                 target_name if target_values is not None else None)


def _npz_array(archive, name: str, path: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise CommandError(f"{path}: the array {name!r} holds Python objects, which fastwb "
                               f"does not unpickle; save numbers or strings") from None
        raise CommandError(f"{path}: cannot read the array {name!r}: {error}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CommandError(f"{path}: cannot read the array {name!r}: {error}") from None


def _npz_target(values: np.ndarray, name: str, n_samples: int, path: str) -> np.ndarray:
    if values.ndim not in (1, 2) or values.shape[0] != n_samples:
        raise CommandError(f"{path}: the target {name!r} has shape {values.shape}; it needs "
                           f"one value (or row) per sample of X, {n_samples}")
    if values.dtype.kind in "US":
        return values.astype(str)
    if values.dtype.kind not in "biuf":
        raise CommandError(f"{path}: the target {name!r} holds {values.dtype} values")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise CommandError(f"{path}: the target {name!r} holds NaN or infinity")
    return values


# --- the task --------------------------------------------------------------------------

def choose_task(task: str, y: np.ndarray, name: str) -> str:
    """"classify" or "regress": the asked task, checked against the target, or
    for "auto": classify text, booleans and integers with few distinct values
    (at most MAX_AUTO_CLASSES, and fewer than half the samples), regress the rest."""
    numeric = y.dtype.kind in "iuf"
    whole = numeric and bool((y == np.round(y)).all())
    if task == "regress":
        if not numeric:
            raise CommandError(f"the target {name!r} is not numeric; regression needs numbers "
                               f"(use --task classify for class labels)")
        return task
    if task == "classify":
        if y.dtype.kind == "f" and not whole:
            raise CommandError(f"the target {name!r} holds fractional numbers, not class "
                               f"labels (use --task regress)")
        return task
    if not numeric:                                      # text or booleans
        return "classify"
    if not whole:
        return "regress"
    distinct = np.unique(y).size
    if y.ndim == 2:     # several targets: labels only as a 0/1 indicator matrix
        return "classify" if np.isin(y, (0, 1)).all() else "regress"
    few = max(2, min(MAX_AUTO_CLASSES, y.shape[0] // 2))
    return "classify" if distinct <= few else "regress"


# --- output ----------------------------------------------------------------------------

def write_csv(stream, header: list[str], columns: list[np.ndarray]) -> None:
    """Columns of values as CSV (floats in their shortest round-trip form)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    texts = [[_text(value) for value in column] for column in columns]
    writer.writerows(zip(*texts))


def _text(value) -> str:
    if isinstance(value, (np.floating, float)):
        return str(value)       # NumPy's shortest repr that reads back the same float
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _quote(value: str, width: int = 30) -> str:
    return repr(value if len(value) <= width else value[:width] + "...")


def printable(value, limit: int = 40) -> str:
    """``value`` (a label or name read from a file) as text safe to print: as it
    is when printable and at most ``limit`` characters, else its ``repr`` cut
    to ``limit`` (control characters escaped, so it cannot forge lines or
    send escape codes to the terminal)."""
    text = str(value)
    if text.isprintable() and len(text) <= limit:
        return text
    return shown(text, limit)


def shorten(names, limit: int = 12) -> str:
    """The first ``limit`` names, comma-separated, and how many there are in all."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
