/* Scalar math that must stay finite for any finite input.
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

/* exp(x) for x <= 0 in float32, branch-free so loops calling it vectorise
 * (glibc's expf and tanhf are scalar calls). Cody-Waite reduction
 * x = n ln2 + r, |r| <= ln2/2, and Cephes' expf polynomial: about 1 ulp.
 * Every exp in fastwb's kernels has a nonpositive argument (softmax after
 * subtracting the row maximum, sigmoid and tanh of -|x|). NaN propagates;
 * results below FLT_MIN flush to 0. */
static inline float fwb_exp_nonpositive_f(float x) {
    const float lowest = -87.33654475f;          /* log(FLT_MIN) */
    float xc = x < lowest ? lowest : x;
    /* round(x / ln2) with the 1.5 * 2^23 trick: exact for |v| < 2^22 */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    n = n >= -126.0f ? n : 0.0f;                 /* NaN input: keep the cast defined */
    int32_t bits = ((int32_t)n + 127) << 23;      /* 2^n, n in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float result = p * scale;
    return x < lowest ? 0.0f : result;
}

/* 1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|. */
static inline float fwb_sigmoid_f(float x) {
    float e = fwb_exp_nonpositive_f(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

/* tanh in float32: Cephes' odd polynomial near 0 (where 1 - e^-2|x| would
 * cancel), (1 - t) / (1 + t) with t = exp(-2|x|) elsewhere; both computed and
 * blended so the loop vectorises. */
static inline float fwb_tanh_f(float x) {
    float a = fabsf(x);
    float z = x * x;
    float poly = -5.70498872745e-3f;
    poly = poly * z + 2.06390887954e-2f;
    poly = poly * z - 5.37397155531e-2f;
    poly = poly * z + 1.33314422036e-1f;
    poly = poly * z - 3.33332819422e-1f;
    poly = poly * z * x + x;
    float t = fwb_exp_nonpositive_f(-2.0f * a);
    float far = (1.0f - t) / (1.0f + t);
    far = x < 0.0f ? -far : far;
    return a < 0.625f ? poly : far;
}

static inline double fwb_sigmoid_d(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* exp(x) - 1 for x <= 0 in float32, branch-free: the Taylor series through
 * x^9 for x > -0.5 (where exp(x) - 1 would cancel; the first term left out is
 * below 2^-27 of the result), exp(x) - 1 below. */
static inline float fwb_expm1_nonpositive_f(float x) {
    float p = 2.7557319224e-6f;                  /* 1/9! */
    p = p * x + 2.4801587302e-5f;
    p = p * x + 1.9841269841e-4f;
    p = p * x + 1.3888888889e-3f;
    p = p * x + 8.3333333333e-3f;
    p = p * x + 4.1666666667e-2f;
    p = p * x + 1.6666666667e-1f;
    p = p * x + 0.5f;
    float near = p * x * x + x;
    float far = fwb_exp_nonpositive_f(x) - 1.0f;
    return x > -0.5f ? near : far;
}

/* log(1 + e) for e in [0, 1] in float32, branch-free: u = 1 + e rounded, then
 * Cephes' logf polynomial on u (halved above sqrt 2, the exponent added back
 * as k ln 2), plus (e - (u - 1)) / u for the rounding of u (u - 1 is exact). */
static inline float fwb_log1p_unit_f(float e) {
    float u = 1.0f + e;
    float high = u > 1.41421356237f ? 1.0f : 0.0f;
    float x = (high != 0.0f ? 0.5f * u : u) - 1.0f;
    float z = x * x;
    float y = 7.0376836292e-2f;
    y = y * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z;
    y = y + high * -2.12194440e-4f;
    y = y - 0.5f * z;
    float correction = (e - (u - 1.0f)) / u;
    return (x + y + correction) + high * 0.693359375f;
}

/* log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): finite for x = +-1000. */
static inline float fwb_softplus_f(float x) {
    return (x > 0.0f ? x : 0.0f) + fwb_log1p_unit_f(fwb_exp_nonpositive_f(-fabsf(x)));
}

static inline double fwb_softplus_d(double x) {
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

/* erfc(x) in float32, branch-free, after Cephes' ndtrf.c: 1 - x P(x^2) for
 * |x| < 1, exp(-x^2) Q(1/x) / |x| (two fits, below and above |x| = 2) beyond,
 * mirrored as 2 - erfc(|x|) for x < 0. exp(-x^2) takes x^2 as a sum hi + lo
 * of two floats, so its rounding does not grow with x. */
static inline float fwb_erfc_f(float x) {
    float a = fabsf(x);
    float z = a * a;
    float t = 7.853861353153693e-5f;
    t = t * z - 8.010193625184903e-4f;
    t = t * z + 5.188327685732524e-3f;
    t = t * z - 2.685381193529856e-2f;
    t = t * z + 1.128358514861418e-1f;
    t = t * z - 3.761262582423300e-1f;
    t = t * z + 1.128379165726710e+0f;
    float small = 1.0f - a * t;
    float q = 1.0f / a;
    float y = q * q;
    float p = 2.326819970068386e-2f;             /* 1 <= |x| < 2, in 1/x */
    p = p * y - 1.387039388740657e-1f;
    p = p * y + 3.687424674597105e-1f;
    p = p * y - 5.824733027278666e-1f;
    p = p * y + 6.210004621745983e-1f;
    p = p * y - 4.944515323274145e-1f;
    p = p * y + 3.404879937665872e-1f;
    p = p * y - 2.741127028184656e-1f;
    p = p * y + 5.638259427386472e-1f;
    float r = -1.047766399936249e+1f;            /* |x| >= 2, in 1/x^2 */
    r = r * y + 1.297719955372516e+1f;
    r = r * y - 7.495518717768503e+0f;
    r = r * y + 2.921019019210786e+0f;
    r = r * y - 1.015265279202700e+0f;
    r = r * y + 4.218463358204948e-1f;
    r = r * y - 2.820767439740514e-1f;
    r = r * y + 5.641895067754075e-1f;
    /* x^2 = hi + lo exactly: a split into 12 high bits and the rest */
    float a_hi = (a * 4097.0f) - ((a * 4097.0f) - a);
    float a_lo = a - a_hi;
    float hi = a_hi * a_hi;
    float lo = a_lo * (a + a_hi);
    float e = fwb_exp_nonpositive_f(-hi) * fwb_exp_nonpositive_f(-lo);
    float large = e * q * (a < 2.0f ? p : r);
    float c = a < 1.0f ? small : large;
    c = a > 10.5f ? 0.0f : c;       /* erfc underflows beyond, a^2 may overflow; NaN stays */
    return x < 0.0f ? 2.0f - c : c;
}

#endif
