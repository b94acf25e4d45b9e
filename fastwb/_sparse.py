"""Sparse input: scipy.sparse matrices checked once into rows the kernels take.

A sparse ``X`` never becomes dense. ``SparseRows`` holds it in CSR form with
the network's dtype and ``np.intp`` indices: the compiled core multiplies its
rows into the first layer (``Z = X W``, ``dW = X^T D``) and gathers each
minibatch by row index inside the epoch loop; the reference uses scipy's
products on ``matrix``.

What the check costs: CSC, COO and the other formats are converted to CSR
once (a copy of the stored entries); the indices and row pointers are always
copied to ``np.intp`` (a kernel must never read indices the caller can change
afterwards); the values are cast to the network's dtype, a copy only when
their dtype differs. Duplicate entries and unsorted indices are kept as given:
the products sum duplicates, as scipy's do.
"""
from __future__ import annotations

import numpy as np


def is_sparse(value) -> bool:
    """Whether ``value`` is a scipy.sparse matrix or array (without importing scipy
    for anything else)."""
    if isinstance(value, (np.ndarray, SparseRows)) or not hasattr(value, "tocsr"):
        return False
    import scipy.sparse
    return scipy.sparse.issparse(value)


class SparseRows:
    """A checked CSR matrix: ``data`` (the network's dtype), ``indices`` and
    ``indptr`` (``np.intp``, read-only, ``indptr[0] == 0``), ``shape``.

    Build it with ``check``; every instance holds indices in range and
    nondecreasing row pointers, which the compiled kernels rely on."""

    __slots__ = ("data", "indices", "indptr", "shape")

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                 shape: tuple[int, int]):
        # private: only check() and take() call this, with arrays that passed the checks
        self.data, self.indices, self.indptr = data, indices, indptr
        self.shape = (int(shape[0]), int(shape[1]))
        for array in (data, indices, indptr):
            array.flags.writeable = False

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the stored values."""
        return self.data.dtype

    @property
    def nnz(self) -> int:
        """How many values are stored (duplicates count apart)."""
        return int(self.indptr[-1])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def matrix(self):
        """The rows as a ``scipy.sparse.csr_matrix`` sharing these arrays' values."""
        import scipy.sparse
        return scipy.sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape,
                                       copy=False)

    def take(self, rows) -> "SparseRows":
        """The rows ``rows`` (an index array or a slice), in that order, as new SparseRows."""
        index = np.arange(self.shape[0])[rows]
        starts, stops = self.indptr[index], self.indptr[index + 1]
        lengths = stops - starts
        indptr = np.zeros(len(index) + 1, dtype=np.intp)
        np.cumsum(lengths, out=indptr[1:])
        positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.intp)
        return SparseRows(self.data[positions], self.indices[positions], indptr,
                          (len(index), self.shape[1]))

    __getitem__ = take

    def with_dtype(self, dtype) -> "SparseRows":
        """The same rows with values of ``dtype`` (itself when they already are)."""
        if self.data.dtype == dtype:
            return self
        return SparseRows(_cast(self.data, dtype), self.indices, self.indptr, self.shape)

    def copy(self) -> "SparseRows":
        """The same rows with their own copy of the values (the indices are read-only)."""
        return SparseRows(self.data.copy(), self.indices, self.indptr, self.shape)

    def __repr__(self) -> str:
        return (f"SparseRows(shape={self.shape}, nnz={self.nnz}, "
                f"dtype={self.data.dtype.name})")


def _cast(values: np.ndarray, dtype) -> np.ndarray:
    """values as a C-contiguous array of ``dtype``, refusing NaN and infinity
    (before and after the cast: float64 values beyond float32's range)."""
    for stage in ("", f" after conversion to {np.dtype(dtype).name} (values beyond its range)"):
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values)
            if bad.any():
                raise ValueError(f"X contains {int(bad.sum())} NaN or infinite stored value(s)"
                                 f"{stage}; the first is stored entry {int(np.argmax(bad))}")
        if stage:
            break
        with np.errstate(over="ignore"):
            values = np.require(values, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])
    return values


