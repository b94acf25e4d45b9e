"""Compiled kernels of fastwb: forward pass, loss, backpropagation and SGD.

Three layers, each with one job:

* per-row math as ``cdef inline ... noexcept nogil`` functions;
* kernels over raw row-major buffers that write into outputs the caller
  passes in (nobody allocates inside a kernel);
* ``Engine``, which owns the workspace, checks and converts input while
  holding the GIL, then enters the kernels once per call.

Kernels take pointers rather than typed memoryviews: acquiring a memoryview
costs a few hundred nanoseconds, more than a whole forward pass of a 16-32-4
network. Layout is enforced where the pointers are taken (``Engine._input``,
``Engine._targets``): C-contiguous, aligned, native byte order, right dtype.

Notation: layer ``l`` maps ``A[l-1]`` (n x k) to ``A[l] = f(A[l-1] @ W + b)``
(n x m), with ``W`` (k x m) and ``b`` (m,) stored back to back in one flat
parameter buffer. ``D`` is the loss gradient with respect to ``Z = A W + b``.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, isfinite, log, tanh
from libc.float cimport FLT_MAX
from libc.string cimport memcpy
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv

import numpy as np

from fastwb import _layout, _validation
from fastwb.reference import LEAKY_SLOPE

cnp.import_array()

cdef extern from "fastwb_math.h" nogil:
    float fwb_exp_nonpositive_f(float x)
    float fwb_sigmoid_f(float x)
    float fwb_tanh_f(float x)
    double fwb_sigmoid_d(double x)
    float fwb_softplus_f(float x)
    double fwb_softplus_d(double x)
    int fwb_all_finite_f(const float *x, Py_ssize_t n)
    int fwb_all_finite_d(const double *x, Py_ssize_t n)

cdef extern from "<dlfcn.h>" nogil:
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int RTLD_NOW
    int RTLD_LOCAL

cdef extern from "fastwb_omp.h" nogil:
    int omp_get_max_threads()
    int fwb_openmp_enabled()


cdef enum:
    IDENTITY = 0
    RELU = 1
    LEAKY_RELU = 2
    SIGMOID = 3
    TANH = 4
    SOFTMAX = 5

cdef enum:
    MSE = 0
    BINARY_CROSS_ENTROPY = 1
    SOFTMAX_CROSS_ENTROPY = 2

ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
               "sigmoid": SIGMOID, "tanh": TANH, "softmax": SOFTMAX}
LOSSES = {"mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
          "softmax_cross_entropy": SOFTMAX_CROSS_ENTROPY}

# Slope of leaky_relu for negative inputs, as the reference defines it.
cdef double _LEAKY = LEAKY_SLOPE

# Work (elements, or multiply-adds for a product) below which a pass stays
# serial. Waking a thread team is not cheap, and spin-waiting workers can be
# far worse: on a 2-vCPU VM a 400-row predict of a 2-32-32-2 network took
# 35 ms with two threads against 0.12 ms serial. Set high enough that only
# passes of many milliseconds go parallel; tune per machine with tuning().
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 1 << 22
# Products of at most this many multiply-adds run as plain loops, where a
# BLAS call's fixed cost dominates. One row goes to gemv, which does not pack
# its operands as gemm does; measured against SSE2 loops, gemv and gemm win
# from a few hundred multiply-adds on (docs/performance.md).
cdef Py_ssize_t SMALL_PRODUCT = 512
# A step that calls BLAS keeps fastwb's own loops serial. libgomp's idle
# workers spin-wait after each parallel region; on a machine with as many
# cores as threads they then hold the cores BLAS's own workers need, and a
# 784-256-128-10 step measured 50x slower with both pools active.
# Total work (batch rows x parameters) below which the GIL is kept: releasing
# and retaking it costs more than a tiny step.
cdef Py_ssize_t RELEASE_GIL_MIN_WORK = 1 << 16
# BLAS takes row counts as 32-bit ints (SciPy's route).
cdef Py_ssize_t MAX_ROWS = 2147483647
# Rows per block when predicting: bounds the workspace for large batches.
cdef Py_ssize_t PREDICT_BLOCK_ROWS = 1024


def tuning(parallel_min_elements=None, small_product=None, predict_block_rows=None):
    """Read and optionally set the dispatch thresholds; returns the previous values.

    For tests (forcing each kernel path on small networks) and for tuning on
    machines unlike the one the defaults were measured on.
    """
    global PARALLEL_MIN_ELEMENTS, SMALL_PRODUCT, PREDICT_BLOCK_ROWS
    previous = dict(parallel_min_elements=PARALLEL_MIN_ELEMENTS, small_product=SMALL_PRODUCT,
                    predict_block_rows=PREDICT_BLOCK_ROWS)
    for name, value in (("parallel_min_elements", parallel_min_elements),
                        ("small_product", small_product),
                        ("predict_block_rows", predict_block_rows)):
        if value is not None and value < (1 if name == "predict_block_rows" else 0):
            raise ValueError(f"{name} must be nonnegative (predict_block_rows positive)")
    if parallel_min_elements is not None:
        PARALLEL_MIN_ELEMENTS = parallel_min_elements
    if small_product is not None:
        SMALL_PRODUCT = small_product
    if predict_block_rows is not None:
        PREDICT_BLOCK_ROWS = predict_block_rows
    return previous


cdef inline bint _plain_loops(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m) noexcept nogil:
    return n * k * m <= SMALL_PRODUCT


cdef enum Mode:
    LOSS_ONLY = 0
    GRADIENT = 1
    SGD_STEP = 2


def openmp_enabled():
    """Whether this build of fastwb was compiled with OpenMP."""
    return bool(fwb_openmp_enabled())


# ---------------------------------------------------------------------------
# Per-element and per-row math
# ---------------------------------------------------------------------------

cdef inline floating _exp_nonpositive(floating x) noexcept nogil:
    if floating is float:
        return fwb_exp_nonpositive_f(x)
    else:
        return exp(x)


cdef inline floating _sigmoid(floating x) noexcept nogil:
    if floating is float:
        return fwb_sigmoid_f(x)
    else:
        return fwb_sigmoid_d(x)


cdef inline floating _softplus(floating x) noexcept nogil:
    if floating is float:
        return fwb_softplus_f(x)
    else:
        return fwb_softplus_d(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return fwb_tanh_f(x)
    else:
        return tanh(x)


cdef inline void _softmax_row(floating* z, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating top = z[0]
    cdef double total = 0
    for j in range(1, m):
        if z[j] > top:
            top = z[j]
    for j in range(m):
        z[j] = _exp_nonpositive(z[j] - top)
        total += z[j]
    cdef floating inv = <floating>(1.0 / total)
    for j in range(m):
        z[j] = z[j] * inv


cdef inline void _bias_activation_row(floating* z, const floating* b, Py_ssize_t m,
                                      int act) noexcept nogil:
    """z = f(z + b) for one row; the branch sits outside the loops so they vectorise."""
    cdef Py_ssize_t j
    cdef floating v
    cdef floating slope = <floating>_LEAKY
    if act == IDENTITY:
        for j in range(m):
            z[j] = z[j] + b[j]
    elif act == RELU:
        for j in range(m):
            v = z[j] + b[j]
            z[j] = 0 if v < 0 else v        # NaN propagates, as in np.maximum
    elif act == LEAKY_RELU:
        for j in range(m):
            v = z[j] + b[j]
            z[j] = slope * v if v < 0 else v
    elif act == SIGMOID:
        for j in range(m):
            z[j] = _sigmoid(z[j] + b[j])
    elif act == TANH:
        for j in range(m):
            z[j] = _tanh(z[j] + b[j])
    else:  # SOFTMAX
        for j in range(m):
            z[j] = z[j] + b[j]
        _softmax_row(z, m)


cdef inline void _derivative_row(floating* d, const floating* a, Py_ssize_t m,
                                 int act) noexcept nogil:
    """d *= f'(z), written in terms of the activation a = f(z)."""
    cdef Py_ssize_t j
    cdef floating slope = <floating>_LEAKY
    if act == RELU:
        for j in range(m):
            d[j] = d[j] if a[j] > 0 else 0
    elif act == LEAKY_RELU:
        for j in range(m):
            d[j] = d[j] if a[j] > 0 else slope * d[j]
    elif act == SIGMOID:
        for j in range(m):
            d[j] = d[j] * a[j] * (1 - a[j])
    elif act == TANH:
        for j in range(m):
            d[j] = d[j] * (1 - a[j] * a[j])


