/* Scalar math that must stay finite for any finite input, and a finiteness scan.
 *
 * Kept in C so the loops are plain enough for the compiler to vectorise
 * without -ffast-math (which would break the NaN/Inf checks themselves).
 */
#ifndef FASTWB_MATH_H
#define FASTWB_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

/* 1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|. */
static inline float fwb_sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static inline double fwb_sigmoid_d(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): finite for x = +-1000. */
static inline float fwb_softplus_f(float x) {
    return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline double fwb_softplus_d(double x) {
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

/* 1 when every element is finite. Integer tests on the exponent bits: an
 * OR-reduction over integers vectorises, a float comparison chain does not. */
static inline int fwb_all_finite_f(const float *x, ptrdiff_t n) {
    uint32_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

static inline int fwb_all_finite_d(const double *x, ptrdiff_t n) {
    uint64_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (uint64_t)((u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
    }
    return bad == 0;
}

#endif
