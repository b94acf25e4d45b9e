"""Fast readers for the ``fastwb`` command's tables: CSV through pyarrow or
pandas when one is installed, and Parquet files (which need one of them).

The fast CSV readers are an optimisation only: they return the columns of a
*clean* file (values missing only where missing values are allowed, numbers
otherwise finite, text only where text is allowed; a missing number as NaN, a
missing text as "") and ``None`` for anything else, and ``fastwb.cli.tables`` then reads
the file again with its careful reader, which words the problem with the file,
line and column. So the result never depends on which reader ran.

``FASTWB_CSV_READER`` (``pyarrow``, ``pandas`` or ``python``) picks a reader;
by default the fastest installed one for files of 10 MB or more (compressed
size, for ``.gz``), the careful reader for smaller ones.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

import numpy as np

from fastwb.cli.errors import CommandError

#: The CSV readers, fastest first; "python" (the careful reader) is always there.
READERS = ("pyarrow", "pandas", "python")
#: Smaller files go to the careful reader: importing pyarrow or pandas takes
#: longer (0.3 to 0.7 s) than it reads them (some 20 MB a second).
FAST_READ_MIN_BYTES = 10_000_000
#: A read that has not finished after this many seconds gets a note on stderr.
PROGRESS_AFTER_S = 1.0

#: One column as a fast reader hands it over: float64 numbers or a list of texts.
Column = np.ndarray | list


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def installed_readers() -> list[str]:
    """The CSV readers available here, fastest first."""
    return [name for name in READERS if name == "python" or _installed(name)]


def csv_reader(path: str) -> str:
    """The reader ``read_table`` uses for ``path``: ``FASTWB_CSV_READER``, else
    the fastest installed for a file of FAST_READ_MIN_BYTES or more, else the
    careful reader."""
    chosen = os.environ.get("FASTWB_CSV_READER", "").strip().lower()
    available = installed_readers()
    if not chosen:
        return available[0] if os.path.getsize(path) >= FAST_READ_MIN_BYTES else "python"
    if chosen not in READERS:
        raise CommandError(f"FASTWB_CSV_READER={chosen!r}: choose one of {', '.join(READERS)}")
    if chosen not in available:
        raise CommandError(f"FASTWB_CSV_READER={chosen}, but {chosen} is not installed")
    return chosen


def read_csv_columns(reader: str, path: str, delimiter: str, n_columns: int,
                     text_allowed: Callable[[int], bool],
                     missing_allowed: Callable[[int], bool] = lambda index: False,
                     as_text: Collection[int] = ()) -> list[Column] | None:
    """The file's ``n_columns`` columns read by ``reader`` (pyarrow or pandas),
    or None when the file is not clean: text where ``text_allowed(index)`` is
    false, a number missing (or NaN) where ``missing_allowed(index)`` is false,
    a number not finite, a row of another length, or anything the reader itself
    refuses. A missing number comes as NaN, a missing text as ""; the columns
    in ``as_text`` come as text whatever they hold."""
    try:
        if reader == "pyarrow":
            columns = _pyarrow_csv(path, delimiter, n_columns, as_text)
        else:
            columns = _pandas_csv(path, delimiter, n_columns, as_text)
    except MemoryError:
        raise
    except Exception:        # noqa: BLE001 - the careful reader words whatever went wrong
        return None
    if columns is None:
        return None
    for index, column in enumerate(columns):
        if isinstance(column, list):
            if not text_allowed(index):
                return None
        elif not np.isfinite(column).all():
            if not missing_allowed(index) or np.isinf(column).any():
                return None
    return columns


def _pyarrow_csv(path: str, delimiter: str, n_columns: int,
                 as_text: Collection[int]) -> list[Column] | None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    # the columns named by position (the header, already read, is skipped), so
    # that as_text can name them whatever the header says
    names = [f"c{i}" for i in range(n_columns)]
    # compression by name whatever its case (pyarrow's own detection wants ".gz")
    source = pa.input_stream(path, compression="gzip" if path.lower().endswith(".gz") else None)
    table = pa_csv.read_csv(
        source, read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter),
        convert_options=pa_csv.ConvertOptions(
            null_values=[""], strings_can_be_null=True, true_values=[], false_values=[],
            column_types={names[i]: pa.string() for i in as_text}))
    if table.num_columns != n_columns:
        return None
    columns: list[Column] = []
    for column in table.columns:
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            # unsafe: integers beyond 2**53 round, as the careful reader's float() does
            column = column.cast(pa.float64(), safe=False).fill_null(float("nan"))
            columns.append(column.to_numpy().astype(np.float64, copy=False))
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns.append(["" if value is None else value for value in column.to_pylist()])
        elif pa.types.is_null(column.type):         # not one value in the column
            columns.append(np.full(len(column), np.nan))
        else:                      # dates, times and the like: the careful reader's to judge
            return None
    return columns


def _pandas_csv(path: str, delimiter: str, n_columns: int,
                as_text: Collection[int]) -> list[Column] | None:
    import pandas as pd
    options: dict = {}
    if int(pd.__version__.split(".")[0]) < 3:
        options["float_precision"] = "round_trip"   # pandas 3 parses floats exactly by default
    # the columns named by position, so that as_text can name them whatever the header
    # says. A row longer than the header is an error, or, when every row is, makes
    # an index of the first column; a row shorter is filled with missing values,
    # which then only counting delimiters tells
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        frame = pd.read_csv(path, sep=delimiter, header=0, names=list(range(n_columns)),
                            dtype={i: str for i in as_text},
                            keep_default_na=False, na_values=[""], true_values=[],
                            false_values=[], encoding="utf-8-sig", engine="c",
                            low_memory=False, **options)
    if frame.shape[1] != n_columns or not frame.index.equals(pd.RangeIndex(len(frame))):
        return None
    if frame.isna().to_numpy().any() and not _rows_complete(path, delimiter, n_columns,
                                                             len(frame)):
        return None
    columns: list[Column] = []
    for _, series in frame.items():
        kind = series.dtype.kind
        if kind in "iuf":
            columns.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
        elif kind in "OT" or str(series.dtype) in ("string", "str"):
            values = series.to_numpy(dtype=object, na_value="")
            if not all(isinstance(value, str) for value in values):
                return None
            columns.append(list(values))
        else:
            return None
    return columns


def _rows_complete(path: str, delimiter: str, n_columns: int, n_rows: int) -> bool:
    """Whether the header and ``n_rows`` rows (blank lines aside) hold exactly
    ``n_columns - 1`` delimiters each, counted in the file's bytes (none longer:
    pandas warned of those). A file with quotes, where a delimiter may be
    text, is left to the careful reader."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if b'"' in data:
        return False
    return data.count(delimiter.encode()) == (n_rows + 1) * (n_columns - 1)


