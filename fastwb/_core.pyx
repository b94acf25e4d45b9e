"""Compiled kernels of fastwb: forward pass, loss, backpropagation, optimizers
and the epoch loop of ``fit``.

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
from cpython.exc cimport PyErr_CheckSignals
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, NAN, exp, fabs, floor, isfinite, log, pow, sqrt
from libc.float cimport DBL_MAX, FLT_MAX
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t, uint64_t
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv

import os
import warnings

import numpy as np

from fastwb import _layout, _validation
from fastwb.functions import HYPERPARAMETERS, LEAKY_SLOPE, STATE_BUFFERS

cnp.import_array()

cdef extern from "fastwb_math.h" nogil:
    float fwb_exp_nonpositive_f(float x)
    float fwb_sigmoid_f(float x)
    double fwb_sigmoid_d(double x)
    float fwb_softplus_f(float x)
    double fwb_softplus_d(double x)

# The hot elementwise kernels, called through the table of the selected SIMD level.
cdef extern from "fastwb_simd.h" nogil:
    # activations and optimizers: the codes the C kernels switch on
    enum:
        IDENTITY "FWB_ACT_IDENTITY"
        RELU "FWB_ACT_RELU"
        LEAKY_RELU "FWB_ACT_LEAKY_RELU"
        SIGMOID "FWB_ACT_SIGMOID"
        TANH "FWB_ACT_TANH"
        SOFTMAX "FWB_ACT_SOFTMAX"
        ELU "FWB_ACT_ELU"
        SELU "FWB_ACT_SELU"
        GELU "FWB_ACT_GELU"
        SOFTPLUS "FWB_ACT_SOFTPLUS"
        SWISH "FWB_ACT_SWISH"
        EXP "FWB_ACT_EXP"
    enum:
        OPT_SGD "FWB_OPT_SGD"
        OPT_RMSPROP "FWB_OPT_RMSPROP"
        OPT_ADAGRAD "FWB_OPT_ADAGRAD"
        OPT_ADAM "FWB_OPT_ADAM"
    ctypedef struct fwb_rule:
        int kind
        int momentum, nesterov
        double lr, mu, c1, c2, beta2, eps, step_size, bias2, decay_mult, l1, l2x2, clip, scale
    ctypedef struct fwb_kernels:
        void (*bias_act_f)(float*, const float*, Py_ssize_t, Py_ssize_t, int,
                           float, float*) noexcept nogil
        void (*bias_act_d)(double*, const double*, Py_ssize_t, Py_ssize_t, int,
                           double, double*) noexcept nogil
        void (*derivative_f)(float*, const float*, const float*, const unsigned char*, Py_ssize_t,
                             int, float, float, float) noexcept nogil
        void (*derivative_d)(double*, const double*, const double*, const unsigned char*,
                             Py_ssize_t, int, double, double, double) noexcept nogil
        void (*update_f)(const fwb_rule*, float*, const float*, float*, float*,
                         Py_ssize_t) noexcept nogil
        void (*update_d)(const fwb_rule*, double*, const double*, double*, double*,
                         Py_ssize_t) noexcept nogil
        int (*all_finite_f)(const float*, Py_ssize_t) noexcept nogil
        int (*all_finite_d)(const double*, Py_ssize_t) noexcept nogil
        void (*abs_sq_sums_f)(const float*, Py_ssize_t, double*, double*) noexcept nogil
        void (*abs_sq_sums_d)(const double*, Py_ssize_t, double*, double*) noexcept nogil
        double (*max_abs_f)(const float*, Py_ssize_t) noexcept nogil
        double (*max_abs_d)(const double*, Py_ssize_t) noexcept nogil
        void (*small_nn_f)(const float*, Py_ssize_t, Py_ssize_t, const float*, Py_ssize_t,
                           float*) noexcept nogil
        void (*small_nn_d)(const double*, Py_ssize_t, Py_ssize_t, const double*, Py_ssize_t,
                           double*) noexcept nogil
        void (*small_tn_f)(const float*, Py_ssize_t, Py_ssize_t, const float*, Py_ssize_t,
                           float*, Py_ssize_t, Py_ssize_t, float, float) noexcept nogil
        void (*small_tn_d)(const double*, Py_ssize_t, Py_ssize_t, const double*, Py_ssize_t,
                           double*, Py_ssize_t, Py_ssize_t, double, double) noexcept nogil
    fwb_kernels fwb_simd
    int fwb_simd_level
    int fwb_simd_compiled(int level)
    int fwb_simd_supported(int level)
    int fwb_simd_select(int level)

cdef extern from "<dlfcn.h>" nogil:
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int RTLD_NOW
    int RTLD_LOCAL

cdef extern from "fastwb_omp.h" nogil:
    int omp_get_max_threads()
    int fwb_openmp_enabled()

cdef extern from "fastwb_random.h" nogil:
    int FWB_STREAM_DROPOUT
    int FWB_STREAM_SHUFFLE
    uint64_t fwb_key(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b)
    uint64_t fwb_bits(uint64_t key, uint64_t i)
    uint64_t fwb_below(uint64_t key, uint64_t i, uint64_t n)

cdef extern from "fastwb_pool.h" nogil:
    ctypedef void (*fwb_task_f)(void* ctx, int index) noexcept nogil
    void fwb_pool_run(fwb_task_f fn, void* ctx, int count, int threads)

cdef extern from "fastwb_fpmode.h" nogil:
    ctypedef unsigned long long fwb_fp_word
    int fwb_fp_can_flush()
    unsigned long long fwb_fp_flushing()
    fwb_fp_word fwb_fp_enter(int flush)
    void fwb_fp_exit(fwb_fp_word saved)
    void fwb_fp_set_flushing(int flush)
    void fwb_omp_fp_enter(int threads)
    void fwb_omp_fp_exit(int threads)

cdef extern from "fastwb_interrupt.h" nogil:
    int fwb_catch_sigint()
    int fwb_release_sigint()
    int fwb_interrupt_pending()


cdef enum:
    MSE = 0
    BINARY_CROSS_ENTROPY = 1
    SOFTMAX_CROSS_ENTROPY = 2
    POISSON = 3
    HUBER = 4
    MAE = 5

ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
               "sigmoid": SIGMOID, "tanh": TANH, "elu": ELU, "selu": SELU, "gelu": GELU,
               "softplus": SOFTPLUS, "swish": SWISH, "softmax": SOFTMAX,
               "exp": EXP}
LOSSES = {"mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
          "softmax_cross_entropy": SOFTMAX_CROSS_ENTROPY, "poisson": POISSON, "huber": HUBER,
          "mae": MAE}
# Update rules by name (functions.OPTIMIZERS); AdamW is Adam with a decoupled weight decay.
OPTIMIZERS = {"sgd": OPT_SGD, "rmsprop": OPT_RMSPROP, "adagrad": OPT_ADAGRAD, "adam": OPT_ADAM}

# How a training call ended, as functions.FitStatus (tested)
cdef enum:
    FIT_DONE = 0
    FIT_DIVERGED = 1         # a batch's loss was not finite; it was not applied
    FIT_INTERRUPTED = 2      # SIGINT arrived; stopped at a batch boundary
    FIT_OVERFLOW = 3         # the loss was finite, the update would not be; it was not applied
FIT_STATUS = {"done": FIT_DONE, "diverged": FIT_DIVERGED, "interrupted": FIT_INTERRUPTED,
              "overflow": FIT_OVERFLOW}

# An optimizer's counters, the entries of its int64 counter array (functions.COUNTERS)
cdef enum:
    COUNT_STEP = 0
    COUNT_EPOCH = 1
    COUNT_SAMPLES = 2
    N_COUNTERS = 3

# Slope of leaky_relu for negative inputs (functions.LEAKY_SLOPE, the specification).
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
# outputs (values) beyond which predict checks their size before allocating: below
# it (32-64 MiB) no allocation can exceed a machine, and the check costs microseconds
cdef Py_ssize_t PREDICT_CHECK_MIN = 1 << 23
# Training steps on batches of at least 2 * CHUNK_MIN_ROWS rows of networks up
# to CHUNK_MAX_PARAMS parameters run as chunks of rows side by side (run_chunks)
cdef Py_ssize_t CHUNK_MIN_ROWS = 64
# Products of at least PANEL_PRODUCT_MIN multiply-adds run as panels of the
# larger side of the result, each a serial BLAS call, on fastwb's pool
# (_gemm_panels); at most MAX_PANELS of at least PANEL_MIN rows or columns.
cdef Py_ssize_t PANEL_PRODUCT_MIN = 1 << 20
cdef Py_ssize_t PANEL_MIN = 64
cdef int MAX_PANELS = 8
# Segments (a layer's weights or biases) of at least PASS_MIN_ELEMENTS run their
# passes (update, its check, penalties) on the pool, in up to PASS_TASKS tasks
cdef Py_ssize_t PASS_MIN_ELEMENTS = 1 << 16
cdef Py_ssize_t PASS_TASKS = 64
# Segment passes that ran on the pool (by the calling thread only): for tests
cdef Py_ssize_t POOL_PASSES = 0


def pool_passes():
    """How many segment passes have run on the pool: for tests that a path is taken."""
    return POOL_PASSES
cdef Py_ssize_t CHUNK_MAX_PARAMS = 1 << 16
cdef int MAX_CHUNKS = 8


def tuning(parallel_min_elements=None, small_product=None, predict_block_rows=None,
           pass_min_elements=None, panel_product_min=None):
    """Read and optionally set the dispatch thresholds; returns the previous values.

    For tests (forcing each kernel path on small networks) and for tuning on
    machines unlike the one the defaults were measured on.
    """
    global PARALLEL_MIN_ELEMENTS, SMALL_PRODUCT, PREDICT_BLOCK_ROWS, PASS_MIN_ELEMENTS
    global PANEL_PRODUCT_MIN
    previous = dict(parallel_min_elements=PARALLEL_MIN_ELEMENTS, small_product=SMALL_PRODUCT,
                    predict_block_rows=PREDICT_BLOCK_ROWS, pass_min_elements=PASS_MIN_ELEMENTS,
                    panel_product_min=PANEL_PRODUCT_MIN)
    for name, value in (("parallel_min_elements", parallel_min_elements),
                        ("small_product", small_product),
                        ("predict_block_rows", predict_block_rows),
                        ("pass_min_elements", pass_min_elements),
                        ("panel_product_min", panel_product_min)):
        if value is not None and value < (1 if name == "predict_block_rows" else 0):
            raise ValueError(f"{name} must be nonnegative (predict_block_rows positive)")
    if parallel_min_elements is not None:
        PARALLEL_MIN_ELEMENTS = parallel_min_elements
    if small_product is not None:
        SMALL_PRODUCT = small_product
    if predict_block_rows is not None:
        PREDICT_BLOCK_ROWS = predict_block_rows
    if pass_min_elements is not None:
        PASS_MIN_ELEMENTS = pass_min_elements
    if panel_product_min is not None:
        PANEL_PRODUCT_MIN = panel_product_min
    return previous


cdef inline bint _plain_loops(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m) noexcept nogil:
    return n * k * m <= SMALL_PRODUCT


cdef enum Mode:
    LOSS_ONLY = 0
    GRADIENT = 1
    TRAIN = 2
    DATA_LOSS = 3      # LOSS_ONLY without the penalty
    STEP_GRADIENT = 4  # GRADIENT in training mode: dropout on, with the next step's masks

# Elements per block of the passes over the flat parameter buffer. Sums are
# taken per block and the blocks added in order, so a reduction (a penalty, a
# gradient norm) gives the same bits for any thread count.
cdef Py_ssize_t BLOCK = 8192


def openmp_enabled():
    """Whether this build of fastwb was compiled with OpenMP."""
    return bool(fwb_openmp_enabled())


def openmp_max_threads():
    """OpenMP's thread limit (``omp_get_max_threads``): the threads a network with
    ``n_threads=0`` uses; 1 in a serial build."""
    return omp_get_max_threads()


cdef bint FLUSH_DENORMALS = fwb_fp_can_flush()


def flush_denormals():
    """Whether compiled calls run with flush-to-zero and denormals-are-zero
    (see ``fastwb.set_flush_denormals``)."""
    return bool(FLUSH_DENORMALS)


def set_flush_denormals(bint flush):
    """Run every later compiled call with (True) or without (False) flushing
    subnormal floats to zero; returns the previous setting. False where this
    CPU has no such mode (then it stays False)."""
    global FLUSH_DENORMALS
    previous = bool(FLUSH_DENORMALS)
    FLUSH_DENORMALS = flush and fwb_fp_can_flush()
    return previous


def thread_flushes_denormals():
    """Whether the calling thread's floating-point control word flushes
    subnormals now: for tests that a call leaves its caller's mode alone."""
    return fwb_fp_flushing() != 0


def set_thread_flushing(bint flush):
    """Set (or clear) flush-to-zero and denormals-are-zero in the calling
    thread's control word, as a caller's own code might: for tests."""
    fwb_fp_set_flushing(flush)


#: SIMD levels of the elementwise kernels, in increasing order (FWB_SIMD_* in fastwb_simd.h
#: are their indices): the values of the FASTWB_SIMD environment variable and of set_simd_level.
SIMD_LEVELS = ("baseline", "avx2", "avx512")


def simd_levels():
    """``(compiled, supported, selected)``: the SIMD levels this build has kernels
    for, those of them this CPU can run, and the level in use."""
    compiled = tuple(name for i, name in enumerate(SIMD_LEVELS) if fwb_simd_compiled(i))
    supported = tuple(name for i, name in enumerate(SIMD_LEVELS)
                      if fwb_simd_compiled(i) and fwb_simd_supported(i))
    return compiled, supported, SIMD_LEVELS[fwb_simd_level]


def set_simd_level(str name):
    """Run the elementwise kernels at SIMD level ``name`` (one of SIMD_LEVELS);
    returns the previous level. For tests and benchmarks: every level gives
    the same bits. Raises ValueError for a level this build or this CPU lacks.
    Not to be called while another thread trains."""
    if name not in SIMD_LEVELS:
        raise ValueError(f"unknown SIMD level {name!r}; expected one of {SIMD_LEVELS}")
    previous = SIMD_LEVELS[fwb_simd_level]
    cdef int level = SIMD_LEVELS.index(name)
    if not fwb_simd_compiled(level):
        raise ValueError(f"this build of fastwb has no {name} kernels "
                         f"(it has {simd_levels()[0]})")
    if fwb_simd_select(level) != 0:
        raise ValueError(f"this CPU cannot run the {name} kernels "
                         f"(it supports {simd_levels()[1]})")
    return previous


def _select_simd_level():
    """Select the best level this CPU supports, or the one FASTWB_SIMD asks for;
    a request this build or CPU cannot honour warns and falls back to the best."""
    supported = simd_levels()[1]
    best = supported[len(supported) - 1]     # wraparound is off in this module
    requested = os.environ.get("FASTWB_SIMD", "").strip().lower()
    if requested and requested not in supported:
        why = ("is not one of " + ", ".join(SIMD_LEVELS) if requested not in SIMD_LEVELS
               else "is not supported by this CPU or this build (supported: "
               + ", ".join(supported) + ")")
        warnings.warn(f"FASTWB_SIMD={requested!r} {why}; fastwb uses {best} instead",
                      RuntimeWarning, stacklevel=2)
        requested = ""
    fwb_simd_select(SIMD_LEVELS.index(requested or best))


_select_simd_level()


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


cdef inline void _bias_act(floating* z, const floating* b, Py_ssize_t rows, Py_ssize_t m,
                           int act, floating* pre) noexcept nogil:
    """z = f(z + b) on ``rows`` rows of m (softmax per row); gelu and swish also
    keep z + b in ``pre`` unless it is NULL."""
    if floating is float:
        fwb_simd.bias_act_f(z, b, rows, m, act, <float>_LEAKY, pre)
    else:
        fwb_simd.bias_act_d(z, b, rows, m, act, _LEAKY, pre)


