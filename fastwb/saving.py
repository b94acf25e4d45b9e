"""Save and load networks and estimators: arrays plus a JSON header, never pickle.

``save(obj, path)`` writes a ``Network`` (with its optimizer's state, so that
training resumes exactly) or a fastwb scikit-learn estimator; ``load(path)``
gives it back. Loading reads numbers and JSON only: nothing in the file is
unpickled or executed, and a file that is not a complete, unmodified fastwb
file raises ``ModelFileError`` naming the file and the problem.

File format, version 1
----------------------
All integers are little-endian; ``.fwb`` is the suggested extension::

    offset 0       magic, 8 bytes: 89 46 57 42 0D 0A 1A 0A  (b"\\x89FWB\\r\\n\\x1a\\n")
    offset 8       H, the length of the header in bytes: uint64
    offset 16      the header: H bytes of UTF-8 JSON (fastwb writes ASCII), padded
                   with spaces so that the data starts at a multiple of 64
    offset 16 + H  the data: every array's raw bytes in C order at its "offset"
                   (counted from here, a multiple of 64), each padded with zero
                   bytes to a multiple of 64
    last 32 bytes  SHA-256 of every byte before them

As in PNG, the magic's first byte is not ASCII and its CR LF, SUB and LF
show a file mangled by a text-mode transfer. The header is a JSON object::

    {"format_version": 1, "fastwb_version": "0.1.0", "kind": "network",
     "config": {...},
     "arrays": {"parameters": {"dtype": "<f4", "shape": [67], "offset": 0,
                               "nbytes": 268}, ...}}

``kind`` ("network", "MLPClassifier" or "MLPRegressor"; for scikit-learn
preprocessing saved with the model "Pipeline", "ColumnTransformer",
"TransformedTargetRegressor", or a transformer's class name such as
"StandardScaler") says what ``config`` describes. Array dtypes are limited to
"<f4", "<f8", "<i4", "<i8", "|u1", "|b1" and "<U<n>" (fixed-width unicode, for
class labels and text categories). JSON has no NaN or infinity, so a
non-finite float in ``config`` is written as the object ``{"__float__": "nan"}``
(or ``"inf"``, ``"-inf"``).

Every version of the format starts with the magic, H and a JSON header holding
``format_version``, so a fastwb that meets a newer file says to upgrade. A
reader opens only regular files (a FIFO would block it, a device never end)
and checks, in this order: the magic, H, the header (JSON nested at most 64
deep with integers in 64-bit range, then its fields, array shapes no larger
than the file even counting axes of length 0 as 1), that the file has exactly
the length the header implies (shorter: truncated), and the checksum; only
then does it build anything, and whatever the builder refuses (a config of
impossible sizes, an estimator whose classes disagree with its network's
outputs, NaN optimizer moments) is a ``ModelFileError`` too.

The checksum detects corruption, not tampering: whoever edits a file can
recompute it. A crafted file is refused as a corrupted one is, and cannot run
code, exhaust memory or block the reader; its values are its author's.

Writing is atomic: the file is written in full under a temporary name in the
target's directory (``.<name>.<process id>.<16 hex digits>.tmp``), flushed to
disk, then renamed over the target, so a crash leaves the previous file
intact. The writer holds an exclusive ``flock`` on its temporary file until
the rename, and each save first removes the temporary files for the same
target that it can lock at once: those of a save that was killed (the system
releases a dead process's locks), whatever process id they name, while a save
still writing, in this process or another (on another machine too, where the
file system shares locks, as NFS does), keeps its file. The cleanup needs
POSIX file locks; elsewhere no temporary file is removed.

This module knows the file format, not the objects: each kind of model gives
its state as a config and arrays and is rebuilt from them (``_READERS``). For
a network, ``config`` and the arrays are ``Network.get_state()``'s: the
network's ``get_config()`` and the optimizer's config, counters and schedule
state; "parameters" and the optimizer's moment buffers, "optimizer/<name>".
A scikit-learn Pipeline's config is a tree of its steps (class name,
constructor parameters, fitted scalars), each step's arrays named by where it
stands ("steps/0/transformers/1/categories_/0", a fastwb estimator's under
"steps/2/network/parameters" ...); ``fastwb._pipeline_state`` writes and
rebuilds them, constructing only the classes of a fixed table.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import re
import secrets
import stat
from typing import Any, Iterator, Mapping, NamedTuple, TypeGuard

import numpy as np

from fastwb import _pipeline_state
from fastwb._validation import shown
from fastwb._version import __version__
from fastwb.network import Network

try:
    import fcntl
except ImportError:     # not POSIX: saves neither lock nor clean up
    fcntl = None  # type: ignore[assignment]

__all__ = ["FORMAT_VERSION", "ModelFileError", "build", "building", "load", "read_file",
           "read_header", "save"]

#: The newest format version this fastwb writes and reads.
FORMAT_VERSION = 1
#: The first 8 bytes of every fastwb file.
MAGIC = b"\x89FWB\r\n\x1a\n"

_ALIGN = 64
_PREAMBLE_NBYTES = len(MAGIC) + 8
_DIGEST_NBYTES = 32
#: Far beyond any real header (configs are small; arrays hold the bulk), and a
#: bound on what a corrupted length field can make the reader allocate.
_MAX_HEADER_NBYTES = 1 << 24
_MAX_NDIM = 32
#: Bounds on what a header may describe, checked before anything is built from
#: it: JSON nesting (real headers nest 7 deep) and integers (int64's or
#: uint64's range: seeds go up to 2**64 - 1). An array's shape is bounded by
#: the file's length.
_MAX_DEPTH = 64
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)
_MAX_NAME = 256
_CHUNK = 1 << 20
#: The longest account of a builder's refusal a ModelFileError quotes.
_MAX_PROBLEM = 400
#: What each kind of file holds: the class, or the module that defines it when
#: that module needs an optional dependency (fastwb.sklearn: scikit-learn), to
#: be imported only when such a file is loaded; for scikit-learn's pipelines and
#: transformers, the module that rebuilds them.
_READERS: dict[str, Any] = {"network": Network, "MLPClassifier": "fastwb.sklearn",
                            "MLPRegressor": "fastwb.sklearn",
                            **{kind: _pipeline_state for kind in _pipeline_state.KINDS}}
_KINDS = tuple(_READERS)
_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|u1", "|b1"})
_UNICODE = re.compile(r"<U[1-9][0-9]{0,5}\Z")
_HEADER_KEYS = ("format_version", "fastwb_version", "kind", "config", "arrays")
_ARRAY_KEYS = ("dtype", "shape", "offset", "nbytes")
_FLOAT_TAG = "__float__"
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


#: What building a model from a checked header and arrays raises when a crafted
#: file describes an impossible one (a config of the wrong shapes or types).
_BUILD_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError,
                 RecursionError)


class ModelFileError(ValueError):
    """A file that is not a readable fastwb model: not a fastwb file, truncated,
    corrupted or modified, from a newer fastwb, or describing an invalid model."""


# --- save ------------------------------------------------------------------------------

def save(obj, path: str | os.PathLike) -> None:
    """Write a ``Network``, a fastwb estimator or a scikit-learn Pipeline ending in
    one to ``path``, atomically.

    A network is saved with its optimizer's state (moments, step count,
    schedule), so that ``load(path).fit(X, y)`` continues training exactly
    where it stopped. The file is written under a temporary name next to
    ``path`` and renamed over it only once complete and flushed to disk: a
    crash leaves the previous file at ``path`` as it was. See the module
    docstring for the format.

    Parameters
    ----------
    obj : Network, scikit-learn object, or an object with a ``_fastwb_state()`` method
        ``_fastwb_state()`` returns ``(kind, config, arrays)``: a kind that
        ``load`` knows, a JSON-able dict, and a dict of NumPy arrays (the
        fastwb.sklearn estimators have it, and ``_from_fastwb_state`` to
        rebuild one). The scikit-learn objects saved are a fitted
        ``Pipeline`` of StandardScaler, MinMaxScaler, MaxAbsScaler,
        RobustScaler, SimpleImputer, OneHotEncoder and ColumnTransformer
        ending in a fastwb estimator, a ``TransformedTargetRegressor`` of a
        fastwb MLPRegressor (or such a Pipeline) and one of the scalers, or
        one such transformer alone (see ``fastwb._pipeline_state``).
    path : str or os.PathLike
        The file to write (replaced if it exists; a symbolic link is followed).

    Raises
    ------
    ValueError
        If the network's parameters are not finite, or the config or arrays
        hold what the format cannot (see ``Network.get_state``).
    TypeError
        If ``obj`` is neither a network nor a fastwb estimator nor such a
        scikit-learn object; for a Pipeline, the message names the step (its
        name and class) that cannot be saved. An unfitted step is a
        ValueError. Either is raised before anything is written.
    IsADirectoryError, FileNotFoundError
        If ``path`` is a directory, or its directory does not exist.

    Examples
    --------
    >>> import os, tempfile, fastwb
    >>> net = fastwb.Network([2, 3, 1], seed=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     fastwb.save(net, os.path.join(folder, "model.fwb"))
    ...     copy = fastwb.load(os.path.join(folder, "model.fwb"))
    >>> bool((copy.parameters == net.parameters).all()), copy.sizes
    (True, (2, 3, 1))
    """
    target = _target(path)
    kind, config, arrays = _state_of(obj)
    header, data = _encode(kind, config, arrays)
    _write_atomic(target, header, data)


def _state_of(obj) -> tuple[str, dict, Mapping]:
    if isinstance(obj, Network):
        return ("network", *obj.get_state())
    method = getattr(obj, "_fastwb_state", None)
    if method is None and type(obj).__module__.split(".")[0] == "sklearn":
        # a Pipeline, or what cannot be saved: that module's error names it
        return _pipeline_state.state_of(obj)
    if method is None:
        raise TypeError(f"fastwb.save saves a fastwb Network or estimator, got "
                        f"{type(obj).__name__} (or a scikit-learn Pipeline ending in one)")
    kind, config, arrays = method()
    estimators = [name for name, reader in _READERS.items() if reader == "fastwb.sklearn"]
    if kind not in estimators:
        raise ValueError(f"{type(obj).__name__}._fastwb_state() gave kind {kind!r}; fastwb "
                         f"loads only {', '.join(estimators)} from such a state")
    return kind, config, arrays


def _target(path) -> str:
    """The file to write: ``path`` with symbolic links resolved, in an existing directory."""
    name = os.fsdecode(path)
    target = os.path.realpath(name)
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save to {name}: it is a directory; give a file name "
                                f"such as {os.path.join(name, 'model.fwb')}")
    if not os.path.isdir(os.path.dirname(target)):
        raise FileNotFoundError(f"cannot save to {name}: the directory "
                                f"{os.path.dirname(target)} does not exist")
    return target


def _encode(kind: str, config, arrays) -> tuple[bytes, list[np.ndarray]]:
    """The padded header and the arrays, as written."""
    if not isinstance(config, Mapping):
        raise TypeError(f"the config to save must be a dict, got {type(config).__name__}")
    if not isinstance(arrays, Mapping):
        raise TypeError(f"the arrays to save must be a dict, got {type(arrays).__name__}")
    table, data, offset = {}, [], 0
    for name, value in arrays.items():
        if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME:
            raise ValueError(f"array names must be strings of 1 to {_MAX_NAME} characters, "
                             f"got {name!r}")
        array = _storable(value, name)
        table[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset,
                       "nbytes": array.nbytes}
        data.append(array)
        offset += _aligned(array.nbytes)
    header = {"format_version": FORMAT_VERSION, "fastwb_version": __version__, "kind": kind,
              "config": _to_json(config, "config"), "arrays": table}
    problem = _tree_problem(header)
    if problem is not None:
        raise ValueError(f"cannot save this config: {problem}")
    text = json.dumps(header, ensure_ascii=True, allow_nan=False,
                      separators=(",", ":")).encode("ascii")
    if len(text) > _MAX_HEADER_NBYTES - _ALIGN:
        raise ValueError(f"the config takes {len(text)} bytes of JSON, more than a fastwb file's "
                         f"header may ({_MAX_HEADER_NBYTES - _ALIGN}); put bulk data in arrays")
    padding = _aligned(_PREAMBLE_NBYTES + len(text)) - _PREAMBLE_NBYTES - len(text)
    size = _PREAMBLE_NBYTES + len(text) + padding + offset + _DIGEST_NBYTES
    for name, array in zip(table, data):
        if _extent(array.shape, array.dtype) > size:     # as the reader checks
            raise ValueError(f"array {name!r} is empty but of shape {array.shape}, whose other "
                             f"axes describe more than the file's {size} bytes")
    return text + b" " * padding, data


def _storable(value, name: str) -> np.ndarray:
    """``value`` as a C-contiguous little-endian array of an allowed dtype."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"array {name!r} must be a NumPy array, got {type(value).__name__}")
    dtype = value.dtype.newbyteorder("<")
    if not _allowed_dtype(dtype.str):
        raise TypeError(f"array {name!r} has dtype {value.dtype}; a fastwb file holds float32, "
                        "float64, int32, int64, uint8, bool and fixed-width unicode arrays only")
    array = np.asarray(value).astype(dtype, order="C", copy=False)
    if array.dtype.kind == "U" and not _unicode_ok(array):
        raise ValueError(f"array {name!r} holds lone surrogates, which are not Unicode "
                         "characters; a fastwb file cannot hold them")
    return array


def _extent(shape, dtype: np.dtype) -> int:
    """The bytes a shape describes counting axes of length 0 as 1: no array in a
    file may exceed the file so (an empty one of shape [2**40, 0] holds nothing,
    yet a reader iterating its rows would never end)."""
    return math.prod(max(n, 1) for n in shape) * dtype.itemsize


def _allowed_dtype(text: str) -> bool:
    return text in _DTYPES or _UNICODE.match(text) is not None


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _to_json(value, where: str):
    """``value`` in the header's JSON terms: NumPy scalars as Python numbers,
    tuples as lists, non-finite floats tagged."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isfinite(x):
            return x
        return {_FLOAT_TAG: "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}
    if isinstance(value, Mapping):
        if set(value) == {_FLOAT_TAG}:
            raise ValueError(f"{where} is a dict with the single key {_FLOAT_TAG!r}, which fastwb "
                             "files reserve for non-finite floats")
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}; keys must be strings")
        return {key: _to_json(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where} is a {type(value).__name__}, which a fastwb file's JSON header "
                    "cannot hold (None, bool, int, float, str, lists and dicts only; arrays go "
                    "in the arrays)")


def _write_atomic(path: str, header: bytes, arrays: list[np.ndarray]) -> None:
    directory, name = os.path.split(path)
    _remove_stale_temporaries(directory, name)
    fd, temporary = _locked_temporary(directory, name)
    try:
        # the file stays open, and so locked, until renamed: a concurrent save's
        # cleanup must not take it for a killed save's
        with open(fd, "wb") as f:
            _write_contents(f, header, arrays)
            f.flush()
            os.fsync(f.fileno())
            os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
    _sync_directory(directory)


def _locked_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new temporary file for target ``name``, open for writing and locked."""
    while True:
        # not tempfile.mkstemp: its files are private (0600), and the saved model
        # should get the permissions any new file gets (the umask's)
        temporary = os.path.join(directory,
                                 f".{name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temporary,
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        if fcntl is None:
            return fd, temporary
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # another save's cleanup may have locked and removed it between the
            # open and the lock: then write under another name
            if os.fstat(fd).st_nlink > 0:
                return fd, temporary
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Remove the temporary files that earlier saves to ``name`` left when they
    were killed mid-write: those named as ``_write_atomic`` names them for this
    target that no save holds locked (a save still writing, in any process,
    keeps its file). Nothing is removed without POSIX file locks."""
    if fcntl is None:
        return
    pattern = _temporary_pattern(name)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if pattern.match(entry) is not None:
            _remove_if_unlocked(os.path.join(directory, entry))


def _remove_if_unlocked(temporary: str) -> None:
    """Remove ``temporary``, a regular file, if no one holds a lock on it."""
    assert fcntl is not None
    try:
        fd = os.open(temporary, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return          # gone already, a symbolic link, or not ours to read
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # still the file we locked at that name: its save may have renamed it
        # into place between our open and our lock
        now = os.lstat(temporary)
        if (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino):
            os.remove(temporary)
    except OSError:
        pass            # locked by a save still writing, or gone: the save goes on
    finally:
        os.close(fd)


def _temporary_pattern(name: str) -> re.Pattern:
    """The names ``_write_atomic`` gives its temporary files for target ``name``
    (the process id is absent from those of older fastwb versions)."""
    return re.compile(rf"\.{re.escape(name)}\.(?:([0-9]+)\.)?[0-9a-f]{{16}}\.tmp\Z")


def _write_contents(f, header: bytes, arrays: list[np.ndarray]) -> None:
    digest = hashlib.sha256()

    def write(chunk) -> None:
        digest.update(chunk)
        f.write(chunk)

    write(MAGIC)
    write(len(header).to_bytes(8, "little"))
    write(header)
    for array in arrays:
        write(_raw_bytes(array))
        write(bytes(_aligned(array.nbytes) - array.nbytes))
    f.write(digest.digest())


def _raw_bytes(array: np.ndarray) -> memoryview:
    return memoryview(array.reshape(-1).view(np.uint8))


def _sync_directory(directory: str) -> None:
    """Make the rename itself survive a power cut, where the system allows it."""
    if os.name != "posix":        # Windows cannot open a directory to sync it
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass    # the file is saved; only its durability across a power cut is weaker


# --- load ------------------------------------------------------------------------------

def load(path: str | os.PathLike):
    """The network, estimator or scikit-learn Pipeline that ``save`` wrote to ``path``.

    A network comes back with its optimizer as ``net.optimizer``, so
    ``fit(..., optimizer=None)`` continues training exactly. Nothing in the
    file is unpickled or executed.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ModelFileError (a ValueError)
        If the file is not a regular file or not a fastwb model file, is
        truncated, corrupted or modified, comes from a newer format version, or
        describes a model that cannot be built or whose parts disagree. The
        message names the file and the problem.
    ImportError
        If the file holds an estimator or a Pipeline and scikit-learn is not
        installed.
    """
    name = os.fsdecode(path)
    header, arrays = _read(name, with_data=True)
    return build(name, header["kind"], header["config"], arrays)


def read_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What ``read_header`` and ``load`` read, from one read of the file: the
    header as ``read_header`` gives it, and the arrays, checked but not built
    into a model (``build`` does that).

    Raises
    ------
    FileNotFoundError, ModelFileError
        As ``read_header``.
    """
    header, arrays = _read(os.fsdecode(path), with_data=True)
    return _described(header), arrays


def build(path: str | os.PathLike, kind: str, config: dict[str, Any],
          arrays: dict[str, np.ndarray]):
    """The model of ``kind`` that ``config`` and ``arrays`` (read from ``path``)
    describe, as ``load`` builds it.

    Raises
    ------
    ModelFileError
        If they describe a model that cannot be built or whose parts disagree.
    ImportError
        If the model is an estimator and scikit-learn is not installed.
    """
    with building(path, kind):
        reader = _READERS[kind]
        if reader is Network:
            return Network.from_state(config, arrays)
        if reader is _pipeline_state:        # scikit-learn is imported there, when needed
            return _pipeline_state.from_state(kind, config, arrays)
        estimator = getattr(importlib.import_module(reader), kind)
        return estimator._from_fastwb_state(config, arrays)


@contextlib.contextmanager
def building(path: str | os.PathLike, kind: str) -> Iterator[None]:
    """Turn what building a ``kind`` from the file at ``path`` raises for a
    model that cannot be built (``_BUILD_ERRORS``) into a ``ModelFileError``
    naming the file and the problem."""
    try:
        yield
    except ModelFileError:
        raise
    except _BUILD_ERRORS as exc:
        problem = f"it lacks {exc}" if isinstance(exc, KeyError) else str(exc) or repr(exc)
        if len(problem) > _MAX_PROBLEM:     # a value from the file may be quoted in full
            problem = problem[:_MAX_PROBLEM - 3] + "..."
        message = f"{os.fsdecode(path)} describes a {kind} that cannot be built: {problem}"
        raise ModelFileError(message) from exc


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """What a fastwb file holds, without building it or keeping its arrays.

    The whole file is read to verify its length and checksum, as ``load`` does.

    Returns
    -------
    dict
        ``kind``, ``format_version``, ``fastwb_version`` (of the writer),
        ``config``, and ``arrays``: for each array name, its ``dtype`` (a
        string such as "float32" or "<U5"), ``shape`` (a tuple) and ``nbytes``.
        For a scikit-learn Pipeline (or ColumnTransformer, ...) also ``steps``:
        one line per step, nested steps indented, such as
        "scale: StandardScaler (8 columns)".

    Raises
    ------
    FileNotFoundError, ModelFileError
        As ``load``.
    """
    header, _ = _read(os.fsdecode(path), with_data=False)
    return _described(header)


def _described(header: dict) -> dict[str, Any]:
    """The checked header as ``read_header`` gives it."""
    arrays = {name: {"dtype": str(entry.dtype), "shape": entry.shape, "nbytes": entry.nbytes}
              for name, entry in header["arrays"].items()}
    if header["kind"] in _pipeline_state.KINDS:
        return {**header, "arrays": arrays, "steps": _pipeline_state.describe(header["config"])}
    return {**header, "arrays": arrays}


class _Entry(NamedTuple):
    """An array's line in the header, checked."""

    dtype: np.dtype
    shape: tuple
    offset: int
    nbytes: int


def _read(path: str, with_data: bool) -> tuple[dict, dict[str, np.ndarray]]:
    """The checked header (arrays as ``_Entry``) and, ``with_data``, the arrays."""
    with _open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        preamble, header_nbytes = _read_preamble(f, size, path)
        header_bytes = f.read(header_nbytes)
        header = _parse_header(header_bytes, path, size)
        data_nbytes = _data_nbytes(header["arrays"], path)
        expected = _PREAMBLE_NBYTES + len(header_bytes) + data_nbytes + _DIGEST_NBYTES
        if size != expected:
            problem = "truncated" if size < expected else f"{size - expected} bytes too long"
            raise ModelFileError(f"{path} is {problem}: its header describes {expected} bytes, "
                                 f"the file has {size}")
        digest = hashlib.sha256(preamble + header_bytes)
        arrays = _read_data(f, header["arrays"], data_nbytes, digest, with_data, path)
        if f.read(_DIGEST_NBYTES) != digest.digest():
            raise ModelFileError(f"{path} is corrupted or was modified: its checksum does not "
                                 "match its contents")
    for name, array in arrays.items():
        _check_values(array, name, path)
    return header, arrays


def _open_regular(path: str):
    """``path`` opened for binary reading, refused unless a regular file.

    Opened without blocking and checked through the open descriptor: opening a
    FIFO for reading waits for a writer, and reading a device such as
    /dev/zero never ends.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ModelFileError(f"{path} is not a fastwb model file: it is "
                                 f"{file_type(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_type(mode: int) -> str:
    """What a ``stat`` mode that is not a regular file's describes, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _read_preamble(f, size: int, path: str) -> tuple[bytes, int]:
    """The preamble (magic and header length) and the header length, checked
    against the file's size."""
    preamble = f.read(_PREAMBLE_NBYTES)
    if not preamble:
        raise ModelFileError(f"{path} is not a fastwb model file: it is empty")
    if preamble[:len(MAGIC)] != MAGIC[:len(preamble)]:
        hint = ("; it looks mangled by a text-mode transfer (copy it as binary)"
                if preamble[1:4] == MAGIC[1:4] else "")
        raise ModelFileError(f"{path} is not a fastwb model file: it lacks the fastwb "
                             f"signature{hint}")
    if len(preamble) < _PREAMBLE_NBYTES:
        raise ModelFileError(f"{path} is truncated: it has only {size} bytes")
    header_nbytes = int.from_bytes(preamble[len(MAGIC):], "little")
    if header_nbytes > _MAX_HEADER_NBYTES or (_PREAMBLE_NBYTES + header_nbytes) % _ALIGN:
        raise ModelFileError(f"{path} is corrupted: its header length {header_nbytes} is not "
                             "one fastwb writes")
    if size < _PREAMBLE_NBYTES + header_nbytes + _DIGEST_NBYTES:
        raise ModelFileError(f"{path} is truncated: its {size} bytes cannot hold the "
                             f"{header_nbytes}-byte header it announces")
    return preamble, header_nbytes


def _parse_header(text: bytes, path: str, size: int) -> dict:
    """The header, checked; ``size``, the file's length, bounds its arrays' shapes."""
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_json_object,
                            parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:      # Python 3.10's decoder recurses: far deeper than a file may
        raise ModelFileError(f"{path} has an invalid header: it nests deeper than "
                             f"{_MAX_DEPTH} levels") from None
    except ValueError as exc:     # UnicodeDecodeError is a ValueError
        raise ModelFileError(f"{path} is corrupted: its header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} is corrupted: its header is not a JSON object")
    problem = _tree_problem(header)
    if problem is not None:
        raise ModelFileError(f"{path} has an invalid header: {problem}")
    _check_version(header, path)
    missing, unknown = set(_HEADER_KEYS) - set(header), set(header) - set(_HEADER_KEYS)
    if missing or unknown:
        raise ModelFileError(f"{path} has an invalid header: missing {sorted(missing)}, "
                             f"unknown {sorted(unknown)}")
    if not isinstance(header["fastwb_version"], str):
        raise ModelFileError(f"{path} has an invalid header: fastwb_version is not a string")
    if header["kind"] not in _KINDS:
        raise ModelFileError(f"{path} holds a {shown(header['kind'])}, which this fastwb does not "
                             f"know (it loads {', '.join(_KINDS)})")
    if not isinstance(header["config"], dict) or not isinstance(header["arrays"], dict):
        raise ModelFileError(f"{path} has an invalid header: config and arrays must be objects")
    header["arrays"] = {name: _entry(name, entry, path, size)
                        for name, entry in header["arrays"].items()}
    return header


def _tree_problem(header: dict) -> str | None:
    """What in the header nests deeper or is a larger integer than a file may
    hold (None if nothing): checked before anything recurses into a header read
    or sizes anything from its numbers, and on saving, so that what is saved loads."""
    stack: list[tuple[Any, int]] = [(header, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > _MAX_DEPTH:
                return f"it nests deeper than {_MAX_DEPTH} levels"
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
        elif _is_int(value) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return f"the integer {value} is outside the 64-bit range fastwb files hold"
    return None


def _check_version(header: dict, path: str) -> None:
    # first of all: a newer format may change everything else
    version = header.get("format_version")
    if not _is_int(version) or version < 1:
        raise ModelFileError(f"{path} has an invalid header: format_version is {shown(version)}")
    if version > FORMAT_VERSION:
        writer = header.get("fastwb_version")
        if not isinstance(writer, str):
            writer = "(unknown)"
        elif not (writer.isprintable() and len(writer) <= 40):
            writer = shown(writer)
        raise ModelFileError(
            f"{path} was written by fastwb {writer} "
            f"in format version {version}; this fastwb ({__version__}) reads up to version "
            f"{FORMAT_VERSION}: upgrade fastwb")


def _entry(name: str, entry, path: str, size: int) -> _Entry:
    problem = f"{path} has an invalid header: array {name[:_MAX_NAME]!r}"
    if not 0 < len(name) <= _MAX_NAME:
        raise ModelFileError(f"{problem} has a name of {len(name)} characters")
    if not isinstance(entry, dict) or set(entry) != set(_ARRAY_KEYS):
        raise ModelFileError(f"{problem} must be an object with the keys {list(_ARRAY_KEYS)}")
    dtype, shape, offset, nbytes = (entry[key] for key in _ARRAY_KEYS)
    if not isinstance(dtype, str) or not _allowed_dtype(dtype):
        raise ModelFileError(f"{problem} has dtype {shown(dtype)}, which fastwb files do not hold")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(_is_int(n) and n >= 0 for n in shape)):
        raise ModelFileError(f"{problem} has shape {shown(shape)}; a shape is a list of at most "
                             f"{_MAX_NDIM} nonnegative integers")
    if not (_is_int(offset) and offset >= 0 and offset % _ALIGN == 0):
        raise ModelFileError(f"{problem} has offset {shown(offset)}; offsets are nonnegative "
                             f"multiples of {_ALIGN}")
    dtype = np.dtype(dtype)
    if _extent(shape, dtype) > size:
        raise ModelFileError(f"{problem} has shape {shape!r}, larger than the whole file "
                             "(counting axes of length 0 as 1)")
    if not _is_int(nbytes) or nbytes != math.prod(shape) * dtype.itemsize:
        raise ModelFileError(f"{problem} has nbytes {shown(nbytes)}; its dtype and shape take "
                             f"{math.prod(shape) * dtype.itemsize}")
    return _Entry(dtype, tuple(shape), offset, nbytes)


def _data_nbytes(entries: dict[str, _Entry], path: str) -> int:
    """The length of the data section the entries need, checking that no two overlap."""
    end, previous = 0, None
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].offset,
                                                                   item[1].nbytes)):
        if entry.offset < end:
            raise ModelFileError(f"{path} has an invalid header: arrays {previous!r} and "
                                 f"{name!r} overlap")
        end, previous = entry.offset + entry.nbytes, name
    return _aligned(end)