cdef inline double _loss_row(int loss, int out_act, const floating* out, const floating* t,
                             Py_ssize_t label, Py_ssize_t m, floating* d,
                             floating scale) noexcept nogil:
    """One sample's summed loss; with d != NULL also d = scale * dL/dz.

    ``out`` holds the logits z for the cross-entropies (the sigmoid or softmax is
    fused in here) and the activations a = f(z) for MSE.
    """
    cdef Py_ssize_t j
    cdef double s = 0, total = 0, t_sum = 0, lse
    cdef floating diff, top, e, inv
    if loss == MSE:
        for j in range(m):
            diff = out[j] - t[j]
            s += <double>diff * diff
            if d != NULL:
                d[j] = (2 * scale) * diff
        if d != NULL:
            _derivative_row(d, out, m, out_act)
        return s
    if loss == BINARY_CROSS_ENTROPY:
        # log(1 + e^z) - z t  ==  -t log(sigmoid z) - (1 - t) log(1 - sigmoid z)
        for j in range(m):
            s += <double>_softplus(out[j]) - <double>out[j] * t[j]
            if d != NULL:
                d[j] = scale * (_sigmoid(out[j]) - t[j])
        return s
    # SOFTMAX_CROSS_ENTROPY: loss = logsumexp(z) - sum_j t_j z_j / sum_j t_j
    top = out[0]
    for j in range(1, m):
        if out[j] > top:
            top = out[j]
    for j in range(m):
        e = _exp_nonpositive(out[j] - top)
        total += e
        if d != NULL:
            d[j] = e
    lse = top + log(total)
    if t == NULL:
        s = lse - out[label]
        if d != NULL:
            inv = <floating>(scale / total)
            for j in range(m):
                d[j] = d[j] * inv
            d[label] -= scale
        return s
    for j in range(m):
        t_sum += t[j]
        s += t[j] * (lse - out[j])
    if d != NULL:
        inv = <floating>(scale * t_sum / total)
        for j in range(m):
            d[j] = d[j] * inv - scale * t[j]
    return s


# ---------------------------------------------------------------------------
# Matrix products: plain loops for tiny layers, gemv for one row, gemm otherwise.
# Row-major X (r x c) is column-major X^T, so every call swaps its operands.
# ---------------------------------------------------------------------------