# --- Parquet ---------------------------------------------------------------------------

def parquet_reader() -> str:
    """pyarrow or pandas (with a Parquet engine), or a CommandError saying what to install."""
    if _installed("pyarrow"):
        return "pyarrow"
    if _installed("pandas") and _installed("fastparquet"):
        return "pandas"
    raise CommandError('reading Parquet files needs pyarrow: pip install "fastwb[io]" '
                       '(or pip install pyarrow)')


def read_parquet_columns(path: str) -> tuple[list[str], list[Column]]:
    """The column names and columns of a Parquet file: clean numeric columns
    as float64; the others as text (a missing value as an empty string, a
    number as its shortest repr), so that the careful checks word every problem."""
    reader = parquet_reader()
    try:
        if reader == "pyarrow":
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pq.read_table(path)
            names = [str(name) for name in table.column_names]
            columns = []
            for column in table.columns:
                numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                values = (column.cast(pa.float64(), safe=False).to_numpy()
                          if numeric and not column.null_count
                          else column.to_pylist())
                columns.append(_parquet_column(values))
        else:
            import pandas as pd
            frame = pd.read_parquet(path)
            names = [str(name) for name in frame.columns]
            columns = [_parquet_column(series.to_numpy(dtype=np.float64)
                                       if series.dtype.kind in "iuf" and not series.isna().any()
                                       else series.tolist())
                       for _, series in frame.items()]
    except MemoryError:
        raise
    except Exception as error:   # noqa: BLE001 - any reader failure is an unreadable file
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CommandError(f"{path} is not a readable Parquet file: {first}") from None
    return names, columns


def _parquet_column(values) -> Column:
    if isinstance(values, np.ndarray) and np.isfinite(values).all():
        return values
    return ["" if value is None or (isinstance(value, float) and np.isnan(value))
            else str(value) for value in values]


# --- progress --------------------------------------------------------------------------

@contextmanager
def progress_note(path: str, reader: str, stream=None) -> Iterator[None]:
    """A one-line note on ``stream`` (stderr) for a read still running after
    PROGRESS_AFTER_S: "reading PATH (SIZE) with READER ..." and, when it ends,
    how long it took."""
    stream = sys.stderr if stream is None else stream
    shown = threading.Event()
    lock = threading.Lock()
    done = False

    def announce() -> None:
        with lock:
            if done:
                return
            size = os.path.getsize(path) / 1e6
            print(f"fastwb: reading {path} ({size:,.0f} MB) with {reader} ...", end="",
                  file=stream, flush=True)
            shown.set()

    timer = threading.Timer(PROGRESS_AFTER_S, announce)
    timer.daemon = True
    start = time.perf_counter()
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            done = True
        if shown.is_set():
            print(f" {time.perf_counter() - start:.1f} s", file=stream, flush=True)