def _read_data(f, entries: dict[str, _Entry], nbytes: int, digest, keep: bool,
               path: str) -> dict[str, np.ndarray]:
    """Read and hash the data section; with ``keep``, each array straight into a
    new array of its own (no copy of the whole section held beside them, which
    would double the peak memory of a load), else through one small buffer."""
    arrays, position = {}, 0
    scratch = memoryview(bytearray(min(nbytes, _CHUNK)))
    for name, entry in sorted(entries.items(), key=lambda item: item[1].offset) if keep else ():
        _read_into(f, scratch, entry.offset - position, digest, path)      # the padding
        array = np.empty(entry.shape, entry.dtype)
        _read_into(f, memoryview(array.reshape(-1).view(np.uint8)), entry.nbytes, digest, path)
        # native byte order (a copy on big-endian machines only)
        arrays[name] = array.astype(entry.dtype.newbyteorder("="), copy=False)
        position = entry.offset + entry.nbytes
    _read_into(f, scratch, nbytes - position, digest, path)
    return {name: arrays[name] for name in entries if name in arrays}     # the header's order


def _read_into(f, buffer: memoryview, nbytes: int, digest, path: str) -> None:
    """Read ``nbytes`` into ``buffer`` and hash them, in chunks; a buffer
    shorter than ``nbytes`` is filled over and over (padding that is not kept)."""
    done = 0
    while done < nbytes:
        start = done % len(buffer)
        view = buffer[start:start + min(nbytes - done, _CHUNK, len(buffer) - start)]
        count = f.readinto(view)
        if not count:
            raise ModelFileError(f"{path} is truncated: it shrank while being read")
        digest.update(view[:count])
        done += count


