/* Run-time SIMD dispatch of the hot elementwise kernels (fastwb_kernels.h).
 *
 * Wheels are built for the baseline x86-64 (SSE2). With GCC or clang on
 * x86-64 every kernel is also compiled for AVX2 and for AVX-512 (F, VL, BW,
 * DQ) through target attributes, and fwb_simd_select() points the table
 * fwb_simd at one level's kernels. The choice is explicit (not an ifunc or
 * target_clones resolver) so that it can be reported (fastwb.show_config),
 * overridden (FASTWB_SIMD) and tested level by level; it also runs after the
 * sanitizers' runtimes start, which ifunc resolvers do not. Elsewhere (MSVC,
 * aarch64) only the baseline level exists.
 *
 * All levels give the same bits: see fastwb_kernels.h. */
#ifndef FASTWB_SIMD_H
#define FASTWB_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastwb_math.h"

/* Levels, in increasing order: indices into _core.SIMD_LEVELS (its names). */
enum { FWB_SIMD_BASELINE = 0, FWB_SIMD_AVX2 = 1, FWB_SIMD_AVX512 = 2, FWB_SIMD_LEVELS = 3 };

/* Activation and optimizer codes: the values of _core's enums (checked there). */
enum {
    FWB_ACT_IDENTITY = 0, FWB_ACT_RELU = 1, FWB_ACT_LEAKY_RELU = 2, FWB_ACT_SIGMOID = 3,
    FWB_ACT_TANH = 4, FWB_ACT_SOFTMAX = 5, FWB_ACT_ELU = 6, FWB_ACT_SELU = 7, FWB_ACT_GELU = 8,
    FWB_ACT_SOFTPLUS = 9, FWB_ACT_SWISH = 10,
    FWB_ACT_EXP = 11
};

/* SELU's constants (Klambauer et al. 2017, as PyTorch and Keras give them) and 1 / sqrt(2 pi) */
#define FWB_SELU_ALPHA 1.6732632423543772848170429916717
#define FWB_SELU_LAMBDA 1.0507009873554804934193349852946
#define FWB_INV_SQRT_2PI 0.39894228040143267793994605993438
#ifndef M_SQRT1_2
#define M_SQRT1_2 0.70710678118654752440
#endif
enum { FWB_OPT_SGD = 0, FWB_OPT_RMSPROP = 1, FWB_OPT_ADAGRAD = 2, FWB_OPT_ADAM = 3 };

/* One optimizer step's rule and constants, in double; each kernel rounds them
 * to its type once, as the scalar code did. */
typedef struct {
    int kind;                   /* FWB_OPT_* */
    int momentum, nesterov;     /* SGD: whether s1 holds a velocity, and Nesterov's form */
    double lr;
    double mu;                  /* SGD momentum; Adam beta1 */
    double c1, c2;              /* RMSprop rho, 1 - rho; Adam 1 - beta1, 1 - beta2 */
    double beta2, eps, step_size, bias2;
    double decay_mult;          /* 1 - lr * decoupled weight decay */
    double l1, l2x2;            /* penalty gradient l1 sign(p) + l2x2 p */
    double clip;                /* elementwise clip value; INFINITY when off */
    double scale;               /* the global-norm clip factor */
} fwb_rule;

typedef struct {
    void (*bias_act_f)(float *, const float *, ptrdiff_t, ptrdiff_t, int, float, float *);
    void (*bias_act_d)(double *, const double *, ptrdiff_t, ptrdiff_t, int, double, double *);
    void (*derivative_f)(float *, const float *, const float *, const unsigned char *, ptrdiff_t,
                         int, float, float, float);
    void (*derivative_d)(double *, const double *, const double *, const unsigned char *,
                         ptrdiff_t, int, double, double, double);
    void (*update_f)(const fwb_rule *, float *, const float *, float *, float *, ptrdiff_t);
    void (*update_d)(const fwb_rule *, double *, const double *, double *, double *, ptrdiff_t);
    int (*all_finite_f)(const float *, ptrdiff_t);
    int (*all_finite_d)(const double *, ptrdiff_t);
    void (*abs_sq_sums_f)(const float *, ptrdiff_t, double *, double *);
    void (*abs_sq_sums_d)(const double *, ptrdiff_t, double *, double *);
    double (*max_abs_f)(const float *, ptrdiff_t);
    double (*max_abs_d)(const double *, ptrdiff_t);
    void (*small_nn_f)(const float *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *);
    void (*small_nn_d)(const double *, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t,
                       double *);
    void (*small_tn_f)(const float *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *,
                       ptrdiff_t, ptrdiff_t, float, float);
    void (*small_tn_d)(const double *, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t,
                       double *, ptrdiff_t, ptrdiff_t, double, double);
} fwb_kernels;