cdef inline void _derivative(floating* d, const floating* a, const floating* z,
                             const unsigned char* keep, Py_ssize_t size, int act,
                             floating a_scale, floating inv) noexcept nogil:
    """d *= f'(z) over ``size`` elements, written in terms of the activation
    f(z) = a * a_scale (a_scale is 1, or 1 - rate for an output stored after
    dropout; a positive scale keeps the sign the ReLUs test), or for gelu and
    swish of the pre-activations ``z`` (NULL for the others). With ``keep``
    (dropout masks) first d = keep ? d * inv : 0."""
    if floating is float:
        fwb_simd.derivative_f(d, a, z, keep, size, act, a_scale, inv, <float>_LEAKY)
    else:
        fwb_simd.derivative_d(d, a, z, keep, size, act, a_scale, inv, _LEAKY)


cdef inline bint _fused(int loss) noexcept nogil:
    """Whether the loss takes the output layer's z, its activation fused in."""
    return loss == BINARY_CROSS_ENTROPY or loss == SOFTMAX_CROSS_ENTROPY or loss == POISSON


cdef inline double _loss_row(int loss, int out_act, double huber_delta, const floating* out,
                             const floating* z,
                             const floating* t, Py_ssize_t label, Py_ssize_t m, floating* d,
                             floating scale) noexcept nogil:
    """One sample's summed loss; with d != NULL also d = scale * dL/dz.

    ``out`` holds z for the fused losses (the cross-entropies' sigmoid or
    softmax, Poisson's exp is fused in here) and the activations a = f(z) for
    MSE, Huber and MAE, with ``z`` the pre-activations where the output
    activation keeps them (else NULL).
    """
    cdef Py_ssize_t j
    cdef double s = 0, total = 0, t_sum = 0, lse, mu, r
    cdef floating diff, top, e, inv, delta
    if loss == MSE:
        for j in range(m):
            diff = out[j] - t[j]
            s += <double>diff * diff
            if d != NULL:
                d[j] = (2 * scale) * diff
    elif loss == HUBER:
        # 0.5 x^2 for |x| <= delta, delta (|x| - delta / 2) beyond: PyTorch's HuberLoss
        delta = <floating>huber_delta
        for j in range(m):
            diff = out[j] - t[j]
            r = fabs(<double>diff)
            if r <= huber_delta:
                s += 0.5 * r * r
                if d != NULL:
                    d[j] = scale * diff
            else:
                s += huber_delta * (r - 0.5 * huber_delta)
                if d != NULL:
                    d[j] = scale * delta if diff > 0 else -scale * delta
    elif loss == MAE:
        for j in range(m):
            diff = out[j] - t[j]
            s += fabs(<double>diff)
            if d != NULL:           # the subgradient 0 at 0, as PyTorch's L1Loss
                d[j] = scale if diff > 0 else (-scale if diff < 0 else 0)
    if loss == MSE or loss == HUBER or loss == MAE:
        if d != NULL:
            _derivative(d, out, z, NULL, m, out_act, 1, 1)
        return s
    if loss == POISSON:
        # half the Poisson deviance with a log link, mu = e^z:
        # t log(t / mu) - t + mu, written t (log t - z) + (mu - t), which has no
        # division and no log of mu (finite wherever e^z is)
        for j in range(m):
            mu = exp(<double>out[j])
            s += mu - t[j]
            if t[j] > 0:
                s += <double>t[j] * (log(<double>t[j]) - <double>out[j])
            if d != NULL:
                d[j] = scale * (<floating>mu - t[j])
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
    if d != NULL:       # the exponentials in a loop of their own, which vectorises
        for j in range(m):
            d[j] = _exp_nonpositive(out[j] - top)
        for j in range(m):
            total += d[j]
    else:
        for j in range(m):
            total += _exp_nonpositive(out[j] - top)
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

ctypedef void (*set_threads_f)(int) noexcept nogil
ctypedef int (*get_threads_f)() noexcept nogil

cdef gemm64_f numpy_sgemm = NULL
cdef set_threads_f numpy_set_threads = NULL      # OpenBLAS's thread count, when found
cdef get_threads_f numpy_get_threads = NULL
cdef gemm64_d numpy_dgemm = NULL
cdef gemv64_f numpy_sgemv = NULL
cdef gemv64_d numpy_dgemv = NULL


def attach_blas(bytes path, bytes prefix, bytes suffix):
    """Call the BLAS in the shared library at ``path`` (already loaded by NumPy),
    whose functions are named ``prefix + "sgemm" + suffix`` and take 64-bit
    integers. Returns False, changing nothing, when a function is missing."""
    global numpy_sgemm, numpy_dgemm, numpy_sgemv, numpy_dgemv
    global numpy_set_threads, numpy_get_threads
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
    # optional: without them chunked steps run their chunks one after another. These
    # take C arguments: their names lack the Fortran interface's underscore ("64_")
    numpy_set_threads = <set_threads_f>dlsym(
        handle, prefix + b"openblas_set_num_threads" + suffix.lstrip(b"_"))
    numpy_get_threads = <get_threads_f>dlsym(
        handle, prefix + b"openblas_get_num_threads" + suffix.lstrip(b"_"))
    if numpy_set_threads == NULL or numpy_get_threads == NULL:
        numpy_set_threads = NULL
        numpy_get_threads = NULL
    return True


def detach_blas():
    """Go back to SciPy's cython_blas."""
    global numpy_sgemm, numpy_dgemm, numpy_sgemv, numpy_dgemv
    global numpy_set_threads, numpy_get_threads
    numpy_set_threads = NULL
    numpy_get_threads = NULL
    numpy_sgemm = NULL
    numpy_dgemm = NULL
    numpy_sgemv = NULL
    numpy_dgemv = NULL


def blas_source():
    """``"numpy"`` or ``"scipy"``: whose BLAS the kernels call."""
    return "numpy" if numpy_sgemm != NULL else "scipy"


cdef int blas_serial_begin() noexcept nogil:
    """Make each BLAS call run on its calling thread, so that threads can call it
    side by side; returns the thread count to give back to blas_serial_end, or 0
    when fastwb cannot set it (SciPy's BLAS) or has no threads of its own."""
    cdef int previous
    if numpy_set_threads == NULL or not fwb_openmp_enabled():
        return 0
    previous = numpy_get_threads()
    if previous > 1:
        numpy_set_threads(1)
    return previous


cdef void blas_serial_end(int previous) noexcept nogil:
    if previous > 1:
        numpy_set_threads(previous)


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


cdef struct GemmJob:
    # One product cut into panels (_gemm_panels), typed per call
    char* ta
    char* tb
    int m, n, k, lda, ldb, ldc
    double alpha, beta
    const void* a
    const void* b
    void* c
    bint rows            # panels of rows of C (column-major), else of its columns
    int width, size      # rows or columns per panel, and in all


cdef void _gemm_panel(const GemmJob* j, const floating* a, const floating* b, floating* c,
                      int t) noexcept nogil:
    cdef int start = t * j.width
    cdef int count = min(j.width, j.size - start)
    if j.rows:
        _gemm(j.ta, j.tb, count, j.n, j.k, <floating>j.alpha,
              a + (start if j.ta[0] == b"N" else <Py_ssize_t>start * j.lda), j.lda,
              b, j.ldb, <floating>j.beta, c + start, j.ldc)
    else:
        _gemm(j.ta, j.tb, j.m, count, j.k, <floating>j.alpha, a, j.lda,
              b + (<Py_ssize_t>start * j.ldb if j.tb[0] == b"N" else start), j.ldb,
              <floating>j.beta, c + <Py_ssize_t>start * j.ldc, j.ldc)


cdef void _gemm_task_f(void* ctx, int t) noexcept nogil:
    cdef GemmJob* j = <GemmJob*>ctx
    _gemm_panel(j, <const float*>j.a, <const float*>j.b, <float*>j.c, t)


cdef void _gemm_task_d(void* ctx, int t) noexcept nogil:
    cdef GemmJob* j = <GemmJob*>ctx
    _gemm_panel(j, <const double*>j.a, <const double*>j.b, <double*>j.c, t)