def _check_values(array: np.ndarray, name: str, path: str) -> None:
    """Refuse bytes that are no value of the dtype: NumPy would misbehave on them."""
    if array.dtype == np.bool_ and (array.view(np.uint8) > 1).any():
        raise ModelFileError(f"{path} is corrupted: array {name!r} holds bytes other than 0 "
                             "and 1 as booleans")
    if array.dtype.kind == "U" and not _unicode_ok(array):
        raise ModelFileError(f"{path} is corrupted: array {name!r} holds code points that are "
                             "not Unicode characters (surrogates, or beyond U+10FFFF)")


def _unicode_ok(array: np.ndarray) -> bool:
    """No code point beyond Unicode's range and no lone surrogate, which no
    encoding can write (printing such a class label fails)."""
    points = array.view(np.uint32)
    return not ((points > 0x10FFFF) | ((points >= 0xD800) & (points <= 0xDFFF))).any()


def _json_object(pairs: list[tuple[str, Any]]):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys in an object with keys {shown(keys, 200)}")
    if keys == [_FLOAT_TAG]:
        value = pairs[0][1]
        if not isinstance(value, str) or value not in _NON_FINITE:
            raise ValueError(f"{_FLOAT_TAG} must be one of {list(_NON_FINITE)}, got "
                             f"{shown(value)}")
        return _NON_FINITE[value]
    return dict(pairs)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON; fastwb writes non-finite floats as {_FLOAT_TAG}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} overflows a float")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