/* MSVC's C compiler spells C99's restrict __restrict */
#if defined(_MSC_VER) && !defined(__clang__)
#define FWB_RESTRICT __restrict
#else
#define FWB_RESTRICT restrict
#endif

#define FWB_CAT2(a, b) a##b
#define FWB_CAT(a, b) FWB_CAT2(a, b)
#define FWB_FN(name) FWB_CAT(name, FWB_SUFFIX)

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_MSC_VER)
#define FWB_SIMD_X86 1
#define FWB_ATTR_AVX2 __attribute__((target("avx2")))
#define FWB_ATTR_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#endif

/* float: fastwb_math.h's branch-free exp/sigmoid/tanh/..., which vectorise (and libm's
 * expf for the exp output of the Poisson loss, which needs the whole range) */
#define FWB_T float
#define FWB_TAG f
#define FWB_EXP0 fwb_exp_nonpositive_f
#define FWB_EXP expf
#define FWB_EXPM1 fwb_expm1_nonpositive_f
#define FWB_SIGMOID fwb_sigmoid_f
#define FWB_TANH fwb_tanh_f
#define FWB_SOFTPLUS fwb_softplus_f
#define FWB_ERFC fwb_erfc_f
#define FWB_SQRT sqrtf
#define FWB_BITS uint32_t
#define FWB_EXP_MASK 0x7f800000u
#define FWB_ABS_MASK 0x7fffffffu
#include "fastwb_levels.h"

/* double: libm's exp, tanh, ... (scalar calls, the same function at every level) */
#define FWB_T double
#define FWB_TAG d
#define FWB_EXP0 exp
#define FWB_EXP exp
#define FWB_EXPM1 expm1
#define FWB_SIGMOID fwb_sigmoid_d
#define FWB_TANH tanh
#define FWB_SOFTPLUS fwb_softplus_d
#define FWB_ERFC erfc
#define FWB_SQRT sqrt
#define FWB_BITS uint64_t
#define FWB_EXP_MASK 0x7ff0000000000000ull
#define FWB_ABS_MASK 0x7fffffffffffffffull
#include "fastwb_levels.h"

#define FWB_KERNELS(LEVEL)                                                              \
    {bias_act_f_##LEVEL, bias_act_d_##LEVEL, derivative_f_##LEVEL, derivative_d_##LEVEL, \
     update_f_##LEVEL, update_d_##LEVEL, all_finite_f_##LEVEL, all_finite_d_##LEVEL,     \
     abs_sq_sums_f_##LEVEL, abs_sq_sums_d_##LEVEL, max_abs_f_##LEVEL, max_abs_d_##LEVEL,  \
     small_nn_f_##LEVEL, small_nn_d_##LEVEL, small_tn_f_##LEVEL, small_tn_d_##LEVEL}

static const fwb_kernels fwb_kernels_by_level[FWB_SIMD_LEVELS] = {
    FWB_KERNELS(baseline),
#ifdef FWB_SIMD_X86
    FWB_KERNELS(avx2),
    FWB_KERNELS(avx512),
#endif
};

/* The kernels in use; set at import by fwb_simd_select. */
static fwb_kernels fwb_simd = FWB_KERNELS(baseline);
static int fwb_simd_level = FWB_SIMD_BASELINE;

/* Whether this build has kernels for the level. */
static int fwb_simd_compiled(int level) {
#ifdef FWB_SIMD_X86
    return level >= 0 && level < FWB_SIMD_LEVELS;
#else
    return level == FWB_SIMD_BASELINE;
#endif
}

/* Whether this CPU (and its operating system, which must save the wider
 * registers: the compiler's runtime checks XGETBV) can run the level. */
static int fwb_simd_supported(int level) {
    if (level == FWB_SIMD_BASELINE) return 1;
#ifdef FWB_SIMD_X86
    __builtin_cpu_init();
    if (level == FWB_SIMD_AVX2) return __builtin_cpu_supports("avx2");
    if (level == FWB_SIMD_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

/* Use the level's kernels; returns 0, or -1 (changing nothing) when this
 * build or this CPU lacks it. */
static int fwb_simd_select(int level) {
    if (!fwb_simd_compiled(level) || !fwb_simd_supported(level)) return -1;
    fwb_simd = fwb_kernels_by_level[level];
    fwb_simd_level = level;
    return 0;
}

#endif
