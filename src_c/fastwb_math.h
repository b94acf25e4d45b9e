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

/* log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): finite for x = +-1000. */
static inline float fwb_softplus_f(float x) {
    return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline double fwb_softplus_d(double x) {
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

#endif