def check(X, n_in: int, dtype) -> tuple[SparseRows, bool]:
    """A sparse X as SparseRows of ``dtype`` with ``n_in`` columns, and whether it
    was one sample (a 1-D sparse array); a clear error for anything malformed."""
    if isinstance(X, SparseRows):
        if X.shape[1] != n_in:
            raise ValueError(f"X has {X.shape[1]} features (shape {X.shape}); the network "
                             f"takes {n_in}")
        return X.with_dtype(dtype), False
    single = X.ndim == 1
    if single:
        X = X.reshape(1, -1)
    elif X.ndim != 2:
        raise ValueError(f"a sparse X must be 1-D (one sample) or 2-D, got {X.ndim}-D")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X has dtype {X.dtype}; fastwb needs real numbers (bool, integer or "
                        "float)")
    n, n_features = X.shape
    if n_features != n_in:
        raise ValueError(f"X has {n_features} features (shape {X.shape}); the network takes "
                         f"{n_in}")
    if n == 0:
        raise ValueError("X is empty: it has 0 samples")
    if X.format in ("csr", "csc", "coo", "bsr") and \
            np.asarray(X.data).ndim != (3 if X.format == "bsr" else 1):
        raise ValueError(f"X's stored values have shape {np.asarray(X.data).shape}")
    if X.format in ("csc", "bsr"):
        # their conversion to CSR scatters entries by index without bounds checks
        major, minor = (n_features, n) if X.format == "csc" else \
            (n // X.blocksize[0], n_features // X.blocksize[1])
        _compressed(X.indptr, X.indices, len(X.data), major, minor, X.format.upper())
    elif X.format == "coo":
        _coordinates(X, n, n_features)
    if X.format != "csr":
        X = X.tocsr()      # CSC, COO, ...: one copy of the stored entries
    indptr, indices = _compressed(X.indptr, X.indices, len(X.data), n, n_features, "CSR")
    return SparseRows(_cast(np.asarray(X.data)[:indices.shape[0]], dtype), indices, indptr,
                      (n, n_features)), single


def _compressed(indptr, indices, n_values: int, n_major: int, n_minor: int,
                layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The pointers and the used indices of a compressed (CSR, CSC or BSR) matrix
    as intp arrays, checked: integers, pointers from 0 never decreasing, within
    the stored entries, indices within [0, n_minor)."""
    rows = "row" if layout == "CSR" else "column" if layout == "CSC" else "block row"
    columns = "column" if layout == "CSR" else "row" if layout == "CSC" else "block column"
    if np.asarray(indptr).dtype.kind not in "iu" or np.asarray(indices).dtype.kind not in "iu":
        raise TypeError(f"X's indices and {rows} pointers (indptr) must be integers")
    indptr = np.array(indptr, dtype=np.intp)
    if indptr.ndim != 1 or indptr.shape[0] != n_major + 1:
        raise ValueError(f"X's {rows} pointers (indptr) have shape {indptr.shape}; "
                         f"{n_major} {rows}s need {n_major + 1}")
    nnz = int(indptr[-1])
    if indptr[0] != 0 or (n_major and np.any(indptr[1:] < indptr[:-1])):
        raise ValueError(f"X's {rows} pointers (indptr) must start at 0 and never decrease")
    indices = np.asarray(indices)
    if indices.ndim != 1 or nnz > min(indices.shape[0], n_values):
        raise ValueError(f"X's {rows} pointers end at {nnz}, beyond its {indices.shape[0]} "
                         f"indices and {n_values} values")
    indices = np.array(indices[:nnz], dtype=np.intp)
    if nnz and (indices.min() < 0 or indices.max() >= n_minor):
        raise ValueError(f"X has {columns} indices from {indices.min()} to {indices.max()}, "
                         f"outside [0, {n_minor})")
    return indptr, indices


def _coordinates(X, n: int, n_features: int) -> None:
    """Refuse a COO matrix whose coordinates are not integers within its shape
    (scipy's conversion would write outside its arrays)."""
    row, col = np.asarray(X.row), np.asarray(X.col)
    if row.dtype.kind not in "iu" or col.dtype.kind not in "iu":
        raise TypeError("X's row and column coordinates must be integers")
    if row.shape != col.shape or row.ndim != 1 or row.shape[0] != len(X.data):
        raise ValueError(f"X has {row.shape} row and {col.shape} column coordinates for "
                         f"{len(X.data)} values")
    for name, values, size in (("row", row, n), ("column", col, n_features)):
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"X has {name} coordinates from {values.min()} to {values.max()}, "
                             f"outside [0, {size})")