# NumPy's OpenBLAS, when fastwb._blas finds it: the same Fortran interface as
# SciPy's cython_blas, with 64-bit integers. NULL means "use SciPy's".
ctypedef void (*gemm64_f)(char*, char*, int64_t*, int64_t*, int64_t*, float*, const float*,
                          int64_t*, const float*, int64_t*, float*, float*, int64_t*) noexcept nogil
ctypedef void (*gemm64_d)(char*, char*, int64_t*, int64_t*, int64_t*, double*, const double*,
                          int64_t*, const double*, int64_t*, double*, double*, int64_t*) noexcept nogil
ctypedef void (*gemv64_f)(char*, int64_t*, int64_t*, float*, const float*, int64_t*,
                          const float*, int64_t*, float*, float*, int64_t*) noexcept nogil
ctypedef void (*gemv64_d)(char*, int64_t*, int64_t*, double*, const double*, int64_t*,
                          const double*, int64_t*, double*, double*, int64_t*) noexcept nogil

cdef gemm64_f numpy_sgemm = NULL
cdef gemm64_d numpy_dgemm = NULL
cdef gemv64_f numpy_sgemv = NULL
cdef gemv64_d numpy_dgemv = NULL


def attach_blas(bytes path, bytes prefix, bytes suffix):
    """Call the BLAS in the shared library at ``path`` (already loaded by NumPy),
    whose functions are named ``prefix + "sgemm" + suffix`` and take 64-bit
    integers. Returns False, changing nothing, when a function is missing."""
    global numpy_sgemm, numpy_dgemm, numpy_sgemv, numpy_dgemv
    cdef void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)
    if handle == NULL:
        return False
    cdef void* found[4]
    for i, name in enumerate((b"sgemm", b"dgemm", b"sgemv", b"dgemv")):
        found[i] = dlsym(handle, prefix + name + suffix)
        if found[i] == NULL:
            return False
    numpy_sgemm = <gemm64_f>found[0]
    numpy_dgemm = <gemm64_d>found[1]
    numpy_sgemv = <gemv64_f>found[2]
    numpy_dgemv = <gemv64_d>found[3]
    return True


def detach_blas():
    """Go back to SciPy's cython_blas."""
    global numpy_sgemm, numpy_dgemm, numpy_sgemv, numpy_dgemv
    numpy_sgemm = NULL
    numpy_dgemm = NULL
    numpy_sgemv = NULL
    numpy_dgemv = NULL


def blas_source():
    """``"numpy"`` or ``"scipy"``: whose BLAS the kernels call."""
    return "numpy" if numpy_sgemm != NULL else "scipy"