cdef void _gemm_panels(char* ta, char* tb, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb, floating beta,
                       floating* c, int ldc, int team) noexcept nogil:
    """_gemm, cut into panels of the larger side of C that serial BLAS calls
    compute on fastwb's pool with up to ``team`` threads; ``team`` 0 (a call
    that leaves BLAS its own threads: see Engine._typed) calls _gemm whole.

    OpenBLAS's threads wait for each other: on a machine where another process
    keeps a core busy, its two-thread products took 10-50 times as long. The
    pool's caller runs every panel no helper has claimed, so a helper the
    system does not schedule delays nothing. The panels depend on the shape
    only, so the result is the same bits for any team.
    """
    cdef GemmJob job
    cdef int panels
    cdef bint rows = m >= n
    cdef int size = m if rows else n
    if team == 0 or <Py_ssize_t>m * n * k < PANEL_PRODUCT_MIN or size < 2 * PANEL_MIN:
        _gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    cdef Py_ssize_t width
    panels = <int>min(<Py_ssize_t>MAX_PANELS, size // PANEL_MIN)
    width = (<Py_ssize_t>size + panels - 1) // panels
    width = (width + 15) // 16 * 16             # whole SIMD tiles
    panels = <int>((size + width - 1) // width)
    job.width = <int>width
    job.ta, job.tb, job.m, job.n, job.k = ta, tb, m, n, k
    job.lda, job.ldb, job.ldc, job.alpha, job.beta = lda, ldb, ldc, alpha, beta
    job.a, job.b, job.c, job.rows, job.size = a, b, c, rows, size
    if floating is float:
        fwb_pool_run(_gemm_task_f, &job, panels, team)
    else:
        fwb_pool_run(_gemm_task_d, &job, panels, team)


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


cdef inline void _small_nn(const floating* A, Py_ssize_t n, Py_ssize_t k, const floating* W,
                           Py_ssize_t m, floating* Z) noexcept nogil:
    """The SIMD kernel of Z (n x m) = A (n x k) @ W (k x m), by dtype."""
    if floating is float:
        fwb_simd.small_nn_f(A, n, k, W, m, Z)
    else:
        fwb_simd.small_nn_d(A, n, k, W, m, Z)


cdef inline void _small_tn(const floating* A, Py_ssize_t n, Py_ssize_t k, const floating* D,
                           Py_ssize_t m, floating* G, Py_ssize_t p0, Py_ssize_t p1,
                           floating alpha, floating beta) noexcept nogil:
    """The SIMD kernel of rows p0 .. p1 - 1 of G = alpha A^T D + beta G, by dtype."""
    if floating is float:
        fwb_simd.small_tn_f(A, n, k, D, m, G, p0, p1, alpha, beta)
    else:
        fwb_simd.small_tn_d(A, n, k, D, m, G, p0, p1, alpha, beta)


cdef void product_nn(const floating* A, Py_ssize_t n, Py_ssize_t k, const floating* W,
                     Py_ssize_t m, floating* Z, int n_threads, int team) noexcept nogil:
    """Z (n x m) = A (n x k) @ W (k x m)."""
    cdef Py_ssize_t i
    if _plain_loops(n, k, m):
        if n > 1 and n_threads > 1 and n * k * m >= PARALLEL_MIN_ELEMENTS:
            for i in prange(n, schedule="static", num_threads=n_threads):
                _small_nn(A + i * k, 1, k, W, m, Z + i * m)
        else:
            _small_nn(A, n, k, W, m, Z)
    elif n == 1:
        _gemv(b"N", <int>m, <int>k, W, <int>m, A, Z)
    else:
        _gemm_panels(b"N", b"N", <int>m, <int>n, <int>k, <floating>1, W, <int>m, A, <int>k,
                     <floating>0, Z, <int>m, team)


cdef void product_tn(const floating* A, Py_ssize_t n, Py_ssize_t k, const floating* D,
                     Py_ssize_t m, floating* G, floating alpha, floating beta,
                     int n_threads, int team) noexcept nogil:
    """G (k x m) = alpha A^T (k x n) @ D (n x m) + beta G.

    alpha = 1, beta = 0 is the weight gradient. One row of G per task, so the
    result does not depend on the thread count.
    """
    cdef Py_ssize_t p
    if n == 1 or _plain_loops(n, k, m):
        if k > 1 and n_threads > 1 and n * k * m >= PARALLEL_MIN_ELEMENTS:
            for p in prange(k, schedule="static", num_threads=n_threads):
                _small_tn(A, n, k, D, m, G, p, p + 1, alpha, beta)
        else:
            _small_tn(A, n, k, D, m, G, 0, k, alpha, beta)
    else:
        _gemm_panels(b"N", b"T", <int>m, <int>k, <int>n, alpha, D, <int>m, A, <int>k, beta, G,
                     <int>m, team)


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
                     Py_ssize_t k, floating* P, int n_threads, int team) noexcept nogil:
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
        _gemm_panels(b"T", b"N", <int>k, <int>n, <int>m, <floating>1, W, <int>m, D, <int>m,
                     <floating>0, P, <int>k, team)


# ---------------------------------------------------------------------------
# Fused elementwise kernels over a batch
# ---------------------------------------------------------------------------

cdef void bias_activation(floating* Z, const floating* b, Py_ssize_t n, Py_ssize_t m, int act,
                          floating* pre, int n_threads) noexcept nogil:
    """Z = f(Z + b) in place, one pass; ``pre`` (n x m, or NULL) keeps Z + b
    for the activations whose derivative needs it."""
    cdef Py_ssize_t i
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            _bias_act(Z + i * m, b, 1, m, act, pre + i * m if pre != NULL else NULL)
    else:
        _bias_act(Z, b, n, m, act, pre)


cdef void multiply_derivative(floating* D, const floating* A, const floating* Z, Py_ssize_t n,
                              Py_ssize_t m, int act, int n_threads) noexcept nogil:
    """D *= f'(Z), with f' written through the stored activations A (or, for
    gelu and swish, the kept pre-activations Z)."""
    cdef Py_ssize_t i
    if act == IDENTITY:
        return
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            _derivative(D + i * m, A + i * m, Z + i * m if Z != NULL else NULL, NULL, m, act,
                        1, 1)
    else:
        _derivative(D, A, Z, NULL, n * m, act, 1, 1)


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


cdef double batch_weight(const floating* SW, Py_ssize_t n) noexcept nogil:
    """The number of rows, or with sample weights their sum, in row order."""
    cdef Py_ssize_t i
    cdef double total = 0
    if SW == NULL:
        return <double>n
    for i in range(n):
        total += SW[i]
    return total


cdef double loss_and_delta(int loss, int out_act, double huber_delta, const floating* out,
                           const floating* Z,
                           const floating* T,
                           const Py_ssize_t* labels, const floating* SW, Py_ssize_t n,
                           Py_ssize_t m, floating* D, double* row_loss, double weight_total,
                           int n_threads) noexcept nogil:
    """The batch's loss over ``weight_total`` (batch_weight of the whole batch, of
    which these n rows may be a chunk); with D != NULL also D = dL/dZ of the output layer.
    ``Z`` holds the output layer's pre-activations where its activation keeps them.

    With sample weights SW the mean is weighted: sum_i w_i l_i / sum_i w_i (a
    batch whose weights are all zero has loss 0 and no gradient). Per-row
    losses are summed afterwards in row order: the same total for any thread count.
    """
    cdef Py_ssize_t i
    cdef double total = 0
    if SW != NULL:
        if weight_total == 0:
            if D != NULL:
                memset(D, 0, n * m * sizeof(floating))
            return 0.0
    cdef double denominator = weight_total if loss == SOFTMAX_CROSS_ENTROPY else weight_total * m
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            row_loss[i] = _weighted_loss_row(loss, out_act, huber_delta, out, Z, T, labels, SW, i,
                                             m, D, denominator)
    else:
        for i in range(n):
            row_loss[i] = _weighted_loss_row(loss, out_act, huber_delta, out, Z, T, labels, SW, i,
                                             m, D, denominator)
    for i in range(n):
        total += row_loss[i]
    return total / denominator


cdef inline double _weighted_loss_row(int loss, int out_act, double huber_delta,
                                      const floating* out, const floating* Z,
                                      const floating* T,
                                      const Py_ssize_t* labels,
                                      const floating* SW, Py_ssize_t i, Py_ssize_t m,
                                      floating* D, double denominator) noexcept nogil:
    """Row i's loss times its weight; D's row scaled by weight / denominator."""
    cdef double w = SW[i] if SW != NULL else 1.0
    return w * _loss_row(loss, out_act, huber_delta, out + i * m,
                         Z + i * m if Z != NULL else NULL,
                         T + i * m if T != NULL else NULL,
                         labels[i] if labels != NULL else 0, m,
                         D + i * m if D != NULL else NULL, <floating>(w / denominator))


# ---------------------------------------------------------------------------
# Dropout: inverted, with masks from the counter-based generator
# ---------------------------------------------------------------------------

cdef void dropout(floating* A, unsigned char* keep, Py_ssize_t size, double rate, uint64_t key,
                  Py_ssize_t first, int n_threads) noexcept nogil:
    """Keep each unit with probability 1 - rate and scale kept ones by 1 / (1 - rate).

    Unit i of the block, unit first + i of the batch, is dropped when the top 53
    bits of draw first + i fall below rate * 2^53; fastwb._random.dropout_keep
    draws the same mask.
    """
    cdef uint64_t threshold = <uint64_t>(rate * 9007199254740992.0)
    cdef floating inv = <floating>(1.0 / (1.0 - rate))
    cdef Py_ssize_t i
    if n_threads > 1 and size >= PARALLEL_MIN_ELEMENTS:
        for i in prange(size, schedule="static", num_threads=n_threads):
            keep[i] = (fwb_bits(key, first + i) >> 11) >= threshold
            A[i] = A[i] * inv if keep[i] else 0
    else:
        for i in range(size):
            keep[i] = (fwb_bits(key, first + i) >> 11) >= threshold
            A[i] = A[i] * inv if keep[i] else 0


cdef void multiply_dropout_derivative(floating* D, const floating* A, const floating* Z,
                                      const unsigned char* keep, Py_ssize_t n, Py_ssize_t m,
                                      int act, double rate, int n_threads) noexcept nogil:
    """D *= keep / (1 - rate) * f'(Z): backpropagation through dropout and the activation."""
    cdef Py_ssize_t i
    cdef floating inv = <floating>(1.0 / (1.0 - rate))
    cdef floating keep_rate = <floating>(1.0 - rate)
    if n > 1 and n_threads > 1 and n * m >= PARALLEL_MIN_ELEMENTS:
        for i in prange(n, schedule="static", num_threads=n_threads):
            _derivative(D + i * m, A + i * m, Z + i * m if Z != NULL else NULL, keep + i * m, m,
                        act, keep_rate, inv)
    else:
        _derivative(D, A, Z, keep, n * m, act, keep_rate, inv)


# ---------------------------------------------------------------------------
# Passes over the flat parameter buffer: penalties, clipping, optimizer updates.
# The buffer is cut into segments (each layer's W, then its b), each with its
# own penalty coefficients; a segment is processed in blocks of BLOCK elements.
# ---------------------------------------------------------------------------

cdef struct Opt:
    # One call's update rule: a Rule's settings and state, and this step's rate
    int kind
    double lr             # this step's learning rate
    double momentum       # SGD
    bint nesterov         # SGD
    double rho            # RMSprop
    double beta1, beta2   # Adam
    double eps            # RMSprop, Adagrad, Adam
    double weight_decay   # decoupled (AdamW), on the segments that take penalties
    double clip_norm      # 0: off
    double clip_value     # 0: off
    int64_t step          # updates applied so far
    double step_size      # Adam: lr / (1 - beta1^t), set by parameter_pass
    double bias2          # Adam: 1 / sqrt(1 - beta2^t), set by parameter_pass
    void* s1              # state buffers laid out like the parameters (NULL: unused)
    void* s2
    int64_t* counters     # the optimizer's counters (COUNT_*), advanced with each update
    bint verify           # check the update first (bounds, else on copies); refuse one that overflows
    bint overflow         # set when verify refused the update
    bint checked          # backward already checked every block (LAYER_CHECK)


cdef enum Pass:
    PENALTY = 0      # sum |p| and sum p^2
    REGULARIZE = 1   # PENALTY, and g += l1 sign(p) + 2 l2 p
    GRAD_SQUARE = 2  # sum of the squared effective gradient (for clipping by norm)
    UPDATE = 3       # PENALTY, and the optimizer update with the effective gradient
    CHECK = 4        # count the blocks whose update would leave a parameter non-finite

# Elements an update is tried on at once by CHECK: copies on the stack of each thread.
cdef enum:
    TRIAL = 256


cdef struct Segment:
    Py_ssize_t start, length
    double l1, l2        # penalty l1 sum|p| + l2 sum p^2
    double decay         # decoupled weight decay rate (AdamW)


cdef inline floating _effective(floating g, floating p, floating l1, floating l2x2,
                                floating clip, floating scale) noexcept nogil:
    """The gradient an optimizer sees: loss gradient + penalty gradient, clipped
    elementwise to [-clip, clip] (clip = inf when off), times the norm-clip scale."""
    g = g + l2x2 * p + l1 * (<floating>(p > 0) - <floating>(p < 0))
    g = clip if g > clip else g
    g = -clip if g < -clip else g
    return g * scale


cdef void _block(int what, const Opt* o, floating* p, floating* g, floating* s1, floating* s2,
                 Py_ssize_t n, double l1, double l2, double decay, double scale,
                 double* out) noexcept nogil:
    """One block of a pass; writes its partial sums to out[0] and out[1]."""
    cdef Py_ssize_t i
    cdef double sum_abs = 0, sum_sq = 0
    cdef floating fl1 = <floating>l1, fl2x2 = <floating>(2 * l2)
    cdef double clip_value
    cdef floating clip, gi
    if what == CHECK:
        clip_value = o.clip_value if o.clip_value > 0 else INFINITY
        out[0] = 0 if _update_safe(o, p, g, s1, s2, n, l1, l2, decay, clip_value, scale) \
            else _update_fails(o, p, g, s1, s2, n, l1, l2, decay, clip_value, scale)
        out[1] = 0
        return
    if what != GRAD_SQUARE and (l1 != 0 or l2 != 0):
        if floating is float:
            fwb_simd.abs_sq_sums_f(p, n, &sum_abs, &sum_sq)
        else:
            fwb_simd.abs_sq_sums_d(p, n, &sum_abs, &sum_sq)
    out[0] = sum_abs
    out[1] = sum_sq
    if what == PENALTY:
        return
    if what == REGULARIZE:
        for i in range(n):
            g[i] = g[i] + fl2x2 * p[i] + fl1 * (<floating>(p[i] > 0) - <floating>(p[i] < 0))
        return
    clip_value = o.clip_value if o.clip_value > 0 else INFINITY     # o is NULL for the above
    clip = <floating>clip_value
    if what == GRAD_SQUARE:
        for i in range(n):
            gi = _effective(g[i], p[i], fl1, fl2x2, clip, 1)
            sum_sq += <double>gi * gi
        out[0] = sum_sq
        return
    _update(o, p, g, s1, s2, n, l1, l2, decay, clip_value, scale)


cdef inline double _max_abs(const floating* x, Py_ssize_t n) noexcept nogil:
    """max |x|, INFINITY when an element is not finite; 0 for NULL."""
    if x == NULL:
        return 0
    if floating is float:
        return fwb_simd.max_abs_f(x, n)
    else:
        return fwb_simd.max_abs_d(x, n)


cdef bint _update_safe(const Opt* o, const floating* p, const floating* g, const floating* s1,
                       const floating* s2, Py_ssize_t n, double l1, double l2, double decay,
                       double clip, double scale) noexcept nogil:
    """Whether the update of this block provably leaves every value finite: bounds
    of the new values from the largest magnitudes of the old ones and of the
    gradient, far below the type's largest value. One read of the block and no
    arithmetic per element, against the update itself on copies (_update_fails)
    where they are not conclusive (huge values, a tiny eps, a value that is not
    finite: every comparison with infinity or NaN fails)."""
    cdef double limit = (FLT_MAX if floating is float else DBL_MAX) / 16
    cdef double P = _max_abs(p, n), A = _max_abs(s1, n), B = _max_abs(s2, n)
    cdef double G = _max_abs(g, n) + 2 * l2 * P + l1      # before clipping: NaN and inf fail here
    cdef double E = min(G, clip) * scale                   # the effective gradient
    cdef double D = max(1.0, fabs(1.0 - o.lr * decay))
    cdef double first = 0, second = 0, change
    # the kernel's own factors too: in float32 one may round to infinity (inf * 0 is NaN)
    if not (G < limit and scale < limit and E * E < limit and o.lr < limit and D < limit
            and o.lr * E < limit):
        return False
    if o.kind == OPT_ADAM and not (o.step_size < limit and o.bias2 < limit):
        return False
    if o.kind == OPT_SGD:
        first = o.momentum * A + E
        change = o.lr * ((E + o.momentum * first if o.nesterov else first) if o.momentum > 0
                         else E)
    elif o.kind == OPT_RMSPROP or o.kind == OPT_ADAGRAD:
        first = (o.rho * A + (1 - o.rho) * E * E) if o.kind == OPT_RMSPROP else A + E * E
        change = o.lr * E / min(o.eps, 1.0)     # also bounds lr * g, computed first
    else:
        first = o.beta1 * A + (1 - o.beta1) * E
        second = o.beta2 * B + (1 - o.beta2) * E * E
        change = o.step_size * first / min(o.eps, 1.0)
    return D * P + change < limit and first < limit and second < limit


cdef double _update_fails(const Opt* o, const floating* p, const floating* g,
                          const floating* s1, const floating* s2, Py_ssize_t n, double l1,
                          double l2, double decay, double clip, double scale) noexcept nogil:
    """1 when the update of this block would leave a parameter NaN or infinite, else 0:
    the update itself (the same kernel, the same bits) run on copies."""
    cdef floating cp[TRIAL]
    cdef floating c1[TRIAL]
    cdef floating c2[TRIAL]
    cdef Py_ssize_t first = 0, count
    cdef bint finite
    while first < n:
        count = min(<Py_ssize_t>TRIAL, n - first)
        memcpy(cp, p + first, count * sizeof(floating))
        if s1 != NULL:
            memcpy(c1, s1 + first, count * sizeof(floating))
        if s2 != NULL:
            memcpy(c2, s2 + first, count * sizeof(floating))
        _update(o, cp, g + first, c1 if s1 != NULL else NULL, c2 if s2 != NULL else NULL,
                count, l1, l2, decay, clip, scale)
        if floating is float:
            finite = fwb_simd.all_finite_f(cp, count)
        else:
            finite = fwb_simd.all_finite_d(cp, count)
        if not finite:
            return 1
        first += count
    return 0


cdef inline void _update(const Opt* o, floating* p, const floating* g, floating* s1,
                         floating* s2, Py_ssize_t n, double l1, double l2, double decay,
                         double clip, double scale) noexcept nogil:
    """The optimizer step on one block, with the effective gradient (see _effective)."""
    cdef fwb_rule r
    r.kind = o.kind
    r.momentum = o.momentum != 0
    r.nesterov = o.nesterov
    r.lr = o.lr
    r.eps = o.eps
    r.decay_mult = 1.0 - o.lr * decay
    r.l1, r.l2x2, r.clip, r.scale = l1, 2 * l2, clip, scale
    r.mu, r.c1, r.c2, r.beta2, r.step_size, r.bias2 = o.momentum, 0, 0, 0, 0, 0
    if o.kind == OPT_RMSPROP:
        r.c1, r.c2 = o.rho, 1.0 - o.rho
    elif o.kind == OPT_ADAM:     # PyTorch's form, bias corrections folded into two scalars
        r.mu, r.c1, r.c2, r.beta2 = o.beta1, 1.0 - o.beta1, 1.0 - o.beta2, o.beta2
        r.step_size, r.bias2 = o.step_size, o.bias2
    if floating is float:
        fwb_simd.update_f(&r, p, g, s1, s2, n)
    else:
        fwb_simd.update_d(&r, p, g, s1, s2, n)


cdef struct PassJob:
    # segment_pass's arguments for its tasks, typed per call
    int what
    const Opt* o
    const Segment* seg
    void* p
    void* g
    void* a
    void* b
    double scale
    double* partials
    Py_ssize_t n_blocks, per_task


cdef void _blocks(const PassJob* j, floating* p, floating* g, floating* a, floating* b,
                  Py_ssize_t q0, Py_ssize_t q1) noexcept nogil:
    """Blocks q0 .. q1 - 1 of a segment pass, each writing its own partial sums."""
    cdef Py_ssize_t q, first, count
    cdef const Segment* seg = j.seg
    for q in range(q0, min(q1, j.n_blocks)):
        first = q * BLOCK
        count = min(BLOCK, seg.length - first)
        _block(j.what, j.o, p + first, g + first if g != NULL else NULL,
               a + first if a != NULL else NULL, b + first if b != NULL else NULL,
               count, seg.l1, seg.l2, seg.decay, j.scale, j.partials + 2 * q)


cdef void _pass_task_f(void* ctx, int t) noexcept nogil:
    cdef PassJob* j = <PassJob*>ctx
    _blocks(j, <float*>j.p, <float*>j.g, <float*>j.a, <float*>j.b, t * j.per_task,
            (t + 1) * j.per_task)


cdef void _pass_task_d(void* ctx, int t) noexcept nogil:
    cdef PassJob* j = <PassJob*>ctx
    _blocks(j, <double*>j.p, <double*>j.g, <double*>j.a, <double*>j.b, t * j.per_task,
            (t + 1) * j.per_task)


cdef double segment_pass(int what, const Opt* o, const Segment* seg, floating* params,
                         floating* grads, floating* s1, floating* s2, double scale,
                         double* partials, int team) noexcept nogil:
    """Run a pass over one segment; returns its penalty (or, for GRAD_SQUARE, the
    sum of squared effective gradients), added block by block in order.

    A segment of at least PASS_MIN_ELEMENTS runs its blocks on fastwb's pool
    with up to ``team`` threads (BLAS is idle here, and an unscheduled helper
    delays nothing); each block writes its own partial sums, so the result is
    the same bits for any team."""
    cdef Py_ssize_t q
    cdef PassJob job
    cdef int tasks
    cdef double sum_abs = 0, sum_sq = 0
    job.what, job.o, job.seg, job.scale, job.partials = what, o, seg, scale, partials
    job.p = params + seg.start
    job.g = grads + seg.start if grads != NULL else NULL
    job.a = s1 + seg.start if s1 != NULL else NULL
    job.b = s2 + seg.start if s2 != NULL else NULL
    job.n_blocks = (seg.length + BLOCK - 1) // BLOCK
    global POOL_PASSES
    if team > 1 and job.n_blocks > 1 and seg.length >= PASS_MIN_ELEMENTS:
        POOL_PASSES += 1
        tasks = <int>min(job.n_blocks, PASS_TASKS)      # several per thread: a busy core
        job.per_task = (job.n_blocks + tasks - 1) // tasks    # hands its share on
        tasks = <int>((job.n_blocks + job.per_task - 1) // job.per_task)
        if floating is float:
            fwb_pool_run(_pass_task_f, &job, tasks, team)
        else:
            fwb_pool_run(_pass_task_d, &job, tasks, team)
    else:
        job.per_task = job.n_blocks
        _blocks(&job, <floating*>job.p, <floating*>job.g, <floating*>job.a, <floating*>job.b,
                0, job.n_blocks)
    for q in range(job.n_blocks):
        sum_abs += partials[2 * q]
        sum_sq += partials[2 * q + 1]
    if what == GRAD_SQUARE or what == CHECK:
        return sum_abs
    return seg.l1 * sum_abs + seg.l2 * sum_sq


cdef void prepare_update(Opt* o) noexcept nogil:
    """Per-step constants of an update: Adam's bias corrections of step t = step + 1."""
    if o.kind == OPT_ADAM:
        o.step_size = o.lr / (1.0 - pow(o.beta1, <double>(o.step + 1)))
        o.bias2 = 1.0 / sqrt(1.0 - pow(o.beta2, <double>(o.step + 1)))


cdef double layer_pass(int what, const Net* net, const Opt* o, int l, floating* params,
                       floating* grads, floating* s1, floating* s2, double scale,
                       double* partials, int team) noexcept nogil:
    """A pass over layer l's weights and biases; returns their penalty (or, for
    GRAD_SQUARE, the sum of squared effective gradients)."""
    cdef int part
    cdef Segment seg
    cdef double total = 0
    for part in range(2):
        _segment(net, o, l, part, &seg)
        if (what == PENALTY or what == REGULARIZE) and seg.l1 == 0 and seg.l2 == 0:
            continue
        total += segment_pass(what, o, &seg, params, grads, s1, s2, scale, partials, team)
    return total


cdef double parameter_pass(int what, const Net* net, Opt* o, floating* params,
                           floating* grads, double* partials, int team) noexcept nogil:
    """A pass over every layer; returns the total penalty of the parameters
    before the pass. UPDATE first measures the gradient norm when clipping by
    it, and with ``o.verify`` tries the update before making it: when it would
    leave a parameter NaN or infinite, nothing is written and ``o.overflow`` is set."""
    cdef int l
    cdef double total = 0, scale = 1, norm
    cdef floating* s1 = <floating*>o.s1 if o != NULL else NULL
    cdef floating* s2 = <floating*>o.s2 if o != NULL else NULL
    if what == UPDATE:
        prepare_update(o)
    if what == UPDATE and o.clip_norm > 0:
        for l in range(net.n_layers):
            total += layer_pass(GRAD_SQUARE, net, o, l, params, grads, s1, s2, 1, partials,
                                team)
        norm = sqrt(total)
        if norm > o.clip_norm:      # PyTorch's clip_grad_norm_ factor
            scale = o.clip_norm / (norm + 1e-6)
        total = 0
    if what == UPDATE and o.verify and not o.checked:
        for l in range(net.n_layers):
            total += layer_pass(CHECK, net, o, l, params, grads, s1, s2, scale, partials,
                                team)
        o.overflow = total > 0
        total = 0
    if what == UPDATE and o.overflow:
        return parameter_pass(PENALTY, net, NULL, params, grads, partials, team)
    for l in range(net.n_layers):
        total += layer_pass(what, net, o, l, params, grads, s1, s2, scale, partials, team)
    return total


cdef inline void _segment(const Net* net, const Opt* o, int l, int part, Segment* seg) noexcept nogil:
    """Layer l's weights (part 0) or biases (part 1); biases take penalties and
    decoupled decay only when the network regularizes biases."""
    cdef bint regularized = part == 0 or net.regularize_biases
    seg.start = net.w_offset[l] if part == 0 else net.b_offset[l]
    seg.length = net.sizes[l] * net.sizes[l + 1] if part == 0 else net.sizes[l + 1]
    seg.l1 = net.l1[l] if regularized else 0
    seg.l2 = net.l2[l] if regularized else 0
    seg.decay = o.weight_decay if (regularized and o != NULL) else 0


# ---------------------------------------------------------------------------
# Sparse input: the first layer's products with X in CSR form (fastwb._sparse)
# ---------------------------------------------------------------------------

cdef struct Csr:
    # Rows of a checked CSR matrix (SparseRows), typed per call
    const void* data             # stored values, of the network's dtype
    const Py_ssize_t* indices    # column of each stored value
    const Py_ssize_t* indptr     # matrix row i holds entries indptr[i] .. indptr[i + 1] - 1
    const Py_ssize_t* rows       # row r of the batch is matrix row rows[r]; NULL: row r


cdef inline Csr csr_rows(const Csr* s, Py_ssize_t r0) noexcept nogil:
    """The rows r0.. of ``s``, without copying: a chunk's or an in-order batch's
    (``s`` itself when it holds no rows: dense input)."""
    cdef Csr part = s[0]
    if s.indptr == NULL:
        return part
    if s.rows != NULL:
        part.rows = s.rows + r0
    else:
        part.indptr = s.indptr + r0
    return part


cdef inline void _sparse_row(const Csr* s, Py_ssize_t r, const floating* W, Py_ssize_t m,
                             floating* z) noexcept nogil:
    """z (m) = row r of X @ W: W's rows scaled and added in stored order (duplicates add)."""
    cdef Py_ssize_t i = s.rows[r] if s.rows != NULL else r
    cdef Py_ssize_t p, j
    cdef const floating* data = <const floating*>s.data
    cdef const floating* w
    cdef floating v
    memset(z, 0, m * sizeof(floating))
    for p in range(s.indptr[i], s.indptr[i + 1]):
        v = data[p]
        w = W + s.indices[p] * m
        for j in range(m):
            z[j] += v * w[j]


cdef void sparse_nn(const Csr* s, Py_ssize_t n, const floating* W, Py_ssize_t m, floating* Z,
                    int n_threads) noexcept nogil:
    """Z (n x m) = X (n x k, CSR) @ W (k x m). Rows are independent, so threads
    split them without changing any sum. The work is taken as 64 stored values
    a row (text-like rows hold tens to hundreds), the rows of a shuffled batch
    being scattered over the matrix."""
    cdef Py_ssize_t r
    if n > 1 and n_threads > 1 and n * m * 64 >= PARALLEL_MIN_ELEMENTS:
        for r in prange(n, schedule="static", num_threads=n_threads):
            _sparse_row(s, r, W, m, Z + r * m)
    else:
        for r in range(n):
            _sparse_row(s, r, W, m, Z + r * m)


cdef void sparse_tn(const Csr* s, Py_ssize_t n, Py_ssize_t k, const floating* D, Py_ssize_t m,
                    floating* G) noexcept nogil:
    """G (k x m) = X^T (k x n, X in CSR) @ D (n x m): the first layer's weight gradient.

    Each stored value adds its row of D to its column's row of G, rows in batch
    order, serially: the same sums whatever the thread count (a threaded scatter
    would need per-thread copies of G, as large as the layer)."""
    cdef Py_ssize_t r, i, p, j
    cdef const floating* data = <const floating*>s.data
    cdef const floating* d
    cdef floating* g
    cdef floating v
    memset(G, 0, k * m * sizeof(floating))
    for r in range(n):
        i = s.rows[r] if s.rows != NULL else r
        d = D + r * m
        for p in range(s.indptr[i], s.indptr[i + 1]):
            v = data[p]
            g = G + s.indices[p] * m
            for j in range(m):
                g[j] += v * d[j]


# ---------------------------------------------------------------------------
# Whole-network passes
# ---------------------------------------------------------------------------

cdef struct Net:
    int n_layers
    int loss
    double huber_delta           # the huber loss's delta
    const Py_ssize_t* sizes      # n_layers + 1 widths, input first
    const int* acts              # activation of each layer
    const Py_ssize_t* w_offset   # where each W starts in the flat buffer
    const Py_ssize_t* b_offset   # where each b starts in the flat buffer
    const Py_ssize_t* a_offset   # where each layer's activations start in a workspace row block
    const Py_ssize_t* z_offset   # where a gelu or swish layer's pre-activations start in a row
                                 # block of Work.pre (their derivative needs z); -1: not kept
    Py_ssize_t n_params
    const double* l1             # penalty coefficients of each layer
    const double* l2
    bint regularize_biases       # penalties (and AdamW's decay) also on biases
    bint regularized             # any penalty at all
    const double* dropout        # dropout rate on each layer's output (0: none)
    bint any_dropout
    uint64_t seed                # of dropout masks and shuffles
    Py_ssize_t mask_row0         # where the batch's rows start in the step's whole batch
                                 # (their dropout masks' rows); 0 but in step_gradient


cdef struct Work:
    # One batch's scratch, owned by a Workspace (see there); typed per call.
    void* acts
    void* pre                    # the pre-activations of the layers that keep them (see
                                 # Net.z_offset), laid out like acts; NULL when none do
    void* delta
    void* spare
    unsigned char* keep          # dropout masks, laid out like acts (NULL: no dropout)
    double* row_loss
    double* partials             # per-block sums of the parameter passes
    Py_ssize_t capacity
    Py_ssize_t width_max
    void* chunk_grads            # gradients of chunks 1.. of a chunked step (see run_chunks)
    int max_chunks               # the most chunks this scratch holds gradients for
    int team                     # threads of the pool a chunked step may use (set per call)
    int panels                   # threads of the pool for products and parameter passes:
                                 # 0 while BLAS has its own threads (set per call)


cdef void forward(const Net* net, const floating* params, const floating* X, Py_ssize_t n,
                  floating* acts, floating* pre, Py_ssize_t capacity, floating* out,
                  bint logits_out, unsigned char* keep, int64_t step, Py_ssize_t row0,
                  int n_threads, int team, const Csr* sx) noexcept nogil:
    """Run every layer on n rows of X (or of ``sx``, sparse), which are rows row0.. of the batch.

    Layer l writes to rows row0.. of ``acts + capacity * a_offset[l]``; the last
    layer writes to ``out`` instead when it is not NULL. With ``pre`` (for
    backpropagation; NULL to predict) the layers with a z_offset also keep
    their pre-activations at ``pre + capacity * z_offset[l]``, before dropout
    changes the output. With ``logits_out`` the
    output layer stops at z (the loss kernel fuses its sigmoid or softmax).
    With ``keep`` (training) hidden layers with a dropout rate drop units,
    recording the masks there; masks are drawn for (seed, layer, step) and
    each unit's index in the whole batch.
    """
    cdef int l, act
    cdef const floating* prev = X
    cdef floating* a
    cdef floating* z
    cdef Py_ssize_t k, m
    for l in range(net.n_layers):
        k = net.sizes[l]
        m = net.sizes[l + 1]
        if l == net.n_layers - 1 and out != NULL:
            a = out
        else:
            a = acts + capacity * net.a_offset[l] + row0 * m
        if l == 0 and sx != NULL:
            sparse_nn(sx, n, params + net.w_offset[l], m, a, n_threads)
        else:
            product_nn(prev, n, k, params + net.w_offset[l], m, a, n_threads, team)
        act = net.acts[l]
        if l == net.n_layers - 1 and logits_out:
            act = IDENTITY
        z = NULL
        if pre != NULL and net.z_offset[l] >= 0 and act != IDENTITY:
            z = pre + capacity * net.z_offset[l] + row0 * m
        bias_activation(a, params + net.b_offset[l], n, m, act, z, n_threads)
        if keep != NULL and net.dropout[l] > 0:
            dropout(a, keep + capacity * net.a_offset[l] + row0 * m, n * m, net.dropout[l],
                    fwb_key(net.seed, FWB_STREAM_DROPOUT, l, step), (net.mask_row0 + row0) * m,
                    n_threads)
        prev = a


cdef enum Backward:
    GRADIENT_ONLY = 0    # write the gradient to grads
    LAYER_UPDATE = 1     # and update each layer as soon as its gradient is complete
    LAYER_CHECK = 2      # and check each layer's update (o.verify) as soon as its gradient is


cdef double backward(const Net* net, floating* params, floating* grads, const floating* X,
                     Py_ssize_t n, floating* acts, const floating* pre, floating* delta,
                     floating* spare,
                     const unsigned char* keep, Py_ssize_t capacity, Py_ssize_t row0,
                     int how, Opt* o, double* partials, int team, int n_threads,
                     const Csr* sx) noexcept nogil:
    """Backpropagate D of the output layer (in ``delta``) to every weight and bias,
    for n rows that are rows row0.. of the batch in ``acts``, ``pre`` and ``keep``,
    the input being X or (when not NULL) ``sx``.

    Writes the gradient to ``grads``. With LAYER_UPDATE it applies ``o``'s
    step to each layer as soon as the layer's gradient is complete, while it is
    still in cache, after ``D W^T`` has used the old W; it then returns the
    penalty of the parameters it updated (before the update). With LAYER_CHECK
    it checks each layer's update there instead (the update itself must wait
    until every layer is cleared), setting ``o.checked``, or ``o.overflow``
    when a block fails.
    """
    cdef int l
    cdef Py_ssize_t k, m
    cdef const floating* prev
    cdef const floating* z
    cdef floating* swap
    cdef double penalty = 0
    for l in range(net.n_layers - 1, -1, -1):
        k = net.sizes[l]
        m = net.sizes[l + 1]
        prev = X if l == 0 else acts + capacity * net.a_offset[l - 1] + row0 * k
        if l > 0:   # before W changes: D[l-1] = (D W^T) * f'(A[l-1])
            product_nt(delta, n, m, params + net.w_offset[l], k, spare, n_threads, team)
            z = NULL
            if pre != NULL and net.z_offset[l - 1] >= 0:
                z = pre + capacity * net.z_offset[l - 1] + row0 * k
            if keep != NULL and net.dropout[l - 1] > 0:
                multiply_dropout_derivative(spare, prev, z,
                                            keep + capacity * net.a_offset[l - 1] + row0 * k,
                                            n, k, net.acts[l - 1], net.dropout[l - 1], n_threads)
            else:
                multiply_derivative(spare, prev, z, n, k, net.acts[l - 1], n_threads)
        column_sums(delta, n, m, grads + net.b_offset[l], n_threads)                # db = 1^T D
        if l == 0 and sx != NULL:
            sparse_tn(sx, n, k, delta, m, grads + net.w_offset[l])
        else:
            product_tn(prev, n, k, delta, m, grads + net.w_offset[l], 1, 0, n_threads, team)  # dW
        if how == LAYER_UPDATE:
            penalty += layer_pass(UPDATE, net, o, l, params, grads, <floating*>o.s1,
                                  <floating*>o.s2, 1, partials, team)
        elif how == LAYER_CHECK and not o.overflow:
            o.overflow = layer_pass(CHECK, net, o, l, params, grads, <floating*>o.s1,
                                    <floating*>o.s2, 1, partials, team) > 0
        if l > 0:
            swap = delta
            delta = spare
            spare = swap
    return penalty


cdef struct Batch:
    # The rows one call runs on, typed per call
    const void* X                # n x n_in
    const void* T                # n x n_out float targets, or NULL with labels
    const Py_ssize_t* labels     # class labels, or NULL
    const void* SW               # sample weights, or NULL
    Py_ssize_t n
    Csr sparse                   # X's rows when X is sparse (indptr not NULL; X is NULL)


cdef double run(const Net* net, floating* params, floating* grads, const Batch* batch,
                const Work* w, int mode, Opt* o, int n_threads) noexcept nogil:
    """Forward, loss and (by mode) backpropagation and the optimizer update, in one call.

    Returns the mean loss plus the penalty of the parameters before any update.
    TRAIN applies one step of the optimizer ``o`` (and counts it in ``o.step``
    and its counters) unless the loss is not finite, which must never reach the
    parameters, or ``o.verify`` finds that the update would overflow. The
    update is one pass over the flat buffer after backpropagation, or (without
    clipping by the norm or verification) layer by layer inside it, each layer
    as soon as its gradient is complete: the same bits either way. The loss
    gradient stays in ``grads``. Batches that chunk_count splits take
    run_chunks' way instead.
    """
    cdef int L = net.n_layers
    cdef Py_ssize_t n = batch.n
    cdef const floating* X = <const floating*>batch.X
    cdef bint train = mode == TRAIN
    cdef bint masks = train or mode == STEP_GRADIENT
    cdef bint logits = _fused(net.loss)
    cdef floating* acts = <floating*>w.acts
    cdef floating* out = acts + w.capacity * net.a_offset[L - 1]
    cdef floating* pre = <floating*>w.pre
    cdef unsigned char* keep = w.keep if (masks and net.any_dropout) else NULL
    cdef double value
    cdef int how = GRADIENT_ONLY
    cdef int chunks = chunk_count(n, net.n_params) if (masks or mode == GRADIENT) else 1
    cdef const Csr* sx = &batch.sparse if batch.sparse.indptr != NULL else NULL

    if chunks > 1 and chunks <= w.max_chunks:
        return run_chunks(net, params, grads, batch, w, mode, o, chunks, n_threads)
    forward(net, params, X, n, acts, pre, w.capacity, <floating*>NULL, logits, keep,
            o.step if masks else 0, 0, n_threads, w.panels, sx)
    value = loss_and_delta(net.loss, net.acts[L - 1], net.huber_delta, out,
                           _kept_output(net, pre, w.capacity, 0), <const floating*>batch.T,
                           batch.labels, <const floating*>batch.SW, n, net.sizes[L],
                           <floating*>w.delta if mode == GRADIENT or masks else <floating*>NULL,
                           w.row_loss, batch_weight(<const floating*>batch.SW, n), n_threads)
    if mode == DATA_LOSS:
        return value
    if mode == LOSS_ONLY:
        if net.regularized:
            value += parameter_pass(PENALTY, net, NULL, params, <floating*>NULL, w.partials,
                                    w.panels)
        return value
    if train and not isfinite(value):
        return value
    if train and o.clip_norm == 0:     # clipping by the norm needs every gradient first
        how = LAYER_CHECK if o.verify else LAYER_UPDATE
        o.checked = o.verify
        prepare_update(o)
    value += backward(net, params, grads, X, n, acts, pre, <floating*>w.delta, <floating*>w.spare,
                      keep, w.capacity, 0, how, o, w.partials, w.panels, n_threads, sx)
    return value + finish_gradient(net, params, grads, w, mode, o, how == LAYER_UPDATE)


cdef inline const floating* _kept_output(const Net* net, floating* pre, Py_ssize_t capacity,
                                         Py_ssize_t row0) noexcept nogil:
    """Rows row0.. of the output layer's kept pre-activations, or NULL."""
    cdef int L = net.n_layers
    if pre == NULL or net.z_offset[L - 1] < 0 or _fused(net.loss):
        return NULL
    return pre + capacity * net.z_offset[L - 1] + row0 * net.sizes[L]


cdef double finish_gradient(const Net* net, floating* params, floating* grads, const Work* w,
                            int mode, Opt* o, bint updated) noexcept nogil:
    """After backpropagation: GRADIENT adds the penalty's gradient, TRAIN applies
    the update unless backpropagation did (``updated``) and counts it; returns
    the penalty then taken. STEP_GRADIENT is GRADIENT with the step's masks."""
    cdef double value = 0
    if mode == GRADIENT or mode == STEP_GRADIENT:
        if net.regularized:
            value = parameter_pass(REGULARIZE, net, NULL, params, grads, w.partials, w.panels)
        return value
    if not updated:
        value = parameter_pass(UPDATE, net, o, params, grads, w.partials, w.panels)
    if not o.overflow:
        o.step += 1
        o.counters[COUNT_STEP] += 1
    return value


cdef inline int chunk_count(Py_ssize_t n, Py_ssize_t n_params) noexcept nogil:
    """How many chunks of rows a training step on n rows is split into: a power
    of two, each chunk at least CHUNK_MIN_ROWS rows, at most MAX_CHUNKS; 1 for
    networks of more than CHUNK_MAX_PARAMS parameters, whose products BLAS
    already spreads over the cores. It depends on the shapes only, never on
    the thread count, so results do not either."""
    cdef int chunks = 1
    if n_params > CHUNK_MAX_PARAMS:
        return 1
    while chunks < MAX_CHUNKS and n >= 2 * chunks * CHUNK_MIN_ROWS:
        chunks *= 2
    return chunks


cdef struct ChunkJob:
    # run_chunks' arguments for its tasks, typed per call
    const Net* net
    void* params
    void* grads
    void* extra
    const Batch* batch
    Py_ssize_t rows
    const Work* w
    unsigned char* keep
    int64_t step
    double weight
    int panels           # 1: BLAS is serial, cut products run on this thread; 0: whole


cdef double run_chunks(const Net* net, floating* params, floating* grads, const Batch* batch,
                       const Work* w, int mode, Opt* o, int chunks, int n_threads) noexcept nogil:
    """``run`` for TRAIN and GRADIENT on a batch cut into ``chunks`` chunks of rows.

    Each chunk is a forward and backward pass of its own, into its own gradient
    buffer (chunk 0 into ``grads``), run by up to ``w.team`` threads at once
    (fastwb_pool.h) with BLAS kept serial, so small batches use every core where
    BLAS alone could not. The chunks' losses and gradients are then added in
    chunk order, the same sums whichever thread ran which chunk.
    """
    cdef int c, team = 1
    cdef bint train = mode == TRAIN
    cdef bint masks = train or mode == STEP_GRADIENT
    cdef Py_ssize_t i, P = net.n_params
    cdef floating* extra = <floating*>w.chunk_grads
    cdef double value = 0
    cdef ChunkJob job
    job.net, job.params, job.grads, job.extra = net, params, grads, extra
    job.batch, job.rows, job.w = batch, (batch.n + chunks - 1) // chunks, w
    job.keep = w.keep if (masks and net.any_dropout) else NULL
    job.step = o.step if masks else 0
    job.weight = batch_weight(<const floating*>batch.SW, batch.n)
    cdef int blas_threads = blas_serial_begin()
    job.panels = blas_threads > 0
    if blas_threads > 0:                # BLAS calls can run side by side, serially each
        team = w.team
    if floating is float:
        fwb_pool_run(_chunk_task_f, &job, chunks, team)
    else:
        fwb_pool_run(_chunk_task_d, &job, chunks, team)
    blas_serial_end(blas_threads)
    for c in range(chunks):
        value += w.row_loss[c * job.rows]
    if train and not isfinite(value):
        return value
    if n_threads > 1 and P >= PARALLEL_MIN_ELEMENTS:
        for i in prange(P, schedule="static", num_threads=n_threads):
            _add_chunks(grads, extra, i, P, chunks)
    else:
        for i in range(P):
            _add_chunks(grads, extra, i, P, chunks)
    return value + finish_gradient(net, params, grads, w, mode, o, False)


cdef void _chunk_task_f(void* ctx, int c) noexcept nogil:
    cdef ChunkJob* j = <ChunkJob*>ctx
    _chunk(j, <float*>j.params,
           <float*>j.grads if c == 0 else <float*>j.extra + (c - 1) * j.net.n_params, c)


cdef void _chunk_task_d(void* ctx, int c) noexcept nogil:
    cdef ChunkJob* j = <ChunkJob*>ctx
    _chunk(j, <double*>j.params,
           <double*>j.grads if c == 0 else <double*>j.extra + (c - 1) * j.net.n_params, c)


cdef inline void _add_chunks(floating* grads, const floating* extra, Py_ssize_t i, Py_ssize_t P,
                             int chunks) noexcept nogil:
    cdef int c
    cdef floating g = grads[i]
    for c in range(chunks - 1):
        g = g + extra[c * P + i]
    grads[i] = g


cdef void _chunk(const ChunkJob* j, floating* params, floating* grads, int c) noexcept nogil:
    """Chunk c of run_chunks, serially: its loss (over the whole batch's weight)
    goes to w.row_loss[c * rows], in place of its first row's."""
    cdef const Net* net = j.net
    cdef const Work* w = j.w
    cdef const Batch* b = j.batch
    cdef int L = net.n_layers
    cdef Py_ssize_t r0 = c * j.rows
    cdef Py_ssize_t nc = min(j.rows, b.n - r0)
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[L]
    cdef const floating* X = <const floating*>b.X + r0 * n_in if b.X != NULL else NULL
    cdef Csr rows = csr_rows(&b.sparse, r0)
    cdef const Csr* sx = &rows if b.sparse.indptr != NULL else NULL
    cdef const floating* T = <const floating*>b.T
    cdef const floating* SW = <const floating*>b.SW
    cdef floating* acts = <floating*>w.acts
    cdef floating* out = acts + w.capacity * net.a_offset[L - 1]
    cdef floating* delta = <floating*>w.delta + r0 * w.width_max
    cdef floating* spare = <floating*>w.spare + r0 * w.width_max
    cdef double value
    cdef floating* pre = <floating*>w.pre
    forward(net, params, X, nc, acts, pre, w.capacity, <floating*>NULL, _fused(net.loss),
            j.keep, j.step, r0, 1, j.panels, sx)
    value = loss_and_delta(net.loss, net.acts[L - 1], net.huber_delta, out + r0 * n_out,
                           _kept_output(net, pre, w.capacity, r0),
                           T + r0 * n_out if T != NULL else NULL,
                           b.labels + r0 if b.labels != NULL else NULL,
                           SW + r0 if SW != NULL else NULL, nc, n_out, delta, w.row_loss + r0,
                           j.weight, 1)
    backward(net, params, grads, X, nc, acts, pre, delta, spare, j.keep, w.capacity, r0,
             GRADIENT_ONLY, NULL, w.partials, 1, j.panels, sx)
    w.row_loss[r0] = value


cdef void shuffle_rows(Py_ssize_t* order, Py_ssize_t n, uint64_t key) noexcept nogil:
    """order = a Fisher-Yates permutation of range(n), as fastwb._random.permutation."""
    cdef Py_ssize_t i, j, tmp
    for i in range(n):
        order[i] = i
    for i in range(n - 1, 0, -1):
        j = <Py_ssize_t>fwb_below(key, i, i + 1)
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


cdef struct Fit:
    # One epoch's data, gather buffers and per-batch arrays, typed per call
    Batch data                   # the whole training set
    Py_ssize_t batch             # rows per batch (the last may have fewer)
    Py_ssize_t n_batches
    const Py_ssize_t* order      # the epoch's permutation of the rows, or NULL: in order
    void* xb                     # a batch gathered by order
    void* tb
    Py_ssize_t* lb
    void* wb
    const double* lrs            # the learning rate of each batch
    double* batch_loss           # out: the loss of each batch


cdef int fit_epoch(const Net* net, Opt* o, floating* params, floating* grads, const Fit* f,
                   Py_ssize_t first_batch, Py_ssize_t last_batch, const Work* w,
                   Py_ssize_t* done, bint watch_interrupt, int n_threads) noexcept nogil:
    """Train on batches first_batch..last_batch-1 of one epoch; returns FIT_*.

    Batch b holds rows ``order[b * batch: (b + 1) * batch]`` (the last may be
    shorter), gathered into xb/tb/lb/wb, or, without ``order``, those rows of
    X in place. Batch b uses learning rate lrs[b] and records its loss in
    batch_loss[b]; each applied batch advances the optimizer's step and sample
    counters, and the epoch's last batch its epoch counter. Stops before a batch when SIGINT arrived
    (``watch_interrupt``: this call holds the SIGINT handler), and after a
    batch whose loss is not finite (that batch's update is not applied);
    ``done`` counts the batches applied.
    """
    cdef Py_ssize_t b, r, i, first
    cdef Py_ssize_t k = net.sizes[0], m = net.sizes[net.n_layers]
    cdef const floating* X = <const floating*>f.data.X
    cdef const floating* T = <const floating*>f.data.T
    cdef const Py_ssize_t* labels = f.data.labels
    cdef const floating* SW = <const floating*>f.data.SW
    cdef floating* xb = <floating*>f.xb
    cdef floating* tb = <floating*>f.tb
    cdef floating* wb = <floating*>f.wb
    cdef Batch part
    cdef double value
    done[0] = 0
    for b in range(first_batch, last_batch):
        if watch_interrupt and fwb_interrupt_pending():
            return FIT_INTERRUPTED
        first = b * f.batch
        part.n = min(f.batch, f.data.n - first)
        part.sparse = f.data.sparse     # rows picked from X's CSR rows, never copied
        if f.order != NULL:
            part.sparse.rows = f.order + first
            for r in range(part.n):
                i = f.order[first + r]
                if X != NULL:
                    memcpy(xb + r * k, X + i * k, k * sizeof(floating))
                if T != NULL:
                    memcpy(tb + r * m, T + i * m, m * sizeof(floating))
                if labels != NULL:
                    f.lb[r] = labels[i]
                if SW != NULL:
                    wb[r] = SW[i]
            part.X, part.T, part.labels, part.SW = xb, tb, f.lb, wb
        else:
            part.sparse = csr_rows(&f.data.sparse, first)
            part.X, part.T = X + first * k, T + first * m
            part.labels, part.SW = labels + first, SW + first
        if X == NULL:
            part.X = NULL
        if T == NULL:
            part.T = NULL
        if labels == NULL:
            part.labels = NULL
        if SW == NULL:
            part.SW = NULL
        o.lr = f.lrs[b]
        value = run(net, params, grads, &part, w, TRAIN, o, n_threads)
        f.batch_loss[b] = value
        if not isfinite(value):
            return FIT_DIVERGED
        done[0] += 1
        o.counters[COUNT_SAMPLES] += part.n
        if b == f.n_batches - 1:
            o.counters[COUNT_EPOCH] += 1
    return FIT_DONE


# ---------------------------------------------------------------------------
# Python-facing engine
# ---------------------------------------------------------------------------

cdef class Workspace:
    """Scratch for one batch size: activations, (for gelu and swish layers)
    pre-activations, two ping-pong gradient buffers, per-row losses, per-block
    sums, (when the network has dropout) masks, and the gradients of the chunks
    of a chunked step (see run_chunks)."""
    cdef readonly Py_ssize_t capacity
    cdef readonly bint has_masks
    cdef cnp.ndarray acts, pre, deltas, row_loss, partials, keep, chunk_grads
    cdef Work work

    def __cinit__(self, Py_ssize_t capacity, Py_ssize_t width_sum, Py_ssize_t width_max, dtype,
                  Py_ssize_t n_blocks, bint masks, Py_ssize_t n_params, Py_ssize_t z_width=0):
        cdef Py_ssize_t itemsize = np.dtype(dtype).itemsize
        cdef int chunks = chunk_count(capacity, n_params)
        _validation.check_allocation(
            capacity * ((width_sum + z_width + 2 * width_max) * itemsize + 8
                        + (width_sum if masks else 0))
            + (chunks - 1) * n_params * itemsize, f"the workspace for a batch of {capacity:,} rows (layer widths summing to "
            f"{width_sum:,})")
        self.capacity = capacity
        self.has_masks = masks
        self.acts = np.empty(capacity * width_sum, dtype=dtype)
        self.pre = np.empty(capacity * z_width, dtype=dtype)
        self.work.pre = cnp.PyArray_DATA(self.pre) if z_width > 0 else NULL
        self.deltas = np.empty(2 * capacity * width_max, dtype=dtype)
        self.row_loss = np.empty(capacity, dtype=np.float64)
        self.partials = np.empty(2 * n_blocks, dtype=np.float64)
        self.keep = np.empty(capacity * width_sum if masks else 0, dtype=np.uint8)
        self.work.acts = cnp.PyArray_DATA(self.acts)
        self.work.delta = cnp.PyArray_DATA(self.deltas)
        self.work.spare = <char*>self.work.delta + capacity * width_max * itemsize
        self.work.row_loss = <double*>cnp.PyArray_DATA(self.row_loss)
        self.work.partials = <double*>cnp.PyArray_DATA(self.partials)
        self.work.keep = <unsigned char*>cnp.PyArray_DATA(self.keep) if masks else NULL
        self.work.capacity = capacity
        self.work.width_max = width_max
        self.chunk_grads = np.empty((chunks - 1) * n_params, dtype=dtype)
        self.work.chunk_grads = cnp.PyArray_DATA(self.chunk_grads) if chunks > 1 else NULL
        self.work.max_chunks = chunks
        self.work.team = 1
        self.work.panels = 0


cdef inline bint _usable(object x, int typenum, int ndim):
    """True when x can go to a kernel as it is: an ndarray of the right dtype,
    native byte order, aligned and C-contiguous."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == ndim
            and cnp.PyArray_ISBEHAVED_RO(a) and cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef enum Values:
    FINITE_VALUES = 0    # every value finite
    TARGET_VALUES = 1    # float targets the loss takes
    WEIGHT_VALUES = 2    # sample weights: finite and nonnegative


cdef class Rule:
    """An optimizer's update rule as the engines take it: one record, built once
    per optimizer and network by ``fastwb.optimizers``.

    Parameters
    ----------
    kind : str
        The update rule, one of ``functions.OPTIMIZERS``.
    settings : mapping of str to float
        The rule's settings by name (``functions.HYPERPARAMETERS``); names left
        out are 0 (for clipping: off).
    state : mapping of str to ndarray
        The rule's state buffers by name (``functions.STATE_BUFFERS``; SGD's
        velocity only with momentum): writable, C-contiguous 1-D arrays of one
        float dtype and one length, the network's. The engines update them in place.
    counters : ndarray
        The optimizer's int64 counters (``functions.COUNTERS``); the engines
        advance them with each update, in the same call, so that they always
        agree with the parameters.
    """
    cdef Opt opt
    cdef readonly str kind
    cdef readonly dict settings
    cdef readonly dict state
    cdef readonly cnp.ndarray counters
    cdef cnp.ndarray _s1, _s2
    cdef int typenum
    cdef Py_ssize_t size

    def __cinit__(self, str kind not None, settings, state, cnp.ndarray counters not None):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown update rule {kind!r}; one of {', '.join(OPTIMIZERS)}")
        unknown = set(settings) - set(HYPERPARAMETERS)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)} of the {kind} rule")
        self.settings = {name: float(settings.get(name, 0.0)) for name in HYPERPARAMETERS}
        if not all(np.isfinite(list(self.settings.values()))):
            raise ValueError(f"the {kind} rule's settings must be finite, got {self.settings}")
        names = STATE_BUFFERS[kind] if kind != "sgd" or self.settings["momentum"] > 0 else ()
        if set(state) != set(names):
            raise ValueError(f"the {kind} rule keeps the state {list(names)}, got {sorted(state)}")
        buffers = [state[name] for name in names]
        for name, buffer in zip(names, buffers):
            if not (isinstance(buffer, np.ndarray) and buffer.ndim == 1
                    and buffer.dtype in (np.float32, np.float64) and buffer.flags.c_contiguous
                    and buffer.flags.aligned and buffer.flags.writeable
                    and buffer.dtype == buffers[0].dtype and len(buffer) == len(buffers[0])):
                raise ValueError(f"state {name!r} must be a writable, C-contiguous 1-D float32 "
                                 "or float64 array like the rule's other state")
        if not (counters.dtype == np.int64 and counters.ndim == 1 and len(counters) == N_COUNTERS
                and counters.flags.c_contiguous and counters.flags.writeable):
            raise ValueError(f"counters must be a writable int64 array of {N_COUNTERS}")
        self.kind = kind
        self.state = {name: buffer for name, buffer in zip(names, buffers)}
        self.counters = counters
        self._s1 = buffers[0] if buffers else None
        self._s2 = buffers[1] if len(buffers) > 1 else None
        self.typenum = cnp.PyArray_TYPE(self._s1) if buffers else -1
        self.size = cnp.PyArray_DIM(self._s1, 0) if buffers else -1
        memset(&self.opt, 0, sizeof(Opt))
        self.opt.kind = OPTIMIZERS[kind]
        self.opt.momentum = self.settings["momentum"]
        self.opt.nesterov = self.settings["nesterov"] != 0
        self.opt.rho = self.settings["rho"]
        self.opt.beta1 = self.settings["beta1"]
        self.opt.beta2 = self.settings["beta2"]
        self.opt.eps = self.settings["eps"]
        self.opt.weight_decay = self.settings["weight_decay"]
        self.opt.clip_norm = self.settings["clip_norm"]
        self.opt.clip_value = self.settings["clip_value"]
        self.opt.s1 = _data(self._s1)
        self.opt.s2 = _data(self._s2)
        self.opt.counters = <int64_t*>cnp.PyArray_DATA(counters)

    def __repr__(self):
        return f"Rule({self.kind!r}, state={list(self.state)}, counters={self.counters.tolist()})"


# What one entry into the kernels does (Engine._enter)
cdef enum Op:
    OP_RUN = 0         # run(): a forward pass, and by mode the loss, gradient, update
    OP_FIT = 1         # fit_epoch()
    OP_PREDICT = 2     # the output of every row, in blocks of the workspace
    OP_ACTIVITY = 3    # block_activity() of every row, in blocks of the workspace
    OP_PENALTY = 4     # the penalty of the parameters
    OP_UPDATE = 5      # the update from the gradient in grads
    OP_CHECK = 6       # _values_ok() of input values (no workspace)


cdef struct Call:
    # One entry into the kernels: what to run and on what (typed in _enter)
    int op
    const Net* net               # the network's (NULL), or one without its penalties
    int mode                     # OP_RUN; OP_CHECK: which Values
    Batch batch                  # OP_RUN; OP_PREDICT and OP_ACTIVITY read X and n
    Opt* opt                     # OP_RUN (TRAIN), OP_FIT, OP_UPDATE
    const Fit* fit               # OP_FIT
    Py_ssize_t first_batch, last_batch
    bint watch_interrupt
    void* out                    # OP_PREDICT: n x n_out outputs
    bint logits                  # OP_PREDICT: the output layer's z, before its activation
    unsigned char* alive         # OP_ACTIVITY
    double* sums
    const Work* work
    int n_threads
    double value                 # out: OP_RUN's loss, OP_PENALTY's penalty
    int status                   # out: OP_FIT's FIT_*
    Py_ssize_t done              # out: OP_FIT's batches applied


cdef inline Call _call(int op) noexcept nogil:
    """A Call of ``op`` with every other field zero."""
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.op = op
    return c


cdef void _enter(floating* params, floating* grads, const Net* net, Call* c) noexcept nogil:
    """Run one Call with the parameters and gradients typed; the Engine's one
    place where the dtype picks the kernels."""
    cdef Py_ssize_t start = 0, count
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[net.n_layers]
    cdef const Work* w = c.work
    cdef const floating* X = <const floating*>c.batch.X
    cdef Csr rows
    if c.op == OP_CHECK:
        c.status = _values_ok(<const floating*>c.batch.X, c.batch.n, c.mode, net.loss)
    elif c.op == OP_RUN:
        c.value = run(net, params, grads, &c.batch, w, c.mode, c.opt, c.n_threads)
    elif c.op == OP_FIT:
        c.status = fit_epoch(net, c.opt, params, grads, c.fit, c.first_batch, c.last_batch, w,
                             &c.done, c.watch_interrupt, c.n_threads)
    elif c.op == OP_UPDATE:
        c.value = parameter_pass(UPDATE, net, c.opt, params, grads, w.partials, w.panels)
        if not c.opt.overflow:
            c.opt.step += 1
            c.opt.counters[COUNT_STEP] += 1
    elif c.op == OP_PENALTY:
        c.value = parameter_pass(PENALTY, net, NULL, params, <floating*>NULL, w.partials,
                                 w.panels)
    else:
        while start < c.batch.n:
            count = min(w.capacity, c.batch.n - start)
            rows = csr_rows(&c.batch.sparse, start)
            if c.op == OP_PREDICT:
                forward(net, params, X + start * n_in if X != NULL else NULL, count,
                        <floating*>w.acts, <floating*>NULL, w.capacity,
                        <floating*>c.out + start * n_out, c.logits, NULL, 0, 0, c.n_threads, w.panels,
                        &rows if c.batch.sparse.indptr != NULL else NULL)
            else:
                block_activity(net, params, X + start * n_in if X != NULL else NULL, count,
                               <floating*>w.acts, w.capacity, c.alive, c.sums, c.n_threads,
                               &rows if c.batch.sparse.indptr != NULL else NULL)
            start += count


cdef inline Py_ssize_t _n_rows(object x):
    """The rows of checked input: an ndarray (1-D: one row) or SparseRows."""
    if type(x) is cnp.ndarray:
        return cnp.PyArray_DIM(<cnp.ndarray>x, 0) if cnp.PyArray_NDIM(<cnp.ndarray>x) == 2 else 1
    return x.shape[0]


cdef void _batch(Batch* b, object x, cnp.ndarray t, cnp.ndarray sw, Py_ssize_t n):
    """Point ``b`` at checked input: x an ndarray or SparseRows, t float targets or
    intp labels."""
    cdef bint is_labels = cnp.PyArray_TYPE(t) == cnp.NPY_INTP
    memset(&b.sparse, 0, sizeof(Csr))
    if type(x) is cnp.ndarray:
        b.X = cnp.PyArray_DATA(<cnp.ndarray>x)
    else:
        _sparse_batch(b, x)
    b.T = NULL if is_labels else cnp.PyArray_DATA(t)
    b.labels = <const Py_ssize_t*>cnp.PyArray_DATA(t) if is_labels else NULL
    b.SW = _data(sw)
    b.n = n


cdef void _sparse_batch(Batch* b, object x):
    """Point ``b`` at the CSR arrays of SparseRows ``x``, which they keep alive."""
    cdef cnp.ndarray data = x.data, indices = x.indices, indptr = x.indptr
    b.X = NULL
    b.sparse.data = cnp.PyArray_DATA(data)
    b.sparse.indices = <const Py_ssize_t*>cnp.PyArray_DATA(indices)
    b.sparse.indptr = <const Py_ssize_t*>cnp.PyArray_DATA(indptr)
    b.sparse.rows = NULL


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
    l1, l2 : sequence of float, optional
        Penalty coefficients of each layer: ``l1 sum|W| + l2 sum W^2`` joins the loss.
    regularize_biases : bool
        Whether the penalties (and AdamW's decoupled decay) also apply to biases.
    dropout : sequence of float, optional
        Dropout rate on each layer's output during training (the last must be 0).
    seed : int
        Seed of the dropout masks and of ``fit_epoch``'s shuffles.
    huber_delta : float
        Where the huber loss turns from square to linear (finite, > 0; other
        losses ignore it).
    """
    cdef Net net
    cdef readonly object dtype
    cdef int typenum
    cdef bint is_double
    cdef int n_threads
    cdef readonly cnp.ndarray params
    cdef cnp.ndarray grads
    cdef readonly bint holds_training_gradient
    cdef cnp.ndarray _sizes, _acts, _w_offset, _b_offset, _a_offset, _z_offset, _l1, _l2
    cdef cnp.ndarray _dropout, _zeros
    cdef Py_ssize_t n_in, n_out, width_sum, width_max, n_blocks, z_width
    cdef Py_ssize_t max_layer        # the most weights of a layer
    cdef Workspace ws
    cdef bint busy
    cdef readonly str loss_name

    def __cinit__(self, sizes, activations, loss, cnp.ndarray params not None, int n_threads=0,
                  l1=None, l2=None, bint regularize_biases=False, dropout=None,
                  uint64_t seed=0, double huber_delta=1.0):
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
        if np.any(self._acts[:-1] == SOFTMAX) or np.any(self._acts[:-1] == EXP):
            raise ValueError("softmax and exp are only supported on the output layer")
        if not (huber_delta > 0 and isfinite(huber_delta)):
            raise ValueError(f"huber_delta must be finite and > 0, got {huber_delta}")
        widths = self._sizes[1:]
        w_offset, b_offset = _layout.offsets(list(sizes))
        self._w_offset = np.asarray(w_offset, dtype=np.intp)
        self._b_offset = np.asarray(b_offset, dtype=np.intp)
        offset = _layout.n_parameters(list(sizes))
        if params.shape[0] != offset:
            raise ValueError(f"params has {params.shape[0]} elements; the sizes need {offset}")
        self._a_offset = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.intp)
        # gelu and swish layers keep their pre-activations for backpropagation
        kept = np.isin(self._acts, (GELU, SWISH))
        self._z_offset = np.where(kept, np.cumsum(np.where(kept, widths, 0)) - widths,
                                  -1).astype(np.intp)
        self.z_width = int(widths[kept].sum())
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
        self.max_layer = max(int(k) * int(m) for k, m in zip(sizes[:-1], sizes[1:]))
        self.net.n_layers = <int>L
        self.net.loss = LOSSES[loss]
        self.net.huber_delta = huber_delta
        self.net.sizes = <const Py_ssize_t*>cnp.PyArray_DATA(self._sizes)
        self.net.acts = <const int*>cnp.PyArray_DATA(self._acts)
        self.net.w_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._w_offset)
        self.net.b_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._b_offset)
        self.net.a_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._a_offset)
        self.net.z_offset = <const Py_ssize_t*>cnp.PyArray_DATA(self._z_offset)
        self.net.n_params = offset
        self.busy = False
        self._zeros = np.zeros(L, dtype=np.float64)
        self.set_penalties(l1, l2)
        self._dropout = self._per_layer(dropout, "dropout")
        if np.any(self._dropout >= 1) or self._dropout[L - 1] != 0:
            raise ValueError("dropout rates must be below 1, and 0 on the output layer")
        self.net.regularize_biases = regularize_biases
        self.net.dropout = <const double*>cnp.PyArray_DATA(self._dropout)
        self.net.any_dropout = bool(np.any(self._dropout > 0))
        self.net.seed = seed
        self.net.mask_row0 = 0
        self.n_blocks = max((k * m + BLOCK - 1) // BLOCK for k, m in zip(sizes[:-1], sizes[1:]))
        self.ws = None
        self.loss_name = loss

    def set_penalties(self, l1, l2):
        """Replace the per-layer penalty coefficients (None: zeros) between calls."""
        if self.busy:
            raise RuntimeError("this network is in use by another thread")
        l1, l2 = self._per_layer(l1, "l1"), self._per_layer(l2, "l2")
        self._l1, self._l2 = l1, l2
        self.net.l1 = <const double*>cnp.PyArray_DATA(self._l1)
        self.net.l2 = <const double*>cnp.PyArray_DATA(self._l2)
        self.net.regularized = bool(np.any(self._l1 > 0) or np.any(self._l2 > 0))

    def _per_layer(self, values, name):
        """A float64 array with one nonnegative, finite value per layer (zeros for None)."""
        cdef Py_ssize_t L = self.net.n_layers
        out = np.zeros(L, dtype=np.float64) if values is None else np.array(values, dtype=np.float64)
        if out.shape != (L,) or not np.all(np.isfinite(out)) or np.any(out < 0):
            raise ValueError(f"{name} needs {L} finite, nonnegative values, got {values!r}")
        return out

    cdef int _threads(self, Py_ssize_t rows) noexcept:
        """OpenMP threads of a call over ``rows`` rows, for its elementwise kernels and
        its passes over the parameters: 1 when any product goes to BLAS, whose idle
        workers spin and would share the cores with an OpenMP team (a 2-thread Adam
        pass made a 1024-4096-4096-1024 step 8% slower than a serial one)."""
        cdef Py_ssize_t l
        for l in range(self.net.n_layers):
            if not _plain_loops(rows, self.net.sizes[l], self.net.sizes[l + 1]):
                return 1
        return self.n_threads if self.n_threads > 0 else omp_get_max_threads()

    cdef int _team(self) noexcept nogil:
        """Threads the pool may use in a call: all of the engine's."""
        return self.n_threads if self.n_threads > 0 else omp_get_max_threads()

    cdef bint _panels(self, Py_ssize_t rows) noexcept nogil:
        """Whether a call on up to ``rows`` rows has a product _gemm_panels cuts
        (it then runs with BLAS serial). Only with NumPy's OpenBLAS, whose
        thread count fastwb can set, and never for one row, which goes to
        gemv whole (with BLAS's own threads)."""
        return (rows > 1 and numpy_set_threads != NULL and fwb_openmp_enabled()
                and rows >= (PANEL_PRODUCT_MIN + self.max_layer - 1) // self.max_layer)

    cdef Workspace _claim(self, Py_ssize_t rows, bint exclusive, bint masks=False):
        """A workspace for one call over ``rows`` rows, owned by that call; with
        ``masks`` (training with dropout) it holds dropout masks too.

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
            return self._workspace(rows, False)
        self.busy = True
        try:
            if self.ws is None or self.ws.capacity < rows or (masks and not self.ws.has_masks):
                if self.ws is not None:     # grow only: alternating calls must not swap sizes
                    rows, masks = max(rows, self.ws.capacity), masks or self.ws.has_masks
                self.ws = None  # release the old one before allocating the larger
                self.ws = self._workspace(rows, masks)
        except BaseException:
            self.busy = False
            raise
        return self.ws

    cdef Workspace _workspace(self, Py_ssize_t rows, bint masks):
        return Workspace(rows, self.width_sum, self.width_max, self.dtype, self.n_blocks, masks,
                         self.net.n_params, self.z_width)

    cdef inline void _release(self, Workspace ws) noexcept:
        if ws is self.ws:
            self.busy = False

    cdef object _input(self, object X, bint* single):
        """X as a C-contiguous 2-D array of the engine's dtype, checked finite, or,
        when X is sparse, as fastwb._sparse.SparseRows of the engine's dtype."""
        cdef cnp.ndarray x
        cdef int ndim
        if type(X) is cnp.ndarray:
            ndim = cnp.PyArray_NDIM(<cnp.ndarray>X)
            if (ndim == 1 or ndim == 2) and _usable(X, self.typenum, ndim):
                x = <cnp.ndarray>X
                if (cnp.PyArray_DIM(x, ndim - 1) == self.n_in
                        and (ndim == 1 or cnp.PyArray_DIM(x, 0) > 0)):
                    if self._values_ok(x, FINITE_VALUES):
                        single[0] = ndim == 1
                        return x
        checked, is_single = _validation.check_X(X, self.n_in, self.dtype)
        single[0] = is_single
        return checked

    cdef object _targets(self, object y, Py_ssize_t n, bint single):
        """y as float targets (n x n_out) or integer labels (n,), checked; see check_y."""
        cdef cnp.ndarray t
        cdef Py_ssize_t size, m = self.n_out
        cdef object labels
        if self.net.loss == SOFTMAX_CROSS_ENTROPY and type(y) is cnp.ndarray:
            t = <cnp.ndarray>y
            # one label per sample (a one-sample row of n_out >= 2 targets is another length)
            if cnp.PyArray_NDIM(t) == 1 and cnp.PyArray_DIM(t, 0) == n:
                labels = _labels(t, m)
                if labels is not None:
                    return labels
        if _usable(y, self.typenum, 2) or (m == 1 and _usable(y, self.typenum, 1)):
            t = <cnp.ndarray>y
            size = cnp.PyArray_SIZE(t)
            if cnp.PyArray_DIM(t, 0) == n and size == n * m and self._values_ok(t, TARGET_VALUES):
                return t
        return _validation.check_y(y, n, self.n_out, self.loss_name, self.dtype, single)

    cdef cnp.ndarray _weights(self, object sample_weight, Py_ssize_t n):
        """Sample weights as a C-contiguous (n,) array of the engine's dtype, or None."""
        cdef cnp.ndarray w
        if sample_weight is None:
            return None
        if _usable(sample_weight, self.typenum, 1):
            w = <cnp.ndarray>sample_weight
            if cnp.PyArray_DIM(w, 0) == n and self._values_ok(w, WEIGHT_VALUES):
                return w
        return _validation.check_sample_weight(sample_weight, n, self.dtype)

    cdef bint _values_ok(self, cnp.ndarray a, int what):
        """The fast acceptance test of input of the engine's dtype (see _values_ok)."""
        cdef Call c = _call(OP_CHECK)
        c.mode = what
        c.batch.X = cnp.PyArray_DATA(a)
        c.batch.n = cnp.PyArray_SIZE(a)
        self._typed(&c)
        return c.status

    cdef void _enter(self, Call* c, bint release_gil):
        """Enter the kernels once for ``c``, without the GIL when ``release_gil``."""
        if release_gil:
            with nogil:
                self._typed(c)
        else:
            self._typed(c)

    cdef void _typed(self, Call* c) noexcept nogil:
        """Run ``c`` under flush-to-zero when that is on, in this thread, the
        pool's helpers (they adopt the caller's word) and OpenMP's workers, and
        give the caller its own floating-point mode back however ``c`` ends.
        Input checks (integer tests of the bits, no arithmetic) skip all that."""
        if c.op == OP_CHECK:
            self._dispatch(c)
            return
        cdef Work* w = <Work*>c.work
        cdef int blas_threads = 0
        w.team = self._team()
        if c.op == OP_UPDATE or c.op == OP_PENALTY:     # no product: the pool is free
            w.panels = w.team
        elif self._panels(c.fit.batch if c.op == OP_FIT else min(c.batch.n, w.capacity)):
            # one serial BLAS for the whole call (setting it costs ~0.5 us); the
            # pool runs panels and passes, with no more threads than BLAS's own
            # setting allows (which threadpoolctl governs)
            blas_threads = blas_serial_begin()
            w.panels = min(w.team, blas_threads)
        else:       # BLAS's own threads may be spinning: fastwb's stay out of their way
            w.panels = 0
        cdef fwb_fp_word saved = fwb_fp_enter(FLUSH_DENORMALS)
        # an OpenMP region runs only past PARALLEL_MIN_ELEMENTS of work (at most the
        # workspace's rows times the parameters); waking the team otherwise would cost
        # a small call more than its work and leave libgomp's workers spinning
        cdef bint omp = (c.n_threads > 1
                         and max(w.capacity, 1) * self.net.n_params >= PARALLEL_MIN_ELEMENTS)
        if omp:
            fwb_omp_fp_enter(c.n_threads)
        self._dispatch(c)
        if omp:
            fwb_omp_fp_exit(c.n_threads)
        fwb_fp_exit(saved)
        blas_serial_end(blas_threads)

    cdef inline void _dispatch(self, Call* c) noexcept nogil:
        """_enter with the parameters and gradients typed."""
        cdef const Net* net = c.net if c.net != NULL else &self.net
        if self.is_double:
            _enter(<double*>cnp.PyArray_DATA(self.params), <double*>cnp.PyArray_DATA(self.grads),
                   net, c)
        else:
            _enter(<float*>cnp.PyArray_DATA(self.params), <float*>cnp.PyArray_DATA(self.grads),
                   net, c)

    cdef int _rule(self, Opt* o, Rule rule, double lr) except -1:
        """Fill ``o`` from ``rule`` for a call at learning rate ``lr``, after checking
        that the rule's state fits this network."""
        if rule.size >= 0 and (rule.size != self.net.n_params or rule.typenum != self.typenum):
            raise ValueError(f"the optimizer's state holds {rule.size} values of another "
                             f"dtype or network; this network has {self.net.n_params} "
                             f"{self.dtype} parameters")
        if not self.is_double and lr > FLT_MAX:
            _validation.check_learning_rate(lr, self.dtype)
        o[0] = rule.opt
        o.lr = lr
        o.step = rule.opt.counters[COUNT_STEP]
        if o.step < 0:
            raise ValueError(f"the optimizer's step count is negative ({o.step})")
        return 0

    cdef tuple _checked(self, object X, object y, object sample_weight):
        """(X, y, sample_weight) as arrays a kernel takes: see _input, _targets, _weights."""
        cdef bint single
        cdef object x = self._input(X, &single)
        cdef Py_ssize_t n = _n_rows(x)
        if n > MAX_ROWS:
            raise ValueError(f"X has {n} rows; a batch holds at most {MAX_ROWS} "
                             "(BLAS counts rows in 32 bits): split it")
        return x, self._targets(y, n, single), self._weights(sample_weight, n)

    cdef double _run(self, object X, object y, object sample_weight, int mode, Opt* o,
                     cnp.ndarray grad_out=None) except? -1.0:
        """Validate, then run the kernels once (see _execute)."""
        x, t, sw = self._checked(X, y, sample_weight)
        return self._execute(x, t, sw, mode, o, grad_out)

    cdef double _execute(self, object x, cnp.ndarray t, cnp.ndarray sw, int mode, Opt* o,
                         cnp.ndarray grad_out=None, const Net* net=NULL) except? -1.0:
        """Claim a workspace and run the kernels once on checked input; with
        ``grad_out`` also copy the gradient there before another call can overwrite it;
        with ``net``, a variant of the network's (see Call.net)."""
        cdef Py_ssize_t n = _n_rows(x)
        if mode == TRAIN:
            x, t, sw = self._unaliased(x, t, sw)
        cdef Call c = _call(OP_RUN)
        c.mode = mode
        c.net = net
        _batch(&c.batch, x, t, sw, n)
        c.opt = o
        c.n_threads = self._threads(n)
        cdef Workspace ws = self._claim(n, mode == GRADIENT or mode == TRAIN
                                        or mode == STEP_GRADIENT,
                                        (mode == TRAIN or mode == STEP_GRADIENT)
                                        and self.net.any_dropout)
        c.work = &ws.work
        try:
            self._enter(&c, n * self.net.n_params >= RELEASE_GIL_MIN_WORK)
            if grad_out is not None:
                memcpy(cnp.PyArray_DATA(grad_out), cnp.PyArray_DATA(self.grads),
                       cnp.PyArray_NBYTES(self.grads))
        finally:
            self._release(ws)
        return c.value

    cdef tuple _unaliased(self, object x, cnp.ndarray t, cnp.ndarray sw):
        """Copies of inputs that share memory with the parameters, which an update writes."""
        if type(x) is cnp.ndarray:
            if _overlaps(<cnp.ndarray>x, self.params):
                x = x.copy()
        elif _overlaps(x.data, self.params):
            x = x.copy()
        if _overlaps(t, self.params):
            t = t.copy()
        if sw is not None and _overlaps(sw, self.params):
            sw = sw.copy()
        return x, t, sw

    def predict(self, X, bint logits=False):
        """Output-layer activations for X of shape (n, n_in), or (n_in,) for one
        sample; with ``logits`` the output layer's z, before its activation."""
        cdef bint single
        cdef object x = self._input(X, &single)
        cdef Py_ssize_t n = _n_rows(x)
        cdef cnp.npy_intp dims[2]
        dims[0] = n
        dims[1] = self.n_out
        if n * self.n_out > PREDICT_CHECK_MIN:     # many outputs a row: their size is new
            _validation.check_allocation(
                n * self.n_out * self.dtype.itemsize,
                f"the predictions of {n:,} rows of {self.n_out:,} outputs")
        cdef cnp.ndarray out
        if single:
            out = cnp.PyArray_EMPTY(1, &dims[1], self.typenum, 0)
        else:
            out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        cdef Call c = _call(OP_PREDICT)
        c.logits = logits
        if type(x) is cnp.ndarray:
            c.batch.X = cnp.PyArray_DATA(<cnp.ndarray>x)
        else:
            _sparse_batch(&c.batch, x)
        c.batch.n = n
        c.out = cnp.PyArray_DATA(out)
        cdef Workspace ws = self._claim(min(n, PREDICT_BLOCK_ROWS), False)
        c.work = &ws.work
        c.n_threads = self._threads(min(n, ws.capacity))
        try:
            self._enter(&c, n * self.net.n_params >= RELEASE_GIL_MIN_WORK)
        finally:
            self._release(ws)
        return out

    def activation_statistics(self, X):
        """Per layer, on the rows of X: the fraction of units that are never
        positive (dead, for ReLU layers; NaN for other activations) and the mean
        output, from a forward pass (no dropout) in blocks of the workspace.

        Meant for a sample of a few hundred rows between epochs (``Monitor``), so
        BLAS runs serially: right after an epoch the chunk helpers still hold the
        other cores, and a threaded product then waits for them (a 256-row pass
        of a 64-100-10 network measured 7x slower)."""
        cdef bint single
        cdef object x = self._input(X, &single)
        cdef Py_ssize_t n = _n_rows(x)
        cdef cnp.ndarray alive = np.zeros(self.width_sum, dtype=np.uint8)
        cdef cnp.ndarray sums = np.zeros(self.width_sum, dtype=np.float64)
        cdef cnp.ndarray dead = np.empty(self.net.n_layers, dtype=np.float64)
        cdef cnp.ndarray mean = np.empty(self.net.n_layers, dtype=np.float64)
        cdef unsigned char* flags = <unsigned char*>cnp.PyArray_DATA(alive)
        cdef double* column = <double*>cnp.PyArray_DATA(sums)
        cdef double* d = <double*>cnp.PyArray_DATA(dead)
        cdef double* a = <double*>cnp.PyArray_DATA(mean)
        cdef Py_ssize_t j, m, o, silent
        cdef double total
        cdef int l
        cdef Call c = _call(OP_ACTIVITY)
        if type(x) is cnp.ndarray:
            c.batch.X = cnp.PyArray_DATA(<cnp.ndarray>x)
        else:
            _sparse_batch(&c.batch, x)
        c.batch.n = n
        c.alive = flags
        c.sums = column
        c.n_threads = 1
        cdef Workspace ws = self._claim(min(n, PREDICT_BLOCK_ROWS), False)
        c.work = &ws.work
        cdef int previous = blas_serial_begin()
        try:
            self._enter(&c, n * self.net.n_params >= RELEASE_GIL_MIN_WORK)
        finally:
            blas_serial_end(previous)
            self._release(ws)
        for l in range(self.net.n_layers):
            m = self.net.sizes[l + 1]
            o = self.net.a_offset[l]
            total = 0
            silent = 0
            for j in range(m):
                total += column[o + j]
                silent += flags[o + j] == 0
            a[l] = total / (n * m)
            d[l] = <double>silent / m if self.net.acts[l] == RELU else NAN
        return dead, mean

    def loss(self, X, y, sample_weight=None):
        """Mean loss of the network on (X, y), plus the penalty of the parameters.

        Batches of more than PREDICT_BLOCK_ROWS rows are taken in blocks of that
        many, so the workspace stays bounded however large the batch.
        """
        cdef Opt o
        memset(&o, 0, sizeof(Opt))
        cdef object x
        cdef cnp.ndarray t, sw
        x, t, sw = self._checked(X, y, sample_weight)
        cdef Py_ssize_t n = _n_rows(x)
        if n <= PREDICT_BLOCK_ROWS:
            return self._execute(x, t, sw, LOSS_ONLY, &o)
        cdef double total = 0, weight = 0, block_weight
        cdef Py_ssize_t start, stop
        for start in range(0, n, PREDICT_BLOCK_ROWS):
            stop = min(n, start + PREDICT_BLOCK_ROWS)
            block_weight = <double>(stop - start) if sw is None else float(sw[start:stop].sum())
            if block_weight > 0:     # a block's mean loss, weighed back into the total
                total += block_weight * self._execute(x[start:stop], t[start:stop],
                                                      None if sw is None else sw[start:stop],
                                                      DATA_LOSS, &o)
                weight += block_weight
        return (total / weight if weight > 0 else 0.0) + self.penalty()

    def penalty(self):
        """The penalty of the parameters: sum over layers of l1 sum|W| + l2 sum W^2."""
        if not self.net.regularized:
            return 0.0
        cdef Call c = _call(OP_PENALTY)
        cdef Workspace ws = self._claim(1, False)
        c.work = &ws.work
        try:
            self._enter(&c, False)
        finally:
            self._release(ws)
        return c.value

    def gradients(self, X, y, sample_weight=None):
        """Gradient of ``loss``, as a new flat array laid out like ``params``."""
        return self.loss_and_gradients(X, y, sample_weight)[1]

    def loss_and_gradients(self, X, y, sample_weight=None):
        """``(loss, gradient)`` from one forward and backward pass: what
        ``loss`` and ``gradients`` give, for optimizers such as L-BFGS that want both."""
        cdef Opt o
        memset(&o, 0, sizeof(Opt))
        out = np.empty_like(self.grads)
        self.holds_training_gradient = False
        value = self._run(X, y, sample_weight, GRADIENT, &o, out)
        return value, out

    def step_gradient(self, X, y, sample_weight, Rule rule not None, Py_ssize_t mask_row0=0):
        """``(loss, gradient)`` as ``loss_and_gradients`` gives them, but in training
        mode: dropout on, with the masks ``train_step`` draws at ``rule``'s next step
        for rows ``mask_row0``.. of a batch (this one being part of a larger batch
        that starts ``mask_row0`` rows earlier). Changes no parameter or counter."""
        if mask_row0 < 0:
            raise ValueError(f"mask_row0 must be at least 0, got {mask_row0}")
        cdef Opt o
        self._rule(&o, rule, 0.0)
        cdef Net variant = self.net
        variant.mask_row0 = mask_row0
        x, t, sw = self._checked(X, y, sample_weight)
        out = np.empty_like(self.grads)
        self.holds_training_gradient = False
        value = self._execute(x, t, sw, STEP_GRADIENT, &o, out, &variant)
        return value, out

    def training_gradient(self):
        """A copy of the loss gradient (without the penalty's) of the last batch a
        training call ran, laid out like ``params``, or None when that call did
        not compute it (its loss was not finite) or another call has used the
        gradient buffer since."""
        return self.grads.copy() if self.holds_training_gradient else None

    def train_step(self, X, y, sample_weight, Rule rule not None, double lr):
        """One step of ``rule`` on (X, y) in place at learning rate ``lr``;
        returns ``(loss before the update, FIT_STATUS code)``.

        The update is tried before it is made: when the loss is not finite
        (diverged) or the update would leave a parameter NaN or infinite
        (overflow), nothing changes. The rule's step counter counts the update.
        """
        cdef Opt o
        self._rule(&o, rule, lr)
        o.verify = True
        self.holds_training_gradient = False
        value = self._run(X, y, sample_weight, TRAIN, &o)
        if not isfinite(value):
            return value, FIT_DIVERGED
        self.holds_training_gradient = True
        return value, FIT_OVERFLOW if o.overflow else FIT_DONE

    def apply_gradients(self, cnp.ndarray grads not None, Rule rule not None, double lr):
        """One step of ``rule`` in place from ``grads``, a finite gradient laid out
        like ``params`` (checked by the caller) that already holds whatever penalty
        gradient it should: clipping and the rule (with AdamW's decay) are applied
        as in ``train_step``, the penalties are not added again. ``grads`` is left
        unchanged. Returns a FIT_STATUS code: done, or overflow (nothing changed)."""
        if not (_usable(grads, self.typenum, 1)
                and cnp.PyArray_DIM(grads, 0) == self.net.n_params):
            raise ValueError(f"gradients must be a C-contiguous {self.dtype} array of "
                             f"{self.net.n_params} elements")
        cdef Opt o
        self._rule(&o, rule, lr)
        o.verify = True
        cdef Net bare = self.net
        bare.l1 = bare.l2 = <const double*>cnp.PyArray_DATA(self._zeros)
        bare.regularized = False
        cdef Call c = _call(OP_UPDATE)
        c.opt = &o
        c.n_threads = self._threads(1)
        c.net = &bare
        cdef Workspace ws = self._claim(1, True)
        c.work = &ws.work
        self.holds_training_gradient = False
        try:
            # a copy: the caller's array may share memory with the parameters the update writes
            memcpy(cnp.PyArray_DATA(self.grads), cnp.PyArray_DATA(grads), cnp.PyArray_NBYTES(grads))
            self._enter(&c, self.net.n_params >= RELEASE_GIL_MIN_WORK)
        finally:
            self._release(ws)
        return FIT_OVERFLOW if o.overflow else FIT_DONE

    cdef int _fit_batches(self, Call* c, object x, cnp.ndarray t, cnp.ndarray sw,
                          Py_ssize_t batch_size, Py_ssize_t n_batches, bint shuffle,
                          uint64_t key, cnp.ndarray rates, cnp.ndarray losses) except -1:
        """fit_epoch's batches: the gather buffers, the shuffle, the kernels."""
        cdef Py_ssize_t n = _n_rows(x)
        cdef bint is_labels = cnp.PyArray_TYPE(t) == cnp.NPY_INTP
        cdef cnp.ndarray order = np.empty(n if shuffle else 0, dtype=np.intp)
        cdef cnp.ndarray xb = np.empty(batch_size * self.n_in if shuffle and type(x) is cnp.ndarray
                                       else 0, dtype=self.dtype)
        cdef cnp.ndarray tb = np.empty(batch_size * self.n_out if shuffle and not is_labels else 0,
                                       dtype=self.dtype)
        cdef cnp.ndarray lb = np.empty(batch_size if shuffle and is_labels else 0, dtype=np.intp)
        cdef cnp.ndarray wb = np.empty(batch_size if shuffle and sw is not None else 0,
                                       dtype=self.dtype)
        cdef Fit f
        _batch(&f.data, x, t, sw, n)
        f.batch = batch_size
        f.n_batches = n_batches
        f.order = <Py_ssize_t*>cnp.PyArray_DATA(order) if shuffle else NULL
        f.xb = cnp.PyArray_DATA(xb)
        f.tb = cnp.PyArray_DATA(tb)
        f.lb = <Py_ssize_t*>cnp.PyArray_DATA(lb)
        f.wb = cnp.PyArray_DATA(wb)
        f.lrs = <const double*>cnp.PyArray_DATA(rates)
        f.batch_loss = <double*>cnp.PyArray_DATA(losses)
        c.fit = &f
        if shuffle:
            with nogil:
                shuffle_rows(<Py_ssize_t*>f.order, n, key)
        cdef Workspace ws = self._claim(batch_size, True, self.net.any_dropout)
        c.work = &ws.work
        try:
            self._enter(c, True)
        finally:
            self._release(ws)
        return 0

    def fit_epoch(self, X, y, sample_weight, Py_ssize_t batch_size, bint shuffle,
                  Rule rule not None, lrs, batch_loss, Py_ssize_t first_batch=0,
                  Py_ssize_t last_batch=-1, bint catch_interrupt=False):
        """Train on the batches of one epoch in one call without the GIL.

        Shuffles with the (seed, epoch) permutation when ``shuffle``, the epoch
        being the rule's epoch counter, then runs batches first_batch..last_batch-1
        (default: all), batch b with learning rate ``lrs[b]``, writing its loss
        to ``batch_loss[b]``. The rule's counters advance with every applied
        batch (step, samples) and with the epoch's last batch (epoch). With
        ``catch_interrupt`` (main thread only) Ctrl-C stops it at the next batch
        boundary. Returns ``(status, batches applied, whether SIGINT arrived)``,
        status one of FIT_STATUS: done, diverged (the last batch's loss was not
        finite and it was not applied) or interrupted (stopped early at a batch
        boundary). SIGINT may also arrive during the last batch, after a
        divergence or after the loop: then the status is done or diverged.
        """
        cdef bint single
        cdef object x = self._input(X, &single)
        cdef Py_ssize_t n = _n_rows(x)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        batch_size = min(batch_size, n)
        cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
        if last_batch < 0:
            last_batch = n_batches
        if not 0 <= first_batch <= last_batch <= n_batches:
            raise ValueError(f"batches {first_batch}..{last_batch} are not within the epoch's "
                             f"{n_batches}")
        cdef cnp.ndarray t = self._targets(y, n, single)
        cdef cnp.ndarray sw = self._weights(sample_weight, n)
        x, t, sw = self._unaliased(x, t, sw)
        # C-level checks of the rates and the loss buffer: a small fit runs hundreds
        # of epochs of a few batches, where NumPy's calls would cost more than a batch
        cdef cnp.ndarray rates = lrs if _usable(lrs, cnp.NPY_DOUBLE, 1) else \
            np.require(lrs, np.float64, ["C_CONTIGUOUS", "ALIGNED"])
        cdef cnp.ndarray losses = batch_loss
        cdef const double* rate = <const double*>cnp.PyArray_DATA(rates)
        cdef double top = 0
        cdef Py_ssize_t b
        if cnp.PyArray_NDIM(rates) != 1 or cnp.PyArray_DIM(rates, 0) != n_batches:
            raise ValueError(f"lrs needs {n_batches} finite, nonnegative learning rates")
        for b in range(n_batches):
            if not (rate[b] >= 0 and rate[b] <= DBL_MAX):      # NaN fails both
                raise ValueError(f"lrs needs {n_batches} finite, nonnegative learning rates")
            top = max(top, rate[b])
        if not (_usable(losses, cnp.NPY_DOUBLE, 1) and cnp.PyArray_ISWRITEABLE(losses)
                and cnp.PyArray_DIM(losses, 0) == n_batches):
            raise ValueError(f"batch_loss must be a writable float64 array of {n_batches}")
        cdef Opt o
        self._rule(&o, rule, top)
        cdef int64_t epoch = rule.opt.counters[COUNT_EPOCH]
        if epoch < 0:
            raise ValueError(f"the optimizer's epoch count is negative ({epoch})")
        cdef Call c = _call(OP_FIT)
        c.opt = &o
        c.first_batch = first_batch
        c.last_batch = last_batch
        c.n_threads = self._threads(batch_size)
        self.holds_training_gradient = False
        # SIGINT is held from here on, before the shuffle and the allocations, so
        # that none arriving during them waits for the whole epoch
        c.watch_interrupt = catch_interrupt and fwb_catch_sigint()
        cdef bint arrived = False
        try:
            if c.watch_interrupt:
                PyErr_CheckSignals()     # a Ctrl-C that Python's handler took just before
            self._fit_batches(&c, x, t, sw, batch_size, n_batches, shuffle,
                              fwb_key(self.net.seed, FWB_STREAM_SHUFFLE, <uint64_t>epoch, 0),
                              rates, losses)
        finally:
            arrived = c.watch_interrupt and fwb_release_sigint()
        # the last batch run left its gradient unless its loss diverged
        self.holds_training_gradient = c.done > 0 and c.status != FIT_DIVERGED
        return c.status, c.done, arrived


cdef void block_activity(const Net* net, const floating* params, const floating* X,
                         Py_ssize_t n, floating* acts, Py_ssize_t capacity,
                         unsigned char* alive, double* sums, int n_threads,
                         const Csr* sx) noexcept nogil:
    """Forward n rows of X, then add each unit's outputs to ``sums`` and mark in
    ``alive`` the units with a positive output (both laid out like a workspace
    row: one entry per unit, layer after layer). Per-unit sums keep the row loop
    free of a running total, so it vectorises."""
    cdef int l
    cdef Py_ssize_t i, j, m
    cdef const floating* a
    cdef unsigned char* flags
    cdef double* column
    forward(net, params, X, n, acts, NULL, capacity, NULL, False, NULL, 0, 0, n_threads, 1, sx)
    for l in range(net.n_layers):
        m = net.sizes[l + 1]
        a = acts + capacity * net.a_offset[l]
        flags = alive + net.a_offset[l]
        column = sums + net.a_offset[l]
        for i in range(n):
            for j in range(m):
                column[j] += a[i * m + j]
                flags[j] |= a[i * m + j] > 0


cdef inline void* _data(cnp.ndarray a):
    return NULL if a is None else cnp.PyArray_DATA(a)


cdef bint _values_ok(const floating* v, Py_ssize_t n, int what, int loss) noexcept nogil:
    """The fast acceptance test of n input values; _validation explains refusals."""
    if what == WEIGHT_VALUES:
        return _weights_ok(v, n)
    if what == TARGET_VALUES:
        return _targets_ok(loss, v, n)
    if floating is float:
        return fwb_simd.all_finite_f(v, n)
    else:
        return fwb_simd.all_finite_d(v, n)


cdef bint _weights_ok(const floating* w, Py_ssize_t n) noexcept nogil:
    """The fast acceptance test for sample weights; check_sample_weight explains refusals."""
    cdef Py_ssize_t i
    for i in range(n):
        if not (w[i] >= 0 and w[i] <= FLT_MAX):      # finite and nonnegative; NaN fails
            return False
    return True


cdef bint _overlaps(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share any bytes."""
    cdef char* a0 = <char*>cnp.PyArray_DATA(a)
    cdef char* b0 = <char*>cnp.PyArray_DATA(b)
    return a0 < b0 + cnp.PyArray_NBYTES(b) and b0 < a0 + cnp.PyArray_NBYTES(a)


ctypedef fused label_t:
    signed char
    unsigned char
    short
    unsigned short
    int
    unsigned int
    long
    unsigned long
    long long
    unsigned long long
    Py_ssize_t
    float
    double


cdef object _labels(cnp.ndarray y, Py_ssize_t m):
    """The fast acceptance test for class labels (a C-contiguous, aligned 1-D array
    of native byte order; bool, any integer type, float32 or float64): y itself
    when it is intp, else a new intp copy, when every label is a whole number in
    [0, m); None otherwise, for check_y to convert or explain."""
    if not (cnp.PyArray_ISBEHAVED_RO(y) and cnp.PyArray_IS_C_CONTIGUOUS(y)):
        return None
    cdef int typenum = cnp.PyArray_TYPE(y)
    cdef const void* data = cnp.PyArray_DATA(y)
    cdef cnp.npy_intp n = cnp.PyArray_DIM(y, 0)
    if typenum == cnp.NPY_INTP:
        return y if _to_labels(<const Py_ssize_t*>data, NULL, n, m) else None
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &n, cnp.NPY_INTP, 0)
    cdef Py_ssize_t* lab = <Py_ssize_t*>cnp.PyArray_DATA(out)
    cdef bint ok
    # by C type, not by NumPy name: int64 is long here and long long elsewhere
    cdef Py_ssize_t i
    if typenum == cnp.NPY_BOOL:     # any nonzero byte is True (a view of other bytes)
        ok = _to_labels(<const unsigned char*>data, lab, n, 256)
        for i in range(n):
            lab[i] = lab[i] != 0
            ok = ok and lab[i] < m
    elif typenum == cnp.NPY_UBYTE:
        ok = _to_labels(<const unsigned char*>data, lab, n, m)
    elif typenum == cnp.NPY_BYTE:
        ok = _to_labels(<const signed char*>data, lab, n, m)
    elif typenum == cnp.NPY_SHORT:
        ok = _to_labels(<const short*>data, lab, n, m)
    elif typenum == cnp.NPY_USHORT:
        ok = _to_labels(<const unsigned short*>data, lab, n, m)
    elif typenum == cnp.NPY_INT:
        ok = _to_labels(<const int*>data, lab, n, m)
    elif typenum == cnp.NPY_UINT:
        ok = _to_labels(<const unsigned int*>data, lab, n, m)
    elif typenum == cnp.NPY_LONG:
        ok = _to_labels(<const long*>data, lab, n, m)
    elif typenum == cnp.NPY_ULONG:
        ok = _to_labels(<const unsigned long*>data, lab, n, m)
    elif typenum == cnp.NPY_LONGLONG:
        ok = _to_labels(<const long long*>data, lab, n, m)
    elif typenum == cnp.NPY_ULONGLONG:
        ok = _to_labels(<const unsigned long long*>data, lab, n, m)
    elif typenum == cnp.NPY_FLOAT:
        ok = _to_labels(<const float*>data, lab, n, m)
    elif typenum == cnp.NPY_DOUBLE:
        ok = _to_labels(<const double*>data, lab, n, m)
    else:
        ok = False
    return out if ok else None


cdef bint _to_labels(const label_t* y, Py_ssize_t* out, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """Whether each of n labels is a whole number in [0, m); copies them into
    ``out`` as intp (unless NULL) while it checks. check_y explains any refusal."""
    cdef Py_ssize_t i
    cdef double v
    for i in range(n):
        if label_t is float or label_t is double:
            v = y[i]
            if not (v >= 0 and v < m and v == floor(v)):     # NaN fails every comparison
                return False
        elif not (y[i] >= 0 and <unsigned long long>y[i] < <unsigned long long>m):
            return False
        if out != NULL:
            out[i] = <Py_ssize_t>y[i]
    return True


cdef bint _targets_ok(int loss, const floating* t, Py_ssize_t size) noexcept nogil:
    """The fast acceptance test for float targets; check_y explains any refusal."""
    cdef Py_ssize_t i
    if loss == BINARY_CROSS_ENTROPY:
        for i in range(size):
            if not (t[i] >= 0 and t[i] <= 1):       # probabilities; NaN fails both
                return False
        return True
    if floating is float:
        if not fwb_simd.all_finite_f(t, size):
            return False
    else:
        if not fwb_simd.all_finite_d(t, size):
            return False
    if loss == SOFTMAX_CROSS_ENTROPY or loss == POISSON:
        for i in range(size):
            if t[i] < 0:            # class weights, Poisson counts: nonnegative
                return False
    return True
