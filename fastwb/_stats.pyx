"""Statistics of the weights and biases in one compiled pass over the flat buffer.

``layer_statistics`` is what ``Network.summary`` and ``fastwb.Monitor`` read
every epoch, so it must stay cheap next to an epoch of training: each array
(parameters, and optionally the gradient, the previous epoch's parameters and
the initial ones) is read once, with double accumulators, and nothing is
allocated but the result. ``fastwb.reference.layer_statistics`` is its NumPy
specification.
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport NAN, sqrt

import numpy as np

from fastwb import _layout

cnp.import_array()

#: Columns of ``layer_statistics``' first result, for the weights (row 0) and the
#: bias (row 1) of each layer.
STATISTICS = ("mean", "std", "min", "max", "norm", "grad_norm", "update_norm", "change_norm")

cdef enum:
    MEAN = 0
    STD = 1
    MIN = 2
    MAX = 3
    NORM = 4
    GRAD_NORM = 5
    UPDATE_NORM = 6
    CHANGE_NORM = 7
    N_STATISTICS = 8

# Below this many parameters the GIL is kept: releasing it costs more than the pass.
cdef Py_ssize_t RELEASE_GIL_MIN = 1 << 16


cdef void _values(const floating* p, Py_ssize_t rows, Py_ssize_t m, double* columns,
                  double* out) noexcept nogil:
    """Mean, std, min, max and L2 norm of a rows x m block; leaves each column's
    sum in columns[0..m). Sums are taken about the first value, so the variance
    does not cancel for values far from zero, and kept per column (4 m doubles
    of ``columns``): the row loop then runs over independent lanes and
    vectorises, where one running sum would wait on each addition in turn."""
    cdef Py_ssize_t i, j, n = rows * m
    cdef double shift = p[0], total = 0, squares = 0, lo, hi, d
    cdef double* sums = columns
    cdef double* sq = columns + m
    cdef double* low = columns + 2 * m
    cdef double* high = columns + 3 * m
    for j in range(m):
        sums[j] = 0
        sq[j] = 0
        low[j] = p[j]
        high[j] = p[j]
    for i in range(rows):
        for j in range(m):
            d = p[i * m + j] - shift
            sums[j] += d
            sq[j] += d * d
            low[j] = p[i * m + j] if p[i * m + j] < low[j] else low[j]
            high[j] = p[i * m + j] if p[i * m + j] > high[j] else high[j]
    lo, hi = low[0], high[0]
    for j in range(m):
        total += sums[j]
        squares += sq[j]
        lo = low[j] if low[j] < lo else lo
        hi = high[j] if high[j] > hi else hi
        sums[j] += rows * shift
    d = total / n
    out[MEAN] = shift + d
    out[STD] = sqrt(max(squares / n - d * d, 0.0))
    out[MIN] = lo
    out[MAX] = hi
    # sum x^2 = sum (d + shift)^2; every term is accumulated, none cancels the others
    out[NORM] = sqrt(max(squares + 2 * shift * total + n * shift * shift, 0.0))


cdef double _norm(const floating* a, Py_ssize_t n) noexcept nogil:
    """L2 norm, with four running sums so that the additions overlap."""
    cdef Py_ssize_t i, q = n - n % 4
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    for i in range(0, q, 4):
        s0 += <double>a[i] * a[i]
        s1 += <double>a[i + 1] * a[i + 1]
        s2 += <double>a[i + 2] * a[i + 2]
        s3 += <double>a[i + 3] * a[i + 3]
    for i in range(q, n):
        s0 += <double>a[i] * a[i]
    return sqrt((s0 + s1) + (s2 + s3))


cdef double _distance(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """||a - b||, with four running sums as ``_norm``."""
    cdef Py_ssize_t i, q = n - n % 4
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, d0, d1, d2, d3
    for i in range(0, q, 4):
        d0 = <double>a[i] - <double>b[i]
        d1 = <double>a[i + 1] - <double>b[i + 1]
        d2 = <double>a[i + 2] - <double>b[i + 2]
        d3 = <double>a[i + 3] - <double>b[i + 3]
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
    for i in range(q, n):
        d0 = <double>a[i] - <double>b[i]
        s0 += d0 * d0
    return sqrt((s0 + s1) + (s2 + s3))


cdef double _correlation(const double* column_sums, Py_ssize_t k, const floating* b,
                         Py_ssize_t m) noexcept nogil:
    """Pearson correlation, across a layer's units, of the mean incoming weight
    (column sum / k) and the bias; NaN for one unit or a constant side."""
    cdef Py_ssize_t j
    cdef double mw = 0, mb = 0, sww = 0, sbb = 0, swb = 0, w, c
    if m < 2:
        return NAN
    for j in range(m):
        mw += column_sums[j] / k
        mb += b[j]
    mw /= m
    mb /= m
    for j in range(m):
        w = column_sums[j] / k - mw
        c = b[j] - mb
        sww += w * w
        sbb += c * c
        swb += w * c
    if sww <= 0 or sbb <= 0:
        return NAN
    return swb / sqrt(sww * sbb)


cdef void _pass(const floating* p, const floating* g, const floating* prev,
                const floating* init, const Py_ssize_t* sizes, int n_layers,
                double* columns, double* out, double* correlation) noexcept nogil:
    cdef int l, part
    cdef Py_ssize_t k, m, j, start = 0, n
    cdef double* row
    for l in range(n_layers):
        k = sizes[l]
        m = sizes[l + 1]
        for part in range(2):
            row = out + (2 * l + part) * N_STATISTICS
            n = k * m if part == 0 else m
            # the bias's pass overwrites columns 4m.. only: the weights' column sums stay
            _values(p + start, k if part == 0 else 1, m, columns + (0 if part == 0 else 4 * m),
                    row)
            row[GRAD_NORM] = _norm(g + start, n) if g != NULL else NAN
            row[UPDATE_NORM] = _distance(p + start, prev + start, n) if prev != NULL else NAN
            row[CHANGE_NORM] = _distance(p + start, init + start, n) if init != NULL else NAN
            start += n
        correlation[l] = _correlation(columns, k, p + start - m, m)


cdef void _dispatch(bint is_double, const void* p, const void* g, const void* prev,
                    const void* init, const Py_ssize_t* sizes, int n_layers, double* columns,
                    double* out, double* correlation) noexcept nogil:
    if is_double:
        _pass(<const double*>p, <const double*>g, <const double*>prev, <const double*>init,
              sizes, n_layers, columns, out, correlation)
    else:
        _pass(<const float*>p, <const float*>g, <const float*>prev, <const float*>init,
              sizes, n_layers, columns, out, correlation)


cdef const void* _optional(object a, object params, str name) except? NULL:
    if a is None:
        return NULL
    if not (isinstance(a, np.ndarray) and a.dtype == params.dtype and a.shape == params.shape
            and a.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous {params.dtype} array of shape "
                         f"{params.shape}, like the parameters")
    return cnp.PyArray_DATA(<cnp.ndarray>a)


def layer_statistics(cnp.ndarray params not None, sizes, grads=None, previous=None,
                     initial=None):
    """Per-layer statistics of a flat parameter buffer.

    Parameters
    ----------
    params : ndarray
        The flat buffer (C-contiguous float32 or float64), laid out as
        ``fastwb._layout`` says for ``sizes``.
    sizes : sequence of int
        Layer widths ``[n_in, h1, ..., n_out]``.
    grads, previous, initial : ndarray or None
        Arrays laid out like ``params``: a gradient, and parameters to measure
        the distance from (an earlier epoch's, the initial ones).

    Returns
    -------
    stats : ndarray, float64, shape (n_layers, 2, len(STATISTICS))
        ``stats[l, 0]`` describes layer l's weights, ``stats[l, 1]`` its bias,
        one column per name in ``STATISTICS``: mean, std (population), min,
        max, L2 norm, L2 norm of ``grads``, ``||params - previous||``,
        ``||params - initial||`` (NaN where that array is None).
    correlation : ndarray, float64, shape (n_layers,)
        Pearson correlation across each layer's units of the mean incoming
        weight and the bias (NaN with one unit, or when either is constant).
    """
    sizes = [int(width) for width in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
    if params.dtype not in (np.float32, np.float64) or params.ndim != 1 \
            or not params.flags.c_contiguous:
        raise TypeError("params must be a C-contiguous 1-D float32 or float64 array")
    if cnp.PyArray_DIM(params, 0) != _layout.n_parameters(sizes):
        raise ValueError(f"params has {cnp.PyArray_DIM(params, 0)} elements; sizes {sizes} need "
                         f"{_layout.n_parameters(sizes)}")
    cdef const void* g = _optional(grads, params, "grads")
    cdef const void* prev = _optional(previous, params, "previous")
    cdef const void* init = _optional(initial, params, "initial")
    cdef int n_layers = len(sizes) - 1
    cdef cnp.ndarray widths = np.asarray(sizes, dtype=np.intp)
    cdef cnp.ndarray columns = np.empty(8 * max(sizes[1:]), dtype=np.float64)
    cdef cnp.ndarray stats = np.empty((n_layers, 2, N_STATISTICS), dtype=np.float64)
    cdef cnp.ndarray correlation = np.empty(n_layers, dtype=np.float64)
    cdef const Py_ssize_t* w = <const Py_ssize_t*>cnp.PyArray_DATA(widths)
    cdef double* c = <double*>cnp.PyArray_DATA(columns)
    cdef double* out = <double*>cnp.PyArray_DATA(stats)
    cdef double* r = <double*>cnp.PyArray_DATA(correlation)
    cdef const void* p = cnp.PyArray_DATA(params)
    cdef bint is_double = params.dtype == np.float64
    cdef bint release = cnp.PyArray_DIM(params, 0) >= RELEASE_GIL_MIN
    if release:
        with nogil:
            _dispatch(is_double, p, g, prev, init, w, n_layers, c, out, r)
    else:
        _dispatch(is_double, p, g, prev, init, w, n_layers, c, out, r)
    return stats, correlation