cdef inline void _gemm(char* ta, char* tb, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb, floating beta,
                       floating* c, int ldc) noexcept nogil:
    cdef int64_t m64 = m, n64 = n, k64 = k, lda64 = lda, ldb64 = ldb, ldc64 = ldc
    if floating is float:
        if numpy_sgemm != NULL:
            numpy_sgemm(ta, tb, &m64, &n64, &k64, &alpha, a, &lda64, b, &ldb64, &beta, c, &ldc64)
        else:
            sgemm(ta, tb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        if numpy_dgemm != NULL:
            numpy_dgemm(ta, tb, &m64, &n64, &k64, &alpha, a, &lda64, b, &ldb64, &beta, c, &ldc64)
        else:
            dgemm(ta, tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef inline void _gemv(char* trans, int m, int n, const floating* a, int lda,
                       const floating* x, floating* y) noexcept nogil:
    cdef floating one = 1, zero = 0
    cdef int inc = 1
    cdef int64_t m64 = m, n64 = n, lda64 = lda, inc64 = 1
    if floating is float:
        if numpy_sgemv != NULL:
            numpy_sgemv(trans, &m64, &n64, &one, a, &lda64, x, &inc64, &zero, y, &inc64)
        else:
            sgemv(trans, &m, &n, &one, <float*>a, &lda, <float*>x, &inc, &zero, y, &inc)
    else:
        if numpy_dgemv != NULL:
            numpy_dgemv(trans, &m64, &n64, &one, a, &lda64, x, &inc64, &zero, y, &inc64)
        else:
            dgemv(trans, &m, &n, &one, <double*>a, &lda, <double*>x, &inc, &zero, y, &inc)


cdef inline void _product_nn_row(const floating* a, Py_ssize_t k, const floating* W,
                                 Py_ssize_t m, floating* z) noexcept nogil:
    cdef Py_ssize_t p, j
    cdef floating ap
    cdef const floating* w
    for j in range(m):
        z[j] = 0
    for p in range(k):
        ap = a[p]
        w = W + p * m
        for j in range(m):
            z[j] += ap * w[j]


cdef void product_nn(const floating* A, Py_ssize_t n, Py_ssize_t k, const floating* W,
                     Py_ssize_t m, floating* Z, int n_threads) noexcept nogil:
    """Z (n x m) = A (n x k) @ W (k x m)."""
    cdef Py_ssize_t i
    if _plain_loops(n, k, m):
        if n > 1 and n_threads > 1 and n * k * m >= PARALLEL_MIN_ELEMENTS:
            for i in prange(n, schedule="static", num_threads=n_threads):
                _product_nn_row(A + i * k, k, W, m, Z + i * m)
        else:
            for i in range(n):
                _product_nn_row(A + i * k, k, W, m, Z + i * m)
    elif n == 1:
        _gemv(b"N", <int>m, <int>k, W, <int>m, A, Z)
    else:
        _gemm(b"N", b"N", <int>m, <int>n, <int>k, <floating>1, W, <int>m, A, <int>k,
              <floating>0, Z, <int>m)


cdef inline void _product_tn_row(const floating* A, Py_ssize_t n, Py_ssize_t k,
                                 const floating* D, Py_ssize_t m, floating* G, Py_ssize_t p,
                                 floating alpha, floating beta) noexcept nogil:
    """Row p of G = alpha A^T D + beta G, adding the batch rows in order."""
    cdef Py_ssize_t i, j
    cdef floating a
    cdef floating* g = G + p * m
    if beta == 0:
        for j in range(m):
            g[j] = 0
    elif beta != 1:
        for j in range(m):
            g[j] = beta * g[j]
    for i in range(n):
        a = alpha * A[i * k + p]
        for j in range(m):
            g[j] += a * D[i * m + j]


cdef void product_tn(const floating* A, Py_ssize_t n, Py_ssize_t k, const floating* D,
                     Py_ssize_t m, floating* G, floating alpha, floating beta,
                     int n_threads) noexcept nogil:
    """G (k x m) = alpha A^T (k x n) @ D (n x m) + beta G.

    alpha = 1, beta = 0 is the weight gradient; alpha = -lr, beta = 1 on the
    weights themselves is the whole SGD update, done inside the product.
    One row of G per task, so the result does not depend on the thread count.
    """
    cdef Py_ssize_t p
    if n == 1 or _plain_loops(n, k, m):
        if k > 1 and n_threads > 1 and n * k * m >= PARALLEL_MIN_ELEMENTS:
            for p in prange(k, schedule="static", num_threads=n_threads):
                _product_tn_row(A, n, k, D, m, G, p, alpha, beta)
        else:
            for p in range(k):
                _product_tn_row(A, n, k, D, m, G, p, alpha, beta)
    else:
        _gemm(b"N", b"T", <int>m, <int>k, <int>n, alpha, D, <int>m, A, <int>k, beta, G, <int>m)


cdef inline void _product_nt_row(const floating* d, Py_ssize_t m, const floating* W,
                                 Py_ssize_t k, floating* out) noexcept nogil:
    cdef Py_ssize_t p, j
    cdef floating s
    for p in range(k):
        s = 0
        for j in range(m):
            s += d[j] * W[p * m + j]
        out[p] = s


cdef void product_nt(const floating* D, Py_ssize_t n, Py_ssize_t m, const floating* W,
                     Py_ssize_t k, floating* P, int n_threads) noexcept nogil:
    """P (n x k) = D (n x m) @ W^T (m x k): the gradient sent to the previous layer."""
    cdef Py_ssize_t i
    if _plain_loops(n, k, m):
        if n > 1 and n_threads > 1 and n * k * m >= PARALLEL_MIN_ELEMENTS:
            for i in prange(n, schedule="static", num_threads=n_threads):
                _product_nt_row(D + i * m, m, W, k, P + i * k)
        else:
            for i in range(n):
                _product_nt_row(D + i * m, m, W, k, P + i * k)
    elif n == 1:
        _gemv(b"T", <int>m, <int>k, W, <int>m, D, P)
    else:
        _gemm(b"T", b"N", <int>k, <int>n, <int>m, <floating>1, W, <int>m, D, <int>m,
              <floating>0, P, <int>k)


# ---------------------------------------------------------------------------
# Fused elementwise kernels over a batch
# ---------------------------------------------------------------------------

cdef void bias_activation(floating* Z, const floating* b, Py_ssize_t n, Py_ssize_t m, int act,
                          int n_threads) noexcept nogil:
    """Z = f(Z + b) in place, one pass."""
    cdef Py_ssize_t i
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            _bias_activation_row(Z + i * m, b, m, act)
    else:
        for i in range(n):
            _bias_activation_row(Z + i * m, b, m, act)


cdef void multiply_derivative(floating* D, const floating* A, Py_ssize_t n, Py_ssize_t m,
                              int act, int n_threads) noexcept nogil:
    """D *= f'(Z), with f' written through the stored activations A."""
    cdef Py_ssize_t i
    if act == IDENTITY:
        return
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            _derivative_row(D + i * m, A + i * m, m, act)
    else:
        for i in range(n):
            _derivative_row(D + i * m, A + i * m, m, act)


cdef inline void _column_sums_block(const floating* D, Py_ssize_t n, Py_ssize_t m,
                                    Py_ssize_t start, Py_ssize_t stop, floating* out) noexcept nogil:
    cdef Py_ssize_t i, j
    for j in range(start, stop):
        out[j] = 0
    for i in range(n):
        for j in range(start, stop):
            out[j] += D[i * m + j]


cdef void column_sums(const floating* D, Py_ssize_t n, Py_ssize_t m, floating* out,
                      int n_threads) noexcept nogil:
    """out[j] = sum_i D[i, j]: the bias gradient.

    Each column is summed over rows 0..n-1 in order, whichever thread owns it,
    so the result does not depend on the thread count.
    """
    cdef Py_ssize_t block = 64
    cdef Py_ssize_t n_blocks = (m + block - 1) // block
    cdef Py_ssize_t q
    if n_blocks > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for q in prange(n_blocks, schedule="static", num_threads=n_threads):
            _column_sums_block(D, n, m, q * block, min(m, (q + 1) * block), out)
    else:
        _column_sums_block(D, n, m, 0, m, out)


cdef double loss_and_delta(int loss, int out_act, const floating* out, const floating* T,
                           const Py_ssize_t* labels, Py_ssize_t n, Py_ssize_t m, floating* D,
                           double* row_loss, int n_threads) noexcept nogil:
    """Mean loss over the batch; with D != NULL also D = dL/dZ of the output layer.

    Per-row losses are summed afterwards in row order: the same total for any
    thread count.
    """
    cdef Py_ssize_t i
    cdef double denominator = <double>n if loss == SOFTMAX_CROSS_ENTROPY else <double>n * m
    cdef floating scale = <floating>(1.0 / denominator)
    cdef double total = 0
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            row_loss[i] = _loss_row(loss, out_act, out + i * m,
                                    T + i * m if T != NULL else NULL,
                                    labels[i] if labels != NULL else 0, m,
                                    D + i * m if D != NULL else NULL, scale)
    else:
        for i in range(n):
            row_loss[i] = _loss_row(loss, out_act, out + i * m,
                                    T + i * m if T != NULL else NULL,
                                    labels[i] if labels != NULL else 0, m,
                                    D + i * m if D != NULL else NULL, scale)
    for i in range(n):
        total += row_loss[i]
    return total / denominator


cdef void sgd_update(floating* params, const floating* grads, Py_ssize_t size, floating lr,
                     int n_threads) noexcept nogil:
    """params -= lr * grads (the biases; weights update inside product_tn)."""
    cdef Py_ssize_t i
    if n_threads > 1 and size >= PARALLEL_MIN_ELEMENTS:
        for i in prange(size, schedule="static", num_threads=n_threads):
            params[i] = params[i] - lr * grads[i]
    else:
        for i in range(size):
            params[i] = params[i] - lr * grads[i]


# ---------------------------------------------------------------------------
# Whole-network passes
# ---------------------------------------------------------------------------

cdef struct Net:
    int n_layers
    int loss
    const Py_ssize_t* sizes      # n_layers + 1 widths, input first
    const int* acts              # activation of each layer
    const Py_ssize_t* w_offset   # where each W starts in the flat buffer
    const Py_ssize_t* b_offset   # where each b starts in the flat buffer
    const Py_ssize_t* a_offset   # where each layer's activations start in a workspace row block
    Py_ssize_t n_params


cdef void forward(const Net* net, const floating* params, const floating* X, Py_ssize_t n,
                  floating* acts, Py_ssize_t capacity, floating* out, bint logits_out,
                  int n_threads) noexcept nogil:
    """Run every layer on n rows of X.

    Layer l writes to ``acts + capacity * a_offset[l]``; the last layer writes to
    ``out`` instead when it is not NULL. With ``logits_out`` the output layer
    stops at z (the loss kernel fuses its sigmoid or softmax).
    """
    cdef int l, act
    cdef const floating* prev = X
    cdef floating* a
    cdef Py_ssize_t k, m
    for l in range(net.n_layers):
        k = net.sizes[l]
        m = net.sizes[l + 1]
        if l == net.n_layers - 1 and out != NULL:
            a = out
        else:
            a = acts + capacity * net.a_offset[l]
        product_nn(prev, n, k, params + net.w_offset[l], m, a, n_threads)
        act = net.acts[l]
        if l == net.n_layers - 1 and logits_out:
            act = IDENTITY
        bias_activation(a, params + net.b_offset[l], n, m, act, n_threads)
        prev = a


cdef double run(const Net* net, floating* params, floating* grads, const floating* X,
                const floating* T, const Py_ssize_t* labels, Py_ssize_t n, floating* acts,
                floating* delta, floating* spare, double* row_loss, Py_ssize_t capacity,
                int mode, floating lr, int n_threads) noexcept nogil:
    """Forward, loss and (by mode) backpropagation and the SGD update, in one call.

    The SGD update is fused into backpropagation: each layer's weights take
    ``W -= lr A^T D`` straight from the product (no gradient is stored, no
    second pass over the parameters), after ``D W^T`` has used the old W.
    """
    cdef int L = net.n_layers
    cdef int l
    cdef Py_ssize_t k, m
    cdef int out_act = net.acts[L - 1]
    cdef bint fused = net.loss != MSE
    cdef floating* out = acts + capacity * net.a_offset[L - 1]
    cdef const floating* prev
    cdef floating* swap
    cdef double value

    forward(net, params, X, n, acts, capacity, <floating*>NULL, fused, n_threads)
    m = net.sizes[L]
    value = loss_and_delta(net.loss, out_act, out, T, labels, n, m,
                           delta if mode != LOSS_ONLY else <floating*>NULL, row_loss, n_threads)
    if mode == LOSS_ONLY or (mode == SGD_STEP and not isfinite(value)):
        return value     # a non-finite loss must not reach the parameters
    for l in range(L - 1, -1, -1):
        k = net.sizes[l]
        m = net.sizes[l + 1]
        prev = X if l == 0 else acts + capacity * net.a_offset[l - 1]
        if l > 0:   # before W changes: D[l-1] = (D W^T) * f'(A[l-1])
            product_nt(delta, n, m, params + net.w_offset[l], k, spare, n_threads)
            multiply_derivative(spare, prev, n, k, net.acts[l - 1], n_threads)
        column_sums(delta, n, m, grads + net.b_offset[l], n_threads)                # db = 1^T D
        if mode == SGD_STEP:
            product_tn(prev, n, k, delta, m, params + net.w_offset[l], -lr, 1,
                       n_threads)                                                  # W -= lr A^T D
            sgd_update(params + net.b_offset[l], grads + net.b_offset[l], m, lr, n_threads)
        else:
            product_tn(prev, n, k, delta, m, grads + net.w_offset[l], 1, 0, n_threads)  # dW
        if l > 0:
            swap = delta
            delta = spare
            spare = swap
    return value


# ---------------------------------------------------------------------------
# Python-facing engine
# ---------------------------------------------------------------------------

cdef class Workspace:
    """Activations, two ping-pong gradient buffers and per-row losses for a batch size."""
    cdef readonly Py_ssize_t capacity
    cdef cnp.ndarray acts, deltas, row_loss
    cdef void* acts_ptr
    cdef void* delta_ptr
    cdef void* spare_ptr
    cdef double* row_loss_ptr

    def __cinit__(self, Py_ssize_t capacity, Py_ssize_t width_sum, Py_ssize_t width_max, dtype):
        cdef Py_ssize_t itemsize = np.dtype(dtype).itemsize
        _validation.check_allocation(
            capacity * ((width_sum + 2 * width_max) * itemsize + 8), "the workspace for this batch")
        self.capacity = capacity
        self.acts = np.empty(capacity * width_sum, dtype=dtype)
        self.deltas = np.empty(2 * capacity * width_max, dtype=dtype)
        self.row_loss = np.empty(capacity, dtype=np.float64)
        self.acts_ptr = cnp.PyArray_DATA(self.acts)
        self.delta_ptr = cnp.PyArray_DATA(self.deltas)
        self.spare_ptr = <char*>self.delta_ptr + capacity * width_max * itemsize
        self.row_loss_ptr = <double*>cnp.PyArray_DATA(self.row_loss)


cdef inline bint _usable(object x, int typenum, int ndim):
    """True when x can go to a kernel as it is: an ndarray of the right dtype,
    native byte order, aligned and C-contiguous."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == ndim
            and cnp.PyArray_ISBEHAVED_RO(a) and cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef class Engine:
    """Compiled backend of one ``fastwb.Network``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_in, h1, ..., n_out]``.
    activations : sequence of str
        One activation name per layer (the last is the output activation).
    loss : str
        Loss name, a key of ``LOSSES``.
    params : ndarray
        The network's flat parameter buffer (1-D, C-contiguous, float32 or float64);
        the engine reads and updates it in place.
    n_threads : int
        Threads for the OpenMP loops; 0 follows ``omp_get_max_threads()`` at each call.
    """
    cdef Net net
    cdef readonly object dtype
    cdef int typenum
    cdef bint is_double
    cdef int n_threads
    cdef readonly cnp.ndarray params
    cdef readonly cnp.ndarray grads
    cdef cnp.ndarray _sizes, _acts, _w_offset, _b_offset, _a_offset
    cdef Py_ssize_t n_in, n_out, width_sum, width_max
    cdef Workspace ws
    cdef bint busy
    cdef readonly str loss_name

    def __cinit__(self, sizes, activations, loss, cnp.ndarray params not None, int n_threads=0):
        cdef Py_ssize_t L = len(sizes) - 1
        if L < 1 or len(activations) != L:
            raise ValueError("need at least two sizes and one activation per layer")
        if params.dtype not in (np.float32, np.float64) or params.ndim != 1 \
                or not params.flags.c_contiguous or not params.flags.writeable:
            raise TypeError("params must be a writable, C-contiguous 1-D float32 or float64 array")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}")
        if n_threads < 0:
            raise ValueError("n_threads must be >= 0 (0 follows OpenMP's setting)")
        self._sizes = np.asarray(sizes, dtype=np.intp)
        self._acts = np.array([ACTIVATIONS[a] for a in activations], dtype=np.intc)
        if np.any(self._acts[:-1] == SOFTMAX):
            raise ValueError("softmax is only supported on the output layer")
        widths = self._sizes[1:]
        w_offset, b_offset = _layout.offsets(list(sizes))
        self._w_offset = np.asarray(w_offset, dtype=np.intp)
        self._b_offset = np.asarray(b_offset, dtype=np.intp)
        offset = _layout.n_parameters(list(sizes))
        if params.shape[0] != offset:
            raise ValueError(f"params has {params.shape[0]} elements; the sizes need {offset}")
        self._a_offset = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.intp)
        self.params = params
        self.grads = np.zeros_like(params)
        self.dtype = params.dtype
        self.typenum = cnp.PyArray_TYPE(params)
        self.is_double = params.dtype == np.float64
        self.n_threads = n_threads
        self.n_in = self._sizes[0]
        self.n_out = self._sizes[L]
        self.width_sum = int(widths.sum())
        self.width_max = int(widths.max())
        self.net.n_layers = <int>L
        self.net.loss = LOSSES[loss]
        self.net.sizes = <const Py_ssize_t*>cnp.PyArray_DATA(self._sizes)
        self.net.acts = <const int*>cnp.PyArray_DATA(self._acts)
        self.net.w_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._w_offset)
        self.net.b_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._b_offset)
        self.net.a_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._a_offset)
        self.net.n_params = offset
        self.busy = False
        self.ws = None
        self.loss_name = loss

    cdef int _threads(self, Py_ssize_t rows) noexcept:
        """OpenMP threads for a pass over ``rows`` rows: 1 when any product goes to BLAS."""
        cdef Py_ssize_t l
        for l in range(self.net.n_layers):
            if not _plain_loops(rows, self.net.sizes[l], self.net.sizes[l + 1]):
                return 1
        return self.n_threads if self.n_threads > 0 else omp_get_max_threads()

    cdef Workspace _claim(self, Py_ssize_t rows, bint exclusive):
        """A workspace for one call over ``rows`` rows, owned by that call.

        The engine's own workspace is claimed by setting ``busy`` right after
        testing it, with no Python code in between, so two threads can never
        own it at once. A call that finds it busy gets a private workspace, or,
        when it also needs the engine's gradient buffer (``exclusive``), an error.
        Every claim is paired with ``_release``.
        """
        if self.busy:
            if exclusive:
                raise RuntimeError("this network is in use by another thread; train or "
                                   "differentiate one network from one thread at a time")
            return Workspace(rows, self.width_sum, self.width_max, self.dtype)
        self.busy = True
        try:
            if self.ws is None or self.ws.capacity < rows:
                self.ws = None  # release the old one before allocating the larger
                self.ws = Workspace(rows, self.width_sum, self.width_max, self.dtype)
        except BaseException:
            self.busy = False
            raise
        return self.ws

    cdef inline void _release(self, Workspace ws) noexcept:
        if ws is self.ws:
            self.busy = False

    cdef cnp.ndarray _input(self, object X, bint* single):
        """X as a C-contiguous 2-D array of the engine's dtype, checked finite."""
        cdef cnp.ndarray x
        cdef int ndim
        cdef bint finite
        if type(X) is cnp.ndarray:
            ndim = cnp.PyArray_NDIM(<cnp.ndarray>X)
            if (ndim == 1 or ndim == 2) and _usable(X, self.typenum, ndim):
                x = <cnp.ndarray>X
                if (cnp.PyArray_DIM(x, ndim - 1) == self.n_in
                        and (ndim == 1 or cnp.PyArray_DIM(x, 0) > 0)):
                    if self.is_double:
                        finite = fwb_all_finite_d(<const double*>cnp.PyArray_DATA(x), cnp.PyArray_SIZE(x))
                    else:
                        finite = fwb_all_finite_f(<const float*>cnp.PyArray_DATA(x), cnp.PyArray_SIZE(x))
                    if finite:
                        single[0] = ndim == 1
                        return x
        x, is_single = _validation.check_X(X, self.n_in, self.dtype)
        single[0] = is_single
        return x

    cdef object _targets(self, object y, Py_ssize_t n, bint single):
        """y as float targets (n x n_out) or integer labels (n,), checked; see check_y."""
        cdef cnp.ndarray t
        cdef Py_ssize_t i, size, m = self.n_out
        cdef const Py_ssize_t* lab
        cdef bint ok = False
        if self.net.loss == SOFTMAX_CROSS_ENTROPY and _usable(y, cnp.NPY_INTP, 1):
            t = <cnp.ndarray>y
            if cnp.PyArray_DIM(t, 0) == n:
                lab = <const Py_ssize_t*>cnp.PyArray_DATA(t)
                ok = True
                for i in range(n):
                    if lab[i] < 0 or lab[i] >= m:
                        ok = False
                        break
        elif _usable(y, self.typenum, 2) or (m == 1 and _usable(y, self.typenum, 1)):
            t = <cnp.ndarray>y
            size = cnp.PyArray_SIZE(t)
            if cnp.PyArray_DIM(t, 0) == n and size == n * m:
                if self.is_double:
                    ok = _targets_ok(self.net.loss, <const double*>cnp.PyArray_DATA(t), size)
                else:
                    ok = _targets_ok(self.net.loss, <const float*>cnp.PyArray_DATA(t), size)
        if ok:
            return t
        return _validation.check_y(y, n, self.n_out, self.loss_name, self.dtype, single)

    cdef double _run(self, object X, object y, int mode, double lr,
                     cnp.ndarray grad_out=None) except? -1.0:
        """Validate, claim a workspace, run the kernels once; with ``grad_out``
        also copy the gradient there before another call can overwrite it."""
        cdef bint single
        cdef cnp.ndarray x = self._input(X, &single)
        cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0) if cnp.PyArray_NDIM(x) == 2 else 1
        if n > MAX_ROWS:
            raise ValueError(f"X has {n} rows; a batch holds at most {MAX_ROWS} "
                             "(BLAS counts rows in 32 bits): split it")
        cdef cnp.ndarray t = self._targets(y, n, single)
        if mode == SGD_STEP:
            # the update writes the parameters while reading X and y
            if _overlaps(x, self.params):
                x = x.copy()
            if _overlaps(t, self.params):
                t = t.copy()
        cdef bint is_labels = cnp.PyArray_TYPE(t) == cnp.NPY_INTP
        cdef const void* T = NULL if is_labels else cnp.PyArray_DATA(t)
        cdef const Py_ssize_t* labels = <const Py_ssize_t*>cnp.PyArray_DATA(t) if is_labels else NULL
        cdef int n_threads = self._threads(n)
        cdef double value
        cdef Workspace ws = self._claim(n, mode != LOSS_ONLY)
        try:
            if n * self.net.n_params < RELEASE_GIL_MIN_WORK:
                value = self._dispatch(x, T, labels, n, ws, mode, lr, n_threads)
            else:
                with nogil:
                    value = self._dispatch(x, T, labels, n, ws, mode, lr, n_threads)
            if grad_out is not None:
                memcpy(cnp.PyArray_DATA(grad_out), cnp.PyArray_DATA(self.grads),
                       cnp.PyArray_NBYTES(self.grads))
        finally:
            self._release(ws)
        return value

    cdef double _dispatch(self, cnp.ndarray x, const void* T, const Py_ssize_t* labels,
                          Py_ssize_t n, Workspace ws, int mode, double lr,
                          int n_threads) noexcept nogil:
        if self.is_double:
            return run(&self.net, <double*>cnp.PyArray_DATA(self.params),
                       <double*>cnp.PyArray_DATA(self.grads),
                       <const double*>cnp.PyArray_DATA(x), <const double*>T, labels, n,
                       <double*>ws.acts_ptr, <double*>ws.delta_ptr, <double*>ws.spare_ptr,
                       ws.row_loss_ptr, ws.capacity, mode, lr, n_threads)
        return run(&self.net, <float*>cnp.PyArray_DATA(self.params),
                   <float*>cnp.PyArray_DATA(self.grads),
                   <const float*>cnp.PyArray_DATA(x), <const float*>T, labels, n,
                   <float*>ws.acts_ptr, <float*>ws.delta_ptr, <float*>ws.spare_ptr,
                   ws.row_loss_ptr, ws.capacity, mode, <float>lr, n_threads)

    def predict(self, X):
        """Output-layer activations for X of shape (n, n_in), or (n_in,) for one sample."""
        cdef bint single
        cdef cnp.ndarray x = self._input(X, &single)
        cdef Py_ssize_t n = cnp.PyArray_DIM(x, 0) if cnp.PyArray_NDIM(x) == 2 else 1
        cdef cnp.npy_intp dims[2]
        dims[0] = n
        dims[1] = self.n_out
        cdef cnp.ndarray out
        if single:
            out = cnp.PyArray_EMPTY(1, &dims[1], self.typenum, 0)
        else:
            out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        cdef Workspace ws = self._claim(min(n, PREDICT_BLOCK_ROWS), False)
        cdef int n_threads = self._threads(min(n, ws.capacity))
        try:
            if n * self.net.n_params < RELEASE_GIL_MIN_WORK:
                self._predict_blocks(x, out, n, ws, n_threads)
            else:
                with nogil:
                    self._predict_blocks(x, out, n, ws, n_threads)
        finally:
            self._release(ws)
        return out

    cdef void _predict_blocks(self, cnp.ndarray x, cnp.ndarray out, Py_ssize_t n, Workspace ws,
                              int n_threads) noexcept nogil:
        cdef Py_ssize_t start = 0, rows, block = ws.capacity
        cdef char* xp = <char*>cnp.PyArray_DATA(x)
        cdef char* op = <char*>cnp.PyArray_DATA(out)
        cdef Py_ssize_t item = 8 if self.is_double else 4
        while start < n:
            rows = min(block, n - start)
            if self.is_double:
                forward(&self.net, <const double*>cnp.PyArray_DATA(self.params),
                        <const double*>(xp + start * self.n_in * item), rows,
                        <double*>ws.acts_ptr, ws.capacity,
                        <double*>(op + start * self.n_out * item), False, n_threads)
            else:
                forward(&self.net, <const float*>cnp.PyArray_DATA(self.params),
                        <const float*>(xp + start * self.n_in * item), rows,
                        <float*>ws.acts_ptr, ws.capacity,
                        <float*>(op + start * self.n_out * item), False, n_threads)
            start += rows

    def loss(self, X, y):
        """Mean loss of the network on (X, y)."""
        return self._run(X, y, LOSS_ONLY, 0.0)

    def gradients(self, X, y):
        """Gradient of the mean loss, as a new flat array laid out like ``params``."""
        out = np.empty_like(self.grads)
        self._run(X, y, GRADIENT, 0.0, out)
        return out

    def train_step_sgd(self, X, y, double lr):
        """One SGD step on (X, y) in place; returns the loss before the update.

        When that loss is not finite the parameters are left unchanged.
        """
        if not self.is_double and lr > FLT_MAX:
            _validation.check_learning_rate(lr, self.dtype)
        return self._run(X, y, SGD_STEP, lr)


cdef bint _overlaps(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share any bytes."""
    cdef char* a0 = <char*>cnp.PyArray_DATA(a)
    cdef char* b0 = <char*>cnp.PyArray_DATA(b)
    return a0 < b0 + cnp.PyArray_NBYTES(b) and b0 < a0 + cnp.PyArray_NBYTES(a)


cdef bint _targets_ok(int loss, const floating* t, Py_ssize_t size) noexcept nogil:
    """The fast acceptance test for float targets; check_y explains any refusal."""
    cdef Py_ssize_t i
    if loss == BINARY_CROSS_ENTROPY:
        for i in range(size):
            if not (t[i] >= 0 and t[i] <= 1):       # probabilities; NaN fails both
                return False
        return True
    if floating is float:
        if not fwb_all_finite_f(t, size):
            return False
    else:
        if not fwb_all_finite_d(t, size):
            return False
    if loss == SOFTMAX_CROSS_ENTROPY:
        for i in range(size):
            if t[i] < 0:                           # class weights are nonnegative
                return False
    return True
